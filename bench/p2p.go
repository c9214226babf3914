package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

// P2POptions configure the p2p scenario.
type P2POptions struct {
	Options
	Pairs    int     // sender → receiver pairs
	Window   int     // unacked sends per sender
	Rate     float64 // total sends per second; 0: flat out
	Size     int     // body bytes (at least 8: the send time)
	Text     bool    // the body after the send time is words (text.go), not zeros
	Messages int     // per sender; 0: as many as Duration allows
	Parallel int     // logins in flight while setting up; default 32
}

// P2P measures 1:1 messages: each pair's sender sends to its receiver,
// keeping Window sends unacked; delivered is counted at the receivers, and
// the latency is from send to push. Every receiver checks that its pushes
// come once each (a duplicate is counted, not delivered) and in order.
func P2P(ctx context.Context, o P2POptions) (Result, error) {
	o.Window = max(o.Window, 1)
	type pair struct {
		a, b     *conn
		aID, bID int64
		inflight chan struct{}
		lastSeq  uint64   // b's reader goroutine only, as is seen
		seen     []uint64 // bit per sequence number pushed
	}
	pairs := make([]*pair, o.Pairs)
	var (
		m              *meter
		live           atomic.Bool
		sent, acked    atomic.Int64
		dups, disorder atomic.Int64
		failures       = newCounts()
		conns          = &connSet{encrypt: o.Encrypt}
	)
	defer conns.close()
	onAck := func(p *pair, h protocol.Header, body []byte) {
		switch h.Type {
		case protocol.TypeSendAck:
			acked.Add(1)
		case protocol.TypeError:
			var e protocol.Error
			_ = protocol.DecodeBody(body, &e)
			failures.add("send: " + e.Code.String())
		default:
			return
		}
		select {
		case <-p.inflight:
		default:
		}
	}
	onPush := func(p *pair, h protocol.Header, body []byte) {
		if h.Type != protocol.TypePush || !live.Load() {
			return
		}
		// Only the seq and the stamp: decoding whole pushes costs the load
		// generator a share of the cores it shares with the server.
		seq, err := protocol.PeekUint(body, "seq")
		if err != nil {
			failures.add("bad push")
			return
		}
		stamp, err := protocol.PeekBytes(body, "body")
		if err != nil {
			failures.add("bad push")
			return
		}
		word, bit := int(seq/64), uint64(1)<<(seq%64)
		if word >= len(p.seen) {
			p.seen = append(p.seen, make([]uint64, word+1)...) // at least doubles
		}
		switch {
		case p.seen[word]&bit != 0:
			dups.Add(1)
			return
		case seq < p.lastSeq:
			disorder.Add(1)
		default:
			p.lastSeq = seq
		}
		p.seen[word] |= bit
		m.count.Add(1)
		m.lat.Record(since(stamp))
	}
	err := forEach(o.Pairs, o.Parallel, func(i int) error {
		p := &pair{inflight: make(chan struct{}, o.Window)}
		pairs[i] = p
		var err error
		p.a, p.aID, err = conns.connect(ctx, o.addr(2*i), fmt.Sprintf("%sa%d", o.Prefix, i), func(h protocol.Header, b []byte) { onAck(p, h, b) })
		if err != nil {
			return err
		}
		// In a cluster every pair spans two nodes: a receiver who lands
		// on the sender's node is replaced by another user (users hash to
		// nodes by id, which the server assigns).
		for try := 0; ; try++ {
			p.b, p.bID, err = conns.connect(ctx, o.addr(2*i+1), fmt.Sprintf("%sb%d_%d", o.Prefix, i, try), func(h protocol.Header, b []byte) { onPush(p, h, b) })
			if err != nil {
				return err
			}
			if len(o.Addrs) < 2 || p.b.node != p.a.node {
				break
			}
			if try == 20 {
				return fmt.Errorf("no receiver off node %s in %d tries", p.a.node, try+1)
			}
			conns.drop(p.b)
		}
		if err := befriend(ctx, p.a, p.b, p.aID, p.bID); err != nil {
			return fmt.Errorf("befriend: %w", err)
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("setup: %w", err)
	}
	defer conns.keepAlive(nil)()
	m = newMeter(o.Options, "p2p", "msgs/s")
	live.Store(true)
	deadline := time.Now().Add(o.Duration)
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.Pairs) / o.Rate)
	}
	// At a set rate, how long after its due time each Send was written
	// (late: a sender waiting for a core, or for a window slot that a slow
	// SendAck holds), and how late a sender that slept until a Send was
	// due woke up (wake: the load generator's own delay alone). Every
	// send→push latency includes the first; on a box the generator shares
	// with the server, the second tells its part.
	late, wake := NewLatency(), NewLatency()
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now().Add(time.Duration(i) * interval / time.Duration(max(o.Pairs, 1)))
			var cmid []byte
			var text *rand.Rand // words for the bodies, when o.Text
			if o.Text {
				text = rand.New(rand.NewPCG(uint64(i), 0))
			}
			for seq := 0; ctx.Err() == nil; seq++ {
				if o.Messages > 0 && seq == o.Messages || o.Messages == 0 && !time.Now().Before(deadline) {
					break
				}
				// At a set rate a message's latency counts from when it was
				// due, not from when a window slot let it out: a stall that
				// holds the window back counts for every message it delays,
				// whatever the window (no coordinated omission).
				var due time.Time
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
						wake.Record(time.Since(next))
					}
					due = next
					next = next.Add(interval)
				}
				if !slot(p.inflight) {
					failures.add("send: no answer in 10s")
					return
				}
				cmid = strconv.AppendInt(append(strconv.AppendInt(cmid[:0], int64(i), 10), '-'), int64(seq), 10)
				_, err := p.a.send(protocol.TypeSend, &protocol.Send{
					ClientMsgID: string(cmid), To: p.bID, Body: body(o.Size, due, text),
				}, len(p.inflight) == cap(p.inflight) || interval > 0)
				if err != nil {
					failures.add("send: " + reasonOf(err))
					return
				}
				if interval > 0 {
					late.Record(time.Since(due))
				}
				sent.Add(1)
			}
			_ = p.a.flush()
		}()
	}
	wg.Wait()
	// Let the acks and pushes of the last sends arrive.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
		if acked.Load() >= sent.Load() && m.count.Load() >= acked.Load() {
			break
		}
	}
	live.Store(false)
	res := m.finish(map[string]any{"pairs": o.Pairs, "window": o.Window, "rate": o.Rate, "size": o.Size, "messages": o.Messages})
	res.figure("sent", float64(sent.Load()))
	res.figure("acked", float64(acked.Load()))
	res.figure("delivered", float64(res.Count))
	res.figure("out_of_order", float64(disorder.Load()))
	res.figure("duplicates", float64(dups.Load()))
	if interval > 0 {
		l, w := late.Total(), wake.Total()
		res.figure("send_late_p50_ms", l.P50)
		res.figure("send_late_p99_ms", l.P99)
		res.figure("wake_late_p99_ms", w.P99)
	}
	res.Failures = failures.take()
	return res, nil
}

// figure sets one of the result's scenario-specific figures.
func (r *Result) figure(name string, v float64) {
	if r.Figures == nil {
		r.Figures = map[string]float64{}
	}
	r.Figures[name] = v
}

// counts counts failures by reason, safe for concurrent use.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func newCounts() *counts { return &counts{m: map[string]int{}} }

func (c *counts) add(reason string) {
	c.mu.Lock()
	c.m[reason]++
	c.mu.Unlock()
}

// take returns a copy of the counts, nil if there are none.
func (c *counts) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return nil
	}
	return maps.Clone(c.m)
}

// slot takes a window slot, waiting up to 10 s for one; a timer only when
// it has to wait.
func slot(inflight chan struct{}) bool {
	select {
	case inflight <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case inflight <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// stamp returns a body of size n (at least 8) that starts with the send
// time.
func stamp(n int) []byte { return stampAt(n, time.Time{}) }

// body is a stamped body of n bytes sent at t (now if zero), the rest
// words drawn with text, or zeros when text is nil.
func body(n int, t time.Time, text *rand.Rand) []byte {
	b := stampAt(n, t)
	if text != nil {
		words(b[8:], text)
	}
	return b
}

// stampAt is stamp with the time t, or now if t is zero.
func stampAt(n int, t time.Time) []byte {
	if t.IsZero() {
		t = time.Now()
	}
	b := make([]byte, max(n, 8))
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano()))
	return b
}

// since is the time since the send time a stamped body carries.
func since(body []byte) time.Duration {
	if len(body) < 8 {
		return 0
	}
	return time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(body))))
}

// befriend makes two users friends, so the default DM policy lets them talk.
func befriend(ctx context.Context, a, b *conn, aID, bID int64) error {
	err := a.call(ctx, protocol.TypeFriendRequest, &protocol.FriendRequest{To: bID}, nil)
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeAlreadyFriends {
		return nil
	}
	if err != nil {
		return err
	}
	return b.call(ctx, protocol.TypeFriendAnswer, &protocol.FriendAnswer{From: aID, Accept: true}, nil)
}
