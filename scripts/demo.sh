#!/bin/bash
# ringplug demo: Debian's own nginx running on io_uring through our module.
#
# Builds the module, starts /usr/sbin/nginx twice on 127.0.0.1 (free ports,
# files under build/demo), one with `use epoll;` and one with `use io_uring;`,
# answers a request, shows the io_uring worker's log line, then runs wrk
# against each in turn and prints requests/s and the worker's CPU time per
# request.  Stops everything it started on exit.  Run as root on Debian 12
# (it installs what it needs).
#
# Environment: DEMO_SECONDS (wrk run length, default 5), DEMO_ROUNDS
# (epoll/io_uring pairs, default 2), DEMO_CONNS (wrk connections, 50).

set -eu

cd "$(dirname "$0")/.."
top=$PWD
demo=$top/build/demo
module=$top/build/module/ngx_event_io_uring_module.so
secs=${DEMO_SECONDS:-5}
rounds=${DEMO_ROUNDS:-2}
conns=${DEMO_CONNS:-50}
methods="epoll io_uring"

declare -A port master worker

say() { printf '\n== %s\n' "$*"; }

stop_nginx() {
    local pid=${master[$1]:-}
    master[$1]=
    [ -n "$pid" ] || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
}

stop_all() {
    local m
    for m in $methods; do
        stop_nginx "$m"
    done
}

trap stop_all EXIT
trap 'exit 1' INT TERM

say "installing what the demo needs (scripts/deps.sh; quiet if present)"
scripts/deps.sh make nginx wrk curl procps

say "building the module: make module -> ${module#$top/}"
make --no-print-directory module >/dev/null

# Pin both servers to CPU 0 and wrk to CPU 1 when there are two CPUs, so
# the client does not steal the server's time.
if [ "$(nproc)" -ge 2 ]; then
    pin_server="taskset -c 0"
    pin_client="taskset -c 1"
else
    pin_server=
    pin_client=
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_nginx METHOD PORT: one worker, `use METHOD;`, prefix build/demo/METHOD
start_nginx() {
    local m=$1 prefix=$demo/$1 conf=$demo/$1/nginx.conf pid w

    mkdir -p "$prefix/logs" "$prefix/tmp"
    sed -e "s#@MODULE@#$module#" -e "s#@PREFIX@#$prefix#g" \
        -e "s#@PORT@#$2#" -e "s#@EVENTS@#$m#g" -e "s#@WORKERS@#1#" \
        "$top/config/nginx.conf" > "$conf"

    : > "$prefix/logs/error.log"
    rm -f "$prefix/logs/nginx.pid"

    $pin_server /usr/sbin/nginx -p "$prefix" -c "$conf" 2>/dev/null || return 1

    for _ in $(seq 50); do
        [ -s "$prefix/logs/nginx.pid" ] && break
        sleep 0.1
    done
    pid=$(cat "$prefix/logs/nginx.pid")
    master[$m]=$pid

    for _ in $(seq 50); do
        w=$(pgrep -P "$pid" | head -1 || true)
        if [ -n "$w" ] && curl -fs "http://127.0.0.1:$2/" >/dev/null; then
            worker[$m]=$w
            port[$m]=$2
            return 0
        fi
        sleep 0.1
    done
    echo "demo: nginx ($m) did not answer on port $2" >&2
    return 1
}

for m in $methods; do
    say "starting Debian's nginx (/usr/sbin/nginx) with 'use $m;'"
    for _ in $(seq 20); do
        p=$((20000 + RANDOM % 40000))
        port_in_use "$p" && continue
        start_nginx "$m" "$p" && break
        stop_nginx "$m"
    done
    [ -n "${port[$m]:-}" ] || { echo "demo: no free port found" >&2; exit 1; }
    echo "config ${demo#$top/}/$m/nginx.conf (from config/nginx.conf)," \
         "port 127.0.0.1:${port[$m]}, worker pid ${worker[$m]}"
done

say "curl http://127.0.0.1:${port[io_uring]}/"
curl -sS -i "http://127.0.0.1:${port[io_uring]}/"

say "the io_uring worker's error log says"
log=$demo/io_uring/logs/error.log
grep -E "using io_uring|io_uring is not available" "$log" \
    || { echo "demo: no io_uring line in $log" >&2; exit 1; }
if grep -q "io_uring is not available" "$log"; then
    echo "(io_uring is not available here: both servers run on epoll)"
fi

# utime + stime of a process, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# bench METHOD ROUND: one wrk run, one table row
rows=
bench() {
    local m=$1 out t0 t1 reqs rps us url="http://127.0.0.1:${port[$1]}/"

    $pin_client wrk -t1 -c"$conns" -d1 "$url" >/dev/null
    t0=$(cpu_ticks "${worker[$m]}")
    out=$($pin_client wrk -t1 -c"$conns" -d"$secs" "$url")
    t1=$(cpu_ticks "${worker[$m]}")

    echo "$m, round $2:"
    echo "$out" | grep -E "requests in|Socket errors|Non-2xx" | sed 's/^ */  /'
    reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
    rps=$(echo "$out" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
    us=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
        'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
    rows="$rows$(printf '%-10s %6s %12s %22s' "$m" "$2" "$rps" "$us")\n"
}

say "wrk: ${secs}s per run, $conns connections, 1 worker, $rounds rounds${pin_server:+ (nginx on CPU 0, wrk on CPU 1)}"
for r in $(seq "$rounds"); do
    for m in $methods; do
        bench "$m" "$r"
    done
done

say "results (same nginx binary and config, only 'use' differs)"
printf '%-10s %6s %12s %22s\n' method round "requests/s" "worker CPU us/request"
printf "$rows"
echo "(short runs on a shared machine: compare rounds before trusting a gap)"

say "stopping nginx"
stop_all
