#!/bin/bash
# W7, TLS (bench/README.md, "W7"): W1 delivered over STARTTLS to a DANE-secured sink (ECDSA P-256 / RSA-2048), with and without connection reuse
# Cases per pair: reuse-ecdsa reuse-rsa permsg-ecdsa permsg-rsa, each Postfix then outpost.
# Both MTAs run in a private network namespace whose /etc/resolv.conf points at a validating
# Unbound on 127.0.0.1:53 (Postfix's resolver cannot use another port), in front of NSD
# serving the DNSSEC-signed zone w7.test with the sink's TLSA records.
# Sourced by bench/run.sh after lib.sh.
# shellcheck source-path=SCRIPTDIR/.. source=lib_delivery.sh
. "$BENCH_DIR/lib_delivery.sh"

W7_DOMAIN=w7.test               # recipient domain: MX 10 mx.w7.test, A 127.0.0.1, TLSA
W7_MX=mx.$W7_DOMAIN
W1_DOMAIN=$W7_DOMAIN            # dlv_plan/dlv_inject_plan: rcpt@w7.test
W7_CASES="reuse-ecdsa reuse-rsa permsg-ecdsa permsg-rsa"
W7_LEVEL=dane                   # dane: TLSA records, Postfix dane, outpost verifies by DANE
                                # encrypt: no TLSA records, Postfix encrypt, outpost opportunistic
W7_SINK_WORKERS=1
W7_HS_SECONDS=2                 # tls_hsbench seconds per variant (0: no handshake ceiling)
W7_AUTH_PORT=${W7_AUTH_PORT:-24554}
DNS_PORT=53                     # inside the namespace: where resolv.conf's nameserver is
SINK_BIN=$BENCH_DIR/tools/bin/tls_sink
HSB_BIN=$BENCH_DIR/tools/bin/tls_hsbench
DLV_DNS_ALWAYS=1                # Postfix resolves through the same Unbound
DLV_REPORT=$BENCH_DIR/tools/report_w7.py

w7_usage() {
  cat <<EOF
usage: bench/run.sh w7 [options]
W7: W1 (N x 4 KiB, 1 recipient domain, 20 injection sessions) delivered over STARTTLS to
tools/tls_sink (C, epoll, OpenSSL; session tickets and cache on), whose MX host mx.$W7_DOMAIN is
in a DNSSEC-signed zone with TLSA 3 1 1 records of both sink keys. Cases (each a Postfix run then
an outpost run, per pair):
  reuse-ecdsa, reuse-rsa    connection reuse: outpost connection_max_messages = 100 (default);
                            Postfix smtp_tls_connection_reuse = yes (tlsproxy) + connection cache on demand
  permsg-ecdsa, permsg-rsa  a connection (and a TLS handshake, resumed or not) per message:
                            outpost connection_max_messages = 1; Postfix smtp_connection_cache_on_demand = no
Postfix: smtp_tls_security_level = dane (--level encrypt: encrypt), smtp_dns_support_level = dnssec,
smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache (Debian's), relayhost = $W7_DOMAIN:SINK_PORT (MX lookup).
outpost: its defaults ([dns] nameserver = 127.0.0.1:53, trust_ad = yes, [tls] ca_file = the sink's CAs).
Everything runs in a private network namespace (ip netns; /etc/resolv.conf bind-mounted in a
private mount namespace), so port 53 and the other ports do not clash with anything else.
  --cases "LIST"        subset/order of the cases (default "$W7_CASES")
  --level dane|encrypt  dane (default): TLSA records, verification on both sides; encrypt: no TLSA
                        records, Postfix encrypt (no verification), outpost opportunistic
  --sink-workers N      tls_sink worker processes (default $W7_SINK_WORKERS)
  --hs-seconds S        tls_hsbench seconds per variant at the start and end (default $W7_HS_SECONDS; 0: skip)
Defaults differing from W1: --messages 10000.
EOF
  dlv_usage_common
}

# ------------------------------------------------------------------ PKI (sink certificates)
# One CA per key type; leaf certificates for mx.w7.test with the CA in the chain.
w7_pki() {
  local d=$1 k
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$W7_MX" > leaf.ext
    for k in ecdsa rsa; do
      local new=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
      [ "$k" = rsa ] && new=(-newkey rsa:2048)
      openssl req -x509 "${new[@]}" -nodes -keyout "ca-$k.key" -out "ca-$k.crt" -days 30 \
        -subj "/CN=W7 bench $k CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null || exit 1
      openssl req "${new[@]}" -nodes -keyout "$k.key" -out "$k.csr" -subj "/CN=$W7_MX" 2> /dev/null || exit 1
      openssl x509 -req -in "$k.csr" -CA "ca-$k.crt" -CAkey "ca-$k.key" -CAcreateserial -days 30 \
        -out "$k.crt" -extfile leaf.ext 2> /dev/null || exit 1
      cat "$k.crt" "ca-$k.crt" > "$k.chain.crt"
      openssl x509 -in "$k.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
        openssl dgst -sha256 -r | cut -d' ' -f1 > "$k.spki-sha256"
    done
    cat ca-ecdsa.crt ca-rsa.crt > ca-bundle.crt
    chmod 600 ./*.key
  ) || die "cannot make the sink PKI in $d"
}

# ------------------------------------------------------------------ DNS: NSD (signed zone) + validating Unbound
# Replaces lib_delivery.sh's dns_start (W1's local-data Unbound); same approach as
# tests/e2e/dns_peers.sh (ldns-keygen/ldns-signzone at start, signatures valid 4 weeks),
# but one zone, w7.test, whose KSK is Unbound's trust anchor.
W7_NSD_PID=""
dns_start() {
  local d=$1 ksk zsk a t
  mkdir -p "$d"
  port_free_or_die "$DNS_PORT" "$W7_AUTH_PORT"
  ss -H -lun "sport = :$DNS_PORT" 2>/dev/null | grep -q . && die "udp 127.0.0.1:$DNS_PORT is in use in the namespace"
  {
    cat <<EOF
\$ORIGIN $W7_DOMAIN.
\$TTL 3600
@        SOA  ns.$W7_DOMAIN. hostmaster.$W7_DOMAIN. $(date +%s) 3600 600 86400 300
@        NS   ns.$W7_DOMAIN.
ns       A    127.0.0.1
@        MX   10 $W7_MX.
mx       A    127.0.0.1
EOF
    if [ "$W7_LEVEL" = dane ]; then
      echo "_$SINK_PORT._tcp.mx TLSA 3 1 1 $(cat "$OUT/pki/ecdsa.spki-sha256")"
      echo "_$SINK_PORT._tcp.mx TLSA 3 1 1 $(cat "$OUT/pki/rsa.spki-sha256")"
    fi
  } > "$d/$W7_DOMAIN.zone"
  (
    cd "$d" || exit 1
    ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$W7_DOMAIN.") && zsk=$(ldns-keygen -a ECDSAP256SHA256 "$W7_DOMAIN.") || exit 1
    ldns-signzone -n -o "$W7_DOMAIN." "$W7_DOMAIN.zone" "$ksk" "$zsk" || exit 1
    grep -h DNSKEY "$ksk.key" | cut -d';' -f1 > trust-anchor
  ) > "$d/sign.out" 2>&1 || { cat "$d/sign.out" >&2; die "cannot sign the zone (ldnsutils)"; }
  cat > "$d/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$W7_AUTH_PORT
    server-count: 1
    rrl-ratelimit: 0
    username: ""
    chroot: ""
    zonesdir: "$d"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    pidfile: "$d/nsd.pid"
    logfile: "$d/nsd.log"
remote-control:
    control-enable: no
zone:
    name: "$W7_DOMAIN."
    zonefile: "$W7_DOMAIN.zone.signed"
EOF
  cat > "$d/unbound.conf" <<EOF
# Validating resolver of the W7 namespace (bench/workloads/w7.sh), for both MTAs
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
  val-log-level: 2
  num-threads: 1
  do-ip6: no
  so-reuseport: no
  do-not-query-localhost: no
  module-config: "validator iterator"
  trust-anchor-file: "$d/trust-anchor"
  local-zone: "test." nodefault
  access-control: 127.0.0.0/8 allow
remote-control:
  control-enable: no
stub-zone:
  name: "$W7_DOMAIN."
  stub-addr: 127.0.0.1@$W7_AUTH_PORT
EOF
  nsd-checkconf "$d/nsd.conf" > "$d/nsd-checkconf.out" 2>&1 || { cat "$d/nsd-checkconf.out" >&2; die "bad $d/nsd.conf"; }
  unbound-checkconf "$d/unbound.conf" > "$d/unbound-checkconf.out" 2>&1 ||
    { cat "$d/unbound-checkconf.out" >&2; die "bad unbound config $d/unbound.conf"; }
  cg_create dns; DNS_CG=$CG
  ( cg_exec "$DNS_CG" nsd -d -c "$d/nsd.conf" ) > "$d/nsd.out" 2>&1 &
  W7_NSD_PID=$!; track_pid "$W7_NSD_PID"
  ( cg_exec "$DNS_CG" "$UNBOUND" -d -c "$d/unbound.conf" ) > "$d/unbound.log" 2>&1 &
  DNS_PID=$!; track_pid "$DNS_PID"
  for ((a = 0; a < 200; a++)); do
    ss -H -lun "sport = :$W7_AUTH_PORT" | grep -q . && ss -H -lun "sport = :$DNS_PORT" | grep -q . && break
    alive "$W7_NSD_PID" && alive "$DNS_PID" || break
    sleep 0.05
  done
  ss -H -lun "sport = :$DNS_PORT" | grep -q . || { cat "$d/nsd.out" "$d/unbound.log" >&2; die "nsd/unbound did not start"; }
  # what both MTAs will see: answers with AD, also through the namespace's /etc/resolv.conf (Postfix)
  a=$(dig +dnssec +time=2 +tries=2 "$W7_DOMAIN" MX | grep -c 'flags:.* ad')
  t=$(dig +short +time=2 +tries=2 "$W7_DOMAIN" MX)
  [ "$a" = 1 ] && [ "$t" = "10 $W7_MX." ] ||
    die "the resolver in /etc/resolv.conf ($(grep -m1 nameserver /etc/resolv.conf)) answers '$t' (AD: $a) for MX $W7_DOMAIN; see $d/unbound.log"
  if [ "$W7_LEVEL" = dane ]; then
    t=$(dig +dnssec +time=2 +tries=2 @127.0.0.1 -p "$DNS_PORT" "_$SINK_PORT._tcp.$W7_MX" TLSA)
    grep -q 'flags:.* ad' <<< "$t" && [ "$(grep -c 'IN.TLSA.3 1 1' <<< "$t")" = 2 ] ||
      die "no validated TLSA records for _$SINK_PORT._tcp.$W7_MX (see $d/unbound.log): $t"
  fi
  log "DNS: nsd PID $W7_NSD_PID (signed $W7_DOMAIN) + validating unbound PID $DNS_PID on 127.0.0.1:$DNS_PORT (AD ok$([ "$W7_LEVEL" = dane ] && echo ", TLSA _$SINK_PORT._tcp.$W7_MX ok"))"
}
dns_stop() {
  [ -n "$DNS_PID" ] && stop_pid "$DNS_PID" TERM 5; DNS_PID=""
  [ -n "$W7_NSD_PID" ] && stop_pid "$W7_NSD_PID" TERM 5; W7_NSD_PID=""
  [ -n "$DNS_CG" ] && cg_destroy "$DNS_CG"; DNS_CG=""
}

# ------------------------------------------------------------------ MTA configurations
# outpost: its defaults plus the bench's delivery port and resolver (replaces lib_delivery.sh's,
# which the pre-flight also calls). W_CONN_MAX_MSGS is set per case by w7_run.
dlv_op_setup() {
  local d=$1
  op_setup "$d" "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT" no || return 1
  cat >> "$d/outpost.conf" <<EOF
port = $SINK_PORT
max_connections_per_destination = $W_PER_DEST
connection_max_messages = $W_CONN_MAX_MSGS

[dns]
nameserver = 127.0.0.1:$DNS_PORT
trust_ad = yes

[tls]
ca_file = $OUT/pki/ca-bundle.crt
EOF
}

# w7_pfx_setup INST REUSE(yes|no)
w7_pfx_setup() {
  local d=$1 reuse=$2
  pfx_setup "$d" "$PFX_PORT" relay || return 1
  pfx_conf "$d" "relayhost = $W7_DOMAIN:$SINK_PORT" \
    "smtp_tls_security_level = $W7_LEVEL" \
    "smtp_dns_support_level = dnssec" \
    "dnssec_probe = ns:$W7_DOMAIN." \
    "smtp_tls_CAfile = $OUT/pki/ca-bundle.crt" \
    "smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache" \
    "smtp_tls_loglevel = 1" || return 1
  if [ "$reuse" = yes ]; then
    pfx_conf "$d" "smtp_tls_connection_reuse = yes" "smtp_connection_cache_on_demand = yes" || return 1
  else
    pfx_conf "$d" "smtp_tls_connection_reuse = no" "smtp_connection_cache_on_demand = no" || return 1
  fi
  # Debian's master.cf has tlsproxy commented out; smtp_tls_connection_reuse needs it
  echo 'tlsproxy  unix  -       -       n       -       0       tlsproxy' >> "$d/etc/master.cf"
}

# ------------------------------------------------------------------ the sink
W7_SINK_PID=""; W7_SINK_CG=""
# w7_sink_start DIR KEYTYPE: tls_sink on 127.0.0.1:SINK_PORT in a cgroup nested in the
# harness's (so the harness CPU and the foreign % stay as in W1, and the sink's own CPU is known).
# One TLS 1.3 ticket per handshake (-t 1), as Postfix's smtpd issues (OpenSSL's default is 2
# after a full handshake, 1 after a resumed one).
w7_sink_start() {
  local d=$1 k=$2 i
  port_free_or_die "$SINK_PORT"
  W7_SINK_CG=""
  if [ -n "$HARNESS_CG" ]; then
    W7_SINK_CG=$HARNESS_CG/sink-$RUN_SEQ
    if mkdir "$W7_SINK_CG" 2> /dev/null; then _CGROUPS=("$W7_SINK_CG" "${_CGROUPS[@]}"); else W7_SINK_CG=$HARNESS_CG; fi
  fi
  ( cg_exec "$W7_SINK_CG" "$SINK_BIN" -c "$OUT/pki/$k.chain.crt" -k "$OUT/pki/$k.key" -n "$W7_MX" \
      -w "$W7_SINK_WORKERS" -t 1 -o "$d/sink.status" "127.0.0.1:$SINK_PORT" ) > "$d/sink.out" 2> "$d/sink.err" &
  W7_SINK_PID=$!; track_pid "$W7_SINK_PID"
  SINK_FILES=("$d/sink.status")
  for ((i = 0; i < 200; i++)); do
    [ -s "$d/sink.status" ] && port_listening "$SINK_PORT" && return 0
    alive "$W7_SINK_PID" || break
    sleep 0.05
  done
  cat "$d/sink.err" >&2; die "tls_sink did not start on 127.0.0.1:$SINK_PORT"
}
w7_sink_cpu_ns() { if [ -n "$W7_SINK_CG" ]; then cat "$W7_SINK_CG/cpuacct.usage"; else echo -; fi; }
w7_sink_stop() {
  [ -n "$W7_SINK_PID" ] && stop_pid "$W7_SINK_PID" TERM 5; W7_SINK_PID=""
  if [ -n "$W7_SINK_CG" ] && [ "$W7_SINK_CG" != "$HARNESS_CG" ]; then cg_destroy "$W7_SINK_CG"; fi
  W7_SINK_CG=""
}

# ------------------------------------------------------------------ one run
# w7_run MTA CASE PAIR: like dlv_run (W1), with tls_sink and the case's TLS settings.
w7_run() {
  local mta=$1 mode=$2 pair=$3 n=$W_MESSAGES dir f inst ok=1 err="" cpu0 cpu1 us0 us1 reuse key
  local pend want i log st got
  case $mode in
    reuse-ecdsa) reuse=yes key=ecdsa ;;
    reuse-rsa) reuse=yes key=rsa ;;
    permsg-ecdsa) reuse=no key=ecdsa ;;
    permsg-rsa) reuse=no key=rsa ;;
    *) die "unknown W7 case: $mode" ;;
  esac
  RUN_SEQ=$((RUN_SEQ + 1))
  dir=$OUT/runs/$(printf '%02d' "$RUN_SEQ")-$mode-$mta
  inst=$dir/inst
  mkdir -p "$inst"; f=$dir/meta.env
  dlv_plan w1 "$n" "$W_SESSIONS"
  if [ "$reuse" = yes ]; then W_CONN_MAX_MSGS=$W7_CONN_MAX_REUSE; else W_CONN_MAX_MSGS=1; fi
  rec "$f" kind main; rec "$f" mode "$mode"; rec "$f" mta "$mta"; rec "$f" pair "$pair"
  rec "$f" messages "$n"; rec "$f" sessions "$W_SESSIONS"; rec "$f" size "$W_SIZE"; rec "$f" seq "$RUN_SEQ"
  rec "$f" healthy_messages "$n"; rec "$f" unhealthy_messages 0
  rec "$f" reuse "$reuse"; rec "$f" key "$key"; rec "$f" level "$W7_LEVEL"
  log "run $RUN_SEQ: pair $pair, $mta, $mode ($W7_LEVEL), $n messages"

  cg_create "$mta"; local cg=$CG
  rec "$f" cgroup "${cg:-none}"
  w7_sink_start "$dir" "$key"
  rec "$f" sink_cgroup "${W7_SINK_CG:-none}"
  if [ "$mta" = postfix ]; then
    w7_pfx_setup "$inst" "$reuse" || die "cannot write Postfix instance in $inst"
    if pfx_start "$inst" "$PFX_PORT" "$cg"; then DLV_ROOT_PID=$PFX_MASTER_PID; DLV_PORT=$PFX_PORT
    else
      rec "$f" ok 0; rec "$f" error "Postfix instance failed to start (see $inst)"
      pfx_stop "$inst" "$cg"; w7_sink_stop; cg_destroy "$cg"; return 1
    fi
    rec "$f" postfix_tls "$(postconf -c "$inst/etc" smtp_tls_security_level smtp_dns_support_level smtp_tls_connection_reuse smtp_connection_cache_on_demand smtp_connection_reuse_time_limit smtp_tls_session_cache_database | tr '\n' ';')"
  else
    dlv_op_setup "$inst" || die "cannot write outpost config in $inst"
    if op_start "$inst" "$OUTPOST_PORT" "$cg"; then DLV_ROOT_PID=$OP_PID; DLV_PORT=$OUTPOST_PORT
    else
      rec "$f" ok 0; rec "$f" error "$OP_ERROR"; w7_sink_stop; cg_destroy "$cg"; return 1
    fi
    rec "$f" outpost_conn_max_messages "$W_CONN_MAX_MSGS"
  fi
  rec "$f" root_pid "$DLV_ROOT_PID"
  sleep "$W_SETTLE"
  if [ "$W_QUIET_MAX" -gt 0 ]; then
    wait_quiet "$W_QUIET_MAX" "$W_QUIET_PCT"
    rec "$f" pre_run_busy_pct "$QUIET_BUSY"; rec "$f" quiet_waited_s "$QUIET_WAITED"
  fi

  ( cg_exec "$HARNESS_CG" "$PY" "$MON" sinkwatch --sink "dest=$dir/sink.status:$n" --timeout "$W_DRAIN_TIMEOUT" \
      --stall "$W_STALL" --ready "$dir/sinkwatch.ready" --out "$dir/sinkwatch.json" ) &
  local watch=$!; track_pid "$watch"
  for ((i = 0; i < 200; i++)); do [ -e "$dir/sinkwatch.ready" ] && break; sleep 0.05; done
  pss_start "$cg" "$DLV_ROOT_PID" "$dir/pss.json" 0.5
  rec "$f" sink_status_before "$(cat "$dir/sink.status")"
  rec "$f" stat_before "$(proc_stat_cpu)"; rec "$f" harness_ns_before "$(harness_cpu_ns)"
  rec "$f" dns_ns_before "$(dns_cpu_ns)"; rec "$f" sink_ns_before "$(w7_sink_cpu_ns)"
  read -r us0 <<< "$(cpu_user_sys_ms "$cg")"; rec "$f" cpu_user_sys_ms_before "$us0"
  cpu0=$(cpu_ns "$cg" "$DLV_ROOT_PID")

  dlv_inject_plan "$DLV_PORT" "$dir/smtp-source"
  rec "$f" t_inject_start "$INJ_T0"; rec "$f" t_inject_end "$INJ_T1"; rec "$f" source_rc "$INJ_RC"
  [ "$INJ_RC" = 0 ] || { ok=0; err="smtp-source exit status $INJ_RC: $(cat "$dir"/smtp-source*.err | head -c 300 | tr '\n' ' ')"; }

  wait "$watch" 2>/dev/null; untrack_pid "$watch"
  cpu1=$(cpu_ns "$cg" "$DLV_ROOT_PID")
  read -r us1 <<< "$(cpu_user_sys_ms "$cg")"
  rec "$f" t_done "$(now)"
  rec "$f" stat_after "$(proc_stat_cpu)"; rec "$f" harness_ns_after "$(harness_cpu_ns)"
  rec "$f" dns_ns_after "$(dns_cpu_ns)"; rec "$f" sink_ns_after "$(w7_sink_cpu_ns)"
  rec "$f" cpu_ns_before "$cpu0"; rec "$f" cpu_ns_after "$cpu1"; rec "$f" cpu_user_sys_ms_after "$us1"
  kill -USR1 "$W7_SINK_PID" 2> /dev/null; sleep 0.05
  rec "$f" sink_status_done "$(cat "$dir/sink.status")"
  pss_stop

  if [ "$mta" = postfix ]; then log=$inst/maillog; else log=$inst/outpost.log; fi
  want=0
  for ((i = 0; i < 120; i++)); do
    pend=$(dlv_pending "$mta" "$inst")
    [ "${pend%% *}" = "$want" ] && break
    sleep 0.5
  done
  rec "$f" pending "$pend"; rec "$f" pending_expected "$want"
  rec "$f" pending_by_domain "$(dlv_pending_by_domain "$mta" "$inst")"
  [ "${pend%% *}" = "$want" ] || { ok=0; err="${err:+$err; }queue holds ${pend%% *} unfinished, expected $want ($pend)"; }
  if [ "$mta" = outpost ]; then   # the engine's own TLS counters (admin /metrics, no credential from loopback)
    curl -sS -m 5 "http://127.0.0.1:$OUTPOST_ADMIN_PORT/metrics" > "$dir/metrics.txt" 2> "$dir/metrics.err" ||
      warn "outpost /metrics: $(head -c 200 "$dir/metrics.err")"
  fi

  dlv_mta_stop "$mta" "$inst" "$cg" "$f"
  sleep 0.2
  w7_sink_stop
  got=$(sink_count "$dir/sink.status")
  rec "$f" sink_counts "dest=$got"
  rec "$f" sink_status_end "$(cat "$dir/sink.status")"
  cg_destroy "$cg"
  "$PY" "$MON" mtalog --mta "$mta" --log "$log" --out "$dir/mtalog.json"
  "$PY" "$BENCH_DIR/tools/report_w7.py" --tlslog "$mta" "$log" > "$dir/tlslog.json"
  rec "$f" warnings "$("$PY" "$MON" mtalog --mta "$mta" --log "$log" --field warnings)"
  [ "$mta" = outpost ] && rec "$f" log_lines "$(wc -l < "$log")"
  [ "$got" = "$n" ] || { ok=0; err="${err:+$err; }sink got $got of $n"; }
  st=$(cat "$dir/sink.status")
  [[ $st =~ mesg_plain=0\  ]] || { ok=0; err="${err:+$err; }messages in plaintext: ${st##*mesg_plain=}"; }
  [[ $st =~ hs_fail=0\  ]] || { ok=0; err="${err:+$err; }failed TLS handshakes at the sink: $st"; }
  if [ "$W_KEEP" = 0 ]; then trash_later "$inst/queue" "$inst/data"; fi
  rec "$f" ok "$ok"; [ -n "$err" ] && rec "$f" error "$err"
  "$PY" "$BENCH_DIR/tools/report_w7.py" --run "$dir" || true
  return 0
}

# ------------------------------------------------------------------ handshake ceilings
# w7_ceilings start|end: tls_hsbench, per key type, full and resumed handshakes, the client
# verifying (PKIX against the sink's CA): CPU per handshake on each side, one core.
w7_ceilings() {
  local k r d=$OUT/ceiling
  [ "$W7_HS_SECONDS" != 0 ] || return 0
  mkdir -p "$d"
  for k in ecdsa rsa; do
    for r in "" -r; do
      ( cg_exec "$HARNESS_CG" "$HSB_BIN" -c "$OUT/pki/$k.chain.crt" -k "$OUT/pki/$k.key" -A "$OUT/pki/ca-$k.crt" \
          -H "$W7_MX" -s "$W7_HS_SECONDS" -t 1 $r ) >> "$d/tls-$1.jsonl" 2>> "$d/tls-$1.err" ||
        warn "tls_hsbench failed (see $d/tls-$1.err)"
    done
  done
  log "TLS handshake ceiling ($1), per core: $("$PY" -c '
import json, sys
out = []
for l in open(sys.argv[1]):
    d = json.loads(l)
    out.append("%s %s client %.0f us server %.0f us" % ("rsa" if "rsa" in d["cert"] else "ecdsa",
               "resumed" if d["resume"] else "full", d["client_us"], d["server_us"]))
print("; ".join(out))' "$d/tls-$1.jsonl" 2>/dev/null)"
}

w7_session_info() {
  local s=$1
  rec "$s" w7_cases "$W7_CASES"; rec "$s" w7_level "$W7_LEVEL"; rec "$s" w7_sink_workers "$W7_SINK_WORKERS"
  rec "$s" w7_netns "${W7_NETNS:-none}"; rec "$s" w7_conn_max_reuse "$W7_CONN_MAX_REUSE"
  rec "$s" openssl_version "$(openssl version)"
  w7_pki "$OUT/pki"
  rec "$s" sink_spki_sha256 "ecdsa=$(cat "$OUT/pki/ecdsa.spki-sha256") rsa=$(cat "$OUT/pki/rsa.spki-sha256")"
}

# ------------------------------------------------------------------ namespace wrapper
W7_NETNS=${W7_NETNS:-}
w7_main() {
  local a
  for a in "$@"; do case $a in -h|--help) w7_usage; return 0 ;; esac; done
  need_root
  need_cmds ip nsenter unshare mount nsd nsd-checkconf ldns-keygen ldns-signzone dig curl openssl make cc
  make -s -C "$BENCH_DIR/tools" > /dev/null || die "cannot build bench/tools (tls_sink, tls_hsbench): make -C $BENCH_DIR/tools"
  if [ -z "$W7_NETNS" ]; then
    # outside: make the namespace and its resolv.conf, run this workload inside, remove them
    local ns=outpost-bench-w7-$$ rc resolv child
    resolv=$(mktemp /tmp/outpost-bench-w7-resolv.XXXXXX) || die "mktemp"
    printf 'nameserver 127.0.0.1\noptions trust-ad edns0\n' > "$resolv"
    chmod 644 "$resolv"
    ip netns add "$ns" || die "ip netns add $ns failed"
    ip -n "$ns" link set lo up
    log "W7: network namespace $ns (its own loopback; /etc/resolv.conf -> 127.0.0.1:53 inside)"
    # `ip netns exec` would remount /sys and hide /sys/fs/cgroup: enter the network namespace
    # with nsenter, and bind-mount resolv.conf in a private mount namespace (unshare -m)
    W7_NETNS=$ns nsenter --net="/run/netns/$ns" unshare --mount --propagation private \
      bash -c 'mount --bind "$1" /etc/resolv.conf || exit 1; shift; exec "$@"' w7ns "$resolv" \
      "$BENCH_DIR/run.sh" w7 "$@" &
    child=$!
    trap 'kill -TERM $child 2>/dev/null' INT TERM
    wait "$child"; rc=$?
    while alive "$child"; do wait "$child"; rc=$?; done   # wait returns early on a trapped signal
    trap - INT TERM
    ip netns del "$ns" || warn "ip netns del $ns failed"
    rm -f "$resolv"
    return "$rc"
  fi
  [ -x "$SINK_BIN" ] && [ -x "$HSB_BIN" ] || die "bench/tools/bin is not built"
  W7_CONN_MAX_REUSE=100
  # W7's own options are taken here (dlv_main gets the case list as its modes); the others
  # go to dlv_main; --conn-max-msgs sets the reuse cases' limit (per-message cases: 1)
  local args=() c
  while [ $# -gt 0 ]; do
    case $1 in
      --cases) W7_CASES=$2; shift ;;
      --level) W7_LEVEL=$2; shift ;;
      --sink-workers) W7_SINK_WORKERS=$2; shift ;;
      --hs-seconds) W7_HS_SECONDS=$2; shift ;;
      --conn-max-msgs) W7_CONN_MAX_REUSE=$2; args+=("$1" "$2"); shift ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  case $W7_LEVEL in dane|encrypt) ;; *) die "--level must be dane or encrypt" ;; esac
  for c in $W7_CASES; do
    case $c in reuse-ecdsa|reuse-rsa|permsg-ecdsa|permsg-rsa) ;; *) die "unknown case: $c (see --help)" ;; esac
  done
  [[ $W7_SINK_WORKERS =~ ^[1-9][0-9]*$ ]] || die "--sink-workers: not a positive integer"
  [[ $W7_HS_SECONDS =~ ^[0-9]+$ ]] || die "--hs-seconds: not a non-negative integer"
  dlv_main w7 w7_run "$W7_CASES" --messages 10000 "${args[@]}"
}
