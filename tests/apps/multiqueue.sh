#!/usr/bin/env bash
# A multi-queue interface: both veth ends get N RX and N TX queues, so the kernel peer's
# flows arrive on every RX queue of the fastnet side (veth's receive queue is the
# sender's TX queue, picked by the flow's hash, as a NIC's RSS would). Every engine has
# an XSK on every queue. Phases, each 1000 connections in batches of 50 held open for
# 0.2 s, every answer checked, counters moved on every queue, no kernel socket:
#   1. nginx, one process;  2. nginx, master and 2 workers;  3. memcached -t 2;
#   4. memcached -t 2 started as user memcache, through fastnetd;
#   5. preloaded clients connecting out to a kernel nginx in the client namespace: 1000
#      fresh connections, then wrk on 32 kept-alive ones.
# Usage: multiqueue.sh <build-dir> <source-dir> <queues>
set -uo pipefail
APPS_TB_OPTS="--queues ${3:?usage: multiqueue.sh <build-dir> <source-dir> <queues>}"
source "$(dirname "$0")/lib.sh" "$@"
need nginx memcached wrk
Q=$3
CONNS=1000

nq=$(ip netns exec "$TB_NS_SRV" ls "/sys/class/net/$TB_IF_SRV/queues" | grep -c '^rx-')
[[ $nq -eq $Q ]] && pass "$TB_IF_SRV has $Q RX queues" || fail "$TB_IF_SRV has $nq RX queues, not $Q"

# Counters summed over processes.
sum_over() {  # key pids...
  local k=$1 t=0 v p; shift
  for p in "$@"; do v=$(jget "$k" <<< "$(stat_json "$p")"); t=$((t + ${v:-0})); done
  echo $t
}
# Every RX queue delivered frames to the engines of these processes.
prove_queues() {  # what pids...
  local what=$1 q v served; shift
  served=$(jget queues <<< "$(stat_json "$1")")
  [[ $served -eq $Q ]] && pass "$what: engines serve $Q queues" || fail "$what: engines serve [$served] queues, not $Q"
  for (( q = 0; q < Q; q++ )); do
    v=$(sum_over "rx_frames_q$q" "$@")
    [[ $v -gt 0 ]] && pass "$what: queue $q delivered $v frames" || fail "$what: queue $q delivered no frame"
  done
}
# PHASE proto port pids...: the load, then the proofs while the processes run.
load() {
  local what=$1 proto=$2 port=$3 out rc; shift 3
  sampler_start
  out=$(cli timeout 90 "$PY" "$(dirname "$0")/conn_batches.py" "$TB_IP_SRV" "$port" "$proto" $CONNS 50 0.2 2>&1)
  rc=$?
  sampler_stop
  echo "  $out"
  [[ $rc -eq 0 ]] && pass "$what: $CONNS connections answered" || fail "$what: $out (rc $rc)"
  local acc; acc=$(sum_over conn_accepted "$@")
  [[ $acc -ge $CONNS ]] && pass "$what: fastnet accepted $acc connections" || fail "$what: fastnet accepted $acc of $CONNS"
  prove_queues "$what" "$@"
  prove_no_kernel_flows "$port" "$what"
}

PORT=8080
NG=$TMP/ng
nginx_conf "$NG" $PORT
echo "a page" > "$NG/www/index.html"
start_preloaded "$TMP/nginx1.out" nginx -c "$NG/nginx.conf" -p "$NG"
NP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT && load "nginx, 1 process" http $PORT "$NP"
kill "$NP"; wait "$NP" 2>/dev/null

PORT=8081
NG2=$TMP/ng2
nginx_conf "$NG2" $PORT "" 2
chmod 755 "$TMP" "$NG2" "$NG2/www"
echo "a page" > "$NG2/www/index.html"
chmod 644 "$NG2/www/index.html"
start_preloaded "$TMP/nginx2.out" nginx -c "$NG2/nginx.conf" -p "$NG2"
MASTER=$APP_PID
if wait_listen "$TB_NS_SRV" $PORT; then
  wait_workers "$MASTER" 2
  # shellcheck disable=SC2086  # pids are words
  load "nginx, 2 workers" http $PORT $W
  for w in $W; do
    a=$(jget conn_accepted <<< "$(stat_json "$w")")
    [[ ${a:-0} -gt 0 ]] && pass "worker $w accepted $a" || fail "worker $w accepted nothing"
  done
fi
kill "$MASTER"; wait "$MASTER" 2>/dev/null

PORT=11211
start_preloaded "$TMP/mc.out" memcached -u nobody -t 2 -p $PORT -U 0 -l 0.0.0.0 -c 1024
MP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT && load "memcached -t 2" memcached $PORT "$MP"
kill "$MP"; wait "$MP" 2>/dev/null

# Through fastnetd: memcached started as its own user, 2 threads.
public_lib
ip netns exec "$TB_NS_SRV" "$B/tools/fastnetd" --iface "$TB_IF_SRV" --allow-uid memcache > "$TMP/fnd.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for i in $(seq 100); do grep -q serving "$TMP/fnd.log" && break; sleep 0.05; done
PORT=11212
ip netns exec "$TB_NS_SRV" setpriv --reuid=memcache --regid=memcache --clear-groups env LD_PRELOAD="$PUBLIB" \
  memcached -t 2 -p $PORT -U 0 -l 0.0.0.0 -c 1024 > "$TMP/mc2.out" 2>&1 &
MP=$!; PIDS+=("$MP")
if wait_listen "$TB_NS_SRV" $PORT; then
  st=$(jget state <<< "$(stat_json "$MP")")
  [[ $st == *"through fastnetd"* ]] && pass "memcached as user memcache: $st" || fail "memcached through fastnetd: state [$st]"
  load "memcached -t 2 as memcache, through fastnetd" memcached $PORT "$MP"
fi
kill "$MP"; wait "$MP" 2>/dev/null
kill -TERM "$DP"; wait "$DP" 2>/dev/null

# Preloaded clients: the replies of their connections arrive on whatever queue the kernel
# server's side picks; the engine that opened each must get them. First 1000 fresh
# connections (the server closes first), then wrk on 32 kept-alive connections.
PORT=8082
NG3=$TMP/ng3
nginx_conf "$NG3" $PORT
echo "a page" > "$NG3/www/index.html"
cli nginx -c "$NG3/nginx.conf" -p "$NG3" > "$TMP/nginx3.out" 2>&1 &
PIDS+=($!)
if wait_listen "$TB_NS_CLI" $PORT; then
  ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$PY" "$(dirname "$0")/conn_batches.py" \
    "$TB_IP_CLI" $PORT http-close $CONNS 50 0.3 > "$TMP/cb.out" 2>&1 &
  CP=$!; PIDS+=("$CP")
  sampler_start
  for i in $(seq 100); do   # until the first batch is open
    [[ $(jget conn_opened <<< "$(stat_json "$CP")") -ge 50 ]] 2>/dev/null && break
    sleep 0.05
  done
  prove_counters "$CP" conn_opened 50
  for i in $(seq 100); do   # half way
    [[ $(jget conn_opened <<< "$(stat_json "$CP")") -ge 500 ]] 2>/dev/null && break
    sleep 0.05
  done
  prove_queues "preloaded client" "$CP"
  wait "$CP"; rc=$?
  sampler_stop
  echo "  $(cat "$TMP/cb.out")"
  [[ $rc -eq 0 ]] && pass "preloaded client: $CONNS connections answered" || fail "preloaded client: $(tail -1 "$TMP/cb.out") (rc $rc)"
  bad=$(veth_kernel_flows "$TMP/ss.srv")
  # The server closes each connection at once: its side shows them in any state.
  seen=$(awk -v p=":$PORT" '$1 != "LISTEN" && $4 ~ p"$"' "$TMP/ss.cli" | wc -l)
  [[ $seen -gt 0 && -z $bad ]] && pass "preloaded client: $seen flow snapshots at the server, no kernel socket on $TB_IP_SRV" \
    || fail "preloaded client: $seen snapshots, kernel sockets: $(head -3 <<< "$bad")"

  ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" wrk -t 2 -c 32 -d 6s \
    "http://$TB_IP_CLI:$PORT/" > "$TMP/wrk.out" 2>&1 &
  WP=$!; PIDS+=("$WP")
  # Its engines bind an XSK per queue, each possibly waiting for the queue to be
  # released by the processes before: until its 32 connections are open.
  for i in $(seq 100); do
    [[ $(jget conn_opened <<< "$(stat_json "$WP")") -ge 32 ]] 2>/dev/null && break
    sleep 0.05
  done
  sampler_start
  prove_counters "$WP" conn_opened 32
  # Kept-alive flows keep the TX queue the kernel server's side picked for them, often
  # all the same one: no per-queue check here, the fresh connections above had it.
  sleep 0.5
  sampler_stop
  bad=$(veth_kernel_flows "$TMP/ss.srv")
  [[ -z $bad ]] && pass "wrk: no kernel TCP socket on $TB_IP_SRV while it ran" || fail "wrk: kernel sockets: $(head -3 <<< "$bad")"
  wait "$WP"; rc=$?
  sed 's/^/  /' "$TMP/wrk.out"
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  [[ $rc -eq 0 && ${reqs:-0} -ge $CONNS ]] && pass "wrk: $reqs requests" || fail "wrk: rc $rc, [$reqs] requests"
  grep -q 'Socket errors' "$TMP/wrk.out" && fail "wrk reports socket errors" || pass "wrk: no socket errors"
fi
finish
