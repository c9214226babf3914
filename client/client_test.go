package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

const convA = "d:1:2"

func TestLoginAndConcurrentRequests(t *testing.T) {
	p := newPeer(t)
	c, pc := loggedIn(t, p, testOptions(t), loginOK())
	if c.UserID() != 1 || c.Token() != "tok-1" || c.State() != StateLoggedIn {
		t.Fatalf("after login: user %d token %q state %s", c.UserID(), c.Token(), c.State())
	}
	waitEvent(t, c, EventConnected)
	waitEvent(t, c, EventLoggedIn)

	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("d:1:%d", i+2)
			res, err := c.Sync(context.Background(), conv, uint64(i), 0)
			switch {
			case err != nil:
				errs <- err
			case res.Conv != conv || res.LastSeq != uint64(i):
				errs <- fmt.Errorf("request %d got the reply of %s/%d", i, res.Conv, res.LastSeq)
			}
		}()
	}
	// Collect every request, then answer in reverse order.
	type req struct {
		id uint32
		s  protocol.Sync
	}
	reqs := make([]req, n)
	seen := make(map[uint32]bool)
	for i := range reqs {
		reqs[i].id = pc.expect(protocol.TypeSync, &reqs[i].s)
		if reqs[i].id == 0 || seen[reqs[i].id] {
			t.Fatalf("request id %d reused or zero", reqs[i].id)
		}
		seen[reqs[i].id] = true
	}
	for i := n - 1; i >= 0; i-- {
		r := reqs[i]
		pc.send(protocol.TypeSyncResult, r.id, &protocol.SyncResult{Conv: r.s.Conv, LastSeq: r.s.LastAckID, Messages: []protocol.Message{}})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestErrorReply(t *testing.T) {
	p := newPeer(t)
	c, pc := loggedIn(t, p, testOptions(t), loginOK())

	res := async(func() error { _, err := c.Send(context.Background(), 99, 1, []byte("hello")); return err })
	var s protocol.Send
	id := pc.expect(protocol.TypeSend, &s)
	if s.ClientMsgID == "" || s.To != 99 || string(s.Body) != "hello" {
		t.Fatalf("Send body %+v", s)
	}
	// An Error for request id 0 is only logged.
	pc.send(protocol.TypeError, 0, &protocol.Error{Code: protocol.CodeRateLimited, Message: "slow down"})
	pc.send(protocol.TypeError, id, &protocol.Error{Code: protocol.CodeNoSuchUser, Message: "no such user"})
	err := wait(t, res)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNoSuchUser {
		t.Fatalf("Send error %v, want NO_SUCH_USER", err)
	}
	var se *SendError
	if !errors.As(err, &se) || se.Send.ClientMsgID != s.ClientMsgID {
		t.Fatalf("Send error %v does not carry the client_msg_id %q", err, s.ClientMsgID)
	}

	// Do with a reply value of another type.
	res = async(func() error {
		_, err := c.Do(context.Background(), protocol.TypeAck, &protocol.Ack{Conv: convA, Seq: 1}, &protocol.SendAck{})
		return err
	})
	id = pc.expect(protocol.TypeAck, nil)
	pc.send(protocol.TypeOK, id, &protocol.OK{})
	if err := wait(t, res); !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("Do error %v, want ErrUnexpectedReply", err)
	}
	if c.State() != StateLoggedIn {
		t.Fatalf("state %s", c.State())
	}
}

func TestRequestTimeout(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.RequestTimeout = 100 * time.Millisecond
	c, pc := loggedIn(t, p, opts, loginOK())

	start := time.Now()
	res := async(func() error { _, err := c.Ping(context.Background()); return err })
	id := pc.expect(protocol.TypePing, nil)
	err := wait(t, res)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping error %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Fatalf("timed out after %v", d)
	}
	// The late reply is dropped; the connection goes on.
	pc.send(protocol.TypePong, id, &protocol.Pong{})

	ctx, cancel := context.WithCancel(context.Background())
	res = async(func() error { return c.Ack(ctx, convA, 3) })
	pc.expect(protocol.TypeAck, nil)
	cancel()
	if err := wait(t, res); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Ack error %v, want context.Canceled", err)
	}

	res = async(func() error { return c.Ack(context.Background(), convA, 4) })
	var a protocol.Ack
	id = pc.expect(protocol.TypeAck, &a)
	pc.send(protocol.TypeOK, id, &protocol.OK{})
	if err := wait(t, res); err != nil || a.Seq != 4 {
		t.Fatalf("Ack after timeout: %v (seq %d)", err, a.Seq)
	}
}

func TestPushDeliveryAndDedupe(t *testing.T) {
	p := newPeer(t)
	c, pc := loggedIn(t, p, testOptions(t), loginOK())

	pc.push(msg(convA, 1))
	pc.push(msg(convA, 2))
	pc.push(msg(convA, 2)) // repeated
	dup := msg(convA, 3)
	dup.MsgID = msg(convA, 1).MsgID // a msg_id seen before
	pc.push(dup)
	pc.push(msg(convA, 1)) // old
	pc.push(msg(convA, 3))
	other := msg("d:1:3", 1) // an unknown conversation starts at 0
	other.MsgID = 777
	pc.push(other)

	expectSeqs(t, c, convA, 1, 2, 3)
	if m := recvMsg(t, c); m.Conv != "d:1:3" || m.Seq != 1 || string(m.Body) != "hi" {
		t.Fatalf("message %+v", m)
	}
	expectNoMsg(t, c, 50*time.Millisecond)
}

func TestGapTriggersSync(t *testing.T) {
	p := newPeer(t)
	c, pc := loggedIn(t, p, testOptions(t), loginOK())

	pc.push(msg(convA, 1))
	expectSeqs(t, c, convA, 1)
	pc.push(msg(convA, 4))
	pc.push(msg(convA, 5))
	var s protocol.Sync
	id := pc.expect(protocol.TypeSync, &s)
	if s.Conv != convA || s.LastAckID != 1 {
		t.Fatalf("Sync %+v, want from 1", s)
	}
	expectNoMsg(t, c, 30*time.Millisecond) // 4 and 5 wait for the gap
	pc.send(protocol.TypeSyncResult, id, &protocol.SyncResult{
		Conv: convA, Messages: []protocol.Message{msg(convA, 2), msg(convA, 3), msg(convA, 4)}, Next: 4, LastSeq: 5,
	})
	expectSeqs(t, c, convA, 2, 3, 4, 5)

	// Seqs 7 and 8 are hidden for this user: the Sync answer skips them
	// and the client goes on without waiting for them.
	pc.push(msg(convA, 6))
	pc.push(msg(convA, 9))
	id = pc.expect(protocol.TypeSync, &s)
	if s.LastAckID != 6 {
		t.Fatalf("Sync from %d, want 6", s.LastAckID)
	}
	pc.send(protocol.TypeSyncResult, id, &protocol.SyncResult{Conv: convA, Messages: []protocol.Message{msg(convA, 9)}, Next: 9, LastSeq: 9})
	pc.push(msg(convA, 10))
	expectSeqs(t, c, convA, 6, 9, 10)

	// A gap larger than one page: the client pages on with next.
	pc.push(msg(convA, 14))
	id = pc.expect(protocol.TypeSync, &s)
	pc.send(protocol.TypeSyncResult, id, &protocol.SyncResult{Conv: convA, Messages: []protocol.Message{msg(convA, 11), msg(convA, 12)}, Next: 12, LastSeq: 14, HasMore: true})
	id = pc.expect(protocol.TypeSync, &s)
	if s.LastAckID != 12 {
		t.Fatalf("second page from %d, want 12", s.LastAckID)
	}
	pc.send(protocol.TypeSyncResult, id, &protocol.SyncResult{Conv: convA, Messages: []protocol.Message{msg(convA, 13), msg(convA, 14)}, Next: 14, LastSeq: 14})
	expectSeqs(t, c, convA, 11, 12, 13, 14)
	expectNoMsg(t, c, 30*time.Millisecond)
}

func TestOwnSendsNotDelivered(t *testing.T) {
	p := newPeer(t)
	c, pc := loggedIn(t, p, testOptions(t), loginOK())

	pc.push(msg(convA, 1))
	expectSeqs(t, c, convA, 1)

	// The ack takes seq 2; the peer's 3 follows without a Sync.
	res := async(func() error { _, err := c.Send(context.Background(), 2, 0, []byte("mine")); return err })
	id := pc.expect(protocol.TypeSend, nil)
	pc.send(protocol.TypeSendAck, id, &protocol.SendAck{MsgID: 5002, Conv: convA, Seq: 2})
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
	pc.push(msg(convA, 3))
	expectSeqs(t, c, convA, 3)

	// The peer's 5 overtakes the ack of our 4: the Sync it triggers
	// returns our own message, which is not delivered.
	var s protocol.Send
	res = async(func() error { _, err := c.Send(context.Background(), 2, 0, []byte("mine too")); return err })
	id = pc.expect(protocol.TypeSend, &s)
	pc.push(msg(convA, 5))
	own := protocol.Message{MsgID: 5004, Conv: convA, Seq: 4, From: 1, To: 2, ClientMsgID: s.ClientMsgID, Body: s.Body}
	var q protocol.Sync
	sid := pc.expect(protocol.TypeSync, &q)
	if q.LastAckID != 3 {
		t.Fatalf("Sync from %d, want 3", q.LastAckID)
	}
	pc.send(protocol.TypeSendAck, id, &protocol.SendAck{MsgID: 5004, Conv: convA, Seq: 4})
	pc.send(protocol.TypeSyncResult, sid, &protocol.SyncResult{Conv: convA, Messages: []protocol.Message{own, msg(convA, 5)}, Next: 5, LastSeq: 5})
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
	expectSeqs(t, c, convA, 5)

	// The peer's 7 overtakes the ack of our 6 again; this time the ack
	// arrives first and releases 7 before the Sync is answered.
	res = async(func() error { _, err := c.Send(context.Background(), 2, 0, []byte("third")); return err })
	id = pc.expect(protocol.TypeSend, &s)
	pc.push(msg(convA, 7))
	sid = pc.expect(protocol.TypeSync, &q)
	pc.send(protocol.TypeSendAck, id, &protocol.SendAck{MsgID: 5006, Conv: convA, Seq: 6})
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
	expectSeqs(t, c, convA, 7) // before the Sync is answered
	own = protocol.Message{MsgID: 5006, Conv: convA, Seq: 6, From: 1, To: 2, ClientMsgID: s.ClientMsgID}
	pc.send(protocol.TypeSyncResult, sid, &protocol.SyncResult{Conv: convA, Messages: []protocol.Message{own, msg(convA, 7)}, Next: 7, LastSeq: 7})
	pc.push(msg(convA, 8))
	expectSeqs(t, c, convA, 8)

	// A message from another device of the same user is delivered.
	other := msg(convA, 9)
	other.From, other.ClientMsgID = 1, "other-device-1"
	pc.push(other)
	expectSeqs(t, c, convA, 9)
	expectNoMsg(t, c, 30*time.Millisecond)
}

func TestReconnectResumesAndSyncs(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	c, pc := loggedIn(t, p, opts, loginOK())
	pc.push(msg(convA, 1))
	expectSeqs(t, c, convA, 1)

	// A Send is in flight when the connection drops: it stays queued, and
	// is written again after the re-login.
	var firstAck protocol.SendAck
	res := async(func() error {
		var err error
		firstAck, err = c.Send(context.Background(), 2, 0, []byte("lost?"))
		return err
	})
	var s protocol.Send
	pc.expect(protocol.TypeSend, &s)
	pc.close()
	if ev := waitEvent(t, c, EventDisconnected); ev.Err == nil {
		t.Fatal("Disconnected without a cause")
	}
	waitEvent(t, c, EventReconnecting)

	// A request made meanwhile waits for the new login.
	pingRes := async(func() error { _, err := c.Ping(context.Background()); return err })

	pc = p.accept()
	l := pc.login(loginOK())
	if l.Token != "tok-1" || l.Username != "" || l.Device != "test" {
		t.Fatalf("re-login %+v, want the token", l)
	}
	waitEvent(t, c, EventLoggedIn)

	// The client catches up: conversation list, then Sync of convA from 1.
	// The server stored our Send (seq 3): it is not delivered.
	var conversations protocol.Conversations
	var id uint32
	var sync protocol.Sync
	var pingID uint32
	resent := false
	for id == 0 || sync.Conv == "" || pingID == 0 || !resent {
		h, body, err := pc.read(waitLong)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Type {
		case protocol.TypePing:
			pingID = h.RequestID
			pc.send(protocol.TypePong, pingID, &protocol.Pong{})
		case protocol.TypeConversations:
			_ = protocol.DecodeBody(body, &conversations)
			id = h.RequestID
			pc.send(protocol.TypeConversationList, id, &protocol.ConversationList{Conversations: []protocol.Conversation{{Conv: convA, LastSeq: 3}}})
		case protocol.TypeSend:
			var again protocol.Send
			_ = protocol.DecodeBody(body, &again)
			if again.ClientMsgID != s.ClientMsgID || string(again.Body) != "lost?" {
				t.Fatalf("resent %+v, want %+v", again, s)
			}
			resent = true
			pc.send(protocol.TypeSendAck, h.RequestID, &protocol.SendAck{MsgID: 9003, Conv: convA, Seq: 3, Duplicate: true})
		case protocol.TypeSync:
			_ = protocol.DecodeBody(body, &sync)
			own := protocol.Message{MsgID: 9003, Conv: convA, Seq: 3, From: 1, To: 2, ClientMsgID: s.ClientMsgID}
			pc.send(protocol.TypeSyncResult, h.RequestID, &protocol.SyncResult{Conv: convA, Messages: []protocol.Message{msg(convA, 2), own}, Next: 3, LastSeq: 3})
		default:
			t.Fatalf("unexpected %s", h.Type)
		}
	}
	if sync.Conv != convA || sync.LastAckID != 1 {
		t.Fatalf("Sync %+v, want convA from 1", sync)
	}
	if err := wait(t, pingRes); err != nil {
		t.Fatalf("Ping across the reconnect: %v", err)
	}
	expectSeqs(t, c, convA, 2)
	if err := wait(t, res); err != nil || !firstAck.Duplicate || firstAck.MsgID != 9003 {
		t.Fatalf("Send across the reconnect: %v %+v", err, firstAck)
	}

	// A retry by the application with the same client_msg_id is acked as
	// a duplicate too.
	var ack protocol.SendAck
	res = async(func() error { var err error; ack, err = c.SendRaw(context.Background(), s); return err })
	var again protocol.Send
	id = pc.expect(protocol.TypeSend, &again)
	if again.ClientMsgID != s.ClientMsgID {
		t.Fatalf("retry client_msg_id %q, want %q", again.ClientMsgID, s.ClientMsgID)
	}
	pc.send(protocol.TypeSendAck, id, &protocol.SendAck{MsgID: 9003, Conv: convA, Seq: 3, Duplicate: true})
	if err := wait(t, res); err != nil || !ack.Duplicate {
		t.Fatalf("retry: %v %+v", err, ack)
	}
	pc.push(msg(convA, 4))
	expectSeqs(t, c, convA, 4)
	expectNoMsg(t, c, 30*time.Millisecond)
}

func TestKickReconnectsUnlessFinal(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	c, pc := loggedIn(t, p, opts, loginOK())

	// SHUTDOWN: reconnect.
	pc.send(protocol.TypeKick, 0, &protocol.Kick{Reason: protocol.KickShutdown, Message: "bye"})
	pc.expectClosed()
	ev := waitEvent(t, c, EventDisconnected)
	var k *KickError
	if !errors.As(ev.Err, &k) || k.Reason != protocol.KickShutdown || k.Final() {
		t.Fatalf("Disconnected %v, want a SHUTDOWN kick", ev.Err)
	}
	pc = p.accept()
	pc.login(loginOK())
	waitState(t, c, StateLoggedIn)

	// LOGOUT: no reconnect, the client closes.
	pc.send(protocol.TypeKick, 0, &protocol.Kick{Reason: protocol.KickLogout})
	pc.close()
	ev = waitEvent(t, c, EventClosed)
	if !errors.As(ev.Err, &k) || k.Reason != protocol.KickLogout || !errors.Is(ev.Err, ErrKicked) {
		t.Fatalf("Closed %v, want a LOGOUT kick", ev.Err)
	}
	if c.State() != StateClosed {
		t.Fatalf("state %s", c.State())
	}
	p.noAccept(100 * time.Millisecond)
	if _, ok := <-c.Messages(); ok {
		t.Fatal("Messages not closed")
	}
	_, err := c.Ping(context.Background())
	if !errors.Is(err, ErrClosed) || !errors.As(err, &k) {
		t.Fatalf("Ping after kick: %v", err)
	}
}

func TestTokenInvalidStopsReconnect(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	c, pc := loggedIn(t, p, opts, loginOK())
	pc.push(msg(convA, 1))
	pc.close()
	expectSeqs(t, c, convA, 1)

	pc = p.accept()
	var l protocol.Login
	id := pc.expect(protocol.TypeLogin, &l)
	pc.send(protocol.TypeError, id, &protocol.Error{Code: protocol.CodeTokenInvalid, Message: "expired"})
	ev := waitEvent(t, c, EventClosed)
	var pe *protocol.Error
	if !errors.As(ev.Err, &pe) || pe.Code != protocol.CodeTokenInvalid {
		t.Fatalf("Closed %v, want TOKEN_INVALID", ev.Err)
	}
	pc.expectClosed()
	p.noAccept(100 * time.Millisecond)
	if _, ok := <-c.Messages(); ok {
		t.Fatal("Messages not closed")
	}
}

func TestRedirect(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	var d net.Dialer
	opts.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		if addr == b.addr() {
			// Let the old node's close arrive before the new node answers.
			time.Sleep(50 * time.Millisecond)
		}
		return d.DialContext(ctx, "tcp", addr)
	}
	c, pa := dialPeer(t, a, opts)

	res := async(func() error { _, err := c.Login(context.Background(), "alice", "password1"); return err })
	id := pa.expect(protocol.TypeLogin, nil)
	pa.send(protocol.TypeRedirect, id, &protocol.Redirect{Addr: b.addr(), NodeID: 2})
	pa.close() // the old node may close at once
	pb := b.accept()
	l := pb.login(loginOK())
	if err := wait(t, res); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if l.Username != "alice" || l.Password != "password1" {
		t.Fatalf("Login on the new node %+v", l)
	}
	if ev := waitEvent(t, c, EventRedirected); ev.Addr != b.addr() {
		t.Fatalf("Redirected to %q", ev.Addr)
	}
	waitEvent(t, c, EventLoggedIn)

	res = async(func() error { _, err := c.Ping(context.Background()); return err })
	id = pb.expect(protocol.TypePing, nil)
	pb.send(protocol.TypePong, id, &protocol.Pong{})
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}

	// A reconnect goes to the node the user was redirected to.
	pb.close()
	pb = b.accept()
	if l := pb.login(loginOK()); l.Token != "tok-1" {
		t.Fatalf("re-login %+v", l)
	}
	waitState(t, c, StateLoggedIn)
}

// The protocol doc sends Redirect with request id 0: as the answer to a
// pending login, and unsolicited to move a logged-in session.
func TestRedirectRequestIDZero(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	c, pa := dialPeer(t, a, testOptions(t)) // no Reconnect: a move is followed anyway
	res := async(func() error { _, err := c.Login(context.Background(), "alice", "password1"); return err })
	pa.expect(protocol.TypeLogin, nil)
	pa.send(protocol.TypeRedirect, 0, &protocol.Redirect{Addr: b.addr()})
	pb := b.accept()
	if l := pb.login(loginOK()); l.Username != "alice" {
		t.Fatalf("Login on the new node %+v", l)
	}
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
	pa.expectClosed()
	waitEvent(t, c, EventLoggedIn)

	// Move back to a: the client closes b and logs in on a with its token,
	// without a backoff.
	pb.send(protocol.TypeRedirect, 0, &protocol.Redirect{Addr: a.addr()})
	if ev := waitEvent(t, c, EventDisconnected); !errors.Is(ev.Err, ErrRedirected) {
		t.Fatalf("Disconnected %v, want ErrRedirected", ev.Err)
	}
	if ev := waitEvent(t, c, EventReconnecting); ev.Delay != 0 {
		t.Fatalf("reconnect delay %v after a move", ev.Delay)
	}
	pa = a.accept()
	if l := pa.login(loginOK()); l.Token != "tok-1" {
		t.Fatalf("Login after the move %+v", l)
	}
	pb.expectClosed()
	waitState(t, c, StateLoggedIn)
}

func TestRedirectLimit(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, testOptions(t))
	res := async(func() error { _, err := c.Login(context.Background(), "alice", "password1"); return err })
	for i := 0; i <= maxRedirects; i++ {
		id := pc.expect(protocol.TypeLogin, nil)
		pc.send(protocol.TypeRedirect, id, &protocol.Redirect{Addr: p.addr()})
		if i < maxRedirects {
			pc = p.accept()
		}
	}
	if err := wait(t, res); !errors.Is(err, ErrTooManyRedirects) {
		t.Fatalf("Login: %v, want ErrTooManyRedirects", err)
	}
	// The client stays on the last node, where a login may be retried.
	if c.State() != StateConnected {
		t.Fatalf("state %s", c.State())
	}
	res = async(func() error { _, err := c.Login(context.Background(), "alice", "password1"); return err })
	pc.login(loginOK())
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeat(t *testing.T) {
	p := newPeer(t)
	ok := loginOK()
	ok.Heartbeat = 20
	_, pc := loggedIn(t, p, testOptions(t), ok)
	ids := map[uint32]bool{}
	for len(ids) < 3 {
		id := pc.expect(protocol.TypePing, nil)
		if id == 0 || ids[id] {
			t.Fatalf("heartbeat Ping with request id %d", id)
		}
		ids[id] = true
		pc.send(protocol.TypePong, id, &protocol.Pong{ServerTime: 1})
	}
}

func TestDeadConnection(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	ok := loginOK()
	ok.Heartbeat = 20
	c, pc := loggedIn(t, p, opts, ok)

	// The peer goes silent: no Pongs. Within three intervals (and one
	// tick) the client gives up on the connection and reconnects.
	start := time.Now()
	pc.expectClosed()
	if d := time.Since(start); d < 55*time.Millisecond {
		t.Fatalf("declared dead after %v, before three intervals", d)
	}
	if ev := waitEvent(t, c, EventDisconnected); !errors.Is(ev.Err, ErrDeadConn) {
		t.Fatalf("Disconnected %v, want ErrDeadConn", ev.Err)
	}
	pc = p.accept()
	pc.login(loginOK())
	waitState(t, c, StateLoggedIn)
}

func TestServerPing(t *testing.T) {
	p := newPeer(t)
	_, pc := loggedIn(t, p, testOptions(t), loginOK())
	pc.send(protocol.TypePing, 0, &protocol.Ping{})
	if id := pc.expect(protocol.TypePong, nil); id != 0 {
		t.Fatalf("Pong id %d, want 0", id)
	}
	pc.send(protocol.TypePing, 77, nil)
	if id := pc.expect(protocol.TypePong, nil); id != 77 {
		t.Fatalf("Pong id %d, want 77", id)
	}
}

func TestBadFrames(t *testing.T) {
	good := protocol.MustFrame(protocol.TypePush, 0, ptr(msg(convA, 1)))
	tests := []struct {
		name  string
		frame []byte
	}{
		{"version", func() []byte { b := append([]byte(nil), good...); b[4] = 9; return b }()},
		{"short", []byte{0, 0, 0, 3, 1, 0, 0}},
		{"too large", []byte{0x7f, 0, 0, 0, 1, 0, 0, 0x22, 0, 0, 0, 0}},
		{"push body", []byte{0, 0, 0, 9, 1, 0, 0, 0x22, 0, 0, 0, 0, 0xc1}},
		{"kick body", []byte{0, 0, 0, 9, 1, 0, 0, 0x05, 0, 0, 0, 0, 0x92}},
		{"login ok body", []byte{0, 0, 0, 9, 1, 0, 0, 0x12, 0, 0, 0, 1, 0xc1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeer(t)
			c, pc := loggedIn(t, p, testOptions(t), loginOK())
			pc.write(tt.frame)
			pc.expectClosed()
			ev := waitEvent(t, c, EventDisconnected)
			if !errors.Is(ev.Err, ErrBadFrame) {
				t.Fatalf("Disconnected %v, want ErrBadFrame", ev.Err)
			}
			waitState(t, c, StateClosed) // no Reconnect
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestFramesSplitAndLarge(t *testing.T) {
	p := newPeer(t)
	c, pc := loggedIn(t, p, testOptions(t), loginOK())

	var stream []byte
	for seq := uint64(1); seq <= 3; seq++ {
		stream = append(stream, protocol.MustFrame(protocol.TypePush, 0, ptr(msg(convA, seq)))...)
	}
	big := msg(convA, 4)
	big.Body = []byte(strings.Repeat("x", 100<<10)) // above the read buffer
	stream = append(stream, protocol.MustFrame(protocol.TypePush, 0, &big)...)
	for i := range stream {
		pc.write(stream[i : i+1])
	}
	expectSeqs(t, c, convA, 1, 2, 3)
	if m := recvMsg(t, c); m.Seq != 4 || len(m.Body) != 100<<10 {
		t.Fatalf("large message: seq %d, %d bytes", m.Seq, len(m.Body))
	}
}

func TestSyncOnLogin(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.SyncOnLogin = true
	c, pc := loggedIn(t, p, opts, loginOK())
	const convB, convC = "d:1:3", "d:1:4"

	id := pc.expect(protocol.TypeConversations, nil)
	// A push of a conversation the list will cover arrives first: it waits
	// for the list instead of starting the conversation at its seq.
	pc.push(msg(convC, 7))
	pc.send(protocol.TypeConversationList, id, &protocol.ConversationList{Conversations: []protocol.Conversation{
		{Conv: convA, LastSeq: 5, AckSeq: 3},
		{Conv: convB, LastSeq: 2, AckSeq: 2}, // nothing new
		{Conv: convC, LastSeq: 7, AckSeq: 5},
	}})
	want := map[string]uint64{convA: 3, convC: 5}
	for range 2 {
		var s protocol.Sync
		id := pc.expect(protocol.TypeSync, &s)
		from, ok := want[s.Conv]
		if !ok || s.LastAckID != from {
			t.Fatalf("Sync %+v", s)
		}
		delete(want, s.Conv)
		var msgs []protocol.Message
		for seq := from + 1; seq <= map[string]uint64{convA: 5, convC: 7}[s.Conv]; seq++ {
			msgs = append(msgs, msg(s.Conv, seq))
		}
		pc.send(protocol.TypeSyncResult, id, &protocol.SyncResult{Conv: s.Conv, Messages: msgs, Next: msgs[len(msgs)-1].Seq})
	}
	got := map[string][]uint64{}
	for range 4 {
		m := recvMsg(t, c)
		got[m.Conv] = append(got[m.Conv], m.Seq)
	}
	if fmt.Sprint(got[convA]) != "[4 5]" || fmt.Sprint(got[convC]) != "[6 7]" {
		t.Fatalf("delivered %v", got)
	}
	expectNoMsg(t, c, 30*time.Millisecond)
	pc.push(msg(convB, 3))
	expectSeqs(t, c, convB, 3)
}

func TestLogout(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	c, pc := loggedIn(t, p, opts, loginOK())
	res := async(func() error { return c.Logout(context.Background()) })
	id := pc.expect(protocol.TypeLogout, nil)
	pc.send(protocol.TypeOK, id, &protocol.OK{})
	pc.send(protocol.TypeKick, 0, &protocol.Kick{Reason: protocol.KickLogout})
	pc.close()
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, c, EventClosed)
	if !errors.Is(ev.Err, ErrLoggedOut) && !errors.Is(ev.Err, ErrKicked) {
		t.Fatalf("Closed %v", ev.Err)
	}
	p.noAccept(100 * time.Millisecond)
}

func TestCloseUnblocksEverything(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.PushBuffer = 1
	opts.Reconnect = true
	c, pc := loggedIn(t, p, opts, loginOK())
	for seq := uint64(1); seq <= 5; seq++ { // more than the application reads
		pc.push(msg(convA, seq))
	}
	res := async(func() error { _, err := c.Ping(context.Background()); return err })
	pc.expect(protocol.TypePing, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, res); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping during Close: %v, want ErrClosed", err)
	}
	// Close returns once the client's goroutines are done; a goroutine may
	// still be leaving its last deferred call, so allow it a moment to exit.
	left := clientGoroutines()
	for deadline := time.Now().Add(time.Second); left != "" && time.Now().Before(deadline); left = clientGoroutines() {
		time.Sleep(5 * time.Millisecond)
	}
	if left != "" {
		t.Fatalf("client goroutines left after Close:\n%s", left)
	}
	for range c.Messages() {
	}
	for range c.Events() {
	}
	if _, err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close: %v", err)
	}
	p.noAccept(50 * time.Millisecond)
}

func TestCloseDuringReconnect(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	c, pc := loggedIn(t, p, opts, loginOK())
	pc.close()
	pc = p.accept()
	id := pc.expect(protocol.TypeLogin, nil)
	closed := async(c.Close)
	pc.send(protocol.TypeLoginOK, id, ptr(loginOK())) // too late
	if err := wait(t, closed); err != nil {
		t.Fatal(err)
	}
	pc.expectClosed()
	if c.State() != StateClosed {
		t.Fatalf("state %s", c.State())
	}
}

func TestNoReconnectBeforeLogin(t *testing.T) {
	p := newPeer(t)
	opts := testOptions(t)
	opts.Reconnect = true
	c, pc := dialPeer(t, p, opts)
	pc.close()
	waitState(t, c, StateClosed)
	if _, err := c.Login(context.Background(), "alice", "password1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Login: %v", err)
	}
}

// gatedConn holds what its reads return until gate is closed, once gated
// is set: the client's reader then lags behind the socket.
type gatedConn struct {
	net.Conn
	gated atomic.Bool
	gate  chan struct{}
}

func (g *gatedConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if g.gated.Load() {
		<-g.gate
	}
	return n, err
}

// A write that fails because the server just closed the connection after
// its last frame (here a Redirect that moves the session) does not hide
// that frame: the reader still takes it, and the session moves.
func TestLastFrameOutlivesAFailedWrite(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	opts := testOptions(t)
	var (
		d    net.Dialer
		mu   sync.Mutex
		last *gatedConn
	)
	opts.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		g := &gatedConn{Conn: nc, gate: make(chan struct{})}
		mu.Lock()
		last = g
		mu.Unlock()
		return g, nil
	}
	c, pa := dialPeer(t, a, opts)
	res := async(func() error { _, err := c.Login(context.Background(), "alice", "password1"); return err })
	pa.login(loginOK())
	if err := wait(t, res); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	g := last
	mu.Unlock()
	g.gated.Store(true)
	pa.send(protocol.TypeRedirect, 0, &protocol.Redirect{Addr: b.addr()})
	pa.close()
	// Writes fail once the server's close has come back as a reset.
	var err error
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err = c.Ping(ctx)
		cancel()
		if errors.Is(err, ErrDisconnected) {
			break
		}
	}
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Ping after the server closed: %v, want ErrDisconnected", err)
	}
	close(g.gate)
	if ev := waitEvent(t, c, EventDisconnected); !errors.Is(ev.Err, ErrRedirected) {
		t.Fatalf("Disconnected %v, want ErrRedirected", ev.Err)
	}
	pb := b.accept()
	if l := pb.login(loginOK()); l.Token != "tok-1" {
		t.Fatalf("Login after the move %+v", l)
	}
}
