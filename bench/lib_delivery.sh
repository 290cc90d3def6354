#!/bin/bash
# Shared by the delivery workloads W1, W2, W5, W6 and W9 (bench/README.md, "W1, W2, W6, W9: delivery"
# and "W5").
# Sourced by bench/workloads/{w1,w2,w5,w6,w9}.sh after lib.sh.
#
# Both MTAs deliver to smtp-sink on loopback:
#  * Postfix: relayhost = [127.0.0.1]:SINK_PORT (W1, W9); for W2/W6 transport_maps sends
#    dK.example.test to smtp:[127.0.0.(11+K)]:SINK_PORT (ten destinations, one loopback address
#    each).
#  * outpost has no relayhost: it resolves MX records through a private Unbound instance
#    (local-data only, [dns] nameserver = 127.0.0.1:DNS_PORT, trust_ad = no) and connects to
#    [delivery] port = SINK_PORT. dest.example.test MX -> mx.example.test A 127.0.0.1;
#    dK.example.test MX -> mx.dK.example.test A 127.0.0.(11+K). outpost has one delivery
#    port for every host, hence one sink per loopback address, all on SINK_PORT.
# shellcheck disable=SC2034   # globals are read by the workload scripts and report.py

DNS_PORT=${DNS_PORT:-24553}
UNBOUND=${UNBOUND:-/usr/sbin/unbound}
W1_DOMAIN=dest.example.test
MIX_WEIGHTS=(40 20 10 8 6 5 4 3 2 2)      # W2 Zipf-like weights, % (bench/README.md, "Workloads")
MIX_ADDR0=11                              # dK's sink listens on 127.0.0.(MIX_ADDR0+K)
W6_BAD=${W6_BAD:-2}                       # W6: the domain whose sink answers RCPT with 4xx

mix_domain() { echo "d$1.example.test"; }
mix_addr() { echo "127.0.0.$((MIX_ADDR0 + $1))"; }

# ------------------------------------------------------------------ plan
# dlv_plan MODE N SESSIONS: fills PLAN_* arrays, one entry per sink/destination:
#   PLAN_LABEL PLAN_DOMAIN PLAN_ADDR PLAN_MSGS PLAN_SESS PLAN_HEALTHY (1, or 0 for W6's d2)
# W2/W6: messages by weight (rounding remainder to d0); sessions: 1 per domain, the rest by
# D'Hondt on the weights (20 sessions -> 7,4,2,1,1,1,1,1,1,1).
dlv_plan() {
  local mode=$1 n=$2 s=$3 k j best sum=0
  PLAN_LABEL=(); PLAN_DOMAIN=(); PLAN_ADDR=(); PLAN_MSGS=(); PLAN_SESS=(); PLAN_HEALTHY=()
  case $mode in
    w1|w9|w5*)
      PLAN_LABEL=(dest); PLAN_DOMAIN=("$W1_DOMAIN"); PLAN_ADDR=(127.0.0.1)
      PLAN_MSGS=("$n"); PLAN_SESS=("$s"); PLAN_HEALTHY=(1)
      return 0 ;;
  esac
  for k in "${!MIX_WEIGHTS[@]}"; do
    PLAN_LABEL+=("d$k"); PLAN_DOMAIN+=("$(mix_domain "$k")"); PLAN_ADDR+=("$(mix_addr "$k")")
    PLAN_MSGS+=($((n * MIX_WEIGHTS[k] / 100))); sum=$((sum + n * MIX_WEIGHTS[k] / 100))
    PLAN_SESS+=(1)
    if [ "$mode" = w6 ] && [ "$k" = "$W6_BAD" ]; then PLAN_HEALTHY+=(0); else PLAN_HEALTHY+=(1); fi
  done
  PLAN_MSGS[0]=$((PLAN_MSGS[0] + n - sum))
  [ "$s" -ge "${#MIX_WEIGHTS[@]}" ] || warn "--sessions $s < ${#MIX_WEIGHTS[@]}: one session per domain anyway"
  for ((j = ${#MIX_WEIGHTS[@]}; j < s; j++)); do
    best=0
    for k in "${!MIX_WEIGHTS[@]}"; do   # w_k/(s_k+1) > w_best/(s_best+1)
      if [ $((MIX_WEIGHTS[k] * (PLAN_SESS[best] + 1))) -gt $((MIX_WEIGHTS[best] * (PLAN_SESS[k] + 1))) ]; then best=$k; fi
    done
    PLAN_SESS[best]=$((PLAN_SESS[best] + 1))
  done
}

plan_sum() { # plan_sum healthy|unhealthy|all: messages
  local k t=0
  for k in "${!PLAN_MSGS[@]}"; do
    case $1 in
      healthy) [ "${PLAN_HEALTHY[k]}" = 1 ] && t=$((t + PLAN_MSGS[k])) ;;
      unhealthy) [ "${PLAN_HEALTHY[k]}" = 0 ] && t=$((t + PLAN_MSGS[k])) ;;
      *) t=$((t + PLAN_MSGS[k])) ;;
    esac
  done
  echo "$t"
}

# ------------------------------------------------------------------ DNS (Unbound, for outpost)
DNS_PID=""; DNS_CG=""
dns_start() { # dns_start DIR
  local d=$1 k a
  mkdir -p "$d"
  port_free_or_die "$DNS_PORT"
  ss -H -lun "sport = :$DNS_PORT" 2>/dev/null | grep -q . && die "udp 127.0.0.1:$DNS_PORT is in use; set DNS_PORT"
  {
    cat <<EOF
# Private resolver for the outpost benchmark instance (bench/lib_delivery.sh)
server:
  interface: 127.0.0.1@$DNS_PORT
  port: $DNS_PORT
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  do-ip6: no
  so-reuseport: no
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  local-zone: "test." nodefault
  local-zone: "example.test." static
  local-data: "$W1_DOMAIN. 300 IN MX 10 mx.example.test."
  local-data: "mx.example.test. 300 IN A 127.0.0.1"
EOF
    for k in "${!MIX_WEIGHTS[@]}"; do
      a=$(mix_addr "$k")
      echo "  local-data: \"$(mix_domain "$k"). 300 IN MX 10 mx.$(mix_domain "$k").\""
      echo "  local-data: \"mx.$(mix_domain "$k"). 300 IN A $a\""
    done
    printf 'remote-control:\n  control-enable: no\n'
  } > "$d/unbound.conf"
  unbound-checkconf "$d/unbound.conf" > "$d/unbound-checkconf.out" 2>&1 ||
    { cat "$d/unbound-checkconf.out" >&2; die "bad unbound config $d/unbound.conf"; }
  cg_create dns; DNS_CG=$CG
  ( cg_exec "$DNS_CG" "$UNBOUND" -d -c "$d/unbound.conf" ) > "$d/unbound.log" 2>&1 &
  DNS_PID=$!
  track_pid "$DNS_PID"
  wait_port "$DNS_PORT" 10 "$DNS_PID" || { cat "$d/unbound.log" >&2; die "unbound did not start on 127.0.0.1:$DNS_PORT"; }
  if command -v dig > /dev/null; then
    a=$(dig +short +time=2 +tries=2 @127.0.0.1 -p "$DNS_PORT" MX "$W1_DOMAIN")
    [ "$a" = "10 mx.example.test." ] || die "unbound on 127.0.0.1:$DNS_PORT answers '$a' for MX $W1_DOMAIN (see $d/unbound.log)"
    a=$(dig +short +time=2 +tries=2 @127.0.0.1 -p "$DNS_PORT" A "mx.$(mix_domain 9)")
    [ "$a" = "$(mix_addr 9)" ] || die "unbound answers '$a' for A mx.$(mix_domain 9)"
  fi
  log "DNS: unbound PID $DNS_PID on 127.0.0.1:$DNS_PORT (local-data for $W1_DOMAIN and d0..d9.example.test)"
}
dns_stop() { [ -n "$DNS_PID" ] && stop_pid "$DNS_PID" TERM 5; DNS_PID=""; [ -n "$DNS_CG" ] && cg_destroy "$DNS_CG"; DNS_CG=""; }
dns_cpu_ns() { if [ -n "$DNS_CG" ]; then cat "$DNS_CG/cpuacct.usage"; else echo -; fi; }
# UDP datagrams the kernel dropped for a full socket receive buffer, host-wide (/proc/net/snmp)
udp_rcvbuf_errors() { awk '$1 == "Udp:" && $2 ~ /^[0-9]/ { print $6; exit }' /proc/net/snmp; }

# ------------------------------------------------------------------ sinks
SINK_PIDS=(); SINK_FILES=()
# dlv_sinks_start DIR MODE [EXTRA smtp-sink options for every sink]: one smtp-sink per PLAN
# entry, in the harness cgroup; W6's unhealthy one gets -r RCPT (4xx to every RCPT).
dlv_sinks_start() {
  local d=$1 mode=$2 k opts i n; shift 2
  # smtp-sink binds with SO_REUSEPORT: a stale sink on the port would silently share the
  # connections, so nothing at all may listen on SINK_PORT
  port_free_or_die "$SINK_PORT"
  SINK_PIDS=(); SINK_FILES=()
  for k in "${!PLAN_LABEL[@]}"; do
    opts=("$@")
    [ "${PLAN_HEALTHY[k]}" = 0 ] && opts+=(-r RCPT)
    SINK_FILES+=("$d/sink-${PLAN_LABEL[k]}.out")
    ( cg_exec "$HARNESS_CG" smtp-sink -c -u nobody -m "$SINK_MAX_CLIENTS" "${opts[@]}" "${PLAN_ADDR[k]}:$SINK_PORT" "$SINK_BACKLOG" ) \
      > "$d/sink-${PLAN_LABEL[k]}.out" 2>&1 &
    SINK_PIDS+=($!)
    track_pid "$!"
  done
  for ((i = 0; i < 200; i++)); do
    n=$(ss -H -ltn "sport = :$SINK_PORT" 2>/dev/null | wc -l)
    [ "$n" -ge "${#PLAN_LABEL[@]}" ] && return 0
    for k in "${SINK_PIDS[@]}"; do alive "$k" || { cat "$d"/sink-*.out >&2; die "an smtp-sink exited at start (see $d/sink-*.out)"; }; done
    sleep 0.05
  done
  die "only $n of ${#PLAN_LABEL[@]} smtp-sinks listen on port $SINK_PORT"
}
dlv_sinks_stop() { local p; for p in "${SINK_PIDS[@]}"; do stop_pid "$p" TERM 5; done; SINK_PIDS=(); }
dlv_sink_counts() { local k out=(); for k in "${!SINK_FILES[@]}"; do out+=("${PLAN_LABEL[k]}=$(sink_count "${SINK_FILES[k]}")"); done; echo "${out[*]}"; }

# ------------------------------------------------------------------ MTA instances for delivery
# dlv_pfx_setup INST MODE: Debian defaults + the relay settings (relayhost [127.0.0.1]:SINK_PORT),
# no HOLD, plus the W_PFX_CONF settings ('name = value', W5: concurrency and process limits);
# W2/W6 add transport_maps for d0..d9.
dlv_pfx_setup() {
  local d=$1 mode=$2 k tm=()
  pfx_setup "$d" "$PFX_PORT" relay || return 1
  if [ ${#W_PFX_CONF[@]} -gt 0 ]; then pfx_conf "$d" "${W_PFX_CONF[@]}" || return 1; fi
  case $mode in
    w2|w6)
      for k in "${!MIX_WEIGHTS[@]}"; do tm+=("$(mix_domain "$k")=smtp:[$(mix_addr "$k")]:$SINK_PORT"); done
      local IFS=,
      pfx_conf "$d" "transport_maps = inline:{ ${tm[*]} }" || return 1 ;;
  esac
  return 0
}

# dlv_op_setup INST: outpost delivering (not paused), resolver = our Unbound, MX port = SINK_PORT;
# [delivery] max_connections only when W_MAX_CONNS is set (W5), else outpost's default.
dlv_op_setup() {
  local d=$1
  op_setup "$d" "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT" no || return 1
  [ -n "${W_MAX_CONNS:-}" ] && echo "max_connections = $W_MAX_CONNS" >> "$d/outpost.conf"
  cat >> "$d/outpost.conf" <<EOF
port = $SINK_PORT
max_connections_per_destination = $W_PER_DEST
connection_max_messages = $W_CONN_MAX_MSGS

[dns]
nameserver = 127.0.0.1:$DNS_PORT
trust_ad = no
EOF
}

# dlv_mta_start MTA INST CG MODE: sets DLV_ROOT_PID; returns 1 on failure (with OP_ERROR for outpost)
dlv_mta_start() {
  local mta=$1 inst=$2 cg=$3 mode=$4
  if [ "$mta" = postfix ]; then
    dlv_pfx_setup "$inst" "$mode" || die "cannot write Postfix instance in $inst"
    if ! pfx_start "$inst" "$PFX_PORT" "$cg"; then
      OP_ERROR="Postfix instance failed to start (see $inst)"; return 1
    fi
    DLV_ROOT_PID=$PFX_MASTER_PID; DLV_PORT=$PFX_PORT
  else
    dlv_op_setup "$inst" || die "cannot write outpost config in $inst"
    op_start "$inst" "$OUTPOST_PORT" "$cg" || return 1
    DLV_ROOT_PID=$OP_PID; DLV_PORT=$OUTPOST_PORT
  fi
}

dlv_mta_stop() { # dlv_mta_stop MTA INST CG F: stop and record stop_clean/warnings
  local mta=$1 inst=$2 cg=$3 f=$4 clean=1
  if [ "$mta" = postfix ]; then pfx_stop "$inst" "$cg"
  else op_stop "$cg" || clean=0; fi
  rec "$f" stop_clean "$clean"
}

# dlv_pending MTA INST: messages (recipients) not yet finished, "TOTAL DETAIL".
#   Postfix: ready queue files (mode u+x) in maildrop/incoming/active/deferred/hold
#   outpost: recipients in state queued/held/deferred, from spool.db (read-only)
dlv_pending() {
  local mta=$1 d=$2 q out t=0
  if [ "$mta" = postfix ]; then
    out=""
    for q in maildrop incoming active deferred hold; do
      local c=0
      [ -d "$d/queue/$q" ] && c=$(find "$d/queue/$q" -type f -perm -u+x 2>/dev/null | wc -l)
      t=$((t + c)); out+="$q:$c,"
    done
    echo "$t ${out%,}"
  else
    out=$(sqlite3 -readonly -cmd '.timeout 5000' "$d/data/spool.db" \
      "select coalesce(sum(state in (0,1,2)),0) || ' queued:' || coalesce(sum(state=0),0) || ',held:' || coalesce(sum(state=1),0) || ',deferred:' || coalesce(sum(state=2),0) || ',delivered:' || coalesce(sum(state=3),0) || ',failed:' || coalesce(sum(state=4),0) from recipients" 2>/dev/null)
    echo "${out:-- sqlite-error}"
  fi
}

# dlv_pending_by_domain MTA INST: "domain:count,..." of unfinished recipients
dlv_pending_by_domain() {
  local mta=$1 d=$2
  if [ "$mta" = postfix ]; then
    # recipients of the queue files (postcat -q needs the instance's config)
    local ids
    ids=$(find "$d/queue/incoming" "$d/queue/active" "$d/queue/deferred" "$d/queue/hold" -type f -perm -u+x -printf '%f\n' 2>/dev/null)
    [ -n "$ids" ] || { echo ""; return; }
    # shellcheck disable=SC2086
    postcat -c "$d/etc" -e -q $ids 2>/dev/null | sed -n 's/^recipient: .*@//p' | sort | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 }'
  else
    sqlite3 -readonly -cmd '.timeout 5000' "$d/data/spool.db" \
      "select group_concat(domain || ':' || n) from (select domain, count(*) n from recipients where state in (0,1,2) group by domain)" 2>/dev/null
  fi
}

# dlv_deferred_logged MTA LOG: deferral records so far (cheap: grep)
dlv_deferred_logged() {
  if [ "$1" = postfix ]; then grep -c ' status=deferred ' "$2"
  else grep -c 'event=delivery .* result=deferred ' "$2"; fi
}

# ------------------------------------------------------------------ injection, several domains
# dlv_inject_plan PORT OUTPREFIX: one smtp-source per PLAN entry, in parallel, each with its
# own -t rcpt@DOMAIN, -m and -s. Sets INJ_RC (0 if all succeeded), INJ_T0, INJ_T1.
dlv_inject_plan() {
  local port=$1 out=$2 k pids=() rc p
  if [ "${#PLAN_LABEL[@]}" = 1 ]; then
    INJ_RCPT="rcpt@${PLAN_DOMAIN[0]}"
    inject "$port" "${PLAN_MSGS[0]}" "${PLAN_SESS[0]}" "$W_SIZE" "$out"
    return 0
  fi
  INJ_T0=$(now)
  for k in "${!PLAN_LABEL[@]}"; do
    (
      [ -n "$HARNESS_CG" ] && echo "$BASHPID" > "$HARNESS_CG/cgroup.procs"
      t0=$EPOCHREALTIME
      timeout --foreground --signal=TERM "$INJ_TIMEOUT" \
        smtp-source -d -s "${PLAN_SESS[k]}" -m "${PLAN_MSGS[k]}" -l "$W_SIZE" -N -M "$INJ_HELO" \
        -f "$INJ_FROM" -t "rcpt@${PLAN_DOMAIN[k]}" "127.0.0.1:$port" > "$out-${PLAN_LABEL[k]}.out" 2> "$out-${PLAN_LABEL[k]}.err"
      echo "$? $t0 $EPOCHREALTIME" > "$out-${PLAN_LABEL[k]}.rc"
    ) &
    pids+=($!); track_pid "$!"
  done
  for p in "${pids[@]}"; do wait "$p"; untrack_pid "$p"; done
  INJ_T1=$(now)
  INJ_RC=0
  for k in "${!PLAN_LABEL[@]}"; do
    rc=$(cut -d' ' -f1 "$out-${PLAN_LABEL[k]}.rc" 2>/dev/null)
    [ "${rc:-1}" = 0 ] || INJ_RC=${rc:-1}
  done
  return 0
}

# ------------------------------------------------------------------ one measured run (W1, W2, W6)
# dlv_run MTA MODE PAIR: fresh instance and sinks, inject, wait until every healthy sink has
# its share, then (W6) until the unhealthy domain's messages are all deferred, then until the
# queue holds exactly the expected remainder. Writes DIR/meta.env, sinkwatch.json, pss.json,
# mtalog.json. Returns 1 only if an engine could not start (the session stops).
dlv_run() {
  local mta=$1 mode=$2 pair=$3 n=$W_MESSAGES dir f inst k ok=1 err="" cpu0 cpu1 us0 us1
  local healthy unhealthy spec=() got pend want t_dead i deferred log
  RUN_SEQ=$((RUN_SEQ + 1))
  dir=$OUT/runs/$(printf '%02d' "$RUN_SEQ")-$mode-$mta
  inst=$dir/inst
  mkdir -p "$inst"; f=$dir/meta.env
  dlv_plan "$mode" "$n" "$W_SESSIONS"
  healthy=$(plan_sum healthy); unhealthy=$(plan_sum unhealthy)
  rec "$f" kind main; rec "$f" mode "$mode"; rec "$f" mta "$mta"; rec "$f" pair "$pair"
  rec "$f" messages "$n"; rec "$f" sessions "$W_SESSIONS"; rec "$f" size "$W_SIZE"; rec "$f" seq "$RUN_SEQ"
  rec "$f" healthy_messages "$healthy"; rec "$f" unhealthy_messages "$unhealthy"
  for k in "${!PLAN_LABEL[@]}"; do
    rec "$f" "plan_${PLAN_LABEL[k]}" "${PLAN_DOMAIN[k]} ${PLAN_ADDR[k]}:$SINK_PORT msgs=${PLAN_MSGS[k]} sessions=${PLAN_SESS[k]} healthy=${PLAN_HEALTHY[k]}"
  done
  log "run $RUN_SEQ: pair $pair, $mta, $mode, $n messages ($healthy to healthy sinks)"

  cg_create "$mta"; local cg=$CG
  rec "$f" cgroup "${cg:-none}"
  rec "$f" sink_options "-c -u nobody -m $SINK_MAX_CLIENTS ${W_SINK_OPTS[*]} (backlog $SINK_BACKLOG)"
  dlv_sinks_start "$dir" "$mode" "${W_SINK_OPTS[@]}"
  if ! dlv_mta_start "$mta" "$inst" "$cg" "$mode"; then
    rec "$f" ok 0; rec "$f" error "$OP_ERROR"
    [ "$mta" = postfix ] && pfx_stop "$inst" "$cg"
    dlv_sinks_stop; cg_destroy "$cg"
    return 1
  fi
  rec "$f" root_pid "$DLV_ROOT_PID"
  if [ "$mta" = postfix ]; then
    rec "$f" postfix_concurrency "$(postconf -c "$inst/etc" -h default_destination_concurrency_limit initial_destination_concurrency default_process_limit | tr '\n' ' ')"
    rec "$f" postfix_limits "$(postconf -c "$inst/etc" default_destination_concurrency_limit smtp_destination_concurrency_limit initial_destination_concurrency smtp_destination_concurrency_positive_feedback default_process_limit | tr '\n' ';')smtp maxproc=$(postconf -c "$inst/etc" -M smtp/unix | awk '{ print $7 }')"
  else
    rec "$f" outpost_delivery "$(sed -n '/^\[delivery\]/,/^\[/p' "$inst/outpost.conf" | grep '=' | tr '\n' ';')"
  fi
  sleep "$W_SETTLE"
  if [ "$W_QUIET_MAX" -gt 0 ]; then
    wait_quiet "$W_QUIET_MAX" "$W_QUIET_PCT"
    rec "$f" pre_run_busy_pct "$QUIET_BUSY"; rec "$f" quiet_waited_s "$QUIET_WAITED"
  fi

  for k in "${!PLAN_LABEL[@]}"; do
    if [ "${PLAN_HEALTHY[k]}" = 1 ]; then spec+=(--sink "${PLAN_LABEL[k]}=${SINK_FILES[k]}:${PLAN_MSGS[k]}")
    else spec+=(--sink "${PLAN_LABEL[k]}=${SINK_FILES[k]}:0"); fi
  done
  ( cg_exec "$HARNESS_CG" "$PY" "$MON" sinkwatch "${spec[@]}" --timeout "$W_DRAIN_TIMEOUT" \
      --stall "$W_STALL" --ready "$dir/sinkwatch.ready" --out "$dir/sinkwatch.json" ) &
  local watch=$!; track_pid "$watch"
  for ((i = 0; i < 200; i++)); do [ -e "$dir/sinkwatch.ready" ] && break; sleep 0.05; done
  # the first PSS sample (idle: after settle and quiet wait) is taken before the injection
  # (and the connections to the sinks, and drops on resolver sockets talking to our Unbound)
  pss_start "$cg" "$DLV_ROOT_PID" "$dir/pss.json" "$W_PSS_INTERVAL" --conn-port "$SINK_PORT" \
    --udp-peer-port "$DNS_PORT" --series --ready "$dir/pss.ready"
  rec "$f" stat_before "$(proc_stat_cpu)"; rec "$f" harness_ns_before "$(harness_cpu_ns)"
  rec "$f" dns_ns_before "$(dns_cpu_ns)"; rec "$f" udp_rcvbuf_errors_before "$(udp_rcvbuf_errors)"
  read -r us0 <<< "$(cpu_user_sys_ms "$cg")"; rec "$f" cpu_user_sys_ms_before "$us0"
  cpu0=$(cpu_ns "$cg" "$DLV_ROOT_PID")

  dlv_inject_plan "$DLV_PORT" "$dir/smtp-source"
  rec "$f" t_inject_start "$INJ_T0"; rec "$f" t_inject_end "$INJ_T1"; rec "$f" source_rc "$INJ_RC"
  for k in "${!PLAN_LABEL[@]}"; do
    [ -f "$dir/smtp-source-${PLAN_LABEL[k]}.rc" ] && rec "$f" "inject_${PLAN_LABEL[k]}" "$(cat "$dir/smtp-source-${PLAN_LABEL[k]}.rc")"
  done
  [ "$INJ_RC" = 0 ] || { ok=0; err="smtp-source exit status $INJ_RC: $(cat "$dir"/smtp-source*.err | head -c 300 | tr '\n' ' ')"; }

  # delivery: the watcher ends when every healthy sink has its share, or when no message
  # arrived for --stall seconds (then the run is marked failed)
  wait "$watch" 2>/dev/null; untrack_pid "$watch"
  cpu1=$(cpu_ns "$cg" "$DLV_ROOT_PID")
  read -r us1 <<< "$(cpu_user_sys_ms "$cg")"
  rec "$f" t_done "$(now)"
  rec "$f" stat_after "$(proc_stat_cpu)"; rec "$f" harness_ns_after "$(harness_cpu_ns)"
  rec "$f" dns_ns_after "$(dns_cpu_ns)"; rec "$f" udp_rcvbuf_errors_after "$(udp_rcvbuf_errors)"
  rec "$f" cpu_ns_before "$cpu0"; rec "$f" cpu_ns_after "$cpu1"; rec "$f" cpu_user_sys_ms_after "$us1"
  pss_stop

  if [ "$mta" = postfix ]; then log=$inst/maillog; else log=$inst/outpost.log; fi
  # W6: wait until every message of the unhealthy domain has been tried and deferred
  if [ "$unhealthy" -gt 0 ]; then
    for ((i = 0; i < W_DEFER_WAIT * 2; i++)); do
      deferred=$(dlv_deferred_logged "$mta" "$log")
      [ "${deferred:-0}" -ge "$unhealthy" ] && break
      sleep 0.5
    done
    rec "$f" t_deferrals_done "$(now)"; rec "$f" deferred_logged "$deferred"
    rec "$f" cpu_ns_after_deferrals "$(cpu_ns "$cg" "$DLV_ROOT_PID")"
    [ "${deferred:-0}" -ge "$unhealthy" ] || warn "$mta: only $deferred of $unhealthy messages to $(mix_domain "$W6_BAD") deferred after ${W_DEFER_WAIT}s"
  fi
  # the sink's count moves at ".", before the MTA has recorded the outcome: give the
  # queue a moment to reach the expected remainder
  want=$unhealthy
  for ((i = 0; i < 120; i++)); do
    pend=$(dlv_pending "$mta" "$inst")
    [ "${pend%% *}" = "$want" ] && break
    sleep 0.5
  done
  rec "$f" pending "$pend"; rec "$f" pending_expected "$want"
  rec "$f" pending_by_domain "$(dlv_pending_by_domain "$mta" "$inst")"
  [ "${pend%% *}" = "$want" ] || { ok=0; err="${err:+$err; }queue holds ${pend%% *} unfinished, expected $want ($pend)"; }
  # outpost's own counters (outgoing connections, DNS lookups); loopback needs no credential
  [ "$mta" = outpost ] && curl -s -m 5 "http://127.0.0.1:$OUTPOST_ADMIN_PORT/metrics" > "$dir/metrics.txt" 2>/dev/null

  dlv_mta_stop "$mta" "$inst" "$cg" "$f"
  sleep 0.2
  got=$(dlv_sink_counts); rec "$f" sink_counts "$got"
  dlv_sinks_stop
  cg_destroy "$cg"
  "$PY" "$MON" mtalog --mta "$mta" --log "$log" --out "$dir/mtalog.json"
  rec "$f" warnings "$("$PY" "$MON" mtalog --mta "$mta" --log "$log" --field warnings)"
  [ "$mta" = outpost ] && rec "$f" log_lines "$(wc -l < "$log")"
  for k in "${!PLAN_LABEL[@]}"; do
    local c; c=$(sink_count "${SINK_FILES[k]}")
    if [ "${PLAN_HEALTHY[k]}" = 1 ] && [ "$c" != "${PLAN_MSGS[k]}" ]; then
      ok=0; err="${err:+$err; }sink ${PLAN_LABEL[k]} got $c of ${PLAN_MSGS[k]}"
    elif [ "${PLAN_HEALTHY[k]}" = 0 ] && [ "$c" != 0 ]; then
      ok=0; err="${err:+$err; }sink ${PLAN_LABEL[k]} (rejects RCPT) got $c messages"
    fi
  done
  if [ "$W_KEEP" = 0 ]; then trash_later "$inst/queue" "$inst/data"; fi
  rec "$f" ok "$ok"; [ -n "$err" ] && rec "$f" error "$err"
  "$PY" "$BENCH_DIR/tools/report_delivery.py" --run "$dir" || true
  return 0
}

# ------------------------------------------------------------------ session
dlv_usage_common() {
  cat <<EOF
  --pairs N             interleaved Postfix/outpost pairs (default 3)
  --messages N          messages per run (default 20000)
  --sessions N          injection sessions, reused (default 20; W2/W6 split them by weight, min 1 per domain)
  --size BYTES          smtp-source -l (default 4096; suffix K or M for KiB, MiB)
  --per-dest N          outpost max_connections_per_destination (default 20 = Postfix's default_destination_concurrency_limit)
  --conn-max-msgs N     outpost connection_max_messages (default 100, outpost's default)
  --settle S            seconds to wait after an MTA is ready, before injecting (default 5)
  --quiet-wait S        then wait up to S s until the shared host is quiet (default 60; 0: don't)
  --quiet-pct P         "quiet" = under P % of all CPUs busy over 1 s (default 15)
  --stall S             give up on a run when no message reached a sink for S s (default 60)
  --drain-timeout S     longest wait for the last delivery, from the injection's start (default 900)
  --pss-interval S      PSS (and connection) sampling interval during a run (default 0.5)
  --ceiling-messages N  smtp-source -> smtp-sink loopback ceiling, per repetition (default 60000,
                        for --size above 4 KiB scaled down to the same octets, at least 1000)
  --ceiling-reps N      repetitions at the start and at the end of the session (default 2)
  --fsync-bench-s S     durable-create microbenchmark, seconds per variant (default 5; 0: skip)
  --no-ceiling          skip both ceilings (quick checks only)
  --outpost PATH        outpost binary (default \$OUTPOST or /work/main/build/outpost)
  --postfix-only        run only the Postfix half (no ratios)
  --outpost-only        run only the outpost half (no ratios)
  --keep                keep the queue/spool directories of every run
  --out DIR             output directory (default bench/out)
Ports (env): PFX_PORT=$PFX_PORT OUTPOST_PORT=$OUTPOST_PORT OUTPOST_ADMIN_PORT=$OUTPOST_ADMIN_PORT SINK_PORT=$SINK_PORT DNS_PORT=$DNS_PORT
EOF
}

# dlv_main WL RUNFN "MODES" [options]: the whole session. RUNFN MTA MODE PAIR is called for
# each pair, mode and MTA in that order (Postfix first). Extra workload options are handled
# by WL_opt (return 0 = consumed one argument, 2 = consumed two, 1 = unknown).
dlv_main() {
  local wl=$1 runfn=$2 modes=$3; shift 3
  local pairs=3 ceil_n="" ceil_reps=2 fbench=5 no_ceiling=0 only="" outdir="$BENCH_DIR/out" r
  W_MESSAGES=20000 W_SESSIONS=20 W_SIZE=4096 W_SETTLE=5 W_KEEP=0 W_QUIET_MAX=60 W_QUIET_PCT=15
  W_PER_DEST=20 W_CONN_MAX_MSGS=100 W_STALL=60 W_DRAIN_TIMEOUT=900 W_DEFER_WAIT=120
  W_PSS_INTERVAL=0.5 W_MAX_CONNS="" W_SINK_OPTS=() W_PFX_CONF=()   # the last three: set per run by W5
  while [ $# -gt 0 ]; do
    case $1 in
      --pairs) pairs=$2; shift ;;
      --messages) W_MESSAGES=$2; shift ;;
      --sessions) W_SESSIONS=$2; shift ;;
      --size) W_SIZE=$2; shift ;;
      --per-dest) W_PER_DEST=$2; shift ;;
      --conn-max-msgs) W_CONN_MAX_MSGS=$2; shift ;;
      --settle) W_SETTLE=$2; shift ;;
      --quiet-wait) W_QUIET_MAX=$2; shift ;;
      --quiet-pct) W_QUIET_PCT=$2; shift ;;
      --stall) W_STALL=$2; shift ;;
      --drain-timeout) W_DRAIN_TIMEOUT=$2; shift ;;
      --pss-interval) W_PSS_INTERVAL=$2; shift ;;
      --ceiling-messages) ceil_n=$2; shift ;;
      --ceiling-reps) ceil_reps=$2; shift ;;
      --fsync-bench-s) fbench=$2; shift ;;
      --no-ceiling) no_ceiling=1 ;;
      --outpost) OUTPOST=$2; shift ;;
      --postfix-only) only=postfix ;;
      --outpost-only) only=outpost ;;
      --keep) W_KEEP=1 ;;
      --out) outdir=$2; shift ;;
      -h|--help) "${wl}_usage"; return 0 ;;
      *)
        r=1
        declare -F "${wl}_opt" > /dev/null && { "${wl}_opt" "$@"; r=$?; }
        case $r in
          0) ;;
          2) shift ;;
          *) "${wl}_usage" >&2; die "unknown option: $1" ;;
        esac ;;
    esac
    shift
  done
  local v
  W_SIZE=$(size_bytes "$W_SIZE") || die "not a size (BYTES, or with K or M): $W_SIZE"
  [[ $W_PSS_INTERVAL =~ ^[0-9]*\.?[0-9]+$ ]] || die "--pss-interval: not a number of seconds: $W_PSS_INTERVAL"
  if [ -z "$ceil_n" ]; then   # the same octets as 60 000 x 4 KiB, for larger messages
    ceil_n=60000
    [ "$W_SIZE" -gt 4096 ] && ceil_n=$((60000 * 4096 / W_SIZE)) && [ "$ceil_n" -lt 1000 ] && ceil_n=1000
  fi
  for v in "$pairs" "$W_MESSAGES" "$W_SESSIONS" "$W_SIZE" "$W_PER_DEST" "$W_CONN_MAX_MSGS" "$ceil_n" "$ceil_reps" \
           "$fbench" "$W_SETTLE" "$W_QUIET_MAX" "$W_QUIET_PCT" "$W_STALL" "$W_DRAIN_TIMEOUT"; do
    [[ $v =~ ^[0-9]+$ ]] || die "not a non-negative integer: $v"
  done
  if [ "$pairs" -lt 1 ] || [ "$W_MESSAGES" -lt 100 ]; then die "--pairs must be >= 1 and --messages >= 100"; fi
  need_root
  need_cmds postfix postconf postcat smtp-source smtp-sink ss timeout sqlite3 "$PY"
  [ "$only" = postfix ] || { need_cmds "$UNBOUND" unbound-checkconf; op_check_binary; OUTPOST=$(readlink -f "$OUTPOST"); }
  DLV_MTAS=(postfix outpost)
  [ -n "$only" ] && DLV_MTAS=("$only")
  port_free_or_die "$SINK_PORT"
  [ "$only" = outpost ] || port_free_or_die "$PFX_PORT"
  [ "$only" = postfix ] || port_free_or_die "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT" "$DNS_PORT"

  local ts; ts=$(date +%Y%m%dT%H%M%S)
  OUT=$outdir/$wl-$ts
  mkdir -p "$OUT/runs" || die "cannot create $OUT"
  local json=$outdir/$wl-$ts.json s=$OUT/session.env
  bench_traps
  RUN_SEQ=0
  log "$wl session $ts -> $OUT"
  rec "$s" workload "$wl"; rec "$s" modes "$modes"; rec "$s" timestamp "$ts"; rec "$s" t_start "$(now)"
  rec "$s" pairs "$pairs"; rec "$s" messages "$W_MESSAGES"; rec "$s" sessions "$W_SESSIONS"
  rec "$s" size "$W_SIZE"; rec "$s" settle_s "$W_SETTLE"; rec "$s" per_dest "$W_PER_DEST"
  rec "$s" conn_max_msgs "$W_CONN_MAX_MSGS"
  rec "$s" quiet_wait_max_s "$W_QUIET_MAX"; rec "$s" quiet_pct "$W_QUIET_PCT"; rec "$s" stall_s "$W_STALL"
  rec "$s" pss_interval_s "$W_PSS_INTERVAL"; rec "$s" ceiling_messages "$ceil_n"
  rec "$s" mtas "${DLV_MTAS[*]}"
  rec "$s" ports "postfix=$PFX_PORT outpost=$OUTPOST_PORT admin=$OUTPOST_ADMIN_PORT sink=$SINK_PORT dns=$DNS_PORT"
  rec "$s" injector "smtp-source -d -s S -m N -l $W_SIZE -N -M $INJ_HELO -f $INJ_FROM -t rcpt@DOMAIN 127.0.0.1:PORT"
  declare -F "${wl}_session_info" > /dev/null && "${wl}_session_info" "$s"
  host_info "$s"
  if [ "$only" != postfix ]; then
    { mkdir -p "$OUT/bin" && cp "$OUTPOST" "$OUT/bin/outpost"; } || die "cannot copy $OUTPOST"
    rec "$s" outpost_source "$OUTPOST"
    OUTPOST=$OUT/bin/outpost
    rec "$s" outpost_binary "$OUTPOST"
    rec "$s" outpost_version "$(timeout 5 "$OUTPOST" version 2>&1 | head -1)"
    rec "$s" outpost_sha256 "$(sha256sum "$OUTPOST" | cut -c1-16)"
  fi
  rec "$s" git_rev "$(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo none)"

  harness_cg_init
  # DLV_DNS_ALWAYS=1: the workload's Postfix resolves through it too (W7: DANE)
  if [ "$only" != postfix ] || [ "${DLV_DNS_ALWAYS:-0}" = 1 ]; then dns_start "$OUT/dns"; fi
  if [ "$only" != postfix ]; then
    mkdir -p "$OUT/preflight"
    dlv_op_setup "$OUT/preflight" || die "cannot write $OUT/preflight/outpost.conf"
    "$OUTPOST" config check -c "$OUT/preflight/outpost.conf" > "$OUT/preflight/config-check.out" 2>&1 ||
      die "outpost config check -c $OUT/preflight/outpost.conf failed: $(head -5 "$OUT/preflight/config-check.out" | tr '\n' ' ')"
    op_start "$OUT/preflight" "$OUTPOST_PORT" "" || die "outpost does not start: $OP_ERROR (config: $OUT/preflight/outpost.conf)"
    op_stop "" || warn "outpost did not stop on SIGTERM within ${OUTPOST_STOP_TIMEOUT}s"
    trash_later "$OUT/preflight/data"
  fi

  local i
  if [ "$no_ceiling" = 0 ]; then
    for ((i = 1; i <= ceil_reps; i++)); do ceiling_run "$OUT/ceiling" "start-$i" "$ceil_n" "$W_SESSIONS" "$W_SIZE"; done
    [ "$fbench" -gt 0 ] && fsync_ceiling "$OUT/ceiling" fsync-start "$fbench"
    declare -F "${wl}_ceilings" > /dev/null && "${wl}_ceilings" start   # the workload's own (W7: TLS handshakes)
  fi

  local failed=0 p mta mode
  for ((p = 1; p <= pairs && failed == 0; p++)); do
    for mode in $modes; do
      for mta in "${DLV_MTAS[@]}"; do
        "$runfn" "$mta" "$mode" "$p" || { failed=1; break 2; }
      done
    done
  done
  [ "$failed" = 0 ] || warn "an engine failed to start; remaining runs skipped (report is partial)"

  if [ "$no_ceiling" = 0 ]; then
    for ((i = 1; i <= ceil_reps; i++)); do ceiling_run "$OUT/ceiling" "end-$i" "$ceil_n" "$W_SESSIONS" "$W_SIZE"; done
    [ "$fbench" -gt 0 ] && fsync_ceiling "$OUT/ceiling" fsync-end "$fbench"
    declare -F "${wl}_ceilings" > /dev/null && "${wl}_ceilings" end
  fi
  rec "$s" t_end "$(now)"
  rec "$s" host_loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
  rec "$s" complete "$((1 - failed))"
  dns_stop
  trash_empty

  "$PY" "${DLV_REPORT:-$BENCH_DIR/tools/report_delivery.py}" "$OUT" --json "$json" || die "report failed"
  log "JSON: $json"
  return "$failed"
}
