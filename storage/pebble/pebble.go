// Package pebble is Parley's embedded storage backend: one Pebble database
// (github.com/cockroachdb/pebble/v2, the LSM engine of CockroachDB) holding
// everything a node keeps: accounts, tokens, the social graph, groups, bans,
// messages and cursors, so one batch is atomic across all of them.
//
// Every write goes to one writer goroutine that gathers the queued writes
// into one Pebble batch and commits it with a single WAL write and fsync
// (group commit); see writer.go. Reads run on the caller's goroutine against
// a snapshot, never waiting for the writer. The key layout is in keys.go;
// docs/storage.md says what one commit costs and what a crash can lose.
//
// A caller whose context ends while its write is queued gets ctx.Err() back;
// the write is skipped if the writer has not started it yet, but may still
// commit if it has. Only one Store may have a data directory open at a time
// (Pebble locks it).
package pebble

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
	"github.com/parleyim/parley/storage/internal/batch"
	"github.com/parleyim/parley/storage/internal/idfilter"
	"github.com/parleyim/parley/storage/internal/lazycursor"
)

// Config configures Open. Zero values are documented per field.
type Config struct {
	Dir  string             // data directory, created if missing
	Hook storage.CommitHook // may be nil
	// Stages, when set, is told how long Appends spend in each stage of
	// the group commit (storage.Stage).
	Stages   storage.StageObserver
	MaxBatch int // max writes per group commit; 0 means DefaultMaxBatch
	// AckDelay is how long a read cursor move may wait for a batch to ride
	// with before it gets one of its own; 0 means DefaultAckDelay. It bounds
	// what a crash can take back of the cursors.
	AckDelay time.Duration
	// MemTableSize is Pebble's memtable size; 0 means 64 MiB. Opening
	// replays at most about two memtables of WAL.
	MemTableSize uint64
	// CacheSize is Pebble's block cache for table blocks; 0 means 64 MiB.
	// (Pebble charges its memtables to the same cache, so Open sizes the
	// cache at CacheSize plus three memtables.)
	CacheSize int64
	Logger    *slog.Logger // nil means discard
}

// Defaults of Config.
const (
	DefaultMaxBatch     = 1024
	DefaultAckDelay     = 20 * time.Millisecond
	defaultMemTableSize = 64 << 20
	defaultCacheSize    = 64 << 20
)

// Store is the Pebble backend. Its methods are safe for concurrent use.
type Store struct {
	log     *slog.Logger
	db      *pebble.DB
	w       *writer
	cursors *cursors
	idx     *fulltext.Indexer
	// delivered holds the delivery cursor moves not yet written
	// (delivered.go).
	delivered *lazycursor.Deliveries

	// seen holds the hash of every dedupe key (sender, client message id)
	// in the database once seenReady is set: a miss means the id is new and
	// its lookup is skipped (dedupe.go).
	seen      *idfilter.Filter
	seenSeed  maphash.Seed
	seenReady atomic.Bool
	seenDone  chan struct{} // closed when loadSeen returns

	// pacing paces flushes and compactions (pace.go) until paceQuit
	// closes; paceDone closes when its goroutine is gone.
	pacing             *pacing
	paceQuit, paceDone chan struct{}

	// closed is set first by Close; reads hold rw shared while they use db,
	// and Close takes it exclusively before closing db.
	closed atomic.Bool
	rw     sync.RWMutex
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the database in cfg.Dir and starts the
// writer. It reads no messages: a conversation's last seq is read when the
// writer first needs it.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pebble: Config.Dir is empty")
	}
	if cfg.MaxBatch < 0 || cfg.AckDelay < 0 {
		return nil, fmt.Errorf("pebble: Config.MaxBatch %d or AckDelay %v is negative", cfg.MaxBatch, cfg.AckDelay)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.AckDelay == 0 {
		cfg.AckDelay = DefaultAckDelay
	}
	if cfg.MemTableSize == 0 {
		cfg.MemTableSize = defaultMemTableSize
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = defaultCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("pebble: create data dir: %w", err)
	}
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       cfg.MemTableSize,
		CacheSize:          cfg.CacheSize + 3*int64(cfg.MemTableSize),
		Logger:             pebbleLogger{cfg.Logger},
	}
	pace := newPacing(cfg.Logger)
	opts.FS = pacedFS{vfs.Default, pace}
	opts.EventListener = &pebble.EventListener{}
	pace.listen(opts.EventListener)
	opts.EnsureDefaults()
	pace.memTableSize, pace.l0Threshold = opts.MemTableSize, opts.L0CompactionThreshold
	// Bloom filters: the dedupe lookup of every append is usually a miss.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", cfg.Dir, err)
	}
	s := &Store{log: cfg.Logger, db: db, cursors: newCursors(), seenSeed: maphash.MakeSeed(), seenDone: make(chan struct{})}
	s.seen = idfilter.New(s.seenCapacity())
	s.delivered = lazycursor.NewDeliveries("pebble", cfg.Logger, s.writeDelivered)
	s.w = &writer{
		db:         db,
		hook:       cfg.Hook,
		stages:     cfg.Stages,
		maxBatch:   cfg.MaxBatch,
		ackDelay:   cfg.AckDelay,
		log:        cfg.Logger,
		cursors:    s.cursors,
		ops:        batch.New[op](cfg.MaxBatch),
		kick:       make(chan struct{}, 1),
		synced:     make(chan *txn, maxInFlight),
		storedFree: make(chan []protocol.Message, 4),
		idle:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		seqs:       make(map[string]uint64),
		timers:     make(map[string]uint32),
	}
	if err := s.loadCounters(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pebble: open %s: %w", cfg.Dir, err)
	}
	if err := s.indexOpenGroups(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pebble: open %s: index open groups: %w", cfg.Dir, err)
	}
	if err := s.indexFileRefs(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pebble: open %s: file references: %w", cfg.Dir, err)
	}
	s.idx = fulltext.NewIndexer(fulltext.IndexerConfig{Lists: newIndexLists(db), Logger: cfg.Logger})
	s.w.indexer = s.idx
	s.w.seen, s.w.seenReady = s.seen, &s.seenReady
	go s.w.run()
	go s.w.complete()
	go s.loadSeen()
	s.pacing, s.paceQuit, s.paceDone = pace, make(chan struct{}), make(chan struct{})
	go pace.run(db, s.paceQuit, s.paceDone)
	return s, nil
}

// loadCounters reads the last user and group ids: two seeks.
func (s *Store) loadCounters() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tUser}, UpperBound: []byte{tUser + 1}})
	if err != nil {
		return err
	}
	if it.Last() {
		if k := it.Key(); len(k) == 9 {
			s.w.lastUser = int64(seqOfKey(k))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	v, found, err := getFrom(s.db, keyLastGroup)
	if err != nil {
		return err
	}
	if found {
		if len(v) != 8 {
			return errCorrupt
		}
		s.w.lastGroup = int64(seqOfKey(v))
	}
	return nil
}

// Close stops accepting calls, commits the writes already queued and the
// pending cursors, and closes the database. Calls after Close, including
// Close, return storage.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), storage.DeliveredWriteTimeout)
	if err := s.delivered.Close(ctx); err != nil {
		s.log.Warn("pebble: delivery cursors not written", "err", err)
	}
	cancel()
	if !s.closed.CompareAndSwap(false, true) {
		return storage.ErrClosed
	}
	s.w.close()
	s.idx.Close()
	<-s.seenDone
	close(s.paceQuit)
	<-s.paceDone
	s.rw.Lock() // wait for reads in flight
	defer s.rw.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble: close: %w", err)
	}
	return nil
}

// enter starts a read; it reports false once the store is closed. A true
// enter is paired with exit.
func (s *Store) enter() bool {
	if s.closed.Load() {
		return false
	}
	s.rw.RLock()
	if s.closed.Load() {
		s.rw.RUnlock()
		return false
	}
	return true
}

func (s *Store) exit() { s.rw.RUnlock() }

// readErr wraps an error of a read with what failed.
func (s *Store) readErr(what string, err error) error {
	return fmt.Errorf("pebble: %s: %w", what, err)
}

// DB exposes the engine for tools (metrics, checkpoints). Writing to it
// directly bypasses the writer and breaks the store's invariants.
func (s *Store) DB() *pebble.DB { return s.db }

// pebbleLogger sends Pebble's log lines to slog: its routine lines (flushes,
// compactions) at debug level.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("pebble: fatal: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}
