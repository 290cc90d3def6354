#!/bin/bash
# Admin actions, attempts and stops that race each other, with the
# interleaving forced rather than hoped for: the test holds SQLite's write
# lock (spool_lock.py) so that writer jobs wait in an order it chooses, and
# a scripted MX (hostile_mx.py gate) holds an attempt open until told.
#   127.0.0.2 gate: answers the end of each message's data only when told
#   127.0.0.3 smtp-sink "ok": takes everything
#   127.0.0.4 smtp-sink "dsn": the senders' address literal, so it gets DSNs
#   127.0.0.5 gate2: another gate, for connections set up before the begin
# Recipients are address literals: no DNS is involved.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers.sh"

dp_pick_port
dp_python gate 127.0.0.2 gate
dp_sink ok 127.0.0.3
dp_sink dsn 127.0.0.4
dp_python gate2 127.0.0.5 gate
dp_ready

e2e_config <<EOF
[delivery]
paused = yes
port = $DP_PORT
first_retry = 2s
max_connections = 3
connection_max_messages = 1
delay_notice_after = 0
connect_timeout = 2s
command_timeout = 30s
data_timeout = 30s
EOF
e2e_start

submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" "$@"; }
GATE=$PEERS/gate
GATE2=$PEERS/gate2
# the scripted MX NAME (gate, gate2): its notes matching PATTERN, and a go
gate_notes() { cat "$PEERS/$1/connections.log" 2>/dev/null | grep -c "$2"; }
gate_count_is() { [ "$(gate_notes "$1" "$2")" = "$3" ]; }
gate_open() { printf '%s' "${2:-}" >"$PEERS/$1/go.tmp" && mv "$PEERS/$1/go.tmp" "$PEERS/$1/go"; }
# deliveries smtp-sink NAME took for RCPT (complete dumps naming it)
sink_got() {
	local n=0 f
	for f in "$PEERS/$1/dump/"m.*; do
		[ -s "$f" ] && grep -qF "X-Rcpt-Args: <$2>" "$f" && n=$((n + 1))
	done
	echo "$n"
}
sink_got_is() { [ "$(sink_got "$1" "$2")" = "$3" ]; }
rcpt_state() { # rcpt_state ID ADDRESS
	op queue show "$1" --json 2>/dev/null | $PY -c "
import json, sys
print([r for r in json.load(sys.stdin)['recipients'] if r['address'] == sys.argv[1]][0]['state'])" "$2"
}
state_is() { [ "$(rcpt_state "$1" "$2")" = "$3" ]; }

# ---- 1. a recipient held while its attempt's start waits in the writer ------
# The scheduler picks it; the hold commits first; the begin then skips it.
# Before, its id stayed in the scheduler's in-flight set for ever: released,
# it was never attempted again. Meanwhile the attempt looks up and connects
# (docs/queue.md, "Attempt bookkeeping"); it ends the connection without a
# MAIL. Each connection carries one message here, so each attempt dials anew.
sleep 4 # the first housekeeping job runs 3 s after the start: let it pass
wait_until 10 field_is commits_pending 0
A=$(submit s@[127.0.0.4] a@[127.0.0.5])
spool_lock
op queue hold "$A" >/dev/null &
HOLD=$!
check "the hold waits for the spool" wait_until 5 field_is commits_pending 1
op queue resume >/dev/null
check "the scheduler picked the recipient (its begin waits behind the hold)" \
	wait_until 5 field_is picked 1
check "the attempt connects while its begin waits" wait_until 10 gate_count_is gate2 "conn 1 ehlo" 1
spool_unlock
wait "$HOLD"
check "the picked set empties once the begin is done" wait_until 5 field_is picked 0
sleep 1
check "the connection ended without a MAIL" gate_count_is gate2 "conn 1 mail" 0
check "the recipient is held, not attempted" state_is "$A" "a@[127.0.0.5]" held
op queue release "$A" >/dev/null
check "released, it goes in an attempt of its own" wait_until 10 gate_count_is gate2 waiting 1
gate_open gate2
check "and is delivered (nothing stale kept it back)" \
	wait_until 10 state_is "$A" "a@[127.0.0.5]" delivered

# ---- 1b. the connection is set up while the begin waits; MAIL waits for it --
op queue pause >/dev/null
D=$(submit s@[127.0.0.4] d@[127.0.0.5])
wait_until 10 field_is commits_pending 0
spool_lock
op queue resume >/dev/null
check "the scheduler picked the recipient (its begin waits for the spool)" \
	wait_until 5 field_is picked 1
check "the connection is set up meanwhile" wait_until 10 gate_count_is gate2 "conn 3 ehlo" 1
sleep 1
check "no MAIL while the begin is not committed" gate_count_is gate2 "conn 3 mail" 0
spool_unlock
check "once it is, the message goes" wait_until 10 gate_count_is gate2 "conn 3 waiting" 1
gate_open gate2
check "and is delivered" wait_until 10 state_is "$D" "d@[127.0.0.5]" delivered
check "its attempt is counted once" \
	test "$(op queue show "$D" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["recipients"][0]["attempts"])')" = 1
check "gate2 took two messages in all" test "$(ls "$GATE2"/msg.* | wc -l)" = 2

# ---- 2. a hold during the attempt: the delivery is kept, not sent again ----
B=$(submit s@[127.0.0.4] b@[127.0.0.2])
check "the attempt reached the end of the data" wait_until 10 gate_count_is gate waiting 1
op queue hold "$B" >/dev/null
gate_open gate
check "the delivery is recorded although the recipient was held meanwhile" \
	wait_until 10 state_is "$B" "b@[127.0.0.2]" delivered
op queue release "$B" >/dev/null
sleep 3 # first_retry is 2 s: a recipient released as deferred would be retried now
check "it is delivered exactly once" test "$(ls "$GATE"/msg.* 2>/dev/null | wc -l)" = 1
check "no further attempt reached the gate" gate_count_is gate waiting 1

# ---- 3. a drop during the attempt: the outcome is its, nothing else -------
C=$(submit s-drop@[127.0.0.4] c@[127.0.0.2])
check "the second attempt reached the end of the data" wait_until 10 gate_count_is gate waiting 2
op queue drop "$C" >/dev/null
check "a dropped recipient in flight is no longer listed" \
	bash -c "! '$OUTPOST' -c '$CONF' queue list --json | grep -q 'c@\[127.0.0.2\]'"
gate_open gate "550 5.1.1 no such user"
check "the attempt ended with the 550" wait_until 10 gate_count_is gate "replied 550" 1
sleep 2
check "no DSN for a dropped recipient" bash -c "! grep -rqs 's-drop@' '$PEERS/dsn/dump/'"
check "the message is gone" bash -c "! '$OUTPOST' -c '$CONF' queue show $C >/dev/null 2>&1"
check "spool check finds no orphan (delivery log included)" op spool check

# ---- 4. kicked recipients in flight do not hide other due mail -------------
# 40 recipients fill two attempts (the due list is read 22 and 20 at a time
# with max_connections 3) that wait at the gate; once kicked, they are the
# earliest "due" recipients, more than one read of the due list holds.
RCPTS=$(for i in $(seq 1 40); do printf 'k%d@[127.0.0.2],' "$i"; done)
K=$(submit s@[127.0.0.4] "${RCPTS%,}")
check "40 recipients in two attempts wait at the gate" wait_until 10 gate_count_is gate waiting 4
op queue kick --all >/dev/null
M=$(submit s@[127.0.0.4] m@[127.0.0.3])
check "another domain is still delivered (kicked recipients in flight are not due)" \
	wait_until 10 sink_got_is ok "m@[127.0.0.3]" 1
gate_open gate
wait_until 10 gate_count_is gate replied 3
gate_open gate
# either waiting attempt may take either go: wait for both replies, then for
# a recipient of each attempt (k1 is read first, k40 last)
check "both attempts were answered" wait_until 10 gate_count_is gate replied 4
ends_delivered() { state_is "$K" "k1@[127.0.0.2]" delivered && state_is "$K" "k40@[127.0.0.2]" delivered; }
check "the 40 are delivered" wait_until 10 ends_delivered
check "each of them once" test "$(grep -c "^RCPT TO:<k" "$GATE"/msg.* | awk -F: '{s += $2} END {print s}')" = 40

# ---- 5. a stop with a commit pending: the client still gets its 250 --------
wait_until 10 field_is commits_pending 0
spool_lock
$PY - "$SMTP_PORT" >"$E2E_DIR/stop_client.out" 2>&1 <<'EOF' &
import smtplib, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
try:
    c.sendmail("s@[127.0.0.4]", ["stop@[127.0.0.3]"], b"Subject: stop\r\n\r\nbody\r\n")
    print("ACCEPTED")
except Exception as e:
    print("FAILED", type(e).__name__, e)
EOF
CLIENT=$!
check "the message's commit waits for the spool" wait_until 10 field_is commits_pending 1
kill -TERM "$DAEMON_PID"
sleep 0.5
check "the daemon is still draining" kill -0 "$DAEMON_PID"
spool_unlock
wait "$CLIENT"
check "the client got its 250 before the daemon went" grep -q ACCEPTED "$E2E_DIR/stop_client.out"
wait "$DAEMON_PID" 2>/dev/null || true
forget_pid "$DAEMON_PID"
check "the daemon has stopped" bash -c "! kill -0 $DAEMON_PID 2>/dev/null"
e2e_start
check "after the restart the message is queued exactly once" \
	test "$(op queue list --json | grep -o 'stop@\[127.0.0.3\]' | wc -l)" = 1

# ---- 6. the counts /status shows are the spool's, exactly ------------------
op queue resume >/dev/null
wait_until 10 sink_got_is ok "stop@[127.0.0.3]" 1 || true
COUNTS_DB=$(sqlite3 "$DATA/spool.db" "SELECT state, count(*) FROM recipients GROUP BY state" |
	sort | tr '\n' ' ')
COUNTS_API=$(api /api/v1/status | $PY -c "
import json, sys
names = ['queued', 'held', 'deferred', 'delivered', 'failed']
r = json.load(sys.stdin)['recipients']
print(' '.join('%d|%d' % (i, r[n]) for i, n in enumerate(names) if r[n]))")
check "recipients by state: the API ($COUNTS_API) equals the table ($COUNTS_DB)" \
	test "$COUNTS_API " = "$COUNTS_DB"
check "nothing is left picked" field_is picked 0

e2e_stop
e2e_finish
