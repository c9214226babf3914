package server

import (
	"errors"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// OnTraffic implements gnet.EventHandler. It runs the event-loop half of the
// inbound pipeline over every whole frame buffered, then flushes: what
// workers queued for the connection and the replies the loop stages
// produced leave in one write. gnet also calls it when a worker wakes the
// connection to flush (session.wake), with no new bytes.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	ss, ok := c.Context().(*session)
	if !ok {
		return gnet.Close
	}
	if ss.kicked.Load() {
		// A kicked connection's frames are not read; it waits only for
		// its Kick to be written.
		_, _ = c.Discard(-1)
		return s.flush(ss, c, nil)
	}
	if ss.nz != nil && ss.nz.busy {
		// A handshake step runs on a worker; the frames behind it wait.
		if !s.handshakeDone(ss, c) {
			if c.InboundBuffered() > s.cfg.MaxFrame {
				_, _ = c.Discard(-1)
				ss.kick(protocol.KickHandshake, "too many bytes sent during the handshake")
			}
			return s.flush(ss, c, nil)
		}
		if ss.kicked.Load() {
			_, _ = c.Discard(-1)
			return s.flush(ss, c, nil)
		}
	}
	buf, _ := c.Peek(-1)
	if len(buf) == 0 {
		return s.flush(ss, c, nil)
	}
	t := time.Now()
	now := t.UnixMilli()
	ss.lastSeen.Store(now)
	if ss.proxied {
		// Stage 0: the PROXY header of a trusted proxy's connection.
		n, ok := s.proxyStage(ss, c, buf)
		if !ok {
			_, _ = c.Discard(-1)
			return s.flush(ss, c, nil)
		}
		if n == 0 {
			if ss.partial.Load() == 0 {
				ss.partial.Store(now)
			}
			return s.flush(ss, c, nil)
		}
		_, _ = c.Discard(n)
		ss.partial.Store(0)
		if buf, _ = c.Peek(-1); len(buf) == 0 {
			return s.flush(ss, c, nil)
		}
	}

	var (
		out     []byte
		scratch *[]byte // opened frames of a secure connection
	)
	defer func() {
		if scratch != nil {
			putSealBuf(scratch)
		}
	}()
	consumed := 0
	for consumed < len(buf) {
		// Stage 1: frame decoder, after the Noise transport on an
		// encrypted connection.
		frame := buf[consumed:]
		if ss.mode == modeSecure {
			if scratch == nil {
				scratch = sealBufs.Get().(*[]byte)
			}
			opened, n, err := secure.Open((*scratch)[:0], ss.nz.rx, frame, s.cfg.MaxFrame)
			if errors.Is(err, secure.ErrIncomplete) {
				break
			}
			if err != nil {
				s.log.Debug("decrypt error", "session", ss.id, "err", err)
				_, _ = c.Discard(-1)
				ss.write(out)
				ss.kick(protocol.KickDecrypt, sealedErrorText(err))
				return s.flush(ss, c, nil)
			}
			*scratch = opened[:0]
			frame = opened
			consumed += n
		}
		h, body, n, err := protocol.Decode(frame, s.cfg.MaxFrame)
		if errors.Is(err, protocol.ErrIncomplete) {
			break
		}
		if err != nil {
			s.log.Debug("protocol error", "session", ss.id, "err", err, "buffered", len(buf)-consumed)
			_, _ = c.Discard(-1)
			s.protocolError(ss, out, h, err)
			return s.flush(ss, c, nil)
		}
		if ss.mode != modeSecure {
			consumed += n
		}
		s.m.frameIn(h.Type)
		// Stage 1b: the connection's mode and its handshake.
		pass, stop, o := s.connectionStage(ss, h, body, out)
		out = o
		if stop {
			if ss.kicked.Load() {
				_, _ = c.Discard(-1)
				return s.flush(ss, c, nil)
			}
			break
		}
		// Stage 2: rate limit. Every frame takes a token, also those the
		// next stages answer with an error, and a Rekey, which stage 1b
		// took (it costs the loop a rekey and has no answer).
		if pass || h.Type == protocol.TypeRekey {
			if !ss.bucket.allow(now, s.cfg.RateLimit, s.cfg.RateBurst) {
				if ss.bucket.overdraw(max(s.cfg.RateBurst, minOverdraft)) {
					// It keeps sending without reading its errors.
					_, _ = c.Discard(-1)
					ss.write(out)
					ss.kick(protocol.KickRateLimited, "kept sending past the rate limit")
					return s.flush(ss, c, nil)
				}
				if pass {
					out = appendLoopError(out, h.RequestID, protocol.CodeRateLimited, "too many frames; slow down")
				}
				continue
			}
		}
		if !pass {
			continue
		}
		// Stage 3: codec. Decoding copies, so the frame no longer refers to
		// gnet's buffer and may cross to a worker.
		f := inbound{typ: h.Type, reqID: h.RequestID, size: n, at: t.UnixNano()}
		var code protocol.Code
		if f.body, code = decodeClientBody(h.Type, body); code != 0 {
			out = appendLoopError(out, h.RequestID, code, bodyErrorText(h.Type, code))
			continue
		}
		out = s.inboundStages(ss, f, now, out)
	}
	if consumed > 0 {
		_, _ = c.Discard(consumed) // Discard(0) would drop everything buffered
	}
	// A frame must arrive whole within FrameTimeout of its first byte
	// (OnTick enforces it).
	switch {
	case consumed == len(buf):
		ss.partial.Store(0)
	case consumed > 0 || ss.partial.Load() == 0:
		ss.partial.Store(now)
	}
	return s.flush(ss, c, out)
}

// minOverdraft is the least number of frames past its rate limit a
// connection may send before it is kicked RATE_LIMITED (RateBurst if more).
const minOverdraft = 256

// inboundStages runs stages 4 to 7 on one decoded frame; each stage either
// passes the frame on or answers it.
func (s *Server) inboundStages(ss *session, f inbound, now int64, out []byte) []byte {
	// Stage 4: idle/heartbeat. Any bytes refreshed lastSeen; Ping is
	// answered here, ahead of queued work, before or after login.
	if f.typ == protocol.TypePing {
		return appendReply(out, protocol.TypePong, f.reqID, &protocol.Pong{ServerTime: now})
	}
	// Stage 5: auth gate. The worker checks again in order; here a frame
	// behind a queued login passes so that pipelined frames keep working.
	switch state := ss.state.Load(); {
	case f.typ == protocol.TypeRegister || f.typ == protocol.TypeLogin:
		if state == stateAuthed {
			return appendLoopError(out, f.reqID, protocol.CodeAlreadyLogged, "already logged in")
		}
		// Stage 6: admission of the expensive frames: a password hash
		// each, limited per address and over the server.
		if s.hashes(f) {
			if until, ok := s.auths.allow(ss.addr, now); !ok {
				return appendErrorUntil(out, f.reqID, protocol.CodeRateLimited, "too many logins and registrations; retry later", until)
			}
		}
		ss.state.CompareAndSwap(stateAnonymous, stateLoggingIn)
	case state == stateAnonymous:
		return appendLoopError(out, f.reqID, protocol.CodeNotLoggedIn, f.typ.String()+" needs a login")
	}
	// Admission of the group directory: a search scans the store, a join
	// by a stranger announces to every member; limited per address and
	// over the server.
	if f.typ == protocol.TypeGroupSearch || f.typ == protocol.TypeGroupJoin {
		if until, ok := s.dirs.allow(ss.addr, now); !ok {
			return appendErrorUntil(out, f.reqID, protocol.CodeRateLimited, "too many group searches and joins; retry later", until)
		}
	}
	// Stage 7: dispatch to the worker pool.
	if s.stopping.Load() {
		return appendLoopError(out, f.reqID, protocol.CodeShutdown, "server shutting down")
	}
	if !ss.enqueue(f) {
		return appendLoopError(out, f.reqID, protocol.CodeBusy, "too many frames waiting; retry")
	}
	return out
}

// hashes reports whether a frame costs a password hash: Register, and
// Login by password.
func (s *Server) hashes(f inbound) bool {
	switch b := f.body.(type) {
	case *protocol.Register:
		return true
	case *protocol.Login:
		return b.Token == ""
	}
	return false
}

// protocolError answers a frame that makes the stream unreadable: an Error
// (with the replies before it), then a Kick; the connection closes once
// they are written.
func (s *Server) protocolError(ss *session, out []byte, h protocol.Header, err error) {
	code, msg := protocol.CodeBadFrame, "malformed frame"
	switch {
	case errors.Is(err, protocol.ErrTooLarge):
		code, msg = protocol.CodeFrameTooLarge, "frame larger than the limit"
	case errors.Is(err, protocol.ErrVersion):
		code, msg = protocol.CodeBadVersion, "unsupported protocol version"
	case errors.Is(err, protocol.ErrShort):
		msg = "frame length shorter than the header"
	}
	ss.write(appendError(out, h.RequestID, code, msg))
	ss.kick(protocol.KickProtocolError, msg)
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
		if !t.Known() {
			return "the server does not know this frame type"
		}
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

// loopErrors caches the encoded bodies of the event loop's error replies,
// keyed by code and text. Their texts come from a small fixed set, so a
// flood of bad frames costs a copy per answer, not an encoding.
var loopErrors sync.Map // loopErrorKey → []byte

type loopErrorKey struct {
	code protocol.Code
	msg  string
}

// appendLoopError is appendError for the loop stages; msg must come from
// a fixed set.
func appendLoopError(out []byte, reqID uint32, code protocol.Code, msg string) []byte {
	k := loopErrorKey{code, msg}
	body, ok := loopErrors.Load(k)
	if !ok {
		frame := protocol.MustFrame(protocol.TypeError, 0, &protocol.Error{Code: code, Message: msg})
		body, _ = loopErrors.LoadOrStore(k, frame[protocol.PrefixSize:])
	}
	return protocol.AppendRawFrame(out, protocol.TypeError, reqID, body.([]byte))
}

// appendErrorUntil is appendError with the error's Until (unix ms).
func appendErrorUntil(out []byte, reqID uint32, code protocol.Code, msg string, until int64) []byte {
	out, _ = protocol.AppendFrame(out, protocol.TypeError, reqID, &protocol.Error{Code: code, Message: msg, Until: until})
	return out
}

// sealedErrorText is the Kick message of a sealed frame that cannot be
// opened.
func sealedErrorText(err error) string {
	switch {
	case errors.Is(err, secure.ErrTooLarge):
		return "encrypted frame larger than the limit"
	case errors.Is(err, secure.ErrShort):
		return "encrypted frame too short for its tag and header"
	}
	return "encrypted frame failed authentication (tampered, replayed, reordered or truncated)"
}
