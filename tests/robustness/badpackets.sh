#!/usr/bin/env bash
# Bad packets and blind attacks (RFC 5961) against a preloaded epoll_echo (fastnet, server
# namespace), crafted from the client namespace by attacks.py while legit.py (a kernel
# client) streams through the same server; the stream must come back byte-exact.
# Runs itself under tests/testbed/with-testbed.sh, with the test-bed options given after
# CASES (e.g. --tx-on-client: the kernel client keeps tx checksum offload, so its
# segments carry partial checksums).  Usage: badpackets.sh BUILD SOURCE [CASES [BED-OPTION...]]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" "${@:4}" -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
ONLY=${3:-}
$PY -c 'import scapy' 2>/dev/null || { echo "SKIP: python3-scapy missing (scripts/bootstrap.sh)"; exit 77; }
port=7000
spoof=${TB_IP_CLI%.*}.3
# The crafted flows come from an address no kernel owns; the server side reaches it
# through a static neighbour entry pointing at the client's veth.
srv ip neigh replace "$spoof" lladdr "$TB_MAC_CLI" dev "$TB_IF_SRV" nud permanent
start_echo $port FASTNET_PORT_BASE=40000 FASTNET_PORT_COUNT=1000

cli $PY "$H/legit.py" --connect "$TB_IP_SRV:$port" --seconds 120 --stop-file "$TMP/stop" \
  --port-file "$TMP/lport" > "$TMP/legit.out" 2>&1 &
LP=$!; PIDS+=($LP)
for _ in $(seq 100); do [[ -s $TMP/lport ]] && break; sleep 0.05; done
[[ -s $TMP/lport ]] || { fail "legitimate client did not connect: $(cat "$TMP/legit.out")"; finish; }

cli $PY "$H/attacks.py" --iface "$TB_IF_CLI" --my-mac "$TB_MAC_CLI" --srv-mac "$TB_MAC_SRV" \
  --my-ip "$spoof" --cli-ip "$TB_IP_CLI" --srv-ip "$TB_IP_SRV" --port $port --closed-port 40500 \
  --stat-cmd "$STAT --json $SP" --legit-port-file "$TMP/lport" ${ONLY:+--only "$ONLY"} \
  --tx-cli "${TB_TX_CLI:-off}" ||
  fail "attack checks (see FAIL lines above)"
touch "$TMP/stop"
wait $LP && pass "legitimate transfer byte-exact through every attack" ||
  fail "the legitimate transfer did not come back byte-exact"
cat "$TMP/legit.out"
if kill -0 "$SP" 2>/dev/null; then pass "fastnet server alive (crashes 0)"
else fail "the fastnet server died (crashes 1)"; cat "$TMP/srv.err"; fi
"$STAT" "$SP" | sed 's/^/  /'
finish
