package server

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
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
	s := &session{srv: &Server{pool: p, cfg: Config{MaxOutbound: 1 << 20}}}
	s.woken = true // no loop: what is written stays pending
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
	// The session was idle: sendDone wrote the SendAck itself.
	if !ok || len(w.done) != 0 || len(w.frames) != 3 || w.frames[0].typ != protocol.TypeSync {
		t.Fatalf("take after the answer: %v, %d answers, frames %+v", ok, len(w.done), w.frames)
	}
	if hs := pendingFrames(t, s); len(hs) != 1 || hs[0].Type != protocol.TypeSendAck {
		t.Fatalf("queued before the parked frames ran: %+v, want the SendAck", hs)
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
// are answered and their answers written (so they go before it): by
// sendDone itself when no worker holds the session, or by the worker that
// does.
func TestMovingSessionAnswersItsSendsFirst(t *testing.T) {
	p := &workerPool{} // no workers: the test takes what is submitted
	p.ready.L = &p.mu
	c := &wakeConn{}
	srv := &Server{pool: p, log: slog.New(slog.DiscardHandler), cfg: Config{MaxOutbound: 1 << 20}}
	s := &session{srv: srv, c: c}
	s.woken = true // no loop: what is written stays pending
	s.pending = 2
	s.inbox = []inbound{{typ: protocol.TypeHistory, size: 7}}
	s.startMove()
	if s.kicked.Load() || p.queued() != 0 {
		t.Fatalf("moved with a Send in flight (kicked %v, queued %d)", s.kicked.Load(), p.queued())
	}
	// Answered while a worker holds the session: the worker writes it.
	s.started()
	s.sendDone(sendResult{reqID: 1})
	if s.kicked.Load() || len(s.done) != 1 {
		t.Fatalf("kicked %v, %d answers waiting; want the answer left to the worker", s.kicked.Load(), len(s.done))
	}
	w, ok := s.take(work{})
	if !ok || len(w.done) != 1 || len(w.frames) != 0 || s.kicked.Load() {
		t.Fatalf("take: %v, %d answers, %d frames, kicked %v; want the answer only", ok, len(w.done), len(w.frames), s.kicked.Load())
	}
	if _, ok := s.take(work{}); ok || s.kicked.Load() {
		t.Fatalf("more work %v, kicked %v with a Send still in flight", ok, s.kicked.Load())
	}
	// The last answer, with the session idle: written at once, then the
	// last frame.
	s.sendDone(sendResult{reqID: 2})
	if hs := pendingFrames(t, s); len(hs) != 1 || hs[0].Type != protocol.TypeSendAck || hs[0].RequestID != 2 {
		t.Fatalf("queued: %+v, want the SendAck of request 2", hs)
	}
	if !s.kicked.Load() || c.wakes != 1 || p.queued() != 0 {
		t.Fatalf("after the last answer: kicked %v, wakes %d, %d queued; want the last frame queued", s.kicked.Load(), c.wakes, p.queued())
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

// TestIdleSessionAnswersItsSendAtOnce: a Send answered while no worker
// holds its session has its SendAck queued for the loop by sendDone
// itself, with no worker hand-off; frames parked behind it are handed to
// a worker only after it is queued; while a worker holds the session the
// answer waits for that worker, which writes it before the next frames.
func TestIdleSessionAnswersItsSendAtOnce(t *testing.T) {
	p := &workerPool{} // no workers: the test takes what is submitted
	p.ready.L = &p.mu
	s := &session{srv: &Server{pool: p, cfg: Config{MaxOutbound: 1 << 20}}}
	s.woken = true // no loop: what is written stays pending
	s.pending = 2
	s.sendDone(sendResult{reqID: 1, stored: protocol.Message{MsgID: 5, Conv: "d:1:2", Seq: 9}})
	hs := pendingFrames(t, s)
	if len(hs) != 1 || hs[0].Type != protocol.TypeSendAck || hs[0].RequestID != 1 {
		t.Fatalf("queued after the answer of an idle session: %+v, want its SendAck", hs)
	}
	if p.queued() != 0 || s.running || s.pending != 1 {
		t.Fatalf("after the answer: %d sessions queued, running %v, %d pending; want 0, false, 1", p.queued(), s.running, s.pending)
	}

	// A frame parked behind the last Send runs after its SendAck.
	if !s.waitForSends([]inbound{{typ: protocol.TypeSync, size: 10}}) {
		t.Fatal("not parked with a Send in flight")
	}
	s.sendDone(sendResult{reqID: 2})
	if hs := pendingFrames(t, s); len(hs) != 2 || hs[1].RequestID != 2 {
		t.Fatalf("queued: %+v, want the second SendAck", hs)
	}
	if p.queued() != 1 || p.next() != s || s.parked {
		t.Fatal("the parked Sync was not handed to a worker after the SendAck")
	}

	// A worker holds the session: the answer is its to write.
	s.started()
	s.pending = 1
	s.sendDone(sendResult{reqID: 3})
	if hs := pendingFrames(t, s); len(hs) != 2 || len(s.done) != 1 {
		t.Fatalf("with a worker running: %d frames queued, %d answers for it; want 2, 1", len(hs), len(s.done))
	}
}

// TestAnsweredSendsGoBeforeTheNextFrame: a Send answered while a worker
// holds its session leaves its SendAck with the session (done); the
// worker's next frame, which observes the connection's earlier Sends,
// answers after that SendAck, not before it.
func TestAnsweredSendsGoBeforeTheNextFrame(t *testing.T) {
	p := &workerPool{} // no workers: the test takes what is submitted
	p.ready.L = &p.mu
	srv := &Server{pool: p, log: slog.New(slog.DiscardHandler), cfg: Config{MaxOutbound: 1 << 20, RequestTimeout: time.Second}}
	s := &session{srv: srv, c: &wakeConn{}}
	s.woken = true // no loop: what is written stays pending
	s.pending = 1
	s.started()
	s.sendDone(sendResult{reqID: 1}) // the worker holds the session: left in done
	if len(s.done) != 1 || s.pending != 0 {
		t.Fatalf("%d answers waiting, %d pending", len(s.done), s.pending)
	}
	// The worker's next frame (a Sync before login: answered NOT_LOGGED_IN).
	srv.drain(s, work{frames: []inbound{{typ: protocol.TypeSync, reqID: 2, body: &protocol.Sync{}}}})
	hs := pendingFrames(t, s)
	if len(hs) != 2 || hs[0].Type != protocol.TypeSendAck || hs[0].RequestID != 1 || hs[1].RequestID != 2 {
		t.Fatalf("written: %+v; want the SendAck of request 1, then the answer to request 2", hs)
	}
}

// countLoop is an event loop that takes tasks and runs none.
type countLoop struct{ gnet.EventLoop }

func (*countLoop) Execute(context.Context, gnet.Runnable) error { return nil }

// loopConn is a connection on a given loop.
type loopConn struct {
	gnet.Conn
	el gnet.EventLoop
}

func (c *loopConn) EventLoop() gnet.EventLoop { return c.el }

// TestOutputRecheckOneTimer: while a session's frames wait for its output
// to drain, every flush (a Ping's, a push's) asks to look again; one timer
// at a time does, so the flushes a client provokes do not multiply them.
func TestOutputRecheckOneTimer(t *testing.T) {
	p := &workerPool{}
	p.ready.L = &p.mu
	el := &countLoop{}
	srv := &Server{pool: p, log: slog.New(slog.DiscardHandler), cfg: Config{MaxOutbound: 1 << 20}}
	s := &session{srv: srv, c: &loopConn{el: el}}
	s.outParked = true
	for range 50 { // fifty flushes while the output still waits
		s.out.mu.Lock()
		s.outWatch = false // flush clears it before releaseOutput
		s.out.mu.Unlock()
		s.releaseOutput(1 << 20)
	}
	time.Sleep(5 * outputRecheck)
	q := srv.flushers.of(srv, el)
	q.mu.Lock()
	n := len(q.ready)
	q.mu.Unlock()
	if n != 1 {
		t.Fatalf("the session was listed for %d flushes by the rechecks; want 1", n)
	}
	if !s.outWatch || !s.outParked {
		t.Fatalf("watch %v, parked %v: the frames must still wait", s.outWatch, s.outParked)
	}
}
