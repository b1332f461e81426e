#!/usr/bin/env bash
# Busy polling: with FASTNET_SPIN_US a thread about to sleep in epoll_wait, poll, select
# or a blocking recv on fastnet sockets polls its engine first, for at most that long and
# never past the call's own timeout; without it the thread sleeps at once. Each of the
# four 0.5 s waits that find nothing: with a spin longer than the wait, about 0.5 s of
# CPU and 0.5 s of wall time; with the default, next to no CPU; with
# FASTNET_PROFILE=latency (50 us per sleep), next to no CPU either. A signal during a
# wait ends it with EINTR, spinning or not.
# Usage: spin.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"

PORT=9301
cli "$PY" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen()
c, _ = s.accept(); time.sleep(30)' $PORT > /dev/null 2>&1 &
PIDS+=($!)
wait_listen "$TB_NS_CLI" $PORT || finish

run() {  # name env...
  local name=$1; shift
  srv env LD_PRELOAD="$LIB" "$@" "$PY" "$(dirname "$0")/spin_probe.py" "$TB_IP_CLI" $PORT > "$TMP/$name.out" 2>&1
  sed "s/^/  $name: /" "$TMP/$name.out"
}
# Checks every wait's numbers: cpu within [lo, hi], wall within [0.45, 1.5].
check() {  # name lo hi
  local name=$1 lo=$2 hi=$3 n
  n=$(awk -v lo="$lo" -v hi="$hi" '{ split($2, c, "="); split($3, w, "=");
        if (c[2] >= lo && c[2] <= hi && w[2] >= 0.45 && w[2] <= 1.5) ok++ } END { print ok + 0 }' "$TMP/$name.out")
  [[ $n -eq 4 ]] && pass "$name: all 4 waits within cpu [$lo, $hi] s and wall [0.45, 1.5] s" \
    || fail "$name: $n of 4 waits as expected: $(tr '\n' ' ' < "$TMP/$name.out")"
}

run spin FASTNET_SPIN_US=1000000
check spin 0.2 1.5
run nospin
check nospin 0 0.1
run latency FASTNET_PROFILE=latency
check latency 0 0.1
# A signal 0.1 s into each 5 s wait ends it (EINTR, the handler raises) at once, or, while
# the thread spins, when the spin (0.3 s here) ends: never at the wait's timeout.
signals() {  # name max-wall env...
  local name=$1 max=$2 n; shift 2
  srv env LD_PRELOAD="$LIB" "$@" "$PY" "$(dirname "$0")/spin_probe.py" "$TB_IP_CLI" $PORT signal > "$TMP/$name.out" 2>&1
  sed "s/^/  $name: /" "$TMP/$name.out"
  n=$(awk -v max="$max" '{ split($2, i, "="); split($3, w, "=");
        if (i[2] == 1 && w[2] >= 0.09 && w[2] <= max) ok++ } END { print ok + 0 }' "$TMP/$name.out")
  [[ $n -eq 4 ]] && pass "$name: a signal ended all 4 waits with EINTR within $max s" \
    || fail "$name: $n of 4 waits ended by the signal in time: $(tr '\n' ' ' < "$TMP/$name.out")"
}
signals signal-sleeping 1.0
signals signal-spinning 1.2 FASTNET_SPIN_US=300000
# The probe's sockets are fastnet's: a connection made the same way, while it lives.
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$PY" -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); time.sleep(5)' "$TB_IP_CLI" $PORT &
PP=$!; PIDS+=("$PP")
for i in $(seq 60); do
  [[ $(jget conn_opened <<< "$(stat_json "$PP")") -ge 1 ]] 2>/dev/null && break
  sleep 0.05
done
prove_counters "$PP" sockets_accelerated 1 conn_opened 1
finish
