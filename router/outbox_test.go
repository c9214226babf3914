package router_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

type recorder struct {
	mu      sync.Mutex
	users   []int64
	batches int
	// catchUps holds the EnvCatchUp envelopes' times and where in users
	// they came.
	catchUps []catchUp
}

type catchUp struct {
	since int64 // Unix ms
	at    int   // len(users) when it came
}

func (r *recorder) handle(envs []router.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	for _, e := range envs {
		if e.Kind == router.EnvCatchUp {
			r.catchUps = append(r.catchUps, catchUp{since: e.Group, at: len(r.users)})
			continue
		}
		r.users = append(r.users, e.Users[0])
	}
}

func (r *recorder) waitFor(t *testing.T, n int) []int64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.users)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d envelopes arrived", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitInOrder waits for the envelopes of users 1 to n and fails unless
// they arrived in that order, each once.
func (r *recorder) waitInOrder(t *testing.T, n int) {
	t.Helper()
	got := r.waitFor(t, n)
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("arrived out of order or twice: %v", got)
	}
}

// twoNodes returns a memory network, the bus of its node a and what
// reaches its node b. Both buses close when the test ends.
func twoNodes(t *testing.T) (*router.MemoryNetwork, *router.MemoryBus, *recorder) {
	t.Helper()
	net := router.NewMemoryNetwork()
	a, b := net.Bus("a"), net.Bus("b")
	t.Cleanup(func() {
		b.Close()
		a.Close()
	})
	rec := &recorder{}
	if err := b.Listen(rec.handle); err != nil {
		t.Fatal(err)
	}
	return net, a, rec
}

// Posts never wait for the bus: while it is down they queue, in order, and
// all of them leave, in batches, once it is back.
func TestOutboxRetriesInOrder(t *testing.T) {
	net, a, rec := twoNodes(t)
	o := router.NewOutbox(router.OutboxConfig{Bus: a, MaxBatch: 100, MaxBackoff: 20 * time.Millisecond})
	defer closeOutbox(o)

	net.SetDown(true)
	start := time.Now()
	const n = 1000
	for i := int64(1); i <= n; i++ {
		if !o.Post("b", router.Envelope{Kind: router.EnvPush, Users: []int64{i}, Frame: []byte("x")}) {
			t.Fatal("Post refused")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("posting %d envelopes to a down bus took %v", n, d)
	}
	time.Sleep(100 * time.Millisecond)
	if _, _, failures, queued := o.Stats(); failures == 0 || queued != n {
		t.Fatalf("while down: %d failures, %d queued", failures, queued)
	}
	net.SetDown(false)
	rec.waitInOrder(t, n)
	rec.mu.Lock()
	batches := rec.batches
	rec.mu.Unlock()
	if batches > 20 {
		t.Fatalf("%d envelopes in %d bus messages; want batches of up to 100", n, batches)
	}
	// The last batch reaches the receiver before Publish returns to the
	// outbox, so its counters may lag the delivery by a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		sent, dropped, _, queued := o.Stats()
		if sent == n && dropped == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d dropped %d queued %d", sent, dropped, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

// Past MaxBytes the oldest queued envelopes are dropped and counted; the
// newest leave once the bus is back, behind one EnvCatchUp that says when
// the oldest dropped one was posted.
func TestOutboxBound(t *testing.T) {
	net, a, rec := twoNodes(t)
	o := router.NewOutbox(router.OutboxConfig{Bus: a, MaxBytes: 10 * (100 + 8 + 16), MaxBackoff: 10 * time.Millisecond})
	defer closeOutbox(o)
	net.SetDown(true)
	var posted [101][2]int64 // Unix ms before and after each Post
	for i := int64(1); i <= 100; i++ {
		posted[i][0] = time.Now().UnixMilli()
		o.Post("b", router.Envelope{Kind: router.EnvPush, Users: []int64{i}, Frame: make([]byte, 100)})
		posted[i][1] = time.Now().UnixMilli()
	}
	_, dropped, _, queued := o.Stats()
	// Ten fit; the newest is always kept, even when the ten are in flight.
	if queued > 11 || dropped != uint64(100-queued) {
		t.Fatalf("%d queued, %d dropped", queued, dropped)
	}
	if b := o.QueuedBytes(); b != queued*(100+8+16) {
		t.Fatalf("%d envelopes of %d bytes queued, QueuedBytes %d", queued, 100+8+16, b)
	}
	net.SetDown(false)
	got := rec.waitFor(t, queued)
	if got[len(got)-1] != 100 || !slices.IsSorted(got) {
		t.Fatalf("got %v", got)
	}
	// The oldest dropped is the first missing; the first mark says when it
	// was posted, and comes before every envelope posted after it. (Posts
	// that drop more after a batch left put another mark on the next.)
	oldest := int64(1)
	for _, u := range got {
		if u != oldest {
			break
		}
		oldest++
	}
	rec.mu.Lock()
	marks := slices.Clone(rec.catchUps)
	rec.mu.Unlock()
	if len(marks) == 0 || marks[0].since < posted[oldest][0] || marks[0].since > posted[oldest][1] || marks[0].at > int(oldest-1) {
		t.Fatalf("catch-up marks %+v; want the first before envelope %d, since its post (%v)", marks, oldest, posted[oldest])
	}
	// No more drops, no more marks; nothing is left counted.
	o.Post("b", router.Envelope{Kind: router.EnvPush, Users: []int64{101}, Frame: make([]byte, 100)})
	rec.waitFor(t, queued+1)
	rec.mu.Lock()
	n := len(rec.catchUps)
	rec.mu.Unlock()
	if n != len(marks) {
		t.Fatalf("%d catch-up marks after a post with no drop, %d before", n, len(marks))
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.QueuedBytes() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still counted with nothing queued", o.QueuedBytes())
		}
		time.Sleep(time.Millisecond)
	}
}

// Close sends what is queued before it returns, when the bus works.
func TestOutboxCloseFlushes(t *testing.T) {
	_, a, rec := twoNodes(t)
	o := router.NewOutbox(router.OutboxConfig{Bus: a})
	for i := int64(1); i <= 500; i++ {
		o.Post("b", router.Envelope{Kind: router.EnvPush, Users: []int64{i}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 500)
	if o.Post("b", router.Envelope{Kind: router.EnvPush, Users: []int64{1}}) {
		t.Fatal("Post after Close accepted")
	}
}

// slowBus delays every Send, counts how many run at once, and fails the
// first attempt of the seqs in fail after the delay (while later batches
// go through).
type slowBus struct {
	router.Bus
	delay time.Duration

	mu        sync.Mutex
	now, most int
	fail      map[uint64]bool
	attempts  map[uint64]int
}

func (b *slowBus) Send(ctx context.Context, node string, seq uint64, envs []router.Envelope) error {
	b.mu.Lock()
	b.now++
	b.most = max(b.most, b.now)
	b.attempts[seq]++
	fail := b.fail[seq] && b.attempts[seq] == 1
	b.mu.Unlock()
	time.Sleep(b.delay)
	b.mu.Lock()
	b.now--
	b.mu.Unlock()
	if fail {
		return errors.New("slowBus: refused")
	}
	return b.Bus.Send(ctx, node, seq, envs)
}

// Several batches are on their way at once, so a slow round trip does
// not hold the next batch; a batch that fails while later ones go through
// is sent again, and the receiver still gets everything once, in order.
func TestOutboxPipelines(t *testing.T) {
	_, a, rec := twoNodes(t)
	bus := &slowBus{Bus: a, delay: 40 * time.Millisecond, fail: map[uint64]bool{3: true}, attempts: map[uint64]int{}}
	var (
		wmu    sync.Mutex
		waited []time.Duration
	)
	o := router.NewOutbox(router.OutboxConfig{Bus: bus, MaxInFlight: 4, Linger: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond, Waited: func(d time.Duration) {
			wmu.Lock()
			waited = append(waited, d)
			wmu.Unlock()
		}})
	defer closeOutbox(o)
	const n = 60
	for i := int64(1); i <= n; i++ {
		o.Post("b", router.Envelope{Kind: router.EnvPush, Users: []int64{i}, Frame: []byte("x")})
		time.Sleep(2 * time.Millisecond)
	}
	rec.waitInOrder(t, n)
	bus.mu.Lock()
	most, retried := bus.most, bus.attempts[3]
	bus.mu.Unlock()
	if most < 2 || most > 4 {
		t.Fatalf("at most %d sends at once; want 2-4", most)
	}
	if retried != 2 {
		t.Fatalf("the failed batch was attempted %d times, want 2", retried)
	}
	wmu.Lock()
	defer wmu.Unlock()
	if len(waited) < 3 {
		t.Fatalf("Waited told of %d batches", len(waited))
	}
	// Until the failure, no envelope waited for a round trip (40 ms).
	if waited[1] > 30*time.Millisecond {
		t.Fatalf("the second batch waited %v behind the first", waited[1])
	}
	time.Sleep(50 * time.Millisecond)
	if got := rec.waitFor(t, n); len(got) != n {
		t.Fatalf("%d envelopes arrived, want %d", len(got), n)
	}
}

func TestBatchCodec(t *testing.T) {
	envs := []router.Envelope{{Kind: 1, Users: []int64{1, -2}, Frame: []byte("ab")}, {Kind: 2, Group: 5}}
	b := router.AppendBatch(nil, envs)
	got, err := router.DecodeBatch(b)
	if err != nil || len(got) != 2 || got[0].Users[1] != -2 || string(got[0].Frame) != "ab" || got[1].Group != 5 {
		t.Fatalf("%+v %v", got, err)
	}
	for i := range b {
		if _, err := router.DecodeBatch(b[:i]); err == nil {
			t.Fatalf("a batch cut at %d decoded", i)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(router.AppendBatch(nil, []router.Envelope{{Kind: 1, Users: []int64{1}, Frame: []byte("x")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		envs, err := router.DecodeBatch(b)
		if err != nil {
			return
		}
		if again := router.AppendBatch(nil, envs); string(again) != string(b) && len(again) > len(b) {
			t.Fatalf("re-encoding grew: %d > %d", len(again), len(b))
		}
	})
}

func closeOutbox(o *router.Outbox) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = o.Close(ctx)
}
