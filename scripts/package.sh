#!/bin/bash
# Builds the Debian package: a Release build with Debian's hardening flags
# (dpkg-buildflags, hardening=+all: -O2, stack protector, FORTIFY_SOURCE,
# full RELRO; Release's own -O3 is left out) for the prefix /usr (the
# binary in /usr/sbin, /usr/sbin/sendmail a link to it, the configuration
# in /etc/outpost, the unit in /usr/lib/systemd/system), then CPack's DEB
# generator, which asks dpkg-shlibdeps for the dependencies. Prints the
# absolute path of the .deb. The build directory (default build-pkg) is
# kept, so a second run only rebuilds what changed. docs/install.md says
# what the package holds and does.
#   scripts/package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
OUT=${1:-build-pkg}
scripts/deps.sh package >&2
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_C_FLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
	-DCMAKE_C_FLAGS_RELEASE="-DNDEBUG" \
	-DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" \
	-DOUTPOST_SENDMAIL_LINK=ON -DOUTPOST_TESTS=OFF >/dev/null
cmake --build "$OUT" -j"${JOBS:-$(nproc)}" >/dev/null
rm -f "$OUT"/outpost_*.deb
(cd "$OUT" && cpack -G DEB >/dev/null)
readlink -f "$OUT"/outpost_*.deb
