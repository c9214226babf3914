// Command parley-bench load-tests a Parley server and reports throughput
// and latency, with 1:1 delivery as a ratio of a raw echo baseline
// measured in the same run.
//
//	parley-bench [flags] [conns] [baseline] [p2p] [group] [cluster]
//
// Scenarios, run in the order given (default: conns baseline p2p group):
//
//	baseline  the bench's own length-prefixed echo server on gnet, in this
//	          process, driven with the p2p load: round trips per second
//	p2p       pairs exchange 1:1 messages flat out (or at --rate), then at
//	          half the flat-out rate; runs the baseline first unless it ran
//	          already or --baseline=false
//	group     --senders of each of --groups groups of --members, all
//	          online, post to their group
//	conns     --conns connections log in and are held with heartbeats;
//	          over --procs worker processes when one process's open-file
//	          limit is too small
//	cluster   p2p (flat out, then at half rate) and group with the
//	          connections spread over the --nodes of a cluster, each login
//	          following its redirect; every p2p pair spans two nodes
//	          (--members 0: p2p only)
//
// --embedded runs a server in this process on a temporary embedded store
// (no --addr needed); otherwise point --addr at a parleyd, and --metrics
// at its --metrics-listen for server-side figures. A live line on stderr
// each second, a table on stdout at the end; --json and --html keep the
// run, --from redraws a kept one. `parley-bench worker` is the worker
// process of conns over --procs, not for direct use. docs/benchmarks.md
// has the method and the standard suite.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/parleyim/parley/bench"
	"github.com/parleyim/parley/cmd/internal/version"
)

func main() {
	logging.SetDefaultLoggerAndFlusher(gnetLog{}, nil)
	var err error
	if version.Requested(os.Args[1:]) {
		fmt.Println(version.String("parley-bench"))
		return
	}
	if len(os.Args) > 1 && os.Args[1] == workerCmd {
		err = runWorker(os.Args[2:])
	} else {
		err = run(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(1)
	}
}

type flags struct {
	addr, nodes, metrics     string
	jsonOut, htmlOut, prefix string
	cpuProfile, from         string
	settle                   time.Duration
	embedded, baseline       bool
	duration                 time.Duration
	pairs, window, size      int
	text                     bool
	messages                 int
	rate                     float64
	groups, members, senders int
	groupWindow              int
	groupRate                float64
	conns, parallel, procs   int
	loops                    int
	connRate                 float64
	pingEvery                time.Duration
}

func (f *flags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "127.0.0.1:7070", "server address")
	fs.StringVar(&f.nodes, "nodes", "", "cluster: comma-separated node addresses")
	fs.StringVar(&f.metrics, "metrics", "", "base URL of parleyd's metrics endpoint (--metrics-listen), e.g. http://127.0.0.1:7071")
	fs.BoolVar(&f.embedded, "embedded", false, "run a server in this process on a temporary embedded store")
	fs.BoolVar(&f.baseline, "baseline", true, "p2p: measure the echo baseline first")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured period of each scenario")
	fs.IntVar(&f.pairs, "pairs", 50, "p2p: sender → receiver pairs")
	fs.IntVar(&f.window, "window", 16, "p2p: unacked sends per sender")
	fs.IntVar(&f.size, "size", 64, "message body bytes")
	fs.BoolVar(&f.text, "text", false, "p2p: bodies of words after the send time (the text index's real work), not zeros")
	fs.IntVar(&f.messages, "messages", 0, "p2p, group: messages per sender (0: as many as --duration allows)")
	fs.Float64Var(&f.rate, "rate", 0, "p2p: total sends per second (0: flat out, then half of that)")
	fs.IntVar(&f.groups, "groups", 1, "group: groups, each with its own members")
	fs.IntVar(&f.members, "members", 1000, "group: members of each group, all online (cluster: 0 runs p2p only)")
	fs.IntVar(&f.senders, "senders", 2, "group: members of each group that post")
	fs.IntVar(&f.groupWindow, "group-window", 4, "group: unacked sends per sender")
	fs.Float64Var(&f.groupRate, "group-rate", 0, "group: messages per second over all senders, each delivered to --members - 1 (0: flat out)")
	fs.IntVar(&f.conns, "conns", 2000, "conns: connections to hold")
	fs.IntVar(&f.parallel, "parallel", 64, "logins in flight")
	fs.IntVar(&f.procs, "procs", -1, "conns: worker processes holding the connections (0: this process; -1: as many as the open-file limit needs)")
	fs.IntVar(&f.loops, "loops", 2, "conns: event loops holding the connections in each process")
	fs.Float64Var(&f.connRate, "conn-rate", 0, "conns: new connections per second (0: as fast as --parallel allows)")
	fs.DurationVar(&f.pingEvery, "ping-every", 10*time.Second, "conns: heartbeat interval of each connection")
	fs.StringVar(&f.jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&f.htmlOut, "html", "", "write the report with charts as HTML to this file")
	fs.StringVar(&f.prefix, "prefix", "", "username prefix (default: unique per run)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write this process's CPU profile to this file")
	fs.StringVar(&f.from, "from", "", "run nothing: print the table of this JSON report (and write --html from it)")
	fs.DurationVar(&f.settle, "settle", 2*time.Second, "pause before each scenario, so the server is done with the one before")
}

func run(args []string) error {
	var f flags
	fs := flag.NewFlagSet("parley-bench", flag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.from != "" {
		rep, err := bench.ReadReport(f.from)
		if err != nil {
			return err
		}
		f.jsonOut = ""
		return writeReport(rep, f)
	}
	scenarios := fs.Args()
	if len(scenarios) == 0 {
		scenarios = []string{"conns", "baseline", "p2p", "group"}
	}
	for _, sc := range scenarios {
		switch sc {
		case "baseline", "p2p", "group", "conns", "p2p-noise", "group-noise", "conns-noise":
		case "cluster":
			if f.nodes == "" {
				return errors.New("cluster needs --nodes")
			}
		default:
			return fmt.Errorf("unknown scenario %q (baseline, p2p, group, conns, cluster; p2p, group and conns with -noise: encrypted)", sc)
		}
	}
	if f.prefix == "" {
		f.prefix = fmt.Sprintf("b%x_", time.Now().UnixNano()%(1<<32))
	}
	limit, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	opts := bench.Options{Addr: f.addr, Duration: f.duration, Progress: os.Stderr}
	if f.metrics != "" {
		opts.Stats = bench.MetricsURL(f.metrics)
	}
	if f.embedded {
		emb, err := bench.StartEmbedded(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return fmt.Errorf("embedded server: %w", err)
		}
		defer emb.Stop()
		opts.Addr, opts.Stats = emb.Addr, emb.Stats
	}
	host, _ := os.Hostname()
	rep := &bench.Report{Started: time.Now().UTC().Format(time.RFC3339), Host: host, Ratios: map[string]float64{}}
	echoRate := 0.0 // round trips/s of the baseline, once measured
	for i, sc := range scenarios {
		if i > 0 {
			pause(ctx, f.settle)
		}
		o := opts
		o.Prefix = f.prefix + sc + "_"
		if plain, ok := strings.CutSuffix(sc, "-noise"); ok {
			// The same scenario with Noise on every connection.
			o.Encrypt, o.Name = true, sc
			sc = plain
		}
		switch sc {
		case "baseline":
			if echoRate, err = baseline(ctx, f, o, rep); err != nil {
				return err
			}
		case "p2p":
			if echoRate == 0 && f.baseline {
				if echoRate, err = baseline(ctx, f, o, rep); err != nil {
					return err
				}
				pause(ctx, f.settle)
			}
			if err := p2p(ctx, f, o, echoRate, rep); err != nil {
				return err
			}
		case "group":
			res, err := bench.Group(ctx, groupOptions(f, o))
			if err != nil {
				return fmt.Errorf("group: %w", err)
			}
			rep.Results = append(rep.Results, res)
		case "conns":
			res, err := conns(ctx, f, o, limit)
			if err != nil {
				return fmt.Errorf("conns: %w", err)
			}
			if o.Name != "" {
				res.Scenario = o.Name // the workers' results carry the plain name
			}
			rep.Results = append(rep.Results, res)
		case "cluster":
			if err := cluster(ctx, f, o, rep); err != nil {
				return err
			}
		}
	}
	return writeReport(rep, f)
}

func writeReport(rep *bench.Report, f flags) error {
	if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	if f.jsonOut != "" {
		if err := rep.WriteJSON(f.jsonOut); err != nil {
			return err
		}
	}
	if f.htmlOut != "" {
		if err := rep.WriteHTML(f.htmlOut); err != nil {
			return err
		}
	}
	return nil
}

func p2pOptions(f flags, o bench.Options) bench.P2POptions {
	return bench.P2POptions{Options: o, Pairs: f.pairs, Window: f.window, Rate: f.rate, Size: f.size, Text: f.text, Messages: f.messages, Parallel: f.parallel}
}

func groupOptions(f flags, o bench.Options) bench.GroupOptions {
	return bench.GroupOptions{Options: o, Groups: f.groups, Members: f.members, Senders: f.senders, Window: f.groupWindow, Rate: f.groupRate,
		Size: f.size, Messages: f.messages, Parallel: f.parallel}
}

// baseline runs the echo server in this process, drives it with the p2p
// load pattern and returns its round trips per second.
func baseline(ctx context.Context, f flags, o bench.Options, rep *bench.Report) (float64, error) {
	addr, err := bench.FreeAddr()
	if err != nil {
		return 0, err
	}
	stop, err := bench.StartEcho(addr, 2)
	if err != nil {
		return 0, fmt.Errorf("echo server: %w", err)
	}
	o.Addr, o.Stats = addr, nil
	res, err := bench.Echo(ctx, p2pOptions(f, o))
	stop()
	if err != nil {
		return 0, fmt.Errorf("echo baseline: %w", err)
	}
	rep.Results = append(rep.Results, res)
	return res.Rate, nil
}

// p2p runs p2p flat out (or at --rate), then at half the flat-out rate,
// and records the ratio to the echo baseline.
func p2p(ctx context.Context, f flags, o bench.Options, echoRate float64, rep *bench.Report) error {
	full, err := bench.P2P(ctx, p2pOptions(f, o))
	if err != nil {
		return fmt.Errorf("p2p: %w", err)
	}
	rep.Results = append(rep.Results, full)
	if echoRate > 0 && !o.Encrypt {
		rep.Ratios["p2p delivered msgs/s ÷ echo round trips/s"] = full.Rate / echoRate
	}
	if o.Encrypt {
		for _, r := range rep.Results {
			if r.Scenario == "p2p" && r.Rate > 0 {
				rep.Ratios["p2p-noise delivered msgs/s ÷ p2p (plaintext, same run)"] = full.Rate / r.Rate
			}
		}
	}
	if f.rate != 0 || f.messages != 0 || full.Rate == 0 {
		return nil
	}
	pause(ctx, f.settle)
	half := p2pOptions(f, o)
	half.Prefix += "half_"
	half.Rate = full.Rate / 2
	half.Name = cmp.Or(o.Name, "p2p") + "-half"
	res, err := bench.P2P(ctx, half)
	if err != nil {
		return fmt.Errorf("p2p at half rate: %w", err)
	}
	rep.Results = append(rep.Results, res)
	return nil
}

// cluster runs p2p and group with the connections spread over the nodes.
func cluster(ctx context.Context, f flags, o bench.Options, rep *bench.Report) error {
	o.Addrs = strings.Split(f.nodes, ",")
	o.Name = "cluster-p2p"
	if err := p2p(ctx, f, o, 0, rep); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if f.members <= 0 {
		return nil // --members 0: p2p only
	}
	pause(ctx, f.settle)
	o.Prefix += "g_"
	o.Name = "cluster-group"
	res, err := bench.Group(ctx, groupOptions(f, o))
	if err != nil {
		return fmt.Errorf("cluster group: %w", err)
	}
	rep.Results = append(rep.Results, res)
	return nil
}

// conns holds the connections in this process, or over worker processes
// when the open-file limit of one process is the bound: each connection
// is a file here, and a second one in this process when the server is
// embedded.
func conns(ctx context.Context, f flags, o bench.Options, limit uint64) (bench.Result, error) {
	co := bench.ConnsOptions{Options: o, N: f.conns, Rate: f.connRate, Parallel: f.parallel, PingEvery: f.pingEvery, Loops: f.loops}
	procs := f.procs
	if procs < 0 {
		perProc := max(int(limit)-1024, 1)
		need := f.conns
		if f.embedded {
			need *= 2
		}
		if need > perProc {
			procs = (f.conns + perProc - 1) / perProc
		} else {
			procs = 0
		}
	}
	if procs == 0 {
		return bench.Conns(ctx, co)
	}
	fmt.Fprintf(os.Stderr, "conns: %d connections over %d worker processes\n", f.conns, procs)
	return connsOverProcs(ctx, co, procs)
}

// gnetLog takes gnet's package-level log: warnings and errors go to
// stderr, its info lines ("Starting gnet client ...") are dropped so as
// not to break the live line.
type gnetLog struct{}

func (gnetLog) Debugf(string, ...any)         {}
func (gnetLog) Infof(string, ...any)          {}
func (gnetLog) Warnf(format string, a ...any) { fmt.Fprintf(os.Stderr, "gnet: "+format+"\n", a...) }
func (gnetLog) Errorf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet: "+format+"\n", a...)
}
func (gnetLog) Fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet: "+format+"\n", a...)
	os.Exit(1)
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// raiseFileLimit raises the soft open-file limit to the hard one and
// returns it.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
