#!/usr/bin/env bash
# The namespace test bed every network test runs on: a server and a client network
# namespace joined by one veth pair, addressed from 10.213.0.0/16, torn down on every exit.
# Sourced by test scripts (tb_up → test → tb_down via traps) and by with-testbed.sh; also a
# command for manual use: `testbed.sh up|down PREFIX|clean|list` (see tb_main at the end).
#
# After tb_up these are exported:
#   TB_PREFIX   unique name of this bed (fn-<pid hex>-<rand>); every name below starts with it
#   TB_NS_SRV   server namespace             TB_NS_CLI   client namespace
#   TB_IF_SRV   veth end in TB_NS_SRV        TB_IF_CLI   veth end in TB_NS_CLI
#   TB_IP_SRV   10.213.<n>.1                 TB_IP_CLI   10.213.<n>.2
#   TB_MAC_SRV  MAC of TB_IF_SRV             TB_MAC_CLI  MAC of TB_IF_CLI
#   TB_NET      10.213.<n>.0    TB_PLEN 24   TB_MTU      MTU of both veth ends
#   TB_NETEM_MODE  none | tc | relay (how tb_netem impairs; see --netem)
#   TB_TX_CLI   on | off: tx checksum offload of TB_IF_CLI (see --tx-on-client)
#   TB_NS_MID   the relay's namespace (relay mode only)
#
# tb_up options:
#   --netem-server "ARGS"   impair what the server sends (tc-netem syntax: "delay 10ms",
#                           "loss 1%", "duplicate 1%", "reorder 25% 50%", "corrupt 1%",
#                           "rate 100mbit", "limit N"); implies --netem
#   --netem-client "ARGS"   the same for what the client sends
#   --netem                 the test will call tb_netem later
#   --netem-relay           force relay mode (see below) even where sch_netem exists
#   --mtu N                 MTU of both ends (default 1500)
#   --tx-off-server         also turn tx checksum offload off on the server end
#   --tx-on-client          leave tx checksum offload on (the kernel's default, as in
#                           every container) on the client end: the kernel peer's
#                           segments reach the server end with partial checksums.
#                           Not through the relay, where offload stays off (TB_TX_CLI)
#   --queues N              N RX and N TX queues on both veth ends of a direct pair
#                           (default 1): the kernel peer's flows spread over the
#                           server end's RX queues by their hash, as a NIC's RSS does
#   --ipv6                  keep IPv6 on (default: off, so the link carries no
#                           DAD/router-solicitation frames the tests did not send)
#
# Impairment: where the kernel has sch_netem, a netem qdisc on each side's veth (mode
# "tc"). Where it does not (CONFIG_NET_SCH_NETEM unset, as on some minimal VM kernels),
# the bed puts a middle namespace between the two ends, joined by two veth pairs, and
# netem_relay.py forwards every frame between them with the same impairments (mode
# "relay"). The relay is transparent at layer 2 (ARP and MACs pass unchanged); it turns
# tx checksum offload off on the server end too. Seeded with TB_NETEM_SEED when set (the
# seed is logged); with TB_LOG_DIR set, its log (seed, per-direction counts of frames in,
# out, lost, duplicated, corrupted) is kept there as <prefix>-relay.log after teardown.
# Without --netem/--netem-* the two ends are always one direct veth pair.
#
# Tx checksum offload on the client end is off by default: a kernel sender on veth
# hands over CHECKSUM_PARTIAL frames whose TCP checksum field holds only the
# pseudo-header sum, and an AF_XDP reader on the other end sees them as they are. fastnet
# accepts those on a veth (and counts them, rx_csum_partial), so offload need not be off
# for it; the default bed keeps the kernel peer computing full checksums, as on a real
# wire, so that every other test sees only complete ones. --tx-on-client gives the
# container case: offload on, as the kernel sets it up (docs/DESIGN.md "Checksums").

# Not `set -e` here: this file is sourced into scripts with their own shell options.

TB_STATE_DIR=${TB_STATE_DIR:-/run/fastnet-testbed}
TB_CLEANUP=()          # commands tb_down evaluates first (most recent first)
_TB_UP=0

_tb_log() { echo "testbed: $*" >&2; }

tb_is_root() { [[ $(id -u) -eq 0 ]]; }

# Skips (exit 77, meson's "skipped") with a message when the bed cannot be built here.
tb_require_root() {
    if ! tb_is_root; then
        echo "SKIP: the namespace test bed needs root (network namespaces, veth, tc)" >&2
        exit 77
    fi
    local tool
    for tool in ip tc ethtool; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "SKIP: '$tool' is missing; run scripts/bootstrap.sh" >&2
            exit 77
        fi
    done
}

# Claims a /24 inside 10.213.0.0/16 that no live bed on this host uses. The claim is a
# directory (mkdir is atomic); a claim whose owner process is gone is taken over.
_tb_claim_subnet() {
    local owner=$1 start n i dir
    mkdir -p "$TB_STATE_DIR" || return 1
    start=$(( ($$ + RANDOM) % 254 ))
    for (( i = 0; i < 254; i++ )); do
        n=$(( (start + i) % 254 + 1 ))
        dir=$TB_STATE_DIR/net-$n
        if mkdir "$dir" 2>/dev/null; then
            echo "$TB_PREFIX $owner" > "$dir/owner"
            echo "$n"
            return 0
        fi
        local other_prefix other_pid
        read -r other_prefix other_pid < "$dir/owner" 2>/dev/null || continue
        if [[ -n $other_pid ]] && ! kill -0 "$other_pid" 2>/dev/null \
            && ! ip netns list 2>/dev/null | grep -q "^$other_prefix-"; then
            rm -rf "$dir"
            if mkdir "$dir" 2>/dev/null; then
                echo "$TB_PREFIX $owner" > "$dir/owner"
                echo "$n"
                return 0
            fi
        fi
    done
    _tb_log "no free 10.213.<n>.0/24 subnet (all 254 claimed under $TB_STATE_DIR)"
    return 1
}

_tb_release_subnet() {
    local prefix=$1 dir other_prefix other_pid
    for dir in "$TB_STATE_DIR"/net-*; do
        [[ -d $dir ]] || continue
        read -r other_prefix other_pid < "$dir/owner" 2>/dev/null || continue
        [[ $other_prefix == "$prefix" ]] && rm -rf "$dir"
    done
    return 0
}

_tb_side_ns() {
    case $1 in
        srv|server) echo "$TB_NS_SRV" ;;
        cli|client) echo "$TB_NS_CLI" ;;
        *) _tb_log "unknown side '$1' (srv|server|cli|client)"; return 1 ;;
    esac
}
_tb_side_if() {
    case $1 in
        srv|server) echo "$TB_IF_SRV" ;;
        cli|client) echo "$TB_IF_CLI" ;;
        *) _tb_log "unknown side '$1' (srv|server|cli|client)"; return 1 ;;
    esac
}

# Whether this kernel has sch_netem (some minimal kernels are built without it: then
# tc answers "Specified qdisc kind is unknown"). Probed once on the server's loopback.
tb_have_netem() {
    if [[ -z ${TB_HAVE_NETEM:-} ]]; then
        TB_HAVE_NETEM=0
        if tc -n "$TB_NS_SRV" qdisc add dev lo root netem delay 0ms 2>/dev/null; then
            TB_HAVE_NETEM=1
            tc -n "$TB_NS_SRV" qdisc del dev lo root 2>/dev/null || true
        fi
        export TB_HAVE_NETEM
    fi
    [[ $TB_HAVE_NETEM == 1 ]]
}

# tb_netem <srv|cli> "<netem args>": sets (or with "" / "off" removes) the impairment of
# what that side sends; may be called at any time while the bed is up. tc-netem's
# argument syntax in both modes (TB_NETEM_MODE): "tc" puts a netem qdisc on the side's
# veth; "relay" reconfigures netem_relay.py in the middle namespace and waits until it
# has taken effect. "none" (a bed without --netem on a kernel without sch_netem) fails.
tb_netem() {
    local side=$1 args=${2:-} ns ifc
    ns=$(_tb_side_ns "$side") || return 1
    ifc=$(_tb_side_if "$side") || return 1
    [[ $args == off ]] && args=""
    case ${TB_NETEM_MODE:-none} in
        relay) _tb_relay_conf "$side" "$args"; return $? ;;
        tc) ;;
        *)
            if [[ -n $args ]] && ! tb_have_netem; then
                _tb_log "cannot apply netem '$args': this kernel has no sch_netem" \
                        "(CONFIG_NET_SCH_NETEM); bring the bed up with --netem to get the relay"
                return 1
            fi ;;
    esac
    if [[ -z $args ]]; then
        tc -n "$ns" qdisc del dev "$ifc" root 2>/dev/null || true
        return 0
    fi
    # shellcheck disable=SC2086  # netem arguments are words on purpose
    if ! tc -n "$ns" qdisc replace dev "$ifc" root netem $args; then
        _tb_log "tc netem '$args' on $ifc failed"
        return 1
    fi
}

# Writes one direction's relay configuration and waits for the relay's acknowledgement.
_tb_relay_conf() {
    local side=$1 args=$2 dir=$TB_STATE_DIR/$TB_PREFIX file col gen i ack err pid
    case $side in srv|server) file=conf-srv; col=1 ;; *) file=conf-cli; col=2 ;; esac
    gen=$(( $(head -n1 "$dir/$file" 2>/dev/null || echo 0) + 1 ))
    printf '%s\n%s\n' "$gen" "$args" > "$dir/$file.tmp" && mv "$dir/$file.tmp" "$dir/$file" || return 1
    pid=$(cat "$dir/relay.pid" 2>/dev/null)
    if [[ -z $pid ]] || ! kill -HUP "$pid" 2>/dev/null; then
        _tb_log "the netem relay of $TB_PREFIX is not running (see $dir/relay.log)"
        return 1
    fi
    for (( i = 0; i < 200; i++ )); do
        ack=$(head -n1 "$dir/ack" 2>/dev/null | cut -d' ' -f"$col")
        if [[ $ack == "$gen" ]]; then
            err=$(sed -n 2p "$dir/ack")
            [[ -z $err ]] && return 0
            _tb_log "netem '$args': $err"
            return 1
        fi
        sleep 0.01
    done
    _tb_log "the netem relay did not take '$args' within 2 s (see $dir/relay.log)"
    return 1
}

# Runs a command inside one side's namespace: tb_srv cmd..., tb_cli cmd...
tb_srv() { ip netns exec "$TB_NS_SRV" "$@"; }
tb_cli() { ip netns exec "$TB_NS_CLI" "$@"; }

# tb_wait_listen <srv|cli> <tcp port> [timeout s]: waits until something listens there.
tb_wait_listen() {
    local ns port=$2 timeout=${3:-5} i
    ns=$(_tb_side_ns "$1") || return 1
    for (( i = 0; i < timeout * 20; i++ )); do
        if ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.05
    done
    _tb_log "nothing listens on tcp port $port in $ns after ${timeout}s"
    return 1
}

# Registers a command for tb_down to run before the namespaces go (e.g. killing a
# host-side process the test started).
tb_cleanup_add() { TB_CLEANUP=("$*" "${TB_CLEANUP[@]}"); }

_tb_on_signal() {
    local sig=$1
    tb_down
    trap - "$sig" EXIT
    # Re-raise so our parent sees "killed by SIG<sig>", as if nothing had been trapped.
    kill -s "$sig" "$BASHPID"
    exit $(( 128 + $(kill -l "$sig") ))
}

_tb_install_traps() {
    trap tb_down EXIT
    local sig
    for sig in INT TERM HUP; do
        # shellcheck disable=SC2064  # the signal name is fixed now on purpose
        trap "_tb_on_signal $sig" "$sig"
    done
}

# Kills every process in a namespace: TERM, up to 2 s of grace, then KILL.
_tb_kill_ns_pids() {
    local ns=$1 pids i
    pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
    [[ -z $pids ]] && return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for (( i = 0; i < 40; i++ )); do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [[ -z $pids ]] && return 0
        sleep 0.05
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for (( i = 0; i < 40; i++ )); do
        [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && return 0
        sleep 0.05
    done
    _tb_log "processes still in $ns after SIGKILL: $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    return 0
}

# Removes every namespace and link of one bed (by prefix). Safe to call on a bed that
# is half built or already gone.
_tb_destroy_prefix() {
    local prefix=$1 ns
    [[ -n $prefix ]] || return 0
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-"); do
        _tb_kill_ns_pids "$ns"
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-"); do
        # Deleting the namespace destroys the veth end inside it and with it the pair.
        ip netns del "$ns" 2>/dev/null || _tb_log "could not delete namespace $ns"
    done
    # A veth end only exists in the host namespace if setup died half-way.
    local link
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' \
                  | grep "^$prefix"); do
        ip link del "$link" 2>/dev/null || true
    done
    _tb_release_subnet "$prefix"
    if [[ -n ${TB_LOG_DIR:-} && -f $TB_STATE_DIR/$prefix/relay.log ]]; then
        mkdir -p "$TB_LOG_DIR" && cp "$TB_STATE_DIR/$prefix/relay.log" "$TB_LOG_DIR/$prefix-relay.log"
    fi
    rm -rf "${TB_STATE_DIR:?}/$prefix"
    return 0
}

# Tears the bed down: registered cleanup commands, processes in the namespaces, the
# namespaces (and so the veth pair), the subnet claim. Idempotent. Only a shell that ran
# tb_up tears down: a script that sources this file under with-testbed.sh for tb_netem
# and friends never removes its parent's bed by accident.
tb_down() {
    local cmd
    if [[ ${_TB_UP:-0} -eq 1 ]]; then
        for cmd in "${TB_CLEANUP[@]}"; do
            eval "$cmd" >/dev/null 2>&1 || true
        done
        TB_CLEANUP=()
        _tb_destroy_prefix "${TB_PREFIX:-}"
        _TB_UP=0
    fi
    return 0
}

_tb_usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

# tb_up [options]: builds the bed and exports TB_*; installs EXIT/INT/TERM/HUP traps that
# call tb_down (unless TB_NO_TRAPS=1, used by `testbed.sh up`).
tb_up() {
    local netem_srv="" netem_cli="" mtu=1500 tx_off_srv=0 tx_on_cli=0 ipv6=0 netem=0 queues=1
    while [[ $# -gt 0 ]]; do
        case $1 in
            --netem-server) netem_srv=$2; netem=1; shift 2 ;;
            --netem-client) netem_cli=$2; netem=1; shift 2 ;;
            --netem) netem=1; shift ;;
            --netem-relay) netem=2; shift ;;
            --mtu) mtu=$2; shift 2 ;;
            --tx-off-server) tx_off_srv=1; shift ;;
            --tx-on-client) tx_on_cli=1; shift ;;
            --ipv6) ipv6=1; shift ;;
            --queues) queues=$2; shift 2 ;;
            -h|--help) _tb_usage; return 2 ;;
            *) _tb_log "unknown option '$1'"; _tb_usage; return 2 ;;
        esac
    done
    if [[ ! $mtu =~ ^[0-9]+$ ]] || (( mtu < 68 || mtu > 65535 )); then
        _tb_log "--mtu must be a number in 68..65535, got '$mtu'"
        return 2
    fi
    if [[ ! $queues =~ ^[0-9]+$ ]] || (( queues < 1 || queues > 64 )); then
        _tb_log "--queues must be a number in 1..64, got '$queues'"
        return 2
    fi
    if (( queues > 1 && netem )); then
        _tb_log "--queues is for a direct veth pair; not with --netem*"
        return 2
    fi
    if [[ ${_TB_UP:-0} -eq 1 ]]; then
        _tb_log "a bed is already up in this shell ($TB_PREFIX); tb_down first"
        return 1
    fi
    tb_require_root

    # "fn-" + pid (hex, <= 6) + "-" + 4 hex + "s" stays within IFNAMSIZ-1 = 15.
    local tries
    for (( tries = 0; tries < 20; tries++ )); do
        TB_PREFIX=$(printf 'fn-%x-%04x' "$$" $(( RANDOM & 0xffff )))
        ip netns list 2>/dev/null | grep -q "^$TB_PREFIX-" || break
    done
    TB_NS_SRV=$TB_PREFIX-srv
    TB_NS_CLI=$TB_PREFIX-cli
    TB_IF_SRV=${TB_PREFIX}s
    TB_IF_CLI=${TB_PREFIX}c
    export TB_PREFIX TB_NS_SRV TB_NS_CLI TB_IF_SRV TB_IF_CLI

    [[ ${TB_NO_TRAPS:-0} == 1 ]] || _tb_install_traps
    _TB_UP=1

    local n
    n=$(_tb_claim_subnet "${TB_OWNER_PID:-$$}") || { tb_down; return 1; }
    TB_NET=10.213.$n.0
    TB_PLEN=24
    TB_IP_SRV=10.213.$n.1
    TB_IP_CLI=10.213.$n.2
    TB_MTU=$mtu
    export TB_NET TB_PLEN TB_IP_SRV TB_IP_CLI TB_MTU

    if ! _tb_build "$netem_srv" "$netem_cli" "$tx_off_srv" "$ipv6" "$netem" "$tx_on_cli"; then
        _tb_log "setup of $TB_PREFIX failed; tearing it down"
        tb_down
        return 1
    fi
    return 0
}

_tb_build() {
    local netem_srv=$1 netem_cli=$2 tx_off_srv=$3 ipv6=$4 netem=$5 tx_on_cli=${6:-0} ns
    ip netns add "$TB_NS_SRV" || return 1
    ip netns add "$TB_NS_CLI" || return 1
    unset TB_NS_MID
    TB_NETEM_MODE=none
    if [[ $netem -eq 2 ]] || { [[ $netem -eq 1 ]] && ! tb_have_netem; }; then
        TB_NETEM_MODE=relay
    elif [[ $netem -eq 1 ]]; then
        TB_NETEM_MODE=tc
    fi
    export TB_NETEM_MODE
    local nss=("$TB_NS_SRV" "$TB_NS_CLI")
    if [[ $TB_NETEM_MODE == relay ]]; then
        TB_NS_MID=$TB_PREFIX-mid
        export TB_NS_MID
        nss+=("$TB_NS_MID")
        ip netns add "$TB_NS_MID" || return 1
        # server [s] <-> [a] relay [b] <-> [c] client; a and b carry no address.
        ip link add "$TB_IF_SRV" netns "$TB_NS_SRV" mtu "$TB_MTU" type veth \
            peer name "${TB_PREFIX}a" netns "$TB_NS_MID" mtu "$TB_MTU" || return 1
        ip link add "$TB_IF_CLI" netns "$TB_NS_CLI" mtu "$TB_MTU" type veth \
            peer name "${TB_PREFIX}b" netns "$TB_NS_MID" mtu "$TB_MTU" || return 1
    else
        # Created directly inside the namespaces: nothing ever appears in the host's links.
        ip link add "$TB_IF_SRV" netns "$TB_NS_SRV" mtu "$TB_MTU" \
            numrxqueues "$queues" numtxqueues "$queues" type veth \
            peer name "$TB_IF_CLI" netns "$TB_NS_CLI" mtu "$TB_MTU" \
            numrxqueues "$queues" numtxqueues "$queues" || return 1
    fi
    for ns in "${nss[@]}"; do
        ip -n "$ns" link set lo up || return 1
        if [[ $ipv6 -eq 0 || $ns == "${TB_NS_MID:-}" ]]; then
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
                net.ipv6.conf.default.disable_ipv6=1 >/dev/null || return 1
        fi
    done
    ip -n "$TB_NS_SRV" addr add "$TB_IP_SRV/$TB_PLEN" dev "$TB_IF_SRV" || return 1
    ip -n "$TB_NS_CLI" addr add "$TB_IP_CLI/$TB_PLEN" dev "$TB_IF_CLI" || return 1
    # Through the relay a frame loses the kernel's "checksum still to do" mark, so both
    # kernels must fill checksums in (a kernel receiver drops an unfinished one).
    if [[ $tx_on_cli -eq 1 && $TB_NETEM_MODE == relay ]]; then
        _tb_log "--tx-on-client: not through the relay; tx checksum offload stays off"
        tx_on_cli=0
    fi
    TB_TX_CLI=on
    if [[ $tx_on_cli -eq 0 ]]; then
        ip netns exec "$TB_NS_CLI" ethtool -K "$TB_IF_CLI" tx off >/dev/null || return 1
        TB_TX_CLI=off
    fi
    export TB_TX_CLI
    if [[ $tx_off_srv -eq 1 || $TB_NETEM_MODE == relay ]]; then
        ip netns exec "$TB_NS_SRV" ethtool -K "$TB_IF_SRV" tx off >/dev/null || return 1
    fi
    ip -n "$TB_NS_SRV" link set "$TB_IF_SRV" up || return 1
    ip -n "$TB_NS_CLI" link set "$TB_IF_CLI" up || return 1
    if [[ $TB_NETEM_MODE == relay ]]; then
        _tb_start_relay || return 1
    fi
    if [[ -n $netem_srv ]]; then tb_netem srv "$netem_srv" || return 1; fi
    if [[ -n $netem_cli ]]; then tb_netem cli "$netem_cli" || return 1; fi

    TB_MAC_SRV=$(ip netns exec "$TB_NS_SRV" cat "/sys/class/net/$TB_IF_SRV/address") || return 1
    TB_MAC_CLI=$(ip netns exec "$TB_NS_CLI" cat "/sys/class/net/$TB_IF_CLI/address") || return 1
    export TB_MAC_SRV TB_MAC_CLI

    # The carrier comes up asynchronously; tests should not race it.
    local i state
    for (( i = 0; i < 100; i++ )); do
        state=$(ip netns exec "$TB_NS_SRV" cat "/sys/class/net/$TB_IF_SRV/operstate")
        [[ $state == up ]] && return 0
        sleep 0.02
    done
    _tb_log "$TB_IF_SRV did not come up (operstate $state)"
    return 1
}

# Starts netem_relay.py in the middle namespace, detached from this shell (a script's
# bare `wait` must not wait for it), and waits until it forwards.
_tb_start_relay() {
    local dir=$TB_STATE_DIR/$TB_PREFIX mid=$TB_NS_MID i py
    local relay
    relay=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/netem_relay.py
    py=/usr/bin/python3
    [[ -x $py ]] || py=$(command -v python3) || { _tb_log "python3 is missing"; return 1; }
    mkdir -p "$dir" || return 1
    local link
    for link in "${TB_PREFIX}a" "${TB_PREFIX}b"; do
        # Frames must reach the relay one by one, as they were sent.
        ip netns exec "$mid" ethtool -K "$link" gro off tx off >/dev/null 2>&1 || true
        ip -n "$mid" link set "$link" up || return 1
    done
    rm -f "$dir/ack"
    ( ip netns exec "$mid" setsid "$py" "$relay" "${TB_PREFIX}a" "${TB_PREFIX}b" \
          "$dir/conf-srv" "$dir/conf-cli" "$dir/ack" \
          </dev/null >"$dir/relay.log" 2>&1 & echo $! > "$dir/relay.pid" )
    for (( i = 0; i < 300; i++ )); do
        [[ -s $dir/ack ]] && return 0
        sleep 0.01
    done
    _tb_log "the netem relay did not start: $(cat "$dir/relay.log" 2>/dev/null)"
    return 1
}

# Prints the TB_* variables as shell assignments.
tb_env() {
    local v
    for v in TB_PREFIX TB_NS_SRV TB_NS_CLI TB_IF_SRV TB_IF_CLI TB_IP_SRV TB_IP_CLI \
             TB_MAC_SRV TB_MAC_CLI TB_NET TB_PLEN TB_MTU TB_NETEM_MODE TB_NS_MID TB_TX_CLI; do
        printf 'export %s=%q\n' "$v" "${!v:-}"
    done
}

# tb_run [tb_up options] -- command...: the body of with-testbed.sh.
tb_run() {
    local opts=()
    while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
    if [[ $# -eq 0 ]]; then
        _tb_log "usage: with-testbed.sh [options] -- command [args...]"
        return 2
    fi
    shift
    [[ $# -gt 0 ]] || { _tb_log "no command after --"; return 2; }
    tb_require_root
    local up_rc=0
    tb_up "${opts[@]}" || up_rc=$?
    [[ $up_rc -eq 0 ]] || return $up_rc

    # The command runs in the background in its own session so that a signal to us is
    # handled at once (bash defers traps while a foreground child runs) and its whole
    # process group can be ended. A background child would inherit SIGINT/SIGQUIT
    # ignored; give it the dispositions a foreground command would have.
    setsid env --default-signal=INT,QUIT -- "$@" &
    local pid=$!
    tb_cleanup_add "kill -0 -- -$pid && { kill -TERM -- -$pid; sleep 0.2; kill -KILL -- -$pid; }"
    local rc=0
    wait "$pid" || rc=$?
    tb_down
    return $rc
}

# Command-line use.
tb_main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        up)
            # Leaves the bed up (no traps); prints the variables for eval.
            TB_NO_TRAPS=1 TB_OWNER_PID=$PPID tb_up "$@" || return 1
            tb_env
            ;;
        down)
            tb_require_root
            [[ -n ${1:-} ]] || { _tb_log "usage: testbed.sh down <prefix>"; return 2; }
            _tb_destroy_prefix "$1"
            ;;
        list)
            ip netns list | awk '{print $1}' | grep '^fn-' || true
            ;;
        clean)
            # Removes beds whose owner process is gone (left by SIGKILL or a crash).
            tb_require_root
            local prefix pid dir
            for prefix in $(ip netns list | awk '{print $1}' | grep -o '^fn-[0-9a-f]*-[0-9a-f]*' | sort -u); do
                pid=""
                for dir in "$TB_STATE_DIR"/net-*; do
                    [[ -f $dir/owner ]] || continue
                    local p o
                    read -r p o < "$dir/owner"
                    [[ $p == "$prefix" ]] && pid=$o
                done
                if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
                    _tb_log "removing $prefix (owner ${pid:-unknown} is gone)"
                    _tb_destroy_prefix "$prefix"
                fi
            done
            ;;
        run)
            tb_run "$@"
            ;;
        *)
            _tb_usage
            echo "commands: up [opts] | down PREFIX | list | clean | run [opts] -- cmd" >&2
            return 2
            ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    tb_main "$@"
    exit $?
fi
