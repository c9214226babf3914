package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency records durations in microseconds, 1µs to 60s, 3 significant
// digits, over the whole run and per second.
type Latency struct {
	mu     sync.Mutex
	all    *hdrhistogram.Histogram
	second *hdrhistogram.Histogram
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// NewLatency returns an empty recorder.
func NewLatency() *Latency { return &Latency{all: newHist(), second: newHist()} }

// Record adds one duration.
func (l *Latency) Record(d time.Duration) {
	us := max(d.Microseconds(), 1)
	l.mu.Lock()
	_ = l.all.RecordValue(us)
	_ = l.second.RecordValue(us)
	l.mu.Unlock()
}

// Percentiles are latency figures in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// Total is the whole run's percentiles.
func (l *Latency) Total() Percentiles {
	l.mu.Lock()
	defer l.mu.Unlock()
	return percentiles(l.all)
}

// cut returns the percentiles of the second that ends and starts the next.
func (l *Latency) cut() Percentiles {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := percentiles(l.second)
	l.second.Reset()
	return p
}

// Sample is one second of a run.
type Sample struct {
	T       float64     `json:"t"`    // seconds since the start
	Rate    float64     `json:"rate"` // the scenario's unit per second
	Latency Percentiles `json:"latency"`
}
