package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
	"github.com/parleyim/parley/server"
)

// tap is a client socket whose writes can be held back, so that a test
// can send sealed frames changed, again or out of order.
type tap struct {
	net.Conn
	mu       sync.Mutex
	hold     bool
	captured [][]byte
}

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	if t.hold {
		t.captured = append(t.captured, append([]byte(nil), p...))
		t.mu.Unlock()
		return len(p), nil
	}
	t.mu.Unlock()
	return t.Conn.Write(p)
}

// seal returns the sealed bytes of frame without sending them.
func (t *tap) seal(tb testing.TB, sc *secure.Conn, frame []byte) []byte {
	tb.Helper()
	t.mu.Lock()
	t.hold, t.captured = true, nil
	t.mu.Unlock()
	if _, err := sc.Write(frame); err != nil {
		tb.Fatal(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hold = false
	if len(t.captured) != 1 {
		tb.Fatalf("captured %d writes", len(t.captured))
	}
	return t.captured[0]
}

// dialSecure opens an encrypted connection (IK with serverKey, XX
// without) and returns it as a raw test client, with its tap.
func dialSecure(t testing.TB, addr string, serverKey []byte) (*raw, *secure.Conn, *tap) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	tp := &tap{Conn: nc}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	sc, err := secure.Client(tp, secure.ClientConfig{ServerKey: serverKey})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &raw{t: t, c: sc, r: bufio.NewReader(sc)}, sc, tp
}

func TestNoiseXXThenIK(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.DMPolicy = server.DMAnyone })
	r, sc, _ := dialSecure(t, srv.Addr(), nil)
	if !bytes.Equal(sc.ServerKey(), srv.NoiseKey()) {
		t.Fatalf("XX proved key %x, the server's is %x", sc.ServerKey(), srv.NoiseKey())
	}
	alice := r.register(uniqueName("nzalice"))
	r.ping()

	r2, _, _ := dialSecure(t, srv.Addr(), srv.NoiseKey())
	bob := r2.register(uniqueName("nzbob"))
	_ = bob
	// A message between two encrypted connections.
	srvDM(t, r, r2, alice, bob)
}

// srvDM sends one message from a to b (dm policy anyone).
func srvDM(t *testing.T, a, b *raw, _, bok protocol.LoginOK) {
	t.Helper()
	ack := a.sendText(bok.UserID, "nz-1", "sealed hello")
	if ack.MsgID == 0 {
		t.Fatal("no msg id")
	}
	if m := b.expectPush(); string(m.Body) != "sealed hello" {
		t.Fatalf("push %q", m.Body)
	}
}

// expectDecryptKick reads the server's sealed Kick DECRYPT_FAILED and the
// close after it.
func expectDecryptKick(t *testing.T, r *raw) {
	t.Helper()
	var k protocol.Kick
	r.expect(protocol.TypeKick, 0, &k)
	if k.Reason != protocol.KickDecrypt || k.Message == "" {
		t.Fatalf("kick %s %q, want DECRYPT_FAILED with a reason", k.Reason, k.Message)
	}
	t.Logf("kick: %s: %s", k.Reason, k.Message)
	r.expectClosed()
}

func TestNoiseBadCiphertextCloses(t *testing.T) {
	srv := startServer(t, nil)
	ping := func(id uint32) []byte { return protocol.MustFrame(protocol.TypePing, id, nil) }
	cases := []struct {
		name string
		send func(r *raw, sc *secure.Conn, tp *tap) // bytes to tp.Conn go out as they are
	}{
		{"tampered", func(r *raw, sc *secure.Conn, tp *tap) {
			b := tp.seal(t, sc, ping(1))
			b[len(b)-1] ^= 0x01
			_, _ = tp.Conn.Write(b)
		}},
		{"tampered length", func(r *raw, sc *secure.Conn, tp *tap) {
			b := tp.seal(t, sc, ping(1))
			b = append(b, 0)
			b[3]++ // a byte more: the tag is no longer at the end
			_, _ = tp.Conn.Write(b)
		}},
		{"replayed", func(r *raw, sc *secure.Conn, tp *tap) {
			b := tp.seal(t, sc, ping(1))
			_, _ = tp.Conn.Write(b)
			r.expect(protocol.TypePong, 1, nil)
			_, _ = tp.Conn.Write(b)
		}},
		{"truncated", func(r *raw, sc *secure.Conn, tp *tap) {
			b := tp.seal(t, sc, ping(1))
			b = b[:len(b)-1]
			b[3]-- // the length says what is sent: the tag is cut
			_, _ = tp.Conn.Write(b)
		}},
		{"too short for a tag", func(r *raw, sc *secure.Conn, tp *tap) {
			_, _ = tp.Conn.Write([]byte{0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
		}},
		{"reordered", func(r *raw, sc *secure.Conn, tp *tap) {
			first := tp.seal(t, sc, ping(1))
			second := tp.seal(t, sc, ping(2))
			_, _ = tp.Conn.Write(append(second, first...))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, sc, tp := dialSecure(t, srv.Addr(), nil)
			r.ping() // the connection works
			tc.send(r, sc, tp)
			expectDecryptKick(t, r)
		})
	}
}

func TestNoiseRequireEncryption(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.RequireEncryption = true })
	r := dial(t, srv.Addr())
	id := r.send(protocol.TypeRegister, &protocol.Register{Username: uniqueName("plain"), Password: "correct horse"})
	r.expectError(id, protocol.CodeEncryptionRequired)
	r.expectKick(protocol.KickPlaintext)
	r.expectClosed()

	enc, _, _ := dialSecure(t, srv.Addr(), srv.NoiseKey())
	enc.register(uniqueName("sealed"))
}

func TestNoiseWrongPinnedKeyRefused(t *testing.T) {
	srv := startServer(t, nil)
	other, err := secure.NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = secure.Client(nc, secure.ClientConfig{ServerKey: other.Public})
	if !errors.Is(err, secure.ErrHandshake) {
		t.Fatalf("IK to a key the server does not hold: %v, want ErrHandshake", err)
	}
	t.Log(err)
}

func TestNoiseHandshakeOutOfTurn(t *testing.T) {
	srv := startServer(t, nil)
	// NoiseHello after a plaintext frame.
	r := dial(t, srv.Addr())
	r.ping()
	r.send(protocol.TypeNoiseHello, &protocol.NoiseHello{Pattern: "XX", Msg: make([]byte, 32)})
	r.expectKick(protocol.KickHandshake)
	r.expectClosed()
	// An unknown pattern.
	r = dial(t, srv.Addr())
	r.send(protocol.TypeNoiseHello, &protocol.NoiseHello{Pattern: "NN", Msg: make([]byte, 32)})
	r.expectKick(protocol.KickHandshake)
	// A message too short for an ephemeral key.
	r = dial(t, srv.Addr())
	r.send(protocol.TypeNoiseHello, &protocol.NoiseHello{Pattern: "XX", Msg: []byte{1, 2, 3}})
	r.expectKick(protocol.KickHandshake)
	r.expectClosed()
}

func TestNoiseKeyRotation(t *testing.T) {
	old, _ := secure.NewKey(nil)
	cur, _ := secure.NewKey(nil)
	srv := startServer(t, func(c *server.Config) {
		c.NoiseKeys = &server.NoiseKeys{Static: cur, Retired: []noise.DHKey{old}}
	})
	// A client that pinned the retired key is told the new one.
	r, sc, _ := dialSecure(t, srv.Addr(), old.Public)
	if !bytes.Equal(sc.NewServerKey(), cur.Public) {
		t.Fatalf("new key %x, want %x", sc.NewServerKey(), cur.Public)
	}
	r.ping()
	// One that pinned the current key is told nothing.
	r, sc, _ = dialSecure(t, srv.Addr(), cur.Public)
	if sc.NewServerKey() != nil {
		t.Fatalf("told a new key %x", sc.NewServerKey())
	}
	r.ping()
	// XX presents the current key.
	_, sc, _ = dialSecure(t, srv.Addr(), nil)
	if !bytes.Equal(sc.ServerKey(), cur.Public) {
		t.Fatal("XX presents another key")
	}
}

func TestNoiseRekey(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.RekeyFrames = 3 })
	nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, err := secure.Client(nc, secure.ClientConfig{RekeyFrames: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := &raw{t: t, c: sc, r: bufio.NewReader(sc)}
	for range 20 {
		r.ping()
	}
	// 20 Pongs at 3 a key: the server moved to a new key 6 times, the
	// client (20 Pings at 2 a key) 10 times, and every frame still opened.
	if got := sc.Rekeys(); got != 6 {
		t.Fatalf("the server rekeyed %d times, want 6", got)
	}
}

func TestNoiseKeyFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	k1, created, err := server.LoadNoiseKeys(dir, time.Hour, now)
	if err != nil || !created {
		t.Fatalf("first load: %v created=%v", err, created)
	}
	again, created, err := server.LoadNoiseKeys(dir, time.Hour, now)
	if err != nil || created || !bytes.Equal(again.Static.Public, k1.Static.Public) {
		t.Fatalf("second load: %v created=%v", err, created)
	}
	k2, err := server.RotateNoiseKey(dir, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k2.Static.Public, k1.Static.Public) || len(k2.Retired) != 1 || !bytes.Equal(k2.Retired[0].Public, k1.Static.Public) {
		t.Fatalf("after rotation: %+v", k2)
	}
	later, _, err := server.LoadNoiseKeys(dir, time.Hour, now.Add(2*time.Hour))
	if err != nil || len(later.Retired) != 0 {
		t.Fatalf("after the overlap: %v, %d retired", err, len(later.Retired))
	}
}

func TestNoiseHandshakeAdmission(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		c.HandshakeRatePerAddr = 0.001 // no refill within the test
		c.HandshakeBurstPerAddr = 2
	})
	for range 2 {
		r, _, _ := dialSecure(t, srv.Addr(), nil)
		r.ping()
	}
	nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = secure.Client(nc, secure.ClientConfig{})
	if !errors.Is(err, secure.ErrHandshake) || !strings.Contains(err.Error(), "HANDSHAKE_FAILED") {
		t.Fatalf("third handshake from the address: %v, want HANDSHAKE_FAILED", err)
	}
	t.Log(err)
	// Plaintext connections from the address are not handshakes.
	dial(t, srv.Addr()).ping()
}

// A Rekey takes a rate-limit token like every other frame: each costs the
// event loop a rekey, so a client that floods them past the limit is
// kicked RATE_LIMITED, as one flooding any frame is.
func TestNoiseRekeyFloodRateLimited(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.RateLimit, c.RateBurst = 200, 400 })
	r, sc, tp := dialSecure(t, srv.Addr(), nil)
	tx, _ := sc.CipherStates()
	rekey := protocol.MustFrame(protocol.TypeRekey, 0, nil)
	var buf []byte
	for range 2000 {
		var err error
		if buf, err = secure.Seal(buf, tx, rekey); err != nil {
			t.Fatal(err)
		}
		tx.Rekey()
	}
	if _, err := tp.Conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	r.expectKick(protocol.KickRateLimited)
}
