#!/usr/bin/env bash
# Containers: both veth ends keep tx checksum offload on (--tx-on-client; the server end
# has it on by default), so the kernel's segments reach fastnet with only the
# pseudo-header sum in their TCP checksum field (CHECKSUM_PARTIAL). Kernel nginx and
# redis-server in the server namespace; a preloaded curl, wrk, redis-benchmark and
# redis-cli in the client namespace. Every transfer completes on the engine (counters of
# the running client, no kernel socket on the client's veth address, curl's port in the
# active-open range at the server) and rx_csum_partial counts the partial segments; the
# clients' own segments leave their checksums to the veth (tx_csum_offload) unless
# FASTNET_TX_CHECKSUM=software.
# Usage: offload.sh <build-dir> <source-dir>
set -uo pipefail
APPS_TB_OPTS=--tx-on-client
source "$(dirname "$0")/lib.sh" "$@"
need nginx curl wrk redis-server redis-cli redis-benchmark

for side in "$TB_NS_SRV $TB_IF_SRV" "$TB_NS_CLI $TB_IF_CLI"; do
  read -r ns ifc <<< "$side"
  ip netns exec "$ns" ethtool -k "$ifc" | grep -q '^tx-checksumming: on' \
    && pass "tx checksum offload is on on $ifc" || fail "tx checksum offload is not on on $ifc"
done

pre() { ip netns exec "$TB_NS_CLI" env LD_PRELOAD="$LIB" "$@"; }
# The same in the background, with BG_PID the program's own pid (ip netns exec and env
# exec; `pre ... &` would give the pid of a subshell).
pre_bg() {  # out-file err-file cmd args...
  local out=$1 err=$2; shift 2
  ip netns exec "$TB_NS_CLI" env LD_PRELOAD="$LIB" "$@" > "$out" 2> "$err" &
  BG_PID=$!; PIDS+=("$BG_PID")
}
# watch PID SECONDS: samples the running client's counters every 0.1 s while it lives
# (they go with it), one JSON line each in $TMP/samples. A client still running after
# SECONDS is killed (and fails its checks).
watch() {
  local j end=$((SECONDS + $2))
  : > "$TMP/samples"
  while kill -0 "$1" 2>/dev/null; do
    if [[ $SECONDS -ge $end ]]; then fail "pid $1 still running after $2 s: killed"; kill "$1"; break; fi
    j=$(stat_json "$1")
    [[ $j == *'"rx_csum_partial"'* ]] && echo "$j" >> "$TMP/samples"
    sleep 0.1
  done
}
# prove_client WHAT KEY MIN ...: the last sample says accelerated (the first may predate
# the first socket), and each KEY reached MIN
# (its largest value over the samples: the counters only grow, but a sample taken while
# the process exits may miss the engines that already went).
prove_client() {
  local what=$1 n st v; shift
  n=$(wc -l < "$TMP/samples")
  if [[ $n -eq 0 ]]; then fail "$what: no counters read while it ran"; return; fi
  st=$(tail -1 "$TMP/samples" | jget state)
  [[ $st == accelerated* ]] && pass "$what: $st ($n samples)" || fail "$what is not accelerated: [$st]"
  while [[ $# -ge 2 ]]; do
    v=$("$PY" -c '
import json, sys
print(max(json.loads(l)[sys.argv[2]] for l in open(sys.argv[1])))' "$TMP/samples" "$1" 2>/dev/null)
    [[ -n $v && $v -ge $2 ]] && pass "$what: $1 = $v (>= $2)" || fail "$what: $1 = [$v], expected >= $2"
    shift 2
  done
}
# prove_client_flows PORT WHAT: the server side saw established flows on PORT, and the
# client namespace (fastnet's side) never had a kernel TCP socket on its veth address.
prove_client_flows() {
  local seen bad
  seen=$(awk -v p=":$1" '$1 == "ESTAB" && $4 ~ (p "$")' "$TMP/ss.srv" | wc -l)
  bad=$(awk -v ip="$TB_IP_CLI:" '$1 != "LISTEN" && (index($4, ip) == 1 || index($5, ip) == 1)' \
    "$TMP/ss.cli" | sort -u)
  [[ $seen -gt 0 && -z $bad ]] \
    && pass "$2: $seen flow snapshots at the kernel server, no kernel socket on $TB_IP_CLI" \
    || fail "$2: snapshots seen=$seen, kernel sockets on the fastnet side: [$(head -3 <<< "$bad")]"
}

# --- curl against a kernel nginx ------------------------------------------------------
PORT=8091
# Paced (2 MB/s) so that the preloaded curl lives long enough to be read from outside.
nginx_conf "$TMP/ng" $PORT "location /slow/ { limit_rate 2m; }"
mkdir -p "$TMP/ng/www/slow"
head -c 4194304 /dev/urandom > "$TMP/ng/www/slow/big.bin"
head -c 1024 /dev/urandom | base64 -w0 > "$TMP/ng/www/index.html"
srv nginx -c "$TMP/ng/nginx.conf" -p "$TMP/ng" > "$TMP/nginx.out" 2>&1 &
PIDS+=($!)
wait_listen "$TB_NS_SRV" $PORT || finish

n=0
for i in 1 2 3 4 5; do
  [[ $(pre timeout 10 curl -sf --max-time 5 "http://$TB_IP_SRV:$PORT/index.html") \
     == "$(cat "$TMP/ng/www/index.html")" ]] && n=$((n + 1))
done
[[ $n == 5 ]] && pass "the preloaded curl got 5 of 5 answers from the kernel nginx" || fail "curl: $n of 5"

sampler_start
pre_bg /dev/null "$TMP/curl.err" curl -sf --max-time 20 -o "$TMP/got.bin" "http://$TB_IP_SRV:$PORT/slow/big.bin"
CP=$BG_PID
sport=
( for _ in $(seq 100); do
    s=$(srv ss -Htn "sport = :$PORT" | awk '{split($5, a, ":"); print a[2]}' | head -1)
    [[ -n $s ]] && { echo "$s" > "$TMP/sport"; break; }
    sleep 0.05
  done ) &
SPW=$!
watch $CP 30
wait $CP; rc=$?
wait $SPW
sampler_stop
sport=$(cat "$TMP/sport" 2>/dev/null)
[[ $rc == 0 && $(sha256sum < "$TMP/got.bin") == "$(sha256sum < "$TMP/ng/www/slow/big.bin")" ]] \
  && pass "4 MB fetched by the preloaded curl, sha256 identical" || fail "big file: curl rc=$rc $(cat "$TMP/curl.err")"
# Its own segments leave their checksums to the veth (tx_csum_offload), which the kernel
# nginx takes unverified, as from a kernel socket.
prove_client "curl" conn_opened 1 bytes_rx 1000000 rx_csum_partial 500 tx_csum_offload 100
[[ -n $sport && $sport -ge 40000 && $sport -lt 56384 ]] \
  && pass "the kernel nginx saw curl's port $sport (fastnet's active-open range)" \
  || fail "curl's source port at the server: [$sport]"
prove_client_flows $PORT "curl"

# FASTNET_TX_CHECKSUM=software: the same fetch with every checksum computed by fastnet.
pre_bg /dev/null "$TMP/curl.err" env FASTNET_TX_CHECKSUM=software curl -sf --max-time 20 \
  -o "$TMP/got2.bin" "http://$TB_IP_SRV:$PORT/slow/big.bin"
CP=$BG_PID
watch $CP 30
wait $CP; rc=$?
[[ $rc == 0 && $(sha256sum < "$TMP/got2.bin") == "$(sha256sum < "$TMP/ng/www/slow/big.bin")" ]] \
  && pass "FASTNET_TX_CHECKSUM=software: 4 MB fetched, sha256 identical" || fail "software checksums: curl rc=$rc"
prove_client "curl (software checksums)" bytes_rx 1000000
sw=$("$PY" -c 'import json, sys
print(max(json.loads(l)["tx_csum_offload"] for l in open(sys.argv[1])))' "$TMP/samples" 2>/dev/null)
[[ $sw == 0 ]] && pass "FASTNET_TX_CHECKSUM=software: tx_csum_offload stays 0" || fail "software checksums: tx_csum_offload = [$sw]"

# --- wrk against the same nginx -------------------------------------------------------
sampler_start
# One wrk thread: with -t 2 under meson, one of the two threads sometimes opened no
# socket at all (sockets_accelerated 6, engines 2), whatever the checksums.
pre_bg "$TMP/wrk.out" "$TMP/wrk.err" wrk -t 1 -c 10 -d 4s "http://$TB_IP_SRV:$PORT/index.html"
WP=$BG_PID
watch $WP 30
wait $WP; rc=$?
sampler_stop
cat "$TMP/wrk.out" "$TMP/wrk.err"
reqs=$(awk '$2 == "requests" && $3 == "in" {print $1}' "$TMP/wrk.out")
non2xx=$(awk '$1 == "Non-2xx" {print $NF}' "$TMP/wrk.out")
errs=$(awk '$1 == "Socket" {n = 0; for (i = 3; i <= NF; i += 2) n += $(i + 1) + 0; print n}' "$TMP/wrk.out")
[[ $rc == 0 && -n $reqs && $reqs -gt 500 ]] && pass "the preloaded wrk completed $reqs requests" \
  || fail "wrk: rc=$rc requests=[$reqs]"
[[ -z $non2xx ]] && pass "every wrk response was 2xx" || fail "non-2xx responses: $non2xx"
# One request in flight per connection at the deadline may count as an error.
[[ ${errs:-0} -le 10 ]] && pass "wrk socket errors: ${errs:-0} (tolerance 10)" || fail "wrk socket errors: $errs"
prove_client "wrk" conn_opened 10 rx_csum_partial 500 tx_csum_offload 500
prove_client_flows $PORT "wrk"

# --- redis-benchmark and redis-cli against a kernel redis-server ------------------------
RPORT=6380
srv redis-server --port $RPORT --save '' --appendonly no --protected-mode no --bind 0.0.0.0 \
  --dir "$TMP" > "$TMP/redis.out" 2>&1 &
PIDS+=($!)
wait_listen "$TB_NS_SRV" $RPORT || finish

sampler_start
pre_bg "$TMP/bench.out" "$TMP/bench.err" redis-benchmark -h "$TB_IP_SRV" -p $RPORT -n 30000 -c 20 -t set,get -q
BP=$BG_PID
watch $BP 60
wait $BP; rc=$?
sampler_stop
tr '\r' '\n' < "$TMP/bench.out" | grep 'requests per second' | sed 's/^ *//' > "$TMP/bench.txt"
for op in SET GET; do
  rps=$(awk -v op="$op:" '$1 == op {print int($2)}' "$TMP/bench.txt")
  [[ $rc == 0 && -n $rps && $rps -gt 0 ]] && pass "the preloaded redis-benchmark $op: $rps requests/s" \
    || fail "redis-benchmark $op: rc=$rc [$(tail -3 "$TMP/bench.out" "$TMP/bench.err")]"
done
prove_client "redis-benchmark" conn_opened 20 rx_csum_partial 100
prove_client_flows $RPORT "redis-benchmark"

head -c 76800 /dev/urandom | base64 -w0 > "$TMP/value"
[[ $(pre timeout 10 redis-cli -h "$TB_IP_SRV" -p $RPORT -x SET big < "$TMP/value") == OK ]] \
  && pass "the preloaded redis-cli SET a 100 KB value" || fail "redis-cli SET"
got=$(pre timeout 10 redis-cli -h "$TB_IP_SRV" -p $RPORT --raw GET big | head -c 102400 | sha256sum)
[[ $got == "$(sha256sum < "$TMP/value")" ]] && pass "the preloaded redis-cli GET it back intact (sha256)" \
  || fail "redis-cli GET: the 100 KB value differs"
finish
