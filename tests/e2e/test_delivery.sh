#!/bin/bash
# Direct delivery end to end, against real peers: NSD + a validating Unbound
# (dns_peers.sh) serving the MX records, two private Postfix instances, three
# smtp-sinks and a python server (delivery_peers.sh, hostile_mx.py), each on
# its own loopback address and the one [delivery] port:
#   127.0.0.2 Postfix "pa" (STARTTLS): most mail, and the DSNs (the senders' domain
#             snd.insecure.test has its MX there); refuses bad@multi (550)
#             and later@later (450)
#   127.0.0.3 Postfix "pb": message_size_limit = 2000
#   127.0.0.4 hostile_mx.py tls-fallback: garbage after the 220 to STARTTLS
#   127.0.0.5 smtp-sink "su": 8BITMIME, no SMTPUTF8
#   127.0.0.6 smtp-sink "sw": waits 3 s before answering DATA
#   127.0.0.7 smtp-sink "s7" (-8): neither 8BITMIME nor SMTPUTF8
#   127.0.0.8, 127.0.0.9: nothing listens (hosts that are down)
# Each scenario has its own sender s-NAME@snd.insecure.test, so the DSNs that
# reach pa's Maildir tell which scenario they belong to.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone ldns-keygen postfix smtp-sink; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
T0=$SECONDS
source "$HERE/peers.sh"

dp_pick_port
Z=insecure.test
for rec in "mxa A 127.0.0.2" "mxb A 127.0.0.3" "mxc A 127.0.0.4" "mxu A 127.0.0.5" \
	"mxw A 127.0.0.6" "mx7 A 127.0.0.7" "mxdown A 127.0.0.9" "mxdown2 A 127.0.0.8" \
	"snd MX 10 mxa" \
	"best MX 20 mxb" "best MX 10 mxa" \
	"second MX 10 mxdown" "second MX 20 mxb" \
	"alldown MX 10 mxdown" "alldown MX 20 mxdown2" \
	"multi MX 10 mxa" "later MX 10 mxa" \
	"cc1 CNAME cc2" "cc2 CNAME cc3" "cc3 MX 10 mxa" \
	"impl A 127.0.0.2" \
	"utf MX 10 mxu" "eight MX 10 mx7" "big MX 10 mxb" "tlsfb MX 10 mxc" \
	"slow MX 10 mxw" "reuse MX 10 mxb"; do
	dns_peers_add_record $Z "$rec"
done
dns_peers_start

dp_postfix pa 127.0.0.2 <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $PEERS/pki/mx1.secure.test.chain.crt
smtpd_tls_key_file = $PEERS/pki/mx1.secure.test.key
EOF
dp_postfix pb 127.0.0.3 <<<"message_size_limit = 2000"
dp_python tlsfb 127.0.0.4 tls-fallback
dp_sink su 127.0.0.5
dp_sink sw 127.0.0.6 -w 3
dp_sink s7 127.0.0.7 -8
dp_ready
dp_postfix_access pa bad@multi.$Z "550 5.1.1 no such user"
dp_postfix_access pa later@later.$Z "450 4.2.0 try later"

e2e_config <<EOF
[server]
hostname = outpost.insecure.test
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
first_retry = 10s
max_attempts = 8
delay_notice_after = 5
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
tls_timeout = 3s
connection_idle_timeout = 5s
EOF
e2e_start
echo "# peers and daemon up after $((SECONDS - T0)) s (port $DP_PORT, resolver $DNS_RESOLVER)"

# ---- helpers ---------------------------------------------------------------

submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" "$@"; }
MAILDIR_A=$PEERS/pa/mail/sink




# dsns SENDER: the messages pa's Maildir got for SENDER, as JSON.
dsns() { $PY "$HERE/maildir_check.py" "$MAILDIR_A" "$1"; }
# dsn_test SENDER EXPR: EXPR over d = that list.
dsn_test() {
	$PY -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($2) else 1)" "$(dsns "$1")"
}
expect_dsn() { # DESCRIPTION SENDER EXPR [TIMEOUT]
	if wait_for "${4:-15}" dsn_test "$2" "$3"; then
		pass "$1"
	else
		fail "$1"
		echo "     expected: $3"
		echo "     got: $(dsns "$2")"
	fi
}
delivered_to() { # delivered_to MAILDIR_NAME RCPT -> count
	$PY "$HERE/maildir_check.py" "$PEERS/$1/mail/sink" "$2" |
		$PY -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
delivered_are() { # delivered_are MAILDIR_NAME RCPT COUNT [RCPT COUNT...]
	local name=$1
	shift
	while [ $# -ge 2 ]; do
		[ "$(delivered_to "$name" "$1")" = "$2" ] || return 1
		shift 2
	done
}
delivered_is() { delivered_are "$@"; }
log_count() { grep -c -- "$1" "$E2E_DIR/outpost.log" || true; }

# DSN block checks, in python: a failed recipient block with that status;
# the final recipients named by one notice.
FAILED_FOR='lambda d, rcpt, status: any(b.get("action") == "failed" and b.get("status") == status and b.get("final-recipient", "").split(";", 1)[-1].strip().lower() == rcpt.lower() for m in d for b in m["blocks"])'
NAMED='lambda m: sorted(b["final-recipient"].split(";", 1)[-1].strip() for b in m["blocks"] if "final-recipient" in b)'

# ---- submit the independent scenarios at once --------------------------------
S=snd.$Z
ID_BEST=$(submit s-best@$S u1@best.$Z)
ID_SECOND=$(submit s-second@$S u2@second.$Z)
ID_MULTI=$(submit s-multi@$S a@multi.$Z,bad@multi.$Z,c@multi.$Z)
ID_LATER=$(submit s-later@$S good@later.$Z,later@later.$Z)
ID_NULL=$(submit s-null@$S n@nullmx.$Z)
ID_NX=$(submit s-nx@$S n@nope.$Z)
ID_BOGUS=$(submit s-bogus@$S n@bogus.test)
ID_CHAIN=$(submit s-chain@$S n@cc1.$Z)
ID_LOOP=$(submit s-loop@$S n@loop1.$Z)
ID_IMPL=$(submit s-impl@$S n@impl.$Z)
ID_LIT=$(submit s-lit@$S 'n@[127.0.0.2]')
ID_UTF=$(submit s-utf@$S "üsér@utf.$Z")
ID_8BIT=$(submit s-8bit@$S n@eight.$Z --eightbit)
ID_BIG=$(submit s-big@$S n@big.$Z --size 10240)
ID_TLS=$(submit s-tls@$S n@tlsfb.$Z)
check "15 messages submitted over SMTP, each with a queue id" \
	test -n "$ID_BEST$ID_SECOND" -a -n "$ID_MULTI" -a -n "$ID_LATER" -a -n "$ID_NULL" -a \
	-n "$ID_NX" -a -n "$ID_BOGUS" -a -n "$ID_CHAIN" -a -n "$ID_LOOP" -a -n "$ID_IMPL" -a \
	-n "$ID_LIT" -a -n "$ID_UTF" -a -n "$ID_8BIT" -a -n "$ID_BIG" -a -n "$ID_TLS"

# ---- MX selection --------------------------------------------------------------
expect_show "most preferred reachable MX: delivered via mxa (pref 10), not mxb (pref 20)" "$ID_BEST" \
	'R("u1@best.insecure.test")["state"]=="delivered" and R("u1@best.insecure.test")["attempts"]==1 and [(x["mx"],x["ip"],x["result"]) for x in A("u1@best.insecure.test")]==[("mxa.insecure.test","127.0.0.2","delivered")]'
check "the delivery log entry has the server's reply, the time and the TLS used" \
	jtest "$ID_BEST" '"250" in A("u1@best.insecure.test")[0]["reply"] and A("u1@best.insecure.test")[0]["time"] and A("u1@best.insecure.test")[0]["tls"].startswith("TLSv1.")'
check "pa's Maildir has the message" wait_for 5 delivered_is pa u1@best.$Z 1
check "pb's Maildir does not" delivered_is pb u1@best.$Z 0
expect_show "first MX down: delivered via the second (mxb, 127.0.0.3) in the same attempt" "$ID_SECOND" \
	'R("u2@second.insecure.test")["state"]=="delivered" and R("u2@second.insecure.test")["attempts"]==1 and [(x["mx"],x["ip"]) for x in A("u2@second.insecure.test")]==[("mxb.insecure.test","127.0.0.3")]'
check "pb's Maildir has it" wait_for 5 delivered_is pb u2@second.$Z 1

# ---- several recipients at one domain ------------------------------------------
expect_show "three recipients, one refused with 550: two delivered, one failed 5.1.1" "$ID_MULTI" \
	'[R(a+"@multi.insecure.test")["state"] for a in ("a","bad","c")]==["delivered","failed","delivered"] and "5.1.1" in R("bad@multi.insecure.test")["last_error"] and "no such user" in R("bad@multi.insecure.test")["last_error"]'
check "the two accepted recipients are in pa's Maildir, the refused one is not" \
	wait_for 5 delivered_are pa a@multi.$Z 1 c@multi.$Z 1 bad@multi.$Z 0
check "one transaction: one log entry per recipient, all via mxa" \
	jtest "$ID_MULTI" 'len(j["attempts"])==3 and all(x["mx"]=="mxa.insecure.test" for x in j["attempts"])'
expect_dsn "the DSN reaches the sender's domain's MX (pa) and parses as multipart/report" s-multi@$S \
	'len(d)==1 and d[0]["content_type"]=="multipart/report" and d[0]["report_type"]=="delivery-status" and d[0]["status_type"]=="message/delivery-status"'
expect_dsn "the DSN has Action: failed, Status: 5.1.1 for bad@multi, and names no one else" s-multi@$S \
	"($FAILED_FOR)(d, 'bad@multi.insecure.test', '5.1.1') and ($NAMED)(d[0]) == ['bad@multi.insecure.test']"
expect_dsn "the DSN carries the remote reply and the original headers" s-multi@$S \
	'any("550" in b.get("diagnostic-code","") for b in d[0]["blocks"]) and d[0]["headers_part"]=="text/rfc822-headers" and any(b.get("reporting-mta","").endswith("outpost.insecure.test") for b in d[0]["blocks"])'

expect_show "one recipient refused with 450: deferred, the other delivered" "$ID_LATER" \
	'R("good@later.insecure.test")["state"]=="delivered" and R("later@later.insecure.test")["state"]=="deferred" and "4.2.0" in R("later@later.insecure.test")["last_error"] and len(A("later@later.insecure.test"))>=1'
# (an automatic retry after first_retry may have come already: count from here)
N_LATER=$(op queue show "$ID_LATER" --json | $PY -c 'import json,sys; print(len([x for x in json.load(sys.stdin)["attempts"] if x["recipient"]=="later@later.insecure.test"]))')
op queue kick "$ID_LATER" >/dev/null
expect_show "kicked: only the 450 recipient is retried (attempts $N_LATER -> $((N_LATER + 1))), the delivered one stays at 1" "$ID_LATER" \
	"len(A('later@later.insecure.test'))>$N_LATER and R('later@later.insecure.test')['attempts']>$N_LATER and R('later@later.insecure.test')['state']=='deferred' and R('good@later.insecure.test')['attempts']==1 and len(A('good@later.insecure.test'))==1 and R('good@later.insecure.test')['state']=='delivered'"
check "the delivered recipient got one copy" wait_for 5 delivered_is pa good@later.$Z 1
op queue drop "$ID_LATER" >/dev/null

# ---- DNS outcomes ---------------------------------------------------------------
expect_show "null MX: failed at once with 5.1.10" "$ID_NULL" \
	'R("n@nullmx.insecure.test")["state"]=="failed" and R("n@nullmx.insecure.test")["attempts"]==1 and "5.1.10" in R("n@nullmx.insecure.test")["last_error"]'
expect_dsn "null MX: a failure DSN with Status 5.1.10" s-null@$S \
	"len(d)==1 and ($FAILED_FOR)(d, 'n@nullmx.insecure.test', '5.1.10')"
expect_show "NXDOMAIN: failed at once" "$ID_NX" \
	'R("n@nope.insecure.test")["state"]=="failed" and R("n@nope.insecure.test")["attempts"]==1 and "5.1.2" in R("n@nope.insecure.test")["last_error"]'
expect_show "SERVFAIL (bogus.test, DNSSEC bogus): deferred, 4.4.3" "$ID_BOGUS" \
	'R("n@bogus.test")["state"]=="deferred" and len(A("n@bogus.test"))>=1 and "4.4.3" in R("n@bogus.test")["last_error"]'
expect_show "CNAME chain (cc1 -> cc2 -> cc3, MX mxa): delivered" "$ID_CHAIN" \
	'R("n@cc1.insecure.test")["state"]=="delivered" and A("n@cc1.insecure.test")[-1]["mx"]=="mxa.insecure.test"'
expect_show "CNAME loop: deferred, the error says so" "$ID_LOOP" \
	'R("n@loop1.insecure.test")["state"]=="deferred" and len(A("n@loop1.insecure.test"))>=1 and "loop" in R("n@loop1.insecure.test")["last_error"].lower()'
expect_show "implicit MX (A record, no MX): delivered to the domain's own address" "$ID_IMPL" \
	'R("n@impl.insecure.test")["state"]=="delivered" and (A("n@impl.insecure.test")[-1]["mx"],A("n@impl.insecure.test")[-1]["ip"])==("impl.insecure.test","127.0.0.2")'
expect_show "IP literal n@[127.0.0.2]: delivered" "$ID_LIT" \
	'R("n@[127.0.0.2]")["state"]=="delivered" and A("n@[127.0.0.2]")[-1]["ip"]=="127.0.0.2"'
check "pa's Maildir has the CNAME chain, implicit MX and IP literal messages" \
	wait_for 5 delivered_are pa n@cc1.$Z 1 n@impl.$Z 1 'n@[127.0.0.2]' 1
op queue drop "$ID_BOGUS" "$ID_LOOP" >/dev/null

# ---- what the server cannot take ---------------------------------------------------
expect_show "SMTPUTF8 message to a server without SMTPUTF8: failed 5.6.7" "$ID_UTF" \
	'R("üsér@utf.insecure.test")["state"]=="failed" and R("üsér@utf.insecure.test")["attempts"]==1 and "5.6.7" in R("üsér@utf.insecure.test")["last_error"]'
expect_dsn "SMTPUTF8: a failure DSN (multipart/report) with Status 5.6.7" s-utf@$S \
	"len(d)==1 and d[0]['content_type']=='multipart/report' and ($FAILED_FOR)(d, 'üsér@utf.insecure.test', '5.6.7')"
check "SMTPUTF8: the sink received nothing, no MAIL was sent to it" \
	test "$(dp_sink_count su)" = 0 -a "$(grep -c 'mxu.insecure.test.*MAIL FROM' "$E2E_DIR/outpost.log" || true)" = 0
expect_show "8-bit message to a server without 8BITMIME: failed 5.6.3" "$ID_8BIT" \
	'R("n@eight.insecure.test")["state"]=="failed" and "5.6.3" in R("n@eight.insecure.test")["last_error"]'
check "8-bit: the sink received nothing, no MAIL was sent to it" \
	test "$(dp_sink_count s7)" = 0 -a "$(grep -c 'mx7.insecure.test.*MAIL FROM' "$E2E_DIR/outpost.log" || true)" = 0
expect_show "10 KB message, server SIZE 2000: failed 5.3.4" "$ID_BIG" \
	'R("n@big.insecure.test")["state"]=="failed" and R("n@big.insecure.test")["attempts"]==1 and "5.3.4" in R("n@big.insecure.test")["last_error"]'
check "SIZE: pb got nothing for it" test "$(delivered_to pb n@big.$Z)" = 0

# ---- TLS handshake failure -> plaintext on the same host --------------------------
expect_show "garbage after the 220 to STARTTLS: delivered in plaintext on the same host" "$ID_TLS" \
	'R("n@tlsfb.insecure.test")["state"]=="delivered" and R("n@tlsfb.insecure.test")["attempts"]==1 and A("n@tlsfb.insecure.test")[-1]["ip"]=="127.0.0.4" and not A("n@tlsfb.insecure.test")[-1]["tls"]'
check "the log has event=plaintext_fallback for mxc" \
	grep -q 'event=plaintext_fallback.*mx=mxc.insecure.test' "$E2E_DIR/outpost.log"
check "the server saw STARTTLS on connection 1, MAIL without it on connection 2, and got the message" \
	bash -c "[ \"\$(cat '$PEERS/tlsfb/connections.log')\" = \"\$(printf 'conn 1 starttls=yes\nconn 2 starttls=no')\" ] && grep -q 'RCPT TO:<n@tlsfb.insecure.test>' '$PEERS/tlsfb/msg.1'"

# ---- all MX hosts down: backoff, delay DSN after the 5th, failure after the 8th -----
# Kicked after each attempt; the attempt number is read from the delivery
# log, so an automatic retry coming first does not matter.
DOWN=n@alldown.$Z
ID_DOWN=$(submit s-down@$S $DOWN)
BACKOFF_OK=yes
DELAY_SEEN=
for k in 1 2 3 4 5 6 7; do
	if ! wait_for 15 jtest "$ID_DOWN" "len(A('$DOWN'))>=$k and len(A('$DOWN'))==R('$DOWN')['attempts']"; then
		BACKOFF_OK="attempt $k never completed"
		break
	fi
	n=$(op queue show "$ID_DOWN" --json | $PY -c "import json,sys; print(len([x for x in json.load(sys.stdin)['attempts'] if x['recipient']=='$DOWN']))")
	[ "$n" -ge 8 ] && break
	# next_attempt - last_attempt = first_retry (10 s) * 2^(n-1), jitter 1 %, 1 s resolution
	jtest "$ID_DOWN" "(lambda t: abs(t('next_attempt')-t('last_attempt') - 10*2**($n-1)) <= 1 + 0.011*10*2**($n-1))(lambda f: __import__('calendar').timegm(__import__('time').strptime(R('$DOWN')[f], '%Y-%m-%dT%H:%M:%SZ'))) and R('$DOWN')['state']=='deferred'" ||
		BACKOFF_OK="wrong backoff after attempt $n: $(cat "$SHOWN")"
	if [ "$n" -le 4 ] && ! dsn_test s-down@$S 'len(d)==0'; then
		BACKOFF_OK="a DSN before the 5th attempt (after attempt $n)"
	fi
	if [ "$n" -eq 5 ]; then
		DELAY_SEEN=yes
		expect_dsn "all MX down: a delay DSN after the 5th attempt (Action: delayed, 4.x.x)" s-down@$S \
			"len(d)==1 and any(b.get('action')=='delayed' and b.get('status','').startswith('4.') and b.get('final-recipient','').split(';')[-1].strip()=='$DOWN' for b in d[0]['blocks'])"
	fi
	op queue kick "$ID_DOWN" >/dev/null
done
check "all MX down: deferred after attempts 1-7, next attempt doubling from 10 s, no DSN before the 5th ($BACKOFF_OK)" test "$BACKOFF_OK" = yes
check "all MX down: the 5th attempt was seen completed on its own (kicks, not timers, moved it)" test -n "$DELAY_SEEN"
expect_show "all MX down: failed after the 8th (last) attempt" "$ID_DOWN" \
	"R('$DOWN')['state']=='failed' and R('$DOWN')['attempts']==8 and [x['result'] for x in A('$DOWN')]==['deferred']*7+['failed'] and all(x['mx'] in ('mxdown.insecure.test','mxdown2.insecure.test') for x in A('$DOWN'))"
expect_dsn "all MX down: a failure DSN after the last attempt, and still one delay DSN" s-down@$S \
	"len(d)==2 and sorted(b.get('action') for m in d for b in m['blocks'] if 'action' in b)==['delayed','failed'] and ($FAILED_FOR)(d, '$DOWN', [b.get('status') for m in d for b in m['blocks'] if b.get('action')=='failed'][0]) and [b.get('status') for m in d for b in m['blocks'] if b.get('action')=='failed'][0].startswith('5.')"

# ---- no DSN about a DSN: <> to a failing destination ------------------------------------
dsn_metric() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^outpost_dsn_queued_total/ {s += $2} END {print s + 0}'; }
null_sender_msgs() { # messages from <> in the spool, any state
	local st
	for st in queued deferred delivered failed held; do
		op queue list --state $st --json | $PY -c 'import json,sys; [print(m["id"]) for m in json.load(sys.stdin) if m["sender"]==""]'
	done | sort -u | wc -l
}
# find_id STATE RCPT: the message with recipient RCPT in state STATE
find_id() {
	op queue list --state "$1" --json | $PY -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin) if any(r["address"]==sys.argv[1] for r in m["recipients"])][0])' "$2" 2>/dev/null
}
DSN_BEFORE=$(dsn_metric)
NULL_BEFORE=$(null_sender_msgs)
MAIL_BEFORE=$(dp_maildir_count pa)
printf 'Subject: from the null sender\n\nx\n' | op send -f '' z@nullmx.$Z
wait_for 10 find_id failed z@nullmx.$Z >/dev/null || true
ID_NULLSENDER=$(find_id failed z@nullmx.$Z || true)
check "null sender to a null MX domain: failed" test -n "$ID_NULLSENDER"
[ -n "$ID_NULLSENDER" ] && expect_show "  (its recipient failed 5.1.10)" "$ID_NULLSENDER" \
	'R("z@nullmx.insecure.test")["state"]=="failed" and "5.1.10" in R("z@nullmx.insecure.test")["last_error"]'
check "no DSN for <>: no notice queued (metric $DSN_BEFORE -> $(dsn_metric), <> messages $NULL_BEFORE -> $((NULL_BEFORE + 1)) expected)" \
	test "$(dsn_metric)" = "$DSN_BEFORE" -a "$(null_sender_msgs)" = $((NULL_BEFORE + 1))
sleep 1
check "no DSN for <>: nothing new reached pa's Maildir" test "$(dp_maildir_count pa)" = "$MAIL_BEFORE"

# ---- connection reuse ---------------------------------------------------------------------
PB_CONN_BEFORE=$(grep -c 'smtpd.*: connect from' "$PEERS/pb/maillog" || true)
OP_CONN_BEFORE=$(log_count 'server=mxb.insecure.test cmd=connect')
submit s-reuse@$S n@reuse.$Z --count 20 >"$E2E_DIR/reuse.ids"
check "20 messages to reuse.insecure.test queued" test "$(wc -l <"$E2E_DIR/reuse.ids")" = 20
check "all 20 delivered into pb's Maildir" dp_wait_maildir pb 21 20
REUSE_OK=0
while read -r id; do jtest "$id" 'R("n@reuse.insecure.test")["state"]=="delivered"' && REUSE_OK=$((REUSE_OK + 1)); done <"$E2E_DIR/reuse.ids"
check "queue show says delivered for all 20 ($REUSE_OK)" test "$REUSE_OK" = 20
sleep 0.5
PB_CONN=$(($(grep -c 'smtpd.*: connect from' "$PEERS/pb/maillog" || true) - PB_CONN_BEFORE))
OP_CONN=$(($(log_count 'server=mxb.insecure.test cmd=connect') - OP_CONN_BEFORE))
check "connection reuse: Postfix saw $PB_CONN connections for 20 messages (fewer than 20)" \
	test "$PB_CONN" -ge 1 -a "$PB_CONN" -lt 20
check "connection reuse: outpost opened $OP_CONN connections to mxb (fewer than 20)" \
	test "$OP_CONN" -ge 1 -a "$OP_CONN" -lt 20

# ---- SIGKILL in the middle of a transaction ------------------------------------------------
ID_SLOW=$(submit s-slow@$S n@slow.$Z --subject kill-me)
# smtp-sink waits 3 s before answering DATA: kill while outpost waits for it
check "outpost sent DATA to the slow sink and waits for its reply" \
	wait_for 10 grep -Eq 'server=mxw.insecure.test cmd="?DATA' "$E2E_DIR/outpost.log"
sleep 0.5
e2e_kill9
check "killed before the DATA reply: the sink has no copy of the message yet" test "$(grep -l kill-me "$PEERS/sw/dump/"m.* 2>/dev/null | wc -l)" = 0
e2e_start
check "the restart finds the interrupted attempt" \
	wait_for 5 grep -q 'event=spool_recovered interrupted_attempts=1' "$E2E_DIR/outpost.log"
expect_show "it was counted, and is retried at once, without its backoff, and delivered (never lost)" "$ID_SLOW" \
	'R("n@slow.insecure.test")["state"]=="delivered" and R("n@slow.insecure.test")["attempts"]==2' 20
check "the sink has the message at least once" \
	test "$(grep -l 'kill-me' "$PEERS/sw/dump/"m.* 2>/dev/null | wc -l)" -ge 1

# ---- the daemon survived it all --------------------------------------------------------------
check "the daemon is still running" kill -0 "$DAEMON_PID"
# (with connections still parked in the pool)
e2e_stop_clean
dns_peers_stop
dp_stop
echo "# took $((SECONDS - T0)) s"
e2e_finish
