package router_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/router"
)

func loads(t router.Table) map[string]int {
	m := map[string]int{}
	for _, o := range t.Owners {
		m[o]++
	}
	return m
}

func moved(a, b router.Table) (n int, to map[string]int) {
	to = map[string]int{}
	for s := range router.Slots {
		if a.Owners[s] != b.Owners[s] {
			n++
			to[b.Owners[s]]++
		}
	}
	return n, to
}

func TestRebalance(t *testing.T) {
	var empty router.Table
	three, changed := empty.Rebalance([]string{"a", "b", "c"})
	if !changed || fmt.Sprint(loads(three)) != "map[a:342 b:341 c:341]" {
		t.Fatalf("3 nodes: %v", loads(three))
	}
	if _, changed := three.Rebalance([]string{"c", "b", "a"}); changed {
		t.Fatal("same nodes changed the table")
	}
	four, _ := three.Rebalance([]string{"a", "b", "c", "d"})
	n, to := moved(three, four)
	if n != 256 || to["d"] != 256 || fmt.Sprint(loads(four)) != "map[a:256 b:256 c:256 d:256]" {
		t.Fatalf("4th node: %d moved %v, loads %v", n, to, loads(four))
	}
	two, _ := three.Rebalance([]string{"a", "c"})
	n, _ = moved(three, two)
	if n != 341 || fmt.Sprint(loads(two)) != "map[a:512 c:512]" {
		t.Fatalf("b dies: %d moved, loads %v", n, loads(two))
	}
	for s := range router.Slots {
		if three.Owners[s] != "b" && two.Owners[s] != three.Owners[s] {
			t.Fatalf("slot %d of a live node moved", s)
		}
	}
	if router.SlotOf(1025) != 1 || router.SlotOf(-1) != 1023 {
		t.Fatal("SlotOf")
	}
}

func joinTest(t *testing.T, prefix, name string) *router.Cluster {
	t.Helper()
	c, err := router.JoinCluster(context.Background(), router.ClusterConfig{
		Redis: redis.NewClient(&redis.Options{Addr: redisAddr()}), Prefix: prefix,
		Name: name, Addr: "127.0.0.1:" + name, TTL: time.Second,
	})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	return c
}

// waitTable waits until c sees a table whose owners are exactly nodes.
func waitTable(t *testing.T, c *router.Cluster, nodes string) router.Table {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab := c.Table()
		l := loads(tab)
		names := []string{}
		for _, n := range []string{"n1", "n2", "n3", "n4"} {
			if l[n] > 0 {
				names = append(names, n)
			}
		}
		if fmt.Sprint(names) == nodes && l[""] == 0 {
			return tab
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw %s: %v", c.Self().Name, nodes, l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "parley_t_" + hex.EncodeToString(b[:])
	newRedis(t) // fails the test if Redis is down
	n1, n2, n3 := joinTest(t, prefix, "n1"), joinTest(t, prefix, "n2"), joinTest(t, prefix, "n3")
	ids := map[int64]bool{n1.Self().Snowflake: true, n2.Self().Snowflake: true, n3.Self().Snowflake: true}
	if len(ids) != 3 {
		t.Fatalf("snowflake ids not unique: %v", ids)
	}
	before := waitTable(t, n1, "[n1 n2 n3]")
	waitTable(t, n3, "[n1 n2 n3]")
	if owner, ok := n2.Owner(5); !ok || owner.Name != before.Owners[5] || owner.Addr != "127.0.0.1:"+owner.Name {
		t.Fatalf("Owner(5) = %+v %v", owner, ok)
	}

	// A 4th node: only the slots it takes move.
	n4 := joinTest(t, prefix, "n4")
	after := waitTable(t, n2, "[n1 n2 n3 n4]")
	if n, to := moved(before, after); n != 256 || to["n4"] != 256 {
		t.Fatalf("join moved %d slots: %v", n, to)
	}
	// n3 leaves: only its slots move.
	if err := n3.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	final := waitTable(t, n4, "[n1 n2 n4]")
	for s := range router.Slots {
		if after.Owners[s] != "n3" && final.Owners[s] != after.Owners[s] {
			t.Fatalf("slot %d moved from %s", s, after.Owners[s])
		}
	}
	if final.Epoch <= after.Epoch {
		t.Fatalf("epoch %d after %d", final.Epoch, after.Epoch)
	}
	for _, c := range []*router.Cluster{n1, n2, n4} {
		_ = c.Leave(context.Background())
	}
}
