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
	users map[int64]nodeCounts // user → its connections per node
}

// nodeCount is a user's connections on one node. A user is almost always
// on one node, so a small slice costs far less than a map per user.
type nodeCount struct {
	node string
	n    int
}

type nodeCounts []nodeCount

func (ns nodeCounts) get(node string) int {
	for _, c := range ns {
		if c.node == node {
			return c.n
		}
	}
	return 0
}

// add changes node's count by d, dropping it at zero.
func (ns nodeCounts) add(node string, d int) nodeCounts {
	for i := range ns {
		if ns[i].node == node {
			if ns[i].n += d; ns[i].n <= 0 {
				ns[i] = ns[len(ns)-1]
				ns = ns[:len(ns)-1]
			}
			return ns
		}
	}
	if d > 0 {
		ns = append(ns, nodeCount{node, d})
	}
	return ns
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
		p.shards[i].users = make(map[int64]nodeCounts)
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
func (p *MemoryPresence) onlineElsewhere(nodes nodeCounts, skip string, now time.Time) bool {
	for _, c := range nodes {
		if c.node != skip && c.n > 0 && p.isLive(c.node, now) {
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
	first := !p.onlineElsewhere(nodes, node, now) && (nodes.get(node) == 0 || !p.isLive(node, now))
	sh.users[user] = nodes.add(node, 1)
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
	if nodes.get(node) == 0 {
		return false, nil
	}
	nodes = nodes.add(node, -1)
	last := !p.onlineElsewhere(nodes, "", now)
	if len(nodes) == 0 {
		delete(sh.users, user)
	} else {
		sh.users[user] = nodes
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
		if _, seen := out[u]; seen {
			continue // asked twice
		}
		sh := p.shard(u)
		sh.mu.Lock()
		for _, c := range sh.users[u] {
			if c.n > 0 && p.isLive(c.node, now) {
				out[u] = append(out[u], c.node)
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
	if ttl < time.Millisecond {
		return ErrTTL
	}
	p.mu.Lock()
	p.live[node] = p.now().Add(ttl)
	p.mu.Unlock()
	return nil
}

// DropNode implements Presence. It walks every shard: it is for a node
// that stops, not for a hot path.
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
			if nodes = nodes.add(node, -nodes.get(node)); len(nodes) == 0 {
				delete(sh.users, u)
			} else {
				sh.users[u] = nodes
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
