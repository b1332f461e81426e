#!/usr/bin/env bash
# A preloaded redis-server in the server namespace: redis-benchmark and redis-cli (a
# 100 KB value) from the client namespace over the veth, on the engine; redis-cli on
# 127.0.0.1 inside the server namespace, on the kernel side of the listener. Both work.
# Usage: redis.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need redis-server redis-cli redis-benchmark

PORT=6379
start_preloaded "$TMP/redis.out" redis-server --port $PORT --save '' --appendonly no \
  --protected-mode no --bind 0.0.0.0 --dir "$TMP"
RP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

sampler_start
cli timeout 60 redis-benchmark -h "$TB_IP_SRV" -p $PORT -n 20000 -c 50 -t get,set -q \
  > "$TMP/bench.out" 2>&1
rc=$?
tr '\r' '\n' < "$TMP/bench.out" | grep 'requests per second' | sed 's/^ *//' > "$TMP/bench.txt"
for op in SET GET; do
  rps=$(awk -v op="$op:" '$1 == op {print int($2)}' "$TMP/bench.txt")
  [[ $rc == 0 && -n $rps && $rps -gt 0 ]] && pass "redis-benchmark $op over the veth: $rps requests/s (-n 20000 -c 50)" \
    || fail "redis-benchmark $op: rc=$rc [$(tail -3 "$TMP/bench.out")]"
done

# A 100 KB value over the veth (a printable one: redis-cli --raw prints it back as is).
head -c 76800 /dev/urandom | base64 -w0 > "$TMP/value"
[[ $(cli timeout 10 redis-cli -h "$TB_IP_SRV" -p $PORT -x SET big < "$TMP/value") == OK ]] \
  && pass "redis-cli SET of a 100 KB value over the veth" || fail "redis-cli SET over the veth"
got=$(cli timeout 10 redis-cli -h "$TB_IP_SRV" -p $PORT --raw GET big | head -c 102400 | sha256sum)
[[ $got == "$(sha256sum < "$TMP/value")" ]] && pass "redis-cli GET returns the 100 KB value intact (sha256)" \
  || fail "the 100 KB value differs"
# A client that stays connected a second, so the snapshots surely see a flow.
(echo PING; sleep 1.2) | cli timeout 10 redis-cli -h "$TB_IP_SRV" -p $PORT > /dev/null
sampler_stop

before=$(stat_json $RP | jget accepted_kernel)
prove_counters $RP conn_accepted 52 frames_rx 40000 frames_tx 40000 bytes_rx 102400
prove_no_kernel_flows $PORT "redis over the veth"

# Loopback inside the server namespace: the kernel side of the listener serves it.
got=$(srv timeout 10 redis-cli -h 127.0.0.1 -p $PORT --raw GET big | head -c 102400 | sha256sum)
[[ $got == "$(sha256sum < "$TMP/value")" ]] && pass "redis-cli on 127.0.0.1 reads the value set over the veth" \
  || fail "redis-cli over 127.0.0.1: value differs"
[[ $(srv timeout 10 redis-cli -h 127.0.0.1 -p $PORT SET lo 1) == OK && \
   $(srv timeout 10 redis-cli -h 127.0.0.1 -p $PORT GET lo) == 1 ]] \
  && pass "redis-cli SET/GET on 127.0.0.1" || fail "redis-cli SET/GET on 127.0.0.1"
after=$(stat_json $RP | jget accepted_kernel)
[[ -n $after && $after -ge $((before + 3)) ]] \
  && pass "fastnet-stat: accepted_kernel $before -> $after (loopback clients on the kernel side)" \
  || fail "accepted_kernel $before -> $after"
finish
