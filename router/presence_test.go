package router_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/presencetest"
)

func TestMemoryPresence(t *testing.T) {
	presencetest.Run(t, func(*testing.T) router.Presence { return router.NewMemoryPresence(nil) })
}

// redisAddr is PARLEY_REDIS_ADDR, or the Redis of `make services`.
func redisAddr() string {
	if a := os.Getenv("PARLEY_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newRedis returns a RedisPresence under a key prefix of its own.
func newRedis(t testing.TB) router.Presence {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis not reachable at %s: %v: run `make services`", redisAddr(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "parley_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: redisAddr()})
		defer c.Close()
		keys, _ := c.Keys(context.Background(), prefix+":*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	return router.NewRedisPresence(rdb, prefix)
}

func TestRedisPresence(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) router.Presence { return newRedis(t) })
}

func BenchmarkPresence(b *testing.B) {
	for _, c := range []struct {
		name string
		new  func(testing.TB) router.Presence
	}{
		{"memory", func(testing.TB) router.Presence { return router.NewMemoryPresence(nil) }},
		{"redis", newRedis},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := c.new(b)
			defer p.Close()
			ctx := context.Background()
			if err := p.Heartbeat(ctx, "n", time.Minute); err != nil {
				b.Fatal(err)
			}
			b.RunParallel(func(pb *testing.PB) {
				var u int64
				for pb.Next() {
					u++
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
