#!/usr/bin/env bash
# memcached with two worker threads, preloaded and started as root with `-u nobody` (it
# drops root before its first socket: fastnet starts before setuid). Its dispatcher
# thread accepts and hands each connection to a worker thread, which serves it through
# epoll: 64 concurrent kernel clients from the client namespace do set/get pairs, every
# answer checked; then the counters and ss prove the flows ran on fastnet. The worker
# that took the engine made before the drop of root gets its connections moved to it
# (sockets_moved: about half of them; the other worker shares the dispatcher's engine).
# Usage: memcached.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need memcached

PORT=11211
start_preloaded "$TMP/mc.out" memcached -u nobody -t 2 -p $PORT -U 0 -l 0.0.0.0 -c 1024
MP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish
threads=$(ps -L -o comm= -p "$MP" | grep -c mc-worker)
[[ $threads -eq 2 ]] && pass "memcached runs 2 worker threads" || fail "memcached has $threads worker threads"
u=$(ps -o user= -p "$MP" | tr -d ' ')
[[ $u == nobody ]] && pass "memcached dropped root (runs as $u)" || fail "memcached runs as $u"

sampler_start
out=$(cli timeout 60 "$PY" "$(dirname "$0")/mc_client.py" "$TB_IP_SRV" $PORT 64 300 2>&1)
rc=$?
sampler_stop
echo "$out" | tail -5
[[ $rc -eq 0 ]] && pass "64 connections x 300 set/get pairs, every answer right" || fail "memcached load failed (rc $rc)"
prove_counters "$MP" conn_accepted 64 frames_rx 10000 bytes_rx 1000000 sockets_moved 16
prove_no_kernel_flows $PORT "memcached -t 2"
finish
