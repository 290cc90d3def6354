# shellcheck shell=bash
# dane_peers.sh - receiving servers and the posttls-finger oracle of the DANE
# scenarios (test_dane.sh); to be sourced after lib.sh, dns_peers.sh and
# delivery_peers.sh (whose dp_stop also stops what is started here).
#
#   dane_pick_port                    # DP_PORT, free on 127.0.1.1 .. 127.0.1.60
#   dane_listener ID ADDR CHAIN [sni=NAME] [-o name=value ...]
#                                     # one smtpd of the shared Postfix: its own
#                                     # address, key+chain file, syslog name
#                                     # postfix/ID, and a one-entry SNI table
#   dane_postfix_start                # starts the instance with every listener
#   dane_finger_start                 # a second validating resolver on :53
#   dane_finger ARGS...               # posttls-finger with it as the system resolver
#
# One Postfix instance ($PEERS/dpf) with one master.cf listener per case keeps
# 60 servers cheap: every listener has its own certificate chain
# (smtpd_tls_chain_files), its own syslog_name (so that its lines in the
# shared maillog say which case they belong to) and, when SNI is given, a
# one-line tls_server_sni_maps table naming the same chain (or another one),
# which makes smtpd log the SNI name the client sent when it is that one
# ("Anonymous TLS connection established from ... to NAME: TLSv1.3 ...").
# Every recipient of secure.test and
# insecure.test (and their subdomains) goes by virtual(8) into the one
# Maildir $PEERS/dpf/mail/sink/ (Delivered-To: says for whom); the Received:
# header records the TLS the message came over (smtpd_tls_received_header).

DANE_LISTENERS=()

dane_pick_port() { dp_pick_port 127.0.1 60; }

# dane_listener ID ADDR CHAIN [sni=NAME [snichain=FILE]] [-o name=value ...]
# CHAIN: the key and certificates (one PEM file, key first), "" for none;
# sni=NAME: a one-entry tls_server_sni_maps table, NAME -> snichain (by
# default CHAIN), so that smtpd logs the name the client asked for.
dane_listener() {
	local id=$1 addr=$2 chain=$3 P=$PEERS/dpf line sni="" snichain=""
	shift 3
	line="$addr:$DP_PORT inet n - n - - smtpd -o syslog_name=postfix/$id"
	[ -n "$chain" ] && line+=" -o smtpd_tls_chain_files=$chain"
	while [ $# -gt 0 ]; do
		case $1 in
		sni=*) sni=${1#sni=} ;;
		snichain=*) snichain=${1#snichain=} ;;
		-o) line+=" -o $2"; shift ;;
		*) echo "dane_listener: $1?" >&2; return 1 ;;
		esac
		shift
	done
	if [ -n "$sni" ]; then
		mkdir -p "$P/sni"
		printf '%s %s\n' "$sni" "${snichain:-$chain}" >"$P/sni/$id"
		line+=" -o tls_server_sni_maps=texthash:$P/sni/$id"
	fi
	DANE_LISTENERS+=("$line")
	DP_WAIT+=("$addr")
}

dane_postfix_start() {
	local P=$PEERS/dpf
	mkdir -p "$P/etc" "$P/queue" "$P/data" "$P/mail/sink/new" "$P/mail/sink/cur" "$P/mail/sink/tmp"
	chown -R nobody:nogroup "$P/mail"
	chown postfix "$P/data"
	cat >"$P/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = dpf.insecure.test
mydomain = insecure.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = reject_unauth_destination
virtual_mailbox_domains = regexp:{{/(^|\.)(in)?secure\.test\$\$/ OK}}
virtual_mailbox_base = $P/mail
virtual_mailbox_maps = static:sink/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
local_transport = virtual
default_transport = error:5.7.1 no outbound mail from test peers
relay_transport = error:5.7.1 no outbound mail from test peers
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
default_process_limit = 200
maillog_file_prefixes = /var, /dev/stdout, $PEERS
maillog_file = $P/maillog
biff = no
EOF
	{
		printf '%s\n' "${DANE_LISTENERS[@]}"
		dp__master_services
	} >"$P/etc/master.cf"
	postfix -c "$P/etc" start-fg >"$P/start-fg.out" 2>&1 &
	dp__track $!
	DP_POSTFIX+=("$P/etc")
}

# ---- posttls-finger --------------------------------------------------------
# posttls-finger uses the system resolver only, i.e. /etc/resolv.conf and
# port 53. It runs in a private mount namespace (unshare -m) in which a
# resolv.conf naming 127.0.1.60 (port 53) is bind-mounted over
# /etc/resolv.conf; the network namespace stays the same, so it reaches
# the peers on 127.0.1.x as outpost does. 127.0.1.60:53 is a second Unbound
# with the configuration of dns_peers.sh's (same trust anchor, same stub
# zones to the same NSD): it validates on its own.

DANE_FINGER_NS=127.0.1.60

dane_finger_start() {
	local D=$PEERS/dns F=$PEERS/finger
	mkdir -p "$F"
	sed -e "s|^    interface: .*|    interface: $DANE_FINGER_NS@53|" \
		-e "s|^    port: .*|    port: 53|" \
		-e "s|^    pidfile: .*|    pidfile: \"$F/unbound.pid\"|" \
		-e "s|^    control-enable: yes|    control-enable: no|" \
		-e "s|^    control-interface: .*||" \
		"$D/unbound.conf" >"$F/unbound.conf"
	unbound-checkconf "$F/unbound.conf" >/dev/null || return 1
	printf 'nameserver %s\noptions trust-ad edns0 attempts:1 timeout:5\n' "$DANE_FINGER_NS" \
		>"$F/resolv.conf"
	# its own main.cf: the machine may have no /etc/postfix/main.cf
	mkdir -p "$F/etc"
	printf 'compatibility_level = 3.6\nsmtp_dns_support_level = dnssec\n' >"$F/etc/main.cf"
	unbound -d -c "$F/unbound.conf" >"$F/unbound.out" 2>&1 &
	dp__track $!
	local _
	for _ in $(seq 1 200); do
		ss -H -l -n -u "src $DANE_FINGER_NS:53" | grep -q . && return 0
		sleep 0.05
	done
	echo "dane_peers: the resolver for posttls-finger is not listening" >&2
	return 1
}

# dane_finger ARGS...: posttls-finger ARGS with the test resolver.
dane_finger() {
	MAIL_CONFIG=$PEERS/finger/etc unshare -m /bin/sh -c \
		'mount --bind "$0" /etc/resolv.conf && exec posttls-finger "$@"' \
		"$PEERS/finger/resolv.conf" "$@"
}
