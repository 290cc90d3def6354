#!/bin/bash
# W2, domain mix (bench/README.md, "Workloads"): 10 destinations d0..d9 weighted 40/20/10/8/6/5/4/3/2/2 %, 10 sinks, per-destination concurrency 20
# Interleaved pairs Postfix, outpost, ... reported as ratios. Sourced by bench/run.sh after lib.sh.
# shellcheck source-path=SCRIPTDIR/.. source=lib_delivery.sh
. "$BENCH_DIR/lib_delivery.sh"

w2_usage() {
  cat <<EOF
usage: bench/run.sh w2 [options]
W2: one smtp-source per domain dK.example.test (K = 0..9), in parallel, messages by weight
40/20/10/8/6/5/4/3/2/2 % and the sessions split by weight (min 1 each: 7,4,2,1,...,1 for 20).
Each domain has its own smtp-sink on 127.0.0.(11+K):SINK_PORT. Postfix: transport_maps
dK.example.test=smtp:[127.0.0.(11+K)]:SINK_PORT; outpost: MX mx.dK.example.test -> that address.
Both at 20 connections per destination (Postfix default_destination_concurrency_limit,
outpost max_connections_per_destination).
EOF
  dlv_usage_common
}

w2_main() { dlv_main w2 dlv_run w2 "$@"; }
