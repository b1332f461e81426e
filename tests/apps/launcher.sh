#!/usr/bin/env bash
# The launcher (tools/fastnet.in): `fastnet [options] -- program args` runs the program
# preloaded with the options as FASTNET_* variables, says how it runs in one line, and
# exits with the program's status; bad options are usage errors (2). A server started
# through it in the server namespace is accelerated (counters, no kernel socket).
# Usage: launcher.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need curl
FN=$B/tools/fastnet

expect_status() {  # name status command...
  local name=$1 want=$2; shift 2
  "$@" > "$TMP/out" 2> "$TMP/err"
  local got=$?
  [[ $got -eq $want ]] && pass "$name: status $got" || fail "$name: status $got, expected $want ($(head -3 "$TMP/err"))"
}
expect_status "no program" 2 bash "$FN"
expect_status "an unknown option" 2 bash "$FN" --bogus -- true
expect_status "--queues 99" 2 bash "$FN" --queues 99 -- true
expect_status "--log loud" 2 bash "$FN" --log loud -- true
expect_status "--profile fast" 2 bash "$FN" --profile fast -- true
expect_status "--iface of a missing interface" 2 bash "$FN" --iface fn-no-such-if -- true
grep -q "no interface 'fn-no-such-if'" "$TMP/err" && pass "the missing interface is named" || fail "stderr: $(cat "$TMP/err")"
expect_status "a missing program" 127 bash "$FN" -- fn-no-such-program
expect_status "the program's own status" 7 bash "$FN" -- sh -c 'exit 7'
expect_status "variables reach the program" 0 bash "$FN" --queues 2 --log info --strict --profile latency -- \
  sh -c '[ "$FASTNET_QUEUES" = 2 ] && [ "$FASTNET_LOG" = info ] && [ "$FASTNET_STRICT" = 1 ] && [ "$FASTNET_PROFILE" = latency ] && case $LD_PRELOAD in *libfastnet.so*) ;; *) exit 1 ;; esac'
expect_status "as root" 0 bash "$FN" -- true
grep -Eq "^fastnet: true runs standalone on " "$TMP/err" \
  && pass "one line says it runs standalone" || fail "stderr: $(cat "$TMP/err")"

PORT=8090
ip netns exec "$TB_NS_SRV" bash "$FN" --iface "$TB_IF_SRV" --strict -- "$B/examples/http_server" $PORT \
  > "$TMP/srv.out" 2>&1 &
SP=$!; PIDS+=("$SP")
if wait_listen "$TB_NS_SRV" $PORT; then
  sampler_start
  ok=0
  for i in $(seq 20); do
    cli curl -s --max-time 5 -o /dev/null -w '%{http_code}\n' "http://$TB_IP_SRV:$PORT/" | grep -q 200 && ok=$((ok + 1))
  done
  # A connection held open while the snapshots run.
  cli "$PY" -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); time.sleep(1.0)' "$TB_IP_SRV" $PORT
  prove_counters "$SP" conn_accepted 21
  sampler_stop
  [[ $ok -eq 20 ]] && pass "20 requests through the launched server" || fail "$ok of 20 requests answered"
  prove_no_kernel_flows $PORT "launched http_server"
fi
finish
