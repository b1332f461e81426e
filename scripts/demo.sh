#!/usr/bin/env bash
# The demo: install what is missing, build, then run traffic across the built-in
# namespace test bed (tests/testbed/) and print what happened. The bed is torn down on
# every exit path. Until the runtime lands, the traffic is kernel TCP on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "demo: needs root (network namespaces); run: sudo bash scripts/demo.sh" >&2
    exit 1
fi
bash scripts/bootstrap.sh
bash scripts/build.sh

exec tests/testbed/with-testbed.sh -- bash -c '
set -euo pipefail
source "$TB_LIB"
echo
echo "== test bed $TB_PREFIX"
echo "   server: namespace $TB_NS_SRV, $TB_IF_SRV $TB_IP_SRV/$TB_PLEN ($TB_MAC_SRV)"
echo "   client: namespace $TB_NS_CLI, $TB_IF_CLI $TB_IP_CLI/$TB_PLEN ($TB_MAC_CLI)"
work=$(mktemp -d); trap "rm -rf $work" EXIT
head -c $((16 << 20)) /dev/urandom > "$work/sent"
tb_srv socat -u TCP-LISTEN:5001,bind="$TB_IP_SRV",reuseaddr CREATE:"$work/received" &
tb_wait_listen srv 5001
echo "== kernel TCP: client sends 16 MiB to $TB_IP_SRV:5001"
start=$(date +%s.%N)
tb_cli socat -u FILE:"$work/sent" TCP:"$TB_IP_SRV":5001
wait $!
end=$(date +%s.%N)
sent=$(sha256sum < "$work/sent" | cut -c1-16)
got=$(sha256sum < "$work/received" | cut -c1-16)
echo "   sent     sha256 $sent...  $(stat -c %s "$work/sent") bytes"
echo "   received sha256 $got...  $(stat -c %s "$work/received") bytes"
awk -v s="$start" -v e="$end" "BEGIN {printf \"   %.1f MB/s over the veth\\n\", 16*1.048576/(e-s)}"
[[ $sent == "$got" ]] || { echo "== MISMATCH"; exit 1; }
echo "== ping client -> server"
tb_cli ping -n -q -c 3 -i 0.2 "$TB_IP_SRV" | tail -1
echo "== ok; tearing the bed down"
'
