#!/usr/bin/env bash
# fastnet-stat reads a running process's counters from outside (text and --json), and
# the segment disappears when the process exits.
# Usage: stat_test.sh <build-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"

start env LD_PRELOAD="$LIB" "$EX/http_server" 19201 > /dev/null 2>&1
pid=${PIDS[-1]}
wait_port 19201
for i in 1 2 3; do curl -s --max-time 5 http://127.0.0.1:19201/ > /dev/null; done
[[ -e /dev/shm/fastnet.$pid ]] && pass "the segment exists while the process runs" || fail "no /dev/shm/fastnet.$pid"

text=$("$STAT" "$pid")
echo "$text" | grep -q "^pid $pid: " && pass "text output names the process" || fail "text: $text"
echo "$text" | grep -Eq "^  passthrough_calls +[1-9]" && pass "text output counts passthrough calls" || fail "text: $text"

"$STAT" --json "$pid" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
for k in ("pid", "state", "engines", "frames_rx", "frames_tx", "bytes_rx", "bytes_tx",
          "conn_opened", "conn_accepted", "conn_closed", "conn_reset", "retransmits",
          "handovers", "passthrough_calls", "rx_csum_partial", "drops"):
    assert k in d, k
assert d["pid"] == int(sys.argv[1])
assert d["passthrough_calls"] >= 3
' "$pid" && pass "--json parses and has every counter" || fail "--json output: $("$STAT" --json "$pid")"

"$STAT" --json | "$PY" -c '
import json, sys
assert any(p["pid"] == int(sys.argv[1]) for p in json.load(sys.stdin))' "$pid" \
  && pass "--json without a pid lists the process" || fail "--json list"

"$STAT" 999999 > /dev/null 2>&1
check_eq "an unknown pid is an error" 1 "$?"

kill -TERM "$pid"; wait "$pid" 2>/dev/null
# http_server dies of SIGTERM (no exit handlers): its segment stays behind, is ignored by
# the listing and removed by the next fastnet process. A clean exit removes its own:
env LD_PRELOAD="$LIB" "$PY" -c 'import os, socket; socket.socket(); print(os.getpid())' > "$TMP/pid" 2>/dev/null
p2=$(cat "$TMP/pid")
[[ ! -e /dev/shm/fastnet.$p2 ]] && pass "a clean exit removes the segment" || fail "/dev/shm/fastnet.$p2 left behind"
"$STAT" --json | "$PY" -c '
import json, sys
assert all(p["pid"] != int(sys.argv[1]) for p in json.load(sys.stdin))' "$pid" \
  && pass "a dead process is not listed" || fail "dead process listed"
[[ ! -e /dev/shm/fastnet.$pid ]] && pass "the next fastnet process removed the dead one's segment" \
  || fail "/dev/shm/fastnet.$pid left behind"
rm -f "/dev/shm/fastnet.$pid"

finish
