package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// Fill takes what is queued, in order, up to the limit, without waiting.
func TestFill(t *testing.T) {
	q := New[int](10)
	ctx := context.Background()
	for i := range 7 {
		if err := q.Put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	first := <-q.Recv()
	if got := q.Fill(nil, first, 4); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("Fill up to 4 = %v", got)
	}
	first = <-q.Recv()
	if got := q.Fill(nil, first, 100); !slices.Equal(got, []int{4, 5, 6}) {
		t.Fatalf("Fill of the rest = %v", got)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d after draining", q.Len())
	}
}

// Gather takes what is queued, then what comes while it waits, and leaves
// early when the batch is full or the queue closes.
func TestGather(t *testing.T) {
	q := New[int](10)
	ctx := context.Background()
	for i := range 3 {
		if err := q.Put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = q.Put(ctx, 3)
		_ = q.Put(ctx, 4)
	}()
	// A batch full before the wait is over leaves at once: an hour's
	// wait would time the test out.
	if got := q.Gather(nil, <-q.Recv(), 5, time.Hour); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("Gather up to 5 = %v", got)
	}
	// One not full waits at least the wait, and takes what came in it.
	if err := q.Put(ctx, 5); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		_ = q.Put(ctx, 6)
	}()
	t0 := time.Now()
	got := q.Gather(nil, <-q.Recv(), 5, time.Second)
	if waited := time.Since(t0); waited < time.Second {
		t.Fatalf("Gather returned %v after %v, before its wait of 1s", got, waited)
	}
	if !slices.Equal(got, []int{5, 6}) {
		t.Fatalf("Gather over 1s = %v, want [5 6]", got)
	}
	// Without a wait it is Fill.
	_ = q.Put(ctx, 7)
	if got := q.Gather(nil, <-q.Recv(), 5, 0); !slices.Equal(got, []int{7}) {
		t.Fatalf("Gather without a wait = %v", got)
	}
	// Closing the queue ends a wait in progress, with what came before.
	_ = q.Put(ctx, 8)
	first := <-q.Recv()
	go func() {
		time.Sleep(10 * time.Millisecond)
		_ = q.Put(ctx, 9)
		q.Close()
	}()
	if got := q.Gather(nil, first, 5, time.Hour); !slices.Equal(got, []int{8, 9}) {
		t.Fatalf("Gather while the queue closed = %v, want [8 9]", got)
	}
}

// A full queue makes Put wait until there is room or its context ends.
func TestPutWaitsAndCancels(t *testing.T) {
	q := New[int](1)
	if err := q.Put(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Put(ctx, 2) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put on a full queue after cancel = %v, want context.Canceled", err)
	}
	go func() { errc <- q.Put(context.Background(), 3) }()
	if v := <-q.Recv(); v != 1 {
		t.Fatalf("received %d, want 1", v)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Put once there was room = %v", err)
	}
	if v := <-q.Recv(); v != 3 {
		t.Fatalf("received %d, want 3 (2 was cancelled)", v)
	}
}

// After Close, Put fails, what was queued is still received, then Recv is
// closed; Close twice is fine.
func TestClose(t *testing.T) {
	q := New[int](4)
	ctx := context.Background()
	_ = q.Put(ctx, 1)
	_ = q.Put(ctx, 2)
	q.Close()
	q.Close()
	if err := q.Put(ctx, 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	var got []int
	for v := range q.Recv() {
		got = q.Fill(got, v, 10)
	}
	if !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("received %v after Close, want [1 2]", got)
	}
}

// Requests put by one goroutine arrive in its order, whatever others put
// meanwhile; a Close racing with Puts neither panics nor loses a request
// whose Put returned nil (run with -race). Close is called from another
// goroutine than the writer's, as the stores do.
func TestOrderAndCloseRace(t *testing.T) {
	q := New[[2]int](8)
	var wg sync.WaitGroup
	accepted := make([]int, 4)
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				if err := q.Put(context.Background(), [2]int{p, i}); err != nil {
					return
				}
				accepted[p] = i + 1
			}
		})
	}
	next := make([]int, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		closing := false
		for v := range q.Recv() {
			for _, r := range q.Fill(nil, v, 16) {
				if r[1] != next[r[0]] {
					t.Errorf("producer %d: got %d, want %d", r[0], r[1], next[r[0]])
				}
				next[r[0]]++
			}
			if next[0]+next[1]+next[2]+next[3] > 2000 && !closing {
				// Close waits for Puts blocked on a full queue, so the
				// writer goes on receiving meanwhile.
				closing = true
				go q.Close()
			}
		}
	}()
	wg.Wait()
	q.Close()
	<-done
	if !slices.Equal(next, accepted) {
		t.Errorf("received %v, accepted %v", next, accepted)
	}
}
