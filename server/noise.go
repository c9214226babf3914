package server

import (
	"sync"
	"sync/atomic"

	"github.com/flynn/noise"
	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// Encryption (docs/protocol.md, "Encryption"). The first frame of a
// connection decides its mode: NoiseHello starts a Noise handshake, any
// other frame makes the connection plaintext for its life (refused with
// Kick ENCRYPTION_REQUIRED under RequireEncryption).
//
// The handshake's Diffie-Hellman work (two to four X25519 per connection)
// runs on the handshake workers, not on the event loop: a reconnect storm
// would otherwise stall every connection of a loop. It is admitted per
// address (HandshakeRatePerAddr) and bounded over the server
// (HandshakeWorkers running, HandshakeQueue waiting); past either the
// connection gets Kick HANDSHAKE_FAILED at once. While a step runs the
// loop reads none of the connection's frames. The worker hands its result
// back through noiseConn.result and wakes the loop, which writes the
// server's NoiseReply in clear and then switches the connection to its
// CipherStates: every byte after that is sealed in flush, and every frame
// read is opened before the frame decoder sees it.

// Connection modes; loop-owned.
const (
	modeNew       uint8 = iota // no frame yet
	modePlain                  // the first frame was not NoiseHello
	modeHandshake              // between NoiseHello and the end of the handshake
	modeSecure                 // every frame is sealed
)

// NoiseKeys are the server's static Noise keys.
type NoiseKeys struct {
	// Static is the key the server presents (XX) and the one IK clients
	// should pin.
	Static noise.DHKey
	// Retired keys are still accepted from IK clients during a rotation's
	// overlap; such a client is told the Static public key to pin instead.
	Retired []noise.DHKey
}

// noiseConn is a connection's Noise state. Fields are loop-owned, but hs
// while busy (a handshake worker has it) and result (the hand-back).
type noiseConn struct {
	hs       *noise.HandshakeState
	pattern  string
	busy     bool // a handshake step is on a worker
	result   atomic.Pointer[handshakeResult]
	rx, tx   *noise.CipherState
	txFrames uint64 // sealed since the last rekey of tx
	txBytes  uint64
}

// handshakeResult is what a handshake step hands back to the loop.
type handshakeResult struct {
	reply  []byte // a NoiseReply frame to write in clear, or nil
	rx, tx *noise.CipherState
	err    string // the step failed: the Kick's message
}

// handshakeJob is one step of a handshake for a worker.
type handshakeJob struct {
	ss  *session
	msg []byte // the client's Noise message (owned)
}

// handshakes runs handshake steps off the event loops.
type handshakes struct {
	s    *Server
	jobs chan handshakeJob
	wg   sync.WaitGroup
}

func newHandshakes(s *Server, workers, queue int) *handshakes {
	h := &handshakes{s: s, jobs: make(chan handshakeJob, queue)}
	h.wg.Add(workers)
	for range workers {
		go h.run()
	}
	return h
}

func (h *handshakes) run() {
	defer h.wg.Done()
	for j := range h.jobs {
		r := h.s.handshakeStep(j.ss, j.msg)
		j.ss.nz.result.Store(r)
		j.ss.wake()
	}
}

// stop ends the workers once the queue is empty. No submit may follow.
func (h *handshakes) stop() {
	close(h.jobs)
	h.wg.Wait()
}

// submit queues a step, or reports false when the queue is full.
func (h *handshakes) submit(j handshakeJob) bool {
	select {
	case h.jobs <- j:
		return true
	default:
		return false
	}
}

var rekeyFrame = protocol.MustFrame(protocol.TypeRekey, 0, nil)

// handshakeStep runs on a handshake worker: the server's part of the
// handshake after the client's message msg.
func (s *Server) handshakeStep(ss *session, msg []byte) *handshakeResult {
	nz := ss.nz
	if nz.hs.MessageIndex() == 2 { // XX: the client's last message
		if _, rx, tx, err := nz.hs.ReadMessage(nil, msg); err != nil || rx == nil {
			return &handshakeResult{err: "the third handshake message failed authentication"}
		} else {
			return &handshakeResult{rx: rx, tx: tx}
		}
	}
	var payload []byte
	if nz.pattern == secure.PatternIK {
		// The client encrypted to the key it pinned: the current one or
		// one retired within its overlap.
		ok := false
		for i, key := range append([]noise.DHKey{s.noiseKeys.Static}, s.noiseKeys.Retired...) {
			hs, err := secure.Responder(secure.PatternIK, key, nil)
			if err != nil {
				continue
			}
			if _, _, _, err := hs.ReadMessage(nil, msg); err == nil {
				nz.hs, ok = hs, true
				if i > 0 {
					payload = s.noiseKeys.Static.Public
				}
				break
			}
		}
		if !ok {
			return &handshakeResult{err: "IK: the handshake is not for any key of this server; the pinned key is wrong or retired"}
		}
	} else if _, _, _, err := nz.hs.ReadMessage(nil, msg); err != nil {
		return &handshakeResult{err: "malformed first handshake message"}
	}
	out, cs1, cs2, err := nz.hs.WriteMessage(nil, payload)
	if err != nil {
		return &handshakeResult{err: "handshake failed"}
	}
	reply := protocol.MustFrame(protocol.TypeNoiseReply, 0, &protocol.NoiseReply{Msg: out})
	// The responder receives with the first CipherState of Split.
	return &handshakeResult{reply: reply, rx: cs1, tx: cs2}
}

// connectionStage is the first stage of the pipeline: the connection's
// mode and its handshake. It reports whether the frame goes on to the
// next stages; if not, stop says to read no further frames now (a
// handshake step was queued or the connection was kicked).
func (s *Server) connectionStage(ss *session, h protocol.Header, body []byte, out []byte) (pass, stop bool, _ []byte) {
	switch ss.mode {
	case modeNew:
		if h.Type != protocol.TypeNoiseHello {
			if s.cfg.RequireEncryption && !ss.tls {
				ss.write(appendLoopError(out, h.RequestID, protocol.CodeEncryptionRequired, "this server requires encryption: send NoiseHello first"))
				ss.kick(protocol.KickPlaintext, "this server requires encryption")
				return false, true, nil
			}
			ss.mode = modePlain
			break
		}
		var hello protocol.NoiseHello
		if err := protocol.DecodeBody(body, &hello); err != nil {
			return s.handshakeFailed(ss, out, "cannot decode NoiseHello")
		}
		hs, err := secure.Responder(hello.Pattern, s.noiseKeys.Static, nil)
		if err != nil {
			return s.handshakeFailed(ss, out, "NoiseHello names an unknown pattern; use XX or IK")
		}
		if _, ok := s.handshakeAdmit.allow(ss.addr, ss.lastSeen.Load()); !ok {
			return s.handshakeFailed(ss, out, "too many handshakes from this address; retry later")
		}
		ss.mode = modeHandshake
		ss.nz = &noiseConn{hs: hs, pattern: hello.Pattern}
		return s.queueHandshake(ss, hello.Msg, out)
	case modeHandshake:
		if h.Type != protocol.TypeNoiseFinish || ss.nz.pattern != secure.PatternXX {
			return s.handshakeFailed(ss, out, "expected NoiseFinish")
		}
		var fin protocol.NoiseFinish
		if err := protocol.DecodeBody(body, &fin); err != nil {
			return s.handshakeFailed(ss, out, "cannot decode NoiseFinish")
		}
		return s.queueHandshake(ss, fin.Msg, out)
	case modeSecure:
		switch h.Type {
		case protocol.TypeRekey:
			ss.nz.rx.Rekey()
			return false, false, out
		case protocol.TypeNoiseHello, protocol.TypeNoiseFinish:
			return s.handshakeFailed(ss, out, "handshake frame on an encrypted connection")
		}
	case modePlain:
		switch h.Type {
		case protocol.TypeNoiseHello, protocol.TypeNoiseFinish, protocol.TypeRekey:
			return s.handshakeFailed(ss, out, "NoiseHello must be the first frame of a connection")
		}
	}
	return true, false, out
}

// queueHandshake hands a handshake step to the workers.
func (s *Server) queueHandshake(ss *session, msg []byte, out []byte) (bool, bool, []byte) {
	ss.nz.busy = true
	if !s.shakes.submit(handshakeJob{ss: ss, msg: append([]byte(nil), msg...)}) {
		ss.nz.busy = false
		return s.handshakeFailed(ss, out, "server busy with handshakes; retry later")
	}
	return false, true, out
}

func (s *Server) handshakeFailed(ss *session, out []byte, msg string) (bool, bool, []byte) {
	ss.write(out)
	ss.kick(protocol.KickHandshake, msg)
	return false, true, nil
}

// handshakeDone takes a finished handshake step on the loop. It reports
// false while the step still runs.
func (s *Server) handshakeDone(ss *session, c gnet.Conn) bool {
	nz := ss.nz
	r := nz.result.Swap(nil)
	if r == nil {
		return false
	}
	nz.busy = false
	if r.err != "" {
		ss.kick(protocol.KickHandshake, r.err)
		return true
	}
	if r.reply != nil {
		s.m.framesOutOf(r.reply)
		_, _ = c.Write(r.reply) // in clear, before anything sealed
	}
	if r.rx != nil {
		nz.rx, nz.tx, nz.hs = r.rx, r.tx, nil
		ss.mode = modeSecure
		s.m.handshake()
	}
	return true
}

// sealInto appends the sealed form of the whole frames in bufs to dst,
// sending Rekey and moving to the next key whenever RekeyFrames frames or
// RekeyBytes bytes were sealed under one.
func (s *Server) sealInto(dst []byte, nz *noiseConn, bufs ...[]byte) []byte {
	for _, b := range bufs {
		for len(b) >= protocol.LengthSize {
			n := protocol.PeekSize(b)
			var err error
			if dst, err = secure.Seal(dst, nz.tx, b[:n]); err != nil {
				// Only after 2^64 frames; the connection cannot go on.
				s.log.Error("seal", "err", err)
				return dst
			}
			nz.txFrames++
			nz.txBytes += uint64(n)
			if nz.txFrames >= uint64(s.cfg.RekeyFrames) || nz.txBytes >= uint64(s.cfg.RekeyBytes) {
				dst, _ = secure.Seal(dst, nz.tx, rekeyFrame)
				nz.tx.Rekey()
				nz.txFrames, nz.txBytes = 0, 0
			}
			b = b[n:]
		}
	}
	return dst
}

// sealBufs is the event loops' scratch space for sealing and opening.
var sealBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxKeptSealBuf: a larger scratch buffer is not kept.
const maxKeptSealBuf = 1 << 20

func putSealBuf(b *[]byte) {
	if cap(*b) <= maxKeptSealBuf {
		*b = (*b)[:0]
		sealBufs.Put(b)
	}
}

// connectionFrame reports whether frames of type t are taken by the
// connection stage (the handshake and Rekey), never by a handler.
func connectionFrame(t protocol.Type) bool {
	switch t {
	case protocol.TypeNoiseHello, protocol.TypeNoiseFinish, protocol.TypeRekey:
		return true
	}
	return false
}
