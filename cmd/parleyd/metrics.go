package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"

	"github.com/parleyim/parley/server"
)

// metricsStats is GET /stats: the server's figures and the process's RSS.
type metricsStats struct {
	server.Stats
	RSS uint64 `json:"rss"` // resident set size, bytes
}

// serveMetrics serves the admin endpoint on addr until stop is called:
//
//	GET /stats         srv.Stats() and the process's RSS as JSON; with ?gc=1
//	                   garbage is collected and freed memory returned to the
//	                   OS first, so RSS is the memory the server holds
//	/debug/pprof/...   the runtime profiles (profile?seconds=N for CPU)
//
// It is for operators and parley-bench: bind it to loopback.
func serveMetrics(addr string, srv *server.Server, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			// Collect and return freed memory to the OS first, so RSS is
			// what the server holds, not garbage of a burst just past.
			debug.FreeOSMemory()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(metricsStats{Stats: srv.Stats(), RSS: server.RSS()})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: mux}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics endpoint", "addr", l.Addr().String())
	return func() { _ = hs.Close() }, nil
}
