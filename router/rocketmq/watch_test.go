package rocketmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

func testNameServer() string {
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
		b, err := New(Config{NameServers: []string{testNameServer()}, Topic: topic, Node: node + "-" + sfx,
			ProbeEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("RocketMQ at %s: %v: run `make services`", testNameServer(), err)
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
