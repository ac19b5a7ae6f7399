#!/bin/sh
# libevent's own regression suite, Debian's 2.1.12 source built with our
# patches and mingw-w64 (make windows), run under Wine on one backend, the
# way test/test.sh runs a backend: the small test programs, then regress
# (all groups, the iocp/ group on an event_base with IOCP started, as
# libevent's suite does on Windows); one result line per case, named
# regress-<backend>/<case>.
#   win32: libevent's stock Windows backend (EVENT_NORIO=1 takes ours out)
#   rio:   ours (loop-adapter/ on core/win/; under Wine its overlapped data
#          path, as Wine has no RIO)
#
# Usage: tests/windows/regress.sh <windows build dir> <libevent tree>
#                                 <prefix> <win32|rio> [debug]
#   debug: regress once more with EVENT_DEBUG_MODE=1, as test.sh does (not
#   part of `make test`: make test-windows-regress-debug)
#
# Classification: a case that fails runs once more on its own; if it
# passes then it is PASS (with a note: the timing cases allow 50 ms of
# slack, a loaded machine may miss once).  If it fails again: on win32
# nothing is ours, so it fails on libevent's stock backend under Wine, and
# is SKIP with that reason and its failure line, never PASS; on rio it is
# SKIP only if the same case was SKIP on win32 in this run's results
# ($RP_WIN_STOCK_RES: the win32 run's result file), as failing under Wine
# on the stock backend too, and FAIL otherwise.  One case is known to hang
# under Wine 8.0 and runs separately (see KNOWN below); a regress run that
# dies without a FAILED line is FAIL.
#
# For run.sh's check of this classification: RP_WIN_REGRESS_CASES="a/b ..."
# runs only those cases and not the small programs, RP_WIN_REGRESS_ARGS
# adds tinytest options (--timeout N), RP_WIN_KNOWN replaces KNOWN.
set -u
WIN_DIR=$1 tree=$2 prefix=$3 backend=$4 mode=${5:-}
res=${RP_RESULTS:-/dev/stdout}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/wine.sh"
if ! why=$(wine_boot); then
    echo "SKIP regress-$backend${mode:+_$mode} -- Wine cannot start: $why" >> "$res"
    exit 0
fi
trap wine_stop EXIT
log=${RP_LOG_DIR:-$WIN_DIR/logs}
mkdir -p "$log"
log=$(cd "$log" && pwd)
bin=$(cd "$tree/test/.libs" && pwd)
WINEPATH=$(wine_path "$prefix/bin")
export WINEPATH
unset EVENT_NOWIN32 EVENT_NOSELECT EVENT_SHOW_METHOD EVENT_DEBUG_MODE \
    EVENT_PRECISE_TIMER EVENT_NORIO EVENT_IO_URING_STATS \
    EVENT_IO_URING_NO_BEV
case $backend in
win32) EVENT_NORIO=1; export EVENT_NORIO ;;
rio)   ;;
*)     echo "FAIL regress-$backend (no such backend)" >> "$res"; exit 1 ;;
esac
stock_res=${RP_WIN_STOCK_RES:-}

# Under Wine 8.0, AcceptEx on a socket that is not listening stays pending
# for ever (tests/windows/wine-acceptex.exe shows it; Windows fails the
# call), so this case, which makes a listener of a connected socket and
# waits for the error callback, waits out tinytest's timeout, and the child
# tinytest forks is never reaped.  Run alone, without fork, for 20 s.
KNOWN=${RP_WIN_KNOWN-"iocp/listener/error"}
CASES=${RP_WIN_REGRESS_CASES:-}
ARGS=${RP_WIN_REGRESS_ARGS:-}
known_why="AcceptEx on a socket that is not listening stays pending under Wine 8.0 (wine-acceptex.exe), so the error callback it waits for never runs"

start=$(date +%s)
EVENT_SHOW_METHOD=1 wine_run 60 "$bin/test-init.exe" > "$log/test-init.log" 2>&1
got=$(tr -d '\r' < "$log/test-init.log" | sed -n 's/.*libevent using: //p')
if [ "$got" = "$backend" ]; then
    echo "PASS regress-$backend/method-is-$backend" >> "$res"
else
    echo "FAIL regress-$backend/method-is-$backend (libevent chose '$got')" >> "$res"
    exit 1
fi

if [ "$mode" != debug ] && [ -z "$CASES" ]; then
    for t in test-eof test-closed test-weof test-time test-changelist \
             test-fdleak; do
        if ! wine_run 120 "$bin/$t.exe" > "$log/$t.log" 2>&1; then
            echo "FAIL regress-$backend/$t" >> "$res"
        elif grep -q "no event mechanism available" "$log/$t.log"; then
            # test-closed needs EV_FEATURE_EARLY_CLOSE and exits 0 without
            # testing anything when the backend lacks it (win32 does; rio
            # has it)
            echo "SKIP regress-$backend/$t -- the $backend backend lacks EV_FEATURE_EARLY_CLOSE; the program tests nothing" >> "$res"
        else
            echo "PASS regress-$backend/$t" >> "$res"
        fi
    done
    # msvcrt's text-mode stdout ends lines with CRLF
    wine_run 60 "$bin/test-dumpevents.exe" > "$log/dumpevents.out" \
        2> "$log/dumpevents.err"
    if tr -d '\r' < "$log/dumpevents.out" \
            | python3 "$tree/test/check-dumpevents.py" \
            > "$log/dumpevents.log" 2>&1; then
        echo "PASS regress-$backend/test-dumpevents" >> "$res"
    else
        echo "FAIL regress-$backend/test-dumpevents" >> "$res"
    fi
fi

prefix_name=regress-$backend
env_mode=
if [ "$mode" = debug ]; then
    prefix_name=regress-${backend}_debug
    env_mode="EVENT_DEBUG_MODE=1"
fi
out=$log/$prefix_name.out
skips=
for k in $KNOWN; do skips="$skips :$k"; done
t0=$(date +%s)
# shellcheck disable=SC2086
env $env_mode timeout 1500 "$WINE64" "$bin/regress.exe" $ARGS \
    ${CASES:-$skips} > "$out" 2> "$log/$prefix_name.err"
rc=$?
tr -d '\r' < "$out" > "$out.lf"
awk -v p="$prefix_name" -v known="$KNOWN" '
    BEGIN { n = split(known, k); for (i = 1; i <= n; i++) skip[k[i]] = 1 }
    /^[A-Za-z0-9_]+\/[^ ]+: / {
        name = $1; sub(/:$/, "", name)
        if (name in skip) next       # run on its own below
        if ($NF == "OK") print "PASS " p "/" name
        else if ($NF == "SKIPPED" || $NF == "DISABLED")
            print "SKIP " p "/" name " -- " tolower($NF) " by libevent on Windows"
        next
    }
    /^ *\[.* FAILED\]$/ { print "FAIL " p "/" name }
' "$out.lf" > "$log/$prefix_name.res"
for t in $(sed -n "s|^FAIL $prefix_name/||p" "$log/$prefix_name.res"); do
    retry=$log/$prefix_name.retry.$(echo "$t" | tr / _)
    # shellcheck disable=SC2086
    if env $env_mode "$WINE64" "$bin/regress.exe" $ARGS "$t" > "$retry" \
            2>&1 && tr -d '\r' < "$retry" | grep -q "OK$"; then
        sed -i "s|^FAIL $prefix_name/$t\$|PASS $prefix_name/$t (failed in the full run, passed on a rerun)|" \
            "$log/$prefix_name.res"
        echo "$prefix_name/$t: failed in the full run, passed on a rerun:"
        grep -A3 "^$t: " "$out.lf" | sed 's/^/    /'
        continue
    fi
    why=$(tr -d '\r' < "$retry" | grep -m1 'FAIL .*:\|timeout' \
          | sed 's/^ *//; s/[|&\\]/ /g')
    if [ "$backend" = win32 ]; then
        sed -i "s|^FAIL $prefix_name/$t\$|SKIP $prefix_name/$t -- fails under Wine 8.0 on libevent's stock win32 backend, twice: ${why:-see $retry}|" \
            "$log/$prefix_name.res"
        echo "$prefix_name/$t: fails twice on the stock backend under Wine (SKIP):"
    elif [ -n "$stock_res" ] && grep -q "^SKIP regress-win32/$t -- fails under Wine" "$stock_res"; then
        sed -i "s|^FAIL $prefix_name/$t\$|SKIP $prefix_name/$t -- fails twice, as it does under Wine 8.0 on libevent's stock win32 backend: ${why:-see $retry}|" \
            "$log/$prefix_name.res"
        echo "$prefix_name/$t: fails twice, as on the stock backend under Wine (SKIP):"
    else
        sed -i "s|^FAIL $prefix_name/$t\$|FAIL $prefix_name/$t (twice: ${why:-see $retry})|" \
            "$log/$prefix_name.res"
        echo "$prefix_name/$t: fails twice on $backend:"
    fi
    tr -d '\r' < "$retry" | head -8 | sed 's/^/    /'
done
cat "$log/$prefix_name.res" >> "$res"
summary=$(tail -1 "$out.lf")
echo "$prefix_name ($backend under Wine): $summary; exit $rc; $(( $(date +%s) - t0 )) s"
[ $rc -eq 0 ] || grep -q " FAILED\]$" "$out.lf" || \
    echo "FAIL $prefix_name (regress exited $rc: $summary)" >> "$res"

for k in $KNOWN; do
    kout=$log/$prefix_name.known.$(echo "$k" | tr / _)
    # shellcheck disable=SC2086
    env $env_mode timeout 20 "$WINE64" "$bin/regress.exe" --no-fork "$k" \
        > "$kout" 2>&1
    krc=$?
    if [ $krc -eq 0 ] && tr -d '\r' < "$kout" | grep -q "OK$"; then
        echo "PASS $prefix_name/$k (passes under this Wine: take it off KNOWN)" >> "$res"
    elif [ $krc -eq 124 ]; then
        echo "SKIP $prefix_name/$k -- $known_why; still hangs (20 s)" >> "$res"
    else
        echo "SKIP $prefix_name/$k -- $known_why; exit $krc: $(tr -d '\r' < "$kout" | grep -m1 FAIL)" >> "$res"
    fi
done
echo "$prefix_name: $(( $(date +%s) - start )) s in all"
exit 0
