#!/usr/bin/env bash
# Progress without the application: a preloaded server sends 1 MB, then sleeps 5 s without
# calling into fastnet. Its kernel peer (32 KB receive buffer) stops reading 300 KB before
# the end until the server sleeps and the test has read its retransmit counter, then
# reads the rest and starts sending 16 MB, all under 5 % loss each way.
# fastnet's progress thread must transmit and retransmit the queued data (the server's
# retransmit counter moves during the sleep) and ACK the peer's segments (the peer's
# TCP_INFO bytes_acked grows during the sleep); after the sleep the window opens again
# as the server reads, and the whole upload arrives intact (SHA-256): no stall, no timeout.
# Usage: sleeping_thread.sh <build-dir> <source-dir>
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" --netem-server 'loss 5%' --netem-client 'loss 5%' \
    -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh" "$@"
H=$(dirname "$0")
PORT=7300
start_preloaded "$TMP/srv.out" "$PY" "$H/sleeper.py" server $PORT "$TMP/times.json"
SP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish
sampler_start
cli timeout 90 "$PY" "$H/sleeper.py" client "$TB_IP_SRV" $PORT "$TMP/go" > "$TMP/client.json" &
CP=$!
# The server's retransmissions while it sleeps (its counters come from fastnet's own
# progress, published every few milliseconds).
for _ in $(seq 200); do [[ -e $TMP/times.json.start ]] && break; sleep 0.05; done
r0=$(jget retransmits <<< "$(stat_json "$SP")")
touch "$TMP/go"   # the client reads the last 300 KB only now
sleep 4.5
r1=$(jget retransmits <<< "$(stat_json "$SP")")
[[ -e $TMP/times.json.start && ! -e $TMP/times.json && ${r1:-0} -gt ${r0:-0} ]] &&
  pass "the sleeping server retransmitted $((r1 - r0)) segment(s) during its sleep" ||
  fail "no retransmission during the sleep (retransmits ${r0:-?} -> ${r1:-?})"
wait "$CP"
rc=$?
sampler_stop
out=$(cat "$TMP/client.json")
[[ $rc -eq 0 ]] && pass "the 16 MB upload arrived intact after the sleep (SHA-256)" ||
  fail "client failed (rc $rc): $(head -c 300 <<< "$out"); server: $(tail -3 "$TMP/srv.out")"
if [[ -s $TMP/times.json && $rc -eq 0 ]]; then
  "$PY" - "$TMP/times.json" "$TMP/client.json" <<'PY' || failures=$((failures + 1))
import json, sys
t = json.load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
s0, s1 = t["sleep_start"], t["sleep_end"]
ok = True
def check(cond, msg):
    global ok
    print(("ok: " if cond else "FAIL: ") + msg)
    ok &= cond
check(c["down_done"] < s1, f"the 1 MB download was complete {c['down_done'] - s0:.2f} s into the 5 s sleep")
during = [b for (ts, b) in c["acked"] if ts < s1 - 0.1]
check(bool(during) and max(during) > 0,
      f"the peer's data was acknowledged during the sleep ({max(during) if during else 0} bytes)")
check(c["up_done"] - s1 < 30, f"after the sleep the upload finished in {c['up_done'] - s1:.1f} s")
sys.exit(0 if ok else 1)
PY
fi
prove_counters "$SP" conn_accepted 1 bytes_rx 16000000 retransmits 1
prove_no_kernel_flows $PORT "sleeping server"
finish
