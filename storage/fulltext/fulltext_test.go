package fulltext

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

func TestTerms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Hello, World!", []string{"hello", "world"}},
		{"东京-大阪 2026", []string{"东京", "大阪", "2026"}},
		{"ＡＢＣ１２", []string{"abc12"}},
		{"café naïve", []string{"café", "naïve"}},
		{" \x00\xff ", nil},
	} {
		if got := Terms(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Terms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Each rune of a term starts a gram; the last pairs with 0.
	if got := Grams("abc"); !slices.Equal(got, []Gram{gramOf('a', 'b'), gramOf('b', 'c'), gramOf('c', 0)}) {
		t.Errorf("Grams(abc) = %x", got)
	}
}

func TestPostings(t *testing.T) {
	var l []byte
	for _, seq := range []uint64{1, 127, 128, 4095, 4096 + 5} {
		l = AppendPosting(l, seq)
	}
	var set bitmap
	decodeList(l, &set)
	for _, off := range []uint64{1, 127, 128, 4095, 5} {
		if !set.has(off) {
			t.Errorf("offset %d missing", off)
		}
	}
	l = RemovePostings(l, map[uint64]bool{128: true, 5: true})
	set = bitmap{}
	decodeList(l, &set)
	if set.has(128) || set.has(5) || !set.has(127) || !set.has(4095) {
		t.Errorf("after removing 128 and 5: % x", l)
	}
	// A truncated or malformed list never panics.
	decodeList([]byte{0xff, 0xff, 0xff, 0x01, 0x80}, &set)
}

// Lists concatenated with repeats and out of order compact to their
// distinct offsets, ascending.
func TestCompactPostings(t *testing.T) {
	var l []byte
	for _, seq := range []uint64{300, 2, 4095, 2, 129, 300, 0, 4096 + 2} {
		l = AppendPosting(l, seq)
	}
	var want []byte
	for _, off := range []uint64{0, 2, 129, 300, 4095} {
		want = AppendPosting(want, off)
	}
	if got := CompactPostings(l); !bytes.Equal(got, want) {
		t.Fatalf("CompactPostings = % x, want % x", got, want)
	}
	if got := CompactPostings(nil); len(got) != 0 {
		t.Fatalf("CompactPostings(nil) = % x", got)
	}
}

// memLists is Lists in memory, with a counter of Behind calls.
type memLists struct {
	mu       sync.Mutex
	msgs     map[string][]protocol.Message
	lists    map[string]map[ListKey][]byte
	progress map[string]uint64
	behind   int
}

func newMemLists() *memLists {
	return &memLists{msgs: map[string][]protocol.Message{}, lists: map[string]map[ListKey][]byte{}, progress: map[string]uint64{}}
}

func (l *memLists) Progress(_ context.Context, conv string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.progress[conv], nil
}

func (l *memLists) Behind(context.Context) ([]Pending, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.behind++
	var out []Pending
	for conv, ms := range l.msgs {
		if last := ms[len(ms)-1].Seq; last > l.progress[conv] {
			out = append(out, Pending{conv, last})
		}
	}
	return out, nil
}

func (l *memLists) Load(_ context.Context, conv string, after uint64, n int) ([]protocol.Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.Message
	for _, m := range l.msgs[conv] {
		if m.Seq > after && len(out) < n {
			out = append(out, m)
		}
	}
	return out, nil
}

func (l *memLists) Versions(_ context.Context, conv string, seq uint64) ([]protocol.Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.Message
	for _, m := range l.msgs[conv] {
		switch {
		case m.Seq == seq:
			out = append(out, m)
		case m.Ref == seq && m.ContentType == protocol.ContentRecall:
			return nil, nil
		case m.Ref == seq && m.ContentType == protocol.ContentEdit && len(out) > 0:
			m.ContentType = out[0].ContentType
			out = append(out, m)
		}
	}
	return out, nil
}

func (l *memLists) Add(_ context.Context, conv string, postings map[ListKey][]byte, _ []FileRef, progress uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lists[conv] == nil {
		l.lists[conv] = map[ListKey][]byte{}
	}
	for k, v := range postings {
		l.lists[conv][k] = append(l.lists[conv][k], v...)
	}
	l.progress[conv] = max(l.progress[conv], progress)
	return nil
}

func (l *memLists) Remove(_ context.Context, conv string, offs map[ListKey]map[uint64]bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, o := range offs {
		if list, ok := l.lists[conv][k]; ok {
			l.lists[conv][k] = RemovePostings(list, o)
		}
	}
	return nil
}

func (l *memLists) append(n int) []protocol.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.Message
	for i := range n {
		conv := fmt.Sprintf("d:1:%d", 2+i%7)
		m := protocol.Message{Conv: conv, Seq: uint64(len(l.msgs[conv]) + 1), Body: fmt.Appendf(nil, "word%d", i)}
		l.msgs[conv] = append(l.msgs[conv], m)
		out = append(out, m)
	}
	return out
}

// Notes past the queue are dropped without blocking, and the indexer
// catches up from Behind: every message ends up indexed.
func TestIndexerOverflow(t *testing.T) {
	l := newMemLists()
	x := NewIndexer(IndexerConfig{Lists: l, Queue: 1, Chunk: 3})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil { // the start's catch-up
		t.Fatal(err)
	}
	for range 50 {
		msgs := l.append(7) // one message in each of 7 conversations
		done := make(chan struct{})
		go func() { x.Note(msgs); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("Note blocked")
		}
	}
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := x.Stats().Messages; got != 350 {
		t.Errorf("indexed %d messages, want 350", got)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.behind < 2 {
		t.Errorf("Behind called %d times: the overflow did not catch up", l.behind)
	}
	for conv, ms := range l.msgs {
		if p := l.progress[conv]; p != uint64(len(ms)) {
			t.Errorf("%s: progress %d of %d", conv, p, len(ms))
		}
	}
	if n := len(slices.Collect(maps.Keys(l.lists))); n != 7 {
		t.Errorf("lists of %d conversations, want 7", n)
	}
}

// A conversation's notes merge until the indexer takes them: however many
// batches are noted, Queue conversations never overflow, so the indexer
// never falls back to Behind after its start.
func TestIndexerNotesMerge(t *testing.T) {
	l := newMemLists()
	x := NewIndexer(IndexerConfig{Lists: l, Queue: 7, Chunk: 3, Delay: 50 * time.Millisecond})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil { // the start's catch-up
		t.Fatal(err)
	}
	for range 500 {
		x.Note(l.append(7)) // one message in each of 7 conversations
	}
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := x.Stats().Messages; got != 3500 {
		t.Errorf("indexed %d messages, want 3500", got)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.behind != 1 {
		t.Errorf("Behind called %d times, want once (the start): notes overflowed", l.behind)
	}
	for conv, ms := range l.msgs {
		if p := l.progress[conv]; p != uint64(len(ms)) {
			t.Errorf("%s: progress %d of %d", conv, p, len(ms))
		}
	}
}

// An edit is indexed under its target: the target's offset ends up in the
// lists of its latest text's grams and of no gram only earlier versions
// had, whether its edits are indexed in the chunk of the target, in one
// chunk together or each in a later one.
func TestIndexerEdits(t *testing.T) {
	for _, chunk := range []int{1, 2, 64} {
		t.Run(fmt.Sprint("chunk", chunk), func(t *testing.T) {
			l := newMemLists()
			x := NewIndexer(IndexerConfig{Lists: l, Chunk: chunk, Delay: -1})
			defer x.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conv := "d:1:2"
			add := func(ct uint16, ref uint64, body string) protocol.Message {
				l.mu.Lock()
				m := protocol.Message{Conv: conv, Seq: uint64(len(l.msgs[conv]) + 1), ContentType: ct, Ref: ref, Body: []byte(body)}
				l.msgs[conv] = append(l.msgs[conv], m)
				l.mu.Unlock()
				x.Note([]protocol.Message{m})
				return m
			}
			target := add(protocol.ContentText, 0, "apple pie")
			add(protocol.ContentText, 0, "other text")
			add(protocol.ContentEdit, 1, "banana split")
			add(protocol.ContentEdit, 1, "apple crumble")
			if err := x.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			got := map[Gram]bool{}
			for k, list := range l.lists[conv] {
				var set bitmap
				decodeList(list, &set)
				if set.has(Offset(target.Seq)) {
					got[k.Gram] = true
				}
			}
			l.mu.Unlock()
			want := map[Gram]bool{}
			for _, g := range Grams("apple crumble") {
				want[g] = true
			}
			if !maps.Equal(got, want) {
				t.Errorf("grams posted at the target: %d, want the %d of its latest text", len(got), len(want))
				for g := range got {
					if !want[g] {
						t.Errorf("stale gram %q%q", rune(g>>32), rune(uint32(g)))
					}
				}
			}
		})
	}
}
