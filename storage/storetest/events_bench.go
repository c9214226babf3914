package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// BenchEvents measures what conversation events cost the store, each
// against its baseline in the same run: appending an edit event (an
// indexed batch, a read of the target's Meta, two Meta writes) against
// appending a plain message, from 16 goroutines; and reading a page of 100
// messages that each carry an edit and 3 reactions against a page of plain
// ones (the Metas' range read and fold).
func BenchEvents(b *testing.B, open OpenBench) {
	const msgs = 1000
	setup := func(b *testing.B) (storage.Store, *env, int64, int64) {
		s := open(b, nil)
		e := &env{s: s, ctx: b.Context()}
		e.msgID.Store(1 << 40)
		e.clock.Store(1 << 40)
		var ids []int64
		for i := range 5 {
			u, err := s.CreateUser(e.ctx, fmt.Sprintf("bench%d", i), []byte("h"))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, u.ID)
		}
		return s, e, ids[0], ids[1]
	}
	add := func(b *testing.B, s storage.Store, m *protocol.Message) {
		if _, _, err := s.Append(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
	for _, kind := range []string{"plain", "edit"} {
		b.Run("append="+kind, func(b *testing.B) {
			s, e, a, peer := setup(b)
			for i := range msgs {
				add(b, s, e.direct(a, peer, fmt.Sprintf("m%d", i), make([]byte, 100)))
			}
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					m := e.direct(a, peer, fmt.Sprintf("x%d", i), make([]byte, 100))
					if kind == "edit" {
						m.ContentType, m.Ref = protocol.ContentEdit, uint64(i%msgs)+1
					}
					if _, _, err := s.Append(b.Context(), m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
	for _, kind := range []string{"plain", "events"} {
		b.Run("read100="+kind, func(b *testing.B) {
			s, e, a, peer := setup(b)
			conv := protocol.DirectConv(a, peer)
			var users []int64
			for i := range 3 {
				u, err := s.CreateUser(e.ctx, fmt.Sprintf("reactor%d", i), []byte("h"))
				if err != nil {
					b.Fatal(err)
				}
				users = append(users, u.ID)
			}
			for i := range 100 {
				add(b, s, e.direct(a, peer, fmt.Sprintf("m%d", i), make([]byte, 100)))
			}
			if kind == "events" {
				for seq := uint64(1); seq <= 100; seq++ {
					ed := e.direct(a, peer, fmt.Sprintf("e%d", seq), make([]byte, 100))
					ed.ContentType, ed.Ref = protocol.ContentEdit, seq
					add(b, s, ed)
					for _, u := range users {
						r := e.direct(u, a, fmt.Sprintf("r%d-%d", seq, u), []byte("👍"))
						r.Conv, r.To = conv, peer
						r.ContentType, r.Ref = protocol.ContentReact, seq
						add(b, s, r)
					}
				}
			}
			b.ResetTimer()
			for range b.N {
				page, _, _, _, err := s.After(b.Context(), a, conv, 0, 100)
				if err != nil || len(page) != 100 {
					b.Fatalf("After: %d messages, %v", len(page), err)
				}
			}
		})
	}
}
