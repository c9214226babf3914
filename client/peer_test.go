package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// waitLong bounds every wait for something that should happen; tests do
// not sleep for it unless it fails.
const waitLong = 3 * time.Second

// peer is a scripted server: a loopback listener whose connections the test
// goroutine drives frame by frame with send and expect.
type peer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *pconn
	done  chan struct{}

	mu  sync.Mutex
	all []*pconn
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, ln: ln, conns: make(chan *pconn, 16), done: make(chan struct{})}
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

func (p *peer) addr() string { return p.ln.Addr().String() }

func (p *peer) acceptLoop() {
	defer close(p.done)
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		pc := &pconn{t: p.t, nc: nc}
		p.mu.Lock()
		p.all = append(p.all, pc)
		p.mu.Unlock()
		select {
		case p.conns <- pc:
		default:
			_ = nc.Close()
		}
	}
}

func (p *peer) close() {
	_ = p.ln.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.all {
		_ = pc.nc.Close()
	}
}

// accept returns the next connection the client opened.
func (p *peer) accept() *pconn {
	p.t.Helper()
	select {
	case pc := <-p.conns:
		return pc
	case <-time.After(waitLong):
		p.t.Fatal("peer: no connection")
		return nil
	}
}

// noAccept fails if the client connects within d.
func (p *peer) noAccept(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.conns:
		p.t.Fatal("peer: unexpected connection")
	case <-time.After(d):
	}
}

// pconn is the peer's side of one connection.
type pconn struct {
	t   *testing.T
	nc  net.Conn
	buf []byte
}

func (pc *pconn) send(typ protocol.Type, id uint32, body any) {
	pc.t.Helper()
	frame, err := protocol.AppendFrame(nil, typ, id, body)
	if err != nil {
		pc.t.Fatal(err)
	}
	pc.write(frame)
}

func (pc *pconn) write(b []byte) {
	pc.t.Helper()
	if _, err := pc.nc.Write(b); err != nil {
		pc.t.Fatalf("peer: write: %v", err)
	}
}

func (pc *pconn) push(m protocol.Message) { pc.t.Helper(); pc.send(protocol.TypePush, 0, &m) }

// read returns the next frame from the client, or the read error.
func (pc *pconn) read(d time.Duration) (protocol.Header, []byte, error) {
	_ = pc.nc.SetReadDeadline(time.Now().Add(d))
	chunk := make([]byte, 4096)
	for {
		h, body, n, err := protocol.Decode(pc.buf, 0)
		if err == nil {
			out := append([]byte(nil), body...)
			pc.buf = pc.buf[n:]
			return h, out, nil
		}
		if !errors.Is(err, protocol.ErrIncomplete) {
			return h, nil, err
		}
		m, err := pc.nc.Read(chunk)
		pc.buf = append(pc.buf, chunk[:m]...)
		if err != nil {
			return protocol.Header{}, nil, err
		}
	}
}

// expect reads the next frame, which must be of type typ, decodes it into
// v (if not nil) and returns its request id.
func (pc *pconn) expect(typ protocol.Type, v any) uint32 {
	pc.t.Helper()
	h, body, err := pc.read(waitLong)
	if err != nil {
		pc.t.Fatalf("peer: expecting %s: %v", typ, err)
	}
	if h.Type != typ {
		pc.t.Fatalf("peer: got %s, want %s", h.Type, typ)
	}
	if v != nil {
		if err := protocol.DecodeBody(body, v); err != nil {
			pc.t.Fatalf("peer: %s body: %v", typ, err)
		}
	}
	return h.RequestID
}

// expectNothing fails if the client sends a frame within d.
func (pc *pconn) expectNothing(d time.Duration) {
	pc.t.Helper()
	h, _, err := pc.read(d)
	if err == nil {
		pc.t.Fatalf("peer: unexpected %s", h.Type)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		pc.t.Fatalf("peer: expecting nothing: %v", err)
	}
}

// expectClosed reads until the client closes the connection.
func (pc *pconn) expectClosed() {
	pc.t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		_, _, err := pc.read(time.Until(deadline))
		if err == nil {
			continue // heartbeats and the like
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		pc.t.Fatalf("peer: waiting for close: %v", err)
	}
	pc.t.Fatal("peer: connection not closed")
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func (pc *pconn) close() { _ = pc.nc.Close() }

// login answers the Login the client sends next.
func (pc *pconn) login(ok protocol.LoginOK) protocol.Login {
	pc.t.Helper()
	var l protocol.Login
	id := pc.expect(protocol.TypeLogin, &l)
	pc.send(protocol.TypeLoginOK, id, &ok)
	return l
}

// loginOK is the LoginOK of user 1 without heartbeats.
func loginOK() protocol.LoginOK {
	return protocol.LoginOK{UserID: 1, Username: "alice", Token: "tok-1", ServerTime: time.Now().UnixMilli()}
}

// testOptions are fast defaults that log to t.
func testOptions(t *testing.T) Options {
	return Options{
		Device:         "test",
		RequestTimeout: waitLong,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     20 * time.Millisecond,
		Logger:         testLogger(t),
		Plaintext:      true, // the fake peers speak the frames themselves
	}
}

// dialPeer connects a client to p. Cleanup closes it and checks that no
// goroutine of the client is left.
func dialPeer(t *testing.T, p *peer, opts Options) (*Client, *pconn) {
	t.Helper()
	c, err := Dial(context.Background(), p.addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkNoGoroutines(t)
	})
	return c, p.accept()
}

// loggedIn is dialPeer followed by a password login the peer answers with ok.
func loggedIn(t *testing.T, p *peer, opts Options, ok protocol.LoginOK) (*Client, *pconn) {
	t.Helper()
	c, pc := dialPeer(t, p, opts)
	res := async(func() error { _, err := c.Login(context.Background(), "alice", "password1"); return err })
	l := pc.login(ok)
	if err := wait(t, res); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if l.Username != "alice" || l.Password != "password1" || l.Device != "test" {
		t.Fatalf("Login body %+v", l)
	}
	return c, pc
}

// async runs f in a goroutine and returns its result channel.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLong):
		t.Fatal("call did not return")
		return nil
	}
}

// recvMsg returns the next message from the client.
func recvMsg(t *testing.T, c *Client) protocol.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatal("Messages closed")
		}
		return m
	case <-time.After(waitLong):
		t.Fatal("no message")
		return protocol.Message{}
	}
}

// expectSeqs reads messages and checks their conv:seq in order.
func expectSeqs(t *testing.T, c *Client, conv string, seqs ...uint64) {
	t.Helper()
	for _, want := range seqs {
		m := recvMsg(t, c)
		if m.Conv != conv || m.Seq != want {
			t.Fatalf("message %s:%d, want %s:%d", m.Conv, m.Seq, conv, want)
		}
	}
}

func expectNoMsg(t *testing.T, c *Client, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if ok {
			t.Fatalf("unexpected message %s:%d", m.Conv, m.Seq)
		}
	case <-time.After(d):
	}
}

// waitEvent reads events until one of type typ.
func waitEvent(t *testing.T, c *Client, typ EventType) Event {
	t.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed waiting for %s", typ)
			}
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

func waitState(t *testing.T, c *Client, s State) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for c.State() != s {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", c.State(), s)
		}
		time.Sleep(time.Millisecond)
	}
}

// msg is a message of conv with seq, from user 2 unless changed.
func msg(conv string, seq uint64) protocol.Message {
	return protocol.Message{MsgID: int64(1000*len(conv)) + int64(seq), Conv: conv, Seq: seq, From: 2, To: 1, Body: []byte("hi"), ServerTime: 1}
}

// checkNoGoroutines waits for every goroutine of the client package's
// Client and conn to end.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		left := clientGoroutines()
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines left after Close:\n%s", left)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clientGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "client.(*Client)") || strings.Contains(g, "client.(*conn)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// testLogger sends the client's logs to t.Log, so they show only when a
// test fails (or with -v). PARLEY_TEST_QUIET=1 drops them.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("PARLEY_TEST_QUIET") != "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
