package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// Three nodes in this process on the in-memory bus: logins are redirected
// to the owner of the user's slot, 1:1 and group messages cross nodes, a
// 4th node takes 256 slots and only their users move, and a node that
// dies under traffic loses no acked message.
func TestClusterInProcess(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1, n2, n3 := c.Start(nil), c.Start(nil), c.Start(nil)
	tab := c.WaitOwners(n1, n2, n3)

	var users []*clienttest.Member
	on := map[string][]*clienttest.Member{}
	for i := range 12 {
		m := clienttest.Join(t, n1.Name, fmt.Sprintf("user%02d", i))
		users = append(users, m)
		owner := tab.Owner(m.ID)
		clienttest.Eventually(t, 5*time.Second, m.Name+" on its node", func() bool { return m.LastLogin() == owner })
		if owner != n1.Name && m.Count(client.EventRedirected) == 0 {
			t.Fatalf("%s reached %s without a redirect", m.Name, owner)
		}
		on[owner] = append(on[owner], m)
	}
	if len(on[n1.Name]) == 0 || len(on[n2.Name]) == 0 || len(on[n3.Name]) == 0 {
		t.Fatalf("users per node: %d %d %d", len(on[n1.Name]), len(on[n2.Name]), len(on[n3.Name]))
	}

	ctx := context.Background()
	a, b := on[n1.Name][0], on[n2.Name][0]
	if _, err := a.Send(ctx, b.ID, 0, []byte("across")); err != nil {
		t.Fatal(err)
	}
	conv := protocol.DirectConv(a.ID, b.ID)
	clienttest.Eventually(t, 5*time.Second, "1:1 across nodes", func() bool { return len(b.Received(conv)) == 1 })
	ids := make([]int64, len(users))
	for i, m := range users {
		ids[i] = m.ID
	}
	creator := on[n3.Name][0]
	g, err := creator.CreateGroup(ctx, "everyone", false, ids...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creator.SendGroup(ctx, g.GroupID, 0, []byte("hello all")); err != nil {
		t.Fatal(err)
	}
	for _, m := range users {
		if m != creator {
			clienttest.Eventually(t, 5*time.Second, m.Name+" gets the group message", func() bool {
				return len(m.Received(protocol.GroupConv(g.GroupID))) == 1
			})
		}
	}

	// A 4th node: exactly the 256 slots it takes move, and only their
	// users reconnect.
	drops := map[*clienttest.Member]int{}
	for _, m := range users {
		drops[m] = m.Count(client.EventDisconnected)
	}
	n4 := c.Start(nil)
	after := c.WaitOwners(n1, n2, n3, n4)
	moved := 0
	for s := range router.Slots {
		if tab.Owners[s] != after.Owners[s] {
			moved++
			if after.Owners[s] != n4.Name {
				t.Fatalf("slot %d moved to %s, not to the new node", s, after.Owners[s])
			}
		}
	}
	if moved != 256 {
		t.Fatalf("%d slots moved, want 256", moved)
	}
	for _, m := range users {
		if tab.Owner(m.ID) != after.Owner(m.ID) {
			clienttest.Eventually(t, 5*time.Second, m.Name+" moves to the new node", func() bool { return m.LastLogin() == n4.Name })
			movedTo(t, m, n4.Name)
		} else if m.Count(client.EventDisconnected) != drops[m] {
			t.Fatalf("%s was disconnected though its slot stayed", m.Name)
		}
	}

	// Steady 1:1 and group traffic; n3 dies in the middle. Every acked
	// message reaches every recipient exactly once, in order.
	tr := clienttest.NewTraffic(t, 10*time.Millisecond)
	for i := range 6 {
		tr.Direct(users[i], users[(i+1)%len(users)])
	}
	tr.Group(users[0], g.GroupID, users)
	tr.Group(users[5], g.GroupID, users)
	time.Sleep(500 * time.Millisecond)
	c.Kill(n3)
	final := c.WaitOwners(n1, n2, n4)
	failover := time.Now()
	time.Sleep(500 * time.Millisecond)
	tr.AckedSince(failover, 10*time.Second)
	tr.Stop()
	for _, m := range users {
		clienttest.Eventually(t, 10*time.Second, m.Name+" logged in on a live node", func() bool {
			return m.State() == client.StateLoggedIn && m.LastLogin() == final.Owner(m.ID)
		})
	}
	tr.Check(10 * time.Second)
	acked, failed := tr.Counts()
	t.Logf("%d acked (%d failed) through the death of a node", acked, failed)
}

// While the bus is down, sends across nodes still ack at once; the pushes
// wait in the sender's outbox and all reach the recipient, in order, soon
// after the bus is back, with no reconnect and no sync.
func TestClusterBusOutage(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1, n2 := c.Start(nil), c.Start(nil)
	alice, bob, conv := acrossNodes(t, n1, n2, c.WaitOwners(n1, n2))
	ctx := context.Background()

	c.Net.SetDown(true)
	var slowest time.Duration
	const n = 100
	for i := range n {
		start := time.Now()
		if _, err := alice.Send(ctx, bob.ID, 0, fmt.Appendf(nil, "during %d", i)); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Fatalf("a send took %v while the bus was down", slowest)
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(bob.Received(conv)); got != 1 {
		t.Fatalf("bob got %d messages while the bus was down", got)
	}
	back := time.Now()
	c.Net.SetDown(false)
	clienttest.Eventually(t, 3*time.Second, "every message after the bus is back", func() bool { return len(bob.Received(conv)) == n+1 })
	t.Logf("%d messages delivered %v after the bus came back; slowest send while down %v", n, time.Since(back), slowest)
	inOrderNoReconnect(t, bob, conv)
}

// A node that dies with pushes still in its outbox: the messages were
// acked and stored, but the bus never carried their pushes. The other node
// sees the member gone and catches its users up (catchup.go): bob gets
// every message, in order, though the bus never came back, he sent
// nothing and he did not reconnect.
func TestClusterCatchUpAfterNodeLoss(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1, n2 := c.Start(nil), c.Start(nil)
	alice, bob, conv := acrossNodes(t, n1, n2, c.WaitOwners(n1, n2))
	ctx := context.Background()

	c.Net.SetDown(true)
	const n = 5
	for i := range n {
		if _, err := alice.Send(ctx, bob.ID, 0, fmt.Appendf(nil, "stranded %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(bob.Received(conv)); got != 1 {
		t.Fatalf("bob got %d messages while the bus was down", got)
	}
	// n1 crashes: its membership lapses now; its process (and outbox) is
	// stopped at the end of the test, the bus still down.
	lost := time.Now()
	c.Members.Kill(n1.Name)
	clienttest.Eventually(t, 5*time.Second, "every stranded message", func() bool { return len(bob.Received(conv)) == n+1 })
	t.Logf("%d stranded messages reached bob %v after n1's membership lapsed", n, time.Since(lost))
	inOrderNoReconnect(t, bob, conv)
}

// n1's outbox overflows while the bus is down: alice's pushes to bob are
// dropped to make room for carol's newer ones to dave. When the bus is
// back, n2 learns of the drops (EnvCatchUp) and catches its users up: bob
// gets alice's messages, in order, with no later message, no reconnect.
func TestClusterCatchUpAfterOutboxDrops(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1 := c.Start(func(cfg *server.Config) { cfg.OutboxBytes = 4 << 10 })
	n2 := c.Start(nil)
	tab := c.WaitOwners(n1, n2)
	var on1, on2 []*clienttest.Member
	for i := 0; len(on1) < 2 || len(on2) < 2; i++ {
		m := clienttest.Join(t, n1.Name, fmt.Sprintf("user%d", i))
		if tab.Owner(m.ID) == n1.Name {
			on1 = append(on1, m)
		} else {
			on2 = append(on2, m)
		}
	}
	alice, carol, bob, dave := on1[0], on1[1], on2[0], on2[1]
	clienttest.Eventually(t, 5*time.Second, "bob and dave on n2", func() bool {
		return bob.LastLogin() == n2.Name && dave.LastLogin() == n2.Name
	})
	ab, cd := protocol.DirectConv(alice.ID, bob.ID), protocol.DirectConv(carol.ID, dave.ID)
	ctx := context.Background()
	// n2 caches the group's members with bob's first send to it.
	g, err := alice.CreateGroup(ctx, "g", false, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendGroup(ctx, g.GroupID, 0, []byte("member")); err != nil {
		t.Fatal(err)
	}

	c.Net.SetDown(true)
	// The first envelope posted leaves at once and is retried, never
	// dropped; the ones after it wait in the queue.
	if _, err := carol.Send(ctx, dave.ID, 0, []byte("first")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	// The EnvGroupChanged that tells n2 is dropped with the pushes.
	if err := alice.RemoveFromGroup(ctx, g.GroupID, bob.ID); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if _, err := alice.Send(ctx, bob.ID, 0, fmt.Appendf(nil, "dropped %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	const m = 100 // far more than 4 KiB of pushes
	for i := range m {
		if _, err := carol.Send(ctx, dave.ID, 0, fmt.Appendf(nil, "newer %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Net.SetDown(false)
	back := time.Now()
	clienttest.Eventually(t, 5*time.Second, "dave's messages", func() bool { return len(dave.Received(cd)) == m+1 })
	clienttest.Eventually(t, 5*time.Second, "alice's dropped pushes", func() bool { return len(bob.Received(ab)) == n })
	t.Logf("%d messages whose pushes were dropped reached bob %v after the bus was back", n, time.Since(back))
	inOrderNoReconnect(t, bob, ab)
	// The catch-up dropped n2's cached members: bob is no longer one.
	var pe *protocol.Error
	if _, err := bob.SendGroup(ctx, g.GroupID, 0, []byte("removed")); !errors.As(err, &pe) || pe.Code != protocol.CodeNotMember {
		t.Fatalf("bob's send to the group he was removed from: %v, want NOT_MEMBER", err)
	}
}

// movedTo checks that m's last disconnect was a Redirect to addr, not a
// kick.
func movedTo(t *testing.T, m *clienttest.Member, addr string) {
	t.Helper()
	ds := m.Events(client.EventDisconnected)
	if len(ds) == 0 {
		t.Fatalf("%s was never disconnected", m.Name)
	}
	if last := ds[len(ds)-1]; !errors.Is(last.Err, client.ErrRedirected) || !strings.Contains(last.Err.Error(), addr) {
		t.Fatalf("%s left its node with %v, want a redirect to %s", m.Name, last.Err, addr)
	}
}

// acrossNodes joins alice, a user of n1, and bob, a user of n2, and
// checks that a first message from alice reaches bob.
func acrossNodes(t *testing.T, n1, n2 *servertest.Node, tab router.Table) (alice, bob *clienttest.Member, conv string) {
	t.Helper()
	for i := 0; alice == nil || bob == nil; i++ {
		m := clienttest.Join(t, n1.Name, fmt.Sprintf("user%d", i))
		switch {
		case alice == nil && tab.Owner(m.ID) == n1.Name:
			alice = m
		case bob == nil && tab.Owner(m.ID) == n2.Name:
			bob = m
		}
	}
	clienttest.Eventually(t, 5*time.Second, "bob on n2", func() bool { return bob.LastLogin() == n2.Name })
	conv = protocol.DirectConv(alice.ID, bob.ID)
	if _, err := alice.Send(context.Background(), bob.ID, 0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	clienttest.Eventually(t, 5*time.Second, "the first message", func() bool { return len(bob.Received(conv)) == 1 })
	return alice, bob, conv
}

// inOrderNoReconnect checks that m holds conv's messages 1, 2, 3, … in
// order, and never reconnected.
func inOrderNoReconnect(t *testing.T, m *clienttest.Member, conv string) {
	t.Helper()
	for i, msg := range m.Received(conv) {
		if msg.Seq != uint64(i+1) {
			t.Fatalf("%s's message %d has seq %d", m.Name, i, msg.Seq)
		}
	}
	if d := m.Count(client.EventDisconnected); d != 0 {
		t.Fatalf("%s reconnected %d times", m.Name, d)
	}
}

// underTraffic is servertest.RingTraffic over the in-process cluster:
// nine users, a message every 10 ms per sender.
func underTraffic(t *testing.T, node string, tab router.Table) (users []*clienttest.Member, drops map[*clienttest.Member]int, tr *clienttest.Traffic) {
	t.Helper()
	return servertest.RingTraffic(t, node, tab.Owner, 9, 5*time.Second, 10*time.Millisecond)
}

// A node that stops the clean way (SIGTERM) hands its slots over first:
// under traffic, each of its users is redirected once, straight to the new
// owner (not kicked), nobody else is disturbed, and no acked message is
// lost.
func TestClusterHandover(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1, n2, n3 := c.Start(nil), c.Start(nil), c.Start(nil)
	tab := c.WaitOwners(n1, n2, n3)
	users, drops, tr := underTraffic(t, n1.Name, tab)
	time.Sleep(300 * time.Millisecond)
	c.Stop(n3)
	final := c.WaitOwners(n1, n2)
	time.Sleep(300 * time.Millisecond)
	tr.Stop()
	moved := 0
	for _, m := range users {
		clienttest.Eventually(t, 5*time.Second, m.Name+" on its new node", func() bool {
			return m.State() == client.StateLoggedIn && m.LastLogin() == final.Owner(m.ID)
		})
		want := 0
		if tab.Owner(m.ID) == n3.Name {
			want = 1
			moved++
		}
		if d := m.Count(client.EventDisconnected) - drops[m]; d != want {
			t.Fatalf("%s (on %s) reconnected %d times, want %d", m.Name, tab.Owner(m.ID), d, want)
		}
		if want == 1 {
			movedTo(t, m, final.Owner(m.ID))
		}
	}
	if moved == 0 {
		t.Fatal("no user lived on the stopped node")
	}
	tr.Check(10 * time.Second)
	acked, failed := tr.Counts()
	t.Logf("%d users handed over; %d acked, %d failed", moved, acked, failed)
}

// A rolling restart of all three nodes under traffic, each stopped the
// clean way and started again on its address: no acked message is lost,
// and a client reconnects at most once per node restart (its node hands
// over when it stops; when the node returns it takes back slots the
// others held longest, not the ones it just gave them).
func TestClusterRollingRestart(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	nodes := []*servertest.Node{c.Start(nil), c.Start(nil), c.Start(nil)}
	tab := c.WaitOwners(nodes...)
	users, drops, tr := underTraffic(t, nodes[0].Name, tab)
	total := 0
	for i := range 3 {
		time.Sleep(300 * time.Millisecond)
		before := c.WaitOwners(nodes...)
		c.Stop(nodes[i])
		gone := c.WaitOwners(slices.Delete(slices.Clone(nodes), i, i+1)...)
		nodes[i] = c.StartAt(nodes[i].Name, nil)
		now := c.WaitOwners(nodes...)
		total += servertest.CheckRestart(t, before, gone, now, users, drops, 5*time.Second)
	}
	time.Sleep(300 * time.Millisecond)
	tr.Stop()
	tr.Check(10 * time.Second)
	acked, failed := tr.Counts()
	t.Logf("3 node restarts: %d reconnects over %d clients, at most one a restart; %d acked, %d failed", total, len(users), acked, failed)
}
