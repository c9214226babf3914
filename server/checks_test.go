package server_test

import (
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// replyFrame reads frames, skipping pushes and events (request id 0),
// until the answer to reqID, and returns it.
func (r *raw) replyFrame(reqID uint32) frame {
	r.t.Helper()
	for {
		f, err := r.next(5 * time.Second)
		if err != nil {
			r.t.Fatalf("waiting for the answer to request %d: %v", reqID, err)
		}
		if f.h.RequestID == reqID {
			return f
		}
		if f.h.RequestID != 0 {
			r.t.Fatalf("answer to request %d (%s) while waiting for %d", f.h.RequestID, f.h.Type, reqID)
		}
	}
}

// reply is replyFrame's type and, for an Error, its code.
func (r *raw) reply(reqID uint32) (protocol.Type, protocol.Code) {
	r.t.Helper()
	f := r.replyFrame(reqID)
	if f.h.Type != protocol.TypeError {
		return f.h.Type, 0
	}
	var e protocol.Error
	_ = protocol.DecodeBody(f.body, &e)
	return f.h.Type, e.Code
}

// replyInto is replyFrame for an answer that must be of type typ, decoded
// into body.
func (r *raw) replyInto(reqID uint32, typ protocol.Type, body any) {
	r.t.Helper()
	f := r.replyFrame(reqID)
	if f.h.Type != typ {
		r.t.Fatalf("answer to request %d: %s, want %s", reqID, f.h.Type, typ)
	}
	if err := protocol.DecodeBody(f.body, body); err != nil {
		r.t.Fatalf("decode %s: %v", typ, err)
	}
}

// must sends a request and fails unless it is answered with want.
func (r *raw) must(typ protocol.Type, body any, want protocol.Type) {
	r.t.Helper()
	if got, code := r.reply(r.send(typ, body)); got != want {
		r.t.Fatalf("%s: got %s %s, want %s", typ, got, code, want)
	}
}

// sendCode sends a text and returns the answer's type and error code.
func (r *raw) sendCode(send *protocol.Send) (protocol.Type, protocol.Code) {
	r.t.Helper()
	return r.reply(r.send(protocol.TypeSend, send))
}

// TestRemovedFriendIsRefusedAtOnce: under the friends-only policy the
// friendship check is cached, and a change is seen by the very next Send,
// both ways.
func TestRemovedFriendIsRefusedAtOnce(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	msg := func(cmid string) *protocol.Send {
		return &protocol.Send{ClientMsgID: cmid, To: b.UserID, Body: []byte(cmid)}
	}

	// Not friends (and remembered so).
	for _, cmid := range []string{"n1", "n2"} {
		if typ, code := alice.sendCode(msg(cmid)); code != protocol.CodeNotFriends {
			t.Fatalf("send before friendship: %s %s, want NOT_FRIENDS", typ, code)
		}
	}
	alice.must(protocol.TypeFriendRequest, &protocol.FriendRequest{To: b.UserID}, protocol.TypeOK)
	bob.must(protocol.TypeFriendAnswer, &protocol.FriendAnswer{From: a.UserID, Accept: true}, protocol.TypeOK)
	for _, cmid := range []string{"f1", "f2"} {
		if typ, code := alice.sendCode(msg(cmid)); typ != protocol.TypeSendAck {
			t.Fatalf("send right after the friendship: %s %s", typ, code)
		}
	}
	bob.must(protocol.TypeFriendDelete, &protocol.FriendDelete{UserID: a.UserID}, protocol.TypeOK)
	if typ, code := alice.sendCode(msg("r1")); code != protocol.CodeNotFriends {
		t.Fatalf("send right after the unfriend: %s %s, want NOT_FRIENDS", typ, code)
	}
	// Crossed requests make friends at once too.
	bob.must(protocol.TypeFriendRequest, &protocol.FriendRequest{To: a.UserID}, protocol.TypeOK)
	alice.must(protocol.TypeFriendRequest, &protocol.FriendRequest{To: b.UserID}, protocol.TypeOK)
	if typ, code := alice.sendCode(msg("m1")); typ != protocol.TypeSendAck {
		t.Fatalf("send right after mutual requests: %s %s", typ, code)
	}
	// A user that does not exist is refused (and not remembered as one).
	if typ, code := alice.sendCode(&protocol.Send{ClientMsgID: "x", To: b.UserID + 1000}); code != protocol.CodeNoSuchUser {
		t.Fatalf("send to no one: %s %s, want NO_SUCH_USER", typ, code)
	}
}

// TestRemovedMemberIsRefusedAtOnce: a member removed from a group, or who
// left it, cannot send to it on the very next Send.
func TestRemovedMemberIsRefusedAtOnce(t *testing.T) {
	srv := startServer(t, nil)
	owner, m1, m2 := dial(t, srv.Addr()), dial(t, srv.Addr()), dial(t, srv.Addr())
	owner.register(uniqueName("owner"))
	u1 := m1.register(uniqueName("member"))
	u2 := m2.register(uniqueName("member"))
	id := owner.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: "g", Members: []int64{u1.UserID, u2.UserID}})
	var g protocol.GroupInfo
	for {
		f, err := owner.next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.h.RequestID == id {
			if f.h.Type != protocol.TypeGroupInfo {
				t.Fatalf("GroupCreate: %s", f.h.Type)
			}
			_ = protocol.DecodeBody(f.body, &g)
			break
		}
	}
	msg := func(cmid string) *protocol.Send {
		return &protocol.Send{ClientMsgID: cmid, GroupID: g.GroupID, Body: []byte(cmid)}
	}
	for _, r := range []*raw{m1, m2} {
		if typ, code := r.sendCode(msg("before")); typ != protocol.TypeSendAck {
			t.Fatalf("member's send: %s %s", typ, code)
		}
	}
	owner.must(protocol.TypeGroupRemove, &protocol.GroupRemove{GroupID: g.GroupID, UserID: u1.UserID}, protocol.TypeOK)
	if typ, code := m1.sendCode(msg("after-remove")); code != protocol.CodeNotMember {
		t.Fatalf("send right after removal: %s %s, want NOT_MEMBER", typ, code)
	}
	m2.must(protocol.TypeGroupLeave, &protocol.GroupLeave{GroupID: g.GroupID}, protocol.TypeOK)
	if typ, code := m2.sendCode(msg("after-leave")); code != protocol.CodeNotMember {
		t.Fatalf("send right after leaving: %s %s, want NOT_MEMBER", typ, code)
	}
	owner.must(protocol.TypeGroupInvite, &protocol.GroupInvite{GroupID: g.GroupID, Users: []int64{u1.UserID}}, protocol.TypeOK)
	if typ, code := m1.sendCode(msg("after-invite")); typ != protocol.TypeSendAck {
		t.Fatalf("send right after the invitation: %s %s", typ, code)
	}
	owner.must(protocol.TypeGroupDisband, &protocol.GroupDisband{GroupID: g.GroupID}, protocol.TypeOK)
	if typ, code := m1.sendCode(msg("after-disband")); code != protocol.CodeNoSuchGroup {
		t.Fatalf("send right after disband: %s %s, want NO_SUCH_GROUP", typ, code)
	}
}
