#!/bin/bash
# make demo-docker: the container demos run as a user would run them, here
# with podman (scripts/podman.sh: the project's containers.conf, a Debian 12
# base image made by debootstrap and cached in build/docker/).  Each step
# prints the docker command it stands for, what it shows, and what to look
# at.  Everything it starts is named ringplug-demo-* and removed at the end;
# the images stay (ringplug-nginx, ringplug-memcached, ...): `make
# docker-clean` removes them.
#
# Environment: LOAD_SECONDS (5), LOAD_ROUNDS (3): the side-by-side runs.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
P=$top/scripts/podman.sh
log=$top/build/docker/demo
mkdir -p "$log"
run=ringplug-demo-$$
profile=$top/config/seccomp-io_uring.json
compose_up=

say()  { printf '\n== %s\n' "$*"; }
cmd()  { printf '   $ %s\n' "$*"; }
look() { printf '   -> look at: %s\n' "$*"; }

cleanup() {
    local c
    for c in $("$P" ps -a --format '{{.Names}}' 2>/dev/null | grep "^$run-"); do
        "$P" rm -f -t 2 "$c" > /dev/null 2>&1 || true
    done
    if [ -n "$compose_up" ]; then
        (cd docker && "$P" compose -p "$run" down -t 2) > /dev/null 2>&1 || true
        "$P" network rm -f "${run}_default" > /dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

start() {   # name image port [options]: detached, port on a free loopback port
    local name=$run-$1 image=$2 port=$3
    shift 3
    "$P" run -d --name "$name" -p "127.0.0.1::$port" "$@" "$image" > /dev/null
    hport=$("$P" port "$name" "$port" | sed -n '1s/.*://p')
    for _ in $(seq 50); do
        (exec 3<> "/dev/tcp/127.0.0.1/$hport") 2>/dev/null && break
        sleep 0.2
    done
}

say "The base image: Debian 12 (debootstrap, cached in build/docker/base.tar)"
base=$("$P" base)
echo "   $base stands for debian:bookworm"

say "Building the images (the first time: packages and compiles, minutes)"
cmd "docker build -f docker/nginx/Dockerfile -t ringplug-nginx ."
nice -n 10 "$P" build --build-arg BASE="$base" -f docker/nginx/Dockerfile \
    -t ringplug-nginx . > "$log/build-nginx.log" 2>&1 \
    || { tail -20 "$log/build-nginx.log"; exit 1; }
cmd "docker build -f docker/memcached/Dockerfile -t ringplug-memcached ."
nice -n 10 "$P" build --build-arg BASE="$base" -f docker/memcached/Dockerfile \
    -t ringplug-memcached . > "$log/build-memcached.log" 2>&1 \
    || { tail -20 "$log/build-memcached.log"; exit 1; }
"$P" images --format '   {{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E 'ringplug-(nginx|memcached):' || true

say "1. nginx under the engine's default seccomp profile (io_uring blocked)"
cmd "docker run -d -p 127.0.0.1:8080:8080 ringplug-nginx"
start nginx-default ringplug-nginx 8080
cmd "curl http://127.0.0.1:8080/"
curl -s "http://127.0.0.1:$hport/" | sed 's/^/   /'
cmd "curl http://127.0.0.1:8080/io_uring"
curl -s "http://127.0.0.1:$hport/io_uring" | sed 's/^/   /'
sleep 0.3
"$P" logs "$run-nginx-default" 2>&1 | grep -m1 'io_uring is not available' \
    | sed 's/^/   /'
look "the [warn] line: the profile blocks io_uring_setup(), each worker" \
     "says so once and serves on epoll; /io_uring says 'off'"
"$P" rm -f -t 2 "$run-nginx-default" > /dev/null

say "2. nginx under config/seccomp-io_uring.json (the default profile + io_uring)"
cmd "docker run -d -p 127.0.0.1:8080:8080 --security-opt seccomp=config/seccomp-io_uring.json ringplug-nginx"
start nginx-io_uring ringplug-nginx 8080 --security-opt "seccomp=$profile"
cmd "curl http://127.0.0.1:8080/"
curl -s "http://127.0.0.1:$hport/" | sed 's/^/   /'
cmd "curl http://127.0.0.1:8080/io_uring"
curl -s "http://127.0.0.1:$hport/io_uring" | fmt -w 76 | sed 's/^/   /'
sleep 0.3
"$P" logs "$run-nginx-io_uring" 2>&1 | grep 'using io_uring' | sed 's/^/   /'
look "one 'using io_uring' line per worker, and the ring's counters at" \
     "/io_uring (enters, sqes, cqes ...)"
"$P" rm -f -t 2 "$run-nginx-io_uring" > /dev/null

say "3. Debian's memcached on our libevent, under config/seccomp-io_uring.json"
cmd "docker run -d -p 127.0.0.1:11211:11211 --security-opt seccomp=config/seccomp-io_uring.json ringplug-memcached"
start memcached ringplug-memcached 11211 --security-opt "seccomp=$profile"
cmd "printf 'set greeting 0 0 5\\r\\nhello\\r\\nget greeting\\r\\nquit\\r\\n' | nc 127.0.0.1 11211"
exec 3<> "/dev/tcp/127.0.0.1/$hport"
printf 'set greeting 0 0 5\r\nhello\r\nget greeting\r\nquit\r\n' >&3
timeout 5 cat <&3 | tr -d '\r' | sed 's/^/   /'
exec 3<&-
"$P" logs "$run-memcached" 2>&1 | sort | uniq -c | sed 's/^ */   /'
"$P" exec "$run-memcached" sh -c 'grep -m1 libevent-2.1 /proc/1/maps' \
    | awk '{ print "   memcached maps " $NF }'
look "every event base says 'libevent using: io_uring', and the library" \
     "mapped is /usr/local/lib's (ours), not Debian's; under the default" \
     "profile the same image says 'libevent using: epoll'"
"$P" rm -f -t 2 "$run-memcached" > /dev/null

say "4. Side by side: docker/compose.yaml (nginx on epoll, nginx on io_uring, wrk)"
cmd "cd docker && docker compose up --build --abort-on-container-exit --exit-code-from load"
cmd "(here: podman-compose up -d; the load container's output follows)"
freeport() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
pe=$(freeport) pi=$(freeport)
(cd docker && BASE=$base nice -n 10 "$P" compose build) > "$log/build-compose.log" 2>&1 \
    || { tail -20 "$log/build-compose.log"; exit 1; }
compose_up=1
(cd docker && BASE=$base RP_EPOLL_PORT=$pe RP_IOURING_PORT=$pi \
    "$P" compose -p "$run" up -d --no-build) > "$log/compose-up.log" 2>&1 \
    || { tail -20 "$log/compose-up.log"; exit 1; }
lc=$("$P" ps -a --format '{{.Names}}' --filter "label=com.docker.compose.project=$run" \
     --filter label=com.docker.compose.service=load | head -1)
"$P" logs -f "$lc" 2>&1 | sed 's/^/   /'
rc=$("$P" wait "$lc")
echo "   (load container exit code $rc; the servers answer on the host too:"
echo "    127.0.0.1:$pe is nginx-epoll, 127.0.0.1:$pi is nginx-iouring)"
look "req/s and server CPU per request of the two, each run alternating" \
     "who goes first; on this 2-CPU machine the load shares the CPUs with" \
     "the servers, so read them as this machine's figures, not a benchmark"
