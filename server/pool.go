package server

import "sync"

// workerPool runs handlers off the event loops. Sessions with work wait in
// one channel; a worker takes a session and handles its work in order
// (session.take), so frames of one connection take effect in the order they
// arrived, while different connections proceed in parallel on a bounded
// number of goroutines.
//
// A session is in the channel at most once (session.inPool), so a channel
// as large as the connection cap never blocks an event loop or the store's
// writer, both of which submit sessions.
type workerPool struct {
	ready chan *session
	wg    sync.WaitGroup
	drain func(s *session, w work)

	mu      sync.RWMutex // guards stopped and the sends on ready
	stopped bool
}

func newWorkerPool(workers, maxSessions int, drain func(*session, work)) *workerPool {
	p := &workerPool{ready: make(chan *session, maxSessions+1), drain: drain}
	p.wg.Add(workers)
	for range workers {
		go p.run()
	}
	return p
}

// submit queues a session that has work; after stop it does nothing (the
// connections are gone by then).
func (p *workerPool) submit(s *session) {
	p.mu.RLock()
	if !p.stopped {
		p.ready <- s
	}
	p.mu.RUnlock()
}

func (p *workerPool) run() {
	defer p.wg.Done()
	var w work
	for s := range p.ready {
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
	close(p.ready)
	p.mu.Unlock()
	p.wg.Wait()
}
