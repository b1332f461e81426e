#!/usr/bin/env bash
# Installs every Debian package that fastnet's build, tests, demo and benchmarks use.
# Idempotent and non-interactive: runs `apt-get update` only when something is missing.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++ clang llvm libclang-rt-14-dev
  libbpf-dev libxdp-dev liburing-dev catch2 bpftool linux-libc-dev
  # test bed and tests
  iproute2 ethtool iputils-ping procps psmisc socat curl netcat-openbsd
  python3 python3-scapy hping3 tshark
  # real applications and load generators
  nginx-light redis-server redis-tools memcached libmemcached-tools wrk iperf3 sockperf
  postgresql nodejs
  # benchmarks
  gnuplot-nox linux-perf valgrind
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && { echo "bootstrap: all ${#packages[@]} packages present"; exit 0; }

if [[ $(id -u) -ne 0 ]]; then
  echo "bootstrap: missing packages (${missing[*]}) and not root; run as root" >&2
  exit 1
fi

# Servers installed here must not start as system services: the tests start
# their own instances inside network namespaces.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; own_policy=1
fi
trap '[[ $own_policy -eq 1 ]] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
echo "bootstrap: installing ${missing[*]}"
apt-get update -q
# tshark asks whether non-root users may capture; the answer does not matter here.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts these on install where it can; the tests want the ports free.
for svc in nginx redis-server memcached; do
  pkill -x "${svc%-server}" 2>/dev/null || true
done
echo "bootstrap: done"
