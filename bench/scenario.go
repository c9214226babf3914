package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Result is what a scenario measured.
type Result struct {
	Scenario string             `json:"scenario"`
	Params   map[string]any     `json:"params"`
	Seconds  float64            `json:"seconds"`
	Unit     string             `json:"unit"`  // what Count and Rate count
	Count    int64              `json:"count"` // over the measured period
	Rate     float64            `json:"rate"`  // Count per second
	Latency  Percentiles        `json:"latency"`
	Samples  []Sample           `json:"samples"`
	Figures  map[string]float64 `json:"figures,omitempty"`  // scenario-specific
	Failures map[string]int     `json:"failures,omitempty"` // by reason
	Server   []ServerSample     `json:"server,omitempty"`   // from the metrics endpoint
}

// Options shared by the scenarios.
type Options struct {
	Addr     string        // the server
	Addrs    []string      // a cluster's nodes: connections are spread over them (overrides Addr)
	Metrics  string        // base URL of parleyd's metrics endpoint; "" for none
	Duration time.Duration // measured period
	Prefix   string        // username prefix, unique per run
	Progress io.Writer     // a live line each second; nil for none
}

// addr is the node the i-th connection dials first.
func (o Options) addr(i int) string {
	if len(o.Addrs) > 0 {
		return o.Addrs[i%len(o.Addrs)]
	}
	return o.Addr
}

// ServerSample is one poll of the server's /stats.
type ServerSample struct {
	T          float64 `json:"t"`
	RSS        uint64  `json:"rss"`
	HeapAlloc  uint64  `json:"heap_alloc"`
	Goroutines int     `json:"goroutines"`
	Conns      int64   `json:"conns"`
	Messages   uint64  `json:"messages"`
	Pushes     uint64  `json:"pushes"`
}

// ServerStats reads the metrics endpoint once.
func ServerStats(ctx context.Context, base string) (ServerSample, error) {
	return serverStats(ctx, base, "")
}

// settledStats reads the metrics endpoint after the server has collected
// its garbage and returned free memory to the OS: memory it holds.
func settledStats(ctx context.Context, base string) (ServerSample, error) {
	return serverStats(ctx, base, "?gc=1")
}

func serverStats(ctx context.Context, base, query string) (ServerSample, error) {
	var s ServerSample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/stats"+query, nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// meter counts events and cuts a Sample every second while running.
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
		if m.opts.Metrics != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			if ss, err := ServerStats(ctx, m.opts.Metrics); err == nil {
				ss.T = t
				m.server = append(m.server, ss)
			}
			cancel()
		}
		if m.opts.Progress != nil {
			fmt.Fprintf(m.opts.Progress, "\r%-6s %5.0fs  %10.0f %s  p50 %6.2fms  p99 %7.2fms   ",
				m.name, t, s.Rate, m.unit, s.Latency.P50, s.Latency.P99)
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
	return Result{
		Scenario: m.name, Params: params, Seconds: secs, Unit: m.unit, Count: n, Rate: float64(n) / secs,
		Latency: m.lat.Total(), Samples: m.samples, Server: m.server,
	}
}

// stamp writes the send time into the first 8 bytes of a body of size n.
func stamp(n int) []byte {
	b := make([]byte, max(n, 8))
	binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
	return b
}

func since(body []byte) time.Duration {
	if len(body) < 8 {
		return 0
	}
	return time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(body))))
}

// befriend makes two users friends, so the default DM policy lets them talk.
func befriend(ctx context.Context, a, b *conn, aID, bID int64) error {
	err := a.call(ctx, protocol.TypeFriendRequest, &protocol.FriendRequest{To: bID}, nil)
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeAlreadyFriends {
		return nil
	}
	if err != nil {
		return err
	}
	return b.call(ctx, protocol.TypeFriendAnswer, &protocol.FriendAnswer{From: aID, Accept: true}, nil)
}

// P2POptions configure the p2p scenario.
type P2POptions struct {
	Options
	Pairs  int     // sender → receiver pairs
	Window int     // unacked sends per sender
	Rate   float64 // total sends per second; 0: flat out
	Size   int     // body bytes (at least 8)
}

// P2P measures 1:1 messages: each pair's sender sends to its receiver,
// keeping Window sends unacked; delivered is counted at the receivers, and
// the latency is from send to push.
func P2P(ctx context.Context, o P2POptions) (Result, error) {
	o.Window = max(o.Window, 1)
	type pair struct {
		a, b     *conn
		to       int64 // b's user id
		inflight chan struct{}
	}
	pairs := make([]*pair, o.Pairs)
	var m *meter
	var live atomic.Bool
	var sent, acked, disorder atomic.Int64
	for i := range pairs {
		p := &pair{inflight: make(chan struct{}, o.Window)}
		var err error
		var aID, bID int64
		p.a, aID, err = connectUser(ctx, o.addr(2*i), fmt.Sprintf("%sa%d", o.Prefix, i), func(h protocol.Header, _ []byte) {
			if h.Type == protocol.TypeSendAck {
				acked.Add(1)
			}
			if h.Type == protocol.TypeSendAck || h.Type == protocol.TypeError {
				select {
				case <-p.inflight:
				default:
				}
			}
		})
		if err != nil {
			return Result{}, err
		}
		var lastSeq uint64 // read by b's reader goroutine only
		p.b, bID, err = connectUser(ctx, o.addr(2*i+1), fmt.Sprintf("%sb%d", o.Prefix, i), func(h protocol.Header, body []byte) {
			if h.Type != protocol.TypePush || !live.Load() {
				return
			}
			var msg protocol.Message
			if protocol.DecodeBody(body, &msg) == nil {
				if msg.Seq <= lastSeq {
					disorder.Add(1)
				}
				lastSeq = msg.Seq
				m.count.Add(1)
				m.lat.Record(since(msg.Body))
			}
		})
		if err != nil {
			return Result{}, err
		}
		defer p.a.close()
		defer p.b.close()
		if err := befriend(ctx, p.a, p.b, aID, bID); err != nil {
			return Result{}, fmt.Errorf("befriend: %w", err)
		}
		pairs[i] = p
		p.to = bID
	}
	m = newMeter(o.Options, "p2p", "msgs/s")
	live.Store(true)
	deadline := time.Now().Add(o.Duration)
	var wg sync.WaitGroup
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.Pairs) / o.Rate)
	}
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				select {
				case p.inflight <- struct{}{}:
				case <-time.After(5 * time.Second):
					return // the server stopped answering
				}
				_, err := p.a.send(protocol.TypeSend, &protocol.Send{
					ClientMsgID: fmt.Sprintf("%d-%d", i, seq), To: p.to, Body: stamp(o.Size),
				}, len(p.inflight) == cap(p.inflight) || interval > 0)
				if err != nil {
					return
				}
				sent.Add(1)
			}
			_ = p.a.flush()
		}()
	}
	wg.Wait()
	// Let the pushes of the last sends arrive.
	for end := time.Now().Add(5 * time.Second); (acked.Load() < sent.Load() || m.count.Load() < sent.Load()) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	live.Store(false)
	res := m.finish(map[string]any{"pairs": o.Pairs, "window": o.Window, "rate": o.Rate, "size": o.Size})
	res.Figures = map[string]float64{"sent": float64(sent.Load()), "acked": float64(acked.Load()), "delivered": float64(res.Count), "out_of_order_or_duplicate": float64(disorder.Load())}
	return res, nil
}

// GroupOptions configure the group scenario.
type GroupOptions struct {
	Options
	Members int // all online
	Senders int // members that post
	Window  int // unacked sends per sender
	Size    int
}

// Group measures fan-out: Senders members post to one group of Members,
// all online; it counts deliveries (pushes received) per second and, per
// message, the time from its first delivery to its last.
func Group(ctx context.Context, o GroupOptions) (Result, error) {
	o.Window = max(o.Window, 1)
	o.Senders = min(max(o.Senders, 1), o.Members)
	var (
		m      *meter
		live   atomic.Bool
		spread sync.Map // msg id → *[2]int64 first, last delivery (unix ns)
		count  sync.Map // msg id → *atomic.Int64
	)
	conns := make([]*conn, o.Members)
	ids := make([]int64, o.Members)
	inflight := make([]chan struct{}, o.Senders)
	for i := range conns {
		var fl chan struct{}
		if i < o.Senders {
			fl = make(chan struct{}, o.Window)
			inflight[i] = fl
		}
		c, id, err := connectUser(ctx, o.addr(i), fmt.Sprintf("%sm%d", o.Prefix, i), func(h protocol.Header, body []byte) {
			switch h.Type {
			case protocol.TypeSendAck, protocol.TypeError:
				if fl != nil {
					select {
					case <-fl:
					default:
					}
				}
			case protocol.TypePush:
				if !live.Load() {
					return
				}
				var msg protocol.Message
				if protocol.DecodeBody(body, &msg) != nil {
					return
				}
				now := time.Now().UnixNano()
				m.count.Add(1)
				m.lat.Record(since(msg.Body))
				v, _ := spread.LoadOrStore(msg.MsgID, &[2]int64{now, now})
				span := v.(*[2]int64)
				atomicMax(&span[1], now)
				cv, _ := count.LoadOrStore(msg.MsgID, new(atomic.Int64))
				cv.(*atomic.Int64).Add(1)
			}
		})
		if err != nil {
			return Result{}, fmt.Errorf("login: %w", err)
		}
		defer c.close()
		ids[i], conns[i] = id, c
	}
	var g protocol.GroupInfo
	if err := conns[0].call(ctx, protocol.TypeGroupCreate, &protocol.GroupCreate{Name: o.Prefix + "group", Members: ids[1:]}, &g); err != nil {
		return Result{}, fmt.Errorf("create group: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // let the joined events pass
	m = newMeter(o.Options, "group", "deliveries/s")
	live.Store(true)
	deadline := time.Now().Add(o.Duration)
	var wg sync.WaitGroup
	for i := range o.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				select {
				case inflight[i] <- struct{}{}:
				case <-time.After(5 * time.Second):
					return
				}
				if _, err := conns[i].send(protocol.TypeSend, &protocol.Send{
					ClientMsgID: fmt.Sprintf("g%d-%d", i, seq), GroupID: g.GroupID, Body: stamp(o.Size),
				}, true); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // let the last fan-outs finish
	live.Store(false)
	res := m.finish(map[string]any{"members": o.Members, "senders": o.Senders, "window": o.Window, "size": o.Size})
	var spans []float64
	complete := 0
	spread.Range(func(k, v any) bool {
		s := v.(*[2]int64)
		spans = append(spans, float64(atomic.LoadInt64(&s[1])-atomic.LoadInt64(&s[0]))/1e6)
		if c, ok := count.Load(k); ok && c.(*atomic.Int64).Load() == int64(o.Members-1) {
			complete++
		}
		return true
	})
	sort.Float64s(spans)
	res.Figures = map[string]float64{"messages": float64(len(spans)), "fully_delivered": float64(complete)}
	if len(spans) > 0 {
		res.Figures["first_to_last_p50_ms"] = spans[len(spans)/2]
		res.Figures["first_to_last_p99_ms"] = spans[len(spans)*99/100]
		res.Figures["first_to_last_max_ms"] = spans[len(spans)-1]
	}
	return res, nil
}

func atomicMax(p *int64, v int64) {
	for {
		old := atomic.LoadInt64(p)
		if v <= old || atomic.CompareAndSwapInt64(p, old, v) {
			return
		}
	}
}
