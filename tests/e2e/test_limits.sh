#!/bin/bash
# Limits every way in shares, and a spool that cannot be written:
#  - outpost send refuses what the listener refuses (NUL, long lines, too
#    big), through the daemon and straight into the spool alike;
#  - [submission] max_pending_bytes bounds what all sessions hold: 452 4.3.1;
#  - DSN parameters are refused (555 5.5.4) while DSN is not offered;
#  - a full disk and a read-only one: submissions get 451 4.3.0 and nothing
#    is acknowledged, the scheduler backs off (a few log lines, little CPU),
#    the failures are counted, and all recovers by itself.
# The spool lives on a small tmpfs of its own (the tests run as root).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
DISK=$E2E_DIR/disk
mkdir -p "$DISK"
mount -t tmpfs -o size=16m tmpfs "$DISK"
trap 'umount "$DISK" 2>/dev/null; e2e_cleanup' EXIT
DATA=$DISK/data
DEAD_PORT=$(free_port)

e2e_config <<EOF
max_message_size = 1M
max_pending_bytes = 1M
[delivery]
port = $DEAD_PORT
first_retry = 1s
max_attempts = 1000
delay_notice_after = 0
EOF
e2e_start

sends() { # sends EXPECTED_TEXT FILE: outpost send refuses the message with that text
	! op send -f s@example.org r@example.net <"$2" 2>"$E2E_DIR/send.err" &&
		grep -q "$1" "$E2E_DIR/send.err"
}
NUL=$E2E_DIR/nul.eml
printf 'Subject: nul\n\nbefore\0after\n' >"$NUL"
LONGLINE=$E2E_DIR/long.eml
{ printf 'Subject: long\n\n'; $PY -c 'print("y" * 5000)'; } >"$LONGLINE"
BIG=$E2E_DIR/big.eml
{ printf 'Subject: big\n\n'; $PY -c 'print(("z" * 76 + "\n") * 16000, end="")'; } >"$BIG"
BARECR=$E2E_DIR/cr.eml
printf 'Subject: cr\n\nbare\rCR\n' >"$BARECR"

# ---- send: the listener's limits, through the daemon ------------------------
check "send refuses a NUL octet (554 5.6.0)" sends "554 5.6.0" "$NUL"
check "send refuses a 5,000-octet line (554 5.6.0)" sends "554 5.6.0" "$LONGLINE"
check "send refuses a message over max_message_size (552 5.3.4)" sends "552 5.3.4" "$BIG"
check "send refuses a bare CR (554 5.6.0)" sends "554 5.6.0" "$BARECR"
check "nothing of them was queued" test "$(queue_count)" = 0

# ---- DSN parameters (RFC 3461) are refused, not ignored ---------------------
dsn_params() {
	$PY - "$SMTP_PORT" <<'EOF'
import smtplib, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
c.ehlo("t.test")
a = c.docmd("MAIL FROM:<s@example.org> RET=HDRS")
b = c.docmd("MAIL FROM:<s@example.org> ENVID=x")
c.docmd("MAIL FROM:<s@example.org>")
d = c.docmd("RCPT TO:<r@example.net> NOTIFY=NEVER")
e = c.docmd("RCPT TO:<r@example.net> ORCPT=rfc822;r@example.net")
sys.exit(0 if all(x[0] == 555 and x[1].startswith(b"5.5.4") for x in (a, b, d, e)) else 1)
EOF
}
check "RET, ENVID, NOTIFY and ORCPT get 555 5.5.4" dsn_params

# ---- max_pending_bytes: what all sessions hold together ---------------------
pending_bytes() {
	$PY - "$SMTP_PORT" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
def session():
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    def cmd(line):
        s.sendall(line + b"\r\n")
        r = f.readline()
        while r[3:4] == b"-":
            r = f.readline()
        return r
    f.readline()
    cmd(b"EHLO t.test"); cmd(b"MAIL FROM:<s@example.org>"); cmd(b"RCPT TO:<r@[127.0.0.1]>")
    assert cmd(b"DATA").startswith(b"354")
    return s, f
chunk = (b"w" * 78 + b"\r\n") * 1000          # 80 KB
a, fa = session()
a.sendall(b"Subject: a\r\n\r\n" + chunk * 11)   # 880 KB held, not ended
time.sleep(0.5)
b, fb = session()
b.sendall(b"Subject: b\r\n\r\n" + chunk * 3 + b".\r\n")
rb = fb.readline()
a.sendall(b".\r\n")
ra = fa.readline()
c, fc = session()
c.sendall(b"Subject: c\r\n\r\nsmall\r\n.\r\n")
rc = fc.readline()
print(rb, ra, rc, file=sys.stderr)
sys.exit(0 if rb.startswith(b"452 4.3.1") and ra.startswith(b"250") and rc.startswith(b"250") else 1)
EOF
}
check "past max_pending_bytes a message gets 452 4.3.1; the others are taken" pending_bytes

# ---- a full disk -------------------------------------------------------------
op queue pause >/dev/null
op queue drop --all >/dev/null
printf 'Subject: due\n\nretried while the disk is full\n' | op send -f s@example.org "due@[127.0.0.1]"
DUE=$(op queue list --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
op queue resume >/dev/null
attempts() { op queue show "$DUE" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["recipients"][0]["attempts"])'; }
wait_until 10 bash -c "[ \$(op() { '$OUTPOST' -c '$CONF' \"\$@\"; }; op queue show $DUE --json | grep -o '\"attempts\": [0-9]*' | grep -o '[0-9]*') -ge 2 ]"
# fill the file system, WAL included: the next commits need pages that are not there
dd if=/dev/zero of="$DISK/filler" bs=64k 2>/dev/null || true
submit_big() { # the reply to a 300 KB message
	$PY - "$SMTP_PORT" <<'EOF'
import smtplib, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
try:
    c.sendmail("s@example.org", ["full@[127.0.0.1]"], b"Subject: f\r\n\r\n" + (b"f" * 78 + b"\r\n") * 4000)
    print("250")
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print(list(e.recipients.values())[0][0])
except smtplib.SMTPSenderRefused as e:
    print(e.smtp_code, e.smtp_error.decode())
EOF
}
R1=$(submit_big)
check "disk full: a submission is refused with 451 4.3.0, not acknowledged ($R1)" \
	bash -c "case '$R1' in 451*) true;; *) false;; esac"
LINES0=$(wc -l <"$E2E_DIR/outpost.log")
CPU0=$(awk '{print $14 + $15}' /proc/"$DAEMON_PID"/stat)
sleep 5
LINES1=$(wc -l <"$E2E_DIR/outpost.log")
CPU1=$(awk '{print $14 + $15}' /proc/"$DAEMON_PID"/stat)
check "5 s of a full disk: few log lines ($((LINES1 - LINES0)))" test $((LINES1 - LINES0)) -lt 40
check "5 s of a full disk: little CPU ($((CPU1 - CPU0)) ticks of $(getconf CLK_TCK)/s)" \
	test $((CPU1 - CPU0)) -lt 50
check "the status says the spool cannot be written" field_is spool_writable False
check "the write failures are counted" \
	bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep -qE '^outpost_spool_write_errors_total [1-9]'"
R2=$(submit_big)
check "still full: the next submission gets 451 4.3.0 ($R2)" bash -c "case '$R2' in 451*4.3.0*) true;; *) false;; esac"
rm -f "$DISK/filler"
check "space is back: the spool is writable again without a restart" \
	wait_until 15 field_is spool_writable True
R3=$(submit_big)
check "a submission is acknowledged again ($R3)" test "$R3" = 250
N0=$(attempts)
check "delivery attempts resume" wait_until 15 bash -c "[ \$(op() { '$OUTPOST' -c '$CONF' \"\$@\"; }; op queue show $DUE --json | grep -o '\"attempts\": [0-9]*' | grep -o '[0-9]*') -gt $N0 ]"

check "every acknowledged message is there" \
	test "$(op queue list --json | grep -o 'full@\[127.0.0.1\]' | wc -l)" = 1
check "spool check: 0 problems" op spool check

# ---- a read-only file system -------------------------------------------------
# (a file system with files open for writing cannot be remounted read-only:
# the daemon meets it at start)
e2e_stop
mount -o remount,ro "$DISK"
check "read-only spool: the daemon refuses to start, saying why" \
	bash -c "! timeout 10 '$OUTPOST' serve -c '$CONF' >'$E2E_DIR/ro.out' 2>&1 && grep -qi 'read-only\|readonly\|cannot' '$E2E_DIR/ro.out'"
check "read-only spool: send (no daemon) fails with a reason" \
	bash -c "! (printf 'Subject: ro\n\nx\n' | '$OUTPOST' -c '$CONF' send -f s@example.org r@example.net 2>'$E2E_DIR/ro.err') && test -s '$E2E_DIR/ro.err'"
mount -o remount,rw "$DISK"
e2e_start
check "writable again: the daemon starts with the spool as it was" \
	test "$(op queue list --json | grep -o 'full@\[127.0.0.1\]' | wc -l)" = 1

# ---- send with no daemon: straight into the spool, the same checks ----------
e2e_stop
check "no daemon: send refuses a NUL octet" sends "554 5.6.0" "$NUL"
check "no daemon: send refuses a 5,000-octet line" sends "554 5.6.0" "$LONGLINE"
check "no daemon: send refuses a message over max_message_size" sends "552 5.3.4" "$BIG"
check "no daemon: send refuses a bare CR" sends "554 5.6.0" "$BARECR"
printf 'Subject: offline\n\nqueued with no daemon\n' | op send -f s@example.org "offline@[127.0.0.1]"
check "no daemon: a good message is queued by its owner (exit 0)" test $? = 0
e2e_start
check "the daemon finds it" bash -c "'$OUTPOST' -c '$CONF' queue list --json | grep -q offline@"
e2e_stop
e2e_finish
