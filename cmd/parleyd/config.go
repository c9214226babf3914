package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/v2"
	gotoml "github.com/pelletier/go-toml/v2"
)

// One configuration, four sources. Every setting is a flag; the flag's name
// also names it in the environment and in the config file:
//
//	--data-dir /var/lib/parley      flag
//	PARLEY_DATA_DIR=/var/lib/parley environment
//	data_dir = "/var/lib/parley"    config file (TOML, --config or PARLEY_CONFIG)
//
// Precedence: flags > environment > file > defaults. A setting therefore
// needs nothing but its flag: add a field to options and a line to
// flagSet, and the environment, the file and `parleyd config print` know it.

// notSettings are flags that are not settings: not read from the
// environment or the file, not printed.
var notSettings = map[string]bool{"config": true, "version": true}

// fileKey is a flag's key in the config file.
func fileKey(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// envName is a flag's environment variable.
func envName(flagName string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// mapProvider is a koanf.Provider of a flat map.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error)    { return nil, errors.New("mapProvider: no bytes") }
func (m mapProvider) Read() (map[string]any, error) { return map[string]any(m), nil }

// bytesProvider is a koanf.Provider of a file's bytes, read already (no
// file watcher, and its dependencies, needed).
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }
func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("bytesProvider: needs a parser")
}

// configSource says where each setting's value came from, for errors and
// for `parleyd config print`.
type configSource map[string]string

// configure parses args into fs and layers the config file and the
// environment under them. The file is --config, or PARLEY_CONFIG. With
// lenient, keys of the file that are not flags of fs are ignored (the admin
// commands take a subset of the server's settings); otherwise they are an
// error. The flags named in commandOnly are not settings either.
func configure(fs *flag.FlagSet, args []string, lookup func(string) (string, bool), lenient bool, commandOnly ...string) (configSource, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	isSetting := func(name string) bool { return !notSettings[name] && !slices.Contains(commandOnly, name) }
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var layers []struct {
		name   string
		values map[string]string
	}
	add := func(name string, values map[string]string) {
		layers = append(layers, struct {
			name   string
			values map[string]string
		}{name, values})
	}

	// The file.
	path := ""
	if f := fs.Lookup("config"); f != nil {
		path = f.Value.String()
		if path == "" && !given["config"] {
			path, _ = lookup("PARLEY_CONFIG")
		}
	}
	if path != "" {
		values, err := readConfigFile(fs, path, lenient, isSetting)
		if err != nil {
			return nil, err
		}
		add("file "+path, values)
	}
	// The environment.
	env := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if !isSetting(f.Name) {
			return
		}
		if v, ok := lookup(envName(f.Name)); ok {
			env[f.Name] = v
		}
	})
	add("env", env)

	// koanf merges the layers, later over earlier; the flags given on the
	// command line are already set and stay.
	k := koanf.New("\x00") // flag names hold no delimiter: keep them flat
	src := configSource{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = "default" })
	for _, l := range layers {
		m := mapProvider{}
		for name, v := range l.values {
			if !given[name] {
				m[name] = v
				src[name] = l.name
			}
		}
		if err := k.Load(m, nil); err != nil {
			return nil, err
		}
	}
	for _, name := range k.Keys() {
		v := k.String(name)
		if err := setFlag(fs.Lookup(name), v); err != nil {
			if s := src[name]; s == "env" {
				return nil, fmt.Errorf("%s=%q: %w", envName(name), v, err)
			} else {
				return nil, fmt.Errorf("%s: %s = %q: %w", s, fileKey(name), v, err)
			}
		}
	}
	for name := range given {
		src[name] = "flag"
	}
	return src, nil
}

// setFlag sets a flag, saying what its value should look like when it
// cannot.
func setFlag(f *flag.Flag, v string) error {
	err := f.Value.Set(v)
	if err == nil {
		return nil
	}
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			return errors.New("want a duration such as 30s, 1m30s or 500ms")
		case bool:
			return errors.New("want true or false")
		case int, int64, uint, uint64:
			return errors.New("want a whole number")
		case float64:
			return errors.New("want a number")
		}
	}
	return err
}

// readConfigFile reads a TOML config file into flag values, by flag name.
func readConfigFile(fs *flag.FlagSet, path string, lenient bool, isSetting func(string) bool) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	k := koanf.New(".")
	if err := k.Load(bytesProvider(data), toml.Parser()); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	values := map[string]string{}
	for _, key := range k.Keys() {
		name := strings.ReplaceAll(key, "_", "-")
		if f := fs.Lookup(name); f == nil || !isSetting(name) {
			if lenient && !strings.Contains(key, ".") {
				continue
			}
			return nil, fmt.Errorf("config file %s: unknown key %q (the keys are the flag names with _ for -, at the top level: data_dir for --data-dir)", path, key)
		}
		switch v := k.Get(key).(type) {
		case string:
			values[name] = v
		case bool, int64, float64:
			values[name] = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("config file %s: %s: want a string, number or boolean, not %T", path, key, v)
		}
	}
	return values, nil
}

// validate checks the settings together, before anything is opened, and
// reports every problem found.
func (o *options) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	addr := func(flagName, v string, optional bool) {
		if v == "" && optional {
			return
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			bad("--%s %q: want host:port (%v)", flagName, v, err)
			return
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad("--%s %q: port %q is not 1-65535", flagName, v, port)
		}
		_ = host
	}
	addr("listen", o.listen, false)
	addr("metrics-listen", o.metrics, true)
	addr("files-listen", o.files.listen, true)
	o.files.validate(o.cluster, bad)
	addr("advertise", o.advertise, true)
	addr("redis-addr", o.redisAddr, true)
	addr("mq-namesrv", o.mqNamesrv, true)
	if _, err := newLogger(o.logLevel, o.logFormat); err != nil {
		bad("%v", err)
	}
	positive := func(flagName string, d time.Duration) {
		if d <= 0 {
			bad("--%s %v: want a duration above 0, like 30s", flagName, d)
		}
	}
	positive("heartbeat", o.heartbeat)
	positive("presence-grace", o.grace)
	positive("cluster-ttl", o.clusterTTL)
	positive("shutdown-timeout", o.shutdownTimeout)
	switch {
	case o.maxConns < 0:
		bad("--max-conns %d: want 0 (from the open-file limit) or more", o.maxConns)
	}
	if o.workers < 1 {
		bad("--workers %d: want 1 or more", o.workers)
	}
	if o.sendWindow < 1 || o.sendWindow > 1<<16 {
		bad("--send-window %d: want 1-%d", o.sendWindow, 1<<16)
	}
	if o.minTimer < time.Second || o.minTimer%time.Second != 0 {
		bad("--min-timer %v: want whole seconds, at least 1s", o.minTimer)
	}
	if o.recall <= 0 {
		bad("--recall-window %v: want a positive duration", o.recall)
	}
	if o.maxMessage < 1 || o.maxMessage > 63<<10 {
		bad("--max-message %d: want 1-%d bytes (a frame is at most 64 KiB)", o.maxMessage, 63<<10)
	}
	if o.bcryptCost < 4 || o.bcryptCost > 31 {
		bad("--bcrypt-cost %d: want 4-31", o.bcryptCost)
	}
	if o.nodeID < 0 || o.nodeID > 1023 {
		bad("--node-id %d: want 0-1023", o.nodeID)
	}
	if o.dmPolicy != "friends" && o.dmPolicy != "anyone" {
		bad("--dm-policy %q: want friends or anyone", o.dmPolicy)
	}
	if o.maxGroup < 2 {
		bad("--max-group-size %d: want 2 or more", o.maxGroup)
	}
	if o.store.kind == "mysql" && o.store.mysqlDSN == "" {
		bad("--store mysql needs --mysql-dsn (or PARLEY_MYSQL_DSN, or mysql_dsn in the config file)")
	}
	if o.store.shards < 1 || o.store.shards > 256 {
		bad("--mysql-shards %d: want 1-256", o.store.shards)
	}
	if o.store.interval < 0 || o.store.interval > time.Second {
		bad("--mysql-batch-interval %v: want 0-1s", o.store.interval)
	}
	if o.mqCompress < 0 {
		bad("--mq-compress-over %d: want 0 (never) or a size in bytes", o.mqCompress)
	}
	if o.cluster {
		if o.redisAddr == "" {
			bad("--cluster needs --redis-addr")
		}
		if o.mqNamesrv == "" {
			bad("--cluster needs --mq-namesrv")
		}
		if o.store.kind != "mysql" {
			bad("--cluster needs --store mysql: the nodes share one database")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, e := range errs {
		b.WriteString("\n  - " + e.Error())
	}
	return errors.New(b.String())
}

// printConfig writes the effective configuration as a TOML config file,
// each setting with where its value came from; secrets are masked.
func printConfig(w io.Writer, fs *flag.FlagSet, src configSource) error {
	fmt.Fprintln(w, "# parleyd: the effective configuration (flags > env PARLEY_* > file > defaults)")
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !notSettings[f.Name] {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	for _, name := range names {
		f := fs.Lookup(name)
		var v any = f.Value.String()
		if g, ok := f.Value.(flag.Getter); ok {
			v = g.Get()
		}
		switch x := v.(type) {
		case time.Duration:
			v = x.String()
		case string:
			v = maskSecret(name, x)
		}
		line, err := gotoml.Marshal(map[string]any{fileKey(name): v})
		if err != nil {
			return err
		}
		origin := src[name]
		if origin == "env" {
			origin = "env " + envName(name)
		}
		fmt.Fprintf(w, "\n# %s [%s]\n%s", f.Usage, origin, line)
	}
	return nil
}

// dsnPassword finds the password of a MySQL DSN, user:pass@tcp(host)/db
// or user:pass@/db; the password may hold '@'.
var dsnPassword = regexp.MustCompile(`^([^:@/]*):(.*)@([a-z0-9]*\(|/)`)

// maskSecret hides the password of a DSN or URL, and the whole value of a
// setting named like a secret.
func maskSecret(name, v string) string {
	if v == "" {
		return v
	}
	if strings.Contains(name, "password") || strings.Contains(name, "secret") || strings.Contains(name, "token") {
		return "*****"
	}
	if strings.Contains(v, "://") {
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				return strings.Replace(u.String(), ":xxxxx@", ":*****@", 1)
			}
		}
		return v
	}
	return dsnPassword.ReplaceAllString(v, "$1:*****@$3")
}
