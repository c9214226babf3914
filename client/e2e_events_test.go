package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// receiveOne waits for the next message of c and checks its content type
// and ref.
func receiveOne(t *testing.T, c *client.Client, ct uint16, ref uint64) protocol.Message {
	t.Helper()
	m := receive(t, c, 1)[0]
	if m.ContentType != ct || m.Ref != ref {
		t.Fatalf("received %#x ref %d (%+v), want %#x ref %d", m.ContentType, m.Ref, m, ct, ref)
	}
	return m
}

// historyAt returns the message at seq of conv as History folds it.
func historyAt(t *testing.T, u *user, conv string, seq uint64) protocol.Message {
	t.Helper()
	h, err := u.History(ctx(t), conv, seq+1, 1)
	if err != nil || len(h.Messages) != 1 || h.Messages[0].Seq != seq {
		t.Fatalf("History at %d: %+v %v", seq, h, err)
	}
	return h.Messages[0]
}

// Recall, edit, reactions, replies and mentions in a direct conversation,
// the refusals of a hostile client, and a device that was offline syncing
// the events and folding them into the same state that History reads.
func TestEventsDirect(t *testing.T) {
	const window = 700 * time.Millisecond
	srv := servertest.Start(t, func(c *server.Config) { c.RecallWindow = window })
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	carol := register(t, srv, "carol")
	conv := protocol.DirectConv(alice.id, bob.id)

	first, err := alice.Send(ctx(t), bob.id, 0, []byte("helo"))
	if err != nil {
		t.Fatal(err)
	}
	held := receive(t, bob.Client, 1)[0] // bob's copy, to fold events into

	// Edit: only the sender's own, pushed in sequence, history kept.
	if _, err := alice.Edit(ctx(t), conv, first.Seq, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	ev := receiveOne(t, bob.Client, protocol.ContentEdit, first.Seq)
	if ev.Edited != 1 || string(ev.Body) != "hello" || !client.ApplyEvent(&held, &ev) || string(held.Body) != "hello" || held.Edited != 1 {
		t.Fatalf("edit event %+v folds into %+v", ev, held)
	}
	_, err = bob.Edit(ctx(t), conv, first.Seq, []byte("hijack"))
	wantCode(t, errors.Unwrap(err), protocol.CodeNotSender)
	vs, err := bob.EditHistory(ctx(t), conv, first.Seq)
	if err != nil || len(vs) != 2 || string(vs[0].Body) != "helo" || string(vs[1].Body) != "hello" || vs[1].Seq != ev.Seq {
		t.Fatalf("edit history %+v %v", vs, err)
	}
	_, err = carol.EditHistory(ctx(t), conv, first.Seq)
	wantCode(t, err, protocol.CodeBadConv)

	// Reactions: counted per emoji with who; a repeat is NO_CHANGE.
	if _, err := bob.React(ctx(t), conv, first.Seq, "👍"); err != nil {
		t.Fatal(err)
	}
	rv := receiveOne(t, alice.Client, protocol.ContentReact, first.Seq)
	client.ApplyEvent(&held, &rv)
	_, err = bob.React(ctx(t), conv, first.Seq, "👍")
	wantCode(t, errors.Unwrap(err), protocol.CodeNoChange)
	_, err = bob.React(ctx(t), conv, first.Seq, "two words")
	wantCode(t, errors.Unwrap(err), protocol.CodeBadMessage)
	if who, err := alice.Reactors(ctx(t), conv, first.Seq, "👍"); err != nil || !slices.Equal(who, []int64{bob.id}) {
		t.Fatalf("reactors %v %v", who, err)
	}
	if m := historyAt(t, alice, conv, first.Seq); len(m.Reactions) != 1 || m.Reactions[0].Count != 1 ||
		string(m.Body) != "hello" || m.Edited != 1 || m.EditedAt != ev.ServerTime {
		t.Fatalf("history reads %+v", m)
	}

	// A reply with a mention: a mention reaches bob even where he muted.
	reply, err := alice.PostTo(ctx(t), conv, client.Post{Body: []byte("@bob see above"), ReplyTo: first.Seq, Mentions: []int64{bob.id}})
	if err != nil {
		t.Fatal(err)
	}
	rp := receive(t, bob.Client, 1)[0]
	if rp.ReplyTo != first.Seq || !client.Mentioned(&rp, bob.id) || client.Mentioned(&rp, alice.id) {
		t.Fatalf("reply %+v", rp)
	}
	_, err = alice.PostTo(ctx(t), conv, client.Post{Body: []byte("x"), Mentions: []int64{carol.id}})
	wantCode(t, errors.Unwrap(err), protocol.CodeBadMention)
	_, err = alice.PostTo(ctx(t), conv, client.Post{Body: []byte("x"), MentionAll: true})
	wantCode(t, errors.Unwrap(err), protocol.CodeBadMention)
	_, err = alice.PostTo(ctx(t), conv, client.Post{Body: []byte("x"), ReplyTo: 999})
	wantCode(t, errors.Unwrap(err), protocol.CodeNoSuchMessage)

	// Hostile fields: a reserved event type, ref on a message, an event
	// on an event, an event in another's conversation.
	for _, s := range []protocol.Send{
		{To: bob.id, ContentType: 0x0150, Ref: first.Seq, Body: []byte("x")},
		{To: bob.id, Ref: first.Seq, Body: []byte("x")},
		{To: bob.id, ContentType: protocol.ContentRecall, Body: []byte{}},
		{To: bob.id, ContentType: protocol.ContentRecall, Ref: first.Seq, Body: []byte("not empty")},
		{To: bob.id, ContentType: protocol.ContentEdit, Ref: first.Seq, Body: []byte{}},
	} {
		s.ClientMsgID = alice.NewClientMsgID()
		_, err := alice.SendRaw(ctx(t), s)
		wantCode(t, errors.Unwrap(err), protocol.CodeBadMessage)
	}
	_, err = alice.Edit(ctx(t), conv, ev.Seq, []byte("edit an edit"))
	wantCode(t, errors.Unwrap(err), protocol.CodeNoSuchMessage)
	if _, err = carol.Recall(ctx(t), conv, first.Seq); err == nil {
		t.Fatal("the client recalls in another's conversation")
	}
	// Sent raw, the seq names a message of carol's own conversation with bob: none.
	_, err = carol.SendRaw(ctx(t), protocol.Send{ClientMsgID: carol.NewClientMsgID(), To: bob.id,
		ContentType: protocol.ContentRecall, Ref: first.Seq, Body: []byte{}})
	wantCode(t, errors.Unwrap(err), protocol.CodeNoSuchMessage)
	_, err = bob.Recall(ctx(t), conv, first.Seq)
	wantCode(t, errors.Unwrap(err), protocol.CodeNotSender)

	// Recall: for everyone; a resend of it is a duplicate, not RECALLED.
	recall := protocol.Send{ClientMsgID: alice.NewClientMsgID(), To: bob.id, ContentType: protocol.ContentRecall, Ref: first.Seq, Body: []byte{}}
	rack, err := alice.SendRaw(ctx(t), recall)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := alice.SendRaw(ctx(t), recall); err != nil || !again.Duplicate || again.Seq != rack.Seq {
		t.Fatalf("resent recall: %+v %v", again, err)
	}
	rc := receiveOne(t, bob.Client, protocol.ContentRecall, first.Seq)
	if !client.ApplyEvent(&held, &rc) || !held.Recalled || len(held.Body) != 0 || held.Reactions != nil {
		t.Fatalf("recall folds into %+v", held)
	}
	if m := historyAt(t, bob, conv, first.Seq); !m.Recalled || len(m.Body) != 0 || len(m.Reactions) != 0 {
		t.Fatalf("history of a recalled message: %+v", m)
	}
	if m := historyAt(t, bob, conv, ev.Seq); len(m.Body) != 0 {
		t.Fatalf("the edit of a recalled message keeps its text: %+v", m)
	}
	_, err = bob.EditHistory(ctx(t), conv, first.Seq)
	wantCode(t, err, protocol.CodeRecalled)
	for _, f := range []func() error{
		func() error { _, err := alice.Edit(ctx(t), conv, first.Seq, []byte("back")); return err },
		func() error { _, err := bob.React(ctx(t), conv, first.Seq, "❤"); return err },
		func() error { _, err := alice.Recall(ctx(t), conv, first.Seq); return err },
	} {
		wantCode(t, errors.Unwrap(f()), protocol.CodeRecalled)
	}
	// Past the window the sender may no longer recall.
	late, err := alice.Send(ctx(t), bob.id, 0, []byte("too late"))
	if err != nil {
		t.Fatal(err)
	}
	receive(t, bob.Client, 1)
	time.Sleep(window + 100*time.Millisecond)
	_, err = alice.Recall(ctx(t), conv, late.Seq)
	wantCode(t, errors.Unwrap(err), protocol.CodeRecallExpired)

	// A device of bob's that was offline syncs every event in sequence;
	// folding them gives what History reads.
	bob2 := bob.again(t, srv, client.Options{})
	res, err := bob2.Sync(ctx(t), conv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	byseq := map[uint64]*protocol.Message{}
	for i := range res.Messages {
		m := &res.Messages[i]
		byseq[m.Seq] = m
		if i > 0 && m.Seq != res.Messages[i-1].Seq+1 {
			t.Fatalf("sync gap at %d", m.Seq)
		}
		if protocol.IsEvent(m.ContentType) {
			if tgt := byseq[m.Ref]; tgt == nil {
				t.Fatalf("event %d before its target %d", m.Seq, m.Ref)
			} else {
				client.ApplyEvent(tgt, m)
			}
		}
	}
	if len(res.Messages) != int(late.Seq) || byseq[reply.Seq].ReplyTo != first.Seq {
		t.Fatalf("synced %d messages, want %d", len(res.Messages), late.Seq)
	}
	for seq, m := range byseq {
		h := historyAt(t, bob2, conv, seq)
		if string(h.Body) != string(m.Body) || h.Recalled != m.Recalled || h.Edited != m.Edited || len(h.Reactions) != len(m.Reactions) {
			t.Fatalf("seq %d: folded %+v, history %+v", seq, m, h)
		}
	}
}

// In a group: the owner recalls anyone's message at any time, other
// members only their own; @all is the owner's; mentions name members.
func TestEventsGroup(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.RecallWindow = 200 * time.Millisecond })
	owner := register(t, srv, "owner")
	ann := register(t, srv, "ann")
	ben := register(t, srv, "ben")
	out := register(t, srv, "outsider")
	g, err := owner.CreateGroup(ctx(t), "g", false, ann.id, ben.id)
	if err != nil {
		t.Fatal(err)
	}
	conv := protocol.GroupConv(g.GroupID)
	msg, err := ann.SendGroup(ctx(t), g.GroupID, 0, []byte("ann's"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*user{owner, ben} {
		receive(t, u.Client, 1)
	}
	for _, u := range []*user{owner, ben} {
		if _, err := u.React(ctx(t), conv, msg.Seq, "🎉"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = out.React(ctx(t), conv, msg.Seq, "🎉")
	wantCode(t, errors.Unwrap(err), protocol.CodeNotMember)
	if m := historyAt(t, ann, conv, msg.Seq); len(m.Reactions) != 1 || m.Reactions[0].Count != 2 ||
		!slices.Equal(m.Reactions[0].Users, []int64{owner.id, ben.id}) {
		t.Fatalf("reactions %+v", m.Reactions)
	}
	_, err = ann.PostTo(ctx(t), conv, client.Post{Body: []byte("@all"), MentionAll: true})
	wantCode(t, errors.Unwrap(err), protocol.CodeBadMention)
	_, err = ann.PostTo(ctx(t), conv, client.Post{Body: []byte("@outsider"), Mentions: []int64{out.id}})
	wantCode(t, errors.Unwrap(err), protocol.CodeBadMention)
	all, err := owner.PostTo(ctx(t), conv, client.Post{Body: []byte("@all hi"), MentionAll: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ben.Recall(ctx(t), conv, msg.Seq)
	wantCode(t, errors.Unwrap(err), protocol.CodeNotSender)
	time.Sleep(300 * time.Millisecond)
	_, err = ann.Recall(ctx(t), conv, msg.Seq)
	wantCode(t, errors.Unwrap(err), protocol.CodeRecallExpired)
	if _, err := owner.Recall(ctx(t), conv, msg.Seq); err != nil {
		t.Fatalf("the owner recalls past the window: %v", err)
	}
	// ann and ben see: two reactions, @all, the recall.
	for _, u := range []*user{ann, ben} {
		got := receive(t, u.Client, 4-map[*user]int{ann: 0, ben: 1}[u])
		last := got[len(got)-1]
		if last.ContentType != protocol.ContentRecall || last.From != owner.id || last.Ref != msg.Seq {
			t.Fatalf("%s's last message %+v", u.name, last)
		}
		for _, m := range got {
			if m.Seq == all.Seq && !client.Mentioned(&m, u.id) {
				t.Fatalf("%s not mentioned by @all: %+v", u.name, m)
			}
		}
	}
	if m := historyAt(t, ben, conv, msg.Seq); !m.Recalled {
		t.Fatalf("not recalled: %+v", m)
	}
}

// The exactly-once checker with events: 1:1 and group traffic in which
// every third send edits or recalls the sender's last message, across the
// nodes of a cluster, one of which dies in the middle. Every acked message
// and event reaches every recipient once, in order, after the message it
// names, and folding the events gives what the senders did.
func TestEventsExactlyOnceCluster(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	n1, n2, n3 := c.Start(nil), c.Start(nil), c.Start(nil)
	c.WaitOwners(n1, n2, n3)
	var users []*clienttest.Member
	for i := range 6 {
		users = append(users, clienttest.Join(t, n1.Name, fmt.Sprintf("ev%02d", i)))
	}
	ids := make([]int64, len(users))
	for i, m := range users {
		ids[i] = m.ID
	}
	g, err := users[0].CreateGroup(context.Background(), "events", false, ids[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	tr := clienttest.NewTraffic(t, 10*time.Millisecond)
	tr.Events = 3
	for i := range users {
		tr.Direct(users[i], users[(i+1)%len(users)])
	}
	tr.Group(users[0], g.GroupID, users)
	tr.Group(users[3], g.GroupID, users)
	time.Sleep(400 * time.Millisecond)
	c.Kill(n3)
	final := c.WaitOwners(n1, n2)
	failover := time.Now()
	time.Sleep(400 * time.Millisecond)
	tr.AckedSince(failover, 10*time.Second)
	tr.Stop()
	for _, m := range users {
		clienttest.Eventually(t, 10*time.Second, m.Name+" logged in on a live node", func() bool {
			return m.State() == client.StateLoggedIn && m.LastLogin() == final.Owner(m.ID)
		})
	}
	tr.Check(10 * time.Second)
	acked, failed := tr.Counts()
	if acked < 50 {
		t.Fatalf("only %d sends acked", acked)
	}
	t.Logf("%d acked (%d failed), a third of them edits and recalls, through the death of a node", acked, failed)
}

// A recalled message leaves search: found before the recall (an edited one
// by its latest text only), by neither its first nor its edited text after
// it.
func TestRecallLeavesSearch(t *testing.T) {
	srv := servertest.Start(t, nil)
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	conv := protocol.DirectConv(alice.id, bob.id)
	found := func(u *user, q string) int {
		t.Helper()
		res, err := u.Search(ctx(t), protocol.Search{Query: q})
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		return len(res.Messages)
	}
	plain, err := alice.Send(ctx(t), bob.id, 0, []byte("the zebra plan"))
	if err != nil {
		t.Fatal(err)
	}
	edited, err := alice.Send(ctx(t), bob.id, 0, []byte("the giraffe plan"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx(t), conv, edited.Seq, []byte("the okapi plan")); err != nil {
		t.Fatal(err)
	}
	clienttest.Eventually(t, 5*time.Second, "both messages searchable", func() bool {
		return found(bob, "zebra") == 1 && found(bob, "okapi") == 1
	})
	if n := found(bob, "giraffe"); n != 0 {
		t.Fatalf("the edited message is found by its first text (%d)", n)
	}
	for _, seq := range []uint64{plain.Seq, edited.Seq} {
		if _, err := alice.Recall(ctx(t), conv, seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"zebra", "giraffe", "okapi", "plan"} {
		for _, u := range []*user{alice, bob} {
			if n := found(u, q); n != 0 {
				t.Fatalf("%s finds %d recalled messages by %q", u.name, n, q)
			}
		}
	}
}
