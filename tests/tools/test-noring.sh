#!/bin/sh
# Self-test of the rp-noring launcher: io_uring works without it, fails with
# EPERM (default) or ENOSYS under it, and the command's exit status and
# arguments pass through.  Usage: test-noring.sh BUILD_DIR
b=${1:-build}/tools
res=${RP_RESULTS:-/dev/null}
rc=0
report() {  # report STATUS NAME [REASON]
    line="$1 tools/$2${3:+ -- $3}"
    echo "$line"; echo "$line" >> "$res"
    [ "$1" = FAIL ] && rc=1
    return 0
}
check() {  # check NAME EXPECTED_OUTPUT EXPECTED_STATUS cmd...
    name=$1 want=$2 wantrc=$3; shift 3
    out=$("$@" 2>&1); got=$?
    case "$out" in
    "$want"*) [ "$got" = "$wantrc" ] && { report PASS "$name"; return; } ;;
    esac
    report FAIL "$name" "got '$out' status $got, want '$want' status $wantrc"
}

if ! "$b/uring-check" >/dev/null; then
    report SKIP noring-eperm "io_uring unavailable here even without seccomp"
    report SKIP noring-enosys "io_uring unavailable here even without seccomp"
else
    check noring-eperm EPERM 1 "$b/rp-noring" "$b/uring-check"
    check noring-enosys ENOSYS 1 "$b/rp-noring" --enosys "$b/uring-check"
fi
check noring-exec-args "a b" 0 "$b/rp-noring" -- sh -c 'echo "$0 $1"' a b
check noring-exit-status "" 7 "$b/rp-noring" sh -c 'exit 7'
check noring-missing-cmd "rp-noring: execvp" 127 "$b/rp-noring" /nonexistent/x
check noring-usage "usage" 125 "$b/rp-noring"
exit $rc
