# delivery_peers.sh - receiving SMTP peers for the delivery scenarios, to be
# sourced after lib.sh (and dns_peers.sh). outpost dials every MX host on the
# one [delivery] port, so each peer gets its own loopback address 127.0.0.X
# (Linux routes all of 127/8 to lo) on the shared port DP_PORT.
#
#   PEERS=/abs/scratch/dir
#   source tests/e2e/delivery_peers.sh
#   dp_pick_port [127.0.2 [60]]               # sets DP_PORT, free on 127.0.0.1-31
#                                             # (or on PREFIX.1-31)
#   dp_postfix NAME 127.0.0.2 [main.cf lines on stdin]   # private Postfix, Maildir
#   DP_MASTER_EXTRA=$'127.0.0.3:PORT inet n - n - - smtpd -o ...' dp_postfix ...
#                                             # more listeners for that instance
#   dp_sink NAME 127.0.0.5 [smtp-sink options]           # smtp-sink dumping to a dir
#   dp_python NAME 127.0.0.4 MODE                        # hostile_mx.py in MODE
#   dp_ready                                  # waits until all of them listen
#   dp_maildir_count NAME, dp_sink_count NAME, dp_wait_maildir NAME N SECS
#   dp_stop                                   # stops every peer it started, by PID
#
# Postfix instances (docs/testing.md, "Receiving peers"): one config dir,
# queue and data directory each; mydestination empty; every recipient of insecure.test and
# secure.test (and their subdomains) and of an address literal of the
# instance goes by virtual(8) into the one Maildir $PEERS/NAME/mail/sink/ as
# nobody; the texthash map $PEERS/NAME/etc/rcpt_access (dp_postfix_access)
# refuses chosen recipients; outbound mail of Postfix itself is disabled.
# inet_interfaces must name an interface address and lo has only 127.0.0.1,
# so the instance's own 127.0.0.X is a proxy_interfaces entry (which is what
# makes user@[127.0.0.X] local) and the master.cf listener binds it.

DP_PIDS=()
DP_POSTFIX=()
DP_WAIT=()
DP_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The services of a Postfix master.cf besides its smtpd listeners.
dp__master_services() {
	cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# A port free for TCP on every address 127.0.0.1 .. 127.0.0.31 (or PREFIX.1
# .. PREFIX.COUNT with a PREFIX such as 127.0.2).
dp_pick_port() {
	DP_PORT=$(/usr/bin/python3 - "${1:-127.0.0}" "${2:-31}" <<'EOF'
import random, socket, sys
for _ in range(200):
    p = random.randint(20000, 32000)  # below the ephemeral range
    socks = []
    try:
        for i in range(1, int(sys.argv[2]) + 1):
            s = socket.socket()
            socks.append(s)
            s.bind(("%s.%d" % (sys.argv[1], i), p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
EOF
)
	[ -n "$DP_PORT" ]
}

dp__wait_listen() { # ADDR PORT TIMEOUT_S
	local i
	for i in $(seq 1 $(($3 * 20))); do
		if ss -H -l -n -t "src $1:$2" | grep -q .; then return 0; fi
		sleep 0.05
	done
	echo "delivery_peers: $1:$2 not listening" >&2
	return 1
}

dp__track() {
	DP_PIDS+=("$1")
	if declare -p E2E_PIDS >/dev/null 2>&1; then E2E_PIDS+=("$1"); fi
}

# dp_postfix NAME ADDR: extra main.cf lines (which override the ones
# below, Postfix takes the last) come from stdin. DP_MASTER_EXTRA, when set,
# holds more master.cf lines (other listeners "ADDR:PORT inet n - n - -
# smtpd -o ..."); dp_ready waits for their addresses too.
dp_postfix() {
	local name=$1 addr=$2 P=$PEERS/$1
	mkdir -p "$P/etc" "$P/queue" "$P/data" "$P/mail/sink/new" "$P/mail/sink/cur" \
		"$P/mail/sink/tmp"
	chown -R nobody:nogroup "$P/mail"
	chown postfix "$P/data"
	: >"$P/etc/rcpt_access"
	{
		cat <<EOF
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $name.insecure.test
mydomain = insecure.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
proxy_interfaces = $addr
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:$P/etc/rcpt_access
virtual_mailbox_domains = regexp:{{/(^|\.)(in)?secure\.test\$\$/ OK}}
virtual_mailbox_base = $P/mail
virtual_mailbox_maps = static:sink/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
local_transport = virtual
default_transport = error:5.7.1 no outbound mail from test peers
relay_transport = error:5.7.1 no outbound mail from test peers
smtpd_tls_security_level = none
maillog_file_prefixes = /var, /dev/stdout, $PEERS
maillog_file = $P/maillog
biff = no
EOF
		cat
	} >"$P/etc/main.cf"
	{
		echo "$addr:$DP_PORT inet n - n - - smtpd"
		[ -z "${DP_MASTER_EXTRA:-}" ] || printf '%s\n' "$DP_MASTER_EXTRA"
		dp__master_services
	} >"$P/etc/master.cf"
	# start-fg checks the configuration itself; instances start in parallel
	postfix -c "$P/etc" start-fg >"$P/start-fg.out" 2>&1 &
	dp__track $!
	DP_POSTFIX+=("$P/etc")
	DP_WAIT+=("$addr")
	local a
	for a in $(printf '%s\n' "${DP_MASTER_EXTRA:-}" | awk '$2 == "inet" { sub(/:[^:]*$/, "", $1); print $1 }'); do
		DP_WAIT+=("$a")
	done
}

# Waits until every peer started so far listens.
dp_ready() {
	local a
	for a in "${DP_WAIT[@]+"${DP_WAIT[@]}"}"; do dp__wait_listen "$a" "$DP_PORT" 20 || return 1; done
	DP_WAIT=()
}

# dp_postfix_access NAME "addr@dom" "550 5.1.1 no such user": one line of
# the recipient access map (read by smtpd at each lookup: no reload needed).
dp_postfix_access() {
	printf '%s %s\n' "$2" "$3" >>"$PEERS/$1/etc/rcpt_access"
}

# dp_sink NAME ADDR [OPTIONS...]: smtp-sink with a one-file-per-message dump.
dp_sink() {
	local name=$1 addr=$2 P=$PEERS/$1
	shift 2
	mkdir -p "$P/dump"
	chown nobody:nogroup "$P/dump"
	smtp-sink -u nobody "$@" -d "$P/dump/m." "$addr:$DP_PORT" 50 >"$P.out" 2>&1 &
	dp__track $!
	DP_WAIT+=("$addr")
}

# dp_python NAME ADDR MODE: hostile_mx.py (see there for the modes); it
# writes what it received under $PEERS/NAME/.
dp_python() {
	local name=$1 addr=$2 mode=$3 P=$PEERS/$1
	mkdir -p "$P"
	/usr/bin/python3 "$DP_HERE/hostile_mx.py" "$addr" "$DP_PORT" "$mode" "$P" >"$P.out" 2>&1 &
	dp__track $!
	DP_WAIT+=("$addr")
}

dp_maildir_count() { # messages delivered into NAME's Maildir
	local n=0 f
	for f in "$PEERS/$1/mail/sink/new/"* "$PEERS/$1/mail/sink/cur/"*; do
		[ -f "$f" ] && n=$((n + 1))
	done
	echo "$n"
}

dp_sink_count() { # messages smtp-sink NAME dumped (complete ones: a body after the headers)
	local n=0 f
	for f in "$PEERS/$1/dump/"m.*; do
		[ -s "$f" ] && n=$((n + 1))
	done
	echo "$n"
}

# dp_wait_maildir NAME N SECS: until NAME's Maildir holds at least N messages.
dp_wait_maildir() {
	local until=$((SECONDS + $3))
	while [ "$SECONDS" -le "$until" ]; do
		[ "$(dp_maildir_count "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

dp_stop() {
	local d p
	for d in "${DP_POSTFIX[@]+"${DP_POSTFIX[@]}"}"; do postfix -c "$d" stop >/dev/null 2>&1 || true; done
	for p in "${DP_PIDS[@]+"${DP_PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${DP_PIDS[@]+"${DP_PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
	DP_PIDS=()
	DP_POSTFIX=()
}
