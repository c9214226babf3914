package router

import (
	"slices"
)

// Slots is the number of slots users hash to: slot = userID mod Slots.
// Users map to slots, never straight to nodes, so a change of nodes moves
// whole slots and only as many as it must: with plain userID mod N, a 4th
// node would move three quarters of all users.
const Slots = 1024

// SlotOf is the slot of a user.
func SlotOf(user int64) int {
	s := user % Slots
	if s < 0 {
		s += Slots
	}
	return int(s)
}

// Table assigns every slot to a node. Epoch grows with every change, so a
// node can tell a newer table from an older one.
type Table struct {
	Epoch  int64    `json:"epoch"`
	Owners []string `json:"owners"` // Slots entries, node names; "" unassigned
}

// Owner is the node of a user's slot, or "" when the table is empty.
func (t *Table) Owner(user int64) string {
	if t == nil || len(t.Owners) != Slots {
		return ""
	}
	return t.Owners[SlotOf(user)]
}

// Rebalance returns the table that assigns every slot to one of live
// (names of live nodes), moving as few slots as possible from t: slots of
// nodes no longer live are shared out among the least loaded, then slots
// move one at a time from the most to the least loaded node until loads
// differ by at most one. It reports whether anything changed; the epoch
// is the caller's to bump.
func (t *Table) Rebalance(live []string) (Table, bool) {
	next := Table{Epoch: t.Epoch, Owners: make([]string, Slots)}
	if len(t.Owners) == Slots {
		copy(next.Owners, t.Owners)
	}
	if len(live) == 0 {
		return *t, false
	}
	nodes := slices.Clone(live)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	load := make(map[string][]int, len(nodes)) // node → its slots
	for _, n := range nodes {
		load[n] = nil
	}
	var orphans []int
	for s, n := range next.Owners {
		if _, ok := load[n]; ok {
			load[n] = append(load[n], s)
		} else {
			orphans = append(orphans, s)
		}
	}
	least := func() string {
		best := nodes[0]
		for _, n := range nodes[1:] {
			if len(load[n]) < len(load[best]) {
				best = n
			}
		}
		return best
	}
	most := func() string {
		best := nodes[0]
		for _, n := range nodes[1:] {
			if len(load[n]) > len(load[best]) {
				best = n
			}
		}
		return best
	}
	for _, s := range orphans {
		n := least()
		next.Owners[s] = n
		load[n] = append(load[n], s)
	}
	for {
		hi, lo := most(), least()
		if len(load[hi])-len(load[lo]) <= 1 {
			break
		}
		// Move the slot that ranks highest in a fixed scrambled order: the
		// slots a node gives away are spread over the whole range, so
		// consecutive user ids (consecutive slots) spread over the nodes.
		i := 0
		for j, s := range load[hi] {
			if spread(s) > spread(load[hi][i]) {
				i = j
			}
		}
		s := load[hi][i]
		load[hi][i] = load[hi][len(load[hi])-1]
		load[hi] = load[hi][:len(load[hi])-1]
		next.Owners[s] = lo
		load[lo] = append(load[lo], s)
	}
	changed := !slices.Equal(next.Owners, t.Owners)
	return next, changed
}

// spread ranks slots in a scrambled order: multiplication by an odd
// number is a permutation of 0..1023.
func spread(slot int) int {
	return slot * 0x2C5 % Slots
}
