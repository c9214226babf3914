package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/server"
)

// BenchmarkPresenceAnnounce is the presence goroutine's work for users
// that come online or go offline: the directory (PARLEY_TEST_PRESENCE:
// memory or redis), each user's friends from the store, where they are,
// and the push. 15,000 reconnects after a node restart are 15,000 of
// these. "serial" announces one user after the other (as before),
// "batch" hands the goroutine's whole batch to announceAll.
func BenchmarkPresenceAnnounce(b *testing.B) {
	for _, friends := range []int{0, 20} {
		for _, mode := range []string{"serial", "batch"} {
			b.Run(fmt.Sprintf("friends=%d/%s", friends, mode), func(b *testing.B) {
				srv := startServer(b, nil)
				users := presenceUsers(b, srv, 500, friends)
				b.ResetTimer()
				for done := 0; done < b.N; {
					// Every user changes each round: online, then offline.
					online := done/len(users)%2 == 0
					batch := users[:min(len(users), b.N-done)]
					if mode == "serial" {
						for _, u := range batch {
							server.Announce(srv, u, online)
						}
					} else {
						server.AnnounceAll(srv, batch, online)
					}
					done += len(batch)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announces/s")
			})
		}
	}
}

// presenceUsers creates n users, each a friend of the friends/2 users
// after it and of the friends/2 before it.
func presenceUsers(b *testing.B, srv *server.Server, n, friends int) []int64 {
	b.Helper()
	st, ctx := srv.Store(), context.Background()
	users := make([]int64, n)
	for i := range users {
		u, err := st.CreateUser(ctx, fmt.Sprintf("pb%d", i), []byte("x"))
		if err != nil {
			b.Fatal(err)
		}
		users[i] = u.ID
	}
	for i := range users {
		for k := 1; k <= friends/2; k++ {
			a, c := users[i], users[(i+k)%n]
			if _, err := st.RequestFriend(ctx, a, c, "", time.Now()); err != nil {
				b.Fatal(err)
			}
			if _, err := st.RequestFriend(ctx, c, a, "", time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
	return users
}
