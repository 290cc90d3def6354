#!/bin/bash
# MTA-STS (RFC 8461) in delivery, end to end: every case has its own
# recipient domain, and each is checked three ways: outpost's own record
# (queue show: state, enhanced code, the TLS policy and verification; its
# log), its RFC 8460 results (tlsrpt results), and the receiving Postfix's
# maillog (delivered or not, on which listener, over TLS, never plaintext).
#
# Peers, all on loopback (127.0.2.1-127.0.2.80, other tests use other ranges):
#   NSD + a validating Unbound (dns_peers.sh): the MX, TXT and TLSA records,
#     most in insecure.test (unsigned), the DANE case in secure.test (signed),
#     a TXT lookup that fails through a CNAME into bogus.test
#   one Postfix instance (delivery_peers.sh), one listener per behaviour on
#   the delivery port, each logging under its own syslog_name:
#     127.0.2.1  good   CA-issued certificate for every "good" MX name
#     127.0.2.2  good2  the same                       (a second listed host)
#     127.0.2.3  unl    the same; MX hosts no policy lists: never contacted
#     127.0.2.4  wrong  CA-issued certificate for another name
#     127.0.2.5  self   self-signed certificate
#     127.0.2.6  exp    CA-issued certificate that expired in 2020
#     127.0.2.7  notls  no STARTTLS
#     127.0.2.8  s5xx   offers STARTTLS, answers it with 500 5.5.2
#     127.0.2.9  test   self-signed (testing mode)
#     127.0.2.10 none   wrong name (mode none)
#     127.0.2.11 fb     wrong name: MX of the fetch failures, where a policy
#                       applied by mistake would stop the mail
#     127.0.2.12 danea  self-signed, TLSA 3 1 1 (secure.test, listed)
#     127.0.2.13 daneb  self-signed, TLSA 3 1 1 (secure.test, not listed)
#     127.0.2.14 sf     good certificate; MX of the TXT SERVFAIL domain
#     127.0.2.15 tnotls no STARTTLS (testing mode: plaintext is right there)
#   127.0.2.40:443 nginx: the policies, by SNI (404, 500, 301, 70 KiB, a
#     self-signed certificate for one name)
#   127.0.2.41:443 https_peer.py silent: the fetch that times out
# Recipient domains (<name>.insecure.test unless said otherwise):
#   enforce: match (listed MX of lower preference), nolist, wild ("*.wild"),
#     upper (a pattern in other case), wrong, self, exp (certificates),
#     notls, s5xx, s5xxb (STARTTLS refused, then a listed backup MX),
#     stsdane.secure.test (DANE-EE on the listed host, TLSA on an unlisted one)
#   testing: testing (self-signed MX), tnotls (MX without STARTTLS); none: nonemode
#   fetch failures: f404 f500 fredir ftime fbig finval fcert ftwo (two TXT)
#   servfail (the TXT lookup fails, nothing cached)
#   cache: gone (TXT removed), idchg (new id, new policy), fbcache (new id,
#     fetch fails), sfcache (TXT lookup fails), age0 (max_age 0), backoff
#     (404 leaves a back-off), match again (the spool cache after a restart)
# Phase 1 sends every case at once; then the records and policies of the
# cache cases change, the daemon restarts (its one-minute memory of TXT
# answers goes; the spool's cache stays) and phase 2 sends those again.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone ldns-keygen postfix nginx openssl; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root: MTA-STS policies are fetched from port 443"; exit 1; }
T0=$SECONDS
source "$HERE/peers.sh"
W=$E2E_DIR/www
C=$E2E_DIR/certs
mkdir -p "$W/sites" "$W/logs" "$W/tmp" "$C"
NGINX_PID=
stop_nginx() {
	if [ -n "$NGINX_PID" ]; then
		kill -QUIT "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		forget_pid "$NGINX_PID"
		NGINX_PID=
	fi
}
trap 'stop_nginx; dp_stop; e2e_cleanup' EXIT

dp_pick_port 127.0.2
Z=insecure.test
S=secure.test
NET=127.0.2
WEB=$NET.40
SILENT=$NET.41

# ---- certificates -------------------------------------------------------------
san() { # NAMES... -> DNS:a,DNS:b
	local out="" n
	for n in "$@"; do out="${out:+$out,}DNS:$n"; done
	echo "$out"
}
# Self-signed ones first: the DANE hosts' TLSA records need their key.
dns_peers_cert "$C" self "$(san mx-self.$Z mx-test.$Z mxd-a.$S mxd-b.$S)" self
dns_peers_cert "$C" webself "$(san mta-sts.fcert.$Z)" self
T311=$(openssl x509 -in "$C/self.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)

# ---- DNS ------------------------------------------------------------------------
ZONE_INSECURE=()
rec() { ZONE_INSECURE+=("$*"); } # a line of insecure.test
arec() { rec "$1 A $NET.$2"; }
arec mx-good 1
arec mx-good2 2
arec mx-unl 3
arec mx-wrong 4
arec mx-self 5
arec mx-exp 6
arec mx-notls 7
arec mx-5xx 8
arec mx-test 9
arec mx-none 10
arec mx-fb 11
arec mx-sf 14
arec mx-tnotls 15
arec mx.wild 1
arec a.mx.wild 3
arec wild 3 # the policy domain itself as an MX host: "*.wild" does not cover it
rec "snd MX 10 mx-good"
# sts DOMAIN HOST [MX-PREF MX-HOST...]: the MX records and mta-sts.DOMAIN's
# address (HOST: WEB or SILENT); TXT records are added per case.
sts() {
	local d=$1 web=$2
	shift 2
	rec "mta-sts.$d A $web"
	while [ $# -ge 2 ]; do
		rec "$d MX $1 $2"
		shift 2
	done
}
txt() { rec "_mta-sts.$1 TXT \"v=STSv1; id=$2;\""; }
sts match $WEB 10 mx-unl 20 mx-good
txt match m1
sts nolist $WEB 10 mx-unl
txt nolist n1
sts wild $WEB 5 wild 10 a.mx.wild 20 mx.wild
txt wild w1
sts upper $WEB 10 mx-good
txt upper up1
for d in wrong self exp notls; do
	sts $d $WEB 10 mx-$d
	txt $d ${d}1
done
sts s5xx $WEB 10 mx-5xx
txt s5xx x1
sts s5xxb $WEB 10 mx-5xx 20 mx-good
txt s5xxb xb1
sts testing $WEB 10 mx-test
txt testing t1
sts tnotls $WEB 10 mx-tnotls
txt tnotls tn1
sts nonemode $WEB 10 mx-none
txt nonemode z1
for d in f404 f500 fredir fbig finval fcert ftwo; do
	sts $d $WEB 10 mx-fb
	txt $d ${d}a
done
txt ftwo ftwob # a second STSv1 record
sts ftime $SILENT 10 mx-fb
txt ftime ftimea
sts servfail $WEB 10 mx-sf
rec "_mta-sts.servfail CNAME _mta-sts.servfail.bogus.test."
dns_peers_add_record bogus.test '_mta-sts.servfail TXT "v=STSv1; id=sf1;"'
# the cache cases: their TXT records change between the phases
sts gone $WEB 10 mx-unl 20 mx-good2
sts idchg $WEB 10 mx-good 20 mx-good2
sts fbcache $WEB 10 mx-unl 20 mx-good2
sts sfcache $WEB 10 mx-unl 20 mx-good2
sts age0 $WEB 10 mx-good 20 mx-good2
txt age0 a1
sts backoff $WEB 10 mx-good 20 mx-good2
txt backoff b1
STATIC_INSECURE=$(printf '%s\n' "${ZONE_INSECURE[@]}")
phase_records() { # 1|2: the records that change, in INSECURE_EXTRA
	ZONE_INSECURE=()
	if [ "$1" = 1 ]; then
		txt gone g1
		txt idchg i1
		txt fbcache c1
		txt sfcache s1
	else
		txt idchg i2
		txt fbcache c2
		rec "_mta-sts.sfcache CNAME _mta-sts.servfail.bogus.test." # SERVFAIL now
	fi
	INSECURE_EXTRA="$STATIC_INSECURE"$'\n'"$(printf '%s\n' "${ZONE_INSECURE[@]}")"
}
phase_records 1
# DANE with an enforced policy (secure.test is signed): mxd-a is listed, its
# certificate fails PKIX (self-signed) but matches its TLSA record; mxd-b has
# usable TLSA too but the policy does not list it.
SECURE_EXTRA="mxd-a A $NET.12
mxd-b A $NET.13
_$DP_PORT._tcp.mxd-a TLSA 3 1 1 $T311
_$DP_PORT._tcp.mxd-b TLSA 3 1 1 $T311
stsdane MX 10 mxd-b
stsdane MX 20 mxd-a
_mta-sts.stsdane TXT \"v=STSv1; id=d1;\"
mta-sts.stsdane A $WEB"
dns_peers_start

# CA-issued ones, now that the test bed's CA exists.
dns_peers_cert "$C" good "$(san mx-good.$Z mx-good2.$Z mx-unl.$Z mx.wild.$Z a.mx.wild.$Z wild.$Z mx-sf.$Z mx-5xx.$Z)"
dns_peers_cert "$C" wrong "$(san someone-else.$Z)"
dns_peers_cert "$C" exp "$(san mx-exp.$Z)" expired
WEB_DOMAINS="match nolist wild upper wrong self exp notls s5xx s5xxb testing tnotls nonemode f404 f500
	fredir fbig finval ftwo servfail gone idchg fbcache sfcache age0 backoff"
web_names=()
for d in $WEB_DOMAINS; do web_names+=("mta-sts.$d.$Z"); done
dns_peers_cert "$C" web "$(san "${web_names[@]}" mta-sts.stsdane.$S)"
# the names of the one generic server block (the others have their own)
generic=()
for n in "${web_names[@]}"; do
	case $n in mta-sts.f500.* | mta-sts.fredir.* | mta-sts.fbcache.*) ;; *) generic+=("$n") ;; esac
done
chmod 600 "$C"/*.key

# ---- the receiving Postfix ---------------------------------------------------------
listener() { # NAME LAST-OCTET CERT|- [more -o options]
	local name=$1 addr=$NET.$2 cert=$3
	shift 3
	local o="-o syslog_name=postfix/$name"
	if [ "$cert" = - ]; then
		o="$o -o smtpd_tls_security_level=none"
	else
		o="$o -o smtpd_tls_security_level=may -o smtpd_tls_cert_file=$C/$cert.chain.crt"
		o="$o -o smtpd_tls_key_file=$C/$cert.key"
	fi
	echo "$addr:$DP_PORT inet n - n - - smtpd $o $*"
}
mkdir -p "$PEERS/sts/etc"
# STARTTLS offered, then refused: the command filter turns it into an
# unknown command (500 5.5.2)
echo '/^STARTTLS$/i XSTARTTLS' >"$PEERS/sts/etc/starttls_5xx"
DP_MASTER_EXTRA=$(
	listener good2 2 good
	listener unl 3 good
	listener wrong 4 wrong
	listener self 5 self
	listener exp 6 exp
	listener notls 7 -
	listener s5xx 8 good -o smtpd_command_filter=regexp:$PEERS/sts/etc/starttls_5xx
	listener test 9 self
	listener none 10 wrong
	listener fb 11 wrong
	listener danea 12 self
	listener daneb 13 self
	listener sf 14 good
	listener tnotls 15 -
) dp_postfix sts $NET.1 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $C/good.chain.crt
smtpd_tls_key_file = $C/good.key
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF

# ---- the policies and nginx ----------------------------------------------------------
policy() { # DOMAIN MODE MAX_AGE MX...: mta-sts.DOMAIN serves this policy
	local d=$1 mode=$2 age=$3 dir
	shift 3
	dir=$W/sites/mta-sts.$d/.well-known
	mkdir -p "$dir"
	{
		printf 'version: STSv1\r\nmode: %s\r\n' "$mode"
		for m in "$@"; do printf 'mx: %s\r\n' "$m"; done
		printf 'max_age: %s\r\n' "$age"
	} >"$dir/mta-sts.txt"
}
no_policy() { rm -f "$W/sites/mta-sts.$1/.well-known/mta-sts.txt"; }
policy match.$Z enforce 86400 mx-good.$Z
policy nolist.$Z enforce 86400 mx-good.$Z
policy wild.$Z enforce 86400 "*.wild.$Z"
policy upper.$Z enforce 86400 MX-Good.Insecure.Test
for d in wrong self exp notls; do policy $d.$Z enforce 86400 mx-$d.$Z; done
policy s5xx.$Z enforce 86400 mx-5xx.$Z
policy s5xxb.$Z enforce 86400 mx-5xx.$Z mx-good.$Z
policy testing.$Z testing 86400 mx-test.$Z
policy tnotls.$Z testing 86400 mx-tnotls.$Z
policy nonemode.$Z none 86400 elsewhere.$Z
# a policy that would stop the mail (mx-fb's certificate is for another
# name), served where the fetch fails in some other way
for d in fcert ftwo fredir f500; do policy $d.$Z enforce 86400 mx-fb.$Z; done
mkdir -p "$W/sites/mta-sts.fbig.$Z/.well-known" "$W/sites/mta-sts.finval.$Z/.well-known"
{
	printf 'version: STSv1\r\nmode: enforce\r\nmx: mx-fb.%s\r\nmax_age: 86400\r\n' $Z
	head -c 71680 /dev/zero | tr '\0' '#'
} >"$W/sites/mta-sts.fbig.$Z/.well-known/mta-sts.txt" # 70 KiB
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx-fb.%s\r\n' $Z \
	>"$W/sites/mta-sts.finval.$Z/.well-known/mta-sts.txt" # no max_age
policy servfail.$Z enforce 86400 mx-sf.$Z
policy gone.$Z enforce 86400 mx-good2.$Z
policy idchg.$Z enforce 86400 mx-good.$Z
policy fbcache.$Z enforce 86400 mx-good2.$Z
policy sfcache.$Z enforce 86400 mx-good2.$Z
policy age0.$Z enforce 0 mx-good2.$Z
policy stsdane.$S enforce 86400 mxd-a.$S
chmod -R a+rX "$W"

block() { # NAMES CERT BODY
	cat <<EOF
    server {
        listen $WEB:443 ssl;
        server_name $1;
        ssl_certificate     $C/$2.chain.crt;
        ssl_certificate_key $C/$2.key;
$3
    }
EOF
}
{
	cat <<EOF
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/logs/error.log notice;
events { worker_connections 64; }
http {
    log_format byhost '\$host \$status \$request';
    access_log $W/logs/access.log byhost;
    client_body_temp_path $W/tmp/body;
    proxy_temp_path $W/tmp/proxy;
    fastcgi_temp_path $W/tmp/fastcgi;
    uwsgi_temp_path $W/tmp/uwsgi;
    scgi_temp_path $W/tmp/scgi;
    types { text/plain txt; }
    default_type text/plain;
EOF
	block "${generic[*]} mta-sts.stsdane.$S" web \
		"        root $W/sites/\$host;
        location / { try_files \$uri =404; }"
	block "mta-sts.f500.$Z" web "        location / { return 500; }"
	block "mta-sts.fredir.$Z" web \
		"        location / { return 301 https://mta-sts.match.$Z/.well-known/mta-sts.txt; }"
	block "mta-sts.fcert.$Z" webself "        root $W/sites/\$host;"
	block "mta-sts.fbcache.$Z" web \
		"        root $W/sites/\$host;
        location / { try_files \$uri =500; }"
	echo "}"
} >"$W/nginx.conf"
nginx -e "$W/logs/error.log" -p "$W" -c "$W/nginx.conf" >"$W/logs/nginx.out" 2>&1 &
NGINX_PID=$!
E2E_PIDS+=("$NGINX_PID")
$PY "$HERE/https_peer.py" silent $SILENT 443 2>>"$E2E_DIR/peer.log" &
E2E_PIDS+=($!)
dp_ready
for a in $WEB $SILENT; do
	ok=
	for _ in $(seq 1 100); do
		if $PY -c "import socket; socket.create_connection(('$a',443),0.2)" 2>/dev/null; then
			ok=1
			break
		fi
		sleep 0.05
	done
	[ -n "$ok" ] || { echo "$a:443 not ready"; cat "$W/logs/error.log"; exit 1; }
done

e2e_config <<EOF
[server]
hostname = outpost.$Z
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
# records change mid-scenario (dns_peers_reload): answers kept 1 s at most
cache_max_ttl = 1s
[delivery]
port = $DP_PORT
first_retry = 1h
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
tls_timeout = 5s
[tls]
ca_file = $PEERS/pki/ca.crt
[mtasts]
fetch_timeout = 5s
EOF
e2e_start
echo "# peers and daemon up after $((SECONDS - T0)) s (port $DP_PORT, resolver $DNS_RESOLVER)"

# ---- helpers ---------------------------------------------------------------------------
submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" "s@snd.$Z" "$1" --subject "mtasts $1"; }
SCRATCH=$E2E_DIR/check.json
qtest() { # ID EXPR
	op queue show "$1" --json >"$SCRATCH" 2>/dev/null || return 1
	$PY "$HERE/sts_eval.py" queue "$SCRATCH" "$2"
}
rtest() { # DOMAIN EXPR
	op tlsrpt results --domain "$1" --json >"$SCRATCH" 2>/dev/null || return 1
	$PY "$HERE/sts_eval.py" tlsrpt "$SCRATCH" "$2"
}
mtest() { # EXPR
	$PY "$HERE/maillog_sessions.py" "$PEERS/sts/maillog" good >"$SCRATCH" || return 1
	$PY "$HERE/sts_eval.py" maillog "$SCRATCH" "$1"
}
expect_q() { # DESCRIPTION ID EXPR
	if qtest "$2" "$3"; then pass "$1"; else
		fail "$1"
		echo "     expected: $3"
		echo "     queue show $2: $(head -c 3000 "$SCRATCH")"
	fi
}
expect_r() { # DESCRIPTION DOMAIN EXPR
	if rtest "$2" "$3"; then pass "$1"; else
		fail "$1"
		echo "     expected: $3"
		echo "     tlsrpt results --domain $2: $(head -c 3000 "$SCRATCH")"
	fi
}
expect_m() { # DESCRIPTION EXPR [WAIT]: maillog, waiting up to WAIT s (for deliveries)
	if wait_for "${3:-0}" mtest "$2"; then pass "$1"; else
		fail "$1"
		echo "     expected: $2"
		grep -n -- "${4:-@@}" "$PEERS/sts/maillog" | head -20 | sed 's/^/     maillog: /' || true
	fi
}
logged() { $PY "$HERE/outpost_log.py" "$E2E_DIR/outpost.log" "$@" >/dev/null; }
not_logged() { # exit status 1 of outpost_log.py: read, and no such line (2 is an error)
	local rc=0
	logged "$@" || rc=$?
	[ "$rc" -eq 1 ]
}
expect_log() { # DESCRIPTION EVENT KEY=VALUE...
	local d=$1
	shift
	if logged "$@"; then pass "$d"; else
		fail "$d"
		echo "     no log line event=$*"
		grep -F -- "event=$1 " "$E2E_DIR/outpost.log" | grep -F -- "${2%%~=*}" | tail -5 |
			sed 's/^/     log: /' || true
	fi
}
fetches() { grep -c "^mta-sts\.$1 " "$W/logs/access.log" || true; } # DOMAIN: requests nginx saw
settled() { # ID...: every recipient had its attempt (not in flight, not queued)
	local id
	for id in "$@"; do
		qtest "$id" 'r["attempts"] >= 1 and not r.get("in_flight") and r["state"] != "queued"' ||
			return 1
	done
}

# Shared expectations, as python over queue show (r, last) and the maillog (D).
def_delivered() { # MX IP POLICY VERIFIED
	echo "r['state']=='delivered' and last['result']=='delivered' and last['mx']=='$1' and last['ip']=='$2' and last['tls_policy']=='$3' and last['tls_verified']=='$4' and (last['tls_version'] or '').startswith('TLSv1.')"
}
def_deferred() { # ENHANCED POLICY TEXT: deferred with that code, and TEXT in the error
	echo "r['state']=='deferred' and r['last_error'].startswith('$1 ') and '$3' in r['last_error'] and last['result']=='deferred' and last['tls_policy']=='$2' and last['reply'].startswith('$1')"
}
on_tls() { # RCPT SERVICE: delivered once, by that listener, in a TLS session
	echo "D('$1')==[('$2', True, 'sent')]"
}
# (both need a maillog whose deliveries parse: nothing read proves nothing)
never_delivered() { echo "len(m['deliveries'])>0 and D('$1')==[]"; }
# the listener was dialled, every session of it went to STARTTLS, none got as far as MAIL
starttls_but_no_mail() { echo "len(S('$1'))>=1 and all('starttls=' in (s['commands'] or '') and s['mail']==0 and s['qids']==[] for s in S('$1'))"; }
# the listener was dialled (no STARTTLS there), and no session got as far as MAIL
no_mail() { echo "len(S('$1'))>=1 and all(s['mail']==0 and s['qids']==[] for s in S('$1'))"; }
never_dialled() { echo "len(m['deliveries'])>0 and S('$1')==[]"; }

# ---- phase 1: every case at once ----------------------------------------------------------
declare -A ID
P1="match nolist wild upper wrong self exp notls s5xx s5xxb testing tnotls nonemode f404 f500 fredir
	ftime fbig finval fcert ftwo servfail gone idchg fbcache sfcache age0 backoff"
for c in $P1; do ID[$c]=$(submit "u@$c.$Z"); done
ID[stsdane]=$(submit "u@stsdane.$S")
n=0
for c in $P1 stsdane; do [ -n "${ID[$c]}" ] && n=$((n + 1)); done
check "phase 1: 29 messages submitted, each with a queue id ($n)" test "$n" -eq 29
ids=()
for c in $P1 stsdane; do ids+=("${ID[$c]}"); done
check "phase 1: every message had its attempt within 40 s" wait_for 40 settled "${ids[@]}"
echo "# phase 1 attempts done after $((SECONDS - T0)) s"

# -- enforce: MX hosts the policy lists, and those it does not
R=u@match.$Z
expect_q "enforce, listed MX of lower preference: delivered via mx-good over PKIX-verified TLS" \
	"${ID[match]}" "$(def_delivered mx-good.$Z $NET.1 'mta-sts enforce' PKIX)"
expect_log "enforce: the unlisted, preferred MX mx-unl is skipped (event=host_skipped)" \
	host_skipped qid="${ID[match]}" mx=mx-unl.$Z reason~="is not listed in the domain's MTA-STS policy"
expect_log "enforce: event=host_skipped names the policy that skipped it (policy=\"mta-sts enforce\")" \
	host_skipped qid="${ID[match]}" mx=mx-unl.$Z policy="mta-sts enforce"
expect_log "enforce: the policy was fetched (id m1, mode enforce)" \
	mtasts_policy_fetched domain=match.$Z id=m1 mode=enforce max_age=86400
expect_log "enforce: the delivery log says tls_policy=\"mta-sts enforce\" verified=PKIX" \
	delivery qid="${ID[match]}" result=delivered mx=mx-good.$Z tls_policy="mta-sts enforce" \
	verified=PKIX
expect_r "enforce: TLS-RPT sts policy with its text and mx patterns, one success" match.$Z \
	"len(of('sts'))==1 and of('sts')[0]['policy']['policy-string']==['version: STSv1','mode: enforce','mx: mx-good.$Z','max_age: 86400'] and of('sts')[0]['policy']['mx-host']==['mx-good.$Z'] and of('sts')[0]['policy']['policy-domain']=='match.$Z' and of('sts')[0]['summary']['total-successful-session-count']==1"
expect_r "enforce: TLS-RPT validation-failure/mtasts-policy-mx-mismatch for mx-unl" match.$Z \
	"len(fd(ptype='sts', type='validation-failure', reason='mtasts-policy-mx-mismatch', mx='mx-unl.$Z'))==1"
expect_m "enforce: Postfix took it once, on the good listener, over TLS" "$(on_tls $R good)" 10 "$R"

R=u@nolist.$Z
expect_q "enforce, no MX listed: deferred 4.7.5, not listed" "${ID[nolist]}" \
	"r['state']=='deferred' and r['last_error']=='4.7.5 tls: MX host mx-unl.$Z is not listed in the domain\\'s MTA-STS policy' and last['result']=='deferred' and last['mx']=='mx-unl.$Z' and last['ip'] is None"
expect_q "enforce, no MX listed: the attempt records tls_policy \"mta-sts enforce\"" "${ID[nolist]}" \
	"last['tls_policy']=='mta-sts enforce'"
expect_log "enforce, no MX listed: mx-unl skipped" host_skipped qid="${ID[nolist]}" mx=mx-unl.$Z
expect_r "enforce, no MX listed: TLS-RPT mtasts-policy-mx-mismatch, a failed session" nolist.$Z \
	"len(fd(ptype='sts', type='validation-failure', reason='mtasts-policy-mx-mismatch', mx='mx-unl.$Z', count=1))==1 and of('sts')[0]['summary']['total-successful-session-count']==0"
expect_m "enforce, no MX listed: nothing delivered" "$(never_delivered $R)"

R=u@wild.$Z
expect_q "wildcard *.wild: mx.wild matches, delivered there (PKIX)" "${ID[wild]}" \
	"$(def_delivered mx.wild.$Z $NET.1 'mta-sts enforce' PKIX)"
expect_log "wildcard *.wild: a.mx.wild (two labels) does not match, skipped" \
	host_skipped qid="${ID[wild]}" mx=a.mx.wild.$Z
expect_log "wildcard *.wild: wild itself (no label for the *) does not match, skipped" \
	host_skipped qid="${ID[wild]}" mx=wild.$Z
expect_r "wildcard: TLS-RPT mismatches for a.mx.wild and wild, nothing else" wild.$Z \
	"sorted(f['receiving-mx-hostname'] for f in fd(type='validation-failure', reason='mtasts-policy-mx-mismatch'))==['a.mx.wild.$Z','wild.$Z'] and of('sts')[0]['policy']['mx-host']==['*.wild.$Z']"
expect_m "wildcard: Postfix took it on the good listener, over TLS" "$(on_tls $R good)" 10 "$R"

R=u@upper.$Z
expect_q "mx pattern in other case (MX-Good.Insecure.Test): matches mx-good, delivered (PKIX)" \
	"${ID[upper]}" "$(def_delivered mx-good.$Z $NET.1 'mta-sts enforce' PKIX)"
check "mx pattern in other case: no host skipped" not_logged host_skipped qid="${ID[upper]}"
expect_m "mx pattern in other case: Postfix took it on the good listener, over TLS" \
	"$(on_tls $R good)" 10 "$R"

# -- enforce: certificates that fail PKIX
cert_case() { # CASE LISTENER-OCTET RESULT-TYPE
	local c=$1 R=u@$1.$Z
	expect_q "enforce, $c certificate: deferred 4.7.5 certificate not verified: $3" "${ID[$c]}" \
		"$(def_deferred 4.7.5 'mta-sts enforce' "tls: certificate not verified: $3") and last['mx']=='mx-$c.$Z' and last['ip']=='$NET.$2' and last['tls_verified'] in (None, 'unverified') and '$3' in (last['tls_detail'] or '')"
	expect_r "enforce, $c certificate: TLS-RPT $3 for mx-$c [$NET.$2], one failed session" $c.$Z \
		"len(fd(ptype='sts', type='$3', mx='mx-$c.$Z', ip='$NET.$2', count=1))==1 and of('sts')[0]['summary']['total-failure-session-count']==1 and of('sts')[0]['summary']['total-successful-session-count']==0"
	check "enforce, $c certificate: no plaintext retry" not_logged plaintext_fallback qid="${ID[$c]}"
	expect_m "enforce, $c certificate: nothing delivered" "$(never_delivered $R)"
	expect_m "enforce, $c certificate: Postfix saw STARTTLS in every session, never MAIL (no plaintext)" \
		"$(starttls_but_no_mail $c)" 0 "postfix/$c/"
}
cert_case wrong 4 certificate-host-mismatch
cert_case self 5 certificate-not-trusted
cert_case exp 6 certificate-expired

# -- enforce: STARTTLS not offered, or refused
R=u@notls.$Z
expect_q "enforce, no STARTTLS: deferred 4.7.4" "${ID[notls]}" \
	"$(def_deferred 4.7.4 'mta-sts enforce' 'refused STARTTLS') and last['mx']=='mx-notls.$Z'"
expect_r "enforce, no STARTTLS: TLS-RPT starttls-not-supported for mx-notls" notls.$Z \
	"len(fd(ptype='sts', type='starttls-not-supported', mx='mx-notls.$Z', reason_has='smtp-starttls-reply-code-5'))==1"
check "enforce, no STARTTLS: no plaintext retry" not_logged plaintext_fallback qid="${ID[notls]}"
expect_m "enforce, no STARTTLS: dialled, never got as far as MAIL, nothing delivered" \
	"$(no_mail notls) and $(never_delivered $R)" 0 "postfix/notls/"

R=u@s5xx.$Z
expect_q "enforce, STARTTLS answered 500: deferred 4.7.4 (not failed)" "${ID[s5xx]}" \
	"$(def_deferred 4.7.4 'mta-sts enforce' 'refused STARTTLS: 500')"
expect_r "enforce, STARTTLS 500: TLS-RPT starttls-not-supported/smtp-starttls-reply-code-500" s5xx.$Z \
	"len(fd(ptype='sts', type='starttls-not-supported', reason='smtp-starttls-reply-code-500', mx='mx-5xx.$Z', ip='$NET.8'))==1"
check "enforce, STARTTLS 500: no plaintext retry" not_logged plaintext_fallback qid="${ID[s5xx]}"
expect_m "enforce, STARTTLS 500: no MAIL in any session of that listener, nothing delivered" \
	"$(no_mail s5xx) and all(not s['tls'] for s in S('s5xx')) and $(never_delivered $R)" 0 "postfix/s5xx/"
R=u@s5xxb.$Z
expect_q "enforce, STARTTLS 500 is host-local: the next listed MX (mx-good) took it" "${ID[s5xxb]}" \
	"$(def_delivered mx-good.$Z $NET.1 'mta-sts enforce' PKIX)"
expect_r "enforce, STARTTLS 500 then mx-good: both sessions in TLS-RPT" s5xxb.$Z \
	"len(fd(ptype='sts', type='starttls-not-supported', mx='mx-5xx.$Z'))==1 and of('sts')[0]['summary']['total-successful-session-count']==1"
expect_m "enforce, STARTTLS 500 then mx-good: delivered once, over TLS" "$(on_tls $R good)" 10 "$R"

# -- testing and none
R=u@testing.$Z
expect_q "testing, self-signed MX certificate: delivered over unverified TLS" "${ID[testing]}" \
	"$(def_delivered mx-test.$Z $NET.9 'mta-sts testing' unverified)"
expect_r "testing: TLS-RPT sts (mode testing) with certificate-not-trusted for mx-test" testing.$Z \
	"'mode: testing' in of('sts')[0]['policy']['policy-string'] and len(fd(ptype='sts', type='certificate-not-trusted', mx='mx-test.$Z', ip='$NET.9'))==1"
expect_m "testing: Postfix took it on the test listener, over TLS" "$(on_tls $R test)" 10 "$R"

R=u@tnotls.$Z
expect_q "testing, MX without STARTTLS: delivered as without a policy (in plaintext)" "${ID[tnotls]}" \
	"r['state']=='delivered' and last['mx']=='mx-tnotls.$Z' and last['ip']=='$NET.15' and last['tls_policy']=='mta-sts testing' and last['tls'] is None"
expect_r "testing, MX without STARTTLS: TLS-RPT starttls-not-supported for mx-tnotls, one failed session" \
	tnotls.$Z "len(fd(ptype='sts', type='starttls-not-supported', mx='mx-tnotls.$Z', ip='$NET.15', count=1))==1"
expect_m "testing, MX without STARTTLS: Postfix took it once, in plaintext (no STARTTLS there)" \
	"D('$R')==[('tnotls', False, 'sent')]" 10 "$R"

R=u@nonemode.$Z
expect_q "mode none: delivered as without a policy (host not listed, wrong-name certificate)" \
	"${ID[nonemode]}" "$(def_delivered mx-none.$Z $NET.10 none unverified)"
expect_log "mode none: the policy was fetched" mtasts_policy_fetched domain=nonemode.$Z mode=none
check "mode none: no MX host skipped" not_logged host_skipped qid="${ID[nonemode]}"
expect_r "mode none: no TLS-RPT failure recorded" nonemode.$Z \
	"len(p)>=1 and fd()==[]"
expect_m "mode none: Postfix took it on the none listener, over TLS" "$(on_tls $R none)" 10 "$R"

# -- fetch failures: delivered as without a policy, the failure recorded
fetch_case() { # CASE RESULT-TYPE REASON
	local c=$1 R=u@$1.$Z
	expect_q "fetch $c: delivered as without a policy (opportunistic TLS to mx-fb)" "${ID[$c]}" \
		"$(def_delivered mx-fb.$Z $NET.11 none unverified)"
	expect_r "fetch $c: TLS-RPT $2 / $3" $c.$Z \
		"len(fd(type='$2', reason='$3'))==1 and of('tlsa')==[] and all(x['policy'].get('policy-string') in (None, []) for x in p if x['policy']['policy-domain']=='$c.$Z')"
	expect_m "fetch $c: Postfix took it on the fb listener, over TLS" "$(on_tls $R fb)" 10 "$R"
}
fetch_case f404 sts-policy-fetch-error no-policy-served
fetch_case f500 sts-policy-fetch-error http-status-500
fetch_case fredir sts-policy-fetch-error redirect
fetch_case ftime sts-policy-fetch-error timeout
fetch_case fbig sts-policy-fetch-error too-large
fetch_case finval sts-policy-invalid policy-syntax-error
fetch_case fcert sts-webpki-invalid certificate-not-trusted
fetch_case ftwo sts-policy-fetch-error multiple-mta-sts-records
for c in f404 f500 fredir ftime fbig finval fcert; do
	expect_log "fetch $c: event=mtasts_fetch_failed" mtasts_fetch_failed domain=$c.$Z
done
check "fetch ftime: gave up after the 5 s fetch_timeout (the attempt took 4.5-8 s)" \
	qtest "${ID[ftime]}" "4500 <= last['duration_ms'] < 8000"
check "two TXT records: no policy fetched at all (nginx saw no request, but match's)" \
	test "$(fetches ftwo.$Z)" = 0 -a "$(fetches match.$Z)" = 1

# -- TXT lookup SERVFAIL, nothing cached
R=u@servfail.$Z
expect_q "TXT SERVFAIL, nothing cached: deferred 4.4.3, the MTA-STS lookup named" "${ID[servfail]}" \
	"r['state']=='deferred' and r['last_error'].startswith('4.4.3 ') and 'MTA-STS TXT lookup' in r['last_error'] and last['mx'] is None and last['result']=='deferred'"
expect_r "TXT SERVFAIL: TLS-RPT sts-policy-fetch-error (a DNS error)" servfail.$Z \
	"len(fd(type='sts-policy-fetch-error', reason_has='dns-'))==1"
check "TXT SERVFAIL: no policy fetch (nginx saw no request, but match's)" \
	test "$(fetches servfail.$Z)" = 0 -a "$(fetches match.$Z)" = 1
expect_m "TXT SERVFAIL: the MX (mx-sf) was never dialled" "$(never_dialled sf) and $(never_delivered $R)"

# -- DANE and an enforced policy
R=u@stsdane.$S
expect_q "DANE + enforce: the listed host whose certificate fails PKIX is delivered via DANE-EE" \
	"${ID[stsdane]}" "$(def_delivered mxd-a.$S $NET.12 dane DANE-EE) and (last['tls_detail'] or '').startswith('3 1 1 ')"
expect_log "DANE + enforce: the unlisted host mxd-b (usable TLSA) is still skipped" \
	host_skipped qid="${ID[stsdane]}" mx=mxd-b.$S
expect_r "DANE + enforce: TLS-RPT mismatch for mxd-b under the sts policy" stsdane.$S \
	"len(fd(ptype='sts', type='validation-failure', reason='mtasts-policy-mx-mismatch', mx='mxd-b.$S'))==1"
expect_r "DANE + enforce: TLS-RPT tlsa policy for mxd-a, one success, no failure" mxd-a.$S \
	"len(of('tlsa'))==1 and of('tlsa')[0]['summary']['total-successful-session-count']==1 and of('tlsa')[0]['failure-details']==[]"
expect_m "DANE + enforce: Postfix took it on the danea listener, over TLS; daneb never dialled" \
	"$(on_tls $R danea) and $(never_dialled daneb)" 10 "$R"

# -- the cache cases, phase 1
expect_q "cache (TXT to be removed), phase 1: delivered via the listed mx-good2" "${ID[gone]}" \
	"$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_q "cache (id to change), phase 1: policy i1 lists mx-good: delivered there" "${ID[idchg]}" \
	"$(def_delivered mx-good.$Z $NET.1 'mta-sts enforce' PKIX)"
expect_q "cache (fetch to fail), phase 1: delivered via the listed mx-good2" "${ID[fbcache]}" \
	"$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_q "max_age 0, phase 1: the policy governs its own attempt: via mx-good2, mx-good skipped" \
	"${ID[age0]}" "$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_q "back-off, phase 1: 404, no policy: delivered via the preferred mx-good" "${ID[backoff]}" \
	"$(def_delivered mx-good.$Z $NET.1 none unverified)"
expect_m "cache cases, phase 1: Postfix took each once over TLS, on the listener expected" \
	"$(on_tls u@gone.$Z good2) and $(on_tls u@idchg.$Z good) and $(on_tls u@fbcache.$Z good2) and $(on_tls u@age0.$Z good2) and $(on_tls u@backoff.$Z good)" 10

# ---- phase 2: records and policies change; the daemon restarts -----------------------------------
phase_records 2                       # gone: no TXT; idchg: i2; fbcache: c2
policy idchg.$Z enforce 86400 mx-good2.$Z
no_policy fbcache.$Z                  # its server block answers 500 then
no_policy age0.$Z                     # 404
policy backoff.$Z enforce 86400 mx-good2.$Z
chmod -R a+rX "$W"
dns_peers_reload
FETCH_MATCH=$(fetches match.$Z)
FETCH_BACKOFF=$(fetches backoff.$Z)
e2e_stop
e2e_start
P2="gone idchg fbcache sfcache age0 backoff match"
declare -A ID2
for c in $P2; do ID2[$c]=$(submit "u2@$c.$Z"); done
ids=()
for c in $P2; do ids+=("${ID2[$c]}"); done
check "phase 2: every message had its attempt within 30 s" wait_for 30 settled "${ids[@]}"
echo "# phase 2 attempts done after $((SECONDS - T0)) s"

expect_q "TXT removed, cached policy: still enforced (via mx-good2, not the preferred mx-unl)" \
	"${ID2[gone]}" "$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_log "TXT removed: event=mtasts_record_gone" mtasts_record_gone domain=gone.$Z id=g1
expect_log "TXT removed: mx-unl skipped" host_skipped qid="${ID2[gone]}" mx=mx-unl.$Z

expect_q "id change: the new policy (i2: mx-good2 only) applies" "${ID2[idchg]}" \
	"$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_log "id change: the new policy was fetched (id i2)" mtasts_policy_fetched domain=idchg.$Z id=i2
expect_log "id change: mx-good, listed before, is now skipped" host_skipped qid="${ID2[idchg]}" \
	mx=mx-good.$Z
expect_r "id change: TLS-RPT has the new policy text" idchg.$Z \
	"any(x['policy']['mx-host']==['mx-good2.$Z'] for x in of('sts')) and any(x['policy']['mx-host']==['mx-good.$Z'] for x in of('sts'))"

expect_q "cache (TXT to SERVFAIL), phase 1: delivered via the listed mx-good2" "${ID[sfcache]}" \
	"$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_q "fetch fails (500) with a cached policy: the cached one is enforced" "${ID2[fbcache]}" \
	"$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_log "fetch fails with a cached policy: event=mtasts_fetch_failed" mtasts_fetch_failed \
	domain=fbcache.$Z
expect_log "fetch fails with a cached policy: mx-unl skipped" host_skipped qid="${ID2[fbcache]}" \
	mx=mx-unl.$Z
expect_r "fetch fails with a cached policy: TLS-RPT http-status-500+fallback-to-cached-policy" \
	fbcache.$Z "len(fd(ptype='sts', type='sts-policy-fetch-error', reason='http-status-500+fallback-to-cached-policy'))==1"

expect_q "TXT SERVFAIL with a cached policy: not deferred, the cached policy is enforced" \
	"${ID2[sfcache]}" "$(def_delivered mx-good2.$Z $NET.2 'mta-sts enforce' PKIX)"
expect_r "TXT SERVFAIL with a cached policy: TLS-RPT a DNS error +fallback-to-cached-policy" \
	sfcache.$Z "len([f for f in fd(ptype='sts', type='sts-policy-fetch-error') if f['failure-reason-code'].startswith('dns-') and f['failure-reason-code'].endswith('+fallback-to-cached-policy')])==1"

expect_q "max_age 0, phase 2 (404 now): no policy left, delivered via the preferred mx-good" \
	"${ID2[age0]}" "$(def_delivered mx-good.$Z $NET.1 none unverified)"

expect_q "back-off after a failed fetch: still no policy (via mx-good although one is served now)" \
	"${ID2[backoff]}" "$(def_delivered mx-good.$Z $NET.1 none unverified)"
check "back-off: no new fetch within the 5 minutes (nginx: $(fetches backoff.$Z) requests, 1 in phase 1)" \
	test "$(fetches backoff.$Z)" = "$FETCH_BACKOFF" -a "$FETCH_BACKOFF" = 1
expect_r "back-off: TLS-RPT back-off-after-recent-fetch-error" backoff.$Z \
	"len(fd(type='sts-policy-fetch-error', reason='back-off-after-recent-fetch-error'))==1"

expect_q "spool cache across a restart (same id): enforced without a fetch" "${ID2[match]}" \
	"$(def_delivered mx-good.$Z $NET.1 'mta-sts enforce' PKIX)"
check "spool cache across a restart: nginx saw no new request ($FETCH_MATCH in all)" \
	test "$(fetches match.$Z)" = "$FETCH_MATCH" -a "$FETCH_MATCH" = 1

expect_m "phase 2: Postfix took each once over TLS, on the listener expected" \
	"$(on_tls u2@gone.$Z good2) and $(on_tls u2@sfcache.$Z good2) and $(on_tls u2@idchg.$Z good2) and $(on_tls u2@fbcache.$Z good2) and $(on_tls u2@age0.$Z good) and $(on_tls u2@backoff.$Z good) and $(on_tls u2@match.$Z good)" 10

# ---- the whole run ------------------------------------------------------------------------------
expect_m "no listed-only host was ever dialled: mx-unl, a.mx.wild (unl), mxd-b, mx-sf" \
	"$(never_dialled unl) and $(never_dialled daneb) and $(never_dialled sf)"
expect_m "no message reached Postfix in plaintext (but the testing-mode one at tnotls)" \
	"all(d['tls'] for d in m['deliveries'] if d['service']!='tnotls') and all(s['tls'] for s in m['sessions'] if (s['mail'] or s['qids']) and s['service']!='tnotls')"
check "no recipient failed permanently (no event=delivery result=failed)" \
	not_logged delivery result=failed
echo "# run time $((SECONDS - T0)) s"

stop_nginx
dp_stop
dns_peers_stop
e2e_finish
