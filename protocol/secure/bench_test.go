package secure

import (
	"fmt"
	"testing"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol"
)

// BenchmarkHandshakeServer times the server's share of one handshake (the
// client's messages are made with the timer stopped): its inverse is the
// handshakes per second one core can take. The DH operations: XX 3 on the
// server (ee, es, se) and a key generation; IK 4 (es, ss, ee, se) and a
// key generation.
func BenchmarkHandshakeServer(b *testing.B) {
	server, _ := NewKey(nil)
	client, _ := NewKey(nil)
	for _, pattern := range []string{PatternXX, PatternIK} {
		b.Run(pattern, func(b *testing.B) {
			var pin []byte
			if pattern == PatternIK {
				pin = server.Public
			}
			for range b.N {
				b.StopTimer()
				ini, _, _ := Initiator(client, pin, nil)
				msg1, _, _, _ := ini.WriteMessage(nil, nil)
				b.StartTimer()
				res, _ := Responder(pattern, server, nil)
				if _, _, _, err := res.ReadMessage(nil, msg1); err != nil {
					b.Fatal(err)
				}
				msg2, _, _, _ := res.WriteMessage(nil, nil)
				if pattern == PatternIK {
					continue
				}
				b.StopTimer()
				if _, _, _, err := ini.ReadMessage(nil, msg2); err != nil {
					b.Fatal(err)
				}
				msg3, _, _, _ := ini.WriteMessage(nil, nil)
				b.StartTimer()
				if _, _, _, err := res.ReadMessage(nil, msg3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealOpen times sealing and opening one frame, by body size.
func BenchmarkSealOpen(b *testing.B) {
	k := [32]byte{9}
	for _, size := range []int{64, 512, 4096} {
		frame := make([]byte, protocol.PrefixSize+size)
		frame[2], frame[3] = byte((protocol.HeaderSize+size)>>8), byte(protocol.HeaderSize+size)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			tx := noise.UnsafeNewCipherState(Suite, k, 0)
			rx := noise.UnsafeNewCipherState(Suite, k, 0)
			var sealed, opened []byte
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for range b.N {
				sealed, _ = Seal(sealed[:0], tx, frame)
				var err error
				if opened, _, err = Open(opened[:0], rx, sealed, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkX25519 is the baseline of BenchmarkHandshakeServer in the same
// run: one Diffie-Hellman.
func BenchmarkX25519(b *testing.B) {
	k, _ := NewKey(nil)
	p, _ := NewKey(nil)
	for range b.N {
		if _, err := noise.DH25519.DH(k.Private, p.Public); err != nil {
			b.Fatal(err)
		}
	}
}
