package lazycursor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu     sync.Mutex
	writes [][]Move
	fail   error
	wrote  chan struct{}
}

func (r *recorder) write(_ context.Context, moves []Move) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.writes = append(r.writes, moves)
	select {
	case r.wrote <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes)
}

func TestCoalescedLatestWins(t *testing.T) {
	r := &recorder{wrote: make(chan struct{}, 1)}
	// The delay is long beside the Puts and the Get below, so that a
	// loaded machine pausing the test does not flush before it checks.
	c := New(500*time.Millisecond, 10, time.Second, r.write)
	for seq := uint64(1); seq <= 100; seq++ {
		c.Put(1, "d:1:2", seq)
	}
	c.Put(1, "d:1:2", 50) // lower: no change
	c.Put(2, "d:1:2", 7)
	if got := c.Get(1, "d:1:2"); got != 100 {
		t.Fatalf("Get before the flush: %d, want 100", got)
	}
	select {
	case <-r.wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("no flush after the delay")
	}
	r.mu.Lock()
	w := r.writes[0]
	r.mu.Unlock()
	if len(w) != 2 {
		t.Fatalf("one write of 2 moves expected, got %+v", w)
	}
	for _, m := range w {
		if m.User == 1 && m.Seq != 100 || m.User == 2 && m.Seq != 7 {
			t.Fatalf("move %+v", m)
		}
	}
	// The write returned; the flush then drops the moves it wrote.
	for deadline := time.Now().Add(5 * time.Second); c.Len() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if c.Len() != 0 || c.Get(1, "d:1:2") != 0 {
		t.Fatalf("still pending after the write: %d", c.Len())
	}
	if n := r.count(); n != 1 {
		t.Fatalf("%d writes for 102 moves, want 1", n)
	}
}

func TestBoundFailureAndClose(t *testing.T) {
	r := &recorder{fail: errors.New("down")}
	c := New(time.Hour, 2, time.Second, r.write)
	if !c.Put(1, "a", 1) || !c.Put(2, "a", 1) {
		t.Fatal("moves within the bound dropped")
	}
	if c.Put(3, "a", 1) {
		t.Fatal("a third cursor past a bound of 2 was taken")
	}
	if !c.Put(1, "a", 5) {
		t.Fatal("a move of a pending cursor past the bound was dropped")
	}
	if err := c.Flush(context.Background()); err == nil {
		t.Fatal("Flush hid the write's error")
	}
	if c.Len() != 2 || c.Get(1, "a") != 5 {
		t.Fatalf("a failed write lost moves: %d pending", c.Len())
	}
	r.mu.Lock()
	r.fail = nil
	r.mu.Unlock()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.count() != 1 || c.Len() != 0 {
		t.Fatalf("Close did not write the pending moves: %d writes, %d pending", r.count(), c.Len())
	}
	if c.Put(1, "a", 9) {
		t.Fatal("a move taken after Close")
	}
}
