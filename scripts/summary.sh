#!/bin/sh
# Print the total over every suite's results; exit 1 if anything failed.
dir=${RP_RESULTS_DIR:-build/results}
cat "$dir"/*.res 2>/dev/null > "$dir/.all" || true
p=$(grep -c '^PASS ' "$dir/.all"); f=$(grep -c '^FAIL ' "$dir/.all")
s=$(grep -c '^SKIP ' "$dir/.all")
if [ "$s" -gt 0 ]; then
    echo "skipped:"; grep '^SKIP ' "$dir/.all" | sed 's/^SKIP /    /'
fi
if [ "$f" -gt 0 ]; then
    echo "failed:"; grep '^FAIL ' "$dir/.all" | sed 's/^FAIL /    /'
fi
if ls "$dir"/*.secs >/dev/null 2>&1; then
    echo "seconds per suite: $(cat "$dir"/*.secs | sort -k2 -rn | tr '\n' ' ')"
fi
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "no test ran"; fi
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
