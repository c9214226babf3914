package mysql

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// Two nodes on one database sweep side by side: every due message is
// returned by exactly one of them; a node opened later stamps from the
// timer another set.
func TestExpireTwoNodes(t *testing.T) {
	dsn := mysqltest.DSN(t)
	var stores [2]*Store
	for n := range stores {
		stores[n] = open(t, Config{DSN: dsn, Shards: 4})
		defer stores[n].Close()
	}
	ids := users(t, stores[0], "one", "two")
	timer := direct(ids[0], ids[1], "", "1")
	timer.ContentType = protocol.ContentTimer
	mustAppend(t, stores[0], timer)
	const n = 60
	now := time.Now().UnixMilli()
	for i := range n {
		m := direct(ids[i%2], ids[1-i%2], fmt.Sprintf("c%d", i), "gone")
		m.ServerTime = now - 5000
		if got := mustAppend(t, stores[i%2], m); got.ExpiresAt != now-4000 {
			t.Fatalf("expires_at %d, want %d", got.ExpiresAt, now-4000)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[uint64]int{}
		wg   sync.WaitGroup
	)
	for _, s := range stores {
		for range 2 {
			wg.Go(func() {
				for range 100 {
					msgs, err := s.Expire(context.Background(), now, 7)
					if err != nil {
						t.Errorf("Expire: %v", err)
						return
					}
					if len(msgs) == 0 {
						return
					}
					mu.Lock()
					for _, m := range msgs {
						seen[m.Seq]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d messages expired, want %d", len(seen), n)
	}
	for seq, k := range seen {
		if k != 1 {
			t.Fatalf("seq %d returned %d times", seq, k)
		}
	}
	if got := seqs(t, stores[1], ids[0], protocol.DirectConv(ids[0], ids[1])); len(got) != 1 {
		t.Fatalf("visible after the sweep: %v, want the timer only", got)
	}
	var rows int
	if err := stores[0].db.QueryRow(`SELECT COUNT(*) FROM expiring`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("wheel rows left: %d, %v", rows, err)
	}
	third := open(t, Config{DSN: dsn, Shards: 4})
	defer third.Close()
	if got := mustAppend(t, third, direct(ids[0], ids[1], "late", "x")); got.ExpiresAt != got.ServerTime+1000 {
		t.Fatalf("a node opened later: expires_at %d, server time %d", got.ExpiresAt, got.ServerTime)
	}
}

// BenchmarkExpiry: appends without a timer (the baseline) and with one, in
// one run, and the sweep: Expire of due messages, 256 a call, per message.
// Wall time: most of the work is MariaDB's.
func BenchmarkExpiry(b *testing.B) {
	const convs = 50
	body := make([]byte, 100)
	appendAll := func(b *testing.B, s *Store, n int, at int64) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			from, to := int64(1+i%convs), int64(1000)
			s.AppendAsync(context.Background(), &protocol.Message{MsgID: time.Now().UnixNano(), Conv: protocol.DirectConv(from, to),
				From: from, To: to, Body: body, ServerTime: at}, func(_ protocol.Message, _ bool, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	setTimers := func(b *testing.B, s *Store) {
		for c := range convs {
			m := direct(int64(1+c), 1000, "", "1")
			m.ContentType, m.ServerTime = protocol.ContentTimer, 1
			mustAppend(b, s, m)
		}
	}
	for _, timer := range []bool{false, true} {
		name := "append/plain"
		if timer {
			name = "append/expiring"
		}
		b.Run(name, func(b *testing.B) {
			s := open(b, Config{Shards: 4})
			defer s.Close()
			if timer {
				setTimers(b, s)
			}
			b.ResetTimer()
			appendAll(b, s, b.N, time.Now().UnixMilli()+3_600_000)
		})
	}
	b.Run("expire", func(b *testing.B) {
		s := open(b, Config{Shards: 4})
		defer s.Close()
		setTimers(b, s)
		now := time.Now().UnixMilli()
		appendAll(b, s, b.N, now-10_000)
		b.ResetTimer()
		for n := 0; n < b.N; {
			gone, err := s.Expire(context.Background(), now, 256)
			if err != nil || len(gone) == 0 {
				b.Fatalf("Expire after %d of %d: %v", n, b.N, err)
			}
			n += len(gone)
		}
	})
}
