package server

import (
	"sync"
	"sync/atomic"

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
}

// session is the server's state of one connection.
//
// Fields are owned as marked: "loop" fields are touched only by the
// connection's event loop, "worker" fields only by the worker that currently
// drains the inbox (one at a time), the rest are atomic or under mu.
type session struct {
	id  uint64
	srv *Server
	c   gnet.Conn
	ip  string

	bucket tokenBucket // loop

	state    atomic.Int32
	user     atomic.Int64 // set once by the worker on login
	opened   int64        // unix ms, set before the session is shared
	lastSeen atomic.Int64 // unix ms of the last inbound bytes
	queued   atomic.Int64 // bytes handed to AsyncWrite and not yet written
	closed   atomic.Bool
	kicked   atomic.Bool

	username  string // worker
	tokenHash []byte // worker

	mu        sync.Mutex
	inbox     []inbound
	scheduled bool // in the worker pool's queue or being drained
}

// enqueue hands a frame to the worker pool, keeping the connection's order.
// It reports false when the inbox is full. Called on the event loop.
func (s *session) enqueue(f inbound) bool {
	s.mu.Lock()
	if len(s.inbox) >= s.srv.cfg.InboxFrames {
		s.mu.Unlock()
		return false
	}
	s.inbox = append(s.inbox, f)
	schedule := !s.scheduled
	s.scheduled = true
	s.mu.Unlock()
	if schedule {
		s.srv.pool.submit(s)
	}
	return true
}

// take moves the queued frames into buf and returns them; with none queued it
// marks the session unscheduled and returns nil.
func (s *session) take(buf []inbound) []inbound {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inbox) == 0 {
		s.scheduled = false
		return nil
	}
	buf = append(buf[:0], s.inbox...)
	clear(s.inbox)
	s.inbox = s.inbox[:0]
	return buf
}

// write queues bytes to the connection from any goroutine. A client that
// has more than MaxOutbound bytes waiting is kicked instead of growing the
// server's memory. data must not be modified afterwards; it may be shared
// between sessions.
func (s *session) write(data []byte) {
	if len(data) == 0 || s.closed.Load() {
		return
	}
	n := int64(len(data))
	if s.queued.Add(n) > int64(s.srv.cfg.MaxOutbound) {
		s.queued.Add(-n)
		s.kick(protocol.KickSlowConsumer, "outbound queue full")
		return
	}
	err := s.c.AsyncWrite(data, func(c gnet.Conn, err error) error {
		s.queued.Add(-n)
		if err == nil && c.OutboundBuffered() > s.srv.cfg.MaxOutbound {
			s.kick(protocol.KickSlowConsumer, "client is not reading")
		}
		return nil
	})
	if err != nil {
		s.queued.Add(-n)
	}
}

// kick sends a Kick with the reason and closes the connection. Only the first
// kick of a session is sent.
func (s *session) kick(reason protocol.KickReason, msg string) {
	s.kickWith(protocol.Kick{Reason: reason, Message: msg})
}

// kickWith is kick with every field of the Kick frame.
func (s *session) kickWith(k protocol.Kick) {
	if !s.kicked.CompareAndSwap(false, true) {
		return
	}
	s.srv.log.Debug("kick", "session", s.id, "user", s.user.Load(), "reason", k.Reason.String(), "msg", k.Message)
	frame := protocol.MustFrame(protocol.TypeKick, 0, &k)
	err := s.c.AsyncWrite(frame, func(c gnet.Conn, _ error) error {
		return c.Close()
	})
	if err != nil {
		_ = s.c.Close()
	}
}

// authedUser returns the logged-in user, or 0.
func (s *session) authedUser() int64 {
	if s.state.Load() != stateAuthed {
		return 0
	}
	return s.user.Load()
}
