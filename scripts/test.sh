#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every meson suite, then
# the sanitizer build (ASan + UBSan) of the suites that run without a network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 1 "$@" || status=1

if [[ $# -eq 0 && ${FASTNET_SKIP_SANITIZE:-0} != 1 ]]; then
  BUILD_DIR=build-asan bash scripts/build.sh -Db_sanitize=address,undefined -Db_lundef=false
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --suite wire --suite tcp || status=1
fi
exit $status
