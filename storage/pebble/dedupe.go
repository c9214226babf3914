package pebble

import (
	"encoding/binary"
	"hash/maphash"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The client message id filter.
//
// Every append with a client message id must find out whether its sender
// stored that id before. Most are new, and a Pebble lookup that misses
// still seeks the memtables and each level. So the store keeps a Bloom
// filter (storage/internal/idfilter) of the hashes of its dedupe keys: a
// miss proves the id new and skips the lookup; a hit (a resend, or about one
// new id in a hundred) does the exact lookup as before. A duplicate is never
// stored twice, filter or not.
//
// The filter holds every dedupe key in the database from the moment
// seenReady is set:
//   - the writer adds each dedupe key to it in exec, before the batch is
//     applied (and so before writer.applied counts it);
//   - loadSeen, started by Open, adds every dedupe key of an iterator
//     opened at its start, then sets seenReady. A batch applied after that
//     iterator opened was added by the writer.
//
// An append reads writer.applied (checkedAt) before it asks the filter (or
// looks up), so a miss covers every batch up to checkedAt. The writer, as
// it runs the append into a batch, asks the filter again, which by now
// holds every batch applied and the earlier appends of this one; only if
// the filter cannot rule the id out does it look among the earlier ops of
// the same batch (txn.inBatch: a scan, or a map while the filter is not
// ready) and, if batches were applied since checkedAt, up the id in Pebble
// itself. Until seenReady every append looks its id up in Pebble, on the
// writer too when batches were applied meanwhile (the first seconds after
// opening a large store). Keys are only added: a batch that fails, or a
// deleted or expired message, leaves a false positive, which costs a
// lookup. The filter lives in memory only and is rebuilt at each Open,
// about 1.75 bytes per stored message (more after it grows).
//
// The filter replaced the writer's maps of the dedupe keys of its last
// 65,536 to 131,072 appends (whole messages, ~30 MB of pointerful heap
// that every GC scanned, and a map insert per append).

// dedupeHash is the filter's hash of sender's client message id: the hash
// of its dedupe key without the table byte.
func dedupeHash(seed maphash.Seed, sender int64, cmid string) uint64 {
	var buf [64]byte
	b := binary.BigEndian.AppendUint64(buf[:0], uint64(sender))
	return maphash.Bytes(seed, append(b, cmid...))
}

// seenCapacity sizes the filter's first segment from the disk the dedupe
// keys take (their sstables: about 39 bytes per entry with 6-byte client
// ids, more with longer ones), so a large store starts with one segment of
// about the right size; one that is too small grows by another.
func (s *Store) seenCapacity() int {
	n, err := s.db.EstimateDiskUsage([]byte{tDedupe}, []byte{tDedupe + 1})
	if err != nil {
		return 0
	}
	return int(min(n/32, 1<<30))
}

// loadSeen adds the dedupe keys stored before Open to the filter, then sets
// seenReady. It stops early, leaving the filter unused, when the store
// closes or the read fails.
func (s *Store) loadSeen() {
	defer close(s.seenDone)
	start := time.Now()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tDedupe}, UpperBound: []byte{tDedupe + 1}})
	if err != nil {
		s.log.Error("pebble: client message id filter not loaded", "err", err)
		return
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 && s.closed.Load() {
			break
		}
		s.seen.Add(maphash.Bytes(s.seenSeed, it.Key()[1:]))
	}
	if err := it.Close(); err != nil || s.closed.Load() {
		if err != nil {
			s.log.Error("pebble: client message id filter not loaded", "err", err)
		}
		return
	}
	s.seenReady.Store(true)
	s.log.Debug("pebble: client message id filter loaded", "keys", n, "bytes", s.seen.Bytes(), "took", time.Since(start))
}

// newID reports whether the filter proves that sender never stored the
// client message id whose hash is h.
func (s *Store) newID(h uint64) bool {
	return s.seenReady.Load() && !s.seen.MayContain(h)
}
