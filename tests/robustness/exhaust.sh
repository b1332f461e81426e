#!/usr/bin/env bash
# Exhaustion: a preloaded client under a low RLIMIT_NOFILE opens connections to a kernel
# echo server until socket()/connect() fails; the failure must be EMFILE, the process
# must survive, and after closing everything the same number of connections must open
# again (three rounds). The kernel side must see every connection closed.
# Runs itself under tests/testbed/with-testbed.sh.  Usage: exhaust.sh BUILD SOURCE [NOFILE]
set -uo pipefail
if [[ -z ${TB_NS_SRV:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for the namespace test bed"; exit 77; }
  exec "$2/tests/testbed/with-testbed.sh" -- bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
nofile=${3:-128}
kport=9000
cli $PY "$S/tests/interop/kpeer.py" server --port $kport --echo --conns 1000000 --parallel 1000 \
  --timeout 120 > "$TMP/k.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do cli ss -Htln "sport = :$kport" | grep -q . && break; sleep 0.05; done
out=$(srv bash -c "ulimit -n $nofile && exec env LD_PRELOAD='$LIB' FASTNET_IFACE='$TB_IF_SRV' \
  timeout 120 $PY '$H/exhaust_client.py' '$TB_IP_CLI' $kport '$STAT' 3" 2>"$TMP/c.err"); rc=$?
echo "$out" | head -1
[[ $rc -eq 0 ]] && pass "RLIMIT_NOFILE $nofile: connections fail with EMFILE at the same count every round" ||
  { fail "exhaustion rounds (rc $rc)"; tail -5 "$TMP/c.err"; }
echo "$out" | grep -q "state='accelerated" && pass "the client was accelerated" || fail "client not accelerated"
left=""
for _ in $(seq 50); do
  left=$(cli ss -Htn "sport = :$kport" | grep -v -E 'TIME-WAIT|LISTEN')
  [[ -z $left ]] && break; sleep 0.1
done
[[ -z $left ]] && pass "the kernel peer has no connection left" || fail "kernel peer still has: $(echo "$left" | head -3)"
finish
