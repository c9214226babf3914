package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/parleyim/parley/protocol"
)

// ConnsOptions configure the conns scenario.
type ConnsOptions struct {
	Options
	N         int           // connections
	First     int           // index of the first user: a worker's share of a run spread over processes
	Rate      float64       // new connections per second; 0: as fast as Parallel allows
	Parallel  int           // logins in flight; default 64
	PingEvery time.Duration // each connection's heartbeat; default 10s
	Loops     int           // event loops holding the connections; default 2
}

// Conns opens N connections, logs each in, and holds them with heartbeats
// for Duration, measuring the ping round trip. With Stats it reports the
// server's memory per connection above its idle RSS, both read settled.
func Conns(ctx context.Context, o ConnsOptions) (Result, error) {
	var idle ServerSample
	if o.Stats != nil {
		var err error
		if idle, err = o.Stats(ctx, true); err != nil {
			return Result{}, fmt.Errorf("server stats: %w", err)
		}
	}
	h, err := OpenConns(ctx, o)
	if err != nil {
		return Result{}, err
	}
	hctx, cancel := context.WithTimeout(ctx, o.Duration)
	h.Hold(hctx)
	cancel()
	var held ServerSample
	if o.Stats != nil {
		held, err = o.Stats(ctx, true)
	}
	res := h.Close()
	if o.Stats != nil && err == nil {
		MemoryFigures(&res, idle, held)
	}
	return res, nil
}

// MemoryFigures adds the server's memory per held connection (res.Count of
// them) to res, from its figures before the logins and while holding.
func MemoryFigures(res *Result, idle, held ServerSample) {
	if res.Figures == nil {
		res.Figures = map[string]float64{}
	}
	f := res.Figures
	f["server_conns"] = float64(held.Conns)
	f["server_rss_idle_mb"] = float64(idle.RSS) / (1 << 20)
	f["server_rss_held_mb"] = float64(held.RSS) / (1 << 20)
	if res.Count > 0 {
		f["server_bytes_per_conn"] = (float64(held.RSS) - float64(idle.RSS)) / float64(res.Count)
		// RSS also grows by the pages of the binary's code that the
		// first logins touch (file-backed, shared, not per connection):
		// the anonymous pages alone are the memory the connections hold.
		f["server_anon_bytes_per_conn"] = (float64(held.RSSAnon) - float64(idle.RSSAnon)) / float64(res.Count)
		f["server_heap_bytes_per_conn"] = (float64(held.HeapAlloc) - float64(idle.HeapAlloc)) / float64(res.Count)
	}
}

// Held is the conns scenario in its phases: OpenConns logs the
// connections in, Hold pings them, Close reports. A run spread over
// processes lines up its workers between the phases.
type Held struct {
	o         ConnsOptions
	h         *holder
	m         *meter
	login     *Latency
	conns     []*heldConn
	mu        sync.Mutex
	failures  map[string]int
	loginSecs float64
	timeouts  int
}

// OpenConns opens o.N connections and logs each in, o.Parallel at a time
// (and at most o.Rate a second), as users Prefix+"c"+index. Failed logins
// are counted by reason, not returned.
func OpenConns(ctx context.Context, o ConnsOptions) (*Held, error) {
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 10 * time.Second
	}
	if o.Loops <= 0 {
		o.Loops = 2
	}
	c := &Held{o: o, login: NewLatency(), failures: map[string]int{}}
	c.m = newMeter(o.Options, "conns", "logins, then pings/s")
	var err error
	if c.h, err = newHolder(o.Loops, o.Encrypt, c.m.lat.Record, nil); err != nil {
		c.m.finish(nil)
		return nil, err
	}
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
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
			defer cancel()
			t0 := time.Now()
			hc, err := c.h.connect(lctx, o.addr(i), fmt.Sprintf("%sc%d", o.Prefix, o.First+i), i)
			if err != nil {
				c.fail(reasonOf(err))
				return
			}
			c.login.Record(time.Since(t0))
			c.m.count.Add(1)
			c.mu.Lock()
			c.conns = append(c.conns, hc)
			c.mu.Unlock()
		}()
	}
	wg.Wait()
	c.loginSecs = time.Since(start).Seconds()
	return c, nil
}

func (c *Held) fail(reason string) {
	c.mu.Lock()
	c.failures[reason]++
	c.mu.Unlock()
}

// LoggedIn is the number of connections logged in.
func (c *Held) LoggedIn() int { return len(c.conns) }

// Hold pings every connection once per PingEvery, spread evenly, until
// ctx is done. A ping still unanswered when the next is due counts as a
// timeout.
func (c *Held) Hold(ctx context.Context) {
	n := len(c.conns)
	if n == 0 {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := int(float64(n) * float64(time.Since(start)) / float64(c.o.PingEvery))
		for ; sent < due; sent++ {
			hc := c.conns[sent%n]
			answered, err := hc.ping()
			switch {
			case err != nil:
			case !answered:
				c.timeouts++
			default:
				c.m.count.Add(1)
			}
		}
	}
}

// Close closes the connections and returns the result: logins per second
// as the rate, the ping round trip as the latency.
func (c *Held) Close() Result {
	lost := c.h.lost.take()
	c.h.close(c.conns)
	res := c.m.finish(map[string]any{"n": c.o.N, "rate": c.o.Rate, "parallel": c.o.Parallel, "ping_every": c.o.PingEvery.String()})
	loggedIn := len(c.conns)
	res.Unit, res.SampleUnit, res.Count = "connections", res.Unit, int64(loggedIn)
	res.Rate = float64(loggedIn) / c.loginSecs
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timeouts > 0 {
		c.failures["ping: no answer within ping-every"] = c.timeouts
	}
	for reason, n := range lost {
		c.failures[reason] += n
	}
	if len(c.failures) > 0 {
		res.Failures = c.failures
	}
	if res.Figures == nil {
		res.Figures = map[string]float64{}
	}
	lp := c.login.Total()
	res.Figures["logged_in"] = float64(loggedIn)
	res.Figures["login_seconds"] = c.loginSecs
	res.Figures["logins_per_second"] = res.Rate
	res.Figures["login_p50_ms"] = lp.P50
	res.Figures["login_p99_ms"] = lp.P99
	return res
}

// reasonOf names a failure for the report: a protocol error code, or the
// kind of network error.
func reasonOf(err error) string {
	var pe *protocol.Error
	var ne net.Error
	var errno syscall.Errno
	var kick *kickError
	switch {
	case errors.As(err, &pe):
		return pe.Code.String()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &errno):
		return "network: " + errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, errClosedByServer):
		return "closed by the server"
	case errors.As(err, &kick):
		return kick.Error()
	}
	return "network: " + err.Error()
}
