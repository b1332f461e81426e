#!/usr/bin/env bash
# fastnet against the kernel as peer, beside the kernel against itself, in one run on a
# fresh test bed: the server namespace's end is either a kernel socket or fastnet-peer
# (the engine on one AF_XDP socket); the client namespace's end is always the kernel.
#   bulk:  the server namespace sends MIB MiB to a kernel receiver (tests/interop/kpeer.py)
#          and waits for its close; kernel sender: bench/kclient --bulk (the same loop in
#          C++ on a kernel socket), fastnet: fastnet-peer --send.
#   short: CONNS connections, PARALLEL at a time, each sending 64 bytes and reading them
#          back from a kernel echo server (examples/epoll_echo); kernel: bench/kclient
#          (the same loop in C++ on kernel sockets), fastnet: fastnet-peer --request 64.
#          CONNS stays below fastnet-peer's active-open ports (16 384): the client closes
#          first and each port waits out TIME-WAIT.
# Prints one table. Needs root.
# usage: bench/interop.sh [BUILD_DIR] [MIB] [CONNS] [PARALLEL]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
mib=${2:-256}; conns=${3:-15000}; parallel=${4:-32}
peer=$build/tools/fastnet-peer; kclient=$build/bench/kclient; echo_srv=$build/examples/epoll_echo
kpeer=$here/../tests/interop/kpeer.py
for f in "$peer" "$kclient" "$echo_srv"; do [[ -x $f ]] || { echo "build $f first" >&2; exit 2; }; done
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root" >&2; exit 77; }
if [[ -z ${TB_NS_SRV:-} ]]; then
  exec "$here/../tests/testbed/with-testbed.sh" -- "$0" "$build" "$mib" "$conns" "$parallel"
fi
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT
srv() { ip netns exec "$TB_NS_SRV" "$@"; }
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
head -c $((mib << 20)) /dev/urandom > "$tmp/data"
# The kernel client closes first and keeps each port in TIME-WAIT for 60 s.
srv sysctl -qw net.ipv4.ip_local_port_range="1024 39999" net.ipv4.tcp_tw_reuse=1

# A kernel receiver in the client namespace for one bulk run; its port.
receiver() {  # port
  cli python3 "$kpeer" server --port "$1" --recv /dev/null --timeout 120 > "$tmp/recv.$1" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$tmp/recv.$1" 2>/dev/null && return; sleep 0.05; done
  echo "receiver on $1 did not start" >&2; exit 1
}

receiver 5001
k_out=$(srv "$kclient" --bulk "$TB_IP_CLI" 5001 "$mib")
wait "${pids[-1]}"
k_bulk=$(sed -n 's/.*gbit_per_s=\([0-9.]*\).*/\1/p' <<< "$k_out")

receiver 5002
f_out=$(srv "$peer" --iface "$TB_IF_SRV" client --connect "$TB_IP_CLI:5002" --send "$tmp/data" --timeout 120)
wait "${pids[-1]}"
f_bulk=$(sed -n 's/.*gbit_per_s=\([0-9.]*\).*/\1/p' <<< "$f_out")

cli "$echo_srv" 7000 > "$tmp/echo.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$tmp/echo.out" 2>/dev/null && break; sleep 0.05; done
k_short=$(srv "$kclient" "$TB_IP_CLI" 7000 "$conns" "$parallel" 64)
f_short=$(srv "$peer" --iface "$TB_IF_SRV" client --connect "$TB_IP_CLI:7000" --request 64 \
  --conns "$conns" --parallel "$parallel" --timeout 120)
k_rate=$(sed -n 's/.*conn_per_s=\([0-9]*\).*/\1/p' <<< "$k_short")
f_rate=$(sed -n 's/.*conn_per_s=\([0-9]*\).*/\1/p' <<< "$f_short")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0) printf "%.2f", b / a; else print "-"}'; }
echo "fastnet <-> kernel beside kernel <-> kernel, $(date -u '+%F %R UTC'), $(nproc) CPUs, $(uname -r)"
echo
echo "| measurement | kernel <-> kernel | fastnet <-> kernel | ratio |"
echo "|---|---:|---:|---:|"
echo "| bulk, $mib MiB server ns -> client ns (Gbit/s) | $k_bulk | $f_bulk | $(ratio "$k_bulk" "$f_bulk") |"
echo "| short connections, $conns x 64 B echo, $parallel at a time (conn/s) | $k_rate | $f_rate | $(ratio "$k_rate" "$f_rate") |"
echo
echo "kernel: $k_out"
echo "kernel: $k_short"
echo "fastnet: $(grep '^client' <<< "$f_out")"
echo "fastnet: $(grep '^client' <<< "$f_short")"
