// Package membershiptest is the contract suite of router.Membership, and
// of router.Cluster on it: every implementation runs it
// (router.MemoryMembership in router, Redis in router/redis).
package membershiptest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

// New returns an empty store of its own for one test; the test closes it.
type New func(t *testing.T) router.Membership

// Run runs the contract suite.
func Run(t *testing.T, newStore New) {
	cases := []struct {
		name string
		fn   func(*testing.T, router.Membership)
	}{
		{"ClaimIDUnique", claimUnique},
		{"HeartbeatAndLive", heartbeatLive},
		{"LeaseExclusive", leaseExclusive},
		{"TableAndWatch", tableWatch},
		{"Leave", leave},
		{"ClusterSlots", clusterSlots},
		{"Closed", closed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// Concurrent claims get distinct ids in 0-1023.
func claimUnique(t *testing.T, m router.Membership) {
	defer m.Close()
	var (
		mu  sync.Mutex
		ids = map[int64]string{}
		wg  sync.WaitGroup
	)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d", i)
			id, err := m.ClaimID(ctx(t), name, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := ids[id]; dup || id < 0 || id > 1023 {
				t.Errorf("id %d of %s also held by %q", id, name, other)
			}
			ids[id] = name
		}()
	}
	wg.Wait()
}

func info(name string, id int64) router.NodeInfo {
	return router.NodeInfo{Name: name, Addr: "127.0.0.1:" + name, Snowflake: id, Started: 42}
}

// Live lists the members whose heartbeat has not lapsed, as registered.
func heartbeatLive(t *testing.T, m router.Membership) {
	defer m.Close()
	c := ctx(t)
	for i, n := range []string{"a", "b"} {
		if err := m.Heartbeat(c, info(n, int64(i)), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Heartbeat(c, info("short", 9), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	live, err := m.Live(c)
	if err != nil || len(live) != 3 || live["b"] != info("b", 1) {
		t.Fatalf("Live = %v, %v", live, err)
	}
	time.Sleep(400 * time.Millisecond)
	live, err = m.Live(c)
	if err != nil || len(live) != 2 || live["a"] != info("a", 0) {
		t.Fatalf("after the short ttl, Live = %v, %v", live, err)
	}
	// A heartbeat again brings it back.
	if err := m.Heartbeat(c, info("short", 9), time.Minute); err != nil {
		t.Fatal(err)
	}
	if live, _ = m.Live(c); len(live) != 3 {
		t.Fatalf("after a new heartbeat, Live = %v", live)
	}
}

// One holder at a time; the holder renews; the lease lapses after its ttl.
func leaseExclusive(t *testing.T, m router.Membership) {
	defer m.Close()
	c := ctx(t)
	take := func(node string, ttl time.Duration, want bool) {
		t.Helper()
		ok, err := m.Lease(c, node, ttl)
		if err != nil || ok != want {
			t.Fatalf("Lease(%s) = %v, %v; want %v", node, ok, err, want)
		}
	}
	take("a", 200*time.Millisecond, true)
	take("b", time.Minute, false)
	take("a", 200*time.Millisecond, true) // renewed
	time.Sleep(500 * time.Millisecond)
	take("b", time.Minute, true) // a's lapsed
	take("a", time.Minute, false)
	// Of many at once, one wins.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	if err := m.Leave(c, info("b", 0)); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := m.Lease(c, fmt.Sprintf("c%d", i), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d nodes hold the lease", wins)
	}
}

// The table set is the table read, and watchers hear of it.
func tableWatch(t *testing.T, m router.Membership) {
	defer m.Close()
	c := ctx(t)
	if tab, err := m.Table(c); err != nil || tab.Epoch != 0 || len(tab.Owners) != 0 {
		t.Fatalf("empty store: %+v, %v", tab, err)
	}
	wctx, cancel := context.WithCancel(c)
	defer cancel()
	w := m.Watch(wctx)
	time.Sleep(100 * time.Millisecond) // a subscription takes a moment
	var empty router.Table
	tab, _ := empty.Rebalance([]string{"a", "b"})
	tab.Epoch = 7
	if err := m.SetTable(c, tab); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher was not told")
	}
	got, err := m.Table(c)
	if err != nil || got.Epoch != 7 || fmt.Sprint(got.Owners) != fmt.Sprint(tab.Owners) || fmt.Sprint(got.Moved) != fmt.Sprint(tab.Moved) {
		t.Fatalf("Table = epoch %d, %v", got.Epoch, err)
	}
}

// Leave removes the member, frees the lease and the id at once.
func leave(t *testing.T, m router.Membership) {
	defer m.Close()
	c := ctx(t)
	id, err := m.ClaimID(c, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a := info("a", id)
	if err := m.Heartbeat(c, a, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Lease(c, "a", time.Minute); !ok {
		t.Fatal("no lease")
	}
	if err := m.Leave(c, a); err != nil {
		t.Fatal(err)
	}
	if live, _ := m.Live(c); len(live) != 0 {
		t.Fatalf("Live after Leave: %v", live)
	}
	if ok, err := m.Lease(c, "b", time.Minute); !ok || err != nil {
		t.Fatalf("the lease was not freed: %v %v", ok, err)
	}
	// The id is free again: 1,024 claims succeed.
	for i := range 1024 {
		if _, err := m.ClaimID(c, fmt.Sprintf("x%d", i), time.Minute); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	if _, err := m.ClaimID(c, "y", time.Minute); !errors.Is(err, router.ErrNoSnowflakeID) {
		t.Fatalf("the 1,025th claim: %v", err)
	}
}

func loads(t router.Table) map[string]int {
	m := map[string]int{}
	for _, o := range t.Owners {
		m[o]++
	}
	return m
}

// waitTable waits until c sees a table owned by exactly nodes.
func waitTable(t *testing.T, c *router.Cluster, nodes string) router.Table {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab := c.Table()
		l := loads(tab)
		var names []string
		for _, n := range []string{"n1", "n2", "n3", "n4"} {
			if l[n] > 0 {
				names = append(names, n)
			}
		}
		if fmt.Sprint(names) == nodes && l[""] == 0 {
			return tab
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw %s: %v", c.Self().Name, nodes, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Clusters on the store agree on a table; a new node takes only its
// share; a leaving node's slots, and only those, move.
func clusterSlots(t *testing.T, m router.Membership) {
	defer m.Close()
	join := func(name string) *router.Cluster {
		c, err := router.JoinCluster(ctx(t), router.ClusterConfig{
			Store: m, Name: name, Addr: "127.0.0.1:" + name, TTL: time.Second, Reload: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Leave(context.Background()) })
		return c
	}
	n1, n2, n3 := join("n1"), join("n2"), join("n3")
	ids := map[int64]bool{n1.Self().Snowflake: true, n2.Self().Snowflake: true, n3.Self().Snowflake: true}
	if len(ids) != 3 {
		t.Fatalf("snowflake ids not unique: %v", ids)
	}
	before := waitTable(t, n1, "[n1 n2 n3]")
	waitTable(t, n3, "[n1 n2 n3]")
	waitTable(t, n2, "[n1 n2 n3]") // n2 answers Owner below: it must have the table too
	if owner, ok := n2.Owner(5); !ok || owner.Name != before.Owners[5] || owner.Addr != "127.0.0.1:"+owner.Name {
		t.Fatalf("Owner(5) = %+v %v", owner, ok)
	}
	moved := func(a, b router.Table) (n int, to map[string]int) {
		to = map[string]int{}
		for s := range router.Slots {
			if a.Owners[s] != b.Owners[s] {
				n++
				to[b.Owners[s]]++
			}
		}
		return n, to
	}
	n4 := join("n4")
	after := waitTable(t, n2, "[n1 n2 n3 n4]")
	if n, to := moved(before, after); n != 256 || to["n4"] != 256 {
		t.Fatalf("join moved %d slots: %v", n, to)
	}
	if err := n3.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	final := waitTable(t, n4, "[n1 n2 n4]")
	for s := range router.Slots {
		if after.Owners[s] != "n3" && final.Owners[s] != after.Owners[s] {
			t.Fatalf("slot %d moved from %s", s, after.Owners[s])
		}
	}
	if final.Epoch <= after.Epoch {
		t.Fatalf("epoch %d after %d", final.Epoch, after.Epoch)
	}
}

// After Close every method returns router.ErrClosed.
func closed(t *testing.T, m router.Membership) {
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if _, err := m.ClaimID(c, "a", time.Minute); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("ClaimID: %v", err)
	}
	if err := m.Heartbeat(c, info("a", 1), time.Minute); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Heartbeat: %v", err)
	}
	if _, err := m.Live(c); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Live: %v", err)
	}
	if _, err := m.Lease(c, "a", time.Minute); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Lease: %v", err)
	}
	if _, err := m.Table(c); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Table: %v", err)
	}
	if err := m.SetTable(c, router.Table{}); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("SetTable: %v", err)
	}
	if err := m.Leave(c, info("a", 1)); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Leave: %v", err)
	}
	if err := m.Close(); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}
