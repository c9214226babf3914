package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/parleyim/parley/cmd/internal/version"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
	"github.com/parleyim/parley/storage/mysql"
	"github.com/parleyim/parley/storage/pebble"
)

// storeGauges adds the metrics a store keeps of itself: MySQL's group
// commits by how each was stored (storage/mysql, onetrip.go), whose rate
// against parley_messages_stored_total is the messages a commit, which
// --mysql-batch-interval trades against latency; the embedded store's
// engine (pebbleGauges); either's text indexer.
func storeGauges(m *server.Metrics, st storage.Store) {
	if is, ok := st.(interface{ IndexStats() fulltext.Stats }); ok {
		m.Gauge("parley_index_messages_total", func() float64 { return float64(is.IndexStats().Messages) })
		m.Gauge("parley_index_busy_seconds_total", func() float64 { return is.IndexStats().Busy.Seconds() })
	}
	if ps, ok := st.(*pebble.Store); ok {
		pebbleGauges(m, ps)
	}
	ms, ok := st.(*mysql.Store)
	if !ok {
		return
	}
	for _, g := range []struct {
		path string
		n    func(mysql.BatchCounts) uint64
	}{
		{"one_trip", func(b mysql.BatchCounts) uint64 { return b.OneTrip }},
		{"fell_back", func(b mysql.BatchCounts) uint64 { return b.FellBack }},
		{"general", func(b mysql.BatchCounts) uint64 { return b.General }},
	} {
		m.Gauge(`parley_mysql_batches_total{path="`+g.path+`"}`, func() float64 { return float64(g.n(ms.Batches())) })
	}
}

// pebbleGauges adds the embedded store's engine figures
// (pebble.EngineStats), read at most once a second however many of them a
// scrape asks for.
func pebbleGauges(m *server.Metrics, ps *pebble.Store) {
	var mu sync.Mutex
	var st pebble.EngineStats
	var at time.Time
	read := func(f func(*pebble.EngineStats) float64) func() float64 {
		return func() float64 {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(at) > time.Second {
				st, at = ps.EngineStats(), time.Now()
			}
			return f(&st)
		}
	}
	for _, g := range []struct {
		name string
		f    func(*pebble.EngineStats) float64
	}{
		{"parley_pebble_wal_sync_seconds_count", func(s *pebble.EngineStats) float64 { return float64(s.WALSyncs) }},
		{"parley_pebble_wal_sync_seconds_sum", func(s *pebble.EngineStats) float64 { return s.WALSyncSeconds }},
		{"parley_pebble_wal_bytes_total", func(s *pebble.EngineStats) float64 { return float64(s.WALBytes) }},
		{"parley_pebble_flushes_total", func(s *pebble.EngineStats) float64 { return float64(s.Flushes) }},
		{"parley_pebble_compactions_total", func(s *pebble.EngineStats) float64 { return float64(s.Compactions) }},
		{"parley_pebble_compaction_debt_bytes", func(s *pebble.EngineStats) float64 { return float64(s.CompactionDebt) }},
		{"parley_pebble_l0_sublevels", func(s *pebble.EngineStats) float64 { return float64(s.L0Sublevels) }},
		{"parley_pebble_memtable_bytes", func(s *pebble.EngineStats) float64 { return float64(s.MemTableBytes) }},
		{"parley_pebble_disk_bytes", func(s *pebble.EngineStats) float64 { return float64(s.DiskBytes) }},
		{"parley_pebble_write_stalls_total", func(s *pebble.EngineStats) float64 { return float64(s.WriteStalls) }},
		{"parley_pebble_paced_waits_total", func(s *pebble.EngineStats) float64 { return float64(s.PacedWaits) }},
	} {
		m.Gauge(g.name, read(g.f))
	}
	// The fsync histogram's buckets: their bounds are the engine's, fixed.
	for i, b := range ps.EngineStats().WALSyncBuckets {
		le := strconv.FormatFloat(b.Le, 'g', 4, 64) // the engine's bound, to a ten-thousandth
		m.Gauge(`parley_pebble_wal_sync_seconds_bucket{le="`+le+`"}`, read(func(s *pebble.EngineStats) float64 {
			if i >= len(s.WALSyncBuckets) {
				return 0
			}
			return float64(s.WALSyncBuckets[i].Count)
		}))
	}
}

// maxAdminConns caps the connections of the admin endpoint; more wait in
// the listen backlog.
const maxAdminConns = 32

// serveMetrics serves the admin endpoint on addr until stop is called:
//
//	GET /metrics       the server's metrics, the Go runtime's and the
//	                   process's, in the Prometheus text format; with ?gc=1
//	                   garbage is collected and freed memory returned to the
//	                   OS first, so process_resident_memory_bytes is the
//	                   memory the server holds (parley-bench uses it)
//	GET /healthz       live: 200 "ok", or 503 and what failed (server.Live)
//	GET /readyz        ready for traffic: 200 "ok", or 503 and every check
//	                   that failed (server.Ready)
//	/debug/pprof/...   the runtime profiles (profile?seconds=N for CPU)
//	/admin/bans        the admin API (adminAPI), behind adminToken
//
// It is for operators, Prometheus and parley-bench: bind it to loopback or
// a private network; only the admin API has authentication.
func serveMetrics(addr string, m *server.Metrics, srv health, adminToken string, log *slog.Logger) (stop func(), err error) {
	info := version.Get()
	m.Gauge(`parley_build_info{version="`+info.Version+`",commit="`+info.Commit+`",go="`+info.Go+`"}`, func() float64 { return 1 })
	storeGauges(m, srv.Store())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			debug.FreeOSMemory()
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.WritePrometheus(w)
	})
	mux.HandleFunc("GET /healthz", healthHandler(srv.Live))
	mux.HandleFunc("GET /readyz", healthHandler(srv.Ready))
	adminAPI(mux, storeBans{srv.Store()}, adminToken)
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// The endpoint has its own connection cap and timeouts, and its
	// connections count against the server's connection cap, so idle
	// clients of it cannot use up the descriptors the server keeps in
	// reserve (server.Config.FDReserve).
	l = netutil.LimitListener(srv.Listener(l), maxAdminConns)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics endpoint", "addr", l.Addr().String())
	return func() { _ = hs.Close() }, nil
}

// health is what /healthz, /readyz and the admin API ask, and what counts
// the endpoint's connections: *server.Server.
type health interface {
	Live(context.Context) error
	Ready(context.Context) error
	Store() storage.Store
	Listener(net.Listener) net.Listener
}

func healthHandler(check func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := check(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ok: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}
