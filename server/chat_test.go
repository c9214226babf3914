package server_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

func TestRegisterLoginSendPushAck(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register("alice")
	b := bob.register("bob")
	if a.UserID == b.UserID || a.Token == "" || a.Heartbeat <= 0 || a.TokenExpires <= a.ServerTime {
		t.Fatalf("bad LoginOK: %+v %+v", a, b)
	}

	ack := alice.sendText(b.UserID, "m1", "hello bob")
	conv := protocol.DirectConv(a.UserID, b.UserID)
	if ack.Conv != conv || ack.Seq != 1 || ack.MsgID == 0 || ack.Duplicate {
		t.Fatalf("ack %+v", ack)
	}
	m := bob.expectPush()
	if m.MsgID != ack.MsgID || m.Seq != 1 || m.From != a.UserID || m.To != b.UserID || string(m.Body) != "hello bob" || m.ClientMsgID != "m1" {
		t.Fatalf("push %+v", m)
	}
	alice.silent(100 * time.Millisecond) // the sender's connection gets no push of its own message

	id := bob.send(protocol.TypeAck, &protocol.Ack{Conv: conv, Seq: 1})
	bob.expect(protocol.TypeOK, id, nil)
	id = bob.send(protocol.TypeConversations, &protocol.Conversations{})
	var list protocol.ConversationList
	bob.expect(protocol.TypeConversationList, id, &list)
	if len(list.Conversations) != 1 || list.Conversations[0].AckSeq != 1 || list.Conversations[0].Unread != 0 {
		t.Fatalf("conversations after ack: %+v", list)
	}

	// A password login elsewhere gets a different token.
	again := dial(t, srv.Addr()).login("ALICE")
	if again.UserID != a.UserID || again.Token == a.Token {
		t.Fatalf("second login %+v", again)
	}
}

func TestOfflineSyncAfterReconnect(t *testing.T) {
	srv := startServer(t, nil)
	alice := dial(t, srv.Addr())
	a := alice.register("alice")
	bob := dial(t, srv.Addr())
	b := bob.register("bob")
	conv := protocol.DirectConv(a.UserID, b.UserID)

	alice.sendText(b.UserID, "c1", "one")
	if m := bob.expectPush(); m.Seq != 1 {
		t.Fatalf("push %+v", m)
	}
	id := bob.send(protocol.TypeAck, &protocol.Ack{Conv: conv, Seq: 1})
	bob.expect(protocol.TypeOK, id, nil)
	// Alice learns that bob read it.
	var read protocol.ReadEvent
	alice.expect(protocol.TypeReadEvent, 0, &read)
	if read != (protocol.ReadEvent{Conv: conv, User: b.UserID, Seq: 1}) {
		t.Fatalf("read event %+v", read)
	}
	_ = bob.c.Close()

	// Sent while bob is away.
	for i := 2; i <= 7; i++ {
		alice.sendText(b.UserID, fmt.Sprintf("c%d", i), fmt.Sprintf("msg %d", i))
	}

	bob = dial(t, srv.Addr())
	id = bob.send(protocol.TypeLogin, &protocol.Login{Token: b.Token})
	var ok protocol.LoginOK
	bob.expect(protocol.TypeLoginOK, id, &ok)
	if ok.UserID != b.UserID || ok.Token != b.Token {
		t.Fatalf("resume %+v", ok)
	}

	id = bob.send(protocol.TypeConversations, &protocol.Conversations{})
	var list protocol.ConversationList
	bob.expect(protocol.TypeConversationList, id, &list)
	if len(list.Conversations) != 1 {
		t.Fatalf("conversations %+v", list)
	}
	c := list.Conversations[0]
	if c.Conv != conv || c.LastSeq != 7 || c.AckSeq != 1 || c.Unread != 6 || c.Last == nil || string(c.Last.Body) != "msg 7" {
		t.Fatalf("conversation %+v", c)
	}

	// Page through the missed messages, 4 at a time, from the acked cursor.
	var got []uint64
	next := c.AckSeq
	for {
		id = bob.send(protocol.TypeSync, &protocol.Sync{Conv: conv, LastAckID: next, Limit: 4})
		var res protocol.SyncResult
		bob.expect(protocol.TypeSyncResult, id, &res)
		for _, m := range res.Messages {
			got = append(got, m.Seq)
			if want := fmt.Sprintf("msg %d", m.Seq); string(m.Body) != want {
				t.Fatalf("seq %d body %q", m.Seq, m.Body)
			}
		}
		next = res.Next
		if !res.HasMore {
			break
		}
	}
	if fmt.Sprint(got) != "[2 3 4 5 6 7]" {
		t.Fatalf("synced %v", got)
	}
}

func TestDuplicateSendIsStoredOnce(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	alice.register("alice")
	b := bob.register("bob")

	first := alice.sendText(b.UserID, "same-id", "hi")
	bob.expectPush()
	second := alice.sendText(b.UserID, "same-id", "hi")
	if !second.Duplicate || second.MsgID != first.MsgID || second.Seq != first.Seq {
		t.Fatalf("first %+v second %+v", first, second)
	}
	bob.silent(150 * time.Millisecond)
	next := alice.sendText(b.UserID, "other-id", "again")
	if next.Seq != 2 {
		t.Fatalf("seq after a duplicate %d, want 2", next.Seq)
	}
}

func TestTwoDevicesBothReceive(t *testing.T) {
	srv := startServer(t, nil)
	alice := dial(t, srv.Addr())
	a := alice.register("alice")
	phone, laptop := dial(t, srv.Addr()), dial(t, srv.Addr())
	b := phone.register("bob")
	laptop.login("bob")

	ack := alice.sendText(b.UserID, "x", "to both")
	for _, dev := range []*raw{phone, laptop} {
		if m := dev.expectPush(); m.MsgID != ack.MsgID {
			t.Fatalf("push %+v", m)
		}
	}
	// Bob writes from his phone: alice and bob's laptop get it, the phone does not.
	reply := phone.sendText(a.UserID, "y", "from phone")
	if m := alice.expectPush(); m.MsgID != reply.MsgID || m.Seq != 2 {
		t.Fatalf("alice push %+v", m)
	}
	if m := laptop.expectPush(); m.MsgID != reply.MsgID {
		t.Fatalf("laptop push %+v", m)
	}
	phone.silent(100 * time.Millisecond)
}

// TestPushRightAfterLogin: a message committed once a device's LoginOK is
// queued (here: read by the client) is pushed to that device, however late
// the worker that logged it in gets to its next step.
func TestPushRightAfterLogin(t *testing.T) {
	srv := startServer(t, nil)
	var armed atomic.Bool
	release := make(chan struct{})
	let := sync.OnceFunc(func() { close(release) })
	t.Cleanup(let) // a failing test does not leave a worker waiting
	server.OnLoginQueued(srv, func() {
		if armed.CompareAndSwap(true, false) {
			<-release
		}
	})
	alice := dial(t, srv.Addr())
	alice.register("alice")
	phone := dial(t, srv.Addr())
	b := phone.register("bob")

	armed.Store(true)
	laptop := dial(t, srv.Addr())
	laptop.login("bob") // the login's worker now waits in the hook
	ack := alice.sendText(b.UserID, "x", "right after login")
	// The phone's push shows that delivery has looked bob's sessions up.
	if m := phone.expectPush(); m.MsgID != ack.MsgID {
		t.Fatalf("phone push %+v", m)
	}
	let()
	if m := laptop.expectPush(); m.MsgID != ack.MsgID {
		t.Fatalf("laptop push %+v", m)
	}
}

func TestHistoryPagingAndDelete(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register("alice")
	b := bob.register("bob")
	conv := protocol.DirectConv(a.UserID, b.UserID)
	for i := 1; i <= 10; i++ {
		alice.sendText(b.UserID, fmt.Sprintf("h%d", i), fmt.Sprintf("n%d", i))
		bob.expectPush()
	}

	history := func(r *raw, before uint64, limit uint32) protocol.HistoryResult {
		t.Helper()
		id := r.send(protocol.TypeHistory, &protocol.History{Conv: conv, BeforeSeq: before, Limit: limit})
		var res protocol.HistoryResult
		r.expect(protocol.TypeHistoryResult, id, &res)
		return res
	}
	seqs := func(ms []protocol.Message) string {
		var s []uint64
		for _, m := range ms {
			s = append(s, m.Seq)
		}
		return fmt.Sprint(s)
	}

	p1 := history(alice, 0, 4)
	p2 := history(alice, p1.Next, 4)
	p3 := history(alice, p2.Next, 4)
	if seqs(p1.Messages) != "[10 9 8 7]" || seqs(p2.Messages) != "[6 5 4 3]" || seqs(p3.Messages) != "[2 1]" ||
		!p1.HasMore || !p2.HasMore || p3.HasMore {
		t.Fatalf("pages %s %s %s (%v %v %v)", seqs(p1.Messages), seqs(p2.Messages), seqs(p3.Messages), p1.HasMore, p2.HasMore, p3.HasMore)
	}

	// Alice deletes 9 and everything up to 3, for herself only.
	id := alice.send(protocol.TypeDeleteHistory, &protocol.DeleteHistory{Conv: conv, Seqs: []uint64{9}, UpTo: 3})
	alice.expect(protocol.TypeOK, id, nil)
	if got := seqs(history(alice, 0, 100).Messages); got != "[10 8 7 6 5 4]" {
		t.Fatalf("alice after delete: %s", got)
	}
	if got := seqs(history(bob, 0, 100).Messages); got != "[10 9 8 7 6 5 4 3 2 1]" {
		t.Fatalf("bob after alice's delete: %s", got)
	}
	id = alice.send(protocol.TypeSync, &protocol.Sync{Conv: conv})
	var res protocol.SyncResult
	alice.expect(protocol.TypeSyncResult, id, &res)
	if seqs(res.Messages) != "[4 5 6 7 8 10]" || res.LastSeq != 10 {
		t.Fatalf("alice sync after delete: %s last %d", seqs(res.Messages), res.LastSeq)
	}
}

func TestSendErrors(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.MaxMessage = 1024 })
	alice := dial(t, srv.Addr())
	a := alice.register("alice")
	if a.MaxMessage != 1024 {
		t.Fatalf("LoginOK.max_message = %d, want the configured 1024", a.MaxMessage)
	}
	cases := []struct {
		name string
		send protocol.Send
		code protocol.Code
	}{
		{"no client_msg_id", protocol.Send{To: 999, Body: []byte("x")}, protocol.CodeBadMessage},
		{"no recipient", protocol.Send{ClientMsgID: "a"}, protocol.CodeBadMessage},
		{"both recipients", protocol.Send{ClientMsgID: "a", To: 5, GroupID: 5}, protocol.CodeBadMessage},
		{"unknown user", protocol.Send{ClientMsgID: "a", To: 999999}, protocol.CodeNoSuchUser},
		{"to self", protocol.Send{ClientMsgID: "a", To: a.UserID}, protocol.CodeSelfMessage},
		{"too long", protocol.Send{ClientMsgID: "a", To: 999999, Body: bytes.Repeat([]byte("x"), 1025)}, protocol.CodeMessageTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice.t = t
			id := alice.send(protocol.TypeSend, &tc.send)
			alice.expectError(id, tc.code)
		})
	}
	alice.t = t
	// Another user's conversation is not readable.
	id := alice.send(protocol.TypeSync, &protocol.Sync{Conv: protocol.DirectConv(1000, 1001)})
	alice.expectError(id, protocol.CodeBadConv)
	id = alice.send(protocol.TypeHistory, &protocol.History{Conv: "not-a-conv"})
	alice.expectError(id, protocol.CodeBadConv)
	alice.ping()
}
