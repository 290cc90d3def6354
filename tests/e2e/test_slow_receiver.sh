#!/bin/bash
# A slow receiver that answers in waves: smtp-sink -w 1 answers DATA at the
# next whole second, every connection waiting at once. Each wave ends every
# attempt together; the next wave must reuse those connections (idle ones of
# the same destination are not closed to make room for its own attempts,
# deliver/pool.h) and keep the concurrency the destination had reached (its
# window is not forgotten between waves, deliver/scheduler.c).
source "$(dirname "$0")/lib.sh"
command -v smtp-sink >/dev/null || { echo "missing smtp-sink (scripts/deps.sh test)"; exit 1; }
chmod 755 "$E2E_DIR"
SINK_PORT=$(free_port)
N=300
PER_DEST=30
smtp-sink -u nobody -w 1 127.0.0.1:$SINK_PORT 1000 >"$E2E_DIR/sink.out" 2>&1 &
E2E_PIDS+=("$!")
e2e_config <<EOF2
[delivery]
paused = yes
port = $SINK_PORT
max_connections = $PER_DEST
max_connections_per_destination = $PER_DEST
connection_max_messages = 1000
EOF2
e2e_start
$PY - "$SMTP_PORT" "$N" <<'EOF2'
import smtplib, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
with smtplib.SMTP("127.0.0.1", port) as s:
    for i in range(n):
        s.sendmail("s@example.test", ["r%d@[127.0.0.1]" % i], "Subject: %d\r\n\r\nx\r\n" % i)
EOF2
metric() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v k="$1" '$1 == k {s += $2} END {print s + 0}'; }
delivered() { [ "$(metric 'outpost_delivery_recipients_total{result="delivered"}')" -ge "$N" ]; }
T0=$SECONDS
op queue resume >/dev/null
# at least PER_DEST - 5 per second once the window is open: N / 25 = 12 s, and
# the first seconds of slow start
check "$N messages delivered within 30 s (at one message per connection and second)" wait_until 30 delivered
echo "# took $((SECONDS - T0)) s"
CONNS=$(metric 'outpost_delivery_connections_total{result="ok"}')
check "connections are reused across waves: $CONNS connections for $N messages (at most $((PER_DEST + 10)))" \
	test "$CONNS" -le $((PER_DEST + 10))
check "no recipient deferred" test "$(metric 'outpost_delivery_recipients_total{result="deferred"}')" -eq 0
e2e_stop
e2e_finish
