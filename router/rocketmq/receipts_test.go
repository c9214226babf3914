package rocketmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/router/rocketmq"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// Typing, a 1:1 read receipt and a group's read counts between users of
// two nodes whose bus is the RocketMQ of `make services` (the in-process
// cluster otherwise: its membership, presence and store).
func TestReceiptsOverRocketMQ(t *testing.T) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	topic := "PARLEY_R_" + hex.EncodeToString(r[:])
	c := servertest.NewCluster(t, time.Second)
	var buses []*rocketmq.Bus
	mut := func(cfg *server.Config) {
		b, err := rocketmq.New(rocketmq.Config{NameServers: []string{rocketmq.NameServerForTests()}, Topic: topic, Node: cfg.Addr})
		if err != nil {
			t.Fatalf("RocketMQ at %s: %v: run `make services`", rocketmq.NameServerForTests(), err)
		}
		cfg.Bus = b
		buses = append(buses, b)
		cfg.ReceiptInterval = 50 * time.Millisecond
	}
	n1, n2 := c.Start(mut), c.Start(mut)
	tab := c.WaitOwners(n1, n2)
	clienttest.ReceiptsAcross(t, tab.Owner, n1.Name, n2.Name, 20*time.Second)
	if err := buses[0].Ping(context.Background()); err != nil {
		t.Fatalf("the broker: %v", err)
	}
}
