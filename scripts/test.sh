#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every meson suite, then
# the sanitizer builds: ASan + UBSan for the suites that run without a network, and
# ThreadSanitizer for the multi-threaded runtime (tests/robustness/tsan.sh: a preloaded
# server whose engine the application thread and the progress thread share;
# tests/interpose/fdref_stress.sh: threads closing, dup2()ing over, moving and using
# fastnet sockets at once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 1 "$@" || status=1

if [[ $# -eq 0 && ${FASTNET_SKIP_SANITIZE:-0} != 1 ]]; then
  # Only the programs of those suites are built with the sanitizers.
  [[ -f build-asan/build.ninja ]] ||
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=disabled
  if ninja -C build-asan tests/wire/wire_tests tests/tcp/tcp_engine_tests tests/components/test_components; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      meson test -C build-asan --no-rebuild --print-errorlogs --suite wire --suite tcp || status=1
  else
    status=1
  fi
  # Only what the TSan runs need: the library, fastnet-stat, the example server and the
  # fd-table stress program.
  log=$(mktemp)
  if { [[ -f build-tsan/build.ninja ]] || meson setup build-tsan -Db_sanitize=thread -Dfuzz=disabled; } > "$log" 2>&1 &&
     ninja -C build-tsan interpose/libfastnet.so interpose/fastnet-stat examples/epoll_echo \
       tests/interpose/interpose_fdref_stress >> "$log" 2>&1; then
    echo "=== ThreadSanitizer: tests/robustness/tsan.sh"
    bash tests/robustness/tsan.sh "$PWD/build-tsan" "$PWD" 15 || status=1
    echo "=== ThreadSanitizer: tests/interpose/fdref_stress.sh"
    bash tests/interpose/fdref_stress.sh "$PWD/build-tsan" "$PWD" 5 || status=1
  else
    tail -40 "$log"; status=1
  fi
  rm -f "$log"
fi
exit $status
