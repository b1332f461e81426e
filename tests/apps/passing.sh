#!/usr/bin/env bash
# Connections that leave the process that accepted them, byte-exact, with the unread
# request they carry:
# 1. SCM_RIGHTS, standalone: a preloaded Python server passes 20 connections to a
#    worker it spawned (fork + exec; an exec'd process cannot join a standalone tree):
#    the kernel continues them (TCP_REPAIR, counted as handovers), the worker serves.
# 2. exec, standalone: the connection kept open across exec is the kernel's in the new
#    image; the same for an exec into a program without fastnet.
# 3. Through fastnetd: the same SCM_RIGHTS case runs accelerated in the worker (its
#    counters show the connections passed in, no kernel socket serves a flow), and a
#    connection kept across exec runs accelerated in the new image.
# Usage: passing.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
H=$S/tests/apps/passing.py
FND=$B/tools/fastnetd
SOCK=/run/fastnet/$TB_IF_SRV.sock
N=20

# scm PORT TAG: 20 connections passed to a spawned worker; WP is the worker's pid.
scm() {
  local port=$1 tag=$2 rc
  start_preloaded "$TMP/srv-$tag.out" "$PY" "$H" server "$port" $N "$TMP/done-$tag"
  SP=$APP_PID
  wait_listen "$TB_NS_SRV" "$port" || return 1
  cli timeout 90 "$PY" "$H" client "$TB_IP_SRV" "$port" $N 4194304 > "$TMP/c-$tag.out" 2>&1
  rc=$?
  WP=$(pgrep -n -P "$SP")
  [[ $rc == 0 ]] && pass "SCM_RIGHTS ($tag): $(tail -1 "$TMP/c-$tag.out")" \
    || fail "SCM_RIGHTS ($tag) client: rc=$rc $(tail -5 "$TMP/c-$tag.out"); server: $(tail -5 "$TMP/srv-$tag.out")"
}
# execd PORT TAG KEEP SIZE: one connection kept across exec (KEEP=0: LD_PRELOAD dropped).
execd() {
  local port=$1 tag=$2 rc
  start_preloaded "$TMP/srv-$tag.out" "$PY" "$H" execsrv "$port" "$TMP/done-$tag" "$3"
  SP=$APP_PID
  wait_listen "$TB_NS_SRV" "$port" || return 1
  cli timeout 60 "$PY" "$H" client "$TB_IP_SRV" "$port" 1 "$4" > "$TMP/c-$tag.out" 2>&1 &
  CL=$!
  for _ in $(seq 300); do grep -q "served 1" "$TMP/srv-$tag.out" && break; sleep 0.05; done
  KFLOWS=$(srv ss -tanH "sport = :$port" | awk '$1 != "LISTEN"' | wc -l)
  wait $CL; rc=$?
  [[ $rc == 0 ]] && pass "exec ($tag): $(tail -1 "$TMP/c-$tag.out")" \
    || fail "exec ($tag): rc=$rc $(tail -5 "$TMP/c-$tag.out"); server: $(tail -5 "$TMP/srv-$tag.out")"
  grep -q "served 1 after exec" "$TMP/srv-$tag.out" && pass "exec ($tag): the new image served the connection" \
    || fail "exec ($tag): the new image did not serve: $(tail -5 "$TMP/srv-$tag.out")"
}
done_with() {  # TAG: the server (and its worker) exit
  touch "$TMP/done-$1"
  wait "$SP" || fail "$1: the server exited with an error: $(tail -5 "$TMP/srv-$1.out")"
}

# Through fastnetd first: the standalone cases leave kernel sockets in TIME-WAIT.
# --- through fastnetd -----------------------------------------------------------------
ip netns exec "$TB_NS_SRV" "$FND" --iface "$TB_IF_SRV" > "$TMP/fnd.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || { fail "fastnetd did not start: $(cat "$TMP/fnd.log")"; finish; }

sampler_start
scm 7620 fastnetd
if [[ -n $WP ]]; then
  prove_counters "$WP" conn_passed_in $N sockets_moved $N bytes_tx $((N * 4194304)) bytes_rx $((N * 65536))
else
  fail "no worker process: $(tail -5 "$TMP/srv-fastnetd.out")"
fi
prove_counters "$SP" conn_passed_out $N conn_accepted $N
sampler_stop
prove_no_kernel_flows 7620 "connections passed with SCM_RIGHTS through fastnetd"
done_with fastnetd

sampler_start
execd 7621 exec-fastnetd 1 16777216
prove_counters "$SP" conn_passed_in 1 sockets_moved 1 bytes_tx 16777216
sampler_stop
prove_no_kernel_flows 7621 "a connection kept across exec through fastnetd"
done_with exec-fastnetd

kill -TERM "$DP"; wait "$DP" || fail "fastnetd: $(tail -3 "$TMP/fnd.log")"

# --- standalone -----------------------------------------------------------------------
scm 7610 standalone
prove_counters "$SP" handovers $N conn_accepted $N
done_with standalone

execd 7611 exec-standalone 1 16777216
[[ $KFLOWS -ge 1 ]] && pass "exec (standalone): the kernel holds the connection in the new image" \
  || fail "exec (standalone): no kernel socket for the connection in the new image"
done_with exec-standalone

execd 7612 exec-no-fastnet 0 16777216
[[ $KFLOWS -ge 1 ]] && pass "exec (no fastnet): the kernel holds the connection" \
  || fail "exec (no fastnet): no kernel socket for the connection"
done_with exec-no-fastnet

finish
