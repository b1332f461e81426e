# Shared by the interpose suite's shell tests: a private network namespace, the paths of
# the build, failure reporting, and cleanup of background processes on every exit path.
# Usage: source lib.sh <build-dir>   (re-executes the calling script in its own netns)

if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: needs root for a private network namespace" >&2
  exit 77
fi
if [[ -z ${FASTNET_TEST_NETNS:-} ]]; then
  export FASTNET_TEST_NETNS=1
  exec unshare --net -- bash "$0" "$@"
fi
ip link set lo up

B=$1
LIB=$B/interpose/libfastnet.so
STAT=$B/interpose/fastnet-stat
EX=$B/examples
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/fastnet-ipose.XXXXXX)
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
check_eq() {  # name expected actual
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; return 1; fi
}

# Waits until a TCP port listens on 127.0.0.1 (or ::1 with -6).
wait_port() {
  local port=$1 i
  for i in $(seq 100); do
    if ss -Htln "sport = :$port" | grep -q .; then return 0; fi
    sleep 0.05
  done
  fail "nothing listens on port $port"
  return 1
}

# Starts a background process, remembering its pid for cleanup.
start() { "$@" & PIDS+=($!); }

finish() {
  if [[ $failures -ne 0 ]]; then echo "$failures failure(s)" >&2; exit 1; fi
  echo "all passed"
}
