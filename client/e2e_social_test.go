package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// user is a logged-in test client.
type user struct {
	*client.Client
	name string
	id   int64
}

func register(t *testing.T, srv *server.Server, name string) *user {
	t.Helper()
	c := connect(t, srv.Addr(), client.Options{})
	ok, err := c.Register(ctx(t), name, name+"-password")
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return &user{Client: c, name: name, id: ok.UserID}
}

// again logs u in on another connection (another device).
func (u *user) again(t *testing.T, srv *server.Server, opts client.Options) *user {
	t.Helper()
	c := connect(t, srv.Addr(), opts)
	if _, err := c.Login(ctx(t), u.name, u.name+"-password"); err != nil {
		t.Fatalf("login %s: %v", u.name, err)
	}
	return &user{Client: c, name: u.name, id: u.id}
}

// wantCode asserts that err is a protocol error with code.
func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

// notice waits for the next notice of c that is not a Presence, unless a
// Presence is what is wanted.
func notice(t *testing.T, c *client.Client, presence bool) client.Notice {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case n := <-c.Notices():
			if (n.Presence != nil) == presence {
				return n
			}
		case <-timeout:
			t.Fatalf("no notice (presence %v)", presence)
		}
	}
}

func friendNotice(t *testing.T, c *client.Client, kind string, from int64) protocol.FriendEvent {
	t.Helper()
	n := notice(t, c, false)
	if n.Friend == nil || n.Friend.Kind != kind || n.Friend.User.UserID != from {
		t.Fatalf("notice %+v, want friend %s from %d", n, kind, from)
	}
	return *n.Friend
}

func groupNotice(t *testing.T, c *client.Client, kind string, actor int64, users ...int64) protocol.GroupEvent {
	t.Helper()
	n := notice(t, c, false)
	if n.Group == nil || n.Group.Kind != kind || n.Group.Actor != actor || fmt.Sprint(n.Group.Users) != fmt.Sprint(nilIfEmpty(users)) {
		t.Fatalf("notice %+v (group %+v), want group %s by %d of %v", n, n.Group, kind, actor, users)
	}
	return *n.Group
}

func nilIfEmpty(s []int64) []int64 {
	if len(s) == 0 {
		return nil
	}
	return s
}

// presenceNotice waits for the next presence notice about user of, which
// must say online; notices about other users are skipped.
func presenceNotice(t *testing.T, c *client.Client, of int64, online bool) {
	t.Helper()
	presenceNoticeSince(t, c, of, online, 0)
}

// presenceNoticeSince is presenceNotice for the first notice of of's
// presence stamped at or after since (Unix ms).
func presenceNoticeSince(t *testing.T, c *client.Client, of int64, online bool, since int64) {
	t.Helper()
	for {
		n := notice(t, c, true)
		if n.Presence.UserID != of || n.Presence.At < since {
			continue
		}
		if n.Presence.Online != online {
			t.Fatalf("presence %+v, want %d online=%v", n.Presence, of, online)
		}
		return
	}
}

// noNotice asserts that no notice arrives for a while.
func noNotice(t *testing.T, c *client.Client, d time.Duration) {
	t.Helper()
	select {
	case n := <-c.Notices():
		t.Fatalf("unexpected notice %+v %+v %+v", n.Friend, n.Group, n.Presence)
	case <-time.After(d):
	}
}

func befriend(t *testing.T, a, b *user) {
	t.Helper()
	if err := a.RequestFriend(ctx(t), b.id, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.AnswerFriend(ctx(t), a.id, true); err != nil {
		t.Fatal(err)
	}
}

func TestProfilesAndSearch(t *testing.T) {
	srv := servertest.Start(t, nil)
	ann := register(t, srv, "Ann_1")
	for _, n := range []string{"anna", "ANNE", "annika", "bob", "an.x"} {
		register(t, srv, n)
	}

	p, err := ann.UpdateProfile(ctx(t), "Ann the First", "https://example.com/ann.png")
	if err != nil || p.DisplayName != "Ann the First" || p.UserID != ann.id || p.Username != "Ann_1" {
		t.Fatalf("update: %+v %v", p, err)
	}
	bob := register(t, srv, "bobby")
	got, err := bob.Profile(ctx(t), ann.id)
	if err != nil || got.DisplayName != "Ann the First" || got.AvatarURL != "https://example.com/ann.png" || !got.Online {
		t.Fatalf("profile of ann: %+v %v", got, err)
	}
	if me, err := bob.Profile(ctx(t), 0); err != nil || me.UserID != bob.id {
		t.Fatalf("own profile: %+v %v", me, err)
	}
	_, err = bob.Profile(ctx(t), 99999)
	wantCode(t, err, protocol.CodeNoSuchUser)
	_, err = ann.UpdateProfile(ctx(t), string(make([]byte, 65)), "")
	wantCode(t, err, protocol.CodeBadProfile)

	// Case-insensitive prefix, ordered, paged; % is no wildcard.
	var names []string
	after := ""
	for range 10 {
		page, err := bob.SearchUsers(ctx(t), "AN", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Users {
			names = append(names, u.Username)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if fmt.Sprint(names) != "[an.x Ann_1 anna ANNE annika]" {
		t.Fatalf("search an: %v", names)
	}
	if page, err := bob.SearchUsers(ctx(t), "an%", "", 0); err != nil || len(page.Users) != 0 {
		t.Fatalf("search an%%: %+v %v", page, err)
	}
	_, err = bob.SearchUsers(ctx(t), "", "", 0)
	wantCode(t, err, protocol.CodeBadBody)
}

func TestFriends(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")

	// Only friends may message each other.
	_, err := alice.Send(ctx(t), bob.id, 0, []byte("hi"))
	wantCode(t, err, protocol.CodeNotFriends)

	// A request reaches bob at once, with its note.
	if err := alice.RequestFriend(ctx(t), bob.id, "it's alice"); err != nil {
		t.Fatal(err)
	}
	if ev := friendNotice(t, bob.Client, protocol.FriendRequested, alice.id); ev.Note != "it's alice" {
		t.Fatalf("note %q", ev.Note)
	}
	wantCode(t, alice.RequestFriend(ctx(t), bob.id, ""), protocol.CodeRequestExists)
	wantCode(t, alice.RequestFriend(ctx(t), alice.id, ""), protocol.CodeSelfFriend)
	wantCode(t, alice.RequestFriend(ctx(t), 99999, ""), protocol.CodeNoSuchUser)
	wantCode(t, alice.RequestFriend(ctx(t), bob.id, string(make([]byte, 257))), protocol.CodeBadBody)
	reqs, err := alice.FriendRequests(ctx(t))
	if err != nil || len(reqs.Outgoing) != 1 || len(reqs.Incoming) != 0 || reqs.Outgoing[0].To.UserID != bob.id {
		t.Fatalf("alice's requests %+v %v", reqs, err)
	}

	// Bob declines; alice hears it and may ask again; bob accepts.
	wantCode(t, bob.AnswerFriend(ctx(t), 99999, true), protocol.CodeNoSuchRequest)
	if err := bob.AnswerFriend(ctx(t), alice.id, false); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, alice.Client, protocol.FriendDeclined, bob.id)
	wantCode(t, bob.AnswerFriend(ctx(t), alice.id, true), protocol.CodeNoSuchRequest)
	if err := alice.RequestFriend(ctx(t), bob.id, "please"); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, bob.Client, protocol.FriendRequested, alice.id)
	if err := bob.AnswerFriend(ctx(t), alice.id, true); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, alice.Client, protocol.FriendAccepted, bob.id)
	wantCode(t, alice.RequestFriend(ctx(t), bob.id, ""), protocol.CodeAlreadyFriends)

	friends, err := alice.Friends(ctx(t))
	if err != nil || len(friends) != 1 || friends[0].UserID != bob.id || !friends[0].Online {
		t.Fatalf("alice's friends %+v %v", friends, err)
	}
	if _, err := alice.Send(ctx(t), bob.id, 0, []byte("friends now")); err != nil {
		t.Fatal(err)
	}
	expectTexts(t, receive(t, bob.Client, 1), 1, "friends now")

	// Crossed requests make friends at once, and both hear it.
	carol := register(t, srv, "carol")
	if err := carol.RequestFriend(ctx(t), alice.id, ""); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, alice.Client, protocol.FriendRequested, carol.id)
	if err := alice.RequestFriend(ctx(t), carol.id, ""); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, carol.Client, protocol.FriendAccepted, alice.id)
	friendNotice(t, alice.Client, protocol.FriendAccepted, carol.id)
	if reqs, _ := alice.FriendRequests(ctx(t)); len(reqs.Incoming)+len(reqs.Outgoing) != 0 {
		t.Fatalf("requests left after crossing: %+v", reqs)
	}

	// Deleting ends it for both; bob hears it.
	if err := alice.DeleteFriend(ctx(t), bob.id); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, bob.Client, protocol.FriendRemoved, alice.id)
	wantCode(t, bob.DeleteFriend(ctx(t), alice.id), protocol.CodeNotAFriend)
	_, err = bob.Send(ctx(t), alice.id, 0, []byte("still there?"))
	wantCode(t, err, protocol.CodeNotFriends)
	if friends, _ := bob.Friends(ctx(t)); len(friends) != 0 {
		t.Fatalf("bob's friends after delete %+v", friends)
	}
}

func TestFriendRequestWhileOffline(t *testing.T) {
	srv := servertest.Start(t, nil)
	alice := register(t, srv, "alice")
	dave := register(t, srv, "dave")
	_ = dave.Close()

	if err := alice.RequestFriend(ctx(t), dave.id, "hello dave"); err != nil {
		t.Fatal(err)
	}
	dave = dave.again(t, srv, client.Options{})
	reqs, err := dave.FriendRequests(ctx(t))
	if err != nil || len(reqs.Incoming) != 1 {
		t.Fatalf("dave's requests %+v %v", reqs, err)
	}
	in := reqs.Incoming[0]
	if in.From.UserID != alice.id || in.From.Username != "alice" || in.Note != "hello dave" || in.Created == 0 || !in.From.Online {
		t.Fatalf("incoming request %+v", in)
	}
	if err := dave.AnswerFriend(ctx(t), alice.id, true); err != nil {
		t.Fatal(err)
	}
	friendNotice(t, alice.Client, protocol.FriendAccepted, dave.id)
}

func TestPresence(t *testing.T) {
	srv := servertest.Start(t, nil) // presence grace 300ms
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	befriend(t, alice, bob)
	stranger := register(t, srv, "stranger")

	// Bob goes away: after the grace period alice hears it once. His
	// login's online announcement may reach alice after they became
	// friends, so notices stamped before he left are passed over.
	left := time.Now().UnixMilli()
	_ = bob.Close()
	presenceNoticeSince(t, alice.Client, bob.id, false, left)
	if friends, _ := alice.Friends(ctx(t)); len(friends) != 1 || friends[0].Online {
		t.Fatalf("bob should show offline: %+v", friends)
	}

	// He comes back on two devices: one online notice.
	bob = bob.again(t, srv, client.Options{})
	presenceNotice(t, alice.Client, bob.id, true)
	phone := bob.again(t, srv, client.Options{})
	noNotice(t, alice.Client, 200*time.Millisecond)

	// Closing one device, or a quick reconnect, says nothing.
	_ = phone.Close()
	_ = bob.Close()
	bob = bob.again(t, srv, client.Options{})
	noNotice(t, alice.Client, 600*time.Millisecond)

	// Presence goes to friends only, and never to oneself.
	noNotice(t, stranger.Client, 10*time.Millisecond)
	noNotice(t, bob.Client, 10*time.Millisecond)
}

func TestGroups(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MaxGroupSize = 4 })
	owner := register(t, srv, "owner")
	ann := register(t, srv, "ann")
	ben := register(t, srv, "ben")
	cat := register(t, srv, "cat")
	dan := register(t, srv, "dan")

	_, err := owner.CreateGroup(ctx(t), "", false)
	wantCode(t, err, protocol.CodeBadGroupName)
	_, err = owner.CreateGroup(ctx(t), "x", false, ann.id, 99999)
	wantCode(t, err, protocol.CodeNoSuchUser)
	_, err = owner.CreateGroup(ctx(t), "x", false, ann.id, ben.id, cat.id, dan.id)
	wantCode(t, err, protocol.CodeGroupFull)

	g, err := owner.CreateGroup(ctx(t), "friends", false, ann.id, ann.id)
	if err != nil || g.Name != "friends" || g.Owner != owner.id || g.Members != 2 || g.Open {
		t.Fatalf("create: %+v %v", g, err)
	}
	groupNotice(t, ann.Client, protocol.GroupJoined, owner.id, owner.id, ann.id)

	// A closed group is joined by invitation only; invitations are all or none.
	_, err = ben.JoinGroup(ctx(t), g.GroupID)
	wantCode(t, err, protocol.CodeGroupClosed)
	wantCode(t, ben.InviteToGroup(ctx(t), g.GroupID, ben.id), protocol.CodeNotMember)
	wantCode(t, ann.InviteToGroup(ctx(t), g.GroupID, ben.id, 99999), protocol.CodeNoSuchUser)
	wantCode(t, ann.InviteToGroup(ctx(t), g.GroupID, ben.id, cat.id, dan.id), protocol.CodeGroupFull)
	if err := ann.InviteToGroup(ctx(t), g.GroupID, ben.id); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, owner.Client, protocol.GroupJoined, ann.id, ben.id)
	groupNotice(t, ben.Client, protocol.GroupJoined, ann.id, ben.id)

	// Messages reach every member; a non-member can neither send nor read.
	ack, err := ben.SendGroup(ctx(t), g.GroupID, 0, []byte("hello group"))
	if err != nil || ack.Conv != protocol.GroupConv(g.GroupID) || ack.Seq != 1 {
		t.Fatalf("group send: %+v %v", ack, err)
	}
	for _, u := range []*user{owner, ann} {
		m := receive(t, u.Client, 1)[0]
		if m.GroupID != g.GroupID || m.From != ben.id || m.To != 0 || string(m.Body) != "hello group" {
			t.Fatalf("push %+v", m)
		}
	}
	_, err = cat.SendGroup(ctx(t), g.GroupID, 0, []byte("let me in"))
	wantCode(t, err, protocol.CodeNotMember)
	_, err = cat.Sync(ctx(t), ack.Conv, 0, 0)
	wantCode(t, err, protocol.CodeNotMember)
	_, err = cat.SendGroup(ctx(t), 99999, 0, []byte("?"))
	wantCode(t, err, protocol.CodeNoSuchGroup)
	_, err = cat.GroupMembers(ctx(t), g.GroupID)
	wantCode(t, err, protocol.CodeNotMember)

	// Owner-only actions.
	wantCode(t, ann.RenameGroup(ctx(t), g.GroupID, "mine"), protocol.CodeNotOwner)
	wantCode(t, ann.RemoveFromGroup(ctx(t), g.GroupID, ben.id), protocol.CodeNotOwner)
	wantCode(t, ann.TransferGroup(ctx(t), g.GroupID, ann.id), protocol.CodeNotOwner)
	wantCode(t, ann.DisbandGroup(ctx(t), g.GroupID), protocol.CodeNotOwner)
	wantCode(t, cat.RenameGroup(ctx(t), g.GroupID, "mine"), protocol.CodeNotMember)
	wantCode(t, owner.LeaveGroup(ctx(t), g.GroupID), protocol.CodeOwnerCannotLeave)
	wantCode(t, owner.RemoveFromGroup(ctx(t), g.GroupID, owner.id), protocol.CodeOwnerCannotLeave)
	wantCode(t, owner.RemoveFromGroup(ctx(t), g.GroupID, cat.id), protocol.CodeNotMember)
	wantCode(t, owner.TransferGroup(ctx(t), g.GroupID, cat.id), protocol.CodeNotMember)
	wantCode(t, owner.RenameGroup(ctx(t), g.GroupID, string(make([]byte, 65))), protocol.CodeBadGroupName)

	if err := owner.RenameGroup(ctx(t), g.GroupID, "best friends"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*user{ann, ben} {
		if e := groupNotice(t, u.Client, protocol.GroupRenamed, owner.id); e.Name != "best friends" {
			t.Fatalf("renamed to %q", e.Name)
		}
	}
	members, err := ann.GroupMembers(ctx(t), g.GroupID)
	if err != nil || len(members) != 3 || members[0].UserID != owner.id || !members[0].Owner || members[1].Owner || !members[2].Online {
		t.Fatalf("members %+v %v", members, err)
	}

	// Ben is removed: he hears it, gets no more messages, cannot read.
	if err := owner.RemoveFromGroup(ctx(t), g.GroupID, ben.id); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, ben.Client, protocol.GroupRemoved, owner.id, ben.id)
	groupNotice(t, ann.Client, protocol.GroupRemoved, owner.id, ben.id)
	if _, err := ann.SendGroup(ctx(t), g.GroupID, 0, []byte("ben is gone")); err != nil {
		t.Fatal(err)
	}
	expectTexts(t, receive(t, owner.Client, 1), 2, "ben is gone")
	quiet(t, ben.Client)
	_, err = ben.History(ctx(t), ack.Conv, 0, 0)
	wantCode(t, err, protocol.CodeNotMember)
	if groups, _ := ben.Groups(ctx(t)); len(groups) != 0 {
		t.Fatalf("ben's groups after removal %+v", groups)
	}

	// Ownership moves; the old owner may then leave.
	if err := owner.TransferGroup(ctx(t), g.GroupID, ann.id); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, ann.Client, protocol.GroupOwner, owner.id, ann.id)
	if err := owner.LeaveGroup(ctx(t), g.GroupID); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, ann.Client, protocol.GroupLeft, owner.id, owner.id)
	groups, err := ann.Groups(ctx(t))
	if err != nil || len(groups) != 1 || groups[0].Owner != ann.id || groups[0].Members != 1 || groups[0].Name != "best friends" {
		t.Fatalf("ann's groups %+v %v", groups, err)
	}

	// Open groups: anyone joins, and sees the messages from the join on.
	open, err := ann.CreateGroup(ctx(t), "open", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ann.SendGroup(ctx(t), open.GroupID, 0, []byte("before dan")); err != nil {
		t.Fatal(err)
	}
	joined, err := dan.JoinGroup(ctx(t), open.GroupID)
	if err != nil || joined.Members != 2 {
		t.Fatalf("join: %+v %v", joined, err)
	}
	groupNotice(t, ann.Client, protocol.GroupJoined, dan.id, dan.id)
	_, err = dan.JoinGroup(ctx(t), open.GroupID)
	wantCode(t, err, protocol.CodeAlreadyMember)
	if _, err := ann.SendGroup(ctx(t), open.GroupID, 0, []byte("hi dan")); err != nil {
		t.Fatal(err)
	}
	expectTexts(t, receive(t, dan.Client, 1), 2, "hi dan")
	res, err := dan.Sync(ctx(t), protocol.GroupConv(open.GroupID), 0, 0)
	if err != nil || len(res.Messages) != 1 || string(res.Messages[0].Body) != "hi dan" {
		t.Fatalf("dan's sync from 0: %v %v", texts(res.Messages), err)
	}

	// Disbanding tells every member and ends the group.
	if err := ann.DisbandGroup(ctx(t), open.GroupID); err != nil {
		t.Fatal(err)
	}
	groupNotice(t, dan.Client, protocol.GroupDisbanded, ann.id)
	_, err = dan.SendGroup(ctx(t), open.GroupID, 0, []byte("?"))
	wantCode(t, err, protocol.CodeNoSuchGroup)
	_, err = ann.JoinGroup(ctx(t), open.GroupID)
	wantCode(t, err, protocol.CodeNoSuchGroup)
	_, err = ann.History(ctx(t), protocol.GroupConv(open.GroupID), 0, 0)
	wantCode(t, err, protocol.CodeNoSuchGroup)
}

func TestGroupOfflineMemberSyncs(t *testing.T) {
	srv := servertest.Start(t, nil)
	ann := register(t, srv, "ann")
	ben := register(t, srv, "ben")
	annPhone := ann.again(t, srv, client.Options{})
	g, err := ann.CreateGroup(ctx(t), "g", false, ben.id)
	if err != nil {
		t.Fatal(err)
	}
	_ = ben.Close()
	for i := range 3 {
		if _, err := ann.SendGroup(ctx(t), g.GroupID, 0, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The sender's other device gets the messages; the sending one does not.
	expectTexts(t, receive(t, annPhone.Client, 3), 1, "m0", "m1", "m2")
	quiet(t, ann.Client)

	ben = ben.again(t, srv, client.Options{SyncOnLogin: true})
	expectTexts(t, receive(t, ben.Client, 3), 1, "m0", "m1", "m2")
}

func TestConversationList(t *testing.T) {
	srv := servertest.Start(t, nil)
	ann := register(t, srv, "ann")
	ben := register(t, srv, "ben")
	cat := register(t, srv, "cat")
	g, err := ann.CreateGroup(ctx(t), "g", false, ben.id, cat.id)
	if err != nil {
		t.Fatal(err)
	}
	send := func(from *user, to int64, group bool, text string) {
		t.Helper()
		var err error
		if group {
			_, err = from.SendGroup(ctx(t), to, 0, []byte(text))
		} else {
			_, err = from.Send(ctx(t), to, 0, []byte(text))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	send(ben, ann.id, false, "b1")
	send(ben, ann.id, false, "b2")
	send(cat, g.GroupID, true, "g1")
	send(ann, cat.id, false, "a1")
	send(ben, g.GroupID, true, "g2")
	send(ann, g.GroupID, true, "g3")
	if err := ann.Ack(ctx(t), protocol.DirectConv(ann.id, ben.id), 1); err != nil {
		t.Fatal(err)
	}

	convs, err := ann.Conversations(ctx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range convs {
		got = append(got, fmt.Sprintf("%s last=%d unread=%d %s", c.Conv, c.LastSeq, c.Unread, c.Last.Body))
	}
	want := []string{
		fmt.Sprintf("%s last=3 unread=2 g3", protocol.GroupConv(g.GroupID)), // her own g3 is not unread
		fmt.Sprintf("%s last=1 unread=0 a1", protocol.DirectConv(ann.id, cat.id)),
		fmt.Sprintf("%s last=2 unread=1 b2", protocol.DirectConv(ann.id, ben.id)),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conversations\n got %q\nwant %q", got, want)
	}
	convs, err = cat.Conversations(ctx(t), 0)
	if err != nil || len(convs) != 2 || convs[0].Conv != protocol.GroupConv(g.GroupID) || convs[0].Unread != 2 {
		t.Fatalf("cat's conversations %+v %v", convs, err)
	}
}
