package client

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// pipeClient is a client whose connection is one end of a net.Pipe; the
// test holds the other.
func pipeClient(t testing.TB, opts Options) (*Client, net.Conn) {
	t.Helper()
	client, server := net.Pipe()
	opts.Plaintext = true // the test speaks the frames itself
	opts.Dial = func(context.Context, string) (net.Conn, error) { return client, nil }
	c, err := Dial(context.Background(), "pipe", opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, server
}

// TestReaderSplitAtEveryOffset feeds the same frames in two writes split
// at every offset.
func TestReaderSplitAtEveryOffset(t *testing.T) {
	var stream []byte
	stream = append(stream, protocol.MustFrame(protocol.TypePush, 0, ptr(msg(convA, 1)))...)
	stream = append(stream, protocol.MustFrame(protocol.TypePing, 5, &protocol.Ping{})...)
	stream = append(stream, protocol.MustFrame(protocol.TypePush, 0, ptr(msg(convA, 2)))...)
	opts := Options{Logger: testLogger(t)}
	for i := 1; i < len(stream); i++ {
		c, srv := pipeClient(t, opts)
		go func() {
			_, _ = srv.Write(stream[:i])
			_, _ = srv.Write(stream[i:])
		}()
		pc := &pconn{t: t, nc: srv}
		if id := pc.expect(protocol.TypePong, nil); id != 5 {
			t.Fatalf("split %d: Pong id %d", i, id)
		}
		expectSeqs(t, c, convA, 1, 2)
		_ = c.Close()
		_ = srv.Close()
	}
	checkNoGoroutines(t)
}

// FuzzReader sends arbitrary bytes from the server: the client must not
// panic, and must end the connection or keep reading.
func FuzzReader(f *testing.F) {
	f.Add(protocol.MustFrame(protocol.TypePush, 0, ptr(msg(convA, 1))))
	f.Add(protocol.MustFrame(protocol.TypeKick, 0, &protocol.Kick{Reason: protocol.KickIdle}))
	f.Add(protocol.MustFrame(protocol.TypeLoginOK, 1, &protocol.LoginOK{UserID: 1, Heartbeat: 1}))
	f.Add(protocol.MustFrame(protocol.TypeSendAck, 1, &protocol.SendAck{Conv: convA, Seq: 9}))
	f.Add(protocol.MustFrame(protocol.TypeRedirect, 1, &protocol.Redirect{Addr: "x"}))
	f.Add([]byte{0, 0, 0, 9, 1, 0, 0, 0x22, 0, 0, 0, 0, 0xc1})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, srv := pipeClient(t, Options{RequestTimeout: time.Second})
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 512)
			for {
				if _, err := srv.Read(buf); err != nil {
					return
				}
			}
		}()
		for len(data) > 0 {
			n := min(len(data), 7)
			if _, err := srv.Write(data[:n]); err != nil {
				break
			}
			data = data[n:]
		}
		_ = srv.Close()
		_ = c.Close()
		<-done
	})
}
