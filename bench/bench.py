#!/usr/bin/python3
"""ringplug benchmark harness: every performance claim comes from here.

Runs nginx (epoll, io_uring readiness, io_uring completion), libevent
(evhttp and a bufferevent echo, epoll vs io_uring backend) and two minimal
responders (floor: epoll; ceiling: liburing) under the same load, rounds
interleaved so drift hits every row alike, and writes a markdown table plus
PNG charts to build/bench/.

    bench/bench.py            full run (make bench)
    bench/bench.py --quick    smoke run (make bench-quick, suite bench-quick)

Knobs (environment): BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNS, BENCH_ROWS,
BENCH_WARMUP, BENCH_SYSCALL_DURATION, BENCH_SYSCALLS (perf|strace|off),
BENCH_BUILD, BENCH_BASELINE, BENCH_LIBEVENT_COMPLETION_ENV, BENCH_NOTE.
See bench/README.md.
"""

import atexit
import ctypes
import fnmatch
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, os.environ.get("BENCH_BUILD_DIR", "build"))
OUT = os.path.join(BUILD, "bench")
BIN = os.path.join(OUT, "bin")
WWW = os.path.join(OUT, "www")
RUNS = os.path.join(OUT, "run")
KEEP_RUNS = 5
RUN = None          # RUNS/<stamp>: this run's configs, logs, pinned builds
MODULE_RUN = None   # the module copy this run loads
LE_LIB_RUN = None   # the libevent copy this run's servers load
LOGS = os.path.join(OUT, "logs")
MODULE_SO = os.path.join(BUILD, "module", "ngx_event_io_uring_module.so")
LIBEVENT_DEFAULT = os.path.join(BUILD, "libevent", "prefix")
LIBEVENT_PREFIX = os.path.abspath(os.environ.get("BENCH_LIBEVENT_PREFIX")
                                  or LIBEVENT_DEFAULT)
NGINX = os.environ.get("BENCH_NGINX", "/usr/sbin/nginx")
REPORT_LUA = os.path.join(TOP, "bench", "report.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NR_IO_URING_ENTER = 426     # the same on every architecture since 5.1
CLIENT_BOUND_PCT = 95.0
NOFILE = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])

QUICK = "--quick" in sys.argv[1:]


def env_int(name, default):
    v = os.environ.get(name, "").strip()
    return int(v) if v else default


def env_list(name, default):
    v = os.environ.get(name, "").strip()
    return [x for x in re.split(r"[,\s]+", v) if x] if v else default


DURATION = env_int("BENCH_DURATION", 1 if QUICK else 10)
ROUNDS = env_int("BENCH_ROUNDS", 1 if QUICK else 3)
CONNS = [int(c) for c in env_list("BENCH_CONNS", ["16"] if QUICK
                                  else ["16", "64", "256"])]
WARMUP = env_int("BENCH_WARMUP", 0 if QUICK else 1)
SYSCALL_SECS = env_int("BENCH_SYSCALL_DURATION", 1 if QUICK else 3)
SYSCALLS = os.environ.get("BENCH_SYSCALLS", "perf")
PROFILE = env_int("BENCH_PROFILE", 0)
DO_BUILD = env_int("BENCH_BUILD", 0 if QUICK else 1)
BASELINE = env_int("BENCH_BASELINE", 1)
ROW_FILTER = env_list("BENCH_ROWS", [])
# Completion bufferevents are the io_uring backend's default; the
# io_uring row turns them off (readiness), the io_uring-compl row keeps them.
LE_COMPL_ENV = os.environ.get("BENCH_LIBEVENT_COMPLETION_ENV",
                              "EVENT_IO_URING_NO_BEV=0").strip()
PIN = (os.cpu_count() or 1) >= 2
# Idle upstream connections nginx keeps: enough for every client
# connection, so proxy rows measure proxying, not upstream reconnects.
UP_KEEPALIVE = max(64, max(CONNS))
SERVER_CPU, CLIENT_CPU = "0", "1"

# Workloads: name -> (server groups that run it, URL path or None for echo)
WORKLOADS = {
    "ret200": "/ok",
    "static1k": "/static/1k.bin",
    "static64k": "/static/64k.bin",
    "proxy": "/proxy",
    # what most sites serve: a small file over TLS (HTTP/1.1, wrk), and over
    # HTTP/2 in clear text and on TLS (h2load, 10 streams a connection)
    "tls1k": "/static/1k.bin",
    "h2c1k": "/static/1k.bin",
    "h2tls1k": "/static/1k.bin",
    "http": "/",
    "echo": None,
}
TLS_WORKLOADS = ("tls1k", "h2tls1k")
H2_WORKLOADS = ("h2c1k", "h2tls1k")
H2_STREAMS = 10
TLS_DIR = os.path.join(OUT, "tls")
NGINX_WORKLOADS = ["ret200", "static1k", "static64k", "proxy", "tls1k",
                   "h2c1k", "h2tls1k"]
# (group, mode) in table order; the first mode of a group is its baseline.
VARIANTS = [
    ("nginx", "epoll", NGINX_WORKLOADS),
    ("nginx", "io_uring", NGINX_WORKLOADS),
    ("nginx", "io_uring-compl", NGINX_WORKLOADS),
    ("libevent", "epoll", ["http", "echo"]),
    ("libevent", "io_uring", ["http", "echo"]),
    ("libevent", "io_uring-compl", ["http", "echo"]),
    ("minimal", "epoll", ["ret200", "echo"]),
    ("minimal", "io_uring", ["ret200", "echo"]),
]
# CPU/req against the floor only where the work is the floor's: one tiny
# response per request (the ret200 floor), or one echoed message (the echo
# floor).
FLOOR_OF = {"ret200": "ret200", "http": "ret200", "echo": "echo"}
# The module's own cost: an nginx row's CPU/req above the do-nothing server
# of its kind (epoll rows: the epoll floor; io_uring rows: the liburing
# ceiling), ret200 at the same conns.  nginx's own work (files, TLS, HTTP/2)
# is in both modes' figures alike, so epoll's and io_uring's differences
# side by side show what the event module adds.
DO_NOTHING_OF = {"epoll": ("minimal", "epoll", "ret200"),
                 "io_uring": ("minimal", "io_uring", "ret200"),
                 "io_uring-compl": ("minimal", "io_uring", "ret200")}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

_procs = []


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_harness():
    # Even a SIGKILLed harness, which runs no exit handler, takes its
    # direct children with it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def proc_tag(pid):
    """pid:starttime, which names a process even after its pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    return f"{pid}:{st[st.rindex(')') + 2:].split()[19]}"


OWNER_VAR = "RINGPLUG_BENCH_OWNER"
OWNER = proc_tag(os.getpid())


def reap_stale():
    """Kill what an earlier harness started and could not stop (it was
    SIGKILLed: its nginx workers outlive it).  Such processes carry that
    harness's tag in their environment; a tag whose harness still lives
    belongs to a concurrent run and is left alone."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        key = OWNER_VAR.encode() + b"="
        tag = next((e[len(key):].decode() for e in env
                    if e.startswith(key)), None)
        if tag is None or tag == OWNER:
            continue
        if proc_tag(tag.split(":")[0]) == tag:
            continue
        log(f"bench: killing {d}, left over by an earlier run ({tag})")
        try:
            os.kill(int(d), signal.SIGKILL)
        except OSError:
            pass


def spawn(argv, cpu=None, **kw):
    """Start argv in its own session (so it and its children can be stopped
    as one group), pinned to cpu when the machine has two."""
    if PIN and cpu is not None:
        argv = ["taskset", "-c", cpu] + argv
    kw["env"] = dict(kw.get("env") or os.environ)
    kw["env"][OWNER_VAR] = OWNER
    p = subprocess.Popen(argv, start_new_session=True,
                         preexec_fn=_die_with_harness, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=3.0):
    """Stop a process group this harness started; SIGKILL after grace."""
    if p not in _procs:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    # Whatever the leader left behind in its group goes too.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for f in (p.stdout, p.stderr):
        if f:
            f.close()
    _procs.remove(p)


def stop_all():
    for p in list(_procs):
        stop(p, grace=1.0)


def on_signal(sig, frame):
    raise SystemExit(128 + sig)


atexit.register(stop_all)
for _s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_s, on_signal)


def run_client(argv, timeout):
    """Run a load client pinned to the client CPU; returns (rc, stdout,
    cpu seconds it used, wall seconds).  Bounded by timeout."""
    p = spawn(argv, CLIENT_CPU, stdout=subprocess.PIPE,
              stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    out = b""
    deadline = t0 + timeout
    fd = p.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
    if time.monotonic() >= deadline:
        os.killpg(p.pid, signal.SIGKILL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    p.stdout = None
    _procs.remove(p)
    return p.returncode, out.decode(errors="replace"), \
        ru.ru_utime + ru.ru_stime, wall


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, p, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == pid:
            kids.append(int(d))
    return sorted(kids)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])     # utime, stime
    return total


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def sh(argv, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=kw.pop("timeout", 30), **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(argv, 127, "", str(e))


def make(target, logname, timeout, args=()):
    """Run `make target` in the tree, output to a log; True on success."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    os.makedirs(LOGS, exist_ok=True)
    path = os.path.join(LOGS, logname)
    with open(path, "w") as f:
        try:
            r = subprocess.run(["make", "-C", TOP, target] + list(args),
                               stdout=f,
                               stderr=subprocess.STDOUT, env=env,
                               timeout=timeout)
            return r.returncode == 0, path
        except subprocess.TimeoutExpired:
            return False, path


# ------------------------------------------------------------------ servers

class StartError(Exception):
    pass


class Server:
    """One server instance, started fresh for every measurement."""

    def __init__(self, group, mode):
        self.group, self.mode = group, mode
        self.proc = None
        self.port = None
        self.method = None
        self.version = None
        self.logdir = os.path.join(RUN, f"{group}-{mode}")
        os.makedirs(self.logdir, exist_ok=True)

    def pids(self):
        """Processes whose CPU is the server's."""
        return [self.proc.pid]

    def worker(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def crashed(self):
        """Why this server's run is not a sample (it died), or None."""
        if not self.alive():
            return f"server exited during the run ({self.proc.returncode})"
        return None

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def _start_printing(self, argv, env=None):
        """Start a bench server that prints "port=N method=M ..." first."""
        err = open(os.path.join(self.logdir, "stderr.log"), "a")
        self.proc = spawn(argv, SERVER_CPU, stdout=subprocess.PIPE,
                          stderr=err, env=env)
        err.close()
        r, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        line = self.proc.stdout.readline().decode() if r else ""
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        if "port" not in kv:
            self.stop()
            raise StartError(f"{os.path.basename(argv[0])} did not start "
                             f"(see {self.logdir}/stderr.log)")
        self.port = int(kv["port"])
        self.method = kv.get("method")
        self.version = kv.get("version")


class Minimal(Server):
    def start(self, workload="ret200"):
        name = "floor_epoll" if self.mode == "epoll" else "ceiling_uring"
        self._start_printing([os.path.join(BIN, name), "0"] +
                             (["echo"] if workload == "echo" else []))


class Libevent(Server):
    def env(self):
        env = dict(os.environ)
        env.pop("EVENT_NOIO_URING", None)
        env.pop("EVENT_IO_URING_NO_BEV", None)
        # Ahead of the binaries' RUNPATH: the copy pinned for this run.
        env["LD_LIBRARY_PATH"] = LE_LIB_RUN
        if self.mode == "epoll":
            env["EVENT_NOIO_URING"] = "1"
        elif self.mode == "io_uring":
            env["EVENT_IO_URING_NO_BEV"] = "1"
        elif self.mode == "io_uring-compl":
            k, _, v = LE_COMPL_ENV.partition("=")
            env[k] = v
        return env

    def start(self, workload="http"):
        name = "le_echo" if workload == "echo" else "le_http"
        self._start_printing([os.path.join(BIN, name)], env=self.env())
        want = "epoll" if self.mode == "epoll" else "io_uring"
        if self.method != want:
            got = self.method
            self.stop()
            raise StartError(f"libevent picked backend {got}, not {want}")


def module_has_completion():
    """Whether the module knows io_uring_completion (then on by default)."""
    try:
        with open(MODULE_SO, "rb") as f:
            return b"io_uring_completion" in f.read()
    except OSError:
        return False


class Nginx(Server):
    upstream_port = None

    workload = "ret200"

    def conf(self, port):
        load = use = extra = ""
        listen = {"tls1k": " ssl", "h2c1k": " http2",
                  "h2tls1k": " ssl http2"}.get(self.workload, "")
        tls = ""
        if self.workload in TLS_WORKLOADS:
            tls = (f"ssl_certificate {TLS_DIR}/cert.pem; "
                   f"ssl_certificate_key {TLS_DIR}/key.pem; "
                   "ssl_session_cache shared:SSL:1m;")
        if self.mode != "epoll":
            load = f"load_module {MODULE_RUN};"
            use = "use io_uring;"
        else:
            use = "use epoll;"
        if self.mode == "io_uring-compl":
            extra = "io_uring_completion on;"
        elif self.mode == "io_uring" and module_has_completion():
            # completion is the module's default (#6): readiness is "off"
            extra = "io_uring_completion off;"
        proxy = ""
        upstream = ""
        if Nginx.upstream_port:
            upstream = (f"upstream bench_up {{ server 127.0.0.1:"
                        f"{Nginx.upstream_port}; keepalive {UP_KEEPALIVE}; }}")
            proxy = ("location = /proxy { proxy_pass http://bench_up; "
                     "proxy_http_version 1.1; "
                     "proxy_set_header Connection \"\"; }")
        tmp = os.path.join(self.logdir, "tmp")
        temps = "\n    ".join(f"{k}_temp_path {tmp}/{k};" for k in
                              ("client_body", "proxy", "fastcgi", "uwsgi",
                               "scgi"))
        return f"""# written by bench/bench.py
{"user root;" if os.geteuid() == 0 else ""}
{load}
worker_processes 1;
{"worker_cpu_affinity 01;" if PIN else ""}
daemon off;
master_process on;
pid {self.logdir}/nginx.pid;
error_log {self.logdir}/error.log warn;
worker_rlimit_nofile {NOFILE};
events {{
    worker_connections 4096;
    {use}
    {extra}
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    default_type application/octet-stream;
    {tls}
    {temps}
    {upstream}
    server {{
        listen 127.0.0.1:{port}{listen} backlog=4096;
        root {WWW};
        location = /ok {{ return 200 "ok"; }}
        location /static/ {{ }}
        {proxy}
    }}
}}
"""

    def write_conf(self, port):
        os.makedirs(os.path.join(self.logdir, "tmp"), exist_ok=True)
        path = os.path.join(self.logdir, "nginx.conf")
        with open(path, "w") as f:
            f.write(self.conf(port))
        return path

    def check(self):
        """nginx -t on this mode's config: None if it passes, else why."""
        conf = self.write_conf(free_port())
        r = sh([NGINX, "-t", "-q", "-p", self.logdir, "-c", conf,
                "-e", os.path.join(self.logdir, "error.log")])
        if r.returncode == 0:
            return None
        msg = (r.stderr or r.stdout).strip().splitlines()
        msg = [m for m in msg if "emerg" in m or "alert" in m] or msg
        if not msg:
            return f"nginx -t: exit {r.returncode}"
        first = re.sub(r"^nginx: \[\w+\] ", "", msg[0])
        return "nginx -t: " + re.sub(r" in \S+:\d+$", "", first)

    def pids(self):
        return [self.proc.pid] + self._workers

    def worker(self):
        return self._workers[0] if self._workers else self.proc.pid

    def workers_now(self):
        return children(self.proc.pid)

    def crashed(self):
        why = Server.crashed(self)
        if why:
            return why
        try:
            with open(self.errlog, errors="replace") as f:
                f.seek(self.errlog_mark)
                m = re.search(r"worker process \d+ exited on signal (\d+)",
                              f.read())
        except OSError:
            m = None
        if m:
            return f"nginx worker exited on signal {m[1]} (see {self.errlog})"
        if self.workers_now() != self._workers:
            return "nginx worker restarted during the run"
        return None

    def start(self, workload="ret200"):
        self.workload = workload
        for attempt in range(3):
            port = free_port()
            conf = self.write_conf(port)
            errlog = self.errlog = os.path.join(self.logdir, "error.log")
            try:
                self.errlog_mark = os.path.getsize(errlog)
            except OSError:
                self.errlog_mark = 0
            err = open(os.path.join(self.logdir, "stderr.log"), "a")
            self.proc = spawn([NGINX, "-p", self.logdir, "-c", conf,
                               "-e", errlog], SERVER_CPU,
                              stdout=subprocess.DEVNULL, stderr=err)
            err.close()
            if wait_port(port, self.proc):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    self._workers = self.workers_now()
                    if self._workers:
                        break
                    time.sleep(0.05)
                if self._workers:
                    self.port = port
                    self.method = "epoll" if self.mode == "epoll" \
                        else "io_uring"
                    return
            self.stop()
            try:
                with open(errlog, errors="replace") as f:
                    f.seek(self.errlog_mark)
                    tail = f.read()
            except OSError:
                tail = ""
            if "Address already in use" not in tail:
                break
        emerg = [l for l in tail.splitlines() if "[emerg]" in l]
        why = re.sub(r"^.*?\[emerg\] \d+#\d+: ", "", emerg[-1])[:160] \
            if emerg else f"see {errlog}"
        raise StartError(f"nginx did not start: {why}")


def make_server(group, mode):
    return {"nginx": Nginx, "libevent": Libevent,
            "minimal": Minimal}[group](group, mode)


# ------------------------------------------------------------------ loading

def load_argv(workload, port, conns, seconds):
    if workload == "echo":
        return [os.path.join(BIN, "pingpong"), str(port), str(conns),
                str(seconds), "64"]
    scheme = "https" if workload in TLS_WORKLOADS else "http"
    if workload in H2_WORKLOADS:
        return ["h2load", "-c", str(conns), "-m", str(H2_STREAMS), "-t", "1",
                "-D", str(seconds),
                f"{scheme}://127.0.0.1:{port}{WORKLOADS[workload]}"]
    return ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
            "--timeout", "5s", "-s", REPORT_LUA,
            f"{scheme}://127.0.0.1:{port}{WORKLOADS[workload]}"]


def parse_h2load(out):
    """h2load gives a mean, no percentiles: p50 and p99 are None.  With -D
    it stops every client at the deadline, and the streams in flight then
    (at most conns x streams) count as failed and errored: they are the
    cut, not errors, so socket errors are its timeouts only."""
    m = re.search(r"finished in ([\d.]+)(ms|s),", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, "
                  r"(\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    st = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, "
                   r"(\d+) 5xx", out)
    if not m or not r or not st:
        return None
    secs = float(m[1]) / (1000.0 if m[2] == "ms" else 1.0)
    good = min(int(r[4]), int(st[1]))
    bad = int(st[3]) + int(st[4])
    return (good + bad, secs, None, None, int(r[7]), bad)


def parse_client(workload, out):
    """(requests, seconds, p50_us, p99_us, sock_errors, status_errors)."""
    if workload in H2_WORKLOADS:
        return parse_h2load(out)
    if workload == "echo":
        m = re.search(r"requests=(\d+) seconds=([\d.]+) p50_us=(\d+) "
                      r"p99_us=(\d+) errors=(\d+)", out)
        if not m:
            return None
        return (int(m[1]), float(m[2]), int(m[3]), int(m[4]), int(m[5]), 0)
    m = re.search(r"RPBENCH requests=(\d+) duration_us=(\d+) p50_us=(\d+) "
                  r"p99_us=(\d+) sock_errors=(\d+) status_errors=(\d+)", out)
    if not m:
        return None
    return (int(m[1]), int(m[2]) / 1e6, int(m[3]), int(m[4]), int(m[5]),
            int(m[6]))


def start_server(group, mode, workload):
    srv = make_server(group, mode)
    srv.start(workload)
    return srv


def measure(group, mode, workload, conns):
    """One timed run on a fresh server.  Returns a dict of results."""
    srv = start_server(group, mode, workload)
    try:
        if WARMUP > 0:
            run_client(load_argv(workload, srv.port, conns, WARMUP),
                       WARMUP + 20)
        workers = srv.pids()
        t0 = cpu_ticks(workers)
        rc, out, ccpu, wall = run_client(
            load_argv(workload, srv.port, conns, DURATION), DURATION + 30)
        t1 = cpu_ticks(workers)
        res = {"version": srv.version, "method": srv.method}
        parsed = parse_client(workload, out)
        crash = srv.crashed()
        if crash:
            res["crash"] = res["error"] = crash
            return res
        if rc != 0 or parsed is None:
            last = out.strip().splitlines()[-1:] or [f"exit {rc}"]
            res["error"] = f"client failed: {last[0][:120]}"
            return res
        reqs, secs, p50, p99, serr, sterr = parsed
        good = reqs - sterr
        res.update(requests=good, rps=good / secs if secs else 0.0,
                   p50_us=p50, p99_us=p99, sock_errors=serr,
                   status_errors=sterr,
                   client_pct=100.0 * ccpu / wall if wall else 0.0,
                   cpu_us_req=((t1 - t0) * 1e6 / CLK_TCK / good
                               if good else None),
                   hwm_kb=vm_hwm_kb(srv.worker()))
        crash = srv.crashed()
        if crash:
            # Its CPU and request counts mix two processes: not a sample.
            res["crash"] = res["error"] = crash
        return res
    finally:
        srv.stop()


def measure_once(group, mode, workload, conns):
    try:
        return measure(group, mode, workload, conns)
    except StartError as e:
        return {"error": str(e)}


PERF_EVENTS = None


def perf_events():
    """The perf events for the syscall pass; CQEs only where the kernel has
    the io_uring:io_uring_complete tracepoint."""
    global PERF_EVENTS
    if PERF_EVENTS is None:
        ev = ["-e", "raw_syscalls:sys_enter",
              "-e", "raw_syscalls:sys_enter",
              "--filter", f"id == {NR_IO_URING_ENTER}"]
        r = sh(["perf", "stat", "-x,", "-e", "io_uring:io_uring_complete",
                "--", "true"])
        if r.returncode == 0:
            ev += ["-e", "io_uring:io_uring_complete"]
        PERF_EVENTS = ev
    return PERF_EVENTS


def syscall_method():
    if SYSCALLS == "off":
        return "off"
    if SYSCALLS == "perf":
        r = sh(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter",
                "--", "true"])
        if r.returncode == 0:
            return "perf"
    if sh(["strace", "-V"]).returncode == 0:
        return "strace"
    return "off"


def tracer_attached(tracer, method, fifos, npids, timeout=10.0):
    """Wait until the tracer counts, so no request goes by unseen: perf
    acks "enable" on its control fifo, strace says "Process N attached"
    once per task."""
    deadline = time.monotonic() + timeout
    if method == "perf":
        ctl = os.open(fifos[0], os.O_RDWR)
        ack = os.open(fifos[1], os.O_RDWR | os.O_NONBLOCK)
        try:
            os.write(ctl, b"enable\n")
            got = b""
            while b"ack" not in got and tracer.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                r, _, _ = select.select([ack], [], [], min(left, 0.1))
                if r:
                    got += os.read(ack, 64)
            return b"ack" in got
        finally:
            os.close(ctl)
            os.close(ack)
    seen = 0
    fd = tracer.stderr.fileno()
    os.set_blocking(fd, False)
    while time.monotonic() < deadline and tracer.poll() is None:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            seen += os.read(fd, 65536).count(b" attached")
            if seen >= npids:
                return True
    return False


def syscall_pass(method, group, mode, workload, conns):
    """Short separate run with a tracer attached: syscalls, io_uring_enter
    calls and CQEs per request (None where not measured)."""
    srv = start_server(group, mode, workload)
    out = os.path.join(srv.logdir, f"syscalls.{method}")
    try:
        pids = [str(p) for p in srv.pids()]
        fifos = []
        if method == "perf":
            # Counting starts disabled and is switched on through perf's
            # control fifo; its ack says the counters are live.
            fifos = [os.path.join(srv.logdir, n) for n in ("perf.ctl",
                                                           "perf.ack")]
            for f in fifos:
                if os.path.exists(f):
                    os.unlink(f)
                os.mkfifo(f)
            argv = ["perf", "stat", "-x,", "-o", out, "-D", "-1",
                    "--control", f"fifo:{fifos[0]},{fifos[1]}"] + \
                perf_events() + ["-p", ",".join(pids)]
        else:
            argv = ["strace", "-c", "-f", "-o", out]
            for p in pids:
                argv += ["-p", p]
        if os.path.exists(out):
            os.unlink(out)
        tracer = spawn(argv, None, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        if not tracer_attached(tracer, method, fifos, len(pids)):
            stop(tracer, signal.SIGINT)
            return {"why": f"{method} did not attach"}
        rc, cout, _, _ = run_client(
            load_argv(workload, srv.port, conns, SYSCALL_SECS),
            SYSCALL_SECS + 30)
        stop(tracer, signal.SIGINT, grace=10.0)
        crash = srv.crashed()
        if crash:
            return {"why": crash}
        parsed = parse_client(workload, cout)
        reqs = parsed[0] - parsed[5] if parsed else 0
        if rc != 0 or reqs <= 0:
            last = cout.strip().splitlines()[-1:] or [f"exit {rc}"]
            return {"why": f"no 2xx responses ({last[0][:80]})"}
        try:
            with open(out) as f:
                text = f.read()
        except OSError:
            return {"why": f"{method} wrote nothing"}
        if method == "perf":
            vals = []
            for line in text.splitlines():
                parts = line.split(",")
                if len(parts) > 2 and parts[2].startswith(
                        ("raw_syscalls", "io_uring")):
                    vals.append((parts[2], parts[0]))
            num = [int(v) if v.isdigit() else None for _, v in vals]
            res = {}
            if len(num) >= 2 and num[0] is not None:
                res["sys_req"] = num[0] / reqs
                res["enter_req"] = num[1] / reqs if num[1] is not None \
                    else None
            if len(num) >= 3 and num[2] is not None:
                res["cqe_req"] = num[2] / reqs
            return res
        total = re.search(r"^\s*100\.00\s+\S+\s+(?:\d+\s+)?(\d+)\s+(?:\d+\s+)?"
                          r"total", text, re.M)
        enter = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?"
                          r"io_uring_enter$", text, re.M)
        res = {}
        if total:
            res["sys_req"] = int(total[1]) / reqs
            res["enter_req"] = int(enter[1]) / reqs if enter else 0.0
        return res
    finally:
        srv.stop()


# CPU profile pass (BENCH_PROFILE=1): where a server's CPU goes, by symbol.
# What an event mechanism itself costs: the system call entry and exit,
# epoll, and the read/write/ioctl system calls' own layers above the socket
# (io_uring's counterpart is its own io_* functions and task work).  What
# every mode pays alike is the rest of the kernel: TCP, IP, loopback,
# softirq, the scheduler, memory.
SPLIT_SYSCALL = re.compile(
    r"^(entry_SYSCALL|do_syscall_64|syscall_exit|__x64_sys_|__sys_|__do_sys_"
    r"|ksys_|do_epoll|ep_|epoll|vfs_(read|write)v|do_(read|write)v"
    r"|do_iter_readv|sock_(read|write)_iter|sock_poll|tcp_poll|fdget|fput"
    r"|__fget|import_iovec|copy_iovec|rw_verify|do_vfs_ioctl|sock_ioctl"
    r"|inet_ioctl|tcp_ioctl|syscall_)")
SPLIT_URING = re.compile(r"^(__)?io_|io_uring|^llist_reverse_order$|^fget$"
                         r"|^task_work_run$|^tctx_task_work")
SPLIT_KEYS = ("user", "syscall", "uring", "kernel")


def split_samples(report):
    """Percentages per SPLIT_KEYS from `perf report --sort dso,sym`."""
    split = dict.fromkeys(SPLIT_KEYS, 0.0)
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[([k.])\]\s+(\S+)", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m[1]), m[2], m[3], m[4]
        if kind != "k" or not dso.startswith("[kernel"):
            split["user"] += pct
        elif SPLIT_URING.search(sym):
            split["uring"] += pct
        elif SPLIT_SYSCALL.search(sym):
            split["syscall"] += pct
        else:
            split["kernel"] += pct
    return split


def profile_pass(group, mode, workload, conns):
    """A separate run under `perf record -e cpu-clock` of the server's
    processes: the split of its samples (SPLIT_KEYS), or {"why": ...}."""
    srv = start_server(group, mode, workload)
    data = os.path.join(srv.logdir, "perf.data")
    try:
        pids = ",".join(str(p) for p in srv.pids())
        client = spawn(load_argv(workload, srv.port, conns,
                                 SYSCALL_SECS + 2), CLIENT_CPU,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        r = sh(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999",
                "-o", data, "-p", pids, "--", "sleep", str(SYSCALL_SECS)],
               timeout=SYSCALL_SECS + 30)
        stop(client)
        if r.returncode != 0 or srv.crashed():
            return {"why": srv.crashed() or
                    f"perf record failed: {r.stderr.strip()[:80]}"}
        r = sh(["perf", "report", "-i", data, "--no-children", "--stdio",
                "--sort", "dso,sym", "-g", "none"], timeout=120)
        split = split_samples(r.stdout)
        if sum(split.values()) < 50:
            return {"why": "perf report gave no samples"}
        return split
    finally:
        srv.stop()


def check_split(rows):
    """bench-quick: the CPU split sees what each minimal server is made
    of: epoll system calls and no io_uring work in the floor, io_uring work
    and almost no event system calls in the ceiling."""
    want = {"epoll": lambda sp: sp["syscall"] >= 4 and sp["uring"] < 0.5,
            "io_uring": lambda sp: sp["uring"] >= 4
            and sp["uring"] > 2 * sp["syscall"]}
    for mode, ok in want.items():
        name = f"bench-quick profile split minimal/{mode}/ret200"
        key = ("minimal", mode, "ret200", CONNS[0])
        if key not in rows or rows[key]["na"]:
            record(f"SKIP {name} -- row not run")
            continue
        try:
            sp = profile_pass(*key)
        except StartError as e:
            sp = {"why": str(e)}
        if "why" in sp:
            record(f"SKIP {name} -- {sp['why']}")
            continue
        text = ", ".join(f"{k} {sp[k]:.1f}%" for k in SPLIT_KEYS)
        record(f"{'PASS' if ok(sp) else 'FAIL'} {name} ({text})")


def split_table(rows):
    """Where each profiled row's CPU per request goes."""
    lines = ["| server | mode | workload | conns | CPU us/req | user |"
             " event syscalls | io_uring | rest of kernel |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (group, mode, workload, conns), row in rows.items():
        sp = row.get("split")
        if not sp:
            continue
        if "why" in sp:
            lines.append(f"| {group} | {mode} | {workload} | {conns} | - |"
                         f" n/a ({sp['why']}) | | | |")
            continue
        tot = sum(sp[k] for k in SPLIT_KEYS) or 1.0
        cpu = row.get("cpu_us_req")

        def cell(k):
            share = sp[k] / tot
            us = f" ({share * cpu:.2f})" if cpu else ""
            return f"{100 * share:.1f}%{us}"
        lines.append(f"| {group} | {mode} | {workload} | {conns} | "
                     f"{fmt(cpu, '.2f')} | " +
                     " | ".join(cell(k) for k in SPLIT_KEYS) + " |")
    return lines


# ---------------------------------------------------------------- selection

def row_id(group, mode, workload):
    return f"{group}/{mode}/{workload}"


def selected(rid):
    if not ROW_FILTER:
        return True
    for pat in ROW_FILTER:
        if any(c in pat for c in "*?["):
            if fnmatch.fnmatchcase(rid, pat):
                return True
        elif pat in rid:
            return True
    return False


def build_tools():
    """Our own binaries, and with BENCH_BUILD=1 whatever host build is
    missing.  Returns {name: None or why it is missing}."""
    missing = {}
    if DO_BUILD:
        if not os.path.exists(MODULE_SO):
            log("bench: nginx module not built, running make module")
            ok, path = make("module", "make-module.log", 3600)
            if not ok:
                missing["module"] = f"make module failed, see {path}"
        if LIBEVENT_PREFIX == LIBEVENT_DEFAULT and \
                not os.path.exists(os.path.join(LIBEVENT_PREFIX, "lib")):
            log("bench: libevent not built, running make libevent")
            ok, path = make("libevent", "make-libevent.log", 3600)
            if not ok:
                missing["libevent"] = f"make libevent failed, see {path}"
    ok, path = make("bench-bin", "make-bench-bin.log", 600,
                    [f"BENCH_LE_PREFIX={LIBEVENT_PREFIX}"])
    if not ok:
        with open(path, errors="replace") as f:
            sys.stderr.write(f.read()[-3000:])
        raise SystemExit(f"bench: make bench-bin failed, see {path}")
    if not os.path.exists(MODULE_SO) and "module" not in missing:
        missing["module"] = "module not built (make module)"
    if not os.path.exists(os.path.join(LIBEVENT_PREFIX, "lib", "libevent.so")):
        missing.setdefault("libevent", "libevent not built (make libevent)")
    elif not os.path.exists(os.path.join(BIN, "le_http")):
        missing.setdefault("libevent", f"le_http not built, see {path}")
    return missing


def availability(missing):
    """{(group, mode): None or why the rows are n/a}."""
    avail = {}
    for group, mode, _ in VARIANTS:
        why = None
        if group == "nginx":
            if not os.path.exists(NGINX):
                why = f"{NGINX} not installed"
            elif mode != "epoll" and "module" in missing:
                why = missing["module"]
            else:
                why = Nginx(group, mode).check()
                if why and mode == "io_uring-compl":
                    why = "module lacks io_uring_completion (" + why + ")"
        elif group == "libevent":
            if "libevent" in missing:
                why = missing["libevent"]
            elif mode == "io_uring-compl" and not LE_COMPL_ENV:
                why = ("completion bufferevents not selectable yet "
                       "(set BENCH_LIBEVENT_COMPLETION_ENV=NAME=VALUE)")
        if why is None and group != "nginx":
            try:
                srv = start_server(group, mode, "http" if group == "libevent"
                                   else "ret200")
                srv.stop()
            except StartError as e:
                why = str(e)
        avail[(group, mode)] = why
    return avail


# ------------------------------------------------------------------ output

def fmt(v, spec, na="n/a"):
    return na if v is None else format(v, spec)


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def paired_ratio(row, ref, key):
    """The median over rounds of row's value over ref's in the same round.

    Rounds are interleaved, so a round's runs of two modes are seconds
    apart and share whatever else the machine was doing; the ratio of two
    medians mixes rounds and is noisier on a shared machine."""
    mine = {r["round"]: r[key] for r in row["good"]
            if r.get(key) and "round" in r}
    theirs = {r["round"]: r[key] for r in ref["good"]
              if r.get(key) and "round" in r}
    both = [mine[k] / theirs[k] for k in mine if k in theirs]
    return statistics.median(both) if both else None


def summarize(rows):
    """Per row: medians and ranges over the good runs."""
    for row in rows.values():
        runs = [r for r in row["runs"] if "error" not in r]
        row["good"] = runs
        for k in ("rps", "p50_us", "p99_us", "cpu_us_req", "client_pct"):
            row[k] = med(runs, k)
        row["rps_min"] = min((r["rps"] for r in runs), default=None)
        row["rps_max"] = max((r["rps"] for r in runs), default=None)
        cpus = [r["cpu_us_req"] for r in runs if r.get("cpu_us_req")]
        row["cpu_min"] = min(cpus, default=None)
        row["cpu_max"] = max(cpus, default=None)
        hwm = [r["hwm_kb"] for r in runs if r.get("hwm_kb")]
        row["hwm_kb"] = max(hwm, default=None)
        row["requests"] = sum(r["requests"] for r in runs)
        row["sock_errors"] = sum(r["sock_errors"] for r in runs)
        row["status_errors"] = sum(r["status_errors"] for r in runs)


COLUMNS = ["server", "mode", "workload", "conns", "req/s (median)",
           "req/s min-max", "rps x epoll", "p50 ms", "p99 ms",
           "CPU us/req", "CPU us/req min-max", "CPU/req x epoll",
           "CPU/req x floor", "CPU us/req over do-nothing", "syscalls/req", "enters/req", "CQEs/req",
           "worker VmHWM MiB", "client CPU %", "notes"]


def table(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for (group, mode, workload, conns), row in rows.items():
        notes = []
        if row["na"]:
            cells = [group, mode, workload, str(conns)] + \
                ["-"] * (len(COLUMNS) - 5) + [f"n/a ({row['na']})"]
            lines.append("| " + " | ".join(c.replace("|", "/")
                                           for c in cells) + " |")
            continue
        base = rows.get((group, VARIANTS_BY_GROUP[group][0], workload,
                         conns))
        floor = rows.get(("minimal", "epoll", FLOOR_OF.get(workload),
                          conns))

        def ratio(key, ref):
            if ref is None or ref is row or ref["na"] or not ref.get(key) \
                    or row.get(key) is None:
                return "-" if ref is row else "n/a"
            paired = paired_ratio(row, ref, key)
            return f"{paired if paired else row[key] / ref[key]:.2f}"

        x_floor = ratio("cpu_us_req", floor) \
            if workload in FLOOR_OF else "-"
        over = "-"
        if group == "nginx":
            dn = rows.get(DO_NOTHING_OF[mode] + (conns,))
            if dn and not dn["na"] and dn.get("cpu_us_req") is not None \
                    and row.get("cpu_us_req") is not None:
                over = f"{row['cpu_us_req'] - dn['cpu_us_req']:.2f}"
            else:
                over = "n/a"
        if group == "minimal" and mode == "epoll":
            x_floor = "-"
        failed = [r["error"] for r in row["runs"] if "error" in r]
        if failed:
            notes.append(f"{len(failed)} run(s) failed: {failed[0]}")
        if any(r.get("retried") for r in row["runs"]):
            notes.append("retried once")
        if row["client_pct"] is not None and \
                row["client_pct"] >= CLIENT_BOUND_PCT:
            notes.append("client-bound")
        if row["sock_errors"] or row["status_errors"]:
            notes.append(f"errors: {row['sock_errors']} socket, "
                         f"{row['status_errors']} non-2xx")
        if not row["good"]:
            notes.insert(0, "no good run")
        sc = row.get("sc", {})
        if sc.get("why"):
            notes.append(f"syscall pass failed: {sc['why']}")
        if mode != "epoll" and sc.get("enter_req") == 0:
            notes.append("no io_uring_enter in the syscall pass: "
                         "fell back to epoll?")
        cells = [
            group, mode, workload, str(conns),
            fmt(row["rps"], ".0f"),
            (f"{row['rps_min']:.0f}-{row['rps_max']:.0f}"
             if row["rps_min"] is not None else "n/a"),
            ratio("rps", base),
            fmt(row["p50_us"] and row["p50_us"] / 1000, ".3f"),
            fmt(row["p99_us"] and row["p99_us"] / 1000, ".3f"),
            fmt(row["cpu_us_req"], ".2f"),
            (f"{row['cpu_min']:.2f}-{row['cpu_max']:.2f}"
             if row["cpu_min"] is not None else "n/a"),
            ratio("cpu_us_req", base),
            x_floor,
            over,
            fmt(sc.get("sys_req"), ".2f"),
            fmt(sc.get("enter_req"), ".3f"),
            fmt(sc.get("cqe_req"), ".2f"),
            fmt(row["hwm_kb"] and row["hwm_kb"] / 1024, ".1f"),
            fmt(row["client_pct"], ".0f"),
            "; ".join(notes),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/")
                                       for c in cells) + " |")
    return lines


VARIANTS_BY_GROUP = {}
for _g, _m, _ in VARIANTS:
    VARIANTS_BY_GROUP.setdefault(_g, []).append(_m)


def first_line(argv, stream="stdout"):
    r = sh(argv)
    text = (r.stdout if stream == "stdout" else r.stderr) or r.stdout \
        or r.stderr
    return text.strip().splitlines()[0] if text.strip() else "unknown"


def dpkg_version(pkg):
    r = sh(["dpkg-query", "-W", "-f=${Version}", pkg])
    return r.stdout.strip() if r.returncode == 0 and r.stdout else None


def libevent_version(rows):
    for row in rows.values():
        for r in row["runs"]:
            if r.get("version"):
                return r["version"]
    pc = os.path.join(LIBEVENT_PREFIX, "lib", "pkgconfig", "libevent.pc")
    try:
        with open(pc) as f:
            m = re.search(r"^Version:\s*(\S+)", f.read(), re.M)
            if m:
                return m[1]
    except OSError:
        pass
    return "not built"


def header(rows, sc_method, started):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m[1] if m else cpu
    except OSError:
        pass
    mod = "not built"
    if SNAPSHOT.get("module"):
        mod = (f"{os.path.relpath(MODULE_SO, TOP)} built "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(SNAPSHOT['module']))}"
               " UTC, copied at the start and loaded from the copy")
    sc = {"perf": "`perf stat -e raw_syscalls:sys_enter -p <server pids>`; "
                  f"enters: same with `--filter 'id == {NR_IO_URING_ENTER}'`"
                  "; CQEs: tracepoint io_uring:io_uring_complete in the "
                  "server's tasks",
          "strace": "`strace -c -f -p <server pids>` (enters: its "
                    "io_uring_enter line; CQEs n/a)",
          "off": "not measured (BENCH_SYSCALLS=off or no tracer)"}[sc_method]
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    lines = [
        f"# ringplug benchmark, {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(started))} UTC"
        f" ({'quick' if QUICK else 'full'})",
        "",
        f"- tree: {SNAPSHOT['tree']}",
        f"- kernel: {os.uname().release}; CPU: {cpu}; {os.cpu_count()} CPUs;"
        f" load average at start: {load}",
        f"- nginx: {first_line([NGINX, '-v'], 'stderr')} ({NGINX});"
        f" io_uring module: {mod}",
        f"- libevent: {libevent_version(rows)} ({LIBEVENT_PREFIX}/lib,"
        " copied at the start and loaded from the copy)",
        f"- liburing: {dpkg_version('liburing-dev') or 'unknown'} (Debian package)",
        f"- wrk: {first_line(['wrk', '-v'])}",
        f"- pinning: " + ("server processes on CPU 0 (nginx also "
                          "worker_cpu_affinity 01), load client on CPU 1"
                          if PIN else "none (fewer than 2 CPUs)"),
        f"- load: wrk -t1 --latency (pingpong.c, 64-byte messages, for echo;"
        f" h2load -t1 -m {H2_STREAMS} -D for the HTTP/2 rows, which have no"
        f" percentiles),"
        f" {DURATION} s per run after {WARMUP} s warm-up, {ROUNDS} round(s)"
        f" interleaved (every mode of a cell, then the next cell; each run on"
        f" a fresh server), conns {', '.join(map(str, CONNS))}",
        "- req/s, p50, p99, CPU/req: median over rounds; req/s counts only"
        " 2xx responses",
        "- CPU us/req: utime+stime delta of the server processes (nginx:"
        " master + worker) from /proc/<pid>/stat over the run / requests;"
        " loopback softirq work done in the client's context is not counted",
        f"- syscalls, enters, CQEs per request: separate {SYSCALL_SECS} s pass"
        f" per row, {sc}",
        "- proxy rows: upstream is bench/floor_epoll.c (the floor responder;"
        f" nginx upstream keepalive {UP_KEEPALIVE}), pinned to CPU 0; its CPU"
        " is not counted",
        "- x epoll: against the same server's epoll row at the same workload"
        " and conns, the median of the per-round ratios (each round's runs"
        " of a cell are seconds apart); x floor: CPU/req against the minimal"
        " epoll server doing the same work (one tiny HTTP response per"
        " request: the ret200 floor; one echoed message: the echo floor),"
        " paired by round too",
        f"- client CPU %: utime+stime of the load client over wall time;"
        f" >= {CLIENT_BOUND_PCT:.0f}% is flagged client-bound",
    ]
    if os.environ.get("BENCH_NOTE"):
        lines.append(f"- note: {os.environ['BENCH_NOTE']}")
    return lines


def charts(rows, stamp):
    """PNG charts: CPU us/req and p99 by connection count, one panel per
    workload, one line per server/mode.  Returns the paths written."""
    if sh(["gnuplot", "--version"]).returncode != 0:
        return []
    datadir = os.path.join(OUT, f"data-{stamp}")
    os.makedirs(datadir, exist_ok=True)
    workloads = [w for w in WORKLOADS
                 if any(k[2] == w and not r["na"] and r["good"]
                        for k, r in rows.items())]
    written = []
    for key, label, scale in (("cpu_us_req", "server CPU us per request", 1),
                              ("p99_us", "p99 latency (ms)", 1000)):
        panels = []
        for w in workloads:
            series = []
            for group, mode, wls in VARIANTS:
                if w not in wls:
                    continue
                pts = [(c, rows[(group, mode, w, c)][key])
                       for c in CONNS
                       if (group, mode, w, c) in rows
                       and rows[(group, mode, w, c)].get(key) is not None]
                if not pts:
                    continue
                path = os.path.join(datadir, f"{key}-{w}-{group}-{mode}.dat")
                with open(path, "w") as f:
                    for c, v in pts:
                        f.write(f"{c} {v / scale}\n")
                series.append(f"'{path}' using 1:2 with linespoints "
                              f"title '{group} {mode}'")
            if series:
                panels.append((w, series))
        if not panels:
            continue
        cols = min(len(panels), 3)
        nrows = (len(panels) + cols - 1) // cols
        png = os.path.join(OUT, f"{'cpu' if key == 'cpu_us_req' else 'p99'}"
                                f"-{stamp}.png")
        gp = [f"set terminal png noenhanced size {480 * cols},{440 * nrows}",
              f"set output '{png}'",
              f"set multiplot layout {nrows},{cols} title '{label}'",
              "set logscale x 2", "set key below font ',9'",
              "set xlabel 'connections'", "set grid",
              "set yrange [0:*]",
              f"set xrange [{min(CONNS) / 1.5}:{max(CONNS) * 1.5}]",
              f"set xtics ({', '.join(str(c) for c in CONNS)})"]
        for w, series in panels:
            gp += [f"set title '{w}'", "plot " + ", ".join(series)]
        gp.append("unset multiplot")
        script = os.path.join(datadir, f"{key}.gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        r = sh(["gnuplot", script], timeout=60)
        if r.returncode == 0 and os.path.exists(png):
            written.append(png)
        else:
            log(f"bench: gnuplot failed: {r.stderr.strip()[:300]}")
    return written


# --------------------------------------------------------------------- main

SNAPSHOT = {}


def pin_builds(stamp, missing):
    """Make this run's directory and copy the host builds into it, so a
    rebuild by someone else mid-run cannot mix two builds in one table
    (or pull the module out from under nginx).  Old run directories beyond
    the last KEEP_RUNS go."""
    global RUN, MODULE_RUN, LE_LIB_RUN
    RUN = os.path.join(RUNS, f"{stamp}-{os.getpid()}")
    os.makedirs(RUN)
    old = sorted(d for d in os.listdir(RUNS)
                 if re.fullmatch(r"\d{8}-\d{6}-\d+", d))
    for d in old[:-KEEP_RUNS]:
        shutil.rmtree(os.path.join(RUNS, d), ignore_errors=True)
    git = sh(["git", "-C", TOP, "describe", "--always", "--dirty"])
    SNAPSHOT["tree"] = git.stdout.strip() or "unknown"
    MODULE_RUN = os.path.join(RUN, os.path.basename(MODULE_SO))
    LE_LIB_RUN = os.path.join(RUN, "libevent-lib")
    lib = os.path.join(LIBEVENT_PREFIX, "lib")
    # A build being replaced right now disappears for a moment: wait for
    # it a little, then run without it.
    for _ in range(30):
        try:
            if os.path.exists(MODULE_SO):
                SNAPSHOT["module"] = os.path.getmtime(MODULE_SO)
                shutil.copy2(MODULE_SO, MODULE_RUN)
            shutil.rmtree(LE_LIB_RUN, ignore_errors=True)
            if os.path.isdir(lib):
                shutil.copytree(lib, LE_LIB_RUN, symlinks=True,
                                ignore=shutil.ignore_patterns(
                                    "*.la", "*.a", "pkgconfig", "cmake"))
            break
        except OSError as e:
            log(f"bench: copying the host builds: {e}; retrying")
            time.sleep(2)
    os.makedirs(LE_LIB_RUN, exist_ok=True)
    if not os.path.exists(MODULE_RUN):
        SNAPSHOT.pop("module", None)
        missing.setdefault("module", "module vanished while being copied")
    if not os.path.exists(os.path.join(LE_LIB_RUN, "libevent.so")):
        missing.setdefault("libevent", "libevent vanished while being copied")

def record(line):
    path = os.environ.get("RP_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
    print(line)


def check_table(path):
    """The written table: a header, a separator, and rows with the same
    number of cells."""
    with open(path) as f:
        lines = [l for l in f if l.startswith("|")]
    if len(lines) < 3:
        return "no table rows"
    n = len(COLUMNS)
    for l in lines:
        cells = l.strip().strip("|").split("|")
        if len(cells) != n:
            return f"a line has {len(cells)} cells, want {n}: {l[:80]}"
    return None


def runnable(rows, cells):
    """(group, mode, workload, conns, row) of every row that can run, cell
    by cell, every mode of a cell back to back: the order of a round."""
    for g, w in cells:
        for c in CONNS:
            for m in VARIANTS_BY_GROUP[g]:
                row = rows.get((g, m, w, c))
                if row is not None and not row["na"]:
                    yield g, m, w, c, row


def side_pass(rows, cells, key, what, run):
    """One more run per runnable row, in table order, outside the timed
    rounds: its result (or {"why": ...}) goes to row[key]."""
    for g, m, w, c, row in runnable(rows, cells):
        log(f"bench: {what} {row_id(g, m, w)} c={c}")
        try:
            row[key] = run(g, m, w, c)
        except StartError as e:
            row[key] = {"why": str(e)}
            log(f"bench:   {e}")


def make_cert():
    """A self-signed certificate for the TLS rows, made once."""
    cert = os.path.join(TLS_DIR, "cert.pem")
    if os.path.exists(cert):
        return
    os.makedirs(TLS_DIR, exist_ok=True)
    r = sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
            "-subj", "/CN=localhost", "-keyout",
            os.path.join(TLS_DIR, "key.pem"), "-out", cert])
    if r.returncode != 0:
        raise SystemExit(f"bench: openssl req failed: {r.stderr.strip()}")


def main():
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    for d in (OUT, RUNS, LOGS, os.path.join(WWW, "static")):
        os.makedirs(d, exist_ok=True)
    for name, size in (("1k.bin", 1024), ("64k.bin", 65536)):
        path = os.path.join(WWW, "static", name)
        if not os.path.exists(path) or os.path.getsize(path) != size:
            with open(path, "wb") as f:
                f.write(bytes((i * 7 + 13) % 251 for i in range(size)))

    if any(selected(row_id(g, m, w)) for g, m, wls in VARIANTS for w in wls
           if w in TLS_WORKLOADS):
        make_cert()
    reap_stale()
    missing = build_tools()
    pin_builds(stamp, missing)

    # Which rows, and which cells (workload, conns) they share.
    wanted = [(g, m, w) for g, m, wls in VARIANTS for w in wls
              if selected(row_id(g, m, w))]
    if BASELINE:
        wanted += [(g, VARIANTS_BY_GROUP[g][0], w) for g, m, w in wanted
                   if m != VARIANTS_BY_GROUP[g][0]]
        # nginx rows' "over do-nothing" needs both do-nothing servers
        if any(g == "nginx" for g, _, _ in wanted):
            wanted += [DO_NOTHING_OF["epoll"], DO_NOTHING_OF["io_uring"]]
    order = [(g, m, w) for g, m, wls in VARIANTS for w in wls
             if (g, m, w) in wanted]
    if not order:
        raise SystemExit(f"bench: BENCH_ROWS={','.join(ROW_FILTER)} "
                         "matches no row")

    upstream = None
    if any(w == "proxy" for _, _, w in order):
        upstream = Minimal("upstream", "epoll")
        upstream.start()
        Nginx.upstream_port = upstream.port

    avail = availability(missing)
    rows = {}
    for g, m, w in order:
        for c in CONNS:
            rows[(g, m, w, c)] = {"na": avail[(g, m)], "runs": []}

    cells = []
    for g, m, w in order:
        if (g, w) not in cells:
            cells.append((g, w))
    live = [k for k, r in rows.items() if not r["na"]]
    total = len(live) * ROUNDS
    log(f"bench: {len(rows)} rows ({len(live)} runnable), {ROUNDS} round(s)"
        f" of {DURATION} s: about "
        f"{total * (DURATION + WARMUP + 1) + len(live) * (SYSCALL_SECS + 2)}"
        " s")

    n = 0
    for rnd in range(ROUNDS):
        for g, m, w, c, row in runnable(rows, cells):
            n += 1
            log(f"bench: [{n}/{total}] round {rnd + 1} "
                f"{row_id(g, m, w)} c={c}")
            res = measure_once(g, m, w, c)
            res["round"] = rnd
            if QUICK and not res.get("requests") \
                    and not res.get("crash"):
                # A smoke run must not fail because another job
                # starved the box for a second: one retry, and
                # both runs stay in the row.
                log(f"bench:   {res.get('error', 'no requests')}"
                    ", retrying once")
                row["runs"].append(res)
                res = measure_once(g, m, w, c)
                res["round"] = rnd
                res["retried"] = True
            row["runs"].append(res)
            if "error" in res:
                log(f"bench:   {res['error']}")
            else:
                log(f"bench:   {res['rps']:.0f} req/s, "
                    f"{fmt(res['cpu_us_req'], '.2f')} us/req, "
                    f"client {res['client_pct']:.0f}%")

    sc_method = syscall_method()
    if sc_method != "off":
        side_pass(rows, cells, "sc", f"syscall pass ({sc_method})",
                  lambda g, m, w, c: syscall_pass(sc_method, g, m, w, c))
    if PROFILE:
        side_pass(rows, cells, "split", "profile pass", profile_pass)

    if upstream:
        upstream.stop()

    summarize(rows)
    text = header(rows, sc_method, started) + [""] + table(rows)
    if PROFILE:
        text += ["", "Where the server's CPU goes (BENCH_PROFILE=1: a"
                 f" separate {SYSCALL_SECS} s pass per row under `perf record"
                 " -e cpu-clock`, samples split by symbol: event syscalls ="
                 " system call entry/exit, epoll and the read/write/ioctl"
                 " layers above the socket; io_uring = its io_* functions and"
                 " task work; rest of kernel = TCP, IP, loopback, scheduler,"
                 " memory, which every mode pays; in brackets us/req, the"
                 " share times the row's median CPU us/req):", ""] + \
            split_table(rows)
    pngs = charts(rows, stamp)
    if pngs:
        text += [""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})"
                        for p in pngs]
    path = os.path.join(OUT, f"results-{stamp}.md")
    with open(path, "w") as f:
        f.write("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwritten: {path}" + "".join(f"\n         {p}" for p in pngs))

    if QUICK:
        why = check_table(path)
        record(f"FAIL bench-quick table -- {why}" if why
               else "PASS bench-quick table")
        if sh(["gnuplot", "--version"]).returncode != 0:
            record("SKIP bench-quick charts -- gnuplot not installed")
        elif not any(r["good"] for r in rows.values()):
            record("SKIP bench-quick charts -- no row has data to chart")
        elif pngs and all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
                          for p in pngs):
            record("PASS bench-quick charts")
        else:
            record("FAIL bench-quick charts")
        for (g, m, w, c), row in rows.items():
            name = f"bench-quick {row_id(g, m, w)} c={c}"
            if row["na"]:
                record(f"SKIP {name} -- {row['na']}")
            elif not row["good"] or not row["requests"]:
                errs = [r.get("error", "0 requests") for r in row["runs"]]
                record(f"FAIL {name} -- {errs[0] if errs else 'no run'}")
            elif row["status_errors"] or \
                    row["sock_errors"] > max(1, row["requests"] // 100):
                record(f"FAIL {name} -- {row['sock_errors']} socket errors,"
                       f" {row['status_errors']} non-2xx")
            elif any("crash" in r for r in row["runs"]):
                record(f"FAIL {name} -- server crashed")
            elif row.get("cpu_us_req") is None:
                record(f"FAIL {name} -- no server CPU measured")
            else:
                record(f"PASS {name} ({row['requests']} requests)")
        for key in (("minimal", "epoll", "ret200"),):
            if not any(k[:3] == key for k in rows) and not ROW_FILTER:
                record("FAIL bench-quick floor row missing")
        check_split(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
