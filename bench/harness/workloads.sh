#!/usr/bin/env bash
# The workloads of bench/run.sh, run on the test bed (TB_* from with-testbed.sh): for each
# round, the kernel run then the fastnet run of every selected workload. Each run appends
# one JSON line to $BENCH_OUT/results.jsonl (harness/emit.py): its metrics, or ok=false
# with the reason; fastnet runs also carry their proof of acceleration.
# Called by run.sh as: with-testbed.sh -- bash workloads.sh   (BENCH_* in the environment)
set -uo pipefail
: "${TB_NS_SRV:?run me through bench/run.sh}"
H=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=$BENCH_BUILD S=$BENCH_SRC OUT=$BENCH_OUT D=$BENCH_DURATION R=$BENCH_ROUNDS
LIB=$B/interpose/libfastnet.so
STAT=$B/interpose/fastnet-stat
PY=/usr/bin/python3; [[ -x $PY ]] || PY=$(command -v python3)
LOG=$OUT/logs
# Inside the result directory, so that run.sh removes it even when this script is killed.
TMP=$OUT/tmp
mkdir -p "$TMP" || exit 1
SRV_CPU=1 CLI_CPU=0
PIDS=()

# with-testbed.sh gives a signalled command 0.2 s before SIGKILL and then kills every
# process left in the namespaces itself; run.sh removes $TMP if this did not get to it.
cleanup() {
  local p
  rm -rf "$TMP"
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.1
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Namespaces: the benchmarks' ports and many short connections. The server namespace
# keeps the kernel's defaults except a deeper accept queue (both modes alike).
ip netns exec "$TB_NS_SRV" sysctl -qw net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192 >/dev/null
ip netns exec "$TB_NS_CLI" sysctl -qw net.ipv4.ip_local_port_range="10000 39999" \
  net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=8192 >/dev/null
note() { printf 'bench:            %s\n' "$*" >&2; }
# A fair peer: a real NIC gives the kernel GRO; a veth only when asked. Both ends, for the
# kernel and the fastnet runs alike (with XDP attached the fastnet side bypasses it).
GRO=off
if ip netns exec "$TB_NS_CLI" ethtool -K "$TB_IF_CLI" gro on 2>/dev/null &&
   ip netns exec "$TB_NS_SRV" ethtool -K "$TB_IF_SRV" gro on 2>/dev/null; then
  GRO=on
fi
echo "{\"gro\": \"$GRO\"}" > "$OUT/peer.json"
note "kernel peer and kernel server: GRO $GRO on the veth ends"

step=0
total_steps() {
  local n=0 w
  for w in ${BENCH_ONLY//,/ }; do
    case $w in ceiling) n=$((n + 1)) ;; *) n=$((n + 2 * R)) ;; esac
  done
  echo $n
}
TOTAL=$(total_steps)
T0=$(date +%s)
progress() { step=$((step + 1)); printf 'bench: [%2d/%d %4ds] %s\n' "$step" "$TOTAL" $(( $(date +%s) - T0 )) "$*" >&2; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# Busy and total jiffies of the whole machine (all CPUs) from /proc/stat.
cpu_snap() { awk '/^cpu / {t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t}' /proc/stat; }
HZ=$(getconf CLK_TCK)

# srv_start <mode> <logname> cmd...: the server in the server namespace on SRV_CPU, with
# libfastnet.so preloaded in fastnet mode (strict: it fails rather than fall back). Sets
# SRV_PID (the server's own pid: ip netns exec, taskset and env all exec).
srv_start() {
  local mode=$1 name=$2; shift 2
  local pre=()
  [[ $mode == fastnet ]] && pre=(env LD_PRELOAD="$LIB" FASTNET_IFACE="$TB_IF_SRV" FASTNET_STRICT=1 ${SRV_ENV:-})
  ( ulimit -Sn "$(ulimit -Hn)"
    exec ip netns exec "$TB_NS_SRV" taskset -c $SRV_CPU "${pre[@]}" "$@" ) \
    > "$LOG/$name.out" 2> "$LOG/$name.err" &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
}

# Stops a process (TERM, 3 s, KILL) and waits until the server veth has no XDP program
# left, so the next run starts on a clean interface.
stop_pid() {
  local p=$1 i
  kill -TERM "$p" 2>/dev/null
  for (( i = 0; i < 60; i++ )); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  for (( i = 0; i < 60; i++ )); do
    ip -n "$TB_NS_SRV" link show dev "$TB_IF_SRV" | grep -q 'xdp' || break
    sleep 0.05
  done
  for (( i = 0; i < 60; i++ )); do
    ip -n "$TB_NS_CLI" link show dev "$TB_IF_CLI" | grep -q 'xdp' || break
    sleep 0.05
  done
}

wait_listen() {  # port [timeout s]
  local i
  for (( i = 0; i < ${2:-10} * 20; i++ )); do
    kill -0 "$SRV_PID" 2>/dev/null || return 1
    ip netns exec "$TB_NS_SRV" ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.05
  done
  return 1
}

# Kernel TCP sockets (any state but LISTEN) of the benchmark port in a namespace: the
# server's local port, the client's remote one. (Matching either side would count an
# earlier workload's client whose ephemeral port happens to be the number.)
kernel_flows() {
  local side=sport; [[ $1 == "$TB_NS_CLI" ]] && side=dport
  ip netns exec "$1" ss -Htan "( $side = :$2 )" | grep -vc LISTEN
}

# A background sampler of kernel_flows during the load; its maximum lands in $TMP/ss.<ns>.
sampler_start() {  # ns port
  local ns=$1 port=$2
  rm -f "$TMP/ss.$ns.$port"
  ( max=0; while :; do n=$(kernel_flows "$ns" "$port"); (( n > max )) && max=$n
      echo "$max" > "$TMP/ss.$ns.$port"; sleep 0.5; done ) &
  SAMPLER=$!
  PIDS+=("$SAMPLER")
}
sampler_stop() {  # ns port [sampler pid]
  local p=${3:-$SAMPLER}
  kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; cat "$TMP/ss.$1.$2" 2>/dev/null || echo 0
}

# Counters of a process and its children (a master and its forked workers), summed; the
# state of the first accelerated one.
stat_json() {
  local p pids=("$1")
  for p in $(pgrep -P "$1" 2>/dev/null); do pids+=("$p"); done
  for p in "${pids[@]}"; do "$STAT" --json "$p" 2>/dev/null; echo; done | "$PY" -c '
import json, sys
tot = {}
for line in sys.stdin:
    try: d = json.loads(line)
    except Exception: continue
    for k, v in d.items():
        if k == "state":
            if "state" not in tot or (str(v).startswith("accelerated") and not str(tot["state"]).startswith("accelerated")):
                tot[k] = v
        elif isinstance(v, int) and not isinstance(v, bool):
            tot[k] = tot.get(k, 0) + v
print(json.dumps(tot))'
}
jget() { "$PY" -c 'import json,sys
try: print(json.load(sys.stdin).get(sys.argv[1], ""))
except Exception: print("")' "$1"; }

emit() { "$PY" "$H/emit.py" "$OUT/results.jsonl" "$@"; }

# Proof of acceleration for one fastnet process: counters moved (before/after JSON) and
# the kernel saw no flow of the port in that namespace. Echoes "ok" or the reason.
prove() {  # before-json after-json max-kernel-flows what
  local before=$1 after=$2 flows=$3 what=$4 st f0 f1 c
  st=$(echo "$after" | jget state)
  f0=$(echo "$before" | jget frames_rx); f1=$(echo "$after" | jget frames_rx)
  c=$(echo "$after" | jget conn_accepted)
  [[ -z $f0 ]] && f0=0
  if [[ $st != accelerated* ]]; then echo "$what not accelerated (fastnet-stat state '${st:-none}')"; return; fi
  if [[ -z $f1 || $f1 -le $f0 ]]; then echo "$what: fastnet frames_rx did not move ($f0 -> ${f1:-?})"; return; fi
  if [[ $flows -gt 0 ]]; then
    { echo "== $what: kernel sockets"; ip netns exec "$TB_NS_SRV" ss -tan; ip netns exec "$TB_NS_CLI" ss -tan; } >> "$LOG/proof-failures.log" 2>&1
    echo "$what: $flows kernel TCP socket(s) for the benchmark port seen by ss (see logs/proof-failures.log)"; return
  fi
  echo ok
}

# The fastnet run of a workload listens 10 ports above the kernel run: the kernel run's
# TIME-WAIT sockets stay in the server namespace for 60 s and must not be mistaken for
# kernel flows of the fastnet run.
# Each round gets its own ports too: a run that failed may leave kernel sockets behind on
# either side for as long.
mport() { local p=$(( $1 + 20 * (round - 1) )); if [[ $2 == fastnet ]]; then echo $(( p + 10 )); else echo "$p"; fi; }

have() { local t; for t in "$@"; do command -v "$t" >/dev/null 2>&1 || { echo "$t"; return 1; }; done; }

# --- 1, 2, 6(scale): nginx + wrk with Connection: close --------------------------------
nginx_conf() {  # dir workers port
  local dir=$1 workers=$2 port=$3 mp=off
  [[ $workers -gt 1 ]] && mp=on
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<NG
worker_processes $workers;
master_process $mp;
daemon off;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
  access_log off;
  server {
    listen $TB_IP_SRV:$port backlog=4096;
    location / { return 200 "hello\n"; }
  }
}
NG
}

wl_nginx() {  # workload mode round
  local wl=$1 mode=$2 round=$3 workers=1 cli_pre=() dir miss la
  [[ $wl == scale ]] && workers=2
  [[ $wl == nginx_both && $mode == fastnet ]] && cli_pre=(env LD_PRELOAD="$LIB" FASTNET_IFACE="$TB_IF_CLI" FASTNET_STRICT=1)
  la=$(loadavg)
  if miss=$(have nginx wrk); then :; else emit "$wl" "$mode" "$round" ok=false loadavg="$la" "error=$miss is not installed"; return; fi
  dir=$TMP/nginx-$wl-$mode-$round
  # Ports of its own per workload too: the kernel clients of one workload leave TIME-WAIT
  # sockets (60 s) that the client-side proof of the next must not count as its own.
  local base=8080; [[ $wl == nginx_both ]] && base=9080; [[ $wl == scale ]] && base=13080
  local P; P=$(mport $base "$mode")
  nginx_conf "$dir" $workers $P
  srv_start "$mode" "$wl-$mode-$round" nginx -p "$dir" -c "$dir/nginx.conf"
  if ! wait_listen $P; then
    emit "$wl" "$mode" "$round" ok=false loadavg="$la" "error=nginx did not start: $(tail -c 300 "$LOG/$wl-$mode-$round.err" "$dir/error.log" 2>/dev/null | tr '\n' ' ')"
    stop_pid "$SRV_PID"; return
  fi
  # Forked workers: wait until each has adopted the listener (until then its share of
  # new connections goes to the kernel, which the proof would count). A worker has by
  # the time it runs engines of its own and has left root (it adopts just before setuid).
  if [[ $workers -gt 1 && $mode == fastnet ]]; then
    local _i _w _n
    for _i in $(seq 100); do
      _n=0
      for _w in $(pgrep -P "$SRV_PID"); do
        [[ $("$STAT" --json "$_w" 2>/dev/null | jget engines) -ge 1 &&
           $(ps -o user= -p "$_w" | tr -d ' ') != root ]] && _n=$((_n + 1))
      done
      [[ $_n -ge $workers ]] && break
      sleep 0.05
    done
  fi
  # One warm-up request: the fastnet engine starts at the first socket call.
  # (Connection: close: the server closes first, so the client namespace keeps no TIME-WAIT
  # socket that the client-side proof of nginx_both would count.)
  ip netns exec "$TB_NS_CLI" curl -s -m 3 -o /dev/null -H 'Connection: close' "http://$TB_IP_SRV:$P/" || true
  local before after c0 c1 wout rc flows_s flows_c wpid cbefore cafter
  before=$(stat_json "$SRV_PID")
  sampler_start "$TB_NS_SRV" $P
  local sampler_s=$SAMPLER sampler_c=""
  if [[ ${#cli_pre[@]} -gt 0 ]]; then sampler_start "$TB_NS_CLI" $P; sampler_c=$SAMPLER; fi
  c0=$(cpu_snap)
  ( ulimit -Sn "$(ulimit -Hn)"
    exec ip netns exec "$TB_NS_CLI" taskset -c $CLI_CPU timeout -s INT $((D + 20)) "${cli_pre[@]}" \
      wrk -t1 -c50 -d"${D}s" -H 'Connection: close' "http://$TB_IP_SRV:$P/" ) > "$TMP/wrk.out" 2> "$TMP/wrk.err" &
  wpid=$!; PIDS+=("$wpid")
  cbefore='{}'; cafter='{}'
  if [[ ${#cli_pre[@]} -gt 0 ]]; then
    # $wpid is timeout(1); wrk is its child. Its counters vanish when it exits, so they
    # are read while it runs: after 1 s and 1 s before the end.
    local wrk_pid=""
    sleep 1; wrk_pid=$(pgrep -P "$wpid" | head -1)
    cbefore=$(stat_json "${wrk_pid:-0}")
    sleep $((D > 2 ? D - 2 : 0)); cafter=$(stat_json "${wrk_pid:-0}")
    # The client-side proof covers the load itself: the sampler stops while wrk still runs.
    flows_c=$(sampler_stop "$TB_NS_CLI" $P "$sampler_c"); sampler_c=""
  fi
  wait "$wpid"; rc=$?
  c1=$(cpu_snap)
  flows_s=$(sampler_stop "$TB_NS_SRV" $P "$sampler_s")
  local cli_left=""
  [[ ${#cli_pre[@]} -gt 0 ]] && cli_left=$(kernel_flows "$TB_NS_CLI" $P)
  after=$(stat_json "$SRV_PID")
  cp "$TMP/wrk.out" "$LOG/$wl-$mode-$round.wrk"; cp "$TMP/wrk.err" "$LOG/$wl-$mode-$round.wrk.err"
  kill -0 "$SRV_PID" 2>/dev/null; local alive=$?
  stop_pid "$SRV_PID"
  cp "$dir/error.log" "$LOG/$wl-$mode-$round.nginx-error.log" 2>/dev/null
  local rps reqs errs non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  errs=$(awk '/Socket errors:/ {gsub(",",""); print $4+$6+$8+$10}' "$TMP/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$TMP/wrk.out")
  errs=${errs:-0}; non2xx=${non2xx:-0}
  if [[ $rc -ne 0 || -z $rps ]]; then
    emit "$wl" "$mode" "$round" ok=false loadavg="$la" "error=wrk exited $rc: $(tr '\n' ' ' < "$TMP/wrk.err" | tail -c 300) $(tail -c 200 "$TMP/wrk.out" | tr '\n' ' ')"
    return
  fi
  if [[ $alive -ne 0 ]]; then
    emit "$wl" "$mode" "$round" ok=false loadavg="$la" "error=nginx died during the run: $(tail -c 300 "$LOG/$wl-$mode-$round.err" | tr '\n' ' ')"
    return
  fi
  if [[ ${reqs:-0} -eq 0 ]] || (( errs * 10 > reqs )); then
    emit "$wl" "$mode" "$round" ok=false loadavg="$la" "error=wrk: $reqs requests, $errs socket errors (over 10 %)"
    return
  fi
  # Whole-machine CPU seconds per connection (every CPU, every process: noisy on a shared box).
  local cpu_per_conn
  cpu_per_conn=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v n="$reqs" 'BEGIN {split(a,x," "); split(b,y," "); printf "%.3f", (y[1]-x[1])/hz/n*1e6}')
  local extra=()
  if [[ $mode == fastnet ]]; then
    local why fr0 ft0 fr1 ft1
    why=$(prove "$before" "$after" "$flows_s" nginx)
    if [[ ${#cli_pre[@]} -gt 0 && $why == ok ]]; then
      why=$(prove "$cbefore" "$cafter" "$flows_c" wrk)
      [[ $why == *"frames_rx"* || $why == ok ]] && {
        local o0 o1; o0=$(echo "$cbefore" | jget conn_opened); o1=$(echo "$cafter" | jget conn_opened)
        [[ -n $o1 && ${o1:-0} -gt ${o0:-0} ]] && why=ok || why="wrk: fastnet conn_opened did not move (${o0:-?} -> ${o1:-?})"; }
    fi
    if [[ $why != ok ]]; then
      emit "$wl" "$mode" "$round" ok=false loadavg="$la" "error=not accelerated: $why" conn_per_s="$rps"
      return
    fi
    fr0=$(echo "$before" | jget frames_rx); ft0=$(echo "$before" | jget frames_tx)
    fr1=$(echo "$after" | jget frames_rx); ft1=$(echo "$after" | jget frames_tx)
    # Kernel sockets of the client namespace once the preloaded wrk has exited (not seen
    # during the load): recorded, not hidden.
    [[ -n $cli_left ]] && extra+=(client_kernel_sockets_after_exit="$cli_left")
    extra+=(frames_per_s=$(( (fr1 + ft1 - fr0 - ft0) / D )) proof="fastnet-stat frames_rx $fr0->$fr1, conn_accepted $(echo "$after" | jget conn_accepted); ss: 0 kernel flows on :$P besides the listener")
  else
    extra=(kernel_flows_seen="$flows_s")
  fi
  emit "$wl" "$mode" "$round" ok=true loadavg="$la" conn_per_s="$rps" cpu_us_per_conn="$cpu_per_conn" \
    requests="$reqs" socket_errors="$errs" non2xx="$non2xx" "${extra[@]}"
}

# --- 3: redis -------------------------------------------------------------------------
wl_redis() {
  local wl=redis mode=$1 round=$2 la miss n before after out rc flows
  la=$(loadavg)
  local P; P=$(mport 6379 "$mode")
  if miss=$(have redis-server redis-benchmark); then :; else emit $wl "$mode" "$round" ok=false loadavg="$la" "error=$miss is not installed"; return; fi
  srv_start "$mode" "$wl-$mode-$round" redis-server --bind "$TB_IP_SRV" --port $P --save '' \
    --appendonly no --protected-mode no --daemonize no --maxclients 10000
  if ! wait_listen $P; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=redis-server did not start: $(tail -c 300 "$LOG/$wl-$mode-$round.out" | tr '\n' ' ')"
    stop_pid "$SRV_PID"; return
  fi
  before=$(stat_json "$SRV_PID")
  sampler_start "$TB_NS_SRV" $P
  n=$(( 12000 * D ))
  out=$(ip netns exec "$TB_NS_CLI" taskset -c $CLI_CPU timeout -s INT $((4 * D + 20)) \
        redis-benchmark -h "$TB_IP_SRV" -p $P -t get,set -c 50 -n $n --csv 2>"$TMP/rb.err"); rc=$?
  flows=$(sampler_stop "$TB_NS_SRV" $P)
  after=$(stat_json "$SRV_PID")
  echo "$out" > "$LOG/$wl-$mode-$round.csv"
  kill -0 "$SRV_PID" 2>/dev/null; local alive=$?
  stop_pid "$SRV_PID"
  local set get
  set=$(echo "$out" | awk -F'","' '/^"SET"/ {print $2}')
  get=$(echo "$out" | awk -F'","' '/^"GET"/ {print $2}')
  if [[ $rc -ne 0 || -z $set || -z $get || $alive -ne 0 ]]; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=redis-benchmark exited $rc (server alive: $([[ $alive -eq 0 ]] && echo yes || echo no)): $(tail -c 300 "$TMP/rb.err" | tr '\n' ' ')"
    return
  fi
  local extra=()
  if [[ $mode == fastnet ]]; then
    local why; why=$(prove "$before" "$after" "$flows" redis-server)
    [[ $why == ok ]] || { emit $wl "$mode" "$round" ok=false loadavg="$la" "error=not accelerated: $why"; return; }
    extra=(proof="fastnet-stat frames_rx $(echo "$before" | jget frames_rx)->$(echo "$after" | jget frames_rx); ss: 0 kernel flows on :$P")
  fi
  emit $wl "$mode" "$round" ok=true loadavg="$la" set_per_s="$set" get_per_s="$get" requests_each=$n "${extra[@]}"
}

# --- 4: sockperf ping-pong ----------------------------------------------------------------
# sockperf_latency: the same with the server under FASTNET_PROFILE=latency (busy polling).
wl_sockperf() {
  local wl=${3:-sockperf} mode=$1 round=$2 la miss before after rc flows
  local SRV_ENV=""
  [[ $wl == sockperf_latency ]] && SRV_ENV=FASTNET_PROFILE=latency
  la=$(loadavg)
  local P; P=$(mport $([[ $wl == sockperf_latency ]] && echo 11411 || echo 11111) "$mode")
  if miss=$(have sockperf); then :; else emit $wl "$mode" "$round" ok=false loadavg="$la" "error=$miss is not installed"; return; fi
  srv_start "$mode" "$wl-$mode-$round" sockperf server --tcp -i "$TB_IP_SRV" -p $P
  if ! wait_listen $P; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=sockperf server did not start: $(tail -c 300 "$LOG/$wl-$mode-$round.err" | tr '\n' ' ')"
    stop_pid "$SRV_PID"; return
  fi
  before=$(stat_json "$SRV_PID")
  sampler_start "$TB_NS_SRV" $P
  ip netns exec "$TB_NS_CLI" taskset -c $CLI_CPU timeout -s INT $((D + 20)) \
    sockperf ping-pong --tcp -i "$TB_IP_SRV" -p $P -t "$D" > "$TMP/sp.out" 2>&1; rc=$?
  flows=$(sampler_stop "$TB_NS_SRV" $P)
  after=$(stat_json "$SRV_PID")
  cp "$TMP/sp.out" "$LOG/$wl-$mode-$round.out.client"
  kill -0 "$SRV_PID" 2>/dev/null; local alive=$?
  stop_pid "$SRV_PID"
  local p50 p99 p999 avg
  p50=$(awk '/percentile 50.000/ {print $NF}' "$TMP/sp.out")
  p99=$(awk '/percentile 99.000/ {print $NF}' "$TMP/sp.out")
  p999=$(awk '/percentile 99.900/ {print $NF}' "$TMP/sp.out")
  avg=$(sed -n 's/.*avg-latency=\([0-9.]*\).*/\1/p' "$TMP/sp.out" | head -1)
  if [[ $rc -ne 0 || -z $p50 || -z $p99 || $alive -ne 0 ]]; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=sockperf exited $rc: $(grep -iE 'error|fail' "$TMP/sp.out" | head -3 | tr '\n' ' ')"
    return
  fi
  local extra=()
  if [[ $mode == fastnet ]]; then
    local why; why=$(prove "$before" "$after" "$flows" "sockperf server")
    [[ $why == ok ]] || { emit $wl "$mode" "$round" ok=false loadavg="$la" "error=not accelerated: $why"; return; }
    extra=(proof="fastnet-stat frames_rx $(echo "$before" | jget frames_rx)->$(echo "$after" | jget frames_rx); ss: 0 kernel flows on :$P")
  fi
  emit $wl "$mode" "$round" ok=true loadavg="$la" p50_us="$p50" p99_us="$p99" p999_us="$p999" avg_us="${avg:-}" "${extra[@]}"
}

# --- 5: iperf3, one stream each way ------------------------------------------------------
iperf_gbps() { "$PY" -c 'import json,sys
try:
    d=json.load(open(sys.argv[1])); print("%.3f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))
except Exception as e: print("")' "$1"; }
wl_iperf3() {
  local wl=iperf3 mode=$1 round=$2 la miss before after rc1 rc2 flows
  la=$(loadavg)
  local P; P=$(mport 5201 "$mode")
  if miss=$(have iperf3); then :; else emit $wl "$mode" "$round" ok=false loadavg="$la" "error=$miss is not installed"; return; fi
  srv_start "$mode" "$wl-$mode-$round" iperf3 -s -B "$TB_IP_SRV" -p $P
  if ! wait_listen $P; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=iperf3 server did not start: $(tail -c 300 "$LOG/$wl-$mode-$round.err" | tr '\n' ' ')"
    stop_pid "$SRV_PID"; return
  fi
  before=$(stat_json "$SRV_PID")
  sampler_start "$TB_NS_SRV" $P
  ip netns exec "$TB_NS_CLI" taskset -c $CLI_CPU timeout -s INT $((D + 15)) \
    iperf3 -c "$TB_IP_SRV" -p $P -t "$D" -J > "$TMP/ip1.json" 2>&1; rc1=$?
  ip netns exec "$TB_NS_CLI" taskset -c $CLI_CPU timeout -s INT $((D + 15)) \
    iperf3 -c "$TB_IP_SRV" -p $P -t "$D" -R -J > "$TMP/ip2.json" 2>&1; rc2=$?
  flows=$(sampler_stop "$TB_NS_SRV" $P)
  after=$(stat_json "$SRV_PID")
  cp "$TMP/ip1.json" "$LOG/$wl-$mode-$round.c2s.json"; cp "$TMP/ip2.json" "$LOG/$wl-$mode-$round.s2c.json"
  stop_pid "$SRV_PID"
  local up down err
  up=$(iperf_gbps "$TMP/ip1.json"); down=$(iperf_gbps "$TMP/ip2.json")
  if [[ -z $up || -z $down || $rc1 -ne 0 || $rc2 -ne 0 ]]; then
    err=$("$PY" -c 'import json,sys
for f in sys.argv[1:]:
    try: print(json.load(open(f)).get("error",""), end=" ")
    except Exception: print(open(f).read()[-150:], end=" ")' "$TMP/ip1.json" "$TMP/ip2.json" | tr '\n' ' ')
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=iperf3 exited $rc1/$rc2: $err" c2s_gbps="$up" s2c_gbps="$down"
    return
  fi
  local extra=()
  if [[ $mode == fastnet ]]; then
    local why; why=$(prove "$before" "$after" "$flows" "iperf3 server")
    [[ $why == ok ]] || { emit $wl "$mode" "$round" ok=false loadavg="$la" "error=not accelerated: $why"; return; }
    extra=(proof="fastnet-stat bytes_rx $(echo "$after" | jget bytes_rx), bytes_tx $(echo "$after" | jget bytes_tx); ss: 0 kernel flows on :$P")
  fi
  emit $wl "$mode" "$round" ok=true loadavg="$la" c2s_gbps="$up" s2c_gbps="$down" "${extra[@]}"
}

# --- 6: memory with 10 000 idle connections ----------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
wl_memory() {
  local wl=memory mode=$1 round=$2 la n=10000 before after flows cpid i line rss0 rss1 slab0 slab1
  la=$(loadavg)
  local P; P=$(mport 7000 "$mode")
  srv_start "$mode" "$wl-$mode-$round" "$B/examples/epoll_echo" $P "$TB_IP_SRV"
  if ! wait_listen $P; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=epoll_echo did not start: $(tail -c 300 "$LOG/$wl-$mode-$round.err" | tr '\n' ' ')"
    stop_pid "$SRV_PID"; return
  fi
  # The engine starts at the first socket call: warm it before the idle measurement.
  echo x | ip netns exec "$TB_NS_CLI" timeout 3 socat -t 1 - "TCP:$TB_IP_SRV:$P" > /dev/null 2>&1
  sleep 0.3
  before=$(stat_json "$SRV_PID"); rss0=$(rss_kb "$SRV_PID"); slab0=$(slab_kb)
  rm -f "$TMP/idle.out"
  ( ulimit -Sn "$(ulimit -Hn)"
    exec ip netns exec "$TB_NS_CLI" taskset -c $CLI_CPU timeout -s TERM 90 \
      "$PY" "$H/idle_conns.py" "$TB_IP_SRV" $P $n 60 ) > "$TMP/idle.out" 2> "$TMP/idle.err" &
  cpid=$!; PIDS+=("$cpid")
  line=""
  for (( i = 0; i < 1200; i++ )); do   # up to 60 s to connect
    line=$(grep -m1 '^ready' "$TMP/idle.out" 2>/dev/null) && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.05
  done
  sleep 1   # let the server accept the tail of the burst
  rss1=$(rss_kb "$SRV_PID"); slab1=$(slab_kb)
  flows=$(kernel_flows "$TB_NS_SRV" $P)
  local estab; estab=$(ip netns exec "$TB_NS_CLI" ss -Htan state established "( dport = :$P )" | wc -l)
  after=$(stat_json "$SRV_PID")
  kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
  kill -0 "$SRV_PID" 2>/dev/null; local alive=$?
  stop_pid "$SRV_PID"
  cp "$TMP/idle.out" "$LOG/$wl-$mode-$round.client"
  if [[ -z $line || $alive -ne 0 || -z $rss1 ]]; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=idle client: ${line:-not ready in 60 s} $(tail -c 200 "$TMP/idle.err" | tr '\n' ' ') (server alive: $([[ $alive -eq 0 ]] && echo yes || echo no))"
    return
  fi
  local held; held=$(echo "$line" | awk '{print $2}')
  if [[ $held -lt $n ]]; then
    emit $wl "$mode" "$round" ok=false loadavg="$la" "error=only $held of $n connections held ($line)" rss_mb=$(( rss1 / 1024 ))
    return
  fi
  local extra=()
  if [[ $mode == fastnet ]]; then
    local why; why=$(prove "$before" "$after" "$flows" epoll_echo)
    [[ $why == ok ]] || { emit $wl "$mode" "$round" ok=false loadavg="$la" "error=not accelerated: $why"; return; }
    extra=(proof="fastnet-stat conn_accepted $(echo "$after" | jget conn_accepted); ss: 0 kernel flows on :$P")
  else
    extra=(kernel_flows_seen="$flows")
  fi
  emit $wl "$mode" "$round" ok=true loadavg="$la" connections="$held" client_estab="$estab" \
    rss_mb="$(awk -v k="$rss1" 'BEGIN {printf "%.1f", k/1024}')" \
    rss_idle_mb="$(awk -v k="$rss0" 'BEGIN {printf "%.1f", k/1024}')" \
    kernel_slab_delta_mb="$(awk -v a="$slab0" -v b="$slab1" 'BEGIN {printf "%.1f", (b-a)/1024}')" "${extra[@]}"
}

# --- 7: the raw AF_XDP ceiling --------------------------------------------------------------
wl_ceiling() {
  local la out fps fps2
  la=$(loadavg)
  if [[ ! -x $S/bench/reflector.sh || ! -x $B/bench/reflector || ! -x $B/bench/blaster ]]; then
    emit ceiling xsk 1 ok=false loadavg="$la" "error=bench/reflector.sh or its binaries are missing"; return
  fi
  out=$(timeout $((4 * D + 30)) bash "$S/bench/reflector.sh" "$B" "$D" 64 2>&1); local rc=$?
  echo "$out" > "$LOG/ceiling.out"
  fps=$(echo "$out" | grep -m1 'xsks=1 ' | sed -n 's/.*frames_per_s=\([0-9]*\).*/\1/p')
  fps2=$(echo "$out" | grep -m1 'xsks=2 ' | sed -n 's/.*frames_per_s=\([0-9]*\).*/\1/p')
  if [[ $rc -ne 0 || -z $fps ]]; then
    emit ceiling xsk 1 ok=false loadavg="$la" "error=reflector.sh exited $rc: $(echo "$out" | tail -3 | tr '\n' ' ')"; return
  fi
  emit ceiling xsk 1 ok=true loadavg="$la" reflected_frames_per_s="$fps" reflected_frames_per_s_2xsk="${fps2:-}"
}

# Where the CPU went: in the last round of each load workload, a 2 s system-wide sample
# (perf, cpu-clock: works without a PMU) from 2.5 s into the run, split by cpu_split.py
# into the server CPU's shares (application, fastnet, AF_XDP, network stack, other
# kernel, idle) and the client CPU's busy share; one line per run in cpu.jsonl.
PROF=""
if [[ $D -ge 5 ]] && command -v perf > /dev/null &&
   perf record -e cpu-clock -o "$TMP/probe.data" -- true > /dev/null 2>&1; then PROF=1; fi
prof_start() {  # workload mode
  PROF_PID=""
  [[ -n $PROF ]] || return 0
  ( sleep 2.5; exec perf record -a -e cpu-clock -F 499 -o "$TMP/prof.data" -- sleep 2 ) > /dev/null 2>&1 &
  PROF_PID=$!; PIDS+=("$PROF_PID")
}
prof_end() {  # workload mode
  [[ -n ${PROF_PID:-} ]] || return 0
  wait "$PROF_PID" 2>/dev/null
  [[ -s $TMP/prof.data ]] && "$PY" "$H/cpu_split.py" "$TMP/prof.data" "$1" "$2" $SRV_CPU $CLI_CPU >> "$OUT/cpu.jsonl" 2>> "$LOG/cpu_split.err"
  [[ -n ${BENCH_KEEP_PROF:-} && -s $TMP/prof.data ]] && cp "$TMP/prof.data" "$OUT/prof-$1-$2.data"
  rm -f "$TMP/prof.data"
}

for w in ${BENCH_ONLY//,/ }; do
  if [[ $w == ceiling ]]; then
    progress "ceiling: bench/reflector.sh (${D}s per run)"
    wl_ceiling; note "$(tail -n1 "$OUT/results.jsonl" | cut -c1-160)"
    continue
  fi
  for (( r = 1; r <= R; r++ )); do
    for mode in kernel fastnet; do
      progress "$w round $r/$R $mode (load $(loadavg))"
      [[ $r -eq $R && $w != memory ]] && prof_start "$w" "$mode"
      case $w in
        nginx|nginx_both|scale) wl_nginx "$w" "$mode" "$r" ;;
        redis) wl_redis "$mode" "$r" ;;
        sockperf) wl_sockperf "$mode" "$r" ;;
        sockperf_latency) wl_sockperf "$mode" "$r" sockperf_latency ;;
        iperf3) wl_iperf3 "$mode" "$r" ;;
        memory) wl_memory "$mode" "$r" ;;
      esac
      [[ $r -eq $R && $w != memory ]] && prof_end "$w" "$mode"
      note "$(tail -n1 "$OUT/results.jsonl" | cut -c1-200)"
    done
  done
done
exit 0
