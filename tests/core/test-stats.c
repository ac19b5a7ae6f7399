/*
 * Counters and self-description.
 *
 * One connection, step by step, checking that each counter moves when (and
 * only as much as) it should: waits per call, sqes/enters when something
 * was submitted, cqes/recv_bytes/send_bytes per completion, buffers in use
 * while the host holds data and back to 0 after, fds open, cancels at close.
 * rp_stats_format() gives one bounded line; the engine names and describes
 * itself.
 */

#include "harness.h"

#ifdef _WIN32
#define ENGINE_NAME  "rio"
#else
#define ENGINE_NAME  "io_uring"
#endif

/* Requests one armed receive makes: RIO keeps two receives posted per
   request queue (core/win/rio.c), io_uring and overlapped I/O one. */
#ifdef RP_RIO_STANDIN
#define RECV_REQUESTS  2
#else
#define RECV_REQUESTS  1
#endif

typedef struct conn {
    rp_fd_t  *f;
    int       closed;
    int       ready;
    int       sent;
} conn_t;

static int  cb_bad;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    if (c == NULL || c->closed || c->f != f) {
        cb_bad++;
        return;
    }
    if (ev == RP_EV_RECV) {
        c->ready = 1;
    } else if (ev == RP_EV_SEND && res > 0) {
        c->sent += res;
    }
}

static int
is_ready(void *arg)
{
    return ((conn_t *) arg)->ready;
}

static int
is_sent(void *arg)
{
    return ((conn_t *) arg)->sent == 300;
}

static void
case_counters(void)
{
    rp_engine_t  *e;
    conn_t        c;
    rp_stats_t    a, b;
    const void   *p;
    size_t        len;
    uint32_t      tok;
    char          buf[512];
    int           lfd = -1, fd = -1, peer = -1, rc, i;

    memset(&c, 0, sizeof(c));
    cb_bad = 0;
    e = t_engine(16, 0, 16, 256, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");

    rp_engine_stats(e, &a);
    CHECK(a.fds_open_now == 0 && a.bufs_in_use_now == 0 && a.cqes == 0
        && a.recv_bytes == 0, "fresh engine has counts: cqes %llu fds %u "
        "bufs %u", (unsigned long long) a.cqes, a.fds_open_now,
        a.bufs_in_use_now);
    CHECK(rp_bufs_total(e) == 16 && rp_bufs_free(e) == 16, "bufs %u/%u, "
        "asked for 16", rp_bufs_free(e), rp_bufs_total(e));

    /* Idle waits: waits moves, nothing else that means work. */
    for (i = 0; i < 3; i++) {
        CHECK(rp_engine_wait(e, 0) == 0, "idle wait");
    }
    rp_engine_stats(e, &b);
    CHECK(b.waits == a.waits + 3, "waits %llu -> %llu for 3 calls",
        (unsigned long long) a.waits, (unsigned long long) b.waits);
    CHECK(b.sqes == a.sqes && b.cqes == a.cqes, "idle waits moved sqes/cqes");

    c.f = rp_fd_open(e, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    rp_engine_stats(e, &a);
    CHECK(a.fds_open_now == 1, "fds_open_now %u with one open",
        a.fds_open_now);
    CHECK((int) rp_fd_fileno(c.f) == fd && rp_fd_data(c.f) == &c,
        "fileno/data");

    CHECK(rp_recv_start(e, c.f, 0) == 0, "rp_recv_start");
    CHECK(rp_recv_start(e, c.f, 0) == 0, "second rp_recv_start (no-op)");
    CHECK(rp_engine_wait(e, 0) >= 0, "wait");
    rp_engine_stats(e, &b);
    CHECK(b.sqes == a.sqes + RECV_REQUESTS, "sqes moved by %llu for one "
        "armed receive (armed twice: the second must be a no-op)",
        (unsigned long long) (b.sqes - a.sqes));
    CHECK(b.enters > a.enters, "enters did not move for a submit");

    /* 1000 bytes into 256-byte buffers: 4 buffers held by the queue. */
    memset(buf, 'a', sizeof(buf));
    CHECK(send(peer, buf, 500, 0) == 500 && send(peer, buf, 500, 0) == 500,
        "send");
    a = b;
    rc = t_loop(e, is_ready, &c, 10, 2000);
    CHECK(rc == 0, "no RP_EV_RECV");
    for (i = 0; i < 20 && rp_recv_queued(c.f) < 1000; i++) {
        rp_engine_wait(e, 5);
    }
    CHECK(rp_recv_queued(c.f) == 1000, "%zu queued", rp_recv_queued(c.f));
    rp_engine_stats(e, &b);
    CHECK(b.recv_bytes == 1000, "recv_bytes %llu", (unsigned long long)
        b.recv_bytes);
    CHECK(b.cqes >= a.cqes + 4, "cqes moved by %llu for 4 buffers",
        (unsigned long long) (b.cqes - a.cqes));
    CHECK(b.bufs_in_use_now == 4, "bufs_in_use_now %u with 1000 bytes "
        "queued in 256-byte buffers", b.bufs_in_use_now);
    CHECK(rp_bufs_free(e) + b.bufs_in_use_now == rp_bufs_total(e),
        "free %u + in use %u != total %u", rp_bufs_free(e),
        b.bufs_in_use_now, rp_bufs_total(e));

    /* Take one buffer: still in use after it leaves the queue. */
    tok = rp_recv_take(e, c.f, &p, &len);
    CHECK(tok != 0 && len == 256, "take: token %u len %zu", tok, len);
    CHECK(rp_recv_queued(c.f) == 744, "%zu queued after take",
        rp_recv_queued(c.f));
    rp_engine_stats(e, &b);
    CHECK(b.bufs_in_use_now == 4, "bufs_in_use_now %u with 3 queued + 1 "
        "taken", b.bufs_in_use_now);
    CHECK(rp_recv_copy(e, c.f, buf, sizeof(buf)) == 512, "copy 512");
    rp_engine_stats(e, &b);
    CHECK(b.bufs_in_use_now == 2, "bufs_in_use_now %u after copying two "
        "buffers out (1 partly read + 1 taken)", b.bufs_in_use_now);
    rp_buf_release(e, tok);
    rp_engine_stats(e, &b);
    CHECK(b.bufs_in_use_now == 1, "bufs_in_use_now %u after release",
        b.bufs_in_use_now);
    CHECK(rp_recv_copy(e, c.f, buf, sizeof(buf)) == 232, "copy the rest");
    rp_engine_stats(e, &b);
    CHECK(b.bufs_in_use_now == 0, "bufs_in_use_now %u with nothing held",
        b.bufs_in_use_now);

    /* Sends. */
    CHECK(rp_send(e, c.f, &(rp_iovec_t) { buf, 300 }, 1, RP_SEND_COPY,
        NULL, NULL) == 0, "rp_send");
    CHECK(rp_send_pending(c.f) == 300, "pending %zu", rp_send_pending(c.f));
    rc = t_loop(e, is_sent, &c, 10, 2000);
    CHECK(rc == 0, "send not reported (%d bytes)", c.sent);
    rp_engine_stats(e, &b);
    CHECK(b.send_bytes == 300 && rp_send_pending(c.f) == 0, "send_bytes "
        "%llu pending %zu", (unsigned long long) b.send_bytes,
        rp_send_pending(c.f));

    a = b;
    rp_fd_close(e, c.f, 0);
    c.closed = 1;
    rp_engine_stats(e, &b);
    CHECK(b.fds_open_now == 0, "fds_open_now %u after close",
        b.fds_open_now);
    CHECK(b.cancels > a.cancels, "no cancel counted at close");
#ifndef RP_RIO_STANDIN
    /* RIO has no cancel: the host's closesocket() ends the receives */
    CHECK(b.enters > a.enters, "close with a receive armed did not enter the "
        "kernel at once");
#endif
    CHECK(t_spin(e, 10) >= 0, "wait");
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);

out:
    if (c.f != NULL && !c.closed) {
        rp_fd_close(e, c.f, 0);
    }
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

static void
case_buf_rounding(void)
{
    rp_engine_t  *e;

    e = t_engine(16, 0, 10, 1000, on_event);
    if (e == NULL) {
        goto out;
    }
#ifdef _WIN32
    /* the Windows pool takes the count as given: nothing to round to */
    CHECK(rp_bufs_total(e) == 10, "buf_count 10 gave %u buffers",
        rp_bufs_total(e));
    CHECK(rp_bufs_free(e) == 10, "%u free", rp_bufs_free(e));
#else
    CHECK(rp_bufs_total(e) == 16, "buf_count 10 gave %u buffers, header "
        "says rounded up to 2^n (16)", rp_bufs_total(e));
    CHECK(rp_bufs_free(e) == 16, "%u free", rp_bufs_free(e));
#endif

out:
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

static void
case_format(void)
{
    rp_engine_t  *e;
    rp_stats_t    st;
    char          buf[1024], *small = NULL;
    size_t        n;
    const char   *d;

    e = t_engine(0, 0, 0, 0, on_event);
    if (e == NULL) {
        goto out;
    }
    rp_engine_stats(e, &st);
    st.enters = 12345;
    st.cqes = 67890;
    n = rp_stats_format(&st, buf, sizeof(buf));
    CHECK(n > 0 && n == strlen(buf), "returned %zu for \"%s\"", n, buf);
    CHECK(strchr(buf, '\n') == NULL, "not one line: \"%s\"", buf);
    CHECK(strstr(buf, "enters=12345") != NULL && strstr(buf, "67890"),
        "\"%s\" lacks enters=12345 / 67890", buf);

    /* A short buffer is filled, terminated and never overrun (ASan
       checks the bound). */
    small = malloc(16);
    CHECK(small != NULL, "malloc");
    rp_stats_format(&st, small, 16);
    CHECK(memchr(small, '\0', 16) != NULL, "not terminated in 16 bytes");

    CHECK(strcmp(rp_engine_name(e), ENGINE_NAME) == 0, "name \"%s\"",
        rp_engine_name(e));
    d = rp_engine_describe(e);
    CHECK(d != NULL && strncmp(d, ENGINE_NAME, strlen(ENGINE_NAME)) == 0
        && !strchr(d, '\n'), "describe: \"%s\"", d ? d : "(null)");
    CHECK(rp_bufs_total(e) == 1024, "default buffer count %u, header says "
        "1024", rp_bufs_total(e));
    t_diag("describe: %s", d);

out:
    free(small);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("stats/counters-step-by-step", case_counters, 20);
    t_run("stats/format-name-describe", case_format, 10);
    t_run("stats/buffer-count-rounded-up", case_buf_rounding, 10);
    return t_exit_code();
}
