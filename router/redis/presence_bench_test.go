package redis_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

// implementations are the Presence implementations the benchmarks compare.
var implementations = []struct {
	name string
	new  func(testing.TB) router.Presence
}{
	{"memory", func(testing.TB) router.Presence { return router.NewMemoryPresence(nil) }},
	{"redis", newRedis},
}

// BenchmarkPresence is a connection opening and closing: a Connect and a
// Disconnect, from concurrent callers, on distinct users.
func BenchmarkPresence(b *testing.B) {
	for _, impl := range implementations {
		b.Run(impl.name, func(b *testing.B) {
			p := impl.new(b)
			defer p.Close()
			ctx := context.Background()
			if err := p.Heartbeat(ctx, "n", time.Minute); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := next.Add(1)
					if _, err := p.Connect(ctx, u, "n"); err != nil {
						b.Error(err)
						return
					}
					if _, err := p.Disconnect(ctx, u, "n"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}

// BenchmarkPresenceNodes is the lookup of a group's members before a
// fan-out: Nodes of users, half of them online on two nodes.
func BenchmarkPresenceNodes(b *testing.B) {
	for _, impl := range implementations {
		for _, size := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, size), func(b *testing.B) {
				p := impl.new(b)
				defer p.Close()
				ctx := context.Background()
				users := make([]int64, size)
				for i := range users {
					users[i] = int64(i + 1)
					if i%2 == 0 {
						node := []string{"a", "b"}[i%4/2]
						if err := p.Heartbeat(ctx, node, time.Minute); err != nil {
							b.Fatal(err)
						}
						if _, err := p.Connect(ctx, users[i], node); err != nil {
							b.Fatal(err)
						}
					}
				}
				for b.Loop() {
					m, err := p.Nodes(ctx, users)
					if err != nil || len(m) != (size+1)/2 {
						b.Fatalf("Nodes: %d online, %v", len(m), err)
					}
				}
			})
		}
	}
}
