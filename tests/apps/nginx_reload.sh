#!/usr/bin/env bash
# nginx (root master, 2 workers) under keep-alive load through a reload and a worker
# killed with SIGKILL, first on the kernel (the control), then preloaded. 8 persistent
# connections from the client namespace send requests continuously
# (keepalive_load.py); nginx answers each with its worker's pid. Expected, on the kernel
# as on fastnet: no request fails (no timeout, no partial answer); a connection closes
# only between requests and only if its worker was reloaded (old workers finish
# gracefully) or killed; connections opened after the reload are served by the new
# workers, after the kill by the survivor or the respawned worker. On fastnet also: the
# workers that served them accepted on their engines, the dead worker's slot was
# reaped, and no kernel socket carried a flow on the port opened before the reload or
# after it (those opened in its window are reported: docs/DESIGN.md "Processes").
# Usage: nginx_reload.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need nginx

LOAD=$S/tests/apps/keepalive_load.py
chmod 755 "$TMP"

# workers_ready MASTER COUNT ACCEL [PIDS THAT MUST BE GONE]: until MASTER has COUNT
# children, none of the excluded, each off root (and accelerated if ACCEL). W: them.
workers_ready() {
  local i w p ok
  for i in $(seq 150); do
    W=$(pgrep -P "$1" | sort)
    ok=$([[ $(wc -w <<< "$W") -eq $2 ]] && echo 1 || echo 0)
    for p in ${4:-}; do grep -qx "$p" <<< "$W" && ok=0; done
    for w in $W; do
      [[ $(ps -o user= -p "$w" | tr -d ' ') != root ]] || ok=0
      [[ $3 == 0 || $(jget state <<< "$(stat_json "$w")") == accelerated* ]] || ok=0
    done
    [[ $ok -eq 1 ]] && { sleep 0.3; return 0; }
    sleep 0.1
  done
  return 1
}
answers() { cat "$1/count" 2>/dev/null || echo 0; }
# more_answers DIR N: until the client got N more answers (up to 10 s).
more_answers() {
  local from; from=$(answers "$1")
  for _ in $(seq 200); do
    [[ $(answers "$1") -ge $((from + $2)) ]] && return 0
    sleep 0.05
  done
  return 1
}

# scenario NAME PORT PRELOAD: one run; sets OLD, NEW, VICTIM, SERVED (pid n lines).
scenario() {
  local name=$1 port=$2 pre=$3 ng=$TMP/$1 d=$TMP/$1.load master cl
  mkdir -p "$d"; echo 0 > "$d/phase"; chmod 777 "$d"
  nginx_conf "$ng" "$port" 'location = /pid { return 200 "$pid"; }' 2
  chmod -R a+rX "$ng"
  if [[ $pre == 1 ]]; then start_preloaded "$TMP/$name.out" nginx -c "$ng/nginx.conf" -p "$ng"
  else ip netns exec "$TB_NS_SRV" nginx -c "$ng/nginx.conf" -p "$ng" > "$TMP/$name.out" 2>&1 &
    APP_PID=$!; PIDS+=("$APP_PID"); fi
  master=$APP_PID; MASTER=$master
  wait_listen "$TB_NS_SRV" "$port" || return 1
  workers_ready "$master" 2 "$pre" || { fail "$name: no 2 ready workers [$W]"; return 1; }
  [[ $pre == 1 ]] && sampler_start
  cli "$PY" "$LOAD" run "$TB_IP_SRV" "$port" 8 "$d" > "$TMP/$name.client" 2>&1 &
  cl=$!; PIDS+=("$cl")
  more_answers "$d" 300 || fail "$name: the load does not run ($(answers "$d") answers)"

  # (a) reload: new workers; the old ones finish their connections and exit.
  OLD=$W
  mark reload
  kill -HUP "$master"
  if workers_ready "$master" 2 "$pre" "$OLD"; then
    pass "$name: reload replaced workers [$(echo $OLD)] with [$(echo $W)], the old ones exited"
  else
    fail "$name: after the reload the workers are [$(echo $W)], were [$(echo $OLD)]"
  fi
  NEW=$W
  mark reloaded
  echo 1 > "$d/phase"
  more_answers "$d" 300 || fail "$name: no answers after the reload"

  # (b) SIGKILL the new worker with the most open connections; the master respawns it.
  VICTIM=$(tr ' ' '\n' < "$d/live" | sort -t: -k2 -n | tail -1 | cut -d: -f1)
  [[ -n $VICTIM ]] || VICTIM=$(head -1 <<< "$NEW")
  grep -qx "${VICTIM:-x}" <<< "$NEW" || fail "$name: the live connections are on [$(cat "$d/live")], not on new workers [$(echo $NEW)]"
  mark kill
  kill -9 "$VICTIM"
  if workers_ready "$master" 2 "$pre" "$VICTIM"; then pass "$name: killed worker $VICTIM, respawned: [$(echo $W)]"
  else fail "$name: after the SIGKILL the workers are [$(echo $W)]"; fi
  echo 2 > "$d/phase"
  more_answers "$d" 300 || fail "$name: no answers after the kill"
  # Every connection the client has opened since is served: the kill's failures are over.
  sleep 1
  SURVIVORS=$W
  touch "$d/stop"
  wait "$cl" || fail "$name: the client failed: $(tail -3 "$TMP/$name.client")"
  [[ $pre == 1 ]] && sampler_stop

  printf '{"old": [%s], "victim": %s}\n' "$(echo $OLD | tr ' ' ,)" "$VICTIM" > "$d/rules.json"
  if "$PY" "$LOAD" check "$d" "$d/rules.json" > "$d/check.out"; then
    pass "$name: $(grep '^ends' "$d/check.out"), $(grep '^answers' "$d/check.out")"
    grep '^note' "$d/check.out"
  else
    fail "$name: $(grep '^ends' "$d/check.out")"; grep '^bad' "$d/check.out" | head -10 >&2
  fi
  local pre_n vic_n
  pre_n=$(awk '/^count pre/ {print $3}' "$d/check.out")
  vic_n=$(awk '/^count victim/ {print $3}' "$d/check.out")
  [[ ${pre_n:-0} -ge 8 && ${vic_n:-0} -ge 1 ]] && pass "$name: $pre_n connections before the reload, $vic_n on the killed worker" ||
    fail "$name: the scenario did not happen: $pre_n connections before the reload, $vic_n on the killed worker"
  SERVED=$(awk '/^served/ {print $2, $3}' "$d/check.out")
  MASTER=$master
}

# mark WHAT: a line in the server-side snapshots (kernel_flows_by_phase reads them).
mark() { [[ -n $SAMPLER ]] && echo "# $1" >> "$TMP/ss.srv"; }

# Kernel sockets on the veth address by when each was first seen: before the reload,
# in the reload's window (SIGHUP to the new workers ready), or after it (the kill
# included). Prints "PHASE remote" lines.
kernel_flows_by_phase() {
  awk -v ip="$TB_IP_SRV:" '
    /^# reload$/ { ph = "window"; next }
    /^# reloaded$/ { ph = "after"; next }
    /^#/ { next }
    $1 != "LISTEN" && index($4, ip) == 1 && !seen[$5]++ { print (ph ? ph : "before"), $5 }' "$TMP/ss.srv"
}

stop_nginx() {  # master
  kill -QUIT "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && fail "nginx $1 did not stop on SIGQUIT"
}

# The control: nginx on the kernel.
scenario kernel 8082 0
stop_nginx "$MASTER"

# The same on fastnet.
scenario fastnet 8080 1
while read -r pid n; do
  [[ -n $pid ]] || continue
  grep -qx "$pid" <<< "$OLD" && continue
  stat_json "$pid" > /dev/null && prove_counters "$pid" conn_accepted "$n"
done <<< "$SERVED"
reaped=0
for _ in $(seq 30); do
  reaped=$(for p in $MASTER $SURVIVORS; do jget slots_reaped <<< "$(stat_json "$p")"; done | awk '{s += $1} END {print s + 0}')
  [[ $reaped -ge 1 ]] && break; sleep 0.1
done
[[ $reaped -ge 1 ]] && pass "the killed worker's slot was reaped" || fail "no slot reaped after the SIGKILL"
seen=$(awk '$1 == "ESTAB" && ($4 ~ /:8080$/ || $5 ~ /:8080$/)' "$TMP/ss.cli" | wc -l)
flows=$(kernel_flows_by_phase)
window=$(grep -c '^window' <<< "$flows")
bad=$(grep -v '^window' <<< "$flows" | grep .)
if [[ $seen -eq 0 ]]; then
  fail "the client namespace never showed an established flow (the snapshots missed the load)"
elif [[ -n $bad ]]; then
  fail "kernel TCP sockets on the fastnet side, outside the reload's window: $(head -5 <<< "$bad" | tr '\n' ' ')"
else
  pass "$seen established flow snapshots in the client namespace, no kernel TCP socket on $TB_IP_SRV opened before the reload or after it"
fi
# docs/DESIGN.md "Processes": between the old workers closing their listeners and the
# new ones adopting the port, SYNs find no engine and the kernel listener takes them.
[[ $window -eq 0 ]] || echo "note: $window connection(s) opened in the reload's window went to the kernel listener"
grep -i '\[emerg\]\|\[alert\]\|\[crit\]' "$TMP/fastnet/error.log" | grep -v "exited on signal 9" &&
  fail "nginx logged errors (above)"
stop_nginx "$MASTER"
finish
