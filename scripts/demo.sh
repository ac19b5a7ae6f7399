#!/bin/bash
# ringplug demo: Debian's own nginx running on io_uring through our module.
#
# Builds the module, starts /usr/sbin/nginx on 127.0.0.1 (a free port, files
# under build/demo), answers one request, shows the worker's log line, then
# runs wrk against the same nginx with `use epoll;` and `use io_uring;` and
# prints requests/s and the worker's CPU time per request.  Stops everything
# it started on exit.  Run as root on Debian 12 (it installs what it needs).
#
# Environment: DEMO_SECONDS (wrk run length, default 5), DEMO_CONNS (50).

set -eu

cd "$(dirname "$0")/.."
top=$PWD
demo=$top/build/demo
module=$top/build/module/ngx_event_io_uring_module.so
secs=${DEMO_SECONDS:-5}
conns=${DEMO_CONNS:-50}
master=

say() { printf '\n== %s\n' "$*"; }

stop_nginx() {
    local pid
    [ -n "$master" ] || return 0
    pid=$master
    master=
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
}

trap stop_nginx EXIT
trap 'exit 1' INT TERM

say "installing what the demo needs (scripts/deps.sh; quiet if present)"
scripts/deps.sh make nginx wrk curl procps

say "building the module: make module -> ${module#$top/}"
make --no-print-directory module >/dev/null

mkdir -p "$demo/logs" "$demo/tmp"

# Pin nginx to CPU 0 and wrk to CPU 1 when there are two CPUs, so the
# client does not steal the server's time.
if [ "$(nproc)" -ge 2 ]; then
    pin_server="taskset -c 0"
    pin_client="taskset -c 1"
else
    pin_server=
    pin_client=
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_nginx METHOD: one worker on $port with `use METHOD;`
start_nginx() {
    local conf=$demo/nginx-$1.conf

    sed -e "s#@MODULE@#$module#" -e "s#@PREFIX@#$demo#g" \
        -e "s#@PORT@#$port#" -e "s#@EVENTS@#$1#g" -e "s#@WORKERS@#1#" \
        "$top/config/nginx.conf" > "$conf"

    : > "$demo/logs/error.log"
    rm -f "$demo/logs/nginx.pid"

    $pin_server /usr/sbin/nginx -p "$demo" -c "$conf" || return 1

    for _ in $(seq 50); do
        [ -s "$demo/logs/nginx.pid" ] && break
        sleep 0.1
    done
    master=$(cat "$demo/logs/nginx.pid")

    for _ in $(seq 50); do
        worker=$(pgrep -P "$master" | head -1 || true)
        [ -n "$worker" ] && curl -fs "http://127.0.0.1:$port/" >/dev/null \
            && return 0
        sleep 0.1
    done
    echo "demo: nginx did not answer on port $port" >&2
    return 1
}

# utime + stime of a process, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

say "starting Debian's nginx (/usr/sbin/nginx) with 'use io_uring;'"
port=
for _ in $(seq 20); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" && continue
    port=$p
    start_nginx io_uring && break
    stop_nginx
    port=
done
[ -n "$port" ] || { echo "demo: no free port found" >&2; exit 1; }

echo "config: ${demo#$top/}/nginx-io_uring.conf (from config/nginx.conf)"
echo "port:   127.0.0.1:$port"

say "curl http://127.0.0.1:$port/"
curl -sS -i "http://127.0.0.1:$port/"

say "the worker's error log says"
grep -E "using io_uring|io_uring is not available" "$demo/logs/error.log" \
    || { echo "demo: no io_uring line in the log" >&2; exit 1; }

# bench METHOD: restart nginx with METHOD, run wrk, record the results
declare -A rps cpu_us
bench() {
    local m=$1 out t0 t1 reqs secs_run
    stop_nginx
    start_nginx "$m"
    $pin_client wrk -t1 -c"$conns" -d1 "http://127.0.0.1:$port/" >/dev/null
    t0=$(cpu_ticks "$worker")
    out=$($pin_client wrk -t1 -c"$conns" -d"$secs" "http://127.0.0.1:$port/")
    t1=$(cpu_ticks "$worker")
    echo "$out" | grep -E "requests in|Socket errors|Non-2xx" | sed 's/^ */  /'
    reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
    rps[$m]=$(echo "$out" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
    cpu_us[$m]=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
        'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
}

say "wrk, ${secs}s each, $conns connections, 1 worker${pin_server:+ (nginx on CPU 0, wrk on CPU 1)}"
for m in epoll io_uring; do
    echo "$m:"
    bench "$m"
done

say "results (same nginx binary and config, only 'use' differs)"
printf '%-10s %12s %22s\n' method "requests/s" "worker CPU us/request"
for m in epoll io_uring; do
    printf '%-10s %12s %22s\n' "$m" "${rps[$m]}" "${cpu_us[$m]}"
done
echo "(one short run each, on a shared machine: expect noise of several %)"

say "stopping nginx"
stop_nginx
