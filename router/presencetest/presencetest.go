// Package presencetest is the contract suite of router.Presence: every
// implementation runs Run from its own tests, against real backing
// services, so that all of them keep the contract written on the
// interface.
package presencetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

// New returns an empty directory; Run closes it when the case ends.
type New func(t *testing.T) router.Presence

// Run runs every case against the implementation new makes, each on a
// directory of its own.
func Run(t *testing.T, new New) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, p router.Presence)
	}{
		{"FirstAndLast", testFirstAndLast},
		{"TwoNodes", testTwoNodes},
		{"Nodes", testNodes},
		{"DeadNodeConnect", testDeadNodeConnect},
		{"Expiry", testExpiry},
		{"HeartbeatKeepsAlive", testHeartbeatKeepsAlive},
		{"Revive", testRevive},
		{"BadTTL", testBadTTL},
		{"DropNode", testDropNode},
		{"DropManyUsers", testDropManyUsers},
		{"DisconnectUnknown", testDisconnectUnknown},
		{"Concurrent", testConcurrent},
		{"Churn", testChurn},
		{"Cancelled", testCancelled},
		{"Closed", testClosed},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := new(t)
			t.Cleanup(func() { _ = p.Close() })
			c.fn(t, p)
		})
	}
}

// ttl is the heartbeat of nodes that must not expire during a case.
const ttl = 10 * time.Second

// shortTTL is the heartbeat of nodes that a case lets expire.
const shortTTL = 300 * time.Millisecond

func beat(t *testing.T, p router.Presence, nodes ...string) {
	t.Helper()
	beatFor(t, p, ttl, nodes...)
}

func beatFor(t *testing.T, p router.Presence, d time.Duration, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		if err := p.Heartbeat(t.Context(), n, d); err != nil {
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

// nodes returns Nodes(users) printed, maps being printed in key order.
func nodes(t *testing.T, p router.Presence, users ...int64) string {
	t.Helper()
	m, err := p.Nodes(t.Context(), users)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(m)
}

// eventually polls Nodes(users) until it prints want, for a few seconds.
func eventually(t *testing.T, p router.Presence, want string, users ...int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := nodes(t, p, users...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Nodes %s, still not %s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(from, to int64) []int64 {
	var s []int64
	for u := from; u <= to; u++ {
		s = append(s, u)
	}
	return s
}

// Connections on one node are counted: the second device of a user is
// not a first, and closing it is not a last.
func testFirstAndLast(t *testing.T, p router.Presence) {
	beat(t, p, "a")
	connect(t, p, 1, "a", true)
	connect(t, p, 1, "a", false)
	if got := nodes(t, p, 1); got != "map[1:[a]]" {
		t.Fatalf("Nodes %s", got)
	}
	disconnect(t, p, 1, "a", false)
	disconnect(t, p, 1, "a", true)
	if got := nodes(t, p, 1); got != "map[]" {
		t.Fatalf("Nodes after leaving %s", got)
	}
	connect(t, p, 1, "a", true)
}

func testTwoNodes(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	connect(t, p, 7, "a", true)
	connect(t, p, 7, "b", false)
	connect(t, p, 7, "b", false)
	if got := nodes(t, p, 7); got != "map[7:[a b]]" {
		t.Fatalf("Nodes %s", got)
	}
	disconnect(t, p, 7, "a", false)
	disconnect(t, p, 7, "b", false)
	if got := nodes(t, p, 7); got != "map[7:[b]]" {
		t.Fatalf("Nodes %s", got)
	}
	disconnect(t, p, 7, "b", true)
	if got := nodes(t, p, 7); got != "map[]" {
		t.Fatalf("Nodes after leaving %s", got)
	}
}

// Nodes answers for many users at once, leaving out the offline ones.
func testNodes(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	const users = 1000
	want := map[int64][]string{}
	for u := int64(1); u <= users; u++ {
		switch u % 3 {
		case 0:
			connect(t, p, u, "a", true)
			want[u] = []string{"a"}
		case 1:
			connect(t, p, u, "b", true)
			connect(t, p, u, "a", false)
			want[u] = []string{"a", "b"}
		}
	}
	m, err := p.Nodes(t.Context(), ids(1, users+10))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("Nodes of %d users: %d answers, want %d", users, len(m), len(want))
	}
	if m, err := p.Nodes(t.Context(), nil); err != nil || len(m) != 0 {
		t.Fatalf("Nodes of nobody %v %v", m, err)
	}
	if got := nodes(t, p, 3, 3, 5); got != "map[3:[a]]" {
		t.Fatalf("Nodes with a repeated user %s", got)
	}
}

// A connection on a node that never heartbeated is recorded but counts
// only once the node does.
func testDeadNodeConnect(t *testing.T, p router.Presence) {
	connect(t, p, 3, "a", true)
	if got := nodes(t, p, 3); got != "map[]" {
		t.Fatalf("a node that never heartbeated counts: %s", got)
	}
	beat(t, p, "a")
	if got := nodes(t, p, 3); got != "map[3:[a]]" {
		t.Fatalf("after the heartbeat %s", got)
	}
	disconnect(t, p, 3, "a", true)
}

// A node that stops heartbeating is dead: its users are offline, and a
// connection elsewhere is a first one again.
func testExpiry(t *testing.T, p router.Presence) {
	beatFor(t, p, shortTTL, "short")
	beat(t, p, "long")
	connect(t, p, 5, "short", true)
	connect(t, p, 6, "short", true)
	connect(t, p, 5, "long", false)
	disconnect(t, p, 5, "long", false)
	eventually(t, p, "map[]", 5, 6)
	connect(t, p, 5, "long", true)
	disconnect(t, p, 5, "short", false) // on long still
	disconnect(t, p, 5, "long", true)
}

// Heartbeats within the ttl keep a node live past its first ttl: the node
// is checked just before each heartbeat, and for a while after the first
// ttl ran out.
func testHeartbeatKeepsAlive(t *testing.T, p router.Presence) {
	const d = 400 * time.Millisecond
	beatFor(t, p, d, "a")
	connect(t, p, 8, "a", true)
	for end := time.Now().Add(2 * d); time.Now().Before(end); {
		time.Sleep(d / 5)
		if got := nodes(t, p, 8); got != "map[8:[a]]" {
			t.Fatalf("a node heartbeating every %v expired: %s", d/5, got)
		}
		beatFor(t, p, d, "a")
	}
	eventually(t, p, "map[]", 8)
}

// A node that heartbeats again after it expired is live again with the
// connections it had (so a node starting under an old name drops it
// first).
func testRevive(t *testing.T, p router.Presence) {
	beatFor(t, p, shortTTL, "a")
	connect(t, p, 9, "a", true)
	eventually(t, p, "map[]", 9)
	beat(t, p, "a")
	if got := nodes(t, p, 9); got != "map[9:[a]]" {
		t.Fatalf("after the node came back %s", got)
	}
	connect(t, p, 9, "a", false)
	if err := p.DropNode(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	beat(t, p, "a")
	connect(t, p, 9, "a", true)
	disconnect(t, p, 9, "a", true)
}

func testBadTTL(t *testing.T, p router.Presence) {
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if err := p.Heartbeat(t.Context(), "a", d); !errors.Is(err, router.ErrTTL) {
			t.Fatalf("Heartbeat with ttl %v: %v, want ErrTTL", d, err)
		}
	}
	if got := nodes(t, p); got != "map[]" {
		t.Fatal(got)
	}
}

func testDropNode(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	connect(t, p, 1, "a", true)
	connect(t, p, 1, "a", false)
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
	if got := nodes(t, p, 1, 2); got != "map[2:[b]]" {
		t.Fatalf("the dropped node came back with its users: %s", got)
	}
	connect(t, p, 1, "a", true)
	if got := nodes(t, p, 1); got != "map[1:[a]]" {
		t.Fatalf("after rejoining %s", got)
	}
	if err := p.DropNode(t.Context(), "never-seen"); err != nil {
		t.Fatalf("DropNode of an unknown node: %v", err)
	}
}

// DropNode forgets a node's users however many there are, and only that
// node's.
func testDropManyUsers(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b")
	const users = 1500 // several chunks of the Redis DropNode
	for u := int64(1); u <= users; u++ {
		connect(t, p, u, "a", true)
	}
	connect(t, p, users, "b", false)
	if err := p.DropNode(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	beat(t, p, "a")
	if got := nodes(t, p, ids(1, users)...); got != fmt.Sprintf("map[%d:[b]]", users) {
		t.Fatalf("after DropNode %.200s", got)
	}
}

func testDisconnectUnknown(t *testing.T, p router.Presence) {
	beat(t, p, "a")
	disconnect(t, p, 42, "a", false)
	connect(t, p, 42, "a", true)
	disconnect(t, p, 42, "b", false) // never connected there
	disconnect(t, p, 42, "a", true)
	disconnect(t, p, 42, "a", false)
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
	if got := nodes(t, p, 1, users); got != fmt.Sprintf("map[1:[a b] %d:[a b]]", users) {
		t.Fatalf("after all connects %s", got)
	}
	round(p.Disconnect, lasts)
	for u := int64(1); u <= users; u++ {
		if firsts[u] != 1 || lasts[u] != 1 {
			t.Fatalf("user %d: %d firsts, %d lasts, want 1 and 1", u, firsts[u], lasts[u])
		}
	}
	if got := nodes(t, p, ids(1, users)...); got != "map[]" {
		t.Fatalf("after all disconnects %s", got)
	}
}

// Goroutines open and close connections of a few users on three nodes at
// random, each holding several at a time, and close them all at the end. A user's changes alternate, so however they
// interleave each user has as many firsts as lasts, and nobody is left
// online.
func testChurn(t *testing.T, p router.Presence) {
	beat(t, p, "a", "b", "c")
	const users, workers, steps = 4, 8, 60
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		firsts, lasts [users + 1]int
		nodeNames     = []string{"a", "b", "c"}
		ctx           = context.Background()
	)
	count := func(c *int) {
		mu.Lock()
		*c++
		mu.Unlock()
	}
	type conn struct {
		user int64
		node string
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var open []conn // this worker's connections
			for i := 0; i < steps || len(open) > 0; i++ {
				if i < steps && (len(open) == 0 || rng.IntN(2) == 0) {
					c := conn{1 + rng.Int64N(users), nodeNames[rng.IntN(len(nodeNames))]}
					first, err := p.Connect(ctx, c.user, c.node)
					if err != nil {
						t.Error(err)
						return
					}
					if first {
						count(&firsts[c.user])
					}
					open = append(open, c)
					continue
				}
				k := rng.IntN(len(open))
				c := open[k]
				open = append(open[:k], open[k+1:]...)
				last, err := p.Disconnect(ctx, c.user, c.node)
				if err != nil {
					t.Error(err)
					return
				}
				if last {
					count(&lasts[c.user])
				}
			}
		}()
	}
	wg.Wait()
	for u := 1; u <= users; u++ {
		if firsts[u] != lasts[u] || firsts[u] == 0 {
			t.Errorf("user %d: %d firsts, %d lasts", u, firsts[u], lasts[u])
		}
	}
	if got := nodes(t, p, ids(1, users)...); got != "map[]" {
		t.Fatalf("after the churn %s", got)
	}
}

// Every call with a context already done fails with its error.
func testCancelled(t *testing.T, p router.Presence) {
	beat(t, p, "a")
	connect(t, p, 1, "a", true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"Connect":    func() error { _, err := p.Connect(ctx, 2, "a"); return err },
		"Disconnect": func() error { _, err := p.Disconnect(ctx, 1, "a"); return err },
		"Nodes":      func() error { _, err := p.Nodes(ctx, []int64{1}); return err },
		"Heartbeat":  func() error { return p.Heartbeat(ctx, "a", ttl) },
		"DropNode":   func() error { return p.DropNode(ctx, "a") },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	if got := nodes(t, p, 1, 2); got != "map[1:[a]]" {
		t.Fatalf("after the cancelled calls %s", got)
	}
}

// After Close every call fails with ErrClosed.
func testClosed(t *testing.T, p router.Presence) {
	beat(t, p, "a")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	calls := map[string]func() error{
		"Connect":    func() error { _, err := p.Connect(ctx, 1, "a"); return err },
		"Disconnect": func() error { _, err := p.Disconnect(ctx, 1, "a"); return err },
		"Nodes":      func() error { _, err := p.Nodes(ctx, []int64{1}); return err },
		"Heartbeat":  func() error { return p.Heartbeat(ctx, "a", ttl) },
		"DropNode":   func() error { return p.DropNode(ctx, "a") },
		"Close":      p.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, router.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
