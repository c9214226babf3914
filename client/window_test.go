package client_test

import (
	"slices"
	"testing"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// The sender keeps at most the server's send_window Sends unanswered: a
// server with a window of 4 answers none of 200 Sends made at once BUSY,
// and stores every one, in call order.
func TestSendWindowHonoured(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MaxPendingSends = 4 })
	alice := connect(t, srv.Addr(), client.Options{})
	ok, err := alice.Register(ctx(t), "alice", "alice's password")
	if err != nil {
		t.Fatal(err)
	}
	if ok.SendWindow != 4 {
		t.Fatalf("LoginOK.send_window %d, want 4", ok.SendWindow)
	}
	bob := register(t, srv, "bob")
	const n = 200
	sendInOrder(t, alice, bob.id, n, "w")() // fails on any error, BUSY included
	if got := storedTexts(t, alice, bob.id, 500); !slices.Equal(got, want("w", n)) {
		t.Fatalf("stored %d messages, in the wrong order or with gaps: %q", len(got), got)
	}
}
