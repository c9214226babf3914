package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
	"github.com/parleyim/parley/storage/storetest"
)

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// open opens a store on cfg.DSN, or on a fresh database of its own.
func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.DSN == "" {
		cfg.DSN = mysqltest.DSN(t)
	}
	cfg.Logger = testLogger(t)
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// Every case of the contract gets a database of its own.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, hook storage.CommitHook) storage.Store {
		return open(t, Config{Hook: hook, Shards: 4})
	})
}

func users(t testing.TB, s *Store, names ...string) []int64 {
	t.Helper()
	ids := make([]int64, len(names))
	for i, n := range names {
		u, err := s.CreateUser(context.Background(), n, []byte("hash"))
		if err != nil {
			t.Fatalf("CreateUser %q: %v", n, err)
		}
		ids[i] = u.ID
	}
	return ids
}

func direct(from, to int64, clientMsgID, body string) *protocol.Message {
	return &protocol.Message{MsgID: time.Now().UnixNano(), Conv: protocol.DirectConv(from, to), From: from, To: to,
		ClientMsgID: clientMsgID, ContentType: 1, Body: []byte(body), ServerTime: time.Now().UnixMilli()}
}

func mustAppend(t testing.TB, s *Store, m *protocol.Message) protocol.Message {
	t.Helper()
	stored, _, err := s.Append(context.Background(), m)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return stored
}

// seqs lists the sequences user sees in conv.
func seqs(t testing.TB, s *Store, user int64, conv string) []uint64 {
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

func seqRange(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

func TestOpenConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{DSN: "parley:parley@tcp(127.0.0.1:3306)/"},
		{DSN: "::not a dsn::"},
		{DSN: mysqltest.DefaultDSN, Shards: -1},
		{DSN: mysqltest.DefaultDSN, Shards: 257},
		{DSN: mysqltest.DefaultDSN, BatchInterval: 2 * time.Second},
	} {
		if _, err := Open(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Open(%+v): %v, want ErrConfig", cfg, err)
		}
	}
}

// countRows returns the rows of each shard table.
func countRows(t *testing.T, s *Store) []int {
	t.Helper()
	n := make([]int, s.shards)
	for i := range n {
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM ` + shardTable(i)).Scan(&n[i]); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// Messages land in the table of their conversation's hash, and the shard
// count is part of the database.
func TestShards(t *testing.T) {
	const shards = 8
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn, Shards: shards})
	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	ids := users(t, s, names...)
	want := make([]int, shards)
	for i := 1; i < len(ids); i++ {
		for range i%3 + 1 {
			m := mustAppend(t, s, direct(ids[0], ids[i], "", "x"))
			want[shardOf(m.Conv, shards)]++
		}
	}
	got := countRows(t, s)
	if !slices.Equal(got, want) {
		t.Fatalf("rows per shard %v, want %v", got, want)
	}
	used := 0
	for _, n := range got {
		if n > 0 {
			used++
		}
	}
	if used < shards/2 {
		t.Fatalf("39 conversations in %d of %d shards: %v", used, shards, got)
	}
	// One conversation is in one table, whole.
	conv := protocol.DirectConv(ids[0], ids[5])
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM `+s.table(conv)+` WHERE conv = ?`, conv).Scan(&n); err != nil || n != 5%3+1 {
		t.Fatalf("%s in %s: %d rows, %v", conv, s.table(conv), n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, other := range []int{0, 4, 16} { // 0 is the default, 16
		if _, err := Open(Config{DSN: dsn, Shards: other}); !errors.Is(err, ErrShardCount) {
			t.Fatalf("reopen with %d shards: %v, want ErrShardCount", other, err)
		}
	}
	again := open(t, Config{DSN: dsn, Shards: shards})
	defer again.Close()
	if got := seqs(t, again, ids[0], conv); !slices.Equal(got, seqRange(1, 3)) {
		t.Fatalf("after reopen %s has %v", conv, got)
	}
}

func migrationVersions(t *testing.T, s *Store) []int {
	t.Helper()
	return column[int](t, s.db, `SELECT version FROM schema_migrations ORDER BY version`)
}

// column returns the one column of query's rows.
func column[T any](t *testing.T, db *sql.DB, query string, args ...any) []T {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Nodes starting together on an empty database migrate it once; reopening
// applies nothing; a database newer than the build is refused.
func TestMigrations(t *testing.T) {
	dsn := mysqltest.DSN(t)
	const nodes = 6
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { stores[i], errs[i] = Open(Config{DSN: dsn, Shards: 4, Logger: testLogger(t)}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var want []int
	for _, m := range migrations {
		want = append(want, m.version)
	}
	if got := migrationVersions(t, stores[0]); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations %v, want %v", got, want)
	}
	ids := users(t, stores[0], "ann", "bob")
	mustAppend(t, stores[1], direct(ids[0], ids[1], "c1", "hello"))

	applied, err := migrate(t.Context(), stores[0].db, 4)
	if err != nil || len(applied) != 0 {
		t.Fatalf("migrate again: applied %v, %v", applied, err)
	}
	if got := migrationVersions(t, stores[0]); !slices.Equal(got, want) {
		t.Fatalf("after reopen schema_migrations %v, want %v", got, want)
	}
	if got := seqs(t, stores[2], ids[1], protocol.DirectConv(ids[0], ids[1])); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("data after migrate again: %v", got)
	}

	if _, err := stores[0].db.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from the future', 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{DSN: dsn, Shards: 4}); !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaNewer", err)
	}
}

func TestUnicodeRoundTrip(t *testing.T) {
	s := open(t, Config{})
	defer s.Close()
	ctx := context.Background()
	ids := users(t, s, "Ärger", "李雷")
	if _, err := s.CreateUser(ctx, "äRGER", []byte("h")); !errors.Is(err, storage.ErrUsernameTaken) {
		t.Fatalf("case-folded duplicate: %v", err)
	}
	if u, err := s.UserByName(ctx, "ÄRGER"); err != nil || u.ID != ids[0] || u.Username != "Ärger" {
		t.Fatalf("UserByName: %+v %v", u, err)
	}
	if ps, err := s.SearchUsers(ctx, "är", "", 10); err != nil || len(ps) != 1 || ps[0].ID != ids[0] {
		t.Fatalf("SearchUsers är: %+v %v", ps, err)
	}
	if ps, err := s.SearchUsers(ctx, "李", "", 10); err != nil || len(ps) != 1 || ps[0].Username != "李雷" {
		t.Fatalf("SearchUsers 李: %+v %v", ps, err)
	}

	text := "你好，世界 🌏👋🏽 — ünïcödé 𝄞"
	m := direct(ids[0], ids[1], "😀-1", text)
	mustAppend(t, s, m)
	msgs, _, _, _, err := s.After(ctx, ids[1], m.Conv, 0, 10)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != text || msgs[0].ClientMsgID != "😀-1" {
		t.Fatalf("After: %+v %v", msgs, err)
	}
	if _, dup, err := s.Append(ctx, direct(ids[0], ids[1], "😀-1", "again")); err != nil || !dup {
		t.Fatalf("emoji client id repeated: dup %v, %v", dup, err)
	}
	convs, err := s.Conversations(ctx, ids[1], 10)
	if err != nil || len(convs) != 1 || convs[0].Last == nil || string(convs[0].Last.Body) != text {
		t.Fatalf("Conversations: %+v %v", convs, err)
	}

	p, err := s.SetProfile(ctx, ids[0], "小明 🐉", "https://example.com/头像.png")
	if err != nil || p.DisplayName != "小明 🐉" || p.AvatarURL != "https://example.com/头像.png" {
		t.Fatalf("SetProfile: %+v %v", p, err)
	}
	if _, err := s.RequestFriend(ctx, ids[0], ids[1], "加个好友吧 🙏", time.Now()); err != nil {
		t.Fatal(err)
	}
	in, _, err := s.FriendRequests(ctx, ids[1])
	if err != nil || len(in) != 1 || in[0].Note != "加个好友吧 🙏" || in[0].From.DisplayName != "小明 🐉" {
		t.Fatalf("FriendRequests: %+v %v", in, err)
	}
	g, err := s.CreateGroup(ctx, ids[0], "读书会 📚", false, ids[1:], 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if g, err := s.Group(ctx, g.ID); err != nil || g.Name != "读书会 📚" {
		t.Fatalf("Group: %+v %v", g, err)
	}
	now := time.Now()
	if err := s.BanUser(ctx, ids[1], now.Add(time.Hour), "刷屏 🚫", now); err != nil {
		t.Fatal(err)
	}
	if bans, err := s.ActiveBans(ctx, now); err != nil || len(bans) != 1 || bans[0].Reason != "刷屏 🚫" || bans[0].Username != "李雷" {
		t.Fatalf("ActiveBans: %+v %v", bans, err)
	}
}

// Client message ids are compared byte for byte: the PAD SPACE collations
// would take "x " for "x".
func TestClientMsgIDExact(t *testing.T) {
	s := open(t, Config{})
	defer s.Close()
	ids := users(t, s, "a", "b")
	for i, cmid := range []string{"x", "x ", "X", "x\t", "ｘ"} {
		stored, dup, err := s.Append(context.Background(), direct(ids[0], ids[1], cmid, cmid))
		if err != nil || dup || stored.Seq != uint64(i+1) || stored.ClientMsgID != cmid {
			t.Fatalf("Append %q: seq %d dup %v %v", cmid, stored.Seq, dup, err)
		}
	}
	stored, dup, err := s.Append(context.Background(), direct(ids[0], ids[1], "x ", "again"))
	if err != nil || !dup || stored.Seq != 2 || string(stored.Body) != "x " {
		t.Fatalf("repeat of %q: %+v dup %v %v", "x ", stored, dup, err)
	}
	if _, _, err := s.Append(context.Background(), direct(ids[0], ids[1], strings.Repeat("y", maxClientMsgID+1), "")); err == nil {
		t.Fatal("over-long client_msg_id accepted")
	}
}

// Two stores (two nodes) append to one conversation at once: the sequences
// stay dense and unique, and each node's hook sees its own ascending.
func TestTwoNodesOneConversation(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var hooks [2]struct {
		sync.Mutex
		seqs []uint64
	}
	var stores [2]*Store
	for n := range stores {
		stores[n] = open(t, Config{DSN: dsn, Hook: func(msgs []protocol.Message) {
			hooks[n].Lock()
			defer hooks[n].Unlock()
			for _, m := range msgs {
				hooks[n].seqs = append(hooks[n].seqs, m.Seq)
			}
		}})
		defer stores[n].Close()
	}
	ids := users(t, stores[0], "one", "two")
	conv := protocol.DirectConv(ids[0], ids[1])
	const perWriter, writers = 25, 8
	var (
		mu   sync.Mutex
		used = map[uint64]int{}
		wg   sync.WaitGroup
	)
	for n, s := range stores {
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					stored, dup, err := s.Append(context.Background(), direct(ids[n%2], ids[1-n%2], fmt.Sprintf("%d-%d-%d", n, w, i), "x"))
					if err != nil || dup {
						t.Errorf("Append: dup %v, %v", dup, err)
						return
					}
					mu.Lock()
					used[stored.Seq]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	const total = 2 * writers * perWriter
	for seq := uint64(1); seq <= total; seq++ {
		if used[seq] != 1 {
			t.Fatalf("seq %d used %d times (of %d messages)", seq, used[seq], total)
		}
	}
	if len(used) != total {
		t.Fatalf("%d seqs for %d messages", len(used), total)
	}
	if got := seqs(t, stores[1], ids[0], conv); !slices.Equal(got, seqRange(1, total)) {
		t.Fatalf("stored seqs %v", got)
	}
	for n := range hooks {
		if got := hooks[n].seqs; len(got) != total/2 || !slices.IsSorted(got) {
			t.Fatalf("node %d hook saw %d seqs, sorted %v", n, len(got), slices.IsSorted(got))
		}
	}
}

// A user in more conversations than one detail query covers: each gets its
// own unread count and last visible message, in order.
func TestConversationsManyChunks(t *testing.T) {
	s := open(t, Config{Shards: 4})
	defer s.Close()
	ctx := context.Background()
	const peers = 2*convsChunk + 5
	names := []string{"me"}
	for i := range peers {
		names = append(names, fmt.Sprintf("peer%d", i))
	}
	ids := users(t, s, names...)
	me := ids[0]
	for i := 1; i <= peers; i++ {
		for j := range i%4 + 1 {
			m := direct(ids[i], me, "", fmt.Sprintf("%d.%d", i, j))
			m.ServerTime = int64(1000*i + j)
			mustAppend(t, s, m)
		}
		conv := protocol.DirectConv(me, ids[i])
		switch i % 5 {
		case 0:
			if err := s.Ack(ctx, me, conv, 1); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := s.Hide(ctx, me, conv, []uint64{uint64(i%4 + 1)}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	convs, err := s.Conversations(ctx, me, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != peers {
		t.Fatalf("%d conversations, want %d", len(convs), peers)
	}
	for k, c := range convs {
		i := peers - k // newest first
		n := uint64(i%4 + 1)
		wantUnread, wantLast := n, n
		switch i % 5 {
		case 0:
			wantUnread = n - 1
		case 1:
			wantUnread, wantLast = n-1, n-1
		}
		if c.Conv != protocol.DirectConv(me, ids[i]) || c.LastSeq != n || c.Unread != wantUnread {
			t.Fatalf("row %d: %s last %d unread %d, want peer %d: last %d unread %d", k, c.Conv, c.LastSeq, c.Unread, i, n, wantUnread)
		}
		switch {
		case wantLast == 0 && c.Last != nil:
			t.Fatalf("row %d: last %+v, want none", k, c.Last)
		case wantLast > 0 && (c.Last == nil || c.Last.Seq != wantLast || string(c.Last.Body) != fmt.Sprintf("%d.%d", i, wantLast-1)):
			t.Fatalf("row %d: last %+v, want seq %d", k, c.Last, wantLast)
		}
	}
	if page, err := s.Conversations(ctx, me, convsChunk+1); err != nil || !slices.EqualFunc(page, convs[:convsChunk+1], func(a, b protocol.Conversation) bool {
		return a.Conv == b.Conv && a.Unread == b.Unread
	}) {
		t.Fatalf("first page differs: %v", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchAppend(b, func(b *testing.B, hook storage.CommitHook) storage.Store {
		return open(b, Config{Hook: hook})
	}, false)
}

// BenchmarkSearch is the shared search benchmark (storetest.BenchSearch).
func BenchmarkSearch(b *testing.B) {
	storetest.BenchSearch(b, func(b *testing.B, hook storage.CommitHook) storage.Store {
		return open(b, Config{Hook: hook})
	}, false)
}

// Delivery cursors moved just before Close are written by it.
func TestDeliveredSurvivesClose(t *testing.T) {
	dsn := mysqltest.DSN(t)
	storetest.DeliveredSurvivesClose(t, open(t, Config{DSN: dsn, Shards: 4}), func() storage.Store {
		s := open(t, Config{DSN: dsn, Shards: 4})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// The SQL of the unread count excludes the content types that
// protocol.CountsUnread excludes, and only those.
func TestEventTypesMatchCountsUnread(t *testing.T) {
	var lo, hi int
	if _, err := fmt.Sscanf(eventTypes, "%d AND %d", &lo, &hi); err != nil {
		t.Fatalf("eventTypes %q: %v", eventTypes, err)
	}
	for ct := 0; ct <= 0xFFFF; ct++ {
		if sql := ct < lo || ct > hi; sql != protocol.CountsUnread(uint16(ct)) {
			t.Fatalf("content type %#04x: the SQL counts it %v, protocol.CountsUnread %v", ct, sql, !sql)
		}
	}
}

// Friend requests of many disjoint pairs at once (as a client fleet
// befriends at setup): InnoDB's gap locks make some of them deadlock with
// each other; every request and answer must still succeed.
func TestConcurrentFriendRequests(t *testing.T) {
	s := open(t, Config{})
	defer s.Close()
	ctx := context.Background()
	const pairs = 64
	ids := make([]int64, 2*pairs)
	for i := range ids {
		u, err := s.CreateUser(ctx, fmt.Sprintf("fr%03d", i), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = u.ID
	}
	errs := make(chan error, 2*pairs)
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := ids[2*i], ids[2*i+1]
			if _, err := s.RequestFriend(ctx, a, b, "hi", time.Now()); err != nil {
				errs <- fmt.Errorf("request %d→%d: %w", a, b, err)
				return
			}
			if err := s.AnswerFriend(ctx, a, b, true, time.Now()); err != nil {
				errs <- fmt.Errorf("answer %d→%d: %w", a, b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range pairs {
		if ok, err := s.AreFriends(ctx, ids[2*i], ids[2*i+1]); err != nil || !ok {
			t.Fatalf("pair %d: friends %v, %v", i, ok, err)
		}
	}
}
