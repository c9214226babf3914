package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// expiryConfig makes timers short and the sweeper quick.
func expiryConfig(c *server.Config) {
	c.MinTimer = time.Second
	c.ExpireInterval = 50 * time.Millisecond
}

// await reads frames until one of type typ arrives (others are skipped),
// within d, and decodes it into body.
func (r *raw) await(typ protocol.Type, d time.Duration, body any) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			r.t.Fatalf("no %s within %v", typ, d)
		}
		f, err := r.next(left)
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if f.h.Type == typ {
			if err := protocol.DecodeBody(f.body, body); err != nil {
				r.t.Fatalf("decode %s: %v", typ, err)
			}
			return
		}
	}
}

// sendTimer sets the timer of alice's conversation with to.
func (r *raw) sendTimer(to int64, cmid, body string) uint32 {
	return r.send(protocol.TypeSend, &protocol.Send{ClientMsgID: cmid, To: to, ContentType: protocol.ContentTimer, Body: []byte(body)})
}

func (r *raw) syncSeqs(conv string) ([]uint64, uint64) {
	r.t.Helper()
	id := r.send(protocol.TypeSync, &protocol.Sync{Conv: conv})
	var res protocol.SyncResult
	r.expect(protocol.TypeSyncResult, id, &res)
	var seqs []uint64
	for _, m := range res.Messages {
		seqs = append(seqs, m.Seq)
	}
	return seqs, res.LastSeq
}

// A timer set by a member stamps the messages after it; they reach the
// peer with expires_at, vanish from Sync, History and Search when due, and
// the peer gets an Expired notice once the sweeper deleted them.
func TestExpiringMessages(t *testing.T) {
	srv := startServer(t, expiryConfig)
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	conv := protocol.DirectConv(a.UserID, b.UserID)

	alice.sendText(b.UserID, "m1", "kept forever")
	id := alice.sendTimer(b.UserID, "t1", "1")
	var ack protocol.SendAck
	alice.expect(protocol.TypeSendAck, id, &ack)
	sent := alice.sendText(b.UserID, "m2", "secret words")

	var push protocol.Message
	bob.await(protocol.TypePush, 5*time.Second, &push)
	bob.await(protocol.TypePush, 5*time.Second, &push)
	if push.ContentType != protocol.ContentTimer || string(push.Body) != "1" || push.ExpiresAt != 0 {
		t.Fatalf("timer push: %+v", push)
	}
	bob.await(protocol.TypePush, 5*time.Second, &push)
	if push.Seq != sent.Seq || push.ExpiresAt != sent.ServerTime+1000 {
		t.Fatalf("push %+v: want expires_at = server time %d + 1 s", push, sent.ServerTime)
	}
	id = bob.send(protocol.TypeConversations, &protocol.Conversations{})
	var list protocol.ConversationList
	bob.expect(protocol.TypeConversationList, id, &list)
	if len(list.Conversations) != 1 || list.Conversations[0].Timer != 1 {
		t.Fatalf("Conversations: %+v", list)
	}

	var gone protocol.Expired
	bob.await(protocol.TypeExpired, 5*time.Second, &gone)
	if late := time.Now().UnixMilli() - push.ExpiresAt; gone.Conv != conv || !slices.Equal(gone.Seqs, []uint64{3}) || late > 2000 {
		t.Fatalf("Expired %+v, %d ms after expires_at", gone, late)
	}
	if seqs, last := bob.syncSeqs(conv); !slices.Equal(seqs, []uint64{1, 2}) || last != 3 {
		t.Fatalf("Sync after expiry: %v last %d", seqs, last)
	}
	id = bob.send(protocol.TypeHistory, &protocol.History{Conv: conv})
	var hist protocol.HistoryResult
	bob.expect(protocol.TypeHistoryResult, id, &hist)
	if len(hist.Messages) != 2 {
		t.Fatalf("History after expiry: %+v", hist.Messages)
	}
	id = bob.send(protocol.TypeSearch, &protocol.Search{Query: "secret"})
	var found protocol.SearchResult
	bob.expect(protocol.TypeSearchResult, id, &found)
	if len(found.Messages) != 0 {
		t.Fatalf("Search finds an expired message: %+v", found.Messages)
	}
	// Turning the timer off: what follows stays.
	alice.sendTimer(b.UserID, "t2", "0")
	alice.await(protocol.TypeSendAck, 5*time.Second, &ack) // past alice's own Expired
	alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "m3", To: b.UserID, Body: []byte("stays")})
	alice.await(protocol.TypeSendAck, 5*time.Second, &ack)
	if ack.Seq != 5 {
		t.Fatalf("seq after the expiry: %d", ack.Seq)
	}
}

// What the server refuses of timers: malformed or out of bounds, reserved
// content types, a group member who is not the owner, a flood.
func TestTimerAdmission(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.TimerBurst = 2; c.TimerRate = 0.01 })
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	_ = a
	for _, body := range []string{"", "x", "01", "4", "31536001", "-5"} {
		alice.expectError(alice.sendTimer(b.UserID, "bad"+body, body), protocol.CodeBadTimer)
	}
	id := alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "r1", To: b.UserID, ContentType: 0x0301, Body: []byte("5")})
	alice.expectError(id, protocol.CodeBadMessage)
	id = alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "r2", To: b.UserID, ContentType: protocol.ContentTimer, Body: []byte("5"), ReplyTo: 1})
	alice.expectError(id, protocol.CodeBadMessage)

	id = alice.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: "timers", Members: []int64{b.UserID}})
	var g protocol.GroupInfo
	alice.expect(protocol.TypeGroupInfo, id, &g)
	bob.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "g1", GroupID: g.GroupID, ContentType: protocol.ContentTimer, Body: []byte("60")})
	var e protocol.Error
	bob.await(protocol.TypeError, 5*time.Second, &e) // past the GroupEvent of the invitation
	if e.Code != protocol.CodeNotOwner {
		t.Fatalf("a member sets the group's timer: %v, want NOT_OWNER", e.Code)
	}

	var ack protocol.SendAck
	alice.expect(protocol.TypeSendAck, alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "g2", GroupID: g.GroupID, ContentType: protocol.ContentTimer, Body: []byte("60")}), &ack)
	alice.expect(protocol.TypeSendAck, alice.sendTimer(b.UserID, "ok1", "5"), &ack)
	e = alice.expectError(alice.sendTimer(b.UserID, "ok2", "0"), protocol.CodeRateLimited)
	if e.Until <= time.Now().UnixMilli() {
		t.Fatalf("RATE_LIMITED until %d: not in the future", e.Until)
	}
}

// The timer and the deadlines are in the store: a server stopped and
// started again on the same data (embedded store and MySQL) stamps from the
// timer set before and expires what was sent before, on time.
func TestExpiryAcrossRestart(t *testing.T) {
	for _, kind := range []string{"pebble", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			st := servertest.NewStorage(t)
			if kind == "mysql" {
				st = servertest.MySQLStorage(mysqltest.DSN(t))
			} else if st.Flags()[1] != "pebble" {
				t.Skip("PARLEY_TEST_STORE names mysql: the mysql case covers it")
			}
			srv := servertest.StartOn(t, st, expiryConfig)
			alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
			an, bn := uniqueName("alice"), uniqueName("bob")
			a := alice.register(an)
			b := bob.register(bn)
			conv := protocol.DirectConv(a.UserID, b.UserID)
			var ack protocol.SendAck
			alice.expect(protocol.TypeSendAck, alice.sendTimer(b.UserID, "t1", "2"), &ack)
			before := alice.sendText(b.UserID, "m1", "sent before the restart")
			servertest.Stop(t, srv)

			srv = servertest.StartOn(t, st, expiryConfig)
			alice, bob = dial(t, srv.Addr()), dial(t, srv.Addr())
			alice.login(an)
			bob.login(bn)
			after := alice.sendText(b.UserID, "m2", "sent after the restart")
			id := bob.send(protocol.TypeSync, &protocol.Sync{Conv: conv, LastAckID: before.Seq})
			var res protocol.SyncResult
			bob.await(protocol.TypeSyncResult, 5*time.Second, &res)
			if len(res.Messages) != 1 || res.Messages[0].Seq != after.Seq || res.Messages[0].ExpiresAt != after.ServerTime+2000 {
				t.Fatalf("Sync %d after the restart: %+v, want seq %d expiring at %d + 2 s", id, res.Messages, after.Seq, after.ServerTime)
			}
			var gone protocol.Expired
			bob.await(protocol.TypeExpired, 5*time.Second, &gone)
			if late := time.Now().UnixMilli() - (before.ServerTime + 2000); !slices.Equal(gone.Seqs, []uint64{before.Seq}) || late > 2000 {
				t.Fatalf("Expired %+v, %d ms after the deadline", gone, late)
			}
			bob.await(protocol.TypeExpired, 5*time.Second, &gone)
			if !slices.Equal(gone.Seqs, []uint64{after.Seq}) {
				t.Fatalf("Expired %+v, want seq %d", gone, after.Seq)
			}
			if seqs, _ := bob.syncSeqs(conv); !slices.Equal(seqs, []uint64{1}) {
				t.Fatalf("Sync: %v, want the timer only", seqs)
			}
		})
	}
}

// In a cluster sharing one store, a message expires on time after the node
// its sender used stops: another node's sweeper deletes it and tells the
// recipient, who is on that other node.
func TestExpiryInCluster(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1, n2 := c.Start(expiryConfig), c.Start(expiryConfig)
	tab := c.WaitOwners(n1, n2)
	on := map[string][]*clienttest.Member{}
	for i := 0; len(on[n1.Name]) == 0 || len(on[n2.Name]) == 0; i++ {
		if i == 40 {
			t.Fatal("no users on both nodes")
		}
		m := clienttest.Join(t, n1.Name, fmt.Sprintf("expiring%02d", i))
		owner := tab.Owner(m.ID)
		clienttest.Eventually(t, 5*time.Second, m.Name+" on its node", func() bool { return m.LastLogin() == owner })
		on[owner] = append(on[owner], m)
	}
	a, b := on[n1.Name][0], on[n2.Name][0]
	conv := protocol.DirectConv(a.ID, b.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.SetTimer(ctx, conv, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	sent, err := a.Send(ctx, b.ID, 0, []byte("gone in two seconds"))
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(n1)
	deadline := time.After(6 * time.Second)
	for got := false; !got; {
		select {
		case n := <-b.Notices():
			got = n.Expired != nil && n.Expired.Conv == conv && slices.Contains(n.Expired.Seqs, sent.Seq)
		case <-deadline:
			t.Fatal("no Expired notice after the sender's node stopped")
		}
	}
	if late := time.Now().UnixMilli() - (sent.ServerTime + 2000); late > 2000 {
		t.Fatalf("Expired %d ms after the deadline", late)
	}
	res, err := b.Sync(ctx, conv, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Messages {
		if m.Seq == sent.Seq {
			t.Fatalf("Sync still has the expired message: %+v", m)
		}
	}
}
