#!/usr/bin/env bash
# with-testbed.sh keeps its contract: the command sees the TB_* variables, its exit status
# comes back, and the bed is gone afterwards on every path: normal end, failure, and
# SIGTERM/SIGINT/SIGHUP while the command still runs (including processes it left
# running inside the namespaces). Also: 77 when not root, concurrent beds never collide.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
with=$here/with-testbed.sh
if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: the namespace test bed needs root"; exit 77
fi

failures=0
check() {
    local what=$1; shift
    if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
leftovers() {
    { ip netns list | grep -- "$1" || true
      ip -o link show | grep -- "$1" || true
      grep -rls -- "$1" /run/fastnet-testbed 2>/dev/null || true; }
}

# Exit status and environment.
"$with" -- bash -c 'for v in TB_PREFIX TB_NS_SRV TB_NS_CLI TB_IF_SRV TB_IF_CLI TB_IP_SRV \
    TB_IP_CLI TB_MAC_SRV TB_MAC_CLI TB_NET TB_PLEN TB_MTU TB_LIB; do
    [[ -n ${!v:-} ]] || { echo "missing $v"; exit 9; }; done
    echo "$TB_PREFIX" > '"$work"'/prefix; exit 42'
rc=$?
check "the command's exit status (42) comes back" test "$rc" -eq 42
p=$(cat "$work/prefix" 2>/dev/null)
check "the command saw every TB_* variable" test -n "$p"
left=$(leftovers "${p:-none}")
check "nothing left after a normal end${left:+: $left}" test -z "$left"

"$with" -- true
check "a successful command gives 0" test $? -eq 0

"$with" --no-such-option -- true 2>/dev/null
check "an unknown option is a usage error (2)" test $? -eq 2

# A sourced helper script can change netem mid-test; a missing sch_netem is reported.
"$with" -- bash -c 'source "$TB_LIB"; tb_srv true && tb_cli true'
check "tb_srv/tb_cli work from a script that sources \$TB_LIB" test $? -eq 0

# Not root: skip, with a message, and no bed. (Only where nobody can reach the script: a
# checkout under a private directory, such as one made by mktemp -d, cannot be run by it.)
if id nobody >/dev/null 2>&1 &&
   setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$with" 2>/dev/null; then
    msg=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$with" -- true 2>&1)
    rc=$?
    check "not root: exit 77" test "$rc" -eq 77
    check "not root: says why ($msg)" bash -c "grep -q root <<< '$msg'"
fi

# Signals while the command runs. The background job gets default handling of each
# (a non-interactive shell starts it with SIGINT ignored, and a run under nohup has
# SIGHUP ignored: a shell cannot trap a signal ignored at its start).
for run in TERM INT HUP TERM:relay; do
    sig=${run%%:*}
    opts=()
    [[ $run == *:relay ]] && opts=(--netem-relay --netem-server "delay 1ms")
    rm -f "$work/prefix"
    env --default-signal=INT,QUIT,HUP,TERM "$with" "${opts[@]}" -- bash -c '
        echo "$TB_PREFIX" > '"$work"'/prefix
        ip netns exec "$TB_NS_SRV" sleep 31.7 &
        ip netns exec "$TB_NS_CLI" sleep 31.7 &
        sleep 31.7' &
    pid=$!
    for (( i = 0; i < 100; i++ )); do [[ -s $work/prefix ]] && break; sleep 0.05; done
    p=$(cat "$work/prefix" 2>/dev/null)
    sig=$run
    check "SIG$sig: the bed came up" test -n "$p"
    check "SIG$sig: its namespaces exist while the command runs" \
        bash -c "ip netns list | grep -q -- '${p:-none}-srv'"
    sleep 0.2
    start=$SECONDS
    kill -s "${sig%%:*}" "$pid"
    wait "$pid"
    rc=$?
    check "SIG$sig: with-testbed.sh ends at once ($((SECONDS - start)) s), by the signal (rc $rc)" \
        test $((SECONDS - start)) -lt 5 -a "$rc" -eq $((128 + $(kill -l "${sig%%:*}")))
    left=$(leftovers "${p:-none}")
    check "SIG$sig: nothing left${left:+: $left}" test -z "$left"
done
sleep 0.2
check "no 'sleep 31.7' of ours survived" bash -c '! pgrep -f "^sleep 31.7$" >/dev/null'

# Concurrent beds get different names and subnets.
for i in 1 2 3; do
    "$with" -- bash -c "echo \$TB_PREFIX \$TB_NET > $work/c$i; sleep 1" &
done
wait
check "three concurrent beds: three names" test "$(cut -d' ' -f1 "$work"/c? | sort -u | wc -l)" -eq 3
check "three concurrent beds: three subnets" test "$(cut -d' ' -f2 "$work"/c? | sort -u | wc -l)" -eq 3
for f in "$work"/c?; do
    p=$(cut -d' ' -f1 "$f"); left=$(leftovers "$p")
    check "concurrent bed $p: nothing left${left:+: $left}" test -z "$left"
done

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
