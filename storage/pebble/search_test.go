package pebble

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/fulltext"
)

// An index that never reached the disk (a crash between a message batch and
// the index batch after it) is rebuilt at the next start from the messages
// and the per-conversation progress alone.
func TestSearchCatchUp(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	ctx := context.Background()
	const n = 300
	for i := range n {
		peer := int64(2 + i%3)
		m := &protocol.Message{MsgID: int64(i + 1), Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
			Body: fmt.Appendf(nil, "harbour log %d", i), ServerTime: int64(i + 1)}
		if _, _, err := s.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Take the index away, as if its batches had been lost.
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []byte{tPosting, tSegment, tProgress} {
		if err := db.DeleteRange([]byte{table}, []byte{table + 1}, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	if err := s.IndexFlush(ctx); err != nil {
		t.Fatal(err)
	}
	seen := 0
	q := fulltext.Query{User: 1, Text: "harbour", Limit: 100}
	for {
		p, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(p.Messages)
		if !p.More {
			break
		}
		q.Before = p.Next
	}
	if seen != n {
		t.Fatalf("found %d messages after the catch-up, want %d", seen, n)
	}
	if got := s.idx.Stats().Messages; got != n {
		t.Errorf("indexed %d messages at start, want %d", got, n)
	}
}

// lists reads conv's lists of bucket in ranges as a search does.
func lists(t *testing.T, s *Store, conv string, bucket uint64, ranges ...fulltext.GramRange) [][]byte {
	t.Helper()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	got, err := searchView{v: view{s: s, snap: snap}}.Lists(context.Background(), conv, bucket, ranges)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// segmentCount counts the segments of conv's bucket.
func segmentCount(t *testing.T, s *Store, conv string, bucket uint64) int {
	t.Helper()
	segs, err := segments(s.db, conv, bucket)
	if err != nil {
		t.Fatal(err)
	}
	return len(segs)
}

// TestIndexSegments adds passes to one bucket: each is a segment until the
// bucket has foldAt of them, and the next pass folds them all into the
// per-gram lists; a search reads every posting, in order, either way. The
// lists are merged piece by piece, one piece a fold, and rewritten whole
// after maxPieces folds.
func TestIndexSegments(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	l := newIndexLists(s.db)
	ctx := context.Background()
	conv := protocol.DirectConv(1, 2)
	g, other := fulltext.Gram(7), fulltext.Gram(9)
	at := int(foldAt(maphash.Bytes(l.pieceSeed, segPrefix(conv, 0))))
	var want, wantOther []byte
	folds := 0
	for seq := uint64(1); folds < maxPieces+2; seq++ {
		list := fulltext.AppendPosting(nil, seq)
		want = append(want, list...)
		postings := map[fulltext.ListKey][]byte{{Bucket: 0, Gram: g}: list}
		if seq%2 == 0 {
			postings[fulltext.ListKey{Bucket: 0, Gram: other}] = list
			wantOther = append(wantOther, list...)
		}
		if err := l.Add(ctx, conv, postings, nil, seq); err != nil {
			t.Fatal(err)
		}
		got := lists(t, s, conv, 0, fulltext.GramRange{Lo: g, Hi: g}, fulltext.GramRange{Lo: 0, Hi: 8}, fulltext.GramRange{Lo: other, Hi: other})
		if !bytes.Equal(got[0], want) || !bytes.Equal(got[1], want) || !bytes.Equal(got[2], wantOther) {
			t.Fatalf("after seq %d: lists %x; want %x, %x, %x", seq, got, want, want, wantOther)
		}
		n := segmentCount(t, s, conv, 0)
		if n == 0 {
			folds++
			folded, _, err := getFrom(s.db, postingKey(conv, 0, g))
			if err != nil || !bytes.Equal(folded, want) {
				t.Fatalf("fold at seq %d: list %x, %v; want %x", seq, folded, err, want)
			}
		}
		if want := int(seq) % at; n != want {
			t.Fatalf("after seq %d: %d segments; want %d (a fold every %d passes)", seq, n, want, at)
		}
	}
	if p, err := l.Progress(ctx, conv); err != nil || p == 0 {
		t.Fatalf("progress %d, %v", p, err)
	}
	// Rewritten whole at the 17th fold: one piece since.
	if n := l.pieces[maphash.Bytes(l.pieceSeed, postingKey(conv, 0, g))]; n != 1 {
		t.Fatalf("%d pieces counted since the last rewrite; want 1", n)
	}
}

// TestFoldAtSpreads: buckets fold after maxSegments/2 to 3/2 maxSegments
// passes, and not all after the same number.
func TestFoldAtSpreads(t *testing.T) {
	seen := make(map[uint8]bool)
	for h := range uint64(1000) {
		n := foldAt(h * 0x9e3779b97f4a7c15)
		if n < maxSegments/2 || n >= maxSegments*3/2 {
			t.Fatalf("foldAt %d", n)
		}
		seen[n] = true
	}
	if len(seen) != maxSegments {
		t.Fatalf("%d distinct fold points; want %d", len(seen), maxSegments)
	}
}

// TestIndexRemoveFromSegments takes postings out of a bucket whose passes
// are part folded, part still in segments: both lose them, and a segment
// left empty is deleted.
func TestIndexRemoveFromSegments(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	l := newIndexLists(s.db)
	ctx := context.Background()
	conv := protocol.DirectConv(1, 2)
	g := fulltext.Gram(7)
	at := uint64(foldAt(maphash.Bytes(l.pieceSeed, segPrefix(conv, 0))))
	last := at + 3 // one fold, then three segments
	for seq := uint64(1); seq <= last; seq++ {
		postings := map[fulltext.ListKey][]byte{{Bucket: 0, Gram: g}: fulltext.AppendPosting(nil, seq)}
		if err := l.Add(ctx, conv, postings, nil, seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := segmentCount(t, s, conv, 0); n != 3 {
		t.Fatalf("%d segments; want 3", n)
	}
	gone := map[uint64]bool{2: true, last - 1: true, last: true}
	if err := l.Remove(ctx, conv, map[fulltext.ListKey]map[uint64]bool{{Bucket: 0, Gram: g}: gone}); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for seq := uint64(1); seq <= last; seq++ {
		if !gone[seq] {
			want = append(want, fulltext.AppendPosting(nil, seq)...)
		}
	}
	if got := lists(t, s, conv, 0, fulltext.GramRange{Lo: g, Hi: g}); !bytes.Equal(got[0], want) {
		t.Fatalf("after the removal: %x; want %x", got[0], want)
	}
	if n := segmentCount(t, s, conv, 0); n != 1 {
		t.Fatalf("%d segments after the removal; want 1 (two left empty)", n)
	}
}

// TestIndexCountersBounded: the piece and segment counters start again once
// past maxPieceKeys.
func TestIndexCountersBounded(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	l := newIndexLists(s.db)
	b := s.db.NewBatch()
	defer b.Close()
	conv := protocol.DirectConv(1, 2)
	for g := range maxPieceKeys + 10 {
		if err := l.appendList(b, postingKey(conv, 0, fulltext.Gram(g)), []byte{1}); err != nil {
			t.Fatal(err)
		}
		l.segs[uint64(g)] = 1
	}
	if len(l.pieces) <= maxPieceKeys || len(l.segs) <= maxPieceKeys {
		t.Fatalf("%d piece and %d segment counters; want more than %d", len(l.pieces), len(l.segs), maxPieceKeys)
	}
	l.boundCounters()
	if len(l.pieces) != 0 || len(l.segs) != 0 {
		t.Fatalf("%d piece and %d segment counters after the bound; want 0", len(l.pieces), len(l.segs))
	}
}

// TestSegmentEncoding round-trips a segment and refuses a cut one.
func TestSegmentEncoding(t *testing.T) {
	in := map[fulltext.Gram][]byte{3: {1, 2}, 1: {5}, 1 << 40: fulltext.AppendPosting(nil, 4000)}
	seg := appendSegmentOf(nil, in)
	var order []fulltext.Gram
	err := eachList(seg, 0, func(g fulltext.Gram, list []byte) bool {
		order = append(order, g)
		if !bytes.Equal(list, in[g]) {
			t.Errorf("gram %d: list %x; want %x", g, list, in[g])
		}
		return true
	})
	if err != nil || len(order) != 3 || order[0] != 1 || order[1] != 3 || order[2] != 1<<40 {
		t.Fatalf("grams %v, %v; want 1, 3, 2^40", order, err)
	}
	// Found by binary search from a gram on.
	var from []fulltext.Gram
	if err := eachList(seg, 2, func(g fulltext.Gram, _ []byte) bool { from = append(from, g); return true }); err != nil || len(from) != 2 || from[0] != 3 {
		t.Fatalf("grams from 2: %v, %v; want 3, 2^40", from, err)
	}
	for cut := range len(seg) {
		n := 0
		err := eachList(seg[:cut], 0, func(fulltext.Gram, []byte) bool { n++; return true })
		if err == nil {
			t.Errorf("cut at %d of %d: no error (%d lists)", cut, len(seg), n)
		}
	}
}
