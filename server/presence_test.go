package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server"
)

// Many friends of one user changing at once (a node's clients all
// reconnecting) are each announced to it exactly once: offline when they
// all drop, online when they all come back.
func TestPresenceOfManyFriendsAtOnce(t *testing.T) {
	dir := router.NewMemoryPresence(nil)
	srv := startServer(t, func(c *server.Config) { c.Presence = dir })
	w := dial(t, srv.Addr())
	watcher := w.register(uniqueName("watcher")).UserID
	const n = 40
	tokens := make([]string, n)
	ids := map[int64]bool{}
	var list []int64
	for i := range tokens {
		c := dial(t, srv.Addr())
		ok := c.register(uniqueName("friend"))
		tokens[i] = ok.Token
		ids[ok.UserID] = true
		list = append(list, ok.UserID)
		_ = c.c.Close()
	}
	// Once the directory has them all offline, they become the watcher's
	// friends: nothing has been announced to it yet.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err := dir.Nodes(context.Background(), list)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d users still online in the directory", len(nodes))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, u := range list {
		for _, pair := range [][2]int64{{u, watcher}, {watcher, u}} {
			if _, err := srv.Store().RequestFriend(context.Background(), pair[0], pair[1], "", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := func(online bool) {
		t.Helper()
		seen := map[int64]bool{}
		for len(seen) < n {
			var p protocol.Presence
			w.expect(protocol.TypePresence, 0, &p)
			if !ids[p.UserID] || p.Online != online || seen[p.UserID] {
				t.Fatalf("presence %+v (seen before: %v), want each friend once, online %v", p, seen[p.UserID], online)
			}
			seen[p.UserID] = true
		}
		w.silent(500 * time.Millisecond)
	}
	conns := make([]*raw, n)
	for i := range conns {
		conns[i] = dial(t, srv.Addr())
		conns[i].send(protocol.TypeLogin, &protocol.Login{Token: tokens[i]})
	}
	for _, c := range conns {
		c.expect(protocol.TypeLoginOK, 0, nil)
	}
	expect(true)
	for _, c := range conns {
		_ = c.c.Close()
	}
	expect(false) // after the grace period, together
}
