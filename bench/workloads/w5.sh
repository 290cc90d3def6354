#!/bin/bash
# W5, slow receiver (bench/README.md, "W5"): one sink that waits 1 s before answering DATA (smtp-sink -w 1), concurrency 100 and 1000
# Purpose: concurrency scalability and memory per connection; expected rate ~ C / 1 s. Both MTAs
# may open C connections to the one destination. Each pair runs every C for Postfix, then
# outpost. Sourced by bench/run.sh after lib.sh.
# shellcheck source-path=SCRIPTDIR/.. source=lib_delivery.sh
. "$BENCH_DIR/lib_delivery.sh"

W5_CONCS="100 1000"   # --concurrency
W5_DELAY=1            # smtp-sink -w: seconds before the reply to DATA
W5_PER_CONN=30        # messages per run = W5_PER_CONN x C (~30 s of draining at C/s), unless --messages
W5_OP_MAX_CONNS=""    # --op-max-conns: outpost [delivery] max_connections other than C (diagnosis only)

w5_usage() {
  cat <<EOF
usage: bench/run.sh w5 [options]
W5: smtp-source -d -s 20 -m N -l SIZE -N -t rcpt@$W1_DOMAIN into the MTA, which delivers to one
smtp-sink -w $W5_DELAY on 127.0.0.1:SINK_PORT: the sink answers every DATA after $W5_DELAY s, so each
connection carries at most one message per second and the rate is bounded by C / $W5_DELAY s.
Both MTAs may use C connections: outpost [delivery] max_connections = C and
max_connections_per_destination = C; Postfix default_destination_concurrency_limit =
smtp_destination_concurrency_limit = default_process_limit = C (the smtp transport's maxproc
is "-"). Injection runs normally (delivery is not paused); the sink's count gives the rate.
Reported per run: rate (e2e, steady), connections to the sink (peak and median while
draining), idle PSS (before the injection), peak PSS, (peak - idle) / C, CPU-ms per message.
  --concurrency LIST    C values, comma or space separated (default "${W5_CONCS// /,}")
  --per-conn-messages K messages per run = K x C (default $W5_PER_CONN); --messages N fixes N for every C
  --delay S             smtp-sink -w S (default $W5_DELAY)
  --op-max-conns N      outpost [delivery] max_connections = N instead of C (diagnosis: the
                        per-destination limit stays C; not a like-for-like comparison)
EOF
  dlv_usage_common
}

w5_opt() {
  case $1 in
    --concurrency|--per-conn-messages|--delay|--op-max-conns) return 2 ;;   # read by w5_main
  esac
  return 1
}

W5_FIXED_N=""
w5_session_info() {
  rec "$1" w5_concurrency "$W5_CONCS"; rec "$1" w5_sink_delay_s "$W5_DELAY"
  rec "$1" w5_outpost_max_connections "${W5_OP_MAX_CONNS:-C}"
  rec "$1" messages "${W5_FIXED_N:-$W5_PER_CONN x C}"
  rec "$1" w5_per_conn_messages "${W5_FIXED_N:+-}${W5_FIXED_N:-$W5_PER_CONN}"
  rec "$1" nofile_limit "$(ulimit -n)"
  rec "$1" sink_max_clients "$SINK_MAX_CLIENTS"; rec "$1" sink_backlog "$SINK_BACKLOG"
  rec "$1" somaxconn "$(cat /proc/sys/net/core/somaxconn 2>/dev/null)"
}

# w5_run MTA MODE PAIR, MODE = w5c<C>
w5_run() {
  local mta=$1 mode=$2 pair=$3 c=${2#w5c}
  W_MESSAGES=${W5_FIXED_N:-$((W5_PER_CONN * c))}
  W_PER_DEST=$c
  W_MAX_CONNS=${W5_OP_MAX_CONNS:-$c}
  W_SINK_OPTS=(-w "$W5_DELAY")
  W_PFX_CONF=("default_destination_concurrency_limit = $c" "smtp_destination_concurrency_limit = $c"
              "default_process_limit = $c")
  dlv_run "$mta" "$mode" "$pair"
}

w5_main() {
  local a prev="" c max=0 modes="" need
  for a in "$@"; do
    case $prev in
      --concurrency) W5_CONCS=${a//,/ } ;;
      --per-conn-messages) W5_PER_CONN=$a ;;
      --delay) W5_DELAY=$a ;;
      --op-max-conns) W5_OP_MAX_CONNS=$a ;;
      --messages) W5_FIXED_N=$a ;;
    esac
    prev=$a
  done
  for a in "$W5_PER_CONN" "$W5_DELAY" ${W5_OP_MAX_CONNS:+"$W5_OP_MAX_CONNS"}; do [[ $a =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $a"; done
  for c in $W5_CONCS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "--concurrency: not a positive integer: $c"
    modes+="w5c$c "
    [ "$c" -gt "$max" ] && max=$c
  done
  [ -n "$modes" ] || die "--concurrency: no value"
  # one sink serves every connection of the largest C (the rest would queue in its backlog)
  [ "$SINK_MAX_CLIENTS" -ge $((2 * max)) ] || SINK_MAX_CLIENTS=$((2 * max))
  # outpost holds C sockets in one process; smtp-sink too
  need=$((4 * max + 1024))
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    if ! ulimit -n "$need" 2>/dev/null; then
      { ulimit -Hn "$need" && ulimit -n "$need"; } 2>/dev/null ||
        warn "cannot raise the open-file limit to $need (now $(ulimit -n)); C=$max may fail"
    fi
  fi
  dlv_main w5 w5_run "$modes" "$@"
}
