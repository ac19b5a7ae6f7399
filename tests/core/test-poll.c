/*
 * Readiness mode: rp_poll().
 *
 * Multishot RP_IN fires again for each arrival and stays armed; one-shot
 * fires once and disarms; re-arming with a new mask replaces the old poll
 * and drops its late completions; events == 0 disarms; RP_RDHUP reports a
 * peer's shutdown, RP_ERR/RP_HUP a reset; non-sockets (pipes) work too.
 */

#include "harness.h"

#define MAX_EV  64

typedef struct conn {
    rp_fd_t   *f;
    int        closed;
    int        n;
    unsigned   ev[MAX_EV];
} conn_t;

static int  cb_bad;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    if (c == NULL || c->closed || c->f != f || ev != RP_EV_POLL || res < 0) {
        cb_bad++;
        return;
    }
    if (c->n < MAX_EV) {
        c->ev[c->n] = (unsigned) res;
    }
    c->n++;
}

typedef struct fixture {
    rp_engine_t  *e;
    conn_t        c;
    int           lfd, fd, peer;
} fixture_t;

static int
setup(fixture_t *x)
{
    memset(x, 0, sizeof(*x));
    x->lfd = x->fd = x->peer = -1;
    cb_bad = 0;
    x->e = t_engine(32, 0, RP_NO_BUFFERS, 0, on_event);
    if (x->e == NULL) {
        return -1;
    }
    x->lfd = t_listen();
    if (x->lfd < 0 || t_pair(x->lfd, &x->fd, &x->peer) < 0) {
        t_set(T_FAIL, "loopback pair: %s", strerror(errno));
        return -1;
    }
    x->c.f = rp_fd_open(x->e, x->fd, &x->c);
    if (x->c.f == NULL) {
        t_set(T_FAIL, "rp_fd_open: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void
teardown(fixture_t *x)
{
    if (x->c.f != NULL) {
        rp_fd_close(x->e, x->c.f, 0);
        x->c.closed = 1;
    }
    t_close(&x->fd);
    t_close(&x->peer);
    t_close(&x->lfd);
    if (x->e != NULL) {
        rp_engine_destroy(x->e);
    }
}

typedef struct want {
    conn_t  *c;
    int      n;
} want_t;

static int
more_events(void *arg)
{
    want_t  *w = arg;

    return w->c->n >= w->n;
}

/* Run passes until c has at least n events or ms pass; returns c->n. */
static int
until_events(rp_engine_t *e, conn_t *c, int n, int ms)
{
    want_t  w = { c, n };

    (void) t_loop(e, more_events, &w, 5, ms);
    return c->n;
}

static void
drain_fd(int fd)
{
    char  buf[4096];

    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

static void
case_multishot(void)
{
    fixture_t  x;
    int        i, rc;

    if (setup(&x) < 0) {
        goto out;
    }
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(rp_poll_armed(x.c.f) == RP_IN, "armed 0x%x", rp_poll_armed(x.c.f));
    rc = t_spin(x.e, 10);
    CHECK(x.c.n == 0, "%d events before any data", x.c.n);

    for (i = 1; i <= 5; i++) {
        CHECK(send(x.peer, "x", 1, 0) == 1, "send");
        CHECK(until_events(x.e, &x.c, i, 1000) >= i, "arrival %d: no RP_IN "
            "(%d events)", i, x.c.n);
        CHECK(x.c.ev[i - 1] & RP_IN, "event %d mask 0x%x", i, x.c.ev[i - 1]);
        drain_fd(x.fd);
        CHECK(rp_poll_armed(x.c.f) == RP_IN, "multishot poll disarmed "
            "after firing (0x%x)", rp_poll_armed(x.c.f));
    }
    rc = t_spin(x.e, 30);
    CHECK(x.c.n == 5, "%d events for 5 arrivals (fired without data?)",
        x.c.n);
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    teardown(&x);
}

static void
case_oneshot(void)
{
    fixture_t  x;
    int        rc;

    if (setup(&x) < 0) {
        goto out;
    }
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_ONESHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(send(x.peer, "x", 1, 0) == 1, "send");
    CHECK(until_events(x.e, &x.c, 1, 1000) == 1, "no RP_IN");
    CHECK(x.c.ev[0] & RP_IN, "mask 0x%x", x.c.ev[0]);
    CHECK(rp_poll_armed(x.c.f) == 0, "one-shot poll still armed (0x%x) "
        "after firing", rp_poll_armed(x.c.f));

    /* Not read, more arrives: a one-shot poll stays quiet. */
    CHECK(send(x.peer, "y", 1, 0) == 1, "send");
    rc = t_spin(x.e, 50);
    CHECK(x.c.n == 1, "one-shot poll fired %d times", x.c.n);

    /* Re-armed (level-triggered use): data is still there, fires again. */
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_ONESHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(until_events(x.e, &x.c, 2, 1000) == 2, "re-armed one-shot poll "
        "did not fire for unread data");
    rc = t_spin(x.e, 20);
    CHECK(x.c.n == 2, "%d events", x.c.n);
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    teardown(&x);
}

static void
case_rearm_mask(void)
{
    fixture_t  x;
    int        rc, i, n0;

    if (setup(&x) < 0) {
        goto out;
    }
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    rc = rp_engine_wait(x.e, 0);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    CHECK(x.c.n == 0, "event before data");

    /* RP_IN becomes ready, and before the host sees it, it switches to
       RP_OUT: the old poll's completion must not be reported. */
    CHECK(send(x.peer, "x", 1, 0) == 1, "send");
    usleep(5000);
    rc = rp_poll(x.e, x.c.f, RP_OUT, RP_POLL_ONESHOT);
    CHECK(rc == 0, "rp_poll(RP_OUT): %s", strerror(-rc));
    CHECK(rp_poll_armed(x.c.f) == RP_OUT, "armed 0x%x after re-arm",
        rp_poll_armed(x.c.f));
    CHECK(until_events(x.e, &x.c, 1, 1000) >= 1, "no RP_OUT");
    rc = t_spin(x.e, 30);
    for (i = 0; i < x.c.n; i++) {
        CHECK(!(x.c.ev[i] & RP_IN), "event %d after re-arm to RP_OUT has "
            "RP_IN (0x%x): the replaced poll's completion leaked", i,
            x.c.ev[i]);
    }
    CHECK(x.c.n == 1 && (x.c.ev[0] & RP_OUT), "%d events, first 0x%x",
        x.c.n, x.c.ev[0]);

    /* Both bits at once. */
    n0 = x.c.n;
    rc = rp_poll(x.e, x.c.f, RP_IN | RP_OUT, RP_POLL_ONESHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(until_events(x.e, &x.c, n0 + 1, 1000) == n0 + 1, "no event");
    CHECK((x.c.ev[n0] & (RP_IN | RP_OUT)) == (RP_IN | RP_OUT), "mask 0x%x, "
        "want RP_IN|RP_OUT", x.c.ev[n0]);
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    teardown(&x);
}

static void
case_disarm(void)
{
    fixture_t   x;
    rp_stats_t  st0, st;
    int         rc;

    if (setup(&x) < 0) {
        goto out;
    }
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    rc = rp_engine_wait(x.e, 0);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    rp_engine_stats(x.e, &st0);

    rc = rp_poll(x.e, x.c.f, 0, 0);
    CHECK(rc == 0, "rp_poll(0): %s", strerror(-rc));
    CHECK(rp_poll_armed(x.c.f) == 0, "armed 0x%x after disarm",
        rp_poll_armed(x.c.f));
    CHECK(send(x.peer, "x", 1, 0) == 1, "send");
    rc = t_spin(x.e, 50);
    CHECK(x.c.n == 0, "%d events after disarming", x.c.n);
    rp_engine_stats(x.e, &st);
    CHECK(st.cancels > st0.cancels, "no cancel submitted for the disarmed "
        "poll");

    /* Armed again, it sees the data that arrived meanwhile. */
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(until_events(x.e, &x.c, 1, 1000) == 1, "no RP_IN after re-arm");
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    teardown(&x);
}

static void
case_rdhup(void)
{
    fixture_t  x;
    int        rc, i, seen = 0;

    if (setup(&x) < 0) {
        goto out;
    }
    rc = rp_poll(x.e, x.c.f, RP_IN | RP_RDHUP, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    rc = rp_engine_wait(x.e, 0);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    shutdown(x.peer, SHUT_WR);
    CHECK(until_events(x.e, &x.c, 1, 1000) >= 1, "no event for shutdown");
    for (i = 0; i < x.c.n && i < MAX_EV; i++) {
        seen |= x.c.ev[i];
    }
    CHECK(seen & RP_RDHUP, "peer shut down, events 0x%x lack RP_RDHUP",
        seen);
    CHECK(!(seen & RP_OUT), "RP_OUT reported though not asked (0x%x)", seen);
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    teardown(&x);
}

static void
case_reset(void)
{
    fixture_t      x;
    struct linger  lg = { 1, 0 };
    int            rc, i, seen = 0;

    if (setup(&x) < 0) {
        goto out;
    }
    rc = rp_poll(x.e, x.c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    rc = rp_engine_wait(x.e, 0);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    setsockopt(x.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(x.peer);
    x.peer = -1;
    CHECK(until_events(x.e, &x.c, 1, 1000) >= 1, "no event for a reset");
    for (i = 0; i < x.c.n && i < MAX_EV; i++) {
        seen |= x.c.ev[i];
    }
    CHECK(seen & (RP_ERR | RP_HUP), "peer reset, events 0x%x lack "
        "RP_ERR/RP_HUP", seen);
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    teardown(&x);
}

#ifdef _WIN32
/*
 * Windows: readiness is the AFD poll, for sockets only.  A pipe gets
 * -EOPNOTSUPP from rp_poll() (the host keeps it on its own loop) and is
 * left unarmed.
 */
static void
case_pipe(void)
{
    rp_engine_t  *e;
    conn_t        c;
    HANDLE        r = NULL, w = NULL;
    int           rc;

    memset(&c, 0, sizeof(c));
    cb_bad = 0;
    e = t_engine(16, 0, 16, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    CHECK(CreatePipe(&r, &w, NULL, 0), "CreatePipe: error %lu",
        GetLastError());
    c.f = rp_fd_open(e, (rp_socket_t) (uintptr_t) r, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    rc = rp_poll(e, c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == -EOPNOTSUPP, "rp_poll on a pipe: %d (%s), want -EOPNOTSUPP",
        rc, strerror(-rc));
    CHECK(rp_poll_armed(c.f) == 0, "armed 0x%x after -EOPNOTSUPP",
        rp_poll_armed(c.f));
    CHECK(t_spin(e, 20) >= 0, "wait");
    CHECK(c.n == 0 && cb_bad == 0, "%d events, %d bad callbacks", c.n,
        cb_bad);

out:
    if (c.f != NULL) {
        rp_fd_close(e, c.f, 0);
        c.closed = 1;
    }
    if (r != NULL) {
        CloseHandle(r);
        CloseHandle(w);
    }
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}
#else
static void
case_pipe(void)
{
    rp_engine_t  *e;
    conn_t        c;
    int           p[2] = { -1, -1 }, rc;

    memset(&c, 0, sizeof(c));
    cb_bad = 0;
    e = t_engine(16, 0, 16, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, "pipe");
    c.f = rp_fd_open(e, p[0], &c);
    CHECK(c.f != NULL, "rp_fd_open");
    rc = rp_poll(e, c.f, RP_IN, RP_POLL_MULTISHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(write(p[1], "x", 1) == 1, "write");
    CHECK(until_events(e, &c, 1, 1000) == 1, "no RP_IN on a pipe");
    close(p[1]);
    p[1] = -1;
    CHECK(until_events(e, &c, 2, 1000) >= 2, "no event for the closed "
        "write end");
    CHECK(c.ev[1] & RP_HUP, "mask 0x%x lacks RP_HUP", c.ev[1]);
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    if (c.f != NULL) {
        rp_fd_close(e, c.f, 0);
        c.closed = 1;
    }
    t_close(&p[0]);
    t_close(&p[1]);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}
#endif

/*
 * Readiness first, then completion mode on the same handle (a server that
 * peeks at the first bytes itself, then hands the stream over): the bytes
 * the host did not read itself arrive through the engine, in order.
 */
typedef struct both {
    conn_t  c;
    int     recv_ready;
} both_t;

static void
on_both(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    both_t  *b = data;

    if (ev == RP_EV_RECV) {
        if (b == NULL || b->c.closed || b->c.f != f) {
            cb_bad++;
        } else {
            b->recv_ready = 1;
        }
        return;
    }
    on_event(e, f, &b->c, ev, res);
}

static void
case_switch_mode(void)
{
    rp_engine_t  *e;
    both_t        b;
    uint8_t       buf[65536], got[65536];
    size_t        have = 0, n;
    int           lfd = -1, fd = -1, peer = -1, rc, i;

    memset(&b, 0, sizeof(b));
    cb_bad = 0;
    e = t_engine(32, 0, 64, 4096, on_both);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");
    b.c.f = rp_fd_open(e, fd, &b);
    CHECK(b.c.f != NULL, "rp_fd_open");
    t_pat_fill(77, 0, buf, sizeof(buf));

    rc = rp_poll(e, b.c.f, RP_IN, RP_POLL_ONESHOT);
    CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    CHECK(send(peer, buf, 1000, 0) == 1000, "send");
    CHECK(until_events(e, &b.c, 1, 1000) == 1, "no RP_IN");
    /* The host reads a little itself (a protocol sniff)... */
    CHECK(recv(fd, got, 100, 0) == 100, "host recv");
    have = 100;
    /* ...then hands the rest of the stream to the engine. */
    rc = rp_poll(e, b.c.f, 0, 0);
    CHECK(rc == 0, "rp_poll(0): %s", strerror(-rc));
    rc = rp_recv_start(e, b.c.f, 0);
    CHECK(rc == 0, "rp_recv_start: %s", strerror(-rc));
    CHECK(send(peer, buf + 1000, sizeof(buf) - 1000, 0)
          == (ssize_t) (sizeof(buf) - 1000), "send");
    for (i = 0; i < 300 && have < sizeof(buf); i++) {
        rc = rp_engine_wait(e, 10);
        CHECK(rc >= 0, "wait: %s", strerror(-rc));
        if (b.recv_ready) {
            b.recv_ready = 0;
            while ((n = rp_recv_copy(e, b.c.f, got + have,
                                     sizeof(got) - have)) > 0)
            {
                have += n;
            }
        }
    }
    CHECK(have == sizeof(buf), "got %zu of %zu bytes", have, sizeof(buf));
    CHECK(t_pat_check(77, 0, got, have) == -1, "bytes out of order at %ld "
        "after the switch", t_pat_check(77, 0, got, have));
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    if (b.c.f != NULL) {
        rp_fd_close(e, b.c.f, 0);
    }
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("poll/multishot-in-repeats", case_multishot, 10);
    t_run("poll/oneshot-fires-once", case_oneshot, 10);
    t_run("poll/rearm-new-mask-drops-old", case_rearm_mask, 10);
    t_run("poll/events-0-disarms", case_disarm, 10);
    t_run("poll/rdhup-on-peer-shutdown", case_rdhup, 10);
    t_run("poll/err-hup-on-peer-reset", case_reset, 10);
#ifdef _WIN32
    t_run("poll/pipe-not-a-socket-eopnotsupp", case_pipe, 10);
#else
    t_run("poll/pipe", case_pipe, 10);
#endif
    t_run("poll/switch-to-completion-mode", case_switch_mode, 10);
    return t_exit_code();
}
