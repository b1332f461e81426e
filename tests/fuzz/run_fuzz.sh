#!/usr/bin/env bash
# Runs one libFuzzer harness for a bounded time on a seed corpus written into the build
# directory. Called by meson (tests/fuzz/meson.build):
#   run_fuzz.sh HARNESS SEED_WRITER WORKDIR SECONDS     or     run_fuzz.sh --skip REASON
# The seeds are the known-good frames plus every input that once found a fault.
# Any crash, sanitizer report, round-trip mismatch or hang exits 1. libFuzzer's own
# default error exit code is 77, which meson would read as "skipped": override it.
set -euo pipefail
if [[ ${1:-} == --skip ]]; then
  echo "SKIP: ${2:-fuzzing not available}"
  exit 77
fi
harness=$1 seed_writer=$2 work=$3 seconds=$4
mkdir -p "$work/seeds" "$work/corpus" "$work/artifacts"
"$seed_writer" "$work/seeds"
# Inputs that once found a fault (tests/fuzz/regressions/HARNESS/): run first, every time.
regressions=$(dirname "$0")/regressions/$(basename "$harness")
[[ -d $regressions ]] && cp "$regressions"/* "$work/seeds/"
echo "fuzz: $(basename "$harness") for ${seconds}s, corpus $work/corpus"
exec "$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$work/seeds"
