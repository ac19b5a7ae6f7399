#!/bin/sh
# Under a seccomp launcher that makes io_uring_setup fail with EPERM (as
# Docker's default profile does), libevent must quietly pick epoll and work.
# Usage: tests/libevent/noring.sh <rp-noring> <le-basic>
set -u
noring=$1 basic=$2
out=$(EVENT_SHOW_METHOD=1 "$noring" "$basic" epoll 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "le-basic under rp-noring failed ($rc)"; exit 1; }
echo "$out" | grep -q "libevent using: epoll" || {
    echo "no 'libevent using: epoll' line"; exit 1; }
# Quiet: the method line and le-basic's own output, no warnings.
extra=$(echo "$out" | grep -v "libevent using: epoll\|^method \|^ok$")
[ -z "$extra" ] || { echo "unexpected output: $extra"; exit 1; }
echo "fell back to epoll quietly"
# The cause is named on a debug line, for whoever turns debug logging on.
why=$(LE_DEBUG=1 "$noring" "$basic" epoll 2>&1 | grep "io_uring_init: no io_uring")
[ -n "$why" ] || { echo "no debug line naming why io_uring is off"; exit 1; }
echo "$why"
