package router

import (
	"sync"
	"time"
)

// Sequencer restores the order of the batches a Bus receives: per sender
// (a node name and the incarnation of its bus), batches are handed to the
// handler in seq order from 1, one at a time, each seq once. A batch that
// comes early waits for the ones before it. How long a hole may stay open
// depends on what it can be:
//   - before the first batch handed over from a sender (this receiver
//     started mid-stream: the batches before were consumed by its previous
//     process, or never come), the hole is skipped after hold;
//   - after it, a missing batch is one the sender is still retrying (its
//     Outbox keeps several batches in flight and resends a failed one while
//     later ones went through), so the hole waits up to 60 × hold (a minute
//     by default: a broker outage and restart) — unless a newer incarnation
//     of the same node appears, which means the sender restarted and the
//     batch will never come: then it is skipped at once.
//
// Batches of different senders are handled concurrently.
type Sequencer struct {
	hold   time.Duration
	long   time.Duration
	handle func([]Envelope)

	mu    sync.Mutex
	links map[seqKey]*seqLink
	done  chan struct{}
	wg    sync.WaitGroup
}

type seqKey struct {
	from string
	inc  uint64
}

type seqLink struct {
	mu      sync.Mutex
	started bool // a batch was handed over or a hole skipped
	stale   bool // a newer incarnation of the sender appeared
	next    uint64
	pending map[uint64][]Envelope
	since   time.Time // when the oldest waiting batch came
	last    time.Time // of the last batch
}

// NewSequencer hands the batches in order to handle; hold is how long a
// hole before a sender's first batch may stay open (default 1s), 60 × hold
// a later one.
func NewSequencer(hold time.Duration, handle func([]Envelope)) *Sequencer {
	if hold <= 0 {
		hold = time.Second
	}
	s := &Sequencer{hold: hold, long: 60 * hold, handle: handle, links: map[seqKey]*seqLink{}, done: make(chan struct{})}
	s.wg.Add(1)
	go s.sweep()
	return s
}

// Add takes batch seq of the sender from (incarnation inc). Safe for
// concurrent use; it may hand batches to the handler before it returns.
func (s *Sequencer) Add(from string, inc, seq uint64, envs []Envelope) {
	k := seqKey{from, inc}
	s.mu.Lock()
	l := s.links[k]
	var older []*seqLink
	if l == nil {
		l = &seqLink{next: 1, pending: map[uint64][]Envelope{}}
		s.links[k] = l
		for ok, ol := range s.links {
			if ok.from == from && ok.inc != inc {
				older = append(older, ol)
			}
		}
	}
	s.mu.Unlock()
	for _, ol := range older {
		// The sender restarted: what its old process did not send
		// will not come.
		ol.mu.Lock()
		ol.stale = true
		ol.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.last = now
	switch {
	case seq < l.next:
		return // a repeat
	case seq > l.next:
		if _, ok := l.pending[seq]; !ok {
			l.pending[seq] = envs
			if len(l.pending) == 1 {
				l.since = now
			}
		}
		return
	}
	s.handle(envs)
	l.next++
	l.started = true
	s.drain(l, now)
}

// drain hands over the waiting batches that are next. l.mu is held.
func (s *Sequencer) drain(l *seqLink, now time.Time) {
	for {
		envs, ok := l.pending[l.next]
		if !ok {
			break
		}
		delete(l.pending, l.next)
		s.handle(envs)
		l.next++
	}
	if len(l.pending) > 0 {
		l.since = now
	}
}

// sweep skips holes older than hold and forgets senders silent for a
// long time.
func (s *Sequencer) sweep() {
	defer s.wg.Done()
	tick := time.NewTicker(s.hold / 4)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		now := time.Now()
		s.mu.Lock()
		links := make(map[seqKey]*seqLink, len(s.links))
		for k, l := range s.links {
			links[k] = l
		}
		s.mu.Unlock()
		for k, l := range links {
			l.mu.Lock()
			hold := s.long
			if !l.started || l.stale {
				hold = s.hold
			}
			if len(l.pending) > 0 && now.Sub(l.since) >= hold {
				low := uint64(0)
				for seq := range l.pending {
					if low == 0 || seq < low {
						low = seq
					}
				}
				l.next, l.started = low, true
				s.drain(l, now)
			}
			idle := len(l.pending) == 0 && now.Sub(l.last) > 10*time.Minute
			l.mu.Unlock()
			if idle {
				s.mu.Lock()
				delete(s.links, k)
				s.mu.Unlock()
			}
		}
	}
}

// Close stops the sweeper.
func (s *Sequencer) Close() {
	close(s.done)
	s.wg.Wait()
}
