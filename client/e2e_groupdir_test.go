package client_test

import (
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// The directory of open groups through the Go client, under the
// friends-only policy: a stranger finds a group its owner opened, joins it
// by name and writes in it, yet still may neither message the owner
// directly nor add strangers; closed again, the group is neither found
// nor joined; names are not unique, so a join by name sees every match.
func TestGroupDirectoryClient(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	alice, bob, carol := register(t, srv, "alice"), register(t, srv, "bob"), register(t, srv, "carol")

	crag, err := alice.CreateGroup(ctx(t), "Crag", false)
	if err != nil {
		t.Fatal(err)
	}
	if gs, err := bob.OpenGroupsNamed(ctx(t), "crag"); err != nil || len(gs) != 0 {
		t.Fatalf("a closed group is found: %+v %v", gs, err)
	}
	_, err = bob.JoinGroup(ctx(t), crag.GroupID)
	wantCode(t, err, protocol.CodeGroupClosed)
	wantCode(t, bob.SetGroupOpen(ctx(t), crag.GroupID, true), protocol.CodeNotMember)
	if err := alice.SetGroupOpen(ctx(t), crag.GroupID, true); err != nil {
		t.Fatal(err)
	}

	page, err := bob.SearchGroups(ctx(t), "CR", "", 0, 0)
	if err != nil || len(page.Groups) != 1 || page.Groups[0].GroupID != crag.GroupID || !page.Groups[0].Open || page.NextID != 0 {
		t.Fatalf("search: %+v %v", page, err)
	}
	named, err := bob.OpenGroupsNamed(ctx(t), "CRAG")
	if err != nil || len(named) != 1 || named[0].GroupID != crag.GroupID {
		t.Fatalf("by name: %+v %v", named, err)
	}
	if _, err := bob.JoinGroup(ctx(t), named[0].GroupID); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, alice.Client, protocol.GroupJoined, bob.id, bob.id)
	if _, err := bob.SendGroup(ctx(t), crag.GroupID, 0, []byte("hi all")); err != nil {
		t.Fatalf("a joiner writes in the group: %v", err)
	}
	_, err = bob.Send(ctx(t), alice.id, 0, []byte("hi alice"))
	wantCode(t, err, protocol.CodeNotFriends)
	wantCode(t, bob.InviteToGroup(ctx(t), crag.GroupID, carol.id), protocol.CodeNotFriends)

	if err := alice.SetGroupOpen(ctx(t), crag.GroupID, false); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, bob.Client, protocol.GroupClosed, alice.id)
	if gs, err := carol.OpenGroupsNamed(ctx(t), "crag"); err != nil || len(gs) != 0 {
		t.Fatalf("closed again, still found: %+v %v", gs, err)
	}
	_, err = carol.JoinGroup(ctx(t), crag.GroupID)
	wantCode(t, err, protocol.CodeGroupClosed)

	// Two open groups named alike, and one whose name only starts so.
	l1, err := alice.CreateGroup(ctx(t), "Lobby", true)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := carol.CreateGroup(ctx(t), "lobby", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.CreateGroup(ctx(t), "lobby two", true); err != nil {
		t.Fatal(err)
	}
	named, err = bob.OpenGroupsNamed(ctx(t), "LOBBY")
	if err != nil || len(named) != 2 || named[0].GroupID != l1.GroupID || named[1].GroupID != l2.GroupID {
		t.Fatalf("two named lobby: %+v %v", named, err)
	}
}
