package server

import "sync"

// workerPool runs handlers off the event loops. Sessions with work wait in
// one FIFO queue; a worker takes a session and handles its work in order
// (session.take), so frames of one connection take effect in the order they
// arrived, while different connections proceed in parallel on a bounded
// number of goroutines.
//
// A session is queued at most once at a time (session.inPool), so the queue
// holds at most one entry per live session (health probes and sessions of
// connections that just closed included). submit never blocks: the event
// loops and the store's writer both submit sessions.
type workerPool struct {
	drain func(s *session, w work)
	wg    sync.WaitGroup

	mu      sync.Mutex
	ready   sync.Cond  // signalled when queue grows or the pool stops
	queue   []*session // FIFO; queue[head:] waits
	head    int
	stopped bool
}

func newWorkerPool(workers int, drain func(*session, work)) *workerPool {
	p := &workerPool{drain: drain}
	p.ready.L = &p.mu
	p.wg.Add(workers)
	for range workers {
		go p.run()
	}
	return p
}

// submit queues a session that has work; after stop it does nothing (the
// connections are gone by then).
func (p *workerPool) submit(s *session) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, s)
	p.mu.Unlock()
	p.ready.Signal()
}

// next waits for a queued session; nil once the pool is stopped and empty.
func (p *workerPool) next() *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == len(p.queue) && !p.stopped {
		p.ready.Wait()
	}
	if p.head == len(p.queue) {
		return nil
	}
	s := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	} else if p.head > 1024 && p.head > len(p.queue)/2 {
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return s
}

// queued is the number of sessions waiting for a worker.
func (p *workerPool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) - p.head
}

func (p *workerPool) run() {
	defer p.wg.Done()
	var w work
	for {
		s := p.next()
		if s == nil {
			return
		}
		s.started()
		for {
			var ok bool
			if w, ok = s.take(w); !ok {
				break
			}
			p.drain(s, w)
			w.reset()
		}
	}
}

// stop lets the workers finish what is queued and waits for them. Later
// submits are dropped.
func (p *workerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.ready.Broadcast()
	p.wg.Wait()
}
