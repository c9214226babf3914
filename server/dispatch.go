package server

import (
	"time"

	"github.com/parleyim/parley/protocol"
)

// drain is the worker half of the pipeline: it writes the answers of the
// session's sends that the store completed, then handles its queued frames
// in order, and writes all the replies in one batch.
//
// A Send does not wait for its commit (handleSend): the next frames run at
// once. Any other frame observes the connection's earlier Sends: if some are
// still in flight, it and the frames after it are parked on the session and
// the worker moves on; the last Send answered puts the session back in the
// pool (session.sendDone).
func (s *Server) drain(ss *session, w work) {
	if len(w.frames) == 1 {
		if p, ok := w.frames[0].body.(probe); ok {
			p <- struct{}{} // a health probe made it through the pool
			return
		}
	}
	var out []byte
	for i := range w.done {
		out = s.appendSendResult(out, &w.done[i])
	}
	for i, f := range w.frames {
		if ss.gone() {
			// The connection is gone or going: its frames are dropped,
			// not run (a flood's queued logins would still cost hashes).
			break
		}
		if f.typ != protocol.TypeSend {
			if ss.waitForSends(w.frames[i:]) {
				break
			}
			// The Sends answered while this worker ran go first: the
			// frame observes them (docs/protocol.md, Ordering).
			out = s.appendAnswered(ss, out)
			if ss.waitForOutput(w.frames[i:], len(out)) {
				break
			}
		}
		n := len(out)
		out = s.dispatch(ss, f, out)
		if s.m != nil && len(out) > n {
			s.m.handled(f, out[n:])
		}
		if len(out) >= replyChunk {
			// The worker holds at most this and one reply: a pipeline
			// of large answers goes out as it is made, counted against
			// MaxOutbound frame by frame, not held whole.
			ss.write(out)
			out = out[:0]
		}
	}
	ss.write(out)
}

// replyChunk is how much of its replies a worker holds before it writes
// them out.
const replyChunk = 64 << 10

// appendAnswered appends the answers of the session's Sends that the store
// completed while a worker held it (session.done), which take would hand
// to the next round of work.
func (s *Server) appendAnswered(ss *session, out []byte) []byte {
	ss.mu.Lock()
	if len(ss.done) == 0 {
		ss.mu.Unlock()
		return out
	}
	done := ss.done
	ss.done = nil // mu is a leaf lock: the answers are written after it
	ss.mu.Unlock()
	for i := range done {
		out = s.appendSendResult(out, &done[i])
	}
	return out
}

// appendSendResult appends a Send's answer: SendAck, or the Error.
func (s *Server) appendSendResult(out []byte, r *sendResult) []byte {
	s.m.sendAnswered(r.at)
	if r.err != nil {
		return s.fail(out, r.reqID, protocol.TypeSend, r.err)
	}
	if r.reqID == 0 {
		return out // as appendReply
	}
	out, _ = protocol.AppendSendAck(out, r.reqID, protocol.SendAck{
		MsgID:      r.stored.MsgID,
		Conv:       r.stored.Conv,
		Seq:        r.stored.Seq,
		ServerTime: r.stored.ServerTime,
		Duplicate:  r.dup,
	})
	return out
}

// dispatch re-checks the auth gate in the connection's order and runs the
// frame type's handler from the table, appending its reply to out.
func (s *Server) dispatch(ss *session, f inbound, out []byte) []byte {
	h := handlers[f.typ]
	if h == nil {
		return appendError(out, f.reqID, protocol.CodeUnknownType, "no handler for "+f.typ.String())
	}
	authed := ss.state.Load() == stateAuthed
	c := &call{ss: ss, reqID: f.reqID, at: f.at}
	switch {
	case h.auth == anonymous && authed:
		return appendError(out, f.reqID, protocol.CodeAlreadyLogged, "already logged in")
	case h.auth == loggedIn && !authed:
		return appendError(out, f.reqID, protocol.CodeNotLoggedIn, f.typ.String()+" needs a login")
	case h.auth == loggedIn:
		c.user = ss.user.Load()
	}
	now := time.Now()
	s.m.frameWaited(f.at, now)
	c.rc.deadline = now.Add(s.cfg.RequestTimeout)
	c.ctx = &c.rc
	reply, err := h.run(s, c, f.body)
	if !c.kept {
		c.rc.cancel()
	}
	if h.auth == anonymous {
		// A login that did not log in lets the connection try again.
		ss.state.CompareAndSwap(stateLoggingIn, stateAnonymous)
	}
	start := len(out)
	out = s.respond(out, h, f.reqID, reply, err)
	if c.with != nil || c.then != nil {
		if s.m != nil {
			s.m.handled(f, out[start:])
		}
		ss.writeWith(out, c.with)
		if c.then != nil {
			c.then()
		}
		return nil
	}
	return out
}

// limit clamps a client's page size.
func (s *Server) limit(n uint32) int {
	switch {
	case n == 0:
		return s.cfg.SyncLimit
	case int(n) > s.cfg.MaxSyncLimit:
		return s.cfg.MaxSyncLimit
	}
	return int(n)
}
