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
# Several builds (worktrees, suites) may install at once: one at a time, and
# apt itself waits for a dpkg lock held by anything else.
exec 9> /var/lock/ringplug-deps.lock
flock 9
missing=$(for p in $missing; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || echo "$p"
done | tr '\n' ' ')
[ -z "$missing" ] && exit 0
apt="apt-get -o DPkg::Lock::Timeout=600"
stamp=/var/lib/apt/periodic/ringplug-update-stamp
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ]; then
    echo "deps: apt-get update"
    DEBIAN_FRONTEND=noninteractive $apt update -q >/dev/null
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
echo "deps: apt-get install $missing"
DEBIAN_FRONTEND=noninteractive $apt install -y -q --no-install-recommends \
    $missing >/dev/null
