package bench_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/bench"
	"github.com/parleyim/parley/server/servertest"
)

func opts(addr, prefix string) bench.Options {
	return bench.Options{Addr: addr, Duration: time.Second, Prefix: prefix}
}

func TestP2PDeliversEveryMessageOnce(t *testing.T) {
	srv := servertest.Start(t, nil)
	res, err := bench.P2P(context.Background(), bench.P2POptions{Options: opts(srv.Addr(), "p2p"), Pairs: 3, Window: 4, Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures
	if res.Count == 0 || f["sent"] != float64(res.Count) || f["acked"] != float64(res.Count) || f["out_of_order_or_duplicate"] != 0 {
		t.Fatalf("p2p: delivered %d, figures %v", res.Count, f)
	}
	if res.Latency.Count != res.Count || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
		t.Fatalf("latency %+v for %d messages", res.Latency, res.Count)
	}
}

func TestGroupFanOut(t *testing.T) {
	srv := servertest.Start(t, nil)
	res, err := bench.Group(context.Background(), bench.GroupOptions{Options: opts(srv.Addr(), "grp"), Members: 12, Senders: 2, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	msgs := res.Figures["messages"]
	if msgs == 0 || res.Figures["fully_delivered"] != msgs || float64(res.Count) != msgs*11 {
		t.Fatalf("group: %d deliveries, figures %v", res.Count, res.Figures)
	}
}

func TestConnsHoldsAndPings(t *testing.T) {
	srv := servertest.Start(t, nil)
	res, err := bench.Conns(context.Background(), bench.ConnsOptions{Options: opts(srv.Addr(), "con"), N: 20, PingEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 20 || len(res.Failures) != 0 || res.Latency.Count == 0 {
		t.Fatalf("conns: %d logged in, failures %v, %d pings", res.Count, res.Failures, res.Latency.Count)
	}
}

func TestEchoBaseline(t *testing.T) {
	addr := servertest.FreeAddr(t)
	stop, err := bench.StartEcho(addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := bench.Echo(context.Background(), bench.P2POptions{Options: opts(addr, "echo"), Pairs: 2, Window: 4, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count == 0 || res.Latency.Count != res.Count || len(res.Failures) != 0 {
		t.Fatalf("echo: %d round trips, latency %+v, failures %v", res.Count, res.Latency, res.Failures)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	r := &bench.Report{Started: "now", Results: []bench.Result{{Scenario: "p2p", Unit: "msgs/s", Count: 10, Rate: 5,
		Samples: []bench.Sample{{T: 1, Rate: 4}, {T: 2, Rate: 6}}}}, Ratios: map[string]float64{"x": 0.5}}
	if err := r.WriteJSON(dir + "/r.json"); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(dir + "/r.html"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "ratio x: 0.50") || !strings.Contains(b.String(), "msgs/s") {
		t.Fatalf("table %q %v", b.String(), err)
	}
	page, err := os.ReadFile(dir + "/r.html")
	if err != nil || !strings.Contains(string(page), "<polyline") {
		t.Fatalf("html without a chart: %v", err)
	}
}
