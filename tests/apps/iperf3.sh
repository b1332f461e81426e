#!/usr/bin/env bash
# iperf3 -s preloaded in the server namespace; iperf3 -c from the client namespace, 3 s
# each way (-c and -R): both complete, the rates are reported, and both transfers ran on
# the engine (counters) with no kernel socket on the fastnet side (ss).
# Usage: iperf3.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need iperf3

PORT=5201
start_preloaded "$TMP/iperf3-s.out" iperf3 -s -p $PORT
IP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

gbits() {  # json-file key: sum_sent/sum_received bits_per_second in Gbit/s
  "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("%.2f" % (d["end"][sys.argv[2]]["bits_per_second"] / 1e9))' "$1" "$2" 2>/dev/null
}

sampler_start
for dir in up down; do
  flag=(); [[ $dir == down ]] && flag=(-R)
  cli timeout 20 iperf3 -c "$TB_IP_SRV" -p $PORT -t 3 "${flag[@]}" -J > "$TMP/$dir.json" 2> "$TMP/$dir.err"
  rc=$?
  rate=$(gbits "$TMP/$dir.json" sum_received)
  what="client -> preloaded server"; [[ $dir == down ]] && what="preloaded server -> client (-R)"
  if [[ $rc == 0 && -n $rate ]] && "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) > 0)" "$rate"; then
    pass "iperf3 $what: $rate Gbit/s received"
  else
    fail "iperf3 $what: rc=$rc $(grep -o '"error":.*' "$TMP/$dir.json") $(cat "$TMP/$dir.err")"
  fi
done
sampler_stop

# Two runs: a control and a data connection each; the data crossed the engine both ways.
prove_counters $IP conn_accepted 4 bytes_rx 10000000 bytes_tx 10000000
prove_no_kernel_flows $PORT "iperf3 against preloaded iperf3 -s"
finish
