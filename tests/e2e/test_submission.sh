#!/bin/bash
# Submission end to end: real clients (swaks, Python's smtplib) against the
# running daemon: pipelining, STARTTLS + AUTH, BDAT, 8-bit and SMTPUTF8,
# `outpost send`, then the queue through the CLI.
source "$(dirname "$0")/lib.sh"

# TLS certificate and a users file of crypt(3) hashes
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=outpost.test" -keyout "$E2E_DIR/key.pem" -out "$E2E_DIR/cert.pem" 2>/dev/null
echo "alice:$(openssl passwd -6 -salt 8sFt66rZ 's3cret pass')" >"$E2E_DIR/users"
e2e_config <<EOF
tls_cert = $E2E_DIR/cert.pem
tls_key = $E2E_DIR/key.pem
users_file = $E2E_DIR/users
[delivery]
paused = yes
EOF
e2e_start

smtp() { $PY "$(dirname "$0")/smtp_client.py" "$SMTP_PORT" "$@"; }
q() { "$OUTPOST" -c "$CONF" queue "$@"; }

check "pipelined submission with swaks is queued" \
	bash -c "swaks --server 127.0.0.1:$SMTP_PORT --pipeline -f a@example.org -t b@example.net \
	--header 'Subject: pipelined' 2>&1 | grep -q '250 2.0.0 OK queued as'"
check "EHLO advertises the extensions" bash -c "$PY $(dirname "$0")/smtp_client.py $SMTP_PORT ehlo | grep -q 'PIPELINING.*SIZE.*8BITMIME.*SMTPUTF8.*ENHANCEDSTATUSCODES.*CHUNKING.*STARTTLS'"
check "STARTTLS then AUTH PLAIN then mail" smtp tls-auth-plain alice 's3cret pass'
check "STARTTLS then AUTH LOGIN then mail" smtp tls-auth-login alice 's3cret pass'
check "a wrong password is refused with 535" smtp tls-auth-bad alice 'wrong'
check "REQUIRETLS is accepted over TLS and stored" smtp tls-requiretls
check "REQUIRETLS without TLS is refused" smtp plain-requiretls
check "BDAT in two chunks is queued" smtp bdat
check "an 8-bit message is queued and flagged" smtp eightbit
check "an SMTPUTF8 message with UTF-8 addresses is queued" smtp smtputf8
check "a UTF-8 address without SMTPUTF8 is refused" smtp utf8-without-smtputf8
check "TLS-Required: No is detected" smtp tls-required-no

printf 'Subject: from send\n\nbody line\n.\nnot part of it\n' | op send -f local@example.org c@example.com
check "outpost send exits 0" test $? -eq 0
printf 'To: T One <t1@example.com>, t2@example.com\nBcc: hidden@example.com\nSubject: -t\n\nhi\n' |
	op send -t -i
check "send -t takes recipients from the headers" bash -c "'$OUTPOST' -c '$CONF' queue list --json | grep -q hidden@example.com"
ln -sf "$OUTPOST" "$E2E_DIR/sendmail"
printf 'Subject: as sendmail\n\nhi\n' | "$E2E_DIR/sendmail" -c "$CONF" -oi -f s@example.org sm@example.com
check "the binary answers to the name sendmail" test $? -eq 0

LIST=$E2E_DIR/list.json
op queue list --json >"$LIST"
check "queue list --json shows every queued message" $PY "$(dirname "$0")/check_list.py" "$LIST"

ID=$(op queue list --json | $PY -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin) if any(r["address"]=="c@example.com" for r in m["recipients"])][0])')
check "queue cat shows the message up to the lone dot" bash -c "'$OUTPOST' -c '$CONF' queue cat $ID | grep -q 'body line'"
check "queue cat shows nothing after the lone dot" bash -c "! '$OUTPOST' -c '$CONF' queue cat $ID | grep -q 'not part'"
check "queue show --json has the flags" bash -c "'$OUTPOST' -c '$CONF' queue show $ID --json | grep -q requiretls"
check "hold by id" bash -c "'$OUTPOST' -c '$CONF' queue hold $ID | grep -q '^1 recipient'"
check "held recipient is listed as held" bash -c "'$OUTPOST' -c '$CONF' queue list --held --json | grep -q c@example.com"
check "release by id" bash -c "'$OUTPOST' -c '$CONF' queue release $ID | grep -q '^1 recipient'"
check "kick by domain" bash -c "'$OUTPOST' -c '$CONF' queue kick --domain example.com | grep -q recipients"
BEFORE=$(queue_count)
check "drop by recipient" bash -c "'$OUTPOST' -c '$CONF' queue drop --recipient c@example.com | grep -q '^1 recipient'"
check "the dropped message is gone" test "$(queue_count)" -eq $((BEFORE - 1))
check "an action without selector is a usage error (2)" bash -c "'$OUTPOST' -c '$CONF' queue drop 2>/dev/null; test \$? -eq 2"
check "an unknown id is an error (1)" bash -c "'$OUTPOST' -c '$CONF' queue show 00FF 2>/dev/null; test \$? -eq 1"
check "/metrics counts accepted messages" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep -q '^outpost_messages_accepted_total [1-9]'"
check "/metrics has commit histograms" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep -q outpost_spool_commit_seconds_bucket"
check "log lines carry the queue id" grep -q "event=message_accepted qid=" "$E2E_DIR/outpost.log"

e2e_stop
printf 'Subject: offline\n\nqueued while stopped\n' | op send offline@example.com
check "send works while the daemon is stopped" test $? -eq 0
e2e_start
check "the restarted daemon sees it" bash -c "'$OUTPOST' -c '$CONF' queue list --json | grep -q offline@example.com"
e2e_stop

# A daemon that goes away between its 250 and the QUIT: a stand-in on the
# local socket stops reading before it answers the final dot, so the QUIT
# that follows meets EPIPE. send got its 250: it must exit 0, not die of
# SIGPIPE (test_durability.sh once saw "send exit -13" for a queued message).
rm -f "$DATA/submit.sock"
$PY - "$DATA/submit.sock" >"$E2E_DIR/fake_daemon.log" 2>&1 <<'EOF' &
import socket, sys, time
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1])
srv.listen(1)
c, _ = srv.accept()
f = c.makefile("rb")
c.sendall(b"220 stand-in\r\n")
while True:
    line = f.readline()
    if not line:
        break
    verb = line[:4].upper()
    if verb == b"DATA":
        c.sendall(b"354 go on\r\n")
        while f.readline() not in (b".\r\n", b""):
            pass
        c.shutdown(socket.SHUT_RD)
        c.sendall(b"250 2.0.0 queued as STANDIN\r\n")
        print("answered the dot", flush=True)
        time.sleep(2)
        break
    c.sendall(b"250 ok\r\n")
EOF
FAKE=$!
for _ in $(seq 50); do [ -S "$DATA/submit.sock" ] && break; sleep 0.1; done
printf 'Subject: quit\n\nbody\n' | op send quit@example.com 2>"$E2E_DIR/send_quit.err"
check "send exits 0 when the daemon is gone before its QUIT (got $?)" test $? -eq 0
wait "$FAKE"
check "the stand-in answered the final dot" grep -q "answered the dot" "$E2E_DIR/fake_daemon.log"
e2e_finish
