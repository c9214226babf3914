package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parleyim/parley/storage"
)

// The directory of open groups (Groups.SetGroupOpen, Groups.OpenGroups).
// Every group of a case is named behind the case's tag, and every listing
// searches under it, so the cases hold in a shared database.

// dirNames lists OpenGroups(tag+prefix) page by page of size page and
// returns the names without the tag, and the number of pages read.
func (e *env) dirNames(tag, prefix string, page int) ([]string, int) {
	e.t.Helper()
	var (
		names     []string
		afterName string
		afterID   int64
		pages     int
	)
	for {
		gs, err := e.s.OpenGroups(e.ctx, tag+prefix, afterName, afterID, page)
		if err != nil {
			e.t.Fatalf("OpenGroups(%q, %q, %d): %v", tag+prefix, afterName, afterID, err)
		}
		pages++
		if len(gs) > page {
			e.t.Fatalf("OpenGroups gave %d groups for a page of %d", len(gs), page)
		}
		for _, g := range gs {
			if !g.Open {
				e.t.Fatalf("OpenGroups listed a closed group: %+v", g)
			}
			names = append(names, strings.TrimPrefix(g.Name, tag))
		}
		if len(gs) < page || pages > 100 {
			return names, pages
		}
		last := gs[len(gs)-1]
		afterName, afterID = storage.DirectoryName(last.Name), last.ID
	}
}

func (e *env) openGroup(owner int64, name string, members ...int64) storage.Group {
	e.t.Helper()
	g, err := e.s.CreateGroup(e.ctx, owner, name, true, members, 100, e.now())
	if err != nil {
		e.t.Fatalf("CreateGroup %q: %v", name, err)
	}
	return g
}

// Open groups are listed by lower-cased name, then id; closed ones never;
// a prefix matches regardless of letter case; paging at any size gives the
// same list once each.
func testOpenGroupsOrder(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	tag, ids := e.tagged("ann", "ben")
	for _, n := range []string{"Climbing", "chess", "climbing", "Ωmega", "cooking 🍳", "bikes"} {
		e.openGroup(ids[0], tag+n)
	}
	if _, err := e.s.CreateGroup(e.ctx, ids[1], tag+"closed club", false, nil, 10, e.now()); err != nil {
		t.Fatal(err)
	}
	// Two groups named alike differ by id, in creation order.
	all := []string{"bikes", "chess", "Climbing", "climbing", "cooking 🍳", "Ωmega"}
	for _, page := range []int{1, 2, 4, 50} {
		got, _ := e.dirNames(tag, "", page)
		if !slices.Equal(got, all) {
			t.Fatalf("page size %d: %q, want %q", page, got, all)
		}
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"c", []string{"chess", "Climbing", "climbing", "cooking 🍳"}},
		{"CL", []string{"Climbing", "climbing"}},
		{"climbing", []string{"Climbing", "climbing"}},
		{"ω", []string{"Ωmega"}},
		{"closed", nil},
		{"x", nil},
	} {
		if got, _ := e.dirNames(tag, c.prefix, 3); !slices.Equal(got, c.want) {
			t.Errorf("prefix %q: %q, want %q", c.prefix, got, c.want)
		}
	}
	if gs, err := e.s.OpenGroups(e.ctx, tag, "", 0, 0); err != nil || len(gs) != 0 {
		t.Fatalf("limit 0: %+v %v", gs, err)
	}
	// The listed group is the whole group: owner, member count.
	gs, err := e.s.OpenGroups(e.ctx, tag+"bikes", "", 0, 10)
	if err != nil || len(gs) != 1 || gs[0].Owner != ids[0] || gs[0].Members != 1 || gs[0].Name != tag+"bikes" {
		t.Fatalf("bikes: %+v %v", gs, err)
	}
}

// Opening, closing, renaming and disbanding move a group in and out of
// the directory at once.
func testOpenGroupsChanges(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	tag, ids := e.tagged("ann", "ben")
	g, err := e.s.CreateGroup(e.ctx, ids[0], tag+"quiet", false, ids[1:], 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	list := func() string { got, _ := e.dirNames(tag, "", 10); return fmt.Sprint(got) }
	if got := list(); got != "[]" {
		t.Fatalf("a closed group is listed: %s", got)
	}
	want(t, "open", e.s.SetGroupOpen(e.ctx, g.ID, true), nil)
	if got := e.getGroup(g.ID); !got.Open || got.Members != 2 {
		t.Fatalf("after SetGroupOpen(true): %+v", got)
	}
	want(t, "open twice", e.s.SetGroupOpen(e.ctx, g.ID, true), nil)
	if got := list(); got != "[quiet]" {
		t.Fatalf("opened: %s", got)
	}
	want(t, "rename", e.s.RenameGroup(e.ctx, g.ID, tag+"Loud"), nil)
	if got := list(); got != "[Loud]" {
		t.Fatalf("renamed: %s", got)
	}
	if got, _ := e.dirNames(tag, "quiet", 10); len(got) != 0 {
		t.Fatalf("the old name still finds it: %q", got)
	}
	want(t, "close", e.s.SetGroupOpen(e.ctx, g.ID, false), nil)
	if got := list(); got != "[]" {
		t.Fatalf("closed: %s", got)
	}
	want(t, "rename closed", e.s.RenameGroup(e.ctx, g.ID, tag+"again"), nil)
	if got := list(); got != "[]" {
		t.Fatalf("renaming a closed group listed it: %s", got)
	}
	want(t, "reopen", e.s.SetGroupOpen(e.ctx, g.ID, true), nil)
	other := e.openGroup(ids[1], tag+"other")
	if got := list(); got != "[again other]" {
		t.Fatalf("reopened: %s", got)
	}
	want(t, "disband", e.s.DeleteGroup(e.ctx, g.ID), nil)
	if got := list(); got != "[other]" {
		t.Fatalf("disbanded: %s", got)
	}
	want(t, "open nothing", e.s.SetGroupOpen(e.ctx, g.ID, true), storage.ErrNotFound)
	if got := list(); got != "[other]" {
		t.Fatalf("opening a disbanded group listed it: %s", got)
	}
	if got := e.getGroup(other.ID); !got.Open {
		t.Fatalf("other: %+v", got)
	}
}
