package server

import (
	"testing"

	"github.com/parleyim/parley/protocol"
)

// TestParkedFramesWaitForSends: frames parked behind a Send in flight go
// back to the head of the inbox, still counted against the inbox's bytes,
// and are not handed to a worker until the Send is answered.
func TestParkedFramesWaitForSends(t *testing.T) {
	p := &workerPool{ready: make(chan *session, 4)}
	s := &session{srv: &Server{pool: p}}
	if s.waitForSends([]inbound{{typ: protocol.TypeSync, size: 10}}) {
		t.Fatal("parked with no Send in flight")
	}
	s.pending = 1
	s.inbox = []inbound{{typ: protocol.TypeHistory, size: 7}} // arrived meanwhile
	s.inBytes = 7
	s.running = true
	if !s.waitForSends([]inbound{{typ: protocol.TypeSync, size: 10}, {typ: protocol.TypeAck, size: 5}}) {
		t.Fatal("not parked with a Send in flight")
	}
	if s.inBytes != 22 || len(s.inbox) != 3 || s.inbox[0].typ != protocol.TypeSync || s.inbox[2].typ != protocol.TypeHistory {
		t.Fatalf("inbox %+v, %d bytes; want Sync, Ack, History and 22 bytes", s.inbox, s.inBytes)
	}
	if w, ok := s.take(work{}); ok || len(w.frames) != 0 {
		t.Fatalf("take while parked: %v, %d frames", ok, len(w.frames))
	}
	s.sendDone(sendResult{reqID: 1})
	if s.parked || s.pending != 0 {
		t.Fatalf("after the answer: parked %v, pending %d", s.parked, s.pending)
	}
	select {
	case got := <-p.ready:
		if got != s {
			t.Fatal("another session submitted")
		}
	default:
		t.Fatal("the answered session was not handed to the pool")
	}
	s.started()
	w, ok := s.take(work{})
	if !ok || len(w.done) != 1 || len(w.frames) != 3 || w.frames[0].typ != protocol.TypeSync {
		t.Fatalf("take after the answer: %v, %d answers, frames %+v", ok, len(w.done), w.frames)
	}
}
