// Package presencetest is the contract suite of router.Presence: every
// implementation runs Run from its own tests.
package presencetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

// New returns an empty directory; Run closes it when the case ends.
type New func(t *testing.T) router.Presence

// Run runs every case against the implementation new makes.
func Run(t *testing.T, new New) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, p router.Presence)
	}{
		{"FirstAndLast", testFirstAndLast},
		{"TwoNodes", testTwoNodes},
		{"Nodes", testNodes},
		{"Expiry", testExpiry},
		{"DropNode", testDropNode},
		{"DisconnectUnknown", testDisconnectUnknown},
		{"Concurrent", testConcurrent},
		{"Cancelled", testCancelled},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := new(t)
			t.Cleanup(func() { _ = p.Close() })
			c.fn(t, p)
		})
	}
}

const ttl = 10 * time.Second

func beat(t *testing.T, p router.Presence, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		if err := p.Heartbeat(t.Context(), n, ttl); err != nil {
			t.Fatal(err)
		}
	}
}

func connect(t *testing.T, p router.Presence, user int64, node string, wantFirst bool) {
	t.Helper()
	first, err := p.Connect(t.Context(), user, node)
	if err != nil || first != wantFirst {
		t.Fatalf("Connect(%d, %s) first=%v %v, want first=%v", user, node, first, err, wantFirst)
	}
}

func disconnect(t *testing.T, p router.Presence, user int64, node string, wantLast bool) {
	t.Helper()
	last, err := p.Disconnect(t.Context(), user, node)
	if err != nil || last != wantLast {
		t.Fatalf("Disconnect(%d, %s) last=%v %v, want last=%v", user, node, last, err, wantLast)
	}
}

func nodes(t *testing.T, p router.Presence, users ...int64) string {
	t.Helper()
	m, err := p.Nodes(t.Context(), users)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(m)
}

func testFirstAndLast(t *testing.T, p router.Presence) {
	beat(t, p, "a")
	connect(t, p, 1, "a", true)
	connect(t, p, 1, "a", false) // a second device
	disconnect(t, p, 1, "a", false)
	disconnect(t, p, 1, "a", true)
	connect(t, p, 1, "a", true)
}

func testTwoNodes(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	connect(t, p, 7, "a", true)
	connect(t, p, 7, "b", false)
	if got := nodes(t, p, 7); got != "map[7:[a b]]" {
		t.Fatalf("Nodes %s", got)
	}
	disconnect(t, p, 7, "a", false)
	disconnect(t, p, 7, "b", true)
	if got := nodes(t, p, 7); got != "map[]" {
		t.Fatalf("Nodes after leaving %s", got)
	}
}

func testNodes(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	for u := int64(1); u <= 100; u++ {
		node := "a"
		if u%2 == 0 {
			node = "b"
		}
		connect(t, p, u, node, true)
	}
	m, err := p.Nodes(t.Context(), []int64{1, 2, 99, 100, 1000})
	if err != nil || fmt.Sprint(m) != "map[1:[a] 2:[b] 99:[a] 100:[b]]" {
		t.Fatalf("Nodes %v %v", m, err)
	}
	if m, err := p.Nodes(t.Context(), nil); err != nil || len(m) != 0 {
		t.Fatalf("Nodes of nobody %v %v", m, err)
	}
}

// A node that stops heartbeating is dead: its users are offline, and a
// connection elsewhere is a first one again.
func testExpiry(t *testing.T, p router.Presence) {
	ctx := t.Context()
	if err := p.Heartbeat(ctx, "short", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	beat(t, p, "long")
	connect(t, p, 5, "short", true)
	connect(t, p, 5, "long", false)
	disconnect(t, p, 5, "long", false)
	deadline := time.Now().Add(5 * time.Second)
	for nodes(t, p, 5) != "map[]" {
		if time.Now().After(deadline) {
			t.Fatalf("the dead node still counts: %s", nodes(t, p, 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
	connect(t, p, 5, "long", true)
}

func testDropNode(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	connect(t, p, 1, "a", true)
	connect(t, p, 2, "a", true)
	connect(t, p, 2, "b", false)
	if err := p.DropNode(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if got := nodes(t, p, 1, 2); got != "map[2:[b]]" {
		t.Fatalf("after DropNode %s", got)
	}
	disconnect(t, p, 1, "a", false) // forgotten: nothing to remove
	beat(t, p, "a")
	connect(t, p, 1, "a", true)
	if got := nodes(t, p, 1); got != "map[1:[a]]" {
		t.Fatalf("after rejoining %s", got)
	}
}

func testDisconnectUnknown(t *testing.T, p router.Presence) {
	beat(t, p, "a")
	disconnect(t, p, 42, "a", false)
	connect(t, p, 42, "a", true)
}

// Many goroutines connect and disconnect the same users on two nodes:
// every user comes online once and goes offline once per round.
func testConcurrent(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	const users, conns = 20, 8
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		firsts, lasts = map[int64]int{}, map[int64]int{}
	)
	// round runs op for every user from every connection at once and
	// counts, per user, the calls that reported a change.
	round := func(op func(ctx context.Context, user int64, node string) (bool, error), changes map[int64]int) {
		for c := range conns {
			node := []string{"a", "b"}[c%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := int64(1); u <= users; u++ {
					changed, err := op(context.Background(), u, node)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if changed {
						changes[u]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	round(p.Connect, firsts)
	round(p.Disconnect, lasts)
	for u := int64(1); u <= users; u++ {
		if firsts[u] != 1 || lasts[u] != 1 {
			t.Fatalf("user %d: %d firsts, %d lasts, want 1 and 1", u, firsts[u], lasts[u])
		}
	}
	ids := make([]int64, users)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	if got := nodes(t, p, ids...); got != "map[]" {
		t.Fatalf("after all disconnects %s", got)
	}
}

func testCancelled(t *testing.T, p router.Presence) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Connect(ctx, 1, "a"); err == nil {
		t.Fatal("Connect with a cancelled context succeeded")
	}
	if _, err := p.Nodes(ctx, []int64{1}); err == nil {
		t.Fatal("Nodes with a cancelled context succeeded")
	}
}
