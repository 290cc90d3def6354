#!/bin/bash
# `outpost check DOMAIN`: what delivery would do, against NSD + Unbound
# (dns_peers.sh) and a real Postfix with STARTTLS (mx1.secure.test's
# certificate from the test CA), on 127.0.4.x and the one [delivery] port:
#   dane.secure.test    MX mxd: TLSA 3 1 1 matching the certificate
#   bad.secure.test     MX mxb: TLSA 3 1 1 that matches nothing
#   unus.secure.test    MX mxu: only an unusable record (PKIX-EE, 1 1 1)
#   plain.insecure.test MX mxp in the unsigned zone: no DANE
#   down.secure.test    MX mxx: nobody listens
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers.sh"

dp_pick_port
dns_peers__pki
T311=$(openssl x509 -in "$PEERS/pki/mx1.secure.test.crt" -noout -pubkey |
	openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
WRONG=$(printf '%s' "$T311" | tr '0-9a-f' '1-9a-f0')
for rec in "dane MX 10 mxd" "mxd A 127.0.4.2" "_$DP_PORT._tcp.mxd TLSA 3 1 1 $T311" \
	"bad MX 10 mxb" "mxb A 127.0.4.2" "_$DP_PORT._tcp.mxb TLSA 3 1 1 $WRONG" \
	"unus MX 10 mxu" "mxu A 127.0.4.2" "_$DP_PORT._tcp.mxu TLSA 1 1 1 $T311" \
	"down MX 10 mxx" "mxx A 127.0.4.9"; do
	dns_peers_add_record secure.test "$rec"
done
dns_peers_add_record insecure.test "plain MX 10 mxp"
dns_peers_add_record insecure.test "mxp A 127.0.4.2"
dns_peers_start
dp_postfix pa 127.0.4.2 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $PEERS/pki/mx1.secure.test.chain.crt
smtpd_tls_key_file = $PEERS/pki/mx1.secure.test.key
EOF
dp_ready

e2e_config <<EOF
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
connect_timeout = 2s
[tls]
ca_file = $PEERS/pki/ca.crt
EOF
e2e_start

OUT=$E2E_DIR/check.json
# jcheck DESCRIPTION DOMAIN WANT_RC EXPR: python EXPR over j (the report),
# h (its first host), c (h's connection)
jcheck() {
	local rc=0
	op check "$2" --json >"$OUT" 2>"$E2E_DIR/check.err" || rc=$?
	if [ "$rc" != "$3" ]; then
		fail "$1 (exit $rc, want $3)"
		head -5 "$E2E_DIR/check.err"
		return
	fi
	if $PY - "$4" "$OUT" <<'EOF'; then pass "$1"; else fail "$1"; cat "$OUT"; fi
import json, sys
j = json.load(open(sys.argv[2]))
h = j["hosts"][0] if j["hosts"] else {}
c = h.get("connection") or {}
sys.exit(0 if eval(sys.argv[1]) else 1)
EOF
}

jcheck "DANE-EE match: delivered over TLS, verified by the record" dane.secure.test 0 \
	"j['mx_list']['dnssec'] and h['dnssec'] and h['policy'] == 'dane' and h['tlsa']['status'] == 'found' and h['tlsa']['records'][0]['usable'] and c['verified'] == 'DANE-EE' and c['dane_match'].startswith('3 1 1 ') and h['decision'].startswith('deliver over TLS, DANE-EE') and c['chain'][0]['subject'] == 'CN=mx1.secure.test'"
jcheck "DANE mismatch: deferred, tlsa-invalid, exit 1" bad.secure.test 1 \
	"h['policy'] == 'dane' and c['verified'] == 'unverified' and c['verification_failure']['result_type'] == 'tlsa-invalid' and h['decision'].startswith('defer: certificate not verified')"
jcheck "only unusable records: TLS required, unauthenticated" unus.secure.test 0 \
	"not h['tlsa']['records'][0]['usable'] and h['policy'] == 'dane' and h['decision'].startswith('deliver over TLS, unauthenticated')"
jcheck "unsigned zone: no TLSA lookup, opportunistic, PKIX name mismatch shown" plain.insecure.test 0 \
	"not j['mx_list']['dnssec'] and not h['dnssec'] and h['tlsa'] is None and h['policy'] == 'none' and c['tls'] and not c['pkix_valid'] and c['pkix_failure']['result_type'] == 'certificate-host-mismatch'"
jcheck "MTA-STS: no record, nothing cached in the running daemon's spool" plain.insecure.test 0 \
	"j['mta_sts']['record']['status'] == 'none' and j['mta_sts']['cached'] is None"
jcheck "a host nobody listens on: deferred" down.secure.test 1 \
	"h['decision'].startswith('defer: ') and 'refused' in c['error']"
jcheck "REQUIRETLS: Postfix announces none, so no host qualifies" dane.secure.test 0 \
	"not h['requiretls']['qualifies'] and h['requiretls']['why'] == 'REQUIRETLS is not announced'"
check "the readable report names the decision" \
	sh -c "'$OUTPOST' -c '$CONF' check DANE.secure.test. | grep -qF 'decision: deliver over TLS, DANE-EE (dane)'"
rc=0
op check >/dev/null 2>&1 || rc=$?
check "no domain: usage error (exit 2)" test "$rc" = 2

e2e_finish
