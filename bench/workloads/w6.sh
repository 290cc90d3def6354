#!/bin/bash
# W6, deferrals (bench/README.md, "Workloads"): W2 with d2's sink answering RCPT with 4xx; the nine others must keep their W2 rate
# Each pair runs W2 then W6 for both MTAs (Postfix first), so the W6 rate of the nine healthy
# domains is compared with their W2 rate measured in the same session and pair.
# Sourced by bench/run.sh after lib.sh.
# shellcheck source-path=SCRIPTDIR/.. source=lib_delivery.sh
. "$BENCH_DIR/lib_delivery.sh"

w6_usage() {
  cat <<EOF
usage: bench/run.sh w6 [options]
W6: per pair, W2 (Postfix, outpost) then W6 (Postfix, outpost). In W6 the sink of
$(mix_domain "$W6_BAD") (10 % of the mail) runs smtp-sink -r RCPT: every RCPT gets 4xx, so those
messages are deferred and stay queued (counted: must equal that share). Reported: each MTA's
rate for the nine healthy domains as a fraction of its W2 rate for them (target >= 0.9).
EOF
  dlv_usage_common
}

w6_main() { dlv_main w6 dlv_run "w2 w6" "$@"; }
