package client_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server/servertest"
)

// BenchmarkSend compares Send through the client's ordered queue with the
// unordered path it replaced (a Send frame through Do, as before the
// queue), in the same run, against a real server, with GOMAXPROCS
// senders and 16 times as many.
func BenchmarkSend(b *testing.B) {
	srv := servertest.Start(b, nil)
	dial := func(name string) *client.Client {
		c, err := client.Dial(context.Background(), srv.Addr(), client.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		if _, err := c.Register(context.Background(), name, name+"-password"); err != nil {
			b.Fatal(err)
		}
		return c
	}
	alice, bob := dial("alice"), dial("bob")
	to := bob.UserID()
	body := []byte("a message of some thirty bytes")
	for _, par := range []int{1, 16} {
		senders := strconv.Itoa(par * runtime.GOMAXPROCS(0))
		b.Run("direct/senders="+senders, func(b *testing.B) {
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s := protocol.Send{ClientMsgID: alice.NewClientMsgID(), To: to, Body: body}
					if _, err := alice.Do(context.Background(), protocol.TypeSend, &s, &protocol.SendAck{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("queue/senders="+senders, func(b *testing.B) {
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := alice.Send(context.Background(), to, 0, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
