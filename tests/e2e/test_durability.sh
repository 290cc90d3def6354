#!/bin/bash
# Durability end to end: "nothing is lost". Four SMTP clients and a loop of
# `outpost send` submit without pause, each message with a unique token (the
# recipient t-<client>-<n>@example.net, also in the Subject), while the daemon
# (delivery paused, so the queue only grows) is killed with SIGKILL 25 times at
# random moments and restarted each time. Then every acknowledged message
# (250 after the final dot, `send` exit 0) must be queued exactly once, a
# message whose connection broke in flight at most once, and a refused one
# not at all; the spool must pass `spool check` and SQLite's integrity_check.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
KILLS=25
T0=$SECONDS

e2e_config <<EOF
[delivery]
paused = yes
EOF
e2e_start

OUTCOMES=$E2E_DIR/outcomes.json
STOP=$E2E_DIR/stop
$PY "$HERE/durability_clients.py" run "$OUTCOMES" "$STOP" "$SMTP_PORT" "$OUTPOST" "$CONF" 4 \
	>"$E2E_DIR/clients.log" 2>&1 &
CLIENTS_PID=$!
E2E_PIDS+=("$CLIENTS_PID")

# Forget a reaped daemon's pid, so the cleanup never signals a reused one.
forget_pid() {
	local keep=() p
	for p in "${E2E_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	E2E_PIDS=("${keep[@]}")
}

# Starts the daemon; fails (instead of exiting the script) when it does not listen.
start_daemon() {
	"$OUTPOST" serve -c "$CONF" >>"$E2E_DIR/outpost.log" 2>&1 &
	DAEMON_PID=$!
	E2E_PIDS+=("$DAEMON_PID")
	wait_port "$SMTP_PORT" && wait_port "$ADMIN_PORT"
}

# Kill at a random moment 0.05-0.6 s after the daemon is listening, restart
# at once; the clients meet refused connections meanwhile and retry.
killed=0
restarted=0
for _ in $(seq 1 $KILLS); do
	ms=$((50 + RANDOM % 551))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	old=$DAEMON_PID
	e2e_kill9
	forget_pid "$old"
	killed=$((killed + 1))
	if ! start_daemon; then break; fi
	restarted=$((restarted + 1))
done
check "the daemon was killed $KILLS times with SIGKILL ($killed)" test "$killed" -eq $KILLS
check "it came back and listened after every kill ($restarted)" test "$restarted" -eq $KILLS

# Let the clients run against the last daemon a little, then stop them:
# each finishes the message in hand, so their last outcomes are definite.
sleep 1
touch "$STOP"
for _ in $(seq 1 400); do kill -0 "$CLIENTS_PID" 2>/dev/null || break; sleep 0.1; done
clients_rc=0
if kill -0 "$CLIENTS_PID" 2>/dev/null; then
	kill -9 "$CLIENTS_PID" 2>/dev/null || true
	clients_rc=124
fi
wait "$CLIENTS_PID" || clients_rc=$?
forget_pid "$CLIENTS_PID"
check "the clients stopped and wrote their outcomes" test "$clients_rc" -eq 0 -a -s "$OUTCOMES"
[ "$clients_rc" -eq 0 ] || cat "$E2E_DIR/clients.log"

LIST=$E2E_DIR/list.json
check "queue list --json answers after the last restart" bash -c "'$OUTPOST' -c '$CONF' queue list --json >'$LIST'"
if [ -s "$OUTCOMES" ] && [ -s "$LIST" ]; then
	# one ok/FAIL line per check, and a "# acknowledged N, unknown M, ..." line
	$PY "$HERE/durability_clients.py" verify "$OUTCOMES" "$LIST" "$OUTPOST" "$CONF" \
		>"$E2E_DIR/verify.out" 2>&1 || true
	cat "$E2E_DIR/verify.out"
	PASSES=$((PASSES + $(grep -c '^ok ' "$E2E_DIR/verify.out" || true)))
	FAILS=$((FAILS + $(grep -c '^FAIL ' "$E2E_DIR/verify.out" || true)))
	check "the verdict ran to the end" grep -q 'sampled acknowledged messages' "$E2E_DIR/verify.out"
fi
echo "# kills $killed"

check "no sanitizer report in the daemon's log" bash -c "! grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' '$E2E_DIR/outpost.log'"

e2e_stop
check "spool check reports 0 problems" bash -c "'$OUTPOST' spool check -c '$CONF' 2>&1 | tee '$E2E_DIR/check.out' | grep -qx '0 problems'"
[ -s "$E2E_DIR/check.out" ] && sed 's/^/# spool check: /' "$E2E_DIR/check.out"
if [ -x /usr/bin/sqlite3 ]; then
	check "SQLite integrity_check says ok" bash -c "test \"\$(/usr/bin/sqlite3 '$DATA/spool.db' 'PRAGMA integrity_check')\" = ok"
fi

# A clean restart shows the same queue.
check "the daemon starts again after a clean stop" start_daemon
ids() { $PY -c 'import json,sys; print("\n".join(sorted(m["id"] for m in json.load(open(sys.argv[1])))))' "$1"; }
op queue list --json >"$E2E_DIR/list2.json"
check "a clean restart lists the same messages" cmp -s <(ids "$LIST") <(ids "$E2E_DIR/list2.json")
e2e_stop
echo "# took $((SECONDS - T0)) s"
e2e_finish
