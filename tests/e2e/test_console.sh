#!/bin/bash
# The web console (docs/console.md) in a real browser: headless Chromium
# driven by Selenium (console_browser.py) against the daemon's admin
# listener. A [admin] users_file user logs in (a session: docs/api.md,
# "Sessions"), sees a queued message while delivery is paused, holds,
# releases, kicks and drops, pauses and resumes delivery, opens a message
# and its attempts (one delivered over STARTTLS to an aiosmtpd receiver, one
# deferred), searches the history, runs a TLS check; a wrong password is
# refused, and a raw request with the session cookie but without the CSRF
# token is refused. Each page is photographed at phone (390x844) and desktop
# (1366x900) sizes into $E2E_DIR/screenshots: the scratch directory is kept
# for them unless E2E_KEEP is set empty. Peers on 127.0.9.x.
#
# Every check runs against the daemon itself: its sessions, its paged queue
# listing (walked two messages a page) and its history (the attempts made
# here: one delivered, the others deferred by a host that refuses).
: "${E2E_KEEP=1}"
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

for tool in chromium chromedriver openssl; do
	command -v "$tool" >/dev/null || { echo "$tool is not installed (scripts/deps.sh test)"; exit 1; }
done
$PY -c 'import selenium, aiosmtpd' || { echo "python3-selenium or python3-aiosmtpd is missing"; exit 1; }

MX_PORT=$(free_port)
C=$E2E_DIR/certs
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj /CN=mx.console.test -keyout "$C/mx.key" -out "$C/mx.crt" 2>/dev/null
# A receiver with STARTTLS (a delivered attempt with its TLS outcome);
# nothing listens on 127.0.9.3 (deferred attempts).
$PY "$HERE/requiretls_mx.py" serve "$E2E_DIR/rx" \
	"tls,127.0.9.2,$MX_PORT,no-requiretls,$C/mx.crt,$C/mx.key" >"$E2E_DIR/rx.out" 2>&1 &
E2E_PIDS+=("$!")

PASSWORD=console-secret-1
printf 'alice:%s\n' "$(openssl passwd -6 "$PASSWORD")" >"$E2E_DIR/users"
printf '[admin]\nusers_file = %s\n[delivery]\npaused = yes\nport = %s\nfirst_retry = 1h\nconnect_timeout = 2s\n' \
	"$E2E_DIR/users" "$MX_PORT" | e2e_config
e2e_start
wait_until 10 $PY -c "import socket; socket.create_connection(('127.0.9.2', $MX_PORT), 1)" ||
	{ echo "the receiver did not start:"; cat "$E2E_DIR/rx.out"; exit 1; }

send() { # send RCPT SUBJECT: queues a message, prints its queue id
	printf 'Subject: %s\nFrom: sender@outpost.test\n\nhello\n' "$2" |
		op send -f sender@outpost.test "$1" >/dev/null
	op queue list --json --recipient "$1" | $PY -c 'import json, sys; print(json.load(sys.stdin)[-1]["id"])'
}
queue_messages() { # six messages, delivery paused
	M_TLS=$(send 'tls@[127.0.9.2]' 'console over TLS')
	M_DEAD=$(send 'dead@[127.0.9.3]' 'console to a dead host')
	M_HOLD=$(send 'held@[127.0.9.3]' 'console held')
	for i in 1 2 3; do send "more$i@[127.0.9.3]" "console filler $i" >/dev/null; done
}
SHOTS=$E2E_DIR/screenshots
mkdir -p "$SHOTS"
queue_messages
# The page's checks, counted here.
while IFS= read -r line; do
	case $line in
	"ok   - "*) pass "${line#ok   - }" ;;
	"FAIL - "*) fail "${line#FAIL - }" ;;
	*) echo "$line" ;;
	esac
done < <($PY "$HERE/console_browser.py" --url "http://127.0.0.1:$ADMIN_PORT" \
	--user alice --password "$PASSWORD" --shots "$SHOTS" \
	--tls-id "$M_TLS" --dead-id "$M_DEAD" --hold-id "$M_HOLD" 2>>"$E2E_DIR/browser.err")
[ -s "$E2E_DIR/browser.err" ] && { echo "browser script stderr:"; tail -20 "$E2E_DIR/browser.err"; }

n=0
for page in login overview queue message message-deferred history tls; do
	for size in phone desktop; do
		[ -s "$SHOTS/$page-$size.png" ] && n=$((n + 1))
	done
done
[ "$n" -eq 14 ] && pass "screenshots of 7 pages at 390x844 and 1366x900 in $SHOTS" ||
	fail "screenshots: $n of 14 in $SHOTS"
echo "screenshots:"
find "$SHOTS" -name '*.png' | sort | sed 's|^|  |'
e2e_stop
e2e_finish
