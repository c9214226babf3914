package router_test

import (
	"fmt"
	"testing"

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

// A rolling restart of three nodes, on the table alone: each node leaves
// (its slots go to the others) and returns (it takes a share back). No
// slot moves twice in one node's restart, so no user reconnects twice for
// it, and the loads end balanced.
func TestRebalanceRollingRestart(t *testing.T) {
	var empty router.Table
	tab, _ := empty.Rebalance([]string{"a", "b", "c"})
	tab.Epoch = 1
	all := []string{"a", "b", "c"}
	for _, n := range all {
		var rest []string
		for _, o := range all {
			if o != n {
				rest = append(rest, o)
			}
		}
		gone, _ := tab.Rebalance(rest)
		gone.Epoch = tab.Epoch + 1
		back, _ := gone.Rebalance(all)
		back.Epoch = gone.Epoch + 1
		twice := 0
		for s := range router.Slots {
			if tab.Owners[s] != gone.Owners[s] && gone.Owners[s] != back.Owners[s] {
				twice++
			}
		}
		if twice != 0 {
			t.Fatalf("%s's restart moved %d slots twice", n, twice)
		}
		if got, _ := moved(gone, back); got != loads(back)[n] || got < 341 {
			t.Fatalf("%s returned to %d slots, %d moved", n, loads(back)[n], got)
		}
		if l := loads(back); fmt.Sprint(l) != "map[a:342 b:341 c:341]" && fmt.Sprint(l) != "map[a:341 b:342 c:341]" && fmt.Sprint(l) != "map[a:341 b:341 c:342]" {
			t.Fatalf("after %s's restart: loads %v", n, l)
		}
		tab = back
	}
}
