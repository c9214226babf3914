// Package lazycursor holds cursor moves that a store writes lazily: per
// user and conversation only the highest seq is kept, and every pending move
// is written in one write a short delay after the first, so that a client
// reporting as it goes costs no commit per report. Reads take the higher of
// the stored and the pending value (Get), so a caller sees its move at once.
// A crash loses the moves of the last delay at most: the cursor steps back.
package lazycursor

import (
	"context"
	"sync"
	"time"
)

// Move is one pending move: user's cursor in Conv to Seq.
type Move struct {
	User int64
	Conv string
	Seq  uint64
}

type key struct {
	user int64
	conv string
}

// Write stores moves (each only if it moves its cursor forward) in one
// write, durably, or fails having stored none of them.
type Write func(ctx context.Context, moves []Move) error

// Cursors is a set of pending moves. Its methods are safe for concurrent
// use.
type Cursors struct {
	delay   time.Duration
	max     int
	timeout time.Duration
	write   Write

	mu      sync.Mutex
	pending map[key]uint64
	armed   bool // a flush is scheduled
	closed  bool

	flushing sync.Mutex // one flush at a time
}

// New returns Cursors that flush delay after the first pending move with
// write (each flush given timeout), holding at most max pending moves:
// past it a move of another cursor is dropped (Put reports false).
func New(delay time.Duration, max int, timeout time.Duration, write Write) *Cursors {
	return &Cursors{delay: delay, max: max, timeout: timeout, write: write, pending: make(map[key]uint64)}
}

// Put records a move of user's cursor in conv to seq, unless a higher one is
// pending. It reports false when the move was dropped: the set is full or
// closed.
func (c *Cursors) Put(user int64, conv string, seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	k := key{user, conv}
	cur, ok := c.pending[k]
	if !ok && len(c.pending) >= c.max {
		return false
	}
	if seq > cur {
		c.pending[k] = seq
	}
	c.armLocked()
	return true
}

// armLocked schedules a flush unless one is. c.mu is held.
func (c *Cursors) armLocked() {
	if c.armed || c.closed || len(c.pending) == 0 {
		return
	}
	c.armed = true
	time.AfterFunc(c.delay, func() {
		c.mu.Lock()
		c.armed = false
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := c.Flush(ctx); err != nil {
			// The moves stay pending; the next try is a delay away.
			c.mu.Lock()
			c.armLocked()
			c.mu.Unlock()
		}
	})
}

// Get returns the pending move of user's cursor in conv, 0 if none.
func (c *Cursors) Get(user int64, conv string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[key{user, conv}]
}

// Len returns the number of pending moves.
func (c *Cursors) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Flush writes every pending move now. The moves it wrote stop being
// pending unless a higher move of the same cursor came meanwhile; on error
// they stay pending.
func (c *Cursors) Flush(ctx context.Context) error {
	c.flushing.Lock()
	defer c.flushing.Unlock()
	c.mu.Lock()
	moves := make([]Move, 0, len(c.pending))
	for k, seq := range c.pending {
		moves = append(moves, Move{User: k.user, Conv: k.conv, Seq: seq})
	}
	c.mu.Unlock()
	if len(moves) == 0 {
		return nil
	}
	if err := c.write(ctx, moves); err != nil {
		return err
	}
	c.mu.Lock()
	for _, m := range moves {
		k := key{m.User, m.Conv}
		if c.pending[k] == m.Seq {
			delete(c.pending, k)
		}
	}
	c.mu.Unlock()
	return nil
}

// Close takes no more moves and writes those pending. Calls after the
// first return nil at once.
func (c *Cursors) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.Flush(ctx)
}
