#!/bin/bash
# podman as this project runs it (make demo-docker, make test-docker).
#
#   scripts/podman.sh ARGS...   podman ARGS with the project's containers.conf
#   scripts/podman.sh compose ARGS...   podman-compose ARGS, the same way
#   scripts/podman.sh base      make sure the base image exists; print its name
#
# containers.conf: build/docker/containers.conf, written here from this
# machine's limits and passed with CONTAINERS_CONF (the system's files are not
# touched).  It names runc (crun fails on a cgroup v1/hybrid host: "cgroups in
# hybrid mode not supported") and sets rlimits within the hard limits of this
# shell, which podman as root cannot raise without CAP_SYS_RESOURCE.
#
# The base image: Debian 12 minbase made by debootstrap from Debian's archive
# (no image registry is reachable here), configured like Docker's
# debian:bookworm (deb822 sources with updates and security, apt cleaning its
# cache, no service starts at install), cached as build/docker/base.tar and
# imported as localhost/ringplug-base:bookworm.  The Dockerfiles take it with
# --build-arg BASE=...; without it they use debian:bookworm from a registry.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/docker
base_name=localhost/ringplug-base:bookworm
mkdir -p "$dir"

conf=$dir/containers.conf
hn=$(ulimit -Hn) hu=$(ulimit -Hu)
[ "$hn" = unlimited ] || [ "$hn" -gt 65536 ] && hn=65536
# podman itself runs with at most 32768 processes (measured here: runc
# fails to set nproc above that, "error setting rlimit type 6")
[ "$hu" = unlimited ] || [ "$hu" -gt 32768 ] && hu=32768
want="# written by scripts/podman.sh from this machine's hard limits
[containers]
default_ulimits = [\"nofile=$hn:$hn\", \"nproc=$hu:$hu\"]
[engine]
runtime = \"runc\""
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
    printf '%s\n' "$want" > "$conf.tmp" && mv -f "$conf.tmp" "$conf"
fi
export CONTAINERS_CONF="$conf"

case ${1:-} in
    base) ;;
    compose) shift; exec podman-compose "$@" ;;
    *) exec podman "$@" ;;
esac

# base: one maker at a time (several suites or worktrees may ask at once).
exec 9> "$dir/base.lock"
flock 9
if podman image exists "$base_name"; then
    echo "$base_name"; exit 0
fi
tar=$dir/base.tar
if [ ! -s "$tar" ]; then
    "$top/scripts/deps.sh" debootstrap >&2
    root=$dir/base-rootfs
    rm -rf "$root"
    echo "podman.sh: debootstrap --variant=minbase bookworm (about a minute)" >&2
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian \
        > "$dir/debootstrap.log" 2>&1 \
        || { tail -5 "$dir/debootstrap.log" >&2
             echo "podman.sh: debootstrap failed, see $dir/debootstrap.log" >&2
             exit 1; }
    rm -f "$root/etc/apt/sources.list"
    cat > "$root/etc/apt/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
    echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
           "$root"/var/log/* "$root"/tmp/*
    tar --numeric-owner -C "$root" -cf "$tar.tmp" . && mv -f "$tar.tmp" "$tar"
    rm -rf "$root"
fi
podman import -q --change 'CMD ["bash"]' "$tar" "$base_name" >/dev/null
echo "$base_name"
