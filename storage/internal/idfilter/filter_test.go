package idfilter

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

// Every key added is found, across segment growth.
func TestNoFalseNegatives(t *testing.T) {
	f := New(0)
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]uint64, 2*minCapacity+17) // past one growth
	for i := range keys {
		keys[i] = r.Uint64()
		f.Add(keys[i])
	}
	if n := len(*f.segs.Load()); n != 2 {
		t.Errorf("segments = %d, want 2 (65,536 then 131,072 keys)", n)
	}
	for _, k := range keys {
		if !f.MayContain(k) {
			t.Fatalf("added key %#x not found", k)
		}
	}
}

// Keys never added are mostly reported absent: at most 0.5 % at capacity.
func TestFalsePositiveRate(t *testing.T) {
	f := New(1 << 17)
	for i := range uint64(1 << 17) {
		f.Add(i * 0x9e3779b97f4a7c15) // regular, not random, hashes
	}
	fp := 0
	const tries = 200_000
	for i := range uint64(tries) {
		if f.MayContain(i*0x9e3779b97f4a7c15 + 1) {
			fp++
		}
	}
	if rate := float64(fp) / tries; rate > 0.005 {
		t.Errorf("false positive rate %.4f at capacity, want ≤ 0.005", rate)
	} else {
		t.Logf("false positive rate %.4f at capacity", rate)
	}
}

// Concurrent tests while keys are added (run with -race): every key whose
// Add returned before the test began is found.
func TestConcurrent(t *testing.T) {
	f := New(0)
	const n = 200_000
	var added sync.WaitGroup
	progress := make(chan uint64, n)
	added.Go(func() {
		defer close(progress)
		for i := range uint64(n) {
			f.Add(mix(i))
			progress <- i
		}
	})
	for range 2 {
		added.Go(func() {
			for i := range progress {
				if !f.MayContain(mix(i)) {
					t.Errorf("key %d not found after its Add", i)
					return
				}
			}
		})
	}
	added.Wait()
}

func BenchmarkMayContain(b *testing.B) {
	for _, keys := range []int{1 << 16, 1 << 20, 1 << 23} {
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			f := New(0)
			for i := range uint64(keys) {
				f.Add(mix(i))
			}
			b.ResetTimer()
			hits := 0
			for i := range uint64(b.N) {
				if f.MayContain(mix(i + 1<<40)) {
					hits++
				}
			}
			b.ReportMetric(float64(hits)/float64(b.N), "false-pos")
			b.ReportMetric(float64(f.Bytes())/float64(keys), "B/key")
		})
	}
}
