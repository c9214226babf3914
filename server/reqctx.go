package server

import (
	"context"
	"sync"
	"time"
)

// reqContext is the context of one request: the deadline of
// Config.RequestTimeout and a cancel, as context.WithTimeout gives, but
// without a timer of its own until something waits on Done. Every frame has
// one and almost none is waited on: a Send's context is only asked Err()
// on its way into the store's queue. context.WithTimeout made a context, a
// timer and its entry in the runtime's timer heap for each frame; this
// lives in the call, and Done arms a timer only for the few that block (a
// full queue, a MySQL query) or that a derived context watches.
type reqContext struct {
	deadline time.Time

	mu     sync.Mutex
	err    error
	done   chan struct{} // made by the first Done or AfterFunc
	closed bool          // done is closed
	timer  *time.Timer   // ends the context at the deadline; armed with done
	afters []*afterFunc  // to run when the context ends
}

// afterFunc is a function AfterFunc registered; ran: it ran or was stopped.
type afterFunc struct {
	f   func()
	ran bool
}

var _ context.Context = (*reqContext)(nil)

func (c *reqContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *reqContext) Value(any) any { return nil }

func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armLocked()
	return c.done
}

// AfterFunc runs f in a goroutine of its own once the context ends; stop
// keeps it from running and reports whether it did. The context package
// uses it for the contexts derived from this one (context.AfterFunc's
// contract), where it would otherwise start a goroutine for each to wait on
// Done.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &afterFunc{f: f}
	c.armLocked()
	if c.err != nil {
		a.ran = true
		go f()
	} else {
		c.afters = append(c.afters, a)
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if a.ran {
			return false
		}
		a.ran = true
		return true
	}
}

// armLocked makes done, and a timer that ends the context at the
// deadline, unless made already; a context past its deadline ends.
func (c *reqContext) armLocked() {
	if c.done != nil {
		return
	}
	c.done = make(chan struct{})
	c.expiredLocked()
	if c.err != nil {
		c.closeLocked()
		return
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.endLocked(context.DeadlineExceeded)
	})
}

func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expiredLocked()
	return c.err
}

// cancel ends the context (context.Canceled), unless it has ended.
func (c *reqContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(context.Canceled)
}

// expiredLocked ends the context once its deadline has passed.
func (c *reqContext) expiredLocked() {
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
}

func (c *reqContext) endLocked(err error) {
	if c.err == nil {
		c.err = err
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.closeLocked()
	for _, a := range c.afters {
		if !a.ran {
			a.ran = true
			go a.f()
		}
	}
	c.afters = nil
}

func (c *reqContext) closeLocked() {
	if c.done != nil && !c.closed {
		c.closed = true
		close(c.done)
	}
}
