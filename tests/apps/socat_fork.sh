#!/usr/bin/env bash
# A preloaded `socat TCP-LISTEN:p,fork` sends a 16 MiB file to 20 kernel clients in turn:
# the parent accepts, forks, closes its copy; each child takes the connection over from
# the parent's engine (docs/DESIGN.md "Processes") and sends the file. Every client gets
# every byte (sha1); while one transfer is held up, the CHILD's counters show the
# connection moved in and its bytes sent; no kernel socket carries a transfer (ss: only
# the tails of children that exit with data unacknowledged are handed to the kernel).
# Usage: socat_fork.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need socat

PORT=7071
N=20
head -c 16777216 /dev/urandom > "$TMP/blob"
want=$(sha1sum < "$TMP/blob" | cut -d' ' -f1)
start_preloaded "$TMP/socat-s.out" socat -U "TCP-LISTEN:$PORT,fork,reuseaddr" "FILE:$TMP/blob"
SP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

sampler_start
good=0
for i in $(seq $N); do
  if [[ $i == 3 ]]; then
    # This client reads 1 MiB, then stops for 2 s: the child is alive, its window full.
    ( cli timeout 60 socat -u "TCP:$TB_IP_SRV:$PORT" - 2> "$TMP/c$i.err" |
        { head -c 1048576; sleep 2; cat; } | sha1sum | cut -d' ' -f1 > "$TMP/c$i.sha" ) &
    HOLD=$!
    sleep 1
    child=$(pgrep -n -P "$SP")
    if [[ -n $child ]]; then
      prove_counters "$child" sockets_moved 1 bytes_tx 1048576 frames_tx 500
    else
      fail "no forked socat child while transfer $i runs"
    fi
    wait $HOLD
  else
    cli timeout 60 socat -u "TCP:$TB_IP_SRV:$PORT" - 2> "$TMP/c$i.err" | sha1sum | cut -d' ' -f1 > "$TMP/c$i.sha"
  fi
  got=$(cat "$TMP/c$i.sha")
  if [[ $got == "$want" ]]; then good=$((good + 1))
  else fail "client $i: sha1 $got, expected $want: $(head -c 300 "$TMP/c$i.err")"; fi
done
sampler_stop
[[ $good == "$N" ]] && pass "$N clients each received the 16 MiB file from a forked child, sha1 identical"
# A child exits as soon as the file is written: what the client has not yet
# acknowledged goes to a kernel socket that finishes it (exit handover, as in
# exit_tail.sh), seen here as FIN-WAIT/TIME-WAIT. A connection served by the kernel
# while it carries the transfer would be ESTAB.
seen=$(awk -v p=":$PORT" '$1 == "ESTAB" && ($4 ~ p"$" || $5 ~ p"$")' "$TMP/ss.cli" | wc -l)
bad=$(veth_kernel_flows "$TMP/ss.srv" | awk '$1 == "ESTAB" || $1 == "SYN-RECV"')
tails=$(veth_kernel_flows "$TMP/ss.srv" | awk '{print $5}' | sort -u | wc -l)
if [[ $seen -eq 0 ]]; then fail "the client namespace never showed an established flow on port $PORT"
elif [[ -n $bad ]]; then fail "kernel sockets serve transfers on the fastnet side: $(head -5 <<< "$bad")"
else pass "$seen established flow snapshots, no transfer on a kernel socket ($tails exit tail(s) handed to the kernel)"; fi
kill -0 "$SP" 2>/dev/null && pass "the listening socat still runs" || fail "the listening socat exited: $(tail -5 "$TMP/socat-s.out")"
finish
