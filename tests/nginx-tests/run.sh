#!/bin/sh
# Suite nginx-tests: nginx's own test suite in every event mode
# (tests/nginx-tests/run.pl), or one SKIP line naming why it cannot run.
# Usage: tests/nginx-tests/run.sh SUITE_DIR [MODE ...]
dir=$1; shift
res=${RP_RESULTS:-/dev/stdout}
if [ ! -f "$dir/lib/Test/Nginx.pm" ]; then
    echo "SKIP nginx-tests -- no copy of nginx's test suite at '$dir'" \
        "(set NGINX_TESTS=dir; a plain clone of this project has none)" >> "$res"
    exit 0
fi
# the suite's nginx processes and Perl daemons hold many sockets at once
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
exec perl "$(dirname "$0")/run.pl" "$dir" "$@"
