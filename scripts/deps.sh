#!/bin/bash
# Installs what outpost needs from Debian 12's archive: "build" for building
# and running, "test" for the test suite (real peers, clang for libFuzzer).
set -euo pipefail
BUILD_PKGS="build-essential cmake pkg-config libssl-dev libevent-dev libc-ares-dev libldns-dev
 libsqlite3-dev libcurl4-openssl-dev libjansson-dev libinih-dev zlib1g-dev libidn2-dev libcrypt-dev"
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev swaks postfix python3-aiosmtpd sqlite3 openssl
 nsd unbound ldnsutils bind9-dnsutils nginx iproute2 procps curl python3-cryptography
 python3-dkim python3-dnspython opendkim-tools util-linux chromium chromium-driver python3-selenium"

want="$BUILD_PKGS"
[ "${1:-build}" = test ] && want="$want $TEST_PKGS"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing"
# Debian's postfix asks questions unless told not to; it must not start a
# system instance either (tests run their own on private ports).
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
