#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libfastnet.so on loopback behave exactly as without it:
# the examples, curl against python3's http.server (IPv4 and IPv6), socat, redis.
# Usage: passthrough_apps.sh <build-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"

# 1. epoll echo server + blocking client, with and without the library.
start env LD_PRELOAD="$LIB" "$EX/epoll_echo" 19001 127.0.0.1 > /dev/null
wait_port 19001
plain=$("$EX/blocking_client" 127.0.0.1 19001 'hello, echo' --half-close)
pre=$(LD_PRELOAD="$LIB" "$EX/blocking_client" 127.0.0.1 19001 'hello, echo' --half-close 2>/dev/null)
check_eq "epoll_echo echoes to a kernel client" "hello, echo" "$plain"
check_eq "epoll_echo echoes to a preloaded client" "hello, echo" "$pre"

# 2. The example HTTP server: keep-alive (two URLs, one connection) and Connection: close.
start env LD_PRELOAD="$LIB" "$EX/http_server" 19002 > /dev/null
wait_port 19002
out=$(LD_PRELOAD="$LIB" curl -s --max-time 5 http://127.0.0.1:19002/a http://127.0.0.1:19002/b 2>/dev/null)
check_eq "http_server answers two requests on one connection" \
  "$(printf 'hello from http_server\nhello from http_server')" "$out"
out=$("$EX/blocking_client" 127.0.0.1 19002 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' | tail -1)
check_eq "http_server closes after Connection: close" "hello from http_server" "$out"

# 3. python3 -m http.server (kernel and preloaded) against preloaded curl, IPv4 and IPv6.
mkdir -p "$TMP/www"
head -c 300000 /dev/urandom > "$TMP/www/blob"
( cd "$TMP/www" && exec env LD_PRELOAD="$LIB" "$PY" -m http.server 19003 --bind 127.0.0.1 ) > /dev/null 2>&1 &
PIDS+=($!)
( cd "$TMP/www" && exec env LD_PRELOAD="$LIB" "$PY" -m http.server 19004 --bind ::1 ) > /dev/null 2>&1 &
PIDS+=($!)
wait_port 19003; wait_port 19004
LD_PRELOAD="$LIB" curl -s --max-time 10 -o "$TMP/got4" http://127.0.0.1:19003/blob 2>/dev/null
LD_PRELOAD="$LIB" curl -s --max-time 10 -o "$TMP/got6" 'http://[::1]:19004/blob' 2>/dev/null
check_eq "curl fetches 300 kB from http.server over IPv4" "$(sha1sum < "$TMP/www/blob")" "$(sha1sum < "$TMP/got4")"
check_eq "curl fetches 300 kB from http.server over IPv6" "$(sha1sum < "$TMP/www/blob")" "$(sha1sum < "$TMP/got6")"

# 4. socat: a preloaded echo listener and a preloaded client.
if command -v socat > /dev/null; then
  start env LD_PRELOAD="$LIB" socat TCP-LISTEN:19005,reuseaddr,fork,bind=127.0.0.1 PIPE 2>/dev/null
  wait_port 19005
  out=$(echo "through socat" | LD_PRELOAD="$LIB" socat -t 2 - TCP:127.0.0.1:19005 2>/dev/null)
  check_eq "socat echoes through socat" "through socat" "$out"
else
  echo "skip: socat not installed (scripts/bootstrap.sh installs it)"
fi

# 5. redis-server and redis-cli, both preloaded.
if command -v redis-server > /dev/null && command -v redis-cli > /dev/null; then
  start env LD_PRELOAD="$LIB" redis-server --port 19006 --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --dir "$TMP" > "$TMP/redis.log" 2>&1
  wait_port 19006
  LD_PRELOAD="$LIB" redis-cli -p 19006 set fastnet-key works > /dev/null 2>&1
  out=$(LD_PRELOAD="$LIB" redis-cli -p 19006 get fastnet-key 2>/dev/null)
  check_eq "redis-cli SET/GET against redis-server" "works" "$out"
else
  echo "skip: redis not installed (scripts/bootstrap.sh installs it)"
fi

# 6. The preloaded processes stayed on the kernel and counted their passthrough calls.
json=$("$STAT" --json "${PIDS[0]}")
echo "$json" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
assert d["sockets_accelerated"] == 0, d
assert d["passthrough_calls"] > 0, d
assert d["state"].startswith("kernel"), d' && pass "fastnet-stat shows a passthrough process" \
  || fail "fastnet-stat --json of the echo server: $json"

finish
