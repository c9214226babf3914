package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// The writer's failure paths, driven from outside as another node or an
// operator would: a second connection holds a conversation's row lock, so
// the writer stops inside a batch while more Appends queue behind it.

// holder is a connection of its own, for a lock and KILL.
type holder struct {
	t      *testing.T
	db     *sql.DB
	name   string // the test database
	tx     *sql.Tx
	killed []int64
}

func newHolder(t *testing.T, dsn string) *holder {
	t.Helper()
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &holder{t: t, db: db, name: cfg.DBName}
}

// lock takes the row lock of conv's conversations row, as a batch of another
// node does, and keeps it until release.
func (h *holder) lock(conv string) {
	h.t.Helper()
	tx, err := h.db.Begin()
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO conversations (conv, last_seq, last_time) VALUES (?, 0, 0)
		ON DUPLICATE KEY UPDATE conv = conv`, conv); err != nil {
		h.t.Fatal(err)
	}
	h.tx = tx
}

func (h *holder) release() {
	if h.tx != nil {
		_ = h.tx.Rollback()
		h.tx = nil
	}
}

// blocked returns the id of the connection that runs a statement of
// lockConvs for at least 50 ms: the writer's, waiting for a
// held lock.
func (h *holder) blocked() int64 {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		rows, err := h.db.Query(`SELECT ID FROM information_schema.PROCESSLIST
			WHERE DB = ? AND COMMAND = 'Query' AND TIME_MS >= 50
			AND (INFO LIKE 'SELECT conv, last_seq%FROM conversations%FOR UPDATE'
				OR INFO LIKE 'INSERT INTO conversations%ON DUPLICATE KEY UPDATE conv = conv')`, h.name)
		if err != nil {
			h.t.Fatal(err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				h.t.Fatal(err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			if !slices.Contains(h.killed, id) {
				return id
			}
		}
	}
	h.t.Fatal("the writer never waited for the conversation lock")
	return 0
}

// kill cuts a connection, as a failover or a network cut would.
func (h *holder) kill(id int64) {
	h.t.Helper()
	h.killed = append(h.killed, id)
	if _, err := h.db.Exec(fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
		h.t.Fatal(err)
	}
}

// waitQueued waits until n Appends wait behind the running batch.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.w.queued() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Appends queued", s.w.queued(), n)
		}
	}
}

type result struct {
	stored protocol.Message
	err    error
}

// goAppend runs Append in a goroutine.
func goAppend(s *Store, m *protocol.Message) <-chan result {
	ch := make(chan result, 1)
	go func() {
		stored, _, err := s.Append(context.Background(), m)
		ch <- result{stored, err}
	}()
	return ch
}

// recorder is a commit hook that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	batches [][]protocol.Message
}

func (r *recorder) hook(msgs []protocol.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(msgs))
}

// convs returns the conversations the hook saw.
func (r *recorder) convs() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, b := range r.batches {
		for _, m := range b {
			out[m.Conv] = true
		}
	}
	return out
}

func (r *recorder) seqs(conv string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, b := range r.batches {
		for _, m := range b {
			if m.Conv == conv {
				out = append(out, m.Seq)
			}
		}
	}
	return out
}

// A lane starts a batch at most once an interval: what comes within it
// waits for its end and goes in one batch, unless the batch fills first;
// a lane idle for longer commits at once.
func TestBatchInterval(t *testing.T) {
	var rec recorder
	const interval = time.Second
	s := open(t, Config{Hook: rec.hook, Lanes: 1, MaxBatch: 4, BatchInterval: interval})
	defer s.Close()
	ids := users(t, s, "ann", "bob")
	msg := func(i int) *protocol.Message { return direct(ids[0], ids[1], fmt.Sprintf("m%d", i), "hi") }
	appendAll := func(from, n int) {
		t.Helper()
		var chs []<-chan result
		for i := range n {
			chs = append(chs, goAppend(s, msg(from+i)))
		}
		for _, ch := range chs {
			if r := <-ch; r.err != nil {
				t.Fatalf("Append: %v", r.err)
			}
		}
	}
	sizes := func() []int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var n []int
		for _, b := range rec.batches {
			n = append(n, len(b))
		}
		return n
	}

	t0 := time.Now()
	mustAppend(t, s, msg(0))
	if took := time.Since(t0); took >= interval/2 {
		t.Fatalf("the first Append took %v: an idle lane waited for its interval", took)
	}
	// Within the interval: three Appends wait for its end, in one batch.
	appendAll(1, 3)
	if took := time.Since(t0); took < interval {
		t.Fatalf("a second batch %v after the first began, within the interval of %v", took, interval)
	}
	// A full batch (MaxBatch 4) does not wait for the interval.
	t1 := time.Now()
	appendAll(4, 4)
	if took := time.Since(t1); took >= interval/2 {
		t.Fatalf("a full batch took %v: it waited for the interval", took)
	}
	// Idle for longer than the interval: the next Append commits at once.
	time.Sleep(interval)
	t2 := time.Now()
	mustAppend(t, s, msg(8))
	if took := time.Since(t2); took >= interval/2 {
		t.Fatalf("an Append after an idle interval took %v", took)
	}
	if got := sizes(); !slices.Equal(got, []int{1, 3, 4, 1}) {
		t.Fatalf("batches of %v Appends, want [1 3 4 1]", got)
	}
	if got := rec.seqs(protocol.DirectConv(ids[0], ids[1])); !slices.Equal(got, seqRange(1, 9)) {
		t.Fatalf("seqs %v, want 1-9", got)
	}
}

// A batch whose connection is lost fails every Append in it, stores
// nothing and uses no sequence; the writer goes on, on a new connection.
func TestFailedBatch(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var rec recorder
	s := open(t, Config{DSN: dsn, Hook: rec.hook, Lanes: 1}) // one batch holds both conversations
	defer s.Close()
	ids := users(t, s, "a", "b", "c")
	x, y := protocol.DirectConv(ids[0], ids[1]), protocol.DirectConv(ids[0], ids[2])
	for range 3 {
		mustAppend(t, s, direct(ids[0], ids[1], "", "before"))
	}

	h := newHolder(t, dsn)
	h.lock(x)
	defer h.release()
	first := goAppend(s, direct(ids[0], ids[1], "first", "lost"))
	h.kill(h.blocked())
	if r := <-first; r.err == nil || errors.Is(r.err, storage.ErrClosed) {
		t.Fatalf("Append on a killed connection: %+v", r)
	}

	// Again, with two Appends to two conversations queued behind: they
	// form the next batch, which fails whole on the next kill.
	head := goAppend(s, direct(ids[0], ids[1], "head", "lost"))
	writer := h.blocked()
	batch := []<-chan result{
		goAppend(s, direct(ids[1], ids[0], "second", "lost")),
		goAppend(s, direct(ids[0], ids[2], "third", "lost")),
	}
	waitQueued(t, s, len(batch))
	h.kill(writer)
	if r := <-head; r.err == nil {
		t.Fatalf("Append on a killed connection: %+v", r)
	}
	h.kill(h.blocked())
	for i, ch := range batch {
		if r := <-ch; r.err == nil {
			t.Fatalf("Append %d of the failed batch: stored %+v", i, r.stored)
		}
	}

	h.release()
	m := mustAppend(t, s, direct(ids[1], ids[0], "first", "after"))
	if m.Seq != 4 {
		t.Fatalf("first Append after the failures got seq %d, want 4", m.Seq)
	}
	if got := seqs(t, s, ids[1], x); !slices.Equal(got, seqRange(1, 4)) {
		t.Fatalf("%s holds %v", x, got)
	}
	if got := seqs(t, s, ids[2], y); len(got) != 0 {
		t.Fatalf("%s holds %v after a failed batch", y, got)
	}
	if got := rec.seqs(x); !slices.Equal(got, seqRange(1, 4)) {
		t.Fatalf("hook saw %v", got)
	}
	// The client ids of the failed Appends were not recorded either.
	if _, dup, err := s.Append(context.Background(), direct(ids[0], ids[2], "third", "again")); err != nil || dup {
		t.Fatalf("resend of a failed Append: dup %v, %v", dup, err)
	}
}

// Appends queued while a batch runs form the next batch, and fail together
// whatever their conversations (one lane: with more, each lane's share of
// them fails together).
func TestBatchFailsWhole(t *testing.T) {
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn, Lanes: 1})
	defer s.Close()
	ids := users(t, s, "a", "b", "c", "d")
	first, second := newHolder(t, dsn), newHolder(t, dsn)
	first.lock(protocol.DirectConv(ids[0], ids[1]))
	defer first.release()
	second.lock(protocol.DirectConv(ids[0], ids[2]))
	defer second.release()

	head := goAppend(s, direct(ids[0], ids[1], "", "head"))
	first.blocked()
	var queued []<-chan result
	for i := range 6 {
		queued = append(queued, goAppend(s, direct(ids[i%3+1], ids[0], fmt.Sprint(i), "queued")))
	}
	waitQueued(t, s, len(queued))
	first.release() // the head batch commits; the queued one waits for the second lock
	if r := <-head; r.err != nil {
		t.Fatal(r.err)
	}
	second.kill(second.blocked())
	for i, ch := range queued {
		if r := <-ch; r.err == nil {
			t.Fatalf("queued Append %d stored although its batch failed", i)
		}
	}
	second.release()
	for i := 1; i <= 3; i++ {
		c := protocol.DirectConv(ids[0], ids[i])
		want := []uint64(nil)
		if i == 1 {
			want = []uint64{1}
		}
		if got := seqs(t, s, ids[0], c); !slices.Equal(got, want) {
			t.Fatalf("%s holds %v, want %v", c, got, want)
		}
	}
}

// Close commits what is queued before it returns.
func TestCloseFlushes(t *testing.T) {
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn})
	ids := users(t, s, "a", "b")
	conv := protocol.DirectConv(ids[0], ids[1])
	h := newHolder(t, dsn)
	h.lock(conv)
	defer h.release()
	var pending []<-chan result
	pending = append(pending, goAppend(s, direct(ids[0], ids[1], "", "0")))
	h.blocked()
	for i := range 5 {
		pending = append(pending, goAppend(s, direct(ids[1], ids[0], "", fmt.Sprint(i+1))))
	}
	waitQueued(t, s, 5)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned before the queue was committed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.release()
	var got []uint64
	for i, ch := range pending {
		r := <-ch
		if r.err != nil {
			t.Fatalf("queued Append %d: %v", i, r.err)
		}
		got = append(got, r.stored.Seq)
	}
	if slices.Sort(got); !slices.Equal(got, seqRange(1, 6)) {
		t.Fatalf("queued Appends got seqs %v", got)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(context.Background(), direct(ids[0], ids[1], "", "late")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	again := open(t, Config{DSN: dsn})
	defer again.Close()
	if got := seqs(t, again, ids[0], conv); !slices.Equal(got, seqRange(1, 6)) {
		t.Fatalf("after reopen %v", got)
	}
}

// A full batch of large bodies is split into INSERTs that fit in
// max_allowed_packet.
func TestLargeBatch(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var rec recorder
	s := open(t, Config{DSN: dsn, Hook: rec.hook})
	defer s.Close()
	ids := users(t, s, "a", "b")
	conv := protocol.DirectConv(ids[0], ids[1])
	// Quotes, backslashes and NULs are escaped to two bytes each: 64 KiB of
	// them is 128 KiB on the wire; 256 of them are 32 MiB.
	body := bytes.Repeat([]byte("'\\\x00\"✓"), 64<<10/7)
	h := newHolder(t, dsn)
	h.lock(conv)
	defer h.release()
	pending := []<-chan result{goAppend(s, direct(ids[0], ids[1], "", "head"))}
	h.blocked()
	const queued = 255
	for i := range queued {
		m := direct(ids[0], ids[1], fmt.Sprint(i), "")
		m.Body = body
		pending = append(pending, goAppend(s, m))
	}
	waitQueued(t, s, queued)
	h.release()
	for i, ch := range pending {
		if r := <-ch; r.err != nil {
			t.Fatalf("Append %d: %v", i, r.err)
		}
	}
	biggest := 0
	for _, b := range rec.batches {
		biggest = max(biggest, len(b))
	}
	if biggest != queued {
		t.Fatalf("largest batch %d, want %d", biggest, queued)
	}
	msgs, _, _, _, err := s.After(context.Background(), ids[1], conv, 1, 1000)
	if err != nil || len(msgs) != queued {
		t.Fatalf("After: %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if !bytes.Equal(m.Body, body) {
			t.Fatalf("seq %d: body of %d bytes differs", m.Seq, len(m.Body))
		}
	}
}

// One goroutine's Appends to conversations of every lane are answered in
// call order, while a held conversation keeps its lane (and so every later
// answer) waiting; the other lanes commit meanwhile.
func TestLanesAnswerInCallOrder(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var rec recorder
	s := open(t, Config{DSN: dsn, Lanes: 4, Hook: rec.hook})
	defer s.Close()
	ids := users(t, s, "a", "b", "c", "d", "e", "f", "g", "h", "i")
	held := protocol.DirectConv(ids[0], ids[1])
	h := newHolder(t, dsn)
	h.lock(held)
	defer h.release()

	var mu sync.Mutex
	var answered []uint64
	var wg sync.WaitGroup
	send := func(i uint64, to int64) {
		wg.Add(1)
		s.AppendAsync(context.Background(), direct(ids[0], to, fmt.Sprint(i), "x"), func(_ protocol.Message, _ bool, err error) {
			if err != nil {
				t.Errorf("Append %d: %v", i, err)
			}
			mu.Lock()
			answered = append(answered, i)
			mu.Unlock()
			wg.Done()
		})
	}
	send(0, ids[1])
	h.blocked()
	const n = 64
	for i := uint64(1); i < n; i++ {
		send(i, ids[1+i%8]) // eight conversations, spread over the lanes
	}
	// The lanes without the held conversation commit their shares.
	free := 0
	for i := 2; i <= 8; i++ {
		if shardOf(protocol.DirectConv(ids[0], ids[i]), 4) != shardOf(held, 4) {
			free++
		}
	}
	if free == 0 {
		t.Fatal("every conversation is in the held one's lane")
	}
	for deadline := time.Now().Add(10 * time.Second); len(rec.convs()) < free; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("committed %v while one conversation was held; want the %d of the other lanes", rec.convs(), free)
		}
	}
	mu.Lock()
	if len(answered) != 0 {
		t.Errorf("answered %v before the first Append committed", answered)
	}
	mu.Unlock()
	h.release()
	wg.Wait()
	if !slices.Equal(answered, seqRange(0, n-1)) {
		t.Fatalf("answered in order %v, want call order", answered)
	}
}

// Two stores (two nodes) store one sender's client_msg_id in two
// conversations at once: one stores it, the other answers dup with that
// message (its batch failed on the id's unique key inside the writes and was
// rolled back and retried, or its dedupe read found it). Nothing half-written
// survives, and both stores go on appending.
func TestTwoNodesOneClientMsgID(t *testing.T) {
	dsn := mysqltest.DSN(t)
	a, b := open(t, Config{DSN: dsn}), open(t, Config{DSN: dsn})
	defer a.Close()
	defer b.Close()
	ids := users(t, a, "s", "x", "y")
	const rounds = 40
	stored := 0
	for i := range rounds {
		cmid := fmt.Sprint("twice-", i)
		var res [2]result
		var wg sync.WaitGroup
		for n, s := range []*Store{a, b} {
			wg.Go(func() {
				m, dup, err := s.Append(context.Background(), direct(ids[0], ids[1+n], cmid, "x"))
				if err == nil && dup {
					err = errDup
				}
				res[n] = result{m, err}
			})
		}
		wg.Wait()
		var winner protocol.Message
		dups := 0
		for n, r := range res {
			switch {
			case r.err == nil:
				winner = r.stored
				stored++
			case errors.Is(r.err, errDup):
				dups++
			default:
				t.Fatalf("round %d, store %d: %v", i, n, r.err)
			}
		}
		if dups != 1 || winner.Seq == 0 {
			t.Fatalf("round %d: %+v; want one stored, one dup", i, res)
		}
		for _, r := range res {
			if r.stored.Conv != winner.Conv || r.stored.Seq != winner.Seq {
				t.Fatalf("round %d: answers %s/%d and %s/%d differ", i, r.stored.Conv, r.stored.Seq, winner.Conv, winner.Seq)
			}
		}
	}
	// Every conversation holds exactly the messages answered as stored,
	// densely numbered.
	total := 0
	for _, to := range ids[1:] {
		got := seqs(t, a, ids[0], protocol.DirectConv(ids[0], to))
		if !slices.Equal(got, seqRange(1, uint64(len(got)))) {
			t.Fatalf("%d: seqs %v", to, got)
		}
		total += len(got)
	}
	if total != stored || stored != rounds {
		t.Fatalf("%d messages stored, %d answered stored, %d rounds", total, stored, rounds)
	}
	for n, s := range []*Store{a, b} {
		if _, _, err := s.Append(context.Background(), direct(ids[0], ids[1+n], "", "after")); err != nil {
			t.Fatalf("store %d after the races: %v", n, err)
		}
	}
}

var errDup = errors.New("dup")

// An AppendAsync whose context has already ended is answered before it
// returns, even while earlier Appends wait for their commit.
func TestEndedContextAnsweredAtOnce(t *testing.T) {
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn})
	defer s.Close()
	ids := users(t, s, "a", "b")
	h := newHolder(t, dsn)
	h.lock(protocol.DirectConv(ids[0], ids[1]))
	defer h.release()
	head := goAppend(s, direct(ids[0], ids[1], "", "head"))
	h.blocked()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got error
	answered := false
	s.AppendAsync(ctx, direct(ids[0], ids[1], "", "late"), func(_ protocol.Message, _ bool, err error) {
		answered, got = true, err
	})
	if !answered || !errors.Is(got, context.Canceled) {
		t.Fatalf("AppendAsync with an ended context: answered %v, %v", answered, got)
	}
	h.release()
	if r := <-head; r.err != nil {
		t.Fatal(r.err)
	}
}
