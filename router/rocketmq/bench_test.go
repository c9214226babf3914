package rocketmq_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/rocketmq"
)

// BenchmarkRoundTrip is one batch from a to b and b's handler seeing it,
// one at a time: the latency the bus adds to a cross-node push.
func BenchmarkRoundTrip(b *testing.B) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	mk := func(node string) *rocketmq.Bus {
		bus, err := rocketmq.New(rocketmq.Config{NameServers: []string{rocketmq.NameServerForTests()}, Topic: "PARLEY_B_" + suffix, Node: node + suffix})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bus.Close() })
		return bus
	}
	from, to := mk("a"), mk("b")
	got := make(chan struct{}, 1)
	ctx := context.Background()
	if err := from.Send(ctx, "b"+suffix, 1, []router.Envelope{{Kind: router.EnvPush, Users: []int64{1}}}); err != nil {
		b.Fatal(err)
	}
	if err := to.Listen(func([]router.Envelope) { got <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		b.Fatal("the first batch never came")
	}
	var sends, trips []time.Duration
	seq := uint64(1)
	for b.Loop() {
		seq++
		start := time.Now()
		if err := from.Send(ctx, "b"+suffix, seq, []router.Envelope{{Kind: router.EnvPush, Users: []int64{1}, Frame: make([]byte, 200)}}); err != nil {
			b.Fatal(err)
		}
		sends = append(sends, time.Since(start))
		<-got
		trips = append(trips, time.Since(start))
	}
	slices.Sort(sends)
	slices.Sort(trips)
	b.ReportMetric(float64(sends[len(sends)/2].Microseconds())/1000, "send-p50-ms")
	b.ReportMetric(float64(trips[len(trips)/2].Microseconds())/1000, "trip-p50-ms")
	b.ReportMetric(float64(trips[len(trips)*99/100].Microseconds())/1000, "trip-p99-ms")
}

// BenchmarkPaced posts envelopes through an Outbox at a steady rate (one
// per iteration, 1,000 a second) and measures each one from Post to the
// receiver's handler: the outbox's batching and pipelining, the broker and
// the consumer, under a load like a node's, without the node. inflight=1
// is the outbox as it was before it kept several batches on their way.
func BenchmarkPaced(b *testing.B) {
	for _, inflight := range []int{1, 4} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) { paced(b, inflight) })
	}
}

func paced(b *testing.B, inflight int) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	mk := func(node string) *rocketmq.Bus {
		bus, err := rocketmq.New(rocketmq.Config{NameServers: []string{rocketmq.NameServerForTests()}, Topic: "PARLEY_P_" + suffix, Node: node + suffix})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bus.Close() })
		return bus
	}
	from, to := mk("a"), mk("b")
	ctx := context.Background()
	if err := from.Send(ctx, "b"+suffix, 1, nil); err != nil {
		b.Fatal(err)
	}
	var (
		mu    sync.Mutex
		trips []time.Duration
		first = make(chan struct{})
		once  sync.Once
	)
	if err := to.Listen(func(envs []router.Envelope) {
		once.Do(func() { close(first) })
		now := time.Now()
		mu.Lock()
		for _, e := range envs {
			if len(e.Frame) == 8 {
				trips = append(trips, now.Sub(time.Unix(0, int64(binary.LittleEndian.Uint64(e.Frame)))))
			}
		}
		mu.Unlock()
	}); err != nil {
		b.Fatal(err)
	}
	// The first batch (seq 1, sent above) starts the receiver's stream.
	o := router.NewOutbox(router.OutboxConfig{Bus: from, MaxInFlight: inflight})
	o.Post("b"+suffix, router.Envelope{Kind: router.EnvPush, Users: []int64{1}})
	select {
	case <-first:
	case <-time.After(60 * time.Second):
		b.Fatal("the first batch never came")
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	n := 0
	for b.Loop() {
		<-tick.C
		o.Post("b"+suffix, router.Envelope{Kind: router.EnvPush, Users: []int64{1},
			Frame: binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))})
		n++
	}
	b.StopTimer()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = o.Close(cctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(trips)
		mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(trips) < n {
		b.Fatalf("%d of %d envelopes arrived", len(trips), n)
	}
	slices.Sort(trips)
	b.ReportMetric(float64(trips[len(trips)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(trips[len(trips)*99/100].Microseconds())/1000, "p99-ms")
}
