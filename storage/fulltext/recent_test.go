package fulltext

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// commit stores m in conv's sequence as a store's writer does (a recall
// blanks its target) and returns it as committed.
func (l *memLists) commit(conv string, ct uint16, ref uint64, body string) protocol.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := protocol.Message{Conv: conv, Seq: uint64(len(l.msgs[conv]) + 1), ContentType: ct, Ref: ref, Body: []byte(body)}
	if ct == protocol.ContentRecall {
		for i := range l.msgs[conv] {
			if t := &l.msgs[conv][i]; t.Seq == ref || (t.Ref == ref && t.ContentType == protocol.ContentEdit) {
				t.Body = nil
			}
		}
	}
	l.msgs[conv] = append(l.msgs[conv], m)
	return m
}

// versions returns every version of conv's message seq as the index may
// hold it (for Remove).
func (l *memLists) versions(conv string, seq uint64) []protocol.Message {
	vs, _ := l.Versions(context.Background(), conv, seq)
	for i := range vs {
		vs[i].Seq = seq
	}
	return vs
}

// postings returns the index as sets of offsets per conversation and list,
// leaving out empty lists (pieces and their order apart).
func (l *memLists) postings() map[string]map[ListKey]bitmap {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]map[ListKey]bitmap)
	for conv, lists := range l.lists {
		for k, list := range lists {
			var set bitmap
			decodeList(list, &set)
			if set == (bitmap{}) {
				continue
			}
			if out[conv] == nil {
				out[conv] = make(map[ListKey]bitmap)
			}
			out[conv][k] = set
		}
	}
	return out
}

// readPath indexes what l stores from scratch, reading every message back
// (no messages held): the reference the held path must match.
func readPath(t *testing.T, l *memLists) map[string]map[ListKey]bitmap {
	t.Helper()
	ref := newMemLists()
	l.mu.Lock()
	for conv, ms := range l.msgs {
		ref.msgs[conv] = append([]protocol.Message(nil), ms...)
	}
	l.mu.Unlock()
	x := NewIndexer(IndexerConfig{Lists: ref, Recent: -1, Chunk: 16, Delay: -1})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := x.Stats(); st.Loaded != st.Messages {
		t.Fatalf("reference: %d of %d messages read back", st.Loaded, st.Messages)
	}
	return ref.postings()
}

// The indexer indexes noted messages it holds as it would read them back:
// the same index as the read path, with an edit and with recalls that
// reach the store before the indexer (told by the recall's note or by
// Remove alone), and never more held bytes than its bound.
func TestIndexerRecent(t *testing.T) {
	l := newMemLists()
	const bound = 4096
	// The indexer gathers for an hour: nothing is indexed before Flush.
	x := NewIndexer(IndexerConfig{Lists: l, Recent: bound, Chunk: 8, Delay: time.Hour})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	note := func(ms ...protocol.Message) {
		x.Note(ms)
		for i := range ms {
			ms[i] = protocol.Message{Body: []byte("reused by the writer")} // the slice, not the bodies
		}
	}
	for i := range 40 {
		var batch []protocol.Message
		for _, conv := range []string{"d:1:2", "d:1:3", "d:1:4", "d:1:5"} {
			batch = append(batch, l.commit(conv, protocol.ContentText, 0, fmt.Sprintf("word%d %s apple", i, conv)))
		}
		note(batch...)
		if n := x.recent.bytes(); n > bound {
			t.Fatalf("%d bytes held, bound %d", n, bound)
		}
	}
	if n := x.recent.bytes(); n < bound/2 {
		t.Fatalf("%d bytes held of %d: the buffer is not used", n, bound)
	}
	// An edit of d:1:2's 3rd message.
	note(l.commit("d:1:2", protocol.ContentEdit, 3, "banana split"))
	// d:1:3's 2nd message is recalled; its recall noted, Remove not yet.
	note(l.commit("d:1:3", protocol.ContentRecall, 2, ""))
	// d:1:4's 5th message is recalled; Remove comes, the recall's note not
	// yet (the store changed first, as Remove's contract asks).
	gone := l.versions("d:1:4", 5)
	l.commit("d:1:4", protocol.ContentRecall, 5, "")
	if err := x.Remove(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := x.Stats()
	if st.Messages != 163 || st.Loaded == 0 || st.Loaded == st.Messages {
		t.Errorf("indexed %d messages (want 163), %d read back: want some held and some read", st.Messages, st.Loaded)
	}
	got, want := l.postings(), readPath(t, l)
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("the held path's index differs from the read path's")
	}
	for _, c := range []struct {
		conv string
		seq  uint64
	}{{"d:1:3", 2}, {"d:1:4", 5}} {
		for k, set := range got[c.conv] {
			if k.Bucket == Bucket(c.seq) && set.has(Offset(c.seq)) {
				t.Errorf("%s: recalled message %d indexed", c.conv, c.seq)
				break
			}
		}
	}
	if n := x.recent.bytes(); n != 0 {
		t.Errorf("%d bytes held after the flush", n)
	}
}

// A writer notes batches while the indexer runs, with edits and recalls
// (each recall noted, then Remove with every version, as the server does):
// the index ends as the read path's, however the two interleave.
func TestIndexerRecentRace(t *testing.T) {
	l := newMemLists()
	x := NewIndexer(IndexerConfig{Lists: l, Recent: 8 << 10, Chunk: 16, Delay: -1})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"apple", "banana", "cherry", "damson", "elder", "fig"}
	var wg sync.WaitGroup
	for i := range 400 {
		var batch []protocol.Message
		var removes []protocol.Message
		for range 1 + rng.IntN(8) {
			conv := fmt.Sprintf("d:1:%d", 2+rng.IntN(5))
			l.mu.Lock()
			n := uint64(len(l.msgs[conv]))
			l.mu.Unlock()
			switch r := rng.IntN(20); {
			case r == 0 && n > 0:
				seq := 1 + rng.Uint64N(n)
				if vs := l.versions(conv, seq); len(vs) > 0 && vs[0].ContentType == protocol.ContentText {
					batch = append(batch, l.commit(conv, protocol.ContentEdit, seq, words[rng.IntN(len(words))]+" edited"))
				}
			case r == 1 && n > 0:
				seq := 1 + rng.Uint64N(n)
				if vs := l.versions(conv, seq); len(vs) > 0 && vs[0].ContentType == protocol.ContentText {
					removes = append(removes, vs...)
					batch = append(batch, l.commit(conv, protocol.ContentRecall, seq, ""))
				}
			default:
				batch = append(batch, l.commit(conv, protocol.ContentText, 0, fmt.Sprintf("%s %d", words[rng.IntN(len(words))], i)))
			}
		}
		x.Note(batch)
		if len(removes) > 0 {
			wg.Go(func() {
				if err := x.Remove(ctx, removes); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// How many were held depends on how the indexer kept up (a starved
	// one finds them invalidated): TestIndexerRecent checks that they are.
	st := x.Stats()
	t.Logf("%d messages indexed, %d read back", st.Messages, st.Loaded)
	if got, want := l.postings(), readPath(t, l); !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("the held path's index differs from the read path's")
	}
}

// batchLists is memLists with AddBatch, counting the writes.
type batchLists struct {
	*memLists
	adds, batches, convs int
}

func (l *batchLists) Add(ctx context.Context, conv string, postings map[ListKey][]byte, refs []FileRef, progress uint64) error {
	l.mu.Lock()
	l.adds++
	l.mu.Unlock()
	return l.memLists.Add(ctx, conv, postings, refs, progress)
}

func (l *batchLists) AddBatch(ctx context.Context, ws []Write) error {
	l.mu.Lock()
	l.batches++
	l.convs += len(ws)
	seen := map[string]bool{}
	for _, w := range ws {
		if seen[w.Conv] {
			l.mu.Unlock()
			return fmt.Errorf("%s twice in one batch", w.Conv)
		}
		seen[w.Conv] = true
	}
	l.mu.Unlock()
	for _, w := range ws {
		if err := l.memLists.Add(ctx, w.Conv, w.Postings, w.Refs, w.Progress); err != nil {
			return err
		}
	}
	return nil
}

// Lists that can batch get a pass's conversations in a few AddBatch calls,
// not one Add each, and the index ends as the read path's (an edit, a
// recall, conversations needing several chunks).
func TestIndexerBatch(t *testing.T) {
	l := &batchLists{memLists: newMemLists()}
	x := NewIndexer(IndexerConfig{Lists: l, Chunk: 4, Delay: time.Hour})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const convs = 150
	for i := range 3 {
		var batch []protocol.Message
		for c := range convs {
			conv := fmt.Sprintf("d:1:%d", 2+c)
			batch = append(batch, l.commit(conv, protocol.ContentText, 0, fmt.Sprintf("word%d apple", i)))
			if c < 3 {
				batch = append(batch, l.commit(conv, protocol.ContentText, 0, "cherry pie"), l.commit(conv, protocol.ContentText, 0, "damson jam"))
			}
		}
		x.Note(batch)
	}
	x.Note([]protocol.Message{l.commit("d:1:2", protocol.ContentEdit, 2, "banana split")})
	gone := l.versions("d:1:3", 1)
	x.Note([]protocol.Message{l.commit("d:1:3", protocol.ContentRecall, 1, "")})
	if err := x.Remove(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	adds, batches, written := l.adds, l.batches, l.convs
	for conv, ms := range l.msgs {
		if p := l.progress[conv]; p != uint64(len(ms)) {
			t.Errorf("%s: progress %d of %d", conv, p, len(ms))
		}
	}
	l.mu.Unlock()
	// 150 conversations, 64 a batch: 3 batches a round; the 3 with 9 or
	// 10 messages take 3 rounds of chunks of 4.
	if batches > 9 || adds > 3 || written < convs {
		t.Errorf("%d batches of %d conversations in all and %d single adds for %d conversations", batches, written, adds, convs)
	}
	if got, want := l.postings(), readPath(t, l.memLists); !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("the batched index differs from the read path's")
	}
}

// A conversation's messages taken leave its array for the next
// conversation to fill: a steady flow through the buffer does not grow
// every conversation's slice from nothing on every pass.
func TestRecentReusesArrays(t *testing.T) {
	r := newRecent(1 << 20)
	msgs := make([]protocol.Message, 100)
	dst := make([]protocol.Message, 0, len(msgs))
	pass := func(conv string) {
		for i := range msgs {
			msgs[i] = protocol.Message{Conv: conv, Seq: uint64(i + 1)} // no body: no copy to allocate
		}
		r.add(msgs)
		if got := r.take(dst[:0], conv, 0, len(msgs)); len(got) != len(msgs) {
			t.Fatalf("took %d of %d", len(got), len(msgs))
		}
	}
	pass("a") // the first array
	convs := []string{"b", "c"}
	n := 0
	if allocs := testing.AllocsPerRun(20, func() { pass(convs[n%2]); n++ }); allocs != 0 {
		t.Fatalf("%.1f allocations a pass; want none", allocs)
	}
	if r.bytes() != 0 || len(r.free) != 1 {
		t.Fatalf("after the passes: %d bytes held, %d free arrays", r.bytes(), len(r.free))
	}
}
