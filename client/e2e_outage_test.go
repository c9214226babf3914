package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	predis "github.com/parleyim/parley/router/redis"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// The network between the server and MySQL is cut in the middle of a
// stream of sends, then restored. Sends during the outage get errors, never
// acks; the server keeps its connections; sends succeed again once MySQL is
// back; every acked message is stored, with dense sequence numbers.
func TestMySQLOutage(t *testing.T) {
	cfg, err := driver.ParseDSN(mysqltest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := servertest.NewProxy(t, cfg.Addr)
	cfg.Addr = proxy.Addr()
	srv := servertest.StartOn(t, servertest.MySQLStorage(cfg.FormatDSN()), func(c *server.Config) {
		c.RequestTimeout = 2 * time.Second
	})
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")

	var (
		mu       sync.Mutex
		acked    = map[int64]bool{} // msg ids
		failures = map[protocol.Code]int{}
		phase    = 0 // 0 before the cut, 1 during, 2 after the restore
		after    = 0 // acks after the restore
		stop     = make(chan struct{})
		done     = make(chan error, 1)
	)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ack, err := alice.Send(sctx, bob.id, 0, fmt.Appendf(nil, "m%d", i))
			cancel()
			mu.Lock()
			var pe *protocol.Error
			switch {
			case err == nil:
				acked[ack.MsgID] = true
				if phase == 2 {
					after++
				}
			case errors.As(err, &pe):
				failures[pe.Code]++
			default:
				mu.Unlock()
				done <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (acked %d, failures %v)", what, len(acked), failures)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("acks before the cut", func() bool { return len(acked) >= 30 })
	proxy.Cut()
	mu.Lock()
	phase = 1
	mu.Unlock()
	waitFor("failed sends", func() bool { return failures[protocol.CodeUnavailable]+failures[protocol.CodeTimeout] >= 5 })
	time.Sleep(500 * time.Millisecond)
	proxy.Restore()
	mu.Lock()
	phase = 2
	mu.Unlock()
	waitFor("acks after the restore", func() bool { return after >= 30 })
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for code, n := range failures {
		if code != protocol.CodeUnavailable && code != protocol.CodeTimeout {
			t.Errorf("%d sends failed with %s", n, code)
		}
	}
	if alice.State() != client.StateLoggedIn || srv.Conns() != 2 {
		t.Fatalf("connections did not survive: alice %s, server holds %d", alice.State(), srv.Conns())
	}
	for {
		select {
		case ev := <-alice.Events():
			if ev.Type == client.EventDisconnected {
				t.Fatalf("alice was disconnected: %v", ev.Err)
			}
			continue
		default:
		}
		break
	}

	// Every acked message is stored, and the stored seqs are dense.
	conv := protocol.DirectConv(alice.id, bob.id)
	var stored []protocol.Message
	for from := uint64(0); ; {
		res, err := bob.Sync(ctx(t), conv, from, 500)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, res.Messages...)
		if !res.HasMore {
			break
		}
		from = res.Next
	}
	seen := map[int64]bool{}
	for i, m := range stored {
		if m.Seq != uint64(i+1) {
			t.Fatalf("stored message %d has seq %d", i, m.Seq)
		}
		seen[m.MsgID] = true
	}
	for id := range acked {
		if !seen[id] {
			t.Fatalf("acked message %d is not stored", id)
		}
	}
	t.Logf("%d acked, %d stored, failures %v", len(acked), len(stored), failures)
}

// The link to Redis (the presence directory) is cut: messaging goes on,
// friend lists fall back to this node's view, and presence works again
// once Redis is back.
func TestRedisOutage(t *testing.T) {
	proxy := servertest.NewProxy(t, redisAddr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: 1, DialTimeout: time.Second})
	srv := servertest.Start(t, func(c *server.Config) {
		c.Presence = predis.NewPresence(rdb, fmt.Sprintf("parley_t_outage_%d", time.Now().UnixNano()))
		c.RequestTimeout = 2 * time.Second
	})
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	befriend(t, alice, bob)

	proxy.Cut()
	if _, err := alice.Send(ctx(t), bob.id, 0, []byte("still here")); err != nil {
		t.Fatalf("send without Redis: %v", err)
	}
	expectTexts(t, receive(t, bob.Client, 1), 1, "still here")
	friends, err := alice.Friends(ctx(t))
	if err != nil || len(friends) != 1 || !friends[0].Online {
		t.Fatalf("friends without Redis: %+v %v", friends, err)
	}

	proxy.Restore()
	carol := register(t, srv, "carol")
	befriend(t, alice, carol)
	_ = carol.Close()
	for { // carol's online notice may come first: it races with befriend
		n := notice(t, alice.Client, true)
		if n.Presence.UserID == carol.id && !n.Presence.Online {
			break
		}
	}
	if alice.State() != client.StateLoggedIn || bob.State() != client.StateLoggedIn {
		t.Fatal("connections did not survive the outage")
	}
}

func redisAddr() string {
	if a := os.Getenv("PARLEY_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}
