package rocketmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

// NameServerForTests is the name server of the tests on a real broker:
// PARLEY_MQ_NAMESRV, else that of `make services`. The external test
// package (rocketmq_test) uses it too.
func NameServerForTests() string {
	if a := os.Getenv("PARLEY_MQ_NAMESRV"); a != "" {
		return a
	}
	return "127.0.0.1:9876"
}

// The watchdog's restart, on the RocketMQ of `make services` (which this
// test does not stop): batches sent before, during and after the consumer
// is started again all arrive, once each, in order; and the probes show
// that the consumer consumes.
func TestRestartConsumer(t *testing.T) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	sfx := hex.EncodeToString(r[:])
	topic := "PARLEY_W_" + sfx
	mk := func(node string) *Bus {
		b, err := New(Config{NameServers: []string{NameServerForTests()}, Topic: topic, Node: node + "-" + sfx,
			ProbeEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("RocketMQ at %s: %v: run `make services`", NameServerForTests(), err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	a, b := mk("a"), mk("b")
	var (
		mu  sync.Mutex
		got []int64
	)
	if err := b.Listen(func(envs []router.Envelope) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range envs {
			got = append(got, e.Users...)
		}
	}); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var seq uint64
	sendTo := func(lo, hi int64) {
		for u := lo; u <= hi; u++ {
			seq++
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := a.Send(ctx, b.cfg.Node, seq, []router.Envelope{{Kind: router.EnvPush, Users: []int64{u}}})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("a probe consumed", func() bool { return b.probeSeen.Load() > 0 })
	sendTo(1, n/3)
	done := make(chan time.Duration)
	go func() {
		began := time.Now()
		b.restart(b.seqr, "test")
		done <- time.Since(began)
	}()
	sendTo(n/3+1, 2*n/3)
	took := <-done
	sendTo(2*n/3+1, n)
	wait("every batch", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n })
	seen := b.probeSeen.Load()
	wait("a probe consumed after the restart", func() bool { return b.probeSeen.Load() > seen })
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
	if b.Restarts() != 1 {
		t.Fatalf("%d restarts, want 1", b.Restarts())
	}
	t.Logf("the consumer started again in %v", took)
}

// fakeConsumption is what a consumer did, as the watchdog reads it.
type fakeConsumption struct {
	any   time.Time
	from  map[queueKey]time.Time
	probe uint64
}

func (f *fakeConsumption) lastConsumed() time.Time               { return f.any }
func (f *fakeConsumption) lastConsumedFrom(q queueKey) time.Time { return f.from[q] }
func (f *fakeConsumption) probesSeen() uint64                    { return f.probe }

// The watchdog's rule, probe by probe (one a second, StuckAfter 2 s).
func TestWatchdogRule(t *testing.T) {
	const stuck = 2 * time.Second
	q0, q1 := queueKey{"b", 0}, queueKey{"b", 1}
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	down := errors.New("down")

	t.Run("one queue stuck while the others flow", func(t *testing.T) {
		var st watchState
		c := &fakeConsumption{from: map[queueKey]time.Time{}}
		restarts := map[int]string{}
		for s := 1; s <= 40; s++ {
			// Queue 1 flows every second; queue 0 consumes nothing.
			c.any, c.from[q1] = at(s), at(s)
			if why := st.step(at(s), uint64(s), q0, nil, c, stuck); why != "" {
				restarts[s] = why
			}
		}
		// First after 2 s, then after 4, 8, 16 (the waits double while
		// the queue stays stuck).
		want := []int{3, 8, 17, 34}
		if len(restarts) != len(want) {
			t.Fatalf("restarts at %v, want at %v", restarts, want)
		}
		for _, s := range want {
			if restarts[s] != "queue b/0 consumes nothing" {
				t.Fatalf("restarts %v, want one at %d s for queue b/0", restarts, s)
			}
		}
	})

	t.Run("a queue draining a backlog is not stuck", func(t *testing.T) {
		var st watchState
		c := &fakeConsumption{from: map[queueKey]time.Time{}}
		for s := 1; s <= 20; s++ {
			c.any, c.from[q0] = at(s), at(s) // batches ahead of the probe
			if why := st.step(at(s), uint64(s), q0, nil, c, stuck); why != "" {
				t.Fatalf("restart at %d s (%s) while queue 0 drains", s, why)
			}
		}
	})

	t.Run("probes consumed: no restart, and the waits start over", func(t *testing.T) {
		var st watchState
		c := &fakeConsumption{from: map[queueKey]time.Time{}}
		for s := 1; s <= 3; s++ {
			st.step(at(s), uint64(s), q0, nil, c, stuck) // stuck: restart at 3
		}
		if st.waits != 2 {
			t.Fatalf("waits %d after a stuck restart, want 2", st.waits)
		}
		for s := 4; s <= 20; s++ {
			c.probe = uint64(s - 1) // each probe consumed within a second
			c.any, c.from[q0] = at(s), at(s)
			if why := st.step(at(s), uint64(s), q0, nil, c, stuck); why != "" {
				t.Fatalf("restart at %d s (%s) with every probe consumed", s, why)
			}
		}
		if st.waits != 1 {
			t.Fatalf("waits %d once probes are consumed, want 1", st.waits)
		}
	})

	t.Run("broker back", func(t *testing.T) {
		var st watchState
		c := &fakeConsumption{any: at(0), from: map[queueKey]time.Time{}}
		st.step(at(1), 1, q0, nil, c, stuck)
		for s := 2; s <= 5; s++ {
			if why := st.step(at(s), uint64(s), queueKey{}, down, c, stuck); why != "" {
				t.Fatalf("restart at %d s (%s) while the broker is down", s, why)
			}
		}
		if why := st.step(at(6), 6, q1, nil, c, stuck); why != "the broker is back" {
			t.Fatalf("first probe through after the outage: %q, want a restart", why)
		}
		// Back again, but the consumer already consumed after the outage
		// began: it resumed by itself.
		st.step(at(7), 7, queueKey{}, down, c, stuck)
		c.any = at(8)
		if why := st.step(at(9), 9, q1, nil, c, stuck); why != "" {
			t.Fatalf("restart %q, though the consumer consumed since the outage", why)
		}
	})
}
