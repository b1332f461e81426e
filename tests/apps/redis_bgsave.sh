#!/usr/bin/env bash
# redis-server preloaded with its default save policy: 32 connections issue commands
# without pause while BGSAVE forks a child three times. A fork must change nothing for
# the parent: every command on those connections is answered in order, the flows stay
# on the engine (no kernel socket on the fastnet side while they live), and the
# parent keeps serving new connections on fastnet after the forks.
# Usage: redis_bgsave.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need redis-server redis-cli

PORT=6380
chmod 777 "$TMP"
# No --save argument: redis's default policy (and BGSAVE writes dump.rdb into --dir).
start_preloaded "$TMP/redis.out" redis-server --port $PORT --appendonly no \
  --protected-mode no --bind 0.0.0.0 --dir "$TMP"
RP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish
[[ $(cli timeout 5 redis-cli -h "$TB_IP_SRV" -p $PORT CONFIG GET save | sed -n 2p) != "" ]] \
  && pass "redis runs with its default save policy" || fail "save policy is empty"

STOP=$TMP/stop
cli /usr/bin/python3 "$S/tests/apps/redis_clients.py" "$TB_IP_SRV" $PORT 32 "$STOP" 60 > "$TMP/clients.out" 2>&1 &
CP=$!; PIDS+=($CP)
for _ in $(seq 100); do grep -q connected "$TMP/clients.out" && break; sleep 0.1; done
grep -q connected "$TMP/clients.out" && pass "32 client connections open" || fail "clients: $(cat "$TMP/clients.out")"

sampler_start
for round in 1 2 3; do
  sleep 0.5
  forks_before=$(cli timeout 5 redis-cli -h "$TB_IP_SRV" -p $PORT INFO persistence | tr -d '\r' |
                 awk -F: '$1 == "rdb_saves" {print $2}')
  r=$(cli timeout 5 redis-cli -h "$TB_IP_SRV" -p $PORT BGSAVE)
  [[ $r == "Background saving started" ]] || fail "BGSAVE $round answered [$r]"
  ok=0
  for _ in $(seq 100); do
    info=$(cli timeout 5 redis-cli -h "$TB_IP_SRV" -p $PORT INFO persistence | tr -d '\r')
    if grep -q '^rdb_bgsave_in_progress:0' <<< "$info" &&
       [[ $(awk -F: '$1 == "rdb_saves" {print $2}' <<< "$info") -gt ${forks_before:-0} ]]; then
      ok=1; break
    fi
    sleep 0.1
  done
  [[ $ok == 1 ]] && grep -q '^rdb_last_bgsave_status:ok' <<< "$info" &&
    pass "BGSAVE $round: the child saved and exited" || fail "BGSAVE $round did not complete: $info"
done
sleep 1
# The flows are still the engine's after the forks: snapshots taken while they live.
sampler_stop
prove_no_kernel_flows $PORT "32 connections across three BGSAVE forks"
rx_before=$(stat_json $RP | jget bytes_rx)
sleep 1
rx_after=$(stat_json $RP | jget bytes_rx)
[[ -n $rx_after && $rx_after -gt ${rx_before:-0} ]] \
  && pass "after the forks the engine still receives the clients' commands ($rx_before -> $rx_after bytes)" \
  || fail "bytes_rx did not move after the forks: $rx_before -> $rx_after"
touch "$STOP"
wait $CP
res=$(tail -1 "$TMP/clients.out")
ops=$(jget ops <<< "$res"); failures_c=$(jget failures <<< "$res"); alive=$(jget alive <<< "$res")
[[ -n $ops && $ops -gt 1000 && $failures_c == 0 && $alive == 32 ]] \
  && pass "$ops commands on 32 connections across three BGSAVEs, none failed" \
  || fail "clients: $res"

# New connections after the forks are fastnet's too: the parent kept its port.
before=$(stat_json $RP | jget conn_accepted)
kbefore=$(stat_json $RP | jget accepted_kernel)
for i in $(seq 10); do cli timeout 5 redis-cli -h "$TB_IP_SRV" -p $PORT PING > /dev/null || fail "PING $i"; done
# The counters are published by the engines as they run: give the last accepts 2 s.
for _ in $(seq 40); do
  after=$(stat_json $RP | jget conn_accepted)
  [[ -n $after && $after -ge $((before + 10)) ]] && break
  sleep 0.05
done
kafter=$(stat_json $RP | jget accepted_kernel)
[[ $after -ge $((before + 10)) && $kafter == "$kbefore" ]] \
  && pass "10 new connections after the forks accepted by the engine ($before -> $after), none by the kernel" \
  || fail "new connections after the forks: engine $before -> $after, kernel $kbefore -> $kafter"
prove_counters $RP conn_accepted 40
finish
