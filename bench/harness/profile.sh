#!/usr/bin/env bash
# Profiles the fastnet side of the short-lived-connection workload: single-process nginx
# preloaded with libfastnet.so (server CPU 1) under wrk -H 'Connection: close' (client
# CPU 0), sampled with `perf record -g` (cpu-clock: works on VMs without a PMU), else
# `valgrind --tool=callgrind` when perf cannot run. Prints the top functions.
# usage: bash bench/harness/profile.sh BUILD_DIR [SECONDS] [OUT_DIR]     (needs root)
set -uo pipefail
H=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$(cd "$H/../.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root" >&2; exit 77; }
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ -n ${1:-} && -e $1/interpose/libfastnet.so ]] || { echo "usage: profile.sh BUILD_DIR [SECONDS] [OUT_DIR]" >&2; exit 2; }
  exec "$S/tests/testbed/with-testbed.sh" -- bash "$0" "$(cd "$1" && pwd)" "${2:-8}" "${3:-/tmp/fastnet-profile}"
fi
B=$1 D=${2:-8} OUT=$3
LIB=$B/interpose/libfastnet.so
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/fastnet-prof.XXXXXX)
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT
cat > "$TMP/nginx.conf" <<NG
worker_processes 1; master_process off; daemon off;
error_log $TMP/error.log warn; pid $TMP/nginx.pid; worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http { access_log off; server { listen $TB_IP_SRV:8080 backlog=4096; location / { return 200 "hello\n"; } } }
NG
tool=perf
perf record -e cpu-clock -o "$TMP/probe.data" -- true > /dev/null 2>&1 || tool=callgrind
pre=(env LD_PRELOAD="$LIB" FASTNET_IFACE="$TB_IF_SRV" FASTNET_STRICT=1)
[[ $tool == callgrind ]] && pre=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "${pre[@]}")
( ulimit -n 65536; ulimit -l unlimited
  exec ip netns exec "$TB_NS_SRV" taskset -c 1 "${pre[@]}" nginx -p "$TMP" -c "$TMP/nginx.conf" ) > "$OUT/nginx.log" 2>&1 &
NP=$!; PIDS+=("$NP")
for _ in $(seq 200); do ip netns exec "$TB_NS_SRV" ss -Hltn "sport = :8080" | grep -q . && break; sleep 0.05; done
ip netns exec "$TB_NS_CLI" curl -s -m 3 -o /dev/null "http://$TB_IP_SRV:8080/"
ip netns exec "$TB_NS_CLI" taskset -c 0 timeout $((D + 20)) wrk -t1 -c50 -d"$((D + 1))s" \
  -H 'Connection: close' "http://$TB_IP_SRV:8080/" > "$OUT/wrk.out" 2>&1 &
WP=$!; PIDS+=("$WP")
if [[ $tool == perf ]]; then
  perf record -e cpu-clock -g -p "$NP" -o "$OUT/perf.data" -- sleep "$D" > "$OUT/perf-record.log" 2>&1
fi
wait "$WP"
"$B/interpose/fastnet-stat" "$NP" > "$OUT/fastnet-stat.txt" 2>&1
kill -INT "$NP"; wait "$NP" 2>/dev/null
grep -E 'Requests/sec|requests in|Socket errors' "$OUT/wrk.out"
echo "== top functions (self time, $tool)"
if [[ $tool == perf ]]; then
  perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -25 | tee "$OUT/top.txt"
else
  callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | sed -n '1,40p' | tee "$OUT/top.txt"
fi
