package server

import (
	"context"
	"io"
	"log/slog"
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
