package pebble

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
)

// The text index (storage/fulltext) lives beside the messages:
//
//	q conv 0 bucket n    → segment: one pass's lists of a bucket (segments.go)
//	s conv 0 bucket gram → posting list: uvarint offsets, appended with Merge
//	S conv               → the seq up to which conv is indexed
//
// Only the indexer's goroutine and Unindex write these keys, under the
// indexer's lock, and not through the writer: an index batch is applied
// without waiting for an fsync (the WAL keeps it in order with the message
// batches, and a crash that loses it loses its progress key with it, so the
// indexer indexes those messages again). The merge operator is Pebble's
// default, which concatenates: a list grows without being read.

var _ storage.Searcher = (*Store)(nil)

func postingPrefix(conv string, bucket uint64) []byte { return convKey(tPosting, conv, bucket) }

func postingKey(conv string, bucket uint64, g fulltext.Gram) []byte {
	return binary.BigEndian.AppendUint64(postingPrefix(conv, bucket), uint64(g))
}

func progressKey(conv string) []byte { return append([]byte{tProgress}, conv...) }

// Search implements storage.Searcher on one snapshot.
func (s *Store) Search(ctx context.Context, q fulltext.Query) (fulltext.Page, error) {
	if !s.enter() {
		return fulltext.Page{}, storage.ErrClosed
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	p, err := fulltext.Search(ctx, searchView{v: v, hides: make(map[string]bool)}, q)
	if err != nil && !errors.Is(err, fulltext.ErrEmptyQuery) && !errors.Is(err, fulltext.ErrTooBroad) && ctx.Err() == nil {
		err = s.readErr("search", err)
	}
	return p, err
}

// Unindex implements storage.Searcher.
func (s *Store) Unindex(ctx context.Context, msgs []protocol.Message) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return s.idx.Remove(ctx, msgs)
}

// IndexStats returns the indexer's counters since the store opened.
func (s *Store) IndexStats() fulltext.Stats { return s.idx.Stats() }

// IndexFlush implements storage.Searcher.
func (s *Store) IndexFlush(ctx context.Context) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return s.idx.Flush(ctx)
}

// searchView is fulltext.Source on a snapshot.
type searchView struct {
	v view
	// hides records, per conversation, whether the user hid any message
	// there: most hid none, and their candidates need no lookup each.
	hides map[string]bool
}

func (sv searchView) Memberships(ctx context.Context, user int64) ([]fulltext.Membership, error) {
	var out []fulltext.Membership
	p := key(tCursor, user)
	err := scanFrom(sv.v.snap, p, func(k, val []byte) error {
		c, err := parseCursor(val)
		if err != nil {
			return err
		}
		out = append(out, fulltext.Membership{Conv: string(k[len(p):]), Cleared: c.cleared})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Last, out[i].LastTime, err = lastMessage(sv.v.snap, out[i].Conv); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (sv searchView) Lists(ctx context.Context, conv string, bucket uint64, ranges []fulltext.GramRange) ([][]byte, error) {
	out := make([][]byte, len(ranges))
	for i, r := range ranges {
		if r.Lo == r.Hi {
			v, _, err := getFrom(sv.v.snap, postingKey(conv, bucket, r.Lo))
			if err != nil {
				return nil, err
			}
			out[i] = v
			continue
		}
		err := scanRange(sv.v.snap, postingKey(conv, bucket, r.Lo), postingKey(conv, bucket, r.Hi+1), func(_, v []byte) error {
			out[i] = append(out[i], v...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Then the passes not yet folded into the lists.
	if err := segmentLists(sv.v.snap, out, conv, bucket, ranges); err != nil {
		return nil, err
	}
	return out, nil
}

func (sv searchView) Messages(ctx context.Context, user int64, conv string, seqs []uint64) ([]protocol.Message, error) {
	out := make([]protocol.Message, 0, len(seqs))
	hides, known := sv.hides[conv]
	if !known {
		p := hiddenPrefix(user, conv)
		err := scanFrom(sv.v.snap, p, func(_, _ []byte) error {
			hides = true
			return errStop
		})
		if err != nil {
			return nil, err
		}
		sv.hides[conv] = hides
	}
	// Most runs of candidates have no Meta between them (no reply, mention
	// or event): one seek says so, instead of a read per candidate.
	metas := false
	if len(seqs) > 0 {
		lo, hi := slices.Min(seqs), slices.Max(seqs)
		err := scanRange(sv.v.snap, metaKey(conv, lo), metaKey(conv, hi+1), func(_, _ []byte) error {
			metas = true
			return errStop
		})
		if err != nil {
			return nil, err
		}
	}
	for _, seq := range seqs {
		if hides {
			_, hidden, err := getFrom(sv.v.snap, hiddenKey(user, conv, seq))
			if err != nil {
				return nil, err
			}
			if hidden {
				continue
			}
		}
		k := msgKey(conv, seq)
		v, found, err := getFrom(sv.v.snap, k)
		if err != nil {
			return nil, err
		}
		if !found || msgGone(v, sv.v.now) {
			continue
		}
		m, err := parseMessage(k, v)
		if err != nil {
			return nil, err
		}
		if metas {
			mt, err := getMeta(viewGetter{sv.v}, conv, seq)
			if err != nil {
				return nil, err
			}
			storage.Fold(&m, &mt, protocol.ShownReactors)
		}
		out = append(out, m)
	}
	return out, nil
}

// indexLists is fulltext.Lists on the database. Its methods run under the
// indexer's lock.
type indexLists struct {
	db *pebble.DB
	// pieces counts the merge operands each list got since it was last
	// written whole, by a hash of the list's key. A read merges every
	// operand the store has not compacted yet, one step each; at maxPieces
	// Add rewrites the list whole instead (a read and a write at indexing
	// time, so searches find few pieces). The map holds no pointers, so the
	// collector does not walk it: keyed by the keys themselves, it held up
	// to a million strings, and every collection marked them all while
	// sends waited (docs/benchmarks.md, "Paced background writes"). Two
	// keys of one hash share a count, which only moves a rewrite.
	pieces    map[uint64]uint8
	pieceSeed maphash.Seed
	// segs counts the segments each bucket got since its last fold, by a
	// hash of its key prefix (as pieces; lost at a restart, so a bucket
	// may gather up to twice maxSegments); segNext numbers segments.
	segs    map[uint64]uint8
	segNext uint64
	// keys and seg are Add's buffers (the sorted keys of a pass, a
	// segment), kept from one pass to the next.
	keys []fulltext.ListKey
	seg  []byte
}

// maxKeptBuffer bounds the bytes of each buffer Add keeps for the next pass.
const maxKeptBuffer = 1 << 20

// maxPieces is the merge operands a list gets before it is rewritten whole;
// maxPieceKeys bounds the counters (past it they start again).
const (
	maxPieces    = 16
	maxPieceKeys = 1 << 18
)

func newIndexLists(db *pebble.DB) *indexLists {
	// Segment numbers go on from the clock, so those of an earlier run
	// are not taken again.
	return &indexLists{db: db, pieces: make(map[uint64]uint8), pieceSeed: maphash.MakeSeed(),
		segs: make(map[uint64]uint8), segNext: uint64(time.Now().UnixNano())}
}

func (l *indexLists) Progress(ctx context.Context, conv string) (uint64, error) {
	v, found, err := getFrom(l.db, progressKey(conv))
	if err != nil || !found {
		return 0, err
	}
	if len(v) != 8 {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(v), nil
}

// Behind walks the conversations with one seek each: to a conversation's
// first message key, then past its last.
func (l *indexLists) Behind(ctx context.Context) (out []fulltext.Pending, err error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tMessage}, UpperBound: []byte{tMessage + 1}})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for ok := it.First(); ok; ok = it.SeekGE(msgEnd(out0(out))) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := it.Key()
		if len(k) < 10 {
			return nil, errCorrupt
		}
		conv := string(k[1 : len(k)-9])
		if !it.SeekLT(msgEnd(conv)) {
			return nil, fmt.Errorf("behind: %w", errCorrupt)
		}
		last := seqOfKey(it.Key())
		p, err := l.Progress(ctx, conv)
		if err != nil {
			return nil, err
		}
		out = append(out, fulltext.Pending{Conv: conv, Last: last})
		if p >= last {
			out[len(out)-1].Last = 0 // up to date; kept for the next seek
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	live := out[:0]
	for _, p := range out {
		if p.Last > 0 {
			live = append(live, p)
		}
	}
	return live, nil
}

// out0 is the conversation of the last entry of out.
func out0(out []fulltext.Pending) string { return out[len(out)-1].Conv }

func (l *indexLists) Load(ctx context.Context, conv string, after uint64, n int) ([]protocol.Message, error) {
	var out []protocol.Message
	err := scanRange(l.db, msgKey(conv, after+1), msgEnd(conv), func(k, v []byte) error {
		m, err := parseMessage(k, v)
		if err != nil {
			return err
		}
		out = append(out, m)
		if len(out) == n {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if protocol.IsEvent(out[i].ContentType) {
			mt, err := getMeta(dbGetter{l.db}, conv, out[i].Seq)
			if err != nil {
				return nil, err
			}
			out[i].Ref = mt.Ref
		}
	}
	return out, nil
}

// dbGetter reads from the database's current state.
type dbGetter struct{ db *pebble.DB }

func (g dbGetter) get(k []byte) ([]byte, bool, error) { return getFrom(g.db, k) }

func (l *indexLists) Versions(ctx context.Context, conv string, seq uint64) ([]protocol.Message, error) {
	snap := l.db.NewSnapshot()
	defer snap.Close()
	mt, err := getMeta(snapGetter{snap}, conv, seq)
	if err != nil || mt.Recalled {
		return nil, err
	}
	var out []protocol.Message
	for _, at := range append([]uint64{seq}, mt.Edits...) {
		k := msgKey(conv, at)
		v, found, err := getFrom(snap, k)
		if err != nil || !found {
			return nil, err
		}
		m, err := parseMessage(k, v)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			m.ContentType = out[0].ContentType // an edit's body has its target's type
		}
		out = append(out, m)
	}
	return out, nil
}

// snapGetter reads from a snapshot.
type snapGetter struct{ s *pebble.Snapshot }

func (g snapGetter) get(k []byte) ([]byte, bool, error) { return getFrom(g.s, k) }

func (l *indexLists) Add(ctx context.Context, conv string, postings map[fulltext.ListKey][]byte, refs []fulltext.FileRef, progress uint64) error {
	b := l.db.NewBatch()
	defer b.Close()
	for _, r := range refs {
		if err := b.Set(fileRefKey(r.Sum, conv, r.Seq), nil, nil); err != nil {
			return err
		}
	}
	l.boundCounters()
	// A segment for each bucket of the pass (one, or two when the pass
	// crosses into the next): its lists sorted by bucket, then gram.
	keys := l.keys[:0]
	for k := range postings {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b fulltext.ListKey) int {
		return cmp.Or(cmp.Compare(a.Bucket, b.Bucket), cmp.Compare(a.Gram, b.Gram))
	})
	l.keys = keys
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].Bucket == keys[i].Bucket {
			j++
		}
		if err := l.addSegment(b, conv, keys[i].Bucket, keys[i:j], postings); err != nil {
			return err
		}
		i = j
	}
	if cap(l.seg) > maxKeptBuffer || cap(l.keys)*16 > maxKeptBuffer {
		// A rare large pass does not stay.
		l.seg, l.keys = nil, nil
	}
	cur, err := l.Progress(ctx, conv)
	if err != nil {
		return err
	}
	if progress > cur {
		if err := b.Set(progressKey(conv), binary.BigEndian.AppendUint64(nil, progress), nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// boundCounters starts the counters again once they pass maxPieceKeys.
func (l *indexLists) boundCounters() {
	if len(l.pieces) > maxPieceKeys {
		clear(l.pieces)
	}
	if len(l.segs) > maxPieceKeys {
		clear(l.segs)
	}
}

// appendList appends list to the posting list pk in b: as a merge operand,
// or, once the list has maxPieces of them, by writing it whole.
func (l *indexLists) appendList(b *pebble.Batch, pk, list []byte) error {
	h := maphash.Bytes(l.pieceSeed, pk)
	if n := l.pieces[h]; n < maxPieces {
		l.pieces[h] = n + 1
		return b.Merge(pk, list, nil)
	}
	old, _, err := getFrom(l.db, pk)
	if err != nil {
		return err
	}
	delete(l.pieces, h)
	return b.Set(pk, append(old, list...), nil)
}

func (l *indexLists) Remove(ctx context.Context, conv string, offs map[fulltext.ListKey]map[uint64]bool) error {
	b := l.db.NewBatch()
	defer b.Close()
	for k, o := range offs {
		pk := postingKey(conv, k.Bucket, k.Gram)
		v, found, err := getFrom(l.db, pk)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		delete(l.pieces, maphash.Bytes(l.pieceSeed, pk))
		if v = fulltext.RemovePostings(v, o); len(v) == 0 {
			err = b.Delete(pk, nil)
		} else {
			err = b.Set(pk, v, nil)
		}
		if err != nil {
			return err
		}
	}
	byBucket := make(map[uint64]map[fulltext.Gram]map[uint64]bool)
	for k, o := range offs {
		if byBucket[k.Bucket] == nil {
			byBucket[k.Bucket] = make(map[fulltext.Gram]map[uint64]bool)
		}
		byBucket[k.Bucket][k.Gram] = o
	}
	for bucket, o := range byBucket {
		if err := l.removeFromSegments(b, conv, bucket, o); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// keyFileRefs marks a store whose index records file references: one
// indexed before they were is indexed again (indexFileRefs).
var keyFileRefs = []byte("~F")

func fileRefPrefix(sum [32]byte) []byte { return append([]byte{tFileRef}, sum[:]...) }

func fileRefKey(sum [32]byte, conv string, seq uint64) []byte {
	k := append(fileRefPrefix(sum), conv...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// indexFileRefs makes a store indexed without file references index
// everything again, so that the collector of files sees every reference:
// it drops the index's lists and progress once.
func (s *Store) indexFileRefs() error {
	if _, found, err := getFrom(s.db, keyFileRefs); err != nil || found {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, t := range []byte{tPosting, tSegment, tProgress} {
		if err := b.DeleteRange([]byte{t}, []byte{t + 1}, nil); err != nil {
			return err
		}
	}
	if err := b.Set(keyFileRefs, []byte{1}, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

var _ storage.FileRefs = (*Store)(nil)

// FileRefs implements storage.FileRefs: a scan of each sum's keys.
func (s *Store) FileRefs(ctx context.Context, sums [][32]byte) (map[[32]byte][]storage.MessageRef, error) {
	if !s.enter() {
		return nil, storage.ErrClosed
	}
	defer s.exit()
	out := make(map[[32]byte][]storage.MessageRef)
	for _, sum := range sums {
		p := fileRefPrefix(sum)
		err := scanFrom(s.db, p, func(k, _ []byte) error {
			if len(k) < len(p)+9 {
				return errCorrupt
			}
			out[sum] = append(out[sum], storage.MessageRef{Conv: string(k[len(p) : len(k)-9]), Seq: seqOfKey(k)})
			return nil
		})
		if err != nil {
			return nil, s.readErr("file refs", err)
		}
	}
	return out, nil
}
