package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

// ConnsOptions configure the conns scenario.
type ConnsOptions struct {
	Options
	N           int           // connections
	Rate        float64       // new connections per second; 0: as fast as Parallel allows
	Parallel    int           // logins in flight; default 64
	PingEvery   time.Duration // each connection's heartbeat; default 10s
	ExistingIDs bool          // log in as users of an earlier run instead of registering
}

// Conns opens N connections, logs each in, and holds them with heartbeats
// for Duration, measuring the ping round trip. With a metrics endpoint it
// reports the server's memory per connection above its idle RSS.
func Conns(ctx context.Context, o ConnsOptions) (Result, error) {
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 10 * time.Second
	}
	var idle ServerSample
	if o.Metrics != "" {
		var err error
		if idle, err = settledStats(ctx, o.Metrics); err != nil {
			return Result{}, fmt.Errorf("metrics: %w", err)
		}
	}
	m := newMeter(o.Options, "conns", "logins, then pings/s")
	var (
		mu       sync.Mutex
		conns    []*conn
		failures = map[string]int{}
		sem      = make(chan struct{}, o.Parallel)
		wg       sync.WaitGroup
	)
	fail := func(reason string) {
		mu.Lock()
		failures[reason]++
		mu.Unlock()
	}
	start := time.Now()
	for i := range o.N {
		if o.Rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			c, _, err := connectUser(lctx, o.addr(i), fmt.Sprintf("%sc%d", o.Prefix, i), nil)
			cancel()
			if err != nil {
				fail(reasonOf(err))
				return
			}
			m.count.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	loginSecs := time.Since(start).Seconds()
	loggedIn := len(conns)

	// Hold: every connection pings every PingEvery, spread evenly.
	holdEnd := time.Now().Add(o.Duration)
	step := o.PingEvery / time.Duration(max(loggedIn, 1))
	for time.Now().Before(holdEnd) && ctx.Err() == nil {
		for _, c := range conns {
			if !time.Now().Before(holdEnd) {
				break
			}
			c := c
			go func() {
				t0 := time.Now()
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := c.call(pctx, protocol.TypePing, &protocol.Ping{}, nil); err != nil {
					fail("ping: " + reasonOf(err))
					return
				}
				m.lat.Record(time.Since(t0))
				m.count.Add(1)
			}()
			time.Sleep(step)
		}
	}
	var held ServerSample
	if o.Metrics != "" {
		held, _ = settledStats(ctx, o.Metrics)
	}
	res := m.finish(map[string]any{"n": o.N, "rate": o.Rate, "ping_every": o.PingEvery.String()})
	res.Unit, res.Count = "connections", int64(loggedIn)
	res.Rate = float64(loggedIn) / loginSecs
	res.Failures = failures
	res.Figures = map[string]float64{"logged_in": float64(loggedIn), "login_seconds": loginSecs, "logins_per_second": res.Rate}
	if o.Metrics != "" && loggedIn > 0 {
		res.Figures["server_conns"] = float64(held.Conns)
		res.Figures["server_rss_idle_mb"] = float64(idle.RSS) / (1 << 20)
		res.Figures["server_rss_held_mb"] = float64(held.RSS) / (1 << 20)
		res.Figures["server_bytes_per_conn"] = (float64(held.RSS) - float64(idle.RSS)) / float64(loggedIn)
		res.Figures["server_heap_bytes_per_conn"] = (float64(held.HeapAlloc) - float64(idle.HeapAlloc)) / float64(loggedIn)
	}
	for _, c := range conns {
		c.close()
	}
	return res, nil
}

// reasonOf names a failure for the report: a protocol error code, or the
// kind of network error.
func reasonOf(err error) string {
	var pe *protocol.Error
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code.String()
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "network: " + err.Error()
}
