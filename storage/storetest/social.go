package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// socialCases are the contract of Profiles, Friends, Groups and Bans.
var socialCases = []struct {
	name string
	fn   func(t *testing.T, open Open)
}{
	{"Profiles", testProfiles},
	{"SearchUsers", testSearchUsers},
	{"FriendRequestAccept", testFriendRequestAccept},
	{"FriendRequestDecline", testFriendRequestDecline},
	{"FriendRequestCrossed", testFriendRequestCrossed},
	{"FriendRequestErrors", testFriendRequestErrors},
	{"FriendRequestLists", testFriendRequestLists},
	{"Unfriend", testUnfriend},
	{"FriendsConcurrent", testFriendsConcurrent},
	{"CreateGroup", testCreateGroup},
	{"CreateGroupErrors", testCreateGroupErrors},
	{"AddMembers", testAddMembers},
	{"RemoveMember", testRemoveMember},
	{"RenameAndOwner", testRenameAndOwner},
	{"DeleteGroup", testDeleteGroup},
	{"GroupsOf", testGroupsOf},
	{"MembershipCursor", testMembershipCursor},
	{"GroupUnread", testGroupUnread},
	{"Bans", testBans},
}

// want fails the test unless err matches target (nil for success).
func want(t *testing.T, what string, err, target error) {
	t.Helper()
	if (target == nil && err != nil) || (target != nil && !errors.Is(err, target)) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// named creates users with the given names and returns their ids.
func (e *env) named(names ...string) []int64 {
	e.t.Helper()
	ids := make([]int64, len(names))
	for i, n := range names {
		u, err := e.s.CreateUser(e.ctx, n, []byte("hash"))
		if err != nil {
			e.t.Fatalf("CreateUser %s: %v", n, err)
		}
		ids[i] = u.ID
	}
	return ids
}

func (e *env) now() time.Time { return time.UnixMilli(e.clock.Add(1)) }

func testProfiles(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	id := e.named("Zoë")[0]
	p, err := e.s.Profile(e.ctx, id)
	if err != nil || p != (storage.Profile{ID: id, Username: "Zoë"}) {
		t.Fatalf("new profile %+v %v", p, err)
	}
	p, err = e.s.SetProfile(e.ctx, id, "Zoë 🌟 张", "https://example.com/z.png")
	if err != nil || p.DisplayName != "Zoë 🌟 张" || p.AvatarURL != "https://example.com/z.png" || p.Username != "Zoë" {
		t.Fatalf("SetProfile %+v %v", p, err)
	}
	if again, _ := e.s.Profile(e.ctx, id); again != p {
		t.Fatalf("Profile after set %+v, want %+v", again, p)
	}
	p, err = e.s.SetProfile(e.ctx, id, "", "")
	if err != nil || p.DisplayName != "" || p.AvatarURL != "" {
		t.Fatalf("clearing the profile %+v %v", p, err)
	}
	_, err = e.s.Profile(e.ctx, id+1000)
	want(t, "Profile of nobody", err, storage.ErrNotFound)
	_, err = e.s.SetProfile(e.ctx, id+1000, "x", "")
	want(t, "SetProfile of nobody", err, storage.ErrNotFound)
}

func testSearchUsers(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	e.named("annika", "Ann_1", "bob", "ANNE", "an%x", "anna", "a_b", "axb")
	search := func(prefix, after string, limit int) []string {
		t.Helper()
		ps, err := e.s.SearchUsers(e.ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("SearchUsers(%q, %q): %v", prefix, after, err)
		}
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.Username
			if p.ID == 0 {
				t.Fatalf("profile without id: %+v", p)
			}
		}
		return names
	}
	if got := fmt.Sprint(search("AN", "", 10)); got != "[an%x Ann_1 anna ANNE annika]" {
		t.Fatalf("search AN: %s", got)
	}
	var paged []string
	for after := ""; ; {
		page := search("an", after, 2)
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if fmt.Sprint(paged) != "[an%x Ann_1 anna ANNE annika]" {
		t.Fatalf("paged search: %v", paged)
	}
	if got := fmt.Sprint(search("an%", "", 10)); got != "[an%x]" {
		t.Fatalf("%% must be literal: %s", got)
	}
	if got := fmt.Sprint(search("a_", "", 10)); got != "[a_b]" {
		t.Fatalf("_ must be literal: %s", got)
	}
	if got := search("zz", "", 10); len(got) != 0 {
		t.Fatalf("search zz: %v", got)
	}
	if got := search("a", "", 3); len(got) != 3 {
		t.Fatalf("limit 3 gave %v", got)
	}
}

func (e *env) areFriends(a, b int64) bool {
	e.t.Helper()
	ok, err := e.s.AreFriends(e.ctx, a, b)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func (e *env) friendNames(user int64) string {
	e.t.Helper()
	ps, err := e.s.FriendsOf(e.ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Username)
	}
	return fmt.Sprint(names)
}

func testFriendRequestAccept(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "Bob", "carol")
	a, b, c := ids[0], ids[1], ids[2]
	mutual, err := e.s.RequestFriend(e.ctx, a, b, "hi", e.now())
	if err != nil || mutual {
		t.Fatalf("RequestFriend: mutual %v, %v", mutual, err)
	}
	if e.areFriends(a, b) {
		t.Fatal("friends before the answer")
	}
	want(t, "accept", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), nil)
	if !e.areFriends(a, b) || !e.areFriends(b, a) {
		t.Fatal("not friends both ways after accept")
	}
	want(t, "accept twice", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), storage.ErrNotFound)
	if _, err := e.s.RequestFriend(e.ctx, c, a, "", e.now()); err != nil {
		t.Fatal(err)
	}
	want(t, "accept", e.s.AnswerFriend(e.ctx, c, a, true, e.now()), nil)
	if got := e.friendNames(a); got != "[Bob carol]" {
		t.Fatalf("alice's friends %s", got)
	}
	if got := e.friendNames(b); got != "[alice]" {
		t.Fatalf("bob's friends %s", got)
	}
	if e.areFriends(b, c) {
		t.Fatal("bob and carol are not friends")
	}
}

func testFriendRequestDecline(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob")
	a, b := ids[0], ids[1]
	if _, err := e.s.RequestFriend(e.ctx, a, b, "", e.now()); err != nil {
		t.Fatal(err)
	}
	want(t, "decline", e.s.AnswerFriend(e.ctx, a, b, false, e.now()), nil)
	if e.areFriends(a, b) {
		t.Fatal("friends after a decline")
	}
	in, out, err := e.s.FriendRequests(e.ctx, b)
	if err != nil || len(in)+len(out) != 0 {
		t.Fatalf("requests after decline: %v %v %v", in, out, err)
	}
	if _, err := e.s.RequestFriend(e.ctx, a, b, "again", e.now()); err != nil {
		t.Fatalf("asking again after a decline: %v", err)
	}
}

func testFriendRequestCrossed(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob")
	a, b := ids[0], ids[1]
	if _, err := e.s.RequestFriend(e.ctx, a, b, "", e.now()); err != nil {
		t.Fatal(err)
	}
	mutual, err := e.s.RequestFriend(e.ctx, b, a, "", e.now())
	if err != nil || !mutual {
		t.Fatalf("crossed request: mutual %v, %v", mutual, err)
	}
	if !e.areFriends(a, b) || !e.areFriends(b, a) {
		t.Fatal("crossed requests did not make friends")
	}
	for _, u := range ids {
		in, out, err := e.s.FriendRequests(e.ctx, u)
		if err != nil || len(in)+len(out) != 0 {
			t.Fatalf("requests left after crossing: %v %v %v", in, out, err)
		}
	}
}

func testFriendRequestErrors(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob")
	a, b := ids[0], ids[1]
	_, err := e.s.RequestFriend(e.ctx, a, b+1000, "", e.now())
	want(t, "request to nobody", err, storage.ErrNotFound)
	if _, err := e.s.RequestFriend(e.ctx, a, b, "", e.now()); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.RequestFriend(e.ctx, a, b, "", e.now())
	want(t, "request twice", err, storage.ErrRequestExists)
	want(t, "answer of the sender", e.s.AnswerFriend(e.ctx, b, a, true, e.now()), storage.ErrNotFound)
	want(t, "accept", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), nil)
	_, err = e.s.RequestFriend(e.ctx, b, a, "", e.now())
	want(t, "request to a friend", err, storage.ErrAlreadyFriends)
}

func testFriendRequestLists(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob", "carol", "dave")
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	for _, r := range []struct {
		from, to int64
		note     string
	}{{b, a, "from bob"}, {a, d, "to dave"}, {c, a, "from carol"}} {
		if _, err := e.s.RequestFriend(e.ctx, r.from, r.to, r.note, e.now()); err != nil {
			t.Fatal(err)
		}
	}
	in, out, err := e.s.FriendRequests(e.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 2 || in[0].From.Username != "carol" || in[1].From.Username != "bob" || in[0].Note != "from carol" {
		t.Fatalf("incoming, newest first: %+v", in)
	}
	if in[0].To.ID != a || in[0].From.ID != c || in[0].Created.IsZero() || !in[0].Created.After(in[1].Created) {
		t.Fatalf("incoming request fields %+v", in[0])
	}
	if len(out) != 1 || out[0].To.Username != "dave" || out[0].From.ID != a || out[0].Note != "to dave" {
		t.Fatalf("outgoing %+v", out)
	}
	in, out, _ = e.s.FriendRequests(e.ctx, d)
	if len(in) != 1 || len(out) != 0 || in[0].From.ID != a {
		t.Fatalf("dave's requests %+v %+v", in, out)
	}
}

func testUnfriend(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob")
	a, b := ids[0], ids[1]
	want(t, "unfriend strangers", e.s.Unfriend(e.ctx, a, b), storage.ErrNotFriends)
	if _, err := e.s.RequestFriend(e.ctx, a, b, "", e.now()); err != nil {
		t.Fatal(err)
	}
	want(t, "accept", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), nil)
	want(t, "unfriend", e.s.Unfriend(e.ctx, b, a), nil)
	if e.areFriends(a, b) || e.areFriends(b, a) {
		t.Fatal("still friends after unfriend")
	}
	if e.friendNames(a) != "[]" || e.friendNames(b) != "[]" {
		t.Fatal("friend lists not empty")
	}
	want(t, "unfriend twice", e.s.Unfriend(e.ctx, a, b), storage.ErrNotFriends)
}

// Crossed requests made at the same moment make one friendship, and exactly
// one of them reports mutual.
func testFriendsConcurrent(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob")
	var wg sync.WaitGroup
	results := make([]bool, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.s.RequestFriend(e.ctx, ids[i], ids[1-i], "", time.Now())
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || results[0] == results[1] {
		t.Fatalf("crossed concurrent requests: mutual %v errors %v", results, errs)
	}
	if !e.areFriends(ids[0], ids[1]) {
		t.Fatal("not friends")
	}
}

func (e *env) memberIDs(group int64) []int64 {
	e.t.Helper()
	ids, err := e.s.MemberIDs(e.ctx, group)
	if err != nil {
		e.t.Fatalf("MemberIDs(%d): %v", group, err)
	}
	return ids
}

func (e *env) isMember(group, user int64) bool {
	e.t.Helper()
	ok, err := e.s.IsMember(e.ctx, group, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func testCreateGroup(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(4)
	now := e.now()
	g, err := e.s.CreateGroup(e.ctx, ids[2], "climbing 🧗", true, []int64{ids[0], ids[2], ids[0]}, 10, now)
	if err != nil {
		t.Fatal(err)
	}
	if g.ID == 0 || g.Name != "climbing 🧗" || g.Owner != ids[2] || !g.Open || g.Members != 2 || !g.Created.Equal(now) {
		t.Fatalf("CreateGroup %+v", g)
	}
	got, err := e.s.Group(e.ctx, g.ID)
	if err != nil || got != g {
		t.Fatalf("Group %+v %v, want %+v", got, err, g)
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, []int64{ids[0], ids[2]}) {
		t.Fatalf("MemberIDs %v", m)
	}
	if !e.isMember(g.ID, ids[0]) || e.isMember(g.ID, ids[1]) {
		t.Fatal("IsMember wrong")
	}
	members, err := e.s.Members(e.ctx, g.ID)
	if err != nil || len(members) != 2 || members[0].ID != ids[0] || members[0].Username != "user0" || !members[0].Joined.Equal(now) {
		t.Fatalf("Members %+v %v", members, err)
	}
	other, err := e.s.CreateGroup(e.ctx, ids[3], "other", false, nil, 10, e.now())
	if err != nil || other.ID == g.ID || other.Members != 1 || other.Open {
		t.Fatalf("second group %+v %v", other, err)
	}
}

func testCreateGroupErrors(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(4)
	_, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:], 3, e.now())
	want(t, "4 members, max 3", err, storage.ErrGroupFull)
	_, err = e.s.CreateGroup(e.ctx, ids[0], "g", false, []int64{ids[1], ids[3] + 1000}, 10, e.now())
	want(t, "a member who does not exist", err, storage.ErrNotFound)
	groups, err := e.s.GroupsOf(e.ctx, ids[0])
	if err != nil || len(groups) != 0 {
		t.Fatalf("a failed create left groups: %+v %v", groups, err)
	}
	if _, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:3], 3, e.now()); err != nil {
		t.Fatalf("exactly max members: %v", err)
	}
}

func testAddMembers(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(5)
	g, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, []int64{ids[1]}, 4, e.now())
	if err != nil {
		t.Fatal(err)
	}
	added, err := e.s.AddMembers(e.ctx, g.ID, []int64{ids[3], ids[1], ids[2], ids[3]}, 4, e.now())
	if err != nil || !slices.Equal(added, []int64{ids[2], ids[3]}) {
		t.Fatalf("AddMembers: added %v, %v", added, err)
	}
	_, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[4]}, 4, e.now())
	want(t, "past max", err, storage.ErrGroupFull)
	_, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[4], ids[4] + 1000}, 10, e.now())
	want(t, "a user who does not exist", err, storage.ErrNotFound)
	if e.isMember(g.ID, ids[4]) {
		t.Fatal("a failed AddMembers added someone")
	}
	_, err = e.s.AddMembers(e.ctx, g.ID+1000, []int64{ids[4]}, 10, e.now())
	want(t, "no such group", err, storage.ErrNotFound)
	added, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[1]}, 4, e.now())
	if err != nil || len(added) != 0 {
		t.Fatalf("adding a member again: %v %v", added, err)
	}
	if got, _ := e.s.Group(e.ctx, g.ID); got.Members != 4 {
		t.Fatalf("member count %d", got.Members)
	}
}

func testRemoveMember(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	g, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:], 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	want(t, "remove", e.s.RemoveMember(e.ctx, g.ID, ids[1]), nil)
	want(t, "remove twice", e.s.RemoveMember(e.ctx, g.ID, ids[1]), storage.ErrNotMember)
	if m := e.memberIDs(g.ID); !slices.Equal(m, []int64{ids[0], ids[2]}) {
		t.Fatalf("members after remove %v", m)
	}
	if got, _ := e.s.Group(e.ctx, g.ID); got.Members != 2 {
		t.Fatalf("member count %d", got.Members)
	}
	// Joining again is a new membership.
	if added, err := e.s.AddMembers(e.ctx, g.ID, ids[1:2], 10, e.now()); err != nil || len(added) != 1 {
		t.Fatalf("rejoin %v %v", added, err)
	}
}

func testRenameAndOwner(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	g, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:2], 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	want(t, "rename", e.s.RenameGroup(e.ctx, g.ID, "新しい名前"), nil)
	want(t, "rename nothing", e.s.RenameGroup(e.ctx, g.ID+1000, "x"), storage.ErrNotFound)
	want(t, "owner to non-member", e.s.SetGroupOwner(e.ctx, g.ID, ids[2]), storage.ErrNotMember)
	want(t, "owner of nothing", e.s.SetGroupOwner(e.ctx, g.ID+1000, ids[1]), storage.ErrNotFound)
	want(t, "owner", e.s.SetGroupOwner(e.ctx, g.ID, ids[1]), nil)
	got, err := e.s.Group(e.ctx, g.ID)
	if err != nil || got.Name != "新しい名前" || got.Owner != ids[1] || got.Members != 2 {
		t.Fatalf("after rename and owner: %+v %v", got, err)
	}
}

func testDeleteGroup(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	g, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:], 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	e.add(e.group(ids[0], g.ID, "before delete", []byte("x")))
	want(t, "delete", e.s.DeleteGroup(e.ctx, g.ID), nil)
	_, err = e.s.Group(e.ctx, g.ID)
	want(t, "Group after delete", err, storage.ErrNotFound)
	_, err = e.s.MemberIDs(e.ctx, g.ID)
	want(t, "MemberIDs after delete", err, storage.ErrNotFound)
	_, err = e.s.Members(e.ctx, g.ID)
	want(t, "Members after delete", err, storage.ErrNotFound)
	want(t, "delete twice", e.s.DeleteGroup(e.ctx, g.ID), storage.ErrNotFound)
	for _, u := range ids {
		if groups, _ := e.s.GroupsOf(e.ctx, u); len(groups) != 0 {
			t.Fatalf("GroupsOf after delete: %+v", groups)
		}
		if e.isMember(g.ID, u) {
			t.Fatal("member after delete")
		}
		if cs := e.convs(u, 10); len(cs) != 0 {
			t.Fatalf("conversations after delete: %+v", cs)
		}
	}
}

func testGroupsOf(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	g1, _ := e.s.CreateGroup(e.ctx, ids[0], "one", false, ids[1:2], 10, e.now())
	g2, _ := e.s.CreateGroup(e.ctx, ids[1], "two", true, ids[2:], 10, e.now())
	groups, err := e.s.GroupsOf(e.ctx, ids[1])
	if err != nil || len(groups) != 2 || groups[0] != g1 || groups[1].ID != g2.ID || groups[1].Members != 2 {
		t.Fatalf("GroupsOf %+v %v", groups, err)
	}
	if groups, _ := e.s.GroupsOf(e.ctx, ids[0]); len(groups) != 1 || groups[0].ID != g1.ID {
		t.Fatalf("GroupsOf owner %+v", groups)
	}
}

// A member sees a group's messages from its join on; one who left sees
// the conversation no more.
func testMembershipCursor(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	a, b, c := ids[0], ids[1], ids[2]
	g, err := e.s.CreateGroup(e.ctx, a, "g", false, []int64{b}, 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	conv := protocol.GroupConv(g.ID)
	for i := range 3 {
		e.add(e.group(a, g.ID, fmt.Sprintf("early-%d", i), []byte("early")))
	}
	if _, err := e.s.AddMembers(e.ctx, g.ID, []int64{c}, 10, e.now()); err != nil {
		t.Fatal(err)
	}
	if v := e.visible(c, conv); len(v) != 0 {
		t.Fatalf("new member sees %v", v)
	}
	page := e.after(c, conv, 0, 10)
	if page.lastSeq != 3 {
		t.Fatalf("lastSeq %d", page.lastSeq)
	}
	cs := e.convs(c, 10)
	if len(cs) != 1 || cs[0].Unread != 0 || cs[0].AckSeq != 3 || cs[0].Last != nil {
		t.Fatalf("new member's conversations %+v", cs)
	}
	e.add(e.group(b, g.ID, "late", []byte("late")))
	if v := e.visible(c, conv); !slices.Equal(v, []uint64{4}) {
		t.Fatalf("member sees %v, want [4]", v)
	}
	msgs, _, _, err := e.s.Before(e.ctx, c, conv, 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != 4 {
		t.Fatalf("Before for the new member: %d messages, %v", len(msgs), err)
	}
	if cs := e.convs(c, 10); len(cs) != 1 || cs[0].Unread != 1 || cs[0].Last == nil || cs[0].Last.Seq != 4 {
		t.Fatalf("after a new message %+v", cs)
	}
	if v := e.visible(b, conv); len(v) != 4 {
		t.Fatalf("original member sees %v", v)
	}

	want(t, "leave", e.s.RemoveMember(e.ctx, g.ID, c), nil)
	if cs := e.convs(c, 10); len(cs) != 0 {
		t.Fatalf("conversations after leaving %+v", cs)
	}
	e.add(e.group(a, g.ID, "after-leave", []byte("x")))
	if _, err := e.s.AddMembers(e.ctx, g.ID, []int64{c}, 10, e.now()); err != nil {
		t.Fatal(err)
	}
	if v := e.visible(c, conv); len(v) != 0 {
		t.Fatalf("a rejoined member sees %v", v)
	}
}

func testGroupUnread(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	g, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:], 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	conv := protocol.GroupConv(g.ID)
	e.add(e.group(ids[0], g.ID, "m1", []byte("1")))
	e.add(e.group(ids[1], g.ID, "m2", []byte("2")))
	e.add(e.group(ids[2], g.ID, "m3", []byte("3")))
	want(t, "ack", e.s.Ack(e.ctx, ids[2], conv, 1), nil)
	for _, c := range []struct {
		user   int64
		unread uint64
	}{{ids[0], 2}, {ids[1], 2}, {ids[2], 1}} {
		cs := e.convs(c.user, 10)
		if len(cs) != 1 || cs[0].Unread != c.unread || cs[0].LastSeq != 3 {
			t.Fatalf("user %d: %+v, want unread %d", c.user, cs, c.unread)
		}
	}
	// Ack of a non-member changes nothing and makes no membership.
	outsider := e.named("outsider")[0]
	if err := e.s.Ack(e.ctx, outsider, conv, 3); err != nil {
		t.Fatal(err)
	}
	if cs := e.convs(outsider, 10); len(cs) != 0 || e.isMember(g.ID, outsider) {
		t.Fatalf("an ack made a membership: %+v", cs)
	}
}

func testBans(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	now := time.UnixMilli(time.Now().UnixMilli())
	until := now.Add(time.Hour)
	want(t, "ban", e.s.BanUser(e.ctx, ids[1], until, "spam", now), nil)
	want(t, "ban nobody", e.s.BanUser(e.ctx, ids[2]+1000, until, "", now), storage.ErrNotFound)
	got, err := e.s.BannedUntil(e.ctx, ids[1], now)
	if err != nil || !got.Equal(until) {
		t.Fatalf("BannedUntil %v %v, want %v", got, err, until)
	}
	if got, _ := e.s.BannedUntil(e.ctx, ids[1], until.Add(time.Millisecond)); !got.IsZero() {
		t.Fatalf("ban in force after its end: %v", got)
	}
	if got, _ := e.s.BannedUntil(e.ctx, ids[0], now); !got.IsZero() {
		t.Fatalf("unbanned user banned until %v", got)
	}
	want(t, "ban", e.s.BanUser(e.ctx, ids[0], now.Add(time.Minute), "", now), nil)
	bans, err := e.s.ActiveBans(e.ctx, now)
	if err != nil || len(bans) != 2 || bans[0].UserID != ids[0] || bans[1].UserID != ids[1] ||
		bans[1].Reason != "spam" || bans[1].Username != "user1" || !bans[1].Until.Equal(until) || !bans[1].Created.Equal(now) {
		t.Fatalf("ActiveBans %+v %v", bans, err)
	}
	if bans, _ := e.s.ActiveBans(e.ctx, now.Add(2*time.Minute)); len(bans) != 1 || bans[0].UserID != ids[1] {
		t.Fatalf("ActiveBans later %+v", bans)
	}
	// A new ban replaces the old one; unban lifts it; unbanning twice is fine.
	want(t, "shorten", e.s.BanUser(e.ctx, ids[1], now.Add(time.Second), "", now), nil)
	if got, _ := e.s.BannedUntil(e.ctx, ids[1], now.Add(2*time.Second)); !got.IsZero() {
		t.Fatalf("replaced ban still in force: %v", got)
	}
	want(t, "unban", e.s.UnbanUser(e.ctx, ids[0]), nil)
	want(t, "unban twice", e.s.UnbanUser(e.ctx, ids[0]), nil)
	if got, _ := e.s.BannedUntil(e.ctx, ids[0], now); !got.IsZero() {
		t.Fatalf("unbanned but banned until %v", got)
	}
}
