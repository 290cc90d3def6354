#!/bin/bash
# TLS session resumption against a real Postfix receiver (STARTTLS, its
# default session tickets): with one message per connection, every
# connection after the first resumes the session of the one before, and a
# server whose policy digest differs (here: another server name) does not.
#   127.0.0.2 Postfix "pa" (STARTTLS), MX of rs.insecure.test and of
#             other.insecure.test (reached under the name mxa2)
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers.sh"

dp_pick_port
Z=insecure.test
for rec in "mxa A 127.0.0.2" "mxa2 A 127.0.0.2" "rs MX 10 mxa" "other MX 10 mxa2" \
	"snd MX 10 mxa"; do
	dns_peers_add_record $Z "$rec"
done
dns_peers_start
dp_postfix pa 127.0.0.2 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $PEERS/pki/mx1.secure.test.chain.crt
smtpd_tls_key_file = $PEERS/pki/mx1.secure.test.key
EOF
dp_ready

e2e_config <<EOF
[server]
hostname = outpost.insecure.test
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
connection_max_messages = 1
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
EOF
e2e_start

submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" "$@"; }
# handshakes yes|no: outpost_delivery_tls_handshakes_total{resumed="..."}
handshakes() {
	curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v want="outpost_delivery_tls_handshakes_total{resumed=\"$1\"}" \
			'$1 == want { print $2; found = 1 } END { if (!found) print 0 }'
}
delivered() { [ "$(dp_maildir_count pa)" -ge "$1" ]; }

N=10
for i in $(seq 1 $N); do
	submit s@snd.$Z "u$i@rs.$Z" --subject "resume $i" >/dev/null
	wait_until 15 delivered "$i" || break
done
check "$N messages delivered, one by one" delivered $N
full=$(handshakes no)
resumed=$(handshakes yes)
check "one full handshake ($full)" test "$full" -eq 1
check "every later connection resumed ($resumed of $((N - 1)))" test "$resumed" -eq $((N - 1))

# Another name for the same address: its own SNI, so its own cache entry.
submit s@snd.$Z "u@other.$Z" --subject "other name" >/dev/null
check "delivered under the other name" wait_until 15 delivered $((N + 1))
check "another server name is a full handshake ($(handshakes no))" test "$(handshakes no)" -eq 2

# RFC 8460 results: a TLS session each, counted for the domain and the host.
results() { # results DOMAIN EXPR: python EXPR over p = the policies of DOMAIN
	op tlsrpt results --domain "$1" --json | $PY -c '
import json, sys
p = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2"
}
check "the domain's result: no-policy-found, $N sessions" results rs.$Z \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'no-policy-found' and p[0]['summary']['total-successful-session-count'] == $N and p[0]['summary']['total-failure-session-count'] == 0 and p[0]['failure-details'] == []"
check "the host's result: no-policy-found for mxa, $N sessions" results mxa.$Z \
	"len(p) == 1 and p[0]['policy']['policy-type'] == 'no-policy-found' and p[0]['summary']['total-successful-session-count'] == $N"
table_says() { op tlsrpt results --domain "$1" | grep -qF "$2"; }
check "the readable table says the same (any case, a root dot)" \
	table_says "RS.$Z." "no-policy-found rs.$Z: $N successful, 0 failed sessions"

e2e_finish
