package bench

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The server's figures come from parleyd's /metrics (Prometheus text
// format): the samples a ServerSample needs, by metric name.
var sampleMetrics = map[string]func(*ServerSample, float64){
	"process_resident_memory_bytes":      func(s *ServerSample, v float64) { s.RSS = uint64(v) },
	"process_resident_memory_anon_bytes": func(s *ServerSample, v float64) { s.RSSAnon = uint64(v) },
	"go_memstats_heap_alloc_bytes":       func(s *ServerSample, v float64) { s.HeapAlloc = uint64(v) },
	"go_goroutines":                      func(s *ServerSample, v float64) { s.Goroutines = int(v) },
	"parley_connections_open":            func(s *ServerSample, v float64) { s.Conns = int64(v) },
	"parley_messages_stored_total":       func(s *ServerSample, v float64) { s.Messages = uint64(v) },
	"parley_pushes_total":                func(s *ServerSample, v float64) { s.Pushes = uint64(v) },
}

// parseMetrics reads a ServerSample from the Prometheus text format. Every
// metric of sampleMetrics must be there: a server without them is not a
// parleyd with metrics on.
func parseMetrics(r io.Reader) (ServerSample, error) {
	var s ServerSample
	seen := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		set := sampleMetrics[name]
		if !ok || set == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return s, fmt.Errorf("bench: metrics: %q: %w", line, err)
		}
		set(&s, v)
		seen++
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if seen < len(sampleMetrics) {
		return s, fmt.Errorf("bench: metrics: %d of the %d figures the bench reads (is it parleyd's /metrics?)", seen, len(sampleMetrics))
	}
	return s, nil
}
