// Package s3test gives tests a fresh bucket on the S3-compatible server
// that `make services` runs (S3Proxy on 127.0.0.1:9333), or on the one
// PARLEY_S3_ENDPOINT, PARLEY_S3_ACCESS_KEY and PARLEY_S3_SECRET_KEY name.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/parleyim/parley/storage/blob/s3"
)

// The server of `make services` (scripts/services.sh).
const (
	DefaultEndpoint  = "127.0.0.1:9333"
	DefaultAccessKey = "parley"
	DefaultSecretKey = "parley-secret-key"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Config returns the configuration of a new, empty bucket for one test
// (created at the first Open). The test fails if the server cannot be
// reached: the services are part of the test setup, never a reason to skip.
func Config(t testing.TB) s3.Config {
	t.Helper()
	ep := env("PARLEY_S3_ENDPOINT", DefaultEndpoint)
	conn, err := net.DialTimeout("tcp", ep, 3*time.Second)
	if err != nil {
		t.Fatalf("S3 server not reachable at %s: %v: run `make services`", ep, err)
	}
	conn.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return s3.Config{
		Endpoint:     ep,
		Bucket:       "parley-t-" + hex.EncodeToString(b[:]),
		AccessKey:    env("PARLEY_S3_ACCESS_KEY", DefaultAccessKey),
		SecretKey:    env("PARLEY_S3_SECRET_KEY", DefaultSecretKey),
		Region:       "us-east-1",
		CreateBucket: true,
	}
}

// Open opens a store on a new bucket; the bucket's objects are left for the
// server's data directory (they are small and under .services).
func Open(t testing.TB) *s3.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := s3.Open(ctx, Config(t))
	if err != nil {
		t.Fatalf("open the S3 store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
