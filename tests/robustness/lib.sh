# Shared by the robustness scripts (run inside tests/testbed/with-testbed.sh): paths,
# failure reporting, a preloaded echo server in the server namespace, its counters, and
# cleanup of every background process on every exit path.
# Usage: source lib.sh BUILD SOURCE
B=$1; S=$2
H=$S/tests/robustness
PY=/usr/bin/python3
LIB=$B/interpose/libfastnet.so
STAT=$B/interpose/fastnet-stat
TMP=$(mktemp -d /tmp/fastnet-robust.XXXXXX)
PIDS=()
failures=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
srv() { ip netns exec "$TB_NS_SRV" "$@"; }
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
finish() {
  if [[ $failures -ne 0 ]]; then echo "$failures failure(s)"; exit 1; fi
  echo "all passed"; exit 0
}
wait_listen() {  # port
  for _ in $(seq 100); do srv ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  return 1
}
# start_echo PORT [ENV=VALUE ...]: the preloaded epoll_echo; sets SP (its pid).
start_echo() {
  local port=$1; shift
  srv env LD_PRELOAD="$LIB" FASTNET_IFACE="$TB_IF_SRV" "$@" "$B/examples/epoll_echo" "$port" \
    > "$TMP/srv.out" 2> "$TMP/srv.err" &
  local np=$!; PIDS+=($np)
  wait_listen "$port" || { fail "echo server did not listen"; cat "$TMP/srv.err"; finish; }
  # `ip netns exec` forks: the server is its child.
  SP=$(pgrep -P $np | head -1); SP=${SP:-$np}
  PIDS+=($SP)
  sleep 0.3
  local st; st=$(stat_get state)
  [[ $st == accelerated* ]] || { fail "server not accelerated: $st"; cat "$TMP/srv.err"; finish; }
}
# stat_get KEY: a counter of the server (drops as drop_<reason>).
# UMEM frames at rest: every frame is in the free list, the fill ring or an engine's
# cache once traffic has stopped and the completions are drained (sampled every 250 ms).
# A frame lost on any path (RX not released, TX not completed) shows as a shortfall.
check_umem_frames() {  # what
  local idle total
  for _ in $(seq 20); do
    idle=$(stat_get umem_frames_idle); total=$(stat_get umem_frames)
    [[ -n $total && $total -gt 0 && $idle -eq $total ]] && break
    sleep 0.25
  done
  [[ -n $total && $total -gt 0 && $idle -eq $total ]] &&
    pass "$1: every UMEM frame is back ($idle of $total at rest)" ||
    fail "$1: UMEM frames at rest $idle of $total (frames leaked)"
}

stat_get() {
  "$STAT" --json "$SP" 2>/dev/null | $PY -c '
import json, sys
d = json.load(sys.stdin); k = sys.argv[1]
print(d["drops"][k[5:]] if k.startswith("drop_") else d[k])' "$1"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
