#!/usr/bin/env bash
# fdref_stress (fdref_stress.cpp) preloaded in the server namespace of the test bed:
# threads closing, dup2()ing over, moving and using fastnet sockets at once, against
# kernel peers in the client namespace (an echo server, peer.py; a server that never
# reads; a client that keeps connecting to the program's listener and echoes what it gets). Passes when
# the program's checks hold, the run was accelerated (engine counters: connections opened
# and accepted, some moved between engines) and, for a ThreadSanitizer build, its stderr
# has no report. scripts/test.sh runs it on the TSan build too.
# Usage: fdref_stress.sh <build-dir> <source-dir> [SECONDS]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
B=$1; S=$2; seconds=${3:-6}
LIB=$B/interpose/libfastnet.so
STAT=$B/interpose/fastnet-stat
PROG=$B/tests/interpose/interpose_fdref_stress
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/fastnet-fdref.XXXXXX)
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
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
export TSAN_OPTIONS="halt_on_error=0 report_signal_unsafe=0 history_size=4 suppressions=$S/tests/interpose/tsan.supp"

base=7400; lport=7500
cli "$PY" "$S/tests/interpose/peer.py" "$TB_IP_CLI" $base > "$TMP/peer.out" 2>&1 &
PIDS+=($!)
# Connects to the program's listener over and over, echoing what each connection gets;
# and a listener on lport + 1 that never reads (a send to it blocks), small buffers.
cli "$PY" -c '
import socket, sys, threading, time
held = []
def hold():
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    l.bind((sys.argv[3], int(sys.argv[2]) + 1)); l.listen(64)
    while True:
        held.append(l.accept()[0])
        del held[:-64]
threading.Thread(target=hold, daemon=True).start()
def run():
    while True:
        try:
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
        except OSError:
            time.sleep(0.05); continue
        try:
            while True:
                d = c.recv(65536)
                if not d: break
                c.sendall(d)
        except OSError:
            pass
        c.close()
for _ in range(4): threading.Thread(target=run, daemon=True).start()
threading.Event().wait()' "$TB_IP_SRV" $lport "$TB_IP_CLI" > "$TMP/rev.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/peer.out" && break; sleep 0.05; done

ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" FASTNET_IFACE="$TB_IF_SRV" \
 "$PROG" "$TB_IP_CLI" $((base + 1)) $((lport + 1)) $lport "$seconds" > "$TMP/out" 2> "$TMP/err" &
NP=$!; PIDS+=($NP)
# `ip netns exec` forks: the program is its child.
for _ in $(seq 100); do grep -q listening "$TMP/out" && break; sleep 0.05; done
PP=$(pgrep -P $NP | head -1); PP=${PP:-$NP}
# After the summary the program lingers 2 s: its counters are read then.
for _ in $(seq $(( (seconds + 40) * 20 ))); do grep -q summary "$TMP/out" && break; kill -0 $NP 2>/dev/null || break; sleep 0.05; done
sleep 0.5
json=$("$STAT" --json "$PP" 2>/dev/null)
wait $NP; rc=$?
summary=$(grep summary "$TMP/out")
[[ $rc -eq 0 ]] && pass "every check held: $summary" || {
  fail "fdref_stress exited $rc: ${summary:-no summary}"; grep -v '^ *#' "$TMP/err" | grep -v '^$' | head -40; }
jget() { "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get(sys.argv[1], 0))' "$1"; }
opened=$(echo "$json" | jget conn_opened); acc=$(echo "$json" | jget conn_accepted)
moved=$(echo "$json" | jget sockets_moved)
[[ $opened -ge 5 && $acc -ge 5 ]] && pass "accelerated: $opened connections opened, $acc accepted by the engines" \
  || fail "engine counters: opened=$opened accepted=$acc"
[[ $moved -ge 1 ]] && pass "$moved accepted connection(s) moved to the engine of the thread serving them" \
  || fail "no connection moved between engines"
cp "$TMP/err" "${TSAN_LOG:-/dev/null}" 2>/dev/null
races=$(grep -c 'WARNING: ThreadSanitizer' "$TMP/err")
if [[ $races -eq 0 ]]; then pass "no ThreadSanitizer report"
else
  fail "$races ThreadSanitizer report(s)"
  grep -A30 -m3 'WARNING: ThreadSanitizer' "$TMP/err" | head -120
fi
echo "summary: tsan_reports=$races"
if [[ $failures -ne 0 ]]; then echo "$failures failure(s)"; exit 1; fi
echo "all passed"
