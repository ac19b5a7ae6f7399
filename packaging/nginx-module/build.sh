#!/bin/sh
# Build the nginx module package (libnginx-mod-event-io-uring) with
# Debian's tools: a source tree of core/, module/ and
# packaging/nginx-module/debian/, then dpkg-buildpackage -b.
#
#   packaging/nginx-module/build.sh OUTDIR SUFFIX
#
# SUFFIX is the distribution mark of the version (+deb12, +deb13).  Run
# where the target Debian's nginx-dev is installed: the host for Debian 12,
# a Debian 13 root for Debian 13 (packaging/nginx-module/build-trixie.sh,
# which passes RP_DEB_UPSTREAM, RP_DEB_DESCRIBE and RP_DEB_MAINTAINER in:
# the root has no git).  Leaves the .deb, .buildinfo, .changes, build.log
# and lintian.txt in OUTDIR.
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$1 suffix=$2
[ -n "$out" ] && [ -n "$suffix" ] || { echo "usage: $0 OUTDIR SUFFIX" >&2; exit 2; }
cd "$top"
ver=${RP_DEB_UPSTREAM:-$(packaging/version.sh)}$suffix
describe=${RP_DEB_DESCRIBE:-$(git describe --always --dirty 2>/dev/null || echo unknown)}
name=libnginx-mod-event-io-uring
maint=${RP_DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || echo 'ringplug <ringplug@example.org>')}
dist=$(. /etc/os-release && echo "$VERSION_CODENAME")

mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/$name-$ver
rm -rf "$out"/$name-* "$out"/${name}_* "$out"/${name}-dbgsym_*
mkdir -p "$src/core" "$src/module"
cp core/*.c core/*.h "$src/core/"
for f in module/*; do
    case $f in *.mk) ;; *) cp "$f" "$src/module/" ;; esac
done
cp -a packaging/nginx-module/debian "$src/"
sed -i "s|@MAINTAINER@|$maint|" "$src/debian/control"
(cd "$src" && DEBFULLNAME=${maint% <*} DEBEMAIL=$(echo "$maint" | sed 's/.*<\(.*\)>.*/\1/') \
    dch --create --package $name -v "$ver" -D "$dist" -u medium \
    "Built from ringplug $describe." \
    2>/dev/null)

cd "$src"
start=$(date +%s)
if ! nice -n 10 dpkg-buildpackage -b -us -uc -j2 > "$out/build.log" 2>&1; then
    tail -30 "$out/build.log"
    echo "module package: dpkg-buildpackage failed (see $out/build.log)" >&2
    exit 1
fi
echo "module package: built ${name}_${ver} in $(($(date +%s) - start)) s"
cd "$out"
lintian --allow-root ${name}_${ver}_*.changes > lintian.txt 2>&1 || true
echo "module package: lintian: $(grep -c '^[EWI]:' lintian.txt || true) tags (lintian.txt)"
