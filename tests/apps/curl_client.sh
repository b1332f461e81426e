#!/usr/bin/env bash
# A preloaded curl in the server namespace fetches from a kernel nginx in the client
# namespace: the files arrive intact, the flow was opened by the engine (curl's own
# counters, read while the rate-limited download runs; its source port in fastnet's
# active-open range at the kernel server) and the fastnet side had no kernel socket.
# Usage: curl_client.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need nginx curl

PORT=8090
# The server paces the big file (2 MB/s) so the preloaded curl lives long enough to be
# read from outside: its counters disappear with it.
nginx_conf "$TMP/ng" $PORT "limit_rate 2m;"
head -c 4194304 /dev/urandom > "$TMP/ng/www/big.bin"
echo "small $RANDOM" > "$TMP/ng/www/small.txt"
ip netns exec "$TB_NS_CLI" nginx -c "$TMP/ng/nginx.conf" -p "$TMP/ng" > "$TMP/nginx.out" 2>&1 &
PIDS+=($!)
wait_listen "$TB_NS_CLI" $PORT || finish

# Small file, several times (each a short-lived preloaded process).
n=0
for i in 1 2 3; do
  [[ $(srv env LD_PRELOAD="$LIB" timeout 10 curl -sf --max-time 5 "http://$TB_IP_CLI:$PORT/small.txt") \
     == "$(cat "$TMP/ng/www/small.txt")" ]] && n=$((n + 1))
done
[[ $n == 3 ]] && pass "the preloaded curl fetched a small file 3 times" || fail "small file: $n/3"

# The big file, watched while it runs.
sampler_start
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" curl -sf --max-time 15 \
  -o "$TMP/got.bin" "http://$TB_IP_CLI:$PORT/big.bin" 2> "$TMP/curl.err" &
CP=$!
best=; sport=
for _ in $(seq 150); do
  kill -0 $CP 2>/dev/null || break
  j=$(stat_json $CP)
  [[ $(jget bytes_rx <<< "$j") -gt 1000000 ]] 2>/dev/null && best=$j
  [[ -z $sport ]] && sport=$(cli ss -Htn "sport = :$PORT" | awk '{split($5, a, ":"); print a[2]}' | head -1)
  sleep 0.1
done
wait $CP; rc=$?
sampler_stop
[[ $rc == 0 && $(sha256sum < "$TMP/got.bin") == "$(sha256sum < "$TMP/ng/www/big.bin")" ]] \
  && pass "4 MB fetched by the preloaded curl, sha256 identical" || fail "big file: curl rc=$rc $(cat "$TMP/curl.err")"

if [[ -z $best ]]; then
  fail "no counters of the running curl with > 1 MB received (state: $(jget state <<< "$j"))"
else
  st=$(jget state <<< "$best")
  [[ $st == accelerated* ]] && pass "the running curl: $st" || fail "the running curl is not accelerated: [$st]"
  o=$(jget conn_opened <<< "$best"); b=$(jget bytes_rx <<< "$best"); f=$(jget frames_rx <<< "$best")
  [[ $o -ge 1 ]] && pass "fastnet-stat of curl: conn_opened = $o" || fail "curl conn_opened = $o"
  pass "fastnet-stat of curl while running: $b bytes, $f frames received by the engine"
fi
[[ -n $sport && $sport -ge 40000 && $sport -lt 56384 ]] \
  && pass "the kernel server saw curl's port $sport (fastnet's active-open range 40000-56383)" \
  || fail "curl's source port at the server: [$sport]"
# The client namespace holds the server; the flow seen there is the one to check.
seen=$(awk -v p=":$PORT" '$1 == "ESTAB" && $4 ~ (p "$")' "$TMP/ss.cli" | wc -l)
bad=$(veth_kernel_flows "$TMP/ss.srv")
[[ $seen -gt 0 && -z $bad ]] && pass "$seen snapshots of the flow at the server, none on the fastnet side's kernel" \
  || fail "snapshots: seen=$seen kernel sockets on the fastnet side: [$bad]"
finish
