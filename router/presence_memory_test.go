package router_test

import (
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/presencetest"
)

func TestMemoryPresence(t *testing.T) {
	presencetest.Run(t, func(*testing.T) router.Presence { return router.NewMemoryPresence(nil) })
}

// clock is a time that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// On the injected clock a node is live until exactly its ttl has passed.
func TestMemoryPresenceClock(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	p := router.NewMemoryPresence(c.Now)
	defer p.Close()
	ctx := t.Context()
	if err := p.Heartbeat(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if first, err := p.Connect(ctx, 1, "a"); !first || err != nil {
		t.Fatalf("Connect first=%v %v", first, err)
	}
	c.add(time.Minute - time.Nanosecond)
	if m, _ := p.Nodes(ctx, []int64{1}); len(m) != 1 {
		t.Fatalf("expired before its ttl: %v", m)
	}
	c.add(time.Nanosecond)
	if m, _ := p.Nodes(ctx, []int64{1}); len(m) != 0 {
		t.Fatalf("live at the end of its ttl: %v", m)
	}
	if first, err := p.Connect(ctx, 1, "b"); !first || err != nil {
		t.Fatalf("Connect after expiry first=%v %v", first, err)
	}
}
