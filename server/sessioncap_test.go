package server_test

import (
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// TestSessionCapConcurrentLogins: logins of one account that arrive at
// once on many connections, by password and by token, get exactly
// MaxConnsPerUser LoginOKs; the others are refused TOO_MANY_SESSIONS. A
// session that closes makes room for exactly one more.
func TestSessionCapConcurrentLogins(t *testing.T) {
	const max, conns = 4, 48
	srv := startServer(t, func(c *server.Config) {
		c.MaxConnsPerUser = max
		c.Workers = 64
		c.HashWorkers = 8
		c.HashQueue = 100
	})
	for round, byToken := range []bool{false, true} {
		name := uniqueName("cap")
		owner := dial(t, srv.Addr())
		tok := owner.register(name).Token // the account's first session
		login := &protocol.Login{Username: name, Password: "correct horse"}
		if byToken {
			login = &protocol.Login{Token: tok}
		}
		clients := make([]*raw, conns)
		for i := range clients {
			clients[i] = dial(t, srv.Addr())
		}
		// Every login is on the wire before any answer is read.
		ids := make([]uint32, conns)
		for i, c := range clients {
			ids[i] = c.send(protocol.TypeLogin, login)
		}
		var (
			mu      sync.Mutex
			ok      []*raw
			refused int
			wg      sync.WaitGroup
		)
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := c.next(10 * time.Second)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("login %d: %v", i, err)
				case f.h.Type == protocol.TypeLoginOK && f.h.RequestID == ids[i]:
					ok = append(ok, c)
				case f.h.Type == protocol.TypeError:
					var e protocol.Error
					_ = protocol.DecodeBody(f.body, &e)
					if e.Code != protocol.CodeTooManySessions {
						t.Errorf("login %d: %s %q", i, e.Code, e.Message)
					}
					refused++
				default:
					t.Errorf("login %d: %s", i, f.h.Type)
				}
			}()
		}
		wg.Wait()
		// The owner's session is open: max-1 more fit.
		if len(ok) != max-1 || refused != conns-(max-1) {
			t.Fatalf("round %d: %d LoginOK and %d refused, want %d and %d", round, len(ok), refused, max-1, conns-(max-1))
		}

		// One session closes: once it has left, exactly one more fits.
		_ = ok[0].c.Close()
		try := func() bool {
			c := dial(t, srv.Addr())
			id := c.send(protocol.TypeLogin, &protocol.Login{Token: tok})
			f, err := c.next(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return f.h.Type == protocol.TypeLoginOK && f.h.RequestID == id
		}
		deadline := time.Now().Add(5 * time.Second)
		for !try() {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no login after a session closed", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if try() {
			t.Fatalf("round %d: two logins fit in the place of one closed session", round)
		}
	}
}
