package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// errReplaced closes a connection a login on another one replaced.
var errReplaced = errors.New("client: connection replaced")

// dial opens a connection to addr; the caller starts its reader.
func (c *Client) dial(ctx context.Context, addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	open := func() (net.Conn, error) {
		nc, err := c.opts.Dial(ctx, addr)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("client: dial %s: %w: %w", addr, ErrTimeout, err)
		} else if err != nil {
			return nil, fmt.Errorf("client: dial %s: %w", addr, err)
		}
		return nc, nil
	}
	nc, err := open()
	if err != nil {
		return nil, err
	}
	if !c.opts.Plaintext {
		sc, err := c.secure(ctx, nc, addr, false)
		if errors.Is(err, errCheckKey) {
			// The IK handshake to the pinned key failed: on a new
			// connection, XX makes the server prove the key it holds.
			_ = nc.Close()
			if nc, err = open(); err != nil {
				return nil, err
			}
			sc, err = c.secure(ctx, nc, addr, true)
		}
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = sc
	}
	c.emit(Event{Type: EventConnected, Addr: addr})
	return newConn(c, nc, addr), nil
}

// errCheckKey: an IK handshake to the pinned key failed. That does not
// prove the key changed (the server may have been stopping, busy or at a
// limit), so dial checks with XX (secure with xx).
var errCheckKey = errors.New("client: the handshake to the pinned key failed")

// secure runs the Noise handshake on nc: IK with the key pinned for addr,
// else XX, pinning the key the server proves (trust on first use). With
// xx (after errCheckKey) it runs XX although a key is pinned: a key other
// than the pinned one is ErrKeyChanged.
func (c *Client) secure(ctx context.Context, nc net.Conn, addr string, xx bool) (*secure.Conn, error) {
	pin, err := c.opts.Pins.Pin(addr)
	if err != nil {
		return nil, fmt.Errorf("client: pins: %w", err)
	}
	server := pin
	if xx {
		server = nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.opts.DialTimeout)
	}
	_ = nc.SetDeadline(deadline)
	sc, err := secure.Client(nc, secure.ClientConfig{Static: c.static, ServerKey: server, MaxFrame: c.opts.MaxFrame})
	if err != nil {
		if server != nil && errors.Is(err, secure.ErrHandshake) {
			return nil, fmt.Errorf("%w: %w", errCheckKey, err)
		}
		return nil, fmt.Errorf("client: handshake with %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	if pin != nil && xx && !bytes.Equal(sc.ServerKey(), pin) {
		return nil, fmt.Errorf("%w: %s proves the key %s, not the pinned %s; if the change is expected, remove the pin", ErrKeyChanged, addr, secure.Fingerprint(sc.ServerKey()), secure.Fingerprint(pin))
	}
	switch {
	case pin == nil:
		c.pinned(addr, sc.ServerKey(), false)
	case sc.NewServerKey() != nil:
		c.pinned(addr, sc.NewServerKey(), true)
	}
	return sc, nil
}

func (c *Client) pinned(addr string, key []byte, rotated bool) {
	if err := c.opts.Pins.SetPin(addr, key); err != nil {
		c.log.Error("cannot save the pinned server key", "addr", addr, "err", err)
	}
	if c.opts.OnPin != nil {
		c.opts.OnPin(addr, key, rotated)
		return
	}
	if rotated {
		c.log.Warn("the server rotated its key; pinned the new one", "addr", addr, "fingerprint", secure.Fingerprint(key))
		return
	}
	c.log.Warn("first connection: pinned the server's key (trust on first use)", "addr", addr, "fingerprint", secure.Fingerprint(key))
}

// dialStarted is dial for a connection that is not (yet) the client's: one
// being logged into after a redirect or during a reconnect.
func (c *Client) dialStarted(ctx context.Context, addr string) (*conn, error) {
	cn, err := c.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.read(cn)
	return cn, nil
}

// read is a connection's reader goroutine.
func (c *Client) read(cn *conn) {
	defer c.wg.Done()
	err := cn.readLoop()
	cn.fail(err)
	c.connLost(cn)
}

// userLogin runs a login the application asked for on the client's
// connection.
func (c *Client) userLogin(ctx context.Context, t protocol.Type, body any) (protocol.LoginOK, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	cn, err := c.acquire(ctx)
	if err != nil {
		return protocol.LoginOK{}, err
	}
	return c.login(ctx, cn, false, t, body)
}

// login sends a Login or Register on cn and follows up to maxRedirects
// Redirects, repeating the same frame on each new node. The reader has
// already made the client's state follow a LoginOK when login sees it.
//
// A private chain (a reconnect) is the client's only once logged in, and is
// closed on failure. Otherwise cn is the client's connection, and it moves
// along the redirects, so that a failed login leaves the client connected
// to the node that owns the user.
func (c *Client) login(ctx context.Context, cn *conn, private bool, t protocol.Type, body any) (protocol.LoginOK, error) {
	for hop := 0; ; hop++ {
		r, err := cn.request(ctx, t, body)
		if err == nil {
			switch r.typ {
			case protocol.TypeLoginOK:
				var ok protocol.LoginOK
				if err = decodeReply(r, &ok); err == nil {
					if err = c.loggedInOn(cn); err == nil {
						return ok, nil
					}
				}
			case protocol.TypeRedirect:
				var next *conn
				if next, err = c.redirect(ctx, cn, r, hop); err != nil {
					break
				}
				if private {
					cn.fail(errReplaced)
				} else if !c.moveTo(cn, next) {
					private = true // next is not the client's until it logs in
				}
				cn = next
				if reg, ok := body.(*protocol.Register); ok {
					// The account exists now, on the node that redirected:
					// log in to it where it belongs.
					t, body = protocol.TypeLogin, &protocol.Login{Username: reg.Username, Password: reg.Password, Device: reg.Device}
				}
				continue
			default:
				err = decodeReply(r, &protocol.LoginOK{})
			}
		}
		if private {
			cn.fail(errReplaced)
		} else {
			c.mu.Lock()
			cn.redirected.Store(false) // no login goes on from cn
			lost := c.cn == nil && c.state == StateConnected
			c.mu.Unlock()
			if lost {
				// The node that redirected closed, and the next cannot be
				// reached: nothing is left to log in on.
				c.shutdown(err)
			}
		}
		return protocol.LoginOK{}, err
	}
}

// loggedInOn checks that the LoginOK the reader applied on cn made it the
// client's connection: not if the client closed, or cn died, meanwhile.
func (c *Client) loggedInOn(cn *conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.cn == cn:
		return nil
	case c.state == StateClosed:
		return closedErr(c.closeErr)
	}
	return cn.lostErr()
}

// redirect dials the node a Redirect reply names.
func (c *Client) redirect(ctx context.Context, cn *conn, r reply, hop int) (*conn, error) {
	var rd protocol.Redirect
	if err := decodeReply(r, &rd); err != nil {
		return nil, err
	}
	if hop >= maxRedirects {
		return nil, ErrTooManyRedirects
	}
	if rd.Addr == "" {
		return nil, fmt.Errorf("%w: redirect without an address", ErrBadFrame)
	}
	c.log.Info("login redirected", "from", cn.addr, "to", rd.Addr, "node", rd.NodeID)
	c.emit(Event{Type: EventRedirected, Addr: rd.Addr})
	return c.dialStarted(ctx, rd.Addr)
}

// moveTo makes next the client's connection in place of old (or of none,
// if old closed after redirecting) and closes old. It reports false, and
// changes nothing, when the client has moved on otherwise or next died.
func (c *Client) moveTo(old, next *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateConnected || (c.cn != old && c.cn != nil) || next.cause() != nil {
		return false
	}
	c.cn = next
	c.openReady()
	old.fail(errReplaced)
	return true
}

// onLoginOK runs on cn's reader for every LoginOK: cn becomes the client's
// connection, and heartbeats and the catch-up sync start.
func (c *Client) onLoginOK(cn *conn, ok protocol.LoginOK) {
	cn.window.Store(ok.SendWindow) // before cn is the client's: the sender reads it
	c.mu.Lock()
	if c.state == StateClosed || cn.cause() != nil {
		c.mu.Unlock()
		cn.fail(ErrClosed) // a login that finished after Close
		return
	}
	old := c.cn
	c.cn = cn
	c.addr = cn.addr
	c.userID = ok.UserID
	c.token = ok.Token
	c.filesURL = ok.FilesURL
	c.state = StateLoggedIn
	c.openReady()
	c.mu.Unlock()
	if old != nil && old != cn {
		old.fail(errReplaced)
	}

	c.tmu.Lock()
	c.tr.self = ok.UserID
	resync := c.opts.SyncOnLogin || c.tr.hasState()
	c.tr.planning = c.opts.SyncOnLogin
	c.tmu.Unlock()

	cn.log.Debug("logged in", "user", ok.UserID, "heartbeat_ms", ok.Heartbeat)
	c.emit(Event{Type: EventLoggedIn, Addr: cn.addr, UserID: ok.UserID, MaxMessage: int(ok.MaxMessage)})
	if hb := time.Duration(ok.Heartbeat) * time.Millisecond; hb > 0 {
		c.wg.Add(1)
		go c.heartbeat(cn, hb)
	}
	if resync {
		c.wg.Add(1)
		go c.resync(cn)
	}
}

// onMove runs on cn's reader for a Redirect that answers no login: the
// server moves the session to rd.Addr. The returned error ends cn, and the
// reconnect goes there (even without Options.Reconnect).
func (c *Client) onMove(cn *conn, rd protocol.Redirect) error {
	c.mu.Lock()
	if c.cn == cn {
		c.addr = rd.Addr
	}
	c.mu.Unlock()
	cn.log.Info("session moved", "to", rd.Addr, "node", rd.NodeID)
	c.emit(Event{Type: EventRedirected, Addr: rd.Addr})
	return fmt.Errorf("%w to %s", ErrRedirected, rd.Addr)
}

// openReady lets requests waiting in acquire go. Called with mu held.
func (c *Client) openReady() {
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// onSendAck runs on cn's reader for every SendAck.
func (c *Client) onSendAck(cn *conn, ack protocol.SendAck) {
	c.tmu.Lock()
	from, sync := c.tr.sent(ack) // may release pushes held behind the ack
	c.flushLocked()
	c.tmu.Unlock()
	if sync {
		c.startSync(cn, ack.Conv, from)
	}
}

// onPush runs on cn's reader for every Push.
func (c *Client) onPush(cn *conn, m protocol.Message) {
	c.tmu.Lock()
	from, sync := c.tr.push(m)
	c.flushLocked()
	c.tmu.Unlock()
	if sync {
		cn.log.Debug("gap", "conv", m.Conv, "seq", m.Seq, "last", from)
		c.startSync(cn, m.Conv, from)
	}
}

// connLost runs when a connection's reader ends. If cn was the client's
// connection, the client reconnects or, if it may not, closes.
func (c *Client) connLost(cn *conn) {
	cause := cn.cause()
	c.mu.Lock()
	if c.cn != cn || c.state == StateClosed {
		c.mu.Unlock()
		return
	}
	c.cn = nil
	if c.state == StateConnected && cn.redirected.Load() {
		// The node redirected a login and closed; login goes on to the
		// next node, and requests wait for it.
		c.ready = make(chan struct{})
		c.mu.Unlock()
		return
	}
	loggingOut := c.loggingOut
	final := (!c.opts.Reconnect && !errors.Is(cause, ErrRedirected)) || c.token == "" || loggingOut || finalError(cause)
	spawn := false
	if !final {
		c.state = StateReconnecting
		c.ready = make(chan struct{})
		spawn = !c.reconnecting
		c.reconnecting = true
	}
	c.mu.Unlock()
	cn.log.Info("disconnected", "err", cause)
	c.emit(Event{Type: EventDisconnected, Addr: cn.addr, Err: cause})
	if final {
		if loggingOut {
			cause = ErrLoggedOut
		}
		c.shutdown(cause)
		return
	}
	if spawn {
		c.wg.Add(1)
		go c.reconnect(cause)
	}
}

// reconnect runs while the client is StateReconnecting: it waits a backoff,
// dials and logs in with the resume token.
func (c *Client) reconnect(cause error) {
	defer c.wg.Done()
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		if c.state != StateReconnecting {
			c.reconnecting = false
			c.mu.Unlock()
			return
		}
		token, addr := c.token, c.addr
		if attempt%2 == 0 && c.seed != addr {
			// The node we were on may be gone; the seed can redirect.
			addr = c.seed
		}
		c.mu.Unlock()

		delay := c.backoff(attempt)
		if attempt == 1 && (cause == nil || immediate(cause)) { // nil: Resume's first login
			delay = 0
		}
		c.emit(Event{Type: EventReconnecting, Attempt: attempt, Delay: delay, Err: cause})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		err := c.relogin(addr, token)
		switch {
		case err == nil:
			attempt = 0 // the loop ends unless the new connection died already
		case finalError(err):
			c.log.Warn("reconnect refused", "addr", addr, "err", err)
			c.shutdown(err)
		default:
			c.log.Info("reconnect failed", "addr", addr, "attempt", attempt, "err", err)
			cause = err
		}
	}
}

func (c *Client) relogin(addr, token string) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout+c.opts.RequestTimeout)
	defer cancel()
	cn, err := c.dialStarted(ctx, addr)
	if err != nil {
		return err
	}
	_, err = c.login(ctx, cn, true, protocol.TypeLogin, &protocol.Login{Token: token, Device: c.opts.Device})
	return err
}

// backoff is the delay before reconnect attempt n (from 1): doubling from
// MinBackoff up to MaxBackoff, of which a random half is taken off.
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.MinBackoff
	for i := 1; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// heartbeat pings every interval while cn lives, and kills cn when nothing
// arrived for three intervals.
func (c *Client) heartbeat(cn *conn, interval time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		if idle := cn.idle(); idle >= 3*interval {
			cn.log.Warn("connection dead", "idle", idle)
			cn.fail(ErrDeadConn)
			return
		}
		// The Pong needs no waiter: any bytes count as life.
		_ = cn.write(protocol.TypePing, c.nextRequestID(), &protocol.Ping{})
	}
}

// shutdown moves the client to StateClosed for cause.
func (c *Client) shutdown(cause error) {
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		return
	}
	c.state = StateClosed
	c.closeErr = cause
	cn := c.cn
	c.cn = nil
	c.openReady()
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		cn.fail(cause)
	}
	c.tmu.Lock()
	c.finished = true
	c.flushLocked()
	c.tmu.Unlock()
	if !errors.Is(cause, ErrClosed) {
		c.log.Info("client closed", "err", cause)
	}
	c.emit(Event{Type: EventClosed, Err: cause})
}

// flushLocked wakes the delivery goroutine. Called with tmu held.
func (c *Client) flushLocked() {
	if len(c.tr.out) == 0 && !c.finished {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deliver hands accepted messages to Messages in order. After shutdown it
// hands over what is left and closes Messages; after Close it drops it.
func (c *Client) deliver() {
	defer c.wg.Done()
	defer close(c.msgs)
	var batch []protocol.Message
	for {
		c.tmu.Lock()
		batch = c.tr.take(batch)
		finished := c.finished
		c.tmu.Unlock()
		if len(batch) == 0 {
			if finished {
				return
			}
			select {
			case <-c.wake:
			case <-c.closeCh:
				return
			}
			continue
		}
		for i := range batch {
			select {
			case c.msgs <- batch[i]:
				c.noteReceived(&batch[i])
			case <-c.closeCh:
				return
			}
		}
		clear(batch)
	}
}
