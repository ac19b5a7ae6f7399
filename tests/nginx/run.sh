#!/bin/sh
# nginx integration suite: runs every case in tests/nginx/t/ once per event
# mode in $MODES (default "epoll io_uring_readiness io_uring_completion") against Debian's /usr/sbin/nginx
# (or RP_NGINX_BIN with RP_NGINX_MODULE, RP_NGINX_MODULES_DIR and RP_NGINX_BUILD
# for its own directory, as make test-nginx126 sets them).
# Each (case, mode) appends "PASS|FAIL nginx/<case> [<mode>]" to $RP_RESULTS
# (see scripts/suite.sh); a test file that dies without recording a failure
# gets one FAIL line of its own.  Full TAP output: build/tests-nginx/prove.log.
#
#   scripts/suite.sh nginx tests/nginx/run.sh        (what make test-nginx does)
#   MODES=epoll tests/nginx/run.sh t/static.t        (some files, one mode)
cd "$(dirname "$0")/../.." || exit 1
top=$(pwd)
out=${RP_NGINX_BUILD:-$top/build/tests-nginx}
mkdir -p "$out"
if [ -z "${RP_RESULTS:-}" ]; then
    RP_RESULTS=$out/results
    : > "$RP_RESULTS"
fi
export MODES="${MODES:-epoll io_uring_readiness io_uring_completion}"

# One run at a time: runs share build/tests-nginx/ and their load would
# skew each other's timing.
exec 9> "$out/.lock"
if ! flock -n 9; then
    echo "nginx suite: waiting for another run to finish"
    flock -w 900 9 || { echo "FAIL nginx/lock (another run held" \
        "build/tests-nginx/.lock for 900 s)" >> "$RP_RESULTS"; exit 1; }
fi

# The cases write to a file of this run's own, handed over at the end: a
# second run's scripts/suite.sh may truncate the shared results file while
# this one waits for or holds the lock.
final=$RP_RESULTS
RP_RESULTS=$out/results.$$
: > "$RP_RESULTS"
export RP_RESULTS
trap 'cat "$RP_RESULTS" >> "$final"; rm -f "$RP_RESULTS"' EXIT
trap 'exit 1' INT TERM HUP

# c10k holds 10,000 client sockets in the test process itself
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

if [ $# -gt 0 ]; then
    files=$(for f in "$@"; do echo "tests/nginx/${f#tests/nginx/}"; done)
else
    files=$(ls tests/nginx/t/*.t)
fi

: > "$out/prove.log"
start=$(date +%s)
status=0
for f in $files; do
    before=$(grep -c '^FAIL ' "$RP_RESULTS" 2>/dev/null || true)
    timeout -k 10 600 prove -v "$f" > "$out/prove.one" 2>&1 9>&-
    rc=$?
    cat "$out/prove.one" >> "$out/prove.log"
    # the case lines, diagnostics and failures; not every passing assertion
    grep -vE '^ +ok [0-9]' "$out/prove.one" | grep -vE '^ +1\.\.[0-9]+$'
    after=$(grep -c '^FAIL ' "$RP_RESULTS" 2>/dev/null || true)
    if [ $rc -ne 0 ]; then
        status=1
        if [ "${after:-0}" -le "${before:-0}" ]; then
            echo "FAIL nginx/$(basename "$f" .t) (prove exited $rc without a" \
                "failed case; see build/tests-nginx/prove.log)" >> "$RP_RESULTS"
        fi
    fi
done
rm -f "$out/prove.one"
echo "nginx suite: modes '$MODES', $(($(date +%s) - start)) s"
exit $status
