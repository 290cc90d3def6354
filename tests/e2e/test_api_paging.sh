#!/bin/bash
# The admin API's pages, end to end (docs/api.md, "Pages"): the delivery
# history and its filters; a paging walk over a few thousand queued messages
# while another process keeps submitting and dropping, every message that
# existed throughout seen exactly once (oldest first, newest first, and by
# `queue list --json`); submissions while the whole queue is listed
# (loosely: bench/ W10 measures it); `queue list --json` against the spool
# itself; the reads with the daemon stopped.
#   127.0.7.1 smtp-sink: takes everything
#   127.0.7.2 nothing listens: every attempt is deferred, the second fails
#   127.0.7.3 the bulk's recipients (delivery stays paused)
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/peers.sh"

dp_pick_port 127.0.7
dp_sink ok 127.0.7.1
dp_ready

e2e_config <<EOF
[delivery]
paused = yes
port = $DP_PORT
first_retry = 1s
max_attempts = 2
delay_notice_after = 0
connect_timeout = 2s
EOF
e2e_start

WALK="$PY $HERE/paging_walk.py"
json_len() { $PY -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# the ids of the messages with a pending recipient, from the spool itself
spool_pending() {
	sqlite3 -readonly "$DATA/spool.db" "SELECT DISTINCT printf('%016X', m.id) FROM messages m
		JOIN recipients r ON r.msg_id = m.id WHERE r.state IN (0, 1, 2) AND r.drop_requested = 0" |
		sort
}
list_ids() { $PY -c 'import json,sys; [print(m["id"]) for m in json.load(sys.stdin)]' | sort; }

# ---- 1. the delivery history ---------------------------------------------------
printf 'Subject: ok\n\nx\n' | op send -f '' 'ok@[127.0.7.1]'
printf 'Subject: dead\n\nx\n' | op send -f '' 'dead@[127.0.7.2]'
OK_ID=$(op queue list --recipient 'ok@[127.0.7.1]' --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
op queue resume >/dev/null
history_count() { op queue history --json "$@" | json_len; }
history_is() { [ "$(history_count "${@:2}")" = "$1" ]; }
check "delivered, deferred, then failed: three attempts in the history" wait_until 20 history_is 3
op queue pause >/dev/null
check "newest first, the failure on top" \
	bash -c "'$OUTPOST' -c '$CONF' queue history --json | $PY -c '
import json, sys
h = json.load(sys.stdin)
times = [a[\"time\"] for a in h]
assert times == sorted(times, reverse=True), times
assert h[0][\"result\"] == \"failed\" and h[0][\"recipient\"] == \"dead@[127.0.7.2]\", h[0]'"
check "--result delivered: the one delivery" test "$(history_count --result delivered)" = 1
check "--recipient: both attempts of dead@" test "$(history_count --recipient 'DEAD@[127.0.7.2]')" = 2
check "--domain: both attempts at [127.0.7.2]" test "$(history_count --domain '[127.0.7.2]')" = 2
check "a queue id: the attempts of that message" test "$(history_count "$OK_ID")" = 1
check "--since a time to come: nothing" test "$(history_count --since 2099-01-01T00:00:00Z)" = 0
check "--since 1h: all three" test "$(history_count --since 1h)" = 3
check "--until an hour ago: nothing" test "$(history_count --until 1h)" = 0
check "the text form says when nothing matches" \
	test "$(op queue history --result failed --domain '[127.0.7.1]')" = "no attempt matches"
check "an attempt names its message, whose end is known" \
	bash -c "'$OUTPOST' -c '$CONF' queue history --json --result delivered | $PY -c '
import json, sys
a = json.load(sys.stdin)[0]
assert a[\"id\"] == \"$OK_ID\" and a[\"sender\"] == \"\" and a[\"done\"] and a[\"mx\"] == \"[127.0.7.1]\", a'"
history_pages() { # the pages of GET /api/v1/history?limit=1, followed to the end
	local n=0 c= p
	while :; do
		p=$(api "/api/v1/history?limit=1${c:+&cursor=$c}")
		n=$((n + 1))
		c=$(printf '%s' "$p" | $PY -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"] or "")')
		[ -n "$c" ] || break
	done
	echo "$n"
}
check "GET /api/v1/history?limit=1: three pages, the last without a cursor" \
	test "$(history_pages)" = 3
check "a bad result is a usage error (2), before any request" \
	bash -c "'$OUTPOST' -c '$CONF' queue history --result bounced 2>/dev/null; [ \$? = 2 ]"
check "the API refuses a limit above 1000" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$DATA/admin.token")" \
		"http://127.0.0.1:$ADMIN_PORT/api/v1/queue?limit=1001")" = 400

# ---- 2. a walk while others submit and drop -------------------------------------
N=3000
smtp-source -s 10 -m $N -l 256 -f bulk@example.org -t 'r@[127.0.7.3]' "127.0.0.1:$SMTP_PORT"
check "$N messages queued (delivery paused)" test "$(spool_pending | wc -l)" = $N
CH=$E2E_DIR/churn
mkdir -p "$CH"
spool_pending >"$CH/initial"
$WALK churn "$SMTP_PORT" "$ADMIN_PORT" "$DATA/admin.token" "$CH/initial" "$CH" \
	>"$CH/churn.out" 2>&1 &
CHURN=$!
E2E_PIDS+=("$CHURN")
sleep 0.5
$WALK walk "$ADMIN_PORT" "$DATA/admin.token" "limit=25" "$CH/seen.oldest" 20 >"$CH/pages.oldest"
$WALK walk "$ADMIN_PORT" "$DATA/admin.token" "limit=40&sort=newest" "$CH/seen.newest" 20 \
	>"$CH/pages.newest"
op queue list --json | $PY -c 'import json,sys; [print(m["id"]) for m in json.load(sys.stdin)]' \
	>"$CH/seen.cli"
touch "$CH/stop"
wait "$CHURN" || fail "the churn stopped early: $(tail -3 "$CH/churn.out")"
forget_pid "$CHURN"
cat "$CH/churn.out"
ADDED=$(wc -l <"$CH/added")
DROPPED=$(wc -l <"$CH/dropped")
check "the queue changed during the walks ($ADDED added, $DROPPED dropped)" \
	test "$ADDED" -ge 100 -a "$DROPPED" -ge 60
check "oldest first, pages of 25 ($(cat "$CH/pages.oldest") pages): each message there throughout seen exactly once" \
	$WALK check "$CH/initial" "$CH/dropped" "$CH/seen.oldest"
check "newest first, pages of 40: the same" $WALK check "$CH/initial" "$CH/dropped" "$CH/seen.newest"
check "queue list --json, pages of 1000: the same" \
	$WALK check "$CH/initial" "$CH/dropped" "$CH/seen.cli"
check "oldest first, the walk also saw mail added behind it" \
	test "$(sort "$CH/seen.oldest" | comm -13 "$CH/initial" - | wc -l)" -gt 0

# ---- 3. submissions while the whole queue is listed ----------------------------
# Listings are read on worker threads (docs/api.md): a full walk of a big
# queue must not hold up submissions. Measured properly in bench/ (W10,
# 200,000 recipients); here loosely: 20,000 more recipients, then the p99
# of the submission latency (bench/tools/latency.py) without and with
# `queue list --json` walking every page in a loop.
$PY - "$SMTP_PORT" <<'EOF2'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    for i in range(200):
        s.sendmail("bulk@example.org", ["b%d-%d@[127.0.7.3]" % (i, k) for k in range(100)],
                   "Subject: bulk %d\r\n\r\nx\r\n" % i)
EOF2
LAT="$PY $HERE/../../bench/tools/latency.py $SMTP_PORT --rate 50 --seconds 5 --sessions 4"
p99() { $PY -c 'import json,sys; print(round(json.load(sys.stdin)["p99_ms"], 1))'; }
IDLE=$($LAT --out "$E2E_DIR/lat.idle" | p99)
touch "$E2E_DIR/listing"
(while [ -e "$E2E_DIR/listing" ]; do op queue list --json >/dev/null; echo >>"$E2E_DIR/walks"; done) &
LISTER=$!
LISTED=$($LAT --out "$E2E_DIR/lat.list" | p99)
rm -f "$E2E_DIR/listing"
wait "$LISTER"
echo "# submission p99: ${IDLE} ms alone, ${LISTED} ms during $(wc -l <"$E2E_DIR/walks") full listings"
check "a full listing of 20,000 recipients does not hold up submissions (p99 $LISTED ms <= 4 x $IDLE + 200)" \
	$PY -c "import sys; sys.exit(0 if $LISTED <= 4 * $IDLE + 200 else 1)"

# ---- 4. queue list --json is the spool -----------------------------------------
op queue list --json | list_ids >"$E2E_DIR/list.api"
spool_pending >"$E2E_DIR/list.spool"
check "queue list --json: the spool's pending messages, each once ($(wc -l <"$E2E_DIR/list.api"))" \
	cmp -s "$E2E_DIR/list.api" "$E2E_DIR/list.spool"
check "--newer-than 1h lists them all, --older-than 1h none" \
	test "$(op queue list --json --newer-than 1h | json_len)" = "$(wc -l <"$E2E_DIR/list.spool")" \
	-a "$(op queue list --json --older-than 1h | json_len)" = 0
check "--sender: the churn's messages only" \
	test "$(op queue list --json --sender churn@example.org | json_len)" = \
	"$(sqlite3 -readonly "$DATA/spool.db" "SELECT count(*) FROM messages WHERE sender = 'churn@example.org' AND done_at IS NULL")"

# ---- 5. the daemon stopped -------------------------------------------------------
e2e_stop
op queue list --json 2>"$E2E_DIR/off.err" | list_ids >"$E2E_DIR/list.off"
check "no daemon: queue list --json reads the spool, the same set" \
	cmp -s "$E2E_DIR/list.off" "$E2E_DIR/list.spool"
check "and says so on stderr" grep -q "daemon not running: reading the spool directly" "$E2E_DIR/off.err"
check "no daemon: queue show reads the spool" \
	bash -c "'$OUTPOST' -c '$CONF' queue show $OK_ID 2>/dev/null | grep -q 'ok@\[127.0.7.1\] delivered'"
check "no daemon: queue history too" test "$(history_count --result failed 2>/dev/null)" = 1
check "no daemon: an action still needs it (exit 1)" \
	bash -c "'$OUTPOST' -c '$CONF' queue hold --all 2>'$E2E_DIR/hold.err'; [ \$? = 1 ] && grep -q 'cannot reach the daemon' '$E2E_DIR/hold.err'"
# no socket at the admin path (ENOENT) counts as not running too
sed "s|^listen = 127.0.0.1:$ADMIN_PORT|listen = unix:$E2E_DIR/none.sock|" "$CONF" >"$E2E_DIR/unix.conf"
check "no daemon behind a unix: listener: the spool is read" \
	test "$("$OUTPOST" -c "$E2E_DIR/unix.conf" queue list --json 2>/dev/null | json_len)" = \
	"$(wc -l <"$E2E_DIR/list.spool")"
# who may not read spool.db gets the old failure, even holding a token
install -m 644 "$DATA/admin.token" "$E2E_DIR/token.copy"
sed "s|^\[admin\]|[admin]\ntoken_file = $E2E_DIR/token.copy|" "$CONF" >"$E2E_DIR/nobody.conf"
chmod 644 "$E2E_DIR/nobody.conf"
check "no daemon, spool unreadable: queue list fails as before" \
	bash -c "! runuser -u nobody -- '$OUTPOST' -c '$E2E_DIR/nobody.conf' queue list >/dev/null 2>'$E2E_DIR/nobody.err' && grep -q 'cannot reach the daemon' '$E2E_DIR/nobody.err' && ! grep -q 'reading the spool' '$E2E_DIR/nobody.err'"
check "spool check finds nothing wrong" op spool check
e2e_finish
