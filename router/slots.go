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
	// Moved holds, per slot, the epoch of the table that last gave the
	// slot to its owner (0: unknown, as in a table written before this
	// field). Rebalance moves the slots held longest first, so the users a
	// node's stop just moved are not moved again when it returns.
	Moved []int64 `json:"moved,omitempty"`
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
// is the caller's to bump (a moved slot is stamped t.Epoch+1, at most the
// epoch the caller gives the table).
//
// A node that gives slots away gives those it has held longest first.
// In a rolling restart that is what keeps every user to one reconnect per
// node restart: the stopping node's slots go to the others (its users
// reconnect once), and when it returns it takes slots the others held
// before, not the ones it just gave them (whose users would reconnect a
// second time).
func (t *Table) Rebalance(live []string) (Table, bool) {
	next := Table{Epoch: t.Epoch, Owners: make([]string, Slots), Moved: make([]int64, Slots)}
	if len(t.Owners) == Slots {
		copy(next.Owners, t.Owners)
	}
	if len(t.Moved) == Slots {
		copy(next.Moved, t.Moved)
	}
	stamp := t.Epoch + 1
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
		next.Moved[s] = stamp
		load[n] = append(load[n], s)
	}
	for {
		hi, lo := most(), least()
		if len(load[hi])-len(load[lo]) <= 1 {
			break
		}
		// Move the slot held longest; among those, the one that ranks
		// highest in a fixed scrambled order: the slots a node gives away
		// are spread over the whole range, so consecutive user ids
		// (consecutive slots) spread over the nodes.
		i := 0
		for j, s := range load[hi] {
			b := load[hi][i]
			if next.Moved[s] < next.Moved[b] || next.Moved[s] == next.Moved[b] && spread(s) > spread(b) {
				i = j
			}
		}
		s := load[hi][i]
		load[hi][i] = load[hi][len(load[hi])-1]
		load[hi] = load[hi][:len(load[hi])-1]
		next.Owners[s] = lo
		next.Moved[s] = stamp
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
