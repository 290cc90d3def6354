#!/bin/bash
# How delivery treats hosts that refuse, loops, duplicates and notices, end
# to end against NSD + Unbound (dns_peers.sh) and scripted peers, each on
# its own loopback address and the one [delivery] port:
#   127.0.0.2  smtp-sink "good": takes everything; no SMTPUTF8
#   127.0.0.3  greet-554       127.0.0.4  ehlo-550      127.0.0.5  rcpt-421
#   127.0.0.6  rcpt-550        127.0.0.7  rcpt-451
#   127.0.0.8  smtp-sink "dsn": MX of the senders' domain, gets the notices
#   127.0.0.9  nothing listens (a host that is down)
#   127.0.0.11 outpost itself (a second submission listener on the port)
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers.sh"

dp_pick_port
Z=insecure.test
for rec in "good A 127.0.0.2" "g554 A 127.0.0.3" "e550 A 127.0.0.4" "r421 A 127.0.0.5" \
	"r550 A 127.0.0.6" "r451 A 127.0.0.7" "dsnmx A 127.0.0.8" "down A 127.0.0.9" \
	"self A 127.0.0.11" "snd MX 10 dsnmx" \
	"greet MX 10 g554" "greet MX 20 good" "ehlo MX 10 e550" "ehlo MX 20 good" \
	"allrefuse MX 10 g554" "allrefuse MX 20 e550" "r421dom MX 10 r421" "r421dom MX 20 good" \
	"capdom MX 10 good" "capdom MX 20 down" "loop MX 10 self" "loop MX 20 good" \
	"fail1 MX 10 r550" "fail2 MX 10 r550" "mixd MX 10 r451" "mixf MX 10 r550" \
	"dupdom MX 10 good" "wrap MX 10 good"; do
	dns_peers_add_record $Z "$rec"
done
dns_peers_start
dp_sink good 127.0.0.2
dp_python g554 127.0.0.3 greet-554
dp_python e550 127.0.0.4 ehlo-550
dp_python r421 127.0.0.5 rcpt-421
dp_python r550 127.0.0.6 rcpt-550
dp_python r451 127.0.0.7 rcpt-451
dp_sink dsn 127.0.0.8
dp_ready

e2e_config <<EOF
listen = 127.0.0.11:$DP_PORT
max_line_length = 2000
[server]
hostname = outpost.insecure.test
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
first_retry = 60s
delay_notice_after = 1
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
connection_idle_timeout = 30s
EOF
e2e_start

submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" "$@"; }
S=snd.$Z
# the notices the dsn sink got for SENDER, as maildir_check.py JSON
dsns() { $PY "$HERE/maildir_check.py" "$PEERS/dsn/dump" "$1"; }
dsn_test() { $PY -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($2) else 1)" "$(dsns "$1")"; }
expect_dsn() { # DESCRIPTION SENDER EXPR
	if wait_until 15 dsn_test "$2" "$3"; then pass "$1"; else
		fail "$1"
		echo "     got: $(dsns "$2")"
	fi
}
ACTIONS='lambda m: sorted((b.get("final-recipient","").split(";",1)[-1].strip(), b.get("action"), b.get("status")) for b in m["blocks"] if "action" in b)'

ID_GREET=$(submit s-greet@$S u@greet.$Z)
ID_EHLO=$(submit s-ehlo@$S u@ehlo.$Z)
ID_ALL=$(submit s-all@$S u@allrefuse.$Z)
ID_421=$(submit s-421@$S u@r421dom.$Z)
ID_LOOP=$(submit s-loop@$S u@loop.$Z)
ID_TWO=$(submit s-two@$S a@fail1.$Z,b@fail2.$Z)
ID_MIX=$(submit s-mix@$S d@mixd.$Z,f@mixf.$Z)

# ---- hosts that refuse the session or a recipient pass it on ---------------
expect_show "554 greeting on the best MX: delivered via the next one in the same attempt" "$ID_GREET" \
	'R("u@greet.insecure.test")["state"]=="delivered" and R("u@greet.insecure.test")["attempts"]==1 and A("u@greet.insecure.test")[-1]["mx"]=="good.insecure.test"'
expect_show "550 to EHLO (and HELO) on the best MX: delivered via the next one" "$ID_EHLO" \
	'R("u@ehlo.insecure.test")["state"]=="delivered" and A("u@ehlo.insecure.test")[-1]["mx"]=="good.insecure.test"'
expect_show "every MX refuses the session with 5xx: failed permanently at the first attempt" "$ID_ALL" \
	'R("u@allrefuse.insecure.test")["state"]=="failed" and R("u@allrefuse.insecure.test")["attempts"]==1 and "550" in R("u@allrefuse.insecure.test")["last_error"]'
expect_dsn "... and its sender gets a failure notice" s-all@$S 'len(d)==1 and d[0]["report_type"]=="delivery-status"'
expect_show "421 to RCPT: the recipient goes to the next MX" "$ID_421" \
	'R("u@r421dom.insecure.test")["state"]=="delivered" and A("u@r421dom.insecure.test")[-1]["mx"]=="good.insecure.test"'

# ---- an MX that is ourselves ends the list (RFC 5321 §5.1) ------------------
expect_show "an MX that resolves to outpost's own listener: failed 5.4.4, not sent to itself" "$ID_LOOP" \
	'R("u@loop.insecure.test")["state"]=="failed" and "5.4.4" in R("u@loop.insecure.test")["last_error"]'
check "nothing came back in through the listener on 127.0.0.11" \
	bash -c "! grep -q 'event=message_accepted.*client=127.0.0.11' '$E2E_DIR/outpost.log' && ! grep -q 'client=127.0.0.1 .*u@loop' '$E2E_DIR/outpost.log'"
check "the lower-preference host after it was not tried either" \
	bash -c "! grep -qF 'X-Rcpt-Args: <u@loop.insecure.test>' '$PEERS'/good/dump/* 2>/dev/null"

# ---- a loop counted in Received fields (RFC 5321 §6.3) ----------------------
LOOPED=$E2E_DIR/looped.eml
{ for i in $(seq 1 100); do printf 'Received: from hop%d.example by hop%d.example; Mon, 30 Nov 2026 10:00:00 +0000\n' "$i" $((i + 1)); done
	printf 'Subject: round and round\n\nbody\n'; } >"$LOOPED"
loop_smtp() {
	$PY - "$SMTP_PORT" "$LOOPED" <<'EOF'
import smtplib, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
try:
    c.sendmail("s@snd.insecure.test", ["r@good.insecure.test"],
               open(sys.argv[2], "rb").read().replace(b"\n", b"\r\n"))
except smtplib.SMTPDataError as e:
    sys.exit(0 if e.smtp_code == 554 and e.smtp_error.startswith(b"5.4.6") else 1)
sys.exit(1)
EOF
}
check "100 Received fields over SMTP: 554 5.4.6" loop_smtp
check "... and through outpost send, the same refusal" \
	bash -c "! '$OUTPOST' -c '$CONF' send -f s@$S r@good.$Z <'$LOOPED' 2>'$E2E_DIR/loop.err' && grep -q '5.4.6' '$E2E_DIR/loop.err'"

# ---- one notice per message, whatever the destinations ----------------------
expect_show "two domains, both refusing: both recipients failed" "$ID_TWO" \
	'R("a@fail1.insecure.test")["state"]=="failed" and R("b@fail2.insecure.test")["state"]=="failed"'
expect_dsn "one notice for both domains, naming both recipients" s-two@$S \
	"len(d)==1 and [x[0] for x in ($ACTIONS)(d[0])]==['a@fail1.insecure.test','b@fail2.insecure.test']"
expect_show "one recipient deferred, the other failed, in the same message" "$ID_MIX" \
	'R("d@mixd.insecure.test")["state"]=="deferred" and R("f@mixf.insecure.test")["state"]=="failed"'
expect_dsn "one notice: Action failed for one and delayed for the other" s-mix@$S \
	"len(d)==1 and ($ACTIONS)(d[0])==[('d@mixd.insecure.test','delayed','4.0.0'),('f@mixf.insecure.test','failed','5.0.0')]"

# ---- a capability one host lacks, on a pooled connection --------------------
ID_WARM=$(submit s-cap@$S warm@capdom.$Z)
expect_show "capdom: an ASCII message is delivered (its connection is kept for reuse)" "$ID_WARM" \
	'R("warm@capdom.insecure.test")["state"]=="delivered"'
ID_UTF=$(submit s-cap@$S "ütf@capdom.$Z")
expect_show "an SMTPUTF8 message: the pooled host lacks SMTPUTF8, the other MX is down: deferred, not failed" "$ID_UTF" \
	'R("ütf@capdom.insecure.test")["state"]=="deferred" and R("ütf@capdom.insecure.test")["attempts"]==1'

# ---- duplicates ---------------------------------------------------------------
printf 'Subject: dup\n\nonce\n' | op send -f s-dup@$S dup@dupdom.$Z dup@DUPDOM.$Z dup@dupdom.$Z
ID_DUP=$(op queue list --json | $PY -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin) if m["sender"].startswith("s-dup")][0])' 2>/dev/null || true)
check "one recipient kept of dup@dupdom, dup@DUPDOM, dup@dupdom" \
	bash -c "[ -z '$ID_DUP' ] || [ \$(op() { '$OUTPOST' -c '$CONF' \"\$@\"; }; op queue show $ID_DUP --json | grep -c '\"address\"') = 1 ]"
dup_once() {
	[ "$(grep -lF 'X-Mail-Args: <s-dup@' "$PEERS"/good/dump/* 2>/dev/null |
		xargs -r grep -h 'X-Rcpt-Args' | wc -l)" = 1 ]
}
check "one RCPT on the wire" wait_until 10 dup_once
check "RCPT of the same address twice in a session: the second is answered, not stored" \
	bash -c "$PY - $SMTP_PORT <<'EOF'
import smtplib, sys
c = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
c.ehlo('t.test')
c.mail('s@snd.insecure.test')
a = c.rcpt('x@wrap.insecure.test')
b = c.rcpt('x@WRAP.insecure.test')
sys.exit(0 if a[0] == 250 and b[0] == 250 and b'duplicate' in b[1] else 1)
EOF"

# ---- a line longer than 998 octets never goes out as one -------------------
LONG=$($PY -c 'print("x" * 1500)')
printf 'Subject: wrap\n\n%s\nend\n' "$LONG" | op send -f s-wrap@$S w@wrap.$Z
longest_line() {
	local f
	f=$(grep -lF 'X-Rcpt-Args: <w@wrap.insecure.test>' "$PEERS"/good/dump/* 2>/dev/null | head -1)
	[ -n "$f" ] && awk '{ sub(/\r$/, ""); if (length($0) > m) m = length($0) } END { print m }' "$f"
}
wrapped() { local n; n=$(longest_line) && [ -n "$n" ] && [ "$n" -le 998 ]; }
check "a 1,500-octet line (accepted: max_line_length 2000) is broken to at most 998 on the wire" \
	wait_until 10 wrapped

e2e_stop
e2e_finish
