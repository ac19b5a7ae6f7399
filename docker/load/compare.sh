#!/bin/bash
# Side by side: the same nginx image on epoll and on io_uring, loaded in turn
# by wrk, each run bounded (LOAD_SECONDS), rounds alternating which goes
# first.  For each run it prints wrk's requests/s and the server's CPU time
# per request: the nginx container's own cgroup CPU counter (user + system
# time of all its processes: master, workers, and the idle counter reader),
# read on port 9100 before and after the run, divided by the requests wrk
# completed in it.  wrk runs here, in its own container, on the same machine:
# the figures are of this machine and this load, not a benchmark.
#
# Environment: LOAD_TARGETS ("label=host ..."; default
# "epoll=nginx-epoll io_uring=nginx-iouring"), LOAD_SECONDS (5),
# LOAD_ROUNDS (3), LOAD_CONNS (50), LOAD_PATH (/).
set -u
targets=${LOAD_TARGETS:-"epoll=nginx-epoll io_uring=nginx-iouring"}
secs=${LOAD_SECONDS:-5}
rounds=${LOAD_ROUNDS:-3}
conns=${LOAD_CONNS:-50}
path=${LOAD_PATH:-/}

cpu_us() {      # the container's CPU counter, microseconds
    local v
    exec 3<> "/dev/tcp/$1/9100" || return 1
    read -r -t 5 v <&3
    exec 3<&-
    case $v in ''|*[!0-9]*) return 1 ;; esac
    echo "$v"
}

labels=() hosts=()
for t in $targets; do
    labels+=("${t%%=*}") hosts+=("${t#*=}")
done

# Wait for every server (60 s at most), then show what each one runs on:
# /io_uring is the worker's ring counters, or "off" on epoll.
for i in "${!hosts[@]}"; do
    h=${hosts[$i]}
    ok=
    for _ in $(seq 120); do
        curl -sf -o /dev/null --max-time 2 "http://$h:8080/" && { ok=1; break; }
        sleep 0.5
    done
    [ -n "$ok" ] || { echo "compare: $h:8080 does not answer"; exit 1; }
    cpu_us "$h" > /dev/null \
        || { echo "compare: no CPU counter on $h:9100"; exit 1; }
    st=$(curl -sf --max-time 2 "http://$h:8080/io_uring")
    case $st in
        off) on=epoll ;;
        enters=*) on=io_uring ;;
        *) on="unknown ($st)" ;;
    esac
    printf '%-10s %s: its worker serves on %s\n' "${labels[$i]}" "$h" "$on"
done

echo "wrk -t1 -c$conns -d${secs}s http://HOST:8080$path, $rounds rounds"
declare -A rps_all us_all
for r in $(seq "$rounds"); do
    order=("${!hosts[@]}")
    if [ $((r % 2)) -eq 0 ]; then    # alternate who goes first
        order=(); for ((i = ${#hosts[@]} - 1; i >= 0; i--)); do order+=("$i"); done
    fi
    for i in "${order[@]}"; do
        h=${hosts[$i]} l=${labels[$i]}
        c0=$(cpu_us "$h") || { echo "compare: CPU counter of $h lost"; exit 1; }
        out=$(wrk -t1 -c"$conns" -d"${secs}s" "http://$h:8080$path" 2>&1)
        c1=$(cpu_us "$h") || { echo "compare: CPU counter of $h lost"; exit 1; }
        n=$(echo "$out" | awk '/requests in/ { print $1 }')
        rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%d", $2 }')
        bad=$(echo "$out" | awk '/Non-2xx|Socket errors/')
        if [ -z "$n" ] || [ "$n" -eq 0 ] || [ -z "$rps" ]; then
            echo "compare: wrk against $h failed:"; echo "$out"; exit 1
        fi
        us=$(awk -v c=$((c1 - c0)) -v n="$n" 'BEGIN { printf "%.2f", c / n }')
        printf 'round %d  %-10s %8d req/s  %6s us server CPU/request  (%d requests)%s\n' \
            "$r" "$l" "$rps" "$us" "$n" "${bad:+  $bad}"
        rps_all[$l]+="$rps " us_all[$l]+="$us "
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median of $rounds rounds:"
for l in "${labels[@]}"; do
    printf '  %-10s %8.0f req/s  %6s us server CPU/request\n' "$l" \
        "$(echo "${rps_all[$l]}" | median)" "$(echo "${us_all[$l]}" | median)"
done
