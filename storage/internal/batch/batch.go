// Package batch is the queue of a group-commit writer, shared by the
// storage backends: callers Put requests, a single writer goroutine takes
// the first one waiting and, without waiting for more, every other request
// already queued (up to a maximum), and commits them together. While it
// commits, new requests queue up and form the next batch, so a batch grows
// with the load and one commit (one fsync) serves many callers.
//
// The queue orders requests: those Put by one goroutine reach the writer in
// the order put. What a batch is and how it commits is the backend's.
package batch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Put after Close.
var ErrClosed = errors.New("batch: queue closed")

// Queue is a bounded queue of requests for one writer.
type Queue[T any] struct {
	// mu guards closed and the sends on ch: Close takes it exclusively to
	// close ch, so no send can follow.
	mu     sync.RWMutex
	closed bool
	ch     chan T
}

// New returns a queue holding at most size requests (at least 1).
func New[T any](size int) *Queue[T] {
	return &Queue[T]{ch: make(chan T, max(size, 1))}
}

// Put queues v. It waits while the queue is full, until ctx ends (it then
// returns ctx.Err() and v is not queued); after Close it returns ErrClosed.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case q.ch <- v:
		return nil
	default:
	}
	select {
	case q.ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting requests; those queued are still received. The
// writer sees the end as a closed channel (Recv). Close waits for the Puts
// already waiting for room, so the writer must go on receiving until Close
// returns: call it from another goroutine. Close may be called more than
// once.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}

// Recv is the channel the writer receives the first request of a batch
// from, alone or in a select with its other events; it is closed once the
// queue is closed and empty.
func (q *Queue[T]) Recv() <-chan T { return q.ch }

// Fill appends to b, after first, every request already queued, without
// waiting, until b holds limit; it returns b.
func (q *Queue[T]) Fill(b []T, first T, limit int) []T {
	b = append(b, first)
	for len(b) < limit {
		select {
		case v, ok := <-q.ch:
			if !ok {
				return b
			}
			b = append(b, v)
		default:
			return b
		}
	}
	return b
}

// Gather is Fill that may wait: when b holds fewer than limit requests, it
// goes on taking requests as they come for up to wait, and returns once b
// holds limit, wait has passed or the queue is closed. A writer that must
// not commit more often than once an interval (a database whose every
// commit costs it a fixed share of a shared CPU) waits for the rest of the
// interval this way, with a full batch leaving at once. With wait <= 0 it
// is Fill.
func (q *Queue[T]) Gather(b []T, first T, limit int, wait time.Duration) []T {
	b = q.Fill(b, first, limit)
	if wait <= 0 || len(b) >= limit {
		return b
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(b) < limit {
		select {
		case v, ok := <-q.ch:
			if !ok {
				return b
			}
			b = append(b, v)
		case <-t.C:
			return b
		}
	}
	return b
}

// Len is the number of requests waiting.
func (q *Queue[T]) Len() int { return len(q.ch) }
