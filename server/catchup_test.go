package server

import (
	"slices"
	"testing"

	"github.com/parleyim/parley/router"
)

// A member is lost when it leaves the live set or comes back as another
// process; a member that joins, or this node itself, is not.
func TestLostMembers(t *testing.T) {
	prev := map[string]int64{"self": 1, "a": 10, "b": 20, "c": 30}
	next := []router.NodeInfo{
		{Name: "self", Started: 2}, // this node: never lost
		{Name: "a", Started: 10},   // unchanged
		{Name: "b", Started: 21},   // restarted under its name
		{Name: "d", Started: 40},   // joined
	} // c died
	lost := lostMembers(prev, next, "self")
	slices.Sort(lost)
	if !slices.Equal(lost, []string{"b", "c"}) {
		t.Fatalf("lost %v, want [b c]", lost)
	}
	if got := lostMembers(memberStarts(next), next, "self"); len(got) != 0 {
		t.Fatalf("no change lost %v", got)
	}
}
