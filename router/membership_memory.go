package router

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// MemoryMembership is Membership inside one process: the nodes of an
// in-process cluster share one. Kill makes a node's heartbeat lapse at
// once, as a crash does after the ttl.
type MemoryMembership struct {
	now func() time.Time

	mu       sync.Mutex
	closed   bool
	members  map[string]NodeInfo
	live     map[string]time.Time // node → end of its heartbeat
	ids      map[int64]claim
	nextID   int64
	lease    claim
	table    Table
	watchers map[chan struct{}]struct{}
	killed   map[string]bool
}

type claim struct {
	node string
	end  time.Time
}

var _ Membership = (*MemoryMembership)(nil)

// NewMemoryMembership returns an empty store; now is the clock, nil for
// time.Now.
func NewMemoryMembership(now func() time.Time) *MemoryMembership {
	if now == nil {
		now = time.Now
	}
	return &MemoryMembership{
		now: now, members: map[string]NodeInfo{}, live: map[string]time.Time{},
		ids: map[int64]claim{}, watchers: map[chan struct{}]struct{}{}, killed: map[string]bool{},
	}
}

func (m *MemoryMembership) check(ctx context.Context) error {
	if m.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// ClaimID implements Membership.
func (m *MemoryMembership) ClaimID(ctx context.Context, node string, ttl time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	now := m.now()
	for range 1024 {
		m.nextID++
		id := m.nextID % 1024
		if c, ok := m.ids[id]; ok && now.Before(c.end) {
			continue
		}
		m.ids[id] = claim{node, now.Add(ttl)}
		return id, nil
	}
	return 0, ErrNoSnowflakeID
}

// Heartbeat implements Membership.
func (m *MemoryMembership) Heartbeat(ctx context.Context, info NodeInfo, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	if m.killed[info.Name] {
		return ErrKilled
	}
	end := m.now().Add(ttl)
	m.members[info.Name] = info
	m.live[info.Name] = end
	m.ids[info.Snowflake] = claim{info.Name, end}
	return nil
}

// Live implements Membership.
func (m *MemoryMembership) Live(ctx context.Context) (map[string]NodeInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	now := m.now()
	out := map[string]NodeInfo{}
	for name, info := range m.members {
		if end, ok := m.live[name]; ok && now.Before(end) {
			out[name] = info
		}
	}
	return out, nil
}

// Lease implements Membership.
func (m *MemoryMembership) Lease(ctx context.Context, node string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	if m.killed[node] {
		return false, ErrKilled
	}
	now := m.now()
	if m.lease.node != node && now.Before(m.lease.end) {
		return false, nil
	}
	m.lease = claim{node, now.Add(ttl)}
	return true, nil
}

// Table implements Membership.
func (m *MemoryMembership) Table(ctx context.Context) (Table, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return Table{}, err
	}
	t := m.table
	t.Owners = slices.Clone(t.Owners)
	t.Moved = slices.Clone(t.Moved)
	return t, nil
}

// SetTable implements Membership.
func (m *MemoryMembership) SetTable(ctx context.Context, t Table) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	t.Owners = slices.Clone(t.Owners)
	t.Moved = slices.Clone(t.Moved)
	m.table = t
	for w := range m.watchers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	return nil
}

// Watch implements Membership.
func (m *MemoryMembership) Watch(ctx context.Context) <-chan struct{} {
	w := make(chan struct{}, 1)
	m.mu.Lock()
	m.watchers[w] = struct{}{}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	}()
	return w
}

// Leave implements Membership.
func (m *MemoryMembership) Leave(ctx context.Context, info NodeInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	if m.killed[info.Name] {
		return ErrKilled
	}
	m.remove(info.Name)
	return nil
}

func (m *MemoryMembership) remove(node string) {
	delete(m.members, node)
	m.lapse(node)
}

// lapse ends node's heartbeat, id claim and lease. m.mu is held.
func (m *MemoryMembership) lapse(node string) {
	delete(m.live, node)
	for id, c := range m.ids {
		if c.node == node {
			delete(m.ids, id)
		}
	}
	if m.lease.node == node {
		m.lease = claim{}
	}
}

// ErrKilled is returned by a MemoryMembership to a node it was told to
// Kill.
var ErrKilled = errors.New("router: node killed")

// Kill makes node's heartbeat, id claim and lease lapse now, as if it had
// crashed a ttl ago, and refuses its Heartbeat, Lease and Leave from then
// on (ErrKilled), as if it could no longer reach the store; its member
// entry stays, as a crashed node's does.
func (m *MemoryMembership) Kill(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.killed[node] = true
	m.lapse(node)
}

// Close implements Membership.
func (m *MemoryMembership) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	return nil
}
