package servertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/router"
)

// RingTraffic joins n users through seed, waits (up to limit) until each
// is on its owner, puts them all in a group, and starts traffic: each
// user writes to the next, and the second to the group, one message every
// every per sender. drops holds each user's disconnects so far.
func RingTraffic(t testing.TB, seed string, owner func(int64) string, n int, limit, every time.Duration) (users []*clienttest.Member, drops map[*clienttest.Member]int, tr *clienttest.Traffic) {
	t.Helper()
	for i := range n {
		m := clienttest.Join(t, seed, fmt.Sprintf("user%02d", i))
		clienttest.Eventually(t, limit, m.Name+" on its node", func() bool { return m.LastLogin() == owner(m.ID) })
		users = append(users, m)
	}
	ids := make([]int64, len(users))
	for i, m := range users {
		ids[i] = m.ID
	}
	g, err := users[0].CreateGroup(context.Background(), "all", false, ids...)
	if err != nil {
		t.Fatal(err)
	}
	drops = map[*clienttest.Member]int{}
	for _, m := range users {
		drops[m] = m.Count(client.EventDisconnected)
	}
	tr = clienttest.NewTraffic(t, every)
	for i := range users {
		tr.Direct(users[i], users[(i+1)%len(users)])
	}
	tr.Group(users[1], g.GroupID, users)
	return users, drops, tr
}

// CheckRestart checks one node's restart in a rolling restart, given the
// slot tables before it stopped, while it was away and after it returned:
// no slot moved away and back, and every user is logged in on its slot's
// owner having reconnected at most once (drops holds each user's
// disconnects before the restart, and is brought up to date). It returns
// the reconnects of the restart.
func CheckRestart(t testing.TB, before, gone, now router.Table, users []*clienttest.Member, drops map[*clienttest.Member]int, limit time.Duration) int {
	t.Helper()
	for s := range router.Slots {
		if before.Owners[s] != gone.Owners[s] && gone.Owners[s] != now.Owners[s] {
			t.Fatalf("slot %d moved %s → %s → %s in one restart", s, before.Owners[s], gone.Owners[s], now.Owners[s])
		}
	}
	total := 0
	for _, m := range users {
		clienttest.Eventually(t, limit, m.Name+" on its node", func() bool {
			return m.State() == client.StateLoggedIn && m.LastLogin() == now.Owner(m.ID)
		})
		d := m.Count(client.EventDisconnected)
		if d-drops[m] > 1 {
			t.Fatalf("%s reconnected %d times in one node's restart", m.Name, d-drops[m])
		}
		total += d - drops[m]
		drops[m] = d
	}
	return total
}
