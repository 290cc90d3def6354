#!/bin/bash
# W1, burst to a single relay (bench/README.md, "Workloads"): N x 4 KiB, 1 recipient, 20 sessions with reuse, delivered to one smtp-sink
# Interleaved pairs Postfix, outpost, ... reported as ratios. Sourced by bench/run.sh after lib.sh.
# shellcheck source-path=SCRIPTDIR/.. source=lib_delivery.sh
. "$BENCH_DIR/lib_delivery.sh"

w1_usage() {
  cat <<EOF
usage: bench/run.sh w1 [options]
W1: smtp-source -d -s 20 -m N -l 4096 -N -t rcpt@$W1_DOMAIN into the MTA, which delivers
everything to smtp-sink -c 127.0.0.1:SINK_PORT (Postfix: relayhost; outpost: MX via Unbound).
EOF
  dlv_usage_common
}

w1_main() { dlv_main w1 dlv_run w1 "$@"; }
