#!/bin/bash
# The Debian package (scripts/package.sh, docs/install.md): it installs into
# a clean root with dpkg --root (its maintainer scripts run chrootless under
# DPKG_ROOT: nothing on this machine changes), every file lands where it
# should, the user outpost owns /var/lib/outpost, the unit is enabled and
# systemd-analyze verify accepts it, both manual pages render without a
# warning, outpost(8) names every command and option of the usage text, the
# installed binary's `config defaults` is docs/configuration.md, and remove
# and purge leave what Debian says they leave. The package build is
# incremental (build-pkg/); the first one compiles everything.
source "$(dirname "$0")/lib.sh"

SRC=$(cd "$E2E_HERE/../.." && pwd)
JOBS=2 "$SRC/scripts/package.sh" >"$E2E_DIR/package.out" 2>&1 || { cat "$E2E_DIR/package.out"; fail "scripts/package.sh"; e2e_finish; }
DEB=$(tail -1 "$E2E_DIR/package.out")
check "scripts/package.sh made a .deb" test -f "$DEB"
[ -f "$DEB" ] || { cat "$E2E_DIR/package.out"; e2e_finish; }
field() { dpkg-deb -f "$DEB" "$1"; }

# ---- the control data
check "the package is outpost, section mail" test "$(field Package) $(field Section)" = "outpost mail"
# Every library the binary links to comes from a package it depends on.
deps_cover_libraries() {
	local depends so pkg ok=0
	depends=$(field Depends)
	dpkg-deb --fsys-tarfile "$DEB" | tar -x -O ./usr/sbin/outpost >"$E2E_DIR/outpost.bin"
	for so in $(readelf -d "$E2E_DIR/outpost.bin" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
		pkg=$(dpkg -S "*/$so" 2>/dev/null | head -1 | cut -d: -f1)
		case ", $depends" in
		*", $pkg "* | *", $pkg,"* | *"| $pkg "*) ;;
		*) echo "$so: $pkg not in Depends" >&2; ok=1 ;;
		esac
	done
	return $ok
}
check "Depends (dpkg-shlibdeps) covers every library the binary needs" deps_cover_libraries
check "Depends names a way to make the user" bash -c "dpkg-deb -f '$DEB' Depends | grep -q 'adduser | systemd'"
check "it provides mail-transport-agent, and conflicts with other ones" \
	test "$(field Provides) $(field Conflicts)" = "mail-transport-agent mail-transport-agent"
control() { dpkg-deb --ctrl-tarfile "$DEB" | tar -x -O "./$1"; }
check "the configuration is a conffile" test "$(control conffiles)" = /etc/outpost/outpost.conf
check "postinst, prerm and postrm are there" bash -c \
	"dpkg-deb --ctrl-tarfile '$DEB' | tar -t | grep -c '^./p\(ostinst\|rerm\|ostrm\)$' | grep -qx 3"

# ---- install into an empty root
R=$E2E_DIR/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
touch "$R/var/lib/dpkg/status"
# The root holds no libraries (--force-depends); the scripts run on this
# machine with DPKG_ROOT=$R (--force-script-chrootless).
HOST_PASSWD=$(md5sum </etc/passwd)
rootdpkg() { dpkg --root="$R" --force-script-chrootless --force-depends "$@" >>"$E2E_DIR/dpkg.log" 2>&1; }
check "dpkg --root installs it" rootdpkg -i "$DEB"
check "it is installed" bash -c "dpkg --root='$R' -s outpost | grep -q '^Status: install ok installed'"
check "the binary is in /usr/sbin" test -x "$R/usr/sbin/outpost" -a ! -L "$R/usr/sbin/outpost"
check "/usr/sbin/sendmail is a link to it" test "$(readlink "$R/usr/sbin/sendmail")" = outpost
check "/usr/lib/sendmail too" test "$(readlink -f "$R/usr/lib/sendmail")" = "$(readlink -f "$R/usr/sbin/outpost")"
check "the unit is in /usr/lib/systemd/system" test -f "$R/usr/lib/systemd/system/outpost.service"
check "the sysusers.d file" grep -q '^u outpost ' "$R/usr/lib/sysusers.d/outpost.conf"
check "the configuration in /etc/outpost" grep -q '^data_dir = /var/lib/outpost$' "$R/etc/outpost/outpost.conf"
check "outpost(8) and outpost.conf(5)" test -f "$R/usr/share/man/man8/outpost.8.gz" -a -f "$R/usr/share/man/man5/outpost.conf.5.gz"
check "sendmail(8) is outpost(8)" test "$(readlink "$R/usr/share/man/man8/sendmail.8.gz")" = outpost.8.gz
check "the documentation and contrib/" test -f "$R/usr/share/doc/outpost/docs/install.md" -a \
	-f "$R/usr/share/doc/outpost/contrib/prometheus/outpost-alerts.yml"
check "the installed configuration is valid" bash -c "'$R/usr/sbin/outpost' config check '$R/etc/outpost/outpost.conf' >/dev/null"

# ---- the postinst: the user, its directory, the unit enabled
uid=$(awk -F: '$1 == "outpost" { print $3 }' "$R/etc/passwd")
gid=$(awk -F: '$1 == "outpost" { print $3 }' "$R/etc/group")
check "the user outpost exists in the root, a system user" test -n "$uid" -a "${uid:-0}" -lt 1000 -a "${uid:-0}" -gt 0
check "its shell is nologin and its home the state directory" \
	bash -c "grep -q '^outpost:x:$uid:$gid:[^:]*:/var/lib/outpost:/usr/sbin/nologin$' '$R/etc/passwd'"
check "this machine's users are as they were" test "$(md5sum </etc/passwd)" = "$HOST_PASSWD"
check "/var/lib/outpost belongs to it, mode 0711" test "$(stat -c '%u:%g %a' "$R/var/lib/outpost")" = "$uid:$gid 711"
check "the unit is enabled" test "$(readlink "$R/etc/systemd/system/multi-user.target.wants/outpost.service")" = \
	/usr/lib/systemd/system/outpost.service

# ---- the unit: systemd-analyze verify, pointed at the installed tree
# (ExecStart= must exist and Documentation= man pages must resolve)
mkdir -p "$E2E_DIR/unit"
sed "s|/usr/sbin/outpost|$R/usr/sbin/outpost|g" "$R/usr/lib/systemd/system/outpost.service" >"$E2E_DIR/unit/outpost.service"
verify_unit() {
	MANPATH=$R/usr/share/man systemd-analyze verify "$E2E_DIR/unit/outpost.service" >"$E2E_DIR/verify.out" 2>&1 &&
		! [ -s "$E2E_DIR/verify.out" ] || { cat "$E2E_DIR/verify.out" >&2; return 1; }
}
check "systemd-analyze verify accepts the unit, without a word" verify_unit
unit_has() { grep -qx -- "$1" "$R/usr/lib/systemd/system/outpost.service"; }
for line in Type=notify User=outpost ProtectSystem=strict NoNewPrivileges=yes ProtectHome=yes PrivateTmp=yes \
	StateDirectory=outpost ReadWritePaths=/var/lib/outpost AmbientCapabilities=CAP_NET_BIND_SERVICE \
	CapabilityBoundingSet=CAP_NET_BIND_SERVICE "ExecStart=/usr/sbin/outpost -c /etc/outpost/outpost.conf serve" \
	"ExecReload=/bin/kill -HUP \$MAINPID"; do
	check "the unit says $line" unit_has "$line"
done

# ---- the manual pages
man_clean() { # man_clean PAGE: renders, with no warning from man or groff
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$1" >"$E2E_DIR/man.out" 2>"$E2E_DIR/man.err" &&
		! [ -s "$E2E_DIR/man.err" ] && [ "$(wc -l <"$E2E_DIR/man.out")" -gt 50 ] ||
		{ cat "$E2E_DIR/man.err" >&2; return 1; }
}
check "outpost(8) renders without warnings" man_clean "$R/usr/share/man/man8/outpost.8.gz"
check "outpost.conf(5) renders without warnings" man_clean "$R/usr/share/man/man5/outpost.conf.5.gz"
check "groff -ww has nothing to say about either" bash -c \
	"zcat '$R/usr/share/man/man8/outpost.8.gz' | groff -ww -z -man 2>&1 | grep -q . && exit 1;
	 zcat '$R/usr/share/man/man5/outpost.conf.5.gz' | groff -ww -z -man 2>&1 | grep -q . && exit 1; exit 0"
# every command and option of the usage text is in outpost(8)
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$R/usr/share/man/man8/outpost.8.gz" 2>/dev/null | col -b >"$E2E_DIR/outpost.8.txt"
usage_in_man() {
	local usage word words missing=0
	usage=$("$R/usr/sbin/outpost" 2>&1 || true)
	# commands and their subcommands ("queue kick|hold|...": each of them),
	# then every option
	words=$(echo "$usage" | awk '/^  [a-z]/ { print $1; if ($2 ~ /^[a-z|]+$/) { n = split($2, w, "|"); for (i = 1; i <= n; i++) print w[i] } }'
		echo "$usage" | grep -o -- '--\?[a-z][a-z-]*' | grep '^-')
	[ "$(echo "$words" | sort -u | wc -l)" -gt 30 ] || { echo "usage text not understood" >&2; return 1; }
	for word in $(echo "$words" | sort -u); do
		grep -q -- "$word" "$E2E_DIR/outpost.8.txt" || { echo "outpost(8) lacks $word" >&2; missing=1; }
	done
	return $missing
}
check "outpost(8) names every command and option of the usage text" usage_in_man
check "outpost.conf(5) describes every key" bash -c "
	for k in \$('$R/usr/sbin/outpost' config defaults | awk 'NR > 1 { print \$2 }'); do
		zcat '$R/usr/share/man/man5/outpost.conf.5.gz' | grep -q \"^.fB\$k.fR = \" || { echo \"no \$k\" >&2; exit 1; }
	done"
check "outpost.conf(5) names the system file" bash -c "zcat '$R/usr/share/man/man5/outpost.conf.5.gz' | grep -q '/etc/outpost/outpost.conf'"

# ---- the installed binary
check "config defaults is docs/configuration.md" bash -c \
	"'$R/usr/sbin/outpost' config defaults >'$E2E_DIR/defaults.txt' &&
	 $PY -c 'import sys; sys.exit(open(sys.argv[1]).read() not in open(sys.argv[2]).read())' '$E2E_DIR/defaults.txt' '$SRC/docs/configuration.md'"
check "called sendmail, it is outpost send" bash -c \
	"echo | '$R/usr/sbin/sendmail' 2>&1 | grep -q 'usage: outpost send'; test \${PIPESTATUS[1]} = 2"
check "version" test "$("$R/usr/sbin/outpost" version)" = "outpost $(sed -n 's/^project(outpost VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")"

# ---- remove, then purge
echo "a spool" >"$R/var/lib/outpost/spool.db" # as the daemon leaves it
check "dpkg --root removes it" rootdpkg -r outpost
check "remove takes the binary" test ! -e "$R/usr/sbin/outpost"
check "remove keeps the conffile" test -f "$R/etc/outpost/outpost.conf"
check "remove keeps the spool" test -f "$R/var/lib/outpost/spool.db"
check "remove masks the unit" test "$(readlink "$R/etc/systemd/system/outpost.service")" = /dev/null
check "dpkg --root purges it" rootdpkg -P outpost
check "purge takes the conffile" test ! -e "$R/etc/outpost/outpost.conf"
check "purge takes the spool" test ! -e "$R/var/lib/outpost"
check "purge unmasks and forgets the unit" bash -c "! test -e '$R/etc/systemd/system/outpost.service' -o -L '$R/etc/systemd/system/outpost.service' &&
	! test -e '$R/etc/systemd/system/multi-user.target.wants/outpost.service'"
check "purge keeps the user (Debian keeps system users)" grep -q '^outpost:' "$R/etc/passwd"
check "installed again, it finds its user and is enabled again" bash -c \
	"dpkg --root='$R' --force-script-chrootless --force-depends -i '$DEB' >>'$E2E_DIR/dpkg.log' 2>&1 &&
	 test \"\$(awk -F: '\$1 == \"outpost\"' '$R/etc/passwd' | wc -l)\" = 1 &&
	 test -L '$R/etc/systemd/system/multi-user.target.wants/outpost.service'"
e2e_finish
