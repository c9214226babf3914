package rocketmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
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
		bus, err := rocketmq.New(rocketmq.Config{NameServers: []string{nameServer()}, Topic: "PARLEY_B_" + suffix, Node: node + suffix})
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
