#!/bin/bash
# Delivery to hostile MX hosts (hostile_mx.py), each on its own loopback
# address and the one [delivery] port, next to a well-behaved smtp-sink:
#   127.0.0.11 ehlo-endless  "250-" lines after EHLO that never end
#   127.0.0.12 long-line     a 1 MB reply line after EHLO
#   127.0.0.13 trickle       the greeting at one byte per second (command_timeout 3s)
#   127.0.0.14 tls-garbage   garbage after the 220 to STARTTLS; in plaintext 451 to MAIL
#   127.0.0.15 reset-data    RST in the middle of the message data
#   127.0.0.2  smtp-sink     normal mail
# Each hostile host leaves its recipient deferred with a clear error in
# `queue show --json`, and the daemon stays up and keeps delivering.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone ldns-keygen smtp-sink; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
T0=$SECONDS
source "$HERE/peers.sh"

dp_pick_port
Z=insecure.test
MODES="ehlo-endless long-line trickle tls-garbage reset-data"
i=11
for m in $MODES; do
	dns_peers_add_record $Z "mx-$m A 127.0.0.$i"
	dns_peers_add_record $Z "$m MX 10 mx-$m"
	i=$((i + 1))
done
dns_peers_add_record $Z "mxok A 127.0.0.2"
dns_peers_add_record $Z "ok MX 10 mxok"
dns_peers_start

i=11
for m in $MODES; do
	dp_python "$m" 127.0.0.$i "$m"
	i=$((i + 1))
done
dp_sink ok 127.0.0.2
dp_ready

e2e_config <<EOF
[server]
hostname = outpost.insecure.test
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
[delivery]
port = $DP_PORT
first_retry = 60s
connect_timeout = 2s
command_timeout = 3s
data_timeout = 5s
tls_timeout = 3s
connection_idle_timeout = 1s
EOF
e2e_start
echo "# peers and daemon up after $((SECONDS - T0)) s (port $DP_PORT)"

submit() { $PY "$HERE/smtp_submit.py" "$SMTP_PORT" "$@"; }
# a recipient whose n-th attempt is over: deferred, logged, with error text
deferred_after() { # RCPT N
	echo "R('$1')['state']=='deferred' and R('$1')['attempts']==$2 and len(A('$1'))==$2 and A('$1')[-1]['result']=='deferred' and A('$1')[-1]['ip'] and A('$1')[-1]['mx']=='mx-'+'$1'.split('@')[1].split('.')[0]+'.insecure.test'"
}
declare -A ID ERR
ERR[ehlo-endless]="'too many lines' in E"
ERR[long-line]="'reply line too long' in E"
ERR[trickle]="'no complete reply within 3000 ms' in E"
ERR[tls-garbage]="'451 4.7.0' in E and 'TLS' in E"
ERR[reset-data]="'reset' in E.lower() or 'closed' in E.lower()"

for m in $MODES; do ID[$m]=$(submit s@ok.$Z "n@$m.$Z"); done
# while the hostile sessions are still going on (trickle needs 3 s to time
# out), ordinary mail goes through: the loop is not held up by them
ID_OK1=$(submit s@ok.$Z first@ok.$Z)
expect_show "normal mail is delivered while the hostile sessions are in progress" "$ID_OK1" \
	'R("first@ok.insecure.test")["state"]=="delivered"' 10
line_of() { grep -n "event=delivery .*rcpt=$1 " "$E2E_DIR/outpost.log" | head -1 | cut -d: -f1; }
logged() { [ -n "$(line_of "$1")" ]; }
wait_for 10 logged n@trickle.$Z || true
check "  (delivered before the trickling host's attempt timed out)" \
	test -n "$(line_of first@ok.$Z)" -a -n "$(line_of n@trickle.$Z)" -a "$(line_of first@ok.$Z)" -lt "$(line_of n@trickle.$Z)"

for m in $MODES; do
	expect_show "$m: the recipient is deferred after its attempt, with mx and ip in the log" "${ID[$m]}" \
		"$(deferred_after "n@$m.$Z" 1)" 15
	expect_show "$m: last_error says why" "${ID[$m]}" \
		"(lambda E: ${ERR[$m]})(R('n@$m.$Z')['last_error']) and A('n@$m.$Z')[-1]['reply']==R('n@$m.$Z')['last_error']" 1
done
check "tls-garbage: the failed handshake was logged and plaintext tried on the same host" \
	grep -q 'event=plaintext_fallback.*mx=mx-tls-garbage.insecure.test ip=127.0.0.14 error="TLS handshake failed' \
	"$E2E_DIR/outpost.log"
check "tls-garbage: the server saw STARTTLS, then MAIL without TLS" \
	bash -c "grep -q 'conn 1 starttls=yes' '$PEERS/tls-garbage/connections.log' && grep -q 'conn 2 starttls=no' '$PEERS/tls-garbage/connections.log'"
check "reset-data: the server reset the connection in the data" grep -q 'reset-data' "$PEERS/reset-data/connections.log"
check "the daemon is still running" kill -0 "$DAEMON_PID"
ID_OK2=$(submit s@ok.$Z second@ok.$Z)
expect_show "a normal delivery right after the hostile ones" "$ID_OK2" \
	'R("second@ok.insecure.test")["state"]=="delivered" and A("second@ok.insecure.test")[-1]["ip"]=="127.0.0.2"' 10

# once more: the second attempts meet the same hosts
op queue kick --all >/dev/null
for m in $MODES; do
	expect_show "$m: kicked, deferred again after attempt 2" "${ID[$m]}" \
		"$(deferred_after "n@$m.$Z" 2) and (lambda E: ${ERR[$m]})(R('n@$m.$Z')['last_error'])" 15
done
ID_OK3=$(submit s@ok.$Z third@ok.$Z)
expect_show "still delivering after the second round" "$ID_OK3" 'R("third@ok.insecure.test")["state"]=="delivered"' 10
check "the sink got the three normal messages" test "$(dp_sink_count ok)" = 3
check "the daemon is still running, and answers the API" bash -c "kill -0 $DAEMON_PID && '$OUTPOST' -c '$CONF' queue list >/dev/null"
check "no error-level event in the log" bash -c "! grep -q 'level=error' '$E2E_DIR/outpost.log'"

# (with connections still parked in the pool)
e2e_stop_clean
dns_peers_stop
dp_stop
echo "# took $((SECONDS - T0)) s"
e2e_finish
