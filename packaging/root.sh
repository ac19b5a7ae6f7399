#!/bin/sh
# A clean Debian root made by debootstrap (minbase), cached: the packages
# suite installs our .debs into an overlay on top of it, and Debian 13's
# module package is built in one.
#
#   packaging/root.sh SUITE DIR     (bookworm, trixie) -> DIR, made once
#
# The root's apt reads only Debian's archive (SUITE, -updates, -security;
# none of the host's other sources), a policy-rc.d stops maintainer scripts
# from starting daemons (they would bind ports on the host's network), and
# a stamp file marks a finished root: an interrupted debootstrap is redone.
set -e
suite=$1 dir=$2
[ -n "$suite" ] && [ -n "$dir" ] || { echo "usage: $0 SUITE DIR" >&2; exit 2; }
[ -f "$dir/.ringplug-root" ] && exit 0
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" debootstrap debian-archive-keyring
mkdir -p "$(dirname "$dir")"
exec 9> "$dir.lock"
flock 9
[ -f "$dir/.ringplug-root" ] && exit 0
rm -rf "$dir"
echo "root: debootstrap $suite into $dir"
start=$(date +%s)
if ! debootstrap --variant=minbase "$suite" "$dir" http://deb.debian.org/debian \
        > "$dir.log" 2>&1; then
    tail -20 "$dir.log"
    echo "root: debootstrap $suite failed (see $dir.log)" >&2
    exit 1
fi
cat > "$dir/etc/apt/sources.list" <<SRC
deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SRC
printf '#!/bin/sh\n# ringplug test root: no daemon is started by a package\nexit 101\n' \
    > "$dir/usr/sbin/policy-rc.d"
chmod 755 "$dir/usr/sbin/policy-rc.d"
# the archive is reached through the host's resolver
cp /etc/resolv.conf "$dir/etc/resolv.conf"
touch "$dir/.ringplug-root"
echo "root: $suite ready in $(($(date +%s) - start)) s"
