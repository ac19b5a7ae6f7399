#!/usr/bin/env python3
"""Check that the core tests are honest: break one feature of core/ at a
time (a copy under build/mutants/, never core/ itself), link the test that
covers it against the broken engine, and see that the test fails.

    tests/core/mutants.py [name-substring]      (make core-mutants)

Prints one line per mutant: "caught" (the test failed, as it must), "NOT
CAUGHT" (the test passed with the feature broken: the test is too weak), or
"stale" (core/ changed and the text to break is gone: update the mutant).
Exits 1 if any mutant was not caught.  Not part of `make test`: it builds
every mutant (a few seconds each).
"""

import os
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(TOP, "build", "mutants")
CFLAGS = ["-std=gnu11", "-D_GNU_SOURCE", "-O2", "-g"]
# programs that need the test build of the engine
TEST_BUILD = {"restrict": ["-DRP_FAULT_INJECTION"]}

# name, test program, case filter, [(file, text, replacement), ...]
MUTANTS = [
    ("close-without-cancel", "close", "recv-pending-eof",
     [("fd.c", "    if (f->recv_op != NULL) {\n        rp_cancel_op(e, f->recv_op);\n"
       "    }\n    if (f->fin_op != NULL) {",
       "    if (f->fin_op != NULL) {")]),
    ("close-cancel-without-task-work", "close", "no-wait",
     [("fd.c", "    (void) rp_be_submit(e, true);\n\n    rp_fd_maybe_free(e, f);",
       "    (void) rp_be_submit(e, false);\n\n    rp_fd_maybe_free(e, f);")]),
    ("replaced-poll-not-dropped", "poll", "rearm",
     [("fd.c", "    if (!current) {\n        e->st.stale++;\n        return;\n    }",
       "    if (0) {\n    }")]),
    ("oneshot-poll-is-multishot", "poll", "oneshot",
     [("uring.c", "        io_uring_prep_poll_add(sqe, s, events);",
       "        io_uring_prep_poll_multishot(sqe, s, events);")]),
    ("no-rearm-after-enobufs", "recv", "enobufs-copy",
     [("fd.c", "            e->st.rearms++;\n            if (rp_recv_arm(e, f) < 0) {\n"
       "                f->rearm_recv = 1;      /* no op or room: the next pass */\n"
       "                rp_rearm_later(e, f);\n            }\n"
       "        }\n        rp_fd_maybe_free(e, f);",
       "            e->st.rearms++;\n        }\n        rp_fd_maybe_free(e, f);")]),
    ("ref-send-queues-a-prefix", "nomem", "ref-send",
     [("fd.c", "            *tail = s;\n            tail = &s->next;\n            last = s;",
       "            rp_seg_append(f, s);\n            f->sendq_bytes += s->len;\n"
       "            last = s;")]),
    ("copy-send-fills-before-allocating", "nomem", "copy-send",
     [("fd.c", "        if (total > room) {", "        if (0) {"),
      ("fd.c", "                    s = rp_seg_append(f, last);",
       "                    last = rp_seg_new(e, total < RP_SEG_MIN_CAP ? "
       "RP_SEG_MIN_CAP : total);\n                    if (last == NULL) "
       "return -ENOMEM;\n                    s = rp_seg_append(f, last);")]),
    ("get-sqe-spins", "nomem", "sq-full",
     [("uring.c", "    for (tries = 0; tries < 4; tries++) {",
       "    for (tries = 0; ; tries++) {"),
      ("uring.c", "        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {\n"
       "            break;\n        }\n", "")]),
    ("max-queued-ignored", "recv", "max-queued",
     [("fd.c", "if (f->recvq_max != 0 && f->recvq_bytes > f->recvq_max\n"
       "        && f->recv_op != NULL)", "if (0)")]),
    ("fin-watch-never-armed", "recv", "fin-watch",
     [("fd.c", "    if (!f->fin_watch || f->closed || f->fin_op != NULL || f->peer_fin",
       "    if (1 || f->closed || f->fin_op != NULL || f->peer_fin")]),
    ("fin-watch-not-reported", "recv", "fin-watch",
     [("fd.c", "        f->peer_fin = 1;\n        rp_notify(e, f, RP_EV_RECV, 0);",
       "        f->peer_fin = 1;")]),
    ("eof-not-reported", "recv", "eof",
     [("fd.c", "        f->recv_status = 1;\n        f->recv_want = 0;\n        notify = true;",
       "        f->recv_status = 1;\n        f->recv_want = 0;")]),
    ("released-buffer-not-returned", "recv", "take",
     [("fd.c", "    rp_buf_recycle(e, token - 1);\n}", "    (void) e;\n}")]),
    ("byte-lost-per-buffer", "recv", "copy-64",
     [("fd.c", "            m->len = (uint32_t) res;",
       "            m->len = (uint32_t) res - (res > 1000);")]),
    ("two-sends-in-flight", "send", "",
     [("fd.c", "if (f->send_op == NULL && f->sendq_head != NULL && f->send_err == 0)",
       "if (f->sendq_head != NULL && f->send_err == 0)"),
      ("fd.c", "if (!f->send_dirty && f->send_op == NULL) {",
       "if (!f->send_dirty) {")]),
    ("done-called-before-sent", "send", "8mib-small-sndbuf-ref",
     [("fd.c", "        last->done = done;\n        last->arg = arg;",
       "        if (done) done(arg);")]),
    ("copy-mode-does-not-copy", "send", "copy",
     [("fd.c", "                memcpy(s->data + s->len, p, n);",
       "                memset(s->data + s->len, 0, n);")]),
    ("close-socket-left-open", "close", "engine-closes-at-once",
     [("fd.c", "        rp_os_close(f->fd);\n    }\n\n    rp_fd_maybe_free(e, f);",
       "    }\n\n    rp_fd_maybe_free(e, f);")]),
    ("close-flush-ignored", "close", "flush-4mib",
     [("fd.c", "flush = (flags & RP_CLOSE_FLUSH) && f->sendq_bytes > 0\n"
       "            && f->send_err == 0;", "flush = 0;")]),
    ("completions-routed-by-fd-number", "fd-reuse", "in-callback",
     [("fd.c", "void\nrp_fd_complete(rp_engine_t *e, const rp_done_t *d)\n"
       "{\n    rp_op_t  *op = d->op;\n    rp_fd_t  *f = op->fd;",
       "void\nrp_fd_complete(rp_engine_t *e, const rp_done_t *d)\n"
       "{\n    rp_op_t  *op = d->op;\n    rp_fd_t  *f = op->fd, *g;\n"
       "    for (g = e->fds; g != NULL; g = g->next) {\n"
       "        if (!g->closed && g->fd == op->fd->fd) { f = g; op->fd = g; break; }\n"
       "    }")]),
    ("ring-not-restricted", "restrict", "",
     [("uring.c", "        rc = rp_restrict(u, why, why_len);",
       "        rc = rp_register(u, IORING_REGISTER_ENABLE_RINGS, NULL, 0);")]),
    ("forget-submits-on-shared-ring", "fork", "",
     [("engine.c", "    rp_fd_drop_all(e, false);\n    rp_bufs_meta_free(e);",
       "    rp_engine_destroy(e); return;\n    rp_bufs_meta_free(e);")]),
]


def build(name, edits, extra):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(TOP, "core"), os.path.join(d, "core"))
    for fname, old, new in edits:
        p = os.path.join(d, "core", fname)
        src = open(p).read()
        if old not in src:
            return None
        open(p, "w").write(src.replace(old, new, 1))
    objs = []
    for c in ("engine.c", "fd.c", "bufs.c", "uring.c", "os-posix.c"):
        o = os.path.join(d, c[:-2] + ".o")
        subprocess.run(["cc"] + CFLAGS + extra + ["-fPIC", "-I" + os.path.join(d, "core"),
                        "-c", "-o", o, os.path.join(d, "core", c)], check=True)
        objs.append(o)
    lib = os.path.join(d, "libringplug.a")
    subprocess.run(["ar", "rcs", lib] + objs, check=True)
    return d, lib


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    weak = 0
    for name, test, case, edits in MUTANTS:
        if only not in name:
            continue
        extra = TEST_BUILD.get(test, [])
        built = build(name, edits, extra)
        if built is None:
            print("stale       %s: the text to break is gone from core/" % name)
            continue
        d, lib = built
        exe = os.path.join(d, "test-" + test)
        subprocess.run(["cc"] + CFLAGS + extra + ["-I" + os.path.join(d, "core"),
                        "-I" + os.path.join(TOP, "tests", "core"), "-o", exe,
                        os.path.join(TOP, "tests", "core", "test-%s.c" % test),
                        lib, "-luring", "-lpthread"], check=True)
        env = dict(os.environ, RP_RESULTS="", RP_TEST_PREFIX="mutant")
        r = subprocess.run([exe] + ([case] if case else []), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=180)
        fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL ")]
        if fails:
            print("caught      %s: %s" % (name, fails[0][:160]))
        else:
            weak += 1
            print("NOT CAUGHT  %s: test-%s %s passed with the feature broken"
                  % (name, test, case))
    return 1 if weak else 0


if __name__ == "__main__":
    sys.exit(main())
