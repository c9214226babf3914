package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// trips returns the store's batch counts: in one round trip, fallen back,
// general at once.
func trips(s *Store) [3]uint64 {
	b := s.Batches()
	return [3]uint64{b.OneTrip, b.FellBack, b.General}
}

// members returns the users of conv's membership rows.
func members(t *testing.T, db *sql.DB, conv string) []int64 {
	t.Helper()
	return column[int64](t, db, `SELECT user_id FROM user_convs WHERE conv = ? ORDER BY user_id`, conv)
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Batches of plain messages are stored in one round trip each: the seqs
// are dense in every conversation, a direct conversation's first message
// writes its membership rows, and nothing falls back.
func TestOneTripPlainBatches(t *testing.T) {
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn, Shards: 4})
	defer s.Close()
	ids := users(t, s, "a", "b", "c", "d")
	const writers, each = 8, 30
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			to := ids[1+w%3]
			for i := range each {
				if _, dup, err := s.Append(context.Background(), direct(ids[0], to, fmt.Sprintf("%d-%d", w, i), "x")); err != nil || dup {
					t.Errorf("Append: dup %v, %v", dup, err)
					return
				}
			}
		})
	}
	wg.Wait()
	db := openDB(t, dsn)
	total := 0
	for _, to := range ids[1:] {
		conv := protocol.DirectConv(ids[0], to)
		got := seqs(t, s, ids[0], conv)
		if len(got) == 0 || !slices.Equal(got, seqRange(1, uint64(len(got)))) {
			t.Fatalf("%s: seqs %v", conv, got)
		}
		total += len(got)
		if m := members(t, db, conv); !slices.Equal(m, []int64{min(ids[0], to), max(ids[0], to)}) {
			t.Fatalf("%s: members %v", conv, m)
		}
	}
	if total != writers*each {
		t.Fatalf("%d messages stored of %d", total, writers*each)
	}
	if n := trips(s); n[0] == 0 || n[1] != 0 || n[2] != 0 {
		t.Fatalf("batches: %d in one trip, %d fell back, %d general", n[0], n[1], n[2])
	}
}

// What a lane cannot read first it assumes, and when that is wrong the
// batch is stored the general way, correctly: a timer another node set,
// a client_msg_id stored before, a conversation emptied under the lane.
func TestOneTripFallsBack(t *testing.T) {
	dsn := mysqltest.DSN(t)
	a, b := open(t, Config{DSN: dsn}), open(t, Config{DSN: dsn})
	defer a.Close()
	defer b.Close()
	ids := users(t, a, "a", "b", "c")
	ctx := context.Background()
	step := func(name string, wantOne, wantFell uint64, m *protocol.Message) (protocol.Message, bool) {
		t.Helper()
		before := trips(a)
		stored, dup, err := a.Append(ctx, m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := trips(a); n[0]-before[0] != wantOne || n[1]-before[1] != wantFell {
			t.Fatalf("%s: %d in one trip, %d fell back; want %d, %d", name, n[0]-before[0], n[1]-before[1], wantOne, wantFell)
		}
		return stored, dup
	}
	first, _ := step("first", 1, 0, direct(ids[0], ids[1], "m1", "x"))
	if first.Seq != 1 || first.ExpiresAt != 0 {
		t.Fatalf("first: seq %d, expires %d", first.Seq, first.ExpiresAt)
	}

	// Another node sets a timer of 60 s.
	timer := direct(ids[1], ids[0], "t", "")
	timer.ContentType, timer.Body = protocol.ContentTimer, protocol.TimerBody(60)
	if _, _, err := b.Append(ctx, timer); err != nil {
		t.Fatal(err)
	}
	m, _ := step("after the timer", 0, 1, direct(ids[0], ids[1], "m2", "y"))
	if m.Seq != 3 || m.ExpiresAt != m.ServerTime+60_000 {
		t.Fatalf("after the timer: seq %d, expires %d (sent %d)", m.Seq, m.ExpiresAt, m.ServerTime)
	}
	m, _ = step("timer known", 1, 0, direct(ids[0], ids[1], "m3", "z"))
	if m.Seq != 4 || m.ExpiresAt != m.ServerTime+60_000 {
		t.Fatalf("timer known: seq %d, expires %d (sent %d)", m.Seq, m.ExpiresAt, m.ServerTime)
	}

	// A client_msg_id stored in an earlier batch.
	again, dup := step("repeat", 0, 1, direct(ids[0], ids[1], "m1", "other"))
	if !dup || again.Seq != 1 || string(again.Body) != "x" {
		t.Fatalf("repeat: dup %v, seq %d, body %q", dup, again.Seq, again.Body)
	}

	// A conversation (without a timer) emptied under the lane, as an
	// operator might.
	other := protocol.DirectConv(ids[0], ids[2])
	step("other", 1, 0, direct(ids[0], ids[2], "o1", "x"))
	db := openDB(t, dsn)
	for _, q := range []string{`DELETE FROM conversations WHERE conv = ?`, `DELETE FROM user_convs WHERE conv = ?`,
		`DELETE FROM message_ids WHERE conv = ?`, `DELETE FROM ` + a.table(other) + ` WHERE conv = ?`} {
		if _, err := db.Exec(q, other); err != nil {
			t.Fatal(err)
		}
	}
	m, _ = step("emptied", 0, 1, direct(ids[0], ids[2], "o2", "w"))
	if m.Seq != 1 || m.ExpiresAt != 0 {
		t.Fatalf("emptied: seq %d, expires %d", m.Seq, m.ExpiresAt)
	}
	if got := members(t, db, other); !slices.Equal(got, []int64{min(ids[0], ids[2]), max(ids[0], ids[2])}) {
		t.Fatalf("emptied: members %v", got)
	}
	m, _ = step("then", 1, 0, direct(ids[0], ids[2], "o3", "v"))
	if m.Seq != 2 {
		t.Fatalf("then: seq %d", m.Seq)
	}
}

// Three nodes start new conversations at once, each its own: their
// batches lock only their own rows, so none fails (an earlier guard that
// read the conversations table took gap locks, and the nodes' batches
// deadlocked until their retries ran out).
func TestOneTripNodesCreateConversations(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var stores [3]*Store
	for n := range stores {
		stores[n] = open(t, Config{DSN: dsn})
		defer stores[n].Close()
	}
	const peers, writers = 60, 6
	names := make([]string, 3+peers)
	for i := range names {
		names[i] = fmt.Sprint("u", i)
	}
	ids := users(t, stores[0], names...)
	var wg sync.WaitGroup
	for n, s := range stores {
		for w := range writers {
			wg.Go(func() {
				for p := w; p < peers; p += writers {
					for i := range 3 {
						m := direct(ids[n], ids[3+p], fmt.Sprintf("%d-%d-%d", n, p, i), "x")
						if _, _, err := s.Append(context.Background(), m); err != nil {
							t.Errorf("node %d: Append: %v", n, err)
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	for n, s := range stores {
		for p := range peers {
			if got := seqs(t, s, ids[n], protocol.DirectConv(ids[n], ids[3+p])); !slices.Equal(got, seqRange(1, 3)) {
				t.Fatalf("node %d, peer %d: seqs %v", n, p, got)
			}
		}
		if n := trips(s); n[0] == 0 {
			t.Fatalf("no batch in one trip: %v", n)
		}
	}
}

// failFirst fails the first statement it is sent and counts what it is
// sent.
type failFirst struct{ sends int }

var errFirst = errors.New("first send failed")

func (f *failFirst) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	f.sends++
	if f.sends == 1 {
		return nil, errFirst
	}
	return nil, nil
}

func (f *failFirst) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	f.sends++
	return nil, errors.New("queried after a failed send")
}

func (f *failFirst) QueryRowContext(context.Context, string, ...any) *sql.Row { return nil }

// A script whose send failed (one past maxScriptBytes sends what it holds)
// sends nothing more: not a COMMIT added after it, not the last query of
// a batch in one round trip. Before, a failed send inside a batch let the
// COMMIT-less rest run and the batch be answered as stored.
func TestScriptKeepsItsFailure(t *testing.T) {
	ctx := context.Background()
	f := &failFirst{}
	x := &script{q: f}
	big := make([]byte, maxScriptBytes/4) // counted twice its size, escaped
	if _, err := x.ExecContext(ctx, `INSERT INTO t VALUES (?)`, big); err != nil {
		t.Fatal(err)
	}
	if _, err := x.ExecContext(ctx, `INSERT INTO t VALUES (?)`, big); !errors.Is(err, errFirst) {
		t.Fatalf("the add that sent: %v", err)
	}
	if _, err := x.ExecContext(ctx, `COMMIT`); !errors.Is(err, errFirst) {
		t.Fatalf("COMMIT after the failure: %v", err)
	}
	if err := x.flush(ctx); !errors.Is(err, errFirst) {
		t.Fatalf("flush after the failure: %v", err)
	}
	if _, err := x.queryUints(ctx, f, readVarsQuery(1), 1); !errors.Is(err, errFirst) {
		t.Fatalf("query after the failure: %v", err)
	}
	if f.sends != 1 {
		t.Fatalf("%d sends; want the one that failed", f.sends)
	}
}
