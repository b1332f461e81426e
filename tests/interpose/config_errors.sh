#!/usr/bin/env bash
# FASTNET_* validation: an invalid value is exactly one stderr line naming the variable
# and the accepted values, and the program still runs on the kernel; FASTNET_STRICT=1
# makes the same mistake (or fastnet being unable to start) end the process with status 1.
# Usage: config_errors.sh <build-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"

cases=(
  "FASTNET_ZEROCOPY=maybe|accepted: auto, on, off"
  "FASTNET_TX_CHECKSUM=hardware|accepted: auto, software"
  "FASTNET_LOG=loud|accepted: error, warn, info, debug"
  "FASTNET_STRICT=yes|accepted: 0, 1"
  "FASTNET_DISABLE=true|accepted: 0, 1"
  "FASTNET_SNDBUF=12q|accepted: bytes from 4096 to 64m"
  "FASTNET_RCVBUF=100|accepted: bytes from 4096 to 64m"
  "FASTNET_SNDBUF_MAX=5g|accepted: bytes from 4096 to 1024m"
  "FASTNET_RCVBUF_MAX=100|accepted: bytes from 4096 to 1024m"
  "FASTNET_PORT_BASE=80|accepted: a port from 1024 to 65535"
  "FASTNET_PORT_COUNT=0|accepted: a count from 1 to 65535"
  "FASTNET_UMEM_FRAMES=1000|accepted: a power of two"
  "FASTNET_QUEUES=0|accepted: all, or a count of RX queues"
  "FASTNET_PROFILE=fast|accepted: default, latency, throughput"
  "FASTNET_SPIN_US=1e3|accepted: microseconds from 0 to 1000000"
  "FASTNET_IFACE=this-name-is-too-long|accepted: an interface name"
)
for c in "${cases[@]}"; do
  setting=${c%%|*}; expect=${c#*|}; var=${setting%%=*}; val=${setting#*=}
  # The program (an echo over loopback) must still work, on the kernel.
  start env LD_PRELOAD="$LIB" "$setting" "$EX/epoll_echo" 19101 127.0.0.1 > /dev/null 2> "$TMP/err"
  wait_port 19101
  out=$("$EX/blocking_client" 127.0.0.1 19101 ping --half-close)
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null
  check_eq "$setting: the program still works" "ping" "$out"
  lines=$(wc -l < "$TMP/err")
  check_eq "$setting: exactly one stderr line" 1 "$lines" || cat "$TMP/err" >&2
  if grep -q "$var=\"$val\" is not valid ($expect" "$TMP/err"; then pass "$setting: the line names variable, value and accepted values"
  else fail "$setting: unexpected message: $(cat "$TMP/err")"; fi

  # Strict: one line, exit status 1, before main() runs. (FASTNET_STRICT's own bad
  # value cannot ask for strictness.)
  [[ $var == FASTNET_STRICT ]] && continue
  env LD_PRELOAD="$LIB" FASTNET_STRICT=1 "$setting" "$EX/epoll_echo" 19102 127.0.0.1 > "$TMP/out" 2> "$TMP/err"
  rc=$?
  check_eq "$setting with FASTNET_STRICT=1: exit status" 1 "$rc"
  check_eq "$setting with FASTNET_STRICT=1: main() never ran" "" "$(cat "$TMP/out")"
  check_eq "$setting with FASTNET_STRICT=1: one stderr line" 1 "$(wc -l < "$TMP/err")"
done

# Cannot start (this namespace has no interface): one line, kernel sockets; strict: exit 1.
start env LD_PRELOAD="$LIB" "$EX/epoll_echo" 19103 127.0.0.1 > /dev/null 2> "$TMP/err"
wait_port 19103
out=$("$EX/blocking_client" 127.0.0.1 19103 pong --half-close)
check_eq "without an interface the program runs on the kernel" "pong" "$out"
check_eq "without an interface: one stderr line" 1 "$(wc -l < "$TMP/err")"
grep -q "cannot start" "$TMP/err" && pass "the line says fastnet cannot start" || fail "message: $(cat "$TMP/err")"
env LD_PRELOAD="$LIB" FASTNET_STRICT=1 "$EX/epoll_echo" 19104 127.0.0.1 > "$TMP/out" 2> "$TMP/err"
check_eq "FASTNET_STRICT=1 without an interface: exit status" 1 "$?"
check_eq "FASTNET_STRICT=1 without an interface: nothing listened" "" "$(cat "$TMP/out")"

# FASTNET_DISABLE=1: silent, and nothing in /dev/shm.
env LD_PRELOAD="$LIB" FASTNET_DISABLE=1 "$PY" -c 'import socket; socket.socket()' 2> "$TMP/err"
check_eq "FASTNET_DISABLE=1 is silent" "" "$(cat "$TMP/err")"

finish
