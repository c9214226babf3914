package client_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// nextNotice waits for the next notice of c that want accepts, skipping
// presence notices.
func nextNotice(t *testing.T, c *client.Client, what string, want func(client.Notice) bool) client.Notice {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case n := <-c.Notices():
			if n.Presence != nil {
				continue
			}
			if !want(n) {
				t.Fatalf("%s: unexpected notice %s", what, describe(n))
			}
			return n
		case <-timeout:
			t.Fatalf("%s: no notice", what)
		}
	}
}

// noReceiptNotice asserts that no notice but presence arrives for d.
func noReceiptNotice(t *testing.T, c *client.Client, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case n := <-c.Notices():
			if n.Presence == nil {
				t.Fatalf("unexpected notice %s", describe(n))
			}
		case <-timeout:
			return
		}
	}
}

func describe(n client.Notice) string {
	for _, v := range []any{n.Friend, n.Group, n.Typing, n.Read, n.Delivered, n.GroupRead, n.State} {
		switch v := v.(type) {
		case *protocol.FriendEvent, *protocol.GroupEvent, *protocol.TypingEvent, *protocol.ReadEvent,
			*protocol.DeliveredEvent, *protocol.GroupReadEvent, *protocol.ConvState:
			if fmt.Sprint(v) != "<nil>" {
				return fmt.Sprintf("%T%+v", v, v)
			}
		}
	}
	return "presence"
}

func readNotice(t *testing.T, c *client.Client, conv string, user int64, seq uint64) {
	t.Helper()
	nextNotice(t, c, fmt.Sprintf("read %s by %d to %d", conv, user, seq), func(n client.Notice) bool {
		return n.Read != nil && *n.Read == protocol.ReadEvent{Conv: conv, User: user, Seq: seq}
	})
}

// Read receipts of a direct conversation: the other user and the reader's
// other devices learn each move of the cursor once; turning receipts off
// hides them from the other user only; Receipts tells a device that was
// away.
func TestReadReceiptsDirect(t *testing.T) {
	srv := servertest.Start(t, nil)
	a, b := register(t, srv, "ann"), register(t, srv, "ben")
	b2 := b.again(t, srv, client.Options{})
	var conv string
	for i := range 3 {
		ack, err := a.Send(ctx(t), b.id, 0, fmt.Appendf(nil, "m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		conv = ack.Conv
	}
	if err := b.Ack(ctx(t), conv, 2); err != nil {
		t.Fatal(err)
	}
	readNotice(t, a.Client, conv, b.id, 2)
	readNotice(t, b2.Client, conv, b.id, 2)
	// A cursor that does not move says nothing; one past the end is clamped.
	if err := b.Ack(ctx(t), conv, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx(t), conv, 99); err != nil {
		t.Fatal(err)
	}
	readNotice(t, a.Client, conv, b.id, 3)
	readNotice(t, b2.Client, conv, b.id, 3)
	noReceiptNotice(t, b.Client, 100*time.Millisecond) // not to the device that acked
	if r, err := a.Receipts(ctx(t), conv); err != nil || r.PeerRead != 3 {
		t.Fatalf("Receipts = %+v, %v; want peer_read 3", r, err)
	}

	// Receipts off: ann learns nothing, ben's other device still does.
	if set, err := b.SetReceiptsOff(ctx(t), true); err != nil || !set.ReceiptsOff {
		t.Fatalf("SetReceiptsOff = %+v, %v", set, err)
	}
	if set, err := b2.Settings(ctx(t)); err != nil || !set.ReceiptsOff {
		t.Fatalf("Settings on the other device = %+v, %v", set, err)
	}
	if _, err := a.Send(ctx(t), b.id, 0, []byte("m3")); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx(t), conv, 4); err != nil {
		t.Fatal(err)
	}
	readNotice(t, b2.Client, conv, b.id, 4)
	noReceiptNotice(t, a.Client, 300*time.Millisecond)
	if r, err := a.Receipts(ctx(t), conv); err != nil || r.PeerRead != 0 {
		t.Fatalf("Receipts with receipts off = %+v, %v; want nothing", r, err)
	}
	if _, err := b.SetReceiptsOff(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Receipts(ctx(t), conv); err != nil || r.PeerRead != 4 {
		t.Fatalf("Receipts with receipts on again = %+v, %v; want 4", r, err)
	}
	// Not a conversation of the asker's.
	c := register(t, srv, "cal")
	_, err := c.Receipts(ctx(t), conv)
	wantCode(t, err, protocol.CodeBadConv)
}

// Delivery receipts: a client with DeliveryReceipts tells the sender once a
// direct message reached it; a hostile Received past the end is clamped.
func TestDeliveryReceipts(t *testing.T) {
	srv := servertest.Start(t, nil)
	a := register(t, srv, "ann")
	bc := connect(t, srv.Addr(), client.Options{DeliveryReceipts: true})
	ok, err := bc.Register(ctx(t), "ben", "ben-password")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := a.Send(ctx(t), ok.UserID, 0, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	receive(t, bc, 1)
	nextNotice(t, a.Client, "delivered", func(n client.Notice) bool {
		return n.Delivered != nil && *n.Delivered == protocol.DeliveredEvent{Conv: ack.Conv, User: ok.UserID, Seq: 1}
	})
	// A client that claims seq 1000: the sender is told 1, the last.
	c := register(t, srv, "cal")
	cack, err := a.Send(ctx(t), c.id, 0, []byte("hi cal"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Received(ctx(t), cack.Conv, 1000); err != nil {
		t.Fatal(err)
	}
	nextNotice(t, a.Client, "clamped delivery", func(n client.Notice) bool {
		return n.Delivered != nil && *n.Delivered == protocol.DeliveredEvent{Conv: cack.Conv, User: c.id, Seq: 1}
	})
	// Groups have read counts, not delivery receipts.
	wantCode(t, c.Received(ctx(t), "g:1", 1), protocol.CodeBadConv)
}

// Delivery is kept: a sender that was away, even across a restart of the
// server, learns from Receipts how far its messages were delivered.
func TestDeliveredKept(t *testing.T) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil)
	a, b := register(t, srv, "ann"), register(t, srv, "ben")
	var conv string
	for i := range 3 {
		ack, err := a.Send(ctx(t), b.id, 0, []byte(fmt.Sprintf("m%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		conv = ack.Conv
	}
	_ = a.Close() // ann is away
	for _, seq := range []uint64{1, 2, 1} {
		if err := b.Received(ctx(t), conv, seq); err != nil {
			t.Fatal(err)
		}
	}
	a = a.again(t, srv, client.Options{})
	if r, err := a.Receipts(ctx(t), conv); err != nil || r.PeerDelivered != 2 || r.PeerRead != 0 {
		t.Fatalf("ann's Receipts = %+v, %v; want delivered 2, read 0", r, err)
	}
	if r, err := b.Receipts(ctx(t), conv); err != nil || r.PeerDelivered != 0 {
		t.Fatalf("ben's Receipts = %+v, %v; want delivered 0 (ann sent no Received)", r, err)
	}
	servertest.Stop(t, srv)
	srv = servertest.StartOn(t, st, nil)
	a = a.again(t, srv, client.Options{})
	if r, err := a.Receipts(ctx(t), conv); err != nil || r.PeerDelivered != 2 {
		t.Fatalf("after a restart ann's Receipts = %+v, %v; want delivered 2", r, err)
	}
}

// Typing: the other members see it with an expiry; renewals within a third
// of the TTL are not fanned out again; a stop is; a flood is refused.
func TestTyping(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.TypingTTL = 3 * time.Second })
	a, b := register(t, srv, "ann"), register(t, srv, "ben")
	conv := protocol.DirectConv(a.id, b.id)
	before := time.Now()
	if err := a.Typing(ctx(t), conv, false); err != nil {
		t.Fatal(err)
	}
	n := nextNotice(t, b.Client, "typing", func(n client.Notice) bool {
		return n.Typing != nil && n.Typing.Conv == conv && n.Typing.User == a.id
	})
	if until := time.UnixMilli(n.Typing.Until); until.Before(before.Add(2*time.Second)) || until.After(time.Now().Add(4*time.Second)) {
		t.Errorf("typing until %v, want about 3s from %v", until, before)
	}
	if err := a.Typing(ctx(t), conv, false); err != nil {
		t.Fatal(err)
	}
	noReceiptNotice(t, b.Client, 200*time.Millisecond)
	if err := a.Typing(ctx(t), conv, true); err != nil {
		t.Fatal(err)
	}
	nextNotice(t, b.Client, "typing stopped", func(n client.Notice) bool {
		return n.Typing != nil && n.Typing.User == a.id && n.Typing.Until == 0
	})
	noReceiptNotice(t, a.Client, 100*time.Millisecond) // never to the typist
	// Not a member.
	c := register(t, srv, "cal")
	wantCode(t, c.Typing(ctx(t), conv, false), protocol.CodeBadConv)
	// Only at whom one may write.
	wantCode(t, a.Typing(ctx(t), protocol.DirectConv(a.id, 99999), false), protocol.CodeNoSuchUser)
	// A flood: past the burst, RATE_LIMITED.
	limited := 0
	for range 40 {
		if err := a.Typing(ctx(t), conv, true); err != nil {
			wantCode(t, err, protocol.CodeRateLimited)
			limited++
		}
	}
	if limited == 0 {
		t.Error("40 typing frames at once were all accepted")
	}
}

// The user's state follows it to its other devices: mute and pin, deletes;
// Conversations shows the flags to a device that was away.
func TestStateOnEveryDevice(t *testing.T) {
	srv := servertest.Start(t, nil)
	a, b := register(t, srv, "ann"), register(t, srv, "ben")
	a2 := a.again(t, srv, client.Options{})
	ack, err := b.Send(ctx(t), a.id, 0, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx(t), a.id, 0, []byte("two")); err != nil {
		t.Fatal(err)
	}
	conv := ack.Conv
	if err := a.SetConvPrefs(ctx(t), conv, true, true); err != nil {
		t.Fatal(err)
	}
	nextNotice(t, a2.Client, "prefs", func(n client.Notice) bool {
		return n.State != nil && n.State.Conv == conv && n.State.Kind == protocol.StatePrefs && n.State.Muted && n.State.Pinned
	})
	if err := a.DeleteHistory(ctx(t), conv, []uint64{2}, 0); err != nil {
		t.Fatal(err)
	}
	nextNotice(t, a2.Client, "hidden", func(n client.Notice) bool {
		return n.State != nil && n.State.Kind == protocol.StateHidden && slices.Equal(n.State.Seqs, []uint64{2})
	})
	noReceiptNotice(t, b.Client, 100*time.Millisecond) // ann's state is hers

	a3 := a.again(t, srv, client.Options{})
	convs, err := a3.Conversations(ctx(t), 10)
	if err != nil || len(convs) != 1 || !convs[0].Muted || !convs[0].Pinned || convs[0].Last == nil || convs[0].Last.Seq != 1 {
		t.Fatalf("Conversations on a new device = %+v, %v", convs, err)
	}
	if err := a3.SetConvPrefs(ctx(t), conv, false, true); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*user{a, a2} {
		nextNotice(t, d.Client, "unmuted", func(n client.Notice) bool {
			return n.State != nil && !n.State.Muted && n.State.Pinned
		})
	}
	c := register(t, srv, "cal")
	wantCode(t, c.SetConvPrefs(ctx(t), conv, true, false), protocol.CodeBadConv)
}

// Conversations pages past the 500 of one page: 510 conversations (groups
// of one, the cheapest to make) in two pages, most recent first.
func TestConversationsPaging(t *testing.T) {
	srv := servertest.Start(t, nil)
	a := register(t, srv, "ann")
	const n = 510
	type entry struct {
		at   int64
		conv string
	}
	var sent []entry
	for i := range n {
		g, err := a.CreateGroup(ctx(t), fmt.Sprintf("g%03d", i), false)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := a.SendGroup(ctx(t), g.GroupID, 0, []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, entry{ack.ServerTime, ack.Conv})
	}
	// Most recent first; a tie (same millisecond) by conversation id.
	slices.SortFunc(sent, func(x, y entry) int {
		if x.at != y.at {
			return cmp.Compare(y.at, x.at)
		}
		return strings.Compare(x.conv, y.conv)
	})
	want := make([]string, 0, n)
	for _, e := range sent {
		want = append(want, e.conv)
	}
	var (
		got       []string
		afterTime int64
		afterConv string
		pages     int
	)
	for {
		page, err := a.ConversationsPage(ctx(t), 500, afterTime, afterConv)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, c := range page.Conversations {
			got = append(got, c.Conv)
		}
		if !page.HasMore {
			break
		}
		last := page.Conversations[len(page.Conversations)-1]
		afterTime, afterConv = last.LastTime, last.Conv
	}
	if pages != 2 || !slices.Equal(got, want) {
		t.Fatalf("%d pages, %d conversations; want 2 pages of the %d in order", pages, len(got), n)
	}
}
