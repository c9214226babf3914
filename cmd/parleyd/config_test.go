package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "parleyd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// flags > env > file > defaults, setting by setting.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
listen = "0.0.0.0:7000"
heartbeat = "20s"
workers = 8
rate-limit = 50.5
dm_policy = "anyone"
`)
	env := map[string]string{"PARLEY_CONFIG": file, "PARLEY_HEARTBEAT": "25s", "PARLEY_WORKERS": "16", "PARLEY_MAX_GROUP_SIZE": "100"}
	o, _, src, err := loadOptions([]string{"--workers", "32"}, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
		from      string
	}{
		{"listen", o.listen, "0.0.0.0:7000", "file " + file},    // file over default
		{"rate-limit", o.rateLimit, 50.5, "file " + file},       // dashes work in the file too
		{"dm-policy", o.dmPolicy, "anyone", "file " + file},     //
		{"heartbeat", o.heartbeat, 25 * time.Second, "env"},     // env over file
		{"max-group-size", o.maxGroup, 100, "env"},              // env over default
		{"workers", o.workers, 32, "flag"},                      // flag over env over file
		{"bcrypt-cost", o.bcryptCost, 10, "default"},            // nothing set
		{"presence-grace", o.grace, 5 * time.Second, "default"}, //
		{"data-dir", o.store.dataDir, "./data", "default"},      //
	} {
		if c.got != c.want || src[c.name] != c.from {
			t.Errorf("%s = %v from %q, want %v from %q", c.name, c.got, src[c.name], c.want, c.from)
		}
	}

	// --config wins over PARLEY_CONFIG.
	other := writeFile(t, `listen = "127.0.0.1:7001"`)
	if o, _, _, err = loadOptions([]string{"--config", other}, envOf(env)); err != nil || o.listen != "127.0.0.1:7001" || o.heartbeat != 25*time.Second {
		t.Fatalf("--config over PARLEY_CONFIG: listen %s heartbeat %v, %v", o.listen, o.heartbeat, err)
	}
}

// Every setting has its environment twin and its file key.
func TestEverySettingHasEnvAndFileKey(t *testing.T) {
	var o options
	fs := flagSet(&o)
	n := 0
	for name := range settingNames(fs) {
		n++
		f := fs.Lookup(name)
		for _, via := range []string{"env", "file"} {
			var o2 options
			fs2 := flagSet(&o2)
			env := map[string]string{}
			switch via {
			case "env":
				env[envName(name)] = f.DefValue
			case "file":
				env["PARLEY_CONFIG"] = writeFile(t, fileKey(name)+" = '"+f.DefValue+"'")
			}
			src, err := configure(fs2, nil, envOf(env), false)
			if err != nil {
				t.Errorf("%s via %s: %v", name, via, err)
				continue
			}
			if !strings.HasPrefix(src[name], via) {
				t.Errorf("%s via %s: set from %q", name, via, src[name])
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d settings", n)
	}
}

func settingNames(fs *flag.FlagSet) map[string]bool {
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if !notSettings[f.Name] {
			names[f.Name] = true
		}
	})
	return names
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		file string
		env  map[string]string
		args []string
		want string // regexp
	}{
		{file: `lisen = "x:1"`, want: `unknown key "lisen"`},
		{file: "[store]\nkind = \"mysql\"", want: `unknown key "store.kind"`},
		{file: `version = true`, want: `unknown key "version"`},
		{file: `listen = [1, 2]`, want: `listen: want a string, number or boolean`},
		{file: `heartbeat = 30`, want: `heartbeat = "30": want a duration such as 30s`},
		{file: `workers = "many"`, want: `workers = "many": want a whole number`},
		{file: `listen = `, want: `config file .*parleyd.toml: `},
		{env: map[string]string{"PARLEY_CONFIG": "/nonexistent/parleyd.toml"}, want: `config file: open /nonexistent/parleyd.toml`},
		{env: map[string]string{"PARLEY_CLUSTER": "maybe"}, want: `PARLEY_CLUSTER="maybe": want true or false`},
		{args: []string{"--listen", "nohost"}, want: `--listen "nohost": want host:port`},
		{args: []string{"--listen", "127.0.0.1:0"}, want: `port "0" is not 1-65535`},
		{args: []string{"--heartbeat", "-1s"}, want: `--heartbeat -1s: want a duration above 0`},
		{args: []string{"--bcrypt-cost", "3"}, want: `--bcrypt-cost 3: want 4-31`},
		{args: []string{"--node-id", "1024"}, want: `--node-id 1024: want 0-1023`},
		{args: []string{"--dm-policy", "everyone"}, want: `--dm-policy "everyone": want friends or anyone`},
		{args: []string{"--log-level", "loud"}, want: `log level "loud"`},
		{args: []string{"--max-message", "70000"}, want: `--max-message 70000: want 1-64512`},
		{args: []string{"--send-window", "0"}, want: `--send-window 0: want 1-65536`},
		{args: []string{"--store", "mysql"}, want: `--store mysql needs --mysql-dsn`},
		{args: []string{"--mysql-batch-interval", "-1ms"}, want: `--mysql-batch-interval -1ms: want 0-1s`},
		{args: []string{"--mysql-batch-interval", "2s"}, want: `--mysql-batch-interval 2s: want 0-1s`},
		{args: []string{"--mq-compress-over", "-1"}, want: `--mq-compress-over -1: want 0 \(never\) or a size in bytes`},
		{args: []string{"--cluster"}, want: `--cluster needs --redis-addr(.|\n)*--cluster needs --mq-namesrv(.|\n)*--cluster needs --store mysql`},
		{args: []string{"--cluster", "--files-listen", "127.0.0.1:7072"}, want: `--files-listen in a cluster needs --s3-endpoint`},
		{args: []string{"--s3-endpoint", "s3.example.com"}, want: `--s3-endpoint needs --s3-access-key and --s3-secret-key`},
		{args: []string{"--files-listen", "nowhere"}, want: `--files-listen "nowhere": want host:port`},
		{args: []string{"serve"}, want: `unexpected argument "serve"`},
	} {
		env := c.env
		if env == nil {
			env = map[string]string{}
		}
		if c.file != "" {
			env["PARLEY_CONFIG"] = writeFile(t, c.file)
		}
		_, _, _, err := loadOptions(c.args, envOf(env))
		if err == nil || !regexp.MustCompile(c.want).MatchString(err.Error()) {
			t.Errorf("file %q env %v args %v: error %v, want %s", c.file, c.env, c.args, err, c.want)
		}
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	file := writeFile(t, `store = "mysql"
mysql_dsn = "parley:p@ss:w0rd@tcp(db:3306)/parley?parseTime=true"`)
	lookupEnv = envOf(map[string]string{"PARLEY_CONFIG": file, "PARLEY_REDIS_ADDR": "redis:6379"})
	defer func() { lookupEnv = os.LookupEnv }()
	var out strings.Builder
	if err := configCmd([]string{"print", "--workers", "4"}, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"mysql_dsn = 'parley:*****@tcp(db:3306)/parley?parseTime=true'",
		"[file " + file + "]\nstore = 'mysql'",
		"[env PARLEY_REDIS_ADDR]\nredis_addr = 'redis:6379'",
		"[flag]\nworkers = 4",
		"[default]\nheartbeat = '30s'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("config print lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "w0rd") {
		t.Fatalf("config print shows the password:\n%s", s)
	}
	// What it prints is a config file that gives the same settings.
	again := writeFile(t, s)
	o, _, src, err := loadOptions([]string{"--config", again}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o.workers != 4 || o.redisAddr != "redis:6379" || src["workers"] != "file "+again {
		t.Fatalf("reloaded: workers %d redis %q (%s)", o.workers, o.redisAddr, src["workers"])
	}
}

func TestMaskSecret(t *testing.T) {
	for _, c := range [][3]string{
		{"mysql-dsn", "u:pw@tcp(h:3306)/db", "u:*****@tcp(h:3306)/db"},
		{"mysql-dsn", "u:p@w@/db", "u:*****@/db"},
		{"mysql-dsn", "u@tcp(h)/db", "u@tcp(h)/db"},
		{"redis-url", "redis://u:pw@h:6379/0", "redis://u:*****@h:6379/0"},
		{"redis-url", "redis://h:6379/0", "redis://h:6379/0"},
		{"redis-password", "hunter2", "*****"},
		{"listen", "127.0.0.1:7070", "127.0.0.1:7070"},
	} {
		if got := maskSecret(c[0], c[1]); got != c[2] {
			t.Errorf("maskSecret(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

// The README's table of flags names only flags that exist.
func TestReadmeFlagsExist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var o options
	fs := flagSet(&o)
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z-]+)`").FindAllStringSubmatch(string(readme), -1) {
		if fs.Lookup(m[1]) == nil {
			t.Errorf("README names --%s, which parleyd lacks", m[1])
		}
	}
}

// The example config of deploy/ is a valid config file.
func TestDeployConfigLoads(t *testing.T) {
	o, _, src, err := loadOptions([]string{"--config", "../../deploy/parleyd.toml"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o.store.dataDir != "/var/lib/parley" || src["data-dir"] != "file ../../deploy/parleyd.toml" {
		t.Fatalf("data dir %q from %q", o.store.dataDir, src["data-dir"])
	}
}
