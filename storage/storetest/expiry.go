package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
)

// The cases of expiring messages: storage.Expirer, the stamps Append sets
// and the reads that leave expired messages out. Messages are given server
// times in the past, so that they have expired when they are stored: no
// case waits for a clock.

var expiryCases = []struct {
	name string
	fn   func(t *testing.T, open Open)
}{
	{"ExpiryStamp", testExpiryStamp},
	{"ExpiryReads", testExpiryReads},
	{"ExpireSweep", testExpireSweep},
	{"ExpireBounded", testExpireBounded},
	{"ExpiryEvents", testExpiryEvents},
	{"ExpiryGroup", testExpiryGroup},
}

// expirer returns the env's store as a storage.Expirer.
func (e *env) expirer() storage.Expirer {
	e.t.Helper()
	x, ok := e.s.(storage.Expirer)
	if !ok {
		e.t.Fatalf("%T does not implement storage.Expirer", e.s)
	}
	return x
}

// timer sets conv's timer with a ContentTimer message from one user to
// another and returns it as stored.
func (e *env) timer(from, to int64, secs uint32) protocol.Message {
	e.t.Helper()
	m := e.direct(from, to, "", protocol.TimerBody(secs))
	m.ContentType = protocol.ContentTimer
	return e.add(m)
}

// sentAt appends a message from one user to another with server time at.
func (e *env) sentAt(from, to int64, cmid, body string, at int64) protocol.Message {
	e.t.Helper()
	m := e.direct(from, to, cmid, []byte(body))
	m.ContentType = 0
	m.ServerTime = at
	return e.add(m)
}

func (e *env) expire(now int64, limit int) []uint64 {
	e.t.Helper()
	msgs, err := e.expirer().Expire(e.ctx, now, limit)
	if err != nil {
		e.t.Fatalf("Expire: %v", err)
	}
	var seqs []uint64
	for _, m := range msgs {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

// A timer message sets the conversation's timer: later messages get
// ExpiresAt = ServerTime + timer, earlier ones and timer messages none; "0"
// turns it off; Conversations shows it.
func testExpiryStamp(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := protocol.DirectConv(a, b)
	before := e.text(a, b, "before the timer")
	tm := e.timer(a, b, 3600)
	after := e.text(b, a, "after the timer")
	if before.ExpiresAt != 0 || tm.ExpiresAt != 0 {
		t.Fatalf("expires_at before the timer %d, of the timer message %d; want 0", before.ExpiresAt, tm.ExpiresAt)
	}
	if want := after.ServerTime + 3600_000; after.ExpiresAt != want {
		t.Fatalf("expires_at %d, want server time + 1 h = %d", after.ExpiresAt, want)
	}
	if c := e.convs(a, 10); len(c) != 1 || c[0].Timer != 3600 {
		t.Fatalf("Conversations: %+v, want timer 3600", c)
	}
	got := e.after(b, conv, 0, 10).msgs
	if len(got) != 3 || got[2].ExpiresAt != after.ExpiresAt || got[1].ContentType != protocol.ContentTimer || string(got[1].Body) != "3600" {
		t.Fatalf("After: %+v", got)
	}
	e.timer(b, a, 0)
	off := e.text(a, b, "timer off")
	if off.ExpiresAt != 0 {
		t.Fatalf("expires_at %d after the timer was turned off", off.ExpiresAt)
	}
	if c := e.convs(b, 10); len(c) != 1 || c[0].Timer != 0 {
		t.Fatalf("Conversations after off: %+v", c)
	}
	// A timer body that does not parse sets nothing.
	bad := e.direct(a, b, "", []byte("01"))
	bad.ContentType = protocol.ContentTimer
	e.add(bad)
	if m := e.text(a, b, "still off"); m.ExpiresAt != 0 {
		t.Fatalf("a bad timer body set a timer: expires_at %d", m.ExpiresAt)
	}
}

// Every read leaves out what has expired, before Expire deleted it.
func testExpiryReads(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := protocol.DirectConv(a, b)
	now := time.Now().UnixMilli()
	e.text(a, b, "kept forever")                            // 1
	e.timer(a, b, 1)                                        // 2
	e.sentAt(a, b, "x1", "gone one", now-5000)              // 3: expired at now-4000
	live := e.sentAt(a, b, "x2", "live one", now+3_600_000) // 4: far in the future
	e.sentAt(a, b, "x3", "gone two", now-5000)              // 5: expired, the newest
	p := e.after(b, conv, 0, 10)
	if !slices.Equal(seqsOf(p.msgs), []uint64{1, 2, 4}) || p.lastSeq != 5 {
		t.Fatalf("After: seqs %v last %d, want [1 2 4] last 5", seqsOf(p.msgs), p.lastSeq)
	}
	if got := e.visible(b, conv); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Fatalf("After in pages: %v", got)
	}
	hist, _, _, err := e.s.Before(e.ctx, b, conv, 0, 10)
	if err != nil || !slices.Equal(seqsOf(hist), []uint64{4, 2, 1}) {
		t.Fatalf("Before: %v, %v", seqsOf(hist), err)
	}
	at, err := e.s.MessagesAt(e.ctx, conv, []uint64{3, 4, 5})
	if err != nil || !slices.Equal(seqsOf(at), []uint64{4}) {
		t.Fatalf("MessagesAt: %v, %v", seqsOf(at), err)
	}
	if _, err := e.s.EditHistory(e.ctx, conv, 3); err == nil {
		t.Fatal("EditHistory of an expired message: no error")
	}
	c := e.convs(b, 10)
	if len(c) != 1 || c[0].Unread != 3 || c[0].Last == nil || c[0].Last.Seq != live.Seq || c[0].LastSeq != 5 {
		t.Fatalf("Conversations: %+v", c)
	}
	_, bodies := e.search(fulltext.Query{User: b, Text: "one"})
	wantBodies(t, "one", bodies, "live one")
}

// Expire deletes what is due, once, and the conversation goes on: dense
// seqs after the newest message expired, a client message id free again.
func testExpireSweep(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := protocol.DirectConv(a, b)
	now := time.Now().UnixMilli()
	e.text(a, b, "kept")                       // 1
	e.timer(a, b, 1)                           // 2
	e.sentAt(a, b, "x1", "gone one", now-5000) // 3
	e.sentAt(b, a, "x2", "gone two", now-4000) // 4
	if got := e.expire(now-4500, 10); len(got) != 0 {
		t.Fatalf("Expire before anything was due: %v", got)
	}
	msgs, err := e.expirer().Expire(e.ctx, now, 10)
	if err != nil || !slices.Equal(seqsOf(msgs), []uint64{3, 4}) || string(msgs[0].Body) != "gone one" || msgs[0].ClientMsgID != "x1" {
		t.Fatalf("Expire: %+v, %v", msgs, err)
	}
	if got := e.expire(now, 10); len(got) != 0 {
		t.Fatalf("Expire again: %v, want nothing", got)
	}
	if got := e.visible(a, conv); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("after Expire: %v", got)
	}
	// The seq of the expired newest message is not reused; its client
	// message id may be sent again, as a new message.
	again := e.sentAt(a, b, "x1", "sent again", now+3_600_000)
	if again.Seq != 5 {
		t.Fatalf("seq after the newest message expired: %d, want 5", again.Seq)
	}
	if got := e.visible(b, conv); !slices.Equal(got, []uint64{1, 2, 5}) {
		t.Fatalf("visible: %v", got)
	}
	if p := e.after(b, conv, 0, 10); p.lastSeq != 5 {
		t.Fatalf("last seq %d", p.lastSeq)
	}
}

// Expire takes at most limit messages a call, earliest deadline first.
func testExpireBounded(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	now := time.Now().UnixMilli()
	e.timer(a, b, 1)
	for i := range 5 {
		e.sentAt(a, b, "", "m", now-10_000+int64(4-i)*100) // deadlines descending with seq
	}
	if got := e.expire(now, 2); !slices.Equal(got, []uint64{6, 5}) {
		t.Fatalf("Expire(limit 2): %v, want [6 5]", got)
	}
	if got := e.expire(now, 10); !slices.Equal(got, []uint64{4, 3, 2}) {
		t.Fatalf("Expire: %v, want [4 3 2]", got)
	}
	if got := e.expire(now, 0); len(got) != 0 {
		t.Fatalf("Expire(limit 0): %v", got)
	}
}

// An event expires no later than its target, and one on an expired target
// is refused.
func testExpiryEvents(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	now := time.Now().UnixMilli()
	target := e.sentAt(a, b, "t1", "target", now)
	e.timer(a, b, 60)
	edit := e.add(e.event(a, b, protocol.ContentEdit, target.Seq, "edited"))
	if edit.ExpiresAt == 0 {
		t.Fatal("an edit after the timer was set does not expire")
	}
	late := e.sentAt(a, b, "t2", "late target", now-30_000) // expires before the reaction would
	react := e.add(e.event(b, a, protocol.ContentReact, late.Seq, "👍"))
	if late.ExpiresAt == 0 || react.ExpiresAt != late.ExpiresAt {
		t.Fatalf("reaction expires at %d, its target at %d", react.ExpiresAt, late.ExpiresAt)
	}
	e.timer(a, b, 1)
	old := e.sentAt(a, b, "t3", "old", now-5000)
	e.refused(e.event(a, b, protocol.ContentEdit, old.Seq, "too late"), storage.ErrNotTarget)
	if vs, err := e.ev.EditHistory(e.ctx, target.Conv, target.Seq); err != nil || len(vs) != 2 {
		t.Fatalf("EditHistory: %v, %v", vs, err)
	}
	// Expire returns a message with its latest text (what the index holds).
	ed := e.sentAt(a, b, "t4", "first text", now+5000)
	e.add(e.event(a, b, protocol.ContentEdit, ed.Seq, "second text"))
	gone, err := e.expirer().Expire(e.ctx, now+100_000, 100)
	edited := false
	for _, m := range gone {
		edited = edited || m.Seq == ed.Seq && string(m.Body) == "second text"
	}
	if err != nil || !edited {
		t.Fatalf("Expire: %+v, %v; want seq %d with its edited text", gone, err, ed.Seq)
	}
}

// A group's timer works as a direct conversation's.
func testExpiryGroup(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	g, err := e.s.CreateGroup(e.ctx, ids[0], "expiring", false, []int64{ids[1]}, 10, time.Now())
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	conv := protocol.GroupConv(g.ID)
	tm := e.group(ids[0], g.ID, "", protocol.TimerBody(1))
	tm.ContentType = protocol.ContentTimer
	e.add(tm)
	m := e.group(ids[1], g.ID, "gx", []byte("gone"))
	m.ServerTime = time.Now().UnixMilli() - 5000
	e.add(m)
	if got := e.visible(ids[1], conv); len(got) != 1 {
		t.Fatalf("group: visible %v, want only the timer", got)
	}
	if got := e.expire(time.Now().UnixMilli(), 10); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("group Expire: %v", got)
	}
}
