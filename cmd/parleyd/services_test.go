package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/rocketmq"
)

// Private instances of the services, for the tests that kill them: their
// own ports and data directories under t.TempDir, never those of `make
// services`, which other tests share. The binaries and RocketMQ's jars
// are the ones `make services` installs (scripts/services.sh).

// repoRoot is the directory of go.mod above the working directory.
func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort returns a loopback port that was free a moment ago, with the
// ports at off from it free as well.
func freePort(t testing.TB, offs ...int) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		ok := true
		for _, off := range offs {
			if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+off)); err == nil {
				_ = l.Close()
			} else {
				ok = false
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free ports")
	return 0
}

// service is one private server process, restartable.
type service struct {
	t    testing.TB
	name string
	args []string
	env  []string
	dir  string
	cmd  *exec.Cmd
	log  *os.File
}

func (s *service) start() {
	s.t.Helper()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	s.cmd = cmd
}

// kill stops the process with SIGKILL and reaps it.
func (s *service) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func newService(t testing.TB, name, dir string, env []string, args ...string) *service {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	s := &service{t: t, name: name, args: args, env: env, dir: dir, log: logf}
	s.start()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("output of %s (last 2000 bytes):\n%s", name, tail(b, 2000))
			}
		}
		_ = logf.Close()
	})
	return s
}

// waitPort waits until something accepts on addr.
func waitPort(t testing.TB, addr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v", addr, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// privateRedis is a redis-server on a port of its own, with an
// append-only file so a restart keeps the cluster's keys.
func privateRedis(t testing.TB) (*service, string) {
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := newService(t, "redis", dir, nil, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes")
	waitRedis(t, addr)
	return s, addr
}

func waitRedis(t testing.TB, addr string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis on %s did not answer", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mqLib is the directory of RocketMQ's jars: PARLEY_ROCKETMQ_LIB, or the
// one `make services` fills.
func mqLib(t testing.TB) string {
	lib := os.Getenv("PARLEY_ROCKETMQ_LIB")
	if lib == "" {
		lib = filepath.Join(repoRoot(t), ".services", "rocketmq", "lib")
	}
	if m, _ := filepath.Glob(filepath.Join(lib, "rocketmq-broker-*.jar")); len(m) == 0 {
		t.Fatalf("no RocketMQ jars in %s: run `make services` (or set PARLEY_ROCKETMQ_LIB)", lib)
	}
	return lib
}

// jvm are the flags of scripts/services.sh, with smaller heaps.
func jvm(home string, heap string) []string {
	args := []string{"java", "-server", "-XX:+UseSerialGC", "-XX:MaxMetaspaceSize=160m", "-XX:TieredStopAtLevel=1",
		"-Xms" + heap, "-Xmx" + heap, "-Xss512k", "-XX:MaxDirectMemorySize=128m",
		"-Djava.net.preferIPv4Stack=true", "-Duser.home=" + home,
		"-Dio.netty.tryReflectionSetAccessible=true",
		"-Dlogback.statusListenerClass=org.apache.rocketmq.logging.ch.qos.logback.core.status.NopStatusListener"}
	for _, o := range []string{"java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
		"java.util.concurrent", "sun.nio.ch", "jdk.internal.misc", "jdk.internal.ref"} {
		args = append(args, "--add-opens=java.base/"+o+"=ALL-UNNAMED")
	}
	return append(args, "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED", "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED")
}

// privateRocketMQ is a name server and a broker on ports of their own;
// the broker's store survives its restart.
type privateRocketMQ struct {
	t        testing.TB
	NameSrv  string
	broker   *service
	brokerAt string
}

func startRocketMQ(t testing.TB) *privateRocketMQ {
	lib := mqLib(t)
	dir := t.TempDir()
	nsPort := freePort(t)
	bPort := freePort(t, -2, 1) // the broker also listens on port-2 and port+1
	ns := fmt.Sprintf("127.0.0.1:%d", nsPort)
	conf := filepath.Join(dir, "namesrv.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listenPort=%d\nbindAddress=127.0.0.1\nscanAvailableNameSrv=false\n", nsPort), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"ROCKETMQ_HOME=" + dir}
	newService(t, "namesrv", dir, env, append(jvm(dir, "128m"), "-cp", lib+"/*",
		"org.apache.rocketmq.namesrv.NamesrvStartup", "-c", conf)...)
	bconf := filepath.Join(dir, "broker.conf")
	store := filepath.Join(dir, "store")
	if err := os.WriteFile(bconf, fmt.Appendf(nil, `brokerClusterName=ParleyTest
brokerName=broker-t
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
namesrvAddr=%s
brokerIP1=127.0.0.1
listenPort=%d
bindAddress=127.0.0.1
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
registerNameServerPeriod=2000
storePathRootDir=%s
storePathCommitLog=%s/commitlog
mappedFileSizeCommitLog=16777216
mappedFileSizeConsumeQueue=600000
mappedFileSizeTimerLog=4194304
timerWheelEnable=false
diskMaxUsedSpaceRatio=99
`, ns, bPort, store, store), 0o644); err != nil {
		t.Fatal(err)
	}
	waitPort(t, ns, 60*time.Second)
	b := newService(t, "broker", dir, env, append(jvm(dir, "256m"), "-cp", lib+"/*",
		"org.apache.rocketmq.broker.BrokerStartup", "-n", ns, "-c", bconf)...)
	mq := &privateRocketMQ{t: t, NameSrv: ns, broker: b, brokerAt: fmt.Sprintf("127.0.0.1:%d", bPort)}
	mq.waitReady(90 * time.Second)
	return mq
}

// waitReady waits until a message can be sent through the name server.
func (mq *privateRocketMQ) waitReady(limit time.Duration) {
	t := mq.t
	t.Helper()
	waitPort(t, mq.brokerAt, limit)
	bus, err := rocketmq.New(rocketmq.Config{NameServers: []string{mq.NameSrv}, Topic: "PARLEY_PROBE", Node: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := bus.Send(ctx, "nobody", 1, []router.Envelope{{Kind: router.EnvPush}})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the private broker does not take messages after %v: %v", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// killBroker kills the broker with SIGKILL.
func (mq *privateRocketMQ) killBroker() { mq.broker.kill() }

// restartBroker starts the broker again on its store and waits for it.
func (mq *privateRocketMQ) restartBroker() {
	began := time.Now()
	mq.broker.start()
	waitPort(mq.t, mq.brokerAt, 60*time.Second)
	listening := time.Since(began)
	mq.waitReady(60 * time.Second)
	mq.t.Logf("the broker restarted: listening after %v, taking messages through the name server after %v",
		listening.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// privateMariaDB is a mariadbd on a port and data directory of its own,
// without grant tables (any user, no password), holding one database.
type privateMariaDB struct {
	srv *service
	DSN string
	dir string
}

func startMariaDB(t testing.TB) *privateMariaDB {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, tail(out, 2000))
	}
	port := freePort(t)
	s := newService(t, "mariadb", dir, nil, "mariadbd", "--no-defaults", "--user=root", "--datadir="+data,
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket="+filepath.Join(dir, "sock"),
		"--pid-file="+filepath.Join(dir, "pid"), "--skip-grant-tables", "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--performance-schema=OFF",
		"--innodb-flush-log-at-trx-commit=1", "--max-connections=200")
	m := &privateMariaDB{srv: s, dir: dir, DSN: fmt.Sprintf("root@tcp(127.0.0.1:%d)/parley?parseTime=true&charset=utf8mb4", port)}
	m.wait(t, fmt.Sprintf("root@tcp(127.0.0.1:%d)/", port))
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE parley"); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *privateMariaDB) wait(t testing.TB, dsn string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for db.Ping() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the private MariaDB did not answer in 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// restart kills mariadbd with SIGKILL, after down starts it again on its
// data (crash recovery) and waits for it.
func (m *privateMariaDB) restart(t testing.TB, down time.Duration) time.Time {
	m.srv.kill()
	time.Sleep(down)
	m.srv.start()
	m.wait(t, m.DSN)
	return time.Now()
}
