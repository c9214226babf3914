package server

import (
	"log/slog"
	"sync"
	"testing"
	"unsafe"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
)

// TestParkedFramesWaitForSends: frames parked behind a Send in flight go
// back to the head of the inbox, still counted against the inbox's bytes,
// and are not handed to a worker until the Send is answered.
func TestParkedFramesWaitForSends(t *testing.T) {
	p := &workerPool{} // no workers: the test takes what is submitted
	p.ready.L = &p.mu
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
	if p.queued() != 1 || p.next() != s {
		t.Fatal("the answered session was not handed to the pool")
	}
	s.started()
	w, ok := s.take(work{})
	if !ok || len(w.done) != 1 || len(w.frames) != 3 || w.frames[0].typ != protocol.TypeSync {
		t.Fatalf("take after the answer: %v, %d answers, frames %+v", ok, len(w.done), w.frames)
	}
}

// TestPoolNeverBlocksSubmit: the pool takes any number of sessions without
// a worker free, in order, and stop lets the workers finish them.
func TestPoolNeverBlocksSubmit(t *testing.T) {
	var mu sync.Mutex
	var order []*session
	release := make(chan struct{})
	p := newWorkerPool(1, func(s *session, _ work) {
		<-release
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	})
	srv := &Server{pool: p}
	const n = 5000
	sessions := make([]*session, n)
	for i := range sessions {
		sessions[i] = &session{srv: srv}
		sessions[i].done = []sendResult{{}}
		sessions[i].inPool = true
		p.submit(sessions[i]) // one worker, stuck on the first: must not block
	}
	if q := p.queued(); q < n-1 {
		t.Fatalf("%d queued, want at least %d", q, n-1)
	}
	close(release)
	p.stop()
	if len(order) != n {
		t.Fatalf("%d sessions drained, want %d", len(order), n)
	}
	for i, s := range order {
		if s != sessions[i] {
			t.Fatalf("session %d drained out of order", i)
		}
	}
	p.submit(&session{srv: srv}) // after stop: dropped, no panic
}

// TestSessionSize holds the session, which every connection has, to the
// allocator's 256-byte size class: a field more moves every connection to
// the next class (288 bytes). Move what idle connections do not need out
// of line instead (see session).
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 256 {
		t.Fatalf("session is %d bytes, want at most 256", n)
	}
}

// wakeConn is a connection that only counts Wakes.
type wakeConn struct {
	gnet.Conn
	wakes int
}

func (c *wakeConn) Wake(gnet.AsyncCallback) error { c.wakes++; return nil }

// TestMovingSessionAnswersItsSendsFirst: a session whose slot moved runs
// no more frames, and gets its last frame only once the Sends in flight
// are answered and their answers taken by a worker (so they are written
// before it).
func TestMovingSessionAnswersItsSendsFirst(t *testing.T) {
	p := &workerPool{} // no workers: the test takes what is submitted
	p.ready.L = &p.mu
	c := &wakeConn{}
	s := &session{srv: &Server{pool: p, log: slog.New(slog.DiscardHandler)}, c: c}
	s.pending = 1
	s.inbox = []inbound{{typ: protocol.TypeHistory, size: 7}}
	s.startMove()
	if s.kicked.Load() || p.queued() != 0 {
		t.Fatalf("moved with a Send in flight (kicked %v, queued %d)", s.kicked.Load(), p.queued())
	}
	s.sendDone(sendResult{reqID: 1})
	if s.kicked.Load() || p.queued() != 1 || p.next() != s {
		t.Fatal("the answer was not handed to a worker before the move")
	}
	s.started()
	w, ok := s.take(work{})
	if !ok || len(w.done) != 1 || len(w.frames) != 0 || s.kicked.Load() {
		t.Fatalf("take: %v, %d answers, %d frames, kicked %v; want the answer only", ok, len(w.done), len(w.frames), s.kicked.Load())
	}
	if _, ok := s.take(work{}); ok || !s.kicked.Load() || c.wakes != 1 {
		t.Fatalf("after the answer: more work %v, kicked %v, wakes %d; want the last frame queued", ok, s.kicked.Load(), c.wakes)
	}
	if len(s.inbox) != 1 {
		t.Fatalf("inbox %+v: the frame that came after the move must not run", s.inbox)
	}

	// With nothing in flight the last frame is queued at once.
	idle := &session{srv: s.srv, c: &wakeConn{}}
	idle.startMove()
	if !idle.kicked.Load() {
		t.Fatal("an idle session was not moved at once")
	}
}
