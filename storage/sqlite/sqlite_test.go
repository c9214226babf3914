package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/storetest"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
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

func msg(from, to int64, clientMsgID string, body string) *protocol.Message {
	return &protocol.Message{
		MsgID:       time.Now().UnixNano(),
		Conv:        protocol.DirectConv(from, to),
		From:        from,
		To:          to,
		ClientMsgID: clientMsgID,
		Body:        []byte(body),
		ServerTime:  time.Now().UnixMilli(),
	}
}

func mustAppend(t testing.TB, s *Store, m *protocol.Message) protocol.Message {
	t.Helper()
	stored, dup, err := s.Append(context.Background(), m)
	if err != nil || dup {
		t.Fatalf("Append: dup %v, %v", dup, err)
	}
	return stored
}

func seqs(t *testing.T, s *Store, user int64, conv string) []uint64 {
	t.Helper()
	msgs, _, _, _, err := s.After(context.Background(), user, conv, 0, 1000)
	if err != nil {
		t.Fatalf("After: %v", err)
	}
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

// TestReopen closes a store and opens its directory again: everything is
// there, seqs go on densely, and no migration runs twice.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !slices.Equal(s.migrated, seqRange(1, len(migrations))) {
		t.Errorf("first Open applied %v, want every step", s.migrated)
	}
	alice, err := s.CreateUser(ctx, "alice", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	if err := s.CreateToken(ctx, []byte("tok"), alice.ID, exp); err != nil {
		t.Fatal(err)
	}
	conv := protocol.DirectConv(1, 2)
	for i := range 5 {
		mustAppend(t, s, msg(1, 2, fmt.Sprint("c", i), fmt.Sprint("m", i)))
	}
	if err := s.Ack(ctx, 2, conv, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Hide(ctx, 2, conv, []uint64{5}, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, Config{Dir: dir})
	if len(s.migrated) != 0 {
		t.Errorf("reopen applied %v, want none", s.migrated)
	}
	var versions int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != len(migrations) {
		t.Errorf("schema_migrations has %d rows (%v), want %d", versions, err, len(migrations))
	}
	if u, err := s.UserByName(ctx, "ALICE"); err != nil || u.ID != alice.ID {
		t.Errorf("UserByName after reopen = %+v, %v", u, err)
	}
	if id, e, err := s.TokenUser(ctx, []byte("tok"), time.Now()); err != nil || id != alice.ID || !e.Equal(exp) {
		t.Errorf("TokenUser after reopen = %d %v %v", id, e, err)
	}
	if got := seqs(t, s, 1, conv); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("after reopen sees %v", got)
	}
	if dup, isDup, err := s.Append(ctx, msg(1, 2, "c2", "again")); err != nil || !isDup || dup.Seq != 3 {
		t.Errorf("dedupe after reopen = seq %d dup %v, %v", dup.Seq, isDup, err)
	}
	if m := mustAppend(t, s, msg(2, 1, "next", "next")); m.Seq != 6 {
		t.Errorf("first seq after reopen = %d, want 6", m.Seq)
	}
	if got := seqs(t, s, 2, conv); !slices.Equal(got, []uint64{2, 3, 4, 6}) {
		t.Errorf("hider after reopen sees %v, want [2 3 4 6]", got)
	}
	cs, err := s.Conversations(ctx, 2, 10)
	if err != nil || len(cs) != 1 || cs[0].AckSeq != 3 || cs[0].LastSeq != 6 || cs[0].Unread != 1 {
		t.Errorf("Conversations after reopen = %+v, %v", cs, err)
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", dsn(t.TempDir()+"/m.db", "_txlock", "immediate"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	steps := append(slices.Clip(migrations), migration{
		version: len(migrations) + 1,
		name:    "test step",
		stmts:   []string{`CREATE TABLE test_step (a INTEGER, b INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID`},
	})
	for _, c := range []struct {
		steps []migration
		want  []int
	}{
		{migrations, seqRange(1, len(migrations))},
		{migrations, nil},
		{steps, []int{len(steps)}},
		{steps, nil},
	} {
		got, err := migrate(ctx, db, c.steps)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("migrate to %d = %v, %v; want %v", len(c.steps), got, err, c.want)
		}
	}
	if _, err := db.Exec(`INSERT INTO test_step VALUES (1, 2)`); err != nil {
		t.Errorf("table from the new step: %v", err)
	}
	if _, err := migrate(ctx, db, migrations); err == nil {
		t.Error("migrate of a newer database to an older schema succeeded")
	}
	bad := []migration{{version: 1, name: "broken", stmts: []string{`CREATE TABLE x (a)`, `NOT SQL`}}}
	db2, err := sql.Open("sqlite", dsn(t.TempDir()+"/b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := migrate(ctx, db2, bad); err == nil {
		t.Fatal("broken migration succeeded")
	}
	var n int
	if err := db2.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("broken migration left its first table (%d, %v)", n, err)
	}
}

func seqRange(lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func TestOpenConfig(t *testing.T) {
	if _, err := Open(Config{}); err == nil {
		t.Error("Open without Dir succeeded")
	}
	if _, err := Open(Config{Dir: t.TempDir(), MaxBatch: -1}); err == nil {
		t.Error("Open with negative MaxBatch succeeded")
	}
	s := open(t, Config{Dir: t.TempDir() + "/new/sub"})
	var mode, sync string
	if err := s.wdb.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	if err := s.wdb.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != "2" {
		t.Errorf("synchronous = %q, %v; want 2 (FULL)", sync, err)
	}
}

// TestQueryPlans checks that the reads search indexes rather than scan.
func TestQueryPlans(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	for name, q := range map[string]string{
		"after":         afterQuery,
		"before":        beforeQuery,
		"dedupe":        `SELECT ` + messageCols + ` FROM messages WHERE sender = ? AND client_msg_id = ? AND client_msg_id <> ''`,
		"tokens":        `DELETE FROM tokens WHERE user_id = ?`,
		"conversations": convsQuery,
	} {
		rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+q, 1, 2, 3, 4)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		t.Logf("%s:\n  %s", name, strings.Join(plan, "\n  "))
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN ") && !strings.HasPrefix(step, "SCAN p") {
				t.Errorf("%s scans: %q", name, step)
			}
		}
	}
}

// gate is an op that holds the writer until released, so a test can line up
// the ops of the next batch.
type gate struct {
	opBase
	started, release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) exec(*batch) error {
	close(g.started)
	<-g.release
	return nil
}

var errInjected = errors.New("injected failure")

// failing is an op that fails its batch.
type failing struct{ opBase }

func (*failing) exec(*batch) error { return errInjected }

// hold queues a gate and returns once the writer is inside it.
func hold(t *testing.T, s *Store) (*gate, <-chan error) {
	t.Helper()
	g := newGate()
	done := make(chan error, 1)
	go func() { done <- s.w.do(context.Background(), g) }()
	<-g.started
	return g, done
}

// waitQueued waits until n ops are queued behind a held writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.w.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d ops queued, want %d", len(s.w.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFailedBatch fails a batch holding an Append: the Append fails, the
// hook never sees it, and its seq is used by the next message.
func TestFailedBatch(t *testing.T) {
	var hooked atomic.Int32
	s := open(t, Config{Dir: t.TempDir(), Hook: func(msgs []protocol.Message) { hooked.Add(int32(len(msgs))) }})
	conv := protocol.DirectConv(1, 2)
	mustAppend(t, s, msg(1, 2, "a", "first"))

	g, gateDone := hold(t, s)
	appendErr := make(chan error, 1)
	go func() {
		_, _, err := s.Append(context.Background(), msg(1, 2, "b", "lost"))
		appendErr <- err
	}()
	waitQueued(t, s, 1)
	failErr := make(chan error, 1)
	go func() { failErr <- s.w.do(context.Background(), &failing{}) }()
	waitQueued(t, s, 2)
	close(g.release)
	if err := <-gateDone; err != nil {
		t.Errorf("gate: %v", err)
	}
	if err := <-appendErr; !errors.Is(err, errInjected) {
		t.Errorf("Append in failed batch = %v, want the batch's error", err)
	}
	if err := <-failErr; !errors.Is(err, errInjected) {
		t.Errorf("failing op = %v", err)
	}
	if m := mustAppend(t, s, msg(2, 1, "b", "retry")); m.Seq != 2 {
		t.Errorf("seq after failed batch = %d, want 2", m.Seq)
	}
	if got := seqs(t, s, 1, conv); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("seqs = %v, want [1 2]", got)
	}
	if n := hooked.Load(); n != 2 {
		t.Errorf("hook got %d messages, want 2", n)
	}
	// The failed message's client id was not stored: its retry is new.
	if m := mustAppend(t, s, msg(1, 2, "b", "retry of lost")); m.Seq != 3 {
		t.Errorf("retry seq = %d, want 3", m.Seq)
	}
}

// TestCanceledContext: a caller whose context ends while its Append is queued
// gets ctx.Err(), and the Append, not started yet, is skipped.
func TestCanceledContext(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	conv := protocol.DirectConv(1, 2)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Append(done, msg(1, 2, "x", "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a done context = %v", err)
	}

	g, gateDone := hold(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	appendErr := make(chan error, 1)
	go func() {
		_, _, err := s.Append(ctx, msg(1, 2, "y", "y"))
		appendErr <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-appendErr; !errors.Is(err, context.Canceled) {
		t.Errorf("Append canceled while queued = %v", err)
	}
	close(g.release)
	<-gateDone
	if m := mustAppend(t, s, msg(1, 2, "z", "z")); m.Seq != 1 {
		t.Errorf("seq after a skipped Append = %d, want 1", m.Seq)
	}
	if got := seqs(t, s, 1, conv); !slices.Equal(got, []uint64{1}) {
		t.Errorf("seqs = %v, want [1]", got)
	}
}

// TestCloseFlushes closes a store with writes queued: they all commit, and
// Close leaves no goroutine behind.
func TestCloseFlushes(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g, gateDone := hold(t, s)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = s.Append(context.Background(), msg(1, 2, fmt.Sprint(i), "queued"))
		})
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(10 * time.Millisecond) // let Close stop the queue
	close(g.release)
	wg.Wait()
	<-gateDone
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued Append %d: %v", i, err)
		}
	}
	if _, _, err := s.Append(context.Background(), msg(1, 2, "late", "late")); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if now := runtime.NumGoroutine(); now > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before Open, %d after Close:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	}
	s = open(t, Config{Dir: dir})
	if got := seqs(t, s, 1, protocol.DirectConv(1, 2)); len(got) != n {
		t.Errorf("after reopen %d messages, want %d", len(got), n)
	}
}

// TestSmallBatches runs concurrent appenders against MaxBatch 3, so batches
// are cut by size.
func TestSmallBatches(t *testing.T) {
	var mu sync.Mutex
	var hooked []uint64
	s := open(t, Config{Dir: t.TempDir(), MaxBatch: 3, Hook: func(msgs []protocol.Message) {
		if len(msgs) > 3 {
			t.Errorf("batch of %d messages, MaxBatch 3", len(msgs))
		}
		mu.Lock()
		for _, m := range msgs {
			hooked = append(hooked, m.Seq)
		}
		mu.Unlock()
	}})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				mustAppend(t, s, msg(1, 2, fmt.Sprint(w, "-", i), "x"))
			}
		})
	}
	wg.Wait()
	want := make([]uint64, 80)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := seqs(t, s, 1, protocol.DirectConv(1, 2)); !slices.Equal(got, want) {
		t.Errorf("seqs = %v", got)
	}
	if !slices.Equal(hooked, want) {
		t.Errorf("hooked = %v", hooked)
	}
}

func TestFoldName(t *testing.T) {
	for _, c := range [][2]string{{"Alice", "ALICE"}, {"Ärger", "äRGER"}, {"straße", "STRAßE"}, {"Kelvin", "\u212Aelvin"}} {
		if storage.FoldName(c[0]) != storage.FoldName(c[1]) {
			t.Errorf("storage.FoldName(%q) != storage.FoldName(%q)", c[0], c[1])
		}
	}
	if storage.FoldName("alice") == storage.FoldName("alicé") {
		t.Error("accents folded")
	}
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
