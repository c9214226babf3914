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
// nothing else is consumed from its queue either, the consumer is stuck
// on that queue (or on all of them) for another reason, and is started
// again the same way. The probes' queues change from one to the next, so
// every queue is watched in turn. A batch consumed twice
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
		n  uint64 // the last probe's number
		st watchState
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
		q, err := b.probe(n)
		if err != nil && b.ctx.Err() != nil {
			return
		}
		if err != nil {
			t.Reset(retryWait())
		} else {
			t.Reset(b.cfg.ProbeEvery)
		}
		if why := st.step(time.Now(), n, q, err, b, b.cfg.StuckAfter); why != "" {
			b.restart(seqr, why)
		}
	}
}

// consumption is what the watchdog reads of the consumer.
type consumption interface {
	lastConsumed() time.Time               // from any queue
	lastConsumedFrom(q queueKey) time.Time // zero: never
	probesSeen() uint64                    // the highest own probe consumed
}

// watchState is the watchdog's memory between probes.
type watchState struct {
	downSince time.Time // of the first failed probe in a row; zero: the last went through
	pending   uint64    // a probe sent and not seen consumed (0: none)
	queue     queueKey  // where pending went
	sentAt    time.Time // when pending was sent
	// waits is how many stuck periods a probe must wait before the next
	// restart for a stuck queue: 1, doubled by each such restart (up to
	// maxStuckWaits), 1 again once a probe is consumed. A queue that stays
	// stuck across restarts is not restarted for every few seconds.
	waits int
}

const maxStuckWaits = 32

// step takes the outcome of probe number n (sent to queue q, or failed
// with err) at now, and says why the consumer must start again, or "".
//
//   - The broker is back: a probe went through after some failed, and
//     nothing was consumed since the first failure.
//   - A queue is stuck: a probe has waited stuck for its queue, and nothing
//     at all was consumed from that queue meanwhile, whatever the other
//     queues did. A queue that drains a backlog ahead of the probe is
//     consumed from, so it is not stuck. After such a restart the next
//     one waits twice as long, until a probe is consumed again.
func (st *watchState) step(now time.Time, n uint64, q queueKey, err error, c consumption, stuck time.Duration) string {
	if err != nil {
		if st.downSince.IsZero() {
			st.downSince = now
		}
		return ""
	}
	if !st.downSince.IsZero() {
		was := st.downSince
		st.downSince = time.Time{}
		if c.lastConsumed().Before(was) {
			st.pending = 0
			return "the broker is back"
		}
	}
	if st.waits == 0 {
		st.waits = 1
	}
	if st.pending != 0 && c.probesSeen() >= st.pending {
		st.pending, st.waits = 0, 1
	}
	if st.pending == 0 {
		st.pending, st.queue, st.sentAt = n, q, now
		return ""
	}
	if wait := time.Duration(st.waits) * stuck; now.Sub(st.sentAt) >= wait && now.Sub(c.lastConsumedFrom(st.queue)) >= wait {
		st.pending, st.waits = 0, min(2*st.waits, maxStuckWaits)
		return "queue " + st.queue.broker + "/" + strconv.Itoa(st.queue.id) + " consumes nothing"
	}
	return ""
}

func (b *Bus) lastConsumed() time.Time { return time.Unix(0, b.consumed.Load()) }
func (b *Bus) probesSeen() uint64      { return b.probeSeen.Load() }

func (b *Bus) lastConsumedFrom(q queueKey) time.Time {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	return b.queueAt[q]
}

// consumedFrom notes a batch consumed from q at now.
func (b *Bus) consumedFrom(q queueKey, now time.Time) {
	b.qmu.Lock()
	b.queueAt[q] = now
	b.qmu.Unlock()
}

// probe publishes probe number n to this node's own tag, on a queue that
// changes with n, and says which.
func (b *Bus) probe(n uint64) (queueKey, error) {
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
	if err != nil {
		return queueKey{}, err
	}
	var q queueKey
	if res.MessageQueue != nil {
		q = queueKey{res.MessageQueue.BrokerName, res.MessageQueue.QueueId}
	}
	return q, nil
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
