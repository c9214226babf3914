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
	for _, table := range []byte{tPosting, tProgress} {
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

// TestIndexListPieces adds to one posting list past maxPieces twice over:
// the list is merged piece by piece, then rewritten whole, and holds every
// posting in order either way; the counters stay within their bound.
func TestIndexListPieces(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	l := newIndexLists(s.db)
	ctx := context.Background()
	conv, key := protocol.DirectConv(1, 2), fulltext.ListKey{Bucket: 0, Gram: 7}
	var want []byte
	for seq := uint64(1); seq <= 2*maxPieces+5; seq++ {
		list := fulltext.AppendPosting(nil, seq)
		want = append(want, list...)
		if err := l.Add(ctx, conv, map[fulltext.ListKey][]byte{key: list}, nil, seq); err != nil {
			t.Fatal(err)
		}
		got, _, err := getFrom(s.db, postingKey(conv, key.Bucket, key.Gram))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after seq %d: list %x, %v; want %x", seq, got, err, want)
		}
	}
	if p, err := l.Progress(ctx, conv); err != nil || p != 2*maxPieces+5 {
		t.Fatalf("progress %d, %v", p, err)
	}
	// Rewritten whole at the 17th and the 34th add: three pieces since.
	if n := l.pieces[maphash.Bytes(l.pieceSeed, postingKey(conv, key.Bucket, key.Gram))]; n != 3 {
		t.Fatalf("%d pieces counted since the last rewrite; want 3", n)
	}
	// Many lists: the counters start again past their bound.
	postings := make(map[fulltext.ListKey][]byte)
	for g := range maxPieceKeys + 10 {
		postings[fulltext.ListKey{Bucket: 1, Gram: fulltext.Gram(g)}] = fulltext.AppendPosting(nil, 1)
		if len(postings) == 4096 {
			if err := l.Add(ctx, conv, postings, nil, 0); err != nil {
				t.Fatal(err)
			}
			clear(postings)
		}
	}
	if err := l.Add(ctx, conv, postings, nil, 0); err != nil {
		t.Fatal(err)
	}
	// They were cleared once past the bound, before the last two Adds.
	if len(l.pieces) > 2*4096 {
		t.Fatalf("%d piece counters; they start again past %d", len(l.pieces), maxPieceKeys)
	}
}
