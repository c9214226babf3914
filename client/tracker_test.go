package client

import (
	"fmt"
	"testing"

	"github.com/parleyim/parley/protocol"
)

// seqsOut takes the tracker's delivered messages as "conv:seq" strings.
func seqsOut(t *tracker) string {
	var s []string
	for _, m := range t.take(nil) {
		s = append(s, fmt.Sprintf("%s:%d", m.Conv, m.Seq))
	}
	return fmt.Sprint(s)
}

func newTestTracker() *tracker {
	tr := newTracker()
	tr.self = 1
	return tr
}

func TestTrackerInOrderAndDedupe(t *testing.T) {
	tr := newTestTracker()
	for _, seq := range []uint64{1, 2, 2, 1, 3} {
		if _, sync := tr.push(msg("c", seq)); sync {
			t.Fatalf("push %d asked for a sync", seq)
		}
	}
	if got := seqsOut(tr); got != "[c:1 c:2 c:3]" {
		t.Fatalf("delivered %s", got)
	}
	m := msg("c", 4)
	m.MsgID = msg("c", 2).MsgID
	tr.push(m)
	if got := seqsOut(tr); got != "[]" {
		t.Fatalf("seen msg_id delivered: %s", got)
	}
}

func TestTrackerGap(t *testing.T) {
	tr := newTestTracker()
	tr.push(msg("c", 1))
	from, sync := tr.push(msg("c", 4))
	if !sync || from != 1 {
		t.Fatalf("gap: sync %v from %d", sync, from)
	}
	if _, sync := tr.push(msg("c", 5)); sync {
		t.Fatal("a second sync while one runs")
	}
	// The page comes unsorted and overlaps what is held.
	next, more, _ := tr.applySync("c", 1, protocol.SyncResult{Messages: []protocol.Message{msg("c", 3), msg("c", 2), msg("c", 4)}, Next: 4})
	if more {
		t.Fatalf("more after the gap filled (next %d)", next)
	}
	if got := seqsOut(tr); got != "[c:1 c:2 c:3 c:4 c:5]" {
		t.Fatalf("delivered %s", got)
	}
	if tr.convs["c"].syncing || tr.convs["c"].held != nil {
		t.Fatalf("state after sync %+v", *tr.convs["c"])
	}
}

func TestTrackerSyncNextSkipsHidden(t *testing.T) {
	tr := newTestTracker()
	tr.push(msg("c", 6))
	tr.push(msg("c", 9))
	// 7 and 8 are hidden: the page is empty but next says they were examined.
	_, more, _ := tr.applySync("c", 6, protocol.SyncResult{Messages: []protocol.Message{}, Next: 8, LastSeq: 9})
	if more {
		t.Fatal("more after next covered the gap")
	}
	if got := seqsOut(tr); got != "[c:6 c:9]" {
		t.Fatalf("delivered %s", got)
	}
}

func TestTrackerGapLeftThenSkipped(t *testing.T) {
	tr := newTestTracker()
	tr.push(msg("c", 1))
	tr.push(msg("c", 5))
	// The server's last page ends at 2: 3 and 4 are not there yet.
	next, more, gapLeft := tr.applySync("c", 1, protocol.SyncResult{Messages: []protocol.Message{msg("c", 2)}, Next: 2})
	if !more || !gapLeft || next != 2 {
		t.Fatalf("next %d more %v gapLeft %v", next, more, gapLeft)
	}
	tr.endSync("c", true)
	if got := seqsOut(tr); got != "[c:1 c:2 c:5]" {
		t.Fatalf("delivered %s", got)
	}
	tr.push(msg("c", 6))
	if got := seqsOut(tr); got != "[c:6]" {
		t.Fatalf("after skip %s", got)
	}
}

func TestTrackerOwnSends(t *testing.T) {
	tr := newTestTracker()
	// An ack before any push: the conversation waits for a push to start.
	tr.sending("m1")
	tr.sent(protocol.SendAck{MsgID: 50, Conv: "c", Seq: 3})
	tr.push(msg("c", 1))
	tr.push(msg("c", 2)) // the peer's message, overtaken by our ack
	tr.push(msg("c", 4))
	if got := seqsOut(tr); got != "[c:1 c:2 c:4]" {
		t.Fatalf("delivered %s", got)
	}
	// Our message coming back by Sync or push is passed silently.
	tr.sending("m2")
	own := protocol.Message{MsgID: 51, Conv: "c", Seq: 5, From: 1, ClientMsgID: "m2"}
	tr.push(own)
	tr.push(msg("c", 6))
	if got := seqsOut(tr); got != "[c:6]" {
		t.Fatalf("delivered %s", got)
	}
	// An ack ahead of the conversation is held silently.
	tr.sent(protocol.SendAck{MsgID: 52, Conv: "c", Seq: 8})
	tr.push(msg("c", 7))
	tr.push(msg("c", 9))
	if got := seqsOut(tr); got != "[c:7 c:9]" {
		t.Fatalf("delivered %s", got)
	}
}

func TestTrackerPlan(t *testing.T) {
	tr := newTestTracker()
	for seq := uint64(1); seq <= 4; seq++ {
		tr.push(msg("known", seq))
	}
	tr.push(msg("behind", 1))
	tr.push(msg("behind", 2))
	tr.take(nil)
	tr.planning = true
	tr.push(msg("new", 9)) // held until the plan
	list := []protocol.Conversation{
		{Conv: "known", LastSeq: 6, AckSeq: 2},
		{Conv: "behind", LastSeq: 8, AckSeq: 5}, // read elsewhere up to 5
		{Conv: "new", LastSeq: 9, AckSeq: 7},
		{Conv: "idle", LastSeq: 3, AckSeq: 3},
	}
	got := tr.plan(list, true, true, true)
	if fmt.Sprint(got) != "[behind known new]" {
		t.Fatalf("plan %v", got)
	}
	for conv, last := range map[string]uint64{"known": 4, "behind": 5, "new": 7, "idle": 3} {
		if st := tr.convs[conv]; st == nil || st.last != last {
			t.Fatalf("%s starts at %+v, want %d", conv, st, last)
		}
	}
	// Without SyncOnLogin only known conversations are caught up, and an
	// incomplete list means the unlisted ones are synced too.
	tr2 := newTestTracker()
	for seq := uint64(1); seq <= 4; seq++ {
		tr2.push(msg("known", seq))
	}
	tr2.push(msg("unlisted", 1))
	got = tr2.plan([]protocol.Conversation{{Conv: "known", LastSeq: 4}, {Conv: "other", LastSeq: 9}}, true, false, false)
	if fmt.Sprint(got) != "[unlisted]" || tr2.convs["other"] != nil {
		t.Fatalf("plan %v, convs %v", got, tr2.convs)
	}
}

// A conversation new to this client starts at 0: a first push above seq 1
// asks for a Sync from 0, so a push that overtook an earlier one loses
// nothing.
func TestTrackerNewConversationSyncsFromZero(t *testing.T) {
	tr := newTestTracker()
	from, sync := tr.push(msg("c", 3))
	if !sync || from != 0 {
		t.Fatalf("first push at seq 3: sync %v from %d, want a Sync from 0", sync, from)
	}
	if got := seqsOut(tr); got != "[]" {
		t.Fatalf("delivered %s before the sync", got)
	}
	_, more, _ := tr.applySync("c", 0, protocol.SyncResult{Conv: "c", Messages: []protocol.Message{msg("c", 1), msg("c", 2)}, Next: 2, LastSeq: 3})
	tr.endSync("c", false)
	if got := seqsOut(tr); got != "[c:1 c:2 c:3]" || more {
		t.Fatalf("after the sync: delivered %s, more %v", got, more)
	}
}

func TestTrackerHoldLimit(t *testing.T) {
	tr := newTestTracker()
	tr.push(msg("c", 1))
	for seq := uint64(3); seq < 3+maxHeld+10; seq++ {
		tr.push(msg("c", seq))
	}
	st := tr.convs["c"]
	if len(st.held) != maxHeld || !st.overflow {
		t.Fatalf("held %d overflow %v", len(st.held), st.overflow)
	}
	// The page fills the gap, but what overflowed needs another round.
	_, more, gapLeft := tr.applySync("c", 1, protocol.SyncResult{Messages: []protocol.Message{msg("c", 2)}})
	if !more || !gapLeft {
		t.Fatal("overflow did not ask for another sync")
	}
	if st.last != 2+maxHeld {
		t.Fatalf("last %d", st.last)
	}
}

func TestIDSet(t *testing.T) {
	s := newIDSet[int](3)
	for i := range 5 {
		s.add(i)
		s.add(i)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if s.has(i) != want {
			t.Fatalf("has(%d) = %v", i, !want)
		}
	}
}
