package fulltext

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"math"
	"slices"
	"strings"

	"github.com/parleyim/parley/protocol"
)

// Errors of Search, matched with errors.Is.
var (
	// ErrEmptyQuery: the query has no letters or digits.
	ErrEmptyQuery = errors.New("fulltext: query has no terms")
	// ErrTooBroad: the search read MaxReads messages without filling one
	// result; a longer query finds fewer candidates.
	ErrTooBroad = errors.New("fulltext: query too broad")
)

// Membership is a conversation a user may read: messages with seq above
// Cleared (below it the user joined later, or cleared the history), up to
// Last, the conversation's newest.
type Membership struct {
	Conv          string
	Cleared, Last uint64
	LastTime      int64 // server time of the newest message; 0 if unknown
}

// Source is what a search reads of a store. Each call may read a different
// moment of the store; a search tolerates that (a message gone between two
// calls is simply not found).
type Source interface {
	// Memberships lists the conversations user may read.
	Memberships(ctx context.Context, user int64) ([]Membership, error)
	// Lists returns for each range the posting lists of conv's bucket whose
	// gram is in the range, concatenated (nil when there is none).
	Lists(ctx context.Context, conv string, bucket uint64, ranges []GramRange) ([][]byte, error)
	// Messages returns those messages of conv with the given seqs that exist
	// and that user has not hidden, in any order, each as History shows it:
	// with its Meta folded in (an edited message has its latest body, a
	// recalled one none).
	Messages(ctx context.Context, user int64, conv string, seqs []uint64) ([]protocol.Message, error)
}

// ListReq names one bucket of a conversation.
type ListReq struct {
	Conv   string
	Bucket uint64
}

// BatchSource is the optional ability of a Source to read many
// conversations at once: a store a round trip away (MySQL) has it, so a
// search over a user's conversations starts with two round trips, not two
// per conversation.
type BatchSource interface {
	// ListsMany is Lists for each request: out[i][j] is the lists of
	// reqs[i] in ranges[j].
	ListsMany(ctx context.Context, reqs []ListReq, ranges []GramRange) ([][][]byte, error)
	// MessagesMany is Messages for several conversations: seqs maps a
	// conversation to the seqs wanted.
	MessagesMany(ctx context.Context, user int64, seqs map[string][]uint64) ([]protocol.Message, error)
}

// Cursor is a place in the order of results: newest first by server time,
// then by conversation id, then by seq, newest first. The zero Cursor is
// before the newest result.
type Cursor struct {
	Time int64
	Conv string
	Seq  uint64
}

// IsZero reports whether c is the start.
func (c Cursor) IsZero() bool { return c.Conv == "" }

// CursorOf is the cursor right after m.
func CursorOf(m *protocol.Message) Cursor { return Cursor{m.ServerTime, m.Conv, m.Seq} }

// after reports whether m comes after c in the order of results.
func (c Cursor) after(m *protocol.Message) bool {
	switch {
	case c.IsZero():
		return true
	case m.Conv == c.Conv:
		return m.Seq < c.Seq
	case m.ServerTime != c.Time:
		return m.ServerTime < c.Time
	}
	return m.Conv > c.Conv
}

// Query is one search.
type Query struct {
	User   int64
	Text   string
	Conv   string // only this conversation; "" for all of the user's
	Before Cursor // results after this cursor; zero for the newest
	Limit  int    // results per page, at least 1
	// MaxReads bounds the work: messages and posting lists read. 0 means
	// DefaultMaxReads.
	MaxReads int
}

// DefaultMaxReads is Query.MaxReads when zero.
const DefaultMaxReads = 4000

// Page is a page of results, newest first. More says whether there may be
// more after Next, the cursor for the next page.
type Page struct {
	Messages []protocol.Message
	Next     Cursor
	More     bool
}

// chunk is how many candidates a stream checks at a time.
const chunk = 32

// Search finds the messages user may read that hold every term of q.Text
// (as part of a word or a whole one), newest first.
func Search(ctx context.Context, src Source, q Query) (Page, error) {
	terms := Terms(q.Text)
	if len(terms) == 0 {
		return Page{}, ErrEmptyQuery
	}
	slices.Sort(terms)
	terms = slices.Compact(terms)
	if q.MaxReads <= 0 {
		q.MaxReads = DefaultMaxReads
	}
	q.Limit = max(q.Limit, 1)
	ms, err := src.Memberships(ctx, q.User)
	if err != nil {
		return Page{}, err
	}
	s := &searcher{src: src, q: q, terms: terms, ranges: queryRanges(terms)}
	// The streams merge lazily: a stream not read yet stands in the heap at
	// its bound, the time of its newest message, and is read only when that
	// bound is the highest left; so a conversation whose newest message is
	// older than a full page costs nothing.
	var h streams
	for _, m := range ms {
		if q.Conv != "" && m.Conv != q.Conv {
			continue
		}
		upper := m.Last + 1
		if q.Before.Conv == m.Conv {
			upper = min(upper, q.Before.Seq)
		}
		if upper <= m.Cleared+1 {
			continue
		}
		bound := m.LastTime
		if bound == 0 {
			bound = math.MaxInt64
		}
		h = append(h, &stream{m: m, upper: upper, next: Bucket(upper - 1), low: Bucket(m.Cleared + 1), bound: bound})
	}
	if bs, ok := src.(BatchSource); ok && len(h) > 1 {
		if err := s.prime(ctx, bs, h); err != nil {
			return s.cut(err)
		}
		live := h[:0]
		for _, st := range h {
			if len(st.ready) > 0 || len(st.cands) > 0 || !st.done {
				live = append(live, st)
			}
		}
		h = live
	}
	heap.Init(&h)
	for h.Len() > 0 {
		st := h[0]
		if len(st.ready) == 0 {
			if err := s.fill(ctx, st); err != nil {
				return s.cut(err)
			}
			if len(st.ready) == 0 {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
			continue
		}
		if len(s.out) == q.Limit {
			s.more = true
			break
		}
		m := st.ready[0]
		s.out = append(s.out, m)
		st.ready = st.ready[1:]
		st.bound = m.ServerTime // the rest of the stream is no newer
		heap.Fix(&h, 0)
	}
	p := Page{Messages: s.out, More: s.more}
	if len(s.out) > 0 {
		p.Next = CursorOf(&s.out[len(s.out)-1])
	}
	return p, nil
}

type searcher struct {
	src    Source
	q      Query
	terms  []string
	ranges []GramRange
	reads  int
	out    []protocol.Message
	more   bool
}

// errBudget ends a search that has read MaxReads.
var errBudget = errors.New("fulltext: read budget spent")

// cut ends a search early: with the results so far when the budget ran out
// after some, else with err.
func (s *searcher) cut(err error) (Page, error) {
	if !errors.Is(err, errBudget) {
		return Page{}, err
	}
	if len(s.out) == 0 {
		return Page{}, ErrTooBroad
	}
	return Page{Messages: s.out, Next: CursorOf(&s.out[len(s.out)-1]), More: true}, nil
}

// stream is one conversation's matches, newest first.
type stream struct {
	m         Membership
	upper     uint64 // seqs below this
	next, low uint64 // buckets left to read: next down to low
	done      bool   // every bucket read
	cands     []uint64
	ready     []protocol.Message // checked matches, seq descending
	bound     int64              // no match left is newer (while ready is empty)
	reads     int                // chunks read
}

// fill reads until st has a checked match or none is left.
func (s *searcher) fill(ctx context.Context, st *stream) error {
	for len(st.ready) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(st.cands) == 0 {
			if st.done {
				return nil
			}
			if err := s.loadBucket(ctx, st); err != nil {
				return err
			}
			continue
		}
		seqs := st.chunkOf()
		if s.reads += len(seqs); s.reads > s.q.MaxReads {
			return errBudget
		}
		msgs, err := s.src.Messages(ctx, s.q.User, st.m.Conv, seqs)
		if err != nil {
			return err
		}
		s.check(st, msgs)
	}
	return nil
}

// loadBucket turns st's next bucket into candidates.
func (s *searcher) loadBucket(ctx context.Context, st *stream) error {
	b := st.takeBucket()
	if s.reads++; s.reads > s.q.MaxReads {
		return errBudget
	}
	lists, err := s.src.Lists(ctx, st.m.Conv, b, s.ranges)
	if err != nil {
		return err
	}
	st.candidates(b, lists)
	return nil
}

// takeBucket returns the next bucket to read.
func (st *stream) takeBucket() uint64 {
	b := st.next
	if b == st.low {
		st.done = true
	} else {
		st.next--
	}
	return b
}

// candidates sets the candidates of bucket b from its lists, one per range.
func (st *stream) candidates(b uint64, lists [][]byte) {
	var set, one bitmap
	for i, l := range lists {
		if len(l) == 0 {
			return
		}
		if i == 0 {
			decodeList(l, &set)
			continue
		}
		one = bitmap{}
		decodeList(l, &one)
		set.and(&one)
	}
	base := b << BucketBits
	for w := len(set) - 1; w >= 0; w-- {
		if set[w] == 0 {
			continue
		}
		for bit := 63; bit >= 0; bit-- {
			if set[w]&(1<<bit) == 0 {
				continue
			}
			seq := base + uint64(w*64+bit)
			if seq < st.upper && seq > st.m.Cleared {
				st.cands = append(st.cands, seq)
			}
		}
	}
}

// check keeps those of msgs (read for st's candidates) that match.
func (s *searcher) check(st *stream, msgs []protocol.Message) {
	slices.SortFunc(msgs, func(a, b protocol.Message) int { return cmp.Compare(b.Seq, a.Seq) })
	for _, m := range msgs {
		if s.matches(&m) {
			st.ready = append(st.ready, m)
		}
	}
}

// chunkOf takes st's next chunk of candidates. Chunks grow: 2, 8, then 32
// candidates. Most candidates match, and most streams give a page one or
// two results.
func (st *stream) chunkOf() []uint64 {
	n := min(chunk>>(4-2*min(st.reads, 2)), len(st.cands))
	st.reads++
	seqs := st.cands[:n]
	st.cands = st.cands[n:]
	return seqs
}

// prime reads, for every stream at once, its newest bucket and first chunk
// of candidates: two calls of a BatchSource instead of two per stream.
func (s *searcher) prime(ctx context.Context, bs BatchSource, sts []*stream) error {
	reqs := make([]ListReq, len(sts))
	for i, st := range sts {
		reqs[i] = ListReq{Conv: st.m.Conv, Bucket: st.takeBucket()}
	}
	if s.reads += len(sts); s.reads > s.q.MaxReads {
		return errBudget
	}
	lists, err := bs.ListsMany(ctx, reqs, s.ranges)
	if err != nil {
		return err
	}
	seqs := make(map[string][]uint64)
	n := 0
	for i, st := range sts {
		st.candidates(reqs[i].Bucket, lists[i])
		if len(st.cands) > 0 {
			seqs[st.m.Conv] = st.chunkOf()
			n += len(seqs[st.m.Conv])
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	if s.reads += n; s.reads > s.q.MaxReads {
		return errBudget
	}
	msgs, err := bs.MessagesMany(ctx, s.q.User, seqs)
	if err != nil {
		return err
	}
	byConv := make(map[string][]protocol.Message)
	for _, m := range msgs {
		byConv[m.Conv] = append(byConv[m.Conv], m)
	}
	for _, st := range sts {
		s.check(st, byConv[st.m.Conv])
	}
	return nil
}

// matches checks a candidate against its stored text and the cursor.
func (s *searcher) matches(m *protocol.Message) bool {
	if m.Seq <= 0 || !s.q.Before.after(m) {
		return false
	}
	text := Folded(Text(m))
	for _, t := range s.terms {
		if !strings.Contains(text, t) {
			return false
		}
	}
	return true
}

// streams is a heap of streams by their next match, in the order of
// results; a stream with no match read stands at its bound, before a read
// match of the same time.
type streams []*stream

func (h streams) Len() int { return len(h) }
func (h streams) Less(i, j int) bool {
	x, y := h[i], h[j]
	xt, yt := x.bound, y.bound
	if len(x.ready) > 0 {
		xt = x.ready[0].ServerTime
	}
	if len(y.ready) > 0 {
		yt = y.ready[0].ServerTime
	}
	if xt != yt {
		return xt > yt
	}
	if (len(x.ready) == 0) != (len(y.ready) == 0) {
		return len(x.ready) == 0
	}
	if len(x.ready) == 0 {
		return x.m.Conv < y.m.Conv
	}
	a, b := &x.ready[0], &y.ready[0]
	if a.Conv != b.Conv {
		return a.Conv < b.Conv
	}
	return a.Seq > b.Seq
}
func (h streams) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *streams) Push(x any)   { *h = append(*h, x.(*stream)) }
func (h *streams) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
