# dns_peers.sh - the DNSSEC test bed (docs/testing.md), to be sourced by
# end-to-end scenarios: NSD (authoritative) serving signed and unsigned
# zones, Unbound validating in front of it, both on free loopback ports.
#
#   PEERS=/abs/scratch/dir            # required, created if missing
#   source tests/e2e/dns_peers.sh
#   dns_peers_add_record secure.test "extra 300 IN A 127.0.0.1"   # optional, before start
#   SECURE_EXTRA=$'a A 127.0.0.2\nb A 127.0.0.3'  # same, as variables (INSECURE_EXTRA too)
#   dns_peers_start                   # sets DNS_RESOLVER=127.0.0.1:PORT, DNS_AUTH=127.0.0.1:PORT
#   ...                               # dns_peers_add_record + dns_peers_reload to change zones
#   dns_peers_stop                    # kills by PID and waits
#
# Zones (signatures made at start, valid for 4 weeks; never commit them):
#   test.           signed; trust anchor = its KSK; DS for secure and bogus
#   secure.test.    signed, DS in test.          -> answers carry AD
#   insecure.test.  unsigned, no DS (NSEC3 proof) -> no AD
#   bogus.test.     signed, signatures expired in 2020 -> SERVFAIL + EDE 6/7
# Records (secure.test; insecure.test and bogus.test have the same core):
#   @ MX 10 mx1; mx1 A 127.0.0.1; mx1 AAAA ::1; _25._tcp.mx1 TLSA 3 1 1 and
#   2 0 1 of the PKI below; mxalias CNAME mx1; chain1 -> chain2 -> chain3
#   CNAMEs, chain3 MX 10 mx1; loop1 <-> loop2 CNAME loop; nullmx MX 0 .;
#   implicit A 127.0.0.1 (no MX); viaalias MX 10 mxalias; _mta-sts TXT;
#   mta-sts A; _smtp._tls TXT.
# PKI in $PEERS/pki (made unless ca.crt is already there): ca.crt/ca.key,
# mx1.secure.test.{crt,key,chain.crt}, mta-sts.secure.test.{crt,key,chain.crt}.
#
# Every record line given to dns_peers_add_record goes into the zone file as
# is (relative names are relative to the zone). Needs: nsd unbound ldnsutils
# openssl iproute2 (ss), python3 for a free port.

DNS_PEERS_PIDS=()

dns_peers__port() { # a port free for both TCP and UDP on 127.0.0.1
	/usr/bin/python3 - <<'EOF'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); continue
    u.close(); t.close(); print(p); break
EOF
}

dns_peers__wait_port() { # PROTO(u|t) PORT TIMEOUT_S
	local _
	for _ in $(seq 1 $(($3 * 20))); do
		if ss -H -l -n "-$1" "sport = :$2" | grep -q .; then return 0; fi
		sleep 0.05
	done
	echo "dns_peers: port $2 not ready" >&2
	return 1
}

# dns_peers_add_record ZONE "LINE": one more line for zone ZONE (secure.test,
# insecure.test, bogus.test or test). Before dns_peers_start, or followed by
# dns_peers_reload.
dns_peers_add_record() {
	mkdir -p "$PEERS/dns"
	printf '%s\n' "$2" >>"$PEERS/dns/extra.$1"
}

dns_peers__pki() {
	local P=$PEERS/pki h
	[ -f "$P/ca.crt" ] && return 0
	mkdir -p "$P"
	(
		cd "$P" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
			-out ca.crt -days 30 -subj "/CN=Test Mail CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		chmod 600 ca.key
	) || return 1
	for h in mx1.secure.test mta-sts.secure.test; do
		dns_peers_cert "$P" $h "DNS:$h" || return 1
	done
}

# dns_peers_cert DIR NAME SAN [ca|expired|self]: a P-256 key and certificate in
# DIR/NAME.key, NAME.crt and NAME.chain.crt (leaf + CA: DANE-TA(2) needs the TA
# in the chain; a self-signed one alone). SAN is a subjectAltName value
# ("DNS:a,DNS:b"); the CN is its first name. ca (default): a leaf of the test
# bed's CA, valid for 30 days; expired: one of the CA valid in January 2020
# only (openssl ca, in DIR/ca); self: self-signed. Needs dns_peers__pki first.
dns_peers_cert() {
	local dir=$1 name=$2 san=$3 kind=${4:-ca} cn ca=$PEERS/pki/ca.crt cakey=$PEERS/pki/ca.key
	cn=${san%%,*}
	cn=${cn#DNS:}
	if [ "$kind" = self ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
			-keyout "$dir/$name.key" -out "$dir/$name.crt" -subj "/CN=$cn" \
			-addext "subjectAltName=$san" 2>/dev/null || return 1
		cp "$dir/$name.crt" "$dir/$name.chain.crt"
		chmod 600 "$dir/$name.key"
		return 0
	fi
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/$name.key" \
		-out "$dir/$name.csr" -subj "/CN=$cn" 2>/dev/null || return 1
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
		"$san" >"$dir/$name.ext"
	if [ "$kind" = expired ]; then
		mkdir -p "$dir/ca/new"
		: >"$dir/ca/index.txt"
		echo 1000 >"$dir/ca/serial"
		printf '%s\n' "[ca]" "default_ca = test" "[test]" "database = $dir/ca/index.txt" \
			"new_certs_dir = $dir/ca/new" "serial = $dir/ca/serial" "default_md = sha256" \
			"policy = any" "unique_subject = no" "[any]" "commonName = supplied" \
			>"$dir/ca/ca.cnf"
		openssl ca -batch -notext -config "$dir/ca/ca.cnf" -cert "$ca" -keyfile "$cakey" \
			-in "$dir/$name.csr" -out "$dir/$name.crt" -extfile "$dir/$name.ext" \
			-startdate 20200101000000Z -enddate 20200201000000Z 2>/dev/null || return 1
	else
		openssl x509 -req -in "$dir/$name.csr" -CA "$ca" -CAkey "$cakey" -CAcreateserial \
			-days 30 -out "$dir/$name.crt" -extfile "$dir/$name.ext" 2>/dev/null || return 1
	fi
	cat "$dir/$name.crt" "$ca" >"$dir/$name.chain.crt"
	chmod 600 "$dir/$name.key"
}

# The sha256 hashes for "TLSA 3 1 1" (mx1's SPKI) and "TLSA 2 0 1" (the CA).
dns_peers__tlsa_hashes() {
	local P=$PEERS/pki
	DNS_PEERS_T311=$(openssl x509 -in "$P/mx1.secure.test.crt" -noout -pubkey |
		openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
	DNS_PEERS_T201=$(openssl x509 -in "$P/ca.crt" -outform DER | openssl dgst -sha256 -r |
		cut -d' ' -f1)
}

dns_peers__zone_common() { # ZONE
	cat <<EOF
\$ORIGIN $1.
\$TTL 300
@        SOA  ns.$1. hostmaster.$1. $(date +%s) 3600 600 86400 300
@        NS   ns.$1.
ns       A    127.0.0.1
@        MX   10 mx1.$1.
mx1      A    127.0.0.1
_25._tcp.mx1 TLSA 3 1 1 $DNS_PEERS_T311
mxalias  CNAME mx1.$1.
chain1   CNAME chain2.$1.
chain2   CNAME chain3.$1.
chain3   MX   10 mx1.$1.
loop1    CNAME loop2.$1.
loop2    CNAME loop1.$1.
nullmx   MX   0 .
implicit A    127.0.0.1
viaalias MX   10 mxalias.$1.
EOF
}

dns_peers__zones() {
	local D=$PEERS/dns
	mkdir -p "$D"
	dns_peers__tlsa_hashes
	{
		dns_peers__zone_common secure.test
		cat <<EOF
mx1      AAAA ::1
_25._tcp.mx1 TLSA 2 0 1 $DNS_PEERS_T201
_mta-sts TXT  "v=STSv1; id=20261129T000000;"
mta-sts  A    127.0.0.1
_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@secure.test"
EOF
		cat "$D/extra.secure.test" 2>/dev/null || true
		printf '%s\n' "${SECURE_EXTRA:-}"
	} >"$D/secure.test.zone"
	{
		dns_peers__zone_common insecure.test
		cat "$D/extra.insecure.test" 2>/dev/null || true
		printf '%s\n' "${INSECURE_EXTRA:-}"
	} >"$D/insecure.test.zone"
	{
		dns_peers__zone_common bogus.test
		cat "$D/extra.bogus.test" 2>/dev/null || true
	} >"$D/bogus.test.zone"
	{
		cat <<EOF
\$ORIGIN test.
\$TTL 300
@        SOA  ns.test. hostmaster.test. $(date +%s) 3600 600 86400 300
@        NS   ns.test.
ns       A    127.0.0.1
secure   NS   ns.secure.test.
ns.secure A   127.0.0.1
insecure NS   ns.insecure.test.
ns.insecure A 127.0.0.1
bogus    NS   ns.bogus.test.
ns.bogus A    127.0.0.1
EOF
		cat "$D/extra.test" 2>/dev/null || true
		cat "$D/$(cut -d' ' -f1 "$D/keys.secure.test").ds" "$D/$(cut -d' ' -f1 "$D/keys.bogus.test").ds"
	} >"$D/test.zone"
}

dns_peers__keys() {
	local z
	for z in test secure.test bogus.test; do # KSK ZSK; ldns-keygen prints the basename
		echo "$(ldns-keygen -a ECDSAP256SHA256 -k $z.) $(ldns-keygen -a ECDSAP256SHA256 $z.)" >keys.$z
	done
	grep -h DNSKEY "$(cut -d' ' -f1 keys.test).key" | cut -d';' -f1 >test.ta # unbound's anchor
}

dns_peers__sign() {
	(
		cd "$PEERS/dns" || exit 1
		local ksk zsk
		# children first: test.zone carries their DS records
		read -r ksk zsk <keys.secure.test
		ldns-signzone -n -o secure.test. secure.test.zone "$ksk" "$zsk"
		# expired signatures: validators answer SERVFAIL, EDE 7 (or 6 from cache)
		read -r ksk zsk <keys.bogus.test
		ldns-signzone -n -e 20200201000000 -i 20200101000000 -o bogus.test. bogus.test.zone \
			"$ksk" "$zsk"
		read -r ksk zsk <keys.test
		ldns-signzone -n -o test. test.zone "$ksk" "$zsk"
	)
}

dns_peers__configs() {
	local D=$PEERS/dns z
	cat >"$D/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$DNS_AUTH_PORT
    server-count: 1
    # every query comes from the one resolver on 127.0.0.1: NSD's response
    # rate limiting (200/s by default) would drop and truncate answers in a
    # burst (unbound then answers SERVFAIL, "upstream server timeout")
    rrl-ratelimit: 0
    username: ""
    chroot: ""
    zonesdir: "$D"
    database: ""
    zonelistfile: "$D/zone.list"
    xfrdfile: "$D/xfrd.state"
    xfrdir: "$D"
    pidfile: "$D/nsd.pid"
    logfile: "$D/nsd.log"
remote-control:
    control-enable: no
zone:
    name: "test."
    zonefile: "test.zone.signed"
zone:
    name: "secure.test."
    zonefile: "secure.test.zone.signed"
zone:
    name: "insecure.test."
    zonefile: "insecure.test.zone"
zone:
    name: "bogus.test."
    zonefile: "bogus.test.zone.signed"
EOF
	{
		cat <<EOF
server:
    interface: 127.0.0.1@$DNS_RES_PORT
    port: $DNS_RES_PORT
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$D"
    pidfile: "$D/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    ede: yes
    num-threads: 1
    do-ip6: no
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-file: "$D/test.ta"
    local-zone: "test." nodefault
    access-control: 127.0.0.0/8 allow
    cache-max-ttl: 5
    cache-max-negative-ttl: 5
remote-control:
    control-enable: yes
    control-interface: "$D/unbound.ctl"
    control-use-cert: no
EOF
		for z in test. secure.test. insecure.test. bogus.test.; do
			printf 'stub-zone:\n    name: "%s"\n    stub-addr: 127.0.0.1@%s\n' $z "$DNS_AUTH_PORT"
		done
	} >"$D/unbound.conf"
	nsd-checkconf "$D/nsd.conf"
	unbound-checkconf "$D/unbound.conf" >/dev/null
}

# Builds everything under $PEERS and starts nsd and unbound. Exports
# DNS_RESOLVER (the validating resolver, for [dns] nameserver) and DNS_AUTH.
dns_peers_start() {
	: "${PEERS:?set PEERS to an absolute scratch directory}"
	mkdir -p "$PEERS/dns"
	DNS_AUTH_PORT=$(dns_peers__port)
	DNS_RES_PORT=$(dns_peers__port)
	while [ "$DNS_RES_PORT" = "$DNS_AUTH_PORT" ]; do DNS_RES_PORT=$(dns_peers__port); done
	dns_peers__pki
	(cd "$PEERS/dns" && rm -f K* keys.* && dns_peers__keys) || return 1
	dns_peers__zones
	dns_peers__sign >/dev/null || return 1
	dns_peers__configs || return 1
	# started as simple commands so that $! is the daemon
	# (docs/testing.md, "Pitfalls")
	nsd -d -c "$PEERS/dns/nsd.conf" >"$PEERS/dns/nsd.out" 2>&1 &
	DNS_PEERS_NSD_PID=$!
	unbound -d -c "$PEERS/dns/unbound.conf" >"$PEERS/dns/unbound.out" 2>&1 &
	DNS_PEERS_UNBOUND_PID=$!
	DNS_PEERS_PIDS=("$DNS_PEERS_NSD_PID" "$DNS_PEERS_UNBOUND_PID")
	# lib.sh kills what is in E2E_PIDS when the scenario exits, whatever happens
	if declare -p E2E_PIDS >/dev/null 2>&1; then E2E_PIDS+=("${DNS_PEERS_PIDS[@]}"); fi
	dns_peers__wait_port u "$DNS_AUTH_PORT" 10 || return 1
	dns_peers__wait_port u "$DNS_RES_PORT" 10 || return 1
	export DNS_RESOLVER=127.0.0.1:$DNS_RES_PORT DNS_AUTH=127.0.0.1:$DNS_AUTH_PORT
}

# Re-reads the zones (after dns_peers_add_record): re-signs, makes nsd
# reload and unbound forget its cache. outpost keeps answers for their TTL, at
# most [dns] cache_max_ttl: the scenarios that change records set it to 1s,
# and the wait below lets what outpost kept run out.
dns_peers_reload() {
	dns_peers__zones
	dns_peers__sign >/dev/null || return 1
	kill -HUP "$DNS_PEERS_NSD_PID"
	sleep 0.3
	unbound-control -c "$PEERS/dns/unbound.conf" flush_zone test >/dev/null
	unbound-control -c "$PEERS/dns/unbound.conf" flush_bogus >/dev/null
	sleep 1.1
}

dns_peers_stop() {
	local p
	for p in "${DNS_PEERS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${DNS_PEERS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	DNS_PEERS_PIDS=()
}
