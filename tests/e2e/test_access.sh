#!/bin/bash
# Who may do what: any local user sends mail through the daemon's local
# socket (which names the user), nobody but the spool's owner reads the
# spool or the admin token, the API wants a credential, /metrics stays open
# to loopback. The unprivileged user is "nobody" (runuser; tests run as root).
source "$(dirname "$0")/lib.sh"
chmod 755 "$E2E_DIR"
DEAD_PORT=$(free_port)
e2e_config <<EOF
[delivery]
paused = yes
port = $DEAD_PORT
EOF
chmod 644 "$CONF"
e2e_start
as_nobody() { runuser -u nobody -- "$@"; }

# ---- the spool and the token are the owner's -------------------------------
check "the admin token exists and is private (0600)" \
	test "$(stat -c %a "$DATA/admin.token")" = 600
check "spool.db is private (0600)" test "$(stat -c %a "$DATA/spool.db")" = 600
check "the data directory lets users reach the socket but not list it (0711)" \
	test "$(stat -c %a "$DATA")" = 711
check "the local socket is open to every user (0666)" \
	test "$(stat -c %a "$DATA/submit.sock")" = 666
check "nobody cannot read spool.db" bash -c "! runuser -u nobody -- cat '$DATA/spool.db' >/dev/null 2>&1"
check "nobody cannot read the WAL either" \
	bash -c "! runuser -u nobody -- cat '$DATA/spool.db-wal' >/dev/null 2>&1"
check "nobody cannot read the admin token" \
	bash -c "! runuser -u nobody -- cat '$DATA/admin.token' >/dev/null 2>&1"

# ---- sending as an ordinary user ------------------------------------------------
printf 'Subject: from nobody\n\nhello\n' | as_nobody "$OUTPOST" -c "$CONF" send -f n@example.org "r@[127.0.0.1]"
check "nobody's send exits 0" test $? = 0
check "the message is queued" bash -c "'$OUTPOST' -c '$CONF' queue list --json | grep -q 'r@\[127.0.0.1\]'"
check "the daemon logs who sent it (SO_PEERCRED)" \
	grep -q "event=message_accepted.*client=local:uid=$(id -u nobody)" "$E2E_DIR/outpost.log"
ID=$(op queue list --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
check "its Received field names the local user" \
	bash -c "'$OUTPOST' -c '$CONF' queue cat $ID | grep -q 'local:uid=$(id -u nobody)'"
check "nobody's queue commands are refused for want of the token" \
	bash -c "! runuser -u nobody -- '$OUTPOST' -c '$CONF' queue list >'$E2E_DIR/nq.out' 2>&1 && grep -q 'admin token' '$E2E_DIR/nq.out'"
check "nobody's send of a message with a NUL is refused like the listener's" \
	bash -c "! (printf 'Subject: x\n\na\0b\n' | runuser -u nobody -- '$OUTPOST' -c '$CONF' send r@example.net 2>'$E2E_DIR/nul.err') && grep -q '554 5.6.0' '$E2E_DIR/nul.err'"

# ---- the API wants a credential -------------------------------------------------
URL=http://127.0.0.1:$ADMIN_PORT
check "GET /api/v1/queue without a credential: 401" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/queue")" = 401
check "GET /api/v1/queue/ID/raw without a credential: 401 (no message content)" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/queue/$ID/raw")" = 401
check "POST /api/v1/queue/drop without a credential: 401, nothing dropped" \
	bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"all\":true}' '$URL/api/v1/queue/drop') = 401 ] && '$OUTPOST' -c '$CONF' queue list --json | grep -q 'r@\[127.0.0.1\]'"
check "a wrong token: 401" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer 0000' "$URL/api/v1/status")" = 401
check "the right token: 200" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$DATA/admin.token")" "$URL/api/v1/status")" = 200
check "a foreign Host header: 403 (DNS rebinding)" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' -H "Authorization: Bearer $(cat "$DATA/admin.token")" "$URL/api/v1/status")" = 403
check "a cross-site Origin on a POST: 403" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Origin: http://evil.example' -H "Authorization: Bearer $(cat "$DATA/admin.token")" -d '{"all":true}' "$URL/api/v1/queue/hold")" = 403
check "/metrics is open to loopback" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")" = 200
check "the failed credentials are logged" grep -q "event=admin_auth_failed" "$E2E_DIR/outpost.log"

# ---- no daemon: only the spool's owner may write it --------------------------
e2e_stop
check "no daemon: nobody's send fails, saying why" \
	bash -c "! (printf 'Subject: x\n\nb\n' | runuser -u nobody -- '$OUTPOST' -c '$CONF' send r@example.net 2>'$E2E_DIR/off.err') && grep -q 'not running' '$E2E_DIR/off.err'"
printf 'Subject: root\n\nb\n' | op send -f root@example.org "root@[127.0.0.1]"
check "no daemon: root's send writes the spool itself" test $? = 0
check "the spool stays private after a direct write" \
	test "$(stat -c %a "$DATA/spool.db")" = 600
e2e_start
check "the daemon finds root's message" \
	bash -c "'$OUTPOST' -c '$CONF' queue list --json | grep -q 'root@\[127.0.0.1\]'"
e2e_stop

# ---- a listener beyond loopback: passwords, and HTTPS -------------------------
WIDE_PORT=$(free_port)
cp "$CONF" "$CONF.loopback"
printf '\n[admin]\nlisten = 0.0.0.0:%s\n' "$WIDE_PORT" >>"$CONF" # added to the loopback one
rc=0
timeout 10 "$OUTPOST" serve -c "$CONF" >"$E2E_DIR/wide.out" 2>&1 || rc=$?
check "a non-loopback admin listener without [admin] users_file refuses to start" \
	bash -c "[ $rc -ne 0 ] && grep -q 'needs \[admin\] users_file' '$E2E_DIR/wide.out'"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=admin.test \
	-keyout "$E2E_DIR/admin.key" -out "$E2E_DIR/admin.crt" 2>/dev/null
printf 'alice:%s\n' "$(openssl passwd -6 secret)" >"$E2E_DIR/admin.users"
cp "$CONF.loopback" "$CONF"
printf '\n[admin]\nlisten = 0.0.0.0:%s\nusers_file = %s\ntls_cert = %s\ntls_key = %s\n' \
	"$WIDE_PORT" "$E2E_DIR/admin.users" "$E2E_DIR/admin.crt" "$E2E_DIR/admin.key" >>"$CONF"
e2e_start
wait_port "$WIDE_PORT"
WIDE=https://127.0.0.1:$WIDE_PORT
login() { curl -sk -D - -o "$E2E_DIR/login.json" -X POST -d "{\"user\":\"alice\",\"password\":\"$1\"}" "$WIDE/api/v1/session"; }
check "over HTTPS a person logs in: 200, a Secure HttpOnly SameSite=Strict cookie" \
	bash -c "$(declare -f login); WIDE='$WIDE' E2E_DIR='$E2E_DIR'; login secret | grep -qi '^set-cookie: outpost_session=[0-9a-f]\{64\}; Path=/; HttpOnly; SameSite=Strict; Max-Age=[0-9]*; Secure'"
check "a wrong password: 401" \
	test "$(curl -sk -o /dev/null -w '%{http_code}' -X POST -d '{"user":"alice","password":"nope"}' "$WIDE/api/v1/session")" = 401
check "plain HTTP on the HTTPS listener gets no answer" \
	bash -c "! curl -s -m 3 -o /dev/null 'http://127.0.0.1:$WIDE_PORT/api/v1/status'"
check "the loopback listener still speaks plain HTTP to the CLI" \
	bash -c "'$OUTPOST' -c '$CONF' queue list --json >/dev/null"
check "logins are logged" grep -q "event=admin_login user=alice" "$E2E_DIR/outpost.log"
e2e_stop
e2e_finish
