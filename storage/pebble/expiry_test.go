package pebble

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// The timer and the timing wheel are in the database: after a reopen, a
// message is stamped from the timer set before, and the messages stored
// before expire.
func TestExpiryReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	a, b := int64(1), int64(2)
	conv := protocol.DirectConv(a, b)
	now := time.Now().UnixMilli()
	msg := func(ct uint16, body string, at int64) *protocol.Message {
		return &protocol.Message{MsgID: now + at, Conv: conv, From: a, To: b, ContentType: ct, Body: []byte(body), ServerTime: at}
	}
	for _, m := range []*protocol.Message{
		msg(protocol.ContentTimer, "2", now),
		msg(0, "soon", now),
		msg(0, "sooner", now-1000),
	} {
		if _, _, err := s.Append(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	m := msg(0, "after the reopen", now)
	stored, _, err := s.Append(t.Context(), m)
	if err != nil || stored.ExpiresAt != now+2000 {
		t.Fatalf("after reopen: expires_at %d, %v; want %d", stored.ExpiresAt, err, now+2000)
	}
	gone, err := s.Expire(t.Context(), now+1000, 10)
	if err != nil || len(gone) != 1 || string(gone[0].Body) != "sooner" {
		t.Fatalf("Expire after reopen: %+v, %v", gone, err)
	}
	gone, err = s.Expire(t.Context(), now+2000, 10)
	if err != nil || !slices.Equal(seqs(gone), []uint64{2, 4}) {
		t.Fatalf("Expire: %v, %v", seqs(gone), err)
	}
}

func seqs(msgs []protocol.Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

// BenchmarkExpiry: appends without a timer (the baseline) and with one, in
// one run, and the sweep: Expire of due messages, 256 a call, per message.
func BenchmarkExpiry(b *testing.B) {
	const convs = 50
	body := make([]byte, 100)
	appendAll := func(b *testing.B, s *Store, n int, at int64) {
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
	setTimers := func(b *testing.B, s *Store) {
		for c := range convs {
			from := int64(1 + c)
			if _, _, err := s.Append(context.Background(), &protocol.Message{MsgID: 1 << 40, Conv: protocol.DirectConv(from, 1000),
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
			s := open(b, Config{Dir: b.TempDir()})
			if timer {
				setTimers(b, s)
			}
			b.ResetTimer()
			cpu, disk := cpuTime(), diskWritten()
			appendAll(b, s, b.N, time.Now().UnixMilli()+3_600_000)
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/msg")
			b.ReportMetric(float64(diskWritten()-disk)/float64(b.N), "wal-B/msg")
		})
	}
	b.Run("expire", func(b *testing.B) {
		s := open(b, Config{Dir: b.TempDir()})
		setTimers(b, s)
		now := time.Now().UnixMilli()
		appendAll(b, s, b.N, now-10_000) // due
		if err := s.IndexFlush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu := cpuTime()
		n := 0
		for n < b.N {
			gone, err := s.Expire(context.Background(), now, 256)
			if err != nil || len(gone) == 0 {
				b.Fatalf("Expire after %d of %d: %v", n, b.N, err)
			}
			n += len(gone)
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/msg")
	})
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// diskWritten is what the process has written to disk so far (0 where
// /proc/self/io is missing).
func diskWritten() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
