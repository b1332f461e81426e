#!/usr/bin/env bash
# Accelerated interposition on the namespace test bed: preloaded programs in the server
# namespace (the fastnet side) against kernel programs in the client namespace. Every
# case proves acceleration twice: fastnet-stat's counters moved, and `ss` in the server
# namespace shows no kernel TCP socket for the flow (only the kernel side of listeners).
# Runs itself under tests/testbed/with-testbed.sh.
# Usage: accel_testbed.sh <build-dir> <source-dir>
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
B=$1; S=$2
LIB=$B/interpose/libfastnet.so
STAT=$B/interpose/fastnet-stat
EX=$B/examples
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/fastnet-accel.XXXXXX)
PIDS=()
failures=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
srv() { ip netns exec "$TB_NS_SRV" "$@"; }
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
wait_listen() {  # ns port
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Htln "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  fail "nothing listens on $2 in $1"
}
# Kernel TCP sockets in the server namespace other than listeners, for a port.
kernel_flows() { srv ss -Htan "( sport = :$1 or dport = :$1 )" | grep -v LISTEN; }
stat_json() { "$STAT" --json "$1"; }
jget() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }

# 1. The example HTTP server, preloaded, driven by kernel curl (keep-alive + close).
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$EX/http_server" 8080 > /dev/null 2> "$TMP/http.err" &
HP=$!; PIDS+=($HP)
wait_listen "$TB_NS_SRV" 8080
urls=(); for i in $(seq 20); do urls+=("http://$TB_IP_SRV:8080/$i"); done
out=$(cli curl -s --max-time 10 "${urls[@]}" | grep -c "hello from http_server")
[[ $out == 20 ]] && pass "curl got 20 answers over keep-alive from the preloaded http_server" || fail "curl answers: $out"
for i in 1 2 3; do
  cli curl -s --max-time 5 -H 'Connection: close' "http://$TB_IP_SRV:8080/" > /dev/null || fail "curl Connection: close"
done
# Hold one connection open and look at the kernel's view of it on both sides.
(sleep 1.5; printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 1.5) | cli socat - "TCP:$TB_IP_SRV:8080" > /dev/null 2>&1 &
HOLD=$!
sleep 1
cli ss -Htan "dport = :8080" | grep -q ESTAB && pass "the client namespace sees the held connection" || fail "no held connection"
[[ -z $(kernel_flows 8080) ]] && pass "the server namespace has no kernel socket for the HTTP flows" \
  || fail "kernel sockets for port 8080 on the fastnet side: $(kernel_flows 8080)"
wait $HOLD
json=$(stat_json $HP)
acc=$(echo "$json" | jget conn_accepted); rx=$(echo "$json" | jget frames_rx); st=$(echo "$json" | jget state)
[[ $st == accelerated* ]] && pass "fastnet-stat: $st" || fail "state: $st ($(cat "$TMP/http.err"))"
[[ $acc -ge 5 ]] && pass "fastnet-stat: $acc connections accepted by the engine" || fail "conn_accepted=$acc"
[[ $rx -gt 20 ]] && pass "fastnet-stat: $rx frames received" || fail "frames_rx=$rx"
kill $HP; wait $HP 2>/dev/null

# 2. The epoll echo server, preloaded: 4 MB through it from a kernel client.
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$EX/epoll_echo" 7000 > /dev/null 2> "$TMP/echo.err" &
EP=$!; PIDS+=($EP)
wait_listen "$TB_NS_SRV" 7000
head -c 4000000 /dev/urandom > "$TMP/in"
# socat reads while it writes (a send-everything-then-read client would deadlock
# against any echo server once both directions' buffers are full).
got=$(cli socat -t 5 - "TCP:$TB_IP_SRV:7000" < "$TMP/in" | sha1sum)
[[ $got == "$(sha1sum < "$TMP/in")" ]] && pass "4 MB echoed intact by the preloaded epoll_echo" || fail "echo data differs"
json=$(stat_json $EP)
b=$(echo "$json" | jget bytes_rx)
[[ $b -ge 4000000 ]] && pass "fastnet-stat: $b bytes received by the engine" || fail "bytes_rx=$b"
[[ -z $(kernel_flows 7000) ]] && pass "no kernel socket for the echo flow" || fail "kernel sockets: $(kernel_flows 7000)"
kill $EP; wait $EP 2>/dev/null

# 3. Preloaded clients against kernel servers in the client namespace.
ip netns exec "$TB_NS_CLI" "$PY" "$S/tests/interpose/peer.py" "$TB_IP_CLI" 7100 > "$TMP/peer.out" 2>&1 &
PIDS+=($!)
wait_listen "$TB_NS_CLI" 7101
(sleep 6; echo "held") | ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" socat - "TCP:$TB_IP_CLI:7101" > "$TMP/socat.out" 2> "$TMP/socat.err" &
SP=$!
# Until the connection shows (a new engine's bind may wait for the queue to be released
# by the processes before it).
for i in $(seq 100); do
  sport=$(cli ss -Htan "sport = :7101" | awk '$1 == "ESTAB" {split($5, a, ":"); print a[2]}' | head -1)
  [[ -n $sport ]] && break
  sleep 0.05
done
[[ -n $sport && $sport -ge 40000 && $sport -lt 56384 ]] && pass "the preloaded socat connected from fastnet port $sport" \
  || fail "socat source port [$sport]"
[[ -z $(kernel_flows 7101) ]] && pass "no kernel socket for the preloaded client's flow" || fail "kernel sockets: $(kernel_flows 7101)"
# The socat process of that pipeline, found by its network namespace.
for p in $(ip netns pids "$TB_NS_SRV"); do [[ $(cat /proc/$p/comm 2>/dev/null) == socat ]] && SP=$p; done
sjson=$(stat_json $SP)
[[ $(echo "$sjson" | jget conn_opened) -ge 1 ]] && pass "fastnet-stat: the preloaded socat opened its connection on the engine" \
  || fail "socat counters: $sjson"
wait $SP
[[ $(cat "$TMP/socat.out") == held ]] && pass "socat's line came back through the kernel echo server" || fail "socat got: $(cat "$TMP/socat.out") $(cat "$TMP/socat.err")"
out=$(srv env LD_PRELOAD="$LIB" "$EX/blocking_client" "$TB_IP_CLI" 7101 'blocking hello' --half-close 2>/dev/null)
[[ $out == "blocking hello" ]] && pass "the preloaded blocking_client talks to a kernel echo server" || fail "blocking_client got [$out]"

# Progress without the application: a preloaded server that accepts and then sleeps
# (no socket calls at all) still ACKs what a kernel client sends (the progress thread).
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$PY" -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7300)); s.listen(1)
c, _ = s.accept(); time.sleep(4); print(len(c.recv(1 << 20, socket.MSG_WAITALL)))' > "$TMP/idle.out" 2>&1 &
IDLE=$!; PIDS+=($IDLE)
wait_listen "$TB_NS_SRV" 7300
(head -c 60000 /dev/zero; sleep 3) | cli socat -u - "TCP:$TB_IP_SRV:7300" &
SC=$!
sleep 1.5
sendq=$(cli ss -Htn "dport = :7300" | awk '{print $3}' | head -1)
[[ $sendq == 0 ]] && pass "an idle preloaded server ACKed 60 kB it has not read (progress thread)" \
  || fail "the kernel client still has [$sendq] bytes unacknowledged"
wait $SC 2>/dev/null; wait $IDLE 2>/dev/null

# A process that exits without close(): its peer sees the connection end.
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$B/tests/interpose/exit_without_close" "$TB_IP_CLI" 7103 \
  || fail "exit_without_close could not connect"
sleep 0.5
left=$(cli ss -Htan "sport = :7103" | grep -c ESTAB)
[[ $left == 0 ]] && pass "exit() without close() ends the connection at the peer" || fail "$left connection(s) left open at the peer"

# 4. A pre-fork server (nginx, 2 workers, run as root here): the workers inherit the
#    listener and adopt it on their own engines (tests/apps/nginx_workers.sh goes further).
if command -v nginx > /dev/null; then
  cat > "$TMP/nginx.conf" <<NG
worker_processes 2;
daemon off;
error_log $TMP/nginx.err;
pid $TMP/nginx.pid;
events { worker_connections 256; }
http { access_log off; server { listen 8081; location / { return 200 "nginx says hi\n"; } } }
NG
  ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" nginx -c "$TMP/nginx.conf" > /dev/null 2>&1 &
  NP=$!; PIDS+=($NP)
  wait_listen "$TB_NS_SRV" 8081
  n=0; for i in $(seq 10); do cli curl -s -m 3 "http://$TB_IP_SRV:8081/" | grep -q "nginx says hi" && n=$((n+1)); done
  [[ $n == 10 ]] && pass "nginx with 2 forked workers answers" || fail "nginx answered $n/10"
  kill $NP; wait $NP 2>/dev/null
else
  echo "skip: nginx not installed"
fi

# FASTNET_ZEROCOPY=on on a veth (no zero-copy there): one line, the kernel serves the
# program; with FASTNET_STRICT=1 the process ends with status 1 instead.
out=$(srv env LD_PRELOAD="$LIB" FASTNET_ZEROCOPY=on "$EX/blocking_client" "$TB_IP_CLI" 7101 zc --half-close 2> "$TMP/zc.err")
[[ $out == zc && $(wc -l < "$TMP/zc.err") == 1 ]] && grep -q "cannot start.*zero-copy" "$TMP/zc.err" \
  && pass "FASTNET_ZEROCOPY=on without driver support: one line, then the kernel" || fail "zero-copy fallback: [$out] $(cat "$TMP/zc.err")"
srv env LD_PRELOAD="$LIB" FASTNET_ZEROCOPY=on FASTNET_STRICT=1 "$EX/blocking_client" "$TB_IP_CLI" 7101 zc > "$TMP/zc.out" 2>&1
rc=$?
[[ $rc == 1 ]] && grep -q "exiting because FASTNET_STRICT=1" "$TMP/zc.out" \
  && pass "FASTNET_ZEROCOPY=on with FASTNET_STRICT=1: exit status 1" || fail "strict zero-copy: rc=$rc $(cat "$TMP/zc.out")"

# 5. The libc contract of accelerated sockets (errors, blocking, epoll/poll/select).
srv env LD_PRELOAD="$LIB" FASTNET_TEST_PEER="$TB_IP_CLI" FASTNET_TEST_LOCAL="$TB_IP_SRV" \
  FASTNET_TEST_BASE=7100 FASTNET_TEST_CLI_NS="$TB_NS_CLI" FASTNET_TEST_STAT="$STAT" \
  "$B/tests/interpose/interpose_accel_test" \
  > "$TMP/accel.out" 2>&1 && pass "accelerated libc contract ($(grep -o 'All tests passed.*' "$TMP/accel.out"))" \
  || { cat "$TMP/accel.out" >&2; fail "accelerated libc contract"; }

# 6. Socket options: rejected calls fail as on the kernel and leave the socket on
#    fastnet; TCP_INFO in today's layout (tests/interpose/sockopt_test.cpp).
srv env LD_PRELOAD="$LIB" FASTNET_TEST_PEER="$TB_IP_CLI" FASTNET_TEST_LOCAL="$TB_IP_SRV" \
  FASTNET_TEST_BASE=7100 FASTNET_TEST_CLI_NS="$TB_NS_CLI" FASTNET_TEST_STAT="$STAT" \
  "$B/tests/interpose/interpose_sockopt_test" \
  > "$TMP/sockopt.out" 2>&1 && pass "socket options ($(grep -o 'All tests passed.*' "$TMP/sockopt.out"))" \
  || { cat "$TMP/sockopt.out" >&2; fail "socket options"; }

if [[ $failures -ne 0 ]]; then echo "$failures failure(s)" >&2; exit 1; fi
echo "all passed"
