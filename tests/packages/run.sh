#!/bin/sh
# Suite packages: our .debs installed with apt into a clean Debian 12 root
# (packaging/root.sh: debootstrap, cached; each run works in a fresh
# overlay on top of it, in a mount namespace of its own), then:
#   nginx   Debian's nginx, with the module package, serves Debian's
#           default site with `use io_uring;` through the module, whose
#           workers hold a ring and log "using io_uring"; installed but not
#           asked for, nginx stays on epoll; removed, epoll again.
#   libevent  Debian's memcached on Debian's libevent is on epoll; after
#           `apt install ./libevent-*.deb` on io_uring (EVENT_NOIO_URING=1
#           opts out); with Debian's libevent reinstalled, on epoll again.
# The daemons run in a network namespace of their own (loopback only), so
# Debian's fixed ports (80, 11211) cannot clash with anything on the host.
#
#   tests/packages/run.sh DEBDIR [SUITE]
# DEBDIR: the .debs of `make deb`; SUITE: bookworm (default), or trixie for
# the Debian 13 module package (make deb-trixie) in a Debian 13 root, nginx
# cases only.  Results "PASS|FAIL packages/<case>" (packages-trixie/...)
# go to $RP_RESULTS; the log of every step to build/tests-packages[-trixie]/log.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
debs=$(cd "${1:?usage: run.sh DEBDIR [SUITE]}" && pwd)
suite=${2:-bookworm}
case $suite in
bookworm) name=packages ;;
trixie)   name=packages-trixie ;;
*) echo "run.sh: unknown suite $suite" >&2; exit 2 ;;
esac
out=$top/build/tests-$name
base=$top/build/packaging/roots/$suite
res=${RP_RESULTS:-/dev/stdout}
lib=$top/tests/packages/lib.sh

if [ "${RP_PKG_INNER:-}" != 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP $name -- needs root (debootstrap, chroot, mount and network namespaces)" >> "$res"
        exit 0
    fi
    # where no ring can be made, the io_uring cases are SKIPs naming why
    if [ -x "$top/build/tools/uring-check" ] && ! "$top/build/tools/uring-check" > /dev/null; then
        RP_NO_RING=$("$top/build/tools/uring-check"); export RP_NO_RING
    fi
    mkdir -p "$out"
    exec 9> "$out/.lock"
    flock -w 1200 9 || { echo "FAIL packages/lock (another run held $out/.lock)" >> "$res"; exit 1; }
    "$top/packaging/root.sh" "$suite" "$base" || {
        echo "FAIL $name/root (debootstrap of $suite failed; see $base.log)" >> "$res"; exit 1; }
    # mounts made here vanish with the namespace, whatever happens
    RP_PKG_INNER=1 exec unshare --mount --propagation private "$0" "$debs" "$suite"
fi

RP_PKG_NAME=$name; export RP_PKG_NAME
. "$lib"
start=$(date +%s)
: > "$out/log"
rm -rf "$out/upper" "$out/work" "$out/root"
mkdir -p "$out/upper" "$out/work" "$out/root" "$top/build/packaging/roots/$suite-archives/partial"
R=$out/root
mount -t overlay overlay -o "lowerdir=$base,upperdir=$out/upper,workdir=$out/work" "$R" || {
    echo "FAIL $name/root (overlay mount failed)" >> "$res"; exit 1; }
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --bind "$top/build/packaging/roots/$suite-archives" "$R/var/cache/apt/archives"
mkdir -p "$R/debs" && mount --bind -o ro "$debs" "$R/debs"
cp /etc/resolv.conf "$R/etc/resolv.conf"
trap 'kill_root_procs' EXIT

in_root apt-get update || { record FAIL root "apt-get update in the root failed"; exit 1; }

mod_deb=$(cd "$debs" && ls libnginx-mod-event-io-uring_*.deb 2>/dev/null | tail -1)
lev_debs=$(cd "$debs" && ls libevent-*.deb 2>/dev/null | grep -v dbgsym | tr '\n' ' ')
nginx_v=$(in_root_out apt-cache policy nginx | sed -n 's/^ *Candidate: //p')

# ------------------------------------------------------------- nginx
if [ -z "$mod_deb" ]; then
    record FAIL nginx-install "no libnginx-mod-event-io-uring_*.deb in $debs (make deb)"
else
    # what an operator types: the module package alone pulls Debian's nginx
    if in_root apt-get install -y "/debs/$mod_deb"; then
        so=$R/usr/lib/nginx/modules/ngx_event_io_uring_module.so
        link=$R/etc/nginx/modules-enabled/50-mod-event-io-uring.conf
        conf=$(cat "$R/usr/share/nginx/modules-available/mod-event-io-uring.conf" 2>/dev/null)
        if [ -f "$so" ] && [ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-event-io-uring.conf ] \
           && [ "$conf" = "load_module modules/ngx_event_io_uring_module.so;" ] \
           && in_root dpkg -s nginx; then
            record PASS nginx-install "nginx $nginx_v; Depends: $(dpkg-deb -f "$debs/$mod_deb" Depends)"
        else
            record FAIL nginx-install "layout: so=$( [ -f "$so" ] && echo yes || echo no)" \
                "link=$(readlink "$link") conf='$conf'"
        fi
    else
        record FAIL nginx-install "apt-get install /debs/$mod_deb failed"
    fi

    # loaded by modules-enabled, not asked for: Debian's nginx stays on epoll
    netns nginx_serve epoll default
    # the operator's choice in events {}
    sed -i 's/^\(\s*worker_connections .*\)$/\1\n\tuse io_uring;/' "$R/etc/nginx/nginx.conf"
    sed -i 's|^error_log /var/log/nginx/error.log;|error_log /var/log/nginx/error.log notice;|' "$R/etc/nginx/nginx.conf"
    grep -q 'use io_uring;' "$R/etc/nginx/nginx.conf" || record FAIL nginx-conf "could not add use io_uring"
    netns nginx_serve io_uring use-io_uring

    # removed: nginx refuses the directive (the operator takes it out, as
    # README.Debian says), and with it out Debian's nginx is stock again
    in_root apt-get remove -y libnginx-mod-event-io-uring
    if [ ! -e "$R/etc/nginx/modules-enabled/50-mod-event-io-uring.conf" ] \
       && ! in_root nginx -t -q; then
        record PASS nginx-remove "module link gone; nginx -t rejects use io_uring without it"
    else
        record FAIL nginx-remove "after apt-get remove: link still there or nginx -t accepts use io_uring"
    fi
    sed -i '/^\s*use io_uring;$/d' "$R/etc/nginx/nginx.conf"
    netns nginx_serve epoll removed
    in_root apt-get purge -y libnginx-mod-event-io-uring
    if [ ! -e "$R/usr/lib/nginx/modules/ngx_event_io_uring_module.so" ] \
       && ! ls "$R"/etc/nginx/modules-enabled/ | grep -q event-io-uring; then
        record PASS nginx-purge "module, its load file and its links are gone"
    else
        record FAIL nginx-purge "left after purge: $(ls "$R"/etc/nginx/modules-enabled/ | tr '\n' ' ')"
    fi
fi

# ------------------------------------------------------------- libevent
if [ "$suite" != bookworm ]; then
    echo "$name suite: $(($(date +%s) - start)) s (log: $out/log)"
    exit 0
fi
if in_root apt-get install -y memcached; then
    netns memcached_serve epoll stock
else
    record FAIL memcached-install "apt-get install memcached failed"
fi
if [ -z "$lev_debs" ]; then
    record FAIL libevent-install "no libevent-*.deb in $debs (make deb)"
else
    # the operator's command, from the directory holding the files
    if in_root sh -c 'cd /debs && apt-get install -y ./libevent-*.deb'; then
        v=$(in_root_out dpkg-query -W -f '${Version}' libevent-core-2.1-7)
        case $v in
        *ringplug*) record PASS libevent-install "libevent-core-2.1-7 $v" ;;
        *) record FAIL libevent-install "libevent-core-2.1-7 is $v after apt install" ;;
        esac
    else
        record FAIL libevent-install "apt-get install ./libevent-*.deb failed"
    fi
    netns memcached_serve io_uring ringplug
    RP_EVENT_ENV=EVENT_NOIO_URING=1 netns memcached_serve epoll noio_uring
    # back to Debian's: the same packages at the archive's version
    deb_ver=$(in_root_out apt-cache madison libevent-core-2.1-7 | awk -F' *[|] *' '$2 !~ /ringplug/ && $3 ~ /Packages/ {print $2; exit}')
    pkgs=$(for d in $lev_debs; do echo "${d%%_*}=$deb_ver"; done | tr '\n' ' ')
    if [ -n "$deb_ver" ] && in_root apt-get install -y --allow-downgrades $pkgs; then
        v=$(in_root_out dpkg-query -W -f '${Version}' libevent-core-2.1-7)
        record PASS libevent-revert "libevent-core-2.1-7 $v"
    else
        record FAIL libevent-revert "apt-get install Debian's libevent ($deb_ver) failed"
    fi
    netns memcached_serve epoll reverted
fi

echo "$name suite: $(($(date +%s) - start)) s (log: $out/log)"
