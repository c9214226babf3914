package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// A holder keeps many protocol connections on a few gnet event loops
// instead of a goroutine and buffers per connection: what the conns
// scenario needs to hold tens of thousands of them cheaply, and what the
// group scenario's receivers need so that reading a thousand connections'
// pushes costs the load generator little (an event loop reads whatever
// has gathered on each ready connection; a goroutine per connection wakes
// and reads for every push). A connection has at most one request
// outstanding (the login, then one ping at a time); frames are decoded on
// the event loop.
type holder struct {
	gnet.BuiltinEventEngine
	cli *gnet.Client
	// onPong gets the round trip of each answered ping; onFrame every
	// other frame after the login, on the event loop (body is valid only
	// during the call). Either may be nil.
	onPong  func(rtt time.Duration)
	onFrame func(hc *heldConn, h protocol.Header, body []byte)
	open    atomic.Int64
	lost    *counts // connections closed by the server after their login, by reason
	encrypt bool    // Noise on every connection (handshake before it joins the loop)
}

var errClosedByServer = errors.New("bench: connection closed by the server")

// heldConn is one connection's state, the gnet connection's context.
type heldConn struct {
	gc        gnet.Conn
	name      string
	index     int           // the caller's
	userID    int64         // set by the login
	heartbeat time.Duration // announced at login
	reqID     atomic.Uint32
	// The login: its request id, the reply channel (buffered 1) and
	// whether it finished, after which a close counts as lost.
	loginID  atomic.Uint32
	loginRes chan loginReply
	loggedIn atomic.Bool
	// The ping outstanding: its request id and when it left (unix ns).
	pingID   atomic.Uint32
	pingSent atomic.Int64
	closed   atomic.Bool
	kick     atomic.Pointer[kickError] // why the server closed it, if it said
	// Noise, when the holder encrypts: rx on the loop; tx under txMu,
	// which also orders the writes, so that nonces follow the stream.
	rx    *noise.CipherState
	txMu  sync.Mutex
	tx    *noise.CipherState
	rxBuf []byte // loop
}

// write sends one frame, sealed when the connection is encrypted. Every
// write goes through AsyncWrite in the order sealed.
func (hc *heldConn) write(gc gnet.Conn, frame []byte) error {
	if hc.tx == nil {
		return gc.AsyncWrite(frame, nil)
	}
	hc.txMu.Lock()
	defer hc.txMu.Unlock()
	sealed, err := secure.Seal(nil, hc.tx, frame)
	if err != nil {
		return err
	}
	return gc.AsyncWrite(sealed, nil)
}

// kickError is a connection closed by the server with a Kick.
type kickError struct{ reason protocol.KickReason }

func (k *kickError) Error() string { return "kicked: " + k.reason.String() }

type loginReply struct {
	t    protocol.Type
	err  *protocol.Error
	rd   string // Redirect address
	lost error  // the connection closed first
}

func newHolder(loops int, encrypt bool, onPong func(time.Duration), onFrame func(*heldConn, protocol.Header, []byte)) (*holder, error) {
	h := &holder{onPong: onPong, onFrame: onFrame, lost: newCounts(), encrypt: encrypt}
	cli, err := gnet.NewClient(h, gnet.WithMulticore(true), gnet.WithNumEventLoop(loops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithReadBufferCap(64<<10), gnet.WithLogLevel(logging.ErrorLevel))
	if err != nil {
		return nil, err
	}
	if err := cli.Start(); err != nil {
		return nil, err
	}
	h.cli = cli
	return h, nil
}

// OnTraffic decodes every whole frame buffered and acts on it.
func (h *holder) OnTraffic(gc gnet.Conn) gnet.Action {
	hc, _ := gc.Context().(*heldConn)
	buf, _ := gc.Peek(-1)
	off := 0
	for {
		frame := buf[off:]
		if hc != nil && hc.rx != nil {
			opened, n, err := secure.Open(hc.rxBuf[:0], hc.rx, frame, maxFrame)
			if errors.Is(err, secure.ErrIncomplete) {
				break
			}
			if err != nil {
				return gnet.Close
			}
			hc.rxBuf = opened[:0]
			off += n
			if hd, _, _, err := protocol.Decode(opened, maxFrame); err == nil && hd.Type == protocol.TypeRekey {
				hc.rx.Rekey()
				continue
			}
			frame = opened
		}
		hd, body, n, err := protocol.Decode(frame, maxFrame)
		if errors.Is(err, protocol.ErrIncomplete) {
			break
		}
		if err != nil || hc == nil {
			return gnet.Close
		}
		if hc.rx == nil {
			off += n
		}
		if !h.frame(gc, hc, hd, body) {
			return gnet.Close
		}
	}
	_, _ = gc.Discard(off)
	return gnet.None
}

// frame handles one frame on the event loop; false closes the connection.
func (h *holder) frame(gc gnet.Conn, hc *heldConn, hd protocol.Header, body []byte) bool {
	switch {
	case hd.Type == protocol.TypePong && hd.RequestID != 0 && hd.RequestID == hc.pingID.Load():
		if sent := hc.pingSent.Swap(0); sent != 0 && h.onPong != nil {
			h.onPong(time.Duration(time.Now().UnixNano() - sent))
		}
	case hd.Type == protocol.TypePing:
		// The server's heartbeat: answer it at once, from the loop.
		b, err := protocol.AppendFrame(nil, protocol.TypePong, hd.RequestID, &protocol.Pong{ServerTime: time.Now().UnixMilli()})
		if err == nil {
			_ = hc.write(gc, b)
		}
	case hd.Type == protocol.TypeKick:
		var k protocol.Kick
		_ = protocol.DecodeBody(body, &k)
		hc.kick.Store(&kickError{k.Reason})
		return false
	case !hc.loggedIn.Load() && (hd.RequestID == hc.loginID.Load() || hd.Type == protocol.TypeRedirect):
		r := loginReply{t: hd.Type}
		switch hd.Type {
		case protocol.TypeLoginOK:
			var ok protocol.LoginOK
			_ = protocol.DecodeBody(body, &ok)
			hc.userID = ok.UserID // before loggedIn: the waiting login reads them after
			hc.heartbeat = time.Duration(ok.Heartbeat) * time.Millisecond
			hc.loggedIn.Store(true)
		case protocol.TypeError:
			r.err = new(protocol.Error)
			if err := protocol.DecodeBody(body, r.err); err != nil {
				r.err.Code = protocol.CodeBadBody
			}
		case protocol.TypeRedirect:
			var rd protocol.Redirect
			_ = protocol.DecodeBody(body, &rd)
			r.rd = rd.Addr
		}
		select {
		case hc.loginRes <- r:
		default:
		}
	case h.onFrame != nil && hc.loggedIn.Load():
		h.onFrame(hc, hd, body)
	}
	return true
}

// OnClose tells a waiting login that its connection is gone, and counts a
// connection lost after its login.
func (h *holder) OnClose(gc gnet.Conn, err error) gnet.Action {
	hc, _ := gc.Context().(*heldConn)
	if hc == nil {
		return gnet.None
	}
	hc.closed.Store(true)
	h.open.Add(-1)
	if k := hc.kick.Load(); k != nil {
		err = k
	} else if err == nil {
		err = errClosedByServer
	}
	if hc.loggedIn.Load() {
		h.lost.add("held, then " + reasonOf(err))
	}
	select {
	case hc.loginRes <- loginReply{lost: err}:
	default:
	}
	return gnet.None
}

// connect dials addr, logs in as name (registering it the first time) and
// follows up to three redirects; the connection then stays on the holder.
func (h *holder) connect(ctx context.Context, addr, name string, index int) (*heldConn, error) {
	for hop := 0; ; hop++ {
		hc, rd, err := h.tryLogin(ctx, addr, name, index)
		if err == nil && rd == "" {
			return hc, nil
		}
		if err != nil {
			return nil, err
		}
		if hop == 3 {
			return nil, fmt.Errorf("bench: more than 3 redirects (last to %s)", rd)
		}
		addr = rd
	}
}

func (h *holder) tryLogin(ctx context.Context, addr, name string, index int) (*heldConn, string, error) {
	nc, err := dial(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	hc := &heldConn{name: name, index: index, loginRes: make(chan loginReply, 1)}
	id := hc.reqID.Add(1)
	hc.loginID.Store(id)
	// The first request goes out on the plain socket before it is handed
	// to the event loop; the answer waits in the socket until then. The
	// handshake runs there too: nothing arrives after its last message
	// until that request is answered.
	b := protocol.MustFrame(protocol.TypeRegister, id, &protocol.Register{Username: name, Password: Password})
	if h.encrypt {
		sc, err := handshake(ctx, nc)
		if err != nil {
			return nil, "", err
		}
		hc.tx, hc.rx = sc.CipherStates()
		if b, err = secure.Seal(nil, hc.tx, b); err != nil {
			_ = nc.Close()
			return nil, "", err
		}
	}
	if _, err := nc.Write(b); err != nil {
		_ = nc.Close()
		return nil, "", err
	}
	gc, err := h.cli.EnrollContext(nc, hc) // closes nc, keeps a duplicate
	if err != nil {
		return nil, "", err
	}
	hc.gc = gc
	h.open.Add(1)
	for {
		var r loginReply
		select {
		case r = <-hc.loginRes:
		case <-ctx.Done():
			_ = gc.Close()
			return nil, "", ctx.Err()
		}
		switch {
		case r.lost != nil:
			return nil, "", r.lost
		case r.t == protocol.TypeLoginOK:
			return hc, "", nil
		case r.t == protocol.TypeRedirect:
			_ = gc.Close()
			return nil, r.rd, nil
		case r.err != nil && r.err.Code == protocol.CodeUsernameTaken && id == hc.loginID.Load() && id == 1:
			id = hc.reqID.Add(1)
			hc.loginID.Store(id)
			b := protocol.MustFrame(protocol.TypeLogin, id, &protocol.Login{Username: name, Password: Password})
			if err := hc.write(gc, b); err != nil {
				_ = gc.Close()
				return nil, "", err
			}
		case r.err != nil:
			_ = gc.Close()
			return nil, "", r.err
		default:
			_ = gc.Close()
			return nil, "", fmt.Errorf("bench: login answered with %s", r.t)
		}
	}
}

// ping sends a Ping; it reports false if the previous one is still
// unanswered (it is then given up and counted as timed out by the caller).
func (hc *heldConn) ping() (prevAnswered bool, err error) {
	if hc.closed.Load() {
		return true, net.ErrClosed
	}
	id := hc.reqID.Add(1)
	hc.pingID.Store(id) // first: a late Pong of the previous ping no longer matches
	prev := hc.pingSent.Swap(time.Now().UnixNano())
	return prev == 0, hc.write(hc.gc, protocol.MustFrame(protocol.TypePing, id, &protocol.Ping{}))
}

// close closes every connection and stops the event loops.
func (h *holder) close(conns []*heldConn) {
	var wg sync.WaitGroup
	for _, hc := range conns {
		if hc.closed.Load() {
			continue
		}
		hc.loggedIn.Store(false) // not lost: we close it
		wg.Add(1)
		if err := hc.gc.CloseWithCallback(func(gnet.Conn, error) error { wg.Done(); return nil }); err != nil {
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = h.cli.Stop()
}
