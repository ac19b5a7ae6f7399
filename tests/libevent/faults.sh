#!/bin/sh
# Suite libevent-faults: le-faults (allocations of core and the libevent
# adapter failed in turn, each in a child, under ASan+LSan), one result per
# pass: "each" fails the n-th allocation for every n the scenario reaches,
# "fallbacks" those n again whose failure a fallback followed, with the
# fallback failed too, "hold" every allocation of the adapter for 300 ms
# while data arrives (the loop must sleep, nothing be lost).
# Usage: tests/libevent/faults.sh <le-faults>
# The whole output (the children's sanitizer reports too) goes to
# $RP_LOG_DIR/faults.log; its summary is printed.
set -u
prog=$1
res=${RP_RESULTS:-/dev/stdout}
limit=${RP_TEST_LIMIT:-600}
log=${RP_LOG_DIR:-build/libevent/logs}
mkdir -p "$log"
log=$log/faults.log

timeout -k 5 "$limit" "$prog" > "$log" 2>&1
rc=$?
grep -E '^(le-faults: |    )' "$log" | grep -v '^    #' | head -60 \
    | sed 's/^/    /'
for pass in each fallbacks hold; do
    case $pass in
    each)      name=libevent-faults/each-allocation-fails-in-turn ;;
    fallbacks) name=libevent-faults/and-its-fallback-too ;;
    hold)      name=libevent-faults/memory-out-300ms-loop-sleeps-nothing-lost ;;
    esac
    line=$(grep -m1 "^le-faults: pass $pass: " "$log")
    case $line in
    *": ok")  echo "PASS $name" >> "$res" ;;
    *FAIL*)   if [ $pass = hold ]; then
                  echo "FAIL $name (${line#*FAIL: }; $log)" >> "$res"
              else
                  echo "FAIL $name (${line#*FAIL: }; $(grep -m1 "^le-faults: $pass: allocation" "$log"); $log)" >> "$res"
              fi ;;
    *)        if [ $rc -eq 124 ]; then
                  echo "FAIL $name (killed after ${limit}s; $log)" >> "$res"
              else
                  echo "FAIL $name (exit $rc, no verdict; $log)" >> "$res"
              fi ;;
    esac
done
exit 0
