// Package servertest starts real Parley servers on loopback for tests of
// other packages, the way net/http/httptest does for HTTP.
package servertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/protocol/secure"
	"github.com/parleyim/parley/router"
	predis "github.com/parleyim/parley/router/redis"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/mysql"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
	"github.com/parleyim/parley/storage/pebble"
)

// tlog sends slog records to t.Log, so they show only when a test fails.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Logger logs at debug level to t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago (for a server restarted on the same address; Config.Addr may also
// name port 0).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// NoiseKeys is the Noise key of every test server of the process, so that
// a client's pin holds across a restart on the same address, as it does
// for parleyd, which keeps its key in the data dir.
var NoiseKeys = sync.OnceValue(func() *server.NoiseKeys {
	k, err := secure.NewKey(nil)
	if err != nil {
		panic(err)
	}
	return &server.NoiseKeys{Static: k}
})

// Config is the test-friendly base configuration: two event loops, cheap
// bcrypt, no rate limit (frames, logins, the group directory), any user may message any other (tests of the
// friends-only policy set it), bans polled every 100ms, a 300ms presence
// grace, logs to t.Log, the process's test Noise key.
func Config(t testing.TB) server.Config {
	return server.Config{
		NoiseKeys:       NoiseKeys(),
		Addr:            FreeAddr(t),
		EventLoops:      2,
		Workers:         64,
		BcryptCost:      4,
		RateLimit:       -1,
		AuthRatePerAddr: -1,
		AuthRate:        -1,
		DirRatePerAddr:  -1,
		DirRate:         -1,
		MaxConnsPerAddr: -1,
		DMPolicy:        server.DMAnyone,
		BanPoll:         100 * time.Millisecond,
		PresenceGrace:   300 * time.Millisecond,
		Logger:          Logger(t),
	}
}

// Storage is where a test server keeps its data: a directory of the
// embedded store, or a MySQL database. A server started again on the same
// Storage finds the data of the one before.
type Storage struct {
	dir string // embedded store (Pebble)
	dsn string // MySQL
}

// NewStorage returns empty storage of the kind PARLEY_TEST_STORE names:
// "pebble" (the default) or "mysql" (a fresh database on the
// MariaDB of `make services`, or of PARLEY_MYSQL_DSN).
func NewStorage(t testing.TB) Storage {
	t.Helper()
	switch kind := os.Getenv("PARLEY_TEST_STORE"); kind {
	case "", "pebble":
		return Storage{dir: t.TempDir()}
	case "mysql":
		return Storage{dsn: mysqltest.DSN(t)}
	default:
		t.Fatalf("PARLEY_TEST_STORE=%q: want pebble or mysql", kind)
		return Storage{}
	}
}

// MySQLStorage is storage in the MySQL database of dsn.
func MySQLStorage(dsn string) Storage { return Storage{dsn: dsn} }

// Open opens the store.
func (st Storage) Open(hook storage.CommitHook) (storage.Store, error) {
	if st.dsn != "" {
		// No commit interval: the server's tests mostly send one message
		// and wait for its SendAck, each of which would wait for the rest
		// of the interval (storage/mysql tests it; the parleyd of Flags
		// runs with the default).
		return mysql.Open(mysql.Config{DSN: st.dsn, Shards: 4, Hook: hook, BatchInterval: -1})
	}
	return pebble.Open(pebble.Config{Dir: st.dir, Hook: hook})
}

// Flags are the parleyd flags that select this storage.
func (st Storage) Flags() []string {
	if st.dsn != "" {
		return []string{"--store", "mysql", "--mysql-dsn", st.dsn, "--mysql-shards", "4"}
	}
	return []string{"--store", "pebble", "--data-dir", st.dir}
}

// Start runs a server over fresh storage (NewStorage), with Config's
// defaults that mut may change, and stops it when the test ends.
func Start(t testing.TB, mut func(*server.Config)) *server.Server {
	t.Helper()
	return StartOn(t, NewStorage(t), mut)
}

// StartOn is Start on the given storage, which may hold the data of an
// earlier server.
func StartOn(t testing.TB, st Storage, mut func(*server.Config)) *server.Server {
	t.Helper()
	cfg := Config(t)
	cfg.Presence = NewPresence(t)
	if mut != nil {
		mut(&cfg)
	}
	srv, err := server.New(cfg, st.Open)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop(t, srv) })
	return srv
}

// NewPresence returns the presence directory PARLEY_TEST_PRESENCE names:
// "memory" (the default) or "redis" (the Redis of `make services`, or of
// PARLEY_REDIS_ADDR, under a key prefix of the test's own).
func NewPresence(t testing.TB) router.Presence {
	t.Helper()
	switch kind := os.Getenv("PARLEY_TEST_PRESENCE"); kind {
	case "", "memory":
		return router.NewMemoryPresence(nil)
	case "redis":
		addr := os.Getenv("PARLEY_REDIS_ADDR")
		if addr == "" {
			addr = "127.0.0.1:6379"
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("Redis not reachable at %s: %v: run `make services`", addr, err)
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		return predis.NewPresence(rdb, "parley_t_"+hex.EncodeToString(b[:]))
	default:
		t.Fatalf("PARLEY_TEST_PRESENCE=%q: want memory or redis", kind)
		return nil
	}
}

// Stop stops srv within ten seconds; stopping twice is harmless.
func Stop(t testing.TB, srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}
