package rocketmq_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/bustest"
	"github.com/parleyim/parley/router/rocketmq"
)

// The contract on the RocketMQ of `make services`, a fresh topic and
// fresh node names per test.
func TestBus(t *testing.T) {
	bustest.Run(t, func(t *testing.T) func(string) router.Bus {
		var r [4]byte
		_, _ = rand.Read(r[:])
		suffix := hex.EncodeToString(r[:])
		return func(node string) router.Bus {
			b, err := rocketmq.New(rocketmq.Config{NameServers: []string{rocketmq.NameServerForTests()}, Topic: "PARLEY_T_" + suffix, Node: node + "-" + suffix})
			if err != nil {
				t.Fatalf("RocketMQ at %s: %v: run `make services`", rocketmq.NameServerForTests(), err)
			}
			return &named{Bus: b, suffix: suffix}
		}
	})
}

// named maps the suite's node names to the test's own.
type named struct {
	*rocketmq.Bus
	suffix string
}

func (n *named) Send(ctx context.Context, node string, seq uint64, envs []router.Envelope) error {
	return n.Bus.Send(ctx, node+"-"+n.suffix, seq, envs)
}

// A batch goes compressed only from Config.CompressOver on, never by
// default, and arrives intact either way.
func TestBusCompression(t *testing.T) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	mk := func(node string, over int) *rocketmq.Bus {
		b, err := rocketmq.New(rocketmq.Config{NameServers: []string{rocketmq.NameServerForTests()}, Topic: "PARLEY_Z_" + suffix,
			Node: node + "-" + suffix, CompressOver: over})
		if err != nil {
			t.Fatalf("RocketMQ at %s: %v: run `make services`", rocketmq.NameServerForTests(), err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	plain, zipped, to := mk("plain", 0), mk("zipped", 1024), mk("to", 0)
	frame := bytes.Repeat([]byte("a message pushed to many, "), 400) // 10 KB, compressible
	got := make(chan []router.Envelope, 4)
	if err := to.Listen(func(envs []router.Envelope) { got <- envs }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Wait)
	defer cancel()
	for i, b := range []*rocketmq.Bus{plain, zipped} {
		if err := b.Send(ctx, "to-"+suffix, 1, []router.Envelope{{Kind: router.EnvPush, Users: []int64{int64(i)}, Frame: frame}}); err != nil {
			t.Fatal(err)
		}
	}
	if plain.Compressed() != 0 || zipped.Compressed() != 1 {
		t.Fatalf("compressed batches: %d by default, %d over 1 KiB; want 0 and 1", plain.Compressed(), zipped.Compressed())
	}
	seen := map[int64]bool{}
	for len(seen) < 2 {
		select {
		case envs := <-got:
			if len(envs) != 1 || !bytes.Equal(envs[0].Frame, frame) || len(envs[0].Users) != 1 {
				t.Fatalf("batch %+v arrived changed", envs)
			}
			seen[envs[0].Users[0]] = true
		case <-ctx.Done():
			t.Fatalf("batches from %v arrived, want both", seen)
		}
	}
}
