#!/bin/sh
# Run Windows builds of the core test programs under Wine as one suite.
# Usage: tests/core/run-windows.sh PREFIX PATH WIN_DIR DIR name...
#   PREFIX   the suite's name, before every case's name
#   PATH     the data path every engine must report running:
#            "overlapped" (the fallback, with its reason) or "rio"
#   WIN_DIR  the Windows build directory, whose wine/ prefix
#            tests/windows/wine.sh makes and uses
#   DIR      where the programs are (DIR/test-<name>.exe)
# Each program runs its cases (harness.h: each in a child process under a
# watchdog) and prints PASS/FAIL/SKIP lines, named PREFIX/..., on stdout,
# to a file (never a pipe: tests/windows/wine.sh); they are copied from it
# to $RP_RESULTS here.  A program that hangs past the limit or exits
# non-zero without a FAIL line gets one.  The core programs that cannot run
# on Windows are one SKIP line each, naming why; one neither run nor named
# here is a FAIL.  Then PREFIX/data-path: the engine's description, which a
# host logs once per engine, names the data path (for the overlapped path
# its reason) on the one line test-stats prints.  If Wine cannot start,
# the suite is one SKIP line saying why.
set -u
prefix=$1 path=$2 WIN_DIR=$3 dir=$4
shift 4
res=${RP_RESULTS:-/dev/stdout}
limit=${RP_TEST_LIMIT:-300}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../windows/wine.sh"
log=$WIN_DIR/logs/$prefix
mkdir -p "$log"
rm -f "$log"/*.log "$log"/*.lf
t_all=$(date +%s)

# The core programs not run on Windows, and why.
not_on_windows() {
    case $1 in
    fork)           echo "Windows has no fork(): rp_engine_forget() is for a child after fork()" ;;
    probe)          echo "io_uring only: the engine refused by seccomp filters (rp-noring) and RLIMIT_MEMLOCK" ;;
    probe-disabled) echo "io_uring only: the kernel.io_uring_disabled sysctl" ;;
    restrict)       echo "io_uring only: IORING_REGISTER_RESTRICTIONS on the engine's ring" ;;
    faults)         echo "forks once per injected allocation failure and needs LeakSanitizer, which mingw-w64 lacks: the Windows backend's allocation failures are not covered here" ;;
    *)              return 1 ;;
    esac
}

if ! why=$(wine_boot); then
    echo "SKIP $prefix -- Wine cannot start: $why" >> "$res"
    exit 0
fi
trap wine_stop EXIT
echo "wine: $("$WINE64" --version 2>/dev/null), prefix $WINEPREFIX"

rc=0
for t in "$@"; do
    prog=$dir/test-$t.exe
    t0=$(date +%s)
    RP_TEST_PREFIX=$prefix wine_run "$limit" "$prog" \
        < /dev/null > "$log/$t.log" 2>&1
    st=$?
    tr -d '\r' < "$log/$t.log" > "$log/$t.lf"
    cat "$log/$t.lf"
    grep -E "^(PASS|FAIL|SKIP) $prefix/" "$log/$t.lf" >> "$res"
    echo "test-$t: exit $st, $(( $(date +%s) - t0 )) s"
    if [ "$st" -ne 0 ]; then
        rc=1
        if ! grep -q "^FAIL $prefix/" "$log/$t.lf"; then
            why="exit status $st"
            [ "$st" = 124 ] && why="killed after ${limit}s"
            echo "FAIL $prefix/$t -- $why" >> "$res"
        fi
    fi
done

# every core program is run or skipped with its reason
for src in "$here"/test-*.c; do
    t=${src##*/test-}
    t=${t%.c}
    case " $* " in
    *" $t "*) continue ;;
    esac
    if why=$(not_on_windows "$t"); then
        echo "SKIP $prefix/$t -- $why" >> "$res"
    else
        echo "FAIL $prefix/$t -- tests/core/test-$t.c is neither run on Windows nor named in run-windows.sh with a reason" >> "$res"
        rc=1
    fi
done

# the data path, as the engine describes it (test-stats prints it once)
case $path in
overlapped) want="^diag: describe: rio: overlapped data path \\(RIO is unavailable \\(.+\\)\\)," ;;
rio)        want="^diag: describe: rio: RIO data path, cq [0-9]+," ;;
esac
n=$(cat "$log"/*.lf | grep -c '^diag: describe: ')
if [ -f "$log/stats.lf" ] && [ "$n" = 1 ] \
   && grep -Eq "$want" "$log/stats.lf"; then
    echo "PASS $prefix/data-path" >> "$res"
else
    echo "FAIL $prefix/data-path -- want one line matching /$want/, got $n: $(cat "$log"/*.lf | grep '^diag: describe: ' | head -2 | tr '\n' ' ')" >> "$res"
    rc=1
fi
echo "data path: $(sed -n 's/^diag: describe: //p' "$log/stats.lf" 2>/dev/null)"
echo "$prefix: $(( $(date +%s) - t_all )) s"
exit $rc
