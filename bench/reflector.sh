#!/usr/bin/env bash
# Frames/s through the AF_XDP data path: the reflector (server namespace) with one XSK,
# then two XSKs on the same queue, against the blaster (client namespace) on a fresh
# test bed. Needs root.
#
# usage: bench/reflector.sh [BUILD_DIR] [SECONDS] [FRAME_SIZE]
#   BUILD_DIR defaults to ./build; SECONDS (per run) to 5; FRAME_SIZE to 64.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
seconds=${2:-5}
size=${3:-64}
reflector=$build/bench/reflector
blaster=$build/bench/blaster
[[ -x $reflector && -x $blaster ]] || { echo "build bench/reflector and bench/blaster in $build first" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root" >&2; exit 77; }

if [[ -z ${TB_NS_SRV:-} ]]; then
    exec "$here/../tests/testbed/with-testbed.sh" -- "$0" "$build" "$seconds" "$size"
fi

port=9000
rx_packets() { ip -n "$TB_NS_CLI" -s link show dev "$TB_IF_CLI" | awk '/RX:/ {getline; print $2; exit}'; }

for n in 1 2; do
    ready=$(mktemp)
    rm -f "$ready"
    ip netns exec "$TB_NS_SRV" "$reflector" --if "$TB_IF_SRV" --xsks "$n" --port "$port" \
        --seconds $((seconds + 3)) --ready-file "$ready" > "$ready.out" &
    rpid=$!
    for _ in $(seq 100); do [[ -s $ready ]] && break; sleep 0.05; done
    [[ -s $ready ]] || { echo "reflector did not start" >&2; kill "$rpid" 2>/dev/null; exit 1; }
    before=$(rx_packets)
    gen=$(ip netns exec "$TB_NS_CLI" "$blaster" --if "$TB_IF_CLI" --src-mac "$TB_MAC_CLI" \
        --dst-mac "$TB_MAC_SRV" --src-ip "$TB_IP_CLI" --dst-ip "$TB_IP_SRV" --port "$port" \
        --flows 64 --seconds "$seconds" --size "$size")
    sleep 0.5
    after=$(rx_packets)
    kill -INT "$rpid" 2>/dev/null || true
    wait "$rpid" || true
    echo "== $n XSK(s) on one queue, ${size}-byte frames, ${seconds}s"
    echo "   generator: $gen"
    echo "   reflector: $(cat "$ready.out")"
    echo "   client received back: $((after - before)) frames"
    rm -f "$ready" "$ready.out"
done
