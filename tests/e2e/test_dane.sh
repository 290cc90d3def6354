#!/bin/bash
# DANE (RFC 7672) end to end: a test matrix in the manner of Postfix's
# tls_dane.sh and Exim's DANE tests, against real peers on loopback:
# NSD + a validating Unbound (dns_peers.sh) serve the MX, A and TLSA records
# (secure.test signed, insecure.test unsigned, bogus.test with expired
# signatures); one private Postfix (dane_peers.sh) has a listener per case on
# its own address 127.0.1.N and the one [delivery] port, each with its own
# certificate chain (dane_pki.py makes them all in one go) and its own
# syslog name, so that its maillog says what each receiving server saw.
#
# Every case has its own recipient domain ID.secure.test (or .insecure.test)
# and MX host mx-ID.secure.test, with TLSA records at _PORT._tcp.<host>
# (PORT = [delivery] port). All messages are submitted at once, then each
# case is checked (dane_check.py):
#   - outpost: delivered or deferred, the enhanced status code, and the TLS
#     result in `queue show --json` (tls_policy, tls_verified, tls_detail);
#   - TLS-RPT: `tlsrpt results --domain <TLSA base domain> --json`;
#   - the receiving Postfix: the message in its Maildir with a Received:
#     header that says ESMTPS/TLS, or no MAIL in any of its sessions; a TLS
#     session; the SNI name it was asked for (per-listener SNI tables).
# Then posttls-finger (Postfix's own DANE client, in a mount namespace whose
# /etc/resolv.conf names a second validating Unbound on 127.0.1.60:53) must
# reach the same verdict as outpost for a set of representative cases.
#
# The cases (addresses 127.0.1.1 - .59; .60:53 is posttls-finger's resolver):
#   1  ok-U-S-M      usage 2|3 x selector 0|1 x matching 0|1|2, matching: DANE-TA/DANE-EE
#   2  no-U-S-M      the same, records of another certificate/key: 4.7.5
#   3  ta-badname    DANE-TA, leaf names none of the reference identifiers: 4.7.5
#      ta-chain      leaf -> intermediate -> root, chain sent, 2 0 1 root: delivered
#      ta-notsent    chain sent without the root, 2 0 1 + 2 1 1 root (digests only): 4.7.5
#      ta-full-dns   the same chain, 2 0 0 root (the TA only in DNS): delivered
#      ta-spki-dns   the same chain, 2 1 0 root (the TA key only in DNS): delivered
#      ta-int        2 1 1 of the intermediate: delivered
#   4  ee-expired    DANE-EE, expired self-signed certificate: delivered
#      ee-badname    DANE-EE, certificate (RSA) for another name: delivered
#      ta-expired    DANE-TA, expired leaf: 4.7.5 (DANE-TA checks dates)
#      ee-samekey-cert  3 0 1 of another certificate with the same key: 4.7.5
#      ee-samekey-spki  3 1 1 of another certificate with the same key: delivered
#   5  ins-zone      host and TLSA (wrong) in insecure.test: no DANE, delivered
#      ins-cname     signed host, its TLSA name CNAMEd into insecure.test: no DANE
#      ins-addr      host in secure.test, CNAMEd to an address in insecure.test,
#                    wrong TLSA at the signed name: no DANE (RFC 7672 §2.2.2)
#      ins-hs        host and TLSA in insecure.test, the handshake fails: the
#                    same host again in plaintext, delivered (opportunistic TLS)
#   6  bogus-cname   TLSA name CNAMEd into bogus.test (the host's A is fine): not dialled
#      bogus-sig     TLSA RRset in secure.test with a corrupted RRSIG: not dialled
#   7  unusable      1 1 1, 0 0 1, 3 1 1 with 31 octets: TLS, unverified
#      unusable-more 3 1 2 (32 octets), 4 1 1, 3 2 1, 3 1 3, 2 0 0 garbage,
#                    3 1 0 garbage, 3 1 1 with 33 octets: TLS, unverified
#      unusable-wrong  1 1 1 matching + 3 1 1 not matching: 4.7.5
#      unusable-match  unusable ones + 3 1 1 matching: DANE-EE
#      hs-dane, hs-unusable  usable / only unusable records, and a server that
#                    answers STARTTLS with garbage (hostile_mx.py tls-fallback,
#                    which takes mail without TLS): deferred, never plaintext
#   8  nostarttls    usable TLSA, Postfix without STARTTLS: 4.7.4
#   9  cname-mx      MX host CNAME -> target, records at the target (a wrong
#                    one at the alias; the listener's default certificate is
#                    another one, the right one only for SNI = the target): delivered
#      cname-mx-alias  records at the alias name only: delivered, base = alias
#      cname-mx-ta   DANE-TA, leaf names only the target (the TLSA base): delivered
#      cname-mx-ta-host  DANE-TA, leaf names only the alias (the MX host): delivered
#      tlsa-cname    the TLSA RRset behind a (signed) CNAME: delivered
#  10  mxu-ok        MX RRset in insecure.test -> host in secure.test: DANE-EE
#      mxu-wrong     the same, wrong record: 4.7.5
#      mxu-ta-domain DANE-TA, leaf names only the recipient domain, MX unsigned: 4.7.5
#      mxs-ta-domain the same with a signed MX RRset: delivered
#      fb-dane, fb-bogus, fb-nostarttls  MX 10 fails (DANE mismatch, TLSA
#                    lookup failure, no STARTTLS), MX 20 (mx-fb-good) delivers
#  11  posttls-finger, for 17 cases, must reach outpost's verdict
#  then: one retry of every deferred case (the same verdict, never plaintext);
#      resume: two more messages resume the TLS session and verify DANE-TA again;
#      roll: the TLSA record replaced by a wrong one (the next message is
#      deferred), then by 2 1 1 of the CA (its retry is delivered).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in nsd unbound ldns-signzone ldns-keygen postfix posttls-finger unshare dig curl; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
/usr/bin/python3 -c 'import cryptography' ||
	{ echo "missing python3-cryptography (scripts/deps.sh test)"; exit 1; }
T0=$SECONDS
source "$HERE/peers.sh"
source "$HERE/dane_peers.sh"

dane_pick_port
P=$DP_PORT
K=$PEERS/dpki
CASES=$E2E_DIR/cases.jsonl
TLSADIR=$E2E_DIR/tlsa
mkdir -p "$TLSADIR"
: >"$CASES"

# ---- certificates ------------------------------------------------------------
# cax: an unrelated CA that issues the DANE-EE leaves (nobody trusts it);
# decoy-ca / decoy-leaf: never served, their records are the wrong ones.
{
	echo "ca cax"
	echo "ca decoy-ca"
	echo "leaf decoy-leaf issuer=decoy-ca dns=decoy.secure.test"
	for s in 0 1; do for m in 0 1 2; do
		for v in ok no; do
			echo "ca ca-$v-2-$s-$m"
			echo "leaf l-$v-2-$s-$m issuer=ca-$v-2-$s-$m dns=mx-$v-2-$s-$m.secure.test"
			echo "leaf l-$v-3-$s-$m issuer=cax dns=mx-$v-3-$s-$m.secure.test"
		done
	done; done
	echo "ca ca-tabad"
	echo "leaf l-tabad issuer=ca-tabad dns=nowhere.example,mx.nowhere.example"
	for t in chain ns fd sd ti; do
		echo "ca r-$t"
		echo "ca i-$t issuer=r-$t"
	done
	echo "leaf l-chain issuer=i-chain dns=mx-ta-chain.secure.test"
	echo "leaf l-ns issuer=i-ns dns=mx-ta-notsent.secure.test"
	echo "leaf l-fd issuer=i-fd dns=mx-ta-full-dns.secure.test"
	echo "leaf l-sd issuer=i-sd dns=mx-ta-spki-dns.secure.test"
	echo "leaf l-ti issuer=i-ti dns=mx-ta-int.secure.test"
	echo "leaf l-eeexp issuer=self dns=mx-ee-expired.secure.test expired"
	echo "leaf l-eebad issuer=cax dns=other.example rsa"
	echo "ca ca-taexp"
	echo "leaf l-taexp issuer=ca-taexp dns=mx-ta-expired.secure.test expired"
	echo "leaf l-inszone issuer=cax dns=mx-ins-zone.insecure.test"
	echo "leaf l-inscn issuer=cax dns=mx-ins-cname.secure.test"
	echo "leaf l-insaddr issuer=cax dns=mx-ins-addr.secure.test"
	echo "leaf l-bogcn issuer=cax dns=mx-bogus-cname.secure.test"
	for u in unus unus2 unus3 unus4 nost cnmx cnmxdef cnal tlcn mxuok mxuwr; do
		echo "leaf l-$u issuer=cax dns=$u.secure.test"
	done
	for u in cnta mxuta mxsta; do echo "ca ca-$u"; done
	echo "leaf l-cnta issuer=ca-cnta dns=tg-cname-mx-ta.secure.test"
	echo "ca ca-cnth"
	echo "leaf l-cnth issuer=ca-cnth dns=mx-cname-mx-ta-host.secure.test"
	echo "leaf l-mxuta issuer=ca-mxuta dns=mxu-ta-domain.insecure.test"
	echo "leaf l-mxsta issuer=ca-mxsta dns=mxs-ta-domain.secure.test"
	echo "leaf l-hsdane issuer=cax dns=mx-hs-dane.secure.test"
	echo "leaf l-skA issuer=cax dns=mx-ee-samekey-cert.secure.test"
	echo "leaf l-skB issuer=cax dns=mx-ee-samekey-cert.secure.test key=l-skA"
	echo "leaf l-skC issuer=cax dns=mx-ee-samekey-spki.secure.test"
	echo "leaf l-skD issuer=decoy-ca dns=other.example key=l-skC"
	for u in resume roll; do
		echo "ca ca-$u"
		echo "leaf l-$u issuer=ca-$u dns=mx-$u.secure.test"
	done
	echo "leaf l-fbbad issuer=cax dns=mx-fb-dane-bad.secure.test"
	echo "leaf l-fbgood issuer=cax dns=mx-fb-good.secure.test"
} | /usr/bin/python3 "$HERE/dane_pki.py" "$K"
source "$K/tlsa.sh"

# pem NAME CERT...: the key of the first certificate, then the certificates.
pem() {
	local out=$K/$1.pem c
	shift
	{
		cat "$K/$1.key"
		for c; do cat "$K/$c.crt"; done
	} >"$out"
	chmod 600 "$out"
	echo "$out"
}
# rec USAGE CERT SELECTOR MTYPE: "U S M hex" for CERT.
rec() {
	local v="TLSA_${2//-/_}_$3_$4"
	echo "$1 $3 $4 ${!v}"
}

# ---- the cases ---------------------------------------------------------------
# dcase ID N DOMAIN MX KIND [key=value ...]: case ID on 127.0.1.N, recipient
# u@DOMAIN; the keys go into its JSON line for dane_check.py (base: the TLSA
# base domain, default MX; verified, record: for kind dane; rtype, reason,
# why: the failure for other kinds; sni: the name the receiver must see; see
# dane_check.py for the rest). Values are written as they are: no quotes or
# backslashes in them.
dcase() {
	local id=$1 n=$2 dom=$3 mx=$4 kind=$5 kv json="" k v
	shift 5
	for kv in "id=$id" "addr=127.0.1.$n" "rcpt=u@$dom" "mx=$mx" "kind=$kind" "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		json+="${json:+, }\"$k\": \"$v\""
	done
	echo "{$json}" >>"$CASES"
}
zone() { dns_peers_add_record "$1" "$2"; }
# tlsa ZONE OWNER BASE "U S M HEX" [unusable]: a TLSA record at
# _PORT._tcp.OWNER (relative to ZONE), BASE's (none: not a DANE case); the
# usable ones are the policy-string expected for BASE.
tlsa() {
	zone "$1" "_$P._tcp.$2 TLSA $4"
	[ "$3" = none ] && return
	echo "$4" >>"$TLSADIR/$3.all"
	[ "${5:-}" = unusable ] || echo "$4" >>"$TLSADIR/$3.usable"
}
# host ID N [ZONE]: mx-ID A 127.0.1.N
host() { zone "${3:-secure.test}" "mx-$1 A 127.0.1.$2"; }
mxof() { zone "${2:-secure.test}" "$1 MX 10 mx-$1"; }

S=secure.test
n=0
# 1 and 2: every usage x selector x matching type, matching and not
for u in 2 3; do for s in 0 1; do for m in 0 1 2; do
	for v in ok no; do
		n=$((n + 1))
		id=$v-$u-$s-$m
		[ $v = ok ] && cert=l-$id || cert=decoy-leaf
		[ $u = 2 ] && { [ $v = ok ] && cert=ca-$id || cert=decoy-ca; }
		host $id $n
		mxof $id
		tlsa $S mx-$id mx-$id.$S "$(rec $u $cert $s $m)"
		[ $u = 2 ] && chain=$(pem $id l-$id ca-$id) || chain=$(pem $id l-$id cax)
		dane_listener $id 127.0.1.$n "$chain" sni=mx-$id.$S
		if [ $v = ok ]; then
			verified=DANE-EE
			[ $u = 2 ] && verified=DANE-TA
			dcase $id $n $id.$S mx-$id.$S dane verified=$verified "record=$u $s $m" sni=mx-$id.$S
		else
			dcase $id $n $id.$S mx-$id.$S dane-fail rtype=tlsa-invalid reason=dane-no-match \
				why=dane-no-match sni=mx-$id.$S
		fi
	done
done; done; done

# 3: DANE-TA names and chains
for c in "ta-badname 25 l-tabad ca-tabad|$(rec 2 ca-tabad 1 1)" \
	"ta-chain 26 l-chain i-chain r-chain|$(rec 2 r-chain 0 1)" \
	"ta-notsent 27 l-ns i-ns|$(rec 2 r-ns 0 1)|$(rec 2 r-ns 1 1)" \
	"ta-full-dns 28 l-fd i-fd|$(rec 2 r-fd 0 0)" \
	"ta-spki-dns 29 l-sd i-sd|$(rec 2 r-sd 1 0)" \
	"ta-int 30 l-ti i-ti r-ti|$(rec 2 i-ti 1 1)" \
	"ee-expired 31 l-eeexp|$(rec 3 l-eeexp 1 1)" \
	"ee-badname 32 l-eebad cax|$(rec 3 l-eebad 0 1)" \
	"ta-expired 33 l-taexp ca-taexp|$(rec 2 ca-taexp 0 1)"; do
	IFS='|' read -r spec r1 r2 <<<"$c"
	read -r id n certs <<<"$spec"
	host $id $n
	mxof $id
	tlsa $S mx-$id mx-$id.$S "$r1"
	[ -n "$r2" ] && tlsa $S mx-$id mx-$id.$S "$r2"
	# shellcheck disable=SC2086
	dane_listener $id 127.0.1.$n "$(pem $id $certs)" sni=mx-$id.$S
done
dcase ta-badname 25 ta-badname.$S mx-ta-badname.$S dane-fail rtype=certificate-host-mismatch \
	reason=hostname-mismatch why=host-mismatch sni=mx-ta-badname.$S
dcase ta-chain 26 ta-chain.$S mx-ta-chain.$S dane verified=DANE-TA "record=2 0 1" sni=mx-ta-chain.$S
dcase ta-notsent 27 ta-notsent.$S mx-ta-notsent.$S dane-fail \
	"rtype=tlsa-invalid|certificate-not-trusted" why='not verified' sni=mx-ta-notsent.$S
dcase ta-full-dns 28 ta-full-dns.$S mx-ta-full-dns.$S dane verified=DANE-TA "record=2 0 0" \
	sni=mx-ta-full-dns.$S
dcase ta-spki-dns 29 ta-spki-dns.$S mx-ta-spki-dns.$S dane verified=DANE-TA "record=2 1 0" \
	sni=mx-ta-spki-dns.$S
dcase ta-int 30 ta-int.$S mx-ta-int.$S dane verified=DANE-TA "record=2 1 1" sni=mx-ta-int.$S
# 4: DANE-EE checks neither names nor dates (RFC 7672 §3.1.1); DANE-TA does
dcase ee-expired 31 ee-expired.$S mx-ee-expired.$S dane verified=DANE-EE "record=3 1 1" \
	sni=mx-ee-expired.$S
dcase ee-badname 32 ee-badname.$S mx-ee-badname.$S dane verified=DANE-EE "record=3 0 1" \
	sni=mx-ee-badname.$S
dcase ta-expired 33 ta-expired.$S mx-ta-expired.$S dane-fail rtype=certificate-expired \
	reason=certificate-has-expired why=expired sni=mx-ta-expired.$S

# 5: no DANE where DNSSEC does not reach
host ins-zone 34 insecure.test
mxof ins-zone insecure.test
tlsa insecure.test mx-ins-zone none "$(rec 3 decoy-leaf 1 1)" unusable
dane_listener ins-zone 127.0.1.34 "$(pem ins-zone l-inszone cax)" sni=mx-ins-zone.insecure.test
dcase ins-zone 34 ins-zone.insecure.test mx-ins-zone.insecure.test opportunistic \
	sni=mx-ins-zone.insecure.test
host ins-cname 35
mxof ins-cname
zone $S "_$P._tcp.mx-ins-cname CNAME _$P._tcp.tl-ins-cname.insecure.test."
tlsa insecure.test tl-ins-cname none "$(rec 3 decoy-leaf 1 1)" unusable
dane_listener ins-cname 127.0.1.35 "$(pem ins-cname l-inscn cax)" sni=mx-ins-cname.$S
dcase ins-cname 35 ins-cname.$S mx-ins-cname.$S opportunistic sni=mx-ins-cname.$S
zone $S "mx-ins-addr CNAME mx-ins-addr.insecure.test."
zone insecure.test "mx-ins-addr A 127.0.1.36"
mxof ins-addr
tlsa $S mx-ins-addr none "$(rec 3 decoy-leaf 1 1)" unusable
tlsa insecure.test mx-ins-addr none "$(rec 3 decoy-leaf 1 1)" unusable
dane_listener ins-addr 127.0.1.36 "$(pem ins-addr l-insaddr cax)" sni=mx-ins-addr.$S
dcase ins-addr 36 ins-addr.$S mx-ins-addr.$S opportunistic sni=mx-ins-addr.$S
# without DANE a failed handshake is retried in plaintext on the same host
host ins-hs 38 insecure.test
mxof ins-hs insecure.test
tlsa insecure.test mx-ins-hs none "$(rec 3 decoy-leaf 1 1)" unusable
dp_python ins-hs 127.0.1.38 tls-fallback
dcase ins-hs 38 ins-hs.insecure.test mx-ins-hs.insecure.test plainfb

# 6: TLSA lookups that fail while the host's addresses are fine. bogus.test
# is bogus as a whole, so its own hosts never get as far as TLSA: here the
# host is in secure.test and (a) its TLSA name is a signed CNAME into
# bogus.test, (b) its TLSA RRset's signature is corrupted after signing.
# Both hosts are one server, which must never hear from outpost.
host bogus-cname 37
mxof bogus-cname
zone $S "_$P._tcp.mx-bogus-cname CNAME _$P._tcp.tl.bogus.test."
zone bogus.test "_$P._tcp.tl TLSA $(rec 3 l-bogcn 1 1)"
dane_listener bogus 127.0.1.37 "$(pem bogus l-bogcn cax)" sni=mx-bogus-cname.$S
dcase bogus-cname 37 bogus-cname.$S mx-bogus-cname.$S skipped listener=bogus \
	rtype=dnssec-invalid 'reason=dns-extended-error-.*|tlsa-lookup-failed'
host bogus-sig 37
mxof bogus-sig
zone $S "_$P._tcp.mx-bogus-sig TLSA $(rec 3 l-bogcn 1 1)"
dcase bogus-sig 37 bogus-sig.$S mx-bogus-sig.$S skipped listener=bogus rtype=dnssec-invalid \
	'reason=dns-extended-error-.*|tlsa-lookup-failed' sessions=2

# 7: unusable records
H=$(rec 3 l-unus 1 1)
H=${H##* }
tlsa $S mx-unusable mx-unusable.$S "$(rec 1 l-unus 1 1)" unusable
tlsa $S mx-unusable mx-unusable.$S "$(rec 0 cax 0 1)" unusable
tlsa $S mx-unusable mx-unusable.$S "3 1 1 ${H:0:62}" unusable
H=$(rec 3 l-unus2 1 1)
H=${H##* }
for r in "3 1 2 $H" "4 1 1 $H" "3 2 1 $H" "3 1 3 $H" "2 0 0 00112233445566778899aabbccddeeff0011223344556677" \
	"3 1 0 3059301306072a8648ce3d020106082a8648ce3d0301" "3 1 1 ${H}aa"; do
	tlsa $S mx-unusable-more mx-unusable-more.$S "$r" unusable
done
tlsa $S mx-unusable-wrong mx-unusable-wrong.$S "$(rec 1 l-unus3 1 1)" unusable
tlsa $S mx-unusable-wrong mx-unusable-wrong.$S "$(rec 3 decoy-leaf 1 1)"
H=$(rec 3 l-unus4 1 1)
H=${H##* }
tlsa $S mx-unusable-match mx-unusable-match.$S "0 0 1 ${H}" unusable
tlsa $S mx-unusable-match mx-unusable-match.$S "3 1 1 ${H:2}" unusable
tlsa $S mx-unusable-match mx-unusable-match.$S "$(rec 3 l-unus4 1 1)"
n=38
for c in "unusable unus" "unusable-more unus2" "unusable-wrong unus3" "unusable-match unus4"; do
	read -r id l <<<"$c"
	n=$((n + 1))
	host $id $n
	mxof $id
	dane_listener $id 127.0.1.$n "$(pem $id l-$l cax)" sni=mx-$id.$S
done
dcase unusable 39 unusable.$S mx-unusable.$S unauth rtype=tlsa-invalid \
	reason=all-unusable-records sni=mx-unusable.$S
dcase unusable-more 40 unusable-more.$S mx-unusable-more.$S unauth rtype=tlsa-invalid \
	reason=all-unusable-records sni=mx-unusable-more.$S
dcase unusable-wrong 41 unusable-wrong.$S mx-unusable-wrong.$S dane-fail rtype=tlsa-invalid \
	reason=dane-no-match why=dane-no-match sni=mx-unusable-wrong.$S
dcase unusable-match 42 unusable-match.$S mx-unusable-match.$S dane verified=DANE-EE \
	"record=3 1 1" sni=mx-unusable-match.$S

# 8: no STARTTLS
host nostarttls 43
mxof nostarttls
tlsa $S mx-nostarttls mx-nostarttls.$S "$(rec 3 l-nost 1 1)"
dane_listener nostarttls 127.0.1.43 "$(pem nostarttls l-nost cax)" -o smtpd_tls_security_level=none
dcase nostarttls 43 nostarttls.$S mx-nostarttls.$S refused rtype=starttls-not-supported \
	'reason=smtp-starttls-reply-code-5[0-9][0-9]' sessions=2

# 9: CNAMEs
zone $S "mx-cname-mx CNAME tg-cname-mx.$S."
zone $S "tg-cname-mx A 127.0.1.44"
mxof cname-mx
tlsa $S tg-cname-mx tg-cname-mx.$S "$(rec 3 l-cnmx 1 1)"
tlsa $S mx-cname-mx mx-cname-mx.$S "$(rec 3 decoy-leaf 1 1)"
dane_listener cname-mx 127.0.1.44 "$(pem cname-mx-default l-cnmxdef cax)" \
	sni=tg-cname-mx.$S snichain="$(pem cname-mx l-cnmx cax)"
dcase cname-mx 44 cname-mx.$S mx-cname-mx.$S dane base=tg-cname-mx.$S verified=DANE-EE \
	"record=3 1 1" sni=tg-cname-mx.$S
zone $S "mx-cname-mx-alias CNAME tg-cname-mx-alias.$S."
zone $S "tg-cname-mx-alias A 127.0.1.45"
mxof cname-mx-alias
tlsa $S mx-cname-mx-alias mx-cname-mx-alias.$S "$(rec 3 l-cnal 1 1)"
dane_listener cname-mx-alias 127.0.1.45 "$(pem cname-mx-alias l-cnal cax)" sni=mx-cname-mx-alias.$S
dcase cname-mx-alias 45 cname-mx-alias.$S mx-cname-mx-alias.$S dane verified=DANE-EE \
	"record=3 1 1" sni=mx-cname-mx-alias.$S
zone $S "mx-cname-mx-ta CNAME tg-cname-mx-ta.$S."
zone $S "tg-cname-mx-ta A 127.0.1.46"
mxof cname-mx-ta
tlsa $S tg-cname-mx-ta tg-cname-mx-ta.$S "$(rec 2 ca-cnta 1 1)"
dane_listener cname-mx-ta 127.0.1.46 "$(pem cname-mx-ta l-cnta ca-cnta)" sni=tg-cname-mx-ta.$S
dcase cname-mx-ta 46 cname-mx-ta.$S mx-cname-mx-ta.$S dane base=tg-cname-mx-ta.$S \
	verified=DANE-TA "record=2 1 1" sni=tg-cname-mx-ta.$S
zone $S "mx-cname-mx-ta-host CNAME tg-cname-mx-ta-host.$S."
zone $S "tg-cname-mx-ta-host A 127.0.1.53"
mxof cname-mx-ta-host
tlsa $S tg-cname-mx-ta-host tg-cname-mx-ta-host.$S "$(rec 2 ca-cnth 1 1)"
dane_listener cname-mx-ta-host 127.0.1.53 "$(pem cname-mx-ta-host l-cnth ca-cnth)" \
	sni=tg-cname-mx-ta-host.$S
dcase cname-mx-ta-host 53 cname-mx-ta-host.$S mx-cname-mx-ta-host.$S dane \
	base=tg-cname-mx-ta-host.$S verified=DANE-TA "record=2 1 1" sni=tg-cname-mx-ta-host.$S
host tlsa-cname 47
mxof tlsa-cname
zone $S "_$P._tcp.mx-tlsa-cname CNAME _$P._tcp.tlsa-store.$S."
tlsa $S tlsa-store mx-tlsa-cname.$S "$(rec 3 l-tlcn 1 1)"
dane_listener tlsa-cname 127.0.1.47 "$(pem tlsa-cname l-tlcn cax)" sni=mx-tlsa-cname.$S
dcase tlsa-cname 47 tlsa-cname.$S mx-tlsa-cname.$S dane verified=DANE-EE "record=3 1 1" \
	sni=mx-tlsa-cname.$S

# 10: an unsigned MX RRset does not switch DANE off; the recipient domain is
# a reference identifier only under a signed one (RFC 7672 §3.2.2)
for c in "mxu-ok 48 insecure.test l-mxuok cax|$(rec 3 l-mxuok 1 1)" \
	"mxu-wrong 49 insecure.test l-mxuwr cax|$(rec 3 decoy-leaf 1 1)" \
	"mxu-ta-domain 50 insecure.test l-mxuta ca-mxuta|$(rec 2 ca-mxuta 0 1)" \
	"mxs-ta-domain 51 secure.test l-mxsta ca-mxsta|$(rec 2 ca-mxsta 0 1)"; do
	IFS='|' read -r spec r1 <<<"$c"
	read -r id n z certs <<<"$spec"
	host $id $n
	zone $z "$id MX 10 mx-$id.$S."
	tlsa $S mx-$id mx-$id.$S "$r1"
	# shellcheck disable=SC2086
	dane_listener $id 127.0.1.$n "$(pem $id $certs)" sni=mx-$id.$S
done
dcase mxu-ok 48 mxu-ok.insecure.test mx-mxu-ok.$S dane verified=DANE-EE "record=3 1 1" \
	sni=mx-mxu-ok.$S
dcase mxu-wrong 49 mxu-wrong.insecure.test mx-mxu-wrong.$S dane-fail rtype=tlsa-invalid \
	reason=dane-no-match why=dane-no-match sni=mx-mxu-wrong.$S
dcase mxu-ta-domain 50 mxu-ta-domain.insecure.test mx-mxu-ta-domain.$S dane-fail \
	rtype=certificate-host-mismatch reason=hostname-mismatch why=host-mismatch \
	sni=mx-mxu-ta-domain.$S
dcase mxs-ta-domain 51 mxs-ta-domain.$S mx-mxs-ta-domain.$S dane verified=DANE-TA \
	"record=2 0 1" sni=mx-mxs-ta-domain.$S

# DANE or not, a failed handshake never turns into plaintext: hostile_mx.py
# (tls-fallback) answers STARTTLS with 220 and garbage, and takes mail
# without TLS from whoever comes back without it
host hs-dane 52
mxof hs-dane
tlsa $S mx-hs-dane mx-hs-dane.$S "$(rec 3 l-hsdane 1 1)"
dp_python hs-dane 127.0.1.52 tls-fallback
dcase hs-dane 52 hs-dane.$S mx-hs-dane.$S hsfail rtype=validation-failure 'why=(?i)tls|handshake'
zone $S "mx-hs-unusable A 127.0.1.52" # the same server
mxof hs-unusable
tlsa $S mx-hs-unusable mx-hs-unusable.$S "$(rec 1 l-hsdane 1 1)" unusable
H=$(rec 3 l-hsdane 1 1)
H=${H##* }
tlsa $S mx-hs-unusable mx-hs-unusable.$S "3 1 1 ${H:0:62}" unusable
dcase hs-unusable 52 hs-unusable.$S mx-hs-unusable.$S hsfail listener=hs-dane code=4.7. \
	rtype=validation-failure \
	'why=(?i)tls|handshake'

# selectors for real: a certificate that shares the served one's key matches
# "3 1 1" (SPKI) but not "3 0 1" (the whole certificate)
host ee-samekey-cert 54
mxof ee-samekey-cert
tlsa $S mx-ee-samekey-cert mx-ee-samekey-cert.$S "$(rec 3 l-skB 0 1)"
dane_listener ee-samekey-cert 127.0.1.54 "$(pem ee-samekey-cert l-skA cax)" sni=mx-ee-samekey-cert.$S
dcase ee-samekey-cert 54 ee-samekey-cert.$S mx-ee-samekey-cert.$S dane-fail rtype=tlsa-invalid \
	reason=dane-no-match why=dane-no-match
host ee-samekey-spki 55
mxof ee-samekey-spki
tlsa $S mx-ee-samekey-spki mx-ee-samekey-spki.$S "$(rec 3 l-skD 1 1)"
dane_listener ee-samekey-spki 127.0.1.55 "$(pem ee-samekey-spki l-skC cax)" sni=mx-ee-samekey-spki.$S
dcase ee-samekey-spki 55 ee-samekey-spki.$S mx-ee-samekey-spki.$S dane verified=DANE-EE \
	"record=3 1 1" sni=mx-ee-samekey-spki.$S

# later: session resumption under DANE-TA, and a TLSA rollover
host resume 56
mxof resume
tlsa $S mx-resume mx-resume.$S "$(rec 2 ca-resume 1 1)"
dane_listener resume 127.0.1.56 "$(pem resume l-resume ca-resume)" sni=mx-resume.$S
dcase resume 56 resume.$S mx-resume.$S dane verified=DANE-TA "record=2 1 1" sni=mx-resume.$S
host roll 57
mxof roll
tlsa $S mx-roll mx-roll.$S "$(rec 3 l-roll 1 1)"
dane_listener roll 127.0.1.57 "$(pem roll l-roll ca-roll)" sni=mx-roll.$S
dcase roll 57 roll.$S mx-roll.$S dane verified=DANE-EE "record=3 1 1" sni=mx-roll.$S

# the next MX after a DANE failure, a failed TLSA lookup, a STARTTLS refusal
host fb-dane-bad 58
tlsa $S mx-fb-dane-bad mx-fb-dane-bad.$S "$(rec 3 decoy-leaf 1 1)"
dane_listener fb-bad 127.0.1.58 "$(pem fb-bad l-fbbad cax)" sni=mx-fb-dane-bad.$S
host fb-good 59
tlsa $S mx-fb-good mx-fb-good.$S "$(rec 3 l-fbgood 1 1)"
dane_listener fb-good 127.0.1.59 "$(pem fb-good l-fbgood cax)" sni=mx-fb-good.$S
for c in "fb-dane fb-dane-bad fb-bad dane-fail" "fb-bogus bogus-sig bogus skipped" \
	"fb-nostarttls nostarttls nostarttls refused"; do
	read -r id first listener kind <<<"$c"
	zone $S "$id MX 10 mx-$first"
	zone $S "$id MX 20 mx-fb-good"
	extra=()
	[ $id = fb-dane ] && extra=("first_base=mx-fb-dane-bad.$S" first_addr=127.0.1.58 first_rtype=tlsa-invalid)
	dcase $id 59 $id.$S mx-fb-good.$S dane listener=fb-good verified=DANE-EE "record=3 1 1" \
		sni=mx-fb-good.$S sessions=3 first=$listener first_kind=$kind "${extra[@]}"
done

# ---- peers up ------------------------------------------------------------------
dns_peers_start
dane_postfix_start
# (b) of case 6: one signature of the signed zone spoilt, then NSD reloads
/usr/bin/python3 - "$PEERS/dns/secure.test.zone.signed" "_$P._tcp.mx-bogus-sig.$S." <<'EOF'
import base64, sys
path, owner = sys.argv[1], sys.argv[2]
out, n = [], 0
for line in open(path):
    f = line.split()
    if len(f) > 5 and f[0].lower() == owner.lower() and f[3] == "RRSIG" and f[4] == "TLSA":
        sig = bytearray(base64.b64decode(f[-1]))
        sig[10] ^= 0xff
        line = line.rstrip("\n")[: -len(f[-1])] + base64.b64encode(bytes(sig)).decode() + "\n"
        n += 1
    out.append(line)
open(path, "w").write("".join(out))
sys.exit(0 if n == 1 else 1)
EOF
kill -HUP "$DNS_PEERS_NSD_PID"
dp_ready
dane_finger_start

e2e_config <<EOF
[server]
hostname = outpost.insecure.test
[dns]
nameserver = $DNS_RESOLVER
trust_ad = yes
# records change mid-scenario (dns_peers_reload): answers kept 1 s at most
cache_max_ttl = 1s
[delivery]
port = $DP_PORT
first_retry = 10m
connection_max_messages = 1
connect_timeout = 2s
command_timeout = 10s
data_timeout = 10s
tls_timeout = 5s
EOF
e2e_start
echo "# peers and daemon up after $((SECONDS - T0)) s (port $DP_PORT, resolver $DNS_RESOLVER)"

# ---- the test bed itself: what the resolver says about the records ------------
DIG="dig +dnssec +tries=1 +time=3 @${DNS_RESOLVER%:*} -p ${DNS_RESOLVER#*:}"
dig_says() { # NAME TYPE STATUS AD(yes|no)
	local out
	out=$($DIG "$1" "$2")
	grep -q "status: $3," <<<"$out" || return 1
	if [ "$4" = yes ]; then grep -Eq 'flags:[a-z ]* ad[ ;]' <<<"$out"; else ! grep -Eq 'flags:[a-z ]* ad[ ;]' <<<"$out"; fi
}
wait_nsd_reload() { $DIG "_$P._tcp.mx-bogus-sig.$S" TLSA | grep -q 'status: SERVFAIL'; }
check "test bed: the corrupted RRSIG is served, the TLSA RRset of mx-bogus-sig is bogus (SERVFAIL)" \
	wait_until 10 wait_nsd_reload
check "test bed: TLSA of mx-ok-3-1-1.secure.test is authentic (AD)" \
	dig_says "_$P._tcp.mx-ok-3-1-1.$S" TLSA NOERROR yes
check "test bed: the A record of mx-bogus-sig (same zone) is still authentic" \
	dig_says "mx-bogus-sig.$S" A NOERROR yes
bogus_cname_bed() { dig_says "_$P._tcp.mx-bogus-cname.$S" TLSA SERVFAIL no && dig_says "mx-bogus-cname.$S" A NOERROR yes; }
check "test bed: TLSA of mx-bogus-cname (CNAME into bogus.test) is SERVFAIL, its A is authentic" \
	bogus_cname_bed
check "test bed: TLSA of mx-ins-zone.insecure.test answers without AD" \
	dig_says "_$P._tcp.mx-ins-zone.insecure.test" TLSA NOERROR no
check "test bed: TLSA behind the CNAME into insecure.test answers without AD" \
	dig_says "_$P._tcp.mx-ins-cname.$S" TLSA NOERROR no
check "test bed: mx-ins-addr.secure.test A (CNAME into insecure.test) answers without AD" \
	dig_says "mx-ins-addr.$S" A NOERROR no
mxu_bed() { dig_says mxu-ok.insecure.test MX NOERROR no && dig_says "mx-mxu-ok.$S" A NOERROR yes; }
check "test bed: the MX RRset of mxu-ok.insecure.test has no AD, its host's A has" mxu_bed

# ---- submit everything, then wait for every first attempt --------------------------
mapfile -t RCPTS < <($PY -c 'import json,sys; [print(json.loads(l)["rcpt"]) for l in open(sys.argv[1])]' "$CASES")
T1=$SECONDS
$PY "$HERE/dane_check.py" submit "$SMTP_PORT" s@snd.insecure.test "${RCPTS[@]}" >"$E2E_DIR/ids"
check "${#RCPTS[@]} messages submitted, one per case, each with a queue id" \
	test "$(awk 'NF == 2' "$E2E_DIR/ids" | wc -l)" -eq "${#RCPTS[@]}"
# the queue id of each case into its JSON line
$PY - "$CASES" "$E2E_DIR/ids" <<'EOF'
import json, sys
ids = dict(l.split() for l in open(sys.argv[2]) if l.strip())
cases = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[1], "w") as f:
    for c in cases:
        c["qid"] = ids.get(c["rcpt"], "none")
        f.write(json.dumps(c) + "\n")
EOF
mkdir -p "$E2E_DIR/shown"
mapfile -t QIDS < <(awk '{print $2}' "$E2E_DIR/ids")
UNSETTLED=$($PY "$HERE/dane_check.py" settle "$OUTPOST" "$CONF" 40 "$E2E_DIR/shown" 1 "${QIDS[@]}")
check "every message had its first attempt within 40 s (after $((SECONDS - T1)) s; unsettled: ${UNSETTLED:-none})" \
	test -z "$UNSETTLED"
# The receiving Postfix delivers to its Maildir, and logs, after its 250:
# wait until it holds what outpost says it delivered and every session ended.
receivers_settled() {
	local want have conn disc
	want=$($PY -c '
import json, sys, glob
print(sum(a["result"] == "delivered" and bool(a["tls"])  # (the plaintext one is not Postfix)
          for f in glob.glob(sys.argv[1] + "/*.json") for a in json.load(open(f))["attempts"]))' \
		"$E2E_DIR/shown")
	have=$(find "$PEERS/dpf/mail/sink/new" "$PEERS/dpf/mail/sink/cur" -type f | wc -l)
	conn=$(grep -c '/smtpd\[[0-9]*\]: connect from' "$PEERS/dpf/maillog" || true)
	disc=$(grep -c '/smtpd\[[0-9]*\]: disconnect from' "$PEERS/dpf/maillog" || true)
	[ "$have" -ge "$want" ] && [ "$conn" -eq "$disc" ]
}
wait_until 20 receivers_settled || echo "# the receivers did not settle within 20 s"

# run_check ROUND: dane_check.py's verdicts, counted here
run_check() {
	local line rc=0 out=$E2E_DIR/check.$1
	$PY "$HERE/dane_check.py" check "$OUTPOST" "$CONF" "$CASES" "$E2E_DIR/shown" \
		"$PEERS/dpf/maillog" "$PEERS/dpf/mail/sink" "$1" >"$out" 2>&1 || rc=$?
	while IFS= read -r line; do
		case $line in
		"ok   - "*) pass "${line#ok   - }" ;;
		"FAIL - "*) fail "${line#FAIL - }" ;;
		*) echo "$line" ;;
		esac
	done <"$out"
	check "dane_check.py (round $1) ran to its end (status $rc)" test "$rc" -eq 0
}

# ---- the matrix ----------------------------------------------------------------------
run_check 1

# ---- the delivery log lines ------------------------------------------------------------
log_has() { grep -E "event=delivery .*$1" "$E2E_DIR/outpost.log" | grep -q -- "$2"; }
check "outpost.log: ok-3-1-1 delivered with tls_policy=dane verified=DANE-EE" \
	log_has "rcpt=u@ok-3-1-1.$S" 'tls_policy=dane.*verified=DANE-EE'
check "outpost.log: ok-2-1-2 delivered with tls_policy=dane verified=DANE-TA" \
	log_has "rcpt=u@ok-2-1-2.$S" 'tls_policy=dane.*verified=DANE-TA'
check "outpost.log: ins-zone delivered with tls_policy=none" \
	log_has "rcpt=u@ins-zone.insecure.test" 'tls_policy=none'
fallbacks() { grep 'event=plaintext_fallback' "$E2E_DIR/outpost.log" | grep -o 'mx=[^ ]*' | sort -u | tr '\n' ' '; }
check "outpost.log: a plaintext retry for mx-ins-hs.insecure.test only, for no DANE host ($(fallbacks))" \
	test "$(fallbacks)" = "mx=mx-ins-hs.insecure.test "

# ---- 11: posttls-finger's verdict against outpost's ------------------------------------
# posttls-finger: verified ("Verified TLS connection"), unauthenticated (TLS,
# all records unusable or none), failed (a certificate verification failure
# under usable records), no-connection (no TLS session: e.g. the TLSA lookup
# failed). outpost's (dane_check.py verdict): delivered and DANE-verified,
# delivered unverified, deferred after a handshake, never dialled.
finger_class() {
	if grep -q 'Verified TLS connection established' <<<"$1"; then echo verified
	elif grep -q 'fallback to unauthenticated TLS' <<<"$1"; then echo unauthenticated
	elif grep -q 'certificate verification failed' <<<"$1"; then echo failed
	elif grep -q 'TLS connection established' <<<"$1"; then echo unauthenticated
	else echo no-connection; fi
}
T2=$SECONDS
for c in "ok-3-1-1 [mx-ok-3-1-1.$S]" "ok-2-0-1 [mx-ok-2-0-1.$S]" "ok-3-0-0 [mx-ok-3-0-0.$S]" \
	"no-3-1-1 [mx-no-3-1-1.$S]" "no-2-1-1 [mx-no-2-1-1.$S]" "ta-badname [mx-ta-badname.$S]" \
	"ta-notsent [mx-ta-notsent.$S]" "ta-full-dns [mx-ta-full-dns.$S]" \
	"ee-expired [mx-ee-expired.$S]" "ta-expired [mx-ta-expired.$S]" \
	"ee-samekey-cert [mx-ee-samekey-cert.$S]" "ee-samekey-spki [mx-ee-samekey-spki.$S]" \
	"unusable [mx-unusable.$S]" "unusable-wrong [mx-unusable-wrong.$S]" \
	"bogus-cname [mx-bogus-cname.$S]" "cname-mx cname-mx.$S" "mxs-ta-domain mxs-ta-domain.$S"; do
	read -r id target <<<"$c"
	out=$(dane_finger -t30 -T180 -c -l dane -P /etc/ssl/certs -o dnssec_probe=ns:test. \
		"$target:$P" 2>&1 || true)
	echo "$out" >"$E2E_DIR/finger.$id"
	fc=$(finger_class "$out")
	oc=$($PY "$HERE/dane_check.py" verdict "$CASES" "$E2E_DIR/shown" "$id" 2>/dev/null || echo unknown)
	if [ "$fc" = "$oc" ]; then
		pass "posttls-finger agrees on $id ($target): $fc"
	else
		fail "posttls-finger disagrees on $id ($target): posttls-finger $fc, outpost $oc"
		sed 's/^/     /' <<<"$out" | head -8
	fi
done
echo "# posttls-finger: $((SECONDS - T2)) s"

# ---- one retry of every deferred case: the same verdict, never plaintext ----------------
mapfile -t DEFERRED < <($PY -c '
import json, sys
for l in open(sys.argv[1]):
    c = json.loads(l)
    if c["kind"] not in ("dane", "unauth", "opportunistic", "plainfb"):
        print(c["qid"])' "$CASES")
for id in "${DEFERRED[@]}"; do op queue kick "$id" >/dev/null; done
UNSETTLED=$($PY "$HERE/dane_check.py" settle "$OUTPOST" "$CONF" 30 "$E2E_DIR/shown" 2 "${DEFERRED[@]}")
check "the ${#DEFERRED[@]} deferred messages, kicked, had their second attempt (unsettled: ${UNSETTLED:-none})" \
	test -z "$UNSETTLED"
wait_until 20 receivers_settled || echo "# the receivers did not settle within 20 s"
run_check 2

# ---- session resumption under DANE-TA -------------------------------------------------------
handshakes() { # handshakes yes|no
	curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v want="outpost_delivery_tls_handshakes_total{resumed=\"$1\"}" \
			'$1 == want { print $2; found = 1 } END { if (!found) print 0 }'
}
delivered_to() { $PY "$HERE/maildir_check.py" "$PEERS/dpf/mail/sink" "$1" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
submit1() { $PY "$HERE/dane_check.py" submit "$SMTP_PORT" s@snd.insecure.test "$1" | awk '{print $2}'; }
RESUMED0=$(handshakes yes)
for k in 2 3; do
	id=$(submit1 u$k@resume.$S)
	expect_show "resume: message $k delivered, verified DANE-TA by 2 1 1 again" "$id" \
		"R('u$k@resume.$S')['state']=='delivered' and A('u$k@resume.$S')[-1]['tls_verified']=='DANE-TA' and A('u$k@resume.$S')[-1]['tls_detail'].startswith('2 1 1 ')"
done
check "resume: both connections resumed the session ($RESUMED0 -> $(handshakes yes) resumed handshakes)" \
	test "$(handshakes yes)" -eq $((RESUMED0 + 2))
check "resume: the receiver has both, over TLS" \
	test "$(delivered_to u2@resume.$S)" = 1 -a "$(delivered_to u3@resume.$S)" = 1

# ---- a TLSA rollover: wrong records defer, the new right ones deliver ---------------------------
set_roll() { # set_roll "U S M HEX": the one TLSA record of mx-roll, re-signed and served
	sed -i "/^_$P\._tcp\.mx-roll TLSA/d" "$PEERS/dns/extra.secure.test"
	zone $S "_$P._tcp.mx-roll TLSA $1"
	dns_peers_reload
	wait_until 10 bash -c "$DIG _$P._tcp.mx-roll.$S TLSA | grep -qi 'TLSA[[:space:]]*${1:0:5}' "
}
set_roll "$(rec 3 decoy-leaf 1 1)"
check "roll: the resolver now serves the wrong record, with AD" \
	bash -c "$DIG _$P._tcp.mx-roll.$S TLSA | grep -q ' ad[ ;]' && $DIG +short _$P._tcp.mx-roll.$S TLSA | tr -d ' ' | grep -qi '$(rec 3 decoy-leaf 1 1 | tr -d ' ' | cut -c1-40)'"
ROLL=$(submit1 u2@roll.$S)
expect_show "roll: under the wrong record the next message is deferred 4.7.5 (no resumption of the old session)" "$ROLL" \
	"R('u2@roll.$S')['state']=='deferred' and R('u2@roll.$S')['attempts']==1 and '4.7.5' in R('u2@roll.$S')['last_error'] and 'dane-no-match' in R('u2@roll.$S')['last_error']"
check "roll: the receiver did not get it" test "$(delivered_to u2@roll.$S)" = 0
set_roll "$(rec 2 ca-roll 1 1)"
op queue kick "$ROLL" >/dev/null
expect_show "roll: after the rollover to 2 1 1 of its CA, the retry is delivered, DANE-TA" "$ROLL" \
	"R('u2@roll.$S')['state']=='delivered' and R('u2@roll.$S')['attempts']==2 and A('u2@roll.$S')[-1]['tls_verified']=='DANE-TA' and A('u2@roll.$S')[-1]['tls_detail'].startswith('2 1 1 ')"
count_is() { [ "$(delivered_to "$1")" = "$2" ]; }
check "roll: the receiver has it once" wait_until 5 count_is u2@roll.$S 1

# ---- the daemon survived it all ------------------------------------------------------------
check "the daemon is still running" kill -0 "$DAEMON_PID"
e2e_stop_clean
dns_peers_stop
dp_stop
echo "# took $((SECONDS - T0)) s"
e2e_finish
