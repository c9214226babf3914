package bench

import (
	"fmt"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency records durations in microseconds, 1µs to 60s, with 3
// significant digits (an HDR histogram), over the whole run and per
// second. It is safe for concurrent use.
type Latency struct {
	mu     sync.Mutex
	all    *hdrhistogram.Histogram
	second *hdrhistogram.Histogram
}

// Histogram bounds, in microseconds. Longer durations are recorded as the
// highest; shorter as 1µs.
const (
	histLowest  = 1
	histHighest = 60_000_000
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histLowest, histHighest, histDigits) }

// NewLatency returns an empty recorder.
func NewLatency() *Latency { return &Latency{all: newHist(), second: newHist()} }

// Record adds one duration.
func (l *Latency) Record(d time.Duration) {
	us := min(max(d.Microseconds(), histLowest), histHighest)
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

// Encoded is the whole run's histogram in the HdrHistogram compressed
// format (base64), for merging the results of several processes.
func (l *Latency) Encoded() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := l.all.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(b)
}

// MergeEncoded adds histograms in the Encoded format into one and returns
// its percentiles and encoding.
func MergeEncoded(encoded ...string) (Percentiles, string, error) {
	sum := newHist()
	for _, e := range encoded {
		if e == "" {
			continue
		}
		h, err := hdrhistogram.Decode([]byte(e))
		if err != nil {
			return Percentiles{}, "", fmt.Errorf("bench: decode histogram: %w", err)
		}
		sum.Merge(h)
	}
	b, err := sum.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return Percentiles{}, "", err
	}
	return percentiles(sum), string(b), nil
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
