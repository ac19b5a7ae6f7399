#!/usr/bin/env python3
"""Check that the Windows core suites are honest: break one feature of the
Windows engine (core/win/rio.c) at a time in a copy of core/ under
build/windows/mutants/, build the core test program that should notice
against it, for the overlapped build (suite windows-core), the RIO stand-in
build (suite windows-core-rio-standin) or both, run it under Wine, and see
that a case fails.

    tests/core/mutants-windows.sh [name-substring]   (make windows-core-mutants)

Run through mutants-windows.sh, which starts Wine with tests/windows/wine.sh
and exports WINE64.  Prints one line per mutant and build: "caught" with
the first FAIL line, "NOT CAUGHT" (the case passed with the feature
broken), or "stale" (core/win/rio.c changed and the text to break is gone).
Exits 1 if any mutant was not caught or is stale.  Not part of `make test`.
"""

import os
import shutil
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(TOP, "build", "windows", "mutants")
CC = "x86_64-w64-mingw32-gcc"
AR = "x86_64-w64-mingw32-ar"
# as core/core.mk and tests/core/windows.mk, without -Werror: a mutant may
# leave a variable unused
CORE_CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-O2", "-g"]
TEST_CFLAGS = ["-std=gnu11", "-D__USE_MINGW_ANSI_STDIO=1", "-O2", "-g"]
TEST_LIBS = ["-static", "-lws2_32", "-lntdll", "-lpthread"]
SOURCES = ["engine.c", "fd.c", "bufs.c", "win/rio.c", "win/os-win.c"]
STANDIN = os.path.join(TOP, "tests", "windows", "rio-standin.c")
WINE64 = os.environ.get("WINE64", "/usr/lib/wine/wine64")
OV, RIO = "overlapped", "rio"

# name, builds, test program, case filter, [(file in core/, text, new)]
# and, where a case can also fail for another reason, what its FAIL line
# must say
EXPECT = {
    "flush-sends-uncapped": "the flush gave up",
}
MUTANTS = [
    ("send-pieces-reversed", [OV], "send", "48-queued",
     [("win/rio.c", "        wo->wsabuf[i].buf = iov[i].iov_base;\n"
       "        wo->wsabuf[i].len = (ULONG) take;",
       "        wo->wsabuf[n - 1 - i].buf = iov[i].iov_base;\n"
       "        wo->wsabuf[n - 1 - i].len = (ULONG) take;")]),
    ("rio-send-pieces-reversed", [RIO], "send", "48-queued",
     [("win/rio.c", "            memcpy(dst + len, iov[i].iov_base, take);",
       "            memcpy(dst + room - take, iov[i].iov_base, take);"),
      ("win/rio.c", "        rb.Offset = (ULONG) ((size_t) wo->slice * w->slice_size);",
       "        rb.Offset = (ULONG) ((size_t) wo->slice * w->slice_size\n"
       "                             + w->slice_size - len);")]),
    ("rio-one-staging-slice", [RIO], "wait", "sq-smaller",
     [("win/rio.c", "        dst = (char *) w->stage + (size_t) wo->slice * w->slice_size;",
       "        dst = (char *) w->stage;"),
      ("win/rio.c", "        rb.Offset = (ULONG) ((size_t) wo->slice * w->slice_size);",
       "        rb.Offset = 0;")]),
    ("rio-recv-slot-not-returned", [RIO], "recv", "eof-after-data",
     [("win/rio.c", "        wf->recvs--;\n", "")]),
    ("rio-commit-skipped", [RIO], "recv", "eof-after-data",
     [("win/rio.c", "    if (w->rio) {\n        rp_commit(w);\n    }",
       "    (void) rp_commit;")]),
    ("rionotify-not-rearmed", [RIO], "recv", "eof-after-data",
     [("win/rio.c", "            w->cq_armed = 0;\n", "")]),
    ("rionotify-while-pending", [RIO], "wait", "timeout-recv-armed",
     [("win/rio.c", "    if (w->rio && !w->cq_armed) {", "    if (w->rio) {")]),
    ("rio-cq-not-grown", [RIO], "cq-overflow", "recvs",
     [("win/rio.c", "    if (w->cq_used + need > w->cq_size) {", "    if (0) {")]),
    # the overlapped build does not notice: nothing checks the freed memory
    # Windows would write into (no sanitizer in mingw-w64)
    ("destroy-frees-with-requests-out", [RIO], "close",
     "destroy-with-everything",
     [("win/rio.c", "    if (e->ops_live > 0) {", "    if (0) {")]),
    ("closed-fd-receives-committed", [RIO], "close", "host-closes-first",
     [("win/rio.c", "        if (wf->defer_recv && !wf->f.closed) {",
       "        if (wf->defer_recv) {")]),
    ("buffers-not-returned", [OV, RIO], "recv", "enobufs-copy",
     [("win/rio.c", "    w->buf_free[w->nbuf_free++] = bid;",
       "    (void) w;\n    (void) bid;")]),
    ("afd-disconnect-not-rdhup", [OV, RIO], "poll", "rdhup",
     [("win/rio.c", "    if (a & AFD_POLL_DISCONNECT) {\n        r |= RP_IN | RP_RDHUP;",
       "    if (a & AFD_POLL_DISCONNECT) {\n        r |= RP_IN;")]),
    ("poll-takes-any-handle", [OV], "poll", "pipe",
     [("win/rio.c", "        if (getsockopt((SOCKET) s, SOL_SOCKET, SO_TYPE, (char *) &type,\n"
       "                       &len) != 0\n            || WSAIoctl(",
       "        (void) type;\n        (void) len;\n        if (WSAIoctl(")]),
    ("submit-counts-nothing", [OV, RIO], "wait", "flush-submits",
     [("win/rio.c", "    return (int) n;\n}", "    return 0 * (int) n;\n}")]),
    ("no-own-send-handle", [OV], "close", "flush-4mib",
     [("win/rio.c", "    if (s == wf->f.fd && !wf->own_failed) {",
       "    if (0 && s == wf->f.fd && !wf->own_failed) {")]),
    ("close-socket-left-open", [OV, RIO], "close", "engine-closes-at-once",
     [("fd.c", "        rp_os_close(f->fd);\n    }\n\n    rp_fd_maybe_free(e, f);",
       "    }\n\n    rp_fd_maybe_free(e, f);")]),
    # RIO: the host's socket closed at once, the flush on a duplicate
    ("close-socket-flush-on-duplicate", [RIO], "close",
     "engine-closes-flush-4mib",
     [("fd.c", "        if (dupfd == f->fd && (flags & RP_CLOSE_SOCKET)) {",
       "        if (0) {")]),
    ("flush-sends-uncapped", [OV, RIO], "close", "slow-steady-reader-all",
     [("win/rio.c", "    room = RP_SLICE_MIN;\n    for (i = 0; i < n && room > 0; i++) {",
       "    room = SIZE_MAX;\n    for (i = 0; i < n && room > 0; i++) {")]),
]


def run(cmd, log):
    with open(log, "a") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode


def build(name, edits, build_kind, prog, fresh):
    d = os.path.join(OUT, name)
    core = os.path.join(d, "core")
    if fresh:
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(TOP, "core"), core)
        for fname, old, new in edits:
            p = os.path.join(core, fname)
            src = open(p).read()
            if old not in src:
                shutil.rmtree(d)
                return None
            open(p, "w").write(src.replace(old, new, 1))
    b = os.path.join(d, build_kind)
    os.makedirs(b, exist_ok=True)
    log = os.path.join(b, "build.log")
    open(log, "w").close()
    extra = ["-DRP_RIO_STANDIN", "-I" + os.path.join(TOP, "tests", "windows")] \
        if build_kind == RIO else []
    objs = []
    for c in SOURCES + ([STANDIN] if build_kind == RIO else []):
        src = c if os.path.isabs(c) else os.path.join(core, c)
        o = os.path.join(b, os.path.basename(c)[:-2] + ".o")
        if run([CC] + CORE_CFLAGS + extra + ["-I" + core, "-I" + os.path.join(core, "win"),
                "-c", "-o", o, src], log) != 0:
            raise RuntimeError("build failed: " + log)
        objs.append(o)
    lib = os.path.join(b, "libringplug.a")
    if os.path.exists(lib):
        os.unlink(lib)
    run([AR, "rcs", lib] + objs, log)
    exe = os.path.join(b, "test-%s.exe" % prog)
    ld = ["-Wl,--wrap=malloc"] if prog == "nomem" else []
    if run([CC] + TEST_CFLAGS + extra + ["-I" + core, "-I" + os.path.join(core, "win"),
            "-I" + os.path.join(TOP, "tests", "core"), "-o", exe,
            os.path.join(TOP, "tests", "core", "test-%s.c" % prog), lib] + ld + TEST_LIBS,
           log) != 0:
        raise RuntimeError("build failed: " + log)
    return exe


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    bad = 0
    t_all = time.time()
    for name, builds, prog, case, edits in MUTANTS:
        if only not in name:
            continue
        for kind in builds:
            suite = "windows-core" if kind == OV else "windows-core-rio-standin"
            exe = build(name, edits, kind, prog, kind == builds[0])
            if exe is None:
                bad += 1
                print("stale       %s: the text to break is gone from core/" % name)
                break
            out = exe[:-4] + ".out"
            env = dict(os.environ, RP_TEST_PREFIX="mutant", RP_RESULTS="")
            t0 = time.time()
            with open(out, "w") as f:
                try:
                    subprocess.run(["timeout", "300", WINE64, exe, case], env=env,
                                   stdin=subprocess.DEVNULL, stdout=f,
                                   stderr=subprocess.STDOUT)
                except OSError as err:
                    print("error       %s [%s]: %s" % (name, suite, err))
                    bad += 1
                    continue
            text = open(out, errors="replace").read().replace("\r", "")
            fails = [l for l in text.splitlines() if l.startswith("FAIL ")
                     and EXPECT.get(name, "") in l]
            secs = time.time() - t0
            if fails:
                print("caught      %s [%s] in %.0f s: %s" % (name, suite, secs,
                                                            fails[0][:200]))
            else:
                bad += 1
                print("NOT CAUGHT  %s [%s]: test-%s %s passed with the feature "
                      "broken (%s)" % (name, suite, prog, case, out))
            sys.stdout.flush()
    print("windows-core-mutants: %.0f s" % (time.time() - t_all))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
