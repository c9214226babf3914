package router

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster is one node's membership of a Parley cluster, on a Membership
// store shared by the nodes.
//
// Every node heartbeats its membership and its snowflake id. One node at a
// time holds the coordinator lease; the coordinator drops dead members and
// rebalances the slot table (Table.Rebalance), bumping its epoch. Every node
// reloads the table when the store announces a change, and once a second
// anyway (ReloadEvery).
type Cluster struct {
	store Membership
	self  NodeInfo
	ttl   time.Duration
	every time.Duration
	log   *slog.Logger

	mu       sync.RWMutex
	table    Table
	members  map[string]NodeInfo
	onChange func(old, new Table)

	// healthy is when the store last started answering after failing
	// (or the join): the coordinator moves no slot of a node that may
	// only have missed its heartbeats while the store was away until a
	// ttl after it. beatLoop only.
	healthy  time.Time
	failing  bool
	draining atomic.Bool

	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	left   sync.Once
}

// ClusterConfig configures JoinCluster.
type ClusterConfig struct {
	Store  Membership    // shared by the nodes; Leave does not close it
	Name   string        // this node's unique name
	Addr   string        // this node's client address
	TTL    time.Duration // a member missing heartbeats this long is dead; default 6s
	Reload time.Duration // how often the table is read without being told; default 1s
	Logger *slog.Logger
	// OnChange is called, from the cluster's goroutine, with each newer
	// slot table this node sees.
	OnChange func(old, new Table)
}

// JoinCluster registers this node, takes a snowflake node id, and starts
// the heartbeat, the coordinator candidacy and the table watch.
func JoinCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 6 * time.Second
	}
	if cfg.Reload <= 0 {
		cfg.Reload = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		store: cfg.Store, ttl: cfg.TTL, every: cfg.Reload, log: cfg.Logger,
		self:     NodeInfo{Name: cfg.Name, Addr: cfg.Addr, Started: time.Now().UnixMilli()},
		members:  map[string]NodeInfo{},
		onChange: cfg.OnChange,
		done:     make(chan struct{}),
	}
	c.healthy = time.Now()
	id, err := c.store.ClaimID(ctx, c.self.Name, c.ttl)
	if err != nil {
		return nil, err
	}
	c.self.Snowflake = id
	if err := c.store.Heartbeat(ctx, c.self, c.ttl); err != nil {
		return nil, err
	}
	c.coordinate(ctx)
	if err := c.reload(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	changed := c.store.Watch(wctx)
	c.wg.Add(2)
	go c.beatLoop()
	go c.watch(changed)
	return c, nil
}

// Self is this node.
func (c *Cluster) Self() NodeInfo { return c.self }

// Table is the newest slot table this node has seen.
func (c *Cluster) Table() Table {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.table
}

// Owner is the member that owns user's slot, and whether there is one.
func (c *Cluster) Owner(user int64) (NodeInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.members[c.table.Owner(user)]
	return n, ok
}

// OnChange sets the function called, from the cluster's goroutine, with
// each newer slot table this node sees.
func (c *Cluster) OnChange(fn func(old, new Table)) {
	c.mu.Lock()
	c.onChange = fn
	c.mu.Unlock()
}

// Members lists the live members this node knows, by name.
func (c *Cluster) Members() []NodeInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]NodeInfo, 0, len(c.members))
	for _, n := range c.members {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Cluster) beatLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(c.ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		if c.draining.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
		if err := c.store.Heartbeat(ctx, c.self, c.ttl); err != nil {
			if !c.failing {
				c.log.Warn("cluster heartbeat failed", "err", err)
			}
			c.failing = true
		} else {
			if c.failing {
				c.log.Info("cluster store answers again")
				c.healthy = time.Now()
			}
			c.failing = false
			c.coordinate(ctx)
		}
		cancel()
	}
}

// coordinate takes or renews the coordinator lease and, holding it,
// rebalances the table over the live members.
func (c *Cluster) coordinate(ctx context.Context) {
	ok, err := c.store.Lease(ctx, c.self.Name, c.ttl)
	if err != nil || !ok {
		return
	}
	if err := c.rebalance(ctx); err != nil {
		c.log.Warn("cluster rebalance failed", "err", err)
	}
}

func (c *Cluster) rebalance(ctx context.Context) error {
	members, err := c.store.Live(ctx)
	if err != nil {
		return err
	}
	cur, err := c.store.Table(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	// A store that lost its data (a Redis restarted without it) has an
	// older table than the nodes: go on from the newest one seen.
	if local := c.Table(); local.Epoch > cur.Epoch {
		cur = local
	}
	// Within a ttl of the store coming back, a member may be missing only
	// because its heartbeats could not land: keep the owners of the table
	// as they are, and only give out unowned slots.
	if len(cur.Owners) == Slots && time.Since(c.healthy) < c.ttl {
		for _, o := range cur.Owners {
			if o != "" && !slices.Contains(names, o) {
				names = append(names, o)
			}
		}
	}
	next, changed := cur.Rebalance(names)
	if !changed {
		return nil
	}
	next.Epoch = max(cur.Epoch, c.Table().Epoch) + 1
	if err := c.store.SetTable(ctx, next); err != nil {
		return err
	}
	c.log.Info("slot table rebalanced", "epoch", next.Epoch, "members", len(names))
	return nil
}

// reload reads the table and the members; a newer table is installed and
// reported to OnChange.
func (c *Cluster) reload(ctx context.Context) error {
	t, err := c.store.Table(ctx)
	if err != nil {
		return err
	}
	members, err := c.store.Live(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.table
	c.members = members
	newer := t.Epoch > old.Epoch
	if newer {
		c.table = t
	}
	fn := c.onChange
	c.mu.Unlock()
	if newer && fn != nil {
		fn(old, t)
	}
	return nil
}

// watch reloads the table when the store announces a change, and every
// Reload in case an announcement was missed.
func (c *Cluster) watch(changed <-chan struct{}) {
	defer c.wg.Done()
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-changed:
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
		if err := c.reload(ctx); err != nil {
			c.log.Warn("cluster reload failed", "err", err)
		}
		cancel()
	}
}

// Drain takes this node out of the cluster while it goes on running: it
// stops heartbeating and leaves the store at once, so the coordinator gives
// its slots to the other members, and it goes on watching the table
// (OnChange, Owner) until Leave. A stopping node drains first, so that its
// users are redirected to their new nodes rather than dropped.
func (c *Cluster) Drain(ctx context.Context) error {
	c.draining.Store(true)
	return c.store.Leave(ctx, c.self)
}

// Leave stops the node's loops and removes it from the cluster at once, so
// the coordinator moves its slots without waiting for the ttl. A second
// call does nothing.
func (c *Cluster) Leave(ctx context.Context) error {
	var err error
	c.left.Do(func() {
		close(c.done)
		c.cancel()
		c.wg.Wait()
		err = c.store.Leave(ctx, c.self)
	})
	return err
}
