#!/usr/bin/env bash
# Runs a command in a fresh, private network namespace that has only loopback, with
# libfastnet.so preloaded: fastnet finds no interface to accelerate there, so this is
# the passthrough environment, and nothing the test does can touch the host's network.
# Usage: in_netns.sh <libfastnet.so> <command> [args...]   (exit 77 = skipped: not root)
set -euo pipefail
lib=$1; shift
if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: needs root for a private network namespace" >&2
  exit 77
fi
exec unshare --net -- bash -c 'ip link set lo up && LD_PRELOAD="$0" exec "$@"' "$lib" "$@"
