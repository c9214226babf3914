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
	done   chan struct{} // made by the first Done
	closed bool          // done is closed
	timer  *time.Timer   // closes done at the deadline; armed by the first Done
}

var _ context.Context = (*reqContext)(nil)

func (c *reqContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *reqContext) Value(any) any { return nil }

func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	c.expiredLocked()
	if c.err != nil {
		c.closeLocked()
		return c.done
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.endLocked(context.DeadlineExceeded)
	})
	return c.done
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
}

func (c *reqContext) closeLocked() {
	if c.done != nil && !c.closed {
		c.closed = true
		close(c.done)
	}
}
