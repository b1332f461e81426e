#!/usr/bin/env bash
# exec() of a preloaded program: LD_PRELOAD stays in the environment, a close-on-exec
# fastnet socket is closed before the old image goes (its kernel peer sees the FIN at
# once) and its number is gone in the new image, and the new image is accelerated again
# (its own runtime, a fresh XDP attachment) for a new connection.
# Usage: exec.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
H=$(dirname "$0")
PORT=7400
cli "$PY" "$H/exec_peer.py" peer $PORT "$TMP/peer.json" > "$TMP/peer.out" 2>&1 &
PEER=$!; PIDS+=("$PEER")
wait_listen "$TB_NS_CLI" $PORT || finish
sampler_start
start_preloaded "$TMP/app.out" "$PY" "$H/exec_peer.py" app "$TB_IP_CLI" $PORT
AP=$APP_PID
wait "$PEER"; prc=$?
sampler_stop
[[ $prc -eq 0 && -s $TMP/peer.json ]] || fail "the kernel peer failed: $(cat "$TMP/peer.out"); the program: $(tail -5 "$TMP/app.out")"
"$PY" - "$TMP/peer.json" <<'PY' || failures=$((failures + 1))
import json, sys
r = json.load(open(sys.argv[1]))
ok = True
def check(cond, msg):
    global ok
    print(("ok: " if cond else "FAIL: ") + msg)
    ok &= cond
eof = r.get("a_eof_after_s")
check(eof is not None and eof < 1.0, f"the close-on-exec socket's peer saw EOF {eof if eof is None else round(eof, 3)} s after the exec")
c = r.get("c", "")
check(c.startswith("C"), f"the new image connected and sent ({c.strip()[:80]})")
rep = json.loads(c[1:]) if c.startswith("C{") else {}
check(rep.get("a_fd_open") is False, "the close-on-exec socket's number is closed in the new image")
check(rep.get("ld_preload") is True, "LD_PRELOAD is still in the new image's environment")
sys.exit(0 if ok else 1)
PY
prove_counters "$AP" conn_opened 1 frames_tx 2
prove_no_kernel_flows $PORT "exec'd image"
finish
