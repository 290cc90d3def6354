#!/bin/bash
# W1p, injection only (bench/README.md, "Workloads"): N x 4 KiB messages, 1 recipient each,
# 20 smtp-source sessions with reuse, into an MTA that accepts and queues but delivers
# nothing (Postfix: everything to the hold queue; outpost: [delivery] paused = yes).
# Interleaved pairs Postfix, outpost, Postfix, outpost... reported as ratios.
# Sourced by bench/run.sh after lib.sh.

w1p_usage() {
  cat <<EOF
usage: bench/run.sh w1p [options]
  --pairs N             interleaved Postfix/outpost pairs (default 3)
  --messages N          messages per measured run (default 20000)
  --sessions N          smtp-source sessions, reused (default 20)
  --size BYTES          message size, smtp-source -l (default 4096)
  --fsync-messages N    messages per strace fsync-count run, one per MTA per pair (default 2000; 0: skip)
  --fsync-mode M        seccomp (default: MTA started under strace --seccomp-bpf, little slow-down)
                        or attach (strace -c -p after start-up; every syscall stops, much slower)
  --settle S            seconds to wait after an MTA is ready, before injecting (default 5)
  --quiet-wait S        then wait up to S s until the shared host is quiet (default 60; 0: don't)
  --quiet-pct P         "quiet" = under P % of all CPUs busy over 1 s (default 15)
  --ceiling-messages N  smtp-source -> smtp-sink loopback ceiling, per repetition (default 60000)
  --ceiling-reps N      repetitions at the start and at the end of the session (default 2)
  --fsync-bench-s S     durable-create microbenchmark, seconds per variant (default 5; 0: skip)
  --no-ceiling          skip both ceilings (quick checks only; the report marks it)
  --outpost PATH        outpost binary (default \$OUTPOST or /work/main/build/outpost)
  --postfix-only        run only the Postfix half (no ratios)
  --outpost-only        run only the outpost half (no ratios)
  --keep                keep the queue/spool directories of every run (about N x 5 KiB each)
  --out DIR             output directory (default bench/out)
Ports (env): PFX_PORT=$PFX_PORT OUTPOST_PORT=$OUTPOST_PORT OUTPOST_ADMIN_PORT=$OUTPOST_ADMIN_PORT SINK_PORT=$SINK_PORT
EOF
}

# w1p_run MTA KIND MESSAGES PAIR: one measured run of a fresh instance.
#   KIND main  : throughput, CPU (cgroup), peak PSS
#   KIND fsync : the same injection with strace -c attached (counts fsync-like syscalls)
w1p_run() {
  local mta=$1 kind=$2 n=$3 pair=$4 dir f inst qc q left ok=1 err="" cpu0 cpu1 us0 us1 stop_clean=1
  RUN_SEQ=$((RUN_SEQ + 1))
  dir=$OUT/runs/$(printf '%02d' "$RUN_SEQ")-$mta-$kind
  inst=$dir/inst
  mkdir -p "$dir"; f=$dir/meta.env
  rec "$f" kind "$kind"; rec "$f" mta "$mta"; rec "$f" pair "$pair"; rec "$f" messages "$n"
  rec "$f" sessions "$W_SESSIONS"; rec "$f" size "$W_SIZE"; rec "$f" seq "$RUN_SEQ"
  log "run $RUN_SEQ: pair $pair, $mta, $kind, $n messages"

  cg_create "$mta"
  rec "$f" cgroup "${CG:-none}"
  local root_pid port wrap=()
  if [ "$kind" = fsync ]; then
    rec "$f" fsync_mode "$FSYNC_MODE"
    if [ "$FSYNC_MODE" = seccomp ]; then strace_wrap "$dir/strace.log"; wrap=("${STRACE_WRAP[@]}"); fi
  fi
  if [ "$mta" = postfix ]; then
    port=$PFX_PORT
    pfx_setup "$inst" "$port" hold || die "cannot write Postfix instance in $inst"
    if ! pfx_start "$inst" "$port" "$CG" "${wrap[@]}"; then
      rec "$f" ok 0; rec "$f" error "Postfix instance failed to start (see $inst)"
      pfx_stop "$inst" "$CG"; cg_destroy "$CG"
      die "Postfix private instance failed to start; see $inst"
    fi
    root_pid=$PFX_MASTER_PID
  else
    port=$OUTPOST_PORT
    op_setup "$inst" "$port" "$OUTPOST_ADMIN_PORT" yes || die "cannot write outpost config in $inst"
    if ! op_start "$inst" "$port" "$CG" "${wrap[@]}"; then
      rec "$f" ok 0; rec "$f" error "$OP_ERROR"
      cg_destroy "$CG"
      return 1
    fi
    root_pid=$OP_PID
  fi
  rec "$f" root_pid "$root_pid"
  sleep "$W_SETTLE"
  if [ "$W_QUIET_MAX" -gt 0 ]; then
    wait_quiet "$W_QUIET_MAX" "$W_QUIET_PCT"
    rec "$f" pre_run_busy_pct "$QUIET_BUSY"; rec "$f" quiet_waited_s "$QUIET_WAITED"
  fi

  if [ "$kind" = fsync ] && [ "$FSYNC_MODE" = attach ]; then
    strace_start "$CG" "$root_pid" "$dir/strace.txt" || { ok=0; err="strace could not attach"; }
  elif [ "$kind" = main ]; then
    pss_start "$CG" "$root_pid" "$dir/pss.json" 0.5
  fi
  rec "$f" stat_before "$(proc_stat_cpu)"; rec "$f" harness_ns_before "$(harness_cpu_ns)"
  read -r us0 <<< "$(cpu_user_sys_ms "$CG")"
  rec "$f" cpu_user_sys_ms_before "$us0"
  cpu0=$(cpu_ns "$CG" "$root_pid")

  inject "$port" "$n" "$W_SESSIONS" "$W_SIZE" "$dir/smtp-source"

  cpu1=$(cpu_ns "$CG" "$root_pid")
  read -r us1 <<< "$(cpu_user_sys_ms "$CG")"
  rec "$f" stat_after "$(proc_stat_cpu)"; rec "$f" harness_ns_after "$(harness_cpu_ns)"
  if [ "$kind" = main ]; then pss_stop; elif [ "$FSYNC_MODE" = attach ]; then strace_stop; fi
  rec "$f" t_inject_start "$INJ_T0"; rec "$f" t_inject_end "$INJ_T1"; rec "$f" source_rc "$INJ_RC"
  rec "$f" source_stderr_lines "$(wc -l < "$dir/smtp-source.err")"
  rec "$f" cpu_ns_before "$cpu0"; rec "$f" cpu_ns_after "$cpu1"
  rec "$f" cpu_user_sys_ms_after "$us1"
  [ "$INJ_RC" = 0 ] || { ok=0; err="smtp-source exit status $INJ_RC: $(head -c 300 "$dir/smtp-source.err" | tr '\n' ' ')"; }

  # correctness: everything that got 250 must be queued (held / paused)
  if [ "$mta" = postfix ]; then
    q=$(pfx_queue_count "$inst" hold); qc=hold-dir
    left=$(pfx_queue_count "$inst" maildrop incoming active deferred)
    rec "$f" other_queues "$left"
    [ "$left" = 0 ] || warn "Postfix: $left messages outside the hold queue"
  else
    read -r q qc <<< "$(op_queue_count "$inst")"
  fi
  rec "$f" queued "$q"; rec "$f" queued_method "$qc"
  if [ "$q" = "-" ]; then
    warn "$mta: could not count the queue (no 'queue list --json', no spool.db)"
  elif [ "$q" != "$n" ]; then
    ok=0; err="${err:+$err; }queued $q != $n"
  fi

  if [ "$mta" = postfix ]; then
    pfx_stop "$inst" "$CG"
    rec "$f" warnings "$(grep -cE 'warning:|fatal:|panic:' "$inst/maillog" 2>/dev/null)"
  else
    op_stop "$CG" || stop_clean=0
    rec "$f" stop_clean "$stop_clean"
    rec "$f" warnings "$(grep -cE 'level=(warn|error|fatal|crit)|panic|AddressSanitizer' "$inst/outpost.log" 2>/dev/null)"
    rec "$f" log_lines "$(wc -l < "$inst/outpost.log")"
  fi
  cg_destroy "$CG"
  if [ "$W_KEEP" = 0 ]; then trash_later "$inst/queue" "$inst/data"; fi
  rec "$f" ok "$ok"; [ -n "$err" ] && rec "$f" error "$err"

  log "run $RUN_SEQ: $mta $kind: $(awk -v a="$INJ_T0" -v b="$INJ_T1" -v n="$n" -v c0="$cpu0" -v c1="$cpu1" \
      'BEGIN { printf "%.0f msg/s, %.3f CPU-ms/msg", n / (b - a), (c1 - c0) / 1e6 / n }'), queued $q, rc $INJ_RC${err:+ -- $err}"
  return 0
}

w1p_main() {
  local pairs=3 fsync_n=2000 ceil_n=60000 ceil_reps=2 fbench=5 no_ceiling=0 only="" outdir="$BENCH_DIR/out"
  W_MESSAGES=20000 W_SESSIONS=20 W_SIZE=4096 W_SETTLE=5 W_KEEP=0 W_QUIET_MAX=60 W_QUIET_PCT=15
  while [ $# -gt 0 ]; do
    case $1 in
      --pairs) pairs=$2; shift ;;
      --messages) W_MESSAGES=$2; shift ;;
      --sessions) W_SESSIONS=$2; shift ;;
      --size) W_SIZE=$2; shift ;;
      --fsync-messages) fsync_n=$2; shift ;;
      --fsync-mode) FSYNC_MODE=$2; shift ;;
      --settle) W_SETTLE=$2; shift ;;
      --quiet-wait) W_QUIET_MAX=$2; shift ;;
      --quiet-pct) W_QUIET_PCT=$2; shift ;;
      --ceiling-messages) ceil_n=$2; shift ;;
      --ceiling-reps) ceil_reps=$2; shift ;;
      --fsync-bench-s) fbench=$2; shift ;;
      --no-ceiling) no_ceiling=1 ;;
      --outpost) OUTPOST=$2; shift ;;
      --postfix-only) only=postfix ;;
      --outpost-only) only=outpost ;;
      --keep) W_KEEP=1 ;;
      --out) outdir=$2; shift ;;
      -h|--help) w1p_usage; return 0 ;;
      *) w1p_usage >&2; die "unknown option: $1" ;;
    esac
    shift
  done
  local v
  for v in "$pairs" "$W_MESSAGES" "$W_SESSIONS" "$W_SIZE" "$fsync_n" "$ceil_n" "$ceil_reps" "$fbench" "$W_SETTLE" "$W_QUIET_MAX" "$W_QUIET_PCT"; do
    [[ $v =~ ^[0-9]+$ ]] || die "not a non-negative integer: $v"
  done
  if [ "$pairs" -lt 1 ] || [ "$W_MESSAGES" -lt 1 ]; then die "--pairs and --messages must be >= 1"; fi

  case $FSYNC_MODE in seccomp|attach) ;; *) die "--fsync-mode must be seccomp or attach" ;; esac
  need_root
  need_cmds postfix postconf smtp-source smtp-sink strace ss timeout "$PY"
  [ "$only" = postfix ] || { op_check_binary; OUTPOST=$(readlink -f "$OUTPOST"); }
  local mtas=(postfix outpost)
  [ -n "$only" ] && mtas=("$only")
  port_free_or_die "$SINK_PORT"
  [ "$only" = outpost ] || port_free_or_die "$PFX_PORT"
  [ "$only" = postfix ] || port_free_or_die "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT"

  local ts; ts=$(date +%Y%m%dT%H%M%S)
  OUT=$outdir/w1p-$ts
  mkdir -p "$OUT/runs" || die "cannot create $OUT"
  local json=$outdir/w1p-$ts.json s=$OUT/session.env
  bench_traps
  RUN_SEQ=0
  log "W1p session $ts -> $OUT"
  rec "$s" workload w1p; rec "$s" timestamp "$ts"; rec "$s" t_start "$(now)"
  rec "$s" pairs "$pairs"; rec "$s" messages "$W_MESSAGES"; rec "$s" sessions "$W_SESSIONS"
  rec "$s" size "$W_SIZE"; rec "$s" fsync_messages "$fsync_n"; rec "$s" settle_s "$W_SETTLE"
  rec "$s" quiet_wait_max_s "$W_QUIET_MAX"; rec "$s" quiet_pct "$W_QUIET_PCT"
  rec "$s" mtas "${mtas[*]}"; rec "$s" ports "postfix=$PFX_PORT outpost=$OUTPOST_PORT admin=$OUTPOST_ADMIN_PORT sink=$SINK_PORT"
  rec "$s" injector "smtp-source -d -s $W_SESSIONS -m N -l $W_SIZE -N -M $INJ_HELO -f $INJ_FROM -t $INJ_RCPT 127.0.0.1:PORT"
  rec "$s" fsync_syscalls "$FSYNC_SYSCALLS"; rec "$s" fsync_mode "$FSYNC_MODE"
  host_info "$s"
  if [ "$only" != postfix ]; then
    # a private copy: the build directory may be relinked by others during the session
    { mkdir -p "$OUT/bin" && cp "$OUTPOST" "$OUT/bin/outpost"; } || die "cannot copy $OUTPOST"
    rec "$s" outpost_source "$OUTPOST"
    OUTPOST=$OUT/bin/outpost
    rec "$s" outpost_binary "$OUTPOST"
    rec "$s" outpost_version "$(timeout 5 "$OUTPOST" version 2>&1 | head -1)"
    rec "$s" outpost_sha256 "$(sha256sum "$OUTPOST" | cut -c1-16)"
  fi
  rec "$s" git_rev "$(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo none)"

  harness_cg_init
  [ "$only" = postfix ] || op_preflight "$OUT/preflight"

  local i
  if [ "$no_ceiling" = 0 ]; then
    for ((i = 1; i <= ceil_reps; i++)); do ceiling_run "$OUT/ceiling" "start-$i" "$ceil_n" "$W_SESSIONS" "$W_SIZE"; done
    [ "$fbench" -gt 0 ] && fsync_ceiling "$OUT/ceiling" fsync-start "$fbench"
  fi

  local failed=0 p mta
  for ((p = 1; p <= pairs && failed == 0; p++)); do
    for mta in "${mtas[@]}"; do
      w1p_run "$mta" main "$W_MESSAGES" "$p" || { failed=1; break; }
    done
    if [ "$failed" = 0 ] && [ "$fsync_n" -gt 0 ]; then
      for mta in "${mtas[@]}"; do
        w1p_run "$mta" fsync "$fsync_n" "$p" || { failed=1; break; }
      done
    fi
  done
  [ "$failed" = 0 ] || warn "an engine failed to start; remaining runs skipped (report is partial)"

  if [ "$no_ceiling" = 0 ]; then
    for ((i = 1; i <= ceil_reps; i++)); do ceiling_run "$OUT/ceiling" "end-$i" "$ceil_n" "$W_SESSIONS" "$W_SIZE"; done
    [ "$fbench" -gt 0 ] && fsync_ceiling "$OUT/ceiling" fsync-end "$fbench"
  fi
  rec "$s" t_end "$(now)"
  rec "$s" host_loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
  rec "$s" complete "$((1 - failed))"
  trash_empty

  "$PY" "$BENCH_DIR/tools/report.py" "$OUT" --json "$json" || die "report failed"
  log "JSON: $json"
  return "$failed"
}
