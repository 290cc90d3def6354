#!/bin/bash
# The DNS module against real peers: NSD serving signed, unsigned and bogus
# zones behind a validating Unbound (dns_peers.sh), probed with dns_probe
# (tests/e2e/dns_probe.c, built next to the outpost binary): AD handling,
# extended DNS errors, CNAME chains and loops, null MX, implicit MX,
# NXDOMAIN, address literals, TLSA records, address ordering.
source "$(dirname "$0")/lib.sh"
PROBE=$(dirname "$OUTPOST")/dns_probe
[ -x "$PROBE" ] || { echo "no dns_probe next to $OUTPOST"; exit 1; }
for tool in nsd unbound ldns-signzone ldns-keygen; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
PEERS=$E2E_DIR/peers
source "$(dirname "$0")/dns_peers.sh"

# A CNAME chain of 17 links in insecure.test: 15 hops are followed, the
# 16th lookup is refused.
for i in $(seq 0 16); do dns_peers_add_record insecure.test "long$i CNAME long$((i + 1)).insecure.test."; done
dns_peers_add_record insecure.test "long17 MX 10 mx1.insecure.test."
dns_peers_start
dns_peers__tlsa_hashes

probe() { "$PROBE" "$DNS_RESOLVER" "$@" 2>>"$E2E_DIR/probe.log"; }
# expect DESCRIPTION PYTHON-EXPRESSION-OVER-j PROBE-ARGS...
expect() {
	local d=$1 e=$2 out rc=0
	shift 2
	out=$(probe "$@") || rc=$? # non-zero also when a sanitizer found something
	if [ $rc -eq 0 ] && $PY -c "import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if ($e) else 1)" "$out" 2>/dev/null; then
		pass "$d"
	else
		fail "$d"
		echo "     dns_probe $*"
		echo "     got (exit $rc): $out"
	fi
}

# --- raw answers: AD, rcodes, EDE
expect "secure MX is authentic" \
	'j["status"]=="ok" and j["authentic"] and j["records"]==["10 mx1.secure.test"]' mx secure.test
expect "insecure MX is not authentic" \
	'j["status"]=="ok" and not j["authentic"] and j["records"]==["10 mx1.insecure.test"]' mx insecure.test
expect "bogus MX is a temporary failure with EDE 6 or 7" \
	'j["status"]=="tempfail" and j["rcode"]==2 and j["ede"] in (6,7) and not j["authentic"]' mx bogus.test
expect "NXDOMAIN is not found, authenticated denial" \
	'j["status"]=="notfound" and j["nxdomain"] and j["authentic"]' mx nope.secure.test
expect "NODATA is not found without nxdomain" \
	'j["status"]=="notfound" and not j["nxdomain"]' mx mx1.secure.test
expect "TLSA 3 1 1 and 2 0 1 of _25._tcp.mx1.secure.test" \
	"j['status']=='ok' and j['authentic'] and sorted(j['records'])==sorted(['3 1 1 $DNS_PEERS_T311','2 0 1 $DNS_PEERS_T201'])" \
	tlsa _25._tcp.mx1.secure.test
expect "TLSA of an insecure zone is not authentic" \
	"j['status']=='ok' and not j['authentic'] and j['records']==['3 1 1 $DNS_PEERS_T311']" \
	tlsa _25._tcp.mx1.insecure.test
expect "TLSA of a bogus zone: SERVFAIL with EDE" \
	'j["status"]=="tempfail" and j["ede"] in (6,7)' tlsa _25._tcp.mx1.bogus.test
expect "CNAME query gives the first target" \
	'j["status"]=="ok" and j["records"]==["mx1.secure.test"] and j["authentic"]' cname mxalias.secure.test
expect "A query through a CNAME names the canonical host" \
	'j["status"]=="ok" and j["canonical"]=="mx1.secure.test" and j["records"]==["127.0.0.1"]' a mxalias.secure.test
expect "TXT record joined" \
	'j["records"]==["v=STSv1; id=20261129T000000;"]' txt _mta-sts.secure.test

# --- gather_destinations (docs/destinations.md, "Hosts of a domain")
expect "secure domain: MX host, both flags authentic" \
	'j["ok"] and j["have_mx"] and j["orig_authentic"] and j["expanded_authentic"] and [h["name"] for h in j["hosts"]]==["mx1.secure.test"]' \
	destinations secure.test
expect "insecure domain: not authentic" \
	'j["ok"] and j["have_mx"] and not j["orig_authentic"] and not j["expanded_authentic"]' \
	destinations insecure.test
expect "bogus domain: temporary 4.4.3 with the EDE" \
	'not j["ok"] and not j["permanent"] and j["enhanced"]=="4.4.3" and j["ede"] in (6,7)' \
	destinations bogus.test
expect "NXDOMAIN domain: permanent 5.1.2" \
	'not j["ok"] and j["permanent"] and j["enhanced"]=="5.1.2"' destinations nope.secure.test
expect "null MX: permanent 5.1.10" \
	'not j["ok"] and j["permanent"] and j["enhanced"]=="5.1.10" and j["have_mx"]' \
	destinations nullmx.secure.test
expect "CNAME chain followed to the MX" \
	'j["ok"] and j["expanded"]=="chain3.secure.test" and j["expanded_authentic"] and [h["name"] for h in j["hosts"]]==["mx1.secure.test"]' \
	destinations chain1.secure.test
expect "CNAME loop: temporary" \
	'not j["ok"] and not j["permanent"] and "cname loop" in j["error"]' destinations loop1.secure.test
expect "16 CNAME hops (long1 -> long17): temporary, too many cname records" \
	'not j["ok"] and not j["permanent"] and "too many cname records" in j["error"]' \
	destinations long1.insecure.test
expect "15 CNAME hops are still followed" \
	'j["ok"] and j["expanded"]=="long17.insecure.test"' destinations long2.insecure.test
expect "no MX: implicit MX" \
	'j["ok"] and not j["have_mx"] and [h["name"] for h in j["hosts"]]==["implicit.secure.test"]' \
	destinations implicit.secure.test
expect "MX target that is a CNAME is kept as named" \
	'j["ok"] and [h["name"] for h in j["hosts"]]==["mxalias.secure.test"]' destinations viaalias.secure.test
expect "IPv4 literal: one host, no DNS, not authentic" \
	'j["ok"] and j["hosts"]==[{"name":"[127.0.0.1]","is_ip":True,"preference":-1}] and not j["orig_authentic"]' \
	destinations "[127.0.0.1]"
expect "IPv6 literal" \
	'j["ok"] and j["hosts"][0]["name"]=="[IPv6:::1]" and j["hosts"][0]["is_ip"]' destinations "[IPv6:::1]"

# --- gather_ips (docs/destinations.md, "Addresses of a host", "Dialing order")
expect "dual-stack host: IPv6 first, authentic" \
	'j["ok"] and j["dualstack"] and j["addrs"]==["::1","127.0.0.1"] and j["authentic"] and j["expanded_authentic"]' \
	ips mx1.secure.test
expect "after dialing ::1 the other family leads" \
	'j["ok"] and j["addrs"]==["127.0.0.1","::1"]' ips mx1.secure.test ::1
expect "host CNAME followed explicitly" \
	'j["ok"] and j["expanded"]=="mx1.secure.test" and j["addrs"]==["::1","127.0.0.1"]' ips mxalias.secure.test
expect "single-stack insecure host: not authentic" \
	'j["ok"] and not j["dualstack"] and j["addrs"]==["127.0.0.1"] and not j["authentic"]' ips implicit.insecure.test
expect "missing host: temporary, no address" \
	'not j["ok"] and not j["permanent"] and "no address" in j["error"]' ips nope.secure.test
expect "bogus host: temporary with EDE" \
	'not j["ok"] and not j["permanent"] and j["ede"] in (6,7)' ips mx1.bogus.test

# --- zones can change under a running resolver (for later scenarios)
dns_peers_add_record secure.test "added MX 5 mx1.secure.test."
dns_peers_reload
expect "record added after start is served" \
	'j["ok"] and [h["name"] for h in j["hosts"]]==["mx1.secure.test"] and j["orig_authentic"]' \
	destinations added.secure.test

# --- a resolver that does not answer
DEAD=127.0.0.1:$(free_port)
out=$("$PROBE" "$DEAD" destinations secure.test 2>/dev/null) || true
check "no resolver: temporary 4.4.3" $PY -c "import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if not j['ok'] and not j['permanent'] and j['enhanced']=='4.4.3' else 1)" "$out"

dns_peers_stop
e2e_finish
