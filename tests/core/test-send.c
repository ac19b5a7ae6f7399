/*
 * Completion-mode send: rp_send() queues bytes, one send is in flight per
 * fd, short sends are continued.
 *
 * Sends far larger than the socket buffer must arrive whole and in order;
 * many queued sends (mixed sizes, iovec counts, copy and reference mode)
 * must never interleave; in reference mode done() is called exactly once,
 * after the kernel has taken the bytes (the memory is scribbled on at that
 * moment, so a later use shows at the peer); in copy mode the caller's
 * memory is scribbled on right after rp_send().  A reset peer fails the
 * queue with -errno, once.
 */

#include "harness.h"

#define MAX_SENDS  64

typedef struct conn {
    rp_fd_t   *f;
    int        closed;
    int64_t    send_sum;    /* RP_EV_SEND results */
    int        send_err;
    int        send_events;
} conn_t;

typedef struct sendreq {
    uint8_t   *mem;
    size_t     len;
    int        done;
    int        order;       /* when done was called, 1-based */
    uint64_t   sent_at_done;
} sendreq_t;

static int            cb_bad;
static rp_engine_t   *eng;
static sendreq_t      reqs[MAX_SENDS];
static int            done_seq;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    if (c == NULL || c->closed || c->f != f || ev != RP_EV_SEND) {
        cb_bad++;
        return;
    }
    c->send_events++;
    if (res < 0) {
        if (c->send_err == 0) {
            c->send_err = res;
        }
    } else {
        c->send_sum += res;
    }
}

static void
on_done(void *arg)
{
    sendreq_t   *r = arg;
    rp_stats_t   st;

    rp_engine_stats(eng, &st);
    r->sent_at_done = st.send_bytes;
    r->done++;
    r->order = ++done_seq;
    memset(r->mem, 0xee, r->len);
}

static int
peer_finished(void *arg)
{
    return ((t_peers_t *) arg)->done;
}

static int
sends_done(void *arg)
{
    conn_t  *c = arg;

    return rp_send_pending(c->f) == 0 || c->send_err;
}

/*
 * Send `total` bytes of one stream as n rp_send() calls of random sizes to
 * a slow peer with small socket buffers.  copy: 0 reference mode, 1 copy
 * mode, 2 alternate.  iovs: max iovecs per call.  Between calls the engine
 * runs a pass now and then, so later sends are queued while an earlier one
 * is in flight (the case one-send-in-flight exists for).
 */
static void
send_case(size_t total, int n, int copy, int iovs)
{
    conn_t        c;
    t_peer_t      peer;
    t_peers_t     ps;
    rp_stats_t    st;
    rp_iovec_t  iov[16];
    uint8_t      *mem = NULL;
    uint64_t      rng = total + n, expect_sent;
    size_t        off = 0, cuts[MAX_SENDS + 1];
    int           lfd = -1, fd = -1, rc, i, j, started = 0, rcv = 32 * 1024;

    memset(&c, 0, sizeof(c));
    memset(&peer, 0, sizeof(peer));
    memset(&ps, 0, sizeof(ps));
    memset(reqs, 0, sizeof(reqs));
    peer.fd = -1;
    cb_bad = done_seq = 0;

    eng = t_engine(64, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair_bufs(lfd, &fd, &peer.fd, 0, 16 * 1024) == 0, "pair");
    setsockopt(peer.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    c.f = rp_fd_open(eng, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");

    peer.seed = 40 + n;
    peer.total = total;
    peer.max_chunk = 16 * 1024;
    ps.p = &peer;
    ps.n = 1;
    ps.reader = 1;
    ps.limit_ms = 30000;

    /* Cut [0, total) into n pieces; piece 0 and the last are the large
       ones when n is small. */
    cuts[0] = 0;
    for (i = 1; i < n; i++) {
        cuts[i] = t_range(&rng, 0, total);
    }
    cuts[n] = total;
    for (i = 1; i < n; i++) {           /* insertion sort */
        size_t  v = cuts[i];

        for (j = i; j > 0 && cuts[j - 1] > v; j--) {
            cuts[j] = cuts[j - 1];
        }
        cuts[j] = v;
    }

    mem = malloc(total);
    CHECK(mem != NULL, "malloc");
    t_pat_fill(peer.seed, 0, mem, total);
    for (i = 0; i < n; i++) {
        sendreq_t  *r = &reqs[i];
        int         cnt, use_copy;
        size_t      left, p;

        r->mem = mem + cuts[i];
        r->len = cuts[i + 1] - cuts[i];
        if (r->len == 0) {
            r->done = 1;                /* nothing to send */
            continue;
        }
        cnt = (int) t_range(&rng, 1, iovs);
        if ((size_t) cnt > r->len) {
            cnt = (int) r->len;
        }
        left = r->len;
        p = 0;
        for (j = 0; j < cnt; j++) {
            size_t  l = j == cnt - 1 ? left : t_range(&rng, 1, left - (cnt - 1 - j));

            iov[j].iov_base = r->mem + p;
            iov[j].iov_len = l;
            p += l;
            left -= l;
        }
        use_copy = copy == 2 ? (i & 1) : copy;
        if (use_copy) {
            rc = rp_send(eng, c.f, iov, cnt, RP_SEND_COPY, NULL, NULL);
            CHECK(rc == 0, "rp_send copy: %s", strerror(-rc));
            memset(r->mem, 0xdd, r->len);
            r->done = -1;               /* no callback expected */
        } else {
            rc = rp_send(eng, c.f, iov, cnt, 0, on_done, r);
            CHECK(rc == 0, "rp_send: %s", strerror(-rc));
        }
        off += r->len;
        if (t_rand(&rng) % 2 == 0 || n == 2) {
            rc = rp_engine_wait(eng, 1);
            CHECK(rc >= 0, "wait: %s", strerror(-rc));
            if (i == 0 && n == 2) {
                CHECK(rp_send_pending(c.f) > 0, "the first send went out "
                    "whole: nothing in flight to queue behind");
            }
        }
    }
    CHECK(rp_send_pending(c.f) > 0 || total == 0, "nothing pending after "
        "queueing %zu bytes", total);

    /* The peer starts reading only now, so whatever went out first was
       still in flight while the later sends were queued. */
    CHECK(t_peers_start(&ps) == 0, "pthread_create");
    started = 1;

    rc = t_loop(eng, sends_done, &c, 10, 30000);
    CHECK(peer.bad_at == -1, "peer got a wrong byte at stream offset %ld: "
        "0x%02x, want 0x%02x (0xee: sent after its done(), 0xdd: copy mode "
        "sent the caller's memory; else interleaved or reordered)",
        peer.bad_at, peer.bad_got, peer.bad_want);
    CHECK(rc == 0, "sends not finished: %s, %zu pending", strerror(-rc),
        rp_send_pending(c.f));
    CHECK(c.send_err == 0, "send error %s", strerror(-c.send_err));
    CHECK(rp_send_error(c.f) == 0, "rp_send_error %d", rp_send_error(c.f));
    /* Every byte is in the kernel: the peer gets EOF after them. */
    shutdown(fd, SHUT_WR);
    rc = t_loop(eng, peer_finished, &ps, 10, 30000);
    t_peers_join(&ps);
    started = 0;
    CHECK(rc == 0, "peer not finished: %s", strerror(-rc));
    CHECK(peer.err == 0, "peer: %s", strerror(peer.err));
    CHECK(peer.bad_at == -1, "peer got a wrong byte at stream offset %ld: "
        "0x%02x, want 0x%02x (0xee: sent after its done(), 0xdd: copy mode "
        "sent the caller's memory; else interleaved or reordered)",
        peer.bad_at, peer.bad_got, peer.bad_want);
    CHECK(peer.off == total && peer.eof, "peer got %llu of %zu bytes, eof %d",
        (unsigned long long) peer.off, total, peer.eof);

    expect_sent = 0;
    for (i = 0; i < n; i++) {
        sendreq_t  *r = &reqs[i];

        expect_sent += r->len;
        if (r->done == -1) {
            continue;
        }
        CHECK(r->done == 1, "done of send %d called %d times", i, r->done);
        if (r->len == 0) {
            continue;
        }
        CHECK(r->sent_at_done >= expect_sent, "done of send %d called when "
            "the kernel had taken %llu bytes, before its last byte (%llu)",
            i, (unsigned long long) r->sent_at_done,
            (unsigned long long) expect_sent);
    }
    for (i = 1; i < n; i++) {
        if (reqs[i].order > 0 && reqs[i - 1].order > 0) {
            CHECK(reqs[i].order > reqs[i - 1].order, "done callbacks out of "
                "order: send %d before send %d", i, i - 1);
        }
    }
    CHECK(cb_bad == 0, "%d unexpected callbacks", cb_bad);
    CHECK(c.send_sum == (int64_t) total, "RP_EV_SEND results add up to "
        "%lld, sent %zu", (long long) c.send_sum, total);
    rp_engine_stats(eng, &st);
    CHECK(st.send_bytes == total, "stats.send_bytes %llu, want %zu",
        (unsigned long long) st.send_bytes, total);
    t_diag("send %zu bytes in %d sends: %d RP_EV_SEND, send_partial %llu, "
        "sqes %llu", total, n, c.send_events,
        (unsigned long long) st.send_partial, (unsigned long long) st.sqes);

out:
    if (started) {
        t_peers_join(&ps);
    }
    if (c.f != NULL && eng != NULL) {
        rp_fd_close(eng, c.f, 0);
    }
    t_close(&fd);
    t_close(&peer.fd);
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    free(mem);
}

static void case_large_ref(void)  { send_case(8 << 20, 1, 0, 1); }
static void case_large_copy(void) { send_case(8 << 20, 1, 1, 1); }
static void case_two(void)        { send_case(6 << 20, 2, 0, 1); }
static void case_many(void)       { send_case(4 << 20, 48, 2, 16); }
static void case_small_many(void) { send_case(64 << 10, 64, 2, 8); }

/* ---- a reset peer fails the queue ----------------------------------------- */

static void
case_reset(void)
{
    conn_t          c;
    struct linger   lg = { 1, 0 };
    rp_iovec_t    iov;
    uint8_t        *mem = NULL;
    size_t          total = 4 << 20;
    int             lfd = -1, fd = -1, peer = -1, rc;

    memset(&c, 0, sizeof(c));
    memset(reqs, 0, sizeof(reqs));
    cb_bad = done_seq = 0;
    eng = t_engine(64, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair_bufs(lfd, &fd, &peer, 0, 16 * 1024) == 0, "pair");
    c.f = rp_fd_open(eng, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    mem = calloc(1, total);
    CHECK(mem != NULL, "malloc");
    reqs[0].mem = mem;
    reqs[0].len = total;
    iov.iov_base = mem;
    iov.iov_len = total;
    rc = rp_send(eng, c.f, &iov, 1, 0, on_done, &reqs[0]);
    CHECK(rc == 0, "rp_send: %s", strerror(-rc));
    rc = t_spin(eng, 20);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    CHECK(rp_send_pending(c.f) > 0, "4 MiB gone into a 16 KiB socket buffer "
        "with nobody reading");

    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(peer);
    peer = -1;

    rc = t_loop(eng, sends_done, &c, 10, 5000);
    CHECK(rc == 0, "send queue not failed after the peer reset: %s",
        strerror(-rc));
    CHECK(c.send_err == -ECONNRESET || c.send_err == -EPIPE, "RP_EV_SEND "
        "error %d (%s), want -ECONNRESET or -EPIPE", c.send_err,
        strerror(-c.send_err));
    CHECK(rp_send_error(c.f) == c.send_err, "rp_send_error %d, event said %d",
        rp_send_error(c.f), c.send_err);
    CHECK(rp_send_pending(c.f) == 0, "%zu bytes still pending after the "
        "error", rp_send_pending(c.f));
    rc = t_spin(eng, 10);
    CHECK(reqs[0].done == 1, "done called %d times for the failed send",
        reqs[0].done);
    CHECK(cb_bad == 0, "%d unexpected callbacks", cb_bad);

out:
    if (c.f != NULL && eng != NULL) {
        rp_fd_close(eng, c.f, 0);
    }
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    free(mem);
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("send/8mib-small-sndbuf-ref", case_large_ref, 60);
    t_run("send/8mib-small-sndbuf-copy", case_large_copy, 60);
    t_run("send/two-queued-no-interleave", case_two, 60);
    t_run("send/48-queued-mixed-iov-copy-ref", case_many, 60);
    t_run("send/64-small-queued", case_small_many, 30);
    t_run("send/peer-reset-fails-queue", case_reset, 20);
    return t_exit_code();
}
