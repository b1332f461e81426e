#!/usr/bin/env bash
# A preloaded sender that writes 16 MiB, closes and exits at once (exit(), then
# _exit(), then exit() under 2% loss) while a kernel client stops reading for a second
# just before the end (so the tail cannot be delivered before the sender is gone): the
# client gets every byte and an orderly end, no reset. The connections the engine could
# not finish before the process was gone are handed over to the kernel (TCP_REPAIR):
# the sender says so, and the server namespace shows the kernel socket that finishes
# the transfer after the process has exited.
# Usage: exit_tail.sh <build-dir> <source-dir>
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" --netem -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh" "$@"
source "$TB_LIB"
H=$(dirname "$0")
head -c $((16 * 1024 * 1024)) /dev/urandom > "$TMP/blob"
want=$(sha256sum < "$TMP/blob" | cut -d' ' -f1)

run() {  # port how label
  local port=$1 how=$2 label=$3
  ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" FASTNET_LOG=info "$PY" "$H/tail_sender.py" \
    "$port" "$TMP/blob" "$how" > "$TMP/snd.$port" 2>&1 &
  local sp=$!; PIDS+=($sp)
  for _ in $(seq 100); do grep -q listening "$TMP/snd.$port" && break; sleep 0.05; done
  # The reader (64 KB receive buffer) stops 192 KB before the end for 1.5 s: the tail
  # fits in the sender's 256 KB send buffer, so its last write returns, it closes and
  # exits with most of the tail unacknowledged, behind a closed window.
  cli "$PY" "$H/slow_reader.py" "$TB_IP_SRV" "$port" 0 60 $((16 * 1024 * 1024 - 192 * 1024)) 1.5 > "$TMP/rd.$port" 2>&1 &
  local rp=$!
  wait "$sp"; local rc=$?
  # The process is gone; its connection goes on in a kernel socket.
  local ks; ks=$(srv ss -Htn "( sport = :$port )" | grep -v LISTEN)
  wait "$rp"
  local res; res=$(tail -1 "$TMP/rd.$port")
  local got end n
  got=$(jget sha256 <<< "$res"); end=$(jget end <<< "$res"); n=$(jget bytes <<< "$res")
  [[ $rc == 0 ]] && pass "$label: the sender exited ($how) right after close()" || fail "$label: sender rc=$rc: $(cat "$TMP/snd.$port")"
  [[ $got == "$want" && $end == eof ]] && pass "$label: the kernel reader got all $n bytes intact and an orderly end" ||
    fail "$label: reader got $n bytes, end [$end], sha256 match: $([[ $got == "$want" ]] && echo yes || echo no)"
  grep -q "handed over to the kernel" "$TMP/snd.$port" && pass "$label: $(grep -o 'exit: .*kernel' "$TMP/snd.$port")" ||
    fail "$label: no handover logged: $(cat "$TMP/snd.$port")"
  grep -q "accelerating TCP" "$TMP/snd.$port" && pass "$label: the sender ran on fastnet" || fail "$label: the sender was not accelerated"
  [[ -n $ks ]] && pass "$label: after the exit the kernel holds the flow: $(head -1 <<< "$ks" | awk '{print $1, $2, $3}')" ||
    fail "$label: no kernel socket for the flow after the sender exited"
}

for i in 1 2 3 4; do run $((7410 + i)) exit "exit() #$i"; done
run 7402 _exit "_exit()"
tb_netem cli "loss 2%"
tb_netem srv "loss 2%"
run 7403 exit "exit() under 2% loss"
finish
