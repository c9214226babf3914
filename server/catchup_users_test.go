package server_test

import (
	"maps"
	"testing"
	"time"

	"github.com/parleyim/parley/server"
)

// A catch-up pushes the newest message of every conversation that changed
// since its time, however many pages of the conversation list they take,
// and nothing of a conversation that did not change.
func TestCatchUpReachesEveryChangedConversation(t *testing.T) {
	srv := startServer(t, nil)
	bob := dial(t, srv.Addr())
	b := bob.register(uniqueName("bob"))

	old := dial(t, srv.Addr())
	old.register(uniqueName("old"))
	old.sendText(b.UserID, "o1", "before the loss")
	bob.expectPush()
	time.Sleep(5 * time.Millisecond) // a conversation's time is in ms
	since := time.Now()

	const peers = 130 // over two pages of a catch-up's reads, and far over the 20 it once read
	want := map[string]uint64{}
	for range peers {
		c := dial(t, srv.Addr())
		c.register(uniqueName("peer"))
		c.sendText(b.UserID, "1", "one")
		ack := c.sendText(b.UserID, "2", "two")
		want[ack.Conv] = ack.Seq
		bob.expectPush()
		bob.expectPush()
		_ = c.c.Close()
	}

	if _, pushes := server.CatchUp(srv, since); pushes < peers {
		t.Fatalf("catch-up pushed %d messages, want at least %d", pushes, peers)
	}
	got := map[string]uint64{}
	for range peers {
		m := bob.expectPush()
		if _, dup := got[m.Conv]; dup {
			t.Fatalf("conversation %s pushed twice", m.Conv)
		}
		got[m.Conv] = m.Seq
	}
	if !maps.Equal(got, want) {
		t.Fatalf("caught up %v, want the newest of each changed conversation %v", got, want)
	}
	bob.silent(200 * time.Millisecond) // nothing of the conversation that did not change
}
