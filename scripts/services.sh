#!/usr/bin/env bash
# scripts/services.sh — backing services for Parley development and CI.
#
#   scripts/services.sh up       install (if missing), start and wait for MariaDB,
#                                Redis, RocketMQ NameServer + Broker on loopback;
#                                install HAProxy (tests start their own)
#   scripts/services.sh down     stop what `up` started (packages stay installed)
#   scripts/services.sh status   print each service up/down (exit 1 if any is down)
#
# Everything lives under <repo>/.services (data, logs, pid files, RocketMQ jars).
# See scripts/README.md for ports, credentials and override variables.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVC=$ROOT/.services
RUN=$SVC/run
LOGS=$SVC/logs
DB=$SVC/mariadb
RDS=$SVC/redis
MQ=$SVC/rocketmq

ROCKETMQ_VERSION=5.3.3          # newest 5.3.x on Maven Central
MVN_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
MAVEN_REPO=${PARLEY_MAVEN_REPO:-$SVC/m2}

TIMEOUT_DB=${PARLEY_SERVICES_TIMEOUT:-90}
TIMEOUT_REDIS=${PARLEY_SERVICES_TIMEOUT:-30}
TIMEOUT_MQ=${PARLEY_SERVICES_TIMEOUT:-120}

# Defaults; PARLEY_* pointing anywhere else means "external server, don't manage it".
MY_HOST=127.0.0.1 MY_PORT=3306 MY_USER=parley MY_PASS=parley MY_DB=parley_test
RD_HOST=127.0.0.1 RD_PORT=6379
MQ_NS=127.0.0.1:9876
MQ_BROKER_PORT=10911
MY_EXT=0 RD_EXT=0 MQ_EXT=0

export DEBIAN_FRONTEND=noninteractive
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

t0=$(date +%s.%N)
log() { printf 'services: %s\n' "$*"; }
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }

# fail SERVICE MESSAGE [LOGFILE...]: report which service did not come up, show its logs, exit 1.
fail() {
  local svc=$1 msg=$2; shift 2
  printf '\nservices: ERROR: %s did not come up: %s\n' "$svc" "$msg" >&2
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

is_local_host() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ]; }

parse_env() {
  if [ -n "${PARLEY_MYSQL_DSN:-}" ]; then
    # user:pass@tcp(host:port)/db?params
    local re='^([^:@]*)(:([^@]*))?@tcp\(([^:)]+)(:([0-9]+))?\)/([^?]*)'
    if [[ $PARLEY_MYSQL_DSN =~ $re ]]; then
      local h=${BASH_REMATCH[4]} p=${BASH_REMATCH[6]:-3306}
      if ! { is_local_host "$h" && [ "$p" = 3306 ]; }; then
        MY_EXT=1 MY_HOST=$h MY_PORT=$p MY_USER=${BASH_REMATCH[1]} MY_PASS=${BASH_REMATCH[3]}
        MY_DB=${BASH_REMATCH[7]}
      fi
    else
      echo "services: cannot parse PARLEY_MYSQL_DSN (want user:pass@tcp(host:port)/db?...)" >&2
      exit 2
    fi
  fi
  if [ -n "${PARLEY_REDIS_ADDR:-}" ]; then
    local a=${PARLEY_REDIS_ADDR#redis://} h p
    a=${a%%/*}; h=${a%:*}; p=${a##*:}; [ "$p" = "$a" ] && p=6379
    if ! { is_local_host "$h" && [ "$p" = 6379 ]; }; then RD_EXT=1 RD_HOST=$h RD_PORT=$p; fi
  fi
  if [ -n "${PARLEY_MQ_NAMESRV:-}" ]; then
    case $PARLEY_MQ_NAMESRV in
      127.0.0.1:9876 | localhost:9876) ;;
      *) MQ_EXT=1 MQ_NS=$PARLEY_MQ_NAMESRV ;;
    esac
  fi
}

have() { command -v "$1" >/dev/null 2>&1; }
port_open() { timeout 1 bash -c ">/dev/tcp/$1/$2" 2>/dev/null; }

# pid of our process NAME (from run/NAME.pid) if it is alive and really ours
# (its working directory is inside .services of this checkout), else nothing.
our_pid() {
  local f=$RUN/$1.pid pid cwd
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
  [[ $cwd == "$SVC"* ]] || return 1
  # a zombie is not running
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop_services GRACE_SECONDS NAME...: SIGTERM all (they shut down in parallel),
# wait up to GRACE seconds, then SIGKILL what is left. Removes the pid files.
stop_services() {
  local grace=$1 name pid i left; shift
  local -A pids=()
  for name in "$@"; do
    if pid=$(our_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids[$name]=$pid
    fi
  done
  for ((i = 0; i < grace * 5; i++)); do
    left=0
    for name in "${!pids[@]}"; do
      if alive "${pids[$name]}"; then left=1; else
        log "$name stopped (pid ${pids[$name]})"; unset "pids[$name]"; fi
    done
    [ $left = 1 ] || break
    sleep 0.2
  done
  for name in "${!pids[@]}"; do
    log "$name (pid ${pids[$name]}) ignored SIGTERM for ${grace}s, killing it"
    kill -KILL "${pids[$name]}" 2>/dev/null || true
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

# launch NAME DIR LOGFILE CMD...: start CMD detached (own session, no inherited fds)
# with cwd DIR; its pid goes to run/NAME.pid.
launch() {
  local name=$1 dir=$2 logf=$3; shift 3
  mkdir -p "$dir"
  rm -f "$RUN/$name.pid"
  : >"$logf"
  (cd "$dir" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" \
    </dev/null >>"$logf" 2>&1 9>&-) &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$RUN/$name.pid" ] && break; sleep 0.05; done
}

# ---------------------------------------------------------------- packages ---

APT_UPDATED=0
POLICY_CREATED=0
cleanup() { [ "$POLICY_CREATED" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

apt_install() {
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "services: need to install $* but not running as root" >&2
    exit 1
  fi
  # Keep the packages' init scripts from starting system-wide daemons: we start
  # our own instances with project-local data.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_CREATED=1
  fi
  local opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get "${opts[@]}" update -qq >"$LOGS/apt.log" 2>&1 || fail "apt (package install)" "apt-get update failed" "$LOGS/apt.log"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  apt-get "${opts[@]}" install -y -qq --no-install-recommends "$@" >>"$LOGS/apt.log" 2>&1 ||
    fail "apt (package install)" "apt-get install $* failed" "$LOGS/apt.log"
  cleanup
  POLICY_CREATED=0
}

# ----------------------------------------------------------------- mariadb ---

mysql_q() { # mysql_q HOST PORT USER PASS DB SQL  (over TCP)
  MYSQL_PWD=$4 mariadb --no-defaults --protocol=TCP --connect-timeout=2 -h "$1" -P "$2" -u "$3" "$5" \
    -N -B -e "$6" >/dev/null 2>&1
}
mysql_ready() { have mariadb && mysql_q "$MY_HOST" "$MY_PORT" "$MY_USER" "$MY_PASS" "$MY_DB" 'SELECT 1'; }

MYSQL_BOOTSTRAP_SQL="
CREATE DATABASE IF NOT EXISTS parley CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE DATABASE IF NOT EXISTS parley_test CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER IF NOT EXISTS 'parley'@'%' IDENTIFIED BY 'parley';
CREATE USER IF NOT EXISTS 'parley'@'localhost' IDENTIFIED BY 'parley';
GRANT ALL PRIVILEGES ON \`parley%\`.* TO 'parley'@'%';
GRANT ALL PRIVILEGES ON \`parley%\`.* TO 'parley'@'localhost';
FLUSH PRIVILEGES;"

write_my_cnf() {
  mkdir -p "$DB/tmp"
  cat >"$DB/my.cnf" <<EOF
# generated by scripts/services.sh
[mariadbd]
user = root
datadir = $DB/data
tmpdir = $DB/tmp
socket = $RUN/mariadb.sock
pid-file = $DB/mariadbd.pid
log-error = $LOGS/mariadb.log
port = 3306
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 500
performance_schema = OFF
innodb_buffer_pool_size = 128M
innodb_log_file_size = 64M
# Durable as in production: the redo log is fsynced at every commit, so an
# acknowledged message survives a crash of the machine (binlog is off; with
# it on, sync_binlog = 1 too).
innodb_flush_log_at_trx_commit = 1
innodb_doublewrite = 0
EOF
}

mariadb_start() {
  mkdir -p "$DB"
  write_my_cnf
  if [ ! -f "$DB/.initialized" ]; then
    log "mariadb: initializing data directory"
    rm -rf "$DB/data"
    mariadb-install-db --defaults-file="$DB/my.cnf" --user=root --datadir="$DB/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$LOGS/mariadb-install.log" 2>&1 ||
      fail mariadb "mariadb-install-db failed" "$LOGS/mariadb-install.log"
  fi
  : >"$LOGS/mariadb.log"
  launch mariadb "$DB" "$LOGS/mariadb.out" mariadbd --defaults-file="$DB/my.cnf"
}

mariadb_wait() {
  local deadline=$((SECONDS + TIMEOUT_DB)) pid
  until mariadb-admin --no-defaults --socket="$RUN/mariadb.sock" -uroot ping >/dev/null 2>&1; do
    pid=$(our_pid mariadb) || fail mariadb "mariadbd exited during startup" "$LOGS/mariadb.out" "$LOGS/mariadb.log"
    [ $SECONDS -lt $deadline ] || fail mariadb "no answer on $RUN/mariadb.sock after ${TIMEOUT_DB}s" "$LOGS/mariadb.log"
    sleep 0.2
  done
  mariadb --no-defaults --socket="$RUN/mariadb.sock" -uroot -e "$MYSQL_BOOTSTRAP_SQL" >>"$LOGS/mariadb.out" 2>&1 ||
    fail mariadb "creating databases/user failed" "$LOGS/mariadb.out" "$LOGS/mariadb.log"
  touch "$DB/.initialized"
  until mysql_ready; do
    [ $SECONDS -lt $deadline ] || fail mariadb "query as $MY_USER over TCP $MY_HOST:$MY_PORT failed" "$LOGS/mariadb.log"
    sleep 0.2
  done
  log "mariadb: ready on $MY_HOST:$MY_PORT ($(elapsed))"
}

# System MariaDB (someone else's) is answering on 3306 but not for parley/parley:
# try to add the databases/user through its root unix socket.
mariadb_bootstrap_foreign() {
  have mariadb || return 1
  mariadb --no-defaults -uroot -e "$MYSQL_BOOTSTRAP_SQL" >/dev/null 2>&1 && mysql_ready
}

# ------------------------------------------------------------------- redis ---

redis_ready() {
  have redis-cli && [ "$(timeout 3 redis-cli -h "$RD_HOST" -p "$RD_PORT" ping 2>/dev/null)" = PONG ]
}

redis_start() {
  mkdir -p "$RDS"
  launch redis "$RDS" "$LOGS/redis.log" redis-server --bind 127.0.0.1 --port 6379 --dir "$RDS" \
    --save '' --appendonly no --daemonize no --protected-mode yes
}

redis_wait() {
  local deadline=$((SECONDS + TIMEOUT_REDIS))
  until redis_ready; do
    our_pid redis >/dev/null || fail redis "redis-server exited during startup" "$LOGS/redis.log"
    [ $SECONDS -lt $deadline ] || fail redis "no PONG from $RD_HOST:$RD_PORT after ${TIMEOUT_REDIS}s" "$LOGS/redis.log"
    sleep 0.1
  done
  log "redis: ready on $RD_HOST:$RD_PORT ($(elapsed))"
}

# ---------------------------------------------------------------- rocketmq ---

# JDK 9+ module flags RocketMQ (built for Java 8) and Netty need on JDK 17.
JDK_OPENS=(
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-exports=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
  -Dio.netty.tryReflectionSetAccessible=true
)
# user.home redirects RocketMQ's own log files (~/logs/rocketmqlogs) and
# namesrv kv config (~/namesrv) into .services.
JVM_COMMON=(-server -XX:+UseSerialGC -XX:MaxMetaspaceSize=160m -XX:-OmitStackTraceInFastThrow
  -Djava.net.preferIPv4Stack=true -Duser.home="$SVC" "${JDK_OPENS[@]}"
  -Dlogback.statusListenerClass=org.apache.rocketmq.logging.ch.qos.logback.core.status.NopStatusListener)
JVM_NAMESRV=(-Xms128m -Xmx256m -Xss512k -XX:MaxDirectMemorySize=64m)
JVM_BROKER=(-Xms256m -Xmx512m -Xss512k -XX:MaxDirectMemorySize=256m)
JVM_PROBE=(-Xms32m -Xmx128m -XX:TieredStopAtLevel=1 -Drmq.logback.configurationFile=rmq.client.logback.xml)

mq_lib_ok() { [ -f "$MQ/lib/.complete-$ROCKETMQ_VERSION" ]; }

mq_fetch() { # runs in the background; writes $MQ/fetch.rc
  set +e
  mkdir -p "$MQ"
  cat >"$MQ/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/services.sh: RocketMQ runtime classpath -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>parley.services</groupId>
  <artifactId>rocketmq-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-namesrv</artifactId><version>$ROCKETMQ_VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-broker</artifactId><version>$ROCKETMQ_VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-tools</artifactId><version>$ROCKETMQ_VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-client</artifactId><version>$ROCKETMQ_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$MQ/lib.tmp"
  mvn -B -q -f "$MQ/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" "$MVN_DEP_PLUGIN:copy-dependencies" \
    -DoutputDirectory="$MQ/lib.tmp" -DincludeScope=runtime >"$LOGS/maven.log" 2>&1
  local rc=$?
  if [ $rc = 0 ] && [ -f "$MQ/lib.tmp/rocketmq-broker-$ROCKETMQ_VERSION.jar" ]; then
    rm -rf "${MQ:?}/lib" && mv "$MQ/lib.tmp" "$MQ/lib" && touch "$MQ/lib/.complete-$ROCKETMQ_VERSION"
    rc=$?
  else
    [ $rc = 0 ] && rc=1
  fi
  echo $rc >"$MQ/fetch.rc"
}

mq_fetch_wait() {
  [ -n "${MQ_FETCH_PID:-}" ] || return 0
  wait "$MQ_FETCH_PID" || true
  MQ_FETCH_PID=
  [ "$(cat "$MQ/fetch.rc" 2>/dev/null)" = 0 ] && mq_lib_ok ||
    fail rocketmq "fetching org.apache.rocketmq:*:$ROCKETMQ_VERSION from Maven Central failed" "$LOGS/maven.log"
  log "rocketmq: jars for $ROCKETMQ_VERSION in $MQ/lib ($(elapsed))"
}

write_mq_conf() {
  mkdir -p "$MQ/conf" "$MQ/store/commitlog"
  cat >"$MQ/conf/namesrv.conf" <<EOF
listenPort=9876
bindAddress=127.0.0.1
# the name server's internal client would otherwise poll <host-ip>:9876 every 3s
scanAvailableNameSrv=false
EOF
  cat >"$MQ/conf/broker.conf" <<EOF
# generated by scripts/services.sh
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
namesrvAddr=127.0.0.1:9876
brokerIP1=127.0.0.1
listenPort=$MQ_BROKER_PORT
bindAddress=127.0.0.1
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
registerNameServerPeriod=10000
storePathRootDir=$MQ/store
storePathCommitLog=$MQ/store/commitlog
mappedFileSizeCommitLog=67108864
mappedFileSizeConsumeQueue=1200000
mappedFileSizeTimerLog=16777216
fileReservedTime=24
deleteWhen=04
diskMaxUsedSpaceRatio=95
diskSpaceWarningLevelRatio=97
diskSpaceCleanForciblyRatio=96
# Parley sends no delayed messages: no timer wheel, whose flush thread wakes
# every second (the chaos tests' private brokers run without it too).
timerWheelEnable=false
EOF
}

# Readiness probe: broker registered with the name server, then a real
# produce + consume (pull at the sent offset) round trip on topic PARLEY_PROBE.
PROBE_SRC='import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.UUID;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.remoting.protocol.body.ClusterInfo;
import org.apache.rocketmq.remoting.protocol.route.BrokerData;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class ParleyMqProbe {
  static long deadline;
  static String last = "";
  static void log(String s) { System.out.println("mqprobe: " + s); }
  static void check(String what) throws InterruptedException {
    if (System.currentTimeMillis() > deadline) {
      System.out.println("mqprobe: FAILED: " + what + ": " + last);
      System.exit(1);
    }
    Thread.sleep(300);
  }
  public static void main(String[] args) throws Exception {
    String ns = args[0];
    long t0 = System.currentTimeMillis();
    deadline = t0 + Long.parseLong(args[1]) * 1000L;
    String topic = "PARLEY_PROBE";
    // args[2]: address of a broker we just started. Its own first registration races
    // with its name-server connection and may otherwise only happen 10s later.
    String kick = args.length > 2 ? args[2] : null;
    String inst = "parley-probe-" + ProcessHandle.current().pid();

    DefaultMQAdminExt admin = new DefaultMQAdminExt(3000);
    admin.setNamesrvAddr(ns);
    admin.setInstanceName(inst);
    admin.start();
    String broker = null;
    while (broker == null) {
      try {
        ClusterInfo ci = admin.examineBrokerClusterInfo();
        for (BrokerData bd : ci.getBrokerAddrTable().values()) {
          String a = bd.getBrokerAddrs().get(0L);
          if (a != null) { broker = a; break; }
        }
        if (broker == null) last = "no master broker registered";
      } catch (Exception e) { last = e.toString(); }
      if (broker == null && kick != null) {
        try {
          Properties p = new Properties();
          p.setProperty("brokerPermission", "6"); // unchanged (RW); makes the broker register now
          admin.updateBrokerConfig(kick, p);
          log("asked broker " + kick + " to register");
          kick = null;
          continue;
        } catch (Exception e) { last = e.toString(); }
      }
      if (broker == null) check("broker registration with name server " + ns);
    }
    log("broker registered: " + broker);
    boolean created = false;
    while (!created) {
      try { admin.createAndUpdateTopicConfig(broker, new TopicConfig(topic, 1, 1)); created = true; }
      catch (Exception e) { last = e.toString(); check("create topic " + topic); }
    }

    DefaultMQProducer producer = new DefaultMQProducer("PARLEY_PROBE_PRODUCER");
    producer.setNamesrvAddr(ns);
    producer.setInstanceName(inst);
    producer.setSendMsgTimeout(3000);
    producer.setRetryTimesWhenSendFailed(0);
    producer.start();
    String body = "parley-probe-" + UUID.randomUUID();
    SendResult sr = null;
    while (sr == null) {
      try {
        SendResult r = producer.send(new Message(topic, "probe", body.getBytes(StandardCharsets.UTF_8)));
        if (r.getSendStatus() == SendStatus.SEND_OK) sr = r; else last = r.toString();
      } catch (Exception e) { last = e.toString(); }
      if (sr == null) check("send to " + topic);
    }
    log("sent " + sr.getMsgId() + " queue=" + sr.getMessageQueue().getQueueId() + " offset=" + sr.getQueueOffset());

    DefaultMQPullConsumer consumer = new DefaultMQPullConsumer("PARLEY_PROBE_CONSUMER");
    consumer.setNamesrvAddr(ns);
    consumer.setInstanceName(inst);
    consumer.start();
    boolean got = false;
    while (!got) {
      try {
        PullResult pr = consumer.pull(sr.getMessageQueue(), "*", sr.getQueueOffset(), 1, 3000);
        if (pr.getPullStatus() == PullStatus.FOUND) {
          for (MessageExt m : pr.getMsgFoundList()) {
            if (body.equals(new String(m.getBody(), StandardCharsets.UTF_8))) got = true;
          }
          if (!got) last = "unexpected message at offset " + sr.getQueueOffset();
        } else last = "pull status " + pr.getPullStatus();
      } catch (Exception e) { last = e.toString(); }
      if (!got) check("consume from " + topic);
    }
    log("round trip OK in " + (System.currentTimeMillis() - t0) + " ms");
    consumer.shutdown();
    producer.shutdown();
    admin.shutdown();
    System.exit(0);
  }
}'

mq_probe_build() {
  local dir=$MQ/probe
  mkdir -p "$dir"
  if [ ! -f "$dir/ParleyMqProbe.class" ] || [ "$(cat "$dir/ParleyMqProbe.java" 2>/dev/null)" != "$PROBE_SRC" ] ||
    [ "$dir/ParleyMqProbe.class" -ot "$MQ/lib/.complete-$ROCKETMQ_VERSION" ]; then
    printf '%s\n' "$PROBE_SRC" >"$dir/ParleyMqProbe.java"
    javac -nowarn -Xlint:none -cp "$MQ/lib/*" -d "$dir" "$dir/ParleyMqProbe.java" >"$LOGS/mqprobe-javac.log" 2>&1 ||
      fail rocketmq "compiling the readiness probe failed" "$LOGS/mqprobe-javac.log"
  fi
}

mq_probe() { # mq_probe NAMESRV TIMEOUT [LOCAL_BROKER_ADDR]
  (cd "$MQ" && timeout -k 5 $(($2 + 30)) java "${JVM_COMMON[@]}" "${JVM_PROBE[@]}" -cp "$MQ/probe:$MQ/lib/*" ParleyMqProbe "$@" \
    >"$LOGS/mqprobe.log" 2>&1 9>&- </dev/null)
}

namesrv_start() {
  launch namesrv "$MQ" "$LOGS/namesrv.log" env ROCKETMQ_HOME="$MQ" java "${JVM_COMMON[@]}" "${JVM_NAMESRV[@]}" \
    -Drmq.logback.configurationFile=rmq.namesrv.logback.xml \
    -cp "$MQ/lib/*" org.apache.rocketmq.namesrv.NamesrvStartup -c "$MQ/conf/namesrv.conf"
}

broker_start() {
  launch broker "$MQ" "$LOGS/broker.log" env ROCKETMQ_HOME="$MQ" java "${JVM_COMMON[@]}" "${JVM_BROKER[@]}" \
    -Drmq.logback.configurationFile=rmq.broker.logback.xml \
    -cp "$MQ/lib/*" org.apache.rocketmq.broker.BrokerStartup -n 127.0.0.1:9876 -c "$MQ/conf/broker.conf"
}

wait_port() { # wait_port NAME PORT TIMEOUT LOG...
  local name=$1 port=$2 deadline=$((SECONDS + $3)); shift 3
  until port_open 127.0.0.1 "$port"; do
    our_pid "$name" >/dev/null || fail "rocketmq $name" "process exited during startup" "$@"
    [ $SECONDS -lt $deadline ] || fail "rocketmq $name" "port $port not open after ${TIMEOUT_MQ}s" "$@"
    sleep 0.2
  done
}

# Pids of the namesrv/broker pair that last passed the probe.
mq_pids() { echo "$(our_pid namesrv || echo -) $(our_pid broker || echo -)"; }
mq_verified() { [ -f "$RUN/rocketmq.verified" ] && [ "$(cat "$RUN/rocketmq.verified")" = "$(mq_pids)" ]; }

mq_start_local() { # starts what ns_need / br_need (caller's locals) ask for
  write_mq_conf
  if [ "$ns_need" = 1 ]; then
    log "rocketmq namesrv: starting"
    namesrv_start
    wait_port namesrv 9876 "$TIMEOUT_MQ" "$LOGS/namesrv.log" "$LOGS/rocketmqlogs/namesrv.log"
    log "rocketmq namesrv: listening on 127.0.0.1:9876 ($(elapsed))"
  fi
  if [ "$br_need" = 1 ]; then
    log "rocketmq broker: starting"
    broker_start
  fi
}

mq_check() { # probe; uses MQ_EXT and the caller's mq_verify_only / ns_need / br_need
  local what="rocketmq broker" logs=("$LOGS/mqprobe.log" "$LOGS/broker.log" "$LOGS/rocketmqlogs/broker.log")
  if [ "$MQ_EXT" = 1 ]; then what="rocketmq (external, PARLEY_MQ_NAMESRV=$MQ_NS)" logs=("$LOGS/mqprobe.log"); fi
  if [ "$mq_verify_only" = 1 ]; then
    mq_probe "$MQ_NS" 30 && { mq_pids >"$RUN/rocketmq.verified"; log "rocketmq: round trip OK ($(elapsed))"; return 0; }
    log "rocketmq: the running namesrv/broker failed the readiness probe, restarting them"
    stop_services 30 broker namesrv
    ns_need=1 br_need=1
    mq_start_local
  fi
  local kick=()
  [ "$MQ_EXT" = 1 ] || kick=("127.0.0.1:$MQ_BROKER_PORT")
  if ! mq_probe "$MQ_NS" "$TIMEOUT_MQ" "${kick[@]}"; then
    if [ "$MQ_EXT" = 0 ] && ! our_pid broker >/dev/null; then
      fail "$what" "broker process exited" "${logs[@]}"
    fi
    fail "$what" "no produce/consume round trip via name server $MQ_NS within ${TIMEOUT_MQ}s" "${logs[@]}"
  fi
  [ "$MQ_EXT" = 1 ] || mq_pids >"$RUN/rocketmq.verified"
  log "rocketmq: broker registered at $MQ_NS, produce+consume round trip OK ($(elapsed))"
}

# ----------------------------------------------------------------- s3proxy ---
# S3Proxy (Apache-2.0, from Maven Central): a real S3 API server over a local
# directory (jclouds "filesystem"), for the tests of storage/blob/s3 and of
# the file endpoint on S3. On 127.0.0.1:9333, identity parley, secret
# parley-secret-key (storage/blob/s3/s3test).

S3_VERSION=2.6.0
S3=$SVC/s3proxy
S3_PORT=9333

s3_lib_ok() { [ -f "$S3/lib/.complete-$S3_VERSION" ]; }
s3_ready() { port_open 127.0.0.1 "$S3_PORT"; }

s3_fetch() {
  mkdir -p "$S3"
  cat >"$S3/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/services.sh: S3Proxy runtime classpath -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>parley.services</groupId>
  <artifactId>s3proxy-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.gaul</groupId><artifactId>s3proxy</artifactId><version>$S3_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$S3/lib.tmp"
  mvn -B -q -f "$S3/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" "$MVN_DEP_PLUGIN:copy-dependencies" \
    -DoutputDirectory="$S3/lib.tmp" -DincludeScope=runtime >"$LOGS/maven-s3proxy.log" 2>&1 &&
    [ -f "$S3/lib.tmp/s3proxy-$S3_VERSION.jar" ] ||
    fail s3proxy "fetching org.gaul:s3proxy:$S3_VERSION from Maven Central failed" "$LOGS/maven-s3proxy.log"
  rm -rf "${S3:?}/lib" && mv "$S3/lib.tmp" "$S3/lib" && touch "$S3/lib/.complete-$S3_VERSION"
}

s3_up() {
  if s3_ready || settle_or_kill s3proxy s3_ready; then
    return 0
  fi
  local pkgs=()
  have java || pkgs+=(openjdk-17-jdk-headless)
  s3_lib_ok || have mvn || pkgs+=(maven)
  apt_install "${pkgs[@]}"
  if ! s3_lib_ok; then
    log "s3proxy: fetching $S3_VERSION jars with Maven"
    s3_fetch
  fi
  mkdir -p "$S3/data"
  cat >"$S3/s3proxy.conf" <<EOF
# generated by scripts/services.sh
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=parley
s3proxy.credential=parley-secret-key
jclouds.provider=filesystem
jclouds.filesystem.basedir=$S3/data
EOF
  cat >"$S3/logback.xml" <<EOF
<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d %level %logger{20} %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="OUT"/></root>
</configuration>
EOF
  log "s3proxy: starting"
  launch s3proxy "$S3" "$LOGS/s3proxy.log" java -Xms64m -Xmx256m -XX:+UseSerialGC \
    -Dlogback.configurationFile="$S3/logback.xml" -cp "$S3/lib/*" org.gaul.s3proxy.Main --properties "$S3/s3proxy.conf"
  local deadline=$((SECONDS + 60))
  until s3_ready; do
    our_pid s3proxy >/dev/null || fail s3proxy "process exited during startup" "$LOGS/s3proxy.log"
    [ $SECONDS -lt $deadline ] || fail s3proxy "port $S3_PORT not open after 60s" "$LOGS/s3proxy.log"
    sleep 0.2
  done
  log "s3proxy: ready on 127.0.0.1:$S3_PORT ($(elapsed))"
}

# ---------------------------------------------------------------- commands ---

# A process of ours that is alive but not answering gets a short grace period,
# then is treated as half-started and killed.
settle_or_kill() { # settle_or_kill NAME READY_CMD...
  local name=$1 deadline=$((SECONDS + 10)); shift
  our_pid "$name" >/dev/null || { rm -f "$RUN/$name.pid"; return 1; }
  while [ $SECONDS -lt $deadline ]; do
    "$@" && return 0
    our_pid "$name" >/dev/null || break
    sleep 0.2
  done
  log "$name: found a half-started instance, restarting it"
  stop_services 10 "$name"
  return 1
}

cmd_up() {
  s3_up
  local pkgs=() my_need=0 rd_need=0 ns_need=0 br_need=0 mq_need=0 mq_verify_only=0

  # --- what is already answering?
  if [ "$MY_EXT" = 1 ]; then
    have mariadb || pkgs+=(mariadb-client)
  elif mysql_ready || settle_or_kill mariadb mysql_ready; then
    :
  elif port_open 127.0.0.1 3306; then
    mariadb_bootstrap_foreign ||
      fail mariadb "127.0.0.1:3306 is in use by a server that rejects $MY_USER/$MY_PASS (and root socket bootstrap failed); stop it or set PARLEY_MYSQL_DSN"
    log "mariadb: created parley user/databases on the already-running server"
  else
    my_need=1
    have mariadbd && have mariadb-install-db || pkgs+=(mariadb-server)
  fi

  if [ "$RD_EXT" = 1 ]; then
    have redis-cli || pkgs+=(redis-tools)
  elif redis_ready || settle_or_kill redis redis_ready; then
    :
  elif port_open 127.0.0.1 6379; then
    fail redis "127.0.0.1:6379 is in use by something that does not answer PING; stop it or set PARLEY_REDIS_ADDR"
  else
    rd_need=1
    have redis-server && have redis-cli || pkgs+=(redis-server redis-tools)
  fi

  if [ "$MQ_EXT" = 1 ]; then
    mq_need=1
  else
    port_open 127.0.0.1 9876 || settle_or_kill namesrv port_open 127.0.0.1 9876 || ns_need=1
    port_open 127.0.0.1 $MQ_BROKER_PORT || settle_or_kill broker port_open 127.0.0.1 $MQ_BROKER_PORT || br_need=1
    if [ $ns_need = 1 ] || [ $br_need = 1 ]; then
      mq_need=1
    elif { our_pid namesrv || our_pid broker; } >/dev/null && ! mq_verified; then
      # ours and running, but never passed the probe (e.g. the last `up` failed)
      mq_need=1 mq_verify_only=1
    fi
  fi
  if [ $mq_need = 1 ]; then
    have java && have javac || pkgs+=(openjdk-17-jdk-headless)
    mq_lib_ok || have mvn || pkgs+=(maven)
  fi

  # HAProxy: only the package; the end-to-end test of TLS termination and
  # the PROXY protocol (server/haproxy_test.go) runs a private instance.
  local hp_need=0
  have haproxy || { hp_need=1; pkgs+=(haproxy); }

  if [ $my_need = 0 ] && [ $rd_need = 0 ] && [ $mq_need = 0 ] && [ $hp_need = 0 ] && [ $MY_EXT = 0 ] && [ $RD_EXT = 0 ]; then
    log "all services already up ($(elapsed))"
    return 0
  fi

  # --- fetch RocketMQ jars in the background while apt works
  MQ_FETCH_PID=
  if [ $mq_need = 1 ] && ! mq_lib_ok && have mvn; then
    log "rocketmq: fetching $ROCKETMQ_VERSION jars with Maven (background)"
    mq_fetch &
    MQ_FETCH_PID=$!
  fi
  apt_install "${pkgs[@]}"
  if [ $mq_need = 1 ] && ! mq_lib_ok && [ -z "$MQ_FETCH_PID" ]; then
    log "rocketmq: fetching $ROCKETMQ_VERSION jars with Maven"
    mq_fetch &
    MQ_FETCH_PID=$!
  fi

  # --- external servers: only check that they answer
  if [ "$MY_EXT" = 1 ]; then
    mysql_ready || fail "mariadb (external, PARLEY_MYSQL_DSN)" "query as $MY_USER on $MY_HOST:$MY_PORT/$MY_DB failed"
    log "mariadb: external $MY_HOST:$MY_PORT answers"
  fi
  if [ "$RD_EXT" = 1 ]; then
    redis_ready || fail "redis (external, PARLEY_REDIS_ADDR)" "no PONG from $RD_HOST:$RD_PORT"
    log "redis: external $RD_HOST:$RD_PORT answers"
  fi

  # --- start everything, then wait
  if [ $rd_need = 1 ]; then log "redis: starting"; redis_start; fi
  if [ $my_need = 1 ]; then log "mariadb: starting"; mariadb_start; fi
  if [ $mq_need = 1 ]; then
    mq_fetch_wait
    if [ "$MQ_EXT" = 0 ]; then mq_start_local; fi
  fi
  if [ $rd_need = 1 ]; then redis_wait; fi
  if [ $mq_need = 1 ]; then mq_probe_build; fi
  if [ $my_need = 1 ]; then mariadb_wait; fi
  if [ $mq_need = 1 ]; then mq_check; fi
  log "all services up ($(elapsed))"
}

cmd_down() {
  stop_services 60 broker namesrv redis mariadb s3proxy
  rm -f "$RUN/mariadb.sock" "$RUN/rocketmq.verified"
  log "down ($(elapsed))"
}

cmd_status() {
  local down=0 pid owner
  line() { # line NAME ADDR UP(0/1) PIDNAME EXT
    owner=""
    if [ "$5" = 1 ]; then owner="external"
    elif pid=$(our_pid "$4"); then owner="pid $pid"
    elif [ "$3" = 0 ]; then owner="not started by this checkout"
    fi
    if [ "$3" = 0 ]; then printf '%-16s up    %-22s %s\n' "$1" "$2" "$owner"
    else printf '%-16s down  %-22s %s\n' "$1" "$2" "$owner"; down=1; fi
  }
  local s h
  mysql_ready && s=0 || s=1
  line mariadb "$MY_HOST:$MY_PORT" $s mariadb "$MY_EXT"
  redis_ready && s=0 || s=1
  line redis "$RD_HOST:$RD_PORT" $s redis "$RD_EXT"
  if [ "$MQ_EXT" = 1 ]; then
    h=${MQ_NS%%;*}
    port_open "${h%:*}" "${h##*:}" && s=0 || s=1
    line rocketmq "$MQ_NS" $s - 1
  else
    port_open 127.0.0.1 9876 && s=0 || s=1
    line rocketmq-namesrv 127.0.0.1:9876 $s namesrv 0
    port_open 127.0.0.1 $MQ_BROKER_PORT && s=0 || s=1
    line rocketmq-broker 127.0.0.1:$MQ_BROKER_PORT $s broker 0
  fi
  s3_ready && s=0 || s=1
  line s3proxy 127.0.0.1:$S3_PORT $s s3proxy 0
  return $down
}

main() {
  local cmd=${1:-}
  case $cmd in
    up | down | status) ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
  esac
  parse_env
  mkdir -p "$RUN" "$LOGS"
  if [ "$cmd" = status ]; then cmd_status; return; fi
  # one up/down at a time
  exec 9>"$RUN/lock"
  flock -w 600 9 || { echo "services: another services.sh is still running" >&2; exit 1; }
  "cmd_$cmd"
}

main "$@"
