# Shared by the apps suite: runs the calling script beside a fresh namespace test bed,
# gives it the build's paths, failure reporting, cleanup of background processes on every
# exit path, and the two proofs of acceleration (fastnet-stat counters; no kernel socket).
# Usage: source lib.sh <build-dir> <source-dir>   (re-executes the caller under with-testbed.sh,
# with the bed options in APPS_TB_OPTS if the caller set it, e.g. --tx-on-client)

if [[ -z ${TB_NS_SRV:-} ]]; then
  # shellcheck disable=SC2086  # options are words
  exec "$2/tests/testbed/with-testbed.sh" ${APPS_TB_OPTS:-} -- bash "$0" "$@"
fi
B=$1; S=$2
LIB=$B/interpose/libfastnet.so
STAT=$B/interpose/fastnet-stat
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/fastnet-apps.XXXXXX)
PIDS=()
SAMPLER=
failures=0

cleanup() {
  [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n $SAMPLER ]] && wait "$SAMPLER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
finish() {
  if [[ $failures -ne 0 ]]; then echo "$failures failure(s)" >&2; exit 1; fi
  echo "all passed"; exit 0
}
srv() { ip netns exec "$TB_NS_SRV" "$@"; }
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
# Real programs, not installed here: skip the whole test (meson's 77).
need() {
  local t
  for t in "$@"; do
    command -v "$t" > /dev/null || { echo "SKIP: $t is not installed (scripts/bootstrap.sh)" >&2; exit 77; }
  done
}

# Starts a program preloaded in the server namespace; APP_PID is the program's own pid
# (ip netns exec and env both exec, so $! is it).
start_preloaded() {  # log-file cmd args...
  local log=$1; shift
  ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$@" > "$log" 2>&1 &
  APP_PID=$!; PIDS+=("$APP_PID")
}
wait_listen() {  # ns port
  local i
  for i in $(seq 100); do
    ip netns exec "$1" ss -Htln "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  fail "nothing listens on port $2 in $1"; return 1
}

# Processes that start unprivileged load the library (and the launcher) from a copy
# anyone can read: the build tree may sit in a private directory. Sets PUBLIB.
public_lib() {
  chmod 755 "$TMP"
  mkdir -p "$TMP/pub"
  cp "$LIB" "$B/tools/fastnet" "$TMP/pub/"
  chmod 755 "$TMP/pub"; chmod 644 "$TMP/pub/"*
  PUBLIB=$TMP/pub/libfastnet.so
}

# wait_workers MASTER COUNT: until MASTER has COUNT children, each accelerated and no
# longer root (their engines and adopted listeners in place), then half a second more.
# W: the children's pids.
wait_workers() {
  local i w ready
  for i in $(seq 100); do
    W=$(pgrep -P "$1" | sort)
    ready=$([[ $(wc -w <<< "$W") -eq $2 ]] && echo 1 || echo 0)
    for w in $W; do
      [[ $(jget state <<< "$(stat_json "$w")") == accelerated* ]] || ready=0
      [[ $(ps -o user= -p "$w" | tr -d ' ') != root ]] || ready=0
    done
    [[ $ready -eq 1 ]] && break
    sleep 0.1
  done
  sleep 0.5
}

stat_json() { "$STAT" --json "$1" 2>/dev/null; }
# jget KEY < json: one counter (drops.<reason> for a drop counter).
jget() {
  "$PY" -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[k]
print(d)' "$1" 2>/dev/null
}

# Proof 1: the process runs accelerated and its counters moved.
# prove_counters PID KEY MIN [KEY MIN ...]   (json also left in STAT_JSON)
prove_counters() {
  local pid=$1; shift
  STAT_JSON=$(stat_json "$pid")
  local st; st=$(jget state <<< "$STAT_JSON")
  if [[ $st != accelerated* ]]; then
    fail "pid $pid is not accelerated (state [$st]): the library fell back to the kernel"; return 1
  fi
  pass "fastnet-stat: $st"
  while [[ $# -ge 2 ]]; do
    local v; v=$(jget "$1" <<< "$STAT_JSON")
    if [[ -n $v && $v -ge $2 ]]; then pass "fastnet-stat: $1 = $v (>= $2)"
    else fail "fastnet-stat: $1 = [$v], expected >= $2"; fi
    shift 2
  done
}

# Proof 2: while the load runs, snapshots of `ss -tan` in both namespaces every 0.1 s.
# The server namespace may hold listeners (the kernel side the library keeps for
# loopback) and loopback flows, but no kernel socket whose address is the veth's.
sampler_start() {
  : > "$TMP/ss.srv"; : > "$TMP/ss.cli"
  (
    while :; do
      ip netns exec "$TB_NS_SRV" ss -tanH >> "$TMP/ss.srv"
      ip netns exec "$TB_NS_CLI" ss -tanH >> "$TMP/ss.cli"
      sleep 0.1
    done
  ) &
  SAMPLER=$!
}
sampler_stop() {
  [[ -n $SAMPLER ]] && { kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; }
  SAMPLER=
}
# Kernel TCP sockets in the server namespace on the veth address (not listeners), also
# those of dual-stack AF_INET6 sockets (ss prints them as [::ffff:a.b.c.d]:port).
veth_kernel_flows() {  # file
  awk -v ip="$TB_IP_SRV:" '
    function v4(a) { sub(/^\[::ffff:/, "", a); sub(/\]:/, ":", a); return a }
    $1 != "LISTEN" && (index(v4($4), ip) == 1 || index(v4($5), ip) == 1)' "$1" | sort -u
}
# prove_no_kernel_flows PORT WHAT: the client side saw established flows to/from PORT
# (so the snapshots covered the load) and the server side never had a kernel socket.
prove_no_kernel_flows() {
  local port=$1 what=$2 seen bad
  seen=$(awk -v p=":$port" '$1 == "ESTAB" && ($4 ~ p"$" || $5 ~ p"$")' "$TMP/ss.cli" | wc -l)
  bad=$(veth_kernel_flows "$TMP/ss.srv")
  if [[ $seen -eq 0 ]]; then
    fail "$what: the client namespace never showed an established flow on port $port (snapshots missed the load)"
  elif [[ -n $bad ]]; then
    fail "$what: kernel TCP sockets on the fastnet side: $(head -5 <<< "$bad")"
  else
    pass "$what: $seen established flow snapshots in the client namespace, no kernel TCP socket on $TB_IP_SRV"
  fi
  # A kernel flow closed by the server side would linger in TIME-WAIT: look once more.
  bad=$(ip netns exec "$TB_NS_SRV" ss -tanH > "$TMP/ss.after"; veth_kernel_flows "$TMP/ss.after")
  [[ -z $bad ]] || fail "$what: kernel TCP sockets on the fastnet side after the load: $(head -5 <<< "$bad")"
}

# An nginx with every path inside DIR, serving DIR/www on PORT (the whole listen
# argument: "8080 reuseport" works); EXTRA goes into the server block. Without WORKERS a
# single process (no fork, so the process serving is the preloaded one); with WORKERS a
# master and that many forked workers.
nginx_conf() {  # dir port [extra] [workers]
  mkdir -p "$1/www"
  cat > "$1/nginx.conf" <<NG
master_process $([[ -n ${4:-} ]] && echo on || echo off);
daemon off;
worker_processes ${4:-1};
error_log $1/error.log;
pid $1/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $1/client_body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  keepalive_requests 100000;
  server { listen $2; root $1/www; ${3:-} }
}
NG
}
