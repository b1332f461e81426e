#!/usr/bin/env bash
# Runs one command beside a fresh namespace test bed (testbed.sh) and tears the bed down
# afterwards, whatever happens (normal end, failure, SIGINT/SIGTERM/SIGHUP).
#
# usage: with-testbed.sh [options] -- command [args...]
#   options: --netem-server "ARGS"  --netem-client "ARGS"  --netem  --netem-relay
#            --mtu N  --tx-off-server  --tx-on-client  --queues N  --ipv6 (see testbed.sh).
#   The command runs on the host, in its own session; it enters the
#   namespaces itself: `ip netns exec "$TB_NS_SRV" ...`, `ip netns exec "$TB_NS_CLI" ...`.
#   Exit status: the command's; 77 (meson "skipped") when not root; 2 on a usage error;
#   1 when the bed could not be built.
#
# Environment given to the command:
#   TB_PREFIX    unique name of this bed; every namespace/link name starts with it
#   TB_NS_SRV    server namespace            TB_NS_CLI    client namespace
#   TB_IF_SRV    veth end in TB_NS_SRV       TB_IF_CLI    veth end in TB_NS_CLI
#   TB_IP_SRV    10.213.<n>.1 (on TB_IF_SRV) TB_IP_CLI    10.213.<n>.2 (on TB_IF_CLI)
#   TB_MAC_SRV   aa:bb:.. of TB_IF_SRV       TB_MAC_CLI   aa:bb:.. of TB_IF_CLI
#   TB_NET       10.213.<n>.0                TB_PLEN      24
#   TB_MTU       MTU of both ends
#   TB_NETEM_MODE  none | tc | relay   TB_NS_MID  the relay's namespace (relay mode)
#   TB_TX_CLI    on | off: tx checksum offload of TB_IF_CLI
#   TB_LIB       path of testbed.sh: `source "$TB_LIB"` gives tb_netem <srv|cli> "ARGS"
#                (change the impairment mid-test; needs --netem or --netem-*),
#                tb_srv/tb_cli cmd..., tb_wait_listen <side> PORT
# tx checksum offload is off on TB_IF_CLI (the kernel peer) unless --tx-on-client; IPv6
# is off unless --ipv6.
set -uo pipefail
TB_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/testbed.sh
export TB_LIB
# shellcheck source=testbed.sh
source "$TB_LIB"
tb_run "$@"
exit $?
