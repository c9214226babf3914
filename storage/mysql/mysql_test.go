package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

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

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, hook storage.CommitHook) storage.Store {
		return open(t, Config{Hook: hook, Shards: 4})
	})
}

func TestShards(t *testing.T) {
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn, Shards: 8})
	ctx := context.Background()
	var users []int64
	for i := range 20 {
		u, err := s.CreateUser(ctx, fmt.Sprintf("u%d", i), []byte("h"))
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u.ID)
	}
	for i := 1; i < len(users); i++ {
		m := &protocol.Message{MsgID: int64(i), Conv: protocol.DirectConv(users[0], users[i]), From: users[0], To: users[i], Body: []byte("x"), ServerTime: 1}
		if _, _, err := s.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	total := 0
	for i := range 8 {
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM ` + shardTable(i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			used++
		}
		total += n
	}
	if total != 19 || used < 4 {
		t.Fatalf("19 conversations: %d messages over %d of 8 shards", total, used)
	}
	_ = s.Close()

	// The shard count is part of the database.
	if _, err := Open(Config{DSN: dsn, Shards: 16}); !errors.Is(err, ErrShardCount) {
		t.Fatalf("reopen with 16 shards: %v, want ErrShardCount", err)
	}
	again, err := Open(Config{DSN: dsn, Shards: 8, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	if _, err := again.UserByName(ctx, "U3"); err != nil {
		t.Fatalf("data after reopen: %v", err)
	}
}

// Two stores (two nodes) append to one conversation at once: the
// sequence numbers stay dense and unique.
func TestTwoNodesOneConversation(t *testing.T) {
	dsn := mysqltest.DSN(t)
	a := open(t, Config{DSN: dsn})
	b := open(t, Config{DSN: dsn})
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	u1, _ := a.CreateUser(ctx, "one", []byte("h"))
	u2, _ := a.CreateUser(ctx, "two", []byte("h"))
	conv := protocol.DirectConv(u1.ID, u2.ID)
	const perNode, writers = 100, 8
	var (
		mu   sync.Mutex
		seqs = map[uint64]int{}
		wg   sync.WaitGroup
	)
	for n, s := range []*Store{a, b} {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perNode / writers {
					m := &protocol.Message{MsgID: int64(n*1e6 + w*1e3 + i), Conv: conv, From: u1.ID, To: u2.ID,
						ClientMsgID: fmt.Sprintf("%d-%d-%d", n, w, i), Body: []byte("x"), ServerTime: 1}
					stored, _, err := s.Append(ctx, m)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seqs[stored.Seq]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	total := 2 * writers * (perNode / writers)
	for seq := uint64(1); seq <= uint64(total); seq++ {
		if seqs[seq] != 1 {
			t.Fatalf("seq %d used %d times (of %d messages)", seq, seqs[seq], total)
		}
	}
	if len(seqs) != total {
		t.Fatalf("%d seqs for %d messages", len(seqs), total)
	}
}

func TestUnicodeRoundTrip(t *testing.T) {
	s := open(t, Config{})
	defer s.Close()
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "Ärger", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "äRGER", []byte("h")); !errors.Is(err, storage.ErrUsernameTaken) {
		t.Fatalf("case-folded duplicate: %v", err)
	}
	v, _ := s.CreateUser(ctx, "v", []byte("h"))
	text := "你好，世界 🌏👋🏽 — ünïcödé"
	m := &protocol.Message{MsgID: 1, Conv: protocol.DirectConv(u.ID, v.ID), From: u.ID, To: v.ID, ClientMsgID: "😀-1", Body: []byte(text), ServerTime: 1}
	if _, _, err := s.Append(ctx, m); err != nil {
		t.Fatal(err)
	}
	msgs, _, _, _, err := s.After(ctx, v.ID, m.Conv, 0, 10)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != text || msgs[0].ClientMsgID != "😀-1" {
		t.Fatalf("round trip: %+v %v", msgs, err)
	}
	p, err := s.SetProfile(ctx, u.ID, "小明 🐉", "")
	if err != nil || p.DisplayName != "小明 🐉" {
		t.Fatalf("profile: %+v %v", p, err)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := open(b, Config{})
	defer s.Close()
	ctx := context.Background()
	var ids []int64
	for i := range 2 {
		u, err := s.CreateUser(ctx, fmt.Sprintf("b%d", i), []byte("h"))
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	for _, appenders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			var next sync.Mutex
			n := 0
			b.SetParallelism((appenders + 1) / 2)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					next.Lock()
					n++
					id := n
					next.Unlock()
					conv := protocol.DirectConv(ids[0], ids[1])
					m := &protocol.Message{MsgID: int64(id), Conv: conv, From: ids[0], To: ids[1], Body: make([]byte, 100), ServerTime: 1}
					if _, _, err := s.Append(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
