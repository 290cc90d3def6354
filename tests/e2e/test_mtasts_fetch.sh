#!/bin/bash
# The MTA-STS policy fetch (src/mtasts/fetch.c over src/util/https.c)
# against real peers, through mtasts_probe (tests/e2e/mtasts_probe.c, built
# next to the outpost binary): NSD + a validating Unbound (dns_peers.sh)
# serve mta-sts.<domain> for each case, and on the one HTTPS port (443 as
# root, as in real life):
#   127.0.0.40 nginx, one server block per case chosen by SNI: the policy,
#              404, 500, 301, 70 KiB, exactly 64 KiB, a wrong media type,
#              a self-signed, an expired and a wrong-name certificate
#   127.0.0.41 https_peer.py silent: accepts TCP (and UDP) and never answers
#   127.0.0.42 nothing listens (connection refused)
#   127.0.0.43 https_peer.py plain: plain HTTP where TLS is expected
#   127.0.0.44 https_peer.py tls: a chunked 70 KiB policy (no Content-Length)
#              and an echo of POST bodies
# Certificates other than the test bed's CA are made here, keys included,
# in the scratch directory only.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PROBE=$(dirname "$OUTPOST")/mtasts_probe
[ -x "$PROBE" ] || { echo "no mtasts_probe next to $OUTPOST"; exit 1; }
for tool in nsd unbound ldns-signzone ldns-keygen nginx openssl; do
	command -v $tool >/dev/null || { echo "missing $tool (scripts/deps.sh test)"; exit 1; }
done
chmod 755 "$E2E_DIR" # nginx's worker runs as nobody
PEERS=$E2E_DIR/peers
source "$HERE/dns_peers.sh"
W=$E2E_DIR/www
C=$E2E_DIR/certs
mkdir -p "$W" "$C"
NGINX_PID=
stop_nginx() {
	if [ -n "$NGINX_PID" ]; then
		kill -QUIT "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		forget_pid "$NGINX_PID"
		NGINX_PID=
	fi
}
trap 'stop_nginx; e2e_cleanup' EXIT

# 443 as in real life when we may bind it; else one free port for all.
if [ "$(id -u)" = 0 ]; then PORT=443; else PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.40",0)); print(s.getsockname()[1])'); fi
Z=secure.test
GOOD="ok missing error redirect big exact badtype dual"
for d in $GOOD selfsigned expired wrongname; do
	dns_peers_add_record $Z "mta-sts.$d A 127.0.0.40"
done
dns_peers_add_record $Z "mta-sts.dual AAAA ::1" # nothing on [::1]:PORT: refused, then IPv4
dns_peers_add_record $Z "mta-sts.slow A 127.0.0.41"
dns_peers_add_record $Z "mta-sts.refused A 127.0.0.42"
dns_peers_add_record $Z "mta-sts.plain A 127.0.0.43"
dns_peers_add_record $Z "mta-sts.chunked A 127.0.0.44"
dns_peers_add_record $Z "tlsrpt A 127.0.0.44"
dns_peers_add_record $Z 'mta-sts.nodata TXT "a name without addresses"'
dns_peers_add_record bogus.test "mta-sts A 127.0.0.40"
dns_peers_start
CA=$PEERS/pki/ca.crt

# --- certificates: one CA-issued leaf for every well-behaved name, a
# self-signed one, and a CA-issued one that expired in 2020
sans=""
for d in $GOOD chunked; do sans="${sans}DNS:mta-sts.$d.$Z,"; done
sans="${sans}DNS:tlsrpt.$Z"
dns_peers_cert "$C" good "$sans"
dns_peers_cert "$C" selfsigned "DNS:mta-sts.selfsigned.$Z" self
dns_peers_cert "$C" expired "DNS:mta-sts.expired.$Z" expired

# --- content
POLICY=$'version: STSv1\r\nmode: enforce\r\nmx: mx1.secure.test\r\nmx: *.secure.test\r\nmax_age: 86400\r\n'
for d in ok badtype; do
	mkdir -p "$W/$d/.well-known"
	printf '%s' "$POLICY" >"$W/$d/.well-known/mta-sts.txt"
done
mkdir -p "$W/empty" "$W/big/.well-known" "$W/exact/.well-known" "$W/logs" "$W/tmp"
head -c 71680 /dev/zero | tr '\0' 'x' >"$W/big/.well-known/mta-sts.txt"  # 70 KiB
head -c 65536 /dev/zero | tr '\0' 'y' >"$W/exact/.well-known/mta-sts.txt" # the cap itself
chmod -R a+rX "$W"

# --- nginx (docs/testing.md, "MTA-STS peers"), foreground, stopped by PID
server() { # NAMES CERT (C/CERT.chain.crt or C/CERT.crt, and C/CERT.key) BODY
	local crt=$C/$2.chain.crt
	[ -f "$crt" ] || crt=$C/$2.crt
	cat <<EOF
    server {
        listen 127.0.0.40:$PORT ssl;
        server_name $1;
        ssl_certificate     $crt;
        ssl_certificate_key $C/$2.key;
$3
    }
EOF
}
{
	cat <<EOF
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/logs/error.log notice;
events { worker_connections 64; }
http {
    access_log $W/logs/access.log;
    client_body_temp_path $W/tmp/body;
    proxy_temp_path $W/tmp/proxy;
    fastcgi_temp_path $W/tmp/fastcgi;
    uwsgi_temp_path $W/tmp/uwsgi;
    scgi_temp_path $W/tmp/scgi;
    types { text/plain txt; }
    default_type application/octet-stream;
EOF
	server "mta-sts.ok.$Z mta-sts.dual.$Z mta-sts.wrongname.$Z" good "        root $W/ok;"
	server "mta-sts.missing.$Z" good "        root $W/empty;"
	server "mta-sts.error.$Z" good "        location / { return 500; }"
	server "mta-sts.redirect.$Z" good \
		"        location / { return 301 https://mta-sts.ok.$Z/.well-known/mta-sts.txt; }"
	server "mta-sts.big.$Z" good "        root $W/big;"
	server "mta-sts.exact.$Z" good "        root $W/exact;"
	server "mta-sts.badtype.$Z" good \
		"        root $W/badtype; location / { types { } default_type application/octet-stream; }"
	server "mta-sts.selfsigned.$Z" selfsigned "        root $W/ok;"
	server "mta-sts.expired.$Z" expired "        root $W/ok;"
	echo "}"
} >"$W/nginx.conf"
nginx -e "$W/logs/error.log" -p "$W" -c "$W/nginx.conf" >"$W/logs/nginx.out" 2>&1 &
NGINX_PID=$!
E2E_PIDS+=("$NGINX_PID")

$PY "$HERE/https_peer.py" silent 127.0.0.41 "$PORT" 2>>"$E2E_DIR/peer.log" &
E2E_PIDS+=($!)
$PY "$HERE/https_peer.py" plain 127.0.0.43 "$PORT" 2>>"$E2E_DIR/peer.log" &
E2E_PIDS+=($!)
$PY "$HERE/https_peer.py" tls 127.0.0.44 "$PORT" "$C/good.chain.crt" "$C/good.key" \
	2>>"$E2E_DIR/peer.log" &
E2E_PIDS+=($!)
for a in 40 41 43 44; do
	ok=
	for _ in $(seq 1 100); do
		if $PY -c "import socket; socket.create_connection(('127.0.0.$a',$PORT),0.2)" 2>/dev/null; then
			ok=1
			break
		fi
		sleep 0.05
	done
	[ -n "$ok" ] || { echo "127.0.0.$a:$PORT not ready"; cat "$W/logs/error.log" "$E2E_DIR/peer.log"; exit 1; }
done

# expect DESCRIPTION PYTHON-EXPRESSION-OVER-j PROBE-ARGS...
expect() {
	local d=$1 e=$2 out rc=0
	shift 2
	out=$("$PROBE" "$@" 2>>"$E2E_DIR/probe.log") || rc=$? # non-zero too when a sanitizer fired
	if [ $rc -eq 0 ] && P="$POLICY" $PY -c "import json,os,sys; P=os.environ['P']; j=json.loads(sys.argv[1]); sys.exit(0 if ($e) else 1)" "$out" 2>/dev/null; then
		pass "$d"
	else
		fail "$d"
		echo "     mtasts_probe $*"
		echo "     got (exit $rc): ${out:0:600}"
	fi
}
fetch() { # DOMAIN [TIMEOUT_MS [CA|-]]
	echo fetch "$DNS_RESOLVER" "$1" "$PORT" "${2:-5000}" "${3:-$CA}"
}

# --- the policy and the statuses around it
expect "200: the policy text, as served" \
	'j["status"]=="ok" and j["body"]==P and j["http_status"]==200 and j["result_type"] is None and j["content_type"].startswith("text/plain")' \
	$(fetch ok.$Z)
expect "trailing dot and upper case in the domain are fine" \
	'j["status"]=="ok" and j["body"]==P' $(fetch OK.Secure.Test.)
expect "404: no policy served" \
	'j["status"]=="no-policy" and j["reason"]=="no-policy-served" and j["http_status"]==404 and j["result_type"]=="sts-policy-fetch-error"' \
	$(fetch missing.$Z)
expect "500: fetch error http-status-500" \
	'j["status"]=="fetch-error" and j["reason"]=="http-status-500" and j["result_type"]=="sts-policy-fetch-error"' \
	$(fetch error.$Z)
expect "301: not followed, fetch error redirect" \
	'j["status"]=="fetch-error" and j["reason"]=="redirect" and j["http_status"]==301 and j["body"]==""' \
	$(fetch redirect.$Z)
expect "wrong media type: accepted (RFC 8461 §3.3 binds the server, not us)" \
	'j["status"]=="ok" and j["body"]==P and j["content_type"]=="application/octet-stream"' \
	$(fetch badtype.$Z)

# --- the 64 KiB cap
expect "70 KiB with Content-Length: too-large" \
	'j["status"]=="fetch-error" and j["reason"]=="too-large" and j["body"]==""' $(fetch big.$Z)
expect "exactly 64 KiB: accepted" \
	'j["status"]=="ok" and j["body_len"]==65536 and j["body"]=="y"*65536' $(fetch exact.$Z)
expect "70 KiB chunked (no length known): too-large, cut off at the cap" \
	'j["status"]=="fetch-error" and j["reason"]=="too-large"' $(fetch chunked.$Z)

# --- transport failures
expect "server that never answers: timeout after the 2 s budget" \
	'j["status"]=="fetch-error" and j["reason"]=="timeout" and 1800 <= j["elapsed_ms"] < 3500' \
	$(fetch slow.$Z 2000)
expect "nothing listening: connect-failed" \
	'j["status"]=="fetch-error" and j["reason"]=="connect-failed"' $(fetch refused.$Z)
expect "plain HTTP on the TLS port: tls-error" \
	'j["status"]=="fetch-error" and j["reason"]=="tls-error"' $(fetch plain.$Z)
expect "AAAA refused, A serves: IPv6 tried, then IPv4" \
	'j["status"]=="ok" and j["body"]==P' $(fetch dual.$Z)

# --- PKIX (RFC 8461 §3.3, RFC 8460 §4.3.2.2 sts-webpki-invalid)
expect "test CA given as ca_file: trusted" 'j["status"]=="ok"' $(fetch ok.$Z 5000 "$CA")
# nginx sends the CA with the leaf, so OpenSSL sees an untrusted root (19)
expect "test CA not given: certificate-not-trusted (verify 19)" \
	'j["status"]=="webpki-invalid" and j["reason"]=="certificate-not-trusted" and j["verify_result"]==19 and j["result_type"]=="sts-webpki-invalid"' \
	$(fetch ok.$Z 5000 -)
expect "self-signed: certificate-not-trusted (verify 18)" \
	'j["status"]=="webpki-invalid" and j["reason"]=="certificate-not-trusted" and j["verify_result"]==18' \
	$(fetch selfsigned.$Z)
expect "expired: certificate-expired (verify 10)" \
	'j["status"]=="webpki-invalid" and j["reason"]=="certificate-expired" and j["verify_result"]==10' \
	$(fetch expired.$Z)
expect "certificate for other names: certificate-host-mismatch (verify 62)" \
	'j["status"]=="webpki-invalid" and j["reason"]=="certificate-host-mismatch" and j["verify_result"]==62' \
	$(fetch wrongname.$Z)

# --- DNS (NXDOMAIN for mta-sts.<domain> means no policy, not a fetch error)
expect "mta-sts.<domain> NXDOMAIN: no policy" \
	'j["status"]=="no-policy" and j["reason"]=="no-policy-served" and "NXDOMAIN" in j["detail"] and j["http_status"]==0' \
	$(fetch nohost.$Z)
expect "mta-sts.<domain> without A or AAAA (NODATA): no policy" \
	'j["status"]=="no-policy" and "no A or AAAA" in j["detail"]' $(fetch nodata.$Z)
expect "bogus zone (SERVFAIL): dns-error" \
	'j["status"]=="fetch-error" and j["reason"]=="dns-error"' $(fetch bogus.test)
expect "resolver that never answers: timeout within the budget, DNS included" \
	'j["status"]=="fetch-error" and j["reason"]=="timeout" and "address" in j["detail"] and 900 <= j["elapsed_ms"] < 2000' \
	fetch "127.0.0.41:$PORT" ok.$Z "$PORT" 1000 "$CA"
expect "not a domain name: fetch error, from the loop" \
	'j["status"]=="fetch-error" and j["reason"]=="invalid-domain"' $(fetch "a/b.$Z")
expect "cancelled while the server stalls: no callback" \
	'j=={"called": False}' cancel "$DNS_RESOLVER" slow.$Z "$PORT" 300 "$CA"
expect "cancelled while resolving: no callback" \
	'j=={"called": False}' cancel "127.0.0.41:$PORT" ok.$Z "$PORT" 100 "$CA"

# --- the HTTPS client on its own: redirect details, POST (RFC 8460 §3)
URL=https://mta-sts.redirect.$Z:$PORT/.well-known/mta-sts.txt
[ "$PORT" = 443 ] && URL=https://mta-sts.redirect.$Z/.well-known/mta-sts.txt
expect "GET 301: outcome redirect with status and location" \
	"j['outcome']=='redirect' and j['status']==301 and j['location']=='https://mta-sts.ok.$Z/.well-known/mta-sts.txt'" \
	get "$URL" 127.0.0.40 5000 65536 "$CA"
head -c 5000 /dev/urandom | gzip >"$E2E_DIR/report.json.gz"
SUM=$(sha256sum "$E2E_DIR/report.json.gz" | cut -d' ' -f1)
LEN=$(stat -c %s "$E2E_DIR/report.json.gz")
expect "POST a gzipped report: body, length and media type arrive" \
	"j['outcome']=='response' and j['status']==200 and json.loads(j['body'])=={'path':'/report','content_type':'application/tlsrpt+gzip','expect':None,'length':$LEN,'sha256':'$SUM'}" \
	post "https://tlsrpt.$Z:$PORT/report" 127.0.0.44 5000 65536 "$CA" application/tlsrpt+gzip \
	"$E2E_DIR/report.json.gz"
expect "POST over http: refused (https only)" \
	'j["outcome"]=="other" and "https" in j["reason"]' \
	post "http://tlsrpt.$Z:$PORT/report" 127.0.0.44 5000 65536 "$CA" text/plain "$E2E_DIR/report.json.gz"

stop_nginx
dns_peers_stop
e2e_finish
