package pebble

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"maps"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/storage/fulltext"
)

// Index segments.
//
//	q conv 0 bucket n → segment: the posting lists one indexing pass gave
//	                    conv's bucket
//
// A pass writes one key per conversation and bucket, not one per gram. A
// message's text has tens of grams, and a Merge per gram put that many
// entries into the memtable for each message, under the engine's commit
// pipeline: the message batches behind an index batch waited for it to be
// applied (docs/benchmarks.md, "The text index in segments"). A segment
// is a directory, then the lists:
//
//	uvarint k · k × (gram, 8 bytes · end, 4 bytes) · lists
//
// big-endian, grams ascending; a gram's list runs from the end of the one
// before it (0 for the first) to its own end, within the lists. A search
// finds a gram by binary search in the directory and reads nothing else.
//
// Once a bucket has gathered about maxSegments segments, the next pass
// folds them and its own lists into the per-gram lists (s keys, each
// appended with Merge as before) and deletes them, in one batch: a list
// gets a piece per fold, not per pass. How many a bucket gathers varies
// with a hash of its key (foldAt), so that conversations indexed at the
// same pace do not all fold in the same pass: a fold is a Merge per gram,
// and fifty of them at once held the message batches as long as the
// passes had. A search reads a bucket's lists and then its segments; the
// order of offsets does not matter to it (a bitmap). n is the store's
// segment counter (unique per segment; the order of segments does not
// matter either).

// maxSegments is how many segments a bucket gathers on average before a
// pass folds them into its lists: from half of it to one and a half times.
const maxSegments = 16

// foldAt is how many segments the bucket of hash h gathers before a fold.
func foldAt(h uint64) uint8 { return uint8(maxSegments/2 + h%maxSegments) }

// segDirEntry is the size of a directory entry: gram and end.
const segDirEntry = 12

// errSegment is a segment that does not parse.
var errSegment = errors.New("pebble: malformed index segment")

func segPrefix(conv string, bucket uint64) []byte { return convKey(tSegment, conv, bucket) }

func segKey(conv string, bucket, n uint64) []byte {
	return binary.BigEndian.AppendUint64(segPrefix(conv, bucket), n)
}

// appendSegment appends a segment of n lists to b: entry(i) is the i-th
// gram, ascending, and its list (called twice for each: the directory, then
// the lists).
func appendSegment(b []byte, n int, entry func(i int) (fulltext.Gram, []byte)) []byte {
	b = binary.AppendUvarint(b, uint64(n))
	end := 0
	for i := range n {
		g, list := entry(i)
		end += len(list)
		b = binary.BigEndian.AppendUint64(b, uint64(g))
		b = binary.BigEndian.AppendUint32(b, uint32(end))
	}
	for i := range n {
		_, list := entry(i)
		b = append(b, list...)
	}
	return b
}

// appendSegmentOf appends a segment of lists (gram → list) to b.
func appendSegmentOf(b []byte, lists map[fulltext.Gram][]byte) []byte {
	grams := slices.Sorted(maps.Keys(lists))
	return appendSegment(b, len(grams), func(i int) (fulltext.Gram, []byte) { return grams[i], lists[grams[i]] })
}

// segment is a parsed segment; it refers to the bytes it was parsed from.
type segment struct {
	dir, lists []byte
	n          int
}

func parseSegment(v []byte) (segment, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k)/segDirEntry {
		return segment{}, errSegment
	}
	d := k + int(n)*segDirEntry
	return segment{dir: v[k:d], lists: v[d:], n: int(n)}, nil
}

func (s segment) gram(i int) fulltext.Gram {
	return fulltext.Gram(binary.BigEndian.Uint64(s.dir[i*segDirEntry:]))
}

func (s segment) end(i int) int {
	return int(binary.BigEndian.Uint32(s.dir[i*segDirEntry+8:]))
}

// list returns the i-th list.
func (s segment) list(i int) ([]byte, error) {
	start := 0
	if i > 0 {
		start = s.end(i - 1)
	}
	end := s.end(i)
	if start > end || end > len(s.lists) {
		return nil, errSegment
	}
	return s.lists[start:end], nil
}

// eachList calls fn with each gram of seg from lo on, ascending, and its
// list, until fn returns false.
func eachList(seg []byte, lo fulltext.Gram, fn func(g fulltext.Gram, list []byte) bool) error {
	s, err := parseSegment(seg)
	if err != nil {
		return err
	}
	for i := sort.Search(s.n, func(i int) bool { return s.gram(i) >= lo }); i < s.n; i++ {
		list, err := s.list(i)
		if err != nil {
			return err
		}
		if !fn(s.gram(i), list) {
			return nil
		}
	}
	return nil
}

// segments reads the segments of conv's bucket from r, copied.
func segments(r pebble.Reader, conv string, bucket uint64) ([][]byte, error) {
	var out [][]byte
	err := scanFrom(r, segPrefix(conv, bucket), func(_, v []byte) error {
		out = append(out, append([]byte(nil), v...))
		return nil
	})
	return out, err
}

// segmentLists appends to out[i] the lists of the segments of conv's
// bucket in r whose gram is in ranges[i].
func segmentLists(r pebble.Reader, out [][]byte, conv string, bucket uint64, ranges []fulltext.GramRange) error {
	return scanFrom(r, segPrefix(conv, bucket), func(_, seg []byte) error {
		for i, rg := range ranges {
			err := eachList(seg, rg.Lo, func(g fulltext.Gram, list []byte) bool {
				if g > rg.Hi {
					return false
				}
				out[i] = append(out[i], list...)
				return true
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// addSegment writes the lists of one pass in bucket of conv into b (keys,
// of that bucket and sorted by gram, name them in postings): a new
// segment, or, when the bucket has gathered foldAt of them, the bucket's
// segments and these lists folded into the per-gram lists.
func (l *indexLists) addSegment(b *pebble.Batch, conv string, bucket uint64, keys []fulltext.ListKey, postings map[fulltext.ListKey][]byte) error {
	h := maphash.Bytes(l.pieceSeed, segPrefix(conv, bucket))
	if n := l.segs[h]; n+1 < foldAt(h) {
		l.segs[h] = n + 1
		l.segNext++
		l.seg = appendSegment(l.seg[:0], len(keys), func(i int) (fulltext.Gram, []byte) {
			return keys[i].Gram, postings[keys[i]]
		}) // Set copies it
		return b.Set(segKey(conv, bucket, l.segNext), l.seg, nil)
	}
	// Fold: the segments written so far, then this pass's lists, gram by
	// gram into the lists (the order of a list's offsets does not matter).
	delete(l.segs, h)
	segs, err := segments(l.db, conv, bucket)
	if err != nil {
		return err
	}
	folded := make(map[fulltext.Gram][]byte, len(keys))
	for _, seg := range segs {
		err := eachList(seg, 0, func(g fulltext.Gram, list []byte) bool {
			folded[g] = append(folded[g], list...)
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, k := range keys {
		folded[k.Gram] = append(folded[k.Gram], postings[k]...)
	}
	p := segPrefix(conv, bucket)
	if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
		return err
	}
	for g, list := range folded {
		if err := l.appendList(b, postingKey(conv, bucket, g), list); err != nil {
			return err
		}
	}
	return nil
}

// removeFromSegments takes offs (by gram) out of the segments of conv's
// bucket, rewriting those that change.
func (l *indexLists) removeFromSegments(b *pebble.Batch, conv string, bucket uint64, offs map[fulltext.Gram]map[uint64]bool) error {
	return scanFrom(l.db, segPrefix(conv, bucket), func(k, v []byte) error {
		lists := make(map[fulltext.Gram][]byte)
		changed := false
		err := eachList(v, 0, func(g fulltext.Gram, list []byte) bool {
			if o := offs[g]; o != nil {
				kept := fulltext.RemovePostings(list, o)
				changed = changed || len(kept) != len(list)
				list = kept
			}
			if len(list) > 0 {
				lists[g] = append([]byte(nil), list...)
			}
			return true
		})
		if err != nil || !changed {
			return err
		}
		k = append([]byte(nil), k...)
		if len(lists) == 0 {
			return b.Delete(k, nil)
		}
		return b.Set(k, appendSegmentOf(nil, lists), nil)
	})
}
