#!/bin/bash
# W9, crash (bench/README.md, "Workloads"): W1 with kill -9 of the MTA in the middle of delivery, restart, drain; acked must all arrive
# Every message that got 250 must reach the sink at least once; duplicates are counted.
# Interleaved pairs Postfix, outpost. Sourced by bench/run.sh after lib.sh.
# shellcheck source-path=SCRIPTDIR/.. source=lib_delivery.sh
. "$BENCH_DIR/lib_delivery.sh"

W9_KILL_PCT=40        # kill when the sink has received this % of N
W9_DOWN=1             # seconds between the kill and the restart
W9_RECONNECT=60       # the injector keeps reconnecting this long after a lost connection
W9_KICK=0             # 1: after the restart, ask the MTA to retry everything now

w9_usage() {
  cat <<EOF
usage: bench/run.sh w9 [options]
W9: N x 4 KiB to one sink, like W1, but injected by tools/inject.py (20 sessions with reuse,
lock-step like smtp-source, which cannot tell which messages got 250 and exits at the first
lost connection). When the sink has received --kill-pct % of N, every process of the MTA
(outpost; Postfix's master and all its children) gets SIGKILL; after --down seconds the MTA is
restarted on the same queue; the injector reconnects and sends the rest; then the queue drains.
The sink (smtp-sink -d) writes one file per received message. Reported: 250-acknowledged,
delivered unique, duplicates, lost (acknowledged but never received: must be 0).
  --kill-pct P          kill at P % of N received by the sink (default $W9_KILL_PCT)
  --down S              seconds between the kill and the restart (default $W9_DOWN)
  --reconnect S         the injector retries a lost/refused connection for S s (default $W9_RECONNECT)
  --kick                after the restart, retry the whole queue at once (outpost: queue kick --all;
                        Postfix: postqueue -f). Without it (default) each MTA recovers on its own:
                        outpost counts an attempt before it starts, so recipients whose attempt was
                        in flight at the kill wait [delivery] first_retry (7m30s) after the restart.
EOF
  dlv_usage_common
}

w9_opt() {
  case $1 in
    --kill-pct) W9_KILL_PCT=$2; return 2 ;;
    --down) W9_DOWN=$2; return 2 ;;
    --reconnect) W9_RECONNECT=$2; return 2 ;;
    --kick) W9_KICK=1; return 0 ;;
  esac
  return 1
}

w9_session_info() {
  rec "$1" kill_pct "$W9_KILL_PCT"; rec "$1" down_s "$W9_DOWN"; rec "$1" reconnect_s "$W9_RECONNECT"; rec "$1" kick "$W9_KICK"
  rec "$1" w9_injector "tools/inject.py --sessions S --messages N --size SIZE --rcpt rcpt@$W1_DOMAIN --reconnect-for $W9_RECONNECT"
}

# w9_run MTA MODE PAIR
w9_run() {
  local mta=$1 mode=$2 pair=$3 n=$W_MESSAGES dir f inst ok=1 err="" log i pend inj kill_at
  local prev cnt stable t0 watch cg tk kc kp
  RUN_SEQ=$((RUN_SEQ + 1))
  dir=$OUT/runs/$(printf '%02d' "$RUN_SEQ")-$mode-$mta
  inst=$dir/inst
  mkdir -p "$inst"; f=$dir/meta.env
  dlv_plan w9 "$n" "$W_SESSIONS"
  kill_at=$((n * W9_KILL_PCT / 100))
  rec "$f" kind crash; rec "$f" mode "$mode"; rec "$f" mta "$mta"; rec "$f" pair "$pair"
  rec "$f" messages "$n"; rec "$f" sessions "$W_SESSIONS"; rec "$f" size "$W_SIZE"; rec "$f" seq "$RUN_SEQ"
  rec "$f" healthy_messages "$n"; rec "$f" kill_at "$kill_at"
  log "run $RUN_SEQ: pair $pair, $mta, W9 crash test, $n messages, SIGKILL at $kill_at received"

  cg_create "$mta"; cg=$CG
  [ -n "$cg" ] || die "W9 needs a cgroup to find every process of the MTA"
  rec "$f" cgroup "$cg"
  mkdir -p "$dir/dump" && chown nobody "$dir/dump"     # smtp-sink -u nobody writes there
  dlv_sinks_start "$dir" w9 -d "$dir/dump/m."
  if ! dlv_mta_start "$mta" "$inst" "$cg" w1; then
    rec "$f" ok 0; rec "$f" error "$OP_ERROR"
    [ "$mta" = postfix ] && pfx_stop "$inst" "$cg"
    dlv_sinks_stop; cg_destroy "$cg"
    return 1
  fi
  rec "$f" root_pid "$DLV_ROOT_PID"
  if [ "$mta" = postfix ]; then log=$inst/maillog; else log=$inst/outpost.log; fi
  sleep "$W_SETTLE"
  if [ "$W_QUIET_MAX" -gt 0 ]; then
    wait_quiet "$W_QUIET_MAX" "$W_QUIET_PCT"
    rec "$f" pre_run_busy_pct "$QUIET_BUSY"; rec "$f" quiet_waited_s "$QUIET_WAITED"
  fi

  ( cg_exec "$HARNESS_CG" "$PY" "$MON" sinkwatch --sink "dest=${SINK_FILES[0]}:0" --kill-at "$kill_at" \
      --kill-cgroup "$cg" --exit-after-kill --timeout "$W_DRAIN_TIMEOUT" --stall "$W_STALL" \
      --ready "$dir/sinkwatch.ready" --out "$dir/sinkwatch.json" ) &
  watch=$!; track_pid "$watch"
  for ((i = 0; i < 200; i++)); do [ -e "$dir/sinkwatch.ready" ] && break; sleep 0.05; done
  t0=$(now)
  ( cg_exec "$HARNESS_CG" "$PY" "$BENCH_DIR/tools/inject.py" --port "$DLV_PORT" --messages "$n" \
      --sessions "$W_SESSIONS" --size "$W_SIZE" --helo "$INJ_HELO" --sender "$INJ_FROM" \
      --rcpt "rcpt@$W1_DOMAIN" --reconnect-for "$W9_RECONNECT" --acked "$dir/acked.txt" \
      --unknown "$dir/unknown.txt" --out "$dir/inject.json" ) > "$dir/inject.out" 2> "$dir/inject.err" &
  inj=$!; track_pid "$inj"
  rec "$f" t_inject_start "$t0"

  wait "$watch" 2>/dev/null; untrack_pid "$watch"
  local kinfo
  kinfo=$("$PY" -c 'import json,sys; k=json.load(open(sys.argv[1])).get("kill") or {}; print(k.get("t", ""), k.get("count", ""), len(k.get("pids", [])))' "$dir/sinkwatch.json" 2>/dev/null)
  read -r tk kc kp <<< "$kinfo"
  if [ -z "$tk" ]; then
    warn "$mta: the sink never reached $kill_at (no kill); sinks: $(dlv_sink_counts)"
    ok=0; err="sink never reached the kill threshold $kill_at"
  else
    rec "$f" t_kill "$tk"; rec "$f" kill_count "$kc"; rec "$f" kill_pids "$kp"
    log "$mta: SIGKILL to $kp processes at $kc received"
    # reap the killed engine, then restart it on the same queue
    if [ "$mta" = outpost ]; then
      wait "$OP_PID" 2>/dev/null; untrack_pid "$OP_PID"; OP_PID=""
    fi
    for ((i = 0; i < 100; i++)); do [ -z "$(cg_pids "$cg")" ] && break; sleep 0.05; done
    [ -z "$(cg_pids "$cg")" ] || warn "processes left in $cg after the kill: $(cg_pids "$cg" | tr '\n' ' ')"
    rec "$f" sink_at_kill_reaped "$(sink_count "${SINK_FILES[0]}")"
    sleep "$W9_DOWN"
    if [ "$mta" = postfix ]; then
      pfx_start "$inst" "$PFX_PORT" "$cg" || { ok=0; err="Postfix did not restart after the kill"; }
      DLV_ROOT_PID=$PFX_MASTER_PID
    else
      OP_LOG_APPEND=1 op_start "$inst" "$OUTPOST_PORT" "$cg" || { ok=0; err="outpost did not restart after the kill: $OP_ERROR"; }
      DLV_ROOT_PID=$OP_PID
    fi
    rec "$f" t_restart_listening "$(now)"
    if [ "$mta" = outpost ]; then   # what the restarted engine found in its spool
      rec "$f" restart_spool "$(grep 'event=spool_opened' "$log" | tail -1 | sed 's/.*event=spool_opened //')"
    fi
    if [ "$W9_KICK" = 1 ]; then
      if [ "$mta" = postfix ]; then postqueue -c "$inst/etc" -f > "$dir/kick.out" 2>&1
      else "$OUTPOST" -c "$inst/outpost.conf" queue kick --all > "$dir/kick.out" 2>&1; fi
      rec "$f" kick_rc "$?"
    fi
  fi

  # the injector reconnects and finishes
  for ((i = 0; i < (INJ_TIMEOUT * 10); i++)); do alive "$inj" || break; sleep 0.1; done
  stop_pid "$inj" TERM 10
  [ -s "$dir/inject.json" ] || { ok=0; err="${err:+$err; }injector wrote no result (see $dir/inject.err)"; }
  rec "$f" t_inject_end "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["t_end"])' "$dir/inject.json" 2>/dev/null)"
  rec "$f" inject_acked "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["acked"])' "$dir/inject.json" 2>/dev/null)"

  # drain: nothing left to deliver and the sink quiet for 2 s
  prev=-1; stable=0
  for ((i = 0; i < W_DRAIN_TIMEOUT * 2; i++)); do
    pend=$(dlv_pending "$mta" "$inst")
    cnt=$(sink_count "${SINK_FILES[0]}")
    if [ "${pend%% *}" = 0 ] && [ "$cnt" = "$prev" ]; then
      stable=$((stable + 1)); [ "$stable" -ge 4 ] && break
    else stable=0; fi
    prev=$cnt
    sleep 0.5
  done
  rec "$f" t_drained "$(now)"
  rec "$f" pending "$pend"
  [ "${pend%% *}" = 0 ] || { ok=0; err="${err:+$err; }queue not drained: $pend"; }
  if [ "$mta" = postfix ]; then
    rec "$f" postfix_incomplete_files "$(find "$inst/queue/incoming" "$inst/queue/active" -type f ! -perm -u+x 2>/dev/null | wc -l)"
  fi

  dlv_mta_stop "$mta" "$inst" "$cg" "$f"
  sleep 0.2
  rec "$f" sink_counts "$(dlv_sink_counts)"
  dlv_sinks_stop
  cg_destroy "$cg"
  local chk=(--acked "$dir/acked.txt" --unknown "$dir/unknown.txt" --dump "$dir/dump" --out "$dir/w9.json")
  [ "$mta" = outpost ] && chk+=(--spool-db "$inst/data/spool.db" --log "$log")
  "$PY" "$MON" w9check "${chk[@]}" > /dev/null || { ok=0; err="${err:+$err; }w9check failed"; }
  "$PY" "$MON" mtalog --mta "$mta" --log "$log" --out "$dir/mtalog.json"
  rec "$f" warnings "$("$PY" "$MON" mtalog --mta "$mta" --log "$log" --field warnings)"
  local lost acked
  read -r lost acked <<< "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["lost"], d["acked"])' "$dir/w9.json" 2>/dev/null)"
  [ "${lost:-x}" = 0 ] || { ok=0; err="${err:+$err; }LOST $lost acknowledged messages"; }
  [ "${acked:-0}" -gt 0 ] || { ok=0; err="${err:+$err; }no message acknowledged"; }
  if [ "$W_KEEP" = 0 ]; then trash_later "$inst/queue" "$inst/data" "$dir/dump"; fi
  rec "$f" ok "$ok"; [ -n "$err" ] && rec "$f" error "$err"
  "$PY" "$BENCH_DIR/tools/report_delivery.py" --run "$dir" || true
  return 0
}

w9_main() { dlv_main w9 w9_run w9 "$@"; }
