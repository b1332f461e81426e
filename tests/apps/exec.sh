#!/usr/bin/env bash
# exec() of a preloaded program: LD_PRELOAD stays in the environment, a close-on-exec
# fastnet socket is closed before the old image goes (its kernel peer sees the FIN at
# once) and its number is gone in the new image, a socket without close-on-exec is
# usable in the new image (the kernel continues it: standalone, the new image cannot
# join the old one's UMEM), and the new image is accelerated again (its own runtime, a
# fresh XDP attachment) for a new connection, with no kernel socket but B's.
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
# One more snapshot: B lives from the exec to here (the new image holds it 10 s), which
# can fall between two of the sampler's.
ip netns exec "$TB_NS_SRV" ss -tanH >> "$TMP/ss.srv"
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
check(r.get("b") == "b after exec\n", f"the socket kept across exec carries the new image's bytes ({r.get('b')!r})")
open(sys.argv[1] + ".bport", "w").write(str(rep.get("b_port", 0)))
sys.exit(0 if ok else 1)
PY
prove_counters "$AP" conn_opened 1 frames_tx 2
BPORT=$(cat "$TMP/peer.json.bport" 2>/dev/null)
bad=$(veth_kernel_flows "$TMP/ss.srv" | grep -v ":${BPORT:-x} ")
[[ -n $BPORT && -z $bad ]] && pass "no kernel socket on the fastnet side but the one kept across exec (port $BPORT)" \
  || fail "kernel TCP sockets on the fastnet side: $(head -3 <<< "$bad")"
veth_kernel_flows "$TMP/ss.srv" | grep -q ":${BPORT:-x} " && pass "the kernel continues the connection kept across exec" \
  || fail "no kernel socket for the connection kept across exec"
finish
