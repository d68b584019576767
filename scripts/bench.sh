#!/usr/bin/env bash
# Benchmarks of the one-process platform with the loadgen tool, over loopback.
#
#   scripts/bench.sh conversation|idle|matching|cluster|all [options] [-- extra loadgen options]
#
# Builds release binaries (CARGO_TARGET_DIR, default $HOME/.cache/rc-release), starts a
# fresh `random-chats` for each run (in memory, or on SQLite files in a temporary data
# directory) pinned to CPU 0 with `taskset -c 0`, runs `loadgen` pinned to CPU 1, prints
# the figures and stops what it started (by PID).
#
# `cluster` runs the conversation (findmax, then 20 s at the maximum and at half) on the
# distributed form instead: `scripts/cluster.sh up` in release, pinned to CPU 0 with every
# backend it starts (its own Redis, MongoDB wire server and DynamoDB server on ports of
# their own; PostgreSQL, which holds only accounts, is the machine's), two ws-handlers and
# message-service on the MongoDB wire server; the server CPU is the sum over all of them.
#
# Options:
#   --storage memory|sqlite   server storage (default memory; `all` runs both)
#   --cluster-messages mongodb|sqlite
#                             `cluster`: message-service on the MongoDB wire server
#                             (default) or on a SQLite file, to measure the rest of the
#                             distributed form apart from that server
#   --pairs N                 conversation pairs (default 100)
#   --rate R                  conversation rate in msg/s, or findmax's first step (default 2000)
#   --findmax                 search for the highest rate that holds (default for `all`)
#   --duration S              measured seconds per run (default 10; findmax steps use 4)
#   --receipts                clients send `delivered` receipts
#   --connections N           idle connections (default 2000)
#   --processes N             idle worker processes (default 4)
#   --per-user N              idle connections per account (default 1)
#   --tickets K               matching tickets (default 2000)
#   --no-login                use the sign-up session instead of also logging in
#   --json                    also print each report as one JSON line
#   --no-pin                  do not pin (taskset) the server and the client
#   --port P                  gateway port (default 18080; `cluster`: its port base, 28080)
#   --out DIR                 also write each run's output to DIR
#
# The server gets per-connection WebSocket limits far above the load (RC_WS_*), since the
# defaults (5 sends per second per connection) would throttle any benchmark, and
# RUST_LOG=warn, so that logging one line per request does not dominate.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/rc-release}
BIN=$CARGO_TARGET_DIR/release

MODE=${1:-}
[ -n "$MODE" ] && shift || true
case "$MODE" in
  conversation|idle|matching|cluster|all) ;;
  *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

STORAGE=memory; CLUSTER_MESSAGES=mongodb; PAIRS=100; RATE=2000; FINDMAX=0; DURATION=10; RECEIPTS=0
CONNECTIONS=2000; PROCESSES=4; PER_USER=1; TICKETS=2000; NO_LOGIN=0; JSON=0; PIN=1
PORT=18080; OUT=""; EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --storage) STORAGE=$2; shift ;;
    --cluster-messages) CLUSTER_MESSAGES=$2; shift ;;
    --pairs) PAIRS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --findmax) FINDMAX=1 ;;
    --duration) DURATION=$2; shift ;;
    --receipts) RECEIPTS=1 ;;
    --connections) CONNECTIONS=$2; shift ;;
    --processes) PROCESSES=$2; shift ;;
    --per-user) PER_USER=$2; shift ;;
    --tickets) TICKETS=$2; shift ;;
    --no-login) NO_LOGIN=1 ;;
    --json) JSON=1 ;;
    --no-pin) PIN=0 ;;
    --port) PORT=$2; shift ;;
    --out) OUT=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$STORAGE" in memory|sqlite) ;; *) echo "--storage is memory or sqlite" >&2; exit 2 ;; esac
case "$CLUSTER_MESSAGES" in mongodb|sqlite) ;; *) echo "--cluster-messages is mongodb or sqlite" >&2; exit 2 ;; esac

SRV=(); CLI=()
if [ $PIN = 1 ]; then SRV=(taskset -c 0); CLI=(taskset -c 1); fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ -n "$OUT" ] && mkdir -p "$OUT"

echo "building release binaries in $CARGO_TARGET_DIR" >&2
if [ "$MODE" = cluster ]; then
  (cd "$ROOT" && cargo build --release --workspace --bins >&2)
else
  (cd "$ROOT" && cargo build --release -p random-chats -p loadgen >&2)
fi

SERVER_PID=""; DATA_DIR=""; LOG=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  [ -n "$DATA_DIR" ] && rm -rf "$DATA_DIR"
  [ -n "$LOG" ] && rm -f "$LOG"
  DATA_DIR=""; LOG=""
}
trap stop_server EXIT

start_server() { # $1 = memory|sqlite
  local storage=(--in-memory)
  if [ "$1" = sqlite ]; then
    DATA_DIR=$(mktemp -d /tmp/rc-bench-data.XXXXXX)
    storage=(--data-dir "$DATA_DIR")
  fi
  LOG=$(mktemp /tmp/rc-bench-log.XXXXXX)
  RUST_LOG=${RUST_LOG:-warn} \
  RC_WS_SEND_PER_SEC=1000000 RC_WS_SEND_BURST=1000000 \
  RC_WS_FRAMES_PER_SEC=1000000 RC_WS_FRAMES_BURST=1000000 \
    "${SRV[@]}" "$BIN/random-chats" --listen "127.0.0.1:$PORT" "${storage[@]}" >"$LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    grep -q "is running at" "$LOG" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "the server did not start:" >&2; cat "$LOG" >&2; exit 1
}

loadgen() { # $1 = label, then loadgen arguments
  local label=$1; shift
  local common=(--gateway "http://127.0.0.1:$PORT")
  [ $JSON = 1 ] && common+=(--json)
  [ $NO_LOGIN = 1 ] && common+=(--no-login)
  echo "== $label ($(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ -n "$OUT" ]; then
    "${CLI[@]}" "$BIN/loadgen" "${common[@]}" "$@" "${EXTRA[@]}" | tee "$OUT/$label.txt"
  else
    "${CLI[@]}" "$BIN/loadgen" "${common[@]}" "$@" "${EXTRA[@]}"
  fi
}

conversation() { # $1 = storage, $2 = pairs, then extra arguments
  local storage=$1 pairs=$2; shift 2
  local args=(conversation --pairs "$pairs" --rate "$RATE")
  [ $RECEIPTS = 1 ] && args+=(--delivered-receipts)
  start_server "$storage"
  loadgen "conversation-$storage-p$pairs-r$RATE" "${args[@]}" --server-pid "$SERVER_PID" "$@"
  stop_server
}

findmax_then_half() { # $1 = storage, $2 = pairs: findmax, then 20 s at the max and at half
  local storage=$1 pairs=$2 out max
  start_server "$storage"
  local args=(conversation --pairs "$pairs" --rate "$RATE")
  [ $RECEIPTS = 1 ] && args+=(--delivered-receipts)
  out=$(JSON=1 loadgen "findmax-$storage-p$pairs" "${args[@]}" --findmax --warmup 1 \
        --duration 4 --server-pid "$SERVER_PID")
  echo "$out" | grep -v '^{'
  max=$(echo "$out" | grep '^{' | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["max_pass_rate"] or 0))')
  stop_server
  [ "$JSON" = 1 ] && echo "$out" | grep '^{'
  if [ "$max" -gt 0 ]; then
    RATE=$max conversation "$storage" "$pairs" --warmup 2 --duration 20
    RATE=$((max / 2)) conversation "$storage" "$pairs" --warmup 2 --duration 20
  fi
}

idle_run() { # $1 = connections
  start_server memory
  loadgen "idle-$1" idle --connections "$1" --processes "$PROCESSES" \
    --connections-per-user "$PER_USER" --server-pid "$SERVER_PID"
  stop_server
}

matching_run() {
  start_server memory
  loadgen "matching-$TICKETS" matching --tickets "$TICKETS" --server-pid "$SERVER_PID"
  stop_server
}

# The distributed form, as scripts/cluster.sh runs it, with the same limits raised as for
# the one-process server.
CLUSTER_DIR=""
stop_cluster() {
  if [ -n "$CLUSTER_DIR" ]; then
    RC_CLUSTER_DIR=$CLUSTER_DIR "$ROOT/scripts/cluster.sh" down >&2 || true
    rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=""
  fi
}
cluster_findmax() { # $1 = pairs
  local pairs=$1 base=$PORT out max pids
  [ "$base" = 18080 ] && base=28080
  CLUSTER_DIR=$(mktemp -d /tmp/rc-bench-cluster.XXXXXX)
  trap 'stop_cluster; stop_server' EXIT
  export RC_CLUSTER_DIR=$CLUSTER_DIR RC_CLUSTER_PROFILE=release RC_CLUSTER_PORT_BASE=$base
  export RC_CLUSTER_BIN_DIR=$BIN RC_CLUSTER_POSTGRES_DB=rc_bench
  export RC_CLUSTER_REDIS_PORT=$((base + 20)) RC_CLUSTER_MONGODB_PORT=$((base + 21))
  export RC_CLUSTER_DYNAMODB_PORT=$((base + 22))
  export RC_CLUSTER_EXTRA_ENV="WSH_SEND_PER_SEC=1000000 WSH_SEND_BURST=1000000 WSH_FRAMES_PER_SEC=1000000 WSH_FRAMES_BURST=1000000 GATEWAY_RATE_PER_SECOND=1000000 GATEWAY_RATE_BURST=1000000"
  if [ "$CLUSTER_MESSAGES" = sqlite ]; then
    RC_CLUSTER_EXTRA_ENV+=" MESSAGE_DATABASE_URL=sqlite://$CLUSTER_DIR/messages.db?mode=rwc"
  fi
  echo "message-service stores on $CLUSTER_MESSAGES"
  RUST_LOG=${RUST_LOG:-warn} "${SRV[@]}" "$ROOT/scripts/cluster.sh" up >&2
  pids=$("$ROOT/scripts/cluster.sh" pids | awk '$1 != "postgres" {print $2}' | paste -sd,)
  echo "cluster processes (name pid): $("$ROOT/scripts/cluster.sh" pids | tr '\n' ' ')"
  local saved_port=$PORT; PORT=$base
  local args=(conversation --pairs "$pairs" --rate "$RATE")
  [ $RECEIPTS = 1 ] && args+=(--delivered-receipts)
  out=$(JSON=1 loadgen "findmax-cluster-p$pairs" "${args[@]}" --findmax --warmup 1 \
        --duration 4 --server-pid "$pids")
  echo "$out" | grep -v '^{'
  [ "$JSON" = 1 ] && echo "$out" | grep '^{'
  max=$(echo "$out" | grep '^{' | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["max_pass_rate"] or 0))')
  if [ "$max" -gt 0 ]; then
    for rate in "$max" $((max / 2)); do
      loadgen "conversation-cluster-p$pairs-r$rate" conversation --pairs "$pairs" --rate "$rate" \
        --warmup 2 --duration 20 --server-pid "$pids"
    done
  fi
  PORT=$saved_port
  stop_cluster
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
case "$MODE" in
  conversation)
    if [ $FINDMAX = 1 ]; then findmax_then_half "$STORAGE" "$PAIRS"
    else conversation "$STORAGE" "$PAIRS" --duration "$DURATION"; fi ;;
  idle) idle_run "$CONNECTIONS" ;;
  matching) matching_run ;;
  cluster) cluster_findmax "$PAIRS" ;;
  all)
    findmax_then_half sqlite 100
    findmax_then_half memory 100
    findmax_then_half memory 1000
    idle_run "$CONNECTIONS"
    matching_run ;;
esac
