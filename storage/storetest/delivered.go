package storetest

import (
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The cases of storage.Deliveries, which every backend implements.

var deliveredCases = []struct {
	name string
	fn   func(t *testing.T, open Open)
}{
	{"Delivered", testDelivered},
}

func deliveries(t *testing.T, s storage.Store) storage.Deliveries {
	t.Helper()
	d, ok := s.(storage.Deliveries)
	if !ok {
		t.Fatalf("%T does not implement storage.Deliveries", s)
	}
	return d
}

func testDelivered(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	d := deliveries(t, e.s)
	ids := e.users(3)
	a, b, c := ids[0], ids[1], ids[2]
	conv := e.fill(a, b, 5)[0].Conv
	cursor := func(user int64, conv string) uint64 {
		t.Helper()
		seq, err := d.DeliveredCursor(e.ctx, user, conv)
		if err != nil {
			t.Fatalf("DeliveredCursor: %v", err)
		}
		return seq
	}
	move := func(user int64, conv string, seq uint64) {
		t.Helper()
		if err := d.Delivered(e.ctx, user, conv, seq); err != nil {
			t.Fatalf("Delivered: %v", err)
		}
	}
	if got := cursor(b, conv); got != 0 {
		t.Fatalf("cursor before any move: %d", got)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		move(b, conv, seq)
	}
	move(b, conv, 2) // backwards: no change
	if got := cursor(b, conv); got != 4 {
		t.Fatalf("b's cursor %d, want 4 (the highest move)", got)
	}
	if got := cursor(a, conv); got != 0 {
		t.Fatalf("a's cursor %d, want 0: b's moves are b's", got)
	}
	// Not a direct conversation of the user's: ignored.
	move(c, conv, 3)
	if got := cursor(c, conv); got != 0 {
		t.Fatalf("a stranger's cursor %d, want 0", got)
	}
	g := e.createGroup(a, []int64{b}, 10)
	move(b, protocol.GroupConv(g.ID), 1)
	if got := cursor(b, protocol.GroupConv(g.ID)); got != 0 {
		t.Fatalf("a group's cursor %d, want 0 (delivery cursors are direct only)", got)
	}
	move(b, conv, 5)
	if got := cursor(b, conv); got != 5 {
		t.Fatalf("b's cursor %d, want 5", got)
	}
}

// DeliveredSurvivesClose checks that the delivery cursors moved on s (not
// yet written when Close is called) are durable: reopen opens the same
// data again after s is closed.
func DeliveredSurvivesClose(t *testing.T, s storage.Store, reopen func() storage.Store) {
	e := &env{t: t, s: s, ctx: t.Context()}
	e.msgID.Store(1_000_000)
	e.clock.Store(time.Now().UnixMilli())
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := e.fill(a, b, 3)[0].Conv
	d := deliveries(t, s)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := d.Delivered(e.ctx, b, conv, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	if got, err := deliveries(t, s).DeliveredCursor(e.ctx, b, conv); err != nil || got != 3 {
		t.Fatalf("after reopen: cursor %d, %v; want 3", got, err)
	}
}
