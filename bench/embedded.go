package bench

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/pebble"
)

// Embedded is a Parley server in this process on a fresh embedded store in
// a temporary directory, for runs that start nothing else. Its settings
// are a load test's: cheap password hashing (runs register thousands of
// users) and no per-connection rate limit (a flat-out sender would trip
// it), no admission limits on logins; the DM policy is "anyone", since a
// 1,000-member group is made by its owner, who under "friends" may add
// only friends (the p2p scenario befriends its pairs all the same).
type Embedded struct {
	Addr string
	srv  *server.Server
	dir  string

	metrics *server.Metrics
}

// StartEmbedded starts the server on a free loopback port.
func StartEmbedded(log *slog.Logger) (*Embedded, error) {
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	m := server.NewMetrics()
	cfg := server.Config{Addr: addr, BcryptCost: 4, RateLimit: -1, AuthRatePerAddr: -1, AuthRate: -1, MaxConnsPerAddr: -1, MaxConnsPerUser: -1, HashWorkers: 2, HashQueue: 1 << 20, DMPolicy: server.DMAnyone, Logger: log, Metrics: m}
	srv, err := server.New(cfg, func(hook storage.CommitHook) (storage.Store, error) {
		return pebble.Open(pebble.Config{Dir: dir, Hook: hook})
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Embedded{Addr: addr, srv: srv, dir: dir, metrics: m}, nil
}

// Stats reads the server's figures and this process's RSS, which is the
// server's alone only when the load runs in other processes (--procs).
func (e *Embedded) Stats(_ context.Context, settle bool) (ServerSample, error) {
	if settle {
		debug.FreeOSMemory()
	}
	var b bytes.Buffer
	e.metrics.WritePrometheus(&b)
	return parseMetrics(&b)
}

// Stop stops the server and removes its store.
func (e *Embedded) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.srv.Stop(ctx)
	_ = os.RemoveAll(e.dir)
}

// FreeAddr returns a loopback address whose port was free a moment ago
// (the server binds a fixed port on every event loop).
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
