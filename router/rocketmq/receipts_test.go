package rocketmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
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
		b, err := rocketmq.New(rocketmq.Config{NameServers: []string{nameServer()}, Topic: topic, Node: cfg.Addr})
		if err != nil {
			t.Fatalf("RocketMQ at %s: %v: run `make services`", nameServer(), err)
		}
		cfg.Bus = b
		buses = append(buses, b)
		cfg.ReceiptInterval = 50 * time.Millisecond
	}
	n1, n2 := c.Start(mut), c.Start(mut)
	tab := c.WaitOwners(n1, n2)
	var a, b, m *clienttest.Member
	for i := 0; a == nil || b == nil || m == nil; i++ {
		if i > 60 {
			t.Fatal("60 users and not one on n1 and two on n2")
		}
		u := clienttest.Join(t, n1.Name, fmt.Sprintf("user%d", i))
		switch owner := tab.Owner(u.ID); {
		case a == nil && owner == n1.Name:
			a = u
		case b == nil && owner == n2.Name:
			b = u
		case m == nil && owner == n2.Name:
			m = u
		}
	}
	clienttest.Eventually(t, 10*time.Second, "b and m on n2", func() bool { return b.LastLogin() == n2.Name && m.LastLogin() == n2.Name })
	ctx := context.Background()
	conv := protocol.DirectConv(a.ID, b.ID)
	if _, err := a.Send(ctx, b.ID, 0, []byte("across")); err != nil {
		t.Fatal(err)
	}
	clienttest.Eventually(t, 20*time.Second, "the message over the broker", func() bool { return len(b.Received(conv)) == 1 })
	if err := b.Typing(ctx, conv, false); err != nil {
		t.Fatal(err)
	}
	waitNotice(t, a.Client, "typing over the broker", func(n client.Notice) bool { return n.Typing != nil && n.Typing.User == b.ID })
	if err := b.Ack(ctx, conv, 1); err != nil {
		t.Fatal(err)
	}
	waitNotice(t, a.Client, "read over the broker", func(n client.Notice) bool {
		return n.Read != nil && *n.Read == protocol.ReadEvent{Conv: conv, User: b.ID, Seq: 1}
	})
	g, err := a.CreateGroup(ctx, "across", false, b.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := a.SendGroup(ctx, g.GroupID, 0, []byte("group across"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*clienttest.Member{b, m} {
		clienttest.Eventually(t, 20*time.Second, "the group message", func() bool { return len(u.Received(ack.Conv)) == 1 })
		if err := u.Ack(ctx, ack.Conv, ack.Seq); err != nil {
			t.Fatal(err)
		}
	}
	waitNotice(t, a.Client, "group reads over the broker", func(n client.Notice) bool {
		return n.GroupRead != nil && len(n.GroupRead.Reads) == 1 && n.GroupRead.Reads[0].Count == 2
	})
	if err := buses[0].Ping(ctx); err != nil {
		t.Fatalf("the broker: %v", err)
	}
}

// waitNotice waits for a notice of c that want accepts, skipping others.
func waitNotice(t *testing.T, c *client.Client, what string, want func(client.Notice) bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case n := <-c.Notices():
			if want(n) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no notice", what)
		}
	}
}
