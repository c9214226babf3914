// Command parley-bench load-tests a Parley server and reports throughput
// and latency as ratios of a raw echo baseline measured in the same run.
//
//	parley-bench [flags] p2p group conns
//
// Scenarios:
//
//	p2p     pairs exchange 1:1 messages flat out, then at half that rate;
//	        the echo baseline runs first with the same load
//	group   senders post to one group of --members, all online
//	conns   --conns connections log in and are held with heartbeats
//	cluster p2p and group with connections spread over the --nodes of a
//	        cluster, each login following its redirect to the user's node
//
// --embedded runs a server in this process on a temporary embedded store
// (no --addr needed); otherwise point --addr at a parleyd, and --metrics
// at its --metrics-listen for server-side figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parleyim/parley/bench"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/sqlite"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(1)
	}
}

type flags struct {
	addr, metrics, jsonOut, htmlOut, prefix string
	nodes                                   string
	embedded                                bool
	duration                                time.Duration
	pairs, window, size                     int
	rate                                    float64
	members, senders                        int
	conns, parallel                         int
	connRate                                float64
	pingEvery                               time.Duration
}

func run(args []string) error {
	var f flags
	fs := flag.NewFlagSet("parley-bench", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:7070", "server address")
	fs.StringVar(&f.nodes, "nodes", "", "cluster: comma-separated node addresses")
	fs.StringVar(&f.metrics, "metrics", "", "base URL of parleyd's metrics endpoint, e.g. http://127.0.0.1:7071")
	fs.BoolVar(&f.embedded, "embedded", false, "run a server in this process on a temporary embedded store")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured period of each scenario")
	fs.IntVar(&f.pairs, "pairs", 50, "p2p: sender → receiver pairs")
	fs.IntVar(&f.window, "window", 16, "unacked sends per sender")
	fs.IntVar(&f.size, "size", 64, "message body bytes")
	fs.Float64Var(&f.rate, "rate", 0, "p2p: total sends per second (0: flat out, then half of that)")
	fs.IntVar(&f.members, "members", 1000, "group: members, all online")
	fs.IntVar(&f.senders, "senders", 2, "group: members that post")
	fs.IntVar(&f.conns, "conns", 2000, "conns: connections to hold")
	fs.IntVar(&f.parallel, "parallel", 64, "conns: logins in flight")
	fs.Float64Var(&f.connRate, "conn-rate", 0, "conns: new connections per second (0: as fast as --parallel allows)")
	fs.DurationVar(&f.pingEvery, "ping-every", 10*time.Second, "conns: heartbeat interval of each connection")
	fs.StringVar(&f.jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&f.htmlOut, "html", "", "write the report with charts as HTML to this file")
	fs.StringVar(&f.prefix, "prefix", "", "username prefix (default: unique per run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scenarios := fs.Args()
	if len(scenarios) == 0 {
		scenarios = []string{"p2p", "group", "conns"}
	}
	if f.prefix == "" {
		f.prefix = fmt.Sprintf("b%x_", time.Now().UnixNano()%(1<<32))
	}
	if lim, err := raiseFileLimit(); err == nil {
		fmt.Fprintf(os.Stderr, "open-file limit %d\n", lim)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if f.embedded {
		stop, addr, err := embedded()
		if err != nil {
			return err
		}
		defer stop()
		f.addr = addr
	}
	host, _ := os.Hostname()
	rep := &bench.Report{Started: time.Now().UTC().Format(time.RFC3339), Host: host, Ratios: map[string]float64{}}
	opts := bench.Options{Addr: f.addr, Metrics: f.metrics, Duration: f.duration, Progress: os.Stderr}
	for _, sc := range scenarios {
		opts.Prefix = f.prefix + sc + "_"
		switch sc {
		case "p2p":
			if err := p2p(ctx, f, opts, rep); err != nil {
				return err
			}
		case "group":
			res, err := bench.Group(ctx, bench.GroupOptions{Options: opts, Members: f.members, Senders: f.senders, Window: f.window, Size: f.size})
			if err != nil {
				return fmt.Errorf("group: %w", err)
			}
			rep.Results = append(rep.Results, res)
		case "conns":
			res, err := bench.Conns(ctx, bench.ConnsOptions{Options: opts, N: f.conns, Rate: f.connRate, Parallel: f.parallel, PingEvery: f.pingEvery})
			if err != nil {
				return fmt.Errorf("conns: %w", err)
			}
			rep.Results = append(rep.Results, res)
		case "cluster":
			if f.nodes == "" {
				return errors.New("cluster needs --nodes")
			}
			co := opts
			co.Addrs = strings.Split(f.nodes, ",")
			res, err := bench.P2P(ctx, bench.P2POptions{Options: co, Pairs: f.pairs, Window: f.window, Rate: f.rate, Size: f.size})
			if err != nil {
				return fmt.Errorf("cluster p2p: %w", err)
			}
			res.Scenario = "cluster-p2p"
			rep.Results = append(rep.Results, res)
			co.Prefix += "g_"
			res, err = bench.Group(ctx, bench.GroupOptions{Options: co, Members: f.members, Senders: f.senders, Window: f.window, Size: f.size})
			if err != nil {
				return fmt.Errorf("cluster group: %w", err)
			}
			res.Scenario = "cluster-group"
			rep.Results = append(rep.Results, res)
		default:
			return fmt.Errorf("unknown scenario %q (p2p, group, conns, cluster)", sc)
		}
	}
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

// p2p runs the echo baseline, then p2p flat out (or at --rate), then p2p
// at half the flat-out rate, and records the ratios.
func p2p(ctx context.Context, f flags, opts bench.Options, rep *bench.Report) error {
	echoAddr, err := freeAddr()
	if err != nil {
		return err
	}
	stop, err := bench.StartEcho(echoAddr, 2)
	if err != nil {
		return fmt.Errorf("echo server: %w", err)
	}
	eo := opts
	eo.Addr = echoAddr
	echo, err := bench.Echo(ctx, bench.P2POptions{Options: eo, Pairs: f.pairs, Window: f.window, Size: f.size})
	stop()
	if err != nil {
		return fmt.Errorf("echo baseline: %w", err)
	}
	rep.Results = append(rep.Results, echo)
	full, err := bench.P2P(ctx, bench.P2POptions{Options: opts, Pairs: f.pairs, Window: f.window, Rate: f.rate, Size: f.size})
	if err != nil {
		return fmt.Errorf("p2p: %w", err)
	}
	rep.Results = append(rep.Results, full)
	if echo.Rate > 0 {
		rep.Ratios["p2p delivered / echo round trips"] = full.Rate / echo.Rate
	}
	if f.rate == 0 && full.Rate > 0 {
		half := opts
		half.Prefix += "half_"
		res, err := bench.P2P(ctx, bench.P2POptions{Options: half, Pairs: f.pairs, Window: f.window, Rate: full.Rate / 2, Size: f.size})
		if err != nil {
			return fmt.Errorf("p2p at half rate: %w", err)
		}
		res.Scenario = "p2p-half"
		rep.Results = append(rep.Results, res)
	}
	return nil
}

// embedded starts a server in this process on a temporary embedded store,
// with cheap password hashing and no per-connection rate limit (the load
// would trip it) and returns its address.
func embedded() (stop func(), addr string, err error) {
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return nil, "", err
	}
	if addr, err = freeAddr(); err != nil {
		return nil, "", err
	}
	srv, err := server.New(server.Config{Addr: addr, BcryptCost: 4, RateLimit: -1}, func(hook storage.CommitHook) (storage.Store, error) {
		return sqlite.Open(sqlite.Config{Dir: dir, Hook: hook})
	})
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(); err != nil {
		return nil, "", err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		_ = os.RemoveAll(dir)
	}, addr, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, errors.Join(err)
	}
	return lim.Cur, nil
}
