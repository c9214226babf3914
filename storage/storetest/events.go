package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The cases of conversation events: storage.Events and the events Append
// applies.

var eventCases = []struct {
	name string
	fn   func(t *testing.T, open Open)
}{
	{"EventRecall", testEventRecall},
	{"EventEdit", testEventEdit},
	{"EventReactions", testEventReactions},
	{"EventTargets", testEventTargets},
	{"EventReplyMentions", testEventReplyMentions},
	{"EventSameBatch", testEventSameBatch},
	{"EventUnread", testEventUnread},
}

// eventEnv is an env with the store's storage.Events.
type eventEnv struct {
	*env
	ev storage.Events
}

func newEventEnv(t *testing.T, open Open, hook storage.CommitHook) *eventEnv {
	e := newEnv(t, open, hook)
	return &eventEnv{env: e, ev: e.s}
}

// event builds an event of ct from one user to another on the message at ref.
func (e *eventEnv) event(from, to int64, ct uint16, ref uint64, body string) *protocol.Message {
	m := e.direct(from, to, fmt.Sprintf("ev-%d", e.msgID.Load()), []byte(body))
	m.ContentType, m.Ref = ct, ref
	return m
}

// refused appends m, which must fail with want and use no seq.
func (e *eventEnv) refused(m *protocol.Message, want error) {
	e.t.Helper()
	before := e.after(m.From, m.Conv, 0, 1).lastSeq
	_, _, err := e.s.Append(e.ctx, m)
	if !errors.Is(err, want) {
		e.t.Fatalf("Append %#x ref %d: %v, want %v", m.ContentType, m.Ref, err, want)
	}
	if after := e.after(m.From, m.Conv, 0, 1).lastSeq; after != before {
		e.t.Fatalf("a refused event moved the last seq from %d to %d", before, after)
	}
}

// at returns the message at seq as MessagesAt folds it.
func (e *eventEnv) at(conv string, seq uint64) protocol.Message {
	e.t.Helper()
	ms, err := e.ev.MessagesAt(e.ctx, conv, []uint64{seq})
	if err != nil || len(ms) != 1 || ms[0].Seq != seq {
		e.t.Fatalf("MessagesAt(%s, %d): %v, %v", conv, seq, ms, err)
	}
	return ms[0]
}

// bySeq pages through After and Before as user and returns each read's
// messages by seq; both must agree.
func (e *eventEnv) bySeq(user int64, conv string) map[uint64]protocol.Message {
	e.t.Helper()
	out := map[uint64]protocol.Message{}
	for _, m := range e.after(user, conv, 0, 1000).msgs {
		out[m.Seq] = m
	}
	hist, _, _, err := e.s.Before(e.ctx, user, conv, 0, 1000)
	if err != nil {
		e.t.Fatalf("Before: %v", err)
	}
	if len(hist) != len(out) {
		e.t.Fatalf("Before gives %d messages, After %d", len(hist), len(out))
	}
	for _, m := range hist {
		a := out[m.Seq]
		if string(a.Body) != string(m.Body) || a.Recalled != m.Recalled || a.Edited != m.Edited || len(a.Reactions) != len(m.Reactions) {
			e.t.Fatalf("seq %d: After %+v, Before %+v", m.Seq, a, m)
		}
	}
	return out
}

func testEventRecall(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	conv := protocol.DirectConv(a, b)
	orig := e.add(e.direct(a, b, "orig", []byte("secret")))
	edit := e.add(e.event(a, b, protocol.ContentEdit, orig.Seq, "secret v2"))
	e.add(e.event(b, a, protocol.ContentReact, orig.Seq, "👍"))
	rc := e.add(e.event(a, b, protocol.ContentRecall, orig.Seq, ""))
	if rc.Ref != orig.Seq || rc.ContentType != protocol.ContentRecall {
		t.Fatalf("recall stored as %+v", rc)
	}
	for _, user := range u {
		got := e.bySeq(user, conv)
		if m := got[orig.Seq]; !m.Recalled || len(m.Body) != 0 || len(m.Reactions) != 0 {
			t.Fatalf("user %d: recalled message reads %+v", user, m)
		}
		if m := got[edit.Seq]; len(m.Body) != 0 || m.Ref != orig.Seq {
			t.Fatalf("user %d: the edit of a recalled message keeps its body: %+v", user, m)
		}
		if m := got[rc.Seq]; m.Ref != orig.Seq || m.ContentType != protocol.ContentRecall {
			t.Fatalf("user %d: recall event reads %+v", user, m)
		}
	}
	if m := e.at(conv, orig.Seq); !m.Recalled || len(m.Body) != 0 {
		t.Fatalf("MessagesAt: %+v", m)
	}
	if _, err := e.ev.EditHistory(e.ctx, conv, orig.Seq); !errors.Is(err, storage.ErrRecalled) {
		t.Fatalf("EditHistory of a recalled message: %v", err)
	}
	e.refused(e.event(a, b, protocol.ContentEdit, orig.Seq, "again"), storage.ErrRecalled)
	e.refused(e.event(a, b, protocol.ContentRecall, orig.Seq, ""), storage.ErrRecalled)
	e.refused(e.event(b, a, protocol.ContentReact, orig.Seq, "❤"), storage.ErrRecalled)
	// The next message takes the next seq: refusals used none.
	if next := e.add(e.direct(a, b, "next", []byte("x"))); next.Seq != rc.Seq+1 {
		t.Fatalf("next seq %d, want %d", next.Seq, rc.Seq+1)
	}
}

func testEventEdit(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	conv := protocol.DirectConv(a, b)
	orig := e.add(e.direct(a, b, "orig", []byte("v0")))
	var edits []protocol.Message
	for i := 1; i <= storage.MaxEdits; i++ {
		ed := e.add(e.event(a, b, protocol.ContentEdit, orig.Seq, fmt.Sprintf("v%d", i)))
		if ed.Edited != uint32(i) {
			t.Fatalf("edit %d stored with ordinal %d", i, ed.Edited)
		}
		edits = append(edits, ed)
	}
	e.refused(e.event(a, b, protocol.ContentEdit, orig.Seq, "one too many"), storage.ErrEditLimit)
	got := e.bySeq(b, conv)
	m := got[orig.Seq]
	want := fmt.Sprintf("v%d", storage.MaxEdits)
	if string(m.Body) != want || m.Edited != storage.MaxEdits || m.EditedAt != edits[len(edits)-1].ServerTime || m.Recalled {
		t.Fatalf("edited message reads body %q edited %d at %d, want %q %d at %d", m.Body, m.Edited, m.EditedAt,
			want, storage.MaxEdits, edits[len(edits)-1].ServerTime)
	}
	if ev := got[edits[0].Seq]; string(ev.Body) != "v1" || ev.Ref != orig.Seq || ev.Edited != 1 {
		t.Fatalf("first edit event reads %+v", ev)
	}
	hist, err := e.ev.EditHistory(e.ctx, conv, orig.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != storage.MaxEdits+1 {
		t.Fatalf("%d versions, want %d", len(hist), storage.MaxEdits+1)
	}
	for i, v := range hist {
		if string(v.Body) != fmt.Sprintf("v%d", i) {
			t.Fatalf("version %d: %q", i, v.Body)
		}
	}
	if hist[0].Seq != orig.Seq || hist[0].ServerTime != orig.ServerTime || hist[1].Seq != edits[0].Seq {
		t.Fatalf("versions %+v", hist[:2])
	}
	if _, err := e.ev.EditHistory(e.ctx, conv, 999); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("EditHistory of no message: %v", err)
	}
	plain := e.add(e.direct(b, a, "plain", []byte("p")))
	if h, err := e.ev.EditHistory(e.ctx, conv, plain.Seq); err != nil || len(h) != 1 || string(h[0].Body) != "p" {
		t.Fatalf("EditHistory of an unedited message: %+v, %v", h, err)
	}
}

func testEventReactions(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(3)
	a, b, c := u[0], u[1], u[2]
	g := e.createGroup(a, []int64{b, c}, 10)
	conv := protocol.GroupConv(g.ID)
	react := func(from int64, ct uint16, ref uint64, emoji string) *protocol.Message {
		m := e.group(from, g.ID, fmt.Sprintf("r-%d", e.msgID.Load()), []byte(emoji))
		m.ContentType, m.Ref = ct, ref
		return m
	}
	orig := e.add(e.group(a, g.ID, "orig", []byte("hello")))
	e.add(react(b, protocol.ContentReact, orig.Seq, "👍"))
	e.add(react(c, protocol.ContentReact, orig.Seq, "👍"))
	e.add(react(b, protocol.ContentReact, orig.Seq, "❤"))
	e.refused(react(b, protocol.ContentReact, orig.Seq, "👍"), storage.ErrNoChange)
	e.refused(react(a, protocol.ContentUnreact, orig.Seq, "👍"), storage.ErrNoChange)
	e.refused(react(a, protocol.ContentUnreact, orig.Seq, "🎉"), storage.ErrNoChange)
	m := e.bySeq(a, conv)[orig.Seq]
	wantR := []protocol.Reaction{{Emoji: "👍", Count: 2, Users: []int64{b, c}}, {Emoji: "❤", Count: 1, Users: []int64{b}}}
	if !sameReactions(m.Reactions, wantR) || string(m.Body) != "hello" {
		t.Fatalf("reactions %+v, want %+v", m.Reactions, wantR)
	}
	e.add(react(c, protocol.ContentUnreact, orig.Seq, "👍"))
	e.add(react(b, protocol.ContentUnreact, orig.Seq, "❤"))
	wantR = []protocol.Reaction{{Emoji: "👍", Count: 1, Users: []int64{b}}}
	if got := e.at(conv, orig.Seq).Reactions; !sameReactions(got, wantR) {
		t.Fatalf("after removals %+v, want %+v", got, wantR)
	}
	// Per user: MaxReactionsPerUser emoji on one message.
	for i := 1; i < storage.MaxReactionsPerUser; i++ {
		e.add(react(b, protocol.ContentReact, orig.Seq, fmt.Sprintf("e%d", i)))
	}
	e.refused(react(b, protocol.ContentReact, orig.Seq, "over"), storage.ErrReactionLimit)
	// Per message: MaxEmoji distinct emoji; the users' own limits allow it.
	var users []int64
	for i := range storage.MaxEmoji {
		x, err := e.s.CreateUser(e.ctx, fmt.Sprintf("r%d", i), []byte("h"))
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, x.ID)
	}
	have := len(e.at(conv, orig.Seq).Reactions)
	for i := 0; have < storage.MaxEmoji; i++ {
		e.add(react(users[i], protocol.ContentReact, orig.Seq, fmt.Sprintf("x%d", i)))
		have++
	}
	e.refused(react(users[len(users)-1], protocol.ContentReact, orig.Seq, "one more"), storage.ErrReactionLimit)
	// An existing emoji still takes more users.
	e.add(react(users[len(users)-1], protocol.ContentReact, orig.Seq, "👍"))
	if got := e.at(conv, orig.Seq).Reactions[0]; got.Count != 2 {
		t.Fatalf("👍 %+v", got)
	}
}

func sameReactions(a, b []protocol.Reaction) bool {
	return slices.EqualFunc(a, b, func(x, y protocol.Reaction) bool {
		return x.Emoji == y.Emoji && x.Count == y.Count && slices.Equal(x.Users, y.Users)
	})
}

func testEventTargets(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	orig := e.add(e.direct(a, b, "orig", []byte("x")))
	react := e.add(e.event(b, a, protocol.ContentReact, orig.Seq, "👍"))
	for _, ref := range []uint64{0, react.Seq + 1, 1000, react.Seq} {
		e.refused(e.event(a, b, protocol.ContentEdit, ref, "y"), storage.ErrNotTarget)
	}
	e.refused(e.event(a, b, 0x01FF, orig.Seq, "y"), storage.ErrNotTarget)
	// Another conversation's seq is no target.
	ou, err := e.s.CreateUser(e.ctx, "other", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	other := ou.ID
	e.refused(e.event(a, other, protocol.ContentRecall, orig.Seq, ""), storage.ErrNotTarget)
}

func testEventReplyMentions(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(3)
	a, b, c := u[0], u[1], u[2]
	g := e.createGroup(a, []int64{b, c}, 10)
	conv := protocol.GroupConv(g.ID)
	first := e.add(e.group(b, g.ID, "first", []byte("question")))
	m := e.group(a, g.ID, "reply", []byte("answer @b @c"))
	m.ReplyTo, m.Mentions = first.Seq, []int64{b, c}
	reply := e.add(m)
	all := e.group(a, g.ID, "all", []byte("@all"))
	all.MentionAll = true
	everyone := e.add(all)
	got := e.bySeq(c, conv)
	if r := got[reply.Seq]; r.ReplyTo != first.Seq || !slices.Equal(r.Mentions, []int64{b, c}) || r.MentionAll {
		t.Fatalf("reply reads %+v", r)
	}
	if r := got[everyone.Seq]; !r.MentionAll || r.ReplyTo != 0 || len(r.Mentions) != 0 {
		t.Fatalf("@all reads %+v", r)
	}
	if r := got[first.Seq]; r.ReplyTo != 0 || len(r.Mentions) != 0 || r.MentionAll {
		t.Fatalf("plain message reads %+v", r)
	}
	if r := e.at(conv, reply.Seq); r.ReplyTo != first.Seq || len(r.Mentions) != 2 {
		t.Fatalf("MessagesAt reply %+v", r)
	}
	// An edit keeps the reply and mentions of the message.
	e.add(func() *protocol.Message {
		ed := e.group(a, g.ID, "edit", []byte("answer, edited"))
		ed.ContentType, ed.Ref = protocol.ContentEdit, reply.Seq
		return ed
	}())
	if r := e.at(conv, reply.Seq); r.ReplyTo != first.Seq || string(r.Body) != "answer, edited" || r.Edited != 1 {
		t.Fatalf("edited reply %+v", r)
	}
}

// testEventSameBatch queues a message and events on it without waiting, so
// that they share batches: each event sees those before it.
func testEventSameBatch(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEventEnv(t, open, rec.hook)
	const n = 12
	u := e.users(n + 1)
	owner := u[0]
	g := e.createGroup(owner, u[1:], n+1)
	conv := protocol.GroupConv(g.ID)
	calls := &asyncCalls{t: t}
	orig := e.group(owner, g.ID, "orig", []byte("v0"))
	calls.append(e.ctx, e.s, orig)
	// The message's seq is 1: the group's conversation is new.
	for i, user := range u[1:] {
		m := e.group(user, g.ID, fmt.Sprintf("re-%d", i), []byte("👍"))
		m.ContentType, m.Ref = protocol.ContentReact, 1
		calls.append(e.ctx, e.s, m)
		if i%4 == 0 {
			ed := e.group(owner, g.ID, fmt.Sprintf("ed-%d", i), fmt.Appendf(nil, "v%d", i/4+1))
			ed.ContentType, ed.Ref = protocol.ContentEdit, 1
			calls.append(e.ctx, e.s, ed)
		}
	}
	dupe := e.group(u[1], g.ID, "re-dupe", []byte("👍"))
	dupe.ContentType, dupe.Ref = protocol.ContentReact, 1
	calls.append(e.ctx, e.s, dupe)
	res := calls.wait()
	for i, r := range res[:len(res)-1] {
		if r.err != nil || r.dup {
			t.Fatalf("append %d: %v dup %v", i, r.err, r.dup)
		}
	}
	if err := res[len(res)-1].err; !errors.Is(err, storage.ErrNoChange) {
		t.Fatalf("a second 👍 of one user: %v", err)
	}
	m := e.at(conv, 1)
	if len(m.Reactions) != 1 || m.Reactions[0].Count != n || string(m.Body) != "v3" || m.Edited != 3 {
		t.Fatalf("after the batch: body %q edited %d reactions %+v", m.Body, m.Edited, m.Reactions)
	}
	if got := len(e.after(owner, conv, 0, 1000).msgs); got != 1+n+3 {
		t.Fatalf("%d messages stored, want %d", got, 1+n+3)
	}
	if got := len(rec.got()); got != 1+n+3 {
		t.Fatalf("hook saw %d messages, want %d (refusals are not hooked)", got, 1+n+3)
	}
}

// testEventUnread: events (reactions, edits, recalls) are not unread
// messages; the messages they act on still are.
func testEventUnread(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(3)
	a, b, c := u[0], u[1], u[2]
	check := func(step string, user int64, conv string, want uint64) {
		t.Helper()
		if got := e.conv(user, conv); got.Unread != want {
			t.Errorf("%s: user %d unread %d, want %d", step, user, got.Unread, want)
		}
	}
	orig := e.add(e.direct(a, b, "orig", []byte("hi")))
	conv := orig.Conv
	check("a message", b, conv, 1)
	e.add(e.event(b, a, protocol.ContentReact, orig.Seq, "👍"))
	e.add(e.event(b, a, protocol.ContentUnreact, orig.Seq, "👍"))
	e.add(e.event(b, a, protocol.ContentReact, orig.Seq, "❤"))
	check("b's reactions", a, conv, 0)
	e.add(e.event(a, b, protocol.ContentEdit, orig.Seq, "hi!"))
	check("a's edit", b, conv, 1)
	second := e.add(e.direct(a, b, "second", []byte("oops")))
	e.add(e.event(a, b, protocol.ContentRecall, second.Seq, ""))
	check("a's recall", b, conv, 2) // the recalled message is still one
	reply := e.add(e.direct(b, a, "reply", []byte("ok")))
	check("b's reply after its reactions", a, conv, 1)
	e.ack(a, conv, reply.Seq)
	e.add(e.event(b, a, protocol.ContentReact, reply.Seq, "👍"))
	check("a reaction after the read cursor", a, conv, 0)

	// A group: a reaction to a member's message is no unread message
	// for anyone.
	g := e.createGroup(a, []int64{b, c}, 10)
	gconv := protocol.GroupConv(g.ID)
	q := e.add(e.group(a, g.ID, "q", []byte("lunch?")))
	react := e.group(b, g.ID, "gr", []byte("👍"))
	react.ContentType, react.Ref = protocol.ContentReact, q.Seq
	e.add(react)
	check("group: a", a, gconv, 0)
	check("group: c", c, gconv, 1)
	if last := e.conv(c, gconv).Last; last == nil || last.ContentType != protocol.ContentReact {
		t.Errorf("group: c's last %+v, want the reaction (last shows events)", last)
	}
}
