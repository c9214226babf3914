package router

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Outbox sends envelopes over a Bus without its callers waiting: Post
// queues an envelope for a node and returns at once; a goroutine per node
// sends what is queued in batches (one bus message carries up to MaxBatch
// envelopes) and retries a batch that failed, with a jittered back-off
// that doubles up to MaxBackoff, until it is sent or the outbox closes. So while the bus is down or slow, envelopes
// wait, in order, and leave as soon as it is back; a slow link to one node
// never holds up another.
//
// Up to MaxInFlight batches to one node are on their way at once: a batch
// does not wait for the broker's answer to the one before it. With none in
// flight an envelope leaves at once; with some in flight, what is queued
// leaves when it fills a batch or its oldest envelope has waited Linger,
// so under load batches stay large (few broker messages) while a slow
// round trip holds nothing behind it for longer than Linger. The batches
// are numbered (Bus.Send's seq) and the receiver hands them over in that
// order (Sequencer), so a node's envelopes never overtake each other. When
// a batch fails, no new batch leaves until every failed one has been sent
// again, in seq order, with the same envelopes: the receiver waits for a
// missing batch that later ones overtook (Sequencer's long hold).
//
// One Outbox per Bus: it numbers the batches to each node. The queue of
// each node is bounded (MaxBytes of frames): past it the oldest envelopes
// not in flight are dropped and counted (Dropped), and the next batch to
// that node starts with an EnvCatchUp envelope that says since when, so
// the receiver catches its users up. Envelopes are lost with the process:
// the outbox is memory, the database is the record.
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
	MaxInFlight int           // batches on their way to one node at once; default 4
	Linger      time.Duration // how long a batch may form while others are in flight; default 2ms
	SendTimeout time.Duration // one attempt; default 3s
	MaxBackoff  time.Duration // longest wait between attempts; default 250ms
	// Waited, if set, is told for each batch (first attempt) how long its
	// oldest envelope waited in the queue, from Post to the batch leaving.
	Waited func(time.Duration)
	Logger *slog.Logger
}

// queued is an envelope and when it was posted.
type queued struct {
	env Envelope
	at  time.Time
}

// link is the queue to one node.
type link struct {
	node     string
	mu       sync.Mutex
	queue    []queued      // not yet in a batch
	bytes    int           // of the queue and of the batches in flight
	inflight int           // envelopes in batches on their way
	lost     time.Time     // when the oldest envelope dropped since the last batch was posted; zero: none
	wake     chan struct{} // 1-buffered: something was queued
	idle     chan struct{} // closed and replaced when nothing is queued or in flight
}

// batch is one bus message on its way.
type batch struct {
	seq  uint64
	envs []Envelope
	err  error
}

// NewOutbox returns an outbox on cfg.Bus.
func NewOutbox(cfg OutboxConfig) *Outbox {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 3 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 250 * time.Millisecond
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
	l.queue = append(l.queue, queued{env, time.Now()})
	l.bytes += envSize(&env)
	drop := 0
	if l.bytes > o.cfg.MaxBytes {
		// Drop the oldest envelopes that are not in flight, never the
		// newest.
		for l.bytes > o.cfg.MaxBytes && drop < len(l.queue)-1 {
			if l.lost.IsZero() {
				l.lost = l.queue[drop].at
			}
			l.bytes -= envSize(&l.queue[drop].env)
			drop++
		}
		n := copy(l.queue, l.queue[drop:])
		clear(l.queue[n:])
		l.queue = l.queue[:n]
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
// queue, failed send attempts (batches), and envelopes queued or in
// flight now.
func (o *Outbox) Stats() (sent, dropped, failures uint64, queued int) {
	o.mu.Lock()
	links := make([]*link, 0, len(o.links))
	for _, l := range o.links {
		links = append(links, l)
	}
	o.mu.Unlock()
	for _, l := range links {
		l.mu.Lock()
		queued += len(l.queue) + l.inflight
		l.mu.Unlock()
	}
	return o.sent.Load(), o.dropped.Load(), o.failures.Load(), queued
}

// QueuedBytes is the size of the envelopes queued or in flight now, as
// counted against MaxBytes.
func (o *Outbox) QueuedBytes() int {
	o.mu.Lock()
	links := make([]*link, 0, len(o.links))
	for _, l := range o.links {
		links = append(links, l)
	}
	o.mu.Unlock()
	n := 0
	for _, l := range links {
		l.mu.Lock()
		n += l.bytes
		l.mu.Unlock()
	}
	return n
}

// take moves up to MaxBatch queued envelopes into a new batch, if there
// are any and they may leave now: at once when nothing is in flight
// (busy false), else when they fill a batch or the oldest has waited
// Linger. wait is how long until the oldest will have waited Linger
// (0: nothing queued). After drops the batch starts with an EnvCatchUp
// (one envelope more than MaxBatch at most).
func (o *Outbox) take(l *link, busy bool, now time.Time) (envs []Envelope, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return nil, 0
	}
	if busy && len(l.queue) < o.cfg.MaxBatch {
		if w := o.cfg.Linger - now.Sub(l.queue[0].at); w > 0 {
			return nil, w
		}
	}
	n := min(len(l.queue), o.cfg.MaxBatch)
	if o.cfg.Waited != nil {
		o.cfg.Waited(now.Sub(l.queue[0].at))
	}
	envs = make([]Envelope, 0, n+1)
	if !l.lost.IsZero() {
		// Not a posted envelope: it is not counted (settle skips it).
		envs = append(envs, Envelope{Kind: EnvCatchUp, Group: l.lost.UnixMilli()})
		l.lost = time.Time{}
	}
	for i := range n {
		envs = append(envs, l.queue[i].env)
	}
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	if rest == 0 {
		l.queue = nil
	}
	l.inflight += n
	return envs, 0
}

// settle accounts for a batch that the bus took.
func (o *Outbox) settle(l *link, envs []Envelope) {
	if len(envs) > 0 && envs[0].Kind == EnvCatchUp {
		envs = envs[1:] // take's mark, never counted
	}
	o.sent.Add(uint64(len(envs)))
	l.mu.Lock()
	for i := range envs {
		l.bytes -= envSize(&envs[i])
	}
	l.inflight -= len(envs)
	if l.inflight == 0 && len(l.queue) == 0 {
		close(l.idle)
		l.idle = make(chan struct{})
	}
	l.mu.Unlock()
}

// run sends the queue of one node until the outbox closes: it keeps up to
// MaxInFlight batches on their way, each in a goroutine of its own, and
// gives each the next seq. A batch that fails is sent again as it was,
// same seq, same envelopes, after a back-off (the receiver drops the copy
// if both arrive); until no batch is failing, no new batch leaves.
func (o *Outbox) run(l *link) {
	defer o.wg.Done()
	var (
		seq      uint64
		inflight int           // batches on their way
		failed   []*batch      // waiting for their retry, in seq order
		backoff  time.Duration // before the next retry
		results  = make(chan *batch, o.cfg.MaxInFlight)
		timer    = time.NewTimer(time.Hour)
		retryAt  time.Time // when failed[0] goes again
		sending  sync.WaitGroup
	)
	timer.Stop()
	defer func() {
		// Wait for the sends on their way; their results go nowhere.
		go func() {
			for range results {
			}
		}()
		sending.Wait()
		close(results)
	}()
	send := func(b *batch) {
		inflight++
		sending.Add(1)
		go func() {
			defer sending.Done()
			ctx, cancel := context.WithTimeout(context.Background(), o.cfg.SendTimeout)
			b.err = o.cfg.Bus.Send(ctx, l.node, b.seq, b.envs)
			cancel()
			results <- b
		}()
	}
	for {
		now := time.Now()
		var linger time.Duration
		switch {
		case len(failed) > 0:
			// Retry the failed batches one at a time, in order, once
			// nothing else is on its way.
			if inflight == 0 && !now.Before(retryAt) {
				b := failed[0]
				failed = failed[1:]
				send(b)
			}
		case inflight < o.cfg.MaxInFlight:
			envs, wait := o.take(l, inflight > 0, now)
			if envs != nil {
				seq++
				send(&batch{seq: seq, envs: envs})
				continue
			}
			linger = wait
		}
		// Wait for a result, a post, the linger or the retry. (Stop and
		// Reset need no draining of timer.C since Go 1.23.)
		var tc <-chan time.Time
		switch {
		case len(failed) > 0 && inflight == 0:
			timer.Reset(time.Until(retryAt))
			tc = timer.C
		case linger > 0:
			timer.Reset(linger)
			tc = timer.C
		}
		select {
		case b := <-results:
			inflight--
			if b.err == nil {
				o.settle(l, b.envs)
				if len(failed) == 0 {
					backoff = 0
				}
				break
			}
			o.failures.Add(1)
			// Jittered, so that the outboxes of many nodes do not retry
			// in step.
			backoff = min(max(2*backoff, 25*time.Millisecond), o.cfg.MaxBackoff)
			retryAt = time.Now().Add(backoff/2 + rand.N(backoff/2+1))
			o.cfg.Logger.Warn("bus send failed; retrying", "node", l.node, "seq", b.seq, "envelopes", len(b.envs), "in", backoff, "err", b.err)
			i, _ := slices.BinarySearchFunc(failed, b.seq, func(f *batch, seq uint64) int { return cmp.Compare(f.seq, seq) })
			failed = slices.Insert(failed, i, b)
		case <-l.wake:
		case <-tc:
		case <-o.done:
			timer.Stop()
			return
		}
		if tc != nil {
			timer.Stop()
		}
	}
}

// Flush waits until every queue is empty and nothing is in flight, or ctx
// ends.
func (o *Outbox) Flush(ctx context.Context) error {
	for {
		o.mu.Lock()
		var wait chan struct{}
		for _, l := range o.links {
			l.mu.Lock()
			if len(l.queue) > 0 || l.inflight > 0 {
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
