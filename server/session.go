package server

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
)

// Session states. The event loop reads the state for its auth gate; workers
// write it when a login succeeds or fails.
const (
	stateAnonymous int32 = iota // only Register, Login and Ping are allowed
	stateLoggingIn              // a Register or Login is queued; the worker decides
	stateAuthed                 // logged in as session.user
)

// inbound is a frame that passed the event-loop stages: its body is decoded
// into an owned value, so it may cross to a worker.
type inbound struct {
	typ   protocol.Type
	reqID uint32
	body  any
	at    int64 // Unix ns when the event loop decoded it (send→ack latency)
	size  int   // wire size, counted against Config.InboxBytes
}

// session is the server's state of one connection.
//
// Fields are owned as marked: "loop" fields are touched only by the
// connection's event loop, "worker" fields only by the worker that currently
// drains the inbox (one at a time), the rest are atomic or under mu.
//
// Every held connection has one, so its size counts against the memory of
// each (ConnMemoryBound): it fits the allocator's 256-byte class
// (TestSessionSize), and what only some connections need is allocated when
// they need it: the inbox and the answered sends while there are any, the
// Kick state once kicked, the token hash once logged in, the Typing and
// Received state at the first of them.
type session struct {
	id   uint64
	srv  *Server
	c    gnet.Conn
	addr string // the remote address (the client's, from a PROXY header) as the per-address limits key it (addrKey)

	bucket tokenBucket // loop
	nz     *noiseConn  // loop: the Noise state, nil on a plaintext connection

	user     atomic.Int64 // set once by the worker on login
	opened   int64        // unix ms, set before the session is shared
	lastSeen atomic.Int64 // unix ms of the last inbound bytes
	queued   atomic.Int64 // outbound bytes pending or held by gnet, as of the last write or flush
	partial  atomic.Int64 // unix ms when the unfinished frame buffered began, or 0
	state    atomic.Int32
	closed   atomic.Bool
	kicked   atomic.Bool
	mode     uint8 // loop: modeNew, modePlain, modeHandshake, modeSecure (noise.go)
	addrOpen bool  // loop: addr is counted in Server.addrs
	proxied  bool  // loop: from a trusted proxy, its PROXY header not yet read
	tls      bool  // loop: the proxy says the client connected over TLS

	out outbound // bytes waiting for the event loop (outbound.go)

	tokenSeen atomic.Pointer[[sha256.Size]byte] // the hash of the login's token, once logged in

	sig *signals // worker: Typing and Received state (receipts.go), made at the first

	// The inbox and the sends in flight (see work). mu is a leaf lock.
	// inbox and done are nil whenever they are empty and no worker runs
	// the session: an idle connection holds neither.
	mu      sync.Mutex
	inbox   []inbound
	done    []sendResult // sends answered by the store, not yet written
	inBytes int32        // wire bytes of the frames in inbox (≤ 2 × InboxBytes: parked frames count again)
	pending int32        // sends handed to the store and not yet answered (≤ MaxPendingSends)
	inPool  bool         // in the worker pool's channel
	running bool         // a worker is handling the session's work
	parked  bool         // inbox[0] waits for the pending sends
	moving  bool         // the user's slot moved: no more frames are run; a Redirect follows the answers of the sends in flight (cluster.go)
	woken   bool         // under out.mu: a Wake is in flight, the loop will flush (here to fit the size class)
	// inbox[0] waits for the connection's output to drain to outputRoom
	// (waitForOutput): outParked under mu, for the workers, and outWatch
	// under out.mu, for the loop's flush (releaseOutput); outTimer, under
	// out.mu, says a recheck is armed (one at a time). All here, in the
	// padding after woken: the session stays in its size class.
	outParked bool
	outWatch  bool
	outTimer  bool
}

// signals is a connection's Typing and Received state (receipts.go): their
// rate, the last conversation typed in and when it was fanned out, the last
// delivery told. Most connections never send either, so it is made at the
// first.
type signals struct {
	bucket       tokenBucket
	typingConv   string
	typingAt     time.Time
	receivedConv string
	receivedSeq  uint64
}

// signals returns the connection's Typing and Received state. Worker.
func (s *session) signals() *signals {
	if s.sig == nil {
		s.sig = &signals{}
	}
	return s.sig
}

// work is what a worker takes from a session at once: answered sends to
// write, then frames to handle in order.
type work struct {
	done   []sendResult
	frames []inbound
}

func (w *work) reset() {
	clear(w.done)
	clear(w.frames)
	w.done, w.frames = w.done[:0], w.frames[:0]
}

// sendResult is a Send's answer from the store.
type sendResult struct {
	reqID  uint32
	at     int64            // the Send's inbound.at
	stored protocol.Message // Body not kept
	dup    bool
	err    error
}

// runnable reports whether the session has work a worker can do now.
// Called with mu held.
func (s *session) runnable() bool {
	return len(s.done) > 0 || len(s.inbox) > 0 && !s.parked && !s.moving && !s.outParked
}

// schedule queues the session to the worker pool if it has work and is
// neither queued nor running. Called with mu held; the caller submits when
// it returns true, after unlocking.
func (s *session) schedule() bool {
	if s.inPool || s.running || !s.runnable() {
		return false
	}
	s.inPool = true
	return true
}

// enqueue hands a frame to the worker pool, keeping the connection's order.
// It reports false when the inbox is full. Called on the event loop.
func (s *session) enqueue(f inbound) bool {
	s.mu.Lock()
	if len(s.inbox) >= s.srv.cfg.InboxFrames || int(s.inBytes)+f.size > s.srv.cfg.InboxBytes {
		s.mu.Unlock()
		return false
	}
	s.inbox = append(s.inbox, f)
	s.inBytes += int32(f.size)
	submit := s.schedule()
	s.mu.Unlock()
	if submit {
		s.srv.pool.submit(s)
	}
	return true
}

// startMove stops running the session's frames, since its user's slot
// moved to another node, and redirects it there once the answers of its
// sends in flight are written (take), or at once when there are none.
func (s *session) startMove() {
	s.mu.Lock()
	if s.moving {
		s.mu.Unlock()
		return
	}
	s.moving = true
	due := s.moveDue()
	s.mu.Unlock()
	if due {
		s.srv.redirectMoved(s)
	}
}

// moveDue reports whether a moving session has nothing left to answer: no
// send in flight, none answered and unwritten, no worker holding any.
// Called with mu held.
func (s *session) moveDue() bool {
	return s.moving && s.pending == 0 && len(s.done) == 0 && !s.running && !s.inPool
}

// started marks the session taken from the pool's channel by a worker.
func (s *session) started() {
	s.mu.Lock()
	s.inPool, s.running = false, true
	s.mu.Unlock()
}

// take moves the session's work into w: answered sends, and the queued
// frames unless they wait for sends or the session is moving. With nothing
// to do it marks the session not running and reports false; a moving
// session whose sends are all answered and written is redirected then.
func (s *session) take(w work) (work, bool) {
	s.mu.Lock()
	if !s.runnable() {
		s.idleLocked()
		return w, false
	}
	defer s.mu.Unlock()
	w.done = append(w.done, s.done...)
	clear(s.done)
	s.done = s.done[:0]
	if !s.parked && !s.moving && !s.outParked {
		w.frames = append(w.frames, s.inbox...)
		clear(s.inbox)
		s.inbox = s.inbox[:0]
		s.inBytes = 0
	}
	return w, true
}

// reserveSend counts a Send handed to the store; it reports false when max
// are already in flight.
func (s *session) reserveSend(max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(s.pending) >= max {
		return false
	}
	s.pending++
	return true
}

// idleLocked marks the session not running once it has nothing a worker
// can do, and unlocks mu. The session goes idle: it keeps no buffers (see
// session); a moving session whose sends are all answered and written is
// redirected.
func (s *session) idleLocked() {
	s.running = false
	if len(s.inbox) == 0 {
		s.inbox = nil
	}
	if len(s.done) == 0 {
		s.done = nil
	}
	due := s.moveDue()
	s.mu.Unlock()
	if due {
		s.srv.redirectMoved(s)
	}
}

// sendDone answers a Send. Called by the store's committing goroutine (or
// inline by AppendAsync): it never blocks. When no worker holds the
// session it writes the SendAck itself, holding the session as a worker
// would (running), so no hand-off to a worker lies between the commit and
// the answer; otherwise it records the answer for the worker, which writes
// it before the next frames. The last pending send answered lets the
// parked frames run, after their SendAck (docs/protocol.md, Ordering).
func (s *session) sendDone(r sendResult) {
	s.mu.Lock()
	if !s.running && !s.inPool && len(s.done) == 0 {
		s.running = true
		s.mu.Unlock()
		b := s.srv.appendSendResult(outBuf(sendAckMax), &r)
		s.write(b) // write copies the frame
		putOutBuf(b)
		s.mu.Lock()
		s.answered()
		if s.runnable() {
			s.running = false
			submit := s.schedule()
			s.mu.Unlock()
			if submit {
				s.srv.pool.submit(s)
			}
			return
		}
		s.idleLocked()
		return
	}
	s.done = append(s.done, r)
	s.answered()
	submit := s.schedule()
	s.mu.Unlock()
	if submit {
		s.srv.pool.submit(s)
	}
}

// answered counts a Send answered; with none left pending the parked
// frames may run. Called with mu held.
func (s *session) answered() {
	s.pending--
	if s.pending == 0 {
		s.parked = false
	}
}

// waitForSends parks rest (the frames from one that must observe the
// connection's earlier sends) until the sends in flight are answered; it
// reports false, parking nothing, when none are. rest is copied.
func (s *session) waitForSends(rest []inbound) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == 0 {
		return false
	}
	s.inbox = append(append(make([]inbound, 0, len(rest)+len(s.inbox)), rest...), s.inbox...)
	for _, f := range rest {
		s.inBytes += int32(f.size) // they count against InboxBytes again while they wait
	}
	s.parked = true
	return true
}

// outputRoom is how much of a connection's output may wait (queued for its
// loop or held by gnet for the socket) when a worker runs its next frame:
// with at most that much waiting, the frame's reply (at most maxReply) fits
// under MaxOutbound, so a client that pipelines requests for large pages
// and reads is not kicked SLOW_CONSUMER for it.
func (s *session) outputRoom() int {
	// Half of MaxOutbound at least: with a MaxOutbound of 1 MiB or less a
	// page may not fit beside it, but the frames do not each wait for a
	// flush.
	return max(s.srv.cfg.MaxOutbound-maxReply, s.srv.cfg.MaxOutbound/2)
}

// waitForOutput parks rest (the frames from one that is not a Send) while
// more than outputRoom of the connection's output waits, counting held, the
// replies the worker has made and not yet written; it reports false,
// parking nothing, when there is room. The loop lets the frames run again
// once its flushes have brought the output down (releaseOutput). rest is
// copied.
func (s *session) waitForOutput(rest []inbound, held int) bool {
	s.out.mu.Lock()
	waiting := len(s.out.pending)
	s.out.mu.Unlock()
	if waiting+held+int(s.queued.Load()) <= s.outputRoom() {
		return false
	}
	s.mu.Lock()
	s.inbox = append(append(make([]inbound, 0, len(rest)+len(s.inbox)), rest...), s.inbox...)
	for _, f := range rest {
		s.inBytes += int32(f.size) // they count against InboxBytes again while they wait
	}
	s.outParked = true
	s.mu.Unlock()
	// Parked first, watched second: a flush that sees the watch finds the
	// frames parked. The loop looks after its next flush, also when
	// nothing new is written (the bytes waiting may all be gnet's).
	s.out.mu.Lock()
	s.outWatch = true
	s.out.mu.Unlock()
	s.flushSoon()
	return true
}

// releaseOutput runs on the loop after a flush that found outWatch set
// (and cleared it): once what waits is within outputRoom the parked frames
// run again; until then the loop flushes the session again every
// outputRecheck, which also notices gnet's buffer draining to the socket.
// buffered is gnet's OutboundBuffered.
func (s *session) releaseOutput(buffered int) {
	s.out.mu.Lock()
	if len(s.out.pending)+buffered > s.outputRoom() {
		s.outWatch = true
		// One recheck at a time: every flush comes here (a Ping's, a
		// push's), and a timer each would multiply.
		arm := !s.outTimer
		s.outTimer = true
		s.out.mu.Unlock()
		if arm {
			time.AfterFunc(outputRecheck, s.recheckOutput)
		}
		return
	}
	s.out.mu.Unlock()
	s.mu.Lock()
	s.outParked = false
	submit := s.schedule()
	s.mu.Unlock()
	if submit {
		s.srv.pool.submit(s)
	}
}

// recheckOutput is releaseOutput's timer: it has the loop flush the
// session again, unless the connection or the server has gone meanwhile.
func (s *session) recheckOutput() {
	s.out.mu.Lock()
	s.outTimer = false
	s.out.mu.Unlock()
	if !s.gone() && !s.srv.stopping.Load() {
		s.flushSoon()
	}
}

// outputRecheck is how often the loop looks again at a connection whose
// frames wait for its output to drain.
const outputRecheck = 10 * time.Millisecond

// token returns the hash of the token the session logged in with, or nil.
func (s *session) token() []byte {
	if p := s.tokenSeen.Load(); p != nil {
		return p[:]
	}
	return nil
}

// authedUser returns the logged-in user, or 0.
func (s *session) authedUser() int64 {
	if s.state.Load() != stateAuthed {
		return 0
	}
	return s.user.Load()
}
