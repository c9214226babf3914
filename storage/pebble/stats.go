package pebble

import (
	"math"

	dto "github.com/prometheus/client_model/go"
)

// EngineStats is what the embedded store tells of its engine, for an
// operator's metrics (cmd/parleyd exports them; docs/operations.md).
type EngineStats struct {
	// WALSyncs counts the WAL's fsyncs and WALSyncSeconds sums their time;
	// WALSyncBuckets are how many took at most each bound. Every SendAck
	// waits for one: their tail is the disk's part of a send's latency.
	WALSyncs       uint64
	WALSyncSeconds float64
	WALSyncBuckets []Bucket
	WALBytes       uint64 // written to the WAL
	Flushes        int64  // memtable flushes done
	Compactions    int64  // compactions done
	// CompactionDebt is the bytes compactions owe, by the engine's
	// estimate; past paceMaxDebt the store stops pacing them (pace.go).
	CompactionDebt uint64
	L0Sublevels    int    // the engine stops writes at 12 (L0StopWritesThreshold)
	MemTableBytes  uint64 // in memtables, the one taking writes and those waiting to flush
	DiskBytes      uint64
	// WriteStalls counts the times the engine held every write back until
	// a flush or a compaction caught up; PacedWaits the background writes
	// the store's pacing held back (docs/storage.md, "Background writes are paced").
	WriteStalls uint64
	PacedWaits  uint64
}

// Bucket is a cumulative histogram bucket: Count observations at most Le.
type Bucket struct {
	Le    float64
	Count uint64
}

// walSyncBounds are the bounds (seconds) of EngineStats.WALSyncBuckets;
// each is the largest of the engine's own (pebble.FsyncLatencyBuckets, a
// hundred of them) at or under it, so every count is exact.
var walSyncBounds = []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}

// EngineStats returns the engine's figures now.
func (s *Store) EngineStats() EngineStats {
	m := s.db.Metrics()
	st := EngineStats{
		WALBytes:       m.WAL.BytesWritten,
		Flushes:        m.Flush.Count,
		Compactions:    m.Compact.Count,
		CompactionDebt: m.Compact.EstimatedDebt,
		L0Sublevels:    int(m.Levels[0].Sublevels),
		MemTableBytes:  m.MemTable.Size,
		DiskBytes:      m.DiskSpaceUsage(),
		WriteStalls:    s.pacing.stalls.Load(),
		PacedWaits:     s.pacing.flush.waits.Load() + s.pacing.compaction.waits.Load(),
	}
	if h := m.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if h.Write(&d) == nil && d.Histogram != nil {
			st.WALSyncs, st.WALSyncSeconds, st.WALSyncBuckets = walSyncs(d.Histogram)
		}
	}
	return st
}

// walSyncs reads the engine's fsync histogram, whose unit is the
// nanosecond, into seconds and walSyncBounds.
func walSyncs(h *dto.Histogram) (n uint64, sum float64, buckets []Bucket) {
	n, sum = h.GetSampleCount(), h.GetSampleSum()/1e9
	src := h.GetBucket()
	i := 0
	var count uint64 // observations at most the bucket before src[i]
	for _, bound := range walSyncBounds {
		le := 0.0
		for i < len(src) && src[i].GetUpperBound()/1e9 <= bound*(1+1e-9) {
			le, count = src[i].GetUpperBound()/1e9, src[i].GetCumulativeCount()
			i++
		}
		if le > 0 && (len(buckets) == 0 || buckets[len(buckets)-1].Le < le) {
			buckets = append(buckets, Bucket{le, count})
		}
	}
	return n, sum, append(buckets, Bucket{math.Inf(1), n})
}
