#!/bin/bash
# outpost benchmark harness: side by side with Postfix, interleaved, reported as ratios.
#   bench/run.sh WORKLOAD [options]      (bench/run.sh WORKLOAD --help for its options)
# Workloads: bench/workloads/<id>.sh defines <id>_main and <id>_usage (bench/README.md, "Workloads").
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

usage() {
  echo "usage: $0 WORKLOAD [options]   (WORKLOAD --help for options)"
  echo "workloads:"
  local w
  for w in "$BENCH_DIR"/workloads/*.sh; do
    printf '  %-6s %s\n' "$(basename "$w" .sh)" "$(sed -n '2s/^# *//p' "$w")"
  done
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case $1 in -h|--help) usage; exit 0 ;; esac
wl=$1; shift
if ! [[ $wl =~ ^[a-z0-9]+$ ]] || [ ! -f "$BENCH_DIR/workloads/$wl.sh" ]; then
  usage >&2; die "unknown workload: $wl"
fi
# shellcheck source=/dev/null
. "$BENCH_DIR/workloads/$wl.sh"
"${wl}_main" "$@"
