package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Result is what a scenario measured.
type Result struct {
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	Seconds  float64        `json:"seconds"`
	Unit     string         `json:"unit"`  // what Count and Rate count
	Count    int64          `json:"count"` // over the measured period
	Rate     float64        `json:"rate"`  // Count per second
	Latency  Percentiles    `json:"latency"`
	Hist     string         `json:"hist,omitempty"` // Latency's histogram, Latency.Encoded
	Samples  []Sample       `json:"samples"`
	// SampleUnit is what the samples' Rate counts when it is not Unit.
	SampleUnit string             `json:"sample_unit,omitempty"`
	Figures    map[string]float64 `json:"figures,omitempty"`  // scenario-specific
	Failures   map[string]int     `json:"failures,omitempty"` // by reason
	Server     []ServerSample     `json:"server,omitempty"`   // polled each second
}

// Options shared by the scenarios.
type Options struct {
	Addr     string        // the server
	Addrs    []string      // a cluster's nodes: connections are spread over them (overrides Addr)
	Stats    StatsFunc     // the server's own figures; nil for none
	Duration time.Duration // measured period
	Prefix   string        // username prefix, unique per run
	Name     string        // the result's scenario name; default the scenario's
	Progress io.Writer     // a live line each second; nil for none
	// OnSample, if set, is called with each second's sample as it is cut
	// (from the meter's goroutine).
	OnSample func(Sample)
	// Encrypt runs every connection's frames through Noise (XX at
	// connect, as a first-time client does).
	Encrypt bool
}

// addr is the node the i-th connection dials first.
func (o Options) addr(i int) string {
	if len(o.Addrs) > 0 {
		return o.Addrs[i%len(o.Addrs)]
	}
	return o.Addr
}

// ServerSample is one reading of the server's figures (parleyd's GET
// /metrics).
type ServerSample struct {
	T          float64 `json:"t"`
	RSS        uint64  `json:"rss"`
	RSSAnon    uint64  `json:"rss_anon"` // of RSS, the anonymous pages: not the binary's code, not files
	HeapAlloc  uint64  `json:"heap_alloc"`
	Goroutines int     `json:"goroutines"`
	Conns      int64   `json:"conns"`
	Messages   uint64  `json:"messages"`
	Pushes     uint64  `json:"pushes"`
}

// StatsFunc reads the server's figures. With settle the server first
// collects its garbage and returns free memory to the OS, so RSS is the
// memory it holds rather than the garbage of a burst just past; that is
// slow, so the per-second polls do not ask for it.
type StatsFunc func(ctx context.Context, settle bool) (ServerSample, error)

// MetricsURL reads parleyd's metrics endpoint (--metrics-listen) at base,
// e.g. http://127.0.0.1:7071.
func MetricsURL(base string) StatsFunc {
	base = strings.TrimSuffix(base, "/")
	return func(ctx context.Context, settle bool) (ServerSample, error) {
		var s ServerSample
		url := base + "/metrics"
		if settle {
			url += "?gc=1"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return s, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return s, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return s, fmt.Errorf("bench: %s: %s", url, resp.Status)
		}
		return parseMetrics(resp.Body)
	}
}

// meter counts events and cuts a Sample every second while running; with
// a StatsFunc it also polls the server each second.
type meter struct {
	name    string
	unit    string
	count   atomic.Int64
	lat     *Latency
	opts    Options
	start   time.Time
	samples []Sample
	server  []ServerSample
	stop    chan struct{}
	done    chan struct{}
}

func newMeter(opts Options, name, unit string) *meter {
	if opts.Name != "" {
		name = opts.Name
	}
	m := &meter{name: name, unit: unit, lat: NewLatency(), opts: opts, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

func (m *meter) run() {
	defer close(m.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := int64(0)
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		t := time.Since(m.start).Seconds()
		n := m.count.Load()
		s := Sample{T: t, Rate: float64(n - last), Latency: m.lat.cut()}
		last = n
		m.samples = append(m.samples, s)
		if m.opts.OnSample != nil {
			m.opts.OnSample(s)
		}
		srv := ""
		if m.opts.Stats != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			if ss, err := m.opts.Stats(ctx, false); err == nil {
				ss.T = t
				if k := len(m.server); k > 0 {
					prev := m.server[k-1]
					srv = fmt.Sprintf("  server %d conns %.0f MB %d msgs/s", ss.Conns, float64(ss.RSS)/(1<<20), ss.Messages-prev.Messages)
				}
				m.server = append(m.server, ss)
			}
			cancel()
		}
		if m.opts.Progress != nil {
			fmt.Fprintf(m.opts.Progress, "\r%-6s %4.0fs %9.0f %s  p50 %6.2fms  p99 %7.2fms%s   ",
				m.name, t, s.Rate, m.unit, s.Latency.P50, s.Latency.P99, srv)
		}
	}
}

func (m *meter) finish(params map[string]any) Result {
	close(m.stop)
	<-m.done
	if m.opts.Progress != nil {
		fmt.Fprintln(m.opts.Progress)
	}
	secs := time.Since(m.start).Seconds()
	n := m.count.Load()
	res := Result{
		Scenario: m.name, Params: params, Seconds: secs, Unit: m.unit, Count: n, Rate: float64(n) / secs,
		Latency: m.lat.Total(), Hist: m.lat.Encoded(), Samples: m.samples, Server: m.server,
	}
	res.serverFigures()
	return res
}

// serverFigures adds the server's rates and peaks over the run, from its
// per-second samples, to the result's figures.
func (r *Result) serverFigures() {
	if len(r.Server) < 2 {
		return
	}
	if r.Figures == nil {
		r.Figures = map[string]float64{}
	}
	first, last := r.Server[0], r.Server[len(r.Server)-1]
	secs := last.T - first.T
	var rss uint64
	goroutines := 0
	for _, s := range r.Server {
		rss, goroutines = max(rss, s.RSS), max(goroutines, s.Goroutines)
	}
	r.Figures["server_msgs_per_s"] = float64(last.Messages-first.Messages) / secs
	r.Figures["server_pushes_per_s"] = float64(last.Pushes-first.Pushes) / secs
	r.Figures["server_rss_max_mb"] = float64(rss) / (1 << 20)
	r.Figures["server_goroutines_max"] = float64(goroutines)
}
