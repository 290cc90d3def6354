# lib.sh - shared by the end-to-end scenarios: a private outpost daemon in a
# scratch directory, on free loopback ports, stopped whatever happens.
#   source lib.sh; e2e_init "$1"; e2e_config <<EOF ... EOF; e2e_start; ...
set -euo pipefail

OUTPOST=${1:?usage: test_x.sh PATH/TO/outpost}
E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUTPOST=$(readlink -f "$OUTPOST")
PY=/usr/bin/python3
E2E_DIR=$(mktemp -d /tmp/outpost-e2e.XXXXXX)
E2E_PIDS=()
FAILS=0
PASSES=0

e2e_cleanup() {
	for p in "${E2E_PIDS[@]+"${E2E_PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$FAILS" -eq 0 ] && [ -z "${E2E_KEEP:-}" ]; then rm -rf "$E2E_DIR"; else echo "kept $E2E_DIR"; fi
}
trap e2e_cleanup EXIT

# A free TCP port on 127.0.0.1.
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

SMTP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
CONF=$E2E_DIR/outpost.conf
DATA=$E2E_DIR/data

# Writes the config: the base sections plus whatever stdin adds (it starts
# inside [submission]).
e2e_config() {
	{
		printf '[server]\nhostname = outpost.test\ndata_dir = %s\nlog_level = debug\n' "$DATA"
		printf '[admin]\nlisten = 127.0.0.1:%s\n' "$ADMIN_PORT"
		printf '[submission]\nlisten = 127.0.0.1:%s\n' "$SMTP_PORT"
		cat
	} >"$CONF"
}

wait_port() {
	for _ in $(seq 1 100); do
		if [ -n "${DAEMON_PID:-}" ] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "outpost exited:" >&2; tail -5 "$E2E_DIR/outpost.log" >&2; return 1
		fi
		if $PY -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "port $1 not ready" >&2
	return 1
}

e2e_start() {
	"$OUTPOST" serve -c "$CONF" >>"$E2E_DIR/outpost.log" 2>&1 &
	DAEMON_PID=$!
	E2E_PIDS+=("$DAEMON_PID")
	wait_port "$SMTP_PORT"
	wait_port "$ADMIN_PORT"
}

# Forgets a reaped pid, so that cleanup never signals a reused one.
forget_pid() {
	local keep=() p
	for p in "${E2E_PIDS[@]+"${E2E_PIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	E2E_PIDS=("${keep[@]+"${keep[@]}"}")
}

e2e_stop() {
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	wait "$DAEMON_PID" 2>/dev/null || true
	forget_pid "$DAEMON_PID"
}

# e2e_stop_clean: a SIGTERM stop that must end with status 0 and leave no
# sanitizer report in the daemon's log (checked).
e2e_stop_clean() {
	local rc=0
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID" || rc=$?
	forget_pid "$DAEMON_PID"
	check "the daemon exits cleanly on SIGTERM (status $rc)" test "$rc" -eq 0
	check "no sanitizer report in the daemon log" \
		bash -c "! grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' '$E2E_DIR/outpost.log'"
}

e2e_kill9() {
	kill -9 "$DAEMON_PID" 2>/dev/null || true
	wait "$DAEMON_PID" 2>/dev/null || true
	forget_pid "$DAEMON_PID"
}

op() { "$OUTPOST" -c "$CONF" "$@"; }

pass() { PASSES=$((PASSES + 1)); echo "ok   - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...
	local d=$1; shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}

# Number of messages `queue list --json` shows.
queue_count() { op queue list --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

e2e_finish() {
	echo "$PASSES passed, $FAILS failed"
	if [ "$FAILS" -ne 0 ]; then
		echo "--- daemon log (tail)"; tail -30 "$E2E_DIR/outpost.log" || true
		exit 1
	fi
}

# api PATH: GET from the admin API with the daemon's token.
api() {
	curl -sf -H "Authorization: Bearer $(cat "$DATA/admin.token")" "http://127.0.0.1:$ADMIN_PORT$1"
}

# status_field NAME: one field of /api/v1/status ("recipients.held" goes down).
status_field() {
	api /api/v1/status | $PY -c "
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split('.'):
    v = v[k]
print(v)" "$1"
}

# wait_until SECONDS COMMAND...: polls (every 50 ms) until COMMAND succeeds.
wait_until() {
	local until=$((SECONDS + $1))
	shift
	while ! "$@" 2>/dev/null; do
		[ "$SECONDS" -ge "$until" ] && return 1
		sleep 0.05
	done
}

# wait_for SECONDS COMMAND...: as wait_until, then runs COMMAND once more
# with its errors shown (why it never succeeded).
wait_for() {
	local until=$((SECONDS + $1))
	shift
	while :; do
		"$@" 2>/dev/null && return 0
		[ "$SECONDS" -ge "$until" ] && break
		sleep 0.1
	done
	"$@"
}

# jtest ID EXPR: the Python EXPR over j = `queue show ID --json`, with R(addr)
# the recipient and A(addr) its attempts; the JSON stays in $SHOWN.
SHOWN=$E2E_DIR/shown.json
jtest() {
	op queue show "$1" --json >"$SHOWN" 2>/dev/null || return 1
	$PY - "$2" "$SHOWN" <<'EOF'
import json, sys
j = json.load(open(sys.argv[2]))
def R(a): return [r for r in j["recipients"] if r["address"] == a][0]
def A(a): return [x for x in j["attempts"] if x["recipient"] == a]
try:
    ok = eval(sys.argv[1])
except Exception as e:
    print("     (%s: %s)" % (type(e).__name__, e), file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
EOF
}

# expect_show DESCRIPTION ID EXPR [TIMEOUT]: passes once jtest ID EXPR holds,
# within TIMEOUT (15) s.
expect_show() {
	if wait_for "${4:-15}" jtest "$2" "$3"; then
		pass "$1"
	else
		fail "$1"
		echo "     expected: $3"
		echo "     queue show $2: $(cat "$SHOWN" 2>/dev/null)"
	fi
}

field_is() { [ "$(status_field "$1")" = "$2" ]; } # field_is NAME VALUE

# spool_lock / spool_unlock: hold the spool's write lock from outside, so
# that the daemon's writer jobs wait, in the order they were submitted.
spool_lock() {
	coproc SPOOL_LOCK { $PY "$E2E_HERE/spool_lock.py" "$DATA/spool.db"; }
	local line
	read -r line <&"${SPOOL_LOCK[0]}"
	[ "$line" = locked ]
}
spool_unlock() {
	local line pid=$SPOOL_LOCK_PID
	echo >&"${SPOOL_LOCK[1]}"
	read -r line <&"${SPOOL_LOCK[0]}"
	wait "$pid" 2>/dev/null || true
}
