#!/usr/bin/env bash
# A preloaded Python socketserver.ForkingTCPServer echo server: the parent accepts,
# forks and closes its copy at once; the child echoes. Three kernel clients in turn
# each get every byte back; while one pauses, the CHILD's counters show the connection
# moved in and echoed, and no kernel socket serves a flow (ss).
# Usage: forking_server.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"

PORT=7072
start_preloaded "$TMP/srv.out" "$PY" "$S/tests/apps/forking_echo.py" server $PORT
SP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

sampler_start
for i in 1 2 3; do
  cli timeout 60 "$PY" "$S/tests/apps/forking_echo.py" client "$TB_IP_SRV" $PORT 200 > "$TMP/c$i.out" 2>&1 &
  CL=$!
  if [[ $i == 2 ]]; then
    for _ in $(seq 100); do grep -q paused "$TMP/c$i.out" && break; sleep 0.05; done
    child=$(pgrep -n -P "$SP")
    if [[ -n $child ]]; then
      prove_counters "$child" sockets_moved 1 bytes_tx 100000 bytes_rx 100000
    else
      fail "no forked child while client $i runs"
    fi
  fi
  wait $CL; rc=$?
  [[ $rc == 0 ]] && grep -q '^ok ' "$TMP/c$i.out" && pass "client $i: $(cat "$TMP/c$i.out" | tail -1) echoed by a forked child" \
    || fail "client $i: rc=$rc $(tail -3 "$TMP/c$i.out")"
done
sampler_stop
prove_no_kernel_flows $PORT "kernel clients to forked Python children"
kill -0 "$SP" 2>/dev/null && pass "the server still runs" || fail "the server exited: $(tail -5 "$TMP/srv.out")"
finish
