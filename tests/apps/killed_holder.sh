#!/usr/bin/env bash
# A preloaded server accepts, forks a child that holds the connection without using it,
# and the child is killed with SIGKILL (no exit handler runs). As on the kernel, the
# connection closes when its last live holder does: killed, then the parent closes → FIN
# at once; the parent closes (no FIN: the child holds it), then the child is killed →
# FIN within about a second. The kernel client measures from the server's marker.
# Usage: killed_holder.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"

PORT=7073
H=$S/tests/apps/killed_holder.py
start_preloaded "$TMP/srv.out" "$PY" "$H" server $PORT kill-close,close-kill
SP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

sampler_start
# check MODE LOW HIGH: the client saw the FIN LOW..HIGH seconds after the marker.
check() {
  local out t
  out=$(cli timeout 20 "$PY" "$H" client "$TB_IP_SRV" $PORT 2>&1)
  t=$(awk '/^eof/ {print $2}' <<< "$out")
  if [[ -n $t ]] && awk -v t="$t" -v lo="$2" -v hi="$3" 'BEGIN {exit !(t >= lo && t <= hi)}'; then
    pass "$1: the kernel client saw the FIN $t s after the marker"
  else
    fail "$1: expected a FIN $2..$3 s after the marker, the client saw: $out"
  fi
}
check "holder killed, then the parent closes" 0 1.0
check "the parent closes, then the holder is killed (0.5 s later)" 0.45 1.5
sampler_stop
prove_counters "$SP" conn_accepted 2
prove_no_kernel_flows $PORT "connections held by killed children"
for _ in $(seq 100); do grep -q done "$TMP/srv.out" && break; sleep 0.05; done
grep -q done "$TMP/srv.out" && pass "the server reaped its children" || fail "server: $(tail -3 "$TMP/srv.out")"
finish
