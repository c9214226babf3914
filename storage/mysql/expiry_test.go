package mysql

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
	"github.com/parleyim/parley/storage/storetest"
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

// BenchmarkExpiry is the shared expiry benchmark (storetest.BenchExpiry).
// Wall time: most of the work is MariaDB's.
func BenchmarkExpiry(b *testing.B) {
	storetest.BenchExpiry(b, func(b *testing.B, hook storage.CommitHook) storage.Store {
		return open(b, Config{Hook: hook, Shards: 4})
	}, false)
}
