package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/parleyim/parley/bench"
)

// A run of conns spread over processes: this process re-executes itself
// as `parley-bench worker` K times, each holding its share of the
// connections, and lines them up through their standard streams.
//
// A worker writes JSON lines (workerLine) to stdout: a sample each second,
// "ready" once its logins are done, and its result at the end. It reads
// lines from stdin: "hold" starts the heartbeats, "stop" (or the end of
// stdin) ends them. The parent reads the server's settled memory while
// every worker holds, so per-connection memory counts all of them.

const workerCmd = "worker"

type workerLine struct {
	Sample *bench.Sample `json:"sample,omitempty"`
	Ready  int           `json:"ready,omitempty"` // connections logged in
	Result *bench.Result `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// runWorker is the worker: conns for its share, driven by stdin.
func runWorker(args []string) error {
	fs := flag.NewFlagSet("parley-bench worker", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	prefix := fs.String("prefix", "", "username prefix")
	n := fs.Int("conns", 0, "connections")
	first := fs.Int("first", 0, "index of the first user")
	parallel := fs.Int("parallel", 64, "logins in flight")
	rate := fs.Float64("conn-rate", 0, "new connections per second")
	pingEvery := fs.Duration("ping-every", 10*time.Second, "heartbeat interval")
	loops := fs.Int("loops", 2, "event loops")
	encrypt := fs.Bool("encrypt", false, "Noise on every connection")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(l workerLine) {
		mu.Lock()
		_ = enc.Encode(l)
		mu.Unlock()
	}
	commands := make(chan string)
	go func() {
		defer close(commands)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			commands <- sc.Text()
		}
	}()
	ctx := context.Background()
	o := bench.ConnsOptions{
		Options: bench.Options{Addr: *addr, Prefix: *prefix, Encrypt: *encrypt, OnSample: func(s bench.Sample) { emit(workerLine{Sample: &s}) }},
		N:       *n, First: *first, Rate: *rate, Parallel: *parallel, PingEvery: *pingEvery, Loops: *loops,
	}
	h, err := bench.OpenConns(ctx, o)
	if err != nil {
		emit(workerLine{Error: err.Error()})
		return err
	}
	emit(workerLine{Ready: h.LoggedIn()})
	if cmd, ok := <-commands; ok && cmd == "hold" {
		hctx, cancel := context.WithCancel(ctx)
		go func() {
			for cmd := range commands {
				if cmd == "stop" {
					break
				}
			}
			cancel()
		}()
		h.Hold(hctx)
	}
	res := h.Close()
	emit(workerLine{Result: &res})
	return nil
}

// worker is the parent's handle on one worker process.
type worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan int
	res   chan workerLine // the result or an error
	mu    sync.Mutex
	last  bench.Sample // the latest sample
}

func startWorker(o bench.ConnsOptions, n, first int) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, workerCmd, "--addr", o.Addr, "--prefix", o.Prefix,
		"--conns", strconv.Itoa(n), "--first", strconv.Itoa(first), "--parallel", strconv.Itoa(o.Parallel),
		"--conn-rate", strconv.FormatFloat(o.Rate, 'f', -1, 64), "--ping-every", o.PingEvery.String(),
		"--loops", strconv.Itoa(o.Loops), "--encrypt="+strconv.FormatBool(o.Encrypt))
	cmd.Stderr = os.Stderr
	w := &worker{cmd: cmd, ready: make(chan int, 1), res: make(chan workerLine, 1)}
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var l workerLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				continue
			}
			switch {
			case l.Sample != nil:
				w.mu.Lock()
				w.last = *l.Sample
				w.mu.Unlock()
			case l.Result != nil || l.Error != "":
				w.res <- l
				return
			default:
				w.ready <- l.Ready
			}
		}
		w.res <- workerLine{Error: "worker exited without a result"}
	}()
	return w, nil
}

func (w *worker) send(cmd string) { _, _ = io.WriteString(w.stdin, cmd+"\n") }

// connsOverProcs runs conns over procs worker processes and merges their
// results, with the server's memory per connection read by this process
// while all of them hold their connections.
func connsOverProcs(ctx context.Context, o bench.ConnsOptions, procs int) (bench.Result, error) {
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 10 * time.Second
	}
	var idle bench.ServerSample
	if o.Stats != nil {
		var err error
		if idle, err = o.Stats(ctx, true); err != nil {
			return bench.Result{}, fmt.Errorf("server stats: %w", err)
		}
	}
	var workers []*worker
	defer func() {
		for _, w := range workers {
			_ = w.stdin.Close()
			_ = w.cmd.Wait()
		}
	}()
	wo := o
	wo.Parallel = max(o.Parallel/procs, 1)
	wo.Rate = o.Rate / float64(procs)
	for i := range procs {
		n := o.N / procs
		first := i * n
		if i == procs-1 {
			n = o.N - first
		}
		w, err := startWorker(wo, n, first)
		if err != nil {
			return bench.Result{}, err
		}
		workers = append(workers, w)
	}
	stopProgress := progress(o.Options, workers)
	defer stopProgress()
	loggedIn := 0
	for _, w := range workers {
		select {
		case n := <-w.ready:
			loggedIn += n
		case l := <-w.res:
			return bench.Result{}, fmt.Errorf("worker: %s", l.Error)
		case <-ctx.Done():
			return bench.Result{}, ctx.Err()
		}
	}
	for _, w := range workers {
		w.send("hold")
	}
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	var held bench.ServerSample
	var heldErr error
	if o.Stats != nil {
		held, heldErr = o.Stats(context.Background(), true)
	}
	var parts []bench.Result
	var errs []error
	for _, w := range workers {
		w.send("stop")
	}
	for _, w := range workers {
		l := <-w.res
		if l.Result == nil {
			errs = append(errs, errors.New(l.Error))
			continue
		}
		parts = append(parts, *l.Result)
	}
	stopProgress()
	if len(errs) > 0 {
		return bench.Result{}, fmt.Errorf("workers: %w", errors.Join(errs...))
	}
	res, err := bench.MergeResults(parts)
	if err != nil {
		return bench.Result{}, err
	}
	if res.Params == nil {
		res.Params = map[string]any{}
	}
	res.Params["procs"] = procs
	res.Params["n"] = o.N
	if o.Stats != nil && heldErr == nil {
		bench.MemoryFigures(&res, idle, held)
	}
	return res, nil
}

// progress prints the workers' summed rate each second on the live line
// until the returned function is called (which may be called twice).
func progress(o bench.Options, workers []*worker) func() {
	if o.Progress == nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintln(o.Progress)
				return
			case <-tick.C:
			}
			var rate, p99 float64
			for _, w := range workers {
				w.mu.Lock()
				rate += w.last.Rate
				p99 = max(p99, w.last.Latency.P99)
				w.mu.Unlock()
			}
			fmt.Fprintf(o.Progress, "\rconns  %4.0fs %9.0f logins, then pings/s over %d processes  p99 %7.2fms   ",
				time.Since(start).Seconds(), rate, len(workers), p99)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}
