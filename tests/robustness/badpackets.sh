#!/usr/bin/env bash
# Bad packets and blind attacks (RFC 5961) against a preloaded epoll_echo (fastnet, server
# namespace), crafted from the client namespace by attacks.py while legit.py (a kernel
# client) streams through the same server; the stream must come back byte-exact.
# Runs itself under tests/testbed/with-testbed.sh.  Usage: badpackets.sh BUILD SOURCE [CASES]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
B=$1; S=$2; ONLY=${3:-}
H=$S/tests/robustness
PY=/usr/bin/python3
$PY -c 'import scapy' 2>/dev/null || { echo "SKIP: python3-scapy missing (scripts/bootstrap.sh)"; exit 77; }
TMP=$(mktemp -d /tmp/fastnet-robust.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
srv() { ip netns exec "$TB_NS_SRV" "$@"; }
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
port=7000
spoof=${TB_IP_CLI%.*}.3
# The crafted flows come from an address no kernel owns; the server side reaches it
# through a static neighbour entry pointing at the client's veth.
srv ip neigh replace "$spoof" lladdr "$TB_MAC_CLI" dev "$TB_IF_SRV" nud permanent

srv env LD_PRELOAD="$B/interpose/libfastnet.so" FASTNET_IFACE="$TB_IF_SRV" \
  FASTNET_PORT_BASE=40000 FASTNET_PORT_COUNT=1000 "$B/examples/epoll_echo" $port \
  > "$TMP/srv.out" 2> "$TMP/srv.err" &
NP=$!; PIDS+=($NP)
for _ in $(seq 100); do srv ss -Htln "sport = :$port" | grep -q . && break; sleep 0.05; done
# `ip netns exec` forks: the server is its child.
SP=$(pgrep -P $NP | head -1); SP=${SP:-$NP}
# The kernel side of the listener appears first; the engine after the first accept call.
sleep 0.5
state=$("$B/interpose/fastnet-stat" --json $SP 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["state"])')
[[ $state == accelerated* ]] || { echo "FAIL: server not accelerated: $state"; cat "$TMP/srv.err"; exit 1; }

cli $PY "$H/legit.py" --connect "$TB_IP_SRV:$port" --seconds 120 --stop-file "$TMP/stop" \
  --port-file "$TMP/lport" > "$TMP/legit.out" 2>&1 &
LP=$!; PIDS+=($LP)
for _ in $(seq 100); do [[ -s $TMP/lport ]] && break; sleep 0.05; done
[[ -s $TMP/lport ]] || { echo "FAIL: legitimate client did not connect"; cat "$TMP/legit.out"; exit 1; }

cli $PY "$H/attacks.py" --iface "$TB_IF_CLI" --my-mac "$TB_MAC_CLI" --srv-mac "$TB_MAC_SRV" \
  --my-ip "$spoof" --cli-ip "$TB_IP_CLI" --srv-ip "$TB_IP_SRV" --port $port --closed-port 40500 \
  --stat-cmd "$B/interpose/fastnet-stat --json $SP" --legit-port-file "$TMP/lport" \
  ${ONLY:+--only "$ONLY"}
arc=$?
touch "$TMP/stop"
wait $LP; lrc=$?
cat "$TMP/legit.out"
kill -0 $SP 2>/dev/null || { echo "FAIL: the fastnet server died (crashes 1)"; cat "$TMP/srv.err"; exit 1; }
"$B/interpose/fastnet-stat" $SP | sed 's/^/  /'
[[ $lrc -eq 0 ]] || echo "FAIL: the legitimate transfer did not come back byte-exact"
echo "summary: crashes=0 attack_checks_failed=$([[ $arc -eq 0 ]] && echo 0 || echo some) legit_ok=$([[ $lrc -eq 0 ]] && echo 1 || echo 0)"
[[ $arc -eq 0 && $lrc -eq 0 ]]
