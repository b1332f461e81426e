#!/usr/bin/env bash
# The benchmark harness: every workload of issue 8 against the same server on the kernel
# and under libfastnet.so, alternating, pinned (server CPU 1, client CPU 0), on a fresh
# namespace test bed. run.sh → (with-testbed.sh →) harness/workloads.sh → harness/report.py.
#
# usage: bash bench/run.sh [--rounds N] [--duration S] [--only w1,w2] [--out DIR] [--build DIR]
#   --rounds    kernel/fastnet pairs per workload (default 3, at least 1)
#   --duration  seconds of load per run (default 6)
#   --only      comma-separated subset of: nginx,nginx_both,redis,sockperf,sockperf_latency,
#               iperf3,memory,scale,ceiling
#   --out       result directory (default /tmp/fastnet-bench.<date>); gets report.md,
#               report.json, results.jsonl, cpu.jsonl (where the CPU went), *.png, logs/
#   --build     meson build directory holding interpose/libfastnet.so and bench/reflector
#               (default: build/ at the top of the source tree)
# BENCH_KEEP_PROF=1 keeps each workload's perf sample as OUT/prof-WORKLOAD-MODE.data
# (perf report -i FILE -C CPU) for a look past the CPU table.
# Needs root (namespaces, XDP). Exit status 0 when the report was written (failed runs are
# reported in it), 1 when nothing could be measured, 2 on a usage error, 77 when not root.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)

rounds=3 duration=6 only="" out="" build=""
usage() { sed -n '6,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=${2:-}; shift 2 || usage ;;
    --duration) duration=${2:-}; shift 2 || usage ;;
    --only) only=${2:-}; shift 2 || usage ;;
    --out) out=${2:-}; shift 2 || usage ;;
    --build) build=${2:-}; shift 2 || usage ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 50 ]] || { echo "run.sh: --rounds must be 1..50" >&2; exit 2; }
[[ $duration =~ ^[0-9]+$ && $duration -ge 1 && $duration -le 120 ]] || { echo "run.sh: --duration must be 1..120 s" >&2; exit 2; }
all=nginx,nginx_both,redis,sockperf,sockperf_latency,iperf3,memory,scale,ceiling
only=${only:-$all}
for w in ${only//,/ }; do
  [[ ,$all, == *,$w,* ]] || { echo "run.sh: unknown workload '$w' (known: $all)" >&2; exit 2; }
done
build=${build:-$src/build}
[[ -n $build && -e $build/interpose/libfastnet.so ]] || {
  echo "run.sh: no libfastnet.so; build first (meson setup BUILD $src && ninja -C BUILD) and pass --build BUILD" >&2; exit 2; }
build=$(cd "$build" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "SKIP: the benchmarks need root (namespaces, XDP)" >&2; exit 77; }
out=${out:-/tmp/fastnet-bench.$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs" || exit 1
out=$(cd "$out" && pwd)

trap 'rm -rf "$out/tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export BENCH_ROUNDS=$rounds BENCH_DURATION=$duration BENCH_ONLY=$only BENCH_OUT=$out \
       BENCH_BUILD=$build BENCH_SRC=$src
"$src/tests/testbed/with-testbed.sh" -- bash "$here/harness/workloads.sh"
rc=$?
if [[ ! -s $out/results.jsonl ]]; then
  echo "run.sh: no results (workloads exited with $rc); see $out/logs" >&2
  exit 1
fi
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
"$PY" "$here/harness/report.py" "$out" || exit 1
cat "$out/report.md"
echo "run.sh: report in $out (report.md, report.json, *.png)" >&2
exit 0
