package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/membershiptest"
	"github.com/parleyim/parley/router/presencetest"
	predis "github.com/parleyim/parley/router/redis"
)

// redisAddr is PARLEY_REDIS_ADDR, or the Redis of `make services`.
func redisAddr() string {
	if a := os.Getenv("PARLEY_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newRedis returns a Presence under a key prefix of its own, whose
// keys are deleted when the test ends. Without Redis the test fails: it
// is a service of `make services`, not an option.
func newRedis(t testing.TB) router.Presence {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("Redis not reachable at %s: run `make services` (%v)", redisAddr(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "parley_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteKeys(t, prefix) })
	return predis.NewPresence(rdb, prefix)
}

// deleteKeys deletes every key under prefix.
func deleteKeys(t testing.TB, prefix string) {
	c := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("deleting the keys under %s: %v", prefix, err)
	}
}

func TestPresence(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) router.Presence { return newRedis(t) })
}

// The keys are the ones written down on Presence, and a node's
// heartbeat is one key however many users it holds.
func TestPresenceKeys(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	ctx := t.Context()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis not reachable at %s: run `make services` (%v)", redisAddr(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "parley_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteKeys(t, prefix) })
	p := predis.NewPresence(redis.NewClient(&redis.Options{Addr: redisAddr()}), prefix)
	defer p.Close()

	if err := p.Heartbeat(ctx, "n1", time.Minute); err != nil {
		t.Fatal(err)
	}
	for u := int64(1); u <= 3; u++ {
		if _, err := p.Connect(ctx, u, "n1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Connect(ctx, 1, "n1"); err != nil {
		t.Fatal(err)
	}
	if got := rdb.HGetAll(ctx, prefix+":presence:1").Val(); got["n1"] != "2" || len(got) != 1 {
		t.Fatalf("%s:presence:1 = %v", prefix, got)
	}
	if got := rdb.SCard(ctx, prefix+":node:n1:users").Val(); got != 3 {
		t.Fatalf("%s:node:n1:users has %d members", prefix, got)
	}
	if ttl := rdb.PTTL(ctx, prefix+":node:n1:alive").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("%s:node:n1:alive ttl %v", prefix, ttl)
	}
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) != 5 { // 3 users, the alive key, the user set
		t.Fatalf("keys %v", keys)
	}
	if err := p.DropNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, prefix+":presence:1", prefix+":node:n1:users", prefix+":node:n1:alive").Val(); n != 0 {
		t.Fatalf("%d keys left after DropNode", n)
	}
}

// newPrefix returns a key prefix of the test's own, deleted when it ends.
func newPrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "parley_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteKeys(t, prefix) })
	return prefix
}

func TestMembership(t *testing.T) {
	membershiptest.Run(t, func(t *testing.T) router.Membership {
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
		if err := rdb.Ping(t.Context()).Err(); err != nil {
			t.Fatalf("Redis not reachable at %s: run `make services` (%v)", redisAddr(), err)
		}
		return predis.NewMembership(rdb, newPrefix(t))
	})
}
