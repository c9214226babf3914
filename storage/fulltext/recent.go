package fulltext

import (
	"slices"
	"sync"

	"github.com/parleyim/parley/protocol"
)

// DefaultRecentBytes is IndexerConfig.Recent when zero.
const DefaultRecentBytes = 4 << 20

// recentOverhead is what one buffered message counts besides its body: its
// entry and its share of the slices and map that hold it.
const recentOverhead = 64

// recentMsg is a committed message as the indexer needs it.
type recentMsg struct {
	seq, ref uint64
	ct       uint16
	body     []byte // the committed message's own: bodies never change
}

func (m *recentMsg) cost() int64 { return int64(len(m.body)) + recentOverhead }

// recent holds committed messages not yet indexed, per conversation in seq
// order, so the indexer takes them without reading them back from the
// store; at most max bytes (bodies plus recentOverhead each). It is only a
// shortcut: a message it does not hold (past the bound, dropped by an
// invalidation) is read from the store, and it hands out only a run of
// messages that follows the conversation's progress without a gap, so
// what it gives is what the store would.
//
// Its text must be the text the store holds: a batch with a recall or an
// edit drops its conversation's messages (and holds none of that batch's
// of the conversation), and so does Indexer.Remove.
type recent struct {
	mu    sync.Mutex
	max   int64
	size  int64
	convs map[string][]recentMsg
	// free holds emptied arrays for the next conversations to fill, so
	// that each pass does not grow every conversation's slice from
	// nothing again (at most maxFreeArrays, of at most maxFreeCap).
	free [][]recentMsg
}

const (
	maxFreeArrays = 32
	maxFreeCap    = 256
)

func newRecent(max int64) *recent {
	return &recent{max: max, convs: make(map[string][]recentMsg)}
}

// add takes msgs, committed, in commit order; it keeps their bodies, not
// the slice.
func (r *recent) add(msgs []protocol.Message) {
	if r.max <= 0 {
		return
	}
	var changed map[string]bool // conversations of which a batch changes earlier text
	for i := range msgs {
		if ct := msgs[i].ContentType; ct == protocol.ContentRecall || ct == protocol.ContentEdit {
			if changed == nil {
				changed = make(map[string]bool)
			}
			changed[msgs[i].Conv] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for conv := range changed {
		r.dropLocked(conv, ^uint64(0))
	}
	for i := range msgs {
		m := &msgs[i]
		if changed[m.Conv] {
			continue
		}
		if r.size+int64(len(m.Body))+recentOverhead > r.max {
			continue // past the bound: the store has it
		}
		l := r.convs[m.Conv]
		if l == nil && len(r.free) > 0 {
			l, r.free = r.free[len(r.free)-1], r.free[:len(r.free)-1]
		}
		if n := len(l); n > 0 && l[n-1].seq >= m.Seq {
			continue // not in order (never from one writer): left to the store
		}
		e := recentMsg{seq: m.Seq, ref: m.Ref, ct: m.ContentType, body: m.Body}
		r.convs[m.Conv] = append(l, e)
		r.size += e.cost()
	}
}

// take removes conv's messages above after, at most n, and appends them to
// dst, when it holds the one right after after and as far as they follow
// each other without a gap; otherwise it appends none. It drops those at or
// below after.
func (r *recent) take(dst []protocol.Message, conv string, after uint64, n int) []protocol.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(conv, after)
	l := r.convs[conv]
	if len(l) == 0 || l[0].seq != after+1 {
		return dst
	}
	k := 1
	for k < len(l) && k < n && l[k].seq == l[k-1].seq+1 {
		k++
	}
	start := len(dst)
	dst = slices.Grow(dst, k)[:start+k]
	out := dst[start:]
	for i := range out {
		e := &l[i]
		out[i] = protocol.Message{Conv: conv, Seq: e.seq, Ref: e.ref, ContentType: e.ct, Body: e.body}
		r.size -= e.cost()
		*e = recentMsg{} // the array outlives the entry: let the body go
	}
	r.keepLocked(conv, l, k)
	return dst
}

// drop removes conv's messages at or below seq.
func (r *recent) drop(conv string, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(conv, seq)
}

func (r *recent) dropLocked(conv string, seq uint64) {
	l, ok := r.convs[conv]
	if !ok {
		return
	}
	k := 0
	for k < len(l) && l[k].seq <= seq {
		r.size -= l[k].cost()
		l[k] = recentMsg{}
		k++
	}
	r.keepLocked(conv, l, k)
}

// keepLocked keeps conv's messages after the first k of l, which are
// cleared; an array left empty goes to the free list.
func (r *recent) keepLocked(conv string, l []recentMsg, k int) {
	if k < len(l) {
		r.convs[conv] = l[k:]
		return
	}
	delete(r.convs, conv)
	if c := cap(l); c > 0 && c <= maxFreeCap && len(r.free) < maxFreeArrays {
		r.free = append(r.free, l[:0])
	}
}

// pending returns each conversation held with its newest message held.
func (r *recent) pending() []Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Pending, 0, len(r.convs))
	for conv, l := range r.convs {
		out = append(out, Pending{conv, l[len(l)-1].seq})
	}
	return out
}

// bytes returns what the buffer counts against its bound now.
func (r *recent) bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size
}
