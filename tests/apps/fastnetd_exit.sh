#!/usr/bin/env bash
# fastnetd and the end of its clients (unprivileged: user nobody).
#   - A client killed with SIGKILL: fastnetd sees it exit through its pidfd and its slot
#     leaves `fastnet-stat --daemon` within a second (log: "pid N exited (pidfd)").
#   - A client that writes 16 MiB, closes and exits at once (exit(), then _exit())
#     while a kernel reader stops reading for 1.5 s just before the end: the client has
#     no CAP_NET_ADMIN, so fastnetd builds the kernel socket (TCP_REPAIR) that finishes
#     the transfer. The reader gets every byte and an orderly end, the client logs the
#     handover, fastnetd counts it, and the server namespace shows the kernel socket
#     after the client is gone.
# Usage: fastnetd_exit.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need setpriv
H=$(dirname "$0")
FND=$B/tools/fastnetd
SOCK=/run/fastnet/$TB_IF_SRV.sock
public_lib
cp "$B/examples/http_server" "$TMP/pub/"; chmod 755 "$TMP/pub/http_server"
cp "$H/tail_sender.py" "$TMP/pub/"; chmod 644 "$TMP/pub/tail_sender.py"
head -c $((16 * 1024 * 1024)) /dev/urandom > "$TMP/blob"; chmod 644 "$TMP/blob"
want=$(sha256sum < "$TMP/blob" | cut -d' ' -f1)
as_nobody() { ip netns exec "$TB_NS_SRV" setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
daemon_json() { "$STAT" --daemon --json "$TB_IF_SRV"; }
djget() {  # key: one field of fastnetd's view
  daemon_json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0][sys.argv[1]])' "$1" 2>/dev/null
}

ip netns exec "$TB_NS_SRV" "$FND" --iface "$TB_IF_SRV" --allow-uid nobody > "$TMP/fnd.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || { fail "fastnetd did not start: $(cat "$TMP/fnd.log")"; finish; }
[[ $(djget pidfd) == 1 ]] && pass "fastnetd watches its clients through pidfds" || fail "fastnetd has no pidfds: $(daemon_json)"

# 1. kill -9 a client: its slot is gone from fastnetd's view within a second.
# ip netns exec, setpriv and env each exec: $! is the server's pid.
ip netns exec "$TB_NS_SRV" setpriv --reuid=nobody --regid=nogroup --clear-groups \
  env LD_PRELOAD="$PUBLIB" "$TMP/pub/http_server" 8090 > "$TMP/hs.log" 2>&1 &
HP=$!; PIDS+=("$HP")
disown "$HP"   # its SIGKILL below is expected: no job report
if wait_listen "$TB_NS_SRV" 8090; then
  cli curl -s --max-time 5 -o /dev/null "http://$TB_IP_SRV:8090/"
  for _ in $(seq 50); do daemon_json | grep -q "\"slot_pids\": \[[^]]*\b$HP\b" && break; sleep 0.1; done
  if daemon_json | grep -q "\"slot_pids\": \[[^]]*\b$HP\b"; then
    pass "client $HP holds a slot: $(daemon_json | grep -o '"slot_pids": \[[^]]*\]')"
    exited0=$(djget clients_exited)
    kill -9 "$HP"; t0=$(date +%s%N)
    gone=0
    for _ in $(seq 100); do
      daemon_json | grep -q "\"slot_pids\": \[[^]]*\b$HP\b" || { gone=1; break; }
      sleep 0.02
    done
    ms=$((($(date +%s%N) - t0) / 1000000))
    [[ $gone == 1 && $ms -le 1000 ]] && pass "killed with SIGKILL: its slot left fastnetd's view after $ms ms" \
      || fail "killed client's slot still held after $ms ms: $(daemon_json)"
    grep -q "pid $HP exited (pidfd)" "$TMP/fnd.log" && pass "fastnetd: $(grep "pid $HP exited" "$TMP/fnd.log" | head -1)" \
      || fail "fastnetd did not see pid $HP exit through its pidfd: $(cat "$TMP/fnd.log")"
    [[ $(djget clients_exited) -gt $exited0 ]] && pass "clients_exited counted it ($(djget clients_exited))" \
      || fail "clients_exited did not move: $(daemon_json)"
  else
    fail "client $HP never showed in fastnetd's slots: $(daemon_json); $(cat "$TMP/hs.log")"
  fi
fi

# 2. The unfinished tail of an unprivileged client, handed to the kernel by fastnetd.
run() {  # port how
  local port=$1 how=$2 label="nobody, $2"
  local before; before=$(djget handovers)
  as_nobody env LD_PRELOAD="$PUBLIB" FASTNET_LOG=info "$PY" "$TMP/pub/tail_sender.py" \
    "$port" "$TMP/blob" "$how" > "$TMP/snd.$port" 2>&1 &
  local sp=$!; PIDS+=($sp)
  for _ in $(seq 100); do grep -q listening "$TMP/snd.$port" && break; sleep 0.05; done
  # As exit_tail.sh: the reader (64 KB receive buffer) stops 192 KB before the end for
  # 1.5 s, so the sender closes and exits with most of the tail unacknowledged.
  cli "$PY" "$H/slow_reader.py" "$TB_IP_SRV" "$port" 0 60 $((16 * 1024 * 1024 - 192 * 1024)) 1.5 > "$TMP/rd.$port" 2>&1 &
  local rp=$!
  wait "$sp"; local rc=$?
  local ks; ks=$(srv ss -Htn "( sport = :$port )" | grep -v LISTEN)
  wait "$rp"
  local res; res=$(tail -1 "$TMP/rd.$port")
  local got end n after
  got=$(jget sha256 <<< "$res"); end=$(jget end <<< "$res"); n=$(jget bytes <<< "$res")
  after=$(djget handovers)
  [[ $rc == 0 ]] && pass "$label: the sender exited right after close()" || fail "$label: sender rc=$rc: $(cat "$TMP/snd.$port")"
  grep -q "accelerating TCP .* through fastnetd" "$TMP/snd.$port" && pass "$label: the sender ran on fastnet through fastnetd" \
    || fail "$label: the sender was not accelerated through fastnetd: $(cat "$TMP/snd.$port")"
  [[ $got == "$want" && $end == eof ]] && pass "$label: the kernel reader got all $n bytes intact and an orderly end" ||
    fail "$label: reader got $n bytes, end [$end], sha256 match: $([[ $got == "$want" ]] && echo yes || echo no)"
  grep -q "handed over to the kernel by fastnetd" "$TMP/snd.$port" && pass "$label: $(grep -o 'exit: .*fastnetd' "$TMP/snd.$port")" ||
    fail "$label: no handover logged: $(cat "$TMP/snd.$port")"
  [[ -n $after && -n $before && $after -gt $before ]] && pass "$label: fastnetd's handovers went from $before to $after" \
    || fail "$label: fastnetd's handovers [$before] -> [$after]: $(tail -3 "$TMP/fnd.log")"
  [[ -n $ks ]] && pass "$label: after the exit the kernel holds the flow: $(head -1 <<< "$ks" | awk '{print $1, $2, $3}')" ||
    fail "$label: no kernel socket for the flow after the sender exited"
}
run 7421 exit
run 7422 _exit
[[ $(djget handovers_refused) == 0 ]] && pass "fastnetd refused no handover" || fail "fastnetd refused: $(grep refused "$TMP/fnd.log")"

# 3. Bad HANDOVER requests get an error reply and are counted: one cut short, one
# from a process that holds no slot (so has no connection to hand over).
bad=$("$PY" - "$SOCK" <<'PYEOF'
import os, socket, struct, sys
def call(msg, fds=()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))] if fds else []
    s.sendmsg([msg], anc)
    s.settimeout(5)
    r = s.recv(4096)
    s.close()
    status = struct.unpack_from("<i", r, 8)[0]
    return "%d %s" % (status, r[12:172].split(b"\0")[0].decode())
req = struct.pack("<IIII", 0x666e6431, 1, 4, 0)   # magic "fnd1", version 1, HANDOVER
print(call(req + bytes(8)))
print(call(req + bytes(60), [os.memfd_create("data")]))   # sizeof(DaemonHandover) = 76
PYEOF
)
echo "$bad" | sed 's/^/  /'
grep -q "^-71 a HANDOVER request of 24 bytes" <<< "$bad" && grep -q "^-1 pid [0-9]* holds no slot" <<< "$bad" \
  && pass "bad handover requests get an error reply (EPROTO, EPERM)" || fail "bad handover requests: [$bad]"
[[ $(djget handovers_refused) == 2 ]] && pass "fastnetd counted them: handovers_refused = 2" \
  || fail "handovers_refused = $(djget handovers_refused), expected 2"
sed 's/^/  /' "$TMP/fnd.log"
finish
