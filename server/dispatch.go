package server

import (
	"context"

	"github.com/parleyim/parley/protocol"
)

// drain is the worker half of the pipeline: it handles a session's queued
// frames in order and writes their replies in one batch.
func (s *Server) drain(ss *session, frames []inbound) {
	var out []byte
	for _, f := range frames {
		out = s.dispatch(ss, f, out)
	}
	ss.write(out)
}

// dispatch re-checks the auth gate in the connection's order and runs the
// frame type's handler from the table, appending its reply to out.
func (s *Server) dispatch(ss *session, f inbound, out []byte) []byte {
	h := handlers[f.typ]
	if h == nil {
		return appendError(out, f.reqID, protocol.CodeUnknownType, "no handler for "+f.typ.String())
	}
	authed := ss.state.Load() == stateAuthed
	c := &call{ss: ss, reqID: f.reqID}
	switch {
	case h.auth == anonymous && authed:
		return appendError(out, f.reqID, protocol.CodeAlreadyLogged, "already logged in")
	case h.auth == loggedIn && !authed:
		return appendError(out, f.reqID, protocol.CodeNotLoggedIn, f.typ.String()+" needs a login")
	case h.auth == loggedIn:
		c.user = ss.user.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	c.ctx = ctx
	reply, err := h.run(s, c, f.body)
	if h.auth == anonymous {
		// A login that did not log in lets the connection try again.
		ss.state.CompareAndSwap(stateLoggingIn, stateAnonymous)
	}
	out = s.respond(out, h, f.reqID, reply, err)
	if c.then != nil {
		ss.write(out)
		c.then()
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
