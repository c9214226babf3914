package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

// GroupOptions configure the group scenario.
type GroupOptions struct {
	Options
	Groups   int     // groups, each with its own members; default 1
	Members  int     // per group, all online
	Senders  int     // members of each group that post
	Window   int     // unacked sends per sender
	Rate     float64 // messages per second over all senders; 0: flat out
	Size     int     // body bytes (at least 16: send time, sender, sequence)
	Messages int     // per sender; 0: as many as Duration allows
	Parallel int     // logins in flight while setting up; default 32
}

// Group measures fan-out: Senders members of each group post to it, all
// Members online; it counts deliveries (pushes received) per second and,
// per message, the time from its first delivery to its last, and checks
// that every message reached every other member exactly once.
func Group(ctx context.Context, o GroupOptions) (Result, error) {
	o.Groups = max(o.Groups, 1)
	o.Window = max(o.Window, 1)
	o.Senders = min(max(o.Senders, 1), o.Members)
	o.Size = max(o.Size, 16)
	type sender struct {
		c        *conn
		group    int64
		inflight chan struct{}
		log      deliveryLog
		sent     atomic.Int64
	}
	var (
		m        *meter
		live     atomic.Bool
		acked    atomic.Int64
		failures = newCounts()
		conns    = &connSet{encrypt: o.Encrypt}
		senders  = make([]*sender, o.Groups*o.Senders)
		ids      = make([]int64, o.Groups*o.Members)
		owners   = make([]*conn, o.Groups)
		held     []*heldConn
		heldMu   sync.Mutex
	)
	defer conns.close()
	onPush := func(h protocol.Header, body []byte) {
		if h.Type != protocol.TypePush || !live.Load() {
			return
		}
		// The body alone, without decoding the rest: a thousand members'
		// pushes decoded in full cost the load generator more CPU than the
		// server spends sending them.
		stamp, err := protocol.PeekBytes(body, "body")
		if err != nil || len(stamp) < 16 {
			failures.add("bad push")
			return
		}
		from, seq := binary.BigEndian.Uint32(stamp[8:]), binary.BigEndian.Uint32(stamp[12:])
		m.count.Add(1)
		now := time.Now()
		m.lat.Record(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(stamp)))))
		if int(from) < len(senders) {
			senders[from].log.delivered(int(seq), now.UnixNano())
		}
	}
	onSenderFrame := func(s *sender, h protocol.Header, body []byte) {
		switch h.Type {
		case protocol.TypeSendAck:
			acked.Add(1)
		case protocol.TypeError:
			var e protocol.Error
			_ = protocol.DecodeBody(body, &e)
			failures.add("send: " + e.Code.String())
		default:
			onPush(h, body)
			return
		}
		select {
		case <-s.inflight:
		default:
		}
	}
	// The senders are connections of their own; the other members, most
	// of the load, are read by a holder's event loops.
	recv, err := newHolder(2, o.Encrypt, nil, func(_ *heldConn, h protocol.Header, body []byte) { onPush(h, body) })
	if err != nil {
		return Result{}, err
	}
	defer func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		recv.close(held)
	}()
	err = forEach(len(ids), o.Parallel, func(i int) error {
		g, k := i/o.Members, i%o.Members
		name := fmt.Sprintf("%sg%dm%d", o.Prefix, g, k)
		if k >= o.Senders {
			hc, err := recv.connect(ctx, o.addr(i), name, i)
			if err != nil {
				return err
			}
			heldMu.Lock()
			held = append(held, hc)
			heldMu.Unlock()
			ids[i] = hc.userID
			return nil
		}
		s := &sender{inflight: make(chan struct{}, o.Window)}
		senders[g*o.Senders+k] = s
		c, id, err := conns.connect(ctx, o.addr(i), name, func(h protocol.Header, b []byte) { onSenderFrame(s, h, b) })
		if err != nil {
			return err
		}
		s.c, ids[i] = c, id
		if k == 0 {
			owners[g] = c
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("setup: %w", err)
	}
	for g := range o.Groups {
		rest := ids[g*o.Members+1 : (g+1)*o.Members]
		var info protocol.GroupInfo
		if err := owners[g].call(ctx, protocol.TypeGroupCreate, &protocol.GroupCreate{Name: fmt.Sprintf("%sgroup%d", o.Prefix, g), Members: rest}, &info); err != nil {
			return Result{}, fmt.Errorf("create group: %w", err)
		}
		for k := range o.Senders {
			senders[g*o.Senders+k].group = info.GroupID
		}
	}
	defer conns.keepAlive(held)()
	time.Sleep(200 * time.Millisecond) // let the joined events pass
	m = newMeter(o.Options, "group", "deliveries/s")
	live.Store(true)
	deadline := time.Now().Add(o.Duration)
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(senders)) / o.Rate)
	}
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, o.Size)
			next := time.Now().Add(time.Duration(i) * interval / time.Duration(len(senders)))
			for seq := 0; ctx.Err() == nil; seq++ {
				if o.Messages > 0 && seq == o.Messages || o.Messages == 0 && !time.Now().Before(deadline) {
					break
				}
				// Paced, a message's latency counts from when it was due
				// (as in p2p: no coordinated omission).
				due := time.Time{}
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					due = next
					next = next.Add(interval)
				}
				select {
				case s.inflight <- struct{}{}:
				case <-time.After(10 * time.Second):
					failures.add("send: no answer in 10s")
					return
				}
				if !s.log.grow(seq) {
					failures.add("send: too many messages to track")
					return
				}
				if due.IsZero() {
					due = time.Now()
				}
				binary.BigEndian.PutUint64(body, uint64(due.UnixNano()))
				binary.BigEndian.PutUint32(body[8:], uint32(i))
				binary.BigEndian.PutUint32(body[12:], uint32(seq))
				if _, err := s.c.send(protocol.TypeSend, &protocol.Send{
					ClientMsgID: fmt.Sprintf("g%d-%d", i, seq), GroupID: s.group, Body: body,
				}, true); err != nil {
					failures.add("send: " + reasonOf(err))
					return
				}
				s.sent.Add(1)
			}
		}()
	}
	wg.Wait()
	// Let the acks and the fan-out of the last sends arrive.
	var sent int64
	for _, s := range senders {
		sent += s.sent.Load()
	}
	each := int64(o.Members - 1)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
		if acked.Load() >= sent && m.count.Load() >= acked.Load()*each {
			break
		}
	}
	live.Store(false)
	res := m.finish(map[string]any{"groups": o.Groups, "members": o.Members, "senders": o.Senders, "window": o.Window, "rate": o.Rate, "size": o.Size, "messages": o.Messages})
	var spans []float64
	var complete, short, extra int
	for _, s := range senders {
		for seq := range int(s.sent.Load()) {
			first, last, n := s.log.at(seq)
			switch {
			case n == each:
				complete++
			case n < each:
				short++
			default:
				extra++
			}
			if n > 0 {
				spans = append(spans, float64(last-first)/1e6)
			}
		}
	}
	slices.Sort(spans)
	res.figure("messages", float64(sent))
	res.figure("acked", float64(acked.Load()))
	res.figure("fully_delivered", float64(complete))
	res.figure("short_delivered", float64(short))
	res.figure("over_delivered", float64(extra))
	if len(spans) > 0 {
		res.figure("first_to_last_p50_ms", spans[len(spans)/2])
		res.figure("first_to_last_p99_ms", spans[len(spans)*99/100])
		res.figure("first_to_last_max_ms", spans[len(spans)-1])
	}
	res.Failures = failures.take()
	return res, nil
}

// deliveryLog tracks, per message of one sender (by its sequence), its
// deliveries: how many and the first and last time. Receivers update it
// concurrently without locks; the sender grows it before each send.
type deliveryLog struct {
	chunks [logChunks]atomic.Pointer[[logChunk]delivery]
}

const (
	logChunk  = 4096
	logChunks = 1024 // 4M messages per sender
)

type delivery struct {
	first, last atomic.Int64 // unix ns
	n           atomic.Int64
}

// grow makes room for seq; false if past the log's capacity.
func (l *deliveryLog) grow(seq int) bool {
	c := seq / logChunk
	if c >= logChunks {
		return false
	}
	if l.chunks[c].Load() == nil {
		l.chunks[c].Store(new([logChunk]delivery))
	}
	return true
}

func (l *deliveryLog) get(seq int) *delivery {
	if seq < 0 || seq/logChunk >= logChunks {
		return nil
	}
	c := l.chunks[seq/logChunk].Load()
	if c == nil {
		return nil
	}
	return &c[seq%logChunk]
}

// delivered records one delivery of seq at now.
func (l *deliveryLog) delivered(seq int, now int64) {
	d := l.get(seq)
	if d == nil {
		return
	}
	d.n.Add(1)
	for {
		f := d.first.Load()
		if f != 0 && f <= now || d.first.CompareAndSwap(f, now) {
			break
		}
	}
	for {
		v := d.last.Load()
		if now <= v || d.last.CompareAndSwap(v, now) {
			break
		}
	}
}

// at returns seq's first and last delivery and their count.
func (l *deliveryLog) at(seq int) (first, last, n int64) {
	d := l.get(seq)
	if d == nil {
		return 0, 0, 0
	}
	return d.first.Load(), d.last.Load(), d.n.Load()
}
