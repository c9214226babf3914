package mysql

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/fulltext"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// A list of the open bucket is written in parts, one per pass of the
// indexer, folded into its row every foldAfter passes and when the
// conversation's progress leaves the bucket; search reads both, and an
// unindexed message leaves every part.
func TestSearchListParts(t *testing.T) {
	s := open(t, Config{BatchInterval: -1})
	defer s.Close()
	ctx := context.Background()
	ids := users(t, s, "ann", "bob")
	conv := protocol.DirectConv(ids[0], ids[1])
	stored := make(map[uint64]protocol.Message)
	var mu sync.Mutex
	appendN := func(from, to int) { // bodies "kiwi n<i>", i in [from, to)
		var wg sync.WaitGroup
		next := from
		for range 16 {
			wg.Go(func() {
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= to {
						return
					}
					m := direct(ids[0], ids[1], fmt.Sprint("c", i), fmt.Sprint("kiwi n", i))
					m.ContentType = protocol.ContentText
					m2, _, err := s.Append(ctx, m)
					if err != nil {
						t.Errorf("Append %d: %v", i, err)
						return
					}
					mu.Lock()
					stored[m2.Seq] = m2
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := s.IndexFlush(ctx); err != nil {
			t.Fatalf("IndexFlush: %v", err)
		}
	}
	gram := fulltext.Grams("kiwi")[0]
	// parts returns the rows of the gram's list in bucket, each as its
	// offsets: its parts, or its merged row (part 0 here).
	parts := func(table string, bucket uint64) map[uint64][]uint64 {
		t.Helper()
		part := "part"
		if table == "search_lists" {
			part = "0"
		}
		rows, err := s.db.Query(`SELECT `+part+`, list FROM `+table+` WHERE conv = ? AND bucket = ? AND gram = ?`, conv, bucket, uint64(gram))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := make(map[uint64][]uint64)
		for rows.Next() {
			var part uint64
			var list []byte
			if err := rows.Scan(&part, &list); err != nil {
				t.Fatal(err)
			}
			out[part] = offsets(list)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := func(ps map[uint64][]uint64) []uint64 {
		var out []uint64
		for _, offs := range ps {
			out = append(out, offs...)
		}
		slices.Sort(out)
		return out
	}

	appendN(1, 51)
	appendN(51, 101)
	if ps := parts("search_parts", 0); len(ps) < 2 || !slices.Equal(all(ps), seqRange(1, 100)) {
		t.Fatalf("after two passes: parts %v, want two or more holding 1-100", ps)
	}
	// Unindexed, a message leaves the part that holds it.
	if err := s.Unindex(ctx, []protocol.Message{stored[60]}); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(seqRange(1, 100), func(o uint64) bool { return o == 60 })
	if got := all(parts("search_parts", 0)); !slices.Equal(got, want) {
		t.Fatalf("after unindexing 60: %v", got)
	}

	// Pass after pass, a list keeps at most foldAfter parts beside its row.
	for i := 101; i < 101+3*(foldAfter+2); i += 3 {
		appendN(i, i+3)
		ps := parts("search_parts", 0)
		if len(ps) > foldAfter {
			t.Fatalf("after the pass of %d-%d: %d parts", i, i+2, len(ps))
		}
		row := parts("search_lists", 0)[0]
		got := offsets(fulltext.CompactPostings(append(encode(row), encode(all(ps))...)))
		want := slices.DeleteFunc(seqRange(1, uint64(i+2)), func(o uint64) bool { return o == 60 })
		if !slices.Equal(got, want) {
			t.Fatalf("after the pass of %d-%d: %d offsets in row and parts, want %d", i, i+2, len(got), len(want))
		}
	}
	if len(parts("search_lists", 0)[0]) == 0 {
		t.Fatal("no parts were ever folded into the row")
	}

	// Past the bucket's end: bucket 0 is folded, bucket 1 open.
	last := 1<<fulltext.BucketBits + 4
	appendN(101+3*(foldAfter+2), last+1)
	if ps := parts("search_parts", 0); len(ps) != 0 {
		t.Fatalf("bucket 0 after its end: parts %v left", slices.Sorted(maps.Keys(ps)))
	}
	want = slices.DeleteFunc(seqRange(1, 1<<fulltext.BucketBits-1), func(o uint64) bool { return o == 60 })
	if got := offsets(fulltext.CompactPostings(encode(parts("search_lists", 0)[0]))); !slices.Equal(got, want) {
		t.Fatalf("bucket 0 after its end: %d offsets (%v…), want every offset but 60, ascending", len(got), got[:min(len(got), 5)])
	}
	if got := all(parts("search_parts", 1)); !slices.Equal(got, seqRange(0, 4)) {
		t.Fatalf("bucket 1: offsets %v, want 0-4", got)
	}

	// An edit of a message of the bucket left posts into its row, not a
	// part that no pass would merge.
	edit := direct(ids[0], ids[1], "edit-7", "kiwi guava")
	edit.ContentType, edit.Ref = protocol.ContentEdit, 7
	mustAppend(t, s, edit)
	if err := s.IndexFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if ps := parts("search_parts", 0); len(ps) != 0 {
		t.Fatalf("after an edit in bucket 0: parts %v", slices.Sorted(maps.Keys(ps)))
	}
	page, err := s.Search(ctx, fulltext.Query{User: ids[1], Text: "guava", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(page.Messages); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("search guava: %v", got)
	}

	// Search reads both: the newest from the open bucket, one message
	// from the merged one.
	page, err = s.Search(ctx, fulltext.Query{User: ids[1], Text: "kiwi", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(page.Messages); !slices.Equal(got, []uint64{uint64(last), uint64(last - 1), uint64(last - 2)}) {
		t.Fatalf("search kiwi: %v", got)
	}
	n := stored[1234].Body
	page, err = s.Search(ctx, fulltext.Query{User: ids[1], Text: string(n[len("kiwi "):]), Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Seq != 1234 {
		t.Fatalf("search %q: %v", n, seqsOf(page.Messages))
	}
}

// encode is a list of offsets (fulltext.AppendPosting's form).
func encode(offs []uint64) []byte {
	var out []byte
	for _, o := range offs {
		out = fulltext.AppendPosting(out, o)
	}
	return out
}

// offsets decodes a posting list (fulltext.AppendPosting's form).
func offsets(list []byte) []uint64 {
	var out []uint64
	var off uint64
	var shift uint
	for _, c := range list {
		off |= uint64(c&0x7F) << shift
		if c < 0x80 {
			out = append(out, off)
			off, shift = 0, 0
			continue
		}
		shift += 7
	}
	return out
}

func seqsOf(msgs []protocol.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// Two nodes indexing one conversation at once, across a bucket's end,
// leave lists that hold every message, found by search: whatever parts
// they wrote, merged or not.
func TestSearchListPartsTwoNodes(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var stores [2]*Store
	for n := range stores {
		stores[n] = open(t, Config{DSN: dsn, BatchInterval: -1})
		defer stores[n].Close()
	}
	ctx := context.Background()
	ids := users(t, stores[0], "ann", "bob")
	conv := protocol.DirectConv(ids[0], ids[1])
	const total = 1<<fulltext.BucketBits + 200
	var next atomic.Int64
	var wg sync.WaitGroup
	for n, s := range stores {
		for range 8 {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > total {
						return
					}
					m := direct(ids[n], ids[1-n], fmt.Sprint("c", i), "plum")
					m.ContentType = protocol.ContentText
					if _, _, err := s.Append(ctx, m); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, s := range stores {
		if err := s.IndexFlush(ctx); err != nil {
			t.Fatalf("IndexFlush: %v", err)
		}
	}
	gram := fulltext.Grams("plum")[0]
	for bucket, want := range map[uint64][]uint64{0: seqRange(1, 1<<fulltext.BucketBits-1), 1: seqRange(0, 200)} {
		rows, err := stores[0].db.Query(`SELECT list FROM search_lists WHERE conv = ? AND bucket = ? AND gram = ?
			UNION ALL SELECT list FROM search_parts WHERE conv = ? AND bucket = ? AND gram = ?`, conv, bucket, uint64(gram), conv, bucket, uint64(gram))
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		for rows.Next() {
			var list []byte
			if err := rows.Scan(&list); err != nil {
				t.Fatal(err)
			}
			all = append(all, list...)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		if got := offsets(fulltext.CompactPostings(all)); !slices.Equal(got, want) {
			t.Errorf("bucket %d: %d offsets (%v…), want %d", bucket, len(got), got[:min(len(got), 5)], len(want))
		}
	}
	page, err := stores[1].Search(ctx, fulltext.Query{User: ids[0], Text: "plum", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(page.Messages); !slices.Equal(got, []uint64{total, total - 1}) {
		t.Fatalf("search plum: %v", got)
	}
}
