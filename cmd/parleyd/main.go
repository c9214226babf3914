// Command parleyd runs a Parley server.
//
//	parleyd [flags]          serve (the default)
//	parleyd admin ban --user NAME --days N [--reason TEXT]
//	parleyd admin unban --user NAME
//	parleyd admin bans       list the bans in force
//	parleyd config print [flags]  the effective configuration, secrets masked
//	parleyd noise-key show|rotate [flags]  the server's Noise key fingerprint; a new key (takes effect at restart)
//	parleyd --version
//
// Every flag has an environment twin and a config file key: --data-dir is
// PARLEY_DATA_DIR and data_dir in the TOML file of --config (PARLEY_CONFIG).
// Flags win over the environment, the environment over the file, the file
// over the defaults.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/cmd/internal/version"
	"github.com/parleyim/parley/protocol/secure"
	"github.com/parleyim/parley/router"
	predis "github.com/parleyim/parley/router/redis"
	"github.com/parleyim/parley/router/rocketmq"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/mysql"
	"github.com/parleyim/parley/storage/pebble"
)

func main() {
	var err error
	switch {
	case version.Requested(os.Args[1:]):
		fmt.Println(version.String("parleyd"))
	case len(os.Args) > 1 && os.Args[1] == "admin":
		err = admin(os.Args[2:], os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "noise-key":
		err = noiseKeyCmd(os.Args[2:], os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "config":
		err = configCmd(os.Args[2:], os.Stdout)
	default:
		err = run(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parleyd:", err)
		os.Exit(1)
	}
}

var lookupEnv = os.LookupEnv

// storeOptions choose and configure the store; serve and admin share them.
type storeOptions struct {
	kind     string
	dataDir  string
	mysqlDSN string
	shards   int
	lanes    int
	interval time.Duration
}

func (so *storeOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&so.kind, "store", "pebble", "pebble (embedded, single node) or mysql (shared by a cluster)")
	fs.StringVar(&so.dataDir, "data-dir", "./data", "directory of the embedded store")
	fs.StringVar(&so.mysqlDSN, "mysql-dsn", "", "MySQL/MariaDB DSN for --store mysql, user:pass@tcp(host:3306)/db")
	fs.IntVar(&so.shards, "mysql-shards", 16, "message tables of a new MySQL database (fixed once created)")
	fs.IntVar(&so.lanes, "mysql-lanes", 1, "MySQL append transactions in flight at once (each conversation in one lane; more cost the database more CPU per message)")
	fs.DurationVar(&so.interval, "mysql-batch-interval", mysql.DefaultBatchInterval, "least time between the starts of two MySQL group commits of a lane (what comes meanwhile joins the next; a full batch goes at once; 0: none)")
}

// open opens the store; hook and stages may be nil.
func (so *storeOptions) open(hook storage.CommitHook, stages storage.StageObserver, log *slog.Logger) (storage.Store, error) {
	switch so.kind {
	case "pebble":
		// A data directory of the SQLite store of earlier versions is not
		// taken for an empty one.
		if _, err := os.Stat(filepath.Join(so.dataDir, "parley.db")); err == nil {
			return nil, fmt.Errorf("--data-dir %s holds a SQLite store (parley.db) of an earlier parleyd, which this one cannot read", so.dataDir)
		}
		return pebble.Open(pebble.Config{Dir: so.dataDir, Hook: hook, Stages: stages, Logger: log})
	case "mysql":
		if so.mysqlDSN == "" {
			return nil, errors.New("--store mysql needs --mysql-dsn (or PARLEY_MYSQL_DSN)")
		}
		return mysql.Open(mysql.Config{DSN: so.mysqlDSN, Shards: so.shards, Lanes: so.lanes, BatchInterval: cmp.Or(so.interval, -1), Hook: hook, Stages: stages, Logger: log})
	}
	return nil, fmt.Errorf("--store %q: want pebble or mysql", so.kind)
}

// describe is the store for the start-up log line.
func (so *storeOptions) describe() []any {
	if so.kind == "mysql" {
		return []any{"store", "mysql", "shards", so.shards, "lanes", so.lanes, "batch_interval", so.interval.String()}
	}
	return []any{"store", so.kind, "data_dir", so.dataDir}
}

type options struct {
	store      storeOptions
	files      fileOptions
	listen     string
	logLevel   string
	logFormat  string
	heartbeat  time.Duration
	maxConns   int
	workers    int
	rateLimit  float64
	maxMessage int
	recall     time.Duration
	minTimer   time.Duration
	bcryptCost int
	nodeID     int64
	dmPolicy   string
	redisAddr  string
	nodeName   string
	cluster    bool
	prefix     string
	advertise  string
	mqNamesrv  string
	mqTopic    string
	mqCompress int
	clusterTTL time.Duration
	metrics    string
	adminToken string
	maxGroup   int
	grace      time.Duration

	shutdownTimeout time.Duration
	perAddr         int
	perUser         int
	authRate        float64
	dirRate         float64
	hashWork        int
	hashQueue       int
	searches        int
	searchTimeout   time.Duration
	sendWindow      int
	requireEnc      bool
	trustedProxies  string
	keyOverlap      time.Duration
	rekeyFrames     int
}

// flagSet defines parleyd's settings on o. Each flag is also a
// PARLEY_* variable and a key of the config file (config.go).
func flagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.String("config", "", "TOML config file (PARLEY_CONFIG); keys are the flag names with _ for -")
	fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7070", "TCP address to serve clients on")
	o.store.register(fs)
	o.files.register(fs)
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&o.heartbeat, "heartbeat", 30*time.Second, "heartbeat interval told to clients; 3 silent intervals close a connection")
	fs.IntVar(&o.maxConns, "max-conns", 0, "connection cap (0: open-file limit minus a reserve)")
	fs.IntVar(&o.workers, "workers", 256, "handler goroutines")
	fs.Float64Var(&o.rateLimit, "rate-limit", 200, "frames per second per connection (negative: off)")
	fs.IntVar(&o.perAddr, "max-conns-per-addr", 256, "connections per remote address, IPv6 by /64 (negative: no cap)")
	fs.IntVar(&o.perUser, "max-conns-per-user", 32, "logged-in connections per account (negative: no cap)")
	fs.IntVar(&o.hashWork, "hash-workers", 0, "password hashes at once (0: half the CPUs)")
	fs.IntVar(&o.hashQueue, "hash-queue", 32, "password hashes waiting; more are answered BUSY")
	fs.IntVar(&o.searches, "search-concurrency", 0, "message searches at once, one per user; more are answered BUSY (0: half the CPUs)")
	fs.DurationVar(&o.searchTimeout, "search-timeout", 2*time.Second, "the longest one message search may run")
	fs.IntVar(&o.sendWindow, "send-window", 256, "Sends per connection stored but not yet answered (told to clients as LoginOK.send_window); more are answered BUSY")
	fs.Float64Var(&o.authRate, "auth-rate", 1, "registrations and password logins per second per address (negative: off, and the server-wide limit too)")
	fs.Float64Var(&o.dirRate, "dir-rate", 2, "open-group searches and joins per second per address, a burst of 10 times it (negative: off, and the server-wide limit too)")
	fs.IntVar(&o.maxMessage, "max-message", 16<<10, "largest message body in bytes")
	fs.DurationVar(&o.recall, "recall-window", 2*time.Minute, "how long after sending a user may recall a message (a group's owner: always)")
	fs.DurationVar(&o.minTimer, "min-timer", 5*time.Second, "the shortest disappearing-messages timer a conversation may get (whole seconds, at least 1s)")
	fs.IntVar(&o.bcryptCost, "bcrypt-cost", 10, "password hashing cost (4-31)")
	fs.Int64Var(&o.nodeID, "node-id", 1, "snowflake node id, 0-1023")
	fs.StringVar(&o.redisAddr, "redis-addr", "", "Redis host:port for the presence directory of a cluster (empty: in memory)")
	fs.StringVar(&o.nodeName, "node-name", "", "this node's name in the cluster and presence directory (default: --advertise)")
	fs.BoolVar(&o.cluster, "cluster", false, "join a cluster: needs --redis-addr, --mq-namesrv and --store mysql")
	fs.StringVar(&o.prefix, "cluster-prefix", "parley", "Redis key prefix of the cluster")
	fs.StringVar(&o.advertise, "advertise", "", "the address clients are redirected to (default: --listen)")
	fs.StringVar(&o.mqNamesrv, "mq-namesrv", "", "RocketMQ name server host:port (cluster)")
	fs.StringVar(&o.mqTopic, "mq-topic", "PARLEY_NODES", "RocketMQ topic between the nodes (cluster)")
	fs.IntVar(&o.mqCompress, "mq-compress-over", 0, "send bus batches of at least this many bytes compressed (zlib; cluster); 0: never")
	fs.StringVar(&o.metrics, "metrics-listen", "", "address of the admin endpoint (GET /metrics, /healthz, /readyz, /debug/pprof/, /admin/); empty: off")
	fs.StringVar(&o.adminToken, "admin-token", "", "the bearer token of the admin API on the admin endpoint (parleyd admin --server); empty: the API is off")
	fs.DurationVar(&o.clusterTTL, "cluster-ttl", 6*time.Second, "a node silent this long is dead and its users move")
	fs.StringVar(&o.dmPolicy, "dm-policy", "friends", "who may message whom 1:1: friends or anyone")
	fs.IntVar(&o.maxGroup, "max-group-size", 2000, "most members of a group, the owner included")
	fs.DurationVar(&o.grace, "presence-grace", 5*time.Second, "how long a user may be gone before friends see it offline")
	fs.BoolVar(&o.requireEnc, "require-encryption", false, "refuse connections that do not start with a Noise handshake (or TLS at a trusted proxy)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated addresses or CIDRs of load balancers that send a PROXY v2 header (HAProxy send-proxy-v2); empty: none")
	fs.DurationVar(&o.keyOverlap, "noise-key-overlap", 30*24*time.Hour, "how long a rotated-out Noise key is still accepted from clients that pinned it")
	fs.IntVar(&o.rekeyFrames, "noise-rekey-frames", 1<<20, "frames sealed under one key before the server rekeys (also after 1 GiB)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "on SIGTERM: the longest the drain may take before parleyd exits anyway")
	return fs
}

// loadOptions reads the settings from args, the environment and the config
// file, and validates them.
func loadOptions(args []string, lookup func(string) (string, bool)) (options, *flag.FlagSet, configSource, error) {
	var o options
	fs := flagSet(&o)
	src, err := configure(fs, args, lookup, false)
	if err != nil {
		return o, fs, nil, err
	}
	if len(fs.Args()) > 0 {
		return o, fs, nil, fmt.Errorf("unexpected argument %q (parleyd -h lists the flags)", fs.Arg(0))
	}
	return o, fs, src, o.validate()
}

func run(args []string) error {
	o, _, _, err := loadOptions(args, lookupEnv)
	if err != nil {
		return err
	}
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	return serve(o, log)
}

// configCmd is `parleyd config print [flags]`: the effective configuration,
// secrets masked, as a config file.
func configCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "print" {
		return errors.New("usage: parleyd config print [flags]: the effective configuration, as a TOML file")
	}
	o, fs, src, err := loadOptions(args[1:], lookupEnv)
	if src == nil {
		return err
	}
	if perr := printConfig(stdout, fs, src); perr != nil {
		return perr
	}
	_ = o
	return err // printed, but still invalid
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// joinCluster checks the cluster flags, joins the cluster in Redis and
// starts the RocketMQ bus.
func joinCluster(o options, m *server.Metrics, log *slog.Logger) (*router.Cluster, *rocketmq.Bus, error) {
	switch {
	case o.redisAddr == "":
		return nil, nil, errors.New("--cluster needs --redis-addr")
	case o.mqNamesrv == "":
		return nil, nil, errors.New("--cluster needs --mq-namesrv")
	case o.store.kind != "mysql":
		return nil, nil, errors.New("--cluster needs --store mysql: the nodes share one database")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := router.JoinCluster(ctx, router.ClusterConfig{
		Store:  predis.NewMembership(redis.NewClient(&redis.Options{Addr: o.redisAddr}), o.prefix),
		Name:   o.nodeName,
		Addr:   o.advertise,
		TTL:    o.clusterTTL,
		Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	bus, err := rocketmq.New(rocketmq.Config{
		NameServers: []string{o.mqNamesrv}, Topic: o.mqTopic, Node: o.nodeName, Logger: log,
		ConsumeLag: m.ObserveBusConsumeLag, CompressOver: o.mqCompress,
	})
	if err != nil {
		_ = cluster.Leave(ctx)
		return nil, nil, err
	}
	if m != nil {
		m.Gauge(`parley_bus_consumer_restarts_total`, func() float64 { return float64(bus.Restarts()) })
		m.Gauge(`parley_bus_compressed_total`, func() float64 { return float64(bus.Compressed()) })
	}
	log.Info("joined the cluster", "node", o.nodeName, "snowflake", cluster.Self().Snowflake)
	return cluster, bus, nil
}

func serve(o options, log *slog.Logger) error {
	limit, err := server.RaiseOpenFileLimit()
	if err != nil {
		log.Warn("cannot raise the open-file limit", "err", err)
	}
	if o.advertise == "" {
		o.advertise = o.listen
	}
	if o.nodeName == "" {
		o.nodeName = o.advertise
	}
	var metrics *server.Metrics
	var stages storage.StageObserver
	if o.metrics != "" {
		metrics = server.NewMetrics()
		stages = metrics.ObserveStoreStage
	}
	// What this node can check alone comes before it joins a cluster: a
	// node that cannot serve must not take slots in the table (they would
	// stay its own until its TTL runs out).
	proxies, err := parsePrefixes(o.trustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	keys, created, err := server.LoadNoiseKeys(o.store.dataDir, o.keyOverlap, time.Now())
	if err != nil {
		return fmt.Errorf("noise key: %w", err)
	}
	if created {
		log.Warn("made a new Noise static key; clients pin it on first use", "file", filepath.Join(o.store.dataDir, server.NoiseKeyFile))
	}
	log.Info("noise static key", "fingerprint", secure.Fingerprint(keys.Static.Public), "retired_in_overlap", len(keys.Retired), "require_encryption", o.requireEnc)
	blobs, err := o.files.open()
	if err != nil {
		return err
	}
	if blobs != nil {
		defer blobs.Close()
	}
	limits := o.files.limits
	limits.SpoolDir = o.files.spoolDir()
	var (
		dir     router.Presence
		cluster server.Cluster // an interface: left nil on a single node, not a nil *router.Cluster
		bus     router.Bus
		ready   map[string]func(context.Context) error
	)
	if o.redisAddr != "" {
		dir = predis.NewPresence(redis.NewClient(&redis.Options{Addr: o.redisAddr}), o.prefix)
	}
	// leave takes the node out of the cluster when it fails before its
	// server runs (once it runs, its Stop leaves).
	leave := func() {}
	if o.cluster {
		c, b, err := joinCluster(o, metrics, log)
		if err != nil {
			return err
		}
		cluster, bus = c, b
		ready = map[string]func(context.Context) error{"broker": b.Ping}
		o.nodeID = c.Self().Snowflake
		leave = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Leave(ctx)
			_ = b.Close()
		}
	}
	srv, err := server.New(server.Config{
		Metrics:           metrics,
		Presence:          dir,
		Cluster:           cluster,
		Bus:               bus,
		ReadyChecks:       ready,
		NodeName:          o.nodeName,
		Addr:              o.listen,
		MaxConns:          o.maxConns,
		Heartbeat:         o.heartbeat,
		Workers:           o.workers,
		RateLimit:         o.rateLimit,
		MaxConnsPerAddr:   o.perAddr,
		MaxConnsPerUser:   o.perUser,
		AuthRatePerAddr:   o.authRate,
		AuthRate:          min(o.authRate, 0), // negative: both limits off
		DirRatePerAddr:    o.dirRate,
		DirBurstPerAddr:   int(10 * o.dirRate),
		DirRate:           min(o.dirRate, 0), // negative: both limits off
		HashWorkers:       o.hashWork,
		HashQueue:         o.hashQueue,
		SearchConcurrency: o.searches,
		SearchTimeout:     o.searchTimeout,
		MaxPendingSends:   o.sendWindow,
		MaxMessage:        o.maxMessage,
		RecallWindow:      o.recall,
		MinTimer:          o.minTimer,
		BcryptCost:        o.bcryptCost,
		NodeID:            o.nodeID,
		DMPolicy:          server.DMPolicy(o.dmPolicy),
		MaxGroupSize:      o.maxGroup,
		PresenceGrace:     o.grace,
		Logger:            log,
		NoiseKeys:         keys,
		RequireEncryption: o.requireEnc,
		TrustedProxies:    proxies,
		RekeyFrames:       o.rekeyFrames,
		FilesAddr:         o.files.listen,
		FilesURL:          o.files.url,
		Blobs:             blobs,
		Files:             limits,
		FilesGC:           o.files.gcConfig(),
	}, func(hook storage.CommitHook) (storage.Store, error) {
		return o.store.open(hook, stages, log)
	})
	if err != nil {
		leave()
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Stop(context.Background())
		return err
	}
	log.Info("parleyd serving", append([]any{"listen", srv.Addr()}, append(o.store.describe(),
		"max_conns", srv.MaxConns(), "open_file_limit", strconv.Itoa(limit))...)...)
	if o.metrics != "" {
		stopMetrics, err := serveMetrics(o.metrics, metrics, srv, o.adminToken, log)
		if err != nil {
			_ = srv.Stop(context.Background())
			return fmt.Errorf("metrics endpoint: %w", err)
		}
		defer stopMetrics()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case got := <-sig:
		log.Info("shutting down", "signal", got.String())
	case <-srv.Done():
		// The engine stopped on its own: this node serves nobody. Exit
		// non-zero so that a supervisor restarts it.
		_ = srv.Stop(context.Background())
		return fmt.Errorf("serving stopped: %w", srv.Err())
	}
	return drain(srv, o.shutdownTimeout, log)
}

// drain stops the server: no more connections, every client kicked
// SHUTDOWN with a retry hint, the workers' frames finished, the store
// flushed. It returns within timeout (and a second to spare) even if
// something hangs, with an error then.
func drain(srv *server.Server, timeout time.Duration, log *slog.Logger) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(ctx) }()
	select {
	case err := <-stopped:
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown took longer than --shutdown-timeout %v: %w", timeout, err)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("shutdown: %w", err)
		}
	case <-time.After(timeout + time.Second):
		return fmt.Errorf("shutdown did not finish within --shutdown-timeout %v; exiting anyway", timeout)
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// noiseKeyCmd is `parleyd noise-key show|rotate [flags]`: the fingerprint
// of the server's Noise static key (made if there is none), or a new key
// with the current one retired for --noise-key-overlap.
func noiseKeyCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "rotate") {
		return errors.New("usage: parleyd noise-key show|rotate [--data-dir DIR]")
	}
	o, _, _, err := loadOptions(args[1:], lookupEnv)
	if err != nil {
		return err
	}
	now := time.Now()
	var keys *server.NoiseKeys
	if args[0] == "rotate" {
		keys, err = server.RotateNoiseKey(o.store.dataDir, o.keyOverlap, now)
	} else {
		keys, _, err = server.LoadNoiseKeys(o.store.dataDir, o.keyOverlap, now)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "static  %s  %x\n", secure.Fingerprint(keys.Static.Public), keys.Static.Public)
	for _, k := range keys.Retired {
		fmt.Fprintf(stdout, "retired %s  %x (accepted until the overlap ends)\n", secure.Fingerprint(k.Public), k.Public)
	}
	if args[0] == "rotate" {
		fmt.Fprintln(stdout, "restart parleyd to present the new key")
	}
	return nil
}

// parsePrefixes reads a comma-separated list of addresses and CIDRs.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
