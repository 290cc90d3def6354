#!/bin/bash
# The scheduler end to end: attempts, backoff, max attempts -> failed,
# pause/resume, hold, kick. Recipients are IP literals of a loopback port
# where nothing listens, so every attempt is a temporary failure.
source "$(dirname "$0")/lib.sh"

DEAD_PORT=$(free_port)
e2e_config <<EOF
[delivery]
paused = yes
first_retry = 1s
max_attempts = 3
port = $DEAD_PORT
delay_notice_after = 0
EOF
e2e_start

rcpt_field() { # rcpt_field ADDRESS FIELD
	op queue list --state "${3:-}" --json 2>/dev/null | $PY -c "
import json,sys
for m in json.load(sys.stdin):
    for r in m['recipients']:
        if r['address'] == '$1': print(r['$2'])"
}
show_field() { # show_field ID ADDRESS FIELD
	op queue show "$1" --json | $PY -c "
import json,sys
m = json.load(sys.stdin)
print([r for r in m['recipients'] if r['address'] == '$2'][0]['$3'])"
}
field_is() { [ "$(show_field "$1" "$2" "$3")" = "$4" ]; }
field_ge() { [ "$(show_field "$1" "$2" "$3")" -ge "$4" ]; }

printf 'Subject: s\n\nx\n' | op send -f '' one@[127.0.0.1]
ID=$(op queue list --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sleep 1.5
check "paused: no attempt is made" test "$(show_field "$ID" one@[127.0.0.1] attempts)" = 0
op queue resume >/dev/null
check "resumed: the first attempt runs at once" wait_for 3 field_ge "$ID" one@[127.0.0.1] attempts 1
check "a failed attempt leaves the recipient deferred with its error" \
	bash -c "[ '$(show_field "$ID" one@[127.0.0.1] state)' = deferred ] || [ '$(show_field "$ID" one@[127.0.0.1] attempts)' -ge 2 ]"
check "the last error says why" bash -c "op() { '$OUTPOST' -c '$CONF' \"\$@\"; }; op queue show $ID --json | grep -q 'refused'"
check "after max_attempts (3) the recipient has failed" wait_for 8 field_is "$ID" one@[127.0.0.1] state failed
check "exactly 3 attempts were made" test "$(show_field "$ID" one@[127.0.0.1] attempts)" = 3
check "a failed message leaves the queue listing" test "$(queue_count)" -eq 0
check "it is still visible with --state failed" test "$(rcpt_field one@[127.0.0.1] attempts failed)" = 3

# hold: a held recipient is not attempted; release brings it back
op queue pause >/dev/null
printf 'Subject: h\n\nx\n' | op send -f '' held@[127.0.0.1]
HID=$(op queue list --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
op queue hold "$HID" >/dev/null
op queue resume >/dev/null
sleep 1.5
check "a held recipient is not attempted" test "$(show_field "$HID" held@[127.0.0.1] attempts)" = 0
check "held state is shown" test "$(show_field "$HID" held@[127.0.0.1] state)" = held
op queue release "$HID" >/dev/null
check "released, it is attempted" wait_for 3 field_ge "$HID" held@[127.0.0.1] attempts 1

# the timing of the schedule: attempts at 0, +1s, +2s after that
T0=$(date +%s.%N)
printf 'Subject: t\n\nx\n' | op send -f '' timing@[127.0.0.1]
TID=$(op queue list --json | $PY -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin) if m["recipients"][0]["address"]=="timing@[127.0.0.1]"][0])')
wait_for 10 field_is "$TID" timing@[127.0.0.1] state failed || true
T1=$(date +%s.%N)
ELAPSED=$($PY -c "print(round($T1 - $T0, 1))")
check "three attempts with 1s then 2s waits take about 3s (took ${ELAPSED}s)" \
	$PY -c "import sys; sys.exit(0 if 2.7 <= $ELAPSED <= 6 else 1)"

check "/metrics counts attempts by result" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep -q 'outpost_delivery_recipients_total{result=\"failed\"} [1-9]'"
check "/metrics shows recipients by state" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep -q 'outpost_queue_recipients{state=\"failed\"} 3'"
e2e_stop
e2e_finish
