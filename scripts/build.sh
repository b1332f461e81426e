#!/usr/bin/env bash
# Configures (once) and builds fastnet into $BUILD_DIR (default: build/).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[[ -f $build/build.ninja ]] || meson setup "$build" "$@"
ninja -C "$build"
