package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// outbound is a connection's queue of bytes waiting for its event loop.
//
// Every byte the server sends a client passes here: replies and pushes
// written by workers and delivery (session.write), the event loop's own
// replies (Pong and the errors of the loop stages, handed to flush), and
// the Kick. Writers append to pending and wake the loop once; the loop
// takes everything pending in its next turn and writes it, with that turn's
// own replies, in one writev: a member of a busy group gets every push that
// piled up since the last turn in one syscall.
//
// The bound: pending alone never passes Config.MaxOutbound, and at every
// flush pending plus what gnet still holds for the socket
// (OutboundBuffered) stays within it too; past it the connection is kicked
// SLOW_CONSUMER, its pending frames are dropped (they are whole frames, so
// the stream stays parseable) and the Kick goes after what gnet already
// holds. A kicked connection takes no more frames; it is closed once the
// Kick is written, or after Config.KickLinger if the client does not read.
type outbound struct {
	mu      sync.Mutex // also guards session.woken
	pending []byte
	kick    *kickState // set once a Kick is queued, and then nothing more is taken; nil until then
}

// kickState is the state of a connection that waits for its Kick to be
// written. Only kicked connections need it, so it is not part of every
// session.
type kickState struct {
	frame  []byte // the Kick frame, not yet handed to gnet
	linger int64  // unix ms after which the connection is closed unread
}

// write queues bytes to the connection from any goroutine; the event loop
// writes them in its next turn. A client with more than MaxOutbound bytes
// waiting is kicked SLOW_CONSUMER instead of growing the server's memory.
// data is copied; the caller may reuse it.
func (s *session) write(data []byte) {
	if len(data) == 0 {
		return
	}
	s.writeWith(data, nil)
}

// writeWith is write that also runs with, if not nil, under the outbound
// lock in the same step as data is queued (even when data is dropped): no
// flush comes between the two, and whatever another goroutine writes after
// with's effect leaves behind data. A login joins the hub this way, so
// that no push misses a device whose LoginOK has left and none overtakes
// the LoginOK. with must not take a session's locks or a hub sessions
// shard lock (server.go, Lock order).
func (s *session) writeWith(data []byte, with func()) {
	o := &s.out
	o.mu.Lock()
	if with != nil {
		with()
	}
	if len(data) == 0 || o.kick != nil || s.closed.Load() {
		o.mu.Unlock()
		return
	}
	if len(o.pending)+len(data) > s.srv.cfg.MaxOutbound {
		s.slowLocked("outbound queue full")
		o.mu.Unlock()
		s.wake()
		return
	}
	if o.pending == nil {
		o.pending = outBuf(len(data))
	}
	o.pending = append(o.pending, data...)
	wake := !s.woken
	s.woken = true
	o.mu.Unlock()
	if wake {
		s.flushSoon()
	}
}

// flushSoon puts the session on its event loop's flush list (loopFlush):
// the loop writes every session on the list in one task, so a fan-out to
// the thousand members of a group costs each loop one wakeup, not one per
// connection. Called once per write that finds the session not yet
// woken (session.woken, under out.mu), so a session is on the list at
// most once between two flushes, but for the moment after OnTraffic
// flushed it while it was listed (the second flush finds nothing or what
// came since).
func (s *session) flushSoon() {
	s.srv.flushers.of(s.srv, s.c.EventLoop()).add(s)
}

// loopFlushers finds the flush list of an event loop. The loops are fixed
// once the engine runs; the list of them is copied on the rare change and
// read without a lock.
type loopFlushers struct {
	mu  sync.Mutex // serialises additions to all
	all atomic.Pointer[[]*loopFlush]
}

func (f *loopFlushers) of(srv *Server, el gnet.EventLoop) *loopFlush {
	if all := f.all.Load(); all != nil {
		for _, q := range *all {
			if q.loop == el {
				return q
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*loopFlush
	if p := f.all.Load(); p != nil {
		for _, q := range *p {
			if q.loop == el {
				return q
			}
		}
		all = append(all, *p...)
	}
	q := &loopFlush{srv: srv, loop: el}
	all = append(all, q)
	f.all.Store(&all)
	return q
}

// loopFlush is one event loop's list of sessions with bytes pending.
// Writers on any goroutine add a session; the first addition after a run
// hands the loop one task (gnet's EventLoop.Execute), which flushes every
// session listed, in the order they were added, each in one writev.
type loopFlush struct {
	srv  *Server
	loop gnet.EventLoop

	mu    sync.Mutex
	ready []*session // waiting for the loop's next run
	armed bool       // a task is handed to the loop and has not yet taken ready
	spare []*session // loop: the list of the last run, emptied, to swap in
}

func (q *loopFlush) add(s *session) {
	q.mu.Lock()
	q.ready = append(q.ready, s)
	arm := !q.armed
	q.armed = true
	q.mu.Unlock()
	if !arm {
		return
	}
	if err := q.loop.Execute(context.Background(), q); err != nil {
		// The loop is gone (engine stopping); nothing will be written.
		q.srv.log.Debug("flush task refused", "err", err)
		q.mu.Lock()
		q.armed = false
		q.mu.Unlock()
	}
}

// Run implements gnet.Runnable, on the loop: it flushes every session
// listed. A session closed since it was listed is skipped (OnClose runs on
// this loop, so closed cannot change under it); one whose Kick is written
// is closed here, as OnTraffic's flush would.
func (q *loopFlush) Run(context.Context) error {
	q.mu.Lock()
	batch := q.ready
	q.ready, q.spare = q.spare, nil
	q.armed = false
	q.mu.Unlock()
	for i, ss := range batch {
		batch[i] = nil
		if ss.closed.Load() {
			continue
		}
		if q.srv.flush(ss, ss.c, nil) == gnet.Close {
			_ = q.loop.Close(ss.c)
		}
	}
	q.mu.Lock()
	if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
	return nil
}

// outBufs recycles the pending buffers of flushed connections, so that a
// busy group's fan-out does not allocate every member's buffer anew for
// every flush (the allocation profile at 300k deliveries/s: 92 % of the
// server's allocated bytes). An idle connection holds none.
var outBufs sync.Pool // *[]byte, empty, capacity up to maxKeptOutBuf

// maxKeptOutBuf: a larger buffer is not kept.
const maxKeptOutBuf = 64 << 10

// sendAckMax is about the largest SendAck frame: a buffer of it encodes
// one without growing.
const sendAckMax = 128

// outBuf returns an empty buffer for at least n bytes.
func outBuf(n int) []byte {
	if p, ok := outBufs.Get().(*[]byte); ok && cap(*p) >= n {
		return *p
	}
	return make([]byte, 0, max(n, 2<<10))
}

func putOutBuf(b []byte) {
	if cap(b) <= maxKeptOutBuf {
		b = b[:0]
		outBufs.Put(&b)
	}
}

// wake asks the connection's event loop to run OnTraffic, which flushes.
func (s *session) wake() {
	if err := s.c.Wake(nil); err != nil {
		// The loop is gone (engine stopping); nothing will be written.
		s.srv.log.Debug("wake failed", "session", s.id, "err", err)
	}
}

// kick sends a Kick with the reason and closes the connection once it is
// written. Only the first kick of a session is sent; what was queued before
// it is written first.
func (s *session) kick(reason protocol.KickReason, msg string) {
	s.kickWith(protocol.Kick{Reason: reason, Message: msg})
}

// kickWith is kick with every field of the Kick frame.
func (s *session) kickWith(k protocol.Kick) {
	s.last(protocol.MustFrame(protocol.TypeKick, 0, &k), "kick", k.Reason.String(), k.Message)
}

// last queues frame as the connection's last, a Kick or a Redirect, and
// closes the connection once it is written, as a kick does. Only the first
// last frame of a session is sent.
func (s *session) last(frame []byte, what, reason, msg string) {
	o := &s.out
	o.mu.Lock()
	if !s.lastLocked(frame, false, what, reason, msg) {
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	s.wake()
}

// kickLocked queues the Kick; drop discards the frames pending before it.
// It reports false if the session was kicked already. o.mu is held.
func (s *session) kickLocked(k protocol.Kick, drop bool) bool {
	return s.lastLocked(protocol.MustFrame(protocol.TypeKick, 0, &k), drop, "kick", k.Reason.String(), k.Message)
}

// lastLocked is kickLocked for any last frame. o.mu is held.
func (s *session) lastLocked(frame []byte, drop bool, what, reason, msg string) bool {
	if !s.kicked.CompareAndSwap(false, true) {
		return false
	}
	o := &s.out
	s.srv.log.Debug(what, "session", s.id, "user", s.user.Load(), "reason", reason, "msg", msg)
	o.kick = &kickState{
		frame:  frame,
		linger: time.Now().Add(s.srv.cfg.KickLinger).UnixMilli(),
	}
	if drop {
		o.pending = nil
	}
	s.woken = true
	return true
}

// slowLocked kicks a client that does not read. o.mu is held.
func (s *session) slowLocked(msg string) {
	s.kickLocked(protocol.Kick{Reason: protocol.KickSlowConsumer, Message: msg}, true)
}

// gone reports whether the connection has closed or is being closed (a
// Kick): its frames are not run and its hashes not computed.
func (s *session) gone() bool { return s.closed.Load() || s.kicked.Load() }

// closingNow reports whether the connection waits for its Kick to be read.
func (s *session) closingNow() bool {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	return s.out.kick != nil
}

// flush runs on the event loop: it writes what is pending, then the loop's
// own replies (out), then a queued Kick, in one writev, and says whether
// to close the connection now.
func (s *Server) flush(ss *session, c gnet.Conn, out []byte) gnet.Action {
	o := &ss.out
	o.mu.Lock()
	if o.kick == nil && c.OutboundBuffered()+len(o.pending)+len(out) > s.cfg.MaxOutbound {
		ss.slowLocked("client is not reading")
	}
	if o.kick != nil {
		out = nil // the loop's replies come too late
	}
	pending := o.pending
	o.pending, ss.woken = nil, false
	watch := ss.outWatch
	ss.outWatch = false
	var kick []byte
	var linger int64
	if k := o.kick; k != nil {
		kick, linger = k.frame, k.linger
		k.frame = nil
	}
	closing := o.kick != nil
	o.mu.Unlock()

	s.m.framesOutOf(pending)
	s.m.framesOutOf(out)
	s.m.framesOutOf(kick)
	recycle := pending
	if ss.mode == modeSecure && len(pending)+len(out)+len(kick) > 0 {
		// Sealed on the loop, in the order written: the nonces follow
		// the stream.
		scratch := sealBufs.Get().(*[]byte)
		*scratch = s.sealInto((*scratch)[:0], ss.nz, pending, out, kick)
		_, _ = c.Write(*scratch) // gnet copies what the socket does not take
		putSealBuf(scratch)
		pending, out, kick = nil, nil, nil
	}
	n, one := 0, []byte(nil)
	for _, b := range [...][]byte{pending, out, kick} {
		if len(b) > 0 {
			n, one = n+1, b
		}
	}
	switch n {
	case 0:
	case 1:
		// The usual case (a member's pushes): no vector, which would
		// escape to the heap through the interface call.
		_, _ = c.Write(one)
	default:
		bufs := make([][]byte, 0, 3)
		for _, b := range [...][]byte{pending, out, kick} {
			if len(b) > 0 {
				bufs = append(bufs, b)
			}
		}
		_, _ = c.Writev(bufs)
	}
	if recycle != nil {
		putOutBuf(recycle) // written or sealed; gnet copied what the socket did not take
	}
	ss.queued.Store(int64(c.OutboundBuffered()))
	if watch && !closing {
		ss.releaseOutput(c.OutboundBuffered())
	}
	if closing && (c.OutboundBuffered() == 0 || time.Now().UnixMilli() >= linger) {
		return gnet.Close
	}
	return gnet.None
}

// ConnMemoryBound is the most memory one connection can make the server
// hold, in bytes, under this configuration:
//
//   - inbound: an unfinished frame (MaxFrame) and gnet's read chunk (64 KiB);
//   - inbox: InboxBytes of frames waiting for a worker, and as much again
//     taken by the worker that runs them;
//   - the worker's replies not yet written: under replyChunk and one reply
//     (maxReply) (drain);
//   - outbound: MaxOutbound pending and MaxOutbound held by gnet for the
//     socket (a flush past MaxOutbound in all kicks instead of writing, so
//     both are full only for the moment before a kick);
//   - the session, its hub entries and gnet's connection: about 2 KiB;
//   - encryption: the tags sealing adds to what gnet holds (16 bytes per
//     frame of at least PrefixSize bytes), and the Noise state: a
//     handshake in progress (HandshakeState and its copy of the client's
//     message, under 1 KiB beyond MaxFrame) or two CipherStates (~300
//     bytes). docs/server.md has the measured figure per idle encrypted
//     connection.
//
// Each part is enforced where its bytes arrive: the frame decoder
// (MaxFrame), enqueue (InboxBytes, else BUSY), write and flush
// (MaxOutbound, else Kick SLOW_CONSUMER).
func (s *Server) ConnMemoryBound() int {
	tags := 2 * s.cfg.MaxOutbound / protocol.PrefixSize * secure.TagSize
	return secure.MaxSealed(s.cfg.MaxFrame) + 64<<10 + 2*s.cfg.InboxBytes + replyChunk + maxReply + 2*s.cfg.MaxOutbound + 2<<10 + tags + 1<<10
}
