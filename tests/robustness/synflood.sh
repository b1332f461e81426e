#!/usr/bin/env bash
# SYN flood: hping3 (bounded count, spoofed source whose SYN-ACKs nobody answers) against a
# preloaded epoll_echo while kernel clients keep connecting: every legitimate connection
# must succeed (SYN cookies once the SYN queue is full), RSS stays bounded, and after the
# flood the engine is back to no half-open state.
# Runs itself under tests/testbed/with-testbed.sh.  Usage: synflood.sh BUILD SOURCE [COUNT]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
count=${3:-20000}
command -v hping3 > /dev/null || { echo "SKIP: hping3 missing (scripts/bootstrap.sh)"; exit 77; }
port=7000
spoof=${TB_IP_CLI%.*}.4
srv ip neigh replace "$spoof" lladdr "$TB_MAC_CLI" dev "$TB_IF_SRV" nud permanent
start_echo $port
rss0=$(rss_kb "$SP"); fd0=$(fd_count "$SP")
cookies0=$(stat_get syn_cookies_sent); acc0=$(stat_get conn_accepted)

# The flood: COUNT SYNs at 10 000/s from random ports of the spoofed address.
cli timeout 60 hping3 -q -S -p $port -a "$spoof" -i u100 -c "$count" "$TB_IP_SRV" \
  > "$TMP/hping.out" 2>&1 &
HP=$!; PIDS+=($HP)
sleep 0.3
# Legitimate short connections while the flood runs.
cat > "$TMP/clients.py" <<'PYEOF'
import socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ok = bad = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"x" * 100)
        got = b""
        while len(got) < 100:
            c = s.recv(100 - len(got))
            if not c:
                break
            got += c
        s.close()
        if got == b"x" * 100:
            ok += 1
        else:
            bad += 1
    except OSError as e:
        bad += 1
        print("client error:", e, file=sys.stderr)
print(f"legit_ok={ok} legit_failed={bad}")
PYEOF
peak=0
cli $PY "$TMP/clients.py" "$TB_IP_SRV" $port 3 > "$TMP/clients.out" 2> "$TMP/clients.err" &
CP=$!; PIDS+=($CP)
while kill -0 $CP 2>/dev/null; do r=$(rss_kb "$SP"); (( r > peak )) && peak=$r; sleep 0.1; done
wait $CP
wait $HP; hrc=$?
cat "$TMP/clients.out"; head -5 "$TMP/clients.err"
tail -3 "$TMP/hping.out"
[[ $hrc -eq 0 ]] || fail "hping3 exited with $hrc (not bounded or not started)"
ok=$(sed -n 's/.*legit_ok=\([0-9]*\).*/\1/p' "$TMP/clients.out")
bad=$(sed -n 's/.*legit_failed=\([0-9]*\).*/\1/p' "$TMP/clients.out")
[[ ${ok:-0} -ge 20 && ${bad:-1} -eq 0 ]] && pass "$ok legitimate connections during the flood, 0 failed" ||
  fail "legitimate connections during the flood: ok=${ok:-?} failed=${bad:-?}"
cookies=$(( $(stat_get syn_cookies_sent) - cookies0 ))
[[ $cookies -gt 0 ]] && pass "SYN cookies sent: $cookies" || fail "no SYN cookie sent during a $count-SYN flood"
rss1=$(rss_kb "$SP")
echo "rss_kb start=$rss0 peak=$peak end=$rss1"
(( peak - rss0 < 65536 )) && pass "RSS grew by $(( (peak - rss0) / 1024 )) MiB at most under the flood" ||
  fail "RSS grew from $rss0 kB to $peak kB"
# Half-open entries time out (SYN-ACK retries): afterwards a connection still works and
# the fd count is where it started.
sleep 1
cli $PY "$TMP/clients.py" "$TB_IP_SRV" $port 0.5 | grep -q 'legit_failed=0' && pass "serving after the flood" ||
  fail "not serving after the flood"
fd1=$(fd_count "$SP")
[[ $fd1 -eq $fd0 ]] && pass "fd count back to $fd0" || fail "fd count $fd0 -> $fd1"
check_umem_frames "after the flood"
kill -0 "$SP" 2>/dev/null && pass "server alive (crashes 0)" || fail "server died"
"$STAT" "$SP" | grep -E 'syn_cookies|accepted|drop_(backlog|no_buffer|other)' | sed 's/^/  /'
echo "summary: syns_sent=$count legit_ok=${ok:-0} legit_failed=${bad:-?} cookies=$cookies rss_peak_growth_kb=$((peak - rss0))"
finish
