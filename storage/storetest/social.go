package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// socialCases are the contract of Profiles, Friends, Groups and Bans.
//
// Every case names its users behind a prefix of its own (see tagged), and
// looks only at them, so the cases also hold when a backend runs them all
// in one database.
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
	{"AddMembersConcurrent", testAddMembersConcurrent},
	{"MembersOrder", testMembersOrder},
	{"RemoveMember", testRemoveMember},
	{"RenameAndOwner", testRenameAndOwner},
	{"DeleteGroup", testDeleteGroup},
	{"GroupsOf", testGroupsOf},
	{"MembershipCursor", testMembershipCursor},
	{"GroupUnread", testGroupUnread},
	{"OpenGroupsOrder", testOpenGroupsOrder},
	{"OpenGroupsChanges", testOpenGroupsChanges},
	{"Bans", testBans},
	{"SocialCanceled", testSocialCanceled},
	{"SocialClosed", testSocialClosed},
}

// want fails the test unless err matches target (nil for success).
func want(t *testing.T, what string, err, target error) {
	t.Helper()
	if (target == nil && err != nil) || (target != nil && !errors.Is(err, target)) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// tagRun and tagSeq make the prefixes of tagged: unique to the process and
// to each call, lower-case letters and digits ending in a dot.
var (
	tagRun = strings.ToLower(rand.Text()[:6])
	tagSeq atomic.Int64
)

// tagged creates a user for each name, named tag+name, and returns the tag
// and their ids, ascending in the order of names.
func (e *env) tagged(names ...string) (tag string, ids []int64) {
	e.t.Helper()
	tag = fmt.Sprintf("t%s%d.", tagRun, tagSeq.Add(1))
	ids = make([]int64, len(names))
	for i, n := range names {
		u, err := e.s.CreateUser(e.ctx, tag+n, []byte("hash"))
		if err != nil {
			e.t.Fatalf("CreateUser %s: %v", tag+n, err)
		}
		ids[i] = u.ID
	}
	return tag, ids
}

// named is tagged without the tag.
func (e *env) named(names ...string) []int64 {
	e.t.Helper()
	_, ids := e.tagged(names...)
	return ids
}

// base is a username made by tagged without its tag.
func base(username string) string {
	_, name, _ := strings.Cut(username, ".")
	return name
}

// baseNames lists the base names of profiles, as "[a b c]".
func baseNames(ps []storage.Profile) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = base(p.Username)
	}
	return fmt.Sprint(names)
}

// now is the env's clock: a new millisecond at each call.
func (e *env) now() time.Time { return time.UnixMilli(e.clock.Add(1)) }

func (e *env) profile(user int64) storage.Profile {
	e.t.Helper()
	p, err := e.s.Profile(e.ctx, user)
	if err != nil {
		e.t.Fatalf("Profile(%d): %v", user, err)
	}
	return p
}

func (e *env) setProfile(user int64, displayName, avatarURL string) storage.Profile {
	e.t.Helper()
	p, err := e.s.SetProfile(e.ctx, user, displayName, avatarURL)
	if err != nil {
		e.t.Fatalf("SetProfile(%d): %v", user, err)
	}
	return p
}

func testProfiles(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	tag, ids := e.tagged("Zoë", "other")
	id := ids[0]
	if p := e.profile(id); p != (storage.Profile{ID: id, Username: tag + "Zoë"}) {
		t.Fatalf("new profile %+v", p)
	}
	wantP := storage.Profile{ID: id, Username: tag + "Zoë", DisplayName: "Zoë 🌟 张", AvatarURL: "https://example.com/z.png"}
	if p := e.setProfile(id, wantP.DisplayName, wantP.AvatarURL); p != wantP {
		t.Fatalf("SetProfile returned %+v, want %+v", p, wantP)
	}
	if p := e.profile(id); p != wantP {
		t.Fatalf("Profile after SetProfile %+v, want %+v", p, wantP)
	}
	if p := e.profile(ids[1]); p != (storage.Profile{ID: ids[1], Username: tag + "other"}) {
		t.Fatalf("SetProfile changed another user: %+v", p)
	}
	if p := e.setProfile(id, "", ""); p != (storage.Profile{ID: id, Username: tag + "Zoë"}) {
		t.Fatalf("clearing the profile gave %+v", p)
	}
	missing := ids[1] + 1_000_000
	_, err := e.s.Profile(e.ctx, missing)
	want(t, "Profile of nobody", err, storage.ErrNotFound)
	_, err = e.s.SetProfile(e.ctx, missing, "x", "")
	want(t, "SetProfile of nobody", err, storage.ErrNotFound)
}

func testSearchUsers(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	tag, ids := e.tagged("annika", "Ann_1", "bob", "ANNE", "an%x", "anna", "a_b", "axb")
	anna := e.setProfile(ids[5], "Anna A.", "https://example.com/a.png")
	search := func(prefix, after string, limit int) []storage.Profile {
		t.Helper()
		ps, err := e.s.SearchUsers(e.ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("SearchUsers(%q, %q, %d): %v", prefix, after, limit, err)
		}
		return ps
	}
	for _, c := range []struct {
		prefix, after string
		limit         int
		want          string
	}{
		// Ordered by lower-cased username: '%' < '_' < letters.
		{tag + "an", "", 10, "[an%x Ann_1 anna ANNE annika]"},
		{tag + "AN", "", 10, "[an%x Ann_1 anna ANNE annika]"},
		{strings.ToUpper(tag) + "aN", "", 10, "[an%x Ann_1 anna ANNE annika]"},
		{tag + "a", "", 3, "[a_b an%x Ann_1]"},
		{tag + "a", "", 100, "[a_b an%x Ann_1 anna ANNE annika axb]"},
		{tag + "an", tag + "ANNA", 10, "[ANNE annika]"},
		{tag + "an", tag + "ann", 2, "[Ann_1 anna]"},
		{tag + "an", tag + "annika", 10, "[]"},
		{tag + "anna", "", 10, "[anna]"},
		{tag + "bob", "", 10, "[bob]"},
		// Wildcards are literal.
		{tag + "an%", "", 10, "[an%x]"},
		{tag + "a_", "", 10, "[a_b]"},
		{tag + "%", "", 10, "[]"},
		{tag + "_", "", 10, "[]"},
		{tag + "zz", "", 10, "[]"},
		{tag + "a", "", 0, "[]"},
	} {
		if got := baseNames(search(c.prefix, c.after, c.limit)); got != c.want {
			t.Errorf("SearchUsers(%q, %q, %d) = %s, want %s", c.prefix, c.after, c.limit, got, c.want)
		}
	}
	var paged []storage.Profile
	for after, pages := "", 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page := search(tag+"AN", after, 2)
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Username
	}
	if got := baseNames(paged); got != "[an%x Ann_1 anna ANNE annika]" {
		t.Fatalf("paged search: %s", got)
	}
	if got := search(tag+"anna", "", 1); len(got) != 1 || got[0] != anna {
		t.Fatalf("search gives full profiles: %+v, want %+v", got, anna)
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

// friendNames lists user's friends by base name.
func (e *env) friendNames(user int64) string {
	e.t.Helper()
	ps, err := e.s.FriendsOf(e.ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return baseNames(ps)
}

// requests returns user's pending requests, failing the test on error.
func (e *env) requests(user int64) (in, out []storage.FriendRequest) {
	e.t.Helper()
	in, out, err := e.s.FriendRequests(e.ctx, user)
	if err != nil {
		e.t.Fatalf("FriendRequests(%d): %v", user, err)
	}
	return in, out
}

// befriend makes a and b friends by a request and its acceptance.
func (e *env) befriend(a, b int64) {
	e.t.Helper()
	if mutual, err := e.s.RequestFriend(e.ctx, a, b, "", e.now()); err != nil || mutual {
		e.t.Fatalf("RequestFriend(%d, %d): mutual %v, %v", a, b, mutual, err)
	}
	if err := e.s.AnswerFriend(e.ctx, a, b, true, e.now()); err != nil {
		e.t.Fatalf("AnswerFriend(%d, %d): %v", a, b, err)
	}
}

func testFriendRequestAccept(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "Bob", "carol", "Dan")
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	mutual, err := e.s.RequestFriend(e.ctx, a, b, "hi", e.now())
	if err != nil || mutual {
		t.Fatalf("RequestFriend: mutual %v, %v", mutual, err)
	}
	if e.areFriends(a, b) || e.areFriends(b, a) {
		t.Fatal("friends before the answer")
	}
	want(t, "accept", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), nil)
	if !e.areFriends(a, b) || !e.areFriends(b, a) {
		t.Fatal("not friends both ways after accept")
	}
	for _, u := range []int64{a, b} {
		if in, out := e.requests(u); len(in)+len(out) != 0 {
			t.Fatalf("requests of %d after accept: %+v %+v", u, in, out)
		}
	}
	want(t, "accept twice", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), storage.ErrNotFound)
	e.befriend(c, a)
	e.befriend(a, d)
	// By lower-cased name: byte order would put Dan before carol.
	if got := e.friendNames(a); got != "[Bob carol Dan]" {
		t.Fatalf("alice's friends %s", got)
	}
	if got := e.friendNames(b); got != "[alice]" {
		t.Fatalf("Bob's friends %s", got)
	}
	if got := e.friendNames(c); got != "[alice]" {
		t.Fatalf("carol's friends %s", got)
	}
	if e.areFriends(b, c) || e.areFriends(c, d) {
		t.Fatal("friends of a friend are friends")
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
	if e.areFriends(a, b) || e.areFriends(b, a) {
		t.Fatal("friends after a decline")
	}
	for _, u := range ids {
		if in, out := e.requests(u); len(in)+len(out) != 0 {
			t.Fatalf("requests of %d after decline: %+v %+v", u, in, out)
		}
	}
	want(t, "decline twice", e.s.AnswerFriend(e.ctx, a, b, false, e.now()), storage.ErrNotFound)
	mutual, err := e.s.RequestFriend(e.ctx, a, b, "again", e.now())
	if err != nil || mutual {
		t.Fatalf("asking again after a decline: mutual %v, %v", mutual, err)
	}
	if in, _ := e.requests(b); len(in) != 1 || in[0].Note != "again" {
		t.Fatalf("the new request: %+v", in)
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
		if in, out := e.requests(u); len(in)+len(out) != 0 {
			t.Fatalf("requests left after crossing: %+v %+v", in, out)
		}
	}
	want(t, "answer of the removed request", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), storage.ErrNotFound)
}

func testFriendRequestErrors(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob")
	a, b := ids[0], ids[1]
	_, err := e.s.RequestFriend(e.ctx, a, b+1_000_000, "", e.now())
	want(t, "request to nobody", err, storage.ErrNotFound)
	if in, out := e.requests(a); len(in)+len(out) != 0 {
		t.Fatalf("a request to nobody was kept: %+v %+v", in, out)
	}
	if _, err := e.s.RequestFriend(e.ctx, a, b, "first", e.now()); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.RequestFriend(e.ctx, a, b, "second", e.now())
	want(t, "request twice", err, storage.ErrRequestExists)
	if in, _ := e.requests(b); len(in) != 1 || in[0].Note != "first" {
		t.Fatalf("a refused request changed the first: %+v", in)
	}
	want(t, "answer of the sender", e.s.AnswerFriend(e.ctx, b, a, true, e.now()), storage.ErrNotFound)
	want(t, "answer of nothing", e.s.AnswerFriend(e.ctx, b+1_000_000, a, false, e.now()), storage.ErrNotFound)
	want(t, "accept", e.s.AnswerFriend(e.ctx, a, b, true, e.now()), nil)
	_, err = e.s.RequestFriend(e.ctx, b, a, "", e.now())
	want(t, "request to a friend", err, storage.ErrAlreadyFriends)
	_, err = e.s.RequestFriend(e.ctx, a, b, "", e.now())
	want(t, "request to a friend, the other way", err, storage.ErrAlreadyFriends)
	for _, u := range ids {
		if in, out := e.requests(u); len(in)+len(out) != 0 {
			t.Fatalf("a refused request was kept: %+v %+v", in, out)
		}
	}
}

func testFriendRequestLists(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob", "carol", "dave", "erin")
	a, b, c, d, x := ids[0], ids[1], ids[2], ids[3], ids[4]
	alice := e.setProfile(a, "Alice A.", "https://example.com/a.png")
	bob := e.setProfile(b, "Bob B.", "")
	carol, dave, erin := e.profile(c), e.profile(d), e.profile(x)
	if in, out := e.requests(a); len(in)+len(out) != 0 {
		t.Fatalf("requests before any: %+v %+v", in, out)
	}
	reqs := []storage.FriendRequest{
		{From: bob, To: alice, Note: "from bob"},
		{From: alice, To: dave, Note: "to dave"},
		{From: carol, To: alice, Note: "from carol"},
		{From: alice, To: erin, Note: ""},
	}
	for i := range reqs {
		r := &reqs[i]
		r.Created = e.now()
		if _, err := e.s.RequestFriend(e.ctx, r.From.ID, r.To.ID, r.Note, r.Created); err != nil {
			t.Fatal(err)
		}
	}
	same := func(what string, got, want []storage.FriendRequest) {
		t.Helper()
		ok := len(got) == len(want)
		for i := 0; ok && i < len(got); i++ {
			g, w := got[i], want[i]
			ok = g.From == w.From && g.To == w.To && g.Note == w.Note && g.Created.Equal(w.Created)
		}
		if !ok {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}
	in, out := e.requests(a)
	same("alice's incoming, newest first", in, []storage.FriendRequest{reqs[2], reqs[0]})
	same("alice's outgoing, newest first", out, []storage.FriendRequest{reqs[3], reqs[1]})
	in, out = e.requests(d)
	same("dave's incoming", in, []storage.FriendRequest{reqs[1]})
	same("dave's outgoing", out, nil)
	in, out = e.requests(b)
	same("bob's incoming", in, nil)
	same("bob's outgoing", out, []storage.FriendRequest{reqs[0]})
	// A request shows the profiles as they are now.
	bob = e.setProfile(b, "Robert", "https://example.com/b.png")
	reqs[0].From = bob
	in, _ = e.requests(a)
	same("alice's incoming after bob's new profile", in, []storage.FriendRequest{reqs[2], reqs[0]})
}

func testUnfriend(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("alice", "bob", "carol")
	a, b, c := ids[0], ids[1], ids[2]
	want(t, "unfriend strangers", e.s.Unfriend(e.ctx, a, b), storage.ErrNotFriends)
	e.befriend(a, b)
	e.befriend(a, c)
	want(t, "unfriend", e.s.Unfriend(e.ctx, b, a), nil)
	if e.areFriends(a, b) || e.areFriends(b, a) {
		t.Fatal("still friends after unfriend")
	}
	if got := e.friendNames(a); got != "[carol]" {
		t.Fatalf("alice's friends after unfriending bob: %s", got)
	}
	if got := e.friendNames(b); got != "[]" {
		t.Fatalf("bob's friends after unfriend: %s", got)
	}
	want(t, "unfriend twice", e.s.Unfriend(e.ctx, a, b), storage.ErrNotFriends)
	want(t, "unfriend twice, the other way", e.s.Unfriend(e.ctx, b, a), storage.ErrNotFriends)
	if !e.areFriends(c, a) {
		t.Fatal("an unfriend ended another friendship")
	}
	// Friends again from a new request.
	e.befriend(b, a)
	if got := e.friendNames(a); got != "[bob carol]" {
		t.Fatalf("alice's friends after making up: %s", got)
	}
}

// Crossed requests made at the same moment make one friendship, and exactly
// one of them reports mutual.
func testFriendsConcurrent(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	for round := range 5 {
		ids := e.named("alice", "bob")
		var wg sync.WaitGroup
		results := make([]bool, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				results[i], errs[i] = e.s.RequestFriend(e.ctx, ids[i], ids[1-i], "", time.Now())
			})
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || results[0] == results[1] {
			t.Fatalf("round %d: crossed concurrent requests: mutual %v, errors %v", round, results, errs)
		}
		if !e.areFriends(ids[0], ids[1]) || !e.areFriends(ids[1], ids[0]) {
			t.Fatalf("round %d: not friends", round)
		}
		for _, u := range ids {
			if in, out := e.requests(u); len(in)+len(out) != 0 {
				t.Fatalf("round %d: requests left: %+v %+v", round, in, out)
			}
		}
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

func (e *env) getGroup(id int64) storage.Group {
	e.t.Helper()
	g, err := e.s.Group(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}

func (e *env) createGroup(owner int64, members []int64, max int) storage.Group {
	e.t.Helper()
	g, err := e.s.CreateGroup(e.ctx, owner, "g", false, members, max, e.now())
	if err != nil {
		e.t.Fatalf("CreateGroup: %v", err)
	}
	return g
}

func (e *env) groupsOf(user int64) []storage.Group {
	e.t.Helper()
	gs, err := e.s.GroupsOf(e.ctx, user)
	if err != nil {
		e.t.Fatalf("GroupsOf(%d): %v", user, err)
	}
	return gs
}

// sameGroup reports whether two groups are equal, times by Equal.
func sameGroup(a, b storage.Group) bool {
	a.Created, b.Created = a.Created.UTC(), b.Created.UTC()
	return a == b
}

func testCreateGroup(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat", "dan")
	now := e.now()
	g, err := e.s.CreateGroup(e.ctx, ids[2], "climbing 🧗", true, []int64{ids[0], ids[2], ids[0]}, 10, now)
	if err != nil {
		t.Fatal(err)
	}
	wantG := storage.Group{ID: g.ID, Name: "climbing 🧗", Owner: ids[2], Open: true, Members: 2, Created: now}
	if g.ID <= 0 || !sameGroup(g, wantG) {
		t.Fatalf("CreateGroup = %+v, want %+v", g, wantG)
	}
	if got := e.getGroup(g.ID); !sameGroup(got, wantG) {
		t.Fatalf("Group = %+v, want %+v", got, wantG)
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, []int64{ids[0], ids[2]}) {
		t.Fatalf("MemberIDs %v", m)
	}
	for i, want := range []bool{true, false, true, false} {
		if e.isMember(g.ID, ids[i]) != want {
			t.Fatalf("IsMember(%d) != %v", i, want)
		}
	}
	other, err := e.s.CreateGroup(e.ctx, ids[3], "other", false, nil, 1, now)
	wantOther := storage.Group{ID: other.ID, Name: "other", Owner: ids[3], Open: false, Members: 1, Created: now}
	if err != nil || other.ID <= 0 || other.ID == g.ID || !sameGroup(other, wantOther) {
		t.Fatalf("second group %+v %v, want %+v", other, err, wantOther)
	}
	if got := e.getGroup(other.ID); !sameGroup(got, wantOther) {
		t.Fatalf("Group = %+v, want %+v", got, wantOther)
	}
	if e.isMember(other.ID+1_000_000, ids[3]) {
		t.Fatal("member of a group that does not exist")
	}
	_, err = e.s.Group(e.ctx, other.ID+1_000_000)
	want(t, "Group of nothing", err, storage.ErrNotFound)
	_, err = e.s.MemberIDs(e.ctx, other.ID+1_000_000)
	want(t, "MemberIDs of nothing", err, storage.ErrNotFound)
	_, err = e.s.Members(e.ctx, other.ID+1_000_000)
	want(t, "Members of nothing", err, storage.ErrNotFound)
}

func testCreateGroupErrors(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat", "dan")
	missing := ids[3] + 1_000_000
	_, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, ids[1:], 3, e.now())
	want(t, "4 members, max 3", err, storage.ErrGroupFull)
	_, err = e.s.CreateGroup(e.ctx, ids[0], "g", false, []int64{ids[1], missing}, 10, e.now())
	want(t, "a member who does not exist", err, storage.ErrNotFound)
	_, err = e.s.CreateGroup(e.ctx, missing, "g", false, []int64{ids[1]}, 10, e.now())
	want(t, "an owner who does not exist", err, storage.ErrNotFound)
	for _, u := range ids {
		if gs := e.groupsOf(u); len(gs) != 0 {
			t.Fatalf("a failed create left groups: %+v", gs)
		}
	}
	// Duplicates, the owner among them, do not count against max.
	g, err := e.s.CreateGroup(e.ctx, ids[0], "g", false, []int64{ids[1], ids[0], ids[1], ids[2]}, 3, e.now())
	if err != nil || g.Members != 3 {
		t.Fatalf("exactly max members: %+v %v", g, err)
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, ids[:3]) {
		t.Fatalf("MemberIDs %v, want %v", m, ids[:3])
	}
}

func testAddMembers(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat", "dan", "eve")
	g := e.createGroup(ids[0], []int64{ids[1]}, 4)
	added, err := e.s.AddMembers(e.ctx, g.ID, []int64{ids[3], ids[1], ids[2], ids[3]}, 4, e.now())
	if err != nil || !slices.Equal(added, []int64{ids[2], ids[3]}) {
		t.Fatalf("AddMembers: added %v, %v; want %v", added, err, ids[2:4])
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, ids[:4]) {
		t.Fatalf("MemberIDs %v", m)
	}
	_, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[4]}, 4, e.now())
	want(t, "past max", err, storage.ErrGroupFull)
	_, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[4], ids[4] + 1_000_000}, 10, e.now())
	want(t, "a user who does not exist", err, storage.ErrNotFound)
	if e.isMember(g.ID, ids[4]) {
		t.Fatal("a failed AddMembers added someone")
	}
	_, err = e.s.AddMembers(e.ctx, g.ID+1_000_000, []int64{ids[4]}, 10, e.now())
	want(t, "no such group", err, storage.ErrNotFound)
	added, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[1], ids[0]}, 4, e.now())
	if err != nil || len(added) != 0 {
		t.Fatalf("adding members again: added %v, %v", added, err)
	}
	if got := e.getGroup(g.ID); got.Members != 4 {
		t.Fatalf("member count %d, want 4", got.Members)
	}
	added, err = e.s.AddMembers(e.ctx, g.ID, []int64{ids[4], ids[2]}, 5, e.now())
	if err != nil || !slices.Equal(added, ids[4:]) {
		t.Fatalf("AddMembers up to a higher max: added %v, %v", added, err)
	}
	if got := e.getGroup(g.ID); got.Members != 5 {
		t.Fatalf("member count %d, want 5", got.Members)
	}
}

// Concurrent AddMembers fill a group to max and no further, and a user
// added by several at once is added by one.
func testAddMembersConcurrent(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("owner", "u1", "u2", "u3", "u4", "u5", "twice")
	g := e.createGroup(ids[0], nil, 4)
	var (
		wg           sync.WaitGroup
		full, joined atomic.Int32
	)
	for _, u := range ids[1:6] {
		wg.Go(func() {
			added, err := e.s.AddMembers(e.ctx, g.ID, []int64{u}, 4, e.now())
			switch {
			case errors.Is(err, storage.ErrGroupFull):
				full.Add(1)
			case err != nil:
				t.Errorf("AddMembers(%d): %v", u, err)
			case !slices.Equal(added, []int64{u}):
				t.Errorf("AddMembers(%d) added %v", u, added)
			default:
				joined.Add(1)
			}
		})
	}
	wg.Wait()
	if joined.Load() != 3 || full.Load() != 2 {
		t.Fatalf("%d joined and %d found the group full, want 3 and 2", joined.Load(), full.Load())
	}
	if got := e.getGroup(g.ID); got.Members != 4 || len(e.memberIDs(g.ID)) != 4 {
		t.Fatalf("member count %d, want 4", got.Members)
	}

	h := e.createGroup(ids[0], nil, 10)
	var addedBy atomic.Int32
	for range 6 {
		wg.Go(func() {
			added, err := e.s.AddMembers(e.ctx, h.ID, []int64{ids[6]}, 10, e.now())
			if err != nil {
				t.Errorf("AddMembers: %v", err)
			}
			if len(added) > 0 {
				addedBy.Add(1)
			}
		})
	}
	wg.Wait()
	if addedBy.Load() != 1 || !slices.Equal(e.memberIDs(h.ID), []int64{ids[0], ids[6]}) {
		t.Fatalf("one user added %d times at once; members %v", addedBy.Load(), e.memberIDs(h.ID))
	}
}

// Members lists in join order, ties by user id; MemberIDs ascending.
func testMembersOrder(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	tag, ids := e.tagged("ann", "ben", "cat", "dan")
	cat := e.setProfile(ids[2], "Cat C.", "https://example.com/c.png")
	first := e.now()
	g, err := e.s.CreateGroup(e.ctx, ids[2], "g", false, []int64{ids[1]}, 10, first)
	if err != nil {
		t.Fatal(err)
	}
	second := e.now()
	if _, err := e.s.AddMembers(e.ctx, g.ID, []int64{ids[3], ids[0]}, 10, second); err != nil {
		t.Fatal(err)
	}
	members, err := e.s.Members(e.ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantM := []storage.Member{
		{Profile: storage.Profile{ID: ids[1], Username: tag + "ben"}, Joined: first},
		{Profile: cat, Joined: first},
		{Profile: storage.Profile{ID: ids[0], Username: tag + "ann"}, Joined: second},
		{Profile: storage.Profile{ID: ids[3], Username: tag + "dan"}, Joined: second},
	}
	same := len(members) == len(wantM)
	for i := 0; same && i < len(members); i++ {
		same = members[i].Profile == wantM[i].Profile && members[i].Joined.Equal(wantM[i].Joined)
	}
	if !same {
		t.Fatalf("Members:\n got %+v\nwant %+v", members, wantM)
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, ids) {
		t.Fatalf("MemberIDs %v, want %v", m, ids)
	}
	// Leaving and joining again puts a member last.
	want(t, "leave", e.s.RemoveMember(e.ctx, g.ID, ids[1]), nil)
	if _, err := e.s.AddMembers(e.ctx, g.ID, ids[1:2], 10, e.now()); err != nil {
		t.Fatal(err)
	}
	members, err = e.s.Members(e.ctx, g.ID)
	if err != nil || len(members) != 4 || members[3].ID != ids[1] || members[0].ID != ids[2] {
		t.Fatalf("Members after a rejoin: %+v %v", members, err)
	}
}

func testRemoveMember(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat")
	g := e.createGroup(ids[0], ids[1:], 10)
	want(t, "remove", e.s.RemoveMember(e.ctx, g.ID, ids[1]), nil)
	want(t, "remove twice", e.s.RemoveMember(e.ctx, g.ID, ids[1]), storage.ErrNotMember)
	// No one is a member of a group that does not exist.
	want(t, "remove from nothing", e.s.RemoveMember(e.ctx, g.ID+1_000_000, ids[0]), storage.ErrNotMember)
	if m := e.memberIDs(g.ID); !slices.Equal(m, []int64{ids[0], ids[2]}) {
		t.Fatalf("members after remove %v", m)
	}
	if e.isMember(g.ID, ids[1]) || !e.isMember(g.ID, ids[2]) {
		t.Fatal("IsMember after remove")
	}
	if got := e.getGroup(g.ID); got.Members != 2 {
		t.Fatalf("member count %d, want 2", got.Members)
	}
	if gs := e.groupsOf(ids[1]); len(gs) != 0 {
		t.Fatalf("GroupsOf after remove: %+v", gs)
	}
	added, err := e.s.AddMembers(e.ctx, g.ID, ids[1:2], 10, e.now())
	if err != nil || !slices.Equal(added, ids[1:2]) {
		t.Fatalf("rejoin: added %v, %v", added, err)
	}
	if !e.isMember(g.ID, ids[1]) {
		t.Fatal("not a member after rejoining")
	}
}

func testRenameAndOwner(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat")
	g := e.createGroup(ids[0], ids[1:2], 10)
	want(t, "rename", e.s.RenameGroup(e.ctx, g.ID, "新しい名前"), nil)
	want(t, "rename nothing", e.s.RenameGroup(e.ctx, g.ID+1_000_000, "x"), storage.ErrNotFound)
	want(t, "owner to non-member", e.s.SetGroupOwner(e.ctx, g.ID, ids[2]), storage.ErrNotMember)
	want(t, "owner of nothing", e.s.SetGroupOwner(e.ctx, g.ID+1_000_000, ids[1]), storage.ErrNotFound)
	if got := e.getGroup(g.ID); got.Owner != ids[0] {
		t.Fatalf("a refused owner change changed the owner to %d", got.Owner)
	}
	want(t, "owner", e.s.SetGroupOwner(e.ctx, g.ID, ids[1]), nil)
	wantG := g
	wantG.Name, wantG.Owner = "新しい名前", ids[1]
	if got := e.getGroup(g.ID); !sameGroup(got, wantG) {
		t.Fatalf("after rename and owner: %+v, want %+v", got, wantG)
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, ids[:2]) {
		t.Fatalf("owner change changed members: %v", m)
	}
}

func testDeleteGroup(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben")
	g := e.createGroup(ids[0], ids[1:], 10)
	kept := e.createGroup(ids[1], ids[:1], 10)
	e.add(e.group(ids[0], g.ID, "before delete", []byte("x")))
	e.add(e.group(ids[0], kept.ID, "in the other", []byte("y")))
	e.hide(ids[1], protocol.GroupConv(g.ID), []uint64{1}, 0)
	want(t, "delete", e.s.DeleteGroup(e.ctx, g.ID), nil)
	_, err := e.s.Group(e.ctx, g.ID)
	want(t, "Group after delete", err, storage.ErrNotFound)
	_, err = e.s.MemberIDs(e.ctx, g.ID)
	want(t, "MemberIDs after delete", err, storage.ErrNotFound)
	_, err = e.s.Members(e.ctx, g.ID)
	want(t, "Members after delete", err, storage.ErrNotFound)
	want(t, "delete twice", e.s.DeleteGroup(e.ctx, g.ID), storage.ErrNotFound)
	want(t, "rename deleted", e.s.RenameGroup(e.ctx, g.ID, "x"), storage.ErrNotFound)
	_, err = e.s.AddMembers(e.ctx, g.ID, ids, 10, e.now())
	want(t, "add to deleted", err, storage.ErrNotFound)
	keptConv := protocol.GroupConv(kept.ID)
	for _, u := range ids {
		if gs := e.groupsOf(u); len(gs) != 1 || gs[0].ID != kept.ID {
			t.Fatalf("GroupsOf after delete: %+v, want only %d", gs, kept.ID)
		}
		if e.isMember(g.ID, u) {
			t.Fatal("member after delete")
		}
		cs := e.convs(u, 10)
		if len(cs) != 1 || cs[0].Conv != keptConv || cs[0].LastSeq != 1 {
			t.Fatalf("conversations after delete: %+v, want only %s", cs, keptConv)
		}
	}
	if c := e.conv(ids[1], keptConv); c.Unread != 1 {
		t.Fatalf("the other group's unread count: %+v", c)
	}
}

func testGroupsOf(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat", "dan")
	g1 := e.createGroup(ids[0], ids[1:2], 10)
	g2, err := e.s.CreateGroup(e.ctx, ids[1], "two", true, ids[2:3], 10, e.now())
	if err != nil {
		t.Fatal(err)
	}
	g3 := e.createGroup(ids[2], nil, 10)
	if _, err := e.s.AddMembers(e.ctx, g1.ID, ids[2:3], 10, e.now()); err != nil {
		t.Fatal(err)
	}
	g1.Members = 3
	for _, c := range []struct {
		user int64
		want []storage.Group
	}{
		{ids[0], []storage.Group{g1}},
		{ids[1], []storage.Group{g1, g2}},
		{ids[2], []storage.Group{g1, g2, g3}},
		{ids[3], nil},
	} {
		got := e.groupsOf(c.user)
		if !slices.EqualFunc(got, c.want, sameGroup) {
			t.Errorf("GroupsOf(%d):\n got %+v\nwant %+v", c.user, got, c.want)
		}
	}
}

// A member sees a group's messages from its join on; one who left sees
// the conversation no more.
func testMembershipCursor(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat")
	a, b, c := ids[0], ids[1], ids[2]
	g := e.createGroup(a, []int64{b}, 10)
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
	if page := e.after(c, conv, 0, 10); page.lastSeq != 3 || len(page.msgs) != 0 || page.more {
		t.Fatalf("After(0) for the new member: %d messages, lastSeq %d, more %v", len(page.msgs), page.lastSeq, page.more)
	}
	if msgs, _, more, err := e.s.Before(e.ctx, c, conv, 0, 10); err != nil || len(msgs) != 0 || more {
		t.Fatalf("Before for the new member: %d messages, more %v, %v", len(msgs), more, err)
	}
	cs := e.convs(c, 10)
	if len(cs) != 1 || cs[0].Conv != conv || cs[0].Unread != 0 || cs[0].AckSeq != 3 || cs[0].LastSeq != 3 || cs[0].Last != nil {
		t.Fatalf("new member's conversations %+v", cs)
	}
	late := e.add(e.group(b, g.ID, "late", []byte("late")))
	if v := e.visible(c, conv); !slices.Equal(v, []uint64{4}) {
		t.Fatalf("member sees %v, want [4]", v)
	}
	msgs, _, _, err := e.s.Before(e.ctx, c, conv, 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != 4 {
		t.Fatalf("Before for the new member: %d messages, %v", len(msgs), err)
	}
	cs = e.convs(c, 10)
	if len(cs) != 1 || cs[0].Unread != 1 || cs[0].AckSeq != 3 || cs[0].LastSeq != 4 || cs[0].Last == nil {
		t.Fatalf("after a new message %+v", cs)
	}
	sameMessage(t, "new member's last message", *cs[0].Last, late)
	if v := e.visible(b, conv); !slices.Equal(v, []uint64{1, 2, 3, 4}) {
		t.Fatalf("original member sees %v", v)
	}
	if cs := e.convs(b, 10); len(cs) != 1 || cs[0].Unread != 3 {
		t.Fatalf("original member's conversations %+v", cs)
	}

	want(t, "leave", e.s.RemoveMember(e.ctx, g.ID, c), nil)
	if cs := e.convs(c, 10); len(cs) != 0 {
		t.Fatalf("conversations after leaving %+v", cs)
	}
	e.add(e.group(a, g.ID, "after-leave", []byte("x")))
	if cs := e.convs(c, 10); len(cs) != 0 {
		t.Fatalf("conversations after leaving and a new message %+v", cs)
	}
	if _, err := e.s.AddMembers(e.ctx, g.ID, []int64{c}, 10, e.now()); err != nil {
		t.Fatal(err)
	}
	if v := e.visible(c, conv); len(v) != 0 {
		t.Fatalf("a rejoined member sees %v", v)
	}
	if cs := e.convs(c, 10); len(cs) != 1 || cs[0].Unread != 0 || cs[0].AckSeq != 5 {
		t.Fatalf("a rejoined member's conversations %+v", cs)
	}
	e.add(e.group(b, g.ID, "after-rejoin", []byte("y")))
	if v := e.visible(c, conv); !slices.Equal(v, []uint64{6}) {
		t.Fatalf("a rejoined member sees %v, want [6]", v)
	}
}

func testGroupUnread(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.named("ann", "ben", "cat", "outsider")
	g := e.createGroup(ids[0], ids[1:3], 10)
	conv := protocol.GroupConv(g.ID)
	if cs := e.convs(ids[0], 10); len(cs) != 0 {
		t.Fatalf("a group without messages is listed: %+v", cs)
	}
	e.add(e.group(ids[0], g.ID, "m1", []byte("1")))
	e.add(e.group(ids[1], g.ID, "m2", []byte("2")))
	e.add(e.group(ids[2], g.ID, "m3", []byte("3")))
	e.ack(ids[2], conv, 1)
	for _, c := range []struct {
		user   int64
		unread uint64
		ack    uint64
	}{{ids[0], 2, 0}, {ids[1], 2, 0}, {ids[2], 1, 1}} {
		cs := e.convs(c.user, 10)
		if len(cs) != 1 || cs[0].Conv != conv || cs[0].Unread != c.unread || cs[0].AckSeq != c.ack || cs[0].LastSeq != 3 {
			t.Fatalf("user %d: %+v, want unread %d, ack %d", c.user, cs, c.unread, c.ack)
		}
	}
	e.ack(ids[0], conv, 3)
	if c := e.conv(ids[0], conv); c.Unread != 0 || c.AckSeq != 3 {
		t.Fatalf("after reading all: %+v", c)
	}
	// Ack of a non-member changes nothing and makes no membership.
	outsider := ids[3]
	e.ack(outsider, conv, 3)
	if cs := e.convs(outsider, 10); len(cs) != 0 || e.isMember(g.ID, outsider) {
		t.Fatalf("an ack made a membership: %+v", cs)
	}
}

func testBans(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	tag, ids := e.tagged("ann", "ben", "cat")
	now := time.UnixMilli(e.clock.Load())
	until := now.Add(time.Hour)
	bannedUntil := func(user int64, at time.Time) time.Time {
		t.Helper()
		got, err := e.s.BannedUntil(e.ctx, user, at)
		if err != nil {
			t.Fatalf("BannedUntil(%d): %v", user, err)
		}
		return got
	}
	// activeBans is ActiveBans of this case's users, in order; the list
	// as a whole must be ordered by user id.
	activeBans := func(at time.Time) []storage.Ban {
		t.Helper()
		all, err := e.s.ActiveBans(e.ctx, at)
		if err != nil {
			t.Fatalf("ActiveBans: %v", err)
		}
		var mine []storage.Ban
		for i, b := range all {
			if i > 0 && all[i-1].UserID >= b.UserID {
				t.Fatalf("ActiveBans not ordered by user id: %+v", all)
			}
			if slices.Contains(ids, b.UserID) {
				mine = append(mine, b)
			}
		}
		return mine
	}
	sameBans := func(what string, got, want []storage.Ban) {
		t.Helper()
		if !slices.EqualFunc(got, want, func(a, b storage.Ban) bool {
			return a.UserID == b.UserID && a.Username == b.Username && a.Until.Equal(b.Until) &&
				a.Reason == b.Reason && a.Created.Equal(b.Created)
		}) {
			t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}

	if got := bannedUntil(ids[1], now); !got.IsZero() {
		t.Fatalf("banned until %v before any ban", got)
	}
	want(t, "ban", e.s.BanUser(e.ctx, ids[1], until, "spam", now), nil)
	want(t, "ban nobody", e.s.BanUser(e.ctx, ids[2]+1_000_000, until, "", now), storage.ErrNotFound)
	for _, c := range []struct {
		at   time.Time
		want time.Time
	}{
		{now, until},
		{until.Add(-time.Millisecond), until},
		{until, time.Time{}}, // a ban ends at its until
		{until.Add(time.Millisecond), time.Time{}},
	} {
		if got := bannedUntil(ids[1], c.at); !got.Equal(c.want) || got.IsZero() != c.want.IsZero() {
			t.Fatalf("BannedUntil at until%+v = %v, want %v", c.at.Sub(until), got, c.want)
		}
	}
	if got := bannedUntil(ids[0], now); !got.IsZero() {
		t.Fatalf("user never banned is banned until %v", got)
	}
	later := now.Add(time.Second)
	want(t, "ban", e.s.BanUser(e.ctx, ids[0], now.Add(time.Minute), "", later), nil)
	want(t, "ban that has ended", e.s.BanUser(e.ctx, ids[2], now.Add(-time.Minute), "old", now), nil)
	banAnn := storage.Ban{UserID: ids[0], Username: tag + "ann", Until: now.Add(time.Minute), Created: later}
	banBen := storage.Ban{UserID: ids[1], Username: tag + "ben", Until: until, Reason: "spam", Created: now}
	sameBans("ActiveBans", activeBans(now), []storage.Ban{banAnn, banBen})
	sameBans("ActiveBans later", activeBans(now.Add(2*time.Minute)), []storage.Ban{banBen})
	sameBans("ActiveBans after every ban", activeBans(until), nil)

	// A new ban replaces the old one, shorter or not.
	replaced := storage.Ban{UserID: ids[1], Username: tag + "ben", Until: now.Add(time.Second), Reason: "again", Created: later}
	want(t, "replace", e.s.BanUser(e.ctx, ids[1], replaced.Until, replaced.Reason, replaced.Created), nil)
	if got := bannedUntil(ids[1], now); !got.Equal(replaced.Until) {
		t.Fatalf("replaced ban until %v, want %v", got, replaced.Until)
	}
	if got := bannedUntil(ids[1], now.Add(2*time.Second)); !got.IsZero() {
		t.Fatalf("replaced ban still in force: %v", got)
	}
	sameBans("ActiveBans after a replace", activeBans(now), []storage.Ban{banAnn, replaced})

	want(t, "unban", e.s.UnbanUser(e.ctx, ids[0]), nil)
	want(t, "unban twice", e.s.UnbanUser(e.ctx, ids[0]), nil)
	want(t, "unban nobody", e.s.UnbanUser(e.ctx, ids[2]+1_000_000), nil)
	if got := bannedUntil(ids[0], now); !got.IsZero() {
		t.Fatalf("unbanned but banned until %v", got)
	}
	sameBans("ActiveBans after unban", activeBans(now), []storage.Ban{replaced})
	// Banning again after an unban works.
	want(t, "ban again", e.s.BanUser(e.ctx, ids[0], until, "", now), nil)
	if got := bannedUntil(ids[0], now); !got.Equal(until) {
		t.Fatalf("banned again until %v, want %v", got, until)
	}
}

// socialCall is one call of every social method, for the cases that check
// what all of them do with a canceled context or a closed store.
type socialCall struct {
	name string
	call func(ctx context.Context) error
}

// socialCalls calls every method on users a, b, c (a and c friends, b asked
// by a) and group g (a and b in it); each call would change something if it
// ran.
func (e *env) socialCalls(a, b, c, g int64, now time.Time) []socialCall {
	s := e.s
	return []socialCall{
		{"Profile", func(ctx context.Context) error { _, err := s.Profile(ctx, a); return err }},
		{"SetProfile", func(ctx context.Context) error { _, err := s.SetProfile(ctx, a, "changed", ""); return err }},
		{"SearchUsers", func(ctx context.Context) error { _, err := s.SearchUsers(ctx, "a", "", 10); return err }},
		{"RequestFriend", func(ctx context.Context) error { _, err := s.RequestFriend(ctx, b, c, "", now); return err }},
		{"FriendRequests", func(ctx context.Context) error { _, _, err := s.FriendRequests(ctx, a); return err }},
		{"AnswerFriend", func(ctx context.Context) error { return s.AnswerFriend(ctx, a, b, true, now) }},
		{"Unfriend", func(ctx context.Context) error { return s.Unfriend(ctx, a, c) }},
		{"FriendsOf", func(ctx context.Context) error { _, err := s.FriendsOf(ctx, a); return err }},
		{"AreFriends", func(ctx context.Context) error { _, err := s.AreFriends(ctx, a, c); return err }},
		{"CreateGroup", func(ctx context.Context) error {
			_, err := s.CreateGroup(ctx, c, "new", false, nil, 10, now)
			return err
		}},
		{"Group", func(ctx context.Context) error { _, err := s.Group(ctx, g); return err }},
		{"AddMembers", func(ctx context.Context) error { _, err := s.AddMembers(ctx, g, []int64{c}, 10, now); return err }},
		{"RemoveMember", func(ctx context.Context) error { return s.RemoveMember(ctx, g, b) }},
		{"RenameGroup", func(ctx context.Context) error { return s.RenameGroup(ctx, g, "renamed") }},
		{"SetGroupOwner", func(ctx context.Context) error { return s.SetGroupOwner(ctx, g, b) }},
		{"DeleteGroup", func(ctx context.Context) error { return s.DeleteGroup(ctx, g) }},
		{"GroupsOf", func(ctx context.Context) error { _, err := s.GroupsOf(ctx, a); return err }},
		{"Members", func(ctx context.Context) error { _, err := s.Members(ctx, g); return err }},
		{"MemberIDs", func(ctx context.Context) error { _, err := s.MemberIDs(ctx, g); return err }},
		{"IsMember", func(ctx context.Context) error { _, err := s.IsMember(ctx, g, a); return err }},
		{"SetGroupOpen", func(ctx context.Context) error { return s.SetGroupOpen(ctx, g, true) }},
		{"OpenGroups", func(ctx context.Context) error { _, err := s.OpenGroups(ctx, "", "", 0, 10); return err }},
		{"BanUser", func(ctx context.Context) error { return s.BanUser(ctx, a, now.Add(time.Hour), "", now) }},
		{"UnbanUser", func(ctx context.Context) error { return s.UnbanUser(ctx, c) }},
		{"BannedUntil", func(ctx context.Context) error { _, err := s.BannedUntil(ctx, a, now); return err }},
		{"ActiveBans", func(ctx context.Context) error { _, err := s.ActiveBans(ctx, now); return err }},
	}
}

// socialSetup makes the users and group socialCalls takes.
func (e *env) socialSetup() (a, b, c int64, g storage.Group) {
	e.t.Helper()
	ids := e.named("ann", "ben", "cat")
	a, b, c = ids[0], ids[1], ids[2]
	e.setProfile(a, "Ann", "")
	if _, err := e.s.RequestFriend(e.ctx, a, b, "hi", e.now()); err != nil {
		e.t.Fatal(err)
	}
	e.befriend(a, c)
	until := e.now().Add(time.Hour)
	if err := e.s.BanUser(e.ctx, c, until, "", e.now()); err != nil {
		e.t.Fatal(err)
	}
	return a, b, c, e.createGroup(a, []int64{b}, 10)
}

// Every call with a canceled context returns its error and changes nothing.
func testSocialCanceled(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	a, b, c, g := e.socialSetup()
	now := e.now()
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	for _, sc := range e.socialCalls(a, b, c, g.ID, now) {
		if err := sc.call(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", sc.name, err)
		}
	}
	if p := e.profile(a); p.DisplayName != "Ann" {
		t.Errorf("canceled SetProfile wrote: %+v", p)
	}
	if in, out := e.requests(b); len(in) != 1 || len(out) != 0 || e.areFriends(a, b) {
		t.Errorf("canceled calls changed the request: %+v %+v", in, out)
	}
	if !e.areFriends(a, c) {
		t.Error("canceled Unfriend wrote")
	}
	if gs := e.groupsOf(c); len(gs) != 0 {
		t.Errorf("canceled CreateGroup or AddMembers wrote: %+v", gs)
	}
	if got := e.getGroup(g.ID); !sameGroup(got, g) {
		t.Errorf("canceled group changes wrote: %+v, want %+v", got, g)
	}
	if m := e.memberIDs(g.ID); !slices.Equal(m, []int64{a, b}) {
		t.Errorf("canceled membership changes wrote: %v", m)
	}
	if got, err := e.s.BannedUntil(e.ctx, a, now); err != nil || !got.IsZero() {
		t.Errorf("canceled BanUser wrote: %v %v", got, err)
	}
	if got, err := e.s.BannedUntil(e.ctx, c, now); err != nil || got.IsZero() {
		t.Errorf("canceled UnbanUser wrote: %v %v", got, err)
	}
}

// Every call after Close returns ErrClosed.
func testSocialClosed(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	a, b, c, g := e.socialSetup()
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, sc := range e.socialCalls(a, b, c, g.ID, e.now()) {
		if err := sc.call(e.ctx); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", sc.name, err)
		}
	}
}
