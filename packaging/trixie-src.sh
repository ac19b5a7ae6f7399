#!/bin/sh
# Download Debian 13 (trixie) source packages without touching the host's
# apt configuration: a private apt state under build/packaging/apt-trixie
# whose only entries are deb-src for trixie and trixie-security, so no
# trixie binary can ever be installed through it, and `apt-get source X` on
# the host keeps giving bookworm's X.
#
#   packaging/trixie-src.sh DIR nginx=1.26.3-3+deb13u9 liburing
#                     (.dsc + tarballs into DIR; a bare name: trixie's version)
#   packaging/trixie-src.sh --version nginx        (the newest version listed)
# The archive here does not serve every version: nginx 1.26.3-3+deb13u10
# and +deb13u12 are the ones trixie's signed Sources index lists, and their
# .dsc is 404; +deb13u9 is served from the pool but no longer listed.  A
# pinned version apt cannot fetch is taken from the pool with dget, and its
# upstream tarball is checked against the checksum the signed index gives
# for the same upstream version (the Debian tarball can only be checked
# against its own .dsc: dpkg-source does that).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
state=$top/build/packaging/apt-trixie
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc"
cat > "$state/etc/trixie-src.sources" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt="apt-get -q -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts=$state/etc
    -o Dir::State::Lists=$state/lists
    -o Dir::Cache=$state/cache
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o APT::Sandbox::User=root"
# refreshed at most every 6 hours, as scripts/deps.sh does for the host
if [ -z "$(find "$state/lists" -name '*trixie*Sources*' -mmin -360 2>/dev/null)" ]; then
    $apt update >/dev/null
fi
if [ "$1" = --version ]; then
    $apt source --print-uris "$2" 2>/dev/null | sed -n "s/.*'[^']*\.dsc' $2_\([^ ]*\)\.dsc.*/\1/p"
    exit 0
fi
dest=$1; shift
mkdir -p "$dest"
cd "$dest"
for p in "$@"; do
    case $p in *=*) ;; *) p=$p/trixie ;; esac
    $apt source --download-only "$p" >/dev/null 2>&1 && continue
    case $p in *=*) ;; *) $apt source --download-only "$p"; exit 1 ;; esac
    name=${p%%=*}; ver=${p#*=}
    listed=$($apt source --print-uris "$name/trixie" 2>/dev/null) || true
    [ -n "$listed" ] || { echo "trixie-src: $name not listed" >&2; exit 1; }
    pool=$(echo "$listed" | sed -n "s|^'\(http[^']*/\)${name}_[^']*\.dsc'.*|\1|p")
    echo "trixie-src: $p not fetchable through apt; taking it from $pool"
    dget -q -d -u "$pool${name}_$ver.dsc" >/dev/null
    upstream=${ver%-*}; upstream=${upstream#*:}
    for f in $(ls "${name}_$upstream".orig* | grep -v "\.asc$"); do
        want=$(echo "$listed" | grep -F "'${pool}$f'" | awk '{print $4}' | sed 's/^SHA256://')
        have=$(sha256sum "$f" | cut -d' ' -f1)
        if [ -z "$want" ] || [ "$want" != "$have" ]; then
            echo "trixie-src: $f: sha256 $have, signed index says '${want:-none}'" >&2
            exit 1
        fi
    done
done
