package pebble

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleyim/parley/protocol"
)

// The engine's fsync histogram (nanoseconds, a hundred buckets) reads into
// seconds at the engine's own bounds nearest under walSyncBounds, so every
// count is the exact number of fsyncs at most its bound.
func TestWALSyncBuckets(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Buckets: pebble.FsyncLatencyBuckets})
	for _, d := range []float64{150e3, 400e3, 3e6, 7e6, 2e9} {
		h.Observe(d)
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	n, sum, buckets := walSyncs(m.Histogram)
	if n != 5 || math.Abs(sum-2.01055) > 1e-9 {
		t.Fatalf("count %d, sum %v s; want 5 and 2.01055", n, sum)
	}
	engine := map[float64]bool{}
	for _, b := range pebble.FsyncLatencyBuckets {
		engine[b] = true
	}
	want := map[float64]uint64{0.0002: 1, 0.0005: 2, 0.001: 2, 0.002: 2, 0.005: 3, 0.01: 4, 1: 4, 2.5: 5, 10: 5}
	for i, b := range buckets {
		if i > 0 && (b.Le <= buckets[i-1].Le || b.Count < buckets[i-1].Count) {
			t.Fatalf("bucket %d %+v after %+v", i, b, buckets[i-1])
		}
		if i == len(buckets)-1 {
			if !math.IsInf(b.Le, 1) || b.Count != n {
				t.Fatalf("last bucket %+v; want +Inf and %d", b, n)
			}
			continue
		}
		if !engine[math.Round(b.Le*1e9)] && !engine[b.Le*1e9] {
			t.Errorf("bound %v s is not one of the engine's", b.Le)
		}
	}
	// Each of walSyncBounds has the engine's bound nearest under it.
	for _, bound := range walSyncBounds {
		i := slices.IndexFunc(buckets, func(b Bucket) bool { return b.Le <= bound*(1+1e-9) && b.Le > bound*0.8 })
		if i < 0 {
			t.Errorf("no bucket for %v s: %+v", bound, buckets)
			continue
		}
		if c, ok := want[bound]; ok && buckets[i].Count != c {
			t.Errorf("at %v s (for %v): %d fsyncs, want %d", buckets[i].Le, bound, buckets[i].Count, c)
		}
	}
	if len(buckets) < len(walSyncBounds) {
		t.Errorf("%d buckets for %d bounds: %+v", len(buckets), len(walSyncBounds), buckets)
	}
}

// EngineStats counts what the engine did: fsyncs for the appends, WAL
// bytes, a flush.
func TestEngineStats(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	ctx := context.Background()
	before := s.EngineStats()
	for i := range 20 {
		m := &protocol.Message{MsgID: int64(i + 1), Conv: protocol.DirectConv(1, 2), From: 1, To: 2, Body: []byte("hello"), ServerTime: int64(i)}
		if _, _, err := s.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	st := s.EngineStats()
	if st.WALSyncs < before.WALSyncs+1 || st.WALBytes <= before.WALBytes || st.Flushes < before.Flushes+1 || st.DiskBytes == 0 {
		t.Fatalf("after 20 appends and a flush: %+v (before %+v)", st, before)
	}
	last := st.WALSyncBuckets[len(st.WALSyncBuckets)-1]
	if !math.IsInf(last.Le, 1) || last.Count != st.WALSyncs {
		t.Fatalf("last bucket %+v, %d fsyncs", last, st.WALSyncs)
	}
	if !slices.IsSortedFunc(st.WALSyncBuckets, func(a, b Bucket) int { return int(a.Count) - int(b.Count) }) {
		t.Fatalf("buckets not cumulative: %+v", st.WALSyncBuckets)
	}
}
