package server

import (
	"context"
	"errors"

	"github.com/parleyim/parley/server/files"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/fulltext"
)

// The collector of unreferenced files (server/files, gc.go) asks which
// files messages hold: the store's record of file references
// (storage.FileRefs, kept by the text index), each checked against the
// message as stored now (recalled, edited to another file, deleted or
// expired: not held).

var _ files.Refs = fileAccess{}

// Held implements files.Refs.
func (a fileAccess) Held(ctx context.Context, sums []blob.Sum) (map[blob.Sum]bool, error) {
	fr, ok := a.s.store.(storage.FileRefs)
	sr, ok2 := a.s.store.(storage.Searcher)
	held := make(map[blob.Sum]bool, len(sums))
	if !ok || !ok2 {
		// No record of references: every file is held.
		for _, s := range sums {
			held[s] = true
		}
		return held, nil
	}
	if err := sr.IndexFlush(ctx); err != nil {
		return nil, err
	}
	keys := make([][32]byte, len(sums))
	for i, s := range sums {
		keys[i] = s
	}
	refs, err := fr.FileRefs(ctx, keys)
	if err != nil {
		return nil, err
	}
	// The messages, by conversation, and the files each may hold.
	byConv := make(map[string]map[uint64][]blob.Sum)
	for sum, rs := range refs {
		for _, r := range rs {
			if byConv[r.Conv] == nil {
				byConv[r.Conv] = make(map[uint64][]blob.Sum)
			}
			byConv[r.Conv][r.Seq] = append(byConv[r.Conv][r.Seq], sum)
		}
	}
	for conv, seqs := range byConv {
		want := make([]uint64, 0, len(seqs))
		for seq := range seqs {
			want = append(want, seq)
		}
		msgs, err := a.s.store.MessagesAt(ctx, conv, want)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Recalled {
				continue
			}
			if sum, ok := fulltext.AttachmentSum(m); ok {
				for _, s := range seqs[m.Seq] {
					if s == sum {
						held[s] = true
					}
				}
			}
		}
	}
	return held, nil
}

// CollectFiles runs the collector of unreferenced files once (it also runs
// by itself every FilesGC.Interval) and returns how many files it removed;
// 0 and no error without one.
func (s *Server) CollectFiles(ctx context.Context) (int, error) {
	if s.collector == nil {
		return 0, nil
	}
	return s.collector.Run(ctx)
}

// FilesGCStats returns the collector's counters (zero without one).
func (s *Server) FilesGCStats() files.GCStats {
	if s.collector == nil {
		return files.GCStats{}
	}
	return s.collector.Stats()
}
