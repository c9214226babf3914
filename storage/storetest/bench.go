package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// OpenBench returns a new, empty store for a benchmark that passes committed
// messages to hook. The benchmark closes it.
type OpenBench func(b *testing.B, hook storage.CommitHook) storage.Store

// BenchConvs is the number of distinct conversations BenchAppend spreads
// its messages over.
const BenchConvs = 500

// BenchAppend measures durable appends of 100-byte messages from 1, 16 and
// 256 goroutines, spread round-robin over BenchConvs conversations. With
// group commit the rate grows with the appenders, since one fsync serves a
// whole batch. It reports msgs/s, the messages per commit, the CPU time the
// process spent per message (every goroutine: appenders, writer, the
// engine's flushes and compactions, the garbage collector; steadier than
// msgs/s on a shared machine) and, when disk is true (an embedded store),
// the bytes this process wrote to disk per message, Close included, so a
// store that defers work to its close pays it. The CPU includes indexing
// every message (a store with a text index is flushed before its close);
// index-µs/msg is the indexer's busy time (wall) per message indexed.
func BenchAppend(b *testing.B, open OpenBench, disk bool) {
	for _, workers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", workers), func(b *testing.B) {
			var batches, msgs atomic.Int64
			s := open(b, func(m []protocol.Message) {
				batches.Add(1)
				msgs.Add(int64(len(m)))
			})
			body := make([]byte, 100)
			var next atomic.Int64
			var wg sync.WaitGroup
			written := diskWritten(b)
			cpu := cpuTime()
			b.ResetTimer()
			start := time.Now()
			for range workers {
				wg.Go(func() {
					ctx := context.Background()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						peer := i%BenchConvs + 2
						m := &protocol.Message{
							MsgID: i, Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
							ClientMsgID: strconv.FormatInt(i, 10), Body: body, ServerTime: i,
						}
						if _, _, err := s.Append(ctx, m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if sr, ok := s.(storage.Searcher); ok {
				// Indexing is part of what an append costs: wait for it
				// (outside the time, inside the CPU).
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := sr.IndexFlush(ctx); err != nil {
					b.Errorf("IndexFlush: %v", err)
				}
				cancel()
			}
			if err := s.Close(); err != nil {
				b.Errorf("Close: %v", err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/msg")
			if n := batches.Load(); n > 0 {
				b.ReportMetric(float64(msgs.Load())/float64(n), "msgs/batch")
			}
			if disk {
				b.ReportMetric(float64(diskWritten(b)-written)/float64(b.N), "disk-B/msg")
			}
			if is, ok := s.(indexStats); ok {
				st := is.IndexStats()
				b.ReportMetric(float64(st.Busy.Microseconds())/float64(max(st.Messages, 1)), "index-µs/msg")
			}
		})
	}
}

// diskWritten returns the bytes this process has caused to be written to
// storage (write_bytes of /proc/self/io), or 0 where that is not available.
func diskWritten(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				b.Fatalf("/proc/self/io: %v", err)
			}
			return n
		}
	}
	return 0
}
