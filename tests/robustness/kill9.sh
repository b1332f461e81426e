#!/usr/bin/env bash
# Faults: kill -9 of a preloaded server in the middle of a transfer, several times. After
# each: no XDP program left on the interface, the kernel peer sees a reset or an error
# within a bound (never a hang), the port is reusable, and a restarted server serves a
# byte-exact transfer again. Then the same for fastnet-peer.
# Runs itself under tests/testbed/with-testbed.sh.  Usage: kill9.sh BUILD SOURCE [ROUNDS]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
rounds=${3:-3}
port=7000
xdp_attached() { srv ip -d link show dev "$TB_IF_SRV" | grep -Eq 'prog/xdp|xdpgeneric|xdpdrv| xdp '; }
no_xdp_within() {  # seconds
  for _ in $(seq $(( $1 * 10 ))); do xdp_attached || return 0; sleep 0.1; done
  return 1
}
kills=0; peer_errors=0; hangs=0; restarts_ok=0
check_peer_after_kill() {  # pid of the kernel client, its output file
  local t0=$SECONDS
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then
    hangs=$((hangs + 1)); fail "the kernel peer still runs 30 s after the kill (hang)"
    kill "$1" 2>/dev/null
  fi
  wait "$1"; local rc=$?
  if [[ $rc -ne 0 ]] && grep -Eq 'error=|reader_hung' "$2"; then
    peer_errors=$((peer_errors + 1))
    pass "kernel peer ended with an error after $((SECONDS - t0)) s: $(grep -o 'error=.*' "$2" | head -c 80)"
  else
    fail "kernel peer did not see the connection fail (rc $rc): $(cat "$2")"
  fi
}
for r in $(seq "$rounds"); do
  start_echo $port
  xdp_attached && pass "round $r: XDP program attached while serving" || fail "round $r: no XDP program while serving"
  cli timeout 60 $PY "$H/legit.py" --connect "$TB_IP_SRV:$port" --seconds 40 --rate 4000000 \
    > "$TMP/legit.out" 2>&1 &
  LP=$!; PIDS+=($LP)
  sleep 1.5
  kill -9 "$SP"; wait "$SP" 2>/dev/null; kills=$((kills + 1))
  no_xdp_within 5 && pass "round $r: no XDP program on the interface after kill -9" ||
    fail "round $r: XDP program left after kill -9: $(srv ip -d link show dev "$TB_IF_SRV" | grep -i xdp)"
  check_peer_after_kill $LP "$TMP/legit.out"
  # The port is free at once and a new server serves byte-exact.
  start_echo $port
  head -c 1000000 /dev/urandom > "$TMP/in"
  got=$(cli timeout 20 socat -t 5 - "TCP:$TB_IP_SRV:$port" < "$TMP/in" | sha256sum)
  if [[ $got == "$(sha256sum < "$TMP/in")" ]]; then
    restarts_ok=$((restarts_ok + 1)); pass "round $r: restarted server echoes 1 MB byte-exact"
  else fail "round $r: restarted server did not echo byte-exact"; fi
  kill "$SP"; wait "$SP" 2>/dev/null
  no_xdp_within 5 || fail "round $r: XDP program left after a normal exit"
done

# fastnet-peer: the engine without interposition, killed the same way.
fpeer() { srv "$B/tools/fastnet-peer" --iface "$TB_IF_SRV" "$@"; }
fpeer server --port 5001 --echo --conns 0 --timeout 60 > "$TMP/fp.out" 2> "$TMP/fp.err" &
FP=$!; PIDS+=($FP)
for _ in $(seq 100); do grep -q '^listening' "$TMP/fp.out" && break; sleep 0.05; done
cli timeout 60 $PY "$H/legit.py" --connect "$TB_IP_SRV:5001" --seconds 40 --rate 4000000 \
  > "$TMP/legit2.out" 2>&1 &
LP=$!; PIDS+=($LP)
sleep 1.5
FPC=$(pgrep -P $FP | head -1); kill -9 "${FPC:-$FP}"; wait $FP 2>/dev/null; kills=$((kills + 1))
no_xdp_within 5 && pass "fastnet-peer: no XDP program after kill -9" || fail "fastnet-peer: XDP program left after kill -9"
check_peer_after_kill $LP "$TMP/legit2.out"
fpeer server --port 5001 --echo --conns 1 --timeout 30 > "$TMP/fp.out" 2> "$TMP/fp.err" &
FP=$!; PIDS+=($FP)
# The kernel releases a killed process's XSK queue lazily; XskDevice waits for it.
for _ in $(seq 200); do grep -q '^listening' "$TMP/fp.out" && break; sleep 0.05; done
grep -q '^listening' "$TMP/fp.out" && pass "fastnet-peer restarted and listens" ||
  fail "fastnet-peer did not listen again within 10 s: $(cat "$TMP/fp.err")"
got=$(cli timeout 20 socat -t 5 - "TCP:$TB_IP_SRV:5001" < "$TMP/in" | sha256sum)
[[ $got == "$(sha256sum < "$TMP/in")" ]] && { restarts_ok=$((restarts_ok + 1)); pass "fastnet-peer restarted on the same port serves byte-exact"; } ||
  fail "restarted fastnet-peer did not echo byte-exact: $(cat "$TMP/fp.err")"
wait $FP
echo "summary: kills=$kills peer_errors=$peer_errors hangs=$hangs restarts_ok=$restarts_ok"
finish
