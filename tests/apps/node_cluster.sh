#!/usr/bin/env bash
# node's cluster module (2 workers, round-robin: the primary accepts and passes each
# connection to a worker with SCM_RIGHTS), preloaded, through fastnetd: wrk for 5 s with
# no errors (the requests/s of the same server on the kernel, run first, are printed
# beside fastnet's), the workers' counters show the connections passed in and
# their traffic, and no kernel socket serves a flow while the load runs.
# Usage: node_cluster.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need node wrk
JS=$S/tests/apps/node_cluster.js
FND=$B/tools/fastnetd
SOCK=/run/fastnet/$TB_IF_SRV.sock
PORT=8090

# run TAG: wrk against the cluster; RPS and ERRS set.
run() {
  RPS=; ERRS=; NON2XX=
  for _ in $(seq 200); do grep -q "workers listening" "$TMP/node-$1.out" && break; sleep 0.05; done
  grep -q "workers listening" "$TMP/node-$1.out" || { fail "$1: the workers did not start: $(grep -v "^ *at " "$TMP/node-$1.out" | head -20)"; return 1; }
  cli timeout 30 wrk -t 2 -c 32 -d 5s "http://$TB_IP_SRV:$PORT/" > "$TMP/wrk-$1.out" 2>&1
  RPS=$(awk '$1 == "Requests/sec:" {print int($2)}' "$TMP/wrk-$1.out")
  ERRS=$(awk '$1 == "Socket" {n = 0; for (i = 3; i <= NF; i += 2) n += $(i + 1) + 0; print n}' "$TMP/wrk-$1.out")
  NON2XX=$(awk '$1 == "Non-2xx" {print $NF}' "$TMP/wrk-$1.out")
  echo "$1: ${RPS:-?} requests/s, socket errors ${ERRS:-0}"
}

# --- the kernel -------------------------------------------------------------------------
srv node "$JS" $PORT > "$TMP/node-kernel.out" 2>&1 &
KP=$!; PIDS+=("$KP")
sampler_start   # as in the fastnet run, so both runs share the machine alike
run kernel; KRPS=${RPS:-0}
sampler_stop
kill "$KP"; wait "$KP" 2>/dev/null
for _ in $(seq 100); do srv ss -Htln "sport = :$PORT" | grep -q . || break; sleep 0.05; done

# --- fastnet, through fastnetd (another port: nothing of the kernel run in the way) ------
PORT=8091
ip netns exec "$TB_NS_SRV" "$FND" --iface "$TB_IF_SRV" > "$TMP/fnd.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || { fail "fastnetd did not start: $(cat "$TMP/fnd.log")"; finish; }
start_preloaded "$TMP/node-fastnet.out" node "$JS" $PORT
NP=$APP_PID
sampler_start
run fastnet
W=$(pgrep -P "$NP" | head -2)
sampler_stop
[[ -n $RPS && $RPS -gt 0 && ${ERRS:-0} -eq 0 && -z $NON2XX ]] \
  && pass "fastnet: $RPS requests/s, no socket errors, every response 2xx" \
  || fail "fastnet: requests/s [$RPS], socket errors [$ERRS], non-2xx [$NON2XX]: $(tail -3 "$TMP/wrk-fastnet.out")"
# The ratio is reported; the floor asserted is half the kernel's rate, well below what
# this comparison gives (0.74-0.96x measured on 2-core guests): a timed comparison on a
# shared machine is bench/run.sh's job, but a cluster whose passed connections stall or
# fall to a slow path lands below half.
[[ $KRPS -gt 0 && -n $RPS ]] && echo "ratio: fastnet $RPS / kernel $KRPS requests/s"
[[ -n $RPS ]] && (( RPS * 2 >= KRPS )) && pass "fastnet serves at least half the kernel's rate" \
  || fail "fastnet $RPS requests/s against the kernel's $KRPS: below half"
for w in $W; do prove_counters "$w" conn_passed_in 1 frames_tx 100; done
prove_counters "$NP" conn_passed_out 32
prove_no_kernel_flows $PORT "node cluster workers"
# The workers first (they outlive the primary for a moment), then fastnetd, which then
# has no client left and removes its files.
kill $W "$NP" 2>/dev/null; wait "$NP" 2>/dev/null
for _ in $(seq 100); do pgrep -f "node $JS" > /dev/null || break; sleep 0.05; done
kill -TERM "$DP"; wait "$DP" || fail "fastnetd: $(tail -3 "$TMP/fnd.log")"
# Its ring keeper follows once the clients' slots are reaped (every 250 ms).
for _ in $(seq 60); do [[ -e ${SOCK%.sock}.state ]] || break; sleep 0.1; done
[[ ! -e ${SOCK%.sock}.state ]] && pass "fastnetd and its ring keeper are gone with their files" \
  || fail "fastnetd's ring keeper left ${SOCK%.sock}.state behind"
finish
