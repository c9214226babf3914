package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

func TestHealthy(t *testing.T) {
	srv := startServer(t, nil)
	ctx := context.Background()
	if err := srv.Live(ctx); err != nil {
		t.Fatalf("live: %v", err)
	}
	if err := srv.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

// A process whose engine died answers nothing: neither live nor ready, and
// the reason says so.
func TestHealthDeadEngine(t *testing.T) {
	cfg := servertest.Config(t)
	srv, err := server.New(cfg, servertest.NewStorage(t).Open)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx) // the engine is already gone
	})
	ctx := context.Background()
	if err := srv.Ready(ctx); err != nil {
		t.Fatalf("ready before: %v", err)
	}
	if err := server.KillEngine(srv); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not stop")
	}
	for name, check := range map[string]func(context.Context) error{"live": srv.Live, "ready": srv.Ready} {
		err := check(ctx)
		if err == nil || !strings.Contains(err.Error(), "event-loop engine is dead") {
			t.Errorf("%s with a dead engine: %v", name, err)
		}
	}
}

// A register flood that fills every worker makes the node unready, in
// words that name the worker pool, though Ping is still answered at once;
// once the flood's clients go away the node is ready again at once: the
// registers they left queued are dropped, not hashed.
func TestHealthRegisterFloodUnready(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		c.Workers = 2
		c.HashWorkers = 1
		c.HashQueue = 100000
		c.BcryptCost = 8
	})
	ctx := context.Background()
	if err := srv.Ready(ctx); err != nil {
		t.Fatalf("ready before: %v", err)
	}
	pinger := dial(t, srv.Addr())
	// Each connection registers once (a second Register is refused at the
	// loop), so a flood is many new connections.
	n := 0
	var flooders []*raw
	flood := func() {
		for range 40 {
			n++
			c := dial(t, srv.Addr())
			flooders = append(flooders, c)
			c.send(protocol.TypeRegister, &protocol.Register{Username: fmt.Sprintf("flood%05d", n), Password: "correct horse"})
		}
	}
	var notReady error
	deadline := time.Now().Add(30 * time.Second)
	for notReady == nil && time.Now().Before(deadline) {
		flood()
		notReady = srv.Ready(ctx)
	}
	if notReady == nil {
		t.Fatalf("still ready after %d registers on 2 workers", n)
	}
	if !strings.Contains(notReady.Error(), "worker pool did not take a probe frame") {
		t.Fatalf("unready for another reason: %v", notReady)
	}
	t.Logf("unready after %d registers: %v", n, notReady)
	start := time.Now()
	pinger.ping() // the event loop still answers Ping: not a health signal
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ping took %v", d)
	}
	// The flood's clients hang up. Their queued registers must not run: at
	// a hash each (hundreds of milliseconds under the race detector) the
	// backlog would keep the node unready for minutes.
	for _, c := range flooders {
		_ = c.c.Close()
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := srv.Ready(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready again after the flood: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stopping makes the node unready at once.
func TestHealthShuttingDown(t *testing.T) {
	srv := startServer(t, nil)
	servertest.Stop(t, srv)
	err := srv.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("ready after Stop: %v", err)
	}
}
