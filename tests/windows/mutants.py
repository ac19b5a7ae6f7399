#!/usr/bin/env python3
"""Check that the RIO stand-in's tests are honest: for each rule the
stand-in enforces, build it with that one rule muted (-DRPSTANDIN_MUTE=R_...:
the call then returns RIO's documented error instead of ending the process)
and see that every breach case of that rule stops passing; for each
behaviour the positive cases rely on (one notification per RIONotify,
RIO_MSG_DEFER held until the commit, charges kept until the dequeue, ...),
break it in a copy of rio-standin.c and see that the case covering it fails.

    tests/windows/mutants.py OUT_DIR CC [CFLAG...]

Run by tests/windows/run.sh under Wine (WINEPREFIX etc. already set):
appends "PASS rio-standin/mutant/NAME (...)" for a mutant caught,
"FAIL rio-standin/mutant/NAME (NOT CAUGHT ...)" for one the cases miss, and
a FAIL for a mutant whose text is no longer in rio-standin.c (stale) to
$RP_RESULTS.  Builds are kept and redone only when a source changes.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SOURCES = [os.path.join(HERE, f) for f in
           ("rio-standin-test.c", "rio-standin.c", "rio-standin.h")] + \
          [os.path.join(TOP, "core", "win", "rio.h")]
WINE64 = "/usr/lib/wine/wine64"
BREACH_EXIT = 86

# breach case -> the rule that must catch it
BREACHES = {
    "buffer-id": "R_BUFFER_ID",
    "buffer-id-stale": "R_BUFFER_ID",
    "buffer-range": "R_BUFFER_RANGE",
    "buffer-overlap": "R_BUFFER_OVERLAP",
    "recv-depth": "R_RECV_DEPTH",
    "send-depth": "R_SEND_DEPTH",
    "send-depth-until-dequeued": "R_SEND_DEPTH",
    "cq-capacity": "R_CQ_CAPACITY",
    "cq-capacity-one": "R_CQ_CAPACITY",
    "cq-capacity-resize": "R_CQ_CAPACITY",
    "cq-size": "R_CQ_SIZE",
    "notify-pending": "R_NOTIFY_PENDING",
    "notify-setup": "R_NOTIFY_SETUP",
    "rq-threads": "R_RQ_THREADS",
    "cq-threads": "R_CQ_THREADS",
    "socket-flag": "R_SOCKET_FLAG",
    "deregister-in-use": "R_DEREGISTER_IN_USE",
    "cq-close-in-use": "R_CQ_CLOSE_IN_USE",
    "rq-handle": "R_RQ_HANDLE",
    "cq-handle": "R_CQ_HANDLE",
    "args-commit": "R_ARGS",
    "args-flags": "R_ARGS",
}

# name, case that must fail, [(text in rio-standin.c, replacement), ...]
BEHAVIOURS = [
    ("notify-on-every-completion", "notify",
     [("        if (cq->armed)\n            cq_fire(cq);",
       "        cq_fire(cq);")]),
    ("notify-never-at-once", "notify",
     [("    if (cq->notifiable)\n        cq_fire(cq);\n    else\n"
       "        cq->armed = 1;",
       "    cq->armed = 1;")]),
    ("dont-notify-ignored", "notify",
     [("    req->notify = !(flags & RIO_MSG_DONT_NOTIFY);",
       "    req->notify = 1;")]),
    ("event-never-set", "notify-event",
     [("        SetEvent(cq->nc.Event.EventHandle);", "        (void) 0;")]),
    ("resize-rq-ignored", "resize",
     [("        rq->max[DIR_RECV] = max_recv;\n"
       "        rq->max[DIR_SEND] = max_send;\n        ok = TRUE;",
       "        ok = TRUE;")]),
    ("defer-issued-at-once", "defer",
     [("    if (!(flags & RIO_MSG_DEFER))\n        rq_commit(rq, dir);",
       "    rq_commit(rq, dir);")]),
    ("commit-only-commits-nothing", "defer",
     [("        rq_commit(rq, dir);\n        return -1;\n    }",
       "        return -1;\n    }")]),
    ("charge-released-at-completion", "breach-send-depth-until-dequeued",
     [("    cq->tail = &req->next;\n    cq->count++;",
       "    cq->tail = &req->next;\n    cq->count++;\n"
       "    req->rq->out[req->dir]--;"),
      ("    rq->out[req->dir]--;\n    for (pp", "    for (pp")]),
    ("closed-queue-keeps-its-entries", "close",
     [("        rq->dead = 1;\n"
       "        rq->cq[DIR_RECV]->charged -= rq->max[DIR_RECV];\n"
       "        rq->cq[DIR_SEND]->charged -= rq->max[DIR_SEND];\n    }\n}",
       "        rq->dead = 1;\n    }\n}")]),
]


def rule_name(enum):
    return enum[2:].lower().replace("_", "-")


def stale(out, inputs):
    newest = max(os.path.getmtime(f) for f in inputs)
    return not os.path.exists(out) or os.path.getmtime(out) < newest


def compile_(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return (p.stderr or "failed") if p.returncode else None


def build(out, cc, cflags, src, defines):
    """The test program (compiled once) linked with one stand-in."""
    inc = ["-I" + os.path.join(TOP, "core", "win"), "-I" + HERE]
    obj = os.path.join(os.path.dirname(out), "rio-standin-test.o")
    if stale(obj, SOURCES):
        err = compile_([cc] + cflags + inc + ["-c", "-o", obj,
                       os.path.join(HERE, "rio-standin-test.c")])
        if err:
            return err
    if not stale(out, SOURCES + [src, obj]):
        return None
    return compile_([cc] + cflags + defines + inc + ["-o", out, obj, src,
                    "-lws2_32"])


def run(exe, case):
    """Output through a file: Wine's services may hold a pipe open."""
    log = exe + "." + case + ".log"
    with open(log, "w") as f:
        try:
            rc = subprocess.run(["timeout", "60", WINE64, exe, case],
                                stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT).returncode
        except OSError as e:
            return 127, str(e)
    with open(log, errors="replace") as f:
        return rc, f.read().replace("\r", "")


def passes(case, rc, out):
    if case.startswith("breach-"):
        rule = rule_name(BREACHES[case[len("breach-"):]])
        return rc == BREACH_EXIT and "[%s]" % rule in out
    return rc == 0


def last_line(out):
    lines = [l for l in out.splitlines() if l.strip()]
    return lines[-1] if lines else "no output"


def record(res, line):
    print(line)
    with open(res, "a") as f:
        f.write(line + "\n")


def main():
    out_dir, cc, cflags = sys.argv[1], sys.argv[2], sys.argv[3:]
    res = os.environ.get("RP_RESULTS", "/dev/stdout")
    os.makedirs(out_dir, exist_ok=True)
    standin = os.path.join(HERE, "rio-standin.c")
    text = open(standin).read()

    for rule in sorted(set(BREACHES.values())):
        name = "mute-" + rule_name(rule)
        exe = os.path.join(out_dir, name + ".exe")
        err = build(exe, cc, cflags, standin, ["-DRPSTANDIN_MUTE=" + rule])
        if err:
            record(res, "FAIL rio-standin/mutant/%s (build: %s)"
                   % (name, last_line(err)))
            continue
        for case in sorted(c for c, r in BREACHES.items() if r == rule):
            rc, out = run(exe, "breach-" + case)
            if passes("breach-" + case, rc, out):
                record(res, "FAIL rio-standin/mutant/%s/%s (NOT CAUGHT: the "
                       "case passes with the rule muted)" % (name, case))
            else:
                record(res, "PASS rio-standin/mutant/%s/%s (caught: exit %d, "
                       "%s)" % (name, case, rc, last_line(out)))

    for name, case, edits in BEHAVIOURS:
        src = os.path.join(out_dir, name + ".c")
        mutated = text
        stale = [t for t, _ in edits if mutated.count(t) != 1]
        if stale:
            record(res, "FAIL rio-standin/mutant/%s (stale: the text to "
                   "break is not in rio-standin.c once: %r)"
                   % (name, stale[0][:60]))
            continue
        for t, r in edits:
            mutated = mutated.replace(t, r)
        if not os.path.exists(src) or open(src).read() != mutated:
            with open(src, "w") as f:
                f.write(mutated)
        exe = os.path.join(out_dir, name + ".exe")
        err = build(exe, cc, cflags, src, [])
        if err:
            record(res, "FAIL rio-standin/mutant/%s (build: %s)"
                   % (name, last_line(err)))
            continue
        rc, out = run(exe, case)
        if passes(case, rc, out):
            record(res, "FAIL rio-standin/mutant/%s (NOT CAUGHT: %s passes)"
                   % (name, case))
        else:
            record(res, "PASS rio-standin/mutant/%s (caught by %s: exit %d, "
                   "%s)" % (name, case, rc, last_line(out)))


if __name__ == "__main__":
    main()
