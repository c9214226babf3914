package server

import (
	"context"
	"hash/maphash"
	"slices"
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
// (committed) and never waits.
//
// A direct conversation's messages are pushed right there, on the store's
// committing goroutine: two users' sessions, looked up in the hub, and one
// encoding each; session.write only queues the bytes for the event loop,
// and a cluster's envelopes go to the outbox, which never waits. So no
// goroutine hand-off lies between a direct message's fsync and its push.
// A group's messages may need the members read from the store and go to a
// thousand sessions: they are split by conversation over a few shards,
// each a queue and a goroutine, so different groups fan out in parallel,
// and never on an event loop or the store's goroutine. Either way one
// conversation always takes the same path, in commit order, so its pushes
// leave in sequence order.
type delivery struct {
	srv    *Server
	seed   maphash.Seed
	shards [deliveryShards]*shardQueue
	wg     sync.WaitGroup

	// origins maps a message id to the session that sent it, which gets a
	// SendAck instead of a Push.
	origins origins

	// direct is the scratch of the direct conversations' pushes. The hook
	// is called one commit at a time, so directMu is not contended; it
	// keeps a misuse from racing.
	directMu sync.Mutex
	direct   fanout
	directs  []protocol.Message
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

func (d *delivery) origin(msgID int64, ss *session) { d.origins.store(msgID, ss) }
func (d *delivery) forget(msgID int64)              { d.origins.take(msgID) }

// origins is a map of message id to the sending session, in shards by id:
// an entry per Send from the handler to its commit. A sync.Map allocated
// two nodes for each; a map reuses its room.
type origins struct {
	shards [16]originShard
}

type originShard struct {
	mu sync.Mutex
	m  map[int64]*session
}

// shard picks msgID's shard by a multiplicative hash of the id: its low
// bits are a per-millisecond counter (snowflake), which would leave most
// shards empty.
func (o *origins) shard(msgID int64) *originShard {
	return &o.shards[uint64(msgID)*0x9E3779B97F4A7C15>>60] // the top 4 bits: 16 shards
}

func (o *origins) store(msgID int64, ss *session) {
	sh := o.shard(msgID)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[int64]*session)
	}
	sh.m[msgID] = ss
	sh.mu.Unlock()
}

// take removes msgID's entry and returns its session, if it had one.
func (o *origins) take(msgID int64) (*session, bool) {
	sh := o.shard(msgID)
	sh.mu.Lock()
	ss, ok := sh.m[msgID]
	if ok {
		delete(sh.m, msgID)
	}
	sh.mu.Unlock()
	return ss, ok
}

// committed is the store's CommitHook. It pushes the direct messages and
// hands the group ones, copied since the store may reuse the slice, to the
// shards. It never blocks.
func (d *delivery) committed(msgs []protocol.Message) {
	if len(msgs) == 0 {
		return
	}
	d.srv.m.committed(len(msgs))
	d.directMu.Lock()
	defer d.directMu.Unlock()
	var split [deliveryShards][]protocol.Message
	directs := d.directs[:0]
	for _, m := range msgs {
		if p, ok := protocol.ParseConv(m.Conv); ok && p.Kind == protocol.ConvDirect {
			directs = append(directs, m)
			continue
		}
		i := maphash.String(d.seed, m.Conv) % deliveryShards
		split[i] = append(split[i], m)
	}
	for i, part := range split {
		if part != nil {
			d.shards[i].put(d, part)
		}
	}
	if len(directs) > 0 {
		f := &d.direct
		f.group(directs)
		for _, idx := range f.convs {
			d.push(directs, idx, f)
		}
		f.reset()
		clear(directs)
	}
	d.directs = directs[:0]
}

// put appends a commit's messages of this shard, or drops them when the
// backlog is full.
func (q *shardQueue) put(d *delivery, part []protocol.Message) {
	q.mu.Lock()
	if q.closed || len(q.msgs)+len(part) > deliveryBacklog {
		q.dropped += uint64(len(part))
		q.mu.Unlock()
		for _, m := range part {
			d.origins.take(m.MsgID)
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

// run delivers the backlog of one shard, all it takes at once: each
// conversation's messages of it together (fanout).
func (d *delivery) run(q *shardQueue) {
	defer d.wg.Done()
	var (
		f     fanout
		spare []protocol.Message
	)
	for {
		batch, ok := q.take(spare)
		if !ok {
			return
		}
		f.group(batch)
		for _, idx := range f.convs {
			d.push(batch, idx, &f)
		}
		f.reset()
		clear(batch)
		spare = batch[:0]
	}
}

// fanout is a shard goroutine's scratch, kept between takes so that a busy
// shard allocates little: the messages taken grouped by conversation, and
// the frames, targets and origins of the conversation being pushed.
type fanout struct {
	byConv  map[string]int // conversation → index in convs
	convs   [][]int        // per conversation, its messages' indexes in the batch, in order
	frames  []byte         // the Push frames of one conversation's messages, back to back
	ends    []int          // end of each frame in frames
	origins []*session     // per message, the session that sent it (nil: none here)
	senders []*session     // the distinct origins
	targets []*session
	skipped []int  // per message, 1 if its origin is among the targets
	own     []byte // frames for a target that sent some of them: the others'
}

// group sorts the batch's messages by conversation, each conversation's
// in batch (commit, so sequence) order.
func (f *fanout) group(batch []protocol.Message) {
	if f.byConv == nil {
		f.byConv = make(map[string]int)
	}
	for i := range batch {
		c := batch[i].Conv
		k, ok := f.byConv[c]
		if !ok {
			k = len(f.convs)
			f.byConv[c] = k
			if k < cap(f.convs) {
				f.convs = f.convs[:k+1]
				f.convs[k] = f.convs[k][:0]
			} else {
				f.convs = append(f.convs, nil)
			}
		}
		f.convs[k] = append(f.convs[k], i)
	}
}

func (f *fanout) reset() {
	clear(f.byConv)
	f.convs = f.convs[:0]
	clear(f.targets)
	clear(f.origins)
	clear(f.senders)
	f.targets, f.origins, f.senders = f.targets[:0], f.origins[:0], f.senders[:0]
}

// push hands one conversation's messages of a take (idx, in sequence
// order) to every logged-in session of its recipients but each message's
// sender: the recipients are looked up once and the messages encoded once,
// and each session gets them in one write (session.write), so a
// thousand-member group costs a thousand writes per take, not per message.
// The recipients are read after the messages were committed, so a session
// that joins later finds them with Sync.
func (d *delivery) push(batch []protocol.Message, idx []int, f *fanout) {
	f.origins, f.senders = f.origins[:0], f.senders[:0]
	for _, i := range idx {
		var origin *session
		if ss, ok := d.origins.take(batch[i].MsgID); ok {
			origin = ss
			if !slices.Contains(f.senders, origin) {
				f.senders = append(f.senders, origin)
			}
		}
		f.origins = append(f.origins, origin)
	}
	first := &batch[idx[0]]
	p, ok := protocol.ParseConv(first.Conv)
	var users []int64
	switch {
	case !ok:
		return
	case p.Kind == protocol.ConvGroup:
		ctx, cancel := context.WithTimeout(context.Background(), d.srv.cfg.RequestTimeout)
		members, err := d.srv.members.get(ctx, p.Group)
		cancel()
		if err != nil {
			// The members sync what they missed.
			d.srv.log.Warn("group push skipped", "group", p.Group, "msg", first.MsgID, "messages", len(idx), "err", err)
			return
		}
		users = members
	default:
		users = []int64{p.A, p.B}
	}
	f.frames, f.ends = f.frames[:0], f.ends[:0]
	for _, i := range idx {
		var err error
		if f.frames, err = protocol.AppendFrame(f.frames, protocol.TypePush, 0, &batch[i]); err != nil {
			// Not for a stored message; it is left out (recipients sync).
			d.srv.log.Error("push not encoded", "msg", batch[i].MsgID, "err", err)
		}
		f.ends = append(f.ends, len(f.frames))
	}
	if d.srv.cfg.Cluster != nil {
		// Users of other nodes get it over the bus, one envelope a node.
		var remote []int64
		for _, u := range users {
			if _, ok := d.srv.remoteOwner(u); ok {
				remote = append(remote, u)
			}
		}
		if len(remote) > 0 {
			for k := range idx {
				// Its own copy: the envelope outlives f.frames.
				d.srv.routeRemote(remote, slices.Clone(f.frame(k)))
			}
		}
	}
	f.targets = f.targets[:0]
	for _, u := range users {
		f.targets = d.srv.hub.sessionsOf(f.targets, u)
	}
	f.skipped = append(f.skipped[:0], make([]int, len(idx))...)
	for _, ss := range f.targets {
		if !slices.Contains(f.senders, ss) {
			ss.write(f.frames)
			continue
		}
		// A sender gets a SendAck for its own messages, the others' as
		// pushes.
		f.own = f.own[:0]
		for k, o := range f.origins {
			if o == ss {
				f.skipped[k] = 1
			} else {
				f.own = append(f.own, f.frame(k)...)
			}
		}
		ss.write(f.own)
	}
	for k, i := range idx {
		d.srv.m.pushed(len(f.targets)-f.skipped[k], batch[i].ServerTime)
	}
}

// frame is the k-th message's Push frame in f.frames.
func (f *fanout) frame(k int) []byte {
	start := 0
	if k > 0 {
		start = f.ends[k-1]
	}
	return f.frames[start:f.ends[k]]
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
