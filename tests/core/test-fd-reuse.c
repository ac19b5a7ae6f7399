/*
 * Generations: a completion for a closed handle never reaches the handle
 * that now has the same fd number.
 *
 * Each round closes handle A while its multishot receive is armed and its
 * peer is still sending, closes the fd, and at once accepts a new
 * connection, which gets the same fd number (the lowest free), and opens
 * handle B on it in the same pass.  B must see exactly its own stream, A no
 * callback after the close, and the engine must count the dropped
 * completions as stale.
 */

#include "harness.h"

static int  reused;             /* rounds in which B got A's number */

#if defined(_WIN32)
/*
 * Windows cannot put a socket on a chosen handle value (no dup3()).  Wine
 * gives a new handle the lowest free value, and its accept() holds a
 * temporary handle while it makes the socket: with a lower value free for
 * that one (the hole: an event made before the case's sockets, closed just
 * before the accept and made again after it), the accepted socket gets the
 * value A's socket had.  Each case checks that some rounds did.
 */
static HANDLE  hole;

#define HOLE_MAKE()  (hole = CreateEventA(NULL, FALSE, FALSE, NULL))
#define HOLE_OPEN()  (hole != NULL ? (void) CloseHandle(hole) : (void) 0)
#define HOLE_FREE()  HOLE_OPEN()
#define REUSED_ENOUGH()  (reused > 0)
#else
#define HOLE_MAKE()  ((void) 0)
#define HOLE_OPEN()  ((void) 0)
#define HOLE_FREE()  ((void) 0)
#define REUSED_ENOUGH()  1
#endif

/*
 * Completions of A dropped in the pass that switched to B.  io_uring's
 * include the cancel's own; Windows reports no cancel within the pass
 * (RIO has none, an overlapped cancel completes in a later wait), so there
 * any stale completion of the pass is one of A's data.
 */
#ifdef _WIN32
#define STALE_IN_PASS(st, st0)  ((st).stale > (st0).stale)
#else
#define STALE_IN_PASS(st, st0)  ((st).stale > (st0).stale + 1)
#endif

/*
 * Accept B and put it on fd number fa, A's, closed just before: B's fd,
 * -1 with errno set if the accept failed, -2 if dup3() did.
 */
static int
accept_b(int lfd, int fa, int *natural)
{
    int  fb;

    HOLE_OPEN();
    fb = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    HOLE_MAKE();
    if (fb < 0) {
        return -1;
    }
    if (fb == fa) {
        if (natural != NULL) {
            (*natural)++;
        }
        reused++;
        return fb;
    }
#ifndef _WIN32
    if (dup3(fb, fa, O_CLOEXEC) != fa) {
        close(fb);
        return -2;
    }
    close(fb);
    fb = fa;
    reused++;
#endif
    return fb;
}

#define ROUNDS  100
#define A_BYTES (64 * 1024)
#define B_BYTES (24 * 1024)

typedef struct conn {
    rp_fd_t   *f;
    uint64_t   seed;
    uint64_t   off;
    int        ready;
    int        eof;
    int        err;
    long       bad_at;
    int        closed;
} conn_t;

static int  cb_bad;

static void       (*hook)(conn_t *c);  /* runs inside the callback */

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    (void) res;
    if (c == NULL || c->closed || c->f != f || ev != RP_EV_RECV) {
        cb_bad++;
        return;
    }
    c->ready = 1;
    if (hook != NULL) {
        hook(c);
    }
}

static rp_engine_t  *eng;

static void
drain(conn_t *c)
{
    uint8_t  buf[8192];
    size_t   n;
    long     bad;

    c->ready = 0;
    while ((n = rp_recv_copy(eng, c->f, buf, sizeof(buf))) > 0) {
        bad = t_pat_check(c->seed, c->off, buf, n);
        if (bad >= 0 && c->bad_at < 0) {
            c->bad_at = (long) c->off + bad;
        }
        c->off += n;
    }
    if (rp_recv_status(c->f) == 1) {
        c->eof = 1;
    } else if (rp_recv_status(c->f) < 0) {
        c->err = rp_recv_status(c->f);
    }
}

static int
got_some(void *arg)
{
    conn_t  *c = arg;

    if (c->ready) {
        drain(c);
    }
    return c->off > 0 || c->bad_at >= 0 || c->err;
}

static int
got_eof(void *arg)
{
    conn_t  *c = arg;

    if (c->ready) {
        drain(c);
    }
    return c->eof || c->err;
}

static void
case_reuse(void)
{
    conn_t      a, b;
    rp_stats_t  st;
    uint8_t    *buf = malloc(A_BYTES);
    int         lfd = -1, fa = -1, pa = -1, fb = -1, pb = -1, rc, r;
    int         natural = 0;

    cb_bad = 0;
    reused = 0;
    HOLE_MAKE();
    eng = t_engine(64, 0, 64, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    CHECK(buf != NULL, "malloc");
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");

    for (r = 0; r < ROUNDS; r++) {
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        a.seed = 2 * r + 1;
        b.seed = 2 * r + 2;
        a.bad_at = b.bad_at = -1;

        CHECK(t_pair(lfd, &fa, &pa) == 0, "pair A");
        t_set_nonblock(pa, 1);
        a.f = rp_fd_open(eng, fa, &a);
        CHECK(a.f != NULL, "rp_fd_open A");
        rc = rp_recv_start(eng, a.f, 0);
        CHECK(rc == 0, "rp_recv_start A: %s", strerror(-rc));

        /* A's receive is flowing, and more is on its way. */
        t_pat_fill(a.seed, 0, buf, A_BYTES);
        CHECK(send(pa, buf, 4096, 0) == 4096, "send A");
        rc = t_loop(eng, got_some, &a, 5, 3000);
        CHECK(rc == 0, "round %d: A got nothing: %s", r, strerror(-rc));
        rc = send(pa, buf + 4096, A_BYTES - 4096, MSG_DONTWAIT);
        CHECK(rc > 0, "send A: %s", strerror(errno));

        /* B's connection waits in the accept queue. */
        pb = t_connect(lfd);
        CHECK(pb >= 0, "connect B");

        rp_fd_close(eng, a.f, 0);
        a.closed = 1;
        close(fa);
        fb = accept_b(lfd, fa, &natural);
        CHECK(fb != -2, "dup3");
        CHECK(fb >= 0, "accept B: %s", strerror(errno));
        fa = -1;

        b.f = rp_fd_open(eng, fb, &b);
        CHECK(b.f != NULL, "rp_fd_open B");
        rc = rp_recv_start(eng, b.f, 0);
        CHECK(rc == 0, "rp_recv_start B: %s", strerror(-rc));
        t_pat_fill(b.seed, 0, buf, B_BYTES);
        CHECK(send(pb, buf, B_BYTES, 0) == B_BYTES, "send B");
        shutdown(pb, SHUT_WR);

        rc = t_loop(eng, got_eof, &b, 5, 3000);
        CHECK(rc == 0, "round %d: no EOF on B: %s (got %llu)", r,
            strerror(-rc), (unsigned long long) b.off);
        CHECK(b.bad_at == -1, "round %d: B got a wrong byte at %ld "
            "(A's data?)", r, b.bad_at);
        CHECK(b.err == 0, "round %d: B error %s", r, strerror(-b.err));
        CHECK(b.off == B_BYTES, "round %d: B got %llu of %d bytes", r,
            (unsigned long long) b.off, B_BYTES);
        CHECK(cb_bad == 0, "round %d: %d callbacks for closed handle A", r,
            cb_bad);

        rp_fd_close(eng, b.f, 0);
        b.closed = 1;
        close(fb);
        fb = -1;
        close(pa);
        pa = -1;
        close(pb);
        pb = -1;
    }

    rc = t_spin(eng, 20);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    CHECK(cb_bad == 0, "%d callbacks for closed handles", cb_bad);
    rp_engine_stats(eng, &st);
    CHECK(st.stale > 0, "stats.stale 0 after %d closes with receives armed",
        ROUNDS);
    CHECK(st.bufs_in_use_now == 0, "stats.bufs_in_use_now %u",
        st.bufs_in_use_now);
    CHECK(rp_bufs_free(eng) == rp_bufs_total(eng), "rp_bufs_free %u of %u",
        rp_bufs_free(eng), rp_bufs_total(eng));
    t_diag("fd-reuse: %d rounds (%d reused the fd number by themselves, %d "
        "in all), stale %llu, cancels %llu", ROUNDS, natural, reused,
        (unsigned long long) st.stale, (unsigned long long) st.cancels);
    CHECK(REUSED_ENOUGH(), "no round of %d got A's handle value back for "
        "B: the case did not test reuse", ROUNDS);

out:
    HOLE_FREE();
    t_close(&fa);
    t_close(&fb);
    t_close(&pa);
    t_close(&pb);
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    free(buf);
}

/*
 * The host closes A from inside A's own RP_EV_RECV callback, and before
 * returning accepts a new connection (same fd number) and arms B: A's
 * other completions of that same batch are still to be handled, and must
 * not land on B.  This is what nginx does when a handler closes a
 * connection and the listener's accept runs in the same pass.
 */
static struct {
    conn_t  a, b;
    int     lfd, fa, fb;
    int     switched;
    int     err;
} cx;

static void
switch_in_callback(conn_t *c)
{
    uint8_t  buf[1024];
    size_t   n;

    if (c != &cx.a || cx.switched) {
        return;
    }
    cx.switched = 1;
    n = rp_recv_copy(eng, c->f, buf, sizeof(buf));
    if (n == 0 || t_pat_check(c->seed, 0, buf, n) >= 0) {
        cx.err = 1;
    }
    rp_fd_close(eng, c->f, 0);
    c->closed = 1;
    close(cx.fa);
    cx.fb = accept_b(cx.lfd, cx.fa, NULL);
    if (cx.fb < 0) {
        cx.err = cx.fb == -2 ? 3 : 2;
        cx.fb = -1;
        return;
    }
    cx.fa = -1;
    cx.b.f = rp_fd_open(eng, cx.fb, &cx.b);
    if (cx.b.f == NULL || rp_recv_start(eng, cx.b.f, 0) != 0) {
        cx.err = 4;
    }
}

static int
switched(void *arg)
{
    (void) arg;
    return cx.switched;
}

static void
case_reuse_in_callback(void)
{
    rp_stats_t  st0, st;
    uint8_t    *buf = malloc(A_BYTES);
    int         pa = -1, pb = -1, rc, r, in_batch = 0, later = 0;

    memset(&cx, 0, sizeof(cx));
    cx.lfd = cx.fa = cx.fb = -1;
    cb_bad = 0;
    reused = 0;
    HOLE_MAKE();
    hook = switch_in_callback;
    eng = t_engine(64, 0, 64, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    CHECK(buf != NULL, "malloc");
    cx.lfd = t_listen();
    CHECK(cx.lfd >= 0, "listen");

    for (r = 0; r < ROUNDS / 2; r++) {
        memset(&cx.a, 0, sizeof(cx.a));
        memset(&cx.b, 0, sizeof(cx.b));
        cx.switched = 0;
        cx.a.seed = 7000 + 2 * r;
        cx.b.seed = 7001 + 2 * r;
        cx.a.bad_at = cx.b.bad_at = -1;

        CHECK(t_pair(cx.lfd, &cx.fa, &pa) == 0, "pair A");
        cx.a.f = rp_fd_open(eng, cx.fa, &cx.a);
        CHECK(cx.a.f != NULL, "rp_fd_open A");
        CHECK(rp_recv_start(eng, cx.a.f, 0) == 0, "rp_recv_start A");
        rc = rp_engine_wait(eng, 0);
        CHECK(rc >= 0, "wait: %d", rc);
        pb = t_connect(cx.lfd);
        CHECK(pb >= 0, "connect B");

        /* 64 KiB into 4 KiB buffers: many completions for A at once. */
        t_pat_fill(cx.a.seed, 0, buf, A_BYTES);
        CHECK(send(pa, buf, A_BYTES, 0) == A_BYTES, "send A");
        usleep(2000);
        rp_engine_stats(eng, &st0);
        rc = t_loop(eng, switched, NULL, 10, 3000);
        CHECK(rc == 0, "round %d: A never reported data", r);
        CHECK(cx.err == 0, "round %d: switch step %d failed", r, cx.err);
        rp_engine_stats(eng, &st);
        in_batch += STALE_IN_PASS(st, st0);

        t_pat_fill(cx.b.seed, 0, buf, B_BYTES);
        CHECK(send(pb, buf, B_BYTES, 0) == B_BYTES, "send B");
        shutdown(pb, SHUT_WR);
        rc = t_loop(eng, got_eof, &cx.b, 5, 3000);
        CHECK(rc == 0, "round %d: no EOF on B: %s (got %llu)", r,
            strerror(-rc), (unsigned long long) cx.b.off);
        CHECK(cx.b.bad_at == -1, "round %d: B got a wrong byte at %ld "
            "(A's data from the same batch?)", r, cx.b.bad_at);
        CHECK(cx.b.off == B_BYTES, "round %d: B got %llu of %d bytes", r,
            (unsigned long long) cx.b.off, B_BYTES);
        CHECK(cb_bad == 0, "round %d: %d callbacks for closed A", r, cb_bad);
        rp_engine_stats(eng, &st);
        later += st.stale > st0.stale;

        rp_fd_close(eng, cx.b.f, 0);
        cx.b.closed = 1;
        close(cx.fb);
        cx.fb = -1;
        close(pa);
        pa = -1;
        close(pb);
        pb = -1;
    }
    /* Only meaningful if A really had more completions in the batch. */
#if defined(_WIN32) && !defined(RP_RIO_STANDIN)
    /* Windows' overlapped path has one receive of A in flight: nothing of
       A can follow it in the batch.  What can come is that receive,
       cancelled, in a later pass, and it must not land on B either. */
    CHECK(later > 0, "no round had a completion of A after the switch: "
        "the case did not test what it should");
#else
    CHECK(in_batch > 0, "no round had stale completions of A after the "
        "switch: the case did not test what it should");
#endif
    t_diag("fd-reuse/in-callback: %d of %d rounds dropped A's completions "
        "from the same pass, %d from any pass, %d reused A's fd number",
        in_batch, ROUNDS / 2, later, reused);
    CHECK(REUSED_ENOUGH(), "no round of %d got A's handle value back for "
        "B: the case did not test reuse", ROUNDS / 2);

out:
    HOLE_FREE();
    hook = NULL;
    t_close(&cx.fa);
    t_close(&cx.fb);
    t_close(&pa);
    t_close(&pb);
    t_close(&cx.lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
    free(buf);
}

/*
 * The same for readiness mode: a poll armed on A with data pending must not
 * fire for B.  B polls for RP_IN and its peer sends nothing, so any event
 * on B is A's.
 */
typedef struct pconn {
    rp_fd_t  *f;
    int       closed;
    int       events;
} pconn_t;

static void
on_poll(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    pconn_t  *c = data;

    (void) e;
    (void) res;
    if (c == NULL || c->closed || c->f != f || ev != RP_EV_POLL) {
        cb_bad++;
        return;
    }
    c->events++;
}

static void
case_reuse_poll(void)
{
    rp_engine_t  *e;
    pconn_t       a, b;
    int           lfd = -1, fa = -1, pa = -1, fb = -1, pb = -1, rc, r;

    cb_bad = 0;
    reused = 0;
    HOLE_MAKE();
    e = t_engine(64, 0, RP_NO_BUFFERS, 0, on_poll);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");

    for (r = 0; r < ROUNDS; r++) {
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        CHECK(t_pair(lfd, &fa, &pa) == 0, "pair A");
        a.f = rp_fd_open(e, fa, &a);
        CHECK(a.f != NULL, "rp_fd_open A");
        rc = rp_poll(e, a.f, RP_IN, RP_POLL_MULTISHOT);
        CHECK(rc == 0, "rp_poll A: %s", strerror(-rc));
        rc = rp_engine_wait(e, 0);
        CHECK(rc >= 0, "wait: %s", strerror(-rc));
        /* Data arrives for A: its poll completion is pending now. */
        CHECK(send(pa, "x", 1, 0) == 1, "send A");
        pb = t_connect(lfd);
        CHECK(pb >= 0, "connect B");

        rp_fd_close(e, a.f, 0);
        a.closed = 1;
        close(fa);
        fb = accept_b(lfd, fa, NULL);
        CHECK(fb != -2, "dup3");
        CHECK(fb >= 0, "accept B");
        fa = -1;
        b.f = rp_fd_open(e, fb, &b);
        CHECK(b.f != NULL, "rp_fd_open B");
        rc = rp_poll(e, b.f, RP_IN, RP_POLL_MULTISHOT);
        CHECK(rc == 0, "rp_poll B: %s", strerror(-rc));
        rc = t_spin(e, 10);
        CHECK(rc >= 0, "wait: %s", strerror(-rc));
        CHECK(cb_bad == 0, "round %d: callback for closed handle A", r);
        CHECK(b.events == 0, "round %d: B got %d poll events though its peer "
            "sent nothing (A's completion delivered to B)", r, b.events);

        rp_fd_close(e, b.f, 0);
        b.closed = 1;
        close(fb);
        fb = -1;
        close(pa);
        pa = -1;
        close(pb);
        pb = -1;
    }
    CHECK(REUSED_ENOUGH(), "no round of %d got A's handle value back for "
        "B: the case did not test reuse", ROUNDS);

out:
    HOLE_FREE();
    t_close(&fa);
    t_close(&fb);
    t_close(&pa);
    t_close(&pb);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("fd-reuse/recv", case_reuse, 60);
    t_run("fd-reuse/recv-close-and-reopen-in-callback",
        case_reuse_in_callback, 60);
    t_run("fd-reuse/poll", case_reuse_poll, 30);
    return t_exit_code();
}
