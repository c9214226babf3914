package router

import (
	"context"
	"slices"
	"sync"
	"time"
)

const memoryShards = 64

// MemoryPresence is Presence inside one process: the single-node default.
// Users are spread over 64 shards, each with its own lock; the node table
// has a lock of its own, taken after a shard's, never before.
type MemoryPresence struct {
	now    func() time.Time
	shards [memoryShards]memoryShard

	mu     sync.RWMutex
	live   map[string]time.Time // node → end of its heartbeat
	closed bool
}

type memoryShard struct {
	mu    sync.Mutex
	users map[int64]map[string]int // user → node → connections
}

var _ Presence = (*MemoryPresence)(nil)

// NewMemoryPresence returns an empty directory. now is the clock; nil
// means time.Now.
func NewMemoryPresence(now func() time.Time) *MemoryPresence {
	if now == nil {
		now = time.Now
	}
	p := &MemoryPresence{now: now, live: make(map[string]time.Time)}
	for i := range p.shards {
		p.shards[i].users = make(map[int64]map[string]int)
	}
	return p
}

func (p *MemoryPresence) shard(user int64) *memoryShard {
	return &p.shards[uint64(user)%memoryShards]
}

// isLive reports whether node heartbeated within its ttl.
func (p *MemoryPresence) isLive(node string, now time.Time) bool {
	p.mu.RLock()
	end, ok := p.live[node]
	p.mu.RUnlock()
	return ok && now.Before(end)
}

// onlineElsewhere reports whether any live node but skip holds a connection.
func (p *MemoryPresence) onlineElsewhere(nodes map[string]int, skip string, now time.Time) bool {
	for n, c := range nodes {
		if n != skip && c > 0 && p.isLive(n, now) {
			return true
		}
	}
	return false
}

func (p *MemoryPresence) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	return nil
}

// Connect implements Presence.
func (p *MemoryPresence) Connect(ctx context.Context, user int64, node string) (bool, error) {
	if err := p.check(ctx); err != nil {
		return false, err
	}
	now := p.now()
	sh := p.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nodes := sh.users[user]
	if nodes == nil {
		nodes = make(map[string]int)
		sh.users[user] = nodes
	}
	first := !p.onlineElsewhere(nodes, node, now) && (nodes[node] == 0 || !p.isLive(node, now))
	nodes[node]++
	return first, nil
}

// Disconnect implements Presence.
func (p *MemoryPresence) Disconnect(ctx context.Context, user int64, node string) (bool, error) {
	if err := p.check(ctx); err != nil {
		return false, err
	}
	now := p.now()
	sh := p.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nodes := sh.users[user]
	if nodes[node] == 0 {
		return false, nil
	}
	if nodes[node]--; nodes[node] == 0 {
		delete(nodes, node)
	}
	last := !p.onlineElsewhere(nodes, "", now)
	if len(nodes) == 0 {
		delete(sh.users, user)
	}
	return last, nil
}

// Nodes implements Presence.
func (p *MemoryPresence) Nodes(ctx context.Context, users []int64) (map[int64][]string, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	now := p.now()
	out := make(map[int64][]string)
	for _, u := range users {
		sh := p.shard(u)
		sh.mu.Lock()
		for n, c := range sh.users[u] {
			if c > 0 && p.isLive(n, now) {
				out[u] = append(out[u], n)
			}
		}
		sh.mu.Unlock()
		slices.Sort(out[u])
	}
	return out, nil
}

// Heartbeat implements Presence.
func (p *MemoryPresence) Heartbeat(ctx context.Context, node string, ttl time.Duration) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	p.live[node] = p.now().Add(ttl)
	p.mu.Unlock()
	return nil
}

// DropNode implements Presence.
func (p *MemoryPresence) DropNode(ctx context.Context, node string) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.live, node)
	p.mu.Unlock()
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for u, nodes := range sh.users {
			delete(nodes, node)
			if len(nodes) == 0 {
				delete(sh.users, u)
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

// Close implements Presence.
func (p *MemoryPresence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	return nil
}
