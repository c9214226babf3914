package rocketmq_test

import (
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
