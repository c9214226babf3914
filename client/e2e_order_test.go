package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// sendInOrder starts n Sends from alice to bob, each on a goroutine of its
// own, and starts the next only once the one before is in the client's
// queue, so that the calls begin in the order 0..n-1. It returns a
// function that waits for them all and fails the test on an error.
func sendInOrder(t *testing.T, alice *client.Client, to int64, n int, prefix string) func() {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		before := client.EnqueuedSends(alice)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := alice.Send(sctx, to, 0, fmt.Appendf(nil, "%s%d", prefix, i)); err != nil {
				errs <- fmt.Errorf("send %d: %w", i, err)
			}
		}()
		deadline := time.Now().Add(wait)
		for client.EnqueuedSends(alice) <= before {
			if time.Now().After(deadline) {
				t.Fatalf("send %d never queued", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return func() {
		t.Helper()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// storedTexts reads the whole conversation of u with peer, oldest first.
func storedTexts(t *testing.T, u *client.Client, peer int64, max uint32) []string {
	t.Helper()
	conv := protocol.DirectConv(u.UserID(), peer)
	h, err := u.History(ctx(t), conv, 0, max)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(h.Messages) - 1; i >= 0; i-- {
		out = append(out, string(h.Messages[i].Body))
	}
	return out
}

func want(prefix string, n int) []string {
	var w []string
	for i := range n {
		w = append(w, fmt.Sprintf("%s%d", prefix, i))
	}
	return w
}

// Bug 1 of issue 17: sends made while the server is down waited inside
// the library and left in arbitrary order once it reconnected. Now they
// are stored in the order the calls began.
func TestSendOrderAcrossServerRestart(t *testing.T) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil)
	addr := srv.Addr()
	alice := connect(t, addr, client.Options{Reconnect: true})
	if _, err := alice.Register(ctx(t), "alice", "alice's password"); err != nil {
		t.Fatal(err)
	}
	bob := connect(t, addr, client.Options{})
	if _, err := bob.Register(ctx(t), "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	bobID := bob.UserID()
	_ = bob.Close()
	servertest.Stop(t, srv)

	const n = 20
	done := sendInOrder(t, alice, bobID, n, "offline order test ")
	servertest.StartOn(t, st, func(c *server.Config) { c.Addr = addr })
	done()
	if got := storedTexts(t, alice, bobID, 100); !slices.Equal(got, want("offline order test ", n)) {
		t.Fatalf("stored %q", got)
	}
}

// Sends pipelined on a connection that is cut in the middle are written
// again, in order, on the next: every one is stored once, in call order.
func TestSendOrderAcrossCut(t *testing.T) {
	srv := servertest.Start(t, nil)
	proxy := servertest.NewProxy(t, srv.Addr())
	alice := connect(t, proxy.Addr(), client.Options{Reconnect: true})
	if _, err := alice.Register(ctx(t), "alice", "alice's password"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, srv, "bob")

	const n = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Cut once some sends went out, while others are still queued.
		for client.EnqueuedSends(alice) < n/3 {
			time.Sleep(50 * time.Microsecond)
		}
		proxy.Cut()
		time.Sleep(50 * time.Millisecond)
		proxy.Restore()
	}()
	done := sendInOrder(t, alice, bob.id, n, "m")
	done()
	wg.Wait()
	got := storedTexts(t, alice, bob.id, 500)
	if !slices.Equal(got, want("m", n)) {
		t.Fatalf("stored %d messages, in the wrong order or with duplicates: %q", len(got), got)
	}
}

// Resume starts without the server: sends made meanwhile wait, in order,
// and go out once the server is up and the saved token logs in. A token
// the server refuses closes the client with TOKEN_INVALID.
func TestResumeOffline(t *testing.T) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil)
	addr := srv.Addr()
	first := connect(t, addr, client.Options{})
	if _, err := first.Register(ctx(t), "alice", "alice's password"); err != nil {
		t.Fatal(err)
	}
	token := first.Token()
	bob := register(t, srv, "bob")
	_ = first.Close()
	servertest.Stop(t, srv)

	alice, err := client.Resume(addr, token, client.Options{Logger: servertest.Logger(t), MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alice.Close() })
	if s := alice.State(); s != client.StateReconnecting {
		t.Fatalf("state %v, want reconnecting", s)
	}
	const n = 5
	done := sendInOrder(t, alice, bob.id, n, "resumed ")
	time.Sleep(200 * time.Millisecond) // a few failed attempts
	servertest.StartOn(t, st, func(c *server.Config) { c.Addr = addr })
	done()
	if got := storedTexts(t, alice, bob.id, 10); !slices.Equal(got, want("resumed ", n)) {
		t.Fatalf("stored %q", got)
	}

	bad, err := client.Resume(addr, "not-a-token", client.Options{Logger: servertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-bad.Events():
			if ev.Type == client.EventClosed {
				wantCode(t, ev.Err, protocol.CodeTokenInvalid)
				return
			}
		case <-timeout:
			t.Fatal("a refused token did not close the client")
		}
	}
}
