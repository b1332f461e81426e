#!/usr/bin/env bash
# fastnetd: unprivileged and unrelated services on one interface. fastnetd runs in the
# server namespace allowing the users redis and nobody; then, at the same time:
#   - redis-server started directly as user redis (no privilege at all), preloaded;
#   - nginx, a root master and 2 workers (nobody), preloaded;
# both under load at once from the client namespace; both accelerated through fastnetd
# (state, counters while they run, no kernel socket on the fastnet side). memcached
# started as user memcache, not allowed: one line says why and it serves on the kernel.
# fastnetd killed with SIGKILL under load: its ring keeper carries the clients on, and a
# restarted fastnetd takes over from the keeper and serves new clients. Stopping
# everything leaves no XDP program and no socket file.
# Usage: fastnetd.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need nginx redis-server redis-benchmark memcached setpriv
FND=$B/tools/fastnetd
SOCK=/run/fastnet/$TB_IF_SRV.sock
public_lib
cp "$B/examples/http_server" "$TMP/pub/"; chmod 755 "$TMP/pub/http_server"

ip netns exec "$TB_NS_SRV" "$FND" --iface "$TB_IF_SRV" --allow-uid redis --allow-uid nobody > "$TMP/fnd.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for i in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] && pass "fastnetd listens on $SOCK" || { fail "fastnetd did not start: $(cat "$TMP/fnd.log")"; finish; }

# redis as its own user, from the start.
mkdir -p "$TMP/redis"; chown redis: "$TMP/redis"
# Through the launcher, which must say so.
ip netns exec "$TB_NS_SRV" setpriv --reuid=redis --regid=redis --clear-groups env FASTNET_LIB="$PUBLIB" bash "$TMP/pub/fastnet" \
  --iface "$TB_IF_SRV" -- redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no \
  --dir "$TMP/redis" > "$TMP/redis.log" 2>&1 &
RP=$!; PIDS+=("$RP")

NG=$TMP/ng
nginx_conf "$NG" 8080 "" 2
chmod 755 "$NG" "$NG/www"
echo "a page" > "$NG/www/index.html"; chmod 644 "$NG/www/index.html"
start_preloaded "$TMP/nginx.out" nginx -c "$NG/nginx.conf" -p "$NG"
MASTER=$APP_PID

wait_listen "$TB_NS_SRV" 6379 && wait_listen "$TB_NS_SRV" 8080 || finish
wait_workers "$MASTER" 2
[[ $(ps -o user= -p "$RP" | tr -d ' ') == redis ]] && pass "redis-server runs as redis" || fail "redis-server runs as $(ps -o user= -p "$RP")"
grep -qx "fastnet: redis-server runs through fastnetd on $TB_IF_SRV" "$TMP/redis.log" \
  && pass "the launcher says it runs through fastnetd" || fail "launcher: $(head -2 "$TMP/redis.log")"

sampler_start
cli redis-benchmark -h "$TB_IP_SRV" -p 6379 -c 20 -n 20000 -t set,get -q > "$TMP/rb.out" 2>&1 &
RB=$!
cli timeout 90 "$PY" "$(dirname "$0")/conn_batches.py" "$TB_IP_SRV" 8080 http 1000 50 0.2 > "$TMP/cb.out" 2>&1 &
CB=$!
sleep 1.5
# While both run: each is accelerated through fastnetd and its counters move.
for p in "$RP" $W; do
  st=$(jget state <<< "$(stat_json "$p")")
  [[ $st == *"through fastnetd"* ]] && pass "pid $p: $st" || fail "pid $p is not accelerated through fastnetd: [$st]"
done
prove_counters "$RP" conn_accepted 20 frames_rx 1000
# fastnetd's own view: its clients' slots, its queues.
"$STAT" --daemon "$TB_IF_SRV" | sed 's/^/  /'
"$STAT" --daemon --json "$TB_IF_SRV" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)[0]
pids = [int(p) for p in sys.argv[1:]]
assert d["queues"] == 1 and d["clients"] >= 4 and d["keeper"] > 0, d
assert all(p in d["slot_pids"] for p in pids), (pids, d["slot_pids"])
assert d["free_frames"][0] + d["fill_frames"][0] <= d["frames_per_queue"], d
' "$RP" $W && pass "fastnet-stat --daemon lists the clients' slots and the queue" \
  || fail "fastnet-stat --daemon: $("$STAT" --daemon --json "$TB_IF_SRV")"
wait "$RB"; rb=$?
wait "$CB"; cb=$?
sampler_stop
sed 's/^/  /' "$TMP/rb.out" | tr '\r' '\n' | grep -v '^ *$' | tail -3
echo "  $(cat "$TMP/cb.out")"
[[ $rb -eq 0 ]] && grep -q 'GET: ' "$TMP/rb.out" && ! grep -qi error "$TMP/rb.out" \
  && pass "redis-benchmark: SET and GET without errors" || fail "redis-benchmark (rc $rb): $(tail -3 "$TMP/rb.out")"
[[ $cb -eq 0 ]] && pass "nginx: 1000 connections answered during the redis load" || fail "nginx: $(cat "$TMP/cb.out")"
acc=0
for w in $W; do a=$(jget conn_accepted <<< "$(stat_json "$w")"); acc=$((acc + ${a:-0})); done
[[ $acc -ge 1000 ]] && pass "nginx workers accepted $acc connections on fastnet" || fail "nginx workers accepted $acc of 1000 on fastnet"
prove_no_kernel_flows 6379 "redis as user redis"
prove_no_kernel_flows 8080 "nginx with unprivileged workers"

# Not allowed: one line, the kernel, and the service still works.
ip netns exec "$TB_NS_SRV" setpriv --reuid=memcache --regid=memcache --clear-groups env LD_PRELOAD="$PUBLIB" \
  memcached -p 11211 -l 0.0.0.0 -U 0 > "$TMP/mc.log" 2>&1 &
MP=$!; PIDS+=("$MP")
if wait_listen "$TB_NS_SRV" 11211; then
  sleep 0.3
  lines=$(grep -c '^fastnet' "$TMP/mc.log")
  grep -q "fastnetd refused this process: uid $(id -u memcache) is not allowed" "$TMP/mc.log" && [[ $lines -eq 1 ]] \
    && pass "a user fastnetd does not allow gets one line: $(grep '^fastnet' "$TMP/mc.log")" \
    || fail "refused client's stderr: $(cat "$TMP/mc.log")"
  st=$(jget state <<< "$(stat_json "$MP")")
  [[ $st == kernel* ]] && pass "its state: $st" || fail "refused client's state: [$st]"
  v=$(cli "$PY" -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 11211), timeout=5); s.sendall(b"version\r\n"); print(s.recv(100).decode().strip())' "$TB_IP_SRV")
  [[ $v == VERSION* ]] && pass "it serves on the kernel ($v)" || fail "memcached on the kernel answered [$v]"
fi

# kill -9 fastnetd while redis is under load: its ring keeper goes on, the load
# completes; a new fastnetd takes over from the keeper and serves a new client.
kill "$MP" 2>/dev/null; wait "$MP" 2>/dev/null
cli redis-benchmark -h "$TB_IP_SRV" -p 6379 -c 10 -n 40000 -t set,get -q > "$TMP/rb2.out" 2>&1 &
RB=$!
sleep 0.5
kill -9 "$DP"; wait "$DP" 2>/dev/null
wait "$RB"; rb=$?
[[ $rb -eq 0 ]] && grep -q 'GET: ' "$TMP/rb2.out" && ! grep -qi error "$TMP/rb2.out" \
  && pass "fastnetd killed with SIGKILL during the load: redis-benchmark completed without errors" \
  || fail "after kill -9 fastnetd: redis-benchmark (rc $rb): $(tail -2 "$TMP/rb2.out")"
v=$(jget retransmits <<< "$(stat_json "$RP")")
echo "  redis retransmits so far: $v"
ip netns exec "$TB_NS_SRV" "$FND" --iface "$TB_IF_SRV" --allow-uid redis --allow-uid nobody > "$TMP/fnd2.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for i in $(seq 100); do grep -q serving "$TMP/fnd2.log" && break; sleep 0.05; done
grep -q "taken over from the running ring keeper" "$TMP/fnd2.log" \
  && pass "a restarted fastnetd takes over: $(head -1 "$TMP/fnd2.log")" || fail "restart: $(cat "$TMP/fnd2.log")"
ip netns exec "$TB_NS_SRV" setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_PRELOAD="$PUBLIB" \
  "$TMP/pub/http_server" 8090 > "$TMP/hs.log" 2>&1 &
HP=$!; PIDS+=("$HP")
if wait_listen "$TB_NS_SRV" 8090; then
  ok=0
  for i in 1 2 3 4 5; do
    cli curl -s --max-time 5 -o /dev/null -w '%{http_code}\n' "http://$TB_IP_SRV:8090/" | grep -q 200 && ok=$((ok + 1))
  done
  st=$(jget state <<< "$(stat_json "$HP")")
  [[ $ok -eq 5 && $st == *"through fastnetd"* ]] && pass "a new client of the restarted fastnetd served 5 requests ($st)" \
    || fail "new client after the restart: $ok of 5, state [$st]"
  prove_counters "$HP" conn_accepted 5
fi

# Stop: clients, then fastnetd; the keeper follows; nothing stays attached.
kill "$HP" "$RP" "$MASTER" 2>/dev/null; wait "$HP" "$RP" "$MASTER" 2>/dev/null
kill -TERM "$DP"; wait "$DP"; drc=$?
[[ $drc -eq 0 ]] && pass "fastnetd exits 0 on SIGTERM" || fail "fastnetd exited $drc: $(tail -3 "$TMP/fnd2.log")"
for i in $(seq 60); do
  srv ip link show "$TB_IF_SRV" | grep -q 'xdp' || break
  sleep 0.1
done
srv ip link show "$TB_IF_SRV" | grep -q 'xdp' && fail "an XDP program is still attached to $TB_IF_SRV" || pass "no XDP program left on $TB_IF_SRV"
[[ ! -e $SOCK && ! -e ${SOCK%.sock}.state ]] && pass "the socket files are gone" || fail "left behind: $(ls /run/fastnet)"
sed 's/^/  /' "$TMP/fnd.log" "$TMP/fnd2.log"
finish
