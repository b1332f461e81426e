#!/usr/bin/env bash
# Runs netlink_test inside the server namespace of a fresh test bed: first without a
# default route, then with `default via <client>` for the [default-route] cases.
# usage: run_netlink_test.sh <path of netlink_test> [catch2 args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; shift
if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: netlink tests run on the namespace test bed, which needs root"; exit 77
fi
export BIN=$bin
exec "$here/../testbed/with-testbed.sh" -- bash -c '
set -euo pipefail
ip netns exec "$TB_NS_SRV" "$BIN" "~[default-route]" "$@"
ip -n "$TB_NS_SRV" route add default via "$TB_IP_CLI" dev "$TB_IF_SRV"
ip netns exec "$TB_NS_SRV" "$BIN" "[default-route]" "$@"
' bash "$@"
