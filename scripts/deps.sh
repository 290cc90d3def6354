#!/bin/bash
# Installs what outpost needs from Debian 12's archive: "build" for building
# and running, "package" for scripts/package.sh (CPack's DEB generator runs
# dpkg-shlibdeps and file), "test" for the test suite (real peers, clang for
# libFuzzer, the package checks: systemd-analyze, man, groff).
set -euo pipefail
BUILD_PKGS="build-essential cmake pkg-config libssl-dev libevent-dev libc-ares-dev libldns-dev
 libsqlite3-dev libcurl4-openssl-dev libjansson-dev libinih-dev zlib1g-dev libidn2-dev libcrypt-dev"
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev swaks postfix python3-aiosmtpd sqlite3 openssl
 nsd unbound ldnsutils bind9-dnsutils nginx iproute2 procps curl python3-cryptography
 python3-dkim python3-dnspython opendkim-tools util-linux chromium chromium-driver python3-selenium"
PACKAGE_PKGS="dpkg-dev file"
PACKAGE_TEST_PKGS="systemd man-db groff-base init-system-helpers"

# promtool, from Debian's prometheus package, checks the alert rules of
# contrib/ (tests/e2e/test_contrib.sh). Only that binary is taken: the
# package is downloaded and unpacked, not installed, which would start a
# Prometheus server.
PROMTOOL=/usr/local/lib/outpost-test/promtool
install_promtool() {
	[ -x "$PROMTOOL" ] && return 0
	echo "installing: promtool (from prometheus)"
	local tmp
	tmp=$(mktemp -d)
	chmod 0755 "$tmp"
	(cd "$tmp" && { $SUDO apt-get download -qq prometheus 2>/dev/null ||
		{ $SUDO apt-get update -qq && $SUDO apt-get download -qq prometheus 2>/dev/null; }; })
	dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
	$SUDO install -D -m 0755 "$tmp/usr/bin/promtool" "$PROMTOOL"
	rm -rf "$tmp"
}

want="$BUILD_PKGS"
[ "${1:-build}" = package ] && want="$want $PACKAGE_PKGS"
[ "${1:-build}" = test ] && want="$want $TEST_PKGS $PACKAGE_PKGS $PACKAGE_TEST_PKGS"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -z "$missing" ]; then
	[ "${1:-build}" = test ] && install_promtool
	exit 0
fi
echo "installing:$missing"
# Debian's postfix asks questions unless told not to; it must not start a
# system instance either (tests run their own on private ports).
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ "${1:-build}" = test ] && install_promtool
exit 0
