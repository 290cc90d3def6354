#!/bin/bash
# DKIM signing end to end (docs/dkim.md), against real peers and two
# independent verifiers. Keys made with `outpost dkim genkey` (Ed25519 "ed"
# and RSA-2048 "rsa" for secure.test, "dsn" for outpost.secure.test, the
# hostname the notices come from), their TXT records published in the signed
# zone secure.test of the DNSSEC test bed (dns_peers.sh). Peers, each on its
# own address of 127.0.5.0/24 and the one [delivery] port:
#   127.0.5.2 Postfix "rcv": Maildir for *.secure.test; refuses nobody@rcpt
#   127.0.5.3 Postfix "rly": relays relay.secure.test to rcv, rewriting nothing
#   127.0.5.1:53 a UDP forwarder to Unbound, for opendkim-testmsg (libresolv
#             takes no port; it runs in a mount namespace whose
#             /etc/resolv.conf points there)
# Every received message is verified by dkimpy (python3-dkim) and by
# OpenDKIM's opendkim-testmsg, each signature on its own.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone postfix opendkim-testmsg unshare; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
$PY -c 'import dkim, nacl, dns.query' || { echo "missing python3-dkim (scripts/deps.sh test)"; exit 1; }
source "$HERE/peers.sh"
MAIL=$PEERS/rcv/mail/sink

# ---- keys and their records -------------------------------------------------------
e2e_config </dev/null
genkey() { # DOMAIN SELECTOR [options]: prints the TXT record, keeps the config line
	op dkim genkey "$@" 2>/dev/null >"$E2E_DIR/genkey.out"
	grep ' IN TXT ' "$E2E_DIR/genkey.out"
	grep '^key = ' "$E2E_DIR/genkey.out" >>"$E2E_DIR/dkim.keys"
}
: >"$E2E_DIR/dkim.keys"
REC_ED=$(genkey secure.test ed)
REC_RSA=$(genkey secure.test rsa --algorithm rsa)
REC_DSN=$(genkey outpost.secure.test dsn --algorithm rsa --bits 1024)
genkey stale.secure.test old >/dev/null
# the record published for stale.secure.test is another key's
REC_STALE=$(op dkim genkey decoy.secure.test old --out decoy.pem 2>/dev/null |
	grep ' IN TXT ' | sed 's/decoy\.secure/stale.secure/')
check "genkey writes the key with mode 0600" \
	[ "$(stat -c %a "$DATA/dkim/ed._domainkey.secure.test.pem")" = 600 ]
check "genkey refuses to overwrite a key" \
	bash -c "! '$OUTPOST' -c '$CONF' dkim genkey secure.test ed 2>/dev/null"
check "an RSA-2048 record is split into strings of at most 255 octets" \
	$PY -c 'import re,sys; s=re.findall(r"\"([^\"]*)\"", sys.argv[1]); sys.exit(not (len(s) > 1 and max(map(len, s)) <= 255))' "$REC_RSA"

dp_pick_port
Z=secure.test
for rec in "mxr A 127.0.5.2" "mxrelay A 127.0.5.3" "rcpt MX 10 mxr" "relay MX 10 mxrelay" \
	"snd MX 10 mxr" "$REC_ED" "$REC_RSA" "$REC_DSN" "$REC_STALE"; do
	dns_peers_add_record $Z "$rec"
done
dns_peers_start

dp_postfix rcv 127.0.5.2 </dev/null
dp_postfix rly 127.0.5.3 <<EOF
virtual_mailbox_domains =
relay_domains = relay.secure.test
transport_maps = inline:{ relay.secure.test=smtp:[127.0.5.2]:$DP_PORT }
relay_transport = smtp
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
local_header_rewrite_clients =
disable_mime_output_conversion = yes
smtp_tls_security_level = none
EOF
dp_ready
dp_postfix_access rcv nobody@rcpt.$Z "550 5.1.1 no such user"

# opendkim-testmsg resolves with libresolv: port 53 of 127.0.5.1, forwarded
$PY "$HERE/dkim_verify.py" forward 127.0.5.1 "$DNS_RESOLVER" >"$PEERS/fwd.out" 2>&1 &
E2E_PIDS+=($!)
dns_peers__wait_port u 53 10 || true
printf 'nameserver 127.0.5.1\noptions edns0 attempts:1 timeout:3\n' >"$E2E_DIR/resolv.conf"

{
	cat <<EOF
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
first_retry = 10s
connect_timeout = 2s
[dkim]
EOF
	cat "$E2E_DIR/dkim.keys"
} | e2e_config
sed -i 's/^hostname = outpost.test$/hostname = outpost.secure.test/' "$CONF"
e2e_start

# ---- helpers ----------------------------------------------------------------------
submit() { # ENVELOPE_FROM RCPT: the message on stdin, over SMTP (8BITMIME)
	$PY -c '
import smtplib, sys
msg = sys.stdin.buffer.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.ehlo("client.test")
    s.sendmail(sys.argv[2], [sys.argv[3]], msg, mail_options=["BODY=8BITMIME"])
' "$SMTP_PORT" "$1" "$2"
}
received() { # CASE: the Maildir file of the message with X-Case: CASE
	{ grep -l -s "^X-Case: $1\$" "$MAIL"/new/* "$MAIL"/cur/* || true; } | head -1
}
has_received() { [ -n "$(received "$1")" ]; }
wait_received() { wait_until 30 has_received "$1"; }
opendkim_ok() { # FILE: every signature of FILE, each on its own, passes opendkim-testmsg
	local d n i
	d=$(mktemp -d "$E2E_DIR/split.XXXXXX")
	n=$($PY "$HERE/dkim_verify.py" split "$1" "$d")
	[ "$n" -gt 0 ] || return 1
	for i in $(seq 0 $((n - 1))); do
		unshare -m sh -c "mount --bind '$E2E_DIR/resolv.conf' /etc/resolv.conf &&
			opendkim-testmsg <'$d/sig$i.eml'" >"$d/out$i" 2>&1 || { cat "$d/out$i"; return 1; }
	done
}
dkimpy_ok() { $PY "$HERE/dkim_verify.py" verify "$1" "$DNS_RESOLVER" >"$1.dkimpy" 2>&1; }
top_headers() { awk '/^\r?$/ { exit } { print }' "$1"; } # the header section only
sigs() { top_headers "$1" | grep -c -i '^DKIM-Signature:' || true; }
verified_by_both() { # CASE DESCRIPTION
	local f
	f=$(received "$1")
	check "$2: 2 signatures (ed25519 and rsa)" [ "$(sigs "$f")" = 2 ]
	check "$2: dkimpy verifies both" dkimpy_ok "$f"
	check "$2: opendkim-testmsg verifies both" opendkim_ok "$f"
}

# ---- the cases ----------------------------------------------------------------------
check "dkim check: every published record matches" op dkim check secure.test
check "dkim check: a record of another key does not" bash -c "! '$OUTPOST' -c '$CONF' dkim check stale.secure.test"

LONG_SUBJECT="Subject: $(printf 'a long subject with many words %.0s' $(seq 1 12))"
submit alice@snd.$Z bob@rcpt.$Z <<EOF
From: Alice <alice@secure.test>
To: Bob <bob@rcpt.secure.test>,
	Other <other@rcpt.secure.test>
$LONG_SUBJECT
References: <a@secure.test>
 <b@secure.test>
	<c@secure.test>
Date: Mon, 30 Nov 2026 10:00:00 +0000
Message-ID: <m1@secure.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit
X-Case: m1

Grüße, café, naïve: 8-bit text.  Two spaces,	a tab, trailing blanks:   
	an indented line

and empty lines at the end


EOF
submit alice@snd.$Z erin@rcpt.$Z <<'EOF'
From: alice@secure.test
To: erin@rcpt.secure.test
Subject: empty body
X-Case: m7

EOF
printf 'From: Alice <alice@secure.test>\nTo: carol@rcpt.secure.test\nSubject: via send\nX-Case: m2\n\nsent with outpost send\n' |
	op send -f alice@snd.$Z carol@rcpt.$Z
submit alice@snd.$Z dave@relay.$Z <<'EOF'
From: Alice <alice@secure.test>
To: dave@relay.secure.test
Subject: through a relay
X-Case: m3

relayed by Postfix
EOF
submit eve@snd.$Z frank@rcpt.$Z <<'EOF'
From: Eve <eve@insecure.test>
To: frank@rcpt.secure.test
Subject: no keys here
X-Case: m4

not signed
EOF
submit alice@snd.$Z nobody@rcpt.$Z <<'EOF'
From: Alice <alice@secure.test>
To: nobody@rcpt.secure.test
Subject: bounces
X-Case: m5

to a refused recipient
EOF

for c in m1 m7 m2 m3 m4; do check "$c delivered" wait_received $c; done
verified_by_both m1 "8-bit body, long and folded headers"
verified_by_both m7 "empty body"
verified_by_both m2 "outpost send through the daemon"
verified_by_both m3 "after a Postfix relay"
check "m3 went through the relay" grep -q "rly.insecure.test" "$(received m3)"
check "a domain without keys is not signed" [ "$(sigs "$(received m4)")" = 0 ]

# the DSN for nobody@ comes back to alice@snd.secure.test, signed by the hostname's key
dsn_file() { { grep -l -s "^From: Mail Delivery System <MAILER-DAEMON@outpost.secure.test>" "$MAIL"/new/* || true; } | head -1; }
has_dsn() { [ -n "$(dsn_file)" ]; }
check "the DSN arrives" wait_until 30 has_dsn
DSN=$(dsn_file)
check "the DSN is signed once" [ "$(sigs "$DSN")" = 1 ]
check "the DSN's signature is d=outpost.secure.test s=dsn" \
	bash -c "$(declare -f top_headers); top_headers '$DSN' | tr -d '\r\n\t ' | grep -q 'd=outpost.secure.test;s=dsn;'"
check "the DSN: dkimpy verifies" dkimpy_ok "$DSN"
check "the DSN: opendkim-testmsg verifies" opendkim_ok "$DSN"

# the test can fail: a signed field altered after receipt
ALTERED=$E2E_DIR/altered.eml
sed 's/^Subject: a long subject/Subject: A long subject/' "$(received m1)" >"$ALTERED"
fails() { ! "$@" >/dev/null; }
check "an altered Subject fails dkimpy" fails dkimpy_ok "$ALTERED"
check "an altered Subject fails opendkim-testmsg" fails opendkim_ok "$ALTERED"

# m1 m7 m2 m3 m5 with two signatures each, the DSN with one
check "signatures counted" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics |
	grep -q '^outpost_dkim_signatures_total{result=\"ok\"} 11\$'"

# outpost send with no daemon: it writes the spool and signs itself
e2e_stop
printf 'From: alice@secure.test\nTo: gina@rcpt.secure.test\nSubject: no daemon\nX-Case: m6\n\nqueued by send itself\n' |
	op send -f alice@snd.$Z gina@rcpt.$Z
e2e_start
check "m6 delivered" wait_received m6
verified_by_both m6 "outpost send writing the spool"

check "a signature is logged with the message" grep -q 'event=message_accepted.*dkim=2' "$E2E_DIR/outpost.log"

# a key that cannot be used stops the start, naming it
BAD=$E2E_DIR/bad.conf
mkdir -p "$E2E_DIR/bad"
printf '[server]\ndata_dir = %s/bad\n[submission]\nlisten = 127.0.5.9:%s\n[admin]\nlisten = 127.0.5.9:%s\n[dkim]\nkey = secure.test x dkim/missing.pem\n' \
	"$E2E_DIR" "$SMTP_PORT" "$ADMIN_PORT" >"$BAD"
check "a missing key stops the daemon, named" bash -c "! '$OUTPOST' serve -c '$BAD' 2>'$E2E_DIR/bad.err' && grep -q 'missing.pem' '$E2E_DIR/bad.err'"
send_bad() { printf 'From: a@secure.test\n\nx\n' | "$OUTPOST" -c "$BAD" send -f a@secure.test b@rcpt.secure.test; }
check "a missing key stops send writing the spool, named" \
	bash -c "$(declare -f send_bad); OUTPOST='$OUTPOST' BAD='$BAD'; ! send_bad 2>'$E2E_DIR/bad2.err' && grep -q 'missing.pem' '$E2E_DIR/bad2.err'"
e2e_finish
