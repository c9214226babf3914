package files

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/storage/blob"
)

// The collector removes files no stored message holds: a file uploaded and
// never sent, or whose messages were all recalled, edited to another file
// or expired. It runs in bounded steps: each run lists the next Batch
// files (in order of hash, from where the last run stopped, around again
// at the end), asks the store which of those older than the grace period
// a message holds, and removes the others (blob.Collector.Remove, safe
// against an upload of the same content meanwhile).

// Refs is what the collector asks the server.
type Refs interface {
	// Held returns those of sums that a message the store holds now has
	// an attachment of (its latest version; not recalled, not deleted).
	// It first lets the store's index catch up with what is committed.
	Held(ctx context.Context, sums []blob.Sum) (map[blob.Sum]bool, error)
}

// GCConfig configures a collector; zero values take the defaults beside
// them.
type GCConfig struct {
	Store blob.Store // required; a blob.Collector (both stores are)
	Refs  Refs       // required
	// Grace is how long a file is kept after its last upload whether or
	// not a message holds it: the time a client has between an upload
	// and the Send of its message. Default DefaultGrace.
	Grace time.Duration
	// Interval is the time between runs. Default 1 minute.
	Interval time.Duration
	// Batch is how many files one run examines at most. Default 1000.
	Batch int
	// RunTimeout bounds one run. Default 1 minute.
	RunTimeout time.Duration
	Logger     *slog.Logger
}

// DefaultGrace is GCConfig.Grace when zero.
const DefaultGrace = 24 * time.Hour

// GCStats counts a collector's work since it started.
type GCStats struct {
	Runs         int64 // runs finished
	Examined     int64 // files listed
	Held         int64 // files past the grace period that a message holds
	Removed      int64 // files removed
	RemovedBytes int64
	Kept         int64 // files Remove kept: uploaded again meanwhile
	Errors       int64 // runs that failed
}

// Collector removes unreferenced files (see GCConfig).
type Collector struct {
	cfg    GCConfig
	col    blob.Collector
	mu     sync.Mutex // one run at a time
	cursor blob.Sum   // the last file examined; zero: from the start

	runs, examined, held, removed, removedBytes, kept, errs atomic.Int64
}

// NewCollector checks cfg.
func NewCollector(cfg GCConfig) (*Collector, error) {
	col, ok := cfg.Store.(blob.Collector)
	switch {
	case cfg.Store == nil || cfg.Refs == nil:
		return nil, errors.New("files: GCConfig needs Store and Refs")
	case !ok:
		return nil, errors.New("files: the file store cannot be collected (no blob.Collector)")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{cfg: cfg, col: col}, nil
}

// Stats returns the collector's counters.
func (c *Collector) Stats() GCStats {
	return GCStats{c.runs.Load(), c.examined.Load(), c.held.Load(), c.removed.Load(), c.removedBytes.Load(), c.kept.Load(), c.errs.Load()}
}

// Loop runs the collector every Interval until quit closes.
func (c *Collector) Loop(quit <-chan struct{}) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RunTimeout)
		go func() {
			select {
			case <-quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := c.Run(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("files: collection failed", "err", err)
		}
		cancel()
	}
}

// Run is one run: it examines the next Batch files and returns how many it
// removed. A run waits for one running.
func (c *Collector) Run(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.run(ctx)
	if err != nil {
		c.errs.Add(1)
	}
	c.runs.Add(1)
	return n, err
}

// recoverAfter is how old a file moved aside by a Remove must be for
// Recover to put it back: a Remove takes seconds.
const recoverAfter = 10 * time.Minute

func (c *Collector) run(ctx context.Context) (int, error) {
	before := time.Now().Add(-c.cfg.Grace)
	if c.cursor == (blob.Sum{}) {
		// Once around: what a Remove cut short left aside goes back.
		n, err := c.col.Recover(ctx, time.Now().Add(-recoverAfter))
		if err != nil {
			return 0, err
		}
		if n > 0 {
			c.cfg.Logger.Info("files: put back files a removal left aside", "files", n)
		}
	}
	infos, err := c.col.List(ctx, c.cursor, c.cfg.Batch)
	if err != nil {
		return 0, err
	}
	c.examined.Add(int64(len(infos)))
	next := blob.Sum{} // around again
	if len(infos) == c.cfg.Batch {
		next = infos[len(infos)-1].Sum
	}
	var old []blob.Info
	var sums []blob.Sum
	for _, in := range infos {
		if in.Modified.Before(before) {
			old = append(old, in)
			sums = append(sums, in.Sum)
		}
	}
	if len(old) == 0 {
		c.cursor = next
		return 0, nil
	}
	held, err := c.cfg.Refs.Held(ctx, sums)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range old {
		if held[in.Sum] {
			c.held.Add(1)
			continue
		}
		ok, err := c.col.Remove(ctx, in.Sum, before)
		if err != nil {
			return n, err
		}
		if !ok {
			c.kept.Add(1)
			continue
		}
		n++
		c.removed.Add(1)
		c.removedBytes.Add(in.Size)
		c.cfg.Logger.Debug("files: removed", "sha256", in.Sum.String(), "size", in.Size)
	}
	c.cursor = next
	return n, nil
}
