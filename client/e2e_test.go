package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server/servertest"
)

// These tests drive the real client against a real server on loopback.

const wait = 5 * time.Second

// cable is a dialer whose connections the test can cut, and whose new
// dials it can refuse, to take a client offline without its knowing.
type cable struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func (c *cable) dial(ctx context.Context, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errors.New("cable: unplugged")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

// unplug closes every connection and refuses new ones until plug.
func (c *cable) unplug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

func (c *cable) plug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = false
}

func connect(t *testing.T, addr string, opts client.Options) *client.Client {
	t.Helper()
	opts.Logger = servertest.Logger(t)
	opts.MinBackoff, opts.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	c, err := client.Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

// receive reads n messages from c and returns them in arrival order.
func receive(t *testing.T, c *client.Client, n int) []protocol.Message {
	t.Helper()
	var got []protocol.Message
	timeout := time.After(wait)
	for len(got) < n {
		select {
		case m := <-c.Messages():
			got = append(got, m)
		case <-timeout:
			t.Fatalf("received %d of %d messages: %v", len(got), n, texts(got))
		}
	}
	return got
}

// quiet asserts that no message arrives for a while.
func quiet(t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected message %s #%d %q", m.Conv, m.Seq, m.Body)
	case <-time.After(150 * time.Millisecond):
	}
}

func awaitEvent(t *testing.T, c *client.Client, typ client.EventType) client.Event {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-c.Events():
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

func texts(ms []protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("#%d %s", m.Seq, m.Body)
	}
	return out
}

// expectTexts checks the messages' bodies and that their seqs count up
// from first.
func expectTexts(t *testing.T, got []protocol.Message, first uint64, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", texts(got), want)
	}
	for i, m := range got {
		if string(m.Body) != want[i] || m.Seq != first+uint64(i) {
			t.Fatalf("got %v, want %v from #%d", texts(got), want, first)
		}
	}
}

func TestEndToEndChat(t *testing.T) {
	srv := servertest.Start(t, nil)
	var bobCable cable
	alice := connect(t, srv.Addr(), client.Options{})
	bob := connect(t, srv.Addr(), client.Options{Reconnect: true, Dial: bobCable.dial})
	bobPhone := connect(t, srv.Addr(), client.Options{Device: "phone"})

	if _, err := alice.Register(ctx(t), "alice", "alice's password"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Register(ctx(t), "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	if _, err := bobPhone.Login(ctx(t), "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	conv := protocol.DirectConv(alice.UserID(), bob.UserID())

	// Send, push to both of bob's devices, ack.
	first, err := alice.Send(ctx(t), bob.UserID(), 0, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Conv != conv || first.Seq != 1 || first.MsgID == 0 || first.Duplicate {
		t.Fatalf("SendAck %+v", first)
	}
	for _, c := range []*client.Client{bob, bobPhone} {
		got := receive(t, c, 1)
		expectTexts(t, got, 1, "hi")
		if got[0].MsgID != first.MsgID || got[0].From != alice.UserID() {
			t.Fatalf("push %+v, want msg %d from alice", got[0], first.MsgID)
		}
	}
	if err := bob.Ack(ctx(t), conv, 1); err != nil {
		t.Fatal(err)
	}
	quiet(t, alice) // her own message is not echoed to her

	// A repeated client_msg_id is stored once and acked with the same ids.
	again, err := alice.SendRaw(ctx(t), protocol.Send{ClientMsgID: "retry-1", To: bob.UserID(), Body: []byte("once")})
	if err != nil {
		t.Fatal(err)
	}
	dup, err := alice.SendRaw(ctx(t), protocol.Send{ClientMsgID: "retry-1", To: bob.UserID(), Body: []byte("once")})
	if err != nil {
		t.Fatal(err)
	}
	if !dup.Duplicate || dup.MsgID != again.MsgID || dup.Seq != again.Seq || again.Seq != 2 {
		t.Fatalf("first %+v, repeat %+v", again, dup)
	}
	expectTexts(t, receive(t, bob, 1), 2, "once")
	expectTexts(t, receive(t, bobPhone, 1), 2, "once")
	quiet(t, bob)

	// Bob's laptop drops off; alice writes while it is away.
	bobCable.unplug()
	awaitEvent(t, bob, client.EventDisconnected)
	missed := []string{"are", "you", "there", "?"}
	for _, s := range missed {
		if _, err := alice.Send(ctx(t), bob.UserID(), 0, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	expectTexts(t, receive(t, bobPhone, len(missed)), 3, missed...)

	// It comes back, resumes with its token and gets exactly what it missed.
	bobCable.plug()
	if ev := awaitEvent(t, bob, client.EventLoggedIn); ev.MaxMessage != 16<<10 {
		t.Errorf("the relogin event tells max message %d, want the server's 16384", ev.MaxMessage)
	}
	expectTexts(t, receive(t, bob, len(missed)), 3, missed...)
	quiet(t, bob)
	if _, err := alice.Send(ctx(t), bob.UserID(), 0, []byte("welcome back")); err != nil {
		t.Fatal(err)
	}
	expectTexts(t, receive(t, bob, 1), 7, "welcome back")
	if err := bob.Ack(ctx(t), conv, 7); err != nil {
		t.Fatal(err)
	}

	// A new device starts from the server's read cursor.
	tablet := connect(t, srv.Addr(), client.Options{Device: "tablet"})
	if _, err := tablet.Login(ctx(t), "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	convs, err := tablet.Conversations(ctx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 1 || convs[0].Conv != conv || convs[0].LastSeq != 7 || convs[0].AckSeq != 7 || convs[0].Unread != 0 {
		t.Fatalf("tablet's conversations %+v", convs)
	}

	// History pages backwards.
	page, err := alice.History(ctx(t), conv, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 3 || page.Messages[0].Seq != 7 || page.Messages[2].Seq != 5 || !page.HasMore {
		t.Fatalf("first history page %v has_more=%v", texts(page.Messages), page.HasMore)
	}
	var seqs []uint64
	for before := page.Next; ; {
		p, err := alice.History(ctx(t), conv, before, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			seqs = append(seqs, m.Seq)
		}
		if !p.HasMore {
			break
		}
		before = p.Next
	}
	if fmt.Sprint(seqs) != "[4 3 2 1]" {
		t.Fatalf("later history pages %v", seqs)
	}

	// Bob deletes his copy of "hi" and everything up to #3; alice keeps hers.
	if err := bob.DeleteHistory(ctx(t), conv, []uint64{5}, 3); err != nil {
		t.Fatal(err)
	}
	mine, err := bob.History(ctx(t), conv, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(mine.Messages); fmt.Sprint(got) != "[#7 welcome back #6 ? #4 you]" {
		t.Fatalf("bob's history after delete %v", got)
	}
	hers, err := alice.History(ctx(t), conv, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hers.Messages) != 7 {
		t.Fatalf("alice's history %v", texts(hers.Messages))
	}
}

func TestEndToEndDataSurvivesRestart(t *testing.T) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil)
	alice := connect(t, srv.Addr(), client.Options{})
	if _, err := alice.Register(ctx(t), "alice", "alice's password"); err != nil {
		t.Fatal(err)
	}
	bob := connect(t, srv.Addr(), client.Options{})
	if _, err := bob.Register(ctx(t), "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	bobID := bob.UserID()
	_ = bob.Close()
	for i := range 3 {
		if _, err := alice.Send(ctx(t), bobID, 0, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Stop(t, srv)

	srv = servertest.StartOn(t, st, nil)
	bob = connect(t, srv.Addr(), client.Options{SyncOnLogin: true})
	if _, err := bob.Login(ctx(t), "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	expectTexts(t, receive(t, bob, 3), 1, "m0", "m1", "m2")
	quiet(t, bob)
}
