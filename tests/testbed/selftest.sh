#!/usr/bin/env bash
# Self-test of the test bed as a library (tb_up/tb_netem/tb_down): kernel TCP both ways
# with the bytes checked, ping both ways, the options (netem, MTU, tx checksum on/off) take
# effect, and tb_down leaves no namespace, link or subnet claim behind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed.sh
source "$here/testbed.sh"
tb_require_root
for tool in socat ping ss sha256sum; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool missing; run scripts/bootstrap.sh"; exit 77; }
done

failures=0
check() {  # check "<what>" command...
    local what=$1; shift
    if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
# Average RTT in ms of 5 pings from the client to the server ("" when none came back).
avg_rtt() {
    tb_cli ping -n -q -c 5 -i 0.05 -W 1 "$TB_IP_SRV" 2>/dev/null \
        | awk -F/ '/^rtt/ {print $5}'
}
fails() { ! "$@"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a < b)}'; }
leftovers() {  # prints anything of bed $1 still present
    { ip netns list | grep -- "$1" || true
      ip -o link show | grep -- "$1" || true
      grep -rls -- "$1" "$TB_STATE_DIR" 2>/dev/null || true; }
}

# A scratch directory per bed, removed by that bed's tb_down.
fresh_work() { work=$(mktemp -d); tb_cleanup_add "rm -rf '$work'"; }

# --- bed 1: defaults ---------------------------------------------------------------
tb_up
fresh_work
echo "bed $TB_PREFIX: $TB_NS_SRV $TB_IF_SRV $TB_IP_SRV $TB_MAC_SRV <-> $TB_NS_CLI $TB_IF_CLI $TB_IP_CLI $TB_MAC_CLI"
check "interface names fit IFNAMSIZ" test "${#TB_IF_SRV}" -le 15 -a "${#TB_IF_CLI}" -le 15
check "addresses are inside 10.213.0.0/16" bash -c "[[ $TB_IP_SRV == 10.213.* && $TB_IP_CLI == 10.213.* ]]"
check "server address is on the server veth" \
    bash -c "ip -n $TB_NS_SRV -4 -o addr show dev $TB_IF_SRV | grep -q ' $TB_IP_SRV/24 '"
check "client address is on the client veth" \
    bash -c "ip -n $TB_NS_CLI -4 -o addr show dev $TB_IF_CLI | grep -q ' $TB_IP_CLI/24 '"
check "TB_MAC_CLI is the client veth's MAC" \
    bash -c "ip -n $TB_NS_CLI link show dev $TB_IF_CLI | grep -q 'link/ether $TB_MAC_CLI '"
check "loopback is up in both namespaces" \
    bash -c "ip netns exec $TB_NS_SRV ping -c1 -W1 127.0.0.1 >/dev/null && ip netns exec $TB_NS_CLI ping -c1 -W1 127.0.0.1 >/dev/null"
check "tx checksum offload is off on the client veth" \
    bash -c "ip netns exec $TB_NS_CLI ethtool -k $TB_IF_CLI | grep -q '^tx-checksumming: off'"
check "TB_TX_CLI says off" test "$TB_TX_CLI" = off
check "the host namespace does not see the veth" bash -c "! ip -o link show | grep -q -- $TB_PREFIX"
check "client pings server" tb_cli ping -n -c 2 -i 0.2 -W 1 "$TB_IP_SRV"
check "server pings client" tb_srv ping -n -c 2 -i 0.2 -W 1 "$TB_IP_CLI"

# Kernel TCP across the bed, 4 MiB each way, bytes compared.
head -c $((4 << 20)) /dev/urandom > "$work/payload"
tb_srv socat -u TCP-LISTEN:5001,bind="$TB_IP_SRV",reuseaddr CREATE:"$work/at-server" &
tb_wait_listen srv 5001
tb_cli socat -u FILE:"$work/payload" TCP:"$TB_IP_SRV":5001
wait $!
check "client -> server TCP: 4 MiB arrive intact" cmp -s "$work/payload" "$work/at-server"

tb_srv socat -u FILE:"$work/payload" TCP-LISTEN:5002,bind="$TB_IP_SRV",reuseaddr &
tb_wait_listen srv 5002
tb_cli socat -u TCP:"$TB_IP_SRV":5002 CREATE:"$work/at-client"
wait $!
check "server -> client TCP: 4 MiB arrive intact" cmp -s "$work/payload" "$work/at-client"

# Something left running inside a namespace is killed by tb_down.
tb_srv sleep 300 &
sleeper=$!
prefix1=$TB_PREFIX
tb_down
sleep 0.2
check "a process in a namespace was ended by tb_down" bash -c "! kill -0 $sleeper 2>/dev/null"
left=$(leftovers "$prefix1")
check "nothing of $prefix1 is left after tb_down${left:+: $left}" test -z "$left"
tb_down   # idempotent
check "tb_down a second time is harmless" true

# --- netem: each mode this kernel offers ------------------------------------------------
# Delay on each side shows in the RTT, loss and duplication show in ping's counts, TCP
# stays byte-exact through loss/reordering/duplication, corruption is caught by the
# receiver's checksum, and removing the impairment restores a plain wire.
transfer_ok() {  # transfer_ok <port> <bytes>: client -> server over kernel TCP, compared
    head -c "$2" /dev/urandom > "$work/np"
    rm -f "$work/nr"
    tb_srv timeout 60 socat -u TCP-LISTEN:"$1",bind="$TB_IP_SRV",reuseaddr CREATE:"$work/nr" &
    local pid=$!
    tb_wait_listen srv "$1" || return 1
    tb_cli timeout 60 socat -u FILE:"$work/np" TCP:"$TB_IP_SRV":"$1" || return 1
    wait "$pid" || return 1
    cmp -s "$work/np" "$work/nr"
}
netem_checks() {
    local mode=$1 r out rx
    base=$(avg_rtt)
    check "[$mode] baseline RTT is small ($base ms)" lt "${base:-999}" 5
    tb_netem srv "delay 40ms"
    r=$(avg_rtt)
    check "[$mode] delay 40ms on the server side gives RTT in 40..60 ms ($r ms)" \
        bash -c "awk -v r=${r:-0} 'BEGIN {exit !(r >= 40 && r < 60)}'"
    tb_netem cli "delay 30ms"
    r=$(avg_rtt)
    check "[$mode] adding 30ms on the client side gives RTT >= 70 ms ($r ms)" ge "${r:-0}" 70
    tb_netem srv ""
    tb_netem cli "loss 100%"
    check "[$mode] loss 100% on the client side: no reply" \
        fails tb_cli ping -n -c 2 -i 0.2 -W 1 "$TB_IP_SRV"
    tb_netem cli "loss 30%"
    out=$(tb_cli ping -n -q -c 200 -i 0.005 -W 1 "$TB_IP_SRV" 2>&1 | grep 'received' || true)
    rx=$(sed -E 's/.* ([0-9]+) received.*/\1/' <<< "$out")
    check "[$mode] loss 30%: 200 pings, 100..180 answered ($rx)" \
        test "${rx:-0}" -ge 100 -a "${rx:-0}" -le 180
    tb_netem cli ""
    tb_netem srv "duplicate 100%"
    out=$(tb_cli ping -n -c 3 -i 0.2 -W 1 "$TB_IP_SRV" 2>&1 || true)
    check "[$mode] duplicate 100% on the server side: ping sees DUP! replies" \
        grep -q 'DUP!' <<< "$out"
    tb_netem srv "delay 2ms reorder 25% 50% loss 3% duplicate 2%"
    tb_netem cli "delay 1ms 500us loss 2% duplicate 2%"
    check "[$mode] 2 MiB of kernel TCP arrive intact through loss, reordering, duplication" \
        transfer_ok 5003 $((2 << 20))
    tb_netem srv ""
    tb_netem cli "corrupt 10%"
    local before after
    before=$(tb_srv nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ {print $2}')
    check "[$mode] 1 MiB arrives intact through 10% corruption" transfer_ok 5004 $((1 << 20))
    after=$(tb_srv nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ {print $2}')
    check "[$mode] ... and the server counted bad checksums (${before:-?} -> ${after:-?})" \
        test "${after:-0}" -gt "${before:-0}"
    tb_netem srv off
    tb_netem cli ""
    r=$(avg_rtt)
    check "[$mode] impairment off on both sides: RTT small again ($r ms)" lt "${r:-999}" 5
    check "[$mode] a bad netem argument is refused" fails tb_netem srv "bogus 1%"
}

check "without --netem on a kernel without sch_netem, tb_netem says why" \
    bash -c "source '$here/testbed.sh'; tb_have_netem && exit 0; tb_up; ! tb_netem srv 'delay 1ms'"
modes=(relay)
tb_up && { tb_have_netem && modes+=(tc); tb_down; }
for mode in "${modes[@]}"; do
    if [[ $mode == relay ]]; then tb_up --netem-relay; else tb_up --netem; fi
    fresh_work
    check "[$mode] TB_NETEM_MODE is $mode" test "$TB_NETEM_MODE" = "$mode"
    if [[ $mode == relay ]]; then
        check "[relay] the relay runs in $TB_NS_MID" test -n "$(ip netns pids "$TB_NS_MID")"
        check "[relay] TB_MAC_CLI is still the client's MAC, as the server's ARP sees it" \
            bash -c "ip netns exec $TB_NS_SRV ping -c1 -W1 $TB_IP_CLI >/dev/null &&
                     ip -n $TB_NS_SRV neigh show $TB_IP_CLI | grep -q 'lladdr $TB_MAC_CLI '"
    fi
    netem_checks "$mode"
    p=$TB_PREFIX
    tb_down
    left=$(leftovers "$p")
    check "[$mode] nothing of $p is left after tb_down${left:+: $left}" test -z "$left"
done
if [[ ! " ${modes[*]} " =~ " tc " ]]; then
    echo "note - this kernel has no sch_netem: impairment is tested through the relay only"
fi

# --- bed 2: options at tb_up -----------------------------------------------------------
tb_up --mtu 1400 --tx-off-server --netem-server "delay 25ms"
check "--mtu 1400 sets the server veth's MTU" \
    bash -c "ip -n $TB_NS_SRV link show dev $TB_IF_SRV | grep -q 'mtu 1400 '"
check "--mtu 1400 sets the client veth's MTU" \
    bash -c "ip -n $TB_NS_CLI link show dev $TB_IF_CLI | grep -q 'mtu 1400 '"
check "a 1400-byte IP packet passes unfragmented" tb_cli ping -n -c 1 -W 1 -M do -s 1372 "$TB_IP_SRV"
check "a 1401-byte IP packet does not" bash -c "! ip netns exec $TB_NS_CLI ping -n -c 1 -W 1 -M do -s 1373 $TB_IP_SRV >/dev/null 2>&1"
r=$(avg_rtt)
check "--netem-server delay 25ms gives RTT >= 25 ms ($r ms)" ge "${r:-0}" 25
check "--tx-off-server turns offload off on the server veth" \
    bash -c "ip netns exec $TB_NS_SRV ethtool -k $TB_IF_SRV | grep -q '^tx-checksumming: off'"
prefix2=$TB_PREFIX
check "a second bed gets a new name" test "$prefix1" != "$prefix2"
tb_down
left=$(leftovers "$prefix2")
check "nothing of $prefix2 is left after tb_down${left:+: $left}" test -z "$left"

# --- bed 3: the kernel peer keeps tx checksum offload (containers) -----------------
tb_up --tx-on-client
fresh_work
check "--tx-on-client leaves offload on on the client veth" \
    bash -c "ip netns exec $TB_NS_CLI ethtool -k $TB_IF_CLI | grep -q '^tx-checksumming: on'"
check "TB_TX_CLI says on" test "$TB_TX_CLI" = on
head -c $((1 << 20)) /dev/urandom > "$work/payload"
tb_srv socat -u TCP-LISTEN:5003,bind="$TB_IP_SRV",reuseaddr CREATE:"$work/at-server" &
tb_wait_listen srv 5003
tb_cli socat -u FILE:"$work/payload" TCP:"$TB_IP_SRV":5003
wait $!
check "--tx-on-client: kernel TCP client -> server, 1 MiB intact" cmp -s "$work/payload" "$work/at-server"
prefix3=$TB_PREFIX
tb_down
left=$(leftovers "$prefix3")
check "nothing of $prefix3 is left after tb_down${left:+: $left}" test -z "$left"

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
