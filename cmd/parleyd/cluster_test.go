package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// A cluster of parleyd processes on loopback, on the MariaDB, Redis and
// RocketMQ of `make services`.
type testCluster struct {
	t      *testing.T
	bin    string
	dsn    string
	prefix string
	topic  string
	rdb    *redis.Client
	nodes  map[string]*exec.Cmd // by address (= node name)
	dirs   map[string]string    // data dirs (Noise keys), by address
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newTestCluster(t *testing.T) *testCluster {
	bin := filepath.Join(t.TempDir(), "parleyd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build parleyd: %v\n%s", err, out)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := hex.EncodeToString(b[:])
	rdb := redis.NewClient(&redis.Options{Addr: envOr("PARLEY_REDIS_ADDR", "127.0.0.1:6379")})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis: %v: run `make services`", err)
	}
	return &testCluster{t: t, bin: bin, dsn: mysqltest.DSN(t), prefix: "parley_t_" + r, topic: "PARLEY_T_" + r, rdb: rdb, nodes: map[string]*exec.Cmd{}, dirs: map[string]string{}}
}

// start runs a node and waits until it accepts connections.
func (c *testCluster) start() string {
	return c.startAt(servertest.FreeAddr(c.t))
}

// startAt runs a node on addr (a node restarted under its name, on its
// data dir) and waits until it accepts connections.
func (c *testCluster) startAt(addr string) string {
	t := c.t
	if c.dirs[addr] == "" {
		c.dirs[addr] = t.TempDir()
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "--listen", addr, "--cluster", "--cluster-prefix", c.prefix, "--cluster-ttl", "2s",
		"--redis-addr", envOr("PARLEY_REDIS_ADDR", "127.0.0.1:6379"),
		"--mq-namesrv", envOr("PARLEY_MQ_NAMESRV", "127.0.0.1:9876"), "--mq-topic", c.topic,
		"--store", "mysql", "--mysql-dsn", c.dsn, "--mysql-shards", "4", "--data-dir", c.dirs[addr], // its Noise key
		"--dm-policy", "anyone", "--bcrypt-cost", "4", "--rate-limit", "-1", "--auth-rate", "-1", "--max-conns-per-addr", "-1", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.nodes[addr] = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("log of node %s (last 3000 bytes):\n%s", addr, tail(b, 3000))
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not start: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (c *testCluster) table() router.Table {
	var tab router.Table
	raw, err := c.rdb.Get(context.Background(), c.prefix+":slots").Bytes()
	if err == nil {
		_ = json.Unmarshal(raw, &tab)
	}
	return tab
}

// waitOwners waits until the slot table assigns every slot to exactly the
// given nodes, and the nodes have had time to load it.
func (c *testCluster) waitOwners(nodes ...string) router.Table {
	c.t.Helper()
	want := slices.Clone(nodes)
	slices.Sort(want)
	deadline := time.Now().Add(30 * time.Second)
	for {
		tab := c.table()
		var got []string
		for _, o := range tab.Owners {
			if !slices.Contains(got, o) {
				got = append(got, o)
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			time.Sleep(1500 * time.Millisecond) // every node reloads at least once a second
			return c.table()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("slot owners %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start()
	n2 := c.start()
	n3 := c.start()
	tab := c.waitOwners(n1, n2, n3)

	// Users register through n1 and end up on the node of their slot.
	var users []*clienttest.Member
	redirected := 0
	for i := range 12 {
		m := clienttest.Join(t, n1, fmt.Sprintf("user%02d", i))
		users = append(users, m)
		owner := tab.Owner(m.ID)
		clienttest.Eventually(t, 30*time.Second, m.Name+" on its node", func() bool { return m.LastLogin() == owner })
		if owner != n1 {
			redirected++
			if m.Count(client.EventRedirected) == 0 {
				t.Fatalf("%s reached %s without a redirect", m.Name, owner)
			}
		}
	}
	if redirected < 4 {
		t.Fatalf("only %d of 12 users live off the seed node", redirected)
	}
	on := map[string][]*clienttest.Member{}
	for _, m := range users {
		on[tab.Owner(m.ID)] = append(on[tab.Owner(m.ID)], m)
	}
	if len(on[n1]) == 0 || len(on[n2]) == 0 || len(on[n3]) == 0 {
		t.Fatalf("users per node: %d %d %d", len(on[n1]), len(on[n2]), len(on[n3]))
	}

	// 1:1 across nodes, and a group over all three.
	ctx := context.Background()
	a, b := on[n1][0], on[n2][0]
	if _, err := a.Send(ctx, b.ID, 0, []byte("across")); err != nil {
		t.Fatal(err)
	}
	conv := protocol.DirectConv(a.ID, b.ID)
	clienttest.Eventually(t, 30*time.Second, "1:1 across nodes", func() bool { return len(b.Received(conv)) == 1 })
	ids := make([]int64, len(users))
	for i, m := range users {
		ids[i] = m.ID
	}
	g, err := on[n3][0].CreateGroup(ctx, "everyone", false, ids...)
	if err != nil {
		t.Fatal(err)
	}
	gconv := protocol.GroupConv(g.GroupID)
	if _, err := on[n3][0].SendGroup(ctx, g.GroupID, 0, []byte("hello all")); err != nil {
		t.Fatal(err)
	}
	for _, m := range users[1:] {
		if m == on[n3][0] {
			continue
		}
		clienttest.Eventually(t, 30*time.Second, m.Name+" gets the group message", func() bool { return len(m.Received(gconv)) == 1 })
	}

	// A 4th node: only the slots it takes move, only their users reconnect.
	disconnects := map[*clienttest.Member]int{}
	for _, m := range users {
		disconnects[m] = m.Count(client.EventDisconnected)
	}
	n4 := c.start()
	after := c.waitOwners(n1, n2, n3, n4)
	moved := 0
	for s := range router.Slots {
		if tab.Owners[s] != after.Owners[s] {
			moved++
			if after.Owners[s] != n4 {
				t.Fatalf("slot %d moved from %s to %s, not to the new node", s, tab.Owners[s], after.Owners[s])
			}
		}
	}
	if moved != 256 {
		t.Fatalf("%d slots moved, want 256", moved)
	}
	for _, m := range users {
		if tab.Owner(m.ID) != after.Owner(m.ID) {
			clienttest.Eventually(t, 30*time.Second, m.Name+" moves to the new node", func() bool { return m.LastLogin() == n4 })
		} else if m.Count(client.EventDisconnected) != disconnects[m] {
			t.Fatalf("%s was disconnected though its slot stayed on %s", m.Name, after.Owner(m.ID))
		}
	}
	tab = after

	// A steady stream of 1:1 and group messages; n3 is killed with SIGKILL
	// in the middle. Every acked message reaches every recipient exactly
	// once, in order, with no gap.
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		ackMu sync.Mutex
		acked = map[string][]uint64{} // conv → acked seqs
	)
	send := func(from *clienttest.Member, to int64, group bool) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			var ack protocol.SendAck
			var err error
			if group {
				ack, err = from.SendGroup(sctx, to, 0, fmt.Appendf(nil, "%s g%d", from.Name, i))
			} else {
				ack, err = from.Send(sctx, to, 0, fmt.Appendf(nil, "%s d%d", from.Name, i))
			}
			cancel()
			if err == nil {
				ackMu.Lock()
				acked[ack.Conv] = append(acked[ack.Conv], ack.Seq)
				ackMu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	type pair struct{ from, to *clienttest.Member }
	var pairs []pair
	for i, m := range users {
		pairs = append(pairs, pair{m, users[(i+1)%len(users)]})
	}
	for _, p := range pairs[:6] {
		wg.Add(1)
		go send(p.from, p.to.ID, false)
	}
	wg.Add(2)
	go send(users[0], g.GroupID, true)
	go send(users[5], g.GroupID, true)
	time.Sleep(time.Second)
	if err := c.nodes[n3].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	final := c.waitOwners(n1, n2, n4)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	for _, m := range users {
		clienttest.Eventually(t, 30*time.Second, m.Name+" logged in on a live node", func() bool {
			return m.State() == client.StateLoggedIn && m.LastLogin() == final.Owner(m.ID)
		})
	}

	check := func(m *clienttest.Member, conv string) {
		t.Helper()
		ackMu.Lock()
		want := slices.Clone(acked[conv])
		ackMu.Unlock()
		if len(want) > 0 {
			clienttest.WaitReceived(t, m, conv, want, 30*time.Second)
		}
	}
	for _, p := range pairs[:6] {
		check(p.to, protocol.DirectConv(p.from.ID, p.to.ID))
	}
	for _, m := range users {
		if m != users[0] && m != users[5] {
			check(m, gconv)
		}
	}
	ackMu.Lock()
	total := 0
	for _, s := range acked {
		total += len(s)
	}
	ackMu.Unlock()
	t.Logf("%d messages acked through the kill; every recipient got each once, in order", total)
}

// A rolling restart of three parleyd processes under 1:1 and group
// traffic, each stopped with SIGTERM (it hands its slots over) and
// started again on its address: every acked message arrives once and in
// order, and no client reconnects more than once in one node's restart.
func TestClusterRollingRestart(t *testing.T) {
	c := newTestCluster(t)
	nodes := []string{c.start(), c.start(), c.start()}
	tab := c.waitOwners(nodes...)
	users, drops, tr := servertest.RingTraffic(t, nodes[0], tab.Owner, 9, 30*time.Second, 20*time.Millisecond)
	total := 0
	for i, addr := range nodes {
		time.Sleep(500 * time.Millisecond)
		before := c.table()
		cmd := c.nodes[addr]
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("node %s exited: %v", addr, err)
		}
		gone := c.waitOwners(slices.Delete(slices.Clone(nodes), i, i+1)...)
		c.startAt(addr)
		now := c.waitOwners(nodes...)
		total += servertest.CheckRestart(t, before, gone, now, users, drops, 30*time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	tr.Stop()
	last := tr.Check(30 * time.Second)
	acked, failed := tr.Counts()
	t.Logf("3 node restarts (SIGTERM, start again): %d reconnects over %d clients, at most one a restart; %d acked, %d failed, the last arrived %v after the traffic stopped", total, len(users), acked, failed, last)
}
