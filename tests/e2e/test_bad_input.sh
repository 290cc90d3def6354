#!/bin/bash
# Hostile and malformed SMTP input: a table of raw-socket rows (bad_input.py)
# against a daemon with small limits; then the daemon must still run and
# answer, its memory must have stayed bounded and the spool must hold exactly
# the one message a row meant to queue.
source "$(dirname "$0")/lib.sh"
HERE=$(dirname "$0")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=outpost.test" -keyout "$E2E_DIR/key.pem" -out "$E2E_DIR/cert.pem" 2>/dev/null
echo "alice:$(openssl passwd -6 -salt 8sFt66rZ 's3cret pass')" >"$E2E_DIR/users"
# The limits below are mirrored at the top of bad_input.py.
e2e_config <<EOF
tls_cert = $E2E_DIR/cert.pem
tls_key = $E2E_DIR/key.pem
users_file = $E2E_DIR/users
max_recipients = 100
max_errors = 10
max_line_length = 998
max_message_size = 1M
max_connections_per_ip = 20
max_connections = 30
max_auth_failures = 3
idle_timeout = 2s
[delivery]
paused = yes
EOF
e2e_start

# Sanitizer builds carry shadow memory and a quarantine of freed blocks (256 MiB
# by default): a looser absolute bound there, and no growth check.
RSS_LIMIT_KB=${RSS_LIMIT_KB:-65536}
GROWTH_LIMIT_KB=${GROWTH_LIMIT_KB:-8192}
case "$(ldd "$OUTPOST" 2>/dev/null)" in
*libasan*) RSS_LIMIT_KB=$((384 * 1024)) GROWTH_LIMIT_KB=0 ;;
esac

BEFORE=$(queue_count)
QUEUED=$E2E_DIR/queued.txt
STATUS=none
while IFS= read -r line; do
	case $line in
	"ok   - "*) pass "${line#ok   - }" ;;
	"FAIL - "*) fail "${line#FAIL - }" ;;
	"#status "*) STATUS=${line#\#status } ;;
	*) echo "$line" ;;
	esac
done < <($PY "$HERE/bad_input.py" "$SMTP_PORT" "$ADMIN_PORT" "$DAEMON_PID" "$QUEUED" \
	"$RSS_LIMIT_KB" "$GROWTH_LIMIT_KB" 2>&1
	echo "#status $?")
check "bad_input.py ran to its end" test "$STATUS" = 0

check "the daemon is still running" kill -0 "$DAEMON_PID"
check "the daemon still answers EHLO" bash -c "$PY $HERE/smtp_client.py $SMTP_PORT ehlo | grep -q PIPELINING"
RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
check "the daemon's VmRSS ($RSS kB) is under $RSS_LIMIT_KB kB" test "$RSS" -lt "$RSS_LIMIT_KB"

AFTER=$(queue_count)
EXPECTED=$(wc -l <"$QUEUED")
check "the spool grew by exactly the $EXPECTED message(s) meant to queue ($BEFORE -> $AFTER)" \
	test "$AFTER" -eq $((BEFORE + EXPECTED))
ADDRS=$(op queue list --json | $PY -c 'import json,sys; print("\n".join(sorted(r["address"] for m in json.load(sys.stdin) for r in m["recipients"])))')
check "the spool holds only the expected recipients" test "$ADDRS" = "$(sort "$QUEUED")"
check "the injection after STARTTLS was logged and discarded" grep -q "event=smtp_starttls_injection" "$E2E_DIR/outpost.log"
check "no sanitizer report in the daemon log" bash -c "! grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' '$E2E_DIR/outpost.log'"

e2e_stop_clean
e2e_finish
