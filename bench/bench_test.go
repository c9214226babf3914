package bench_test

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/bench"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// embedded starts the bench's own embedded server, logging to t.Log.
func embedded(t *testing.T) *bench.Embedded {
	t.Helper()
	e, err := bench.StartEmbedded(servertest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

func opts(e *bench.Embedded, prefix string) bench.Options {
	return bench.Options{Addr: e.Addr, Stats: e.Stats, Duration: time.Second, Prefix: prefix}
}

func near(got, want float64) bool { return math.Abs(got-want) <= want/100 }

func TestLatencyPercentiles(t *testing.T) {
	l := bench.NewLatency()
	for ms := 1; ms <= 1000; ms++ {
		l.Record(time.Duration(ms) * time.Millisecond)
	}
	p := l.Total()
	if p.Count != 1000 || !near(p.P50, 500) || !near(p.P99, 990) || !near(p.P999, 999) || !near(p.Max, 1000) {
		t.Fatalf("percentiles of 1..1000 ms: %+v", p)
	}
	// Out of range: below 1µs counts as 1µs, above 60s as 60s.
	l = bench.NewLatency()
	l.Record(0)
	l.Record(time.Hour)
	if p := l.Total(); p.Count != 2 || !near(p.Max, 60_000) {
		t.Fatalf("clamped: %+v", p)
	}
}

func TestMergeEncoded(t *testing.T) {
	low, high, all := bench.NewLatency(), bench.NewLatency(), bench.NewLatency()
	for ms := 1; ms <= 1000; ms++ {
		d := time.Duration(ms) * time.Millisecond
		all.Record(d)
		if ms <= 500 {
			low.Record(d)
		} else {
			high.Record(d)
		}
	}
	p, enc, err := bench.MergeEncoded(low.Encoded(), high.Encoded(), "")
	if err != nil {
		t.Fatal(err)
	}
	if p != all.Total() {
		t.Fatalf("merged %+v, whole %+v", p, all.Total())
	}
	if again, _, err := bench.MergeEncoded(enc); err != nil || again != p {
		t.Fatalf("re-decoded %+v %v", again, err)
	}
	if _, _, err := bench.MergeEncoded("not a histogram"); err == nil {
		t.Fatal("decoded garbage")
	}
}

func TestMergeResults(t *testing.T) {
	part := func(n int64, lat time.Duration, loginSecs float64) bench.Result {
		l := bench.NewLatency()
		for range n {
			l.Record(lat)
		}
		return bench.Result{Scenario: "conns", Unit: "connections", Count: n, Rate: float64(n) / loginSecs, Hist: l.Encoded(),
			Samples:  []bench.Sample{{T: 1, Rate: float64(n), Latency: bench.Percentiles{P99: lat.Seconds() * 1000}}},
			Figures:  map[string]float64{"logged_in": float64(n), "login_seconds": loginSecs, "login_p99_ms": loginSecs},
			Failures: map[string]int{"timeout": 1}}
	}
	r, err := bench.MergeResults([]bench.Result{part(10, time.Millisecond, 2), part(30, 3*time.Millisecond, 3)})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if r.Count != 40 || r.Rate != 15 || f["logged_in"] != 40 || f["login_seconds"] != 3 || f["login_p99_ms"] != 3 || r.Failures["timeout"] != 2 {
		t.Fatalf("merged %+v", r)
	}
	if r.Latency.Count != 40 || !near(r.Latency.P50, 3) || !near(r.Latency.Max, 3) {
		t.Fatalf("merged latency %+v", r.Latency)
	}
	if len(r.Samples) != 1 || r.Samples[0].Rate != 40 || r.Samples[0].Latency.P99 != 3 {
		t.Fatalf("merged samples %+v", r.Samples)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	r := &bench.Report{Started: "now", Results: []bench.Result{{Scenario: "p2p", Unit: "msgs/s", Count: 10, Rate: 5,
		Samples:  []bench.Sample{{T: 1, Rate: 4}, {T: 2, Rate: 6}},
		Server:   []bench.ServerSample{{T: 1, RSS: 10 << 20, Messages: 4, Pushes: 4}, {T: 2, RSS: 11 << 20, Messages: 10, Pushes: 10}},
		Failures: map[string]int{"send: BUSY": 2}}}, Ratios: map[string]float64{"x": 0.5}}
	if err := r.WriteJSON(dir + "/r.json"); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(dir + "/r.html"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ratio x: 0.50", "msgs/s", "p2p failures send: BUSY: 2"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table without %q:\n%s", want, b.String())
		}
	}
	page, err := os.ReadFile(dir + "/r.html")
	if err != nil || strings.Count(string(page), "<polyline") != 7 || !strings.Contains(string(page), "server RSS") {
		t.Fatalf("html without its charts (%v):\n%s", err, page)
	}
}

func TestP2PDeliversEveryMessageOnce(t *testing.T) {
	e := embedded(t)
	const pairs, each = 10, 50
	res, err := bench.P2P(context.Background(), bench.P2POptions{Options: opts(e, "p2p"), Pairs: pairs, Window: 4, Size: 32, Messages: each})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures
	if res.Count != pairs*each || f["sent"] != pairs*each || f["acked"] != pairs*each || f["out_of_order"] != 0 || f["duplicates"] != 0 || res.Failures != nil {
		t.Fatalf("p2p: delivered %d, figures %v, failures %v", res.Count, f, res.Failures)
	}
	if res.Latency.Count != res.Count || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
		t.Fatalf("latency %+v for %d messages", res.Latency, res.Count)
	}
}

func TestP2PAtRate(t *testing.T) {
	e := embedded(t)
	res, err := bench.P2P(context.Background(), bench.P2POptions{Options: opts(e, "rate"), Pairs: 2, Rate: 100, Messages: 20})
	if err != nil {
		t.Fatal(err)
	}
	// 40 messages at 100/s take about 0.4s.
	if res.Count != 40 || res.Seconds < 0.3 || res.Figures["out_of_order"] != 0 || res.Figures["duplicates"] != 0 {
		t.Fatalf("p2p at 100/s: %d delivered in %.2fs, figures %v", res.Count, res.Seconds, res.Figures)
	}
	// The generator's lateness is reported, and is part of the latency.
	lp50, lp99 := res.Figures["send_late_p50_ms"], res.Figures["send_late_p99_ms"]
	if _, ok := res.Figures["send_late_p99_ms"]; !ok || lp50 < 0 || lp99 < lp50 || lp99 > res.Latency.Max {
		t.Fatalf("send lateness p50 %v, p99 %v ms (latency max %v ms); figures %v", lp50, lp99, res.Latency.Max, res.Figures)
	}
	if w, ok := res.Figures["wake_late_p99_ms"]; !ok || w < 0 || w > res.Latency.Max {
		t.Fatalf("wake lateness p99 %v ms (latency max %v ms); figures %v", w, res.Latency.Max, res.Figures)
	}
}

func TestGroupDeliversToEveryMember(t *testing.T) {
	e := embedded(t)
	const members, senders, each = 20, 2, 25
	res, err := bench.Group(context.Background(), bench.GroupOptions{Options: opts(e, "grp"), Members: members, Senders: senders, Window: 4, Messages: each})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures
	msgs := float64(senders * each)
	if f["messages"] != msgs || f["acked"] != msgs || f["fully_delivered"] != msgs || f["short_delivered"] != 0 || f["over_delivered"] != 0 ||
		res.Count != senders*each*(members-1) || res.Failures != nil {
		t.Fatalf("group: %d deliveries, figures %v, failures %v", res.Count, f, res.Failures)
	}
	if f["first_to_last_max_ms"] < f["first_to_last_p50_ms"] || res.Latency.Count != res.Count {
		t.Fatalf("group spans %v, latency %+v", f, res.Latency)
	}
}

func TestGroupAtRate(t *testing.T) {
	e := embedded(t)
	res, err := bench.Group(context.Background(), bench.GroupOptions{Options: opts(e, "grate"), Members: 5, Senders: 2, Rate: 100, Messages: 20})
	if err != nil {
		t.Fatal(err)
	}
	// 40 messages at 100/s take about 0.4s.
	if res.Figures["fully_delivered"] != 40 || res.Count != 40*4 || res.Seconds < 0.3 {
		t.Fatalf("group at 100/s: %d deliveries in %.2fs, figures %v", res.Count, res.Seconds, res.Figures)
	}
}

func TestGroupsInParallel(t *testing.T) {
	e := embedded(t)
	res, err := bench.Group(context.Background(), bench.GroupOptions{Options: opts(e, "grps"), Groups: 3, Members: 5, Senders: 1, Messages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Figures["fully_delivered"] != 30 || res.Count != 3*10*4 {
		t.Fatalf("3 groups: %d deliveries, figures %v", res.Count, res.Figures)
	}
}

func TestConnsHoldsAndPings(t *testing.T) {
	e := embedded(t)
	// A ping unanswered within PingEvery is a failure: a -race build on a
	// busy machine needs more than 100ms now and then.
	o := bench.ConnsOptions{Options: opts(e, "con"), N: 20, Parallel: 8, PingEvery: 400 * time.Millisecond}
	o.Duration = 2 * time.Second
	res, err := bench.Conns(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// 20 connections pinged every 400ms for 2s: about 100 pings.
	if res.Count != 20 || res.Failures != nil || res.Latency.Count < 50 || res.Figures["server_conns"] != 20 {
		t.Fatalf("conns: %d logged in, failures %v, %d pings, figures %v", res.Count, res.Failures, res.Latency.Count, res.Figures)
	}
	if _, ok := res.Figures["server_bytes_per_conn"]; !ok {
		t.Fatalf("no memory per connection: %v", res.Figures)
	}
	// The same users again: they exist, so they log in.
	o.Duration = 100 * time.Millisecond
	if res, err := bench.Conns(context.Background(), o); err != nil || res.Count != 20 || res.Failures != nil {
		t.Fatalf("logins of existing users: %d, %v, %v", res.Count, res.Failures, err)
	}
}

func TestConnsCountsFailures(t *testing.T) {
	addr, err := bench.FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	res, err := bench.Conns(context.Background(), bench.ConnsOptions{Options: bench.Options{Addr: addr, Duration: 10 * time.Millisecond}, N: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 0 || res.Failures["network: connection refused"] != 3 {
		t.Fatalf("conns to a closed port: %d, %v", res.Count, res.Failures)
	}
}

func TestEchoBaseline(t *testing.T) {
	addr, err := bench.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	stop, err := bench.StartEcho(addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := bench.Echo(context.Background(), bench.P2POptions{Options: bench.Options{Addr: addr, Duration: 500 * time.Millisecond}, Pairs: 2, Window: 4, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count == 0 || res.Latency.Count != res.Count || res.Failures != nil {
		t.Fatalf("echo: %d round trips, latency %+v, failures %v", res.Count, res.Latency, res.Failures)
	}
}

// TestQuietReceiversStayConnected runs p2p and group for several times
// the server's idle limit (three heartbeats): receivers, which send
// nothing else, must keep their connections with pings.
func TestQuietReceiversStayConnected(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Heartbeat = 200 * time.Millisecond })
	o := bench.Options{Addr: srv.Addr(), Duration: time.Second, Prefix: "quiet"}
	res, err := bench.P2P(context.Background(), bench.P2POptions{Options: o, Pairs: 2, Rate: 10, Messages: 12})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 24 || res.Failures != nil {
		t.Fatalf("p2p over 2.4s with a 600ms idle limit: %d delivered, failures %v", res.Count, res.Failures)
	}
	o.Prefix = "quietgrp"
	o.Duration = 2 * time.Second
	res, err = bench.Group(context.Background(), bench.GroupOptions{Options: o, Members: 5, Senders: 1, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	msgs := res.Figures["messages"]
	if msgs == 0 || res.Figures["fully_delivered"] != msgs || res.Failures != nil {
		t.Fatalf("group over 2s with a 600ms idle limit: figures %v, failures %v", res.Figures, res.Failures)
	}
}

// TestConnsPastTheCap holds more connections than the server takes: the
// ones past its cap are counted by the kick's reason.
func TestConnsPastTheCap(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MaxConns = 5 })
	res, err := bench.Conns(context.Background(), bench.ConnsOptions{Options: bench.Options{Addr: srv.Addr(), Duration: 100 * time.Millisecond, Prefix: "cap"}, N: 8, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 5 || res.Failures["kicked: TOO_MANY_CONNECTIONS"] != 3 {
		t.Fatalf("8 connections to a server taking 5: %d held, failures %v", res.Count, res.Failures)
	}
}
