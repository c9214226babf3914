package rocketmq

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/parleyim/parley/router"
)

// The watchdog: why a bus starts its consumer again.
//
// The push consumer of rocketmq-client-go v2.1.2 resumes slowly after the
// broker was away. A pull in flight when the broker died is never failed
// by the client (it does not fail the requests waiting on a connection
// that closed): it waits out its own 30 s timeout. Every failed pull is
// followed by a fixed 3 s pause (_PullDelayTimeWhenError), and pulls made
// while the broker is still starting fail too. So after an outage the
// consumer took 1-8 s after the broker took messages again to consume.
//
// The watchdog publishes a probe to the bus's own tag every ProbeEvery
// (numbered, the property pprobe; the consumer notes it and hands it to
// nobody). When probes fail (the broker is away), it tries every
// 100-250 ms; when one goes through again and nothing was consumed since
// the first failure, it shuts the consumer down and starts a new one,
// whose first pulls go out at once, from the offsets the old one
// committed. And when a probe stays unconsumed for StuckAfter while
// nothing else is consumed either, the consumer is stuck for another
// reason, and is started again the same way. A batch consumed twice
// across a restart (its offset not yet committed) is dropped by the
// Sequencer, which outlives the consumers.

var errProbe = errors.New("rocketmq: the broker did not store the probe")

// retryWait is a jittered wait of 100-250 ms.
func retryWait() time.Duration {
	return 100*time.Millisecond + rand.N(150*time.Millisecond)
}

// watch runs the watchdog until Close.
func (b *Bus) watch(seqr *router.Sequencer) {
	defer b.wg.Done()
	var (
		n         uint64    // the last probe's number
		downSince time.Time // of the first failed probe in a row; zero: the last went through
		pending   uint64    // a probe sent and not seen consumed (0: none)
		sentAt    time.Time // when pending was sent
	)
	t := time.NewTimer(b.cfg.ProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		n++
		err := b.probe(n)
		now := time.Now()
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			if downSince.IsZero() {
				downSince = now
			}
			t.Reset(retryWait())
			continue
		}
		t.Reset(b.cfg.ProbeEvery)
		last := time.Unix(0, b.consumed.Load())
		if !downSince.IsZero() {
			// The broker takes messages again.
			was := downSince
			downSince = time.Time{}
			if last.Before(was) {
				b.restart(seqr, "the broker is back")
				pending = 0
				continue
			}
		}
		if pending != 0 && b.probeSeen.Load() >= pending {
			pending = 0
		}
		if pending == 0 {
			pending, sentAt = n, now
			continue
		}
		if now.Sub(sentAt) >= b.cfg.StuckAfter && now.Sub(last) >= b.cfg.StuckAfter {
			b.restart(seqr, "nothing consumed")
			pending = 0
		}
	}
}

// probe publishes probe number n to this node's own tag, on a queue that
// changes with n.
func (b *Bus) probe(n uint64) error {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	num := strconv.FormatUint(n, 36)
	msg := primitive.NewMessage(b.cfg.Topic, router.AppendBatch(nil, nil)).
		WithTag(tagOf(b.cfg.Node)).
		WithShardingKey(b.cfg.Node + "#" + num)
	msg.WithProperty(propInc, strconv.FormatUint(b.inc, 36))
	msg.WithProperty(propProbe, num)
	res, err := b.producer.SendSync(ctx, msg)
	if err == nil && res.Status != primitive.SendOK {
		err = errProbe
	}
	return err
}

// sawProbe notes a consumed probe: this bus's own (inc), numbered num.
func (b *Bus) sawProbe(inc, num string) {
	if inc != strconv.FormatUint(b.inc, 36) {
		return // of this node's previous process
	}
	n, err := strconv.ParseUint(num, 36, 64)
	if err != nil {
		return
	}
	for {
		seen := b.probeSeen.Load()
		if n <= seen || b.probeSeen.CompareAndSwap(seen, n) {
			return
		}
	}
}

// restart shuts the consumer down and starts a new one on seqr, trying
// until one starts or the bus closes.
func (b *Bus) restart(seqr *router.Sequencer, why string) {
	b.mu.Lock()
	old := b.consumer
	b.consumer = nil
	b.mu.Unlock()
	if old != nil {
		_ = old.Shutdown()
	}
	b.restarts.Add(1)
	began := time.Now()
	c, err := b.start(b.ctx, seqr)
	if err != nil {
		return // closing
	}
	b.cfg.Logger.Info("rocketmq: consumer started again", "why", why, "took", time.Since(began))
	b.mu.Lock()
	b.consumer = c // Close waits for the watchdog, then shuts it down
	b.mu.Unlock()
}

// Restarts is how many times the watchdog started the consumer again.
func (b *Bus) Restarts() uint64 { return b.restarts.Load() }
