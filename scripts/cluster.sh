#!/usr/bin/env bash
# The distributed form of Random Chats as local processes on 127.0.0.1: the topology of
# docker-compose.yml (auth-service, message-service, ws-manager, two matching-service,
# two ws-handler, the gateway) against local PostgreSQL, Redis, a MongoDB wire server and a
# DynamoDB server, with the same environment variables as the compose file (only hosts and
# ports differ). Backends that are not listening are started too; `down` stops, by PID,
# exactly what `up` started.
#
#   scripts/cluster.sh up              start everything, wait until every /readyz answers
#   scripts/cluster.sh status          each process: PID, alive, /readyz
#   scripts/cluster.sh logs [-f] [NAME] a log (all of them, last lines, without NAME)
#   scripts/cluster.sh down            stop what `up` started
#   scripts/cluster.sh instances       NAME BINARY PORT of every service instance
#   scripts/cluster.sh pids            NAME PID of every process `up` started that runs
#   scripts/cluster.sh env NAME        the environment NAME runs with (NAME=VALUE lines)
#
# `up` is idempotent: run again, it starts only what is not running (a backend or an
# instance that stopped or was killed) and leaves the rest alone.
#
# Settings (environment):
#   RC_CLUSTER_DIR          state: PIDs, logs, the service token (~/.cache/rc-cluster)
#   RC_CLUSTER_PROFILE      release (default) or debug: which cargo build to run
#   RC_CLUSTER_BIN_DIR      take the binaries from here instead (no build)
#   RC_CLUSTER_BUILD=1      build even when the binaries exist
#   CARGO_TARGET_DIR        cargo's target directory (default ./target)
#   RC_CLUSTER_PORT_BASE    gateway port; the others follow it (8080: auth 8081, message
#                           8082, matching 8083 and 8085, ws-manager 8084, ws-handlers 8090
#                           and 8091, gateway operators 9080)
#   RC_CLUSTER_POSTGRES_PORT (5432), RC_CLUSTER_POSTGRES_DB (rc_cluster),
#   RC_CLUSTER_REDIS_PORT (6379), RC_CLUSTER_MONGODB_PORT (27017),
#   RC_CLUSTER_DYNAMODB_PORT (8000)
#   RC_CLUSTER_VENV         virtual environment of the Python servers (~/.cache/rc-ci-venv,
#                           the one .ci/run uses)
#   RC_CLUSTER_TLS_CERT, RC_CLUSTER_TLS_KEY
#                           PEM certificate chain and key: the gateway serves HTTPS and WSS
#                           (GATEWAY_TLS_CERT, GATEWAY_TLS_KEY); both or neither
#   RC_SERVICE_TOKEN        the service token (default: random, kept in the state dir)
#   RC_CLUSTER_EXTRA_ENV    NAME=VALUE words added to every service instance's environment
#                           after the compose variables (scripts/bench.sh raises the
#                           per-connection and per-IP limits with it)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${RC_CLUSTER_DIR:-$HOME/.cache/rc-cluster}"
PROFILE="${RC_CLUSTER_PROFILE:-release}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN_DIR="${RC_CLUSTER_BIN_DIR:-$TARGET/$PROFILE}"
VENV="${RC_CLUSTER_VENV:-$HOME/.cache/rc-ci-venv}"

BASE="${RC_CLUSTER_PORT_BASE:-8080}"
PG_PORT="${RC_CLUSTER_POSTGRES_PORT:-5432}"
PG_DB="${RC_CLUSTER_POSTGRES_DB:-rc_cluster}"
REDIS_PORT="${RC_CLUSTER_REDIS_PORT:-6379}"
MONGO_PORT="${RC_CLUSTER_MONGODB_PORT:-27017}"
DYNAMO_PORT="${RC_CLUSTER_DYNAMODB_PORT:-8000}"
TLS_CERT="${RC_CLUSTER_TLS_CERT:-}"
TLS_KEY="${RC_CLUSTER_TLS_KEY:-}"

# Service instances in start order (each one's dependencies come before it, as the
# compose file's depends_on says): name, binary, port.
INSTANCES=(
  "auth-service auth-service $((BASE + 1))"
  "message-service message-service $((BASE + 2))"
  "ws-manager ws-manager $((BASE + 4))"
  "matching-service-1 matching-service $((BASE + 3))"
  "matching-service-2 matching-service $((BASE + 5))"
  "ws-handler-1 ws-handler $((BASE + 10))"
  "ws-handler-2 ws-handler $((BASE + 11))"
  "gateway gateway $BASE"
)
BACKENDS=(postgres redis mongodb dynamodb)

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*"; }

case "$PROFILE" in
  release | debug) ;;
  *) die "RC_CLUSTER_PROFILE is release or debug, not $PROFILE" ;;
esac
if [ -n "$TLS_CERT" ] || [ -n "$TLS_KEY" ]; then
  [ -n "$TLS_CERT" ] && [ -n "$TLS_KEY" ] ||
    die "set both RC_CLUSTER_TLS_CERT and RC_CLUSTER_TLS_KEY, or neither"
  # The gateway runs from another directory's point of view: absolute paths only.
  TLS_CERT="$(cd "$(dirname "$TLS_CERT")" && pwd)/$(basename "$TLS_CERT")"
  TLS_KEY="$(cd "$(dirname "$TLS_KEY")" && pwd)/$(basename "$TLS_KEY")"
  GATEWAY_SCHEME=https
else
  GATEWAY_SCHEME=http
fi

instance() { # name -> sets I_NAME I_BIN I_PORT
  local entry
  for entry in "${INSTANCES[@]}"; do
    read -r I_NAME I_BIN I_PORT <<<"$entry"
    [ "$I_NAME" = "$1" ] && return 0
  done
  die "no instance named $1 (see: $0 instances)"
}

url_of() { instance "$1"; echo "http://127.0.0.1:$I_PORT"; }

service_token() {
  if [ -n "${RC_SERVICE_TOKEN:-}" ]; then
    echo "$RC_SERVICE_TOKEN"
  elif [ -f "$STATE/service-token" ]; then
    cat "$STATE/service-token"
  else
    echo "(created by up in $STATE/service-token)"
  fi
}

# The environment of one instance: the same variable names as its service in
# docker-compose.yml (test-support/tests/deploy_config.rs holds them to that).
env_of() { # name
  instance "$1"
  local redis="redis://127.0.0.1:$REDIS_PORT"
  echo "RC_SERVICE_TOKEN=$(service_token)"
  echo "RC_REDIS_URL=$redis"
  echo "RC_LOG_FORMAT=json"
  case "$1" in
    auth-service)
      echo "AUTH_LISTEN=127.0.0.1:$I_PORT"
      echo "AUTH_DATABASE_URL=postgres://root@127.0.0.1:$PG_PORT/$PG_DB"
      echo "AUTH_SESSIONS_BACKEND=dynamodb"
      echo "AUTH_DYNAMODB_TABLE=rc_auth_sessions"
      echo "AUTH_DYNAMODB_ENDPOINT=http://127.0.0.1:$DYNAMO_PORT"
      echo "AUTH_DYNAMODB_REGION=us-east-1"
      echo "AUTH_SIGNING_KEY_FILE=$STATE/auth-signing-key.pem"
      echo "AUTH_MATCHING_URL=$(url_of matching-service-1)"
      ;;
    message-service)
      echo "MESSAGE_LISTEN=127.0.0.1:$I_PORT"
      echo "MESSAGE_DATABASE_URL=mongodb://127.0.0.1:$MONGO_PORT"
      echo "MESSAGE_MONGODB_DATABASE=random_chats"
      echo "MESSAGE_AUTH_URL=$(url_of auth-service)"
      echo "MESSAGE_WS_MANAGER_URL=$(url_of ws-manager)"
      ;;
    ws-manager)
      echo "WSM_LISTEN=127.0.0.1:$I_PORT"
      echo "WSM_REDIS_URL=$redis"
      ;;
    matching-service-1 | matching-service-2)
      echo "MATCHING_LISTEN=127.0.0.1:$I_PORT"
      echo "MATCHING_REDIS_URL=$redis"
      echo "MATCHING_AUTH_URL=$(url_of auth-service)"
      echo "MATCHING_MESSAGE_URL=$(url_of message-service)"
      echo "MATCHING_WS_MANAGER_URL=$(url_of ws-manager)"
      ;;
    ws-handler-1 | ws-handler-2)
      local matcher="matching-service-${1#ws-handler-}"
      echo "WSH_LISTEN=127.0.0.1:$I_PORT"
      echo "WSH_PUBLIC_URL=http://127.0.0.1:$I_PORT"
      echo "WSH_REDIS_URL=$redis"
      echo "WSH_AUTH_URL=$(url_of auth-service)"
      echo "WSH_MESSAGE_URL=$(url_of message-service)"
      echo "WSH_MATCHING_URL=$(url_of "$matcher")"
      echo "WSH_WS_MANAGER_URL=$(url_of ws-manager)"
      ;;
    gateway)
      echo "GATEWAY_LISTEN=127.0.0.1:$I_PORT"
      echo "GATEWAY_OPERATOR_LISTEN=127.0.0.1:$((BASE + 1000))"
      echo "GATEWAY_AUTH_URL=$(url_of auth-service)"
      echo "GATEWAY_MESSAGE_URL=$(url_of message-service)"
      echo "GATEWAY_MATCHING_URL=$(url_of matching-service-1),$(url_of matching-service-2)"
      echo "GATEWAY_WS_MANAGER_URL=$(url_of ws-manager)"
      if [ -n "$TLS_CERT" ]; then
        echo "GATEWAY_TLS_CERT=$TLS_CERT"
        echo "GATEWAY_TLS_KEY=$TLS_KEY"
      fi
      ;;
  esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The PID recorded for NAME if that process still runs the expected program, else nothing:
# a PID the system has given to another program since is never signalled.
live_pid() { # name
  local file="$STATE/pids/$1" pid expected
  [ -f "$file" ] || return 0
  read -r pid expected <"$file"
  [ -r "/proc/$pid/cmdline" ] || return 0
  local command
  command="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$command" == *"$expected"* ]]; then
    echo "$pid"
  fi
}

record() { # name pid program-pattern
  echo "$2 $3" >"$STATE/pids/$1"
}

# Starts a command in a session of its own (so that it outlives this script and a Ctrl-C
# here), appending its output to a log, and records its PID as NAME's. Sets SPAWNED.
spawn() { # name program-pattern log command...
  local name="$1" pattern="$2" log="$3" file="$STATE/pids/$1.starting"
  shift 3
  rm -f "$file"
  # The inner shell writes its own PID, then becomes the program (exec keeps the PID); the
  # single quotes are meant: the inner shell expands them.
  # shellcheck disable=SC2016
  setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$file" "$@" >>"$log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    [ -s "$file" ] && break
    sleep 0.05
  done
  [ -s "$file" ] || die "$name did not start"
  SPAWNED="$(cat "$file")"
  rm -f "$file"
  record "$name" "$SPAWNED" "$pattern"
}

wait_port() { # port name
  for _ in $(seq 1 150); do
    port_open "$1" && return 0
    sleep 0.2
  done
  echo "cluster: $2 did not listen on port $1; the end of its log:" >&2
  tail -n 30 "$STATE/logs/$2.log" >&2 || true
  return 1
}

python_tools() {
  if [ ! -x "$VENV/bin/secantusd-py" ] || [ ! -x "$VENV/bin/moto_server" ]; then
    say "installing the MongoDB and DynamoDB wire servers into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'secantusdb==0.7.0b3' 'moto[server,dynamodb]==5.2.5'
  fi
}

start_backends() {
  # PostgreSQL: the machine's own cluster, as .ci/run starts it.
  if ! pg_isready -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then
    [ "$PG_PORT" = 5432 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] ||
      die "PostgreSQL is not listening on 127.0.0.1:$PG_PORT and cannot be started here"
    local version
    # The entries are version numbers.
    # shellcheck disable=SC2012
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    say "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p "$PG_PORT" -q && break; sleep 0.2; done
    local pidfile="/var/lib/postgresql/$version/main/postmaster.pid"
    [ -f "$pidfile" ] && record postgres "$(head -n 1 "$pidfile")" postgres
  fi
  pg_isready -h 127.0.0.1 -p "$PG_PORT" -q || die "PostgreSQL did not start"
  if ! psql -h 127.0.0.1 -p "$PG_PORT" -U root -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    say "creating the PostgreSQL database $PG_DB"
    psql -h 127.0.0.1 -p "$PG_PORT" -U root -d postgres -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
  fi

  if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    spawn redis redis-server "$STATE/logs/redis.log" \
      redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
    wait_port "$REDIS_PORT" redis
  fi

  if ! port_open "$MONGO_PORT" || ! port_open "$DYNAMO_PORT"; then
    python_tools
  fi
  if ! port_open "$MONGO_PORT"; then
    say "starting the MongoDB wire server on 127.0.0.1:$MONGO_PORT"
    spawn mongodb secantusd "$STATE/logs/mongodb.log" \
      "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path :memory:
    wait_port "$MONGO_PORT" mongodb
  fi
  if ! port_open "$DYNAMO_PORT"; then
    say "starting the DynamoDB server on 127.0.0.1:$DYNAMO_PORT"
    spawn dynamodb moto_server "$STATE/logs/dynamodb.log" \
      "$VENV/bin/moto_server" -H 127.0.0.1 -p "$DYNAMO_PORT"
    wait_port "$DYNAMO_PORT" dynamodb
  fi
}

binaries() {
  local missing=0 entry
  for entry in "${INSTANCES[@]}"; do
    read -r _ bin _ <<<"$entry"
    [ -x "$BIN_DIR/$bin" ] || missing=1
  done
  if [ "$missing" = 1 ] || [ "${RC_CLUSTER_BUILD:-0}" = 1 ]; then
    [ -z "${RC_CLUSTER_BIN_DIR:-}" ] || die "binaries missing in RC_CLUSTER_BIN_DIR=$BIN_DIR"
    local flags=(--workspace --bins)
    [ "$PROFILE" = release ] && flags+=(--release)
    say "cargo build ${flags[*]} (target $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build "${flags[@]}")
  fi
}

ready() { # port
  if [ "$1" = "$BASE" ] && [ "$GATEWAY_SCHEME" = https ]; then
    # Loopback, our own certificate: whether it is trusted is not the question here.
    curl -kfsS -o /dev/null --max-time 2 "https://127.0.0.1:$1/readyz" 2>/dev/null
  else
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/readyz" 2>/dev/null
  fi
}

start_instance() { # name
  instance "$1"
  local name="$I_NAME" bin="$I_BIN" port="$I_PORT"
  if [ -n "$(live_pid "$name")" ]; then
    say "$name is already running"
    return 0
  fi
  port_open "$port" && die "port $port (for $name) is taken by another program"
  local vars=()
  mapfile -t vars < <(env_of "$name")
  # A clean environment: only what the compose file sets, plus PATH, HOME and RUST_LOG,
  # and RC_CLUSTER_EXTRA_ENV last (so it wins).
  local extra=() added=()
  [ -n "${RUST_LOG:-}" ] && extra+=("RUST_LOG=$RUST_LOG")
  [ -n "${RC_CLUSTER_EXTRA_ENV:-}" ] && read -r -a added <<<"$RC_CLUSTER_EXTRA_ENV"
  spawn "$name" "$BIN_DIR/$bin" "$STATE/logs/$name.log" \
    env -i PATH="$PATH" HOME="$HOME" "${extra[@]}" "${vars[@]}" "${added[@]}" "$BIN_DIR/$bin"
  local pid="$SPAWNED"
  for _ in $(seq 1 300); do
    ready "$port" && { say "$name ready on 127.0.0.1:$port (pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "cluster: $name did not become ready on port $port; the end of its log:" >&2
  tail -n 30 "$STATE/logs/$name.log" >&2 || true
  return 1
}

# Sends SIGTERM to every named process that still runs, waits for all of them (a ws-handler
# drains its sockets within WSH_DRAIN_SECS, 10, and the shutdown deadline,
# RC_SHUTDOWN_DEADLINE_SECS, 15), and sends SIGKILL to any still running after 30 s.
stop_all() { # names...
  local name pid stopping=()
  for name in "$@"; do
    pid="$(live_pid "$name")"
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$name:$pid")
    else
      rm -f "$STATE/pids/$name"
    fi
  done
  local entry
  for entry in "${stopping[@]}"; do
    name="${entry%%:*}" pid="${entry##*:}"
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop in 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name (pid $pid)"
    rm -f "$STATE/pids/$name"
  done
}

cmd_up() {
  mkdir -p "$STATE/pids" "$STATE/logs"
  chmod 700 "$STATE"
  if [ -z "${RC_SERVICE_TOKEN:-}" ] && [ ! -f "$STATE/service-token" ]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/service-token")
  fi
  binaries
  start_backends
  local entry
  for entry in "${INSTANCES[@]}"; do
    read -r name _ _ <<<"$entry"
    if ! start_instance "$name"; then
      say "stopping what was started"
      cmd_down
      exit 1
    fi
  done
  say "up: the gateway is $GATEWAY_SCHEME://127.0.0.1:$BASE (operators: http://127.0.0.1:$((BASE + 1000)))"
}

cmd_down() {
  [ -d "$STATE/pids" ] || { say "nothing started"; return 0; }
  local entry names=()
  for entry in "${INSTANCES[@]}"; do
    read -r name _ _ <<<"$entry"
    names+=("$name")
  done
  # The services first, all at once; the backends they use after them.
  stop_all "${names[@]}"
  stop_all "${BACKENDS[@]}"
}

cmd_status() {
  local entry pid state any_down=0
  printf '%-20s %-8s %-6s %s\n' NAME PID PORT READY
  for entry in "${INSTANCES[@]}"; do
    read -r name _ port <<<"$entry"
    pid="$(live_pid "$name")"
    if [ -z "$pid" ]; then
      state="not running"; any_down=1; pid=-
    elif ready "$port"; then
      state="ready"
    else
      state="NOT READY"; any_down=1
    fi
    printf '%-20s %-8s %-6s %s\n' "$name" "$pid" "$port" "$state"
  done
  for name in "${BACKENDS[@]}"; do
    pid="$(live_pid "$name")"
    [ -n "$pid" ] && printf '%-20s %-8s %-6s %s\n' "$name" "$pid" - "started by up"
  done
  return "$any_down"
}

cmd_pids() {
  local entry name pid
  for entry in "${INSTANCES[@]}"; do
    read -r name _ _ <<<"$entry"
    pid="$(live_pid "$name")"
    [ -n "$pid" ] && echo "$name $pid"
  done
  for name in "${BACKENDS[@]}"; do
    pid="$(live_pid "$name")"
    [ -n "$pid" ] && echo "$name $pid"
  done
  return 0
}

cmd_logs() {
  local follow=()
  if [ "${1:-}" = -f ]; then follow=(-f); shift; fi
  if [ -n "${1:-}" ]; then
    [ -f "$STATE/logs/$1.log" ] || die "no log for $1 in $STATE/logs"
    tail -n 200 "${follow[@]}" "$STATE/logs/$1.log"
  else
    tail -n 20 "${follow[@]}" "$STATE"/logs/*.log
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  pids) cmd_pids ;;
  logs) shift; cmd_logs "$@" ;;
  instances)
    for entry in "${INSTANCES[@]}"; do echo "$entry"; done
    ;;
  env)
    [ -n "${2:-}" ] || die "usage: $0 env NAME"
    env_of "$2"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
