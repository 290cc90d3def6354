#!/bin/bash
# Reload (SIGHUP) and the sd_notify protocol (docs/install.md): the daemon
# runs as systemd would run it, with NOTIFY_SOCKET naming a datagram socket
# that notify_listen.py holds. READY=1 comes once the listeners accept;
# SIGHUP makes the daemon read its file again: log_level and a [delivery]
# limit change at once (seen in the log and in the attempts running), a key
# that needs a restart is only reported, a broken file changes nothing;
# each reload says RELOADING=1 then READY=1; SIGTERM says STOPPING=1.
# Peers on 127.0.8.0/24: outpost on .1, a gated MX (hostile_mx.py) on .2.
source "$(dirname "$0")/lib.sh"

ADDR=127.0.8.1
MX=127.0.8.2
port_on() { $PY -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
SMTP_PORT=$(port_on $ADDR)
ADMIN_PORT=$(port_on $ADDR)
MX_PORT=$(port_on $MX)
NOTIFY_LOG=$E2E_DIR/notify.log
MXDIR=$E2E_DIR/mx
mkdir -p "$MXDIR"

# write_conf LEVEL PER_DESTINATION [EXTRA]: the whole file, as an operator edits it
write_conf() {
	cat >"$CONF.new" <<EOC
[server]
hostname = outpost.test
data_dir = $DATA
log_level = $1
[submission]
listen = $ADDR:$SMTP_PORT
${3:-}
[admin]
listen = $ADDR:$ADMIN_PORT
[dns]
nameserver = 127.0.8.3:53
[delivery]
port = $MX_PORT
max_connections_per_destination = $2
first_retry = 1m
[mtasts]
enabled = no
EOC
	mv "$CONF.new" "$CONF"
}

api() { curl -sf -H "Authorization: Bearer $(cat "$DATA/admin.token")" "http://$ADDR:$ADMIN_PORT$1"; }
in_flight() { api /api/v1/status | $PY -c 'import json,sys; print(json.load(sys.stdin)["in_flight"])'; }
in_flight_is() { [ "$(in_flight)" = "$1" ]; }
notified() { grep -q -- "$1" "$NOTIFY_LOG"; }
notified_times() { [ "$(grep -c -- "$1" "$NOTIFY_LOG")" -ge "$2" ]; }
logged() { grep -q -- "$1" "$E2E_DIR/outpost.log"; }
logged_after() { tail -n +"$1" "$E2E_DIR/outpost.log" | grep -q -- "$2"; }
log_lines() { wc -l <"$E2E_DIR/outpost.log"; }
# A command the listener refuses: logged as smtp_reject, at level debug only.
bad_command() {
	$PY - "$ADDR" "$SMTP_PORT" <<'EOP'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
f = s.makefile("rb")
f.readline()
s.sendall(b"FROB\r\n"); f.readline()
s.sendall(b"QUIT\r\n"); f.readline()
EOP
}
hup() { kill -HUP "$DAEMON_PID"; }

# ---- start under a notify socket
$PY "$E2E_HERE/notify_listen.py" "$E2E_DIR/notify.sock" "$NOTIFY_LOG" "$ADDR:$SMTP_PORT" "$ADDR:$ADMIN_PORT" &
E2E_PIDS+=($!)
wait_until 5 test -S "$E2E_DIR/notify.sock"
$PY "$E2E_HERE/hostile_mx.py" "$MX" "$MX_PORT" gate "$MXDIR" >"$MXDIR/out" 2>&1 &
E2E_PIDS+=($!)
write_conf info 1
NOTIFY_SOCKET=$E2E_DIR/notify.sock "$OUTPOST" serve -c "$CONF" >>"$E2E_DIR/outpost.log" 2>&1 &
DAEMON_PID=$!
E2E_PIDS+=("$DAEMON_PID")
check "READY=1 sent at start" wait_until 10 notified "^READY=1"
check "the submission listener accepted when READY=1 came" grep -q "accept $ADDR:$SMTP_PORT yes" "$NOTIFY_LOG"
check "the admin listener accepted when READY=1 came" grep -q "accept $ADDR:$ADMIN_PORT yes" "$NOTIFY_LOG"
check "READY=1 came after the listeners accepted" \
	bash -c "grep -n . '$NOTIFY_LOG' | grep -m1 'READY=1' | cut -d: -f1 | xargs test 3 -lt"
wait_until 5 test -f "$DATA/admin.token"

# ---- at info: no debug line; one attempt at a time to the gated MX
bad_command
sleep 0.2
check "at log_level info, a refused command is not logged" bash -c "! grep -q 'event=smtp_reject' '$E2E_DIR/outpost.log'"
for i in 1 2 3; do
	printf 'Subject: reload %s\n\nbody\n' "$i" | op send -f a@example.org "r$i@[$MX]" || fail "send $i"
done
check "one attempt runs to the destination (max_connections_per_destination = 1)" wait_until 10 in_flight_is 1
sleep 1.5
check "still one after a while" in_flight_is 1
check "the MX holds one connection" test "$(grep -c waiting "$MXDIR/connections.log" 2>/dev/null)" = 1

# ---- reload: log_level debug, three per destination, a listener change
mark=$(log_lines)
write_conf debug 3 "listen = $ADDR:$(port_on $ADDR)"
hup
check "the reload is logged" wait_until 5 logged_after "$mark" "event=config_reloaded.*needs_restart=1"
check "log_level applied" logged_after "$mark" "event=config_applied key=server.log_level old=info new=debug"
check "the [delivery] limit applied" logged_after "$mark" \
	"event=config_applied key=delivery.max_connections_per_destination old=1 new=3"
check "the listener change waits for a restart" logged_after "$mark" \
	"level=warn event=config_needs_restart key=submission.listen"
check "three attempts run now" wait_until 10 in_flight_is 3
check "the MX holds three connections" wait_until 5 test "$(grep -c waiting "$MXDIR/connections.log")" = 3
check "the old listener still accepts" $PY -c "import socket; socket.create_connection(('$ADDR', $SMTP_PORT), 2)"
bad_command
check "at log_level debug, a refused command is logged" wait_until 5 logged "level=debug event=smtp_reject"
check "RELOADING=1 then READY=1 for the reload" \
	bash -c "grep -A1 '^RELOADING=1' '$NOTIFY_LOG' | grep -q '^READY=1'"

# ---- a broken file: refused, the running configuration stays
mark=$(log_lines)
write_conf error 1 "this line is no setting"
hup
check "a broken file is refused" wait_until 5 logged_after "$mark" "level=error event=config_reload_refused"
check "its error names the line" logged_after "$mark" "event=config_error file=$CONF line=7"
check "nothing of it applied" bash -c "! tail -n +$mark '$E2E_DIR/outpost.log' | grep -q 'event=config_applied'"
mark=$(log_lines)
bad_command
check "log_level is still debug" wait_until 5 logged_after "$mark" "level=debug event=smtp_reject"
check "the attempts keep running" in_flight_is 3
check "the refused reload also ended with READY=1" notified_times "^READY=1" 3

# ---- pause from the file, at reload
write_conf debug 3 "
[delivery]
paused = yes"
# (a second [delivery] section adds to the first)
mark=$(log_lines)
hup
check "paused = yes applied" wait_until 5 logged_after "$mark" "event=delivery_paused"
check "the status says paused" wait_until 5 bash -c "curl -sf -H 'Authorization: Bearer $(cat "$DATA/admin.token")' http://$ADDR:$ADMIN_PORT/api/v1/status | grep -q '\"paused\": *true'"

# ---- stop: STOPPING=1
e2e_stop
check "STOPPING=1 sent at SIGTERM" notified "^STOPPING=1"
check "the daemon stopped cleanly" logged "event=stopped"
e2e_finish
