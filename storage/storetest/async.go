package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The cases of AppendAsync.

var asyncCases = []struct {
	name string
	fn   func(t *testing.T, open Open)
}{
	{"AppendAsyncOrder", testAppendAsyncOrder},
	{"AppendAsyncDurableWhenDone", testAppendAsyncDurableWhenDone},
	{"AppendAsyncDedupe", testAppendAsyncDedupe},
	{"AppendAsyncCanceled", testAppendAsyncCanceled},
	{"AppendAsyncClosed", testAppendAsyncClosed},
	{"AppendAsyncCloseFlushes", testAppendAsyncCloseFlushes},
}

// asyncResult is what one AppendAsync's done was given.
type asyncResult struct {
	stored protocol.Message
	dup    bool
	err    error
}

// asyncCalls collects the results of AppendAsync calls and checks that each
// done is called exactly once.
type asyncCalls struct {
	t     *testing.T
	mu    sync.Mutex
	res   []asyncResult
	calls []int
	wg    sync.WaitGroup
}

// append calls AppendAsync and returns the index of its result.
func (a *asyncCalls) append(ctx context.Context, s storage.Store, m *protocol.Message) int {
	a.mu.Lock()
	i := len(a.res)
	a.res = append(a.res, asyncResult{})
	a.calls = append(a.calls, 0)
	a.mu.Unlock()
	a.wg.Add(1)
	s.AppendAsync(ctx, m, func(stored protocol.Message, dup bool, err error) {
		a.mu.Lock()
		a.calls[i]++
		n := a.calls[i]
		a.res[i] = asyncResult{stored, dup, err}
		a.mu.Unlock()
		if n == 1 {
			a.wg.Done()
		} else {
			a.t.Errorf("done of AppendAsync %d called %d times", i, n)
		}
	})
	return i
}

// wait waits for every done and returns the results in call order.
func (a *asyncCalls) wait() []asyncResult {
	a.t.Helper()
	ch := make(chan struct{})
	go func() { a.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		a.t.Fatalf("AppendAsync: done not called within 30s")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]asyncResult(nil), a.res...)
}

// testAppendAsyncOrder: messages handed in by one goroutine, without
// waiting, get seqs ascending in call order in each conversation, and the
// hook sees them in that order; two goroutines doing so at once do not
// disturb each other's order.
func testAppendAsyncOrder(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(4)
	const each = 150
	type sent struct {
		conv string
		body string
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			a := &asyncCalls{t: t}
			from := ids[g]
			var order []sent
			for i := range each {
				to := ids[2+i%2] // two conversations, interleaved
				body := fmt.Sprintf("g%d-%d", g, i)
				m := e.direct(from, to, body, []byte(body))
				a.append(e.ctx, e.s, m)
				order = append(order, sent{m.Conv, body})
			}
			res := a.wait()
			last := map[string]uint64{}
			for i, r := range res {
				if r.err != nil || r.dup {
					t.Errorf("AppendAsync %d: dup %v, %v", i, r.dup, r.err)
					continue
				}
				if r.stored.Conv != order[i].conv || string(r.stored.Body) != order[i].body {
					t.Errorf("AppendAsync %d: stored %s %q, want %s %q", i, r.stored.Conv, r.stored.Body, order[i].conv, order[i].body)
				}
				if r.stored.Seq != last[r.stored.Conv]+1 {
					t.Errorf("AppendAsync %d to %s: seq %d after %d; want call order, dense", i, r.stored.Conv, r.stored.Seq, last[r.stored.Conv])
				}
				last[r.stored.Conv] = r.stored.Seq
			}
		})
	}
	wg.Wait()
	// The hook saw every conversation's messages in seq order, each once.
	hooked := map[string][]uint64{}
	for _, m := range rec.got() {
		hooked[m.Conv] = append(hooked[m.Conv], m.Seq)
	}
	for g := range 2 {
		for k := range 2 {
			conv := protocol.DirectConv(ids[g], ids[2+k])
			if got := hooked[conv]; !equalSeqs(got, seqRange(1, each/2)) {
				t.Errorf("hook seqs of %s = %v, want 1..%d", conv, got, each/2)
			}
			p := e.after(ids[g], conv, 0, each)
			for i, m := range p.msgs {
				if want := fmt.Sprintf("g%d-%d", g, 2*i+k); string(m.Body) != want {
					t.Errorf("%s seq %d holds %q, want %q", conv, m.Seq, m.Body, want)
				}
			}
		}
	}
}

// testAppendAsyncDurableWhenDone: when done gets nil, the hook already has
// the message and reads see it.
func testAppendAsyncDurableWhenDone(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(2)
	conv := protocol.DirectConv(ids[0], ids[1])
	type seen struct {
		seq           uint64
		hooked, found bool
		err           error
	}
	ch := make(chan seen, 1)
	m := e.direct(ids[0], ids[1], "durable", []byte("x"))
	e.s.AppendAsync(e.ctx, m, func(stored protocol.Message, dup bool, err error) {
		if err != nil || dup {
			ch <- seen{err: fmt.Errorf("dup %v, err %v", dup, err)}
			return
		}
		// done must not block: read on another goroutine.
		go func() {
			msgs, _, _, _, rerr := e.s.After(context.Background(), ids[1], conv, 0, 10)
			ch <- seen{seq: stored.Seq, hooked: rec.has(conv, stored.Seq), found: len(msgs) == 1 && msgs[0].Seq == stored.Seq, err: rerr}
		}()
	})
	select {
	case s := <-ch:
		if s.err != nil || s.seq != 1 || !s.hooked || !s.found {
			t.Fatalf("after done: %+v; want seq 1, hooked and readable", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("done not called")
	}
	if m.Seq != 0 {
		t.Errorf("AppendAsync set the caller's m.Seq to %d; it must not modify m", m.Seq)
	}
}

// testAppendAsyncDedupe: a repeated client_msg_id, queued behind its first
// use or after it committed, answers dup with the first message.
func testAppendAsyncDedupe(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(2)
	a := &asyncCalls{t: t}
	first := e.direct(ids[0], ids[1], "same", []byte("first"))
	a.append(e.ctx, e.s, first)
	a.append(e.ctx, e.s, e.direct(ids[0], ids[1], "same", []byte("again, queued")))
	a.append(e.ctx, e.s, e.direct(ids[0], ids[1], "other", []byte("other")))
	res := a.wait()
	if res[0].err != nil || res[0].dup || res[0].stored.Seq != 1 {
		t.Fatalf("first: %+v", res[0])
	}
	if res[1].err != nil || !res[1].dup {
		t.Fatalf("repeat in the queue: dup %v, %v; want dup", res[1].dup, res[1].err)
	}
	sameMessage(t, "dup answer", res[1].stored, res[0].stored)
	if res[2].err != nil || res[2].dup || res[2].stored.Seq != 2 {
		t.Errorf("next: %+v; want seq 2", res[2])
	}
	a = &asyncCalls{t: t}
	a.append(e.ctx, e.s, e.direct(ids[0], ids[1], "same", []byte("again, later")))
	res = a.wait()
	if res[0].err != nil || !res[0].dup || res[0].stored.Seq != 1 || string(res[0].stored.Body) != "first" {
		t.Errorf("repeat after commit: %+v; want dup of seq 1", res[0])
	}
	if n := len(rec.got()); n != 2 {
		t.Errorf("hook got %d messages, want 2 (no duplicates)", n)
	}
}

// testAppendAsyncCanceled: a context that ended before the message joined
// a batch gives done its error, and nothing is stored.
func testAppendAsyncCanceled(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(2)
	conv := protocol.DirectConv(ids[0], ids[1])
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	a := &asyncCalls{t: t}
	a.append(ctx, e.s, e.direct(ids[0], ids[1], "canceled", []byte("x")))
	res := a.wait()
	if !errors.Is(res[0].err, context.Canceled) {
		t.Errorf("canceled: err %v, want context.Canceled", res[0].err)
	}
	// Ended while queued: a burst with a deadline already past by the time
	// the writer gets to most of it. Each either committed or got the
	// context's error, and exactly the committed ones are stored.
	dctx, dcancel := context.WithTimeout(e.ctx, time.Millisecond)
	defer dcancel()
	a = &asyncCalls{t: t}
	for i := range 200 {
		a.append(dctx, e.s, e.direct(ids[0], ids[1], fmt.Sprintf("d%d", i), []byte("y")))
	}
	stored := 0
	for i, r := range a.wait() {
		switch {
		case r.err == nil:
			stored++
		case !errors.Is(r.err, context.DeadlineExceeded):
			t.Errorf("append %d: %v, want nil or DeadlineExceeded", i, r.err)
		}
	}
	if got := e.visible(ids[0], conv); !equalSeqs(got, seqRange(1, uint64(stored))) {
		t.Errorf("visible seqs = %v, want 1..%d (the %d that committed)", got, stored, stored)
	}
	if n := len(rec.got()); n != stored {
		t.Errorf("hook got %d messages, %d committed", n, stored)
	}
}

// testAppendAsyncClosed: after Close, done gets ErrClosed.
func testAppendAsyncClosed(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	a := &asyncCalls{t: t}
	a.append(e.ctx, e.s, e.direct(ids[0], ids[1], "late", []byte("x")))
	if r := a.wait()[0]; !errors.Is(r.err, storage.ErrClosed) {
		t.Errorf("AppendAsync after Close: %v, want ErrClosed", r.err)
	}
}

// testAppendAsyncCloseFlushes: Close commits what was queued before it, and
// every done is called, with a result or ErrClosed, by the time Close
// returns.
func testAppendAsyncCloseFlushes(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a := &asyncCalls{t: t}
	var answered atomic.Int32
	const n = 100
	for i := range n {
		m := e.direct(ids[0], ids[1], fmt.Sprintf("c%d", i), []byte("z"))
		a.wg.Add(1)
		e.s.AppendAsync(e.ctx, m, func(_ protocol.Message, _ bool, err error) {
			if err != nil && !errors.Is(err, storage.ErrClosed) {
				t.Errorf("append %d: %v", i, err)
			}
			answered.Add(1)
			a.wg.Done()
		})
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := answered.Load(); got != n {
		t.Errorf("%d of %d dones called when Close returned", got, n)
	}
	a.wait()
}
