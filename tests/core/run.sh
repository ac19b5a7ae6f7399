#!/bin/sh
# Run core test programs as one suite.
# Usage: tests/core/run.sh PREFIX DIR name...   (runs DIR/test-<name>)
# Each program appends its own PASS/FAIL/SKIP lines to $RP_RESULTS, named
# PREFIX/...; one that crashes, hangs past the limit or exits non-zero
# without having written a FAIL line gets one here.
prefix=$1 dir=$2; shift 2
res=${RP_RESULTS:-/dev/null}
limit=${RP_TEST_LIMIT:-100}
export RP_TEST_PREFIX=$prefix
rc=0
for t in "$@"; do
    prog=$dir/test-$t
    before=$(grep -c '^FAIL ' "$res" 2>/dev/null)
    timeout -k 5 "$limit" "$prog"
    st=$?
    after=$(grep -c '^FAIL ' "$res" 2>/dev/null)
    if [ "$st" -ne 0 ]; then
        rc=1
        if [ "${after:-0}" = "${before:-0}" ]; then
            why="exit status $st"
            [ "$st" = 124 ] && why="killed after ${limit}s"
            [ "$st" -gt 128 ] && why="killed by signal $((st - 128))"
            echo "FAIL $prefix/$t -- $why" | tee -a "$res"
        fi
    fi
done
exit $rc
