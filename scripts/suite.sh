#!/bin/sh
# Run one test suite and record its results for the final summary.
# Usage: scripts/suite.sh NAME command [args...]
# The command gets RP_RESULTS=<file> in its environment and appends one line
# per case to it:  "PASS name", "FAIL name" or "SKIP name -- reason".
# A suite that exits non-zero without recording any FAIL gets one FAIL line,
# so a crash can never look like success; one that records nothing at all
# also fails.
name=$1; shift
dir=${RP_RESULTS_DIR:-build/results}
mkdir -p "$dir"
RP_RESULTS=$(cd "$dir" && pwd)/$name.res
export RP_RESULTS
: > "$RP_RESULTS"
echo "=== suite $name: $*"
start=$(date +%s)
"$@"
rc=$?
secs=$(( $(date +%s) - start ))
if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$RP_RESULTS"; then
    echo "FAIL $name (suite exited with status $rc)" >> "$RP_RESULTS"
fi
if [ ! -s "$RP_RESULTS" ]; then
    echo "FAIL $name (suite recorded no results)" >> "$RP_RESULTS"
fi
p=$(grep -c '^PASS ' "$RP_RESULTS"); f=$(grep -c '^FAIL ' "$RP_RESULTS")
s=$(grep -c '^SKIP ' "$RP_RESULTS")
echo "=== suite $name: $p passed, $f failed, $s skipped ($secs s)"
echo "$name $secs" > "$dir/$name.secs"
grep '^FAIL ' "$RP_RESULTS" | sed 's/^/    /'
exit 0
