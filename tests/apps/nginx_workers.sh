#!/usr/bin/env bash
# nginx as deployed: a root master with two workers that drop to nginx's default user,
# preloaded. Both workers accept on their own engines (per-process slots of the port),
# `nginx -s reload` replaces them and serving goes on, and a worker killed with SIGKILL
# is respawned by the master while its slot and UMEM frames are reclaimed.
# Each phase: wrk from the client namespace with Connection: close, every request
# answered, counters of the serving workers moved, no kernel socket for the flows.
# Usage: nginx_workers.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need nginx wrk

PORT=8080
NG=$TMP/ng
mkdir -p "$NG/www"
# The workers run unprivileged: they must be able to read the tree.
chmod 755 "$TMP" "$NG" "$NG/www"
cat > "$NG/nginx.conf" <<EOF
master_process on;
daemon off;
worker_processes 2;
error_log $NG/error.log;
pid $NG/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $NG/client_body;
  proxy_temp_path $NG/proxy;
  fastcgi_temp_path $NG/fastcgi;
  uwsgi_temp_path $NG/uwsgi;
  scgi_temp_path $NG/scgi;
  server { listen $PORT; root $NG/www; location = /hello { return 200 "hello\n"; } }
}
EOF
echo "a page" > "$NG/www/index.html"
chmod 644 "$NG/www/index.html"

start_preloaded "$TMP/nginx.out" nginx -c "$NG/nginx.conf" -p "$NG"
MASTER=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

workers() { pgrep -P "$MASTER" | sort; }
wait_workers() {  # count, pids that must be gone
  local i w
  for i in $(seq 100); do
    w=$(workers)
    if [[ $(wc -w <<< "$w") -eq $1 ]]; then
      local stale=0 p
      for p in ${2:-}; do grep -qx "$p" <<< "$w" && stale=1; done
      # A new worker counts once its runtime runs and it has left root (its engines,
      # made just before setuid, and the listener it adopted are in place by then).
      local ready=1
      for p in $w; do
        [[ $(jget state <<< "$(stat_json "$p")") == accelerated* ]] || ready=0
        [[ $(ps -o user= -p "$p" | tr -d ' ') != root ]] || ready=0
      done
      [[ $stale -eq 0 && $ready -eq 1 ]] && { WORKERS=$w; return 0; }
    fi
    sleep 0.1
  done
  WORKERS=$(workers); return 1
}
accepted() { jget conn_accepted <<< "$(stat_json "$1")"; }
sum_over() {  # key pids...
  local k=$1 t=0 v p; shift
  for p in "$@"; do v=$(jget "$k" <<< "$(stat_json "$p")"); t=$((t + ${v:-0})); done
  echo $t
}

# shares PHASE: each worker accepted at least a quarter of the connections since
# snapshot (the flow hash splits new connections evenly over the port's slots, also
# when a client reuses its 4-tuples: a worker that joined later is not starved).
snapshot() { declare -gA before=(); local w; for w in $WORKERS; do before[$w]=$(accepted "$w"); done; }
shares() {
  local w a d total=0 counts= ok=1
  declare -A got=()
  for w in $WORKERS; do a=$(accepted "$w"); d=$(( ${a:-0} - ${before[$w]:-0} )); got[$w]=$d; total=$((total + d)); done
  for w in $WORKERS; do counts+=" $w:${got[$w]}"; [[ ${got[$w]} -ge $((total / 4)) && ${got[$w]} -gt 20 ]] || ok=0; done
  [[ $ok -eq 1 ]] && pass "$1: every worker accepted its share on its engine (pid:accepted$counts )" ||
    fail "$1: a worker did not get its share (pid:accepted$counts; master $(accepted "$MASTER"))"
}

# load PHASE: 3 s of wrk with fresh connections; all answered, no socket errors.
load() {
  local out
  out=$(cli timeout 30 wrk -t 1 -c 32 -d 3 -H 'Connection: close' "http://$TB_IP_SRV:$PORT/hello" 2>&1)
  local req; req=$(awk '/requests in/ {print $1}' <<< "$out")
  if [[ -n $req && $req -gt 100 ]] && ! grep -q 'Socket errors\|Non-2xx' <<< "$out"; then
    pass "$1: wrk made $req requests on fresh connections, no errors"
  else
    fail "$1: wrk output: $out"
  fi
}

# Phase 1: both workers serve.
wait_workers 2 || fail "expected 2 accelerated workers, have [$WORKERS]"
for w in $WORKERS; do
  u=$(ps -o user= -p "$w" | tr -d ' ')
  [[ $u != root ]] && pass "worker $w runs as $u" || fail "worker $w still runs as root"
done
snapshot
sampler_start
load "two workers"
sampler_stop
shares "two workers"
prove_no_kernel_flows $PORT "nginx with two workers"
m=$(accepted "$MASTER")
[[ ${m:-0} -eq 0 ]] && pass "the master accepted no connection (a worker that adopted the port displaced its slot)" ||
  fail "the master accepted $m connections it would never serve"

# Phase 2: reload replaces both workers.
old=$WORKERS
ip netns exec "$TB_NS_SRV" nginx -c "$NG/nginx.conf" -p "$NG" -s reload 2>> "$TMP/reload.err"
if wait_workers 2 "$old"; then pass "reload: two new workers [$(echo $WORKERS)] replaced [$(echo $old)]"
else fail "reload: workers now [$WORKERS], were [$old]"; fi
snapshot
sampler_start
load "after reload"
sampler_stop
shares "after reload"
prove_no_kernel_flows $PORT "nginx after reload"

# Phase 3: SIGKILL one worker; the master respawns it and its slot is reclaimed.
victim=$(head -1 <<< "$WORKERS")
kill -9 "$victim"
if wait_workers 2 "$victim"; then pass "killed worker $victim respawned as [$(echo $WORKERS)]"
else fail "after SIGKILL workers are [$WORKERS]"; fi
reaped=0; frames=0
for _ in $(seq 50); do
  reaped=$(sum_over slots_reaped "$MASTER" $WORKERS)
  frames=$(sum_over frames_reclaimed "$MASTER" $WORKERS)
  [[ $reaped -ge 1 ]] && break; sleep 0.1
done
[[ $reaped -ge 1 ]] && pass "the dead worker's slot was reclaimed ($reaped slot(s))" || fail "no slot reclaimed after SIGKILL"
[[ $frames -ge 1 ]] && pass "its UMEM frames went back to the pool ($frames frames)" || fail "no frames reclaimed after SIGKILL"
snapshot
sampler_start
load "after SIGKILL of a worker"
sampler_stop
shares "after the respawn"
prove_no_kernel_flows $PORT "nginx after a worker was killed"

# The master's alert about the worker this test killed is expected; nothing else.
grep -i '\[emerg\]\|\[alert\]\|\[crit\]' "$NG/error.log" | grep -v "process $victim exited on signal 9" &&
  fail "nginx logged errors (above)"
kill -QUIT "$MASTER" 2>/dev/null
for _ in $(seq 50); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.1; done
kill -0 "$MASTER" 2>/dev/null && fail "nginx did not stop on SIGQUIT"
finish
