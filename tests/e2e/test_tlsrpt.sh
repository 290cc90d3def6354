#!/bin/bash
# Daily TLS reports (RFC 8460) end to end: a day of results made by real
# deliveries, then the reports made from them, received by a real Postfix
# (mailto:) and an HTTPS collector (https:), parsed and compared with what
# the deliveries did. The contract is src/tlsrpt/sender.h's header comment,
# docs/tls.md ("TLS results") and docs/configuration.md ([tlsrpt]).
#
# Peers, all on loopback 127.0.6.1-127.0.6.60 (other tests use other ranges):
#   NSD + a validating Unbound (dns_peers.sh): MX, TLSA, MTA-STS and
#     _smtp._tls records, secure.test signed (DANE), insecure.test unsigned,
#     a _smtp._tls lookup that fails through a CNAME into bogus.test
#   one Postfix (delivery_peers.sh), one Maildir, a listener per behaviour
#   on the [delivery] port:
#     127.0.6.2 rcv     CA certificate for mx-rua and mx-rmix: the report mailbox
#     127.0.6.3 dok     self-signed, matches TLSA 3 1 1 of mx-dok (DANE-EE)
#     127.0.6.4 dbad    the same certificate, TLSA of another key (mx-dbad)
#     127.0.6.5 stsbad  CA certificate for another name (MTA-STS enforce)
#     127.0.6.6 norec   like dbad (mx-norec)
#     127.0.6.7 badname CA certificate for another name (mx-rloop; mx-rmix later)
#   127.0.6.40:443 tlsrpt_collector.py: the MTA-STS policies, and the POSTed
#     reports (application/tlsrpt+gzip, RFC 8460 §5.4), 500 the first time
#     for /flaky/..., 503 while told to refuse
# Recipient domains, and the _smtp._tls records of the policy domains:
#   dok.secure.test      DANE-EE ok, 2 messages: only successes, no report
#   dbad.secure.test     DANE mismatch, 2 messages deferred 4.7.5; reports for
#                        dbad (mailto: + https:) and mx-dbad (mailto:)
#   sts.insecure.test    MTA-STS enforce, the MX's certificate names another
#                        host, 1 message deferred; report (mailto: two
#                        addresses, rloop and rmix, + https: /flaky/sts);
#                        mx-stsbad has no record
#   norec.secure.test    DANE mismatch (mx-norec); norec's record has only an
#                        http: URI, mx-norec has two records
#   later.secure.test    MX mx-norec; its record cannot be looked up
#                        (SERVFAIL), later it can
#   rmix.insecure.test   MTA-STS enforce: one message delivered (mx-rmix at
#                        rcv); then mx-rmix moves to badname
#   rloop/rmix           where the sts report is mailed: their policies fail
#                        the report mail's TLS (it goes on: TLS-Required: No)
# Phases: deliveries; dry run; the run; the second run (nothing more, and
# nothing for what delivering reports recorded); the POST retried after a
# 500; the lookup failure left for later; a SIGKILL in the middle of a run
# (day D-3); a restart "after midnight" with [tlsrpt] enabled (yesterday's
# reports, once); one more restart (D-2's only, nothing twice).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone ldns-keygen postfix openssl sqlite3 curl; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
$PY -c 'import dkim, nacl, dns.query' || { echo "missing python3-dkim (scripts/deps.sh test)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root: the collector and MTA-STS policies are on port 443"; exit 1; }
# under an ASan build (-DOUTPOST_SANITIZE=ON), also catch pointers into dead stack frames
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=1}
T0=$SECONDS
source "$HERE/peers.sh"

# Every result of one run must fall on one UTC day: not within 3 minutes of midnight.
secs=$(($(date -u +%s) % 86400))
if [ "$secs" -gt $((86400 - 180)) ]; then sleep $((86400 - secs + 2)); fi
TODAY=$(date -u +%F)
YDAY=$(date -u -d "$TODAY -1 day" +%F)
D2=$(date -u -d "$TODAY -2 day" +%F)
D3=$(date -u -d "$TODAY -3 day" +%F)

NET=127.0.6
dp_pick_port $NET
P=$DP_PORT
Z=secure.test
I=insecure.test
SUB=secure.test # the submitter: outpost.secure.test has no DKIM key, secure.test has
C=$E2E_DIR/certs
COL=$E2E_DIR/collector
MAIL=$PEERS/rcv/mail/sink
INV=$E2E_DIR/inventory.json
mkdir -p "$C" "$COL/policies" "$COL/posts" "$E2E_DIR/shown"

# ---- certificates and DKIM keys ----------------------------------------------------------
selfsigned() { # NAME CN
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-keyout "$C/$1.key" -out "$C/$1.crt" -subj "/CN=$2" -addext "subjectAltName=DNS:$2" 2>/dev/null
	cp "$C/$1.crt" "$C/$1.chain.crt"
}
spki311() { openssl x509 -in "$C/$1.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1; }
issue() { # NAME SAN: a leaf of the test bed's CA (made by dns_peers_start)
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
		-out "$C/$1.csr" -subj "/CN=x" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$2" >"$C/$1.ext"
	openssl x509 -req -in "$C/$1.csr" -CA "$PEERS/pki/ca.crt" -CAkey "$PEERS/pki/ca.key" \
		-CAcreateserial -days 30 -out "$C/$1.crt" -extfile "$C/$1.ext" 2>/dev/null
	cat "$C/$1.crt" "$PEERS/pki/ca.crt" >"$C/$1.chain.crt"
}
selfsigned dane mx-dok.$Z
selfsigned decoy decoy.$Z
T311=$(spki311 dane)
DECOY=$(spki311 decoy)

e2e_config </dev/null # for dkim genkey: the data directory
op dkim genkey $SUB rpt >"$E2E_DIR/genkey.out" 2>/dev/null
REC_DKIM=$(grep ' IN TXT ' "$E2E_DIR/genkey.out")
DKIM_KEY=$(grep '^key = ' "$E2E_DIR/genkey.out")

# ---- DNS ------------------------------------------------------------------------------------
zs() { dns_peers_add_record $Z "$1"; }
zi() { dns_peers_add_record $I "$1"; }
rua() { echo "\"v=TLSRPTv1; rua=$1\""; }
R_RUA=mailto:tlsrpt@rua.$I
URL=https://collector.$I
for r in "mx-dok A $NET.3" "dok MX 10 mx-dok" "_$P._tcp.mx-dok TLSA 3 1 1 $T311" \
	"mx-dbad A $NET.4" "dbad MX 10 mx-dbad" "_$P._tcp.mx-dbad TLSA 3 1 1 $DECOY" \
	"mx-norec A $NET.6" "norec MX 10 mx-norec" "_$P._tcp.mx-norec TLSA 3 1 1 $DECOY" \
	"later MX 10 mx-norec" \
	"_smtp._tls.dok TXT $(rua $R_RUA)" "_smtp._tls.mx-dok TXT $(rua $R_RUA)" \
	"_smtp._tls.dbad TXT $(rua "$R_RUA,$URL/r/dbad")" "_smtp._tls.mx-dbad TXT $(rua $R_RUA)" \
	"_smtp._tls.norec TXT $(rua http://collector.$I/plain)" \
	"_smtp._tls.mx-norec TXT $(rua mailto:a@rua.$I)" "_smtp._tls.mx-norec TXT $(rua mailto:b@rua.$I)" \
	"_smtp._tls.later CNAME _smtp._tls.later.bogus.test." "$REC_DKIM"; do
	zs "$r"
done
dns_peers_add_record bogus.test "_smtp._tls.later TXT $(rua $R_RUA)"
for r in "mx-rua A $NET.2" "rua MX 10 mx-rua" "snd MX 10 mx-rua" "collector A $NET.40" \
	"mx-stsbad A $NET.5" "sts MX 10 mx-stsbad" "_mta-sts.sts TXT \"v=STSv1; id=s1;\"" \
	"mta-sts.sts A $NET.40" \
	"_smtp._tls.sts TXT $(rua "mailto:loop@rloop.$I,mailto:mix@rmix.$I,$URL/flaky/sts")" \
	"mx-rloop A $NET.7" "rloop MX 10 mx-rloop" "_mta-sts.rloop TXT \"v=STSv1; id=l1;\"" \
	"mta-sts.rloop A $NET.40" \
	"mx-rmix A $NET.2" "rmix MX 10 mx-rmix" "_mta-sts.rmix TXT \"v=STSv1; id=m1;\"" \
	"mta-sts.rmix A $NET.40"; do
	zi "$r"
done
dns_peers_start
issue good "DNS:mx-rua.$I,DNS:mx-rmix.$I"
issue wrong "DNS:someone-else.$I"
issue web "DNS:collector.$I,DNS:mta-sts.sts.$I,DNS:mta-sts.rloop.$I,DNS:mta-sts.rmix.$I"
chmod 600 "$C"/*.key

# ---- the collector and its MTA-STS policies ---------------------------------------------------
policy() { # DOMAIN MX
	printf 'version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 86400\r\n' "$2" \
		>"$COL/policies/mta-sts.$1.txt"
}
policy sts.$I mx-stsbad.$I
policy rloop.$I mx-rloop.$I
policy rmix.$I mx-rmix.$I
$PY "$HERE/tlsrpt_collector.py" $NET.40 443 "$C/web.chain.crt" "$C/web.key" "$COL" \
	2>>"$COL/collector.log" &
E2E_PIDS+=($!)

# ---- the receiving Postfix ----------------------------------------------------------------------
listener() { # NAME LAST-OCTET CERT
	echo "$NET.$2:$P inet n - n - - smtpd -o syslog_name=postfix/$1" \
		"-o smtpd_tls_security_level=may -o smtpd_tls_cert_file=$C/$3.chain.crt" \
		"-o smtpd_tls_key_file=$C/$3.key"
}
DP_MASTER_EXTRA=$(
	listener dok 3 dane
	listener dbad 4 dane
	listener stsbad 5 wrong
	listener norec 6 dane
	listener badname 7 wrong
) dp_postfix rcv $NET.2 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $C/good.chain.crt
smtpd_tls_key_file = $C/good.key
smtpd_tls_received_header = yes
EOF
dp_ready
up_443() { $PY -c "import socket; socket.create_connection(('$NET.40', 443), 0.2)"; }
wait_until 10 up_443 || { echo "collector not up"; cat "$COL/collector.log"; exit 1; }

# ---- outpost ---------------------------------------------------------------------------------------
write_conf() { # ENABLED(yes|no) FIRST_RETRY
	e2e_config <<EOF
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
# records change mid-scenario (dns_peers_reload), and the kill in the middle of
# a report run needs the run's lookups to go to the resolver: nothing kept
cache_max_ttl = 0
[delivery]
port = $DP_PORT
first_retry = $2
connection_max_messages = 1
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
tls_timeout = 5s
[tls]
ca_file = $PEERS/pki/ca.crt
[mtasts]
fetch_timeout = 5s
[tlsrpt]
enabled = $1
[dkim]
$DKIM_KEY
EOF
	sed -i 's/^hostname = outpost.test$/hostname = outpost.secure.test/' "$CONF"
}
# Phase 1's deferred messages must not be retried (a second attempt would
# add to the day's counts): first_retry 1h then; from phase 2 on it is 2 s,
# for the retry of a POST answered 500.
write_conf no 1h
e2e_start
echo "# peers and daemon up after $((SECONDS - T0)) s (port $P, resolver $DNS_RESOLVER)"

# ---- helpers -------------------------------------------------------------------------------------------
rid() { echo "${1//-/}.$2@$SUB"; } # the report-id of DAY DOMAIN
inv() { $PY "$HERE/tlsrpt_check.py" inventory "$MAIL" "$COL/posts" >"$INV"; }
ev0() { $PY "$HERE/tlsrpt_check.py" eval "$INV" "$@"; } # EXPR [JSONFILE...], over $INV as it is
ev() { inv && ev0 "$@"; }
# expect DESCRIPTION SECONDS EXPR [JSONFILE...]: EXPR over what the receivers
# have (tlsrpt_check.py eval), waiting up to SECONDS for it; with 0 SECONDS,
# over the inventory last taken (inv takes it again)
expect() {
	local d=$1 t=$2 e=ev
	shift 2
	[ "$t" -gt 0 ] || e=ev0
	if wait_until "$t" $e "$@"; then pass "$d"; else
		fail "$d"
		echo "     expected: $1"
		$e "$@" || true
	fi
}
snap() { # DAY DOMAIN: tlsrpt results --json into a file, whose name is printed
	local f=$E2E_DIR/results.$1.$2.json
	op tlsrpt results --day "$1" --domain "$2" --json >"$f" 2>&1 || true
	echo "$f"
}
rtest() { # FILE EXPR: python EXPR over p = the policies in FILE
	$PY -c '
import json, sys
p = json.load(open(sys.argv[1]))
try:
    ok = eval(sys.argv[2])
except Exception as e:
    print("     (%s: %s)" % (type(e).__name__, e)); ok = False
sys.exit(0 if ok else 1)' "$1" "$2"
}
expect_r() { # DESCRIPTION FILE EXPR
	if rtest "$2" "$3"; then pass "$1"; else
		fail "$1"
		echo "     expected: $3"
		echo "     results: $(head -c 2500 "$2")"
	fi
}
logged() { $PY "$HERE/outpost_log.py" "$E2E_DIR/outpost.log" "$@" >/dev/null; }
log_count() { $PY "$HERE/outpost_log.py" "$E2E_DIR/outpost.log" "$@" | wc -l; }
metric() { # RESULT: outpost_tlsrpt_reports_total{result="RESULT"}, 0 when absent
	curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v want="outpost_tlsrpt_reports_total{result=\"$1\"}" \
			'$1 == want { print $2; found = 1 } END { if (!found) print 0 }'
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
# says FILE LINE: the output of a tlsrpt send holds LINE
says() { grep -qxF -- "$2" "$1"; }
says_not() { ! grep -qF -- "$2" "$1"; }
show_out() { sed 's/^/     | /' "$1"; }
check_out() { # DESCRIPTION FILE says|says_not TEXT
	if "$3" "$2" "$4"; then pass "$1"; else
		fail "$1"
		echo "     expected ($3): $4"
		show_out "$2"
	fi
}
submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" s@snd.$I "$1" --subject "tlsrpt $1"; }
# settle ID...: waits (30 s at most) until each message had its first
# attempt; a deferred one is then dropped (no retry may add to the day's
# counts); prints "ID state attempts" and keeps each `queue show --json` in
# shown/ID.json
settle() {
	$PY - "$OUTPOST" "$CONF" "$E2E_DIR/shown" "$@" <<'EOF'
import json, subprocess, sys, time
op, conf, shown, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
left, out = set(ids), {}
deadline = time.time() + 30
while left and time.time() < deadline:
    for i in sorted(left):
        p = subprocess.run([op, "-c", conf, "queue", "show", i, "--json"], capture_output=True, text=True)
        if p.returncode != 0:
            continue
        j = json.loads(p.stdout)
        r = j["recipients"][0]
        if r["state"] == "deferred" and r["attempts"] >= 1:
            subprocess.run([op, "-c", conf, "queue", "drop", i], capture_output=True)
        elif r["state"] != "delivered":
            continue
        open("%s/%s.json" % (shown, i), "w").write(p.stdout)
        out[i] = "%s %d" % (r["state"], r["attempts"])
        left.discard(i)
    time.sleep(0.05)
for i in ids:
    print(i, out.get(i, "unsettled 0"))
EOF
}
qtest() { # ID EXPR over r = the recipient, a = the attempts
	$PY -c '
import json, sys
j = json.load(open(sys.argv[1])); r = j["recipients"][0]; a = j.get("attempts", [])
sys.exit(0 if eval(sys.argv[2]) else 1)' "$E2E_DIR/shown/$1.json" "$2" 2>/dev/null
}
send() { # OUTFILE [tlsrpt send options]: a run; its output in OUTFILE
	local out=$1
	shift
	op tlsrpt send "$@" >"$out" 2>&1 || echo "(tlsrpt send: exit status $?)" >>"$out"
}

# ---- phase 1: a day of results ---------------------------------------------------------------------------
declare -A ID
for c in dok1:u1@dok.$Z dok2:u2@dok.$Z dbad1:u1@dbad.$Z dbad2:u2@dbad.$Z sts:u@sts.$I \
	norec:u@norec.$Z later:u@later.$Z rmix:u@rmix.$I; do
	ID[${c%%:*}]=$(submit "${c#*:}")
done
SETTLED=$(settle "${ID[@]}")
echo "$SETTLED" >"$E2E_DIR/settled"
echo "# first attempts done after $((SECONDS - T0)) s"
st() { awk -v id="${ID[$1]}" '$1 == id { print $2 " " $3 }' "$E2E_DIR/settled"; }
check "dok: both messages delivered at the first attempt ($(st dok1), $(st dok2))" \
	test "$(st dok1)" = "delivered 1" -a "$(st dok2)" = "delivered 1"
check "dok: delivered verified DANE-EE" qtest "${ID[dok1]}" "a[-1]['tls_verified'] == 'DANE-EE'"
for k in dbad1 dbad2 sts norec later; do
	check "$k: deferred after one attempt ($(st $k)), 4.7.5" \
		qtest "${ID[$k]}" "r['state'] == 'deferred' and r['attempts'] == 1 and r['last_error'].startswith('4.7.5')"
done
check "rmix: delivered over TLS verified by PKIX under its policy ($(st rmix))" \
	qtest "${ID[rmix]}" "r['state'] == 'delivered' and a[-1]['tls_verified'] == 'PKIX' and a[-1]['tls_policy'] == 'mta-sts enforce'"

# what the attempts recorded (docs/tls.md, "TLS results"), kept for comparing with the reports
for d in dok.$Z mx-dok.$Z dbad.$Z mx-dbad.$Z sts.$I mx-stsbad.$I later.$Z rmix.$I mx-rmix.$I; do
	snap "$TODAY" "$d" >/dev/null
done
S=$E2E_DIR/results.$TODAY
expect_r "results: dok.secure.test no-policy-found, 2 successful sessions" "$S.dok.$Z.json" \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'no-policy-found' and p[0]['summary'] == {'total-successful-session-count': 2, 'total-failure-session-count': 0}"
expect_r "results: mx-dok.secure.test tlsa (3 1 1), 2 successful sessions" "$S.mx-dok.$Z.json" \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'tlsa' and p[0]['policy']['policy-string'] == ['3 1 1 $T311'] and p[0]['summary']['total-successful-session-count'] == 2 and p[0]['failure-details'] == []"
expect_r "results: dbad.secure.test no-policy-found, 2 failed sessions" "$S.dbad.$Z.json" \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'no-policy-found' and p[0]['summary'] == {'total-successful-session-count': 0, 'total-failure-session-count': 2}"
expect_r "results: mx-dbad.secure.test tlsa, 2 failed sessions, tlsa-invalid dane-no-match x2 at $NET.4" \
	"$S.mx-dbad.$Z.json" \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'tlsa' and p[0]['policy']['policy-string'] == ['3 1 1 $DECOY'] and p[0]['policy']['mx-host'] == ['mx-dbad.$Z'] and p[0]['summary'] == {'total-successful-session-count': 0, 'total-failure-session-count': 2} and [(f['result-type'], f['failure-reason-code'], f['receiving-ip'], f['receiving-mx-hostname'], f['failed-session-count']) for f in p[0]['failure-details']] == [('tlsa-invalid', 'dane-no-match', '$NET.4', 'mx-dbad.$Z', 2)]"
expect_r "results: sts.insecure.test sts (the policy), 1 failed session, certificate-host-mismatch at $NET.5" \
	"$S.sts.$I.json" \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'sts' and p[0]['policy']['policy-string'] == ['version: STSv1', 'mode: enforce', 'mx: mx-stsbad.$I', 'max_age: 86400'] and p[0]['policy']['mx-host'] == ['mx-stsbad.$I'] and p[0]['summary'] == {'total-successful-session-count': 0, 'total-failure-session-count': 1} and [(f['result-type'], f['receiving-ip'], f['failed-session-count']) for f in p[0]['failure-details']] == [('certificate-host-mismatch', '$NET.5', 1)]"
for d in mx-stsbad.$I later.$Z; do
	expect_r "results: $d no-policy-found, 1 failed session" "$S.$d.json" \
		"len(p) == 1 and p[0]['policy']['policy-type'] == 'no-policy-found' and p[0]['summary'] == {'total-successful-session-count': 0, 'total-failure-session-count': 1}"
done
expect_r "results: rmix.insecure.test sts, 1 successful session" "$S.rmix.$I.json" \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'sts' and p[0]['summary'] == {'total-successful-session-count': 1, 'total-failure-session-count': 0}"

# mx-rmix now points at the listener whose certificate names another host
sed -i "/^mx-rmix A /d" "$PEERS/dns/extra.$I"
zi "mx-rmix A $NET.7"
dns_peers_reload
DIG="dig +short +tries=1 +time=3 @${DNS_RESOLVER%:*} -p ${DNS_RESOLVER#*:}"
moved() { [ "$($DIG mx-rmix.$I A)" = "$NET.7" ]; }
check "test bed: mx-rmix.insecure.test now resolves to $NET.7" wait_until 10 moved
later_fails() { dig +tries=1 +time=3 @"${DNS_RESOLVER%:*}" -p "${DNS_RESOLVER#*:}" _smtp._tls.later.$Z TXT | grep -q 'status: SERVFAIL'; }
check "test bed: _smtp._tls.later.secure.test TXT is SERVFAIL (CNAME into bogus.test)" later_fails

# ---- phase 2: a dry run --------------------------------------------------------------------------------
e2e_stop
write_conf no 2s
e2e_start
QUEUED0=$(queue_count || echo unknown)
send "$E2E_DIR/dry.out" --dry-run
DRY=$E2E_DIR/dry.out
check_out "dry run: dbad.secure.test would be queued" "$DRY" says "$TODAY dbad.$Z: would be queued"
check_out "dry run: mx-dbad.secure.test would be queued" "$DRY" says "$TODAY mx-dbad.$Z: would be queued"
check_out "dry run: sts.insecure.test would be queued" "$DRY" says "$TODAY sts.$I: would be queued"
check_out "dry run: mx-stsbad.insecure.test: no TLSRPT record" "$DRY" says "$TODAY mx-stsbad.$I: no TLSRPT record"
check_out "dry run: norec.secure.test (only an http: URI): no mailto: or https: destination" "$DRY" \
	says "$TODAY norec.$Z: no mailto: or https: destination"
check_out "dry run: mx-norec.secure.test: more than one TLSRPT record" "$DRY" \
	says "$TODAY mx-norec.$Z: more than one TLSRPT record"
check_out "dry run: later.secure.test: the lookup failed, later" "$DRY" \
	says "$TODAY later.$Z: later: the _smtp._tls lookup failed"
check_out "dry run: nothing for dok (successes only, all_success = no)" "$DRY" says_not "dok.$Z"
check_out "dry run: nothing for rmix (successes only)" "$DRY" says_not "rmix.$I"
check "dry run: 7 policy domains listed ($(wc -l <"$DRY"))" test "$(wc -l <"$DRY")" -eq 7
check "dry run: no message queued (queue $QUEUED0 -> $(queue_count))" test "$(queue_count)" = "$QUEUED0"
check "dry run: metric mail-queued stays 0" metric_is mail-queued 0
check "dry run: metric skipped stays 0 (nothing marked)" metric_is skipped 0

# ---- phase 3: the run ------------------------------------------------------------------------------------
T_RUN=$SECONDS
send "$E2E_DIR/run1.out"
RUN1=$E2E_DIR/run1.out
for d in dbad.$Z mx-dbad.$Z sts.$I; do
	check_out "run: $d queued" "$RUN1" says "$TODAY $d: queued"
done
check_out "run: mx-stsbad.insecure.test: no TLSRPT record" "$RUN1" says "$TODAY mx-stsbad.$I: no TLSRPT record"
check_out "run: norec.secure.test: no mailto: or https: destination" "$RUN1" \
	says "$TODAY norec.$Z: no mailto: or https: destination"
check_out "run: mx-norec.secure.test: more than one TLSRPT record" "$RUN1" \
	says "$TODAY mx-norec.$Z: more than one TLSRPT record"
check_out "run: later.secure.test left for later" "$RUN1" says "$TODAY later.$Z: later: the _smtp._tls lookup failed"
check "the dry run had marked nothing: the run lists the same 7 domains ($(wc -l <"$RUN1"))" \
	test "$(wc -l <"$RUN1")" -eq 7

R_DBAD=$(rid "$TODAY" dbad.$Z)
R_MXDBAD=$(rid "$TODAY" mx-dbad.$Z)
R_STS=$(rid "$TODAY" sts.$I)
expect "the reports arrive: dbad and mx-dbad at tlsrpt@rua, sts at loop@rloop and mix@rmix" 20 \
	"len(M(report_id='$R_DBAD')) >= 1 and len(M(report_id='$R_MXDBAD')) >= 1 and len(M(report_id='$R_STS')) >= 2"
expect "dbad's report is POSTed to $URL/r/dbad and accepted" 10 "len(P(report_id='$R_DBAD', path='/r/dbad')) >= 1"
expect "sts's report is POSTed to /flaky/sts, and answered 500 the first time" 10 \
	"len(P(report_id='$R_STS', path='/flaky/sts', status=500)) == 1"
T_500=$SECONDS

# check_report DAY DOMAIN RCPTS POSTPATH RESULTS: one report as received
# (RCPTS: its mailto: addresses, comma-separated, or -; POSTPATH or -),
# against RFC 8460 and the results recorded (RESULTS: a snap file)
check_report() {
	local day=$1 d=$2 rcpts=$3 path=$4 res=$5 r begin end
	r=$(rid "$day" "$d")
	begin=$(date -u -d "$day" +%s)
	end=$((begin + 86399))
	local one="M(report_id='$r')[0]"
	if [ "$rcpts" != - ]; then
		local want
		want=$($PY -c 'import sys; print(sorted(x.lower() for x in sys.argv[1].split(",")))' "$rcpts")
		expect "$d: the report mail reached each of $rcpts once" 0 \
			"sorted(x for m in M(report_id='$r') for x in m['rcpts']) == $want and len(set(m['message_id'] for m in M(report_id='$r'))) == 1"
		expect "$d: multipart/report; report-type=tlsrpt: a text/plain part and application/tlsrpt+gzip (RFC 8460 §5.3)" 0 \
			"$one['content_type'] == 'multipart/report' and $one['report_type'] == 'tlsrpt' and $one['parts'] == ['text/plain', 'application/tlsrpt+gzip']"
		expect "$d: TLS-Report-Domain: $d, TLS-Report-Submitter: $SUB (RFC 8460 §5.3)" 0 \
			"$one['tls_report_domain'] == '$d' and $one['tls_report_submitter'] == '$SUB'"
		expect "$d: Subject: Report Domain: $d Submitter: $SUB Report-ID: <$r> (RFC 8460 §5.3)" 0 \
			"$one['subject'] == 'Report Domain: $d Submitter: $SUB Report-ID: <$r>'"
		expect "$d: TLS-Required: No (RFC 8689 §5), From and envelope sender postmaster@$SUB" 0 \
			"$one['tls_required'] == 'No' and '<postmaster@$SUB>' in $one['from'] and $one['return_path'] == '<postmaster@$SUB>'"
		expect "$d: the attachment is named $SUB!$d!$begin!$end.json.gz (RFC 8460 §5.1)" 0 \
			"$one['attachment']['filename'] == '$SUB!$d!$begin!$end.json.gz' and $one['error'] is None"
		expect "$d: the mailed JSON has RFC 8460 §4.4's fields, the day, report-id $r" 0 \
			"rfc($one['report'], '$d', '$day', '$SUB') == []"
		expect "$d: the mailed policies are those recorded (tlsrpt results)" 0 \
			"same($one['report']['policies'], J[0])" "$res"
		local f
		f=$($PY -c '
import json, sys
print([m["file"] for m in json.load(open(sys.argv[1]))["mails"] if m["report_id"] == sys.argv[2]][0])' "$INV" "$r" 2>/dev/null || true)
		if [ -n "$f" ] && $PY "$HERE/dkim_verify.py" verify "$f" "$DNS_RESOLVER" >"$f.dkimpy" 2>&1 &&
			grep -q "d=$SUB a=ed25519-sha256 pass" "$f.dkimpy"; then
			pass "$d: the mail's DKIM signature (d=$SUB) verifies with dkimpy"
		else
			fail "$d: the mail's DKIM signature (d=$SUB) verifies with dkimpy"
			sed 's/^/     dkimpy: /' "$f.dkimpy" 2>/dev/null || true
		fi
	fi
	if [ "$path" != - ]; then
		local pone="P(report_id='$r', path='$path')[0]"
		expect "$d: POSTed to $path with Content-Type: application/tlsrpt+gzip (RFC 8460 §5.4)" 0 \
			"$pone['content_type'] == 'application/tlsrpt+gzip' and $pone['error'] is None"
		expect "$d: the POSTed JSON has RFC 8460 §4.4's fields, the policies recorded" 0 \
			"rfc($pone['report'], '$d', '$day', '$SUB') == [] and same($pone['report']['policies'], J[0])" "$res"
		[ "$rcpts" = - ] || expect "$d: the POST's body is the mail's attachment, octet for octet" 0 \
			"$pone['sha256'] == $one['attachment']['sha256']"
	fi
	op tlsrpt report "$d" --day "$day" >"$E2E_DIR/report.$day.$d.json" 2>&1 || true
	if [ "$rcpts" != - ]; then
		expect "$d: tlsrpt report prints the report that was sent" 0 "J[0] == $one['report']" \
			"$E2E_DIR/report.$day.$d.json"
	fi
}
inv
check_report "$TODAY" dbad.$Z tlsrpt@rua.$I /r/dbad "$S.dbad.$Z.json"
check_report "$TODAY" mx-dbad.$Z tlsrpt@rua.$I - "$S.mx-dbad.$Z.json"
check_report "$TODAY" sts.$I loop@rloop.$I,mix@rmix.$I - "$S.sts.$I.json"
# the counts, against what was caused: 2 messages to dbad, 1 to sts
expect "dbad's report: 2 failed sessions, none successful (the 2 messages)" 0 \
	"[p['summary'] for p in M(report_id='$R_DBAD')[0]['report']['policies']] == [{'total-successful-session-count': 0, 'total-failure-session-count': 2}]"
expect "mx-dbad's report: tlsa, 2 failed sessions, tlsa-invalid dane-no-match x2" 0 \
	"[(p['policy']['policy-type'], p['summary']['total-failure-session-count'], [(f['result-type'], f['failure-reason-code'], f['failed-session-count']) for f in p['failure-details']]) for p in M(report_id='$R_MXDBAD')[0]['report']['policies']] == [('tlsa', 2, [('tlsa-invalid', 'dane-no-match', 2)])]"
expect "sts's report: the sts policy, 1 failed session, certificate-host-mismatch x1" 0 \
	"[(p['policy']['policy-type'], p['summary']['total-failure-session-count'], [(f['result-type'], f['failed-session-count']) for f in p['failure-details']]) for p in M(report_id='$R_STS')[0]['report']['policies']] == [('sts', 1, [('certificate-host-mismatch', 1)])]"
check "log: event=tlsrpt_report outcome=queued for dbad" logged tlsrpt_report day="$TODAY" domain=dbad.$Z outcome=queued
check "log: event=tlsrpt_post for /r/dbad, sent" wait_until 5 logged tlsrpt_post url=$URL/r/dbad result=sent
check "log: event=tlsrpt_post for /flaky/sts, deferred after HTTP 500" \
	wait_until 5 logged tlsrpt_post url=$URL/flaky/sts attempt=1 result=deferred "error~=500"
check "metric: mail-queued 3 ($(metric mail-queued))" metric_is mail-queued 3
check "metric: skipped 3 ($(metric skipped))" metric_is skipped 3
check "metric: https-deferred 1 ($(metric https-deferred))" wait_until 5 metric_is https-deferred 1

# ---- phase 4: the second run -----------------------------------------------------------------------------
# The report mails to rloop and rmix went under enforced policies whose
# host's certificate names another host: delivered (TLS-Required: No), and
# recorded as failed sessions, which must never make a report (RFC 8460 §3).
SL=$(snap "$TODAY" rloop.$I)
expect_r "the report mail's delivery to rloop recorded a failed session (certificate-host-mismatch)" "$SL" \
	"len(p) == 1 and p[0]['summary']['total-failure-session-count'] == 1 and [f['result-type'] for f in p[0]['failure-details']] == ['certificate-host-mismatch']"
SM=$(snap "$TODAY" rmix.$I)
expect_r "the report mail's delivery to rmix recorded a failed session, besides the earlier success" "$SM" \
	"len(p) == 1 and p[0]['summary'] == {'total-successful-session-count': 1, 'total-failure-session-count': 1}"
send "$E2E_DIR/run2.out"
RUN2=$E2E_DIR/run2.out
check_out "second run: nothing for rloop.insecure.test (only a report's delivery failed there)" "$RUN2" says_not "rloop.$I"
check_out "second run: nothing for mx-rloop.insecure.test (the same, for the host)" "$RUN2" says_not "mx-rloop.$I"
check_out "second run: nothing for rmix.insecure.test (its own session succeeded; only a report's failed)" \
	"$RUN2" says_not "rmix.$I"
check_out "second run: nothing for mx-rmix.insecure.test (the same, for the host)" "$RUN2" says_not "mx-rmix.$I"
check_out "second run: rua.insecure.test, where reports went, makes none" "$RUN2" says_not "rua.$I"
# RFC 8460 §3: the session delivering a report "SHOULD NOT" be in the next
# report: what rmix's report would hold is its own session only
op tlsrpt report rmix.$I --day "$TODAY" >"$E2E_DIR/report.rmix.json" 2>&1 || true
expect_r "rmix's report would count its own session only (1 successful, 0 failed), not the report mail's" \
	"$E2E_DIR/report.rmix.json" \
	"[(x['policy']['policy-type'], x['summary']['total-successful-session-count'], x['summary']['total-failure-session-count'], len(x['failure-details'])) for x in p['policies']] == [('sts', 1, 0, 0)]"
# the domains the first run marked done: absent now, or "done already"
again() {
	local d
	for d in dbad.$Z mx-dbad.$Z sts.$I mx-stsbad.$I norec.$Z mx-norec.$Z; do
		grep "^$TODAY $d: " "$RUN2" | grep -qv ': done already$' && return 1
	done
	return 0
}
if again; then pass "second run: none of the 6 domains done by the first run is made again"; else
	fail "second run: none of the 6 domains done by the first run is made again"
	show_out "$RUN2"
fi
check_out "second run: later.secure.test still waits for its lookup" "$RUN2" \
	says "$TODAY later.$Z: later: the _smtp._tls lookup failed"

# ---- phase 5: the POST answered 500 is retried ----------------------------------------------------------
# first_retry is 2 s: the retry is due 2 s after the 500 (the delivery schedule)
FL=$((T_500 + 12 - SECONDS))
[ "$FL" -ge 1 ] || FL=1 # (also a fresh look at what arrived)
expect "the POST of sts's report is retried after the 500 and accepted, within 12 s of the 500" \
	"$FL" "len(P(report_id='$R_STS', path='/flaky/sts')) == 1"
echo "# (the 500 came $((T_500 - T_RUN)) s after the run; now $((SECONDS - T_RUN)) s)"
expect "nothing more arrived after the second run: one mail per address and report" 0 \
	"len(M(report_id='$R_DBAD')) == 1 and len(M(report_id='$R_MXDBAD')) == 1 and len(M(report_id='$R_STS')) == 2 and len(mails) == 4 and len(P(report_id='$R_DBAD')) == 1"
expect "nothing ever went out for mx-stsbad, norec, mx-norec (no record, http: only, two records)" 0 \
	"not [e for e in mails + posts if e['report_id'] in ('$(rid "$TODAY" mx-stsbad.$I)', '$(rid "$TODAY" norec.$Z)', '$(rid "$TODAY" mx-norec.$Z)')] and not [m for m in mails if set(m['rcpts']) & {'a@rua.$I', 'b@rua.$I'}]"

# ---- phase 6: the failed lookup, retried by a later run --------------------------------------------------
sed -i "/^_smtp._tls.later CNAME/d" "$PEERS/dns/extra.$Z"
zs "_smtp._tls.later TXT $(rua "$R_RUA,$URL/r/later")"
dns_peers_reload
later_ok() { $DIG _smtp._tls.later.$Z TXT | grep -q TLSRPTv1; }
check "test bed: _smtp._tls.later.secure.test TXT now answers" wait_until 10 later_ok
send "$E2E_DIR/run3.out"
check_out "a later run: later.secure.test queued, once the lookup works" "$E2E_DIR/run3.out" \
	says "$TODAY later.$Z: queued"
check "a later run: only later.secure.test ($(wc -l <"$E2E_DIR/run3.out") lines)" \
	test "$(wc -l <"$E2E_DIR/run3.out")" -eq 1
R_LATER=$(rid "$TODAY" later.$Z)
expect "later's report arrives by mail and POST" 15 \
	"len(M(report_id='$R_LATER')) == 1 and len(P(report_id='$R_LATER', path='/r/later')) == 1"
snap "$TODAY" later.$Z >/dev/null
inv
check_report "$TODAY" later.$Z tlsrpt@rua.$I /r/later "$S.later.$Z.json"
expect "later's report: 1 failed session (the 1 message)" 0 \
	"[p['summary'] for p in M(report_id='$R_LATER')[0]['report']['policies']] == [{'total-successful-session-count': 0, 'total-failure-session-count': 1}]"
send "$E2E_DIR/run4.out"
check_out "one more run the same day: no report to make" "$E2E_DIR/run4.out" says "no report to make"
check "metric: mail-queued 4, https-sent 3 ($(metric mail-queued), $(metric https-sent))" \
	bash -c "[ '$(metric mail-queued)' = 4 ] && [ '$(metric https-sent)' = 3 ]"
echo "# phases 1-6 done after $((SECONDS - T0)) s"

# ---- phase 7: SIGKILL in the middle of a run -----------------------------------------------------------------
# Today's results become those of D-3, whose reports are not made yet. The
# run is killed as soon as its first report is marked done; the collector
# refuses POSTs meanwhile and delivery is paused, so that a copy sent just
# before the kill cannot arrive twice (that would be SMTP's and HTTP's
# at-least-once, not a report made twice): then every report must arrive
# exactly once.
e2e_stop
sqlite3 "$DATA/spool.db" "UPDATE tls_results SET day = '$D3' WHERE day = '$TODAY'"
touch "$COL/refuse"
e2e_start
op queue pause >/dev/null || true
op tlsrpt send --day "$D3" >"$E2E_DIR/kill.out" 2>&1 &
SENDPID=$!
# kill -9 as soon as the log says the first report of the run is done
BEFORE=$($PY - "$E2E_DIR/outpost.log" "$(stat -c %s "$E2E_DIR/outpost.log")" "$D3" "$DAEMON_PID" <<'EOF2'
import os, signal, sys, time
path, off, day, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
want = "event=tlsrpt_report day=%s " % day
deadline = time.time() + 10
with open(path, errors="replace") as f:
    f.seek(off)
    buf = ""
    while time.time() < deadline:
        buf += f.read()
        if want in buf:
            break
        time.sleep(0.0005)
os.kill(pid, signal.SIGKILL)
with open(path, errors="replace") as f:
    f.seek(off)
    print(f.read().count(want))
EOF2
)
wait "$DAEMON_PID" 2>/dev/null || true
forget_pid "$DAEMON_PID"
wait "$SENDPID" 2>/dev/null || true
echo "# killed when the log said $BEFORE of the run's domains were done"
rm -f "$COL/refuse"
e2e_start
send "$E2E_DIR/kill2.out" --day "$D3"
K2=$E2E_DIR/kill2.out
echo "# the run after the restart:"
show_out "$K2"
check "the kill came in the middle of the run: done before it $BEFORE, made after it $(grep -c ': ' "$K2" || true)" \
	test "$BEFORE" -ge 1 -a "$(grep -c ': ' "$K2" || true)" -ge 1
K_MAILS="len(M(report_id='$(rid "$D3" dbad.$Z)')) == 1 and len(M(report_id='$(rid "$D3" mx-dbad.$Z)')) == 1"
K_MAILS+=" and len(M(report_id='$(rid "$D3" sts.$I)')) == 2 and len(M(report_id='$(rid "$D3" later.$Z)')) == 1"
K_POSTS="len(P(report_id='$(rid "$D3" dbad.$Z)')) == 1 and len(P(report_id='$(rid "$D3" sts.$I)')) == 1"
K_POSTS+=" and len(P(report_id='$(rid "$D3" later.$Z)')) == 1"
expect "after the kill and a restart, D-3's 4 reports arrive by mail (5 copies)" 15 "$K_MAILS"
# a POST refused before the kill is due again 2 s later (first_retry)
expect "after the kill and a restart, D-3's 3 POSTs are accepted within 15 s" 15 "$K_POSTS"
sleep 2
inv
expect "... and no D-3 mail twice (2 s later; one Message-ID for sts's two copies)" 0 \
	"$K_MAILS and len(set(m['message_id'] for m in M(report_id='$(rid "$D3" sts.$I)'))) == 1"
expect "D-3's report of dbad holds the recorded policies (moved from today)" 0 \
	"same(M(report_id='$(rid "$D3" dbad.$Z)')[0]['report']['policies'], J[0])" "$S.dbad.$Z.json"

# ---- phase 8: a restart after midnight ----------------------------------------------------------------------------
# With the daemon stopped, D-3's results (all but later's) become
# yesterday's; at start-up [tlsrpt] enabled makes the reports of yesterday
# and the day before (src/tlsrpt/sender.h: "a restart never skips one").
e2e_stop
sqlite3 "$DATA/spool.db" \
	"UPDATE tls_results SET day = '$YDAY' WHERE day = '$D3' AND policy_domain <> 'later.$Z'"
write_conf yes 2s
T_START=$SECONDS
e2e_start
Y_EXPR="len(M(report_id='$(rid "$YDAY" dbad.$Z)')) == 1 and len(M(report_id='$(rid "$YDAY" mx-dbad.$Z)')) == 1"
Y_EXPR+=" and len(M(report_id='$(rid "$YDAY" sts.$I)')) == 2"
Y_EXPR+=" and len(P(report_id='$(rid "$YDAY" dbad.$Z)')) == 1 and len(P(report_id='$(rid "$YDAY" sts.$I)')) == 1"
expect "restart after midnight: yesterday's reports arrive (3 mails, 4 copies, 2 POSTs) within 15 s" 15 "$Y_EXPR"
echo "# yesterday's reports arrived $((SECONDS - T_START)) s after the start"
check "restart after midnight: logged as made once each, by the start-up run" \
	test "$(log_count tlsrpt_report day="$YDAY" domain=dbad.$Z outcome=queued)" -eq 1 -a \
	"$(log_count tlsrpt_report day="$YDAY" domain=sts.$I outcome=queued)" -eq 1
expect "yesterday's dbad report covers yesterday (date-range, report-id) with the policies recorded" 0 \
	"rfc(M(report_id='$(rid "$YDAY" dbad.$Z)')[0]['report'], 'dbad.$Z', '$YDAY', '$SUB') == [] and same(M(report_id='$(rid "$YDAY" dbad.$Z)')[0]['report']['policies'], J[0])" \
	"$S.dbad.$Z.json"

# Restart again: yesterday's are done. later's results become the day
# before yesterday's: the start-up run must make that one, and only that.
e2e_stop
sqlite3 "$DATA/spool.db" "UPDATE tls_results SET day = '$D2' WHERE day = '$D3' AND policy_domain = 'later.$Z'"
e2e_start
expect "second restart: the day before yesterday's report (later) arrives once, by mail and POST, within 15 s" 15 \
	"len(M(report_id='$(rid "$D2" later.$Z)')) == 1 and len(P(report_id='$(rid "$D2" later.$Z)')) == 1"
sleep 2
inv
expect "second restart: no second copy of yesterday's reports" 0 "$Y_EXPR"
check "second restart: yesterday's reports were not made again (log)" \
	test "$(log_count tlsrpt_report day="$YDAY" outcome=queued)" -eq 3
send "$E2E_DIR/yday.out" --day "$YDAY"
check_out "tlsrpt send for yesterday after it: no report to make" "$E2E_DIR/yday.out" says "no report to make"

# ---- the end ----------------------------------------------------------------------------------------------------------
# (the restarts above also sent whatever POST of D-3 was still due)
inv
expect "D-3, after all the restarts: each report by mail and POST exactly once (the SIGKILL lost and doubled nothing)" 0 \
	"$K_MAILS and $K_POSTS"
expect "in all: every report received was accepted only once per address (no duplicates)" 0 \
	"len(mails) == len(set((m['report_id'], tuple(m['rcpts'])) for m in mails)) and len(P()) == len(set((p['report_id'], p['path']) for p in P()))"
not_logged() { # exit status 1 of outpost_log.py: read, and no such line (2 is an error)
	local rc=0
	logged "$@" || rc=$?
	[ "$rc" -eq 1 ]
}
no_failures() { not_logged delivery result=failed && not_logged dsn_queued; }
check "no report mail failed: no event=delivery result=failed, no event=dsn_queued (every recipient is a record's address)" \
	no_failures
if ! not_logged delivery result=failed; then
	$PY "$HERE/outpost_log.py" "$E2E_DIR/outpost.log" delivery result=failed | cut -c1-300 | sed 's/^/     /'
fi
check "the daemon is still running" kill -0 "$DAEMON_PID"
e2e_stop_clean
dp_stop
dns_peers_stop
echo "# took $((SECONDS - T0)) s"
e2e_finish
