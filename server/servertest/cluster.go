package servertest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage"
)

// Cluster is a cluster of servers inside one test process: the nodes
// share one store, one presence directory, one membership store and one
// bus network, all in memory but the store (NewStorage's kind). Slot
// moves, redirects and failover run in seconds.
type Cluster struct {
	t       testing.TB
	Net     *router.MemoryNetwork
	Members *router.MemoryMembership
	dir     *router.MemoryPresence
	TTL     time.Duration

	mu    sync.Mutex
	store storage.Store
	hooks map[int64]storage.CommitHook // by snowflake node id
	nodes map[string]*Node
}

// Node is one server of a Cluster; its name is its address.
type Node struct {
	Name    string
	Srv     *server.Server
	Cluster *router.Cluster
}

// NewCluster returns a cluster with no node yet on fresh storage; its
// members are dead after ttl without a heartbeat.
func NewCluster(t testing.TB, ttl time.Duration) *Cluster {
	c := &Cluster{
		t: t, Net: router.NewMemoryNetwork(), Members: router.NewMemoryMembership(nil),
		dir: router.NewMemoryPresence(nil), TTL: ttl,
		hooks: map[int64]storage.CommitHook{}, nodes: map[string]*Node{},
	}
	st := NewStorage(t)
	store, err := st.Open(c.commit)
	if err != nil {
		t.Fatal(err)
	}
	c.store = store
	t.Cleanup(func() { _ = store.Close() })
	return c
}

// commit hands each message to the hook of the node that stored it, which
// the snowflake node id in its msg id names (bwmarrin/snowflake: 12 bits
// of step below 10 of node).
func (c *Cluster) commit(msgs []protocol.Message) {
	by := map[int64][]protocol.Message{}
	for _, m := range msgs {
		node := m.MsgID >> 12 & 1023
		by[node] = append(by[node], m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for node, part := range by {
		if h := c.hooks[node]; h != nil {
			h(part)
		}
	}
}

// shared is the cluster's store as one node sees it: Close only stops the
// commits of the node reaching its hook (the server stops its delivery
// next); the store closes at the end of the test.
type shared struct {
	storage.Store
	c    *Cluster
	node int64
}

// Expire forwards storage.Expirer, so every node sweeps the shared store.
func (s shared) Expire(ctx context.Context, now int64, limit int) ([]protocol.Message, error) {
	if x, ok := s.Store.(storage.Expirer); ok {
		return x.Expire(ctx, now, limit)
	}
	return nil, nil
}

func (s shared) Close() error {
	s.c.mu.Lock()
	delete(s.c.hooks, s.node)
	s.c.mu.Unlock()
	return nil
}

// sharedState is shared with the store's ConvState.
type sharedState struct {
	shared
	storage.ConvState
}

// sharedDir is the presence directory as one node sees it.
type sharedDir struct{ router.Presence }

func (sharedDir) Close() error { return nil }

// Start starts a node, with Config's defaults that mut may change.
func (c *Cluster) Start(mut func(*server.Config)) *Node {
	c.t.Helper()
	return c.StartAt("", mut)
}

// StartAt starts a node on addr (a node restarted under its name), or on a
// free port for "".
func (c *Cluster) StartAt(addr string, mut func(*server.Config)) *Node {
	t := c.t
	t.Helper()
	cfg := Config(t)
	if addr != "" {
		cfg.Addr = addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := router.JoinCluster(ctx, router.ClusterConfig{
		Store: c.Members, Name: cfg.Addr, Addr: cfg.Addr, TTL: c.TTL, Reload: 50 * time.Millisecond,
		Logger: cfg.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster = cl
	cfg.Bus = c.Net.Bus(cfg.Addr)
	cfg.NodeID = cl.Self().Snowflake
	cfg.NodeName = cfg.Addr
	cfg.Presence = sharedDir{c.dir}
	if mut != nil {
		mut(&cfg)
	}
	srv, err := server.New(cfg, func(hook storage.CommitHook) (storage.Store, error) {
		c.mu.Lock()
		c.hooks[cfg.NodeID] = hook
		c.mu.Unlock()
		sh := shared{c.store, c, cfg.NodeID}
		if st, ok := c.store.(storage.ConvState); ok {
			return sharedState{sh, st}, nil
		}
		return sh, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: cfg.Addr, Srv: srv, Cluster: cl}
	c.mu.Lock()
	c.nodes[n.Name] = n
	c.mu.Unlock()
	t.Cleanup(func() { c.Stop(n) })
	return n
}

// Stop stops a node the clean way: it leaves the cluster at once.
func (c *Cluster) Stop(n *Node) {
	Stop(c.t, n.Srv)
	c.mu.Lock()
	delete(c.nodes, n.Name)
	c.mu.Unlock()
}

// Kill makes a node's membership lapse at once, as a crash does after the
// ttl, then stops it; its clients lose their connections.
func (c *Cluster) Kill(n *Node) {
	c.Members.Kill(n.Name)
	c.Stop(n)
}

// WaitOwners waits until every node running sees a slot table that
// assigns every slot to exactly nodes, and returns it.
func (c *Cluster) WaitOwners(nodes ...*Node) router.Table {
	c.t.Helper()
	var want []string
	for _, n := range nodes {
		want = append(want, n.Name)
	}
	slices.Sort(want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var tab router.Table
		agree := true
		c.mu.Lock()
		for _, n := range c.nodes {
			t := n.Cluster.Table()
			var got []string
			for _, o := range t.Owners {
				if !slices.Contains(got, o) {
					got = append(got, o)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) || (tab.Epoch != 0 && t.Epoch != tab.Epoch) {
				agree = false
			}
			tab = t
		}
		c.mu.Unlock()
		if agree {
			return tab
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the nodes never agreed on owners %v", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
