package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is one node's membership of a Parley cluster, kept in Redis:
//
//	P:members               hash  node name → NodeInfo (JSON)
//	P:member:{name}:live    string with the heartbeat ttl; gone = dead
//	P:snowflake:{id}        string, the name of the node holding snowflake id
//	P:snowflake:next        counter, where the next id search starts
//	P:coordinator           string with a ttl: the lease of the coordinator
//	P:slots                 the slot Table (JSON)
//	P:slots:changed         pub/sub channel; a message means "reload"
//
// Every node heartbeats its live key and its snowflake id. One node at a
// time holds the coordinator lease; the coordinator drops dead members and
// rebalances the slot table (Table.Rebalance), bumping its epoch. Every node
// reloads the table when told on the channel, and once a second anyway.
type Cluster struct {
	rdb    redis.UniversalClient
	prefix string
	self   NodeInfo
	ttl    time.Duration
	log    *slog.Logger

	mu       sync.RWMutex
	table    Table
	members  map[string]NodeInfo
	onChange func(old, new Table)

	done chan struct{}
	wg   sync.WaitGroup
}

// NodeInfo describes a member.
type NodeInfo struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`      // clients' TCP address
	Snowflake int64  `json:"snowflake"` // its snowflake node id, 0-1023
	Started   int64  `json:"started"`   // Unix ms
}

// ClusterConfig configures JoinCluster.
type ClusterConfig struct {
	Redis  redis.UniversalClient
	Prefix string        // key prefix; default "parley"
	Name   string        // this node's unique name
	Addr   string        // this node's client address
	TTL    time.Duration // a member missing heartbeats this long is dead; default 6s
	Logger *slog.Logger
	// OnChange is called, from the cluster's goroutine, with each newer
	// slot table this node sees.
	OnChange func(old, new Table)
}

// Errors of the cluster.
var (
	ErrNoSnowflakeID = errors.New("router: no free snowflake node id")
)

// JoinCluster registers this node, takes a snowflake node id, and starts
// the heartbeat, the coordinator candidacy and the table watch.
func JoinCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "parley"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 6 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		rdb: cfg.Redis, prefix: cfg.Prefix, ttl: cfg.TTL, log: cfg.Logger,
		self:     NodeInfo{Name: cfg.Name, Addr: cfg.Addr, Started: time.Now().UnixMilli()},
		members:  map[string]NodeInfo{},
		onChange: cfg.OnChange,
		done:     make(chan struct{}),
	}
	id, err := c.takeSnowflake(ctx)
	if err != nil {
		return nil, err
	}
	c.self.Snowflake = id
	if err := c.heartbeat(ctx); err != nil {
		return nil, err
	}
	c.coordinate(ctx)
	if err := c.reload(ctx); err != nil {
		return nil, err
	}
	c.wg.Add(2)
	go c.beatLoop()
	go c.watch()
	return c, nil
}

func (c *Cluster) key(parts ...string) string {
	k := c.prefix
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// takeSnowflake claims a free snowflake node id.
func (c *Cluster) takeSnowflake(ctx context.Context) (int64, error) {
	for range 1024 {
		n, err := c.rdb.Incr(ctx, c.key("snowflake", "next")).Result()
		if err != nil {
			return 0, fmt.Errorf("router: snowflake id: %w", err)
		}
		id := n % 1024
		ok, err := c.rdb.SetNX(ctx, c.key("snowflake", fmt.Sprint(id)), c.self.Name, c.ttl).Result()
		if err != nil {
			return 0, fmt.Errorf("router: snowflake id: %w", err)
		}
		if ok {
			return id, nil
		}
	}
	return 0, ErrNoSnowflakeID
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

// Members lists the members this node knows, by name.
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

// renewScript extends a key's ttl if it still holds our value.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

func (c *Cluster) heartbeat(ctx context.Context) error {
	info, _ := json.Marshal(c.self)
	pipe := c.rdb.TxPipeline()
	pipe.HSet(ctx, c.key("members"), c.self.Name, info)
	pipe.Set(ctx, c.key("member", c.self.Name, "live"), c.self.Started, c.ttl)
	pipe.Set(ctx, c.key("snowflake", fmt.Sprint(c.self.Snowflake)), c.self.Name, c.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("router: heartbeat: %w", err)
	}
	return nil
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
		ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
		if err := c.heartbeat(ctx); err != nil {
			c.log.Warn("cluster heartbeat failed", "err", err)
		}
		c.coordinate(ctx)
		cancel()
	}
}

// coordinate takes or renews the coordinator lease and, holding it,
// rebalances the table over the live members.
func (c *Cluster) coordinate(ctx context.Context) {
	lease := c.key("coordinator")
	ok, err := c.rdb.SetNX(ctx, lease, c.self.Name, c.ttl).Result()
	if err == nil && !ok {
		var n int64
		n, err = renewScript.Run(ctx, c.rdb, []string{lease}, c.self.Name, c.ttl.Milliseconds()).Int64()
		ok = n == 1
	}
	if err != nil || !ok {
		return
	}
	if err := c.rebalance(ctx); err != nil {
		c.log.Warn("cluster rebalance failed", "err", err)
	}
}

// liveMembers reads the members, forgetting those whose heartbeat lapsed.
func (c *Cluster) liveMembers(ctx context.Context) (map[string]NodeInfo, error) {
	all, err := c.rdb.HGetAll(ctx, c.key("members")).Result()
	if err != nil {
		return nil, err
	}
	pipe := c.rdb.Pipeline()
	live := map[string]*redis.IntCmd{}
	for name := range all {
		live[name] = pipe.Exists(ctx, c.key("member", name, "live"))
	}
	if len(live) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := map[string]NodeInfo{}
	for name, raw := range all {
		if live[name].Val() != 1 {
			continue
		}
		var n NodeInfo
		if json.Unmarshal([]byte(raw), &n) == nil {
			out[name] = n
		}
	}
	return out, nil
}

func (c *Cluster) rebalance(ctx context.Context) error {
	members, err := c.liveMembers(ctx)
	if err != nil {
		return err
	}
	cur, err := c.readTable(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	next, changed := cur.Rebalance(names)
	if !changed {
		return nil
	}
	next.Epoch = cur.Epoch + 1
	raw, _ := json.Marshal(next)
	if err := c.rdb.Set(ctx, c.key("slots"), raw, 0).Err(); err != nil {
		return err
	}
	c.log.Info("slot table rebalanced", "epoch", next.Epoch, "members", len(names))
	return c.rdb.Publish(ctx, c.key("slots", "changed"), next.Epoch).Err()
}

func (c *Cluster) readTable(ctx context.Context) (Table, error) {
	var t Table
	raw, err := c.rdb.Get(ctx, c.key("slots")).Bytes()
	if errors.Is(err, redis.Nil) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(raw, &t)
}

// reload reads the table and the members; a newer table is installed and
// reported to OnChange.
func (c *Cluster) reload(ctx context.Context) error {
	t, err := c.readTable(ctx)
	if err != nil {
		return fmt.Errorf("router: read slot table: %w", err)
	}
	members, err := c.liveMembers(ctx)
	if err != nil {
		return fmt.Errorf("router: read members: %w", err)
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

// watch reloads the table when the coordinator announces a change, and
// once a second in case an announcement was missed.
func (c *Cluster) watch() {
	defer c.wg.Done()
	sub := c.rdb.Subscribe(context.Background(), c.key("slots", "changed"))
	defer sub.Close()
	ch := sub.Channel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ch:
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
		if err := c.reload(ctx); err != nil {
			c.log.Warn("cluster reload failed", "err", err)
		}
		cancel()
	}
}

// Leave stops the node's loops and removes it from the cluster at once, so
// the coordinator moves its slots without waiting for the ttl.
func (c *Cluster) Leave(ctx context.Context) error {
	close(c.done)
	c.wg.Wait()
	pipe := c.rdb.TxPipeline()
	pipe.HDel(ctx, c.key("members"), c.self.Name)
	pipe.Del(ctx, c.key("member", c.self.Name, "live"))
	pipe.Del(ctx, c.key("snowflake", fmt.Sprint(c.self.Snowflake)))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("router: leave: %w", err)
	}
	_, _ = renewScript.Run(ctx, c.rdb, []string{c.key("coordinator")}, c.self.Name, 1).Result()
	return nil
}
