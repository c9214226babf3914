// Package fulltext is the message text index both stores share: how text is
// cut into terms and bigrams, how a posting list is encoded, the indexer that
// keeps the lists up to date off the send path, and the search that reads
// them. Each store keeps the lists in its own tables (Lists, Progress) and
// answers the few reads a search needs (Source); the logic is written once.
//
// The index is a bigram index, so Chinese and Japanese text, which has no
// spaces between words, is searchable like any other: text is folded to lower
// case, cut into runs of letters and digits (terms), and each term of n runes
// gives n grams: its n-1 bigrams and its last rune paired with 0, so every
// rune starts at least one gram. A query term of two or more runes needs each
// of its bigrams; a one-rune term any gram starting with that rune. The grams
// only find candidates: every candidate is checked against the stored text
// (each query term must occur in it), so a gram collision or a posting of
// text that has since changed (a recall, an edit) never shows.
//
// Lists are kept per conversation and per bucket of 4096 sequence numbers:
// (conv, bucket, gram) → the offsets within the bucket, each a uvarint (1 or
// 2 bytes), appended as messages are indexed. A search reads a
// conversation's buckets newest first and stops as soon as the page is full.
package fulltext

import (
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleyim/parley/protocol"
)

// Gram is a pair of folded runes, the first in the high 32 bits; a term's
// last rune is paired with 0.
type Gram uint64

func gramOf(a, b rune) Gram { return Gram(uint64(uint32(a))<<32 | uint64(uint32(b))) }

// GramRange is the grams from Lo to Hi inclusive: one gram, or every gram
// starting with one rune.
type GramRange struct{ Lo, Hi Gram }

// BucketBits is the log2 of the sequence numbers per bucket.
const BucketBits = 12

// Bucket returns the bucket of seq.
func Bucket(seq uint64) uint64 { return seq >> BucketBits }

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) }

// fold lowers r. Full-width ASCII letters and digits (common in CJK input)
// fold to their ASCII forms.
func fold(r rune) rune {
	if r >= 0xFF01 && r <= 0xFF5E {
		r -= 0xFF01 - 0x21
	}
	return unicode.ToLower(r)
}

// Terms cuts text into its folded terms, in order, duplicates kept.
func Terms(text string) []string {
	var terms []string
	var b strings.Builder
	for _, r := range text {
		r = fold(r)
		if r == utf8.RuneError || !isWord(r) {
			if b.Len() > 0 {
				terms = append(terms, b.String())
				b.Reset()
			}
			continue
		}
		b.WriteRune(r)
	}
	if b.Len() > 0 {
		terms = append(terms, b.String())
	}
	return terms
}

// Folded is text as the check of a candidate sees it: folded terms separated
// by single spaces, so a query term matches within a term, never across two.
func Folded(text string) string { return strings.Join(Terms(text), " ") }

// Text returns the searchable text of a message: the body of a text message
// (content type 0), the file name of an attachment (content type 1), else "".
func Text(m *protocol.Message) string {
	if len(m.Body) == 0 {
		return ""
	}
	switch m.ContentType {
	case protocol.ContentText:
		return string(m.Body)
	case protocol.ContentAttachment:
		if a, err := protocol.DecodeAttachment(m.Body); err == nil {
			return a.Name
		}
	}
	return ""
}

// Grams returns the distinct grams of text, in first-seen order.
func Grams(text string) []Gram {
	var c cutter
	return c.grams([]byte(text))
}

// textBytes is Text without a copy of a text message's body: the slice it
// returns may be the message's own.
func textBytes(m *protocol.Message) []byte {
	if m.ContentType == protocol.ContentText {
		return m.Body
	}
	if t := Text(m); t != "" {
		return []byte(t)
	}
	return nil
}

// hanLo and hanHi bound the CJK Unified Ideographs, every one a letter
// that folds to itself (TestHanRange checks each).
const hanLo, hanHi = 0x4E00, 0x9FFF

// cutter cuts text into its distinct grams reusing its memory: a slice of
// the grams in first-seen order and an open-addressing set of them (0 marks
// a free slot: no gram is 0, as rune 0 is no word rune). One is used by one
// goroutine at a time.
type cutter struct {
	out []Gram
	set []Gram
}

// grams returns the distinct grams of text (UTF-8; an invalid byte is a
// separator, as in Terms), in first-seen order: Grams's result, held by c
// until its next call.
func (c *cutter) grams(text []byte) []Gram {
	c.out = c.out[:0]
	if len(text) == 0 {
		return c.out
	}
	// A text of n bytes has at most n grams: keep the set at most half full.
	size := 16
	for size < 2*len(text) {
		size <<= 1
	}
	if cap(c.set) < size {
		c.set = make([]Gram, size)
	} else {
		c.set = c.set[:size]
		clear(c.set)
	}
	shift := 64 - uint(bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	add := func(g Gram) {
		for i := (uint64(g) * 0x9E3779B97F4A7C15) >> shift; ; i = (i + 1) & mask {
			switch c.set[i] {
			case g:
				return
			case 0:
				c.set[i] = g
				c.out = append(c.out, g)
				return
			}
		}
	}
	var prev rune // the term's rune before, 0 between terms
	for i := 0; i < len(text); {
		r := rune(text[i])
		var word bool
		if r < utf8.RuneSelf {
			i++
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			word = 'a' <= r && r <= 'z' || '0' <= r && r <= '9'
		} else {
			var n int
			r, n = utf8.DecodeRune(text[i:])
			i += n
			if hanLo <= r && r <= hanHi {
				word = true // a letter without case: fold and isWord as is
			} else {
				r = fold(r)
				word = r != utf8.RuneError && isWord(r)
			}
		}
		switch {
		case word && prev != 0:
			add(gramOf(prev, r))
			prev = r
		case word:
			prev = r
		case prev != 0:
			add(gramOf(prev, 0))
			prev = 0
		}
	}
	if prev != 0 {
		add(gramOf(prev, 0))
	}
	return c.out
}

// queryRanges returns the gram ranges every match of terms has: each bigram
// of a longer term, and for a one-rune term the range of grams starting with
// it.
func queryRanges(terms []string) []GramRange {
	seen := make(map[GramRange]struct{})
	var out []GramRange
	for _, t := range terms {
		rs := []rune(t)
		if len(rs) == 1 {
			r := GramRange{gramOf(rs[0], 0), gramOf(rs[0], -1)}
			if _, ok := seen[r]; !ok {
				seen[r] = struct{}{}
				out = append(out, r)
			}
			continue
		}
		for i := 0; i+1 < len(rs); i++ {
			g := gramOf(rs[i], rs[i+1])
			r := GramRange{g, g}
			if _, ok := seen[r]; !ok {
				seen[r] = struct{}{}
				out = append(out, r)
			}
		}
	}
	return out
}

// Offset returns seq's offset within its bucket.
func Offset(seq uint64) uint64 { return seq & (1<<BucketBits - 1) }

// AppendPosting appends seq's offset within its bucket to a list.
func AppendPosting(list []byte, seq uint64) []byte {
	off := seq & (1<<BucketBits - 1)
	for off >= 0x80 {
		list = append(list, byte(off)|0x80)
		off >>= 7
	}
	return append(list, byte(off))
}

// decodeList adds the offsets of list (one or more lists concatenated) to
// set, a bitmap of the bucket's offsets. It ignores a truncated tail.
func decodeList(list []byte, set *bitmap) {
	var off uint64
	var shift uint
	for _, c := range list {
		off |= uint64(c&0x7F) << shift
		if c < 0x80 {
			if off < 1<<BucketBits {
				set.add(off)
			}
			off, shift = 0, 0
			continue
		}
		shift += 7
		if shift > 14 {
			off, shift = 1<<BucketBits, 0 // malformed: skip this entry
		}
	}
}

// RemovePostings returns list without the offsets offs (offsets within the
// list's bucket, as Offset gives them); the rest keep their order.
func RemovePostings(list []byte, offs map[uint64]bool) []byte {
	out := list[:0:0]
	var off uint64
	var shift uint
	start := 0
	for i, c := range list {
		off |= uint64(c&0x7F) << shift
		if c >= 0x80 && shift < 14 {
			shift += 7
			continue
		}
		if !offs[off] {
			out = append(out, list[start:i+1]...)
		}
		off, shift, start = 0, 0, i+1
	}
	return out
}

// CompactPostings returns the distinct offsets of list (one or more lists
// concatenated), ascending: a list merged from parts that may repeat an
// offset (two writers indexed the same messages), in its least size.
func CompactPostings(list []byte) []byte {
	var set bitmap
	decodeList(list, &set)
	out := make([]byte, 0, len(list))
	for i, w := range set {
		for w != 0 {
			b := uint64(bits.TrailingZeros64(w))
			out = AppendPosting(out, uint64(i)*64+b)
			w &= w - 1
		}
	}
	return out
}

// bitmap is a set of the offsets of one bucket.
type bitmap [1 << BucketBits / 64]uint64

func (b *bitmap) add(off uint64)      { b[off/64] |= 1 << (off % 64) }
func (b *bitmap) has(off uint64) bool { return b[off/64]&(1<<(off%64)) != 0 }
func (b *bitmap) and(o *bitmap) {
	for i := range b {
		b[i] &= o[i]
	}
}
func (b *bitmap) clearFrom(off uint64) {
	for ; off < 1<<BucketBits; off++ {
		b[off/64] &^= 1 << (off % 64)
	}
}
