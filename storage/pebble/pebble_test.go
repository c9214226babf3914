package pebble

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"

	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/storetest"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, hook storage.CommitHook) storage.Store {
		return open(t, Config{Dir: t.TempDir(), Hook: hook})
	})
}

// openBench is storetest.OpenBench: a store in a directory of its own.
func openBench(b *testing.B, hook storage.CommitHook) storage.Store {
	s, err := Open(Config{Dir: b.TempDir(), Hook: hook})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkAppend is the shared append benchmark (storetest.BenchAppend).
func BenchmarkAppend(b *testing.B) {
	storetest.BenchAppend(b, openBench, true)
}

// BenchmarkReopen measures a restart: Open on a directory holding
// PARLEY_REOPEN_MESSAGES messages (default 200,000) over 500 conversations,
// then the first Append to one of them (which reads its last seq) and a
// Sync of it, as a node that starts serving; five times, on one build of
// the data (run it with -benchtime 1x). Close leaves the store as a killed
// node does: its last memtable only in the WAL, which Open replays. A sixth
// Open reports how long the client message id filter takes to load behind
// it, and its size per stored message.
func BenchmarkReopen(b *testing.B) {
	n := 200_000
	if v := os.Getenv("PARLEY_REOPEN_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 100)
	var wg sync.WaitGroup
	var next atomic.Int64
	start := time.Now()
	for range 256 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				peer := i%storetest.BenchConvs + 2
				m := &protocol.Message{MsgID: i, Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
					ClientMsgID: strconv.FormatInt(i, 10), Body: body, ServerTime: i}
				if _, _, err := s.Append(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d messages stored in %v", n, time.Since(start))
	conv := protocol.DirectConv(1, 2)
	const opens = 5
	var total, worst time.Duration
	for i := range opens {
		start := time.Now()
		s, err := Open(Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		m := &protocol.Message{MsgID: int64(n + i + 1), Conv: conv, From: 1, To: 2, Body: body, ServerTime: 1}
		if _, _, err := s.Append(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		if _, _, last, _, err := s.After(context.Background(), 2, conv, 0, 50); err != nil || last == 0 {
			b.Fatalf("After: last %d, %v", last, err)
		}
		took := time.Since(start)
		total, worst = total+took, max(worst, took)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	// Then once more, until the client message id filter is loaded (in the
	// background: appends look ids up in Pebble until then).
	start = time.Now()
	s, err = Open(Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	<-s.seenDone
	loaded := time.Since(start)
	if !s.seenReady.Load() {
		b.Fatal("client message id filter not loaded")
	}
	b.ReportMetric(float64(s.seen.Bytes())/float64(n), "filter-B/msg")
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total.Milliseconds())/opens, "ms/open")
	b.ReportMetric(float64(worst.Milliseconds()), "max-ms/open")
	b.ReportMetric(float64(loaded.Milliseconds()), "ms/filter-load")
	b.ReportMetric(float64(n), "messages")
}

// BenchmarkSearch is the shared search benchmark (storetest.BenchSearch).
func BenchmarkSearch(b *testing.B) {
	storetest.BenchSearch(b, func(b *testing.B, hook storage.CommitHook) storage.Store {
		s, err := Open(Config{Dir: b.TempDir(), Hook: hook, Logger: testLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, true)
}

// BenchmarkEvents is the shared events benchmark (storetest.BenchEvents).
func BenchmarkEvents(b *testing.B) {
	storetest.BenchEvents(b, func(b *testing.B, hook storage.CommitHook) storage.Store {
		s, err := Open(Config{Dir: b.TempDir(), Hook: hook})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}
