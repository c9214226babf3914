package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleyim/parley/bench"
)

// TestMain lets the test binary stand in for parley-bench's workers: a
// run over processes re-executes os.Executable as `worker ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerCmd {
		if err := runWorker(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunEmbedded runs every scenario but cluster at tiny sizes against an
// embedded server, conns over two worker processes, and reads the JSON.
func TestRunEmbedded(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	err := run([]string{"--embedded", "--duration", "1s", "--pairs", "3", "--window", "2", "--members", "6", "--senders", "2",
		"--conns", "10", "--procs", "2", "--ping-every", "200ms", "--settle", "100ms", "--json", out, "--html", filepath.Join(dir, "r.html"),
		"baseline", "p2p", "group", "conns"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	byName := map[string]bench.Result{}
	for _, r := range rep.Results {
		byName[r.Scenario] = r
	}
	for _, name := range []string{"echo", "p2p", "p2p-half", "group", "conns"} {
		if byName[name].Count == 0 {
			t.Errorf("%s: nothing counted: %+v", name, byName[name])
		}
	}
	if c := byName["conns"]; c.Count != 10 || c.Failures != nil || c.Params["procs"] != 2.0 || c.Figures["server_conns"] < 10 {
		t.Errorf("conns over 2 processes: %d, failures %v, params %v, figures %v", c.Count, c.Failures, c.Params, c.Figures)
	}
	if p := byName["p2p"]; p.Figures["out_of_order"] != 0 || p.Figures["duplicates"] != 0 || p.Figures["delivered"] != p.Figures["acked"] {
		t.Errorf("p2p figures %v", p.Figures)
	}
	if _, ok := rep.Ratios["p2p delivered msgs/s ÷ echo round trips/s"]; !ok {
		t.Errorf("no ratio: %v", rep.Ratios)
	}
}
