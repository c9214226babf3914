package fulltext

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

func TestRest(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct{ work, since, delay, want time.Duration }{
		{2 * ms, 0, 100 * ms, paceRatio * 2 * ms}, // paceRatio times the work
		{2 * ms, 98 * ms, 100 * ms, 2 * ms},       // not past the delay
		{2 * ms, 100 * ms, 100 * ms, 0},           // a pass as old as the delay goes flat out
		{2 * ms, 250 * ms, 100 * ms, 0},           // and one older
		{0, 10 * ms, 100 * ms, 0},                 // no work, no rest
	} {
		if got := rest(c.work, c.since, c.delay); got != c.want {
			t.Errorf("rest(%v, %v, %v) = %v; want %v", c.work, c.since, c.delay, got, c.want)
		}
	}
}

// slowLists takes a while over each Add, as a store's write does.
type slowLists struct {
	*memLists
	add time.Duration
}

func (l slowLists) Add(ctx context.Context, conv string, postings map[ListKey][]byte, refs []FileRef, progress uint64) error {
	for t0 := time.Now(); time.Since(t0) < l.add; {
		// Busy, as a write's CPU is.
	}
	return l.memLists.Add(ctx, conv, postings, refs, progress)
}

// A pass rests between its conversations, paceRatio times the work of each,
// within the gather delay; a Flush ends the rests, and every message is
// indexed either way.
func TestIndexerPacesPasses(t *testing.T) {
	l := newMemLists()
	x := NewIndexer(IndexerConfig{Lists: slowLists{l, 2 * time.Millisecond}, Delay: 50 * time.Millisecond})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Ten conversations a round: a pass of about 20 ms of work.
	note := func(round int) {
		var msgs []protocol.Message
		l.mu.Lock()
		for c := range 10 {
			conv := fmt.Sprintf("d:1:%d", 100+c)
			m := protocol.Message{Conv: conv, Seq: uint64(len(l.msgs[conv]) + 1), Body: fmt.Appendf(nil, "round%d", round)}
			l.msgs[conv] = append(l.msgs[conv], m)
			msgs = append(msgs, m)
		}
		l.mu.Unlock()
		x.Note(msgs)
	}
	note(0)
	for x.Stats().Messages < 10 { // indexed by the pass, not by a Flush
		if ctx.Err() != nil {
			t.Fatal("the pass did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := x.Stats()
	if st.Rested <= 0 {
		t.Fatalf("no rest in a pass of %v work", st.Busy)
	}
	// (A piece's work, timed around it, is a little more than its Busy.)
	if st.Rested > 2*paceRatio*st.Busy || st.Rested > 50*time.Millisecond {
		t.Fatalf("rested %v for %v of work: far more than %d times it, or past the delay", st.Rested, st.Busy, paceRatio)
	}
	// A Flush, perhaps while a pass rests: everything is indexed.
	note(1)
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := x.Stats().Messages; got != 20 {
		t.Fatalf("indexed %d messages after the Flush; want 20", got)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range 10 {
		if p := l.progress[fmt.Sprintf("d:1:%d", 100+c)]; p != 2 {
			t.Errorf("conversation %d: progress %d; want 2", c, p)
		}
	}
}
