package pebble

import (
	"errors"
	"log/slog"
	"testing"

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

// BenchmarkAppend is the shared append benchmark (storetest.BenchAppend).
func BenchmarkAppend(b *testing.B) {
	storetest.BenchAppend(b, func(b *testing.B, hook storage.CommitHook) storage.Store {
		s, err := Open(Config{Dir: b.TempDir(), Hook: hook})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, true)
}
