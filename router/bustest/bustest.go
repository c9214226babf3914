// Package bustest is the contract suite of router.Bus: every
// implementation runs it (router.MemoryBus in router, RocketMQ in
// router/rocketmq).
package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

// New returns, for one test, a function that makes the bus of a node:
// all buses it makes are on one fresh network (topic).
type New func(t *testing.T) func(node string) router.Bus

// Wait is how long a batch may take to arrive; RocketMQ consumers need
// seconds to start.
var Wait = 60 * time.Second

// Run runs the contract suite.
func Run(t *testing.T, newNet New) {
	cases := []struct {
		name string
		fn   func(*testing.T, func(string) router.Bus)
	}{
		{"OnlyTheNamedNode", onlyNamed},
		{"OrderPerSender", orderPerSender},
		{"BatchIntact", batchIntact},
		{"SeqOrderRepeatsHoles", seqOrder},
		{"SentBeforeRestart", sentWhileAway},
		{"Closed", closed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newNet(t))
		})
	}
}

// inbox records the batches a bus hands over.
type inbox struct {
	mu      sync.Mutex
	batches [][]router.Envelope
	busy    map[int64]bool // by sender: users 1000-1999 are a's, 2000-2999 c's
	overlap bool
}

func (in *inbox) handle(envs []router.Envelope) {
	var from int64
	if len(envs) > 0 && len(envs[0].Users) > 0 {
		from = envs[0].Users[0] / 1000
	}
	in.mu.Lock()
	if in.busy == nil {
		in.busy = map[int64]bool{}
	}
	if in.busy[from] {
		in.overlap = true
	}
	in.busy[from] = true
	in.batches = append(in.batches, envs)
	in.mu.Unlock()
	time.Sleep(50 * time.Microsecond)
	in.mu.Lock()
	in.busy[from] = false
	in.mu.Unlock()
}

// users lists the first user of every envelope, in arrival order.
func (in *inbox) users() []int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []int64
	for _, b := range in.batches {
		for _, e := range b {
			if len(e.Users) > 0 {
				out = append(out, e.Users[0])
			}
		}
	}
	return out
}

// waitFor waits until in holds n envelopes with users.
func (in *inbox) waitFor(t *testing.T, n int) []int64 {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		got := in.users()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d envelopes arrived", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func listen(t *testing.T, b router.Bus) *inbox {
	t.Helper()
	in := &inbox{}
	if err := b.Listen(in.handle); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return in
}

func open(t *testing.T, mk func(string) router.Bus, node string) router.Bus {
	b := mk(node)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// seqs numbers the batches of each test's senders, as an Outbox does.
var (
	seqMu sync.Mutex
	seqs  = map[router.Bus]map[string]uint64{}
)

func nextSeq(b router.Bus, node string) uint64 {
	seqMu.Lock()
	defer seqMu.Unlock()
	if seqs[b] == nil {
		seqs[b] = map[string]uint64{}
	}
	seqs[b][node]++
	return seqs[b][node]
}

func send(t *testing.T, b router.Bus, node string, envs ...router.Envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Send(ctx, node, nextSeq(b, node), envs); err != nil {
		t.Fatalf("Send to %s: %v", node, err)
	}
}

func push(user int64) router.Envelope {
	return router.Envelope{Kind: router.EnvPush, Users: []int64{user}, Frame: []byte{byte(user)}}
}

// A batch reaches the node it is sent to, and only it.
func onlyNamed(t *testing.T, mk func(string) router.Bus) {
	a, b := open(t, mk, "a"), open(t, mk, "b")
	send(t, a, "b", push(1)) // creates the topic where that matters
	inA, inB := listen(t, a), listen(t, b)
	for u := int64(2); u <= 10; u++ {
		send(t, a, "b", push(u))
	}
	send(t, b, "a", push(100))
	got := inB.waitFor(t, 10)
	slices.Sort(got)
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Fatalf("b got %v", got)
	}
	if got := inA.waitFor(t, 1); fmt.Sprint(got) != "[100]" {
		t.Fatalf("a got %v", got)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(inB.users()); n != 10 {
		t.Fatalf("b got %d envelopes, want 10", n)
	}
}

// The batches of one sender arrive in the order sent, one at a time, with
// two senders interleaving (whose batches may be handled at once).
func orderPerSender(t *testing.T, mk func(string) router.Bus) {
	a, c, b := open(t, mk, "a"), open(t, mk, "c"), open(t, mk, "b")
	send(t, a, "b", push(0))
	in := listen(t, b)
	const n = 200
	var wg sync.WaitGroup
	for _, s := range []struct {
		bus  router.Bus
		base int64
	}{{a, 1000}, {c, 2000}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(1); i <= n; i++ {
				// Batches of 1-3 envelopes.
				envs := []router.Envelope{push(s.base + i)}
				for k := int64(1); k < i%3+1 && i < n; k++ {
					i++
					envs = append(envs, push(s.base+i))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := s.bus.Send(ctx, "b", nextSeq(s.bus, "b"), envs); err != nil {
					t.Error(err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	got := in.waitFor(t, 2*n+1)
	var fromA, fromC []int64
	for _, u := range got {
		switch {
		case u > 2000:
			fromC = append(fromC, u-2000)
		case u > 1000:
			fromA = append(fromA, u-1000)
		}
	}
	for _, seq := range [][]int64{fromA, fromC} {
		if len(seq) != n || !slices.IsSorted(seq) {
			t.Fatalf("out of order or incomplete: %v", seq)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.overlap {
		t.Fatal("two batches of one sender were handled at once")
	}
}

// Every field of every envelope of a batch arrives as sent.
func batchIntact(t *testing.T, mk func(string) router.Bus) {
	a, b := open(t, mk, "a"), open(t, mk, "b")
	sent := []router.Envelope{
		{Kind: router.EnvPush, Users: []int64{7, -3, 1 << 40}, Frame: []byte("frame one")},
		{Kind: router.EnvGroupChanged, Group: 1<<50 + 3},
		{Kind: router.EnvFriendsChanged, Users: []int64{9}},
		{Kind: router.EnvPush, Users: []int64{8}, Frame: make([]byte, 64<<10)},
	}
	send(t, a, "b", sent...)
	var (
		mu  sync.Mutex
		got []router.Envelope
	)
	if err := b.Listen(func(envs []router.Envelope) {
		mu.Lock()
		got = append(got, envs...)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(Wait)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d envelopes", n, len(sent))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(sent) {
		t.Fatalf("%d envelopes, want %d", len(got), len(sent))
	}
	for i := range sent {
		w, g := sent[i], got[i]
		if w.Kind != g.Kind || w.Group != g.Group || !slices.Equal(w.Users, g.Users) || string(w.Frame) != string(g.Frame) {
			t.Fatalf("envelope %d: got %+v, want %+v", i, g, w)
		}
	}
}

// What is sent to a node while it is away reaches it when it listens
// again under its name.
func sentWhileAway(t *testing.T, mk func(string) router.Bus) {
	a, b := open(t, mk, "a"), open(t, mk, "b")
	send(t, a, "b", push(1))
	in := listen(t, b)
	in.waitFor(t, 1)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for u := int64(2); u <= 5; u++ {
		send(t, a, "b", push(u))
	}
	b2 := open(t, mk, "b")
	in2 := listen(t, b2)
	got := in2.waitFor(t, 4)
	if fmt.Sprint(got[len(got)-4:]) != "[2 3 4 5]" {
		t.Fatalf("after the restart b got %v", got)
	}
}

// After Close every method returns router.ErrClosed.
func closed(t *testing.T, mk func(string) router.Bus) {
	a := mk("a")
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Send(context.Background(), "b", 1, []router.Envelope{push(1)}); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := a.Listen(func([]router.Envelope) {}); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Listen after Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// Batches are handed over in seq order whatever order they are sent in
// (an Outbox keeps several on their way at once), a repeated seq once. A
// seq missing before the first batch handed over (the receiver started
// mid-stream) is skipped after a while; a later one is waited for, since
// its sender is retrying it, until a new incarnation of the sender shows
// it never will.
func seqOrder(t *testing.T, mk func(string) router.Bus) {
	a, b := open(t, mk, "a"), open(t, mk, "b")
	in := listen(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sendSeqs := func(bus router.Bus, seqs ...uint64) {
		t.Helper()
		for _, seq := range seqs {
			if err := bus.Send(ctx, "b", seq, []router.Envelope{push(int64(seq))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sendSeqs(a, 2, 4, 3, 3, 2, 6) // 1 never comes; 5 comes late
	if got := in.waitFor(t, 3); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("got %v, want [2 3 4]", got)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the first hold
	if got := in.users(); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("a batch overtook the missing one: got %v, want [2 3 4]", got)
	}
	sendSeqs(a, 5, 8) // 7 never comes
	if got := in.waitFor(t, 5); fmt.Sprint(got) != "[2 3 4 5 6]" {
		t.Fatalf("got %v, want [2 3 4 5 6]", got)
	}
	// a restarts: its 7 will never come.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := open(t, mk, "a")
	if err := a2.Send(ctx, "b", 1, []router.Envelope{push(101)}); err != nil {
		t.Fatal(err)
	}
	got := in.waitFor(t, 7)
	slices.Sort(got[5:])
	if fmt.Sprint(got) != "[2 3 4 5 6 8 101]" {
		t.Fatalf("got %v, want [2 3 4 5 6] then 8 and 101", got)
	}
	time.Sleep(200 * time.Millisecond)
	if got := in.users(); len(got) != 7 {
		t.Fatalf("got %v", got)
	}
}
