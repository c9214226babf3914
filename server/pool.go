package server

import "sync"

// workerPool runs handlers off the event loops. Sessions with queued frames
// wait in one channel; a worker drains a session's inbox in order, so frames
// of one connection are handled in the order they arrived, while different
// connections proceed in parallel on a bounded number of goroutines.
//
// A session is in the channel at most once (session.scheduled), so a
// channel as large as the connection cap never blocks an event loop.
type workerPool struct {
	ready chan *session
	wg    sync.WaitGroup
	drain func(s *session, frames []inbound)
}

func newWorkerPool(workers, maxSessions int, drain func(*session, []inbound)) *workerPool {
	p := &workerPool{ready: make(chan *session, maxSessions+1), drain: drain}
	p.wg.Add(workers)
	for range workers {
		go p.run()
	}
	return p
}

func (p *workerPool) submit(s *session) { p.ready <- s }

func (p *workerPool) run() {
	defer p.wg.Done()
	var buf []inbound
	for s := range p.ready {
		for {
			buf = s.take(buf)
			if buf == nil {
				break
			}
			p.drain(s, buf)
			clear(buf)
		}
	}
}

// stop lets the workers finish what is queued and waits for them. No submit
// may follow.
func (p *workerPool) stop() {
	close(p.ready)
	p.wg.Wait()
}
