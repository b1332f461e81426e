#!/usr/bin/env bash
# A preloaded socat in the server namespace receives a 4 MB file (`socat -u
# TCP-LISTEN:p OPEN:file`: no fork, so the preloaded process itself serves the
# connection) from a kernel socat in the client namespace: sha256 equal; the flow ran on
# the engine (counters read mid-transfer: the receiver exits with the connection) and
# never on a kernel socket in the server namespace (ss).
# Usage: socat.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need socat

PORT=7070
head -c 4194304 /dev/urandom > "$TMP/in"
start_preloaded "$TMP/socat-s.out" socat -u "TCP-LISTEN:$PORT,reuseaddr" "OPEN:$TMP/out,creat,trunc"
SP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

sampler_start
# First half, a 1.5 s pause with the connection open (counters and snapshots), the rest.
( head -c 2097152 "$TMP/in"; sleep 1.5; tail -c +2097153 "$TMP/in" ) \
  | cli timeout 20 socat -u - "TCP:$TB_IP_SRV:$PORT" 2> "$TMP/socat-c.err" &
CL=$!
sleep 1
prove_counters $SP conn_accepted 1 bytes_rx 2097152 frames_rx 100
wait $CL; rc=$?
for _ in $(seq 50); do kill -0 $SP 2>/dev/null || break; sleep 0.1; done
sampler_stop
kill -0 $SP 2>/dev/null && fail "the receiving socat did not exit after the connection ended"
[[ $rc == 0 ]] || fail "the sending socat: rc=$rc $(cat "$TMP/socat-c.err")"
[[ $(sha256sum < "$TMP/out") == "$(sha256sum < "$TMP/in")" ]] \
  && pass "4 MB received by the preloaded socat, sha256 identical" \
  || fail "received file differs ($(stat -c %s "$TMP/out" 2>/dev/null) bytes) $(cat "$TMP/socat-s.out")"
prove_no_kernel_flows $PORT "kernel socat to preloaded socat"
finish
