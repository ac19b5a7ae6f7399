#!/bin/sh
# libevent's own regression suite on one backend, the way its test/test.sh
# runs it (every other backend avoided through EVENT_NO*, then the small
# test programs, regress, and regress again with EVENT_DEBUG_MODE=1), with
# one result line per test case in $RP_RESULTS.
#
# Usage: tests/libevent/regress.sh <libevent source tree> <method> [asan]
#   method: io_uring | io_uring-nobev | epoll
#   (io_uring-nobev: EVENT_IO_URING_NO_BEV=1, readiness bufferevents)
#   asan: the tree is the ASan+UBSan build; regress runs once (no debug-mode
#   pass), and any sanitizer report fails the suite.  Leaks inside OpenSSL,
#   which libevent's TLS tests leave behind, are suppressed.
#
# Skipped by name: six TLS tests that fail on Debian 12 for every backend
# (OpenSSL 3 reports an unclean shutdown differently).
# A case that fails in the full run runs once more on its own; if it fails
# again it runs on libevent's stock reference backend (epoll for io_uring,
# poll for epoll).  A case that fails there too is libevent's own test
# failing on this machine, whatever the backend (getaddrinfo_cancel_stress
# expects a local DNS server to be slower than a 10 ms timer, and on a fast
# machine it is not): it is reported SKIP with that reason and the failure
# line, never PASS.  A case that passes on the reference backend FAILs.
#
# RP_REGRESS_CASES="group/name ..." runs only those cases (the default is
# every case); RP_REGRESS_KNOWN overrides the list of cases skipped by name
# (tests/libevent/run.sh uses both to check this classification).
set -u
tree=$1 method=$2 mode=${3:-}
res=${RP_RESULTS:-/dev/stdout}
log=${RP_LOG_DIR:-build/libevent/logs}
mkdir -p "$log"
log=$(cd "$log" && pwd)/regress-$method${mode:+-$mode}

OPENSSL3=${RP_REGRESS_KNOWN-"http/https_incomplete http/https_incomplete_timeout
http/https_chunk_out ssl/bufferevent_socketpair_dirty_shutdown
ssl/bufferevent_renegotiate_socketpair_dirty_shutdown
ssl/bufferevent_socketpair_startopen_dirty_shutdown"}
CASES=${RP_REGRESS_CASES:-}

unset EVENT_IO_URING_NO_BEV EVENT_IO_URING_BUFFERS
case $method in
io_uring) upper=IO_URING ref=epoll ;;
io_uring-nobev)
          upper=IO_URING ref=epoll; EVENT_IO_URING_NO_BEV=1
          export EVENT_IO_URING_NO_BEV; method=io_uring ;;
epoll)    upper=EPOLL ref=poll ;;
*) echo "regress.sh: unknown method $method" >&2; exit 2 ;;
esac
# only NAME: set EVENT_NO* so that libevent picks backend NAME (upper case)
only() {
    for b in EVPORT KQUEUE IO_URING EPOLL DEVPOLL POLL SELECT WIN32; do
        if [ "$b" = "$1" ]; then unset EVENT_NO$b
        else eval "EVENT_NO$b=yes; export EVENT_NO$b"; fi
    done
}
only $upper
unset EVENT_EPOLL_USE_CHANGELIST EVENT_PRECISE_TIMER EVENT_DEBUG_MODE \
    EVENT_SHOW_METHOD
cd "$tree/test" || exit 2

# The backend really is the one named: a fallback must not pass as success.
got=$(EVENT_SHOW_METHOD=1 ./test-init 2>&1 | sed -n 's/.*libevent using: //p')
if [ "$got" = "$method" ]; then
    echo "PASS method-is-$method" >> "$res"
else
    echo "FAIL method-is-$method (libevent chose '$got')" >> "$res"
    exit 1
fi

for t in test-eof test-closed test-weof test-time test-changelist test-fdleak; do
    if timeout 60 ./$t > "$log.$t" 2>&1; then
        echo "PASS $t" >> "$res"
    else
        echo "FAIL $t" >> "$res"
    fi
done
if ./test-dumpevents 2>/dev/null | python3 ./check-dumpevents.py \
        > "$log.dumpevents" 2>&1; then
    echo "PASS test-dumpevents" >> "$res"
else
    echo "FAIL test-dumpevents" >> "$res"
fi

# tinytest prints "group/name: [forking] OK|SKIPPED|DISABLED", or the name,
# failure lines and "[name FAILED]".
regress() {
    prefix=$1; shift
    skips=
    for t in $OPENSSL3; do skips="$skips :$t"; done
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout 1200 "$@" ./regress ${CASES:-$skips} > "$log.$prefix.out" \
        2> "$log.$prefix.err"
    rc=$?
    out=$log.$prefix.res
    awk -v p="$prefix" -v skips="$OPENSSL3" '
        BEGIN { n = split(skips, s); for (i = 1; i <= n; i++) known[s[i]] = 1 }
        /^[A-Za-z0-9_]+\/[^ ]+: / {
            name = $1; sub(/:$/, "", name)
            if ($NF == "OK") print "PASS " p "/" name
            else if (name in known)
                print "SKIP " p "/" name " -- fails for every backend with OpenSSL 3 (Debian 12)"
            else if ($NF == "SKIPPED" || $NF == "DISABLED")
                print "SKIP " p "/" name " -- " tolower($NF) " by libevent"
            next
        }
        /^ *\[.* FAILED\]$/ { print "FAIL " p "/" name }
    ' "$log.$prefix.out" > "$out"
    # The timing tests allow 50 ms of slack; with other jobs on the CPUs
    # one may miss by a little.  A failed case runs once more on its own and
    # counts as passed only if it passes then; the retry is reported.
    for t in $(sed -n "s|^FAIL $prefix/||p" "$out"); do
        if "$@" ./regress "$t" > "$log.$prefix.retry" 2>&1; then
            sed -i "s|^FAIL $prefix/$t\$|PASS $prefix/$t (failed in the full run, passed on a rerun)|" "$out"
            echo "$prefix/$t: failed in the full run, passed on a rerun:"
            grep -A3 "^$t: " "$log.$prefix.out" | sed 's/^/    /'
            continue
        fi
        why=$(grep -m1 'FAIL .*:' "$log.$prefix.retry" | sed 's/^ *//; s/[|&\\]/ /g')
        refout=$log.$prefix.$ref
        if (only $(echo $ref | tr a-z A-Z); "$@" ./regress "$t") \
                > "$refout" 2>&1; then
            echo "$prefix/$t: fails on $method, passes on $ref: ${why:-?}"
        elif grep -q " FAILED\]$" "$refout"; then
            sed -i "s|^FAIL $prefix/$t\$|SKIP $prefix/$t -- libevent's own test fails here on $ref too, whatever the backend: ${why:-see $refout}|" "$out"
            echo "$prefix/$t: fails on $method and on $ref (reported SKIP):"
            sed 's/^/    /' "$refout" | head -8
        fi
    done
    cat "$out" >> "$res"
    summary=$(tail -1 "$log.$prefix.out")
    echo "$prefix ($method): $summary; exit $rc; $(( $(date +%s) - start ))s"
    # A crash or hang that printed no FAILED line must still fail.
    [ $rc -eq 0 ] || grep -q " FAILED\]$" "$log.$prefix.out" || \
        echo "FAIL $prefix (regress exited $rc: $summary)" >> "$res"
}

if [ "$mode" = asan ]; then
    printf 'leak:libcrypto.so\nleak:libssl.so\n' > "$log.lsan-supp"
    regress asan env LSAN_OPTIONS=suppressions=$log.lsan-supp \
        UBSAN_OPTIONS=print_stacktrace=1
    reports=$(grep -c "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error" \
        "$log.asan.err" "$log.asan.out" | awk -F: '{n += $2} END {print n}')
    if [ "$reports" -eq 0 ]; then
        echo "PASS asan/no-sanitizer-reports" >> "$res"
    else
        echo "FAIL asan/no-sanitizer-reports ($reports reports, see $log.asan.err)" >> "$res"
    fi
    exit 0
fi
regress regress env
regress regress_debug env EVENT_DEBUG_MODE=1
exit 0
