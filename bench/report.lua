-- wrk script: after wrk's own report (--latency), one machine-readable line
-- for bench.py.  Socket errors and non-2xx responses are kept apart: wrk
-- counts a 502 as a request, the harness must not.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RPBENCH requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
        "sock_errors=%d status_errors=%d bytes=%d\n",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99),
        e.connect + e.read + e.write + e.timeout, e.status, summary.bytes))
end
