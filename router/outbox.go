package router

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Outbox sends envelopes over a Bus without its callers waiting: Post
// queues an envelope for a node and returns at once; a goroutine per node
// sends what is queued in batches (one bus message carries up to MaxBatch
// envelopes) and retries a batch that failed, with back-off, until it is
// sent or the outbox closes. So while the bus is down or slow, envelopes
// wait, in order, and leave as soon as it is back; a node's envelopes
// never overtake each other, and a slow link to one node never holds up
// another.
//
// One Outbox per Bus: it numbers the batches to each node (Bus.Send's
// seq). The queue of each node is bounded (MaxBytes of frames): past it the
// oldest envelopes not in flight are dropped and counted (Dropped); their recipients
// see the messages on their next sync. Envelopes are lost with the
// process: the outbox is memory, the database is the record.
type Outbox struct {
	cfg OutboxConfig

	mu     sync.Mutex
	links  map[string]*link
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}

	sent, dropped, failures atomic.Uint64
}

// OutboxConfig configures NewOutbox; zero values take the defaults.
type OutboxConfig struct {
	Bus         Bus
	MaxBatch    int           // envelopes per bus message; default 512
	MaxBytes    int           // bytes of frames queued per node; default 64 MiB
	SendTimeout time.Duration // one attempt; default 3s
	MaxBackoff  time.Duration // longest wait between attempts; default 1s
	Logger      *slog.Logger
}

// link is the queue to one node.
type link struct {
	node     string
	mu       sync.Mutex
	queue    []Envelope
	bytes    int
	inflight int           // the queue's first inflight envelopes are being sent
	wake     chan struct{} // 1-buffered: something was queued
	idle     chan struct{} // closed and replaced when the queue empties
}

// NewOutbox returns an outbox on cfg.Bus.
func NewOutbox(cfg OutboxConfig) *Outbox {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 3 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Outbox{cfg: cfg, links: make(map[string]*link), done: make(chan struct{})}
}

func envSize(e *Envelope) int { return len(e.Frame) + 8*len(e.Users) + 16 }

// Post queues env for node and returns at once. It reports false when
// the outbox is closed. env's slices must not change afterwards.
func (o *Outbox) Post(node string, env Envelope) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	l := o.links[node]
	if l == nil {
		l = &link{node: node, wake: make(chan struct{}, 1), idle: make(chan struct{})}
		o.links[node] = l
		o.wg.Add(1)
		go o.run(l)
	}
	o.mu.Unlock()

	l.mu.Lock()
	l.queue = append(l.queue, env)
	l.bytes += envSize(&env)
	drop := 0
	if l.bytes > o.cfg.MaxBytes {
		// Drop the oldest envelopes that are not in flight.
		i := l.inflight
		for l.bytes > o.cfg.MaxBytes && i+drop < len(l.queue)-1 {
			l.bytes -= envSize(&l.queue[i+drop])
			drop++
		}
		n := copy(l.queue[i:], l.queue[i+drop:])
		clear(l.queue[i+n:])
		l.queue = l.queue[:i+n]
	}
	l.mu.Unlock()
	if drop > 0 {
		o.dropped.Add(uint64(drop))
		o.cfg.Logger.Warn("bus outbox full: envelopes dropped", "node", node, "dropped", drop)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// Stats are the outbox's counters: envelopes sent, dropped by a full
// queue, failed send attempts (batches), and envelopes queued now.
func (o *Outbox) Stats() (sent, dropped, failures uint64, queued int) {
	o.mu.Lock()
	links := make([]*link, 0, len(o.links))
	for _, l := range o.links {
		links = append(links, l)
	}
	o.mu.Unlock()
	for _, l := range links {
		l.mu.Lock()
		queued += len(l.queue)
		l.mu.Unlock()
	}
	return o.sent.Load(), o.dropped.Load(), o.failures.Load(), queued
}

// run sends the queue of one node until the outbox closes. Each batch
// gets the next seq; a batch that fails is sent again as it was, same seq,
// same envelopes, so the receiver can drop the copy if both arrive.
func (o *Outbox) run(l *link) {
	defer o.wg.Done()
	var (
		backoff time.Duration
		seq     uint64
		n       int // envelopes in batch; 0: take the next batch
		batch   = make([]Envelope, 0, o.cfg.MaxBatch)
	)
	for {
		if n == 0 {
			l.mu.Lock()
			n = min(len(l.queue), o.cfg.MaxBatch)
			batch = append(batch[:0], l.queue[:n]...)
			l.inflight = n
			if n == 0 {
				close(l.idle)
				l.idle = make(chan struct{})
			}
			l.mu.Unlock()
			if n == 0 {
				select {
				case <-l.wake:
					continue
				case <-o.done:
					return
				}
			}
			seq++
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.cfg.SendTimeout)
		err := o.cfg.Bus.Send(ctx, l.node, seq, batch)
		cancel()
		if err != nil {
			o.failures.Add(1)
			backoff = min(max(2*backoff, 25*time.Millisecond), o.cfg.MaxBackoff)
			o.cfg.Logger.Warn("bus send failed; retrying", "node", l.node, "envelopes", n, "in", backoff, "err", err)
			select {
			case <-time.After(backoff):
				continue
			case <-o.done:
				return
			}
		}
		backoff = 0
		o.sent.Add(uint64(n))
		l.mu.Lock()
		// Post never drops envelopes in flight: the batch is still the
		// queue's first n.
		for i := range n {
			l.bytes -= envSize(&l.queue[i])
		}
		l.queue = l.queue[n:]
		l.inflight = 0
		if len(l.queue) == 0 {
			l.queue = nil
		}
		l.mu.Unlock()
		clear(batch)
		n = 0
	}
}

// Flush waits until every queue is empty or ctx ends.
func (o *Outbox) Flush(ctx context.Context) error {
	for {
		o.mu.Lock()
		var wait chan struct{}
		for _, l := range o.links {
			l.mu.Lock()
			if len(l.queue) > 0 {
				wait = l.idle
			}
			l.mu.Unlock()
			if wait != nil {
				break
			}
		}
		o.mu.Unlock()
		if wait == nil {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close sends what it can until ctx ends (Flush), then stops; envelopes
// still queued are dropped. It does not close the Bus.
func (o *Outbox) Close(ctx context.Context) error {
	err := o.Flush(ctx)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	o.closed = true
	close(o.done)
	o.mu.Unlock()
	o.wg.Wait()
	return err
}
