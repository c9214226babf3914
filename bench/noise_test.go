package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/parleyim/parley/bench"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// The encrypted scenarios run against a server that refuses plaintext, so
// every connection of theirs must have gone through Noise.
func encryptedServer(t *testing.T) bench.Options {
	srv := servertest.Start(t, func(c *server.Config) {
		c.RequireEncryption = true
		c.HandshakeRatePerAddr = -1
	})
	return bench.Options{Addr: srv.Addr(), Duration: time.Second, Encrypt: true}
}

func TestP2PEncrypted(t *testing.T) {
	o := encryptedServer(t)
	o.Prefix = "np2p"
	const pairs, each = 4, 50
	res, err := bench.P2P(context.Background(), bench.P2POptions{Options: o, Pairs: pairs, Window: 4, Size: 32, Messages: each})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Figures; res.Count != pairs*each || f["out_of_order"] != 0 || f["duplicates"] != 0 || res.Failures != nil {
		t.Fatalf("p2p-noise: delivered %d, figures %v, failures %v", res.Count, f, res.Failures)
	}
}

func TestConnsEncrypted(t *testing.T) {
	o := bench.ConnsOptions{Options: encryptedServer(t), N: 10, Parallel: 4, PingEvery: 300 * time.Millisecond}
	o.Prefix = "ncon"
	res, err := bench.Conns(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 10 || res.Failures != nil || res.Latency.Count < 10 {
		t.Fatalf("conns-noise: %d logged in, failures %v, %d pings", res.Count, res.Failures, res.Latency.Count)
	}
}
