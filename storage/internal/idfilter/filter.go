// Package idfilter is a Bloom filter of 64-bit key hashes that answers
// "certainly absent" or "maybe present" without locks while keys are added,
// and grows with the keys it holds. A store puts it in front of an exact
// lookup: a miss skips the lookup, a hit does it.
//
// The filter is blocked: a key's bits all fall in one 512-bit block (one
// cache line), so a test costs one memory access per segment. It grows by
// segments: when the newest segment holds its capacity, a segment twice as
// large is added; a test looks in each. Keys are never removed; a key whose
// record was deleted stays a (harmless) false positive.
package idfilter

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// bitsPerKey and probes give about 0.14 % false positives per full segment
// (TestFalsePositiveRate; 10 bits and 7 probes gave 0.8 %): a false positive
// costs the store a lookup a hundred times dearer than the test, so the
// bits are worth their 1.75 bytes per key.
const (
	bitsPerKey  = 14
	probes      = 9
	blockBits   = 512
	blockWords  = blockBits / 64
	minCapacity = 1 << 16
)

type block [blockWords]atomic.Uint64

type segment struct {
	blocks []block
	cap    int // keys it is sized for
	n      int // keys added; guarded by Filter.mu
}

func newSegment(capacity int) *segment {
	nblocks := max(1, capacity*bitsPerKey/blockBits)
	return &segment{blocks: make([]block, nblocks), cap: capacity}
}

// mix spreads h's bits (the finalizer of SplitMix64), so hashes whose low
// or high bits are alike still choose different blocks and bits.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// locate returns the block of h and the hash that picks its bits.
func (s *segment) locate(h uint64) (*block, uint64) {
	hi, _ := bits.Mul64(h, uint64(len(s.blocks)))
	return &s.blocks[hi], mix(h)
}

func (s *segment) add(h uint64) {
	b, x := s.locate(h)
	for range probes {
		bit := x >> (64 - 9) // 9 bits pick one of 512
		b[bit/64].Or(1 << (bit % 64))
		x = x<<9 | x>>(64-9)
	}
}

func (s *segment) has(h uint64) bool {
	b, x := s.locate(h)
	for range probes {
		bit := x >> (64 - 9)
		if b[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
		x = x<<9 | x>>(64-9)
	}
	return true
}

// Filter is the growing Bloom filter. Add and MayContain are safe for
// concurrent use; a MayContain that starts after an Add returned sees it.
type Filter struct {
	mu   sync.Mutex                 // serializes Add
	segs atomic.Pointer[[]*segment] // grows by copy; read without mu
}

// New returns an empty filter whose first segment is sized for capacity
// keys (at least 65,536).
func New(capacity int) *Filter {
	f := &Filter{}
	segs := []*segment{newSegment(max(capacity, minCapacity))}
	f.segs.Store(&segs)
	return f
}

// Add records h.
func (f *Filter) Add(h uint64) {
	f.mu.Lock()
	segs := *f.segs.Load()
	last := segs[len(segs)-1]
	if last.n >= last.cap {
		last = newSegment(2 * last.cap)
		grown := append(segs[:len(segs):len(segs)], last)
		f.segs.Store(&grown)
	}
	last.add(h)
	last.n++
	f.mu.Unlock()
}

// MayContain reports false when h was certainly never added.
func (f *Filter) MayContain(h uint64) bool {
	for _, s := range *f.segs.Load() {
		if s.has(h) {
			return true
		}
	}
	return false
}

// Bytes returns the memory the filter's bits take.
func (f *Filter) Bytes() int {
	n := 0
	for _, s := range *f.segs.Load() {
		n += len(s.blocks) * blockBits / 8
	}
	return n
}
