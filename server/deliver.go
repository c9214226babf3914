package server

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/parleyim/parley/protocol"
)

const (
	deliveryShards = 16
	// deliveryBacklog bounds the messages waiting in one shard. Past it
	// the store's commits are not held up: their pushes are dropped and
	// counted, and the recipients fetch the messages with Sync when the
	// next push shows them the gap (docs/protocol.md, Delivery).
	deliveryBacklog = 1 << 14
)

// delivery pushes committed messages to the online connections of their
// recipients. The store's writer hands over every commit in order
// (committed) and never waits: messages are split by conversation over a
// few shards, each a queue and a goroutine, so one conversation's pushes
// leave in sequence order while different conversations fan out in
// parallel, and never on an event loop.
type delivery struct {
	srv    *Server
	seed   maphash.Seed
	shards [deliveryShards]*shardQueue
	wg     sync.WaitGroup

	// origins maps a message id to the session that sent it, which gets a
	// SendAck instead of a Push.
	origins sync.Map // int64 → *session
}

// shardQueue is one shard's backlog: the store's writer appends under mu,
// the shard's goroutine takes everything at once.
type shardQueue struct {
	mu      sync.Mutex
	msgs    []protocol.Message
	closed  bool
	wake    chan struct{} // capacity 1: "msgs changed"
	dropped uint64        // messages not delivered because the backlog was full
}

func newDelivery(srv *Server) *delivery {
	d := &delivery{srv: srv, seed: maphash.MakeSeed()}
	d.wg.Add(deliveryShards)
	for i := range d.shards {
		d.shards[i] = &shardQueue{wake: make(chan struct{}, 1)}
		go d.run(d.shards[i])
	}
	return d
}

func (d *delivery) origin(msgID int64, ss *session) { d.origins.Store(msgID, ss) }
func (d *delivery) forget(msgID int64)              { d.origins.Delete(msgID) }

// committed is the store's CommitHook. It copies the messages, since the
// store may reuse the slice, and never blocks.
func (d *delivery) committed(msgs []protocol.Message) {
	if len(msgs) == 0 {
		return
	}
	d.srv.m.committed(len(msgs))
	var split [deliveryShards][]protocol.Message
	for _, m := range msgs {
		i := maphash.String(d.seed, m.Conv) % deliveryShards
		split[i] = append(split[i], m)
	}
	for i, part := range split {
		if part != nil {
			d.shards[i].put(d, part)
		}
	}
}

// put appends a commit's messages of this shard, or drops them when the
// backlog is full.
func (q *shardQueue) put(d *delivery, part []protocol.Message) {
	q.mu.Lock()
	if q.closed || len(q.msgs)+len(part) > deliveryBacklog {
		q.dropped += uint64(len(part))
		q.mu.Unlock()
		for _, m := range part {
			d.origins.Delete(m.MsgID)
		}
		d.srv.log.Warn("delivery backlog full: pushes dropped", "messages", len(part))
		return
	}
	q.msgs = append(q.msgs, part...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take swaps the backlog with spare (emptied) and returns it; ok is false
// once the queue is closed and empty.
func (q *shardQueue) take(spare []protocol.Message) (batch []protocol.Message, ok bool) {
	for {
		q.mu.Lock()
		if len(q.msgs) > 0 {
			batch, q.msgs = q.msgs, spare[:0]
			q.mu.Unlock()
			return batch, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}

// run delivers the backlog of one shard. The pushes of what it takes at
// once to one session leave in a single write: a member of a busy group
// gets the messages in one syscall, not one each.
func (d *delivery) run(q *shardQueue) {
	defer d.wg.Done()
	var (
		targets []*session
		out     = make(map[*session][]byte)
		order   []*session // sessions in the order they first got a frame
		spare   []protocol.Message
	)
	for {
		batch, ok := q.take(spare)
		if !ok {
			return
		}
		for i := range batch {
			targets = d.push(&batch[i], targets[:0], func(ss *session, frame []byte) {
				buf, ok := out[ss]
				if !ok {
					order = append(order, ss)
				}
				out[ss] = append(buf, frame...)
			})
		}
		for _, ss := range order {
			ss.write(out[ss])
		}
		clear(out)
		clear(order)
		order = order[:0]
		clear(targets)
		clear(batch)
		spare = batch[:0]
	}
}

// push hands one message, encoded, to emit for every logged-in session of
// its recipients but the one that sent it.
func (d *delivery) push(m *protocol.Message, targets []*session, emit func(*session, []byte)) []*session {
	var origin *session
	if v, ok := d.origins.LoadAndDelete(m.MsgID); ok {
		origin = v.(*session)
	}
	p, ok := protocol.ParseConv(m.Conv)
	var users []int64
	switch {
	case !ok:
		return targets
	case p.Kind == protocol.ConvGroup:
		ctx, cancel := context.WithTimeout(context.Background(), d.srv.cfg.RequestTimeout)
		members, err := d.srv.members.get(ctx, p.Group)
		cancel()
		if err != nil {
			// The members sync what they missed.
			d.srv.log.Warn("group push skipped", "group", p.Group, "msg", m.MsgID, "err", err)
			return targets
		}
		users = members
	default:
		users = []int64{p.A, p.B}
	}
	var frame []byte
	if d.srv.cfg.Cluster != nil {
		// Users of other nodes get it over the bus, one envelope a node.
		var remote []int64
		for _, u := range users {
			if _, ok := d.srv.remoteOwner(u); ok {
				remote = append(remote, u)
			}
		}
		if len(remote) > 0 {
			frame = protocol.MustFrame(protocol.TypePush, 0, m)
			d.srv.routeRemote(remote, frame)
		}
	}
	for _, u := range users {
		targets = d.srv.hub.sessionsOf(targets, u)
	}
	pushed := 0
	for _, ss := range targets {
		if ss == origin {
			continue
		}
		if frame == nil {
			frame = protocol.MustFrame(protocol.TypePush, 0, m)
		}
		emit(ss, frame)
		pushed++
	}
	d.srv.m.pushed(pushed, m.ServerTime)
	return targets
}

// stop delivers what is queued and ends the shards. The store must be
// closed first, so that no commit follows.
func (d *delivery) stop() {
	for _, q := range d.shards {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	d.wg.Wait()
}
