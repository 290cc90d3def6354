#!/bin/bash
# The randomized soak (soak.py): submitters, scripted MX hosts that accept,
# defer, reject, stall and drop, admin actions, SIGTERM and SIGKILL restarts,
# then the reckoning. SOAK_SECONDS sets its length (90 s by default, for CI;
# run it for 1800 s or more before a release).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
MX_PORT=$(free_port)
MX_DIR=$E2E_DIR/mx
/usr/bin/python3 "$HERE/soak_mx.py" "$MX_PORT" "$MX_DIR" >"$E2E_DIR/mx.out" 2>&1 &
E2E_PIDS+=("$!")
for _ in $(seq 1 100); do grep -q ready "$E2E_DIR/mx.out" 2>/dev/null && break; sleep 0.05; done
e2e_config <<EOF2
[server]
log_level = info
[delivery]
port = $MX_PORT
first_retry = 2s
max_attempts = 1000
delay_notice_after = 0
connect_timeout = 2s
command_timeout = 5s
data_timeout = 5s
EOF2
if $PY "$HERE/soak.py" "$OUTPOST" "$CONF" "$DATA" "$SMTP_PORT" "$ADMIN_PORT" "$MX_PORT" "$MX_DIR" \
	"${SOAK_SECONDS:-90}" >"$E2E_DIR/soak.out" 2>&1; then
	pass "the soak's reckoning"
else
	fail "the soak's reckoning"
fi
cat "$E2E_DIR/soak.out"
e2e_finish
