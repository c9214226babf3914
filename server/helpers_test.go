package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// startServer runs a server on loopback over a fresh embedded store in a
// temporary directory, with test-friendly defaults that mut may change.
func startServer(t testing.TB, mut func(*server.Config)) *server.Server {
	t.Helper()
	return servertest.Start(t, mut)
}

// raw is a protocol-level test client: send frames, expect frames.
type raw struct {
	t     testing.TB
	c     net.Conn
	r     *bufio.Reader
	buf   []byte
	reqID uint32
}

func dial(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &raw{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *raw) sendBytes(b []byte) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// send writes a frame with the next request id and returns that id.
func (r *raw) send(typ protocol.Type, body any) uint32 {
	r.t.Helper()
	r.reqID++
	r.sendBytes(protocol.MustFrame(typ, r.reqID, body))
	return r.reqID
}

type frame struct {
	h    protocol.Header
	body []byte
	size int // on the wire
}

// next reads one frame of up to 1 MiB, the most the server sends, or
// returns the read error.
func (r *raw) next(timeout time.Duration) (frame, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		h, body, n, err := protocol.Decode(r.buf, 1<<20)
		if err == nil {
			f := frame{h: h, body: append([]byte(nil), body...), size: n}
			r.buf = r.buf[n:]
			return f, nil
		}
		if !errors.Is(err, protocol.ErrIncomplete) {
			return frame{}, err
		}
		chunk := make([]byte, 64<<10)
		k, err := r.r.Read(chunk)
		r.buf = append(r.buf, chunk[:k]...)
		if err != nil && k == 0 {
			return frame{}, err
		}
	}
}

// expect reads the next frame, which must be of type typ (and, for a
// non-zero reqID, answer that request), and decodes it into body.
func (r *raw) expect(typ protocol.Type, reqID uint32, body any) protocol.Header {
	r.t.Helper()
	f, err := r.next(5 * time.Second)
	if err != nil {
		r.t.Fatalf("expecting %s: %v", typ, err)
	}
	if f.h.Type != typ {
		var e protocol.Error
		_ = protocol.DecodeBody(f.body, &e)
		r.t.Fatalf("expecting %s, got %s (%+v)", typ, f.h.Type, e)
	}
	if reqID != 0 && f.h.RequestID != reqID {
		r.t.Fatalf("%s answers request %d, want %d", typ, f.h.RequestID, reqID)
	}
	if body != nil {
		if err := protocol.DecodeBody(f.body, body); err != nil {
			r.t.Fatalf("decode %s: %v", typ, err)
		}
	}
	return f.h
}

func (r *raw) expectError(reqID uint32, code protocol.Code) protocol.Error {
	r.t.Helper()
	var e protocol.Error
	r.expect(protocol.TypeError, reqID, &e)
	if e.Code != code {
		r.t.Fatalf("error %s (%q), want %s", e.Code, e.Message, code)
	}
	return e
}

func (r *raw) expectKick(reason protocol.KickReason) {
	r.t.Helper()
	var k protocol.Kick
	r.expect(protocol.TypeKick, 0, &k)
	if k.Reason != reason {
		r.t.Fatalf("kick %s (%q), want %s", k.Reason, k.Message, reason)
	}
}

// expectClosed reads until the server closes the connection.
func (r *raw) expectClosed() {
	r.t.Helper()
	for {
		f, err := r.next(5 * time.Second)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		if err != nil {
			r.t.Fatalf("expecting close: %v", err)
		}
		r.t.Logf("frame before close: %s", f.h.Type)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// silent asserts that nothing arrives for d.
func (r *raw) silent(d time.Duration) {
	r.t.Helper()
	f, err := r.next(d)
	if err == nil {
		r.t.Fatalf("unexpected %s frame", f.h.Type)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		r.t.Fatalf("unexpected read error: %v", err)
	}
}

func (r *raw) register(name string) protocol.LoginOK {
	r.t.Helper()
	id := r.send(protocol.TypeRegister, &protocol.Register{Username: name, Password: "correct horse"})
	var ok protocol.LoginOK
	r.expect(protocol.TypeLoginOK, id, &ok)
	return ok
}

func (r *raw) login(name string) protocol.LoginOK {
	r.t.Helper()
	id := r.send(protocol.TypeLogin, &protocol.Login{Username: name, Password: "correct horse"})
	var ok protocol.LoginOK
	r.expect(protocol.TypeLoginOK, id, &ok)
	return ok
}

func (r *raw) sendText(to int64, cmid, text string) protocol.SendAck {
	r.t.Helper()
	id := r.send(protocol.TypeSend, &protocol.Send{ClientMsgID: cmid, To: to, Body: []byte(text)})
	var ack protocol.SendAck
	r.expect(protocol.TypeSendAck, id, &ack)
	return ack
}

func (r *raw) expectPush() protocol.Message {
	r.t.Helper()
	var m protocol.Message
	r.expect(protocol.TypePush, 0, &m)
	return m
}

func (r *raw) ping() {
	r.t.Helper()
	id := r.send(protocol.TypePing, nil)
	r.expect(protocol.TypePong, id, nil)
}

var userSeq int

// uniqueName gives each test user its own name.
func uniqueName(prefix string) string {
	userSeq++
	return fmt.Sprintf("%s%d", prefix, userSeq)
}
