package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// Two nodes on the in-memory bus: both ready (members, slots, directory),
// a message across them is timed on the bus and counted by the outbox; a
// node that stops says so in /readyz words.
func TestMetricsAndReadyInCluster(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	m1, m2 := server.NewMetrics(), server.NewMetrics()
	n1 := c.Start(func(cfg *server.Config) { cfg.Metrics = m1 })
	n2 := c.Start(func(cfg *server.Config) { cfg.Metrics = m2 })
	tab := c.WaitOwners(n1, n2)
	ctx := context.Background()
	for _, n := range []*servertest.Node{n1, n2} {
		clienttest.Eventually(t, 5*time.Second, n.Name+" ready", func() bool { return n.Srv.Ready(ctx) == nil })
	}

	// Two users, one on each node.
	var on1, on2 *clienttest.Member
	for i := 0; on1 == nil || on2 == nil; i++ {
		if i > 40 {
			t.Fatal("no user landed on each node")
		}
		m := clienttest.Join(t, n1.Name, uniqueName("node"))
		owner := tab.Owner(m.ID)
		clienttest.Eventually(t, 5*time.Second, m.Name+" on its node", func() bool { return m.LastLogin() == owner })
		if owner == n1.Name && on1 == nil {
			on1 = m
		} else if owner == n2.Name && on2 == nil {
			on2 = m
		}
	}
	if _, err := on1.Send(ctx, on2.ID, 0, []byte("across")); err != nil {
		t.Fatal(err)
	}
	clienttest.Eventually(t, 5*time.Second, "1:1 across nodes", func() bool {
		return len(on2.Received(protocol.DirectConv(on1.ID, on2.ID))) == 1
	})
	clienttest.Eventually(t, 5*time.Second, "bus figures", func() bool {
		s := scrape(t, m1)
		return s[`parley_bus_publish_seconds_count`] >= 1 && s[`parley_bus_sent_total`] >= 1
	})

	c.Stop(n2)
	if err := n2.Srv.Ready(ctx); err == nil {
		t.Fatal("a stopped node is ready")
	}
}
