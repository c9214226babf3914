package server

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// stalledGroups is a Groups whose MemberIDs waits until release closes: it
// holds a delivery shard the way a slow storage read would.
type stalledGroups struct {
	storage.Groups
	entered chan struct{}
	release chan struct{}
}

func (g *stalledGroups) MemberIDs(ctx context.Context, group int64) ([]int64, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return []int64{1, 2}, nil
}

// TestCommitHookNeverBlocks: with a delivery shard stuck, the store's
// commit hook still returns at once, past the backlog too; what does not
// fit is dropped and counted, and the rest is delivered once the shard
// moves again.
func TestCommitHookNeverBlocks(t *testing.T) {
	g := &stalledGroups{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := &Server{
		cfg: Config{RequestTimeout: time.Minute},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		hub: newHub(),
	}
	s.members = newMemberCache(g)
	d := newDelivery(s)
	conv := protocol.GroupConv(7)
	msg := func(seq uint64) protocol.Message {
		return protocol.Message{MsgID: int64(seq), Conv: conv, GroupID: 7, Seq: seq}
	}
	d.committed([]protocol.Message{msg(1)})
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the shard never loaded the members")
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		batch := make([]protocol.Message, 0, 512)
		for seq := uint64(2); seq < deliveryBacklog+1000; seq++ {
			batch = append(batch, msg(seq))
			if len(batch) == cap(batch) {
				d.committed(batch)
				batch = batch[:0]
			}
		}
		d.committed(batch)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the commit hook blocked behind a stuck delivery shard")
	}
	var dropped uint64
	for _, q := range d.shards {
		q.mu.Lock()
		dropped += q.dropped
		q.mu.Unlock()
	}
	if dropped == 0 || dropped > 1000+512 {
		t.Errorf("dropped %d messages; want the ones past the backlog of %d", dropped, deliveryBacklog)
	}
	close(g.release)
	d.stop()
}

// pendingFrames decodes the frames queued on a session for its loop.
func pendingFrames(t *testing.T, ss *session) []frameOut {
	t.Helper()
	ss.out.mu.Lock()
	buf := append([]byte(nil), ss.out.pending...)
	ss.out.mu.Unlock()
	var out []frameOut
	for len(buf) > 0 {
		h, body, n, err := protocol.Decode(buf, 1<<20)
		if err != nil || n == 0 {
			t.Fatalf("pending bytes do not decode: n %d, err %v", n, err)
		}
		out = append(out, frameOut{h, body})
		buf = buf[n:]
	}
	return out
}

// frameOut is a frame queued for a client.
type frameOut struct {
	protocol.Header
	body []byte
}

// TestDirectPushLeavesWithTheCommit: a direct message's pushes are queued
// on its recipients' sessions by the time the commit hook returns, in
// sequence order, with no delivery shard involved (they are stopped here),
// to every session of both users but the one that sent it, which gets its
// SendAck instead.
func TestDirectPushLeavesWithTheCommit(t *testing.T) {
	s := &Server{
		cfg: Config{RequestTimeout: time.Minute, MaxOutbound: 1 << 20},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		hub: newHub(),
	}
	loop := newFakeLoop()
	defer close(loop.tasks)
	var written atomic.Int64
	sessions := map[string]*session{}
	for i, name := range []string{"alice1", "alice2", "bob1", "bob2", "carol"} {
		ss := &session{id: uint64(i + 1), srv: s}
		ss.c = &fakeConn{loop: loop, written: &written}
		ss.woken = true // the loop never flushes: pending stays to be read
		s.hub.login(map[byte]int64{'a': 1, 'b': 2, 'c': 3}[name[0]], ss)
		sessions[name] = ss
	}
	d := newDelivery(s)
	d.stop() // the shards are gone: only the direct path can push
	ab, ac := protocol.DirectConv(1, 2), protocol.DirectConv(1, 3)
	d.origin(11, sessions["alice1"])
	d.committed([]protocol.Message{
		{MsgID: 11, Conv: ab, From: 1, To: 2, Seq: 1},
		{MsgID: 12, Conv: ac, From: 1, To: 3, Seq: 1},
		{MsgID: 13, Conv: ab, From: 2, To: 1, Seq: 2},
		{MsgID: 14, Conv: ab, From: 2, To: 1, Seq: 3},
	})
	// alice1 sent msg 11: its SendAck comes from sendDone, not a push.
	want := map[string]int{"alice1": 3, "alice2": 4, "bob1": 3, "bob2": 3, "carol": 1}
	for name, n := range want {
		hs := pendingFrames(t, sessions[name])
		if len(hs) != n {
			t.Errorf("%s has %d frames queued when the hook returned, want %d", name, len(hs), n)
		}
		for _, h := range hs {
			if h.Type != protocol.TypePush {
				t.Errorf("%s got a %v, want pushes only", name, h.Type)
			}
		}
	}
	// bob1's pushes are ab's seqs 1, 2, 3 in order.
	for i, f := range pendingFrames(t, sessions["bob1"]) {
		var m protocol.Message
		if err := protocol.DecodeBody(f.body, &m); err != nil {
			t.Fatal(err)
		}
		if want := uint64(i + 1); m.Conv != ab || m.Seq != want {
			t.Errorf("bob1's push %d is %s seq %d, want %s seq %d", i, m.Conv, m.Seq, ab, want)
		}
	}
}
