// Package bench is the load-test harness behind parley-bench: scenarios
// that drive a Parley server over raw protocol connections (p2p, group,
// conns; a cluster's nodes are the same scenarios over several addresses),
// a raw length-prefixed echo baseline over gnet driven like p2p, an
// embedded server for self-contained runs, and the report (table, JSON,
// HTML charts).
//
// Connections come in two kinds. A conn has a reader goroutine and
// answers calls; the senders use them. A holder keeps connections on a few
// gnet event loops, for the many that mostly wait or read: the held
// connections of conns and the receivers of group. Frames are built and
// parsed with package protocol.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// Password is the password of every user a scenario registers.
const Password = "bench-password"

// maxFrame is the largest frame the bench accepts from a server.
const maxFrame = 16 << 20

// sources spreads connections over source addresses in 127.0.0.0/8, so a
// run is not bound by one address's ephemeral ports.
var sources atomic.Uint32

// dial opens a TCP connection to addr from the next loopback source address
// when addr is on loopback.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
			n := sources.Add(1)
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(n/250%250), byte(1+n%250))}
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// conn is one protocol connection. Frames are written under wmu; one
// goroutine reads and calls onFrame for each frame that is not the answer
// to a call.
type conn struct {
	node string // the address dialled: the user's node, after redirects
	c    net.Conn
	wmu  sync.Mutex
	w    *bufio.Writer
	buf  []byte
	req  atomic.Uint32

	mu      sync.Mutex
	waiting map[uint32]chan frame
	loginID uint32 // the Login or Register waiting for its answer
	// heartbeat is the ping interval the server announced at login.
	heartbeat time.Duration
	onFrame   func(h protocol.Header, body []byte)
	done      chan struct{}
	err       error
}

type frame struct {
	h    protocol.Header
	body []byte
}

func newConn(ctx context.Context, addr string, encrypt bool, onFrame func(protocol.Header, []byte)) (*conn, error) {
	nc, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if encrypt {
		if nc, err = handshake(ctx, nc); err != nil {
			return nil, err
		}
	}
	c := &conn{node: addr, c: nc, w: bufio.NewWriterSize(nc, 8<<10), waiting: map[uint32]chan frame{}, onFrame: onFrame, done: make(chan struct{})}
	go c.read()
	return c, nil
}

// read decodes frames as they arrive; it reads straight into one buffer
// that grows only as far as the largest frame needs.
func (c *conn) read() {
	defer close(c.done)
	buf := make([]byte, 0, 8<<10)
	for {
		if cap(buf)-len(buf) < 2<<10 {
			buf = append(make([]byte, 0, 2*cap(buf)), buf...)
		}
		k, rerr := c.c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		off := 0
		for {
			h, body, n, err := protocol.Decode(buf[off:], maxFrame)
			if errors.Is(err, protocol.ErrIncomplete) {
				break
			}
			if err != nil {
				c.fail(err)
				return
			}
			off += n
			c.dispatch(h, body)
		}
		buf = buf[:copy(buf, buf[off:])]
		if rerr != nil {
			c.fail(rerr)
			return
		}
	}
}

// dispatch hands an answer to the call waiting for it and any other frame
// to onFrame. body is valid only during the call.
func (c *conn) dispatch(h protocol.Header, body []byte) {
	reply := h.RequestID != 0 && h.Type != protocol.TypePush
	c.mu.Lock()
	if h.Type == protocol.TypeRedirect && h.RequestID == 0 {
		h.RequestID, reply = c.loginID, true // a Redirect answers the login
	}
	ch := c.waiting[h.RequestID]
	if ch != nil && reply {
		delete(c.waiting, h.RequestID)
	}
	c.mu.Unlock()
	if ch != nil && reply {
		ch <- frame{h: h, body: append([]byte(nil), body...)}
	} else if c.onFrame != nil {
		c.onFrame(h, body)
	}
}

func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	_ = c.c.Close()
}

// send writes a frame with the next request id and returns it; flush
// sends what is buffered.
func (c *conn) send(t protocol.Type, body any, flush bool) (uint32, error) {
	id := c.req.Add(1)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.buf, err = protocol.AppendFrame(c.buf[:0], t, id, body); err != nil {
		return 0, err
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	if flush {
		return id, c.w.Flush()
	}
	return id, nil
}

func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
}

// call sends a request and waits for its answer, decoded into out.
func (c *conn) call(ctx context.Context, t protocol.Type, body, out any) error {
	ch := make(chan frame, 1)
	id := c.req.Add(1)
	c.mu.Lock()
	c.waiting[id] = ch
	if t == protocol.TypeLogin || t == protocol.TypeRegister {
		c.loginID = id
	}
	c.mu.Unlock()
	c.wmu.Lock()
	b, err := protocol.AppendFrame(nil, t, id, body)
	if err == nil {
		_, err = c.w.Write(b)
	}
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case f := <-ch:
		if f.h.Type == protocol.TypeRedirect {
			var rd protocol.Redirect
			_ = protocol.DecodeBody(f.body, &rd)
			return &redirected{addr: rd.Addr}
		}
		if f.h.Type == protocol.TypeError {
			var e protocol.Error
			_ = protocol.DecodeBody(f.body, &e)
			return &e
		}
		if out != nil {
			return protocol.DecodeBody(f.body, out)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("connection closed: %w", c.closeErr())
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *conn) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return io.EOF
	}
	return c.err
}

func (c *conn) close() { _ = c.c.Close(); <-c.done }

// redirected is the answer of a node that does not serve the user.
type redirected struct{ addr string }

func (r *redirected) Error() string { return "redirected to " + r.addr }

// login registers name (or logs in if it exists) and returns the user id.
// A Redirect is an error of type *redirected.
func (c *conn) login(ctx context.Context, name string) (int64, error) {
	var ok protocol.LoginOK
	err := c.call(ctx, protocol.TypeRegister, &protocol.Register{Username: name, Password: Password}, &ok)
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeUsernameTaken {
		err = c.call(ctx, protocol.TypeLogin, &protocol.Login{Username: name, Password: Password}, &ok)
	}
	c.heartbeat = time.Duration(ok.Heartbeat) * time.Millisecond
	return ok.UserID, err
}

// connectUser connects to addr and logs in as name, following up to three
// redirects of a cluster; it returns the connection to the user's node.
func connectUser(ctx context.Context, addr, name string, encrypt bool, onFrame func(protocol.Header, []byte)) (*conn, int64, error) {
	for hop := 0; ; hop++ {
		c, err := newConn(ctx, addr, encrypt, onFrame)
		if err != nil {
			return nil, 0, err
		}
		id, err := c.login(ctx, name)
		var rd *redirected
		if errors.As(err, &rd) && hop < 3 {
			c.close()
			addr = rd.addr
			continue
		}
		if err != nil {
			c.close()
			return nil, 0, err
		}
		return c, id, nil
	}
}

// connSet is the connections a scenario opened, closed together at its end.
type connSet struct {
	encrypt bool // set before the first connect
	mu      sync.Mutex
	conns   []*conn
}

func newConnSet() *connSet { return &connSet{} }

// connect is connectUser, keeping the connection in the set.
func (s *connSet) connect(ctx context.Context, addr, name string, onFrame func(protocol.Header, []byte)) (*conn, int64, error) {
	c, id, err := connectUser(ctx, addr, name, s.encrypt, onFrame)
	if err == nil {
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
	}
	return c, id, err
}

// drop closes c and takes it out of the set.
func (s *connSet) drop(c *conn) {
	s.mu.Lock()
	s.conns = slices.DeleteFunc(s.conns, func(x *conn) bool { return x == c })
	s.mu.Unlock()
	c.close()
}

// keepAlive pings every connection of the set, and those held, once per
// the shortest heartbeat interval the server announced (the server closes
// a connection silent for three), until the returned stop is called.
// Receivers send nothing else.
func (s *connSet) keepAlive(held []*heldConn) (stop func()) {
	s.mu.Lock()
	conns := slices.Clone(s.conns)
	s.mu.Unlock()
	every := time.Duration(0)
	for _, c := range conns {
		if c.heartbeat > 0 && (every == 0 || c.heartbeat < every) {
			every = c.heartbeat
		}
	}
	for _, hc := range held {
		if hc.heartbeat > 0 && (every == 0 || hc.heartbeat < every) {
			every = hc.heartbeat
		}
	}
	if every == 0 {
		every = 10 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, c := range conns {
				_, _ = c.send(protocol.TypePing, &protocol.Ping{}, true)
			}
			for _, hc := range held {
				_, _ = hc.ping()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (s *connSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.close()
	}
	s.conns = nil
}

// forEach runs f for 0..n-1, parallel at a time (32 if 0), and returns
// the first error with the count of them.
func forEach(n, parallel int, f func(i int) error) error {
	if parallel <= 0 {
		parallel = 32
	}
	sem := make(chan struct{}, parallel)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d failed, the first: %w", len(errs), n, errs[0])
}

// handshake runs the client's Noise handshake (XX) on nc.
func handshake(ctx context.Context, nc net.Conn) (*secure.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = nc.SetDeadline(deadline)
	sc, err := secure.Client(nc, secure.ClientConfig{MaxFrame: maxFrame})
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("bench: handshake: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return sc, nil
}
