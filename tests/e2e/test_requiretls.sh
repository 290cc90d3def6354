#!/bin/bash
# REQUIRETLS and "TLS-Required: No" (RFC 8689), and TLS without any
# policy, end to end against real peers: NSD + a validating Unbound
# (dns_peers.sh; secure.test signed, insecure.test not, bogus.test bogus),
# nginx serving MTA-STS policies on 443, aiosmtpd receivers
# (requiretls_mx.py) and Postfix (delivery_peers.sh), each on its own
# address in 127.0.3.0/26 and the one [delivery] port:
#   127.0.3.2  aiosmtpd "rt": STARTTLS with a test-CA certificate for all
#              the MX names of the CA-issued hosts here, REQUIRETLS
#              announced after STARTTLS (mxrt.secure.test, mxrt.insecure.test;
#              mxtf.secure.test, whose TLSA name is a CNAME into bogus.test)
#   127.0.3.3  aiosmtpd "dsn": the same; MX of the senders' domain
#              snd.secure.test, where the notices go (mxsnd.secure.test)
#   127.0.3.4  aiosmtpd "nort": the same certificate, no REQUIRETLS
#              (mxnort.secure.test: MX of snd2.secure.test too)
#   127.0.3.5  aiosmtpd "dane": like rt; mxdane.secure.test has a matching
#              TLSA 3 1 1, mxdanebad.secure.test a TLSA 3 1 1 of another key
#   127.0.3.6  aiosmtpd "ss": a self-signed certificate, REQUIRETLS
#              announced (mxss.insecure.test, mxss.secure.test)
#   127.0.3.7  aiosmtpd "refuse": announces STARTTLS and answers it with
#              454; plaintext mail accepted (mxrefuse.insecure.test)
#   127.0.3.8  aiosmtpd "pre": like nort, but announces REQUIRETLS before
#              STARTTLS (only) (mxpre.secure.test)
#   127.0.3.10 Postfix "pbroken": STARTTLS offered, no handshake possible
#              (TLS 1.1 at most, which OpenSSL 3 refuses) (mxbroken.insecure.test;
#              mxbroken.secure.test with a matching TLSA record)
#   127.0.3.11 Postfix "pself": STARTTLS with a self-signed certificate
#              (mxpself.insecure.test)
#   127.0.3.50 nginx on 443: the MTA-STS policies of sts-*.insecure.test
# Cases (recipient domain; each has its own sender s-CASE@snd.secure.test,
# so each notice tells its case):
#   REQUIRETLS  rt1 signed MX, PKIX, REQUIRETLS -> delivered; rt2 no REQUIRETLS
#               at the server -> 5.7.30 + redacted DSN; rt10 MX 10 without,
#               MX 20 with -> delivered via 20; rt11 signed MX list, host in
#               the unsigned zone -> delivered; rt12/cn13 a CNAME where one
#               step is unsigned -> 5.7.30; rt3 DANE -> delivered; rt4 DANE
#               mismatch -> deferred 4.7.5 (+ redacted delay DSN); sts-enf
#               unsigned MX in an enforced policy -> delivered; sts-test
#               (testing) -> 5.7.30; rt7 unsigned, no policy -> 5.7.30, the
#               DSN travels with REQUIRETLS; rt7b the same with a sender
#               whose MX lacks REQUIRETLS -> the DSN fails too; [127.0.3.2]
#               -> 5.7.30; rt9 signed MX, self-signed -> deferred 4.7.5
#   TLS-Required: No  n1 DANE mismatch, sts-bad enforced policy + self-signed,
#               sts-unl MX not in the policy, n6 TLSA lookup SERVFAIL -> all
#               delivered over TLS; sts-refuse STARTTLS refused, n7 DANE +
#               failed handshake -> plaintext on the same host; controls
#               without the header (c1, sts-refuse2, c6) -> not delivered;
#               n5/n5b with REQUIRETLS too -> REQUIRETLS wins
#   no policy   p1 failed handshake -> plaintext on the same host; p2
#               self-signed -> TLS, unverified; nullmx (a control for the
#               redaction: its DSN carries the original header)
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone ldns-keygen postfix nginx openssl curl; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
$PY -c 'import aiosmtpd' 2>/dev/null || { echo "missing python3-aiosmtpd (scripts/deps.sh test)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root: MTA-STS policies are fetched from port 443"; exit 1; }
T0=$SECONDS
source "$HERE/peers.sh"
RT=$PEERS/rt
W=$E2E_DIR/www
C=$E2E_DIR/certs
mkdir -p "$RT" "$W/logs" "$W/tmp" "$C"
NGINX_PID= RT_PID=
stop_others() {
	if [ -n "$NGINX_PID" ]; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; fi
	if [ -n "$RT_PID" ]; then kill -TERM "$RT_PID" 2>/dev/null || true; fi
	for p in $NGINX_PID $RT_PID; do
		wait "$p" 2>/dev/null || true
		forget_pid "$p"
	done
	NGINX_PID= RT_PID=
}
trap 'stop_others; dp_stop; e2e_cleanup' EXIT

# The delivery port: free on every address this scenario uses.
dp_pick_port 127.0.3 60 || { echo "no free port on 127.0.3.1-60"; exit 1; }

# ---- certificates: the test bed's CA issues one for all the MX names and
# one for the MTA-STS policy hosts; one self-signed; one key only for a
# TLSA record that matches nothing served
dns_peers__pki # the test bed's CA now (dns_peers_start would make it later)
CA=$PEERS/pki/ca.crt
STS_DOMAINS="sts-enf sts-test sts-bad sts-unl sts-refuse sts-refuse2"
issue() { dns_peers_cert "$C" "$1" "$(echo "$2" | sed 's/\([^,]*\)/DNS:\1/g')"; } # NAME SANS
issue mx "mxrt.secure.test,mxpre.secure.test,mxtf.secure.test,mxbroken.secure.test,mxrt.insecure.test,mxsnd.secure.test,mxnort.secure.test,mxdane.secure.test,mxdanebad.secure.test,mxrefuse.insecure.test,mxbroken.insecure.test"
issue sub outpost.secure.test # outpost's own submission listener (STARTTLS)
issue sts "$(for d in $STS_DOMAINS; do printf 'mta-sts.%s.insecure.test,' $d; done | sed 's/,$//')"
dns_peers_cert "$C" ss "DNS:mxss.insecure.test,DNS:mxss.secure.test,DNS:mxpself.insecure.test" self
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C/other.key" 2>/dev/null
spki() { openssl pkey -in "$1" -pubout -outform DER 2>/dev/null | openssl dgst -sha256 -r | cut -d' ' -f1; }
TLSA_GOOD=$(spki "$C/mx.key")
TLSA_BAD=$(spki "$C/other.key")

# ---- DNS
S=secure.test
I=insecure.test
for rec in "mxrt A 127.0.3.2" "mxsnd A 127.0.3.3" "mxnort A 127.0.3.4" "mxdane A 127.0.3.5" \
	"mxdanebad A 127.0.3.5" "mxss A 127.0.3.6" \
	"_$DP_PORT._tcp.mxdane TLSA 3 1 1 $TLSA_GOOD" "_$DP_PORT._tcp.mxdanebad TLSA 3 1 1 $TLSA_BAD" \
	"snd MX 10 mxsnd" "snd2 MX 10 mxnort" \
	"rt1 MX 10 mxrt" "rt2 MX 10 mxnort" "rt3 MX 10 mxdane" "rt4 MX 10 mxdanebad" \
	"rt9 MX 10 mxss" "n1 MX 10 mxdanebad" "n5b MX 10 mxdanebad" \
	"rt10 MX 10 mxnort" "rt10 MX 20 mxrt" "c1 MX 10 mxdanebad" "rt11 MX 10 mxrt.$I." \
	"mxtf A 127.0.3.2" "_$DP_PORT._tcp.mxtf CNAME tlsa.bogus.test." "n6 MX 10 mxtf" "c6 MX 10 mxtf" \
	"mxbroken A 127.0.3.10" "_$DP_PORT._tcp.mxbroken TLSA 3 1 1 $TLSA_GOOD" "n7 MX 10 mxbroken" \
	"rt12 CNAME cn12.$I." "rt13 MX 10 mxrt" "mxpre A 127.0.3.8" "rt14 MX 10 mxpre"; do
	dns_peers_add_record $S "$rec"
done
for rec in "mxrt A 127.0.3.2" "mxss A 127.0.3.6" "mxrefuse A 127.0.3.7" \
	"mxbroken A 127.0.3.10" "mxpself A 127.0.3.11" \
	"rt7 MX 10 mxrt" "rt7b MX 10 mxrt" "n5 MX 10 mxrt" "p1 MX 10 mxbroken" "p2 MX 10 mxpself" \
	"sts-enf MX 10 mxrt" "sts-test MX 10 mxrt" "sts-bad MX 10 mxss" "sts-unl MX 10 mxrt" \
	"sts-refuse MX 10 mxrefuse" "sts-refuse2 MX 10 mxrefuse" \
	"cn12 MX 10 mxrt.$S." "cn13 CNAME rt13.$S."; do
	dns_peers_add_record $I "$rec"
done
for d in $STS_DOMAINS; do
	dns_peers_add_record $I "_mta-sts.$d TXT \"v=STSv1; id=20260101T000000;\""
	dns_peers_add_record $I "mta-sts.$d A 127.0.3.50"
done
dns_peers_start

# ---- MTA-STS policies (nginx, TESTBED §3.5), one server block per policy host
policy() { # DOMAIN MODE MX...
	local d=$1 mode=$2 mx
	shift 2
	mkdir -p "$W/$d/.well-known"
	{
		printf 'version: STSv1\r\nmode: %s\r\n' "$mode"
		for mx in "$@"; do printf 'mx: %s\r\n' "$mx"; done
		printf 'max_age: 86400\r\n'
	} >"$W/$d/.well-known/mta-sts.txt"
}
policy sts-enf enforce mxrt.$I
policy sts-test testing mxrt.$I
policy sts-bad enforce mxss.$I
policy sts-unl enforce mxother.$I # the domain's MX, mxrt, is not listed
policy sts-refuse enforce mxrefuse.$I
policy sts-refuse2 enforce mxrefuse.$I
chmod -R a+rX "$W"
{
	cat <<EOF
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/logs/error.log notice;
events { worker_connections 64; }
http {
    access_log $W/logs/access.log;
    client_body_temp_path $W/tmp/body;
    proxy_temp_path $W/tmp/proxy;
    fastcgi_temp_path $W/tmp/fastcgi;
    uwsgi_temp_path $W/tmp/uwsgi;
    scgi_temp_path $W/tmp/scgi;
    types { text/plain txt; }
    default_type text/plain;
EOF
	for d in $STS_DOMAINS; do
		cat <<EOF
    server {
        listen 127.0.3.50:443 ssl;
        server_name mta-sts.$d.$I;
        ssl_certificate     $C/sts.chain.crt;
        ssl_certificate_key $C/sts.key;
        root $W/$d;
        location = /.well-known/mta-sts.txt { }
    }
EOF
	done
	echo "}"
} >"$W/nginx.conf"
nginx -e "$W/logs/error.log" -p "$W" -c "$W/nginx.conf" >"$W/logs/nginx.out" 2>&1 &
NGINX_PID=$!
E2E_PIDS+=("$NGINX_PID")

# ---- SMTP receivers
$PY "$HERE/requiretls_mx.py" serve "$RT" \
	"rt,127.0.3.2,$DP_PORT,requiretls,$C/mx.chain.crt,$C/mx.key" \
	"dsn,127.0.3.3,$DP_PORT,requiretls,$C/mx.chain.crt,$C/mx.key" \
	"nort,127.0.3.4,$DP_PORT,no-requiretls,$C/mx.chain.crt,$C/mx.key" \
	"dane,127.0.3.5,$DP_PORT,requiretls,$C/mx.chain.crt,$C/mx.key" \
	"ss,127.0.3.6,$DP_PORT,requiretls,$C/ss.crt,$C/ss.key" \
	"refuse,127.0.3.7,$DP_PORT,refuse-starttls,$C/mx.chain.crt,$C/mx.key" \
	"pre,127.0.3.8,$DP_PORT,requiretls-before-tls,$C/mx.chain.crt,$C/mx.key" \
	>"$RT.out" 2>&1 &
RT_PID=$!
E2E_PIDS+=("$RT_PID")
DP_WAIT+=( # dp_ready (delivery_peers.sh) waits for these too
	127.0.3.2 127.0.3.3 127.0.3.4 127.0.3.5 127.0.3.6 127.0.3.7 127.0.3.8)
dp_postfix pbroken 127.0.3.10 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $C/mx.chain.crt
smtpd_tls_key_file = $C/mx.key
smtpd_tls_protocols = <=TLSv1.1
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF
dp_postfix pself 127.0.3.11 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $C/ss.crt
smtpd_tls_key_file = $C/ss.key
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF
dp_ready
ok=
for _ in $(seq 1 100); do
	if $PY -c "import socket; socket.create_connection(('127.0.3.50',443),0.2)" 2>/dev/null; then
		ok=1
		break
	fi
	sleep 0.05
done
[ -n "$ok" ] || { echo "nginx not listening on 127.0.3.50:443"; cat "$W/logs/error.log"; exit 1; }

e2e_config <<EOF
tls_cert = $C/sub.chain.crt
tls_key = $C/sub.key
[server]
hostname = outpost.secure.test
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
first_retry = 10m
delay_notice_after = 1
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
tls_timeout = 3s
[tls]
ca_file = $CA
[mtasts]
fetch_timeout = 10s
EOF
e2e_start
echo "# peers and daemon up after $((SECONDS - T0)) s (port $DP_PORT, resolver $DNS_RESOLVER)"

# ---- helpers -----------------------------------------------------------------




# What a receiver got for RCPT: M, the messages (tls, mail_args, subject,
# raw), and C, the RCPT commands it saw (conn, tls). WHERE is an aiosmtpd
# receiver's name or a Postfix peer's name.
where_of() { if [ -d "$RT/$1" ]; then echo "$RT/$1"; else echo "$PEERS/$1/mail/sink"; fi; }
srv_json() { $PY "$HERE/requiretls_mx.py" show "$(where_of "$1")" "$2"; }
srv_test() { # WHERE RCPT EXPR
	$PY -c 'import json,sys; s=json.loads(sys.argv[1]); M=s["messages"]; C=s["rcpt_cmds"]; sys.exit(0 if eval(sys.argv[2]) else 1)' \
		"$(srv_json "$1" "$2")" "$3"
}
expect_srv() { # DESCRIPTION WHERE RCPT EXPR [TIMEOUT]
	if wait_for "${5:-15}" srv_test "$2" "$3" "$4"; then
		pass "$1"
	else
		fail "$1"
		echo "     expected: $4"
		echo "     $2 got for $3: $(srv_json "$2" "$3" | cut -c1-1500)"
	fi
}
# Delivered once, over TLS, with or without REQUIRETLS on MAIL FROM, and
# every RCPT for it came over TLS.
TLS_ONCE='len(M)==1 and M[0]["tls"].startswith("TLSv1.") and len(C)>=1 and all(c["tls"].startswith("TLSv1.") for c in C)'
WITH_RT='M[0]["mail_args"].upper().split().count("REQUIRETLS")==1'
WITHOUT_RT='"REQUIRETLS" not in M[0]["mail_args"].upper()'
NOTHING='M==[] and C==[]'

log_has() { grep -Eq -- "$1" "$E2E_DIR/outpost.log"; }
metric() { # metric 'NAME{label="v"}' -> its value, 0 when absent
	curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v want="$1" '$1 == want { print $2; found = 1 } END { if (!found) print 0 }'
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
check_metric() { # NAME VALUE WHY
	local v
	v=$(metric "$1")
	if [ "$v" = "$2" ]; then pass "$1 = $2 ($3)"; else fail "$1 = $2 ($3): got $v"; fi
}

# DSNs: the notices the senders' MX ("dsn") got for SENDER, parsed by maildir_check.py.
dsns() { $PY "$HERE/maildir_check.py" "$RT/dsn" "$1"; }
dsn_test() { # SENDER EXPR over d (the notices) and raw (their texts, as received)
	$PY -c '
import json, sys
d = json.loads(sys.argv[1]); raw = [m["raw"] for m in json.loads(sys.argv[2])["messages"]]
sys.exit(0 if eval(sys.argv[3]) else 1)' "$(dsns "$1")" "$(srv_json dsn "$1")" "$2"
}
expect_dsn() { # DESCRIPTION SENDER EXPR [TIMEOUT]
	if wait_for "${4:-15}" dsn_test "$2" "$3"; then
		pass "$1"
	else
		fail "$1"
		echo "     expected: $3"
		echo "     got: $(srv_json dsn "$2" | cut -c1-2000)"
	fi
}
FAILED_FOR='lambda rcpt, status: any(b.get("action") == "failed" and b.get("status") == status and b.get("final-recipient", "").split(";", 1)[-1].strip().lower() == rcpt.lower() for m in d for b in m["blocks"])'
# redacted TAG: nothing of the original (RFC 8689 §5): no header part,
# neither its subject, body nor Message-ID
REDACTED='lambda tag: len(d)==1 and d[0]["headers_part"] is None and not any(s in raw[0] for s in ("secret subject "+tag, "secret body "+tag, "<"+tag+"."))'

find_id() { # RCPT: the message (not a notice) with that recipient, any state
	local st
	for st in queued deferred delivered failed held; do
		op queue list --state $st --json | $PY -c 'import json,sys; [print(m["id"]) for m in json.load(sys.stdin) if m["sender"]!="" and any(r["address"]==sys.argv[1] for r in m["recipients"])]' "$1"
	done | head -1
}

# ---- submit every case at once -------------------------------------------------
SD=snd.$S
# REQUIRETLS over STARTTLS to the submission listener, or through the
# local socket (outpost send --requiretls): a plaintext MAIL ... REQUIRETLS,
# loopback or not, gets 530 5.7.10 (test_submission.sh)
SUBMITTED=$E2E_DIR/submitted
$PY "$HERE/requiretls_mx.py" submit-batch "$SMTP_PORT" >"$SUBMITTED" <<EOF || true
s-rt1@$SD u@rt1.$S --starttls --requiretls --tag rt1
s-rt2@$SD u@rt2.$S --starttls --requiretls --tag rt2
s-rt4@$SD u@rt4.$S --starttls --requiretls --tag rt4
s-rt5@$SD u@sts-enf.$I --starttls --requiretls --tag rt5
s-rt6@$SD u@sts-test.$I --starttls --requiretls --tag rt6
s-rt7@$SD u@rt7.$I --starttls --requiretls --tag rt7
s-rt7b@snd2.$S u@rt7b.$I --starttls --requiretls --tag rt7b
s-rt8@$SD u@[127.0.3.2] --starttls --requiretls --tag rt8
s-rt9@$SD u@rt9.$S --starttls --requiretls --tag rt9
s-n1@$SD u@n1.$S --tls-required-no --tag n1
s-n2@$SD u@sts-bad.$I --tls-required-no --tag n2
s-n3@$SD u@sts-unl.$I --tls-required-no --tag n3
s-n4@$SD u@sts-refuse.$I --tls-required-no --tag n4
s-n5@$SD u@n5.$I --starttls --requiretls --tls-required-no --tag n5
s-n5b@$SD u@n5b.$S --starttls --requiretls --tls-required-no --tag n5b
s-p1@$SD u@p1.$I --tag p1
s-p2@$SD u@p2.$I --tag p2
s-rt10@$SD u@rt10.$S --starttls --requiretls --tag rt10
s-c1@$SD u@c1.$S --tag c1
s-c4@$SD u@sts-refuse2.$I --tag c4
s-ctl@$SD u@nullmx.$I --tag ctl
s-rt11@$SD u@rt11.$S --starttls --requiretls --tag rt11
s-n6@$SD u@n6.$S --tls-required-no --tag n6
s-c6@$SD u@c6.$S --tag c6
s-n7@$SD u@n7.$S --tls-required-no --tag n7
s-rt12@$SD u@rt12.$S --starttls --requiretls --tag rt12
s-rt13@$SD u@cn13.$I --starttls --requiretls --tag rt13
s-rt14@$SD u@rt14.$S --starttls --requiretls --tag rt14
EOF
id_of() { awk -v t="$1" '$1 == t && $2 != "-" { print $2 }' "$SUBMITTED"; }
ID_RT1=$(id_of rt1)
ID_RT2=$(id_of rt2)
ID_RT4=$(id_of rt4)
ID_RT5=$(id_of rt5)
ID_RT6=$(id_of rt6)
ID_RT7=$(id_of rt7)
ID_RT7B=$(id_of rt7b)
ID_RT8=$(id_of rt8)
ID_RT9=$(id_of rt9)
ID_N1=$(id_of n1)
ID_N2=$(id_of n2)
ID_N3=$(id_of n3)
ID_N4=$(id_of n4)
ID_N5=$(id_of n5)
ID_N5B=$(id_of n5b)
ID_P1=$(id_of p1)
ID_P2=$(id_of p2)
ID_RT10=$(id_of rt10)
ID_C1=$(id_of c1)
ID_C4=$(id_of c4)
ID_CTL=$(id_of ctl)
ID_RT11=$(id_of rt11)
ID_N6=$(id_of n6)
ID_C6=$(id_of c6)
ID_N7=$(id_of n7)
ID_RT12=$(id_of rt12)
ID_RT13=$(id_of rt13)
ID_RT14=$(id_of rt14)
printf 'From: <s-rt3@%s>\nSubject: secret subject rt3\nMessage-ID: <rt3.1@client.test>\n\nsecret body rt3\n' "$SD" |
	op send -f s-rt3@$SD --requiretls u@rt3.$S || true
ID_RT3=$(find_id u@rt3.$S)
ALL_IDS="$ID_RT1 $ID_RT2 $ID_RT3 $ID_RT4 $ID_RT5 $ID_RT6 $ID_RT7 $ID_RT7B $ID_RT8 $ID_RT9 $ID_N1 $ID_N2 $ID_N3 $ID_N4 $ID_N5 $ID_N5B $ID_P1 $ID_P2 $ID_RT10 $ID_C1 $ID_C4 $ID_CTL $ID_RT11 $ID_N6 $ID_C6 $ID_N7 $ID_RT12 $ID_RT13 $ID_RT14"
check "29 messages submitted (REQUIRETLS over STARTTLS and with outpost send), each with a queue id" \
	test "$(echo $ALL_IDS | wc -w)" = 29
expect_show "submission: MAIL FROM ... REQUIRETLS sets requiretls" "$ID_RT1" \
	'j["requiretls"] is True and j["tls_required_no"] is False'
expect_show "submission: the TLS-Required: No header sets tls_required_no" "$ID_N1" \
	'j["requiretls"] is False and j["tls_required_no"] is True'
expect_show "submission: both: REQUIRETLS is set, the header ignored" "$ID_N5" \
	'j["requiretls"] is True and j["tls_required_no"] is False'
expect_show "outpost send --requiretls sets requiretls" "$ID_RT3" \
	'j["requiretls"] is True and j["tls_required_no"] is False'
expect_show "submission: neither" "$ID_P1" \
	'j["requiretls"] is False and j["tls_required_no"] is False'

# ---- REQUIRETLS ----------------------------------------------------------------
# RT1: signed MX list, PKIX-valid certificate, REQUIRETLS announced
expect_show "REQUIRETLS, signed MX + PKIX certificate + REQUIRETLS announced: delivered, policy requiretls, PKIX" "$ID_RT1" \
	'R("u@rt1.secure.test")["state"]=="delivered" and [(x["mx"],x["ip"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@rt1.secure.test")]==[("mxrt.secure.test","127.0.3.2","delivered","requiretls","PKIX")] and A("u@rt1.secure.test")[0]["tls_version"].startswith("TLSv1.") and A("u@rt1.secure.test")[0]["tls_cipher"]'
expect_srv "  the server got it once, over TLS, with MAIL FROM:<...> REQUIRETLS" rt u@rt1.$S \
	"$TLS_ONCE and $WITH_RT and M[0]['mail_args'].startswith('<s-rt1@snd.secure.test>')"

# RT2: everything but REQUIRETLS at the server
expect_show "REQUIRETLS, server without REQUIRETLS (the only MX): failed 5.7.30, policy requiretls, over TLS" "$ID_RT2" \
	'R("u@rt2.secure.test")["state"]=="failed" and R("u@rt2.secure.test")["last_error"].startswith("5.7.30") and [(x["mx"],x["result"],x["tls_policy"]) for x in A("u@rt2.secure.test")]==[("mxnort.secure.test","failed","requiretls")] and A("u@rt2.secure.test")[0]["tls_version"].startswith("TLSv1.")'
expect_show "  the attempt records how the certificate was verified: PKIX" "$ID_RT2" \
	'A("u@rt2.secure.test")[0]["tls_verified"]=="PKIX"' 2
expect_srv "  the server never got a MAIL for it (nor a RCPT)" nort u@rt2.$S \
	"$NOTHING and not any('s-rt2@' in l for l in open('$RT/nort/session.log'))"
expect_dsn "  a DSN reached the sender's domain: failed, Status 5.7.30" s-rt2@$SD \
	"len(d)==1 and d[0]['content_type']=='multipart/report' and ($FAILED_FOR)('u@rt2.secure.test', '5.7.30')"
expect_dsn "  the DSN is redacted (no subject, body, Message-ID, header part)" s-rt2@$SD "($REDACTED)('rt2')"

# RT10: two MX hosts, the better one without REQUIRETLS
expect_show "REQUIRETLS, MX 10 without REQUIRETLS, MX 20 with: delivered via MX 20 in the same attempt" "$ID_RT10" \
	'R("u@rt10.secure.test")["state"]=="delivered" and R("u@rt10.secure.test")["attempts"]==1 and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@rt10.secure.test")]==[("mxrt.secure.test","delivered","requiretls","PKIX")]'
expect_srv "  MX 20 got it once, over TLS, with REQUIRETLS" rt u@rt10.$S "$TLS_ONCE and $WITH_RT"
expect_srv "  MX 10 never got a RCPT for it" nort u@rt10.$S "$NOTHING"

# RT14: REQUIRETLS announced, but only before STARTTLS (RFC 3207 §4.2: forgotten)
expect_show "REQUIRETLS, server announcing REQUIRETLS only before STARTTLS: failed 5.7.30" "$ID_RT14" \
	'R("u@rt14.secure.test")["state"]=="failed" and R("u@rt14.secure.test")["last_error"].startswith("5.7.30") and A("u@rt14.secure.test")[0]["tls_version"].startswith("TLSv1.")'
expect_srv "  the server never got a MAIL for it (nor a RCPT)" pre u@rt14.$S \
	"$NOTHING and not any('MAIL' in l for l in open('$RT/pre/session.log'))"

# RT11: signed MX list naming a host in the unsigned zone (no DANE possible)
expect_show "REQUIRETLS, signed MX list, MX host in an unsigned zone, PKIX certificate: delivered" "$ID_RT11" \
	'R("u@rt11.secure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@rt11.secure.test")]==[("mxrt.insecure.test","delivered","requiretls","PKIX")]'
expect_srv "  the server got it once, over TLS, with REQUIRETLS" rt u@rt11.$S "$TLS_ONCE and $WITH_RT"

# RT12, RT13: a CNAME on the way to the MX list; every answer must be signed
expect_show "REQUIRETLS, signed CNAME to a domain with an unsigned MX list: failed 5.7.30" "$ID_RT12" \
	'R("u@rt12.secure.test")["state"]=="failed" and R("u@rt12.secure.test")["last_error"].startswith("5.7.30")'
expect_srv "  the server (REQUIRETLS, valid certificate) never got a RCPT for it" rt u@rt12.$S "$NOTHING"
expect_show "REQUIRETLS, unsigned CNAME to a domain with a signed MX list: failed 5.7.30" "$ID_RT13" \
	'R("u@cn13.insecure.test")["state"]=="failed" and R("u@cn13.insecure.test")["last_error"].startswith("5.7.30")'
expect_srv "  the server (REQUIRETLS, valid certificate) never got a RCPT for it" rt u@cn13.$I "$NOTHING"

# RT3: DANE
expect_show "REQUIRETLS, usable TLSA (DANE-EE) + REQUIRETLS: delivered, policy dane, DANE-EE" "$ID_RT3" \
	'R("u@rt3.secure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@rt3.secure.test")]==[("mxdane.secure.test","delivered","dane","DANE-EE")] and A("u@rt3.secure.test")[0]["tls_detail"].startswith("3 1 1 ")'
expect_srv "  the server got it once, over TLS, with REQUIRETLS" dane u@rt3.$S "$TLS_ONCE and $WITH_RT"

# RT4: DANE mismatch
expect_show "REQUIRETLS, TLSA matches nothing served: not delivered, deferred 4.7.5, policy dane" "$ID_RT4" \
	'R("u@rt4.secure.test")["state"]=="deferred" and R("u@rt4.secure.test")["last_error"].startswith("4.7.5") and len(A("u@rt4.secure.test"))==1 and A("u@rt4.secure.test")[0]["tls_policy"]=="dane" and A("u@rt4.secure.test")[0]["result"]=="deferred"'
expect_srv "  the server never got a RCPT for it" dane u@rt4.$S "$NOTHING"
tlsrpt_test() { # DOMAIN EXPR over p (the policies recorded for DOMAIN)
	op tlsrpt results --domain "$1" --json | $PY -c '
import json, sys
p = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2"
}
expect_dsn "  a delay DSN (delay_notice_after = 1): delayed, 4.7.5, redacted" s-rt4@$SD \
	"len(d)==1 and any(b.get('action')=='delayed' and b.get('status')=='4.7.5' for b in d[0]['blocks']) and ($REDACTED)('rt4')"
expect_srv "  the delay DSN itself came over TLS with REQUIRETLS" dsn s-rt4@$SD \
	"$TLS_ONCE and M[0]['mail_args'].split()[0]=='<>' and $WITH_RT"
check "  TLS-RPT: a tlsa policy for mxdanebad with a tlsa-invalid failure" \
	tlsrpt_test mxdanebad.$S "any(x['policy']['policy-type']=='tlsa' and x['summary']['total-failure-session-count']>=1 and any(f['result-type']=='tlsa-invalid' and f['receiving-mx-hostname']=='mxdanebad.secure.test' for f in x['failure-details']) for x in p)"

# RT5: unsigned MX confirmed by an enforced MTA-STS policy
expect_show "REQUIRETLS, unsigned MX listed by an enforced MTA-STS policy: delivered, policy mta-sts enforce, PKIX" "$ID_RT5" \
	'R("u@sts-enf.insecure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@sts-enf.insecure.test")]==[("mxrt.insecure.test","delivered","mta-sts enforce","PKIX")]'
expect_srv "  the server got it once, over TLS, with REQUIRETLS" rt u@sts-enf.$I "$TLS_ONCE and $WITH_RT"
check "  the enforce policy was fetched from nginx" \
	log_has "event=mtasts_policy_fetched domain=sts-enf.insecure.test .*mode=enforce"

# RT6: a testing policy qualifies nothing
expect_show "REQUIRETLS, unsigned MX listed by a testing MTA-STS policy: failed 5.7.30" "$ID_RT6" \
	'R("u@sts-test.insecure.test")["state"]=="failed" and R("u@sts-test.insecure.test")["last_error"].startswith("5.7.30")'
expect_srv "  the server never got a RCPT for it" rt u@sts-test.$I "$NOTHING"
check "  the testing policy was fetched (and is not what failed)" \
	log_has "event=mtasts_policy_fetched domain=sts-test.insecure.test .*mode=testing"
check "  the host was not dialled (host_skipped)" log_has "event=host_skipped qid=$ID_RT6 mx=mxrt.insecure.test"

# RT7: unsigned, no policy; the notice
expect_show "REQUIRETLS, unsigned MX, no policy: failed 5.7.30, not dialled" "$ID_RT7" \
	'R("u@rt7.insecure.test")["state"]=="failed" and R("u@rt7.insecure.test")["last_error"].startswith("5.7.30") and [x["tls"] for x in A("u@rt7.insecure.test")]==[None]'
check "  the host was not dialled (host_skipped)" log_has "event=host_skipped qid=$ID_RT7 mx=mxrt.insecure.test"
expect_show "  the attempt names the policy that refused the host: requiretls" "$ID_RT7" \
	'[x["tls_policy"] for x in A("u@rt7.insecure.test")]==["requiretls"]' 2
expect_srv "  the server never got a RCPT for it" rt u@rt7.$I "$NOTHING"
expect_dsn "  a DSN reached the sender's domain (snd.secure.test, signed, REQUIRETLS): failed 5.7.30" s-rt7@$SD \
	"len(d)==1 and ($FAILED_FOR)('u@rt7.insecure.test', '5.7.30')"
expect_dsn "  the DSN is redacted (no subject, body, Message-ID, header part)" s-rt7@$SD "($REDACTED)('rt7')"
expect_dsn "  control: the DSN of a message without REQUIRETLS (null MX, 5.1.10) is not redacted" s-ctl@$SD \
	"len(d)==1 and ($FAILED_FOR)('u@nullmx.insecure.test', '5.1.10') and d[0]['headers_part']=='text/rfc822-headers' and not ($REDACTED)('ctl') and 'secret subject ctl' in raw[0]"
expect_srv "  control: that DSN came without REQUIRETLS" dsn s-ctl@$SD "$TLS_ONCE and $WITHOUT_RT"
expect_srv "  the DSN itself came over TLS with MAIL FROM:<> REQUIRETLS" dsn s-rt7@$SD \
	"$TLS_ONCE and M[0]['mail_args'].split()[0]=='<>' and $WITH_RT"
# the notice is a message of its own; find it in the queue
dsn_id() { # SENDER: the notice (sender <>) addressed to SENDER, any state
	local st
	for st in queued deferred delivered failed held; do
		op queue list --state $st --json | $PY -c 'import json,sys; [print(m["id"]) for m in json.load(sys.stdin) if m["sender"]=="" and any(r["address"]==sys.argv[1] for r in m["recipients"])]' "$1"
	done | head -1
}
DSN_RT7=$(wait_for 10 dsn_id s-rt7@$SD)
[ -n "$DSN_RT7" ] || DSN_RT7=none
expect_show "  outpost's copy of the DSN: requiretls, delivered under policy requiretls" "$DSN_RT7" \
	'j["requiretls"] is True and j["dsn"] is True and R("s-rt7@snd.secure.test")["state"]=="delivered" and A("s-rt7@snd.secure.test")[-1]["tls_policy"]=="requiretls"'

# RT7b: the same, but the sender's domain cannot take REQUIRETLS: the
# notice (itself REQUIRETLS) fails like the message, and nothing tells of it
expect_show "REQUIRETLS, unsigned MX, sender's MX without REQUIRETLS: the message fails 5.7.30" "$ID_RT7B" \
	'R("u@rt7b.insecure.test")["state"]=="failed" and R("u@rt7b.insecure.test")["last_error"].startswith("5.7.30")'
DSN_RT7B=$(wait_for 10 dsn_id s-rt7b@snd2.$S)
[ -n "$DSN_RT7B" ] || DSN_RT7B=none
expect_show "  its DSN (requiretls) fails 5.7.30 at the sender's MX (no REQUIRETLS there)" "$DSN_RT7B" \
	'j["requiretls"] is True and R("s-rt7b@snd2.secure.test")["state"]=="failed" and R("s-rt7b@snd2.secure.test")["last_error"].startswith("5.7.30")'
expect_srv "  the sender's MX never got a RCPT for the DSN" nort s-rt7b@snd2.$S "$NOTHING"

# RT8: address literal
expect_show "REQUIRETLS to an address literal: failed 5.7.30" "$ID_RT8" \
	'R("u@[127.0.3.2]")["state"]=="failed" and R("u@[127.0.3.2]")["last_error"].startswith("5.7.30")'
expect_srv "  the server at the literal (REQUIRETLS, valid certificate) never got a RCPT for it" \
	rt 'u@[127.0.3.2]' "$NOTHING"
expect_dsn "  a redacted DSN, failed 5.7.30" s-rt8@$SD \
	"($FAILED_FOR)('u@[127.0.3.2]', '5.7.30') and ($REDACTED)('rt8')"

# RT9: signed MX, the certificate does not verify
expect_show "REQUIRETLS, signed MX, self-signed certificate: not delivered, deferred 4.7.5" "$ID_RT9" \
	'R("u@rt9.secure.test")["state"]=="deferred" and R("u@rt9.secure.test")["last_error"].startswith("4.7.5") and A("u@rt9.secure.test")[-1]["tls_policy"]=="requiretls"'
expect_srv "  the server never got a RCPT for it" ss u@rt9.$S "$NOTHING"

# ---- TLS-Required: No ------------------------------------------------------------
expect_show "TLS-Required: No, DANE mismatch: delivered over TLS, policy dane, unverified" "$ID_N1" \
	'R("u@n1.secure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@n1.secure.test")]==[("mxdanebad.secure.test","delivered","dane","unverified")] and A("u@n1.secure.test")[0]["tls_version"].startswith("TLSv1.") and A("u@n1.secure.test")[0]["tls_detail"].startswith("TLS-Required: No")'
expect_srv "  the server got it once, over TLS, without REQUIRETLS, TLS-Required: No kept" dane u@n1.$S \
	"$TLS_ONCE and $WITHOUT_RT and '\\r\\nTLS-Required: No\\r\\n' in M[0]['raw']"
expect_show "  control: the same MX without the header: not delivered, deferred 4.7.5" "$ID_C1" \
	'R("u@c1.secure.test")["state"]=="deferred" and R("u@c1.secure.test")["last_error"].startswith("4.7.5") and A("u@c1.secure.test")[0]["tls_policy"]=="dane"'
expect_srv "  control: the server never got a RCPT for it" dane u@c1.$S "$NOTHING"
expect_dsn "  control: its delay DSN is not redacted and came without REQUIRETLS" s-c1@$SD \
	"len(d)==1 and d[0]['headers_part']=='text/rfc822-headers' and 'secret subject c1' in raw[0]"
expect_srv "  (without REQUIRETLS)" dsn s-c1@$SD "$TLS_ONCE and $WITHOUT_RT"
check "  logged: tls_required_no_override ignored=verification" \
	log_has "event=tls_required_no_override qid=$ID_N1 .*ignored=verification"

expect_show "TLS-Required: No, enforced MTA-STS, self-signed certificate: delivered over TLS, unverified" "$ID_N2" \
	'R("u@sts-bad.insecure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@sts-bad.insecure.test")]==[("mxss.insecure.test","delivered","mta-sts enforce","unverified")] and A("u@sts-bad.insecure.test")[0]["tls_version"].startswith("TLSv1.")'
expect_srv "  the server got it once, over TLS" ss u@sts-bad.$I "$TLS_ONCE and $WITHOUT_RT"
check "  logged: tls_required_no_override ignored=verification" \
	log_has "event=tls_required_no_override qid=$ID_N2 .*ignored=verification"
check "  TLS-RPT: the sts policy of sts-bad records a certificate-not-trusted failure" \
	tlsrpt_test sts-bad.$I "len(p)==1 and p[0]['policy']['policy-type']=='sts' and any(f['result-type']=='certificate-not-trusted' and f['receiving-mx-hostname']=='mxss.insecure.test' for f in p[0]['failure-details'])"

expect_show "TLS-Required: No, MX not listed by the enforced MTA-STS policy: delivered over TLS, PKIX" "$ID_N3" \
	'R("u@sts-unl.insecure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@sts-unl.insecure.test")]==[("mxrt.insecure.test","delivered","mta-sts enforce","PKIX")]'
expect_srv "  the server got it once, over TLS" rt u@sts-unl.$I "$TLS_ONCE and $WITHOUT_RT"
check "  logged: tls_required_no_override ignored=mtasts-mx" \
	log_has "event=tls_required_no_override qid=$ID_N3 .*ignored=mtasts-mx"

expect_show "TLS-Required: No, STARTTLS refused under an enforced policy: delivered in plaintext, same host" "$ID_N4" \
	'R("u@sts-refuse.insecure.test")["state"]=="delivered" and [(x["mx"],x["ip"],x["result"],x["tls"]) for x in A("u@sts-refuse.insecure.test")]==[("mxrefuse.insecure.test","127.0.3.7","delivered",None)]'
expect_srv "  the server got it once, in plaintext" refuse u@sts-refuse.$I \
	'len(M)==1 and M[0]["tls"]=="none" and "REQUIRETLS" not in M[0]["mail_args"]'
check "  the server saw STARTTLS (refused with 454) before the plaintext session" \
	grep -q 'tls=none STARTTLS' "$RT/refuse/session.log"
check "  logged: tls_required_no_override ignored=plaintext" \
	log_has "event=tls_required_no_override qid=$ID_N4 .*ignored=plaintext"
expect_show "  control: the same policy without the header: not delivered, deferred 4.7.4" "$ID_C4" \
	'R("u@sts-refuse2.insecure.test")["state"]=="deferred" and R("u@sts-refuse2.insecure.test")["last_error"].startswith("4.7.4") and A("u@sts-refuse2.insecure.test")[0]["tls_policy"]=="mta-sts enforce"'
expect_srv "  control: the server never got a RCPT for it" refuse u@sts-refuse2.$I "$NOTHING"

# N6: the TLSA lookup fails (a CNAME into the bogus zone: SERVFAIL)
expect_show "TLS-Required: No, TLSA lookup fails: delivered over TLS anyway" "$ID_N6" \
	'R("u@n6.secure.test")["state"]=="delivered" and [(x["mx"],x["result"]) for x in A("u@n6.secure.test")]==[("mxtf.secure.test","delivered")] and A("u@n6.secure.test")[0]["tls_version"].startswith("TLSv1.")'
expect_srv "  the server got it once, over TLS" rt u@n6.$S "$TLS_ONCE and $WITHOUT_RT"
check "  logged: tls_required_no_override ignored=tlsa-error" \
	log_has "event=tls_required_no_override qid=$ID_N6 .*ignored=tlsa-error"
expect_show "  control: the same MX without the header: not dialled, deferred 4.7.5" "$ID_C6" \
	'R("u@c6.secure.test")["state"]=="deferred" and R("u@c6.secure.test")["last_error"].startswith("4.7.5") and [x["tls"] for x in A("u@c6.secure.test")]==[None]'
expect_srv "  control: the server never got a RCPT for it" rt u@c6.$S "$NOTHING"
expect_show "  control: the attempt names the policy that refused the host: dane" "$ID_C6" \
	'[x["tls_policy"] for x in A("u@c6.secure.test")]==["dane"]' 2

# N7: DANE, and the handshake fails
expect_show "TLS-Required: No, DANE host whose TLS handshake fails: delivered in plaintext, same host" "$ID_N7" \
	'R("u@n7.secure.test")["state"]=="delivered" and [(x["mx"],x["ip"],x["result"],x["tls"]) for x in A("u@n7.secure.test")]==[("mxbroken.secure.test","127.0.3.10","delivered",None)]'
expect_srv "  Postfix got it once, without TLS" pbroken u@n7.$S 'len(M)==1 and M[0]["tls"]=="none"'
check "  logged: tls_required_no_override ignored=plaintext" \
	log_has "event=tls_required_no_override qid=$ID_N7 .*ignored=plaintext"

expect_show "REQUIRETLS + TLS-Required: No, unsigned MX, no policy: REQUIRETLS wins, failed 5.7.30" "$ID_N5" \
	'R("u@n5.insecure.test")["state"]=="failed" and R("u@n5.insecure.test")["last_error"].startswith("5.7.30")'
expect_srv "  the server never got a RCPT for it" rt u@n5.$I "$NOTHING"
expect_show "REQUIRETLS + TLS-Required: No, DANE mismatch: REQUIRETLS wins, deferred 4.7.5" "$ID_N5B" \
	'R("u@n5b.secure.test")["state"]=="deferred" and R("u@n5b.secure.test")["last_error"].startswith("4.7.5")'
expect_srv "  the server never got a RCPT for it" dane u@n5b.$S "$NOTHING"
check "  no override was logged for either" \
	bash -c "! grep -Eq 'event=tls_required_no_override qid=($ID_N5|$ID_N5B) ' '$E2E_DIR/outpost.log'"

# ---- no policy ---------------------------------------------------------------------
expect_show "no policy, TLS handshake fails: delivered in plaintext on the same host" "$ID_P1" \
	'R("u@p1.insecure.test")["state"]=="delivered" and [(x["mx"],x["ip"],x["result"],x["tls"],x["tls_policy"]) for x in A("u@p1.insecure.test")]==[("mxbroken.insecure.test","127.0.3.10","delivered",None,"none")]'
check "  logged: plaintext_fallback for mxbroken" log_has "event=plaintext_fallback qid=$ID_P1 mx=mxbroken.insecure.test"
expect_srv "  Postfix got it once, without TLS (its Received: field)" pbroken u@p1.$I \
	'len(M)==1 and M[0]["tls"]=="none"'
check "  Postfix logged the failed handshake" grep -q 'SSL_accept error' "$PEERS/pbroken/maillog"

expect_show "no policy, self-signed certificate: delivered over TLS, unverified" "$ID_P2" \
	'R("u@p2.insecure.test")["state"]=="delivered" and [(x["mx"],x["result"],x["tls_policy"],x["tls_verified"]) for x in A("u@p2.insecure.test")]==[("mxpself.insecure.test","delivered","none","unverified")] and A("u@p2.insecure.test")[0]["tls_version"].startswith("TLSv1.")'
expect_srv "  Postfix got it once, over TLS (its Received: field)" pself u@p2.$I \
	'len(M)==1 and M[0]["tls"].startswith("TLSv1.")'
check "  Postfix logged a TLS connection and no failed handshake" \
	bash -c "grep -q 'TLS connection established from' '$PEERS/pself/maillog' && ! grep -q 'SSL_accept error' '$PEERS/pself/maillog'"

# ---- counters ------------------------------------------------------------------------
check_metric 'outpost_tls_required_no_overrides_total{ignored="verification"}' 2 "n1, n2"
check_metric 'outpost_tls_required_no_overrides_total{ignored="mtasts-mx"}' 1 "n3"
check_metric 'outpost_tls_required_no_overrides_total{ignored="plaintext"}' 2 "n4, n7"
check_metric 'outpost_tls_required_no_overrides_total{ignored="tlsa-error"}' 1 "n6"
check_metric 'outpost_requiretls_unsupported_total{reason="no-requiretls"}' 4 "rt2, rt10's MX 10, rt14, the DSN of rt7b"
check_metric 'outpost_requiretls_unsupported_total{reason="unauthenticated-mx"}' 7 "rt6, rt7, rt7b, rt8, rt12, rt13, n5"
check_metric 'outpost_delivery_plaintext_fallbacks_total' 3 "n4, n7, p1"

# ---- nothing was delivered in plaintext but n4 and p1 --------------------------------
plain_ok() {
	local d
	for d in rt dsn nort dane ss pre; do
		grep -q 'tls=none \(MAIL\|RCPT\|DATA\)' "$RT/$d/session.log" 2>/dev/null && return 1
	done
	return 0
}
check "no aiosmtpd receiver but 'refuse' saw MAIL, RCPT or DATA without TLS" plain_ok

check "the daemon is still running" kill -0 "$DAEMON_PID"
e2e_stop_clean
stop_others
dns_peers_stop
dp_stop
echo "# took $((SECONDS - T0)) s"
e2e_finish
