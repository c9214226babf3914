package server

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// counters are the server's running totals, read by Stats.
type counters struct {
	messages atomic.Uint64 // messages stored (duplicates not counted)
	pushes   atomic.Uint64 // Push frames queued to connections
	logins   atomic.Uint64 // successful logins and registrations
}

// Stats is a snapshot of the server's figures, for the metrics endpoint
// and the load-test tool.
type Stats struct {
	Time        time.Time `json:"time"`
	Conns       int64     `json:"conns"`        // open connections
	MaxConns    int       `json:"max_conns"`    // the connection cap
	Messages    uint64    `json:"messages"`     // messages stored since start
	Pushes      uint64    `json:"pushes"`       // pushes queued since start
	Logins      uint64    `json:"logins"`       // logins since start
	Goroutines  int       `json:"goroutines"`   // runtime.NumGoroutine
	HeapAlloc   uint64    `json:"heap_alloc"`   // bytes of live heap objects
	HeapSys     uint64    `json:"heap_sys"`     // heap bytes obtained from the OS
	Sys         uint64    `json:"sys"`          // all bytes obtained from the OS by the Go runtime
	NumGC       uint32    `json:"num_gc"`       // completed GC cycles
	PauseTotal  uint64    `json:"pause_total"`  // GC pause total, ns
	StartedUnix int64     `json:"started_unix"` // when the server started, Unix s
}

// Stats returns the server's current figures. It stops the world briefly
// (runtime.ReadMemStats): call it about once a second, not per request.
func (s *Server) Stats() Stats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Stats{
		Time:        time.Now(),
		Conns:       s.conns.Load(),
		MaxConns:    s.cfg.MaxConns,
		Messages:    s.stats.messages.Load(),
		Pushes:      s.stats.pushes.Load(),
		Logins:      s.stats.logins.Load(),
		Goroutines:  runtime.NumGoroutine(),
		HeapAlloc:   ms.HeapAlloc,
		HeapSys:     ms.HeapSys,
		Sys:         ms.Sys,
		NumGC:       ms.NumGC,
		PauseTotal:  ms.PauseTotalNs,
		StartedUnix: s.startedAt.Unix(),
	}
}

// RSS is this process's resident set size in bytes (VmRSS of
// /proc/self/status); 0 where that is not available.
func RSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
