# tests/packages/lib.sh: helpers of tests/packages/run.sh (sourced).
# R is the root, out the suite's build directory, res the results file.

# record PASS|FAIL|SKIP case detail...: one result line, the detail in
# the log; an io_uring case is a SKIP where the host cannot make a ring
record() {
    st=$1 cname=$2; shift 2
    if [ "$st" = FAIL ] && [ -n "${RP_NO_RING:-}" ] && echo "$*" | grep -q '^\[io_uring'; then
        st=SKIP
        set -- "io_uring unavailable here ($RP_NO_RING)"
    fi
    if [ "$st" = PASS ]; then
        echo "PASS ${RP_PKG_NAME:-packages}/$cname" >> "$res"
    elif [ "$st" = SKIP ]; then
        echo "SKIP ${RP_PKG_NAME:-packages}/$cname -- $*" >> "$res"
    else
        echo "FAIL ${RP_PKG_NAME:-packages}/$cname ($*)" >> "$res"
    fi
    echo "== $st ${RP_PKG_NAME:-packages}/$cname: $*" | tee -a "$out/log"
}

# a command in the root, its output in the log
in_root() {
    echo "## chroot: $*" >> "$out/log"
    DEBIAN_FRONTEND=noninteractive chroot "$R" "$@" >> "$out/log" 2>&1
}
in_root_out() {
    chroot "$R" "$@" 2>> "$out/log"
}

# netns FN ARGS...: FN in a new network namespace with loopback up
netns() {
    R=$R out=$out res=$res top=$top RP_EVENT_ENV=${RP_EVENT_ENV:-} RP_PKG_NAME=$RP_PKG_NAME \
        RP_NO_RING=${RP_NO_RING:-} \
        unshare --net sh -c '. "$top/tests/packages/lib.sh"; ip link set lo up && "$@"' \
        netns "$@"
}

# Processes whose root is ours are ours (daemons a case left behind).
kill_root_procs() {
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        [ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$R" ] && kill -9 "$p" 2>/dev/null
    done
    return 0
}

# rings PID: io_uring instances the process holds; epolls PID: epoll ones
rings()  { ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'anon_inode:\[io_uring\]'; }
epolls() { ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'anon_inode:\[eventpoll\]'; }
# completions the process's rings have posted
ring_cqes() {
    n=0
    for f in /proc/$1/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = 'anon_inode:[io_uring]' ] || continue
        c=$(sed -n 's/^CqTail:\s*\([0-9]*\).*/\1/p' "/proc/$1/fdinfo/${f##*/}" 2>/dev/null)
        n=$((n + ${c:-0}))
    done
    echo "$n"
}

wait_for() {    # wait_for SECONDS command...
    t=$(( $1 * 10 )); shift
    while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.1; t=$((t - 1)); done
    return 1
}
port_open() { perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0], Timeout => 1) or exit 1' "$1"; }

# nginx_serve epoll|io_uring LABEL: Debian's nginx with the root's own
# configuration, one request to Debian's default site on port 80, then
# the event method its workers are on.
nginx_serve() {
    want=$1 label=nginx-$2
    log=$R/var/log/nginx/error.log
    : > "$log"
    if ! chroot "$R" nginx -t -q >> "$out/log" 2>&1; then
        record FAIL "$label" "nginx -t failed: $(chroot "$R" nginx -t 2>&1 | tail -1)"; return
    fi
    rm -f "$R/run/nginx.pid"
    chroot "$R" nginx >> "$out/log" 2>&1
    master=
    wait_for 10 test -s "$R/run/nginx.pid" && master=$(cat "$R/run/nginx.pid")
    wait_for 10 port_open 80
    workers=$(ps -o pid= --ppid "${master:-1}" 2>/dev/null | tr -d ' ' | tr '\n' ' ')
    code=$(curl -s -m 10 -o "$out/body" -w '%{http_code}' http://127.0.0.1/)
    body_ok=no; grep -q 'Welcome to nginx' "$out/body" 2>/dev/null && body_ok=yes
    why=
    [ -n "$master" ] || why="no nginx master"
    [ -n "$workers" ] || why="${why:+$why; }no workers"
    [ "$code" = 200 ] && [ $body_ok = yes ] || why="${why:+$why; }GET / gave $code (welcome page: $body_ok)"
    for w in $workers; do
        r=$(rings "$w") e=$(epolls "$w")
        if [ "$want" = io_uring ]; then
            [ "$r" -ge 1 ] || why="${why:+$why; }worker $w holds no io_uring ($e epoll)"
            [ "$(ring_cqes "$w")" -gt 0 ] || why="${why:+$why; }worker $w's ring posted no completion"
        else
            [ "$r" -eq 0 ] && [ "$e" -ge 1 ] || why="${why:+$why; }worker $w: $r io_uring, $e epoll"
        fi
    done
    if [ "$want" = io_uring ]; then
        grep -q 'using io_uring' "$log" || why="${why:+$why; }no 'using io_uring' in error.log"
    else
        grep -q 'io_uring' "$log" && why="${why:+$why; }error.log names io_uring: $(grep -m1 io_uring "$log")"
    fi
    notice=$(grep -m1 'using io_uring' "$log" | sed 's/.*\] //')
    chroot "$R" nginx -s quit >> "$out/log" 2>&1
    [ -n "$master" ] && wait_for 10 sh -c "! kill -0 $master 2>/dev/null"
    [ -n "$master" ] && kill -9 $master $workers 2>/dev/null
    if [ -z "$why" ]; then
        record PASS "$label" "[$want] GET / 200 from workers ${workers% }${notice:+; $notice}"
    else
        record FAIL "$label" "[$want] $why"
    fi
}

# memcached_serve epoll|io_uring LABEL: Debian's memcached (its libevent
# is whichever the root has), a set and a get, then the method libevent
# reports (EVENT_SHOW_METHOD) and the rings the process holds.
memcached_serve() {
    want=$1 label=memcached-$2
    # shellcheck disable=SC2086
    chroot "$R" env $RP_EVENT_ENV EVENT_SHOW_METHOD=1 memcached -u memcache \
        -l 127.0.0.1 -p 11211 -t 2 2> "$out/memcached.err" &
    pid=$!
    why=
    wait_for 10 port_open 11211 || why="memcached not listening"
    reply=$(perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => 11211, Timeout => 5) or exit 1;
        print $s "set ringplug 0 0 5\r\nhello\r\nget ringplug\r\n";
        my $r = ""; local $SIG{ALRM} = sub { print $r; exit 2 }; alarm 5;
        while (<$s>) { $r .= $_; last if /^END/ } print $r' | tr -d '\r' | tr '\n' '|')
    [ "$reply" = "STORED|VALUE ringplug 0 5|hello|END|" ] || why="${why:+$why; }set/get gave '$reply'"
    methods=$(sed -n 's/.*libevent using: //p' "$out/memcached.err" | sort | uniq -c \
        | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')
    r=$(rings "$pid")
    if [ "$want" = io_uring ]; then
        [ "$r" -ge 1 ] || why="${why:+$why; }memcached holds no io_uring"
        [ "$(ring_cqes "$pid")" -gt 0 ] || why="${why:+$why; }its rings posted no completion"
        sed -n 's/.*libevent using: //p' "$out/memcached.err" | grep -qv '^io_uring$' \
            && why="${why:+$why; }libevent methods: $methods"
    else
        [ "$r" -eq 0 ] || why="${why:+$why; }memcached holds $r io_uring"
        sed -n 's/.*libevent using: //p' "$out/memcached.err" | grep -qv '^epoll' \
            && why="${why:+$why; }libevent methods: $methods"
    fi
    grep -q 'libevent using:' "$out/memcached.err" || why="${why:+$why; }no 'libevent using' line"
    kill "$pid" 2>/dev/null
    wait_for 10 sh -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    cat "$out/memcached.err" >> "$out/log"
    if [ -z "$why" ]; then
        record PASS "$label" "[$want${RP_EVENT_ENV:+ $RP_EVENT_ENV}] set/get; libevent using: $methods; $r rings"
    else
        record FAIL "$label" "[$want${RP_EVENT_ENV:+ $RP_EVENT_ENV}] $why"
    fi
}
