package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
)

// Search benchmark corpus: BenchSearchMessages messages of user 1 in
// BenchSearchConvs direct conversations, each 6-14 words drawn from a
// vocabulary of 2,000 Latin words (skewed: the word of rank k is drawn
// with a probability falling as k^-2/3, so the first few are in most
// messages) and 300 Chinese two-character words.
const (
	BenchSearchMessages = 100_000
	BenchSearchConvs    = 50
)

// indexStats is the optional ability of a store to report its indexer's work.
type indexStats interface{ IndexStats() fulltext.Stats }

// BenchSearch fills a store with the corpus, waits for the index, reports
// what indexing cost per message, then times searches of a page of 20 for
// queries from rare to common: ms-p50 and ms-p99 per query kind, beside a
// History page of 20 as the baseline of the same run, and the process CPU
// per search (cpu-ms/op: on a shared machine the wall times mostly measure
// the other processes). disk is
// true for an embedded store (its bytes written per message are reported).
func BenchSearch(b *testing.B, open OpenBench, disk bool) {
	s := open(b, nil)
	defer s.Close()
	sr, ok := s.(storage.Searcher)
	if !ok {
		b.Fatalf("%T is not a storage.Searcher", s)
	}
	ctx := context.Background()
	words := benchWords()
	written := diskWritten(b)
	cpu0 := cpuTime()
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(next.Load()), 7))
			var sb strings.Builder
			for {
				i := next.Add(1)
				if i > BenchSearchMessages {
					return
				}
				sb.Reset()
				for w := range 6 + r.IntN(9) {
					if w > 0 {
						sb.WriteByte(' ')
					}
					sb.WriteString(words.pick(r))
				}
				peer := i%BenchSearchConvs + 2
				m := &protocol.Message{MsgID: i, Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
					ClientMsgID: fmt.Sprint(i), Body: []byte(sb.String()), ServerTime: 1_700_000_000_000 + i}
				if _, _, err := s.Append(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	appended := time.Since(t0)
	if err := sr.IndexFlush(ctx); err != nil {
		b.Fatal(err)
	}
	indexed := time.Since(t0)
	cpu := cpuTime() - cpu0
	b.Logf("%d messages appended in %v, indexed %v after the first; process CPU %v (%.1f µs/msg, appends and index)",
		BenchSearchMessages, appended.Round(time.Millisecond), indexed.Round(time.Millisecond), cpu.Round(time.Millisecond),
		float64(cpu.Microseconds())/BenchSearchMessages)
	if is, ok := s.(indexStats); ok {
		st := is.IndexStats()
		b.Logf("indexer: %d messages, %.1f posting bytes/msg, %.1f µs/msg busy (reading messages, cutting grams, writing lists)",
			st.Messages, float64(st.Bytes)/float64(st.Messages), float64(st.Busy.Microseconds())/float64(st.Messages))
	}
	if disk {
		b.Logf("disk written: %.0f bytes/msg (messages, index, WAL, compactions so far)", float64(diskWritten(b)-written)/BenchSearchMessages)
	}
	// The baseline, in the same run: a History page of 20 (Before).
	b.Run("baseline-history", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		cpu0 := cpuTime()
		for b.Loop() {
			t := time.Now()
			_, _, _, err := s.Before(ctx, 1, protocol.DirectConv(1, 7), 0, 20)
			lat = append(lat, time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
		}
		cpu := cpuTime() - cpu0
		slices.Sort(lat)
		b.ReportMetric(millis(lat[len(lat)/2]), "ms-p50")
		b.ReportMetric(millis(lat[len(lat)*99/100]), "ms-p99")
		b.ReportMetric(millis(cpu)/float64(len(lat)), "cpu-ms/op")
	})
	for _, q := range []struct{ name, text string }{
		{"rare", words.latin[1500]},
		{"middle", words.latin[60]},
		{"common", words.latin[1]},
		{"two-terms", words.latin[3] + " " + words.latin[40]},
		{"cjk", words.cjk[10]},
		{"cjk-one-rune", string([]rune(words.cjk[20])[:1])},
		{"prefix", words.latin[200][:3]},
		{"one-conv", words.latin[1]},
	} {
		b.Run(q.name, func(b *testing.B) {
			query := fulltext.Query{User: 1, Text: q.text, Limit: 20}
			if q.name == "one-conv" {
				query.Conv = protocol.DirectConv(1, 7)
			}
			lat := make([]time.Duration, 0, b.N)
			found := 0
			cpu0 := cpuTime()
			for b.Loop() {
				t := time.Now()
				p, err := sr.Search(ctx, query)
				lat = append(lat, time.Since(t))
				if err != nil {
					b.Fatalf("Search(%q): %v", q.text, err)
				}
				found = len(p.Messages)
			}
			cpu := cpuTime() - cpu0
			slices.Sort(lat)
			b.ReportMetric(millis(lat[len(lat)/2]), "ms-p50")
			b.ReportMetric(millis(lat[len(lat)*99/100]), "ms-p99")
			b.ReportMetric(millis(cpu)/float64(len(lat)), "cpu-ms/op")
			b.ReportMetric(float64(found), "results")
		})
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchVocab struct {
	latin, cjk []string
}

func benchWords() *benchVocab {
	r := rand.New(rand.NewPCG(1, 2))
	v := &benchVocab{}
	const letters = "abcdefghijklmnopqrstuvwxyz"
	seen := map[string]bool{}
	for len(v.latin) < 2000 {
		n := 3 + r.IntN(7)
		w := make([]byte, n)
		for i := range w {
			w[i] = letters[r.IntN(len(letters))]
		}
		if !seen[string(w)] {
			seen[string(w)] = true
			v.latin = append(v.latin, string(w))
		}
	}
	for len(v.cjk) < 300 {
		w := string([]rune{rune(0x4E00 + r.IntN(3000)), rune(0x4E00 + r.IntN(3000))})
		if !seen[w] {
			seen[w] = true
			v.cjk = append(v.cjk, w)
		}
	}
	return v
}

// pick draws a word: one in five Chinese, else Latin by a Zipf law.
func (v *benchVocab) pick(r *rand.Rand) string {
	if r.IntN(5) == 0 {
		return v.cjk[r.IntN(len(v.cjk))]
	}
	for {
		k := int(float64(len(v.latin)) * pow(r.Float64(), 3))
		if k < len(v.latin) {
			return v.latin[k]
		}
	}
}

func pow(x float64, n int) float64 {
	out := 1.0
	for range n {
		out *= x
	}
	return out
}
