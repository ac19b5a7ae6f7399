#!/bin/sh
# The module package for Debian 13's nginx (1.26.3, nginx-abi-1.26.3-1),
# built as Debian 13 builds it: in a Debian 13 root (packaging/root.sh) with
# Debian 13's nginx-dev, debhelper and liburing-dev (2.9), by the same
# packaging/nginx-module/build.sh as Debian 12's.
#
#   packaging/nginx-module/build-trixie.sh OUTDIR
#
# The build root is an overlay on the cached debootstrap root whose upper
# layer is kept (build dependencies installed once); the project tree is
# bind-mounted read-only at /ringplug, OUTDIR at /out.
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build-trixie.sh OUTDIR}
base=$top/build/packaging/roots/trixie
b=$top/build/packaging/roots/trixie-build
arch=$top/build/packaging/roots/trixie-archives

if [ "${RP_TRIXIE_INNER:-}" != 1 ]; then
    "$top/packaging/root.sh" trixie "$base"
    mkdir -p "$out"
    RP_DEB_UPSTREAM=$("$top/packaging/version.sh")
    RP_DEB_DESCRIBE=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
    RP_DEB_MAINTAINER=${RP_DEB_MAINTAINER:-$(git -C "$top" log -1 --format='%an <%ae>' 2>/dev/null || echo 'ringplug <ringplug@example.org>')}
    export RP_DEB_UPSTREAM RP_DEB_DESCRIBE RP_DEB_MAINTAINER
    exec 9> "$b.lock"
    flock 9
    RP_TRIXIE_INNER=1 exec unshare --mount --propagation private "$0" "$(cd "$out" && pwd)"
fi

mkdir -p "$b/upper" "$b/work" "$b/root" "$arch/partial"
R=$b/root
mount -t overlay overlay -o "lowerdir=$base,upperdir=$b/upper,workdir=$b/work" "$R"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --bind "$arch" "$R/var/cache/apt/archives"
mkdir -p "$R/ringplug" "$R/out"
mount --bind -o ro "$top" "$R/ringplug"
mount --bind "$out" "$R/out"
cp /etc/resolv.conf "$R/etc/resolv.conf"

log=$out/root.log
: > "$log"
echo "module package (Debian 13): apt-get install the build dependencies in the root"
export DEBIAN_FRONTEND=noninteractive
chroot "$R" apt-get update >> "$log" 2>&1 \
    && chroot "$R" apt-get install -y --no-install-recommends build-essential \
        debhelper devscripts lintian fakeroot nginx-dev liburing-dev >> "$log" 2>&1 \
    || { tail -20 "$log"; echo "module package (Debian 13): apt-get failed (see $log)" >&2; exit 1; }
echo "module package (Debian 13): $(chroot "$R" dpkg-query -W -f '${Package} ${Version}, ' nginx-dev liburing-dev debhelper)"
chroot "$R" env HOME=/root RP_DEB_UPSTREAM="$RP_DEB_UPSTREAM" RP_DEB_DESCRIBE="$RP_DEB_DESCRIBE" \
    RP_DEB_MAINTAINER="$RP_DEB_MAINTAINER" sh /ringplug/packaging/nginx-module/build.sh /out +deb13
