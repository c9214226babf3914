package server

import (
	"errors"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
)

// OnTraffic implements gnet.EventHandler. It runs the event-loop half of the
// inbound pipeline over every whole frame buffered, then writes the replies
// the loop stages produced in one batch.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	ss, ok := c.Context().(*session)
	if !ok {
		return gnet.Close
	}
	t := time.Now()
	now := t.UnixMilli()
	ss.lastSeen.Store(now)

	buf, _ := c.Peek(-1)
	var out []byte
	consumed := 0
	for consumed < len(buf) {
		// Stage 1: frame decoder.
		h, body, n, err := protocol.Decode(buf[consumed:], s.cfg.MaxFrame)
		if errors.Is(err, protocol.ErrIncomplete) {
			break
		}
		if err != nil {
			s.log.Debug("protocol error", "session", ss.id, "err", err, "buffered", len(buf)-consumed)
			out = s.protocolError(out, h, err)
			_, _ = c.Discard(len(buf))
			s.m.framesOutOf(out)
			_, _ = c.Write(out)
			ss.kicked.Store(true)
			return gnet.Close
		}
		consumed += n
		s.m.frameIn(h.Type)
		// Stage 2: codec. Decoding copies, so the frame no longer refers to
		// gnet's buffer and may cross to a worker.
		f := inbound{typ: h.Type, reqID: h.RequestID, at: t.UnixNano()}
		var code protocol.Code
		if f.body, code = decodeClientBody(h.Type, body); code != 0 {
			out = appendError(out, h.RequestID, code, bodyErrorText(h.Type, code))
			continue
		}
		out = s.inboundStages(ss, f, now, out)
	}
	if consumed > 0 {
		_, _ = c.Discard(consumed) // Discard(0) would drop everything buffered
	}
	if len(out) > 0 {
		s.m.framesOutOf(out)
		_, _ = c.Write(out)
	}
	return gnet.None
}

// inboundStages runs stages 3 to 6 on one decoded frame; each stage either
// passes the frame on or answers it.
func (s *Server) inboundStages(ss *session, f inbound, now int64, out []byte) []byte {
	// Stage 3: idle/heartbeat. Any bytes refreshed lastSeen; Ping is
	// answered here, ahead of queued work, before or after login.
	if f.typ == protocol.TypePing {
		return appendReply(out, protocol.TypePong, f.reqID, &protocol.Pong{ServerTime: now})
	}
	// Stage 4: auth gate. The worker checks again in order; here a frame
	// behind a queued login passes so that pipelined frames keep working.
	switch state := ss.state.Load(); {
	case f.typ == protocol.TypeRegister || f.typ == protocol.TypeLogin:
		if state == stateAuthed {
			return appendError(out, f.reqID, protocol.CodeAlreadyLogged, "already logged in")
		}
		ss.state.CompareAndSwap(stateAnonymous, stateLoggingIn)
	case state == stateAnonymous:
		return appendError(out, f.reqID, protocol.CodeNotLoggedIn, f.typ.String()+" needs a login")
	}
	// Stage 5: rate limit.
	if !ss.bucket.allow(now, s.cfg.RateLimit, s.cfg.RateBurst) {
		return appendError(out, f.reqID, protocol.CodeRateLimited, "too many frames; slow down")
	}
	// Stage 6: dispatch to the worker pool.
	if s.stopping.Load() {
		return appendError(out, f.reqID, protocol.CodeShutdown, "server shutting down")
	}
	if !ss.enqueue(f) {
		return appendError(out, f.reqID, protocol.CodeBusy, "too many frames waiting; retry")
	}
	return out
}

// protocolError answers a frame that makes the stream unreadable: an Error,
// then a Kick; the caller closes the connection.
func (s *Server) protocolError(out []byte, h protocol.Header, err error) []byte {
	code, msg := protocol.CodeBadFrame, "malformed frame"
	switch {
	case errors.Is(err, protocol.ErrTooLarge):
		code, msg = protocol.CodeFrameTooLarge, "frame larger than the limit"
	case errors.Is(err, protocol.ErrVersion):
		code, msg = protocol.CodeBadVersion, "unsupported protocol version"
	case errors.Is(err, protocol.ErrShort):
		msg = "frame length shorter than the header"
	}
	out = appendError(out, h.RequestID, code, msg)
	return append(out, protocol.MustFrame(protocol.TypeKick, 0, &protocol.Kick{Reason: protocol.KickProtocolError, Message: msg})...)
}

// decodeClientBody decodes the body of a frame type clients may send.
func decodeClientBody(t protocol.Type, body []byte) (any, protocol.Code) {
	if !t.FromClient() {
		return nil, protocol.CodeUnknownType
	}
	v := protocol.NewBody(t)
	if err := protocol.DecodeBody(body, v); err != nil {
		return nil, protocol.CodeBadBody
	}
	return v, 0
}

func bodyErrorText(t protocol.Type, code protocol.Code) string {
	if code == protocol.CodeUnknownType {
		return "the server does not accept frames of type " + t.String()
	}
	return "cannot decode the body of " + t.String()
}

// appendReply appends a success reply. Requests with request id 0 asked for
// none.
func appendReply(out []byte, t protocol.Type, reqID uint32, body any) []byte {
	if reqID == 0 {
		return out
	}
	out, _ = protocol.AppendFrame(out, t, reqID, body)
	return out
}

// appendError appends an Error frame; errors are sent for request id 0 too.
func appendError(out []byte, reqID uint32, code protocol.Code, msg string) []byte {
	out, _ = protocol.AppendFrame(out, protocol.TypeError, reqID, &protocol.Error{Code: code, Message: msg})
	return out
}
