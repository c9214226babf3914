package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newReqContext(d time.Duration) *reqContext {
	return &reqContext{deadline: time.Now().Add(d)}
}

// closed reports whether ch is closed within the time given.
func closed(ch <-chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

// A request's context ends as context.WithTimeout's does: at its deadline,
// seen by Err without anyone waiting on Done, by Done when someone does,
// and by the contexts derived from it; or when cancelled.
func TestReqContext(t *testing.T) {
	c := newReqContext(30 * time.Millisecond)
	if d, ok := c.Deadline(); !ok || d != c.deadline {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if c.Err() != nil || c.timer != nil {
		t.Fatalf("before the deadline: err %v, timer %v", c.Err(), c.timer)
	}
	time.Sleep(40 * time.Millisecond)
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("after the deadline, no Done: err %v", c.Err())
	}
	if !closed(c.Done(), 0) {
		t.Fatal("Done after the deadline is not closed")
	}

	c = newReqContext(30 * time.Millisecond)
	child, stop := context.WithTimeout(c, time.Hour)
	defer stop()
	if !closed(c.Done(), time.Second) || !closed(child.Done(), time.Second) {
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("at the deadline: %v, child %v", c.Err(), child.Err())
	}
	c.cancel() // after the end: no change
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("cancel after the deadline: %v", c.Err())
	}

	c = newReqContext(time.Hour)
	done := c.Done()
	child, stop = context.WithCancel(c)
	defer stop()
	c.cancel()
	if !closed(done, 0) || !closed(child.Done(), time.Second) || !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("cancelled: err %v", c.Err())
	}
	c.cancel() // twice: no second close

	c = newReqContext(time.Hour)
	c.cancel()
	if !closed(c.Done(), 0) || !errors.Is(c.Err(), context.Canceled) || c.timer != nil {
		t.Fatalf("Done after cancel: err %v, timer %v", c.Err(), c.timer)
	}
}

// Functions registered with AfterFunc (context.AfterFunc, and the contexts
// derived from this one) run once when it ends, unless stopped first.
func TestReqContextAfterFunc(t *testing.T) {
	c := newReqContext(time.Hour)
	ran := make(chan string, 4)
	context.AfterFunc(c, func() { ran <- "first" })
	stop := context.AfterFunc(c, func() { ran <- "stopped" })
	if !stop() || stop() {
		t.Fatal("stop before the end: want true once, then false")
	}
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	c.cancel()
	if got := <-ran; got != "first" {
		t.Fatalf("ran %q", got)
	}
	if !closed(child.Done(), time.Second) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("child after the parent's cancel: %v", child.Err())
	}
	context.AfterFunc(c, func() { ran <- "late" }) // registered after the end: runs at once
	if got := <-ran; got != "late" {
		t.Fatalf("ran %q", got)
	}
	select {
	case got := <-ran:
		t.Fatalf("ran %q too", got)
	case <-time.After(50 * time.Millisecond):
	}

	c = newReqContext(20 * time.Millisecond)
	context.AfterFunc(c, func() { ran <- "deadline" })
	if got := <-ran; got != "deadline" || !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("at the deadline: ran %q, err %v", got, c.Err())
	}
}
