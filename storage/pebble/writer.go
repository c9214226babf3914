package pebble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
	"github.com/parleyim/parley/storage/internal/batch"
	"github.com/parleyim/parley/storage/internal/idfilter"
)

// Group commit.
//
// Callers queue ops on writer.ops (storage/internal/batch, the queue the
// MySQL writer uses too). The writer goroutine takes the first op,
// drains whatever else is queued (up to maxBatch) without waiting, runs them
// all into one Pebble batch and commits it with one WAL write and one fsync:
// while it commits, new ops queue up and form the next batch, so the batch
// grows with the load and one fsync serves many callers. While a batch waits
// for its fsync the writer lets the next one gather (gather), so under load
// there is about one batch per fsync.
//
// Within a batch the ops run in queue order, so ops queued by one goroutine
// commit in the order it queued them. An op that meets a domain error (a
// taken username, a full group) checks before it writes, so it records the
// error and writes nothing, and the batch goes on; a failure of the engine
// fails every op of the batch. After the commit is durable the writer calls
// the commit hook with the messages the batch stored, in the order they were
// appended, and only then answers the callers. Batches commit one after
// another, so the hook sees messages in commit order and sequences ascending
// per conversation.
//
// Read cursors (Ack) do not queue ops: they wait in cursors and ride with the
// next batch, or with a batch of their own ackDelay after the first one.

// maxInFlight bounds the batches applied and waiting for their fsync. Pebble
// syncs the WAL one fsync at a time and each fsync covers every batch
// written before it started, so the writer must not be kept from applying
// a batch when an fsync ends: a batch held back then misses the next fsync
// and waits for the one after. With the shared disk's fsync tail (p99
// ~20 ms, max ~80 ms at half rate) a few in flight was too few
// (docs/benchmarks.md, "Half-rate tail"); Pebble itself admits thousands.
const maxInFlight = 64

// maxGather bounds how long the writer holds the first op of a batch while
// an applied batch waits for its fsync (gather): during a slow fsync the
// ops gathered are applied in batches of about this much time, so little
// is left to apply when it ends.
var maxGather = 2 * time.Millisecond

// maxCachedConvs bounds the writer's conversation → last seq cache; past it
// the cache is emptied and refills from the database on demand.
const maxCachedConvs = 1 << 16

// op is one queued write.
type op interface {
	base() *opBase
	// exec runs the op into the batch. It returns an error only when the
	// batch must fail; a domain error goes in opBase.err.
	exec(t *txn) error
	// finish answers the caller with err: the op's domain error, a failure of
	// the batch, or the caller's ctx.Err() when the op was skipped.
	finish(err error)
}

// opBase is the part of an op shared by every kind.
type opBase struct {
	ctx context.Context
	err error // domain error, set by exec; written by the writer only
	// skipped is set when the caller's context ended before the op ran.
	skipped bool
	// reads is set by ops that read what earlier ops of their batch wrote:
	// such a batch is an indexed one.
	reads bool
}

func (o *opBase) base() *opBase { return o }

// writer owns the goroutine that batches ops.
type writer struct {
	db        *pebble.DB
	hook      storage.CommitHook
	stages    storage.StageObserver // may be nil
	indexer   *fulltext.Indexer     // told of each batch's messages
	maxBatch  int
	ackDelay  time.Duration
	log       *slog.Logger
	cursors   *cursors
	seen      *idfilter.Filter // the Store's; the writer adds each dedupe key it writes
	seenReady *atomic.Bool

	ops    *batch.Queue[op]
	kick   chan struct{} // a cursor is pending; capacity 1
	synced chan *txn     // applied batches, to complete in order
	// storedFree hands the stored messages' slices of finished batches
	// back to the committing goroutine, emptied, to fill again.
	storedFree chan []protocol.Message
	done       chan struct{} // closed when complete returns

	// applied counts the batches applied to the database (visible to reads);
	// durable counts those of them whose fsync has returned, and complete
	// signals idle (capacity 1) each time it counts one.
	applied atomic.Uint64
	durable atomic.Uint64
	idle    chan struct{}

	// Owned by the run goroutine.
	seqs      map[string]uint64 // conv → last seq
	timers    map[string]uint32 // conv → timer in seconds (expiry.go)
	lastUser  int64
	lastGroup int64
	// sweptTo and wheelLow bound where Expire's scan of the wheel starts
	// (expiry.go); sweptTo nil: at the wheel's start.
	sweptTo  []byte
	wheelLow int64
}

// queue hands o to the writer. It blocks while the queue is full, until ctx
// ends (ctx.Err()) or the store closes (ErrClosed).
func (w *writer) queue(ctx context.Context, o op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.base().ctx = ctx
	if err := w.ops.Put(ctx, o); err != nil {
		if errors.Is(err, batch.ErrClosed) {
			return storage.ErrClosed
		}
		return err
	}
	return nil
}

// syncOp is an op whose caller waits on a channel.
type syncOp struct {
	opBase
	done chan error
}

func (o *syncOp) finish(err error) { o.done <- err }

// do queues o (whose finish sends on ch) and waits for its result. If ctx
// ends first do returns ctx.Err(); the op still commits if the writer had
// already started it.
func (w *writer) do(ctx context.Context, o op, ch chan error) error {
	if err := w.queue(ctx, o); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wake tells the writer a cursor is pending.
func (w *writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// close stops accepting ops and waits until the queued ones, and the pending
// cursors, are committed.
func (w *writer) close() {
	w.ops.Close()
	<-w.done
}

// run is the writer goroutine.
func (w *writer) run() {
	defer close(w.synced)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	armed := false
	for {
		select {
		case o, ok := <-w.ops.Recv():
			if !ok {
				w.commit(nil) // the cursors still pending
				return
			}
			w.gather(hold)
			w.commit(w.ops.Fill(make([]op, 0, min(w.maxBatch, 1+w.ops.Len())), o, w.maxBatch))
		case <-w.kick:
			if !armed {
				timer.Reset(w.ackDelay)
				armed = true
			}
		case <-timer.C:
			armed = false
			w.commit(nil)
		}
	}
}

// gather waits, before the writer takes a batch from its queue, while an
// applied batch waits for its fsync: at most maxGather, and not at all when
// the queue already holds a full batch. Pebble syncs the WAL one fsync at a
// time, each covering every batch applied before it began, so a batch
// applied during an fsync waits for the next one anyway. Applied one by one
// as their ops arrived (about 5 ops a batch at 256 appenders), the batches
// each cost a WAL write, a flusher wake-up, a sync wait and a hook call;
// gathered, an fsync's worth of ops is one batch, applied as the fsync ends
// (complete signals idle), in time for the next. Acknowledgement is
// unchanged: every op still waits for its batch's fsync.
func (w *writer) gather(hold *time.Timer) {
	if w.applied.Load() == w.durable.Load() || w.ops.Len()+1 >= w.maxBatch {
		return
	}
	hold.Reset(maxGather)
	defer hold.Stop()
	for w.applied.Load() != w.durable.Load() {
		select {
		case <-w.idle:
		case <-hold.C:
			return
		}
	}
}

// commit runs ops, with the pending cursors, into one batch and applies it
// to the database without waiting for the fsync; complete waits for it. So
// the writer builds batch N+1 while the WAL syncs batch N. A batch is visible
// to reads once applied, a moment before it is durable; nothing is answered,
// hooked or acknowledged before it is durable.
func (w *writer) commit(ops []op) {
	if len(w.seqs) > maxCachedConvs {
		clear(w.seqs)
	}
	acks := w.cursors.take()
	if len(ops) == 0 && len(acks) == 0 {
		return
	}
	indexed := false
	for _, o := range ops {
		indexed = indexed || o.base().reads
	}
	start := time.Now()
	t := &txn{w: w, indexed: indexed, ops: ops, acks: acks, dedupeMap: !w.seenReady.Load()}
	if indexed {
		t.b = w.db.NewIndexedBatch()
	} else {
		t.b = w.db.NewBatch()
	}
	t.err = t.run(ops, acks)
	appends := 0 // those that ran: the others' callers had gone
	for _, o := range ops {
		if a, ok := o.(*appendOp); ok && !a.skipped {
			appends++
			if w.stages != nil {
				w.stages(storage.StageQueue, start.Sub(a.queued), 1)
			}
		}
	}
	t.appends = appends
	if t.err == nil && !t.b.Empty() {
		if t.err = w.db.ApplyNoSyncWait(t.b, pebble.Sync); t.err == nil {
			t.applied = true
			w.applied.Add(1)
			t.appliedAt = time.Now()
			if w.stages != nil && appends > 0 {
				w.stages(storage.StageWrite, t.appliedAt.Sub(start), appends)
			}
		}
	}
	if t.err != nil {
		// The caches may hold seqs and timers that never committed: the
		// next batch reads them back.
		clear(w.seqs)
		clear(w.timers)
		w.sweptTo = nil // the batch may have held a sweep that did not happen
	}
	w.synced <- t
}

// newID is Store.newID for the writer.
func (w *writer) newID(h uint64) bool { return w.seenReady.Load() && !w.seen.MayContain(h) }

// complete is the goroutine that waits for each applied batch to be durable,
// in commit order, and answers its callers.
func (w *writer) complete() {
	defer close(w.done)
	for t := range w.synced {
		w.finish(t)
	}
}

func (w *writer) finish(t *txn) {
	err := t.err
	if t.applied {
		if err = t.b.SyncWait(); err != nil {
			err = fmt.Errorf("sync: %w", err)
		} else if w.stages != nil && t.appends > 0 {
			w.stages(storage.StageSync, time.Since(t.appliedAt), t.appends)
		}
		w.durable.Add(1)
		select {
		case w.idle <- struct{}{}:
		default:
		}
	}
	_ = t.b.Close()
	if err != nil {
		err = fmt.Errorf("pebble: write batch: %w", err)
		w.log.Error("pebble: write batch failed", "ops", len(t.ops), "err", err)
		for _, o := range t.ops {
			if ob := o.base(); ob.skipped {
				o.finish(ob.err) // the caller has gone
			} else {
				o.finish(err)
			}
		}
		return
	}
	w.cursors.written(t.acks)
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		w.log.Debug("pebble: batch committed", "ops", len(t.ops), "messages", len(t.stored), "cursors", len(t.acks))
	}
	if w.hook != nil && len(t.stored) > 0 {
		w.hook(t.stored)
	}
	if len(t.stored) > 0 {
		w.indexer.Note(t.stored)
	}
	for _, o := range t.ops {
		o.finish(o.base().err)
	}
	w.recycleStored(t.stored)
}

// maxKeptStored bounds the capacity of a stored messages' slice kept for
// another batch.
const maxKeptStored = 4096

// recycleStored hands a finished batch's slice of stored messages back to
// commit: the hook and the indexer keep copies, not the slice.
func (w *writer) recycleStored(s []protocol.Message) {
	if s == nil || cap(s) > maxKeptStored {
		return
	}
	clear(s)
	select {
	case w.storedFree <- s[:0]:
	default:
	}
}

// storedSlice returns an empty slice for a batch's stored messages.
func (w *writer) storedSlice(n int) []protocol.Message {
	select {
	case s := <-w.storedFree:
		return s
	default:
		return make([]protocol.Message, 0, n)
	}
}

// txn is the state of one batch.
type txn struct {
	w       *writer
	ops     []op
	acks    []pendingCursor
	err     error // the batch failed before it was applied
	applied bool  // applied without waiting for its fsync
	// appends counts the batch's Appends that ran (storage.StageObserver);
	// appliedAt is when it was applied.
	appends   int
	appliedAt time.Time
	b         *pebble.Batch
	indexed   bool               // b answers reads, seeing its own writes
	stored    []protocol.Message // new messages, in append order; goes to the hook
	// dedupeMap: the filter was not ready when the batch began, so the
	// batch's earlier appends are found in dups; otherwise the filter rules
	// out most of them and a hit scans stored (inBatch).
	dedupeMap bool
	dups      map[dupRef]protocol.Message
	kbuf      []byte
	vbuf      []byte
}

// dupRef is a (sender, client message id) pair.
type dupRef struct {
	from int64
	cmid string
}

func (t *txn) run(ops []op, acks []pendingCursor) error {
	for _, a := range acks {
		if err := t.writeAck(a); err != nil {
			return err
		}
	}
	for _, o := range ops {
		ob := o.base()
		if err := ob.ctx.Err(); err != nil {
			ob.err, ob.skipped = err, true // the caller has gone
			continue
		}
		if err := o.exec(t); err != nil {
			return err
		}
	}
	return nil
}

// reader is what a txn reads: its batch when indexed, else the database
// (ops of an unindexed batch read nothing the batch wrote).
func (t *txn) reader() pebble.Reader {
	if t.indexed {
		return t.b
	}
	return t.w.db
}

// get reads a key; found is false when it is absent. The value is a copy.
func (t *txn) get(k []byte) (v []byte, found bool, err error) {
	return getFrom(t.reader(), k)
}

func getFrom(r pebble.Reader, k []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v = append([]byte{}, v...)
	return v, true, closer.Close()
}

func (t *txn) has(k []byte) (bool, error) {
	_, found, err := t.get(k)
	return found, err
}

func (t *txn) set(k, v []byte) error { return t.b.Set(k, v, nil) }
func (t *txn) del(k []byte) error    { return t.b.Delete(k, nil) }

// delPrefix deletes every key that starts with p.
func (t *txn) delPrefix(p []byte) error { return t.b.DeleteRange(p, prefixEnd(p), nil) }

// scan calls fn for each key with prefix p, in order, as the txn sees them.
// Key and value are valid during the call only.
func (t *txn) scan(p []byte, fn func(k, v []byte) error) error {
	return scanFrom(t.reader(), p, fn)
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

func scanFrom(r pebble.Reader, p []byte, fn func(k, v []byte) error) (err error) {
	return scanRange(r, p, prefixEnd(p), fn)
}

// scanRange calls fn for each key in [lo, hi) in order, until fn returns
// errStop (scanRange then returns nil) or another error.
func scanRange(r pebble.Reader, lo, hi []byte, fn func(k, v []byte) error) (err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return it.Error()
}

// lastSeq returns conv's last sequence, from the cache or the database.
func (t *txn) lastSeq(conv string) (uint64, error) {
	if seq, ok := t.w.seqs[conv]; ok {
		return seq, nil
	}
	// A conversation not in the cache has nothing in this batch.
	seq, _, err := lastMessage(t.w.db, conv)
	if err != nil {
		return 0, fmt.Errorf("read last seq: %w", err)
	}
	t.w.seqs[conv] = seq
	return seq, nil
}

// lastMessage returns the seq and server time of conv's newest message, or
// zeros when it has none.
func lastMessage(r pebble.Reader, conv string) (seq uint64, serverTime int64, err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: msgPrefix(conv), UpperBound: msgEnd(conv)})
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	if !it.Last() {
		return 0, 0, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return 0, 0, err
	}
	return seqOfKey(it.Key()), msgTime(v), nil
}

// setSeq records that conv's last seq is now seq.
func (t *txn) setSeq(conv string, seq uint64) { t.w.seqs[conv] = seq }

// txOp runs fn in the batch: the rare writes of accounts, tokens and the
// social graph. fn returns a domain error to hand the caller, having written
// nothing, or a failure (err) that fails the whole batch.
type txOp struct {
	syncOp
	fn func(t *txn) (domain error, err error)
}

func (o *txOp) exec(t *txn) error {
	domain, err := o.fn(t)
	o.err = domain
	return err
}

// write runs fn as one op of the writer and waits for its commit.
func (s *Store) write(ctx context.Context, what string, fn func(t *txn) (error, error)) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	o := &txOp{fn: func(t *txn) (error, error) {
		domain, err := fn(t)
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return domain, err
	}}
	o.reads = true
	o.done = make(chan error, 1)
	return s.w.do(ctx, o, o.done)
}
