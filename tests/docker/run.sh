#!/bin/bash
# Suite docker: the container demos (docker/) built and run by a real engine,
# podman, with the project's containers.conf (scripts/podman.sh: runc,
# rlimits this machine allows) on a Debian 12 base made by debootstrap.
#
#   profile-generated   config/seccomp-io_uring.json is podman's default
#                       profile plus the three io_uring calls, as
#                       scripts/seccomp-allowlist.py makes it
#   build-nginx, build-memcached, build-compose
#                       the images build (podman's layer cache makes a
#                       rebuild of unchanged sources take seconds)
#   nginx-default-profile   the engine's default profile: every worker logs
#                       the fallback line naming seccomp, serves, on epoll
#   nginx-io_uring-profile  our profile: every worker logs "using io_uring",
#                       serves, and /io_uring shows the ring's counters
#   nginx-memlock-64k   our profile with RLIMIT_MEMLOCK 64 KiB: the fallback
#                       line names the limit, the server serves
#   denied-vmsplice, denied-cachestat
#                       a call podman's default denies (by rule: EPERM; by
#                       being newer than the profile: ENOSYS) is denied
#                       under ours too, and succeeds unconfined
#   memcached-default-profile, memcached-io_uring-profile
#                       Debian's memcached on our libevent: every event base
#                       on epoll / on io_uring, our library mapped, 300
#                       set/get round-trips through the published port
#   compose             docker/compose.yaml under podman-compose: the load
#                       container finds one server on epoll and one on
#                       io_uring and prints its comparison; both answer on
#                       their host ports
#
# To watch cases fail without their feature: RP_DOCKER_PROFILE=file replaces
# config/seccomp-io_uring.json; RP_DOCKER_MEMCACHED_OPTS adds podman run
# options to memcached-io_uring-profile (-e LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu
# puts memcached back on Debian's libevent).  Everything it starts is named
# ringplug-test-<pid>-* and removed on exit; the images are kept (tags
# ringplug-nginx, ringplug-memcached, ringplug-nginx-side-by-side,
# ringplug-load) so the next run reuses their layers.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
P=$top/scripts/podman.sh
log=$top/build/docker/test
mkdir -p "$log"
profile=$(realpath "${RP_DOCKER_PROFILE:-config/seccomp-io_uring.json}")
run=ringplug-test-$$
proj=ringplug-test-$$
body_want="ringplug demo: served by Debian's nginx"

rec() {
    echo "$1 docker/$2"
    if [ -n "${RP_RESULTS:-}" ]; then echo "$1 docker/$2" >> "$RP_RESULTS"; fi
}
pass() { rec PASS "$1"; }
fail() { rec FAIL "$1 -- $2"; }
skip() { rec SKIP "$1 -- $2"; }

cleanup() {
    local c
    for c in $("$P" ps -a --format '{{.Names}}' 2>/dev/null | grep "^$run-"); do
        timeout 30 "$P" rm -f -t 2 "$c" > /dev/null 2>&1
    done
    if [ -n "${compose_up:-}" ]; then
        (cd docker && timeout 60 "$P" compose -p "$proj" down -t 2) \
            > /dev/null 2>&1
        timeout 30 "$P" network rm -f "${proj}_default" > /dev/null 2>&1
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the profile -------------------------------------------------------------
if out=$(scripts/seccomp-allowlist.py --check "$profile" 2>&1); then
    pass profile-generated
else
    echo "$out"
    fail profile-generated "$(basename "$profile") is not what scripts/seccomp-allowlist.py makes from podman's default"
fi

cases="build-nginx build-memcached build-compose
       nginx-default-profile nginx-io_uring-profile nginx-memlock-64k
       denied-vmsplice denied-cachestat memcached-default-profile
       memcached-io_uring-profile compose"
skip_all() { local c; for c in $cases; do skip "$c" "$1"; done; exit 0; }

# --- the engine and the base image ----------------------------------------
# SKIP only where the engine itself cannot run here; a base image that
# cannot be made (debootstrap, Debian's archive) is a FAIL.
if ! out=$(timeout 60 "$P" info 2>&1); then
    skip_all "podman cannot start here: $(echo "$out" | tail -1)"
fi
# Our rlimits: a run that sets --ulimit gives all of them (podman replaces
# containers.conf's list with the command line's).
ulimits=$(sed -n 's/^default_ulimits = \[\(.*\)\]/\1/p' build/docker/containers.conf \
          | tr -d '",' | sed 's/\(nofile\|nproc\)/--ulimit \1/g')
base=$(timeout 600 "$P" base 2> "$log/base.log") || {
    cat "$log/base.log"
    fail base-image "could not make the Debian 12 base image (see $log/base.log)"
    exit 0
}
if ! out=$(timeout 60 "$P" run --rm --name "$run-probe" "$base" true 2>&1); then
    skip_all "podman cannot run a container here: $(echo "$out" | tail -1)"
fi

# --- builds -------------------------------------------------------------------
build() {   # name dockerfile tag
    local t0=$SECONDS
    if timeout 1500 nice -n 10 "$P" build --build-arg BASE="$base" \
            -f "$2" -t "$3" . > "$log/$1.log" 2>&1; then
        echo "  $1: $((SECONDS - t0)) s"
        pass "$1"; return 0
    fi
    tail -20 "$log/$1.log"
    fail "$1" "podman build -f $2 failed (see $log/$1.log)"; return 1
}
build build-nginx docker/nginx/Dockerfile ringplug-nginx; nginx_ok=$?
build build-memcached docker/memcached/Dockerfile ringplug-memcached; mc_ok=$?
t0=$SECONDS
if (cd docker && BASE=$base timeout 1500 nice -n 10 "$P" compose build) \
        > "$log/build-compose.log" 2>&1; then
    echo "  build-compose: $((SECONDS - t0)) s"
    pass build-compose; compose_ok=0
else
    tail -20 "$log/build-compose.log"
    fail build-compose "podman-compose build failed (see $log/build-compose.log)"
    compose_ok=1
fi

# --- helpers ------------------------------------------------------------------
# start NAME IMAGE PORT [podman run options...]: detached, the port published
# on a free loopback port (read back into $hport)
start() {
    local c=$1 name=$run-$1 image=$2 port=$3
    shift 3
    timeout 60 "$P" run -d --name "$name" -p "127.0.0.1::$port" "$@" "$image" \
        > "$log/$c.run" 2>&1 || { cat "$log/$c.run"; return 1; }
    hport=$(timeout 10 "$P" port "$name" "$port" | sed -n '1s/.*://p')
    [ -n "$hport" ]
}
logs() { timeout 10 "$P" logs "$run-$1" > "$log/$1.log" 2>&1; cat "$log/$1.log"; }
stop() { timeout 30 "$P" rm -f -t 3 "$run-$1" > /dev/null 2>&1; }
get() { curl -s --max-time 5 "http://127.0.0.1:$1$2"; }
wait_http() {   # port: up to 15 s for an answer
    local _
    for _ in $(seq 75); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.2
    done
    return 1
}

# nginx_case NAME want-log-regex want-/io_uring-regex [podman run options]
nginx_case() {
    local c=$1 want=$2 st_want=$3
    shift 3
    if [ "$nginx_ok" -ne 0 ]; then fail "$c" "no image (build-nginx failed)"; return; fi
    if ! start "$c" ringplug-nginx 8080 "$@"; then
        fail "$c" "podman run failed: $(tail -1 "$log/$c.run")"; return
    fi
    wait_http "$hport"
    local body st n lines
    body=$(get "$hport" /) st=$(get "$hport" /io_uring)
    sleep 0.5
    logs "$c" > /dev/null
    n=$(grep -cE "start worker process [0-9]+$" "$log/$c.log")
    lines=$(grep -cE "$want" "$log/$c.log")
    stop "$c"
    if [ "$body" != "$body_want" ]; then
        fail "$c" "GET / returned '$body'"
    elif ! echo "$st" | grep -qE "$st_want"; then
        fail "$c" "GET /io_uring returned '$st', want /$st_want/"
    elif [ "$n" -lt 1 ] || [ "$lines" -ne "$n" ]; then
        grep -E "warn|notice.*using|emerg" "$log/$c.log" | head -5
        fail "$c" "$lines of $n workers logged /$want/ (see $log/$c.log)"
    else
        echo "  $c: $(grep -m1 -E "$want" "$log/$c.log" | sed 's/^[^]]*] //')"
        pass "$c"
    fi
}

# --- nginx ---------------------------------------------------------------------
nginx_case nginx-default-profile \
    'io_uring is not available: .*seccomp.*, using epoll$' '^off$'
nginx_case nginx-io_uring-profile \
    '\[notice\] [0-9#]+: using io_uring' '^enters=[0-9]+ ' \
    --security-opt "seccomp=$profile"
nginx_case nginx-memlock-64k \
    'io_uring is not available: .*RLIMIT_MEMLOCK is 64 KiB.*, using epoll$' '^off$' \
    --security-opt "seccomp=$profile" $ulimits --ulimit memlock=65536:65536

# --- system calls the default profile denies --------------------------------------
probe() {   # seccomp option -> "vmsplice ...\ncachestat ..."
    timeout 30 "$P" run --rm --name "$run-probe-$RANDOM" --security-opt "$1" \
        ringplug-nginx perl -e "$(cat tests/docker/syscall-probe.pl)" 2>&1
}
if [ "$(uname -m)" != x86_64 ]; then
    skip denied-vmsplice "the probe uses x86_64 system call numbers"
    skip denied-cachestat "the probe uses x86_64 system call numbers"
elif [ "$nginx_ok" -ne 0 ]; then
    fail denied-vmsplice "no image (build-nginx failed)"
    fail denied-cachestat "no image (build-nginx failed)"
else
    free=$(probe seccomp=unconfined) ours=$(probe "seccomp=$profile")
    echo "  unconfined: $(echo $free); ours: $(echo $ours)"
    for c in "vmsplice 1" "cachestat 38"; do
        set -- $c
        if ! echo "$free" | grep -qx "$1 ok"; then
            fail "denied-$1" "the probe fails unconfined too: $(echo $free)"
        elif ! echo "$ours" | grep -qx "$1 errno $2"; then
            fail "denied-$1" "under $(basename "$profile"): $(echo "$ours" | grep "^$1"), want errno $2"
        else
            pass "denied-$1"
        fi
    done
fi

# --- memcached -------------------------------------------------------------------
memc_client() {   # port count: set/get round-trips, one line of outcome
    perl -MIO::Socket::INET -e '
        my ($port, $n) = @ARGV;
        my $s;
        for (1 .. 100) {
            $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port,
                                       Timeout => 5) and last;
            select(undef, undef, undef, 0.1);
        }
        $s or die "cannot connect to 127.0.0.1:$port\n";
        $s->autoflush(1);
        local $SIG{ALRM} = sub { die "no answer in 20 s\n" }; alarm 20;
        for my $i (1 .. $n) {
            my $v = "value-$i-" . ("x" x ($i * 37 % 3000));
            print $s "set k$i 0 0 " . length($v) . "\r\n$v\r\n";
            my $r = <$s>; defined $r && $r eq "STORED\r\n" or die "set k$i: $r";
            print $s "get k$i\r\n";
            $r = <$s>; $r eq "VALUE k$i 0 " . length($v) . "\r\n" or die "get k$i: $r";
            $r = <$s>; $r eq "$v\r\n" or die "get k$i: wrong data\n";
            $r = <$s>; $r eq "END\r\n" or die "get k$i end: $r";
        }
        print "$n set/get round-trips ok\n";' "$1" "$2" 2>&1
}

# memcached_case NAME method [podman run options]
memcached_case() {
    local c=$1 method=$2 out maps n other
    shift 2
    if [ "$mc_ok" -ne 0 ]; then fail "$c" "no image (build-memcached failed)"; return; fi
    if ! start "$c" ringplug-memcached 11211 "$@"; then
        fail "$c" "podman run failed: $(tail -1 "$log/$c.run")"; return
    fi
    out=$(memc_client "$hport" 300)
    maps=$(timeout 10 "$P" exec "$run-$c" grep -c /usr/local/lib/libevent /proc/1/maps 2>&1)
    logs "$c" > /dev/null
    stop "$c"
    n=$(grep -c "libevent using:" "$log/$c.log")
    other=$(grep "libevent using:" "$log/$c.log" | grep -vc "libevent using: $method\$")
    if [ "$out" != "300 set/get round-trips ok" ]; then
        fail "$c" "client: $out"
    elif ! [ "$maps" -ge 1 ] 2>/dev/null; then
        fail "$c" "memcached has no /usr/local/lib/libevent mapped ($maps)"
    elif [ "$n" -lt 2 ] || [ "$other" -ne 0 ]; then
        fail "$c" "$n event bases, $other not on $method (see $log/$c.log)"
    else
        echo "  $c: $out, $n event bases on $method"
        pass "$c"
    fi
}
memcached_case memcached-default-profile epoll
memcached_case memcached-io_uring-profile io_uring --security-opt "seccomp=$profile" \
    ${RP_DOCKER_MEMCACHED_OPTS:-}

# --- compose ---------------------------------------------------------------------
freeport() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
compose_case() {
    local c=compose pe pi lc out rc
    if [ "$compose_ok" -ne 0 ]; then fail $c "no images (build-compose failed)"; return; fi
    pe=$(freeport) pi=$(freeport)
    compose_up=1
    if ! (cd docker && BASE=$base RP_EPOLL_PORT=$pe RP_IOURING_PORT=$pi \
            RP_SECCOMP=$profile \
            LOAD_SECONDS=2 LOAD_ROUNDS=1 timeout 120 "$P" compose -p "$proj" \
            up -d --no-build) > "$log/compose-up.log" 2>&1; then
        tail -5 "$log/compose-up.log"
        fail $c "podman-compose up failed (see $log/compose-up.log)"; return
    fi
    # the load container, by its compose labels (podman-compose 1.0.3 names
    # it proj_load_1, others proj-load-1)
    lc=$(timeout 10 "$P" ps -a --format '{{.Names}}' \
         --filter "label=com.docker.compose.project=$proj" \
         --filter label=com.docker.compose.service=load | head -1)
    if [ -z "$lc" ]; then fail $c "no load container after podman-compose up"; return; fi
    rc=$(timeout 120 "$P" wait "$lc" 2>&1)
    out=$(timeout 10 "$P" logs "$lc" 2>&1)
    echo "$out" > "$log/compose-load.log"
    local e_body i_body e_st i_st
    e_body=$(get "$pe" /) i_body=$(get "$pi" /)
    e_st=$(get "$pe" /io_uring) i_st=$(get "$pi" /io_uring)
    echo "$out" | sed 's/^/  | /'
    if [ "$rc" != 0 ]; then
        fail $c "the load container exited with '$rc' (see $log/compose-load.log)"
    elif ! echo "$out" | grep -q '^epoll .*serves on epoll$' \
        || ! echo "$out" | grep -q '^io_uring .*serves on io_uring$'; then
        fail $c "the load container did not find epoll and io_uring servers"
    elif ! echo "$out" | grep -qE '^  epoll +[0-9]+ req/s +[0-9.]+ us' \
        || ! echo "$out" | grep -qE '^  io_uring +[0-9]+ req/s +[0-9.]+ us'; then
        fail $c "no comparison lines from the load container"
    elif [ "$e_body" != "$body_want" ] || [ "$i_body" != "$body_want" ]; then
        fail $c "host ports $pe/$pi answered '$e_body' / '$i_body'"
    elif [ "$e_st" != off ] || ! echo "$i_st" | grep -q '^enters='; then
        fail $c "host ports: /io_uring gave '$e_st' on $pe, '${i_st:0:30}' on $pi"
    else
        pass $c
    fi
}
compose_case
exit 0
