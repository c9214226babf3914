package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

func (r *raw) createGroup(name string, open bool, members ...int64) protocol.GroupInfo {
	r.t.Helper()
	id := r.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: name, Open: open, Members: members})
	var g protocol.GroupInfo
	r.expect(protocol.TypeGroupInfo, id, &g)
	return g
}

func (r *raw) search(q protocol.GroupSearch) protocol.OpenGroupList {
	r.t.Helper()
	id := r.send(protocol.TypeGroupSearch, &q)
	var l protocol.OpenGroupList
	r.expect(protocol.TypeOpenGroupList, id, &l)
	return l
}

func (r *raw) expectGroupEvent(kind string, actor int64) protocol.GroupEvent {
	r.t.Helper()
	var e protocol.GroupEvent
	r.expect(protocol.TypeGroupEvent, 0, &e)
	if e.Kind != kind || e.Actor != actor {
		r.t.Fatalf("group event %+v, want %s by %d", e, kind, actor)
	}
	return e
}

func groupNames(gs []protocol.GroupInfo, tag string) string {
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = strings.TrimPrefix(g.Name, tag)
	}
	return strings.Join(names, ",")
}

// The directory: a closed group is neither listed nor joinable; its owner
// opens it (the members are told), strangers find it by a prefix in any
// letter case, page through the list and join it; closed again, it leaves
// the directory and refuses joins.
func TestGroupDirectory(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob, carol, dave := dial(t, srv.Addr()), dial(t, srv.Addr()), dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	c := carol.register(uniqueName("carol"))
	dave.register(uniqueName("dave"))
	tag := uniqueName("dir") + "-"

	crag := alice.createGroup(tag+"Crag", false, c.UserID)
	carol.expectGroupEvent(protocol.GroupJoined, a.UserID)
	lobby := alice.createGroup(tag+"lobby", true)
	if l := bob.search(protocol.GroupSearch{Prefix: tag}); groupNames(l.Groups, tag) != "lobby" || l.NextID != 0 {
		t.Fatalf("before opening: %+v", l)
	}
	id := bob.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: crag.GroupID})
	bob.expectError(id, protocol.CodeGroupClosed)
	id = bob.send(protocol.TypeGroupSetOpen, &protocol.GroupSetOpen{GroupID: crag.GroupID, Open: true})
	bob.expectError(id, protocol.CodeNotMember)
	id = carol.send(protocol.TypeGroupSetOpen, &protocol.GroupSetOpen{GroupID: crag.GroupID, Open: true})
	carol.expectError(id, protocol.CodeNotOwner)

	id = alice.send(protocol.TypeGroupSetOpen, &protocol.GroupSetOpen{GroupID: crag.GroupID, Open: true})
	alice.expect(protocol.TypeOK, id, nil)
	carol.expectGroupEvent(protocol.GroupOpened, a.UserID)
	// Opening an open group changes nothing and tells no one.
	id = alice.send(protocol.TypeGroupSetOpen, &protocol.GroupSetOpen{GroupID: crag.GroupID, Open: true})
	alice.expect(protocol.TypeOK, id, nil)

	// Pages of one: crag, then lobby, then the end.
	p1 := bob.search(protocol.GroupSearch{Prefix: strings.ToUpper(tag), Limit: 1})
	if groupNames(p1.Groups, tag) != "Crag" || p1.NextID != crag.GroupID || p1.NextName != strings.ToLower(tag+"Crag") {
		t.Fatalf("page 1: %+v", p1)
	}
	if g := p1.Groups[0]; g.GroupID != crag.GroupID || !g.Open || g.Owner != a.UserID || g.Members != 2 {
		t.Fatalf("listed %+v", g)
	}
	p2 := bob.search(protocol.GroupSearch{Prefix: tag, AfterName: p1.NextName, AfterID: p1.NextID, Limit: 1})
	if groupNames(p2.Groups, tag) != "lobby" || p2.NextID != 0 || p2.NextName != "" {
		t.Fatalf("page 2, the last: %+v", p2)
	}

	id = bob.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: crag.GroupID})
	var joined protocol.GroupInfo
	bob.expect(protocol.TypeGroupInfo, id, &joined)
	if joined.GroupID != crag.GroupID || joined.Members != 3 {
		t.Fatalf("joined %+v", joined)
	}
	for _, r := range []*raw{alice, carol} {
		if e := r.expectGroupEvent(protocol.GroupJoined, b.UserID); len(e.Users) != 1 || e.Users[0] != b.UserID {
			t.Fatalf("join event %+v", e)
		}
	}
	id = bob.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: crag.GroupID})
	bob.expectError(id, protocol.CodeAlreadyMember)

	id = alice.send(protocol.TypeGroupSetOpen, &protocol.GroupSetOpen{GroupID: crag.GroupID, Open: false})
	alice.expect(protocol.TypeOK, id, nil)
	carol.expectGroupEvent(protocol.GroupClosed, a.UserID)
	bob.expectGroupEvent(protocol.GroupClosed, a.UserID)
	if l := dave.search(protocol.GroupSearch{Prefix: tag}); groupNames(l.Groups, tag) != "lobby" {
		t.Fatalf("after closing: %+v", l)
	}
	id = dave.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: crag.GroupID})
	dave.expectError(id, protocol.CodeGroupClosed)

	// Disbanded, lobby leaves the directory.
	id = alice.send(protocol.TypeGroupDisband, &protocol.GroupDisband{GroupID: lobby.GroupID})
	alice.expect(protocol.TypeOK, id, nil)
	if l := dave.search(protocol.GroupSearch{Prefix: tag}); len(l.Groups) != 0 {
		t.Fatalf("after disbanding: %+v", l)
	}
}

// Hostile directory requests: names that would deceive a reader are
// refused, a page holds at most 50 groups however many are asked for,
// and a join past the group's size cap is refused.
func TestGroupDirectoryBounds(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.MaxGroupSize = 3 })
	alice, bob, carol, dave := dial(t, srv.Addr()), dial(t, srv.Addr()), dial(t, srv.Addr()), dial(t, srv.Addr())
	alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	c := carol.register(uniqueName("carol"))
	dave.register(uniqueName("dave"))
	tag := uniqueName("bounds") + "-"

	for _, name := range []string{"", "   ", "red\x1b[31m", "a\x00b", "\u202Egnp.exe", "\xff\xfe", strings.Repeat("x", 65)} {
		id := alice.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: name, Open: true})
		alice.expectError(id, protocol.CodeBadGroupName)
	}
	g := alice.createGroup(tag+"small", true)
	id := alice.send(protocol.TypeGroupRename, &protocol.GroupRename{GroupID: g.GroupID, Name: "\tlobby"})
	alice.expectError(id, protocol.CodeBadGroupName)
	for _, q := range []protocol.GroupSearch{
		{Prefix: strings.Repeat("x", 65)},
		{Prefix: "\xff"},
		{AfterID: -1},
	} {
		id := bob.send(protocol.TypeGroupSearch, &q)
		bob.expectError(id, protocol.CodeBadBody)
	}

	// The size cap: alice, bob, carol; dave is one too many.
	for _, r := range []*raw{bob, carol} {
		id := r.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: g.GroupID})
		r.expect(protocol.TypeGroupInfo, id, nil)
	}
	id = dave.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: g.GroupID})
	dave.expectError(id, protocol.CodeGroupFull)
	alice.expectGroupEvent(protocol.GroupJoined, b.UserID)
	alice.expectGroupEvent(protocol.GroupJoined, c.UserID)

	// 54 open groups: a page asks for 1000 and gets 50, then the other 4.
	for i := range 53 {
		alice.createGroup(fmt.Sprintf("%sg%02d", tag, i), true)
	}
	l := dave.search(protocol.GroupSearch{Prefix: tag, Limit: 1000})
	if len(l.Groups) != 50 || l.NextID == 0 {
		t.Fatalf("a page of %d, next %q %d", len(l.Groups), l.NextName, l.NextID)
	}
	rest := dave.search(protocol.GroupSearch{Prefix: tag, AfterName: l.NextName, AfterID: l.NextID})
	if len(rest.Groups) != 4 || rest.NextID != 0 || groupNames(rest.Groups, tag) != "g50,g51,g52,small" {
		t.Fatalf("the rest: %s, next %d", groupNames(rest.Groups, tag), rest.NextID)
	}
	// The default page is 20.
	if l := dave.search(protocol.GroupSearch{Prefix: tag}); len(l.Groups) != 20 {
		t.Fatalf("default page of %d", len(l.Groups))
	}
}

// Searches and joins pass the directory's admission: past the burst of an
// address they are answered RATE_LIMITED with a time to retry, while
// other requests of the same connection go on.
func TestGroupDirectoryRateLimit(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.DirRatePerAddr, c.DirBurstPerAddr = 0.01, 3 })
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	alice.register(uniqueName("alice"))
	bob.register(uniqueName("bob"))
	g := alice.createGroup(uniqueName("limited"), true)
	bob.search(protocol.GroupSearch{})
	bob.search(protocol.GroupSearch{})
	id := bob.send(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: g.GroupID})
	bob.expect(protocol.TypeGroupInfo, id, nil)
	id = bob.send(protocol.TypeGroupSearch, &protocol.GroupSearch{})
	if e := bob.expectError(id, protocol.CodeRateLimited); e.Until == 0 {
		t.Fatalf("RATE_LIMITED without until: %+v", e)
	}
	alice.expect(protocol.TypeGroupEvent, 0, nil) // bob joined
	// The same address: alice's searches wait too.
	id = alice.send(protocol.TypeGroupSearch, &protocol.GroupSearch{})
	alice.expectError(id, protocol.CodeRateLimited)
	id = bob.send(protocol.TypeGroups, &protocol.Groups{})
	var gl protocol.GroupList
	bob.expect(protocol.TypeGroupList, id, &gl)
	if len(gl.Groups) != 1 {
		t.Fatalf("groups %+v", gl)
	}
}
