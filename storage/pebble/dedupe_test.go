package pebble

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// waitSeen waits until s's client message id filter is loaded.
func waitSeen(t *testing.T, s *Store) {
	t.Helper()
	select {
	case <-s.seenDone:
	case <-time.After(30 * time.Second):
		t.Fatal("client message id filter not loaded after 30 s")
	}
	if !s.seenReady.Load() {
		t.Fatal("client message id filter finished loading but is not ready")
	}
}

// Resends of messages stored before a reopen are duplicates once the filter
// is loaded from the database, as before it was; new ids are stored.
func TestDedupeFilterAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	msg := func(i int, cmid string) *protocol.Message {
		peer := int64(2 + i%7)
		return &protocol.Message{MsgID: int64(i + 1), Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
			ClientMsgID: cmid, Body: []byte("hello"), ServerTime: int64(i)}
	}
	const n = 300
	s, err := Open(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]protocol.Message, n)
	for i := range n {
		if want[i], _, err = s.Append(ctx, msg(i, "c"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, Config{Dir: dir})
	waitSeen(t, s)
	for i := range n {
		got, dup, err := s.Append(ctx, msg(n+i, "c"+strconv.Itoa(i)))
		if err != nil || !dup {
			t.Fatalf("resend %d after reopen: dup %v, %v; want dup", i, dup, err)
		}
		if got.Conv != want[i].Conv || got.Seq != want[i].Seq || got.MsgID != want[i].MsgID {
			t.Fatalf("resend %d answered %s/%d (msg %d), want %s/%d (msg %d)", i, got.Conv, got.Seq, got.MsgID,
				want[i].Conv, want[i].Seq, want[i].MsgID)
		}
	}
	// New ids are stored, and a resend of one is caught as well.
	for i := range 20 {
		cmid := "new" + strconv.Itoa(i)
		if _, dup, err := s.Append(ctx, msg(2*n+i, cmid)); err != nil || dup {
			t.Fatalf("new id %s: dup %v, %v", cmid, dup, err)
		}
		if _, dup, err := s.Append(ctx, msg(3*n+i, cmid)); err != nil || !dup {
			t.Fatalf("resend of new id %s: dup %v, %v; want dup", cmid, dup, err)
		}
	}
	// Another sender's same id is not a duplicate.
	other := &protocol.Message{MsgID: 9999, Conv: protocol.DirectConv(1, 2), From: 2, To: 1, ClientMsgID: "c0", ServerTime: 1}
	if _, dup, err := s.Append(ctx, other); err != nil || dup {
		t.Fatalf("other sender's c0: dup %v, %v", dup, err)
	}
}

// The filter holds every id the writer stores: after a burst of appends,
// each of their ids may be in it, and the filter was consulted (ready).
func TestDedupeFilterHoldsWrites(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	waitSeen(t, s)
	ctx := context.Background()
	for i := range 1000 {
		m := &protocol.Message{MsgID: int64(i + 1), Conv: protocol.DirectConv(3, 4), From: 3, To: 4,
			ClientMsgID: "id" + strconv.Itoa(i), ServerTime: int64(i)}
		if _, _, err := s.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
		if !s.seen.MayContain(dedupeHash(s.seenSeed, 3, m.ClientMsgID)) {
			t.Fatalf("id %s stored but not in the filter", m.ClientMsgID)
		}
	}
	if s.newID(dedupeHash(s.seenSeed, 3, "id7")) {
		t.Fatal("newID says a stored id is new")
	}
}

// BenchmarkFindDup measures the dedupe check of one append on a store
// holding 200,000 messages of one sender: a new id and a resent one, with the
// filter (as served) and without it (every id looked up in Pebble, as before
// the filter and while it loads).
func BenchmarkFindDup(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const stored = 200_000
	ctx := context.Background()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i <= stored; i = next.Add(1) {
				peer := i%500 + 2
				m := &protocol.Message{MsgID: i, Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
					ClientMsgID: strconv.FormatInt(i, 10), Body: make([]byte, 100), ServerTime: i}
				if _, _, err := s.Append(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-s.seenDone
	for _, filter := range []bool{true, false} {
		for _, resend := range []bool{false, true} {
			name := map[bool]string{true: "filter", false: "lookup"}[filter] + "/" + map[bool]string{true: "resend", false: "new"}[resend]
			b.Run(name, func(b *testing.B) {
				s.seenReady.Store(filter)
				defer s.seenReady.Store(true)
				found := 0
				i := 0
				for b.Loop() {
					i++
					id := stored + i // never stored
					if resend {
						id = i%stored + 1
					}
					o := &appendOp{m: protocol.Message{From: 1, ClientMsgID: strconv.Itoa(id)}}
					o.hash = dedupeHash(s.seenSeed, 1, o.m.ClientMsgID)
					if err := s.findDup(o); err != nil {
						b.Fatal(err)
					}
					if o.prev != nil {
						found++
					}
				}
				if want := map[bool]int{true: i, false: 0}[resend]; found != want {
					b.Fatalf("found %d of %d, want %d", found, i, want)
				}
			})
		}
	}
}

// With the filter unused (as while it loads) and with it, one client
// message id sent from many goroutines at once, over many batches, is
// stored once; every other send answers that message.
func TestDedupeConcurrentWithoutFilter(t *testing.T) {
	for _, ready := range []bool{false, true} {
		t.Run(map[bool]string{false: "lookup", true: "filter"}[ready], func(t *testing.T) {
			var hooked atomic.Int64
			s := open(t, Config{Dir: t.TempDir(), MaxBatch: 4, Hook: func(m []protocol.Message) { hooked.Add(int64(len(m))) }})
			waitSeen(t, s)
			s.seenReady.Store(ready)
			ctx := context.Background()
			const ids, senders = 20, 16
			var wg sync.WaitGroup
			got := make([][ids]protocol.Message, senders)
			for g := range senders {
				wg.Go(func() {
					for i := range ids {
						m := &protocol.Message{MsgID: int64(1000*g + i + 1), Conv: protocol.DirectConv(5, 6), From: 5, To: 6,
							ClientMsgID: "same" + strconv.Itoa(i), Body: []byte("b"), ServerTime: 1}
						stored, _, err := s.Append(ctx, m)
						if err != nil {
							t.Error(err)
							return
						}
						got[g][i] = stored
					}
				})
			}
			wg.Wait()
			for i := range ids {
				for g := range senders {
					if got[g][i].Seq != got[0][i].Seq || got[g][i].MsgID != got[0][i].MsgID {
						t.Fatalf("id %d: sender %d got seq %d msg %d, sender 0 seq %d msg %d", i, g,
							got[g][i].Seq, got[g][i].MsgID, got[0][i].Seq, got[0][i].MsgID)
					}
				}
			}
			if n := hooked.Load(); n != ids {
				t.Fatalf("%d messages stored, want %d (one per id)", n, ids)
			}
		})
	}
}
