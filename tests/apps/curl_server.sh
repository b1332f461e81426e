#!/usr/bin/env bash
# Kernel curl in the client namespace against a preloaded single-process nginx: small
# files over keep-alive, fresh connections, and a 1 MB body, each checked by sha256;
# the flows ran on the engine (counters) and never on a kernel socket (ss).
# Usage: curl_server.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need nginx curl socat

PORT=8080
nginx_conf "$TMP/ng" $PORT
head -c 1048576 /dev/urandom > "$TMP/ng/www/big.bin"
for i in $(seq 10); do echo "page $i $RANDOM" > "$TMP/ng/www/p$i.html"; done
start_preloaded "$TMP/nginx.out" nginx -c "$TMP/ng/nginx.conf" -p "$TMP/ng"
NP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish

sampler_start
# Ten pages over one keep-alive connection, in order.
urls=(); for i in $(seq 10); do urls+=("http://$TB_IP_SRV:$PORT/p$i.html"); done
got=$(cli timeout 20 curl -sf --max-time 10 "${urls[@]}" | sha256sum)
want=$(for i in $(seq 10); do cat "$TMP/ng/www/p$i.html"; done | sha256sum)
[[ $got == "$want" ]] && pass "10 pages over keep-alive, content identical" || fail "keep-alive pages differ"
# Five fresh connections.
n=0
for i in $(seq 5); do
  [[ $(cli timeout 10 curl -sf --max-time 5 -H 'Connection: close' "http://$TB_IP_SRV:$PORT/p$i.html") \
     == "$(cat "$TMP/ng/www/p$i.html")" ]] && n=$((n + 1))
done
[[ $n == 5 ]] && pass "5 requests on fresh connections answered" || fail "fresh connections: $n/5"
# The 1 MB body, three times.
for i in 1 2 3; do
  got=$(cli timeout 20 curl -sf --max-time 15 "http://$TB_IP_SRV:$PORT/big.bin" | sha256sum)
  [[ $got == "$(sha256sum < "$TMP/ng/www/big.bin")" ]] && pass "1 MB body intact (sha256), try $i" || fail "1 MB body differs, try $i"
done
# One keep-alive connection held open for a second, so the snapshots surely see a flow.
got=$( (printf 'GET /p1.html HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 1.2) | cli timeout 10 socat - "TCP:$TB_IP_SRV:$PORT")
grep -qF "$(cat "$TMP/ng/www/p1.html")" <<< "$got" && pass "a held keep-alive connection answered" || fail "held connection got [$got]"
sampler_stop

prove_counters "$NP" conn_accepted 9 frames_rx 100 frames_tx 700 bytes_tx $((3 * 1048576))
prove_no_kernel_flows $PORT "curl against preloaded nginx"
grep -qi '\[emerg\]\|\[alert\]' "$TMP/ng/error.log" && fail "nginx errors: $(cat "$TMP/ng/error.log")"
finish
