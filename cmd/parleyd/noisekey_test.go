package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// TestBadNoiseKeyDoesNotJoin: a node whose Noise key file is bad exits with
// an error that names the file, before it registers in the cluster (it
// would hold slots in the table until its TTL ran out).
func TestBadNoiseKeyDoesNotJoin(t *testing.T) {
	redisAddr := envOr("PARLEY_REDIS_ADDR", "127.0.0.1:6379")
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis: %v: run `make services`", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "parley_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, server.NoiseKeyFile), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"--listen", servertest.FreeAddr(t), "--cluster", "--cluster-prefix", prefix, "--cluster-ttl", "30s",
		"--redis-addr", redisAddr, "--mq-namesrv", envOr("PARLEY_MQ_NAMESRV", "127.0.0.1:9876"), "--mq-topic", strings.ToUpper(prefix),
		"--store", "mysql", "--mysql-dsn", "parley:parley@tcp(127.0.0.1:3306)/parley_unused", "--data-dir", dir, "--log-level", "error"})
	if !errors.Is(err, server.ErrNoiseKey) || !strings.Contains(err.Error(), "noise key") || !strings.Contains(err.Error(), server.NoiseKeyFile) {
		t.Fatalf("parleyd with a bad key file: %v, want a noise key error naming the file", err)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("the node left %v in the cluster's Redis", keys)
	}
}
