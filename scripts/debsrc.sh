#!/bin/sh
# Enable Debian deb-src entries (needed by `apt-get source`); idempotent.
set -e
f=/etc/apt/sources.list.d/ringplug-src.sources
if [ -f "$f" ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "debsrc: need root to add $f" >&2; exit 1
fi
exec 9> /var/lock/ringplug-deps.lock
flock 9
[ -f "$f" ] && exit 0
echo "debsrc: enabling deb-src (bookworm, bookworm-updates, bookworm-security) in $f"
cat > "$f" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
