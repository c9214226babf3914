package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// BenchExpiry measures appends of 100-byte messages (AppendAsync) over 50
// conversations without a timer (the baseline) and with one, in one run,
// and the sweep: Expire of due messages, 256 a call, per message. It
// reports the CPU time the process spent per message and, when disk is
// true (an embedded store), the bytes it wrote to disk per append. The
// store must be a storage.Expirer.
func BenchExpiry(b *testing.B, open OpenBench, disk bool) {
	const convs = 50
	body := make([]byte, 100)
	appendAll := func(b *testing.B, s storage.Store, n int, at int64) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			from, to := int64(1+i%convs), int64(1000)
			s.AppendAsync(context.Background(), &protocol.Message{MsgID: int64(i + 1), Conv: protocol.DirectConv(from, to),
				From: from, To: to, Body: body, ServerTime: at}, func(_ protocol.Message, _ bool, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	setTimers := func(b *testing.B, s storage.Store) {
		for c := range convs {
			from := int64(1 + c)
			if _, _, err := s.Append(context.Background(), &protocol.Message{MsgID: 1<<40 + int64(c), Conv: protocol.DirectConv(from, 1000),
				From: from, To: 1000, ContentType: protocol.ContentTimer, Body: []byte("1"), ServerTime: 1}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, timer := range []bool{false, true} {
		name := "append/plain"
		if timer {
			name = "append/expiring"
		}
		b.Run(name, func(b *testing.B) {
			s := open(b, nil)
			defer s.Close()
			if timer {
				setTimers(b, s)
			}
			b.ResetTimer()
			cpu, written := cpuTime(), diskWritten(b)
			appendAll(b, s, b.N, time.Now().UnixMilli()+3_600_000)
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/msg")
			if disk {
				b.ReportMetric(float64(diskWritten(b)-written)/float64(b.N), "wal-B/msg")
			}
		})
	}
	b.Run("expire", func(b *testing.B) {
		s := open(b, nil)
		defer s.Close()
		ex, ok := s.(storage.Expirer)
		if !ok {
			b.Fatalf("%T is not a storage.Expirer", s)
		}
		setTimers(b, s)
		now := time.Now().UnixMilli()
		appendAll(b, s, b.N, now-10_000) // due
		if sr, ok := s.(storage.Searcher); ok {
			if err := sr.IndexFlush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		cpu := cpuTime()
		for n := 0; n < b.N; {
			gone, err := ex.Expire(context.Background(), now, 256)
			if err != nil || len(gone) == 0 {
				b.Fatalf("Expire after %d of %d: %v", n, b.N, err)
			}
			n += len(gone)
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/msg")
	})
}
