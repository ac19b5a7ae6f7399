#!/bin/bash
# The demo image's build steps (docker/build.sh, which docker/Dockerfile
# runs) executed directly on this host: there is no Docker engine here, so
# CI proves the steps themselves.  Then the resulting nginx config is started
# and must answer over io_uring.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
dest=$top/build/docker-root
rec() {
    echo "$1 docker/$2"
    if [ -n "${RP_RESULTS:-}" ]; then echo "$1 docker/$2" >> "$RP_RESULTS"; fi
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$dest"
if RP_DEST=$dest RP_PORT=$port "$top/docker/build.sh" > "$top/build/docker-build.log" 2>&1; then
    rec PASS build-steps
else
    tail -20 "$top/build/docker-build.log"
    rec FAIL "build-steps -- docker/build.sh failed, see build/docker-build.log"
    exit 0
fi

# the image runs nginx in the foreground; here, daemon off in the background
sed -i "s|listen $port reuseport;|listen 127.0.0.1:$port reuseport;|" "$dest/nginx.conf"
/usr/sbin/nginx -p "$dest" -c "$dest/nginx.conf" -g 'daemon off;' \
    2> "$dest/logs/stderr.log" &
pid=$!
trap 'kill -QUIT $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
body=
for _ in $(seq 50); do
    body=$(curl -s --max-time 2 "http://127.0.0.1:$port/") && [ -n "$body" ] && break
    sleep 0.1
done
if [ "$body" = "ringplug demo: served by nginx on io_uring" ]; then
    rec PASS serves-index
else
    rec FAIL "serves-index -- got '$body'"
fi
if grep -q "using io_uring" "$dest/logs/stderr.log"; then
    rec PASS worker-on-io_uring
else
    cat "$dest/logs/stderr.log"
    rec FAIL "worker-on-io_uring -- no 'using io_uring' line in the error log"
fi
