package secure

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol"
)

func pair(t testing.TB) (*noise.CipherState, *noise.CipherState) {
	t.Helper()
	k := [32]byte{1, 2, 3}
	return noise.UnsafeNewCipherState(Suite, k, 0), noise.UnsafeNewCipherState(Suite, k, 0)
}

func TestSealOpenSizes(t *testing.T) {
	for _, size := range []int{protocol.HeaderSize, 100, plainChunk, plainChunk + 1, 2 * plainChunk, 2*plainChunk + 7, 1 << 20} {
		tx, rx := pair(t)
		frame := make([]byte, protocol.LengthSize+size)
		frame[3] = byte(size)
		frame[2] = byte(size >> 8)
		frame[1] = byte(size >> 16)
		for i := protocol.LengthSize; i < len(frame); i++ {
			frame[i] = byte(i)
		}
		sealed, err := Seal(nil, tx, frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != protocol.LengthSize+SealedSize(size) {
			t.Fatalf("%d: sealed %d bytes, SealedSize says %d", size, len(sealed), protocol.LengthSize+SealedSize(size))
		}
		if p, ok := plainSize(SealedSize(size)); !ok || p != size {
			t.Fatalf("%d: plainSize(SealedSize) = %d, %v", size, p, ok)
		}
		// Each chunk is one Noise message within its limit.
		if SealedSize(size) > MaxChunk && size <= plainChunk {
			t.Fatalf("%d: one chunk over the limit", size)
		}
		// Incomplete until the last byte.
		if _, _, err := Open(nil, rx, sealed[:len(sealed)-1], 2<<20); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("%d: short buffer: %v", size, err)
		}
		got, n, err := Open(nil, rx, sealed, 2<<20)
		if err != nil || n != len(sealed) || !bytes.Equal(got, frame) {
			t.Fatalf("%d: open: %v, n %d/%d, equal %v", size, err, n, len(sealed), bytes.Equal(got, frame))
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	tx, rx := pair(t)
	frame := protocol.MustFrame(protocol.TypePong, 1, &protocol.Pong{ServerTime: 1})
	sealed, _ := Seal(nil, tx, frame)
	if _, _, err := Open(nil, rx, sealed, protocol.HeaderSize); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	for _, bad := range []uint32{0, 15, 16, 23} {
		b := []byte{byte(bad >> 24), byte(bad >> 16), byte(bad >> 8), byte(bad)}
		b = append(b, make([]byte, bad)...)
		if _, _, err := Open(nil, rx, b, 1<<16); !errors.Is(err, ErrShort) {
			t.Fatalf("length %d: %v", bad, err)
		}
	}
	// A length no sealed frame has: a whole chunk and a tag's worth.
	if _, ok := plainSize(MaxChunk + TagSize); ok {
		t.Fatal("a chunk of only a tag after a full one")
	}
}

// fixed is an rng that returns fixed bytes: the vectors' keys.
type fixed []byte

func (f fixed) Read(p []byte) (int, error) { return copy(p, f), nil }

func seq(from byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

// vectorKeys are the keys of the document's handshake vectors.
var (
	vServerStatic = seq(0x00)
	vClientStatic = seq(0x20)
	vClientEph    = seq(0x40)
	vServerEph    = seq(0x60)
)

// exchange runs a handshake with the vector keys and the first frame each
// way, returning each message as it goes on the wire, by name.
func exchange(t testing.TB, pattern string) map[string][]byte {
	t.Helper()
	server, _ := KeyFromPrivate(vServerStatic)
	client, _ := KeyFromPrivate(vClientStatic)
	var pin []byte
	if pattern == PatternIK {
		pin = server.Public
	}
	ini, name, err := Initiator(client, pin, fixed(vClientEph))
	if err != nil || name != pattern {
		t.Fatal(err, name)
	}
	res, err := Responder(pattern, server, fixed(vServerEph))
	if err != nil {
		t.Fatal(err)
	}
	p := strings.ToLower(pattern)
	out := map[string][]byte{}
	msg1, _, _, _ := ini.WriteMessage(nil, nil)
	out[p+"-hello"] = protocol.MustFrame(protocol.TypeNoiseHello, 0, &protocol.NoiseHello{Pattern: pattern, Msg: msg1})
	if _, _, _, err := res.ReadMessage(nil, msg1); err != nil {
		t.Fatal(err)
	}
	msg2, sRx, sTx, _ := res.WriteMessage(nil, nil)
	out[p+"-reply"] = protocol.MustFrame(protocol.TypeNoiseReply, 0, &protocol.NoiseReply{Msg: msg2})
	_, cTx, cRx, err := ini.ReadMessage(nil, msg2)
	if err != nil {
		t.Fatal(err)
	}
	if pattern == PatternXX {
		msg3, a, b, _ := ini.WriteMessage(nil, nil)
		cTx, cRx = a, b
		out[p+"-finish"] = protocol.MustFrame(protocol.TypeNoiseFinish, 0, &protocol.NoiseFinish{Msg: msg3})
		if _, sRx, sTx, err = res.ReadMessage(nil, msg3); err != nil {
			t.Fatal(err)
		}
	}
	ping := protocol.MustFrame(protocol.TypePing, 1, nil)
	out[p+"-ping"], _ = Seal(nil, cTx, ping)
	if got, _, err := Open(nil, sRx, out[p+"-ping"], 1<<16); err != nil || !bytes.Equal(got, ping) {
		t.Fatalf("server opens the ping: %v", err)
	}
	pong := protocol.MustFrame(protocol.TypePong, 1, &protocol.Pong{ServerTime: 1700000000000})
	out[p+"-pong"], _ = Seal(nil, sTx, pong)
	if got, _, err := Open(nil, cRx, out[p+"-pong"], 1<<16); err != nil || !bytes.Equal(got, pong) {
		t.Fatalf("client opens the pong: %v", err)
	}
	return out
}

// TestHandshakeVectors checks the ```hex-noise blocks of docs/protocol.md
// against handshakes run with the document's fixed keys.
func TestHandshakeVectors(t *testing.T) {
	want := exchange(t, PatternXX)
	for k, v := range exchange(t, PatternIK) {
		want[k] = v
	}
	if os.Getenv("PARLEY_PRINT_VECTORS") != "" {
		for _, k := range []string{"xx-hello", "xx-reply", "xx-finish", "xx-ping", "xx-pong", "ik-hello", "ik-reply", "ik-ping", "ik-pong"} {
			t.Logf("```hex-noise %s\n%s```", k, hexLines(want[k]))
		}
	}
	f, err := os.Open("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	var name string
	var buf strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```hex-noise "):
			name = strings.TrimSpace(strings.TrimPrefix(line, "```hex-noise "))
			buf.Reset()
		case name != "" && strings.HasPrefix(line, "```"):
			got, err := hex.DecodeString(buf.String())
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if w, ok := want[name]; !ok {
				t.Errorf("%s: no such vector", name)
			} else if !bytes.Equal(got, w) {
				t.Errorf("%s differs\ndoc: %x\nrun: %x", name, got, w)
			}
			seen[name] = true
			name = ""
		case name != "":
			buf.WriteString(strings.Join(strings.Fields(line), ""))
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("docs/protocol.md has no ```hex-noise %s block", k)
		}
	}
}

func hexLines(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		s.WriteString(hex.EncodeToString(b[:n]))
		s.WriteString("\n")
		b = b[n:]
	}
	return s.String()
}
