#!/bin/sh
# Install Debian packages if any is missing; idempotent and quiet when all
# are present.  Usage: scripts/deps.sh pkg [pkg ...]
set -e
missing=
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing (run as root to install)" >&2
    exit 1
fi
stamp=/var/lib/apt/periodic/ringplug-update-stamp
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ]; then
    echo "deps: apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
echo "deps: apt-get install$missing"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    $missing >/dev/null
