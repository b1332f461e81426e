#!/usr/bin/env bash
# Interop cases: fastnet (tools/fastnet-peer, server namespace, AF_XDP) against the Linux
# kernel (tests/interop/kpeer.py, client namespace). Run inside a bed:
#   with-testbed.sh [--netem-client ARGS] -- cases.sh PEER_BINARY CASE [ARGS]
# Every case also checks that a kernel TCP service on another port of the same interface
# keeps answering, and that neither side is left with connection state.
set -uo pipefail
peer_bin=$1 case=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
kpeer=$here/kpeer.py
work=$(mktemp -d /tmp/fastnet-interop.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
srv() { ip netns exec "$TB_NS_SRV" "$@"; }
cli() { ip netns exec "$TB_NS_CLI" "$@"; }
fpeer() { srv "$peer_bin" --iface "$TB_IF_SRV" --msl 0.5 --stats "$@"; }
port=5001
kport=8099   # the kernel service that must keep working beside fastnet

# A kernel echo service in the server namespace, probed from the client.
start_kernel_service() {
    srv python3 "$kpeer" server --port $kport --echo --conns 1000000 --timeout 600 \
        > "$work/ksvc.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do srv ss -ltn | grep -q ":$kport " && return 0; sleep 0.1; done
    fail "kernel service did not start"
}
check_kernel_service() {
    # Three tries: under the lossy cases' netem a kernel handshake alone can take longer
    # than one try's 4 s (SYN retransmitted after 1 s and 3 s).
    local got try
    for try in 1 2 3; do
        got=$(cli timeout 5 python3 "$kpeer" client --connect "$TB_IP_SRV:$kport" --request 100 --timeout 4 2>&1) && return 0
    done
    fail "kernel service on port $kport stopped answering while fastnet ran (3 tries): $got"
}

# Starts fastnet-peer in the background; its output goes to $work/fastnet.out.
start_fastnet() {
    "$@" > "$work/fastnet.out" 2> "$work/fastnet.err" &
    fastnet_pid=$!
    pids+=($fastnet_pid)
}
wait_fastnet_listen() {
    for _ in $(seq 100); do grep -q '^listening' "$work/fastnet.out" 2>/dev/null && return 0; sleep 0.05; done
    cat "$work/fastnet.err" >&2
    fail "fastnet-peer did not start listening"
}
# Waits for fastnet-peer, fails unless it exited 0 with no TCB left.
finish_fastnet() {
    wait "$fastnet_pid"; local rc=$?
    cat "$work/fastnet.out"
    [[ $rc -eq 0 ]] || { cat "$work/fastnet.err" >&2; fail "fastnet-peer exited with $rc"; }
    grep -q 'live_tcbs=0' "$work/fastnet.out" || fail "fastnet left TCBs behind"
    grep -Eq 'frames_rx=[1-9]' "$work/fastnet.out" || fail "no frame went through fastnet"
}
# No kernel TCP socket of the client namespace may still be connected to fastnet's side
# (TIME-WAIT is the kernel's own choice after closing first; anything else is a leak).
check_kernel_clean() {
    local left
    for _ in $(seq 40); do
        left=$(cli ss -tanH "( dport = :$port or sport = :$port )" | grep -v TIME-WAIT)
        [[ -z $left ]] && return 0
        sleep 0.1
    done
    fail "kernel sockets left behind: $left"
}
# fastnet's own flows must not exist as kernel sockets in the server namespace.
check_no_kernel_flow() {
    local left
    left=$(srv ss -tanH "( sport = :$port or dport = :$port )" | grep -v LISTEN)
    [[ -z $left ]] || fail "a kernel socket carries fastnet's flow: $left"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

bulk() {   # bulk SIZE_MIB: both directions at once, fastnet server then fastnet client
    local mib=$1
    head -c $((mib << 20)) /dev/urandom > "$work/up"
    head -c $((mib << 20)) /dev/urandom > "$work/down"
    start_kernel_service

    start_fastnet fpeer server --port $port --send "$work/down" --recv "$work/up.got" --timeout 240
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --send "$work/up" \
        --recv "$work/down.got" --timeout 240 || fail "kernel client failed"
    check_no_kernel_flow
    finish_fastnet
    [[ $(sha "$work/up") == $(sha "$work/up.got") ]] || fail "kernel→fastnet bytes differ (sha256)"
    [[ $(sha "$work/down") == $(sha "$work/down.got") ]] || fail "fastnet→kernel bytes differ (sha256)"
    echo "ok: fastnet server, $mib MiB each way, sha256 $(sha "$work/up" | cut -c1-16) / $(sha "$work/down" | cut -c1-16)"
    check_kernel_service
    check_kernel_clean

    rm -f "$work"/*.got
    cli python3 "$kpeer" server --port $port --send "$work/down" --recv "$work/up.got" --timeout 240 \
        > "$work/kserver.out" 2>&1 &
    local kpid=$!; pids+=($kpid)
    for _ in $(seq 50); do cli ss -ltn | grep -q ":$port " && break; sleep 0.1; done
    start_fastnet fpeer client --connect "$TB_IP_CLI:$port" --send "$work/up" --recv "$work/down.got" --timeout 240
    finish_fastnet
    wait $kpid || { cat "$work/kserver.out"; fail "kernel server failed"; }
    [[ $(sha "$work/up") == $(sha "$work/up.got") ]] || fail "fastnet→kernel bytes differ (sha256)"
    [[ $(sha "$work/down") == $(sha "$work/down.got") ]] || fail "kernel→fastnet bytes differ (sha256)"
    echo "ok: fastnet client, $mib MiB each way"
    check_kernel_service
    check_kernel_clean
}

# throughput MIB: one-way transfers over the bed's delay, fastnet against the kernel,
# each direction timed (best of 3, by the kernel client, connect to EOF) beside the
# same transfer kernel-to-kernel on the same bed. fastnet must reach 0.8x the kernel's
# rate, and its buffer autotuning must have run (its counters).
throughput() {
    local mib=$1 kp=5002 dir try secs best fbest kbest
    head -c $((mib << 20)) /dev/urandom > "$work/data"
    local want; want=$(sha "$work/data")
    timed_client() {   # timed_client PORT ARGS...: prints the client's seconds
        local p=$1; shift
        local out; out=$(cli python3 "$kpeer" client --connect "$TB_IP_SRV:$p" --timeout 120 "$@") ||
            fail "kernel client failed: $out"
        sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<< "$out"
    }
    for dir in up down; do
        fbest=999999 kbest=999999
        for try in 1 2 3; do
            rm -f "$work/got"
            # kernel to kernel
            if [[ $dir == up ]]; then
                srv python3 "$kpeer" server --port $kp --recv "$work/got" --timeout 120 > "$work/ks.out" 2>&1 &
            else
                srv python3 "$kpeer" server --port $kp --send "$work/data" --timeout 120 > "$work/ks.out" 2>&1 &
            fi
            local kpid=$!; pids+=($kpid)
            for _ in $(seq 50); do srv ss -ltn | grep -q ":$kp " && break; sleep 0.1; done
            if [[ $dir == up ]]; then secs=$(timed_client $kp --send "$work/data")
            else secs=$(timed_client $kp --recv "$work/got"); fi
            wait $kpid || { cat "$work/ks.out"; fail "kernel server failed"; }
            [[ $(sha "$work/got") == "$want" ]] || fail "kernel-to-kernel bytes differ ($dir)"
            kbest=$(awk -v a="$kbest" -v b="$secs" 'BEGIN { print (b < a ? b : a) }')
            rm -f "$work/got"
            # fastnet
            if [[ $dir == up ]]; then
                start_fastnet fpeer server --port $port --recv "$work/got" --timeout 120
            else
                start_fastnet fpeer server --port $port --send "$work/data" --timeout 120
            fi
            wait_fastnet_listen
            if [[ $dir == up ]]; then secs=$(timed_client $port --send "$work/data")
            else secs=$(timed_client $port --recv "$work/got"); fi
            check_no_kernel_flow
            finish_fastnet
            [[ $(sha "$work/got") == "$want" ]] || fail "fastnet bytes differ ($dir)"
            if [[ $dir == up ]]; then grep -Eq 'rcvbuf_grown=[1-9]' "$work/fastnet.out" || fail "receive autotuning did not run"
            else grep -Eq 'sndbuf_grown=[1-9]' "$work/fastnet.out" || fail "send autotuning did not run"; fi
            fbest=$(awk -v a="$fbest" -v b="$secs" 'BEGIN { print (b < a ? b : a) }')
            echo "try $try, $dir: kernel-to-kernel best ${kbest}s, fastnet best ${fbest}s"
            check_kernel_clean
        done
        awk -v f="$fbest" -v k="$kbest" -v m="$mib" 'BEGIN {
            printf "%s: kernel %.0f Mbit/s, fastnet %.0f Mbit/s\n", "'$dir'", m * 8 * 1.048576 / k, m * 8 * 1.048576 / f
            exit !(f * 0.8 <= k) }' ||
            fail "fastnet ($dir) below 0.8x the kernel-to-kernel rate"
    done
}

options() {   # the kernel sees the options fastnet negotiated (its TCP_INFO)
    head -c $((8 << 20)) /dev/urandom > "$work/down"
    start_fastnet fpeer server --port $port --send "$work/down" --timeout 60
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --recv "$work/down.got" --info \
        --hold 1 --timeout 60 > "$work/kclient.out" &
    local kc=$!; pids+=($kc)
    wait $kc || fail "kernel client failed"
    finish_fastnet
    local info; info=$(grep '^tcp_info' "$work/kclient.out")
    echo "kernel view: $info"
    [[ $info == *ts=1* ]] || fail "timestamps not negotiated"
    [[ $info == *sack=1* ]] || fail "SACK not negotiated"
    [[ $info =~ wscale=[0-9]+,[0-9]+ && $info != *wscale=-1* ]] || fail "window scaling not negotiated"
    [[ $info == *snd_mss=1448* ]] || fail "unexpected MSS (1460 less 12 bytes of timestamps)"
    [[ $(sha "$work/down") == $(sha "$work/down.got") ]] || fail "bytes differ"
    check_kernel_clean
}

short() {   # short SEQUENTIAL CONCURRENT: short connections both ways
    local seq=$1 conc=$2
    start_kernel_service
    start_fastnet fpeer server --port $port --echo --conns $((seq + conc)) --timeout 120
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --request 64 --conns "$seq" --timeout 20 ||
        fail "sequential kernel clients failed"
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --request 64 --conns "$conc" \
        --parallel "$conc" --timeout 20 || fail "concurrent kernel clients failed"
    finish_fastnet
    check_kernel_clean

    cli python3 "$kpeer" server --port $port --echo --conns $((seq + conc)) --timeout 120 > "$work/ks.out" 2>&1 &
    local kpid=$!; pids+=($kpid)
    for _ in $(seq 50); do cli ss -ltn | grep -q ":$port " && break; sleep 0.1; done
    start_fastnet fpeer client --connect "$TB_IP_CLI:$port" --request 64 --conns "$seq" --timeout 60
    finish_fastnet
    start_fastnet fpeer client --connect "$TB_IP_CLI:$port" --request 64 --conns "$conc" --parallel "$conc" --timeout 60
    finish_fastnet
    wait $kpid || { cat "$work/ks.out"; fail "kernel echo server failed"; }
    check_kernel_service
    check_kernel_clean
}

closes() {   # who closes first, and aborts: no state left anywhere
    head -c 100000 /dev/urandom > "$work/small"
    start_kernel_service
    # fastnet closes first: it sends, the kernel reads to EOF.
    start_fastnet fpeer server --port $port --send "$work/small" --timeout 20
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --recv "$work/a.got" --timeout 10 || fail "fastnet-first close"
    finish_fastnet; check_kernel_clean
    # the kernel closes first: it sends, fastnet reads to EOF.
    start_fastnet fpeer server --port $port --recv "$work/b.got" --timeout 20
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --send "$work/small" --timeout 10 || fail "kernel-first close"
    finish_fastnet; check_kernel_clean
    [[ $(sha "$work/small") == $(sha "$work/b.got") ]] || fail "bytes differ"
    # both at once: each sends and shuts down immediately (simultaneous FINs are likely).
    start_fastnet fpeer server --port $port --send "$work/small" --recv "$work/c.got" --timeout 20
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --send "$work/small" --recv "$work/d.got" --timeout 10 ||
        fail "simultaneous close"
    finish_fastnet; check_kernel_clean
    # fastnet aborts (SO_LINGER 0 → RST): the kernel sees a reset, nothing stays.
    start_fastnet fpeer server --port $port --recv "$work/e.got" --abort-after-recv --timeout 20
    wait_fastnet_listen
    cli python3 "$kpeer" client --connect "$TB_IP_SRV:$port" --send "$work/small" --timeout 10
    finish_fastnet; check_kernel_clean
    # the kernel aborts: fastnet receives an RST and frees the connection.
    start_fastnet fpeer server --port $port --send "$work/small" --conns 1 --timeout 20
    wait_fastnet_listen
    cli python3 - "$TB_IP_SRV" "$port" <<'EOF' || fail "kernel abort"
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.recv(1000)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
EOF
    wait "$fastnet_pid"
    cat "$work/fastnet.out"
    grep -q 'live_tcbs=0' "$work/fastnet.out" || fail "fastnet kept the reset connection"
    grep -Eq 'reset=[1-9]' "$work/fastnet.out" || fail "fastnet did not count the reset"
    check_kernel_clean
    check_kernel_service
}

"$case" "$@"
echo "PASS: $case $*"
