#!/usr/bin/env bash
# A preloaded server that runs a child process (Python's subprocess: vfork, then exec, or
# _exit when the exec fails) for every request, on a connection that stays open: the
# vfork child shares the server's memory without fork handlers, and its execve() or
# _exit() must leave the server's sockets alone. 50 requests, each answered, on fastnet.
# Usage: spawn.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
H=$(dirname "$0")
PORT=7500
start_preloaded "$TMP/srv.out" "$PY" "$H/spawner.py" $PORT
SP=$APP_PID
wait_listen "$TB_NS_SRV" $PORT || finish
sampler_start
out=$(cli "$PY" - "$TB_IP_SRV" $PORT <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = s.makefile("rb")
ok = 0
for i in range(50):
    s.sendall(b"line %d\n" % i)
    if f.readline() == b"line %d\n" % i:
        ok += 1
print(ok)
PY
)
sampler_stop
[[ $out == 50 ]] && pass "50 requests answered while the server ran 100 child processes" ||
  fail "answers: [$out]; server: $(tail -5 "$TMP/srv.out")"
prove_counters $SP conn_accepted 1 bytes_rx 400
prove_no_kernel_flows $PORT "a server that spawns children"
finish
