#!/bin/sh
# Our own checks of the libevent io_uring backend, one result line each.
# Usage: tests/libevent/run.sh <test bin dir> <libevent prefix> <rp-noring>
#        [<libevent source tree>]
set -u
bin=$1 prefix=$2 noring=$3 src=${4:-}
res=${RP_RESULTS:-/dev/stdout}
here=$(dirname "$0")
log=${RP_LOG_DIR:-build/libevent/logs}
mkdir -p "$log"
log=$(cd "$log" && pwd)
unset EVENT_NOIO_URING EVENT_NOEPOLL EVENT_SHOW_METHOD EVENT_DEBUG_MODE \
    EVENT_EPOLL_USE_CHANGELIST EVENT_IO_URING_NO_BEV EVENT_IO_URING_BUFFERS

# run NAME CMD...: PASS when CMD exits 0, SKIP when 77, FAIL otherwise.
run() {
    name=$1; shift
    start=$(date +%s%N)
    "$@" > "$log/$name.log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    case $rc in
    0)  echo "PASS libevent/$name" >> "$res" ;;
    77) echo "SKIP libevent/$name -- $(tail -1 "$log/$name.log")" >> "$res" ;;
    *)  echo "FAIL libevent/$name (exit $rc: $(tail -1 "$log/$name.log"))" \
            >> "$res" ;;
    esac
    echo "libevent/$name: exit $rc, ${ms} ms"
    sed 's/^/    /' "$log/$name.log" | tail -8
}

run basic-io_uring        "$bin/le-basic" io_uring
run avoid-env             env EVENT_NOIO_URING=1 "$bin/le-basic" epoll
run avoid-config          "$bin/le-basic" epoll io_uring
run fork                  "$bin/le-fork" io_uring
run threads               "$bin/le-threads" io_uring
run manyfds-10000         "$bin/le-manyfds" io_uring
run init-warn             "$bin/le-initwarn"
if [ -x "$noring" ]; then
    run noring-fallback   "$here/noring.sh" "$noring" "$bin/le-basic"
    run memcached-noring  "$here/memcached.sh" "$prefix/lib" epoll "$noring"
else
    echo "FAIL libevent/noring-fallback (no launcher at $noring)" >> "$res"
fi
# regress.sh's verdict on a libevent case that fails on every backend
if [ -n "$src" ]; then
    run regress-classify  "$here/classify.sh" "$src"
fi
run memcached-drop-in     "$here/memcached.sh" "$prefix/lib" io_uring
# completion bufferevents
run bev-kind              "$bin/le-bev" kind
run bev-kind-nobev        env EVENT_IO_URING_NO_BEV=1 "$bin/le-bev" echo socket
run bev-connect           "$bin/le-bev" connect
run bev-setfd-connecting  "$bin/le-bev" setfd
run bev-setfd-connecting-socket env EVENT_IO_URING_NO_BEV=1 \
                              "$bin/le-bev" setfd socket
run bev-setfd-connecting-epoll env EVENT_NOIO_URING=1 "$bin/le-bev" setfd socket
run bev-fork-inflight     "$bin/le-bev" fork
run bev-fork-inflight-socket env EVENT_IO_URING_NO_BEV=1 "$bin/le-bev" fork socket
run bev-fork-inflight-epoll env EVENT_NOIO_URING=1 "$bin/le-bev" fork socket
run bev-fork-free-first   "$bin/le-bev" fork-free-first
run bev-fork-free-first-socket env EVENT_IO_URING_NO_BEV=1 \
                              "$bin/le-bev" fork-free-first socket
run bev-fork-inflight-asan env ASAN_OPTIONS=detect_leaks=1 \
                              "$bin/le-bev-asan" fork
run bev-threads           "$bin/le-bev" threads
run bev-threads-setfd     "$bin/le-bev" threads-setfd
run bev-threads-setfd-socket env EVENT_IO_URING_NO_BEV=1 \
                              "$bin/le-bev" threads-setfd socket
run bev-threads-setfd-epoll env EVENT_NOIO_URING=1 \
                              "$bin/le-bev" threads-setfd socket
run bev-threads-setfd-asan env ASAN_OPTIONS=detect_leaks=1 \
                              "$bin/le-bev-asan" threads-setfd
run bev-echo              "$bin/le-bev" echo
run bev-enobufs-storm     env EVENT_IO_URING_BUFFERS=8 LE_BEV_CONNS=128 \
                              "$bin/le-bev" echo
run bev-slow-reader       env EVENT_IO_URING_BUFFERS=8 "$bin/le-bev" slow
run bev-free-inflight-asan env ASAN_OPTIONS=detect_leaks=1 \
                              "$bin/le-bev-asan" free
run bev-echo-asan         env EVENT_IO_URING_BUFFERS=16 LE_BEV_CONNS=32 \
                              "$bin/le-bev-asan" echo
exit 0
