#!/usr/bin/env bash
# ThreadSanitizer run of the multi-threaded runtime: the example servers of a build made
# with -Db_sanitize=thread, preloaded with that build's libfastnet.so (the application
# thread and the progress thread share each engine), driven by a streaming client and a
# burst of short connections. Any "WARNING: ThreadSanitizer" in the servers' stderr fails.
# scripts/test.sh runs it after the other suites, on a build of its own; by hand:
#   meson setup /work/build-tsan /work/main -Db_sanitize=thread -Dfuzz=disabled
#   ninja -C /work/build-tsan interpose/libfastnet.so interpose/fastnet-stat examples/epoll_echo examples/http_server
#   tests/robustness/tsan.sh /work/build-tsan /work/main [SECONDS]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
seconds=${3:-15}
export TSAN_OPTIONS="halt_on_error=0 report_signal_unsafe=0 history_size=4"
port=7000
start_echo $port
cli $PY "$H/legit.py" --connect "$TB_IP_SRV:$port" --seconds "$seconds" --rate 2000000 > "$TMP/legit.out" 2>&1 &
LP=$!; PIDS+=($LP)
cli $PY "$H/soak_client.py" "$TB_IP_SRV" $port "$seconds" 32 > "$TMP/short.out" 2>&1
# Idle a little: only the progress thread drives the engine then.
sleep 2
wait $LP && pass "stream echoed byte-exact under TSan: $(cat "$TMP/legit.out")" || fail "stream: $(cat "$TMP/legit.out")"
grep -q 'failed=0' "$TMP/short.out" && pass "short connections: $(cat "$TMP/short.out")" || fail "short connections: $(cat "$TMP/short.out")"
if kill -0 "$SP" 2>/dev/null; then pass "server alive"
else fail "the server died under TSan; the end of its stderr:"; grep -v '^ *#' "$TMP/srv.err" | tail -15; fi
kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null
cp "$TMP/srv.err" "${TSAN_LOG:-/dev/null}" 2>/dev/null
races=$(grep -c 'WARNING: ThreadSanitizer' "$TMP/srv.err")
if [[ $races -eq 0 ]]; then pass "no ThreadSanitizer report from the preloaded epoll_echo"
else
  fail "$races ThreadSanitizer report(s) from the preloaded epoll_echo"
  grep -A30 -m3 'WARNING: ThreadSanitizer' "$TMP/srv.err" | head -120
fi
echo "summary: tsan_reports=$races"
finish
