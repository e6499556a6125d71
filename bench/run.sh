#!/usr/bin/env bash
# Benchmark of the release build of authgate on a private Redis. See bench/README.md.
#
#   bash bench/run.sh                          # 10 s per phase, 64 connections
#   DURATION=20s CONNECTIONS=128 bash bench/run.sh
#
# Knobs (environment):
#   DURATION      per measured phase, wrk/oha syntax (10s, 1m)          default 10s
#   CONNECTIONS   open connections in every phase                        default 64
#   THREADS       wrk threads for phases a, b, d, e, f (c: see FLOW_CLIENT) default 2
#   FLOW_CLIENT   phase c's load client, and its paired slices':
#                 native: bench/flowload (authgate-flowload), built with the gateway;
#                 wrk: wrk with lua/flow.lua, one thread per connection (the old way, about
#                 three to four times the client CPU per request; see the README)
#                                                                        default native
#   FLOW_THREADS  the native flow client's threads (one is cheaper per request than two
#                 and keeps up: see the README)                          default 1
#   EXCHANGE_CLIENT  phase f's load client: native: authgate-flowload --exchange with
#                 FLOW_THREADS threads; wrk: wrk with lua/exchange.lua and THREADS threads
#                 (its Lua response() callback costs about twice the client CPU per request)
#                                                                        default FLOW_CLIENT's
#   CALIBRATION   length of the one-connection sample after each phase   default 3s
#   WARMUP        unmeasured warm-up before the first phase              default 3s
#   KEY_USERS     distinct usernames the key request phase cycles over   default 100000
#   FIXED_RATE    req/s of the half-ceiling fixed-rate check of the key request (default: half
#                 the ceiling measured in this run); the per-endpoint fixed-rate runs (key
#                 request, verify, code request at half their own throughput) ignore it
#   FIXED_DURATION length of each fixed-rate run (default: DURATION, but at least 10 s: in
#                 a shorter open-loop run one scheduling stall is the p99)
#   SKIP_FIXED=1  skip every fixed-rate run and (g) (and so the oha install)
#   SKIP_BUILD=1  use the existing binary
#   REV=<commit>  benchmark that commit instead of the working tree: a clean `git archive`
#                 export under target/bench-src/, built in target/bench-rev/ (keeps
#                 target/release untouched; handy while the working tree is mid-edit)
#   ROUNDS        run phases a-f this many times, interleaved, and report each phase's best
#                 round (for a machine shared with other work)           default 1
#   QUIET_WAIT    before each phase, wait up to this many seconds for the machine to be
#                 idle (other processes under 0.25 cores over 1 s); the run goes on either
#                 way and reports the other processes' load per phase    default 30
#   OTP_USERS     password-less users of the demo's "Customers" profile for phase f
#                 (one code each per round; f stops when they are used up)   default 30000
#   OTP_CAL_USERS more users for f's one-connection calibration             default 3000
#   DELIVERY_RATE code requests/s for the steady delivery latency check      default 200
#   PAIRS         paired slices per target endpoint (ceiling, then the endpoint, back to
#                 back) for the target ratios; 0 skips them                    default 5
#   SLICE         length of each slice                                         default 3s
#   FILL_KEYS     keys that live a day, written to the (single) private Redis before anything
#                 is measured, so that its tables are past the sizes the run reaches
#                 and no measurement falls in a resize; 0 starts from an empty Redis
#                                                                              default 4300000
#   PROFILE=NAMES perf-record the gateway during the phases named (comma-separated:
#                 health,keyreq,flow,verify); this perturbs those phases, so the
#                 figures of a profiled run are not comparable with others
#   REDIS         single: one private redis-server (the default);
#                 cluster: a private 6-node Redis Cluster (3 primaries, 3 replicas), the
#                 gateway given one node, and each primary's share of every phase's commands;
#                 both: the single-node run, then the cluster run, then a side-by-side table
#                 (results in results/single/, results/cluster/, results/latest.md)
#   CLUSTER_BASE  cluster: first node port (nodes base..base+5, bus ports +10000); default
#                 a random free window below the ephemeral port range
#   CLUSTER_WAIT  cluster: seconds allowed for cluster_state:ok and the replicas' links   default 60
#   OUTBOX_REPLICAS  passed to the gateway as AUTHGATE_REDIS_OUTBOX_REPLICAS (unset: the
#                 gateway's default, which WAITs for 1 replica when the primaries have one)
#   PEERS=1       also measure the peer, Better Auth with its emailOTP plugin (bench/peer/,
#                 installed with npm ci on the first run), on its own private Redis: its code
#                 request and its sign-in, each right after authgate's (e) and (f), same wrk
#                 settings (see the README, "The peer"); with REDIS=both, in the single half
#   PEER_USERS    users (and so codes) in the peer's sign-in pool, per round    default 10000
#   REVOCATIONS   (h) samples of a logout on one replica while a second replica, which
#                 checked the token from memory, polls it: time until it refuses; 0 skips (h)
#                                                                              default 200
#   STEAL_LIMIT   a measured phase with more CPU steal than this, in percent of all CPU time,
#                 gets the verdict "noisy" instead of pass/fail                default 5
#   VERIFY_TOKENS distinct access tokens (sessions) phase d cycles through: 1 session key
#                 would sit on one primary. Default 1 with REDIS=single (as before the
#                 cluster mode), 64 with cluster, and 64 in both halves of REDIS=both
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# BENCH_RESULTS is how REDIS=both gives each half its own directory.
RESULTS=${BENCH_RESULTS:-$BENCH/results}
BIN=$ROOT/target/release/authgate

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
CALIBRATION=${CALIBRATION:-3s}
WARMUP=${WARMUP:-3s}
KEY_USERS=${KEY_USERS:-100000}
FIXED_RATE=${FIXED_RATE:-}
SKIP_FIXED=${SKIP_FIXED:-0}
FIXED_DURATION=${FIXED_DURATION:-}
REVOCATIONS=${REVOCATIONS:-200}
SKIP_BUILD=${SKIP_BUILD:-0}
FLOW_CLIENT=${FLOW_CLIENT:-native}
EXCHANGE_CLIENT=${EXCHANGE_CLIENT:-$FLOW_CLIENT}
FLOW_THREADS=${FLOW_THREADS:-1}
PROFILE=${PROFILE:-}
FILL_KEYS=${FILL_KEYS:-4300000}
REV=${REV:-}
OTP_USERS=${OTP_USERS:-30000}
OTP_CAL_USERS=${OTP_CAL_USERS:-3000}
DELIVERY_RATE=${DELIVERY_RATE:-200}
QUIET_WAIT=${QUIET_WAIT:-30}
PAIRS=${PAIRS:-5}
SLICE=${SLICE:-3s}
ROUNDS=${ROUNDS:-1}
REDIS=${REDIS:-single}
CLUSTER_BASE=${CLUSTER_BASE:-}
CLUSTER_WAIT=${CLUSTER_WAIT:-60}
OUTBOX_REPLICAS=${OUTBOX_REPLICAS:-}
PEERS=${PEERS:-0}
PEER_USERS=${PEER_USERS:-10000}
STEAL_LIMIT=${STEAL_LIMIT:-5}
export STEAL_LIMIT # bench.py summarize reads it
if [[ -z ${VERIFY_TOKENS:-} ]]; then
  if [[ $REDIS == single ]]; then VERIFY_TOKENS=1; else VERIFY_TOKENS=64; fi
fi
export VERIFY_TOKENS # REDIS=both hands it to both halves
OHA_VERSION=1.16.0
PASSWORD=mypass123 # the demo's (crates/gateway/src/demo.rs); the bench users get it too

log() { printf '\033[1m[bench %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# "10s" / "2m" / "500ms" -> whole seconds (rounded up), for timeouts and sleeps.
seconds() {
  local v=$1
  case $v in
    *ms) echo $(( (${v%ms} + 999) / 1000 )) ;;
    *s) echo "${v%s}" ;;
    *m) echo $(( ${v%m} * 60 )) ;;
    *h) echo $(( ${v%h} * 3600 )) ;;
    *) echo "$v" ;;
  esac
}
DUR_S=$(seconds "$DURATION")
CAL_S=$(seconds "$CALIBRATION")
if [[ -z $FIXED_DURATION ]]; then
  FIXED_DURATION=$DURATION
  (( DUR_S < 10 )) && FIXED_DURATION=10s
fi
FIXED_S=$(seconds "$FIXED_DURATION")
[[ $DUR_S =~ ^[0-9]+$ && $DUR_S -ge 1 ]] || die "DURATION must look like 10s, 1m: got $DURATION"
[[ $CONNECTIONS =~ ^[0-9]+$ && $CONNECTIONS -ge 1 ]] || die "CONNECTIONS must be a positive integer"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive integer"
(( CONNECTIONS >= THREADS )) || die "CONNECTIONS ($CONNECTIONS) must be at least THREADS ($THREADS)"
[[ $VERIFY_TOKENS =~ ^[0-9]+$ && $VERIFY_TOKENS -ge 1 ]] || die "VERIFY_TOKENS must be a positive integer"
[[ $PEERS == 0 || $PEERS == 1 ]] || die "PEERS must be 0 or 1: got $PEERS"
[[ $FLOW_CLIENT == native || $FLOW_CLIENT == wrk ]] || die "FLOW_CLIENT must be native or wrk: got $FLOW_CLIENT"
[[ $EXCHANGE_CLIENT == native || $EXCHANGE_CLIENT == wrk ]] ||
  die "EXCHANGE_CLIENT must be native or wrk: got $EXCHANGE_CLIENT"
[[ $FLOW_THREADS =~ ^[0-9]+$ && $FLOW_THREADS -ge 1 && $FLOW_THREADS -le $CONNECTIONS ]] ||
  die "FLOW_THREADS must be an integer from 1 to CONNECTIONS ($CONNECTIONS): got $FLOW_THREADS"
[[ $PEER_USERS =~ ^[0-9]+$ && $PEER_USERS -ge 100 ]] || die "PEER_USERS must be an integer of at least 100"
[[ $STEAL_LIMIT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "STEAL_LIMIT must be a percentage (5, 2.5)"
[[ $REDIS == single || $REDIS == cluster || $REDIS == both ]] || die "REDIS must be single, cluster or both: got $REDIS"
[[ $CLUSTER_WAIT =~ ^[0-9]+$ && $CLUSTER_WAIT -ge 5 ]] || die "CLUSTER_WAIT must be a number of seconds (at least 5)"
[[ -z $CLUSTER_BASE || ( $CLUSTER_BASE =~ ^[0-9]+$ && $CLUSTER_BASE -ge 1024 && $CLUSTER_BASE -le 55530 ) ]] ||
  die "CLUSTER_BASE must be a port from 1024 to 55530 (its bus ports, +10000, must stay below 65536)"

# ---------------------------------------------------------------- 1. tools

SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    timeout 300 $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  timeout 600 $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || { log "installing wrk (Debian)"; apt_install wrk; }
command -v redis-server >/dev/null || { log "installing redis-server (Debian)"; apt_install redis-server; }
command -v redis-cli >/dev/null || apt_install redis-tools
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3
command -v md5sum >/dev/null || apt_install coreutils
if [[ $SKIP_FIXED != 1 ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v oha >/dev/null; then
    # Constant-rate load with latency measured from each request's scheduled start
    # (coordinated omission corrected). wrk2 is not packaged by Debian; oha is on crates.io.
    log "installing oha $OHA_VERSION (cargo install, a few minutes once)"
    timeout 1800 cargo install oha --locked --version "$OHA_VERSION" >&2 || die "cargo install oha failed; rerun with SKIP_FIXED=1 to skip the fixed-rate check"
  fi
fi
# The peer (PEERS=1): Node 20 or later, and bench/peer/node_modules from package-lock.json with
# `npm ci`, redone only when the lock file or Node's version changes (stamp file). npm 11 runs
# only the install scripts package.json's allowScripts names (better-sqlite3's); it is built
# from source against the local Node headers, since prebuilt binaries are downloads from
# outside the npm registry.
PEER_DIR=$BENCH/peer
if [[ $PEERS == 1 ]]; then
  command -v node >/dev/null && command -v npm >/dev/null || { log "installing nodejs and npm (Debian)"; apt_install nodejs npm; }
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  (( node_major >= 20 )) || die "the peer needs Node 20 or later (better-sqlite3 12); found $(node --version)"
  stamp="$(sha256sum "$PEER_DIR/package-lock.json" | cut -d' ' -f1) node $(node --version)"
  if [[ ! -f $PEER_DIR/node_modules/.bench-stamp || $(cat "$PEER_DIR/node_modules/.bench-stamp") != "$stamp" ]]; then
    log "installing the peer (npm ci in bench/peer: better-auth, better-sqlite3 built from source; a few minutes once)"
    nodedir=
    [[ -f /usr/include/node/node_version.h ]] && nodedir=/usr
    (cd "$PEER_DIR" && env npm_config_build_from_source=true ${nodedir:+npm_config_nodedir=$nodedir} \
      timeout 1200 npm ci --no-audit --no-fund >"${TMPDIR:-/tmp}/authgate-bench-npm-ci.log" 2>&1) ||
      die "npm ci in bench/peer failed (log: ${TMPDIR:-/tmp}/authgate-bench-npm-ci.log)"
    [[ -f $PEER_DIR/node_modules/better-sqlite3/build/Release/better_sqlite3.node ]] ||
      die "better-sqlite3 was not built (allowScripts in bench/peer/package.json?)"
    echo "$stamp" >"$PEER_DIR/node_modules/.bench-stamp"
  fi
fi

# ---------------------------------------------------------------- 2. build and start

SRC=$ROOT
if [[ -n $REV ]]; then
  SHA=$(git -C "$ROOT" rev-parse --verify "$REV^{commit}") || die "unknown revision $REV"
  SRC=$ROOT/target/bench-src/$SHA
  if [[ ! -f $SRC/Cargo.toml ]]; then
    log "exporting $SHA to target/bench-src/"
    mkdir -p "$SRC.tmp" && git -C "$ROOT" archive "$SHA" | tar -x -C "$SRC.tmp" && mv "$SRC.tmp" "$SRC"
  fi
  export CARGO_TARGET_DIR=$ROOT/target/bench-rev
  BIN=$CARGO_TARGET_DIR/release/authgate
fi
# Phase c's native load client (bench/flowload), next to the gateway in the same target dir.
FLOWLOAD=$(dirname "$BIN")/authgate-flowload
if [[ $SKIP_BUILD != 1 ]]; then
  if [[ -z $REV ]]; then
    log "cargo build --release -p authgate-gateway -p authgate-flowload"
    (cd "$SRC" && timeout 3600 cargo build --release -p authgate-gateway -p authgate-flowload) || die "release build failed"
  else
    log "cargo build --release -p authgate-gateway (revision $REV)"
    (cd "$SRC" && timeout 3600 cargo build --release -p authgate-gateway) || die "release build failed"
    # The load client is part of the harness, like lua/ and bench.py: always the working
    # tree's, built into the same target dir as the revision's gateway.
    if [[ $FLOW_CLIENT == native || $EXCHANGE_CLIENT == native ]]; then
      log "cargo build --release -p authgate-flowload (the working tree's, into ${CARGO_TARGET_DIR#"$ROOT"/})"
      (cd "$ROOT" && timeout 1800 cargo build --release -p authgate-flowload) || die "building the flow client failed"
    fi
  fi
fi
[[ -x $BIN ]] || die "$BIN is missing"
[[ ($FLOW_CLIENT != native && $EXCHANGE_CLIENT != native) || -x $FLOWLOAD ]] ||
  die "$FLOWLOAD is missing (build it: cargo build --release -p authgate-flowload; or FLOW_CLIENT=wrk)"

# REDIS=both: this script twice, single-node then cluster, each a complete run (its own Redis,
# gateway, users and receiver) in its own results directory, then the side-by-side table. The
# halves run minutes apart on a box whose speed drifts: compare them through the table's
# ceiling-normalised column as much as through raw req/s (see the README).
if [[ $REDIS == both ]]; then
  mkdir -p "$RESULTS"
  rm -f "$RESULTS"/*.json "$RESULTS"/*.txt "$RESULTS"/*.log "$RESULTS"/*.md "$RESULTS"/perf-*
  CHILD_PID=
  # A background child, so that a TERM to this shell is acted on at once (a foreground child
  # would be waited for first); it passes the signal on and waits for the child's own clean-up.
  stop_child() {
    trap - INT TERM
    if [[ -n $CHILD_PID ]]; then
      log "stopping the running half (pid $CHILD_PID); it tears down its own Redis and gateway"
      kill -TERM "$CHILD_PID" 2>/dev/null || true
      wait "$CHILD_PID" 2>/dev/null || true
    fi
    exit "$1"
  }
  trap 'stop_child 130' INT
  trap 'stop_child 143' TERM
  for half in single cluster; do
    log "REDIS=both: the $half half (results in ${RESULTS#"$ROOT"/}/$half/)"
    # The peer runs in the single half only: its own Redis is one server either way.
    half_peers=$PEERS
    [[ $half == cluster ]] && half_peers=0
    REDIS=$half BENCH_RESULTS=$RESULTS/$half SKIP_BUILD=1 PEERS=$half_peers bash "$BENCH/run.sh" &
    CHILD_PID=$!
    st=0
    wait "$CHILD_PID" || st=$?
    CHILD_PID=
    (( st == 0 )) || die "the $half half failed (exit status $st; see above)"
  done
  trap - INT TERM
  python3 "$BENCH/bench.py" compare "$RESULTS/single" "$RESULTS/cluster" >"$RESULTS/compare.md"
  {
    cat "$RESULTS/compare.md"
    printf '\n---\n\n## The single-node half\n\n'
    sed '1s/^# /### /' "$RESULTS/single/latest.md"
    printf '\n---\n\n## The cluster half\n\n'
    sed '1s/^# /### /' "$RESULTS/cluster/latest.md"
  } >"$RESULTS/latest.md"
  cat "$RESULTS/compare.md"
  log "written: ${RESULTS#"$ROOT"/}/latest.md (side by side, then each half's summary), compare.md, single/, cluster/"
  exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/authgate-bench.XXXXXX")
REDIS_PIDS=()
NODE_PORTS=()
GW_PID=
PERF_PID=
RECV_PID=
BG_WRK_PID=
PEER_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $BG_WRK_PID ]] && kill -TERM "$BG_WRK_PID" 2>/dev/null || true
  [[ -n $RECV_PID ]] && kill -TERM "$RECV_PID" 2>/dev/null || true
  [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null || true
  if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$GW_PID" 2>/dev/null || true
  fi
  if [[ -n $PEER_PID ]] && kill -0 "$PEER_PID" 2>/dev/null; then
    kill -TERM "$PEER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PEER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PEER_PID" 2>/dev/null || true
  fi
  stop_redis
  wait 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    mkdir -p "$RESULTS"
    for f in gateway.log setup-gateway.log redis.log cluster-create.log peer.log peer-redis.log; do
      [[ -f $TMP/$f ]] && cp "$TMP/$f" "$RESULTS/$f" && log "kept ${RESULTS#"$ROOT"/}/$f"
    done
    for f in "$TMP"/cluster/*/redis.log; do
      [[ -f $f ]] || continue
      cp "$f" "$RESULTS/redis-$(basename "$(dirname "$f")").log" && log "kept ${RESULTS#"$ROOT"/}/redis-$(basename "$(dirname "$f")").log"
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}
# Stops every redis-server this run started (TERM, then KILL after 5 s).
stop_redis() {
  local pid
  for pid in "${REDIS_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${REDIS_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  REDIS_PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# ncli PORT ARGS...: redis-cli to one node (never -c: every figure is per node).
ncli() { local port=$1; shift; timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@"; }
# On every node of this run (one, or the cluster's six).
each_node() { local port; for port in "${NODE_PORTS[@]}"; do ncli "$port" "$@"; done; }

mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.json "$RESULTS"/*.txt "$RESULTS"/*.log "$RESULTS"/*.md "$RESULTS"/perf-*

start_single() {
  local port
  port=$(free_port)
  mkdir -p "$TMP/redis"
  log "private redis-server on 127.0.0.1:$port (no persistence) in $TMP/redis"
  # DEBUG (loopback only, Redis 7) for FILL_KEYS's wait on the tables' resize.
  local debug=()
  (( REDIS_MAJOR >= 7 )) && debug=(--enable-debug-command local)
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no "${debug[@]}" \
    --dir "$TMP/redis" --logfile "$TMP/redis.log" --daemonize no &
  REDIS_PIDS+=("$!")
  NODE_PORTS=("$port")
  for _ in $(seq 50); do ncli "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
  [[ $(ncli "$port" PING 2>/dev/null) == PONG ]] || die "redis-server did not come up: $(cat "$TMP/redis.log")"
  fill_keyspace "$port"
}

# fill_keyspace PORT: FILL_KEYS keys that live a day, before anything is measured. Redis doubles
# its keyspace's table (and its expiry table) each time the keys outnumber its slots, then moves
# every entry over while it serves, at about twice its usual cost per command for seconds; the
# bench starts from an empty Redis and writes a million keys or more, so four or five doublings
# would fall inside measured phases and slices. A Redis in service, holding its users' sessions,
# is past those sizes and stays there. With 4,300,000 keys the tables have 8,388,608 slots, room
# for about 4 million of the bench's own keys (see "A keyspace that has stopped growing").
fill_keyspace() {
  local port=$1 first last hz t0 i stats
  (( FILL_KEYS > 0 )) || return 0
  if (( REDIS_MAJOR < 7 )); then
    log "FILL_KEYS: skipped, Redis $REDIS_MAJOR has no DEBUG HTSTATS to wait on"
    return 0
  fi
  log "filling the private Redis with $FILL_KEYS keys that live a day, then waiting for its tables to finish growing"
  local script="for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'fill:' .. i, 'x', 'EX', 86400) end return 1"
  for (( first = 0; first < FILL_KEYS; first += 100000 )); do
    last=$(( first + 100000 < FILL_KEYS ? first + 99999 : FILL_KEYS - 1 ))
    [[ $(ncli "$port" EVAL "$script" 0 "$first" "$last") == 1 ]] || die "filling Redis failed"
  done
  # Redis moves the entries over in its timer too: at 500 Hz while we wait, then as it was.
  hz=$(ncli "$port" CONFIG GET hz | tail -1)
  ncli "$port" CONFIG SET hz 500 >/dev/null
  t0=$(date +%s)
  for (( i = 0; i < 360; i++ )); do
    stats=$(ncli "$port" DEBUG HTSTATS 0)
    [[ $stats == *"table size"* ]] || die "DEBUG HTSTATS failed: $stats"
    [[ $stats == *"rehashing target"* ]] || break
    sleep 0.5
  done
  ncli "$port" CONFIG SET hz "$hz" >/dev/null
  (( i < 360 )) || die "Redis was still resizing its tables after 180 s"
  FILLED=$FILL_KEYS
  log "  $(ncli "$port" DBSIZE) keys, tables resized in $(( $(date +%s) - t0 )) s"
}

# A base port for the cluster: base..base+5 and their bus ports base+10000..base+10005 all
# bindable now, every one below the ephemeral port range (so that no outgoing connection or
# port-0 listener, the gateway's included, can take one meanwhile) and below 65536. Falls back
# to 20000-45000 if the ephemeral range starts too low for that. Prints nothing if none found.
cluster_base() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
top = min(low, 65536) - 10000 - 6
lo, hi = (10000, top) if top >= 12000 else (20000, 45000)
for _ in range(200):
    b = random.randrange(lo, hi)
    if all(free(p) and free(p + 10000) for p in range(b, b + 6)):
        print(b)
        break
PY
}

# True once every node says cluster_state:ok with all 16384 slots and 6 known nodes, there are
# 3 primaries with one connected replica each, and every replica's master_link_status is up.
cluster_settled() {
  local port info primaries=0 replicas=0
  for port in "${NODE_PORTS[@]}"; do
    info=$(ncli "$port" CLUSTER INFO 2>/dev/null) || return 1
    [[ $info == *cluster_state:ok* && $info == *cluster_slots_ok:16384* && $info == *cluster_known_nodes:6* ]] || return 1
    info=$(ncli "$port" INFO replication 2>/dev/null) || return 1
    if [[ $info == *role:master* ]]; then
      [[ $info == *connected_slaves:1* ]] || return 1
      primaries=$((primaries + 1))
    else
      [[ $info == *master_link_status:up* ]] || return 1
      replicas=$((replicas + 1))
    fi
  done
  (( primaries == 3 && replicas == 3 ))
}

# Six redis-servers with --cluster-enabled, formed with redis-cli --cluster create (3 primaries,
# 1 replica each), then waited for (CLUSTER_WAIT s at most). Three tries on fresh random ports
# (another process may take a port between the check and the bind); one with CLUSTER_BASE.
start_cluster() {
  local attempt base port ok why
  for attempt in 1 2 3; do
    base=${CLUSTER_BASE:-$(cluster_base)}
    [[ -n $base ]] || die "no free window of 6 node ports with free bus ports (+10000) below the ephemeral range"
    NODE_PORTS=()
    for port in $(seq "$base" $((base + 5))); do NODE_PORTS+=("$port"); done
    rm -rf "$TMP/cluster"
    log "private Redis Cluster: 6 nodes on 127.0.0.1:$base-$((base + 5)), bus ports $((base + 10000))-$((base + 10005)), no persistence, in $TMP/cluster"
    for port in "${NODE_PORTS[@]}"; do
      mkdir -p "$TMP/cluster/$port"
      redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
        --cluster-config-file "$TMP/cluster/$port/nodes.conf" --cluster-node-timeout 5000 \
        --save "" --appendonly no --dir "$TMP/cluster/$port" --logfile "$TMP/cluster/$port/redis.log" \
        --daemonize no &
      REDIS_PIDS+=("$!")
    done
    ok=1
    why=
    for port in "${NODE_PORTS[@]}"; do
      for _ in $(seq 50); do ncli "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
      if [[ $(ncli "$port" PING 2>/dev/null) != PONG ]]; then
        ok=0
        why="node $port did not come up: $(tail -3 "$TMP/cluster/$port/redis.log" 2>/dev/null | tr '\n' ' ')"
        break
      fi
    done
    if (( ok )); then
      local addrs=()
      for port in "${NODE_PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
      if ! timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$TMP/cluster-create.log" 2>&1; then
        ok=0
        why="redis-cli --cluster create failed: $(tail -5 "$TMP/cluster-create.log" | tr '\n' ' ')"
      fi
    fi
    if (( ok )); then
      local deadline=$(( $(date +%s) + CLUSTER_WAIT ))
      until cluster_settled; do
        if (( $(date +%s) >= deadline )); then
          ok=0
          why="no cluster_state:ok with 3 primaries and 3 linked replicas within $CLUSTER_WAIT s"
          break
        fi
        sleep 0.2
      done
    fi
    if (( ok )); then
      ncli "${NODE_PORTS[0]}" CLUSTER NODES | sort -t' ' -k2 >"$RESULTS/cluster-nodes.start.txt"
      log "  cluster formed: $(awk '$3 ~ /master/ {split($2, a, "[:@]"); printf "%s%s (slots %s)", (n++ ? ", " : "primaries "), a[2], $9}' \
        "$RESULTS/cluster-nodes.start.txt"); replicas linked"
      return 0
    fi
    log "the cluster did not form (try $attempt of 3): $why"
    stop_redis
    [[ -z $CLUSTER_BASE ]] || die "the cluster did not form on CLUSTER_BASE=$CLUSTER_BASE"
  done
  die "the cluster did not form in 3 tries"
}

REDIS_MAJOR=$(redis-server --version | sed -n 's/.*v=\([0-9]*\).*/\1/p')
REDIS_MAJOR=${REDIS_MAJOR:-0}
if [[ $REDIS == cluster ]]; then start_cluster; else start_single; fi
# The one node the gateway is given: a cluster's other nodes are its to discover.
RPORT=${NODE_PORTS[0]}
GPORT=$(free_port)
while [[ " ${NODE_PORTS[*]} " == *" $GPORT "* ]]; do GPORT=$(free_port); done
URL=http://127.0.0.1:$GPORT

CLIENT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
TOKEN_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# start_gateway PORT LOG: starts `authgate serve --demo` on PORT, sets GW_PID, waits until ready.
start_gateway() {
  local port=$1 logfile=$2
  env AUTHGATE_REDIS_URL="redis://127.0.0.1:$RPORT/" \
    ${OUTBOX_REPLICAS:+AUTHGATE_REDIS_OUTBOX_REPLICAS="$OUTBOX_REPLICAS"} \
    AUTHGATE_BIND="127.0.0.1:$port" \
    AUTHGATE_LOG=warn \
    AUTHGATE_LIMIT_REQUESTS_PER_USER=off \
    AUTHGATE_LIMIT_GUESSES_PER_USER=off \
    AUTHGATE_LIMIT_PER_IP=off \
    AUTHGATE_CLIENT_SECRET="$CLIENT_SECRET" \
    AUTHGATE_TOKEN_SECRET="$TOKEN_SECRET" \
    "$BIN" serve --demo >"$logfile" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/health/ready" 2>/dev/null && return 0
    kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited: $(tail -20 "$logfile")"
    sleep 0.1
  done
  die "the gateway is not ready: $(tail -20 "$logfile")"
}
stop_gateway() {
  kill -TERM "$GW_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=
}
# Dies with the gateway's exit status if it is gone (crashed, or killed from outside).
check_gateway() {
  if ! kill -0 "$GW_PID" 2>/dev/null; then
    local st=0
    wait "$GW_PID" 2>/dev/null || st=$?
    GW_PID=
    die "the gateway exited during the run (status $st$( ((st > 128)) && echo ", signal $((st - 128))" )) $1"
  fi
}
vm() { awk -v k="^$2:" '$0 ~ k {print $2}' "/proc/$1/status"; } # vm PID VmHWM -> KiB

export BENCH_PASSWORD=$PASSWORD
USERS_FILE=$TMP/users.txt
printf 'myuser@myapp.myaccount.voximplant.com %s\n' "$("$BIN" ha1 --user myuser --password "$PASSWORD")" >"$USERS_FILE"
SETUP_HWM=0
if (( CONNECTIONS > 1 )); then
  # Phase c needs one user per connection (a new key request voids the user's previous
  # key): the demo's myuser plus bench2..benchN, created through the admin API of a
  # separate setup replica on the same Redis. Setting a password costs an Argon2id hash
  # (19 MiB of memory each), which the process keeps (see the README), and no measured
  # phase sets passwords: so the measured gateway is started afresh after the setup.
  SPORT=$(free_port)
  while [[ " ${NODE_PORTS[*]} $GPORT " == *" $SPORT "* ]]; do SPORT=$(free_port); done
  log "setup replica on 127.0.0.1:$SPORT: creating $((CONNECTIONS - 1)) web phone users for the flow phase"
  start_gateway "$SPORT" "$TMP/setup-gateway.log"
  timeout 900 python3 "$BENCH/bench.py" seed "http://127.0.0.1:$SPORT" "$CLIENT_SECRET" "$((CONNECTIONS - 1))" \
    "$PASSWORD" >"$TMP/seeded.txt" || die "creating the bench users failed"
  SETUP_HWM=$(vm "$GW_PID" VmHWM)
  log "setup replica: VmHWM $((SETUP_HWM / 1024)) MiB after $((CONNECTIONS - 1)) password hashes; stopping it"
  stop_gateway
  while read -r u; do
    printf '%s@myapp.myaccount.voximplant.com %s\n' "$u" "$("$BIN" ha1 --user "$u" --password "$PASSWORD")" >>"$USERS_FILE"
  done <"$TMP/seeded.txt"
fi

log "gateway $BIN on $URL (rate limits off, log level warn)"
start_gateway "$GPORT" "$TMP/gateway.log"
RSS_TIMELINE="start $(( $(vm "$GW_PID" VmRSS) / 1024 ))"

# ---------------------------------------------------------------- fixtures

export BENCH_LUA=$BENCH/lua

# md5sum test vectors for md5.lua's self-test: block-boundary lengths and the real shapes.
VECTORS=$TMP/md5-vectors.txt
: >"$VECTORS"
for input in "" "a" "abc" "message digest" "abcdefghijklmnopqrstuvwxyz" \
  "$(printf 'x%.0s' $(seq 55))" "$(printf 'y%.0s' $(seq 56))" "$(printf 'z%.0s' $(seq 63))" \
  "$(printf 'w%.0s' $(seq 64))" "$(printf 'v%.0s' $(seq 65))" "$(printf '7%.0s' $(seq 200))" \
  "myuser:voximplant.com:$PASSWORD" \
  "0123456789abcdef0123456789abcdef|$("$BIN" ha1 --user myuser --password "$PASSWORD")"; do
  printf '%s %s\n' "$(printf '%s' "$input" | md5sum | cut -d' ' -f1)" "$input" >>"$VECTORS"
done
export BENCH_MD5_VECTORS=$VECTORS

export BENCH_USERS_FILE=$USERS_FILE
export BENCH_USERS=$KEY_USERS

# Sanity: each endpoint answers as the phase expects before it is measured.
body=$(curl -sS -X POST -H 'Content-Type: application/json' \
  -d '{"username":"u1@myapp.myaccount.voximplant.com"}' "$URL/v1/login/one-time-key/request")
[[ $body == *'"code":302'* && $body == *'"key":'* ]] || die "key request answered: $body"
ACCESS=$(timeout 60 python3 "$BENCH/bench.py" login "$URL" myuser@myapp.myaccount.voximplant.com \
  "$BIN" hash --user myuser --password "$PASSWORD") || die "one-time-key login of myuser failed"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ACCESS" "$URL/v1/auth/verify")
[[ $code == 200 ]] || die "/v1/auth/verify answered $code to a fresh access token"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer not-a-token" "$URL/v1/auth/verify")
[[ $code == 401 ]] || die "/v1/auth/verify answered $code to a bad token (expected 401)"
export BENCH_BEARER_TOKEN=$ACCESS
# Phase d over several sessions: each is its own key (its own cluster slot).
# Not exported: static.lua serves phase a too, which must carry no token.
BEARER_FILE=
if (( VERIFY_TOKENS > 1 )); then
  log "$VERIFY_TOKENS sessions of myuser for phase d (one more login each)"
  { echo "$ACCESS"
    timeout 300 python3 "$BENCH/bench.py" tokens "$URL" myuser@myapp.myaccount.voximplant.com $((VERIFY_TOKENS - 1)) \
      "$BIN" hash --user myuser --password "$PASSWORD"; } >"$TMP/verify-tokens.txt" || die "logging in for the verify tokens failed"
  BEARER_FILE=$TMP/verify-tokens.txt
fi

# Scheme B: a loopback webhook receiver, the demo's email integration disabled, a webhook
# integration to the receiver, and OTP_USERS + OTP_CAL_USERS password-less users.
HPORT=$(free_port)
python3 "$BENCH/receiver.py" "$HPORT" >"$TMP/receiver.log" 2>&1 &
RECV_PID=$!
HOOK=http://127.0.0.1:$HPORT
for _ in $(seq 50); do curl -fsS "$HOOK/_ctl/count" >/dev/null 2>&1 && break; sleep 0.1; done
recv() { curl -fsS --max-time 120 "$HOOK/_ctl/$1"; }
log "webhook receiver on $HOOK; creating $((OTP_USERS + OTP_CAL_USERS)) password-less users of the Customers profile"
t_setup=$(date +%s)
timeout 1200 python3 "$BENCH/bench.py" otp-setup "$URL" "$CLIENT_SECRET" "$HOOK/hook" \
  "$((OTP_USERS + OTP_CAL_USERS))" "$TMP" || die "scheme B setup failed"
log "  created in $(( $(date +%s) - t_setup )) s"
# shellcheck disable=SC1091
source "$TMP/otp.env"
export BENCH_OTP_REALM=$OTP_REALM BENCH_OTP_PROFILE=$OTP_PROFILE BENCH_OTP_BEARER=$OTP_IMPLICIT
head -n "$OTP_USERS" "$TMP/otp-users.txt" >"$TMP/otp-users-run.txt"
tail -n "$OTP_CAL_USERS" "$TMP/otp-users.txt" >"$TMP/otp-users-cal.txt"
OTP_PATH=/v2/authentication-realms/$OTP_REALM/password-profiles/$OTP_PROFILE/one-time-password-token-request
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $OTP_IMPLICIT" -H 'Content-Type: application/json' \
  -d '{"data":{"type":"one_time_password_token_request","username":"john.doe@banks.com","purpose":"passwordless_authentication"}}' "$URL$OTP_PATH")
[[ $code == 202 ]] || die "the code request answered $code (expected 202)"
for _ in $(seq 50); do [[ $(recv count) -ge 1 ]] && break; sleep 0.1; done
[[ $(recv count) -ge 1 ]] || die "the webhook did not reach the receiver"
recv "dump?path=$TMP/sanity.jsonl" >/dev/null

# The peer (PEERS=1): its own private redis-server (secondary storage) and one Node process,
# Better Auth with emailOTP on SQLite (bench/peer/server.mjs), which creates PEER_USERS users
# otp<N>@bench.example.com at start (the same addresses as authgate's OTP users).
PEER_URL=
PEER_RPORT=
if [[ $PEERS == 1 ]]; then
  PEER_RPORT=$(free_port)
  while [[ " ${NODE_PORTS[*]} $GPORT $HPORT " == *" $PEER_RPORT "* ]]; do PEER_RPORT=$(free_port); done
  mkdir -p "$TMP/peer-redis" "$TMP/peer"
  log "peer: private redis-server on 127.0.0.1:$PEER_RPORT (no persistence)"
  redis-server --bind 127.0.0.1 --port "$PEER_RPORT" --save "" --appendonly no \
    --dir "$TMP/peer-redis" --logfile "$TMP/peer-redis.log" --daemonize no &
  REDIS_PIDS+=("$!")
  for _ in $(seq 50); do ncli "$PEER_RPORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
  [[ $(ncli "$PEER_RPORT" PING 2>/dev/null) == PONG ]] || die "the peer's redis-server did not come up"
  PPORT=$(free_port)
  while [[ " ${NODE_PORTS[*]} $GPORT $HPORT $PEER_RPORT " == *" $PPORT "* ]]; do PPORT=$(free_port); done
  PEER_URL=http://127.0.0.1:$PPORT
  log "peer: Better Auth $(node -p 'require(process.argv[1]).version' "$PEER_DIR/node_modules/better-auth/package.json") (Node $(node --version), NODE_ENV=production) on $PEER_URL, creating $PEER_USERS users"
  (cd "$PEER_DIR" && exec env NODE_ENV=production BETTER_AUTH_TELEMETRY=0 PEER_PORT="$PPORT" \
    PEER_REDIS_URL="redis://127.0.0.1:$PEER_RPORT/" PEER_DB="$TMP/peer/auth.db" PEER_USERS="$PEER_USERS" \
    BETTER_AUTH_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
    node server.mjs >"$TMP/peer.log" 2>&1) &
  PEER_PID=$!
  for _ in $(seq 1200); do
    curl -fsS -o /dev/null "$PEER_URL/_bench/ready" 2>/dev/null && break
    kill -0 "$PEER_PID" 2>/dev/null || die "the peer exited: $(tail -20 "$TMP/peer.log")"
    sleep 0.1
  done
  curl -fsS -o /dev/null "$PEER_URL/_bench/ready" || die "the peer is not ready after 120 s: $(tail -20 "$TMP/peer.log")"
  log "  $(grep -m1 '^created' "$TMP/peer.log" || echo "no users created")"
  # Sanity, as for authgate: a code for a known user, captured; the sign-in with it answers 200
  # with a session token; the same code again answers 400.
  peer_post() { curl -sS -o "$TMP/peer-answer.txt" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$2" "$PEER_URL/api/auth/$1"; }
  code=$(peer_post email-otp/send-verification-otp '{"email":"otp1@bench.example.com","type":"sign-in"}')
  [[ $code == 200 ]] || die "the peer's code request answered $code: $(cat "$TMP/peer-answer.txt")"
  curl -fsS "$PEER_URL/_bench/dump?path=$TMP/peer-sanity.txt" >/dev/null
  otp=$(awk '$1 == "otp1@bench.example.com" {print $2}' "$TMP/peer-sanity.txt")
  [[ -n $otp ]] || die "the peer's sendVerificationOTP callback captured no code"
  code=$(peer_post sign-in/email-otp "{\"email\":\"otp1@bench.example.com\",\"otp\":\"$otp\"}")
  [[ $code == 200 ]] && grep -q '"token"' "$TMP/peer-answer.txt" || die "the peer's sign-in answered $code: $(cat "$TMP/peer-answer.txt")"
  code=$(peer_post sign-in/email-otp "{\"email\":\"otp1@bench.example.com\",\"otp\":\"$otp\"}")
  [[ $code == 400 ]] || die "the peer's sign-in with a used code answered $code (expected 400)"
  seq 1 "$PEER_USERS" | sed 's/^/otp/; s/$/@bench.example.com/' >"$TMP/peer-users.txt"
fi
check_peer() {
  [[ -z $PEER_PID ]] || kill -0 "$PEER_PID" 2>/dev/null || die "the peer exited during the run $1: $(tail -20 "$TMP/peer.log")"
}

# wait_deliveries N: until the receiver holds N deliveries (or 180 s), then returns.
# Also returns when at least 99% arrived and no more for 5 s (a request wrk built but
# never sent: see the README); the pairs step then reports who has no code.
wait_deliveries() {
  local want=$1 got=0 prev=-1 still=0
  for _ in $(seq 1800); do
    got=$(recv count)
    (( got >= want )) && return 0
    if (( got == prev )); then still=$((still + 1)); else still=0; prev=$got; fi
    if (( still >= 50 && got * 100 >= want * 99 )); then
      log "  $got of $want webhooks arrived, no more for 5 s; going on"
      return 0
    fi
    sleep 0.1
  done
  die "only $got of $want webhooks arrived within 180 s"
}
# issue_codes: one code request per OTP user (run and calibration), at full speed; waits for
# every webhook, records the delivery latency of this burst, and writes the pairs files.
issue_codes() {
  local stem=issue$ROUND_TAG n=$((OTP_USERS + OTP_CAL_USERS))
  wait_quiet
  log "issuing one code to each of $n users (wrk -t$THREADS -c$CONNECTIONS, each once); waiting for the webhooks"
  recv "dump?path=$TMP/discard.jsonl" >/dev/null
  local t0=$(date +%s.%N) s0 s1
  s0=$(stat_ticks)
  # wrk always runs for its -d, even when every thread has stopped: it is stopped with
  # SIGINT (on which it reports as usual) once every webhook has arrived.
  env BENCH_OTP_LIST="$TMP/otp-users.txt" BENCH_THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNECTIONS" \
    -d170s --timeout 10s --latency -s "$BENCH/lua/otpreq.lua" "$URL" >"$RESULTS/$stem.wrk.txt" 2>&1 &
  local wrk_pid=$!
  BG_WRK_PID=$wrk_pid
  wait_deliveries "$n"
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || die "issuing codes failed: $(tail -5 "$RESULTS/$stem.wrk.txt")"
  BG_WRK_PID=
  s1=$(stat_ticks)
  grep '^otp requests:' "$RESULTS/$stem.wrk.txt" | sed 's/^/    /' >&2
  log "  $(recv count) webhooks arrived $(python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$t0") s after the first request"
  recv "dump?path=$TMP/$stem.jsonl" >/dev/null
  python3 "$BENCH/bench.py" delivery "$TMP/$stem.jsonl" "$RESULTS/delivery-burst$ROUND_TAG.json" \
    "a burst of $n code requests at full speed ($CONNECTIONS connections)"
  python3 - "$RESULTS/$stem.wrk.txt" "$RESULTS/delivery-burst$ROUND_TAG.json" "$s0" "$s1" "$STEAL_LIMIT" <<'PY'
import json, sys
b = next(json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("BENCH "))
d = json.load(open(sys.argv[2]))
d["request_rps"] = b["requests"] / (b["duration_us"] / 1e6)
d["request_failed"] = b["failed"]
# stat_ticks: busy irq steal all
s0, s1 = [int(x) for x in sys.argv[3].split()], [int(x) for x in sys.argv[4].split()]
d["steal_pct"] = 100 * (s1[2] - s0[2]) / max(s1[3] - s0[3], 1)
d["noisy"] = d["steal_pct"] > float(sys.argv[5])
print(f"    -> steal {d['steal_pct']:.1f}% of the CPU time" + (" : NOISY" if d["noisy"] else ""), file=sys.stderr)
json.dump(d, open(sys.argv[2], "w"), indent=1)
PY
  python3 "$BENCH/bench.py" pairs "$TMP/$stem.jsonl" "$TMP/otp-users-run.txt" "$TMP/pairs.txt" || die "codes missing"
  python3 "$BENCH/bench.py" pairs "$TMP/$stem.jsonl" "$TMP/otp-users-cal.txt" "$TMP/pairs-cal.txt" || die "codes missing"
}

# ---------------------------------------------------------------- 3-5. phases

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of a process
# Redis CPU seconds, summed over every node (a cluster's replicas included: applying the
# replication stream is part of what the cluster costs).
redis_cpu() { each_node INFO cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'; }
# redis_dump STEM: each node's INFO replication/stats/commandstats (one command, so one socket
# read of ours per node) into STEM.node-PORT.txt; bench.py nodes then writes STEM.commandstats.txt
# and STEM.stats.txt summed over the primaries (housekeeping commands left out, see the README),
# and nodes-STEM.json, per node (named so that no <phase>*.json glob matches it).
redis_dump() {
  local stem=$1 port
  for port in "${NODE_PORTS[@]}"; do
    ncli "$port" INFO replication stats commandstats >"$RESULTS/$stem.node-$port.txt"
  done
  python3 "$BENCH/bench.py" nodes "$RESULTS" "$stem" "${NODE_PORTS[@]}"
}
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
# Busy CPU time of the whole machine outside interrupts (user nice system steal), in ticks.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $9}' /proc/stat; }
# Steal alone: time the hypervisor gave this VM's CPUs to someone else (part of "other").
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
# All CPU time of the machine (user nice system idle iowait irq softirq steal; guest time is
# already inside user and nice), in ticks: a phase's steal share is its steal delta over this.
all_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# busy irq steal all, from one read of /proc/stat.
stat_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $9, $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# Time in interrupts (irq softirq), in ticks: on loopback this is mostly the network stack
# delivering our own packets, which the kernel charges to no process.
irq_ticks() { awk '/^cpu / {print $7 + $8}' /proc/stat; }
# CHILD_CPU := CPU seconds used by this shell's finished children (wrk is one), from `times`,
# which must run in this shell itself, not in a $(...) subshell.
read_children_cpu() {
  times >"$TMP/times.txt"
  CHILD_CPU=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$TMP/times.txt")
}

# snapshot N: the counters a measurement is the difference of, into the caller's (local)
# gwN, rcN, chN, busyN, irqN, stealN and tN: gateway ticks, Redis CPU, children's CPU, busy,
# interrupt and steal ticks, and the wall clock. Runs in this shell (read_children_cpu must).
# With a second argument "peer", gwN and rcN are the peer's Node process and its Redis instead.
# Also allN: all CPU ticks of the machine (idle included), so that stealN/allN is steal's share.
snapshot() {
  if [[ ${2:-} == peer ]]; then
    printf -v "gw$1" '%s' "$(cpu_ticks "$PEER_PID")"
    printf -v "rc$1" '%s' "$(ncli "$PEER_RPORT" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}')"
  else
    printf -v "gw$1" '%s' "$(cpu_ticks "$GW_PID")"
    printf -v "rc$1" '%s' "$(redis_cpu)"
  fi
  read_children_cpu
  printf -v "ch$1" '%s' "$CHILD_CPU"
  local busy irq steal all
  read -r busy irq steal all < <(stat_ticks)
  printf -v "busy$1" '%s' "$busy"
  printf -v "irq$1" '%s' "$irq"
  printf -v "steal$1" '%s' "$steal"
  printf -v "all$1" '%s' "$all"
  printf -v "t$1" '%s' "$(date +%s.%N)"
}

# Waits (up to QUIET_WAIT s) until the machine's busy CPU, less our gateway and Redis
# (idle between phases), stays under 0.25 cores for a second.
wait_quiet() {
  check_gateway "before the next phase"
  local deadline=$(( $(date +%s) + QUIET_WAIT )) b0 b1 g0 g1 other
  while :; do
    b0=$(busy_ticks); g0=$(( $(cpu_ticks "$GW_PID") ))
    sleep 1
    b1=$(busy_ticks); g1=$(( $(cpu_ticks "$GW_PID") ))
    other=$(( (b1 - b0) - (g1 - g0) )) # ticks in 1 s
    if (( other * 4 < CLK_TCK )); then return 0; fi
    if (( $(date +%s) >= deadline )); then
      log "the machine is still busy (other processes: $(( other * 100 / CLK_TCK ))% of a core); measuring anyway"
      return 0
    fi
  done
}

# load_cmd SCRIPT THREADS CONNECTIONS DURATION [latency]: sets LOAD_CMD to the load client's
# command line: wrk with lua/SCRIPT, or for SCRIPT=flowload phase c's native client (same
# flags, same report shape: wrk's text, a Requests/sec line, the BENCH line). Either runs as
# `timeout`'s child in the foreground, so its CPU time is this shell's children's (`times`).
load_cmd() {
  local script=$1 threads=$2 conns=$3 dur=$4 latency=${5:-}
  if [[ $script == flowload ]]; then
    LOAD_CMD=("$FLOWLOAD" -t"$threads" -c"$conns" -d"$dur" --timeout 10s "$URL")
  elif [[ $script == flowload-exchange ]]; then
    LOAD_CMD=("$FLOWLOAD" --exchange -t"$threads" -c"$conns" -d"$dur" --timeout 10s "$URL")
  else
    LOAD_CMD=(wrk -t"$threads" -c"$conns" -d"$dur" --timeout 10s ${latency:+--latency} -s "$BENCH/lua/$script" "$URL")
  fi
}
# Phase c's client and its threads (FLOW_CLIENT): the native client with FLOW_THREADS threads,
# or wrk with flow.lua and one thread per connection (each connection owns one user).
# Phase f's (EXCHANGE_CLIENT): the native client's --exchange mode with the native flow
# client's threads (FLOW_THREADS as given, before wrk's flow takes one per connection), or wrk
# with exchange.lua.
if [[ $EXCHANGE_CLIENT == native ]]; then
  EXCHANGE_SCRIPT=flowload-exchange EXCHANGE_THREADS=$FLOW_THREADS
else
  EXCHANGE_SCRIPT=exchange.lua EXCHANGE_THREADS=$THREADS
fi
if [[ $FLOW_CLIENT == native ]]; then
  FLOW_SCRIPT=flowload
else
  FLOW_SCRIPT=flow.lua FLOW_THREADS=$CONNECTIONS
fi

# run_phase NAME THREADS SCRIPT [VAR=VALUE...]: a measured wrk run (or, for SCRIPT=flowload,
# one of the native flow client), then a one-connection calibration sample to count Redis
# socket reads (= round trips) per request.
run_phase() {
  local name=$1 threads=$2 script=$3
  local stem=$name$ROUND_TAG
  shift 3
  local envs=("$@")
  wait_quiet
  local client=wrk
  [[ $script == flowload* ]] && client=authgate-flowload
  log "phase $name${ROUND_TAG:+ (round ${ROUND_TAG#.r} of $ROUNDS)}: $client -t$threads -c$CONNECTIONS -d$DURATION ($script)"
  each_node CONFIG RESETSTAT >/dev/null
  local gw0 rc0 load0 busy0 irq0 steal0 all0 t0 ch0 perf_pid=
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  snapshot 0
  if [[ ",$PROFILE," == *",$name,"* ]]; then
    perf record -F 499 -g -p "$GW_PID" -o "$RESULTS/perf-$stem.data" -- sleep "$DUR_S" >/dev/null 2>&1 &
    perf_pid=$!
    PERF_PID=$perf_pid
  fi
  load_cmd "$script" "$threads" "$CONNECTIONS" "$DURATION" latency
  env "${envs[@]}" timeout $((DUR_S + 60)) "${LOAD_CMD[@]}" >"$RESULTS/$stem.wrk.txt" 2>&1 || {
    cat "$RESULTS/$stem.wrk.txt" >&2
    die "$client failed in phase $name"
  }
  check_gateway "in phase $name"
  local gw1 rc1 busy1 irq1 steal1 all1 t1 ch1 rss1 hwm1
  snapshot 1
  rss1=$(vm "$GW_PID" VmRSS)
  hwm1=$(vm "$GW_PID" VmHWM)
  redis_dump "$stem"
  if [[ -n $perf_pid ]]; then
    wait "$perf_pid" || true
    PERF_PID=
    perf report --stdio --no-children -i "$RESULTS/perf-$stem.data" --percent-limit 1.5 \
      >"$RESULTS/perf-$stem.txt" 2>/dev/null || true
    log "profile of phase $name: bench/results/perf-$stem.txt"
  fi
  grep -v '^BENCH ' "$RESULTS/$stem.wrk.txt" | sed 's/^/    /' >&2
  RSS_TIMELINE+=", after $name $(( $(vm "$GW_PID" VmRSS) / 1024 ))"

  # Calibration: one connection, so every store pipeline is its own socket read in Redis.
  local cal_threads=1
  each_node CONFIG RESETSTAT >/dev/null
  load_cmd "$script" "$cal_threads" 1 "$CALIBRATION"
  env "${envs[@]}" BENCH_CAL=1 timeout $((CAL_S + 60)) "${LOAD_CMD[@]}" >"$RESULTS/$stem.cal.wrk.txt" 2>&1 ||
    die "calibration $client failed in phase $name: $(tail -3 "$RESULTS/$stem.cal.wrk.txt")"
  redis_dump "$stem.cal"

  python3 - "$RESULTS" "$stem" "$CONNECTIONS" "$threads" "$(( gw1 - gw0 ))" "$CLK_TCK" "$rc0" "$rc1" "$load0" \
    "$(( busy1 - busy0 ))" "$t0" "$t1" "$ch0" "$ch1" "$NCPU" "$(( irq1 - irq0 ))" "$(( steal1 - steal0 ))" \
    "$(( all1 - all0 ))" "$rss1" "$hwm1" "$STEAL_LIMIT" <<'PY'
import json, re, sys
(d, stem, conns, threads, gw_ticks, clk, rc0, rc1, load0,
 busy, t0, t1, ch0, ch1, ncpu, irq, steal, all_ticks, rss, hwm, steal_limit) = sys.argv[1:]

name = stem.split(".")[0]
health = "health" + stem[len(name):]  # the same round's phase a

def bench_line(path):
    for line in open(path):
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    sys.exit(f"no BENCH line in {path}")

def cmdstats(path):
    out = {}
    for line in open(path):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m and m.group(1) not in ("config|resetstat", "info"):
            out[m.group(1)] = int(m.group(2))
    return out

def stat(path, key):
    for line in open(path):
        if line.startswith(key + ":"):
            return int(line.split(":", 1)[1])
    return None

r = bench_line(f"{d}/{stem}.wrk.txt")
secs = r["duration_us"] / 1e6
r["rps"] = r["requests"] / secs
r["connections"], r["threads"], r["loadavg_before"] = int(conns), int(threads), load0
cmds = cmdstats(f"{d}/{stem}.commandstats.txt")
n = max(r["requests"], 1)
# The gateway also polls Redis in the background (its delivery queue), whatever the load.
# Phase a (health) sends no request to Redis, so what Redis saw then is that background:
# its rate per second is subtracted from the later phases.
try:
    bg = json.load(open(f"{d}/{health}.json"))["redis"]["background_per_s"] if name != "health" else {}
except FileNotFoundError:
    bg = {}
if name == "health":
    bg_rate = {k: v / secs for k, v in cmds.items()}
    work = {k: 0 for k in cmds}
else:
    bg_rate = bg
    work = {k: max(v - bg.get(k, 0) * secs, 0) for k, v in cmds.items()}
total = sum(work.values())
r["redis"] = {
    "total": total,
    "per_request": total / n,
    "by_command": {k: v / n for k, v in work.items() if v / n >= 0.005},
    "raw_calls": cmds,
    "background_per_s": bg_rate,
    # Under load the gateway's one multiplexed Redis connection coalesces pipelines of
    # concurrent requests, so this is lower than round trips per request.
    "reads_per_request_loaded": (stat(f"{d}/{stem}.stats.txt", "total_reads_processed") or 0) / n,
}
r["gateway_cpu_us_per_request"] = int(gw_ticks) / int(clk) * 1e6 / n
r["redis_cpu_us_per_request"] = (float(rc1) - float(rc0)) * 1e6 / n
# Where the machine's CPU went during the phase, in cores (busy CPU seconds / wall seconds).
wall = float(t1) - float(t0)
gw_s = int(gw_ticks) / int(clk)
redis_s = float(rc1) - float(rc0)
# The load client's (wrk's, or phase c's native client's: the BENCH line names it), from the
# shell's children's CPU time; cores["wrk"] below keeps its old name whichever client it is.
wrk_s = float(ch1) - float(ch0)
r.setdefault("client", "wrk")
r["client_cpu_us_per_request"] = wrk_s * 1e6 / n
busy_s = int(busy) / int(clk)
r["cores"] = {
    "available": int(ncpu),
    "busy": busy_s / wall,
    "gateway": gw_s / wall,
    "redis": redis_s / wall,
    "wrk": wrk_s / wall,
    # Interrupts, mostly the loopback network stack carrying this benchmark's traffic.
    "softirq": int(irq) / int(clk) / wall,
    # Everything else: other processes on the machine (builds, tests), the hypervisor's steal.
    "other": max(busy_s - gw_s - redis_s - wrk_s, 0) / wall,
    # The steal alone (included in "other"): CPU time the hypervisor gave to other guests.
    "steal": int(steal) / int(clk) / wall,
}
# Steal as a share of all the machine's CPU time during the phase (/proc/stat's cpu line):
# above STEAL_LIMIT percent the phase is "noisy" and its figures are not to be trusted.
r["steal_pct"] = 100 * int(steal) / int(all_ticks) if int(all_ticks) > 0 else 0.0
r["noisy"] = r["steal_pct"] > float(steal_limit)
r["vmrss_kib"], r["vmhwm_kib"] = int(rss), int(hwm)
# Each primary's share of the phase's commands (a single server is one primary with all of
# them), each node's background (measured in phase a, as above) taken off first.
nodes = json.load(open(f"{d}/nodes-{stem}.json"))["nodes"]
try:
    node_bg = (json.load(open(f"{d}/{health}.json"))["spread"]["background_per_s"] if name != "health" else {})
except (FileNotFoundError, KeyError):
    node_bg = {}
prim = []
for x in nodes:
    if x["role"] != "master":
        continue
    if name == "health":
        work_n = 0
    else:
        nb = node_bg.get(str(x["port"]), {})
        work_n = sum(max(v - nb.get(k, 0) * secs, 0) for k, v in x["calls"].items())
    prim.append({"port": x["port"], "commands": work_n})
ptotal = sum(p["commands"] for p in prim)
for p in prim:
    p["share"] = p["commands"] / ptotal if ptotal else None
busiest = max(prim, key=lambda p: p["commands"]) if prim else None
r["spread"] = {
    "primaries": prim,
    "busiest_port": busiest["port"] if busiest and ptotal else None,
    "busiest_share": busiest["share"] if busiest and ptotal else None,
    "background_per_s": (
        {str(x["port"]): {k: v / secs for k, v in x["calls"].items()} for x in nodes} if name == "health" else node_bg
    ),
    # Read commands a replica ran: the gateway reading from replicas (never replicated, so
    # none is expected unless the client sends reads there).
    "replica_reads": sum(x.get("read_calls", 0) for x in nodes if x["role"] != "master"),
    "replicas": sum(1 for x in nodes if x["role"] != "master"),
}
c = bench_line(f"{d}/{stem}.cal.wrk.txt")
ccmds = cmdstats(f"{d}/{stem}.cal.commandstats.txt")
csecs = c["duration_us"] / 1e6
creads = stat(f"{d}/{stem}.cal.stats.txt", "total_reads_processed") or 0
cn = max(c["requests"], 1)
if name == "health":
    # No Redis work per request here: every read Redis counted is the background's (bench.py
    # nodes already took off our own INFO and the replicas' REPLCONF ACKs).
    bg_reads_per_s = creads / csecs
    reads_per_req = 0.0
else:
    try:
        bg_reads_per_s = json.load(open(f"{d}/{health}.json"))["calibration"]["bg_reads_per_s"]
    except FileNotFoundError:
        bg_reads_per_s = 0.0
    reads_per_req = max(creads - bg_reads_per_s * csecs, 0) / cn
r["calibration"] = {
    "requests": c["requests"],
    "rps": c["requests"] / csecs,
    "p50_us": c["p50_us"],
    "reads_per_req": reads_per_req,
    "reads_raw": creads,
    "bg_reads_per_s": bg_reads_per_s,
}
json.dump(r, open(f"{d}/{stem}.json", "w"), indent=1)
print(f"    -> {r['rps']:.0f} req/s, p50 {r['p50_us']/1000:.2f} ms, p99 {r['p99_us']/1000:.2f} ms, "
      f"non-2xx {r['errors_status']}, socket errors {r['errors_socket']}, timeouts {r['errors_timeout']}; "
      f"Redis {r['redis']['per_request']:.2f} cmds/req, {r['calibration']['reads_per_req']:.2f} round trips/req (c=1); "
      f"gateway {r['gateway_cpu_us_per_request']:.0f} CPU-us/req, redis {r['redis_cpu_us_per_request']:.0f} CPU-us/req",
      file=sys.stderr)
c = r["cores"]
print(f"    -> cores used: gateway {c['gateway']:.2f}, redis {c['redis']:.2f}, {r['client']} {c['wrk']:.2f} "
      f"({r['client_cpu_us_per_request']:.1f} CPU-us/req), softirq {c['softirq']:.2f}, other processes {c['other']:.2f} "
      f"(steal {c['steal']:.2f}) (of {c['available']})", file=sys.stderr)
try:
    ceiling = json.load(open(f"{d}/{health}.json"))["rps"] if name != "health" else r["rps"]
except FileNotFoundError:
    ceiling = None
print(f"    -> ratio to this round's ceiling {r['rps'] / ceiling:.2f}" if ceiling else "    -> ratio: no ceiling yet",
      f"; steal {r['steal_pct']:.1f}% of the CPU time" + (f": NOISY (over {steal_limit}%)" if r["noisy"] else "")
      + f"; gateway VmRSS {r['vmrss_kib'] / 1024:.1f} MiB", sep="", file=sys.stderr)
sp = r["spread"]
if len(sp["primaries"]) > 1 and sp["busiest_share"] is not None:
    print("    -> commands per primary: " + ", ".join(
        f":{p['port']} {p['share'] * 100:.0f}%" for p in sp["primaries"]) +
        f"; busiest {sp['busiest_share'] * 100:.0f}%" +
        (f"; replicas ran {sp['replica_reads']} read commands" if sp["replica_reads"] else ""), file=sys.stderr)
PY
  grep -q '^flows:\|^md5 self-test\|^some failed\|^exchanges:\|^otp requests:' "$RESULTS/$stem.wrk.txt" &&
    grep '^flows:\|^md5 self-test\|^some failed\|^exchanges:\|^otp requests:' "$RESULTS/$stem.wrk.txt" | sed 's/^/    /' >&2 || true
}

# run_peer_phase NAME MODE [VAR=VALUE...]: the peer's side of authgate's phase NAME, measured
# right after it with the same wrk settings (-t THREADS -c CONNECTIONS -d DURATION --timeout
# 10s): its Node process's and its Redis's CPU, its Redis commands, its VmRSS/VmHWM, the steal.
run_peer_phase() {
  local name=$1 mode=$2
  local stem=peer-$name$ROUND_TAG
  shift 2
  wait_quiet
  check_peer "before its phase $name"
  log "peer phase $name${ROUND_TAG:+ (round ${ROUND_TAG#.r} of $ROUNDS)}: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (peer.lua, $mode)"
  ncli "$PEER_RPORT" CONFIG RESETSTAT >/dev/null
  local gw0 rc0 busy0 irq0 steal0 all0 t0 ch0 st0 st1
  st0=$(curl -fsS --max-time 10 "$PEER_URL/_bench/stats")
  snapshot 0 peer
  env BENCH_PEER_MODE="$mode" BENCH_THREADS="$THREADS" "$@" timeout $((DUR_S + 60)) wrk -t"$THREADS" \
    -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s "$BENCH/lua/peer.lua" "$PEER_URL" \
    >"$RESULTS/$stem.wrk.txt" 2>&1 || {
    cat "$RESULTS/$stem.wrk.txt" >&2
    die "wrk failed in the peer's phase $name"
  }
  check_peer "in its phase $name"
  # Let the requests still in the server when wrk stopped finish (at most 30 s), so that its
  # CPU and Redis counts cover exactly the requests it was handed (/_bench/stats).
  for _ in $(seq 150); do
    st1=$(curl -fsS --max-time 10 "$PEER_URL/_bench/stats")
    [[ ${st1% *} == "${st1#* }" ]] && break
    sleep 0.2
  done
  sleep 0.2
  st1=$(curl -fsS --max-time 10 "$PEER_URL/_bench/stats")
  local gw1 rc1 busy1 irq1 steal1 all1 t1 ch1 rss1 hwm1
  snapshot 1 peer
  rss1=$(vm "$PEER_PID" VmRSS)
  hwm1=$(vm "$PEER_PID" VmHWM)
  ncli "$PEER_RPORT" INFO commandstats >"$RESULTS/$stem.commandstats.txt"
  grep -v '^BENCH ' "$RESULTS/$stem.wrk.txt" | sed 's/^/    /' >&2
  python3 - "$RESULTS" "$stem" "$name$ROUND_TAG" "$(( gw1 - gw0 ))" "$CLK_TCK" "$rc0" "$rc1" "$(( busy1 - busy0 ))" \
    "$t0" "$t1" "$ch0" "$ch1" "$NCPU" "$(( irq1 - irq0 ))" "$(( steal1 - steal0 ))" "$(( all1 - all0 ))" \
    "$rss1" "$hwm1" "$STEAL_LIMIT" "$CONNECTIONS" "$THREADS" "$st0" "$st1" <<'PY'
import json, re, sys
(d, stem, ours, node_ticks, clk, rc0, rc1, busy, t0, t1, ch0, ch1, ncpu, irq, steal, all_ticks,
 rss, hwm, steal_limit, conns, threads, st0, st1) = sys.argv[1:]
r = next(json.loads(l[6:]) for l in open(f"{d}/{stem}.wrk.txt") if l.startswith("BENCH "))
# Per request: over the requests the server was handed in the phase (wrk counts only the
# answers it got before its deadline; with a few hundred req/s and 64 connections the
# difference is several percent).
r["server_requests"] = int(st1.split()[0]) - int(st0.split()[0])
r["server_unfinished"] = int(st1.split()[0]) - int(st1.split()[1])
n = max(r["server_requests"], 1)
secs = r["duration_us"] / 1e6
r["rps"] = r["requests"] / secs
r["connections"], r["threads"] = int(conns), int(threads)
calls = {}
for line in open(f"{d}/{stem}.commandstats.txt"):
    m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
    if m and m.group(1).split("|")[0] not in ("config", "info", "client", "hello", "select", "ping", "command"):
        calls[m.group(1)] = int(m.group(2))
r["redis"] = {"per_request": sum(calls.values()) / n,
              "by_command": {k: v / n for k, v in calls.items() if v / n >= 0.005}}
r["server_cpu_us_per_request"] = int(node_ticks) / int(clk) * 1e6 / n
r["redis_cpu_us_per_request"] = (float(rc1) - float(rc0)) * 1e6 / n
wall = float(t1) - float(t0)
node_s, redis_s, wrk_s = int(node_ticks) / int(clk), float(rc1) - float(rc0), float(ch1) - float(ch0)
r["cores"] = {
    "available": int(ncpu), "server": node_s / wall, "redis": redis_s / wall, "wrk": wrk_s / wall,
    "softirq": int(irq) / int(clk) / wall,
    "other": max(int(busy) / int(clk) - node_s - redis_s - wrk_s, 0) / wall,
    "steal": int(steal) / int(clk) / wall,
}
r["steal_pct"] = 100 * int(steal) / int(all_ticks) if int(all_ticks) > 0 else 0.0
r["noisy"] = r["steal_pct"] > float(steal_limit)
r["vmrss_kib"], r["vmhwm_kib"] = int(rss), int(hwm)
json.dump(r, open(f"{d}/{stem}.json", "w"), indent=1)
try:
    a = json.load(open(f"{d}/{ours}.json"))
    vs = f"; authgate/peer {a['rps'] / r['rps']:.1f}x (authgate {a['rps']:.0f} req/s, VmRSS {a['vmrss_kib'] / 1024:.1f} MiB)"
except (FileNotFoundError, KeyError, ZeroDivisionError):
    vs = ""
print(f"    -> peer {r['rps']:.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
      f"non-2xx {r['errors_status']}, socket errors {r['errors_socket']}, timeouts {r['errors_timeout']}; "
      f"Redis {r['redis']['per_request']:.2f} cmds/req; Node {r['server_cpu_us_per_request']:.0f} CPU-us/req, "
      f"redis {r['redis_cpu_us_per_request']:.0f} CPU-us/req; VmRSS {int(rss) / 1024:.1f} MiB{vs}", file=sys.stderr)
c = r["cores"]
print(f"    -> cores used: Node {c['server']:.2f}, redis {c['redis']:.2f}, wrk {c['wrk']:.2f}, softirq "
      f"{c['softirq']:.2f}, other processes {c['other']:.2f} (of {c['available']}); steal {r['steal_pct']:.1f}% "
      f"of the CPU time" + (f": NOISY (over {steal_limit}%)" if r["noisy"] else ""), file=sys.stderr)
PY
}

# peer_issue: one code request to the peer for each of its PEER_USERS users, at full speed
# (the threads split the list, each address once), then the codes its callback captured become
# the (address, code) pool of the peer's sign-in phase: the same design as authgate's issuing
# step and exchange. wrk runs until stopped (SIGINT) once every code is captured; bounded by
# PEER_USERS / 20 + 60 s.
peer_issue() {
  local n=$PEER_USERS stem=peer-issue$ROUND_TAG got=0 bound=$(( PEER_USERS / 20 + 60 ))
  wait_quiet
  check_peer "before issuing codes"
  log "peer: issuing one code to each of its $n users (wrk -t$THREADS -c$CONNECTIONS, each once)"
  curl -fsS "$PEER_URL/_bench/dump?path=$TMP/peer-discard.txt" >/dev/null
  env BENCH_PEER_MODE=issue BENCH_OTP_LIST="$TMP/peer-users.txt" BENCH_THREADS="$THREADS" wrk -t"$THREADS" \
    -c"$CONNECTIONS" -d"${bound}s" --timeout 10s --latency -s "$BENCH/lua/peer.lua" "$PEER_URL" \
    >"$RESULTS/$stem.wrk.txt" 2>&1 &
  local wrk_pid=$! deadline=$(( $(date +%s) + bound + 10 ))
  BG_WRK_PID=$wrk_pid
  while kill -0 "$wrk_pid" 2>/dev/null && (( $(date +%s) < deadline )); do
    got=$(curl -fsS --max-time 10 "$PEER_URL/_bench/count" || echo 0)
    (( got >= n )) && break
    sleep 0.2
  done
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || die "issuing the peer's codes failed: $(tail -5 "$RESULTS/$stem.wrk.txt")"
  BG_WRK_PID=
  check_peer "while issuing codes"
  grep '^peer issue:' "$RESULTS/$stem.wrk.txt" | sed 's/^/    /' >&2 || true
  got=$(curl -fsS --max-time 60 "$PEER_URL/_bench/dump?path=$TMP/peer-pairs.txt")
  (( got * 100 >= n * 99 )) || die "the peer captured codes for only $got of its $n users"
  log "  $got codes captured for the peer's sign-in phase"
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STEAL_START=$(steal_ticks)
ALL_START=$(all_ticks)

log "warm-up: $WARMUP of key requests (not measured)"
timeout $(( $(seconds "$WARMUP") + 60 )) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" \
  -s "$BENCH/lua/keyreq.lua" "$URL" >/dev/null 2>&1 || die "warm-up failed"
if [[ $PEERS == 1 ]]; then
  log "peer warm-up: $WARMUP of code requests (not measured)"
  env BENCH_PEER_MODE=send timeout $(( $(seconds "$WARMUP") + 60 )) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" \
    --timeout 10s -s "$BENCH/lua/peer.lua" "$PEER_URL" >/dev/null 2>&1 || die "the peer's warm-up failed"
fi

ROUND_TAG=
for round in $(seq "$ROUNDS"); do
  (( ROUNDS > 1 )) && ROUND_TAG=.r$round
  run_phase health "$THREADS" static.lua BENCH_PATH=/health/live
  run_phase keyreq "$THREADS" keyreq.lua
  run_phase flow "$FLOW_THREADS" "$FLOW_SCRIPT"
  run_phase verify "$THREADS" static.lua BENCH_PATH=/v1/auth/verify BENCH_BEARER="$BENCH_BEARER_TOKEN" \
    BENCH_BEARER_FILE="$BEARER_FILE"
  run_phase otpreq "$THREADS" otpreq.lua BENCH_OTP_NAMES=100000
  [[ $PEERS == 1 ]] && run_peer_phase otpreq send BENCH_OTP_NAMES=100000
  # The decoy entries of (e) go through the outbox too: let the worker drain them.
  sleep 2
  issue_codes
  run_phase exchange "$EXCHANGE_THREADS" "$EXCHANGE_SCRIPT" BENCH_PAIRS="$TMP/pairs.txt" \
    BENCH_PAIRS_CAL="$TMP/pairs-cal.txt" BENCH_THREADS="$EXCHANGE_THREADS"
  if [[ $PEERS == 1 ]]; then
    # The peer's codes just before its sign-in phase: they live 300 s (emailOTP's default).
    peer_issue
    run_peer_phase exchange exchange BENCH_PAIRS="$TMP/peer-pairs.txt"
  fi
done

# Paired slices: this box's speed drifts by a quarter within a minute, so phases measured
# a minute apart give noisy ratios. For each target endpoint, PAIRS times: the ceiling for
# SLICE, then the endpoint for SLICE, back to back; the ratio of each pair, and the median.
slice_rps() { # slice_rps SCRIPT [VAR=VALUE...] -> req/s of one SLICE-long wrk run
  local script=$1
  shift
  env "$@" timeout $(( $(seconds "$SLICE") + 60 )) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$SLICE" --timeout 10s \
    -s "$BENCH/lua/$script" "$URL" 2>&1 | awk '/^Requests\/sec:/ {print $2}'
}
# flow_slice_rps -> HTTP req/s of one SLICE-long flow run with FLOW_CLIENT's client, the phase's
# users; nothing (and the reason on stderr) if a login failed or the client did.
flow_slice_rps() {
  local out=$RESULTS/paired-flow.wrk.txt
  load_cmd "$FLOW_SCRIPT" "$FLOW_THREADS" "$CONNECTIONS" "$SLICE"
  if ! timeout $(( $(seconds "$SLICE") + 60 )) "${LOAD_CMD[@]}" >"$out" 2>&1; then
    log "the flow slice's client failed: $(tail -3 "$out")"
    return 0
  fi
  if ! grep -q '^flows: .* logins ok (200, result:true) [1-9][0-9]*, failed 0$' "$out"; then
    log "a flow slice had failed logins: $(grep '^flows:\|^some failed' "$out" | tr '\n' ' ')"
    return 0
  fi
  awk '/^Requests\/sec:/ {print $2}' "$out"
}
# paired.txt, one line per pair: target, ceiling req/s, endpoint req/s, then the steal ticks and
# all CPU ticks over the pair (its steal share), the endpoint slice's gateway CPU ticks, Redis
# CPU seconds and wall seconds (its CPU per request), and its load client's CPU seconds.
if (( PAIRS > 0 )); then
  : >"$RESULTS/paired.txt"
  for target in keyreq verify otpreq flow; do
    wait_quiet
    log "paired slices for $target: $PAIRS x ($SLICE ceiling, then $SLICE $target)"
    for i in $(seq "$PAIRS"); do
      read -r _ _ ps0 pa0 < <(stat_ticks)
      h=$(slice_rps static.lua BENCH_PATH=/health/live)
      read_children_cpu
      pc0=$CHILD_CPU
      pg0=$(cpu_ticks "$GW_PID") pr0=$(redis_cpu) pt0=$(date +%s.%N)
      case $target in
        keyreq) p=$(slice_rps keyreq.lua) ;;
        verify) p=$(slice_rps static.lua BENCH_PATH=/v1/auth/verify BENCH_BEARER="$BENCH_BEARER_TOKEN" \
          BENCH_BEARER_FILE="$BEARER_FILE") ;;
        otpreq) p=$(slice_rps otpreq.lua BENCH_OTP_NAMES=100000) ;;
        flow) p=$(flow_slice_rps) ;;
      esac
      pg1=$(cpu_ticks "$GW_PID") pr1=$(redis_cpu) pt1=$(date +%s.%N)
      read_children_cpu
      pc1=$CHILD_CPU
      read -r _ _ ps1 pa1 < <(stat_ticks)
      [[ -n $h && -n $p ]] || die "a paired slice of $target gave no figure"
      echo "$target $h $p $(( ps1 - ps0 )) $(( pa1 - pa0 )) $(( pg1 - pg0 )) $(awk -v a="$pr0" -v b="$pr1" 'BEGIN {printf "%.6f", b - a}') $(awk -v a="$pt0" -v b="$pt1" 'BEGIN {printf "%.3f", b - a}') $(awk -v a="$pc0" -v b="$pc1" 'BEGIN {printf "%.3f", b - a}')" >>"$RESULTS/paired.txt"
      log "  pair $i: ceiling $h, $target $p req/s; steal $(awk -v s=$(( ps1 - ps0 )) -v a=$(( pa1 - pa0 )) 'BEGIN {printf "%.1f", (a > 0 ? 100 * s / a : 0)}')%"
    done
  done
  check_gateway "in the paired slices"
fi
# With several rounds, each phase reports its best round (the highest req/s: the least
# disturbed by whatever else runs on the machine), the same rule for every phase.
python3 - "$RESULTS" "$ROUNDS" "$PEERS" <<'PY'
import json, sys
d, rounds, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
names = ["health", "keyreq", "flow", "verify", "otpreq", "exchange"]
if peers:
    names += ["peer-otpreq", "peer-exchange"]
for name in names:
    runs = [json.load(open(f"{d}/{name}{'' if rounds == 1 else f'.r{i}'}.json")) for i in range(1, rounds + 1)]
    best = max(range(rounds), key=lambda i: runs[i]["rps"])
    out = dict(runs[best])
    out["round"] = best + 1
    out["rounds"] = [
        {"rps": r["rps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"], "other_cores": r["cores"]["other"],
         "steal_pct": r.get("steal_pct")}
        for r in runs
    ]
    json.dump(out, open(f"{d}/{name}.json", "w"), indent=1)
PY

python3 - "$RESULTS" <<'PY' || die "a phase is invalid (see above)"
import json, sys
d = sys.argv[1]
bad = []
for name in ("health", "keyreq", "flow", "verify", "otpreq", "exchange"):
    r = json.load(open(f"{d}/{name}.json"))
    errs = r["errors_status"] + r["errors_socket"] + r["errors_timeout"]
    if errs > 0.001 * max(r["requests"], 1):
        bad.append(f"{name}: {errs} errors in {r['requests']} requests")
f = json.load(open(f"{d}/flow.json"))
if f["login_ok"] == 0 or f["login_bad"] > 0:
    bad.append(f"flow: logins ok {f['login_ok']}, failed {f['login_bad']}")
import glob
for p in sorted(glob.glob(f"{d}/exchange*.json")):
    x = json.load(open(p))
    if x["exchange_bad"] > 0 or x["exchange_ok"] == 0:
        bad.append(f"{p}: exchanges ok {x['exchange_ok']}, failed {x['exchange_bad']}, of {x['pairs']}")
for p in sorted(glob.glob(f"{d}/peer-*.json")):
    x = json.load(open(p))
    errs = x["errors_status"] + x["errors_socket"] + x["errors_timeout"] + x.get("peer_bad", 0)
    if errs > 0.001 * max(x["requests"], 1) or x.get("peer_ok", 1) == 0:
        bad.append(f"{p}: the peer answered {x.get('peer_ok')} requests with 200 and {errs} otherwise, of {x['requests']}")
if bad:
    print("INVALID: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY

# ---------------------------------------------------------------- 6. fixed rate

# fixed_run NAME ENDPOINT RATE GOAL_MS WHY: ENDPOINT (keyreq, verify or otpreq) at RATE req/s with
# oha, open loop, for FIXED_DURATION; the verdict is p99 < GOAL_MS (and at least 95% of the rate
# achieved), or "noisy" with more than STEAL_LIMIT percent steal.
fixed_run() {
  local name=$1 endpoint=$2 rate=$3 goal=$4 why=$5
  local req=()
  case $endpoint in
    keyreq) req=(-m POST -T application/json -Z "$BODIES" "$URL/v1/login/one-time-key/request") ;;
    verify) req=(-H "Authorization: Bearer $BENCH_BEARER_TOKEN" "$URL/v1/auth/verify") ;;
    otpreq) req=(-m POST -T application/json -H "Authorization: Bearer $OTP_IMPLICIT" -Z "$OTP_UNKNOWN_BODIES" "$URL$OTP_PATH") ;;
    *) die "fixed_run: unknown endpoint $endpoint" ;;
  esac
  (( rate >= 1 )) || die "fixed_run $name: no rate (the phase it halves measured nothing?)"
  wait_quiet
  log "fixed rate ($name): $endpoint at $rate req/s ($why) for $FIXED_DURATION, oha -c$CONNECTIONS --latency-correction"
  local gw0 gw1 rc0 rc1 busy0 busy1 irq0 irq1 steal0 steal1 all0 all1 t0 ch0 t1 ch1
  each_node CONFIG RESETSTAT >/dev/null
  each_node LATENCY RESET >/dev/null
  snapshot 0
  timeout $((FIXED_S + 60)) oha --no-tui --output-format json -o "$RESULTS/$name.oha.json" \
    -z "$FIXED_DURATION" -c "$CONNECTIONS" -q "$rate" --latency-correction "${req[@]}" >/dev/null 2>&1 ||
    die "oha failed"
  check_gateway "in the fixed-rate check"
  snapshot 1
  each_node LATENCY LATEST >"$RESULTS/$name.latency.txt"
  redis_dump "$name"
  python3 - "$RESULTS" "$name" "$rate" "$why" "$(( gw1 - gw0 ))" "$CLK_TCK" "$rc0" "$rc1" \
    "$(( busy1 - busy0 ))" "$t0" "$t1" "$ch0" "$ch1" "$NCPU" "$(( irq1 - irq0 ))" "$endpoint" "$goal" \
    "$(( steal1 - steal0 ))" "$(( all1 - all0 ))" "$STEAL_LIMIT" \
    "$(python3 "$BENCH/bench.py" stalls "$RESULTS/$name.latency.txt")" <<'PY'
import json, sys
d, name, rate, why = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
gw_ticks, clk, rc0, rc1, busy, t0, t1, ch0, ch1, ncpu, irq, endpoint, goal, steal, all_ticks, steal_limit, stalls = sys.argv[5:]
wall = float(t1) - float(t0)
gw_s, redis_s = int(gw_ticks) / int(clk), float(rc1) - float(rc0)
oha_s, busy_s = float(ch1) - float(ch0), int(busy) / int(clk)
cores = {"available": int(ncpu), "gateway": gw_s / wall, "redis": redis_s / wall, "oha": oha_s / wall,
         "softirq": int(irq) / int(clk) / wall, "other": max(busy_s - gw_s - redis_s - oha_s, 0) / wall,
         "steal": int(steal) / int(clk) / wall}
o = json.load(open(f"{d}/{name}.oha.json"))
m = o["metrics"]
lat = m["latency_ms"]
codes = o.get("statusCodeDistribution", {})
answered = sum(codes.values())
ok_status = {"keyreq": "200", "verify": "200", "otpreq": "202"}[endpoint]
out = {
    "tool": "oha -q (open loop, --latency-correction)",
    "endpoint": endpoint,
    "why": why,
    "rate": rate,
    "goal_p99_ms": float(goal),
    "achieved_rps": m["requests_per_sec"],
    "p50_ms": lat["p50"],
    "p99_ms": lat["p99"],
    # latencyPercentiles is in seconds, and has the p99.9 that metrics.latency_ms lacks.
    "p999_ms": (o.get("latencyPercentiles") or {}).get("p99.9", float("nan")) * 1000
    if (o.get("latencyPercentiles") or {}).get("p99.9") is not None else None,
    "max_ms": lat["max"],
    "status_codes": codes,
    "answered": answered,
    "non_ok": sum(v for k, v in codes.items() if k != ok_status),
    # oha counts requests still in flight at the deadline as "aborted due to deadline".
    "errors": o.get("errorDistribution", {}),
    "cores": cores,
    "gateway_cpu_us_per_request": gw_s * 1e6 / max(answered, 1),
    "redis_cpu_us_per_request": redis_s * 1e6 / max(answered, 1),
    "steal_pct": 100 * int(steal) / int(all_ticks) if int(all_ticks) > 0 else 0.0,
    # Redis's own stalls over the run (its latency monitor: events of 2 ms or more, the
    # longest of each kind), and the keys it expired meanwhile.
    "redis_stalls_ms": json.loads(stalls),
    "expired_keys": next((int(l.split(":")[1]) for l in open(f"{d}/{name}.stats.txt")
                          if l.startswith("expired_keys:")), 0),
}
# Redis commands per answered request, the gateway's background (measured in phase a) taken off.
import re
try:
    bg = json.load(open(f"{d}/health.json"))["redis"]["background_per_s"]
except (FileNotFoundError, KeyError):
    bg = {}
calls = {}
for line in open(f"{d}/{name}.commandstats.txt"):
    mm = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
    if mm:
        calls[mm.group(1)] = max(int(mm.group(2)) - bg.get(mm.group(1), 0) * wall, 0)
out["redis_per_request"] = sum(calls.values()) / max(answered, 1)
out["noisy"] = out["steal_pct"] > float(steal_limit)
out["pass"] = (out["p99_ms"] is not None and out["p99_ms"] < out["goal_p99_ms"]
               and out["achieved_rps"] >= 0.95 * rate and out["non_ok"] == 0)
out["non_200"] = out["non_ok"]  # the name older summaries read
json.dump(out, open(f"{d}/{name}.json", "w"), indent=1)
p999 = "-" if out["p999_ms"] is None else f"{out['p999_ms']:.2f}"
print(f"    -> achieved {out['achieved_rps']:.0f} req/s, p50 {out['p50_ms']:.2f} ms, p99 {out['p99_ms']:.2f} ms, "
      f"p99.9 {p999} ms, max {out['max_ms']:.2f} ms; status {codes}; errors {out['errors']}", file=sys.stderr)
print(f"    -> Redis {out['redis_per_request']:.2f} cmds/req; gateway {out['gateway_cpu_us_per_request']:.0f} CPU-us/req, "
      f"redis {out['redis_cpu_us_per_request']:.0f} CPU-us/req; cores used: gateway {cores['gateway']:.2f}, redis {cores['redis']:.2f}, oha {cores['oha']:.2f}, "
      f"softirq {cores['softirq']:.2f}, other processes {cores['other']:.2f} (of {cores['available']}); steal "
      f"{out['steal_pct']:.1f}%; p99 < {goal} ms: "
      + ("NOISY (steal over the limit)" if out["noisy"] else ("PASS" if out["pass"] else "FAIL")), file=sys.stderr)
stall = ", ".join(f"{k} {v} ms" for k, v in sorted(out["redis_stalls_ms"].items())) or "none of 2 ms or more"
print(f"    -> Redis stalls: {stall}; keys expired during the run: {out['expired_keys']}", file=sys.stderr)
PY
}

if [[ $SKIP_FIXED != 1 ]]; then
  rps_of() { python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["rps"]))' "$RESULTS/$1.json"; }
  CEILING=$(rps_of health)
  BODIES=$TMP/bodies.txt
  python3 -c 'import sys
n = int(sys.argv[1])
print("\n".join("{\"username\":\"u%d@myapp.myaccount.voximplant.com\"}" % i for i in range(n)))' "$KEY_USERS" >"$BODIES"
  # Phase (e)'s bodies: usernames that are not in the directory.
  OTP_UNKNOWN_BODIES=$TMP/otp-unknown-bodies.txt
  python3 -c 'print("\n".join("{\"data\":{\"type\":\"one_time_password_token_request\",\"username\":\"n%d@bench.invalid\",\"purpose\":\"passwordless_authentication\"}}" % i for i in range(100000)))' >"$OTP_UNKNOWN_BODIES"
  # Issue 15's targets: each endpoint at half of its own throughput in this run's phase (its
  # best round), p99 < 5 ms. Before the half-ceiling run, which can be above the key request's
  # capacity and leave a backlog.
  # Redis's latency monitor: each run reports the stalls of 2 ms or more Redis had during it
  # (its expiry cycle, a slow command), so that a tail that is Redis's shows as such.
  each_node CONFIG SET latency-monitor-threshold 2 >/dev/null
  for ep in keyreq verify otpreq; do
    cap=$(rps_of "$ep")
    fixed_run "fixed-$ep" "$ep" "$(( cap / 2 ))" 5 "half of phase $ep's $cap req/s"
  done
  # Issue 2's target: key requests at half the ceiling's throughput (or FIXED_RATE), p99 < 10 ms.
  fixed_run fixed keyreq "${FIXED_RATE:-$(( CEILING / 2 ))}" 10 "half the ceiling of $CEILING req/s"
  RSS_TIMELINE+=", after fixed $(( $(vm "$GW_PID" VmRSS) / 1024 ))"

  # (g) Delivery latency at a steady, moderate rate: code requests for the OTP users at
  # DELIVERY_RATE req/s with oha (open loop), every webhook timed from payload.created_at.
  wait_quiet
  python3 -c 'import sys
print("\n".join("{\"data\":{\"type\":\"one_time_password_token_request\",\"username\":\"%s\",\"purpose\":\"passwordless_authentication\"}}" % l.strip() for l in open(sys.argv[1]) if l.strip()))' "$TMP/otp-users-run.txt" >"$TMP/otp-bodies.txt"
  recv "dump?path=$TMP/discard.jsonl" >/dev/null
  log "delivery latency: code requests at $DELIVERY_RATE req/s for $DURATION (oha -q), webhook arrival vs payload.created_at"
  read -r _ _ gs0 ga0 < <(stat_ticks)
  timeout $((DUR_S + 60)) oha --no-tui --output-format json -o "$RESULTS/delivery-steady.oha.json" \
    -z "$DURATION" -c 8 -q "$DELIVERY_RATE" --latency-correction -m POST -T application/json \
    -H "Authorization: Bearer $OTP_IMPLICIT" -Z "$TMP/otp-bodies.txt" "$URL$OTP_PATH" >/dev/null 2>&1 || die "oha failed"
  STEADY_N=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["statusCodeDistribution"].get("202", 0))' "$RESULTS/delivery-steady.oha.json")
  wait_deliveries "$STEADY_N"
  read -r _ _ gs1 ga1 < <(stat_ticks)
  recv "dump?path=$TMP/steady.jsonl" >/dev/null
  python3 "$BENCH/bench.py" delivery "$TMP/steady.jsonl" "$RESULTS/delivery-steady.json" \
    "steady $DELIVERY_RATE code requests/s for $DURATION, healthy receiver"
  python3 - "$RESULTS/delivery-steady.json" "$(( gs1 - gs0 ))" "$(( ga1 - ga0 ))" "$STEAL_LIMIT" <<'PY'
import json, sys
p, steal, all_ticks, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
d = json.load(open(p))
d["steal_pct"] = 100 * steal / all_ticks if all_ticks > 0 else 0.0
d["noisy"] = d["steal_pct"] > limit
json.dump(d, open(p, "w"), indent=1)
print(f"    -> steal {d['steal_pct']:.1f}% of the CPU time" + (": NOISY" if d["noisy"] else ""), file=sys.stderr)
PY
fi

# ---------------------------------------------------------------- (h) revocation across replicas

if (( REVOCATIONS > 0 )); then
  # A second replica on the same Redis; each sample: a fresh session, checked twice on the
  # second replica (so it answers from memory), then logged out on the first while the
  # second polls it (bench/revocation.py).
  wait_quiet
  MAIN_PID=$GW_PID
  RVPORT=$(free_port)
  while [[ " ${NODE_PORTS[*]} $GPORT " == *" $RVPORT "* ]]; do RVPORT=$(free_port); done
  start_gateway "$RVPORT" "$TMP/second-gateway.log"
  SECOND_PID=$GW_PID
  GW_PID=$MAIN_PID
  log "(h) revocation: $REVOCATIONS logouts on $URL, each polled on a second replica (127.0.0.1:$RVPORT)"
  timeout 600 python3 "$BENCH/bench.py" tokens "$URL" myuser@myapp.myaccount.voximplant.com "$REVOCATIONS" \
    "$BIN" hash --user myuser --password "$PASSWORD" >"$TMP/revocation-tokens.txt" || die "logging in for (h) failed"
  timeout 600 python3 "$BENCH/revocation.py" "$URL" "http://127.0.0.1:$RVPORT" "$TMP/revocation-tokens.txt" \
    "$REVOCATIONS" "$RESULTS/revocation.json" >&2 || die "(h) failed"
  GW_PID=$SECOND_PID
  stop_gateway
  GW_PID=$MAIN_PID
fi

# ---------------------------------------------------------------- 5, 7. memory and summary

check_gateway "before its memory was read"
STEAL_PCT=$(awk -v s="$(( $(steal_ticks) - STEAL_START ))" -v a="$(( $(all_ticks) - ALL_START ))" \
  'BEGIN {printf "%.1f", (a > 0 ? 100 * s / a : 0)}')
TOPOLOGY=
if [[ $REDIS == cluster ]]; then
  ncli "$RPORT" CLUSTER NODES | sort -t' ' -k2 >"$RESULTS/cluster-nodes.end.txt" || true
  # The primaries at the start and at the end (a failover in between would move the spread).
  prim() { awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "[:@]"); print a[2]}' "$1" | sort | tr '\n' ' '; }
  TOPOLOGY="primaries $(prim "$RESULTS/cluster-nodes.start.txt")at the start"
  if [[ $(prim "$RESULTS/cluster-nodes.start.txt") != "$(prim "$RESULTS/cluster-nodes.end.txt")" ]]; then
    TOPOLOGY+=", $(prim "$RESULTS/cluster-nodes.end.txt")at the end: THE PRIMARIES CHANGED DURING THE RUN"
    log "warning: the cluster's primaries changed during the run (see ${RESULTS#"$ROOT"/}/cluster-nodes.*.txt)"
  else
    TOPOLOGY+=", the same at the end"
  fi
fi
PEER_META=None
if [[ $PEERS == 1 ]]; then
  check_peer "before its memory was read"
  PEER_META=$(python3 -c 'import json, sys
print(json.dumps({"better_auth": sys.argv[1], "node": sys.argv[2], "vmhwm_kib": int(sys.argv[3]), "vmrss_kib": int(sys.argv[4]),
  "users": int(sys.argv[5]), "redis_port": int(sys.argv[6])}))' \
    "$(node -p 'require(process.argv[1]).version' "$PEER_DIR/node_modules/better-auth/package.json")" "$(node --version)" \
    "$(vm "$PEER_PID" VmHWM)" "$(vm "$PEER_PID" VmRSS)" "$PEER_USERS" "$PEER_RPORT")
fi
VMHWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$GW_PID/status")
VMRSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status")
python3 - "$RESULTS/meta.json" <<PY
import json, sys
json.dump({
    "date": "$START_DATE",
    "cpus": $(nproc),
    "cpu_model": "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo | tr -d '"')",
    "loadavg_start": "$LOAD_START",
    "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "redis_version": "$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')",
    "wrk_version": "$(wrk -v 2>&1 | head -1 | awk '{print $2}')",
    "commit": "$(if [[ -n $REV ]]; then echo "${SHA:0:7} (REV=$REV, clean export)"; else echo "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes (working tree)')"; fi)",
    "duration": "$DURATION",
    "fixed_duration": "$FIXED_DURATION",
    "connections": $CONNECTIONS,
    "threads": $THREADS,
    "flow_client": "$FLOW_CLIENT",
    "flow_threads": $FLOW_THREADS,
    "exchange_client": "$EXCHANGE_CLIENT",
    "rounds": $ROUNDS,
    "calibration": "$CALIBRATION",
    "vmhwm_kib": ${VMHWM:-0},
    "setup_replica_vmhwm_kib": ${SETUP_HWM:-0},
    "setup_users": $(( CONNECTIONS - 1 )),
    "rss_timeline_mib": "$RSS_TIMELINE",
    "vmrss_kib": ${VMRSS:-0},
    "redis_mode": "$REDIS",
    "filled": ${FILLED:-0},
    "redis_nodes": [$(IFS=,; echo "${NODE_PORTS[*]}")],
    "redis_seed": $RPORT,
    "outbox_replicas": "${OUTBOX_REPLICAS:-default}",
    "topology": "$TOPOLOGY",
    "steal_pct": $STEAL_PCT,
    "steal_limit": $STEAL_LIMIT,
    "verify_tokens": $VERIFY_TOKENS,
    "peers": $PEERS,
    "peer": $PEER_META,
}, open(sys.argv[1], "w"), indent=1)
PY

# Peak RSS after a burst of plaintext-password logins (Argon2id verify on each, bounded
# per core at HEAD): CONNECTIONS connections on POST /v1/login/password for 5 s. After
# the VmHWM above, so that figure stays the steady-state one.
check_gateway "before the password-login burst"
cat >"$TMP/pwlogin.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"myuser@myapp.myaccount.voximplant.com","password":"$PASSWORD"}'
LUA
log "password-login burst: wrk -t$THREADS -c$CONNECTIONS -d5s POST /v1/login/password (memory)"
timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d5s --timeout 10s --latency -s "$TMP/pwlogin.lua" "$URL/v1/login/password" \
  >"$RESULTS/pwlogin.wrk.txt" 2>&1 || die "password-login burst failed"
sleep 1
check_gateway "after the password-login burst"
python3 - "$RESULTS/pwlogin.json" "$RESULTS/pwlogin.wrk.txt" "$VMHWM" \
  "$(vm "$GW_PID" VmHWM)" "$(vm "$GW_PID" VmRSS)" "$(awk '/^Threads:/ {print $2}' "/proc/$GW_PID/status")" <<'PY'
import json, re, sys
out, wrk, before, hwm, rss, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t = open(wrk).read()
m = re.search(r"Requests/sec:\s+([\d.]+)", t)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
json.dump({"rps": float(m.group(1)) if m else None, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
           "vmhwm_before_kib": before, "vmhwm_after_kib": hwm, "vmrss_after_kib": rss, "threads": threads},
          open(out, "w"), indent=1)
print(f"    -> {m.group(1) if m else '?'} logins/s; VmHWM {before/1024:.1f} -> {hwm/1024:.1f} MiB, VmRSS after {rss/1024:.1f} MiB, {threads} threads", file=sys.stderr)
PY
grep 'Requests/sec\|Non-2xx' "$RESULTS/pwlogin.wrk.txt" | sed 's/^/    /' >&2 || true

python3 "$BENCH/bench.py" summarize "$RESULTS" | tee "$RESULTS/latest.md"
log "written: ${RESULTS#"$ROOT"/}/latest.md (raw: ${RESULTS#"$ROOT"/}/*.json, *.wrk.txt, *.node-PORT.txt)"
