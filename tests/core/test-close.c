/*
 * Close means close.
 *
 * A pending multishot RECV (or poll) holds a reference on the file, so
 * close() alone does not send FIN: the peer would wait forever.  The control
 * case shows that phenomenon with plain liburing on this kernel (no cancel:
 * no EOF within 100 ms; cancel: EOF), which is what makes the rp_fd_close()
 * cases meaningful: they pass only because the engine cancels at once.
 *
 * Also: RP_CLOSE_FLUSH keeps sending 4 MiB after the host closed its fd and
 * the peer gets every byte then EOF; a close without it drops queued sends
 * and still calls every done callback exactly once.  The engine-closes
 * cases hand the socket over (RP_CLOSE_SOCKET) and never close it
 * themselves: the peer's EOF shows the engine closed it, at once or when
 * the flush ended; on RIO that is the flush that stays whole.
 */

#ifndef _WIN32
#include <liburing.h>
#endif

#include "harness.h"

#define EOF_MS  100

typedef struct conn {
    rp_fd_t  *f;
    int       closed;
    int       events;
} conn_t;

static int  cb_bad;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    (void) ev;
    (void) res;
    if (c == NULL || c->closed || c->f != f) {
        cb_bad++;
        return;
    }
    c->events++;
}

/* ---- control: plain liburing, no cancel --------------------------------- */

#ifdef _WIN32
static void
case_control(void)
{
    SKIP("io_uring's control (liburing): on Windows closesocket() aborts "
        "the socket's pending requests itself");
out:
    return;
}
#else
static void
case_control(void)
{
    struct io_uring           ring;
    struct io_uring_buf_ring *br = NULL;
    struct io_uring_buf_reg   reg;
    struct io_uring_sqe      *sqe;
    struct io_uring_cqe      *cqe;
    static char               bufs[8][4096];
    int                       lfd = -1, fd = -1, peer = -1, rc, i;
    int                       have_ring = 0, eof;

    rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0) {
        SKIP("io_uring_queue_init: %s", strerror(-rc));
    }
    have_ring = 1;
    rc = posix_memalign((void **) &br, 4096, 8 * sizeof(struct io_uring_buf));
    CHECK(rc == 0, "posix_memalign");
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long) br;
    reg.ring_entries = 8;
    reg.bgid = 7;
    rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0) {
        SKIP("kernel lacks buffer rings: %s", strerror(-rc));
    }
    io_uring_buf_ring_init(br);
    for (i = 0; i < 8; i++) {
        io_uring_buf_ring_add(br, bufs[i], sizeof(bufs[i]), i,
            io_uring_buf_ring_mask(8), i);
    }
    io_uring_buf_ring_advance(br, 8);

    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");

    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 7;
    sqe->user_data = 1;
    rc = io_uring_submit(&ring);
    CHECK(rc == 1, "submit: %d", rc);
    /* A kernel without multishot receive fails it at once. */
    if (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe->res < 0) {
        SKIP("kernel lacks multishot receive: %s", strerror(-cqe->res));
    }

    close(fd);
    fd = -1;
    eof = t_eof_within(peer, EOF_MS);
    if (eof != 0) {
        SKIP("this kernel sent FIN for a socket with a pending multishot "
            "recv and no cancel (eof %d): the close cases prove nothing "
            "here", eof);
    }

    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_cancel64(sqe, 1, 0);
    sqe->user_data = 2;
    rc = io_uring_submit_and_wait(&ring, 2);
    CHECK(rc >= 0, "submit cancel: %s", strerror(-rc));
    eof = t_eof_within(peer, EOF_MS);
    CHECK(eof == 1, "no EOF even after cancelling the receive (%d)", eof);
    t_diag("close/control: without a cancel no FIN in %d ms; with one, FIN",
        EOF_MS);

out:
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
    if (have_ring) {
        io_uring_queue_exit(&ring);
    }
    free(br);
}
#endif

/* ---- rp_fd_close with a receive or poll pending -------------------------- */

enum armed { A_RECV, A_RECV_DATA, A_POLL };

/*
 * Arm what `what` says on a fresh connection, run passes until it is in the
 * kernel, then rp_fd_close() and close().  The peer must read EOF within
 * 100 ms; with keep_waiting the host loop keeps running meanwhile (the
 * normal case), without it the host makes no engine call at all after
 * rp_fd_close() (the header's "submitted now" promise).
 */
/* RP_CLOSE_SOCKET: the engine closes the socket, the host never does */
static int  engine_closes_socket;

static void
close_case(enum armed what, int keep_waiting)
{
    rp_engine_t  *e;
    conn_t        c = { 0 };
    rp_stats_t    st;
    char          buf[10000];
    int           lfd = -1, fd = -1, peer = -1, rc, eof = 0;
    double        t0, end;

    cb_bad = 0;
    e = t_engine(32, 0, 64, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");
    c.f = rp_fd_open(e, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    if (what == A_POLL) {
        rc = rp_poll(e, c.f, RP_IN, RP_POLL_MULTISHOT);
        CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    } else {
        rc = rp_recv_start(e, c.f, 0);
        CHECK(rc == 0, "rp_recv_start: %s", strerror(-rc));
    }
    rc = t_spin(e, 20);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    if (what != A_POLL) {
        CHECK(rp_recv_armed(c.f), "receive not armed after passes");
    }
    if (what == A_RECV_DATA) {
        /* Unread data queued on the handle, more on its way. */
        t_pat_fill(3, 0, buf, sizeof(buf));
        CHECK(send(peer, buf, sizeof(buf), 0) == sizeof(buf), "send");
        rc = t_spin(e, 20);
        CHECK(rc >= 0, "wait: %s", strerror(-rc));
        CHECK(rp_recv_queued(c.f) > 0, "nothing queued after 20 ms");
        CHECK(send(peer, buf, sizeof(buf), 0) == sizeof(buf), "send");
    }

    t0 = t_now_ms();
    rp_fd_close(e, c.f, engine_closes_socket ? RP_CLOSE_SOCKET : 0);
    c.closed = 1;
    if (!engine_closes_socket) {
        close(fd);
    }
    fd = -1;

    if (keep_waiting) {
        end = t0 + EOF_MS;
        while (t_now_ms() < end) {
            rc = rp_engine_wait(e, 2);
            CHECK(rc >= 0 || rc == -EINTR, "wait: %s", strerror(-rc));
            eof = t_eof_within(peer, 0);
            if (eof != 0) {
                break;
            }
        }
    } else {
        eof = t_eof_within(peer, EOF_MS);
    }
    if (what == A_RECV_DATA) {
        /* Unread data in the receive queue makes close() send RST. */
        CHECK(eof != 0, "peer saw neither EOF nor reset %d ms after close",
            EOF_MS);
    } else {
        CHECK(eof == 1, "peer did not read EOF within %d ms of close "
            "(%s) -- the pending %s still holds the socket", EOF_MS,
            eof < 0 ? strerror(errno) : "nothing",
            what == A_POLL ? "poll" : "multishot recv");
    }
    t_diag("close: peer saw %s after %.1f ms", eof == 1 ? "EOF" : "reset",
        t_now_ms() - t0);

    rc = t_spin(e, 10);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    CHECK(cb_bad == 0, "%d callbacks after rp_fd_close", cb_bad);
    rp_engine_stats(e, &st);
    CHECK(st.cancels > 0, "stats.cancels 0");
    CHECK(st.bufs_in_use_now == 0, "stats.bufs_in_use_now %u after close",
        st.bufs_in_use_now);
    CHECK(st.fds_open_now == 0, "stats.fds_open_now %u", st.fds_open_now);

out:
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

/*
 * Hosts are told to call rp_fd_close() first, but some close the socket
 * and then take the fd off their loop: the pending receive and poll must
 * still let go (a cancel by fd number finds nothing once the number is
 * gone).
 */
static void
case_closed_first(void)
{
    rp_engine_t  *e;
    conn_t        c[2];
    int           lfd = -1, fd[2] = { -1, -1 }, peer[2] = { -1, -1 };
    int           i, rc, eof;

    memset(c, 0, sizeof(c));
    cb_bad = 0;
    e = t_engine(32, 0, 64, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    for (i = 0; i < 2; i++) {
        CHECK(t_pair(lfd, &fd[i], &peer[i]) == 0, "pair");
        c[i].f = rp_fd_open(e, fd[i], &c[i]);
        CHECK(c[i].f != NULL, "rp_fd_open");
        rc = i == 0 ? rp_recv_start(e, c[i].f, 0)
                    : rp_poll(e, c[i].f, RP_IN, RP_POLL_MULTISHOT);
        CHECK(rc == 0, "arm: %s", strerror(-rc));
    }
    CHECK(t_spin(e, 10) >= 0, "wait");
    for (i = 0; i < 2; i++) {
        close(fd[i]);
        fd[i] = -1;
        rp_fd_close(e, c[i].f, 0);
        c[i].closed = 1;
    }
    CHECK(t_spin(e, 30) >= 0, "wait");
    for (i = 0; i < 2; i++) {
        eof = t_eof_within(peer[i], 100);
        CHECK(eof == 1, "%s: no EOF when the host closed the fd before "
            "rp_fd_close()", i == 0 ? "multishot recv" : "multishot poll");
    }
    CHECK(cb_bad == 0, "%d callbacks after rp_fd_close", cb_bad);

out:
    for (i = 0; i < 2; i++) {
        t_close(&fd[i]);
        t_close(&peer[i]);
    }
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

static void case_recv_loop(void)   { close_case(A_RECV, 1); }
static void case_recv_nowait(void) { close_case(A_RECV, 0); }
static void case_recv_data(void)   { close_case(A_RECV_DATA, 1); }
static void case_poll_loop(void)   { close_case(A_POLL, 1); }
static void case_poll_nowait(void) { close_case(A_POLL, 0); }

static void
case_engine_closes_at_once(void)
{
    engine_closes_socket = 1;
    close_case(A_RECV, 0);
    engine_closes_socket = 0;
}

/* ---- RP_CLOSE_FLUSH ------------------------------------------------------ */

static int     done_calls;
static size_t  done_len;

/* The engine is done with the memory: scribble on it, so a byte sent from
   it later shows up wrong at the peer. */
static void
on_done(void *arg)
{
    done_calls++;
    memset(arg, 0xee, done_len);
}

static int
peer_finished(void *arg)
{
    return ((t_peers_t *) arg)->done;
}

#ifdef RP_RIO_STANDIN
#define SKIP_IF_SEND_IN_FLIGHT_WINDOWS()                                    \
    SKIP("RIO path: the request queue, so the RIO send in flight, is the "  \
         "host's socket's, and the host's closesocket() after "              \
         "rp_fd_close(RP_CLOSE_FLUSH) ends that send (RIO binds a request "  \
         "to its socket); the flush that stays whole on RIO hands the "      \
         "socket over (RP_CLOSE_SOCKET): close/engine-closes-flush-*")
#else
#define SKIP_IF_SEND_IN_FLIGHT_WINDOWS()
#endif

/*
 * engine_closes: RP_CLOSE_SOCKET, the host never closes the socket; the
 * only way the flush stays whole on RIO, so no SKIP there.
 */
static void
flush_case(size_t total, int engine_closes)
{
    rp_engine_t  *e;
    conn_t        c = { 0 };
    t_peer_t      peer;
    t_peers_t     ps;
    rp_stats_t    st;
    uint8_t      *data = NULL;
    rp_iovec_t  iov;
    int           lfd = -1, fd = -1, rc, started = 0, rcv = 32 * 1024;

    cb_bad = done_calls = 0;
    done_len = total;
    memset(&peer, 0, sizeof(peer));
    memset(&ps, 0, sizeof(ps));
    peer.fd = -1;

    e = t_engine(32, 0, 64, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair_bufs(lfd, &fd, &peer.fd, 0, 16 * 1024) == 0, "pair");
    setsockopt(peer.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    c.f = rp_fd_open(e, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");

    if (total > 0) {
        data = malloc(total);
        CHECK(data != NULL, "malloc");
        t_pat_fill(21, 0, data, total);
        iov.iov_base = data;
        iov.iov_len = total;
        rc = rp_send(e, c.f, &iov, 1, 0, on_done, data);
        CHECK(rc == 0, "rp_send: %s", strerror(-rc));
        /* passes until the socket buffers are full: a send is in the
           kernel, stuck, when the host closes (on Windows the host's
           close must not end it) */
        rc = t_spin(e, 20);
        CHECK(rc >= 0, "wait: %s", strerror(-rc));
        CHECK(rp_send_pending(c.f) > total / 2, "only %zu of %zu bytes left "
            "queued: the socket buffers are larger than the test assumes",
            rp_send_pending(c.f), total);
        if (!engine_closes) {
            SKIP_IF_SEND_IN_FLIGHT_WINDOWS();
        }
    }

    rp_fd_close(e, c.f,
                RP_CLOSE_FLUSH | (engine_closes ? RP_CLOSE_SOCKET : 0));
    c.closed = 1;
    if (!engine_closes) {
        close(fd);
    }
    fd = -1;

    peer.seed = 21;
    peer.total = total;
    peer.max_chunk = 16 * 1024;
    ps.p = &peer;
    ps.n = 1;
    ps.reader = 1;
    ps.limit_ms = 15000;
    CHECK(t_peers_start(&ps) == 0, "pthread_create");
    started = 1;

    rc = t_loop(e, peer_finished, &ps, 5, 15000);
    t_peers_join(&ps);
    started = 0;
    CHECK(rc == 0, "peer not finished: %s (read %llu of %zu)", strerror(-rc),
        (unsigned long long) peer.off, total);
    CHECK(peer.err == 0, "peer read: %s after %llu bytes",
        strerror(peer.err), (unsigned long long) peer.off);
    CHECK(peer.bad_at == -1, "wrong byte at %ld", peer.bad_at);
    CHECK(peer.off == total, "peer read %llu of %zu bytes",
        (unsigned long long) peer.off, total);
    CHECK(peer.eof, "no EOF after the flushed bytes");
    if (total > 0) {
        /* The engine must be done with the memory once the peer has it. */
        CHECK(done_calls == 1, "done called %d times", done_calls);
    }
    CHECK(cb_bad == 0, "%d callbacks after rp_fd_close", cb_bad);
    rp_engine_stats(e, &st);
    CHECK(st.send_bytes == total, "stats.send_bytes %llu, want %zu",
        (unsigned long long) st.send_bytes, total);
    CHECK(st.fds_open_now == 0, "stats.fds_open_now %u after the flush",
        st.fds_open_now);

out:
    if (started) {
        t_peers_join(&ps);
    }
    t_close(&fd);
    t_close(&peer.fd);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    free(data);
}

static void case_flush_4m(void)    { flush_case(4 * 1024 * 1024, 0); }
static void case_flush_empty(void) { flush_case(0, 0); }
static void case_flush_4m_engine_closes(void)
{
    flush_case(4 * 1024 * 1024, 1);
}
static void case_flush_empty_engine_closes(void) { flush_case(0, 1); }

/* ---- RP_CLOSE_FLUSH to a peer that stops reading ---------------------------- */

#ifdef _WIN32
/*
 * Windows: the handles of this process that are sockets of the connection
 * whose other end is count_peer (the host's socket, the flush's
 * duplicate), found by handle value: Wine keeps no handle count
 * (GetProcessHandleCount() gives 0).
 */
static int  count_peer = -1;

static int
count_fds(void)
{
    struct sockaddr_in  want, got;
    uintptr_t           h;
    DWORD               fl;
    int                 len, n = 0;

    len = sizeof(want);
    if (getsockname(count_peer, (struct sockaddr *) &want, &len) != 0) {
        return -100;
    }
    for (h = 4; h < 65536; h += 4) {
        len = sizeof(got);
        if (GetHandleInformation((HANDLE) h, &fl)
            && getpeername((SOCKET) h, (struct sockaddr *) &got, &len) == 0
            && got.sin_port == want.sin_port
            && got.sin_addr.s_addr == want.sin_addr.s_addr)
        {
            n++;
        }
    }
    return n;
}
#else
static int
count_fds(void)
{
    char  path[64];
    int   fd, n = 0;

    for (fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}
#endif

/*
 * The peer never reads: the flush must give up after flush_timeout_ms,
 * close its duplicate, and call done once.  With idle the host then waits
 * with no timeout at all (-1, as an nginx worker or a libevent loop without
 * timers does): the engine must still wake up for its own deadline.
 */
static void
flush_timeout_case(int idle, int engine_closes)
{
    rp_engine_params_t  p;
    rp_engine_t        *e = NULL;
    conn_t              c = { 0 };
    rp_stats_t          st;
    rp_iovec_t        iov;
    uint8_t            *data = NULL;
    size_t              total = 4 * 1024 * 1024;
    char                why[256];
    double              t0, ms = 0;
    int                 lfd = -1, fd = -1, peer = -1, rc, fds0, rcv = 16384;

    cb_bad = done_calls = 0;
    done_len = total;
    memset(&p, 0, sizeof(p));
    p.entries = 32;
    p.buf_count = 64;
    p.buf_size = 4096;
    p.flush_timeout_ms = 200;
    rc = rp_engine_create(&p, on_event, &e, why, sizeof(why));
    if (rc < 0) {
        e = NULL;
        t_set(t_kernel_capable() ? T_FAIL : T_SKIP, "engine: %s", why);
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair_bufs(lfd, &fd, &peer, 0, 16 * 1024) == 0, "pair");
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    c.f = rp_fd_open(e, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    data = malloc(total);
    CHECK(data != NULL, "malloc");
    t_pat_fill(23, 0, data, total);
    iov.iov_base = data;
    iov.iov_len = total;
    rc = rp_send(e, c.f, &iov, 1, 0, on_done, data);
    CHECK(rc == 0, "rp_send: %s", strerror(-rc));
    rc = t_spin(e, 20);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    CHECK(rp_send_pending(c.f) > 0, "everything sent to a peer that does "
        "not read");
    if (!engine_closes) {
        /* the host's close ends the RIO send in flight, and with it the
           flush, before its deadline or after it as timing has it */
        SKIP_IF_SEND_IN_FLIGHT_WINDOWS();
    }

#ifdef _WIN32
    count_peer = peer;
#endif
    fds0 = count_fds();
#if defined(_WIN32) && !defined(RP_RIO_STANDIN)
    /* the overlapped path sends on a handle of the engine's own, made at
       the first send: it is the flush's, no second duplicate is made */
    CHECK(fds0 == 2, "%d handles on the socket before the close, want 2: "
        "the host's and the engine's own send handle", fds0);
    fds0--;
#endif
    t0 = t_now_ms();
    if (engine_closes) {
        /* no duplicate: the flush goes on the socket itself, or on the
           engine's own send handle with the host's handle closed */
        rp_fd_close(e, c.f, RP_CLOSE_FLUSH | RP_CLOSE_SOCKET);
        c.closed = 1;
        CHECK(count_fds() == fds0, "%d fds open after a flushing close "
            "that hands the socket over, want %d", count_fds(), fds0);
    } else {
        rp_fd_close(e, c.f, RP_CLOSE_FLUSH);
        c.closed = 1;
        CHECK(count_fds() == fds0 + 1, "%d fds open after a flushing "
            "close, want %d: no duplicate to flush on, or a second one",
            count_fds(), fds0 + 1);
        close(fd);
    }
    fd = -1;

    for ( ;; ) {
        rp_engine_stats(e, &st);
        ms = t_now_ms() - t0;
        if (st.flush_timeouts > 0 || ms > 3000) {
            break;
        }
        rc = rp_engine_wait(e, idle ? -1 : 20);
        CHECK(rc >= 0 || rc == -EINTR, "wait: %s", strerror(-rc));
    }
    CHECK(st.flush_timeouts == 1, "stats.flush_timeouts %llu after %.0f ms "
        "with a 200 ms flush timeout", (unsigned long long)
        st.flush_timeouts, ms);
    CHECK(ms >= 150, "gave up after %.0f ms, before the 200 ms timeout", ms);
    rc = t_spin(e, 20);
    CHECK(done_calls == 1, "done called %d times after the flush gave up",
        done_calls);
    /* fds0 counted the host's fd, closed since; the duplicate made by
       rp_fd_close() (or the socket handed over) must be gone too. */
    CHECK(count_fds() == fds0 - 1, "%d fds open, want %d: the flush's "
        "socket is still open", count_fds(), fds0 - 1);
    rp_engine_stats(e, &st);
    CHECK(st.fds_open_now == 0, "stats.fds_open_now %u", st.fds_open_now);
    CHECK(cb_bad == 0, "%d callbacks after rp_fd_close", cb_bad);
    t_diag("close/flush-timeout%s: gave up after %.0f ms",
        idle ? " (wait -1)" : "", ms);

out:
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    free(data);
}

/*
 * A slow but steady reader is not a stuck one: the peer takes 32 KiB every
 * 40 ms, so 2 MiB take about 2.5 s, far past the 200 ms flush timeout,
 * though no gap between bytes is longer than 40 ms.  The flush must not
 * give up.  in_flight: passes run before the close, so a send is stuck in
 * the kernel when the host closes; else the host closes at once and all
 * 2 MiB go through the flush's own sends.
 */
static void
flush_slow_reader_case(int in_flight, int engine_closes)
{
    rp_engine_params_t  p;
    rp_engine_t        *e = NULL;
    conn_t              c = { 0 };
    t_peer_t            peer;
    t_peers_t           ps;
    rp_stats_t          st;
    rp_iovec_t        iov;
    uint8_t            *data = NULL;
    size_t              total = 2 * 1024 * 1024;
    char                why[256];
    int                 lfd = -1, fd = -1, rc, started = 0, rcv = 16384;

    cb_bad = done_calls = 0;
    done_len = total;
    memset(&peer, 0, sizeof(peer));
    memset(&ps, 0, sizeof(ps));
    peer.fd = -1;
    memset(&p, 0, sizeof(p));
    p.entries = 32;
    p.buf_count = 64;
    p.buf_size = 4096;
    /*
     * Above TCP's own zero-window persist interval (200 ms on loopback):
     * with buffers this small the peer's window reopens only through the
     * persist timer, so for 200 ms at a time the peer really takes nothing.
     */
    p.flush_timeout_ms = 1000;
    rc = rp_engine_create(&p, on_event, &e, why, sizeof(why));
    if (rc < 0) {
        e = NULL;
        t_set(t_kernel_capable() ? T_FAIL : T_SKIP, "engine: %s", why);
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair_bufs(lfd, &fd, &peer.fd, 0, 16 * 1024) == 0, "pair");
    setsockopt(peer.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    c.f = rp_fd_open(e, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    data = malloc(total);
    CHECK(data != NULL, "malloc");
    t_pat_fill(25, 0, data, total);
    iov.iov_base = data;
    iov.iov_len = total;
    rc = rp_send(e, c.f, &iov, 1, 0, on_done, data);
    CHECK(rc == 0, "rp_send: %s", strerror(-rc));
    /* as in flush_case(): a send stuck in the kernel at the close */
    if (in_flight) {
        CHECK(t_spin(e, 20) >= 0, "wait");
        if (!engine_closes) {
            SKIP_IF_SEND_IN_FLIGHT_WINDOWS();
        }
    }
    rp_fd_close(e, c.f,
                RP_CLOSE_FLUSH | (engine_closes ? RP_CLOSE_SOCKET : 0));
    c.closed = 1;
    if (!engine_closes) {
        close(fd);
    }
    fd = -1;

    peer.seed = 25;
    peer.total = total;
    peer.max_chunk = 32 * 1024;
    ps.p = &peer;
    ps.n = 1;
    ps.reader = 1;
    ps.read_delay_us = 40000;
    ps.limit_ms = 15000;
    CHECK(t_peers_start(&ps) == 0, "pthread_create");
    started = 1;
    rc = t_loop(e, peer_finished, &ps, 20, 15000);
    t_peers_join(&ps);
    started = 0;
    rp_engine_stats(e, &st);
    CHECK(st.flush_timeouts == 0, "the flush gave up on a peer that took "
        "bytes every 40 ms (flush_timeout_ms 1000; read %llu of %zu)",
        (unsigned long long) peer.off, total);
    CHECK(rc == 0, "peer not finished: %s", strerror(-rc));
    CHECK(peer.bad_at == -1, "wrong byte at %ld", peer.bad_at);
    CHECK(peer.off == total && peer.eof, "peer read %llu of %zu, eof %d",
        (unsigned long long) peer.off, total, peer.eof);
    CHECK(done_calls == 1, "done called %d times", done_calls);

out:
    if (started) {
        t_peers_join(&ps);
    }
    t_close(&fd);
    t_close(&peer.fd);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    free(data);
}

static void case_flush_slow_reader(void)  { flush_slow_reader_case(1, 0); }
static void case_flush_slow_queued(void)  { flush_slow_reader_case(0, 0); }
static void case_flush_slow_reader_engine_closes(void)
{
    flush_slow_reader_case(1, 1);
}
static void case_flush_timeout(void)      { flush_timeout_case(0, 0); }
static void case_flush_timeout_idle(void) { flush_timeout_case(1, 0); }
static void case_flush_timeout_engine_closes(void)
{
    flush_timeout_case(0, 1);
}
static void case_flush_timeout_idle_engine_closes(void)
{
    flush_timeout_case(1, 1);
}

/* ---- close without flush drops queued sends ------------------------------- */

#define NSEND  3

static int  drop_done[NSEND];

static void
on_drop_done(void *arg)
{
    drop_done[(intptr_t) arg]++;
}

static void
case_drop_sends(void)
{
    rp_engine_t  *e;
    conn_t        c = { 0 };
    t_peer_t      peer;
    t_peers_t     ps;
    uint8_t      *data = NULL;
    rp_iovec_t  iov;
    size_t        part = 1024 * 1024;
    int           lfd = -1, fd = -1, rc, i, started = 0;

    cb_bad = 0;
    memset(drop_done, 0, sizeof(drop_done));
    memset(&peer, 0, sizeof(peer));
    memset(&ps, 0, sizeof(ps));
    peer.fd = -1;

    e = t_engine(32, 0, 64, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair_bufs(lfd, &fd, &peer.fd, 0, 16 * 1024) == 0, "pair");
    c.f = rp_fd_open(e, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    data = malloc(NSEND * part);
    CHECK(data != NULL, "malloc");
    t_pat_fill(31, 0, data, NSEND * part);
    for (i = 0; i < NSEND; i++) {
        iov.iov_base = data + i * part;
        iov.iov_len = part;
        rc = rp_send(e, c.f, &iov, 1, 0, on_drop_done, (void *) (intptr_t) i);
        CHECK(rc == 0, "rp_send: %s", strerror(-rc));
    }
    rc = t_spin(e, 10);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));

    rp_fd_close(e, c.f, 0);
    c.closed = 1;
    close(fd);
    fd = -1;

    /* Whatever the engine no longer needs may be scribbled on at once. */
    rc = t_spin(e, 50);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    for (i = 0; i < NSEND; i++) {
        CHECK(drop_done[i] == 1, "done for send %d called %d times after "
            "close", i, drop_done[i]);
        memset(data + i * part, 0xee, part);
    }

    peer.seed = 31;
    peer.total = NSEND * part;
    peer.max_chunk = 64 * 1024;
    ps.p = &peer;
    ps.n = 1;
    ps.reader = 1;
    ps.limit_ms = 5000;
    CHECK(t_peers_start(&ps) == 0, "pthread_create");
    started = 1;
    rc = t_loop(e, peer_finished, &ps, 5, 5000);
    t_peers_join(&ps);
    started = 0;
    CHECK(rc == 0, "peer not finished: %s", strerror(-rc));
    CHECK(peer.bad_at == -1, "wrong byte at %ld: sent from memory after its "
        "done callback", peer.bad_at);
    CHECK(peer.eof || peer.err == ECONNRESET, "peer saw neither EOF nor "
        "reset (err %s)", strerror(peer.err));
    CHECK(peer.off < NSEND * part, "all %llu bytes arrived although the "
        "close dropped the queue", (unsigned long long) peer.off);
    CHECK(cb_bad == 0, "%d callbacks after rp_fd_close", cb_bad);
    t_diag("close/drop-sends: peer got %llu of %zu bytes before EOF",
        (unsigned long long) peer.off, NSEND * part);

out:
    if (started) {
        t_peers_join(&ps);
    }
    t_close(&fd);
    t_close(&peer.fd);
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    free(data);
}

/* ---- closing from inside callbacks, destroying with everything open ----- */

#define NX  16

static conn_t       xc[NX];
static int          xfd[NX], xpeer[NX];
static rp_engine_t *xe;
static int          x_closed_by_cb;
static int          x_host_first;   /* close the socket, then rp_fd_close */

/* On the first event of an even connection, close it and its odd
   neighbour, whose completions may sit in the same batch. */
static void
on_event_closer(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev,
    int res)
{
    conn_t  *c = data;
    int      i = (int) (c - xc), j;

    on_event(e, f, data, ev, res);
    if (c->closed || (i & 1)) {
        return;
    }
    for (j = i; j <= i + 1; j++) {
        if (!xc[j].closed) {
            if (x_host_first) {
                close(xfd[j]);
                xfd[j] = -1;
            }
            rp_fd_close(xe, xc[j].f, 0);
            xc[j].closed = 1;
            if (!x_host_first) {
                close(xfd[j]);
                xfd[j] = -1;
            }
            x_closed_by_cb++;
        }
    }
}

/*
 * Half the connections are closed from a callback while their receives
 * are busy, with their odd neighbours' completions maybe in the same
 * batch; x_host_first: the host closes each socket first, then calls
 * rp_fd_close(), as rp_fd_close() allows (a socket closed under requests
 * the engine re-posted in this very pass).
 */
static void
close_in_callback_case(int host_first)
{
    uint8_t  buf[32768];
    int      lfd = -1, i, rc, eof;

    memset(xc, 0, sizeof(xc));
    for (i = 0; i < NX; i++) {
        xfd[i] = xpeer[i] = -1;
    }
    cb_bad = x_closed_by_cb = 0;
    x_host_first = host_first;
    xe = t_engine(32, 0, 64, 4096, on_event_closer);
    if (xe == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    for (i = 0; i < NX; i++) {
        CHECK(t_pair(lfd, &xfd[i], &xpeer[i]) == 0, "pair");
        xc[i].f = rp_fd_open(xe, xfd[i], &xc[i]);
        CHECK(xc[i].f != NULL, "rp_fd_open");
        CHECK(rp_recv_start(xe, xc[i].f, 0) == 0, "rp_recv_start");
    }
    CHECK(rp_engine_wait(xe, 0) >= 0, "wait");
    /* Everyone gets 32 KiB at once: several completions each per pass. */
    memset(buf, 'z', sizeof(buf));
    for (i = 0; i < NX; i++) {
        CHECK(send(xpeer[i], buf, sizeof(buf), 0) == sizeof(buf), "send");
    }
    usleep(5000);
    rc = t_spin(xe, 50);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));
    CHECK(x_closed_by_cb == NX, "%d of %d closed from callbacks",
        x_closed_by_cb, NX);
    CHECK(cb_bad == 0, "%d callbacks for fds closed inside an earlier "
        "callback of the same pass", cb_bad);
    for (i = 0; i < NX; i++) {
        eof = t_eof_within(xpeer[i], 100);
        CHECK(eof != 0, "peer %d: no EOF/reset within 100 ms", i);
    }

out:
    for (i = 0; i < NX; i++) {
        t_close(&xfd[i]);
        t_close(&xpeer[i]);
    }
    t_close(&lfd);
    if (xe != NULL) {
        rp_engine_destroy(xe);
    }
    xe = NULL;
}

static void case_close_in_callback(void)  { close_in_callback_case(0); }
static void case_host_first_in_callback(void)
{
    close_in_callback_case(1);
}

static int  x_done;

static void
on_x_done(void *arg)
{
    (void) arg;
    x_done++;
}

/*
 * rp_engine_destroy() with fds open and everything in use: receives armed
 * with data queued and buffers taken, polls armed, sends queued in both
 * modes.  No crash, no leak or bad access (the sanitizer run), and the
 * host's sockets are really free afterwards: closing them sends FIN.
 */
static void
case_destroy_busy(void)
{
    static uint8_t  big[1 << 20];
    rp_engine_t    *e;
    rp_iovec_t    iov = { big, sizeof(big) };
    const void     *p;
    size_t          len;
    uint8_t         buf[8192];
    int             lfd = -1, i, eof, sndbuf = 16384;

    memset(xc, 0, sizeof(xc));
    for (i = 0; i < NX; i++) {
        xfd[i] = xpeer[i] = -1;
    }
    x_done = 0;
    cb_bad = 0;
    e = t_engine(32, 0, 64, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    memset(buf, 'q', sizeof(buf));
    for (i = 0; i < NX; i++) {
        CHECK(t_pair(lfd, &xfd[i], &xpeer[i]) == 0, "pair");
        setsockopt(xfd[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        xc[i].f = rp_fd_open(e, xfd[i], &xc[i]);
        CHECK(xc[i].f != NULL, "rp_fd_open");
        if (i % 4 == 3) {
            CHECK(rp_poll(e, xc[i].f, RP_IN, RP_POLL_MULTISHOT) == 0,
                "rp_poll");
            continue;
        }
        CHECK(rp_recv_start(e, xc[i].f, 0) == 0, "rp_recv_start");
        CHECK(send(xpeer[i], buf, sizeof(buf), 0) == sizeof(buf), "send");
        CHECK(rp_send(e, xc[i].f, &iov, 1, i & 1 ? RP_SEND_COPY : 0,
            i & 1 ? NULL : on_x_done, NULL) == 0, "rp_send");
    }
    CHECK(t_spin(e, 30) >= 0, "wait");
    for (i = 0; i < NX; i++) {
        if (i % 4 == 0) {
            CHECK(rp_recv_take(e, xc[i].f, &p, &len) != 0, "take");
        }
    }
    rp_engine_destroy(e);
    e = NULL;
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);
    CHECK(x_done <= NX / 2, "done called %d times for %d sends", x_done,
        NX / 2);
    for (i = 0; i < NX; i++) {
        close(xfd[i]);
        xfd[i] = -1;
    }
    for (i = 0; i < NX; i++) {
        eof = t_eof_within(xpeer[i], 100);
        CHECK(eof != 0, "peer %d: no EOF/reset within 100 ms of closing "
            "after rp_engine_destroy: the engine still holds the socket", i);
    }

out:
    for (i = 0; i < NX; i++) {
        t_close(&xfd[i]);
        t_close(&xpeer[i]);
    }
    t_close(&lfd);
    if (e != NULL) {
        rp_engine_destroy(e);
    }
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("close/control-raw-liburing-no-cancel", case_control, 10);
    t_run("close/recv-pending-eof", case_recv_loop, 10);
    t_run("close/recv-pending-eof-no-wait", case_recv_nowait, 10);
    t_run("close/recv-pending-with-data", case_recv_data, 10);
    t_run("close/poll-pending-eof", case_poll_loop, 10);
    t_run("close/poll-pending-eof-no-wait", case_poll_nowait, 10);
    t_run("close/host-closed-fd-first", case_closed_first, 10);
    t_run("close/flush-4mib", case_flush_4m, 30);
    t_run("close/flush-nothing-queued", case_flush_empty, 10);
    t_run("close/flush-gives-up-on-stuck-peer", case_flush_timeout, 10);
    t_run("close/flush-keeps-a-slow-steady-reader", case_flush_slow_reader,
        20);
    t_run("close/flush-keeps-a-slow-steady-reader-all-queued",
        case_flush_slow_queued, 20);
    t_run("close/flush-gives-up-while-host-waits-forever",
        case_flush_timeout_idle, 10);
    t_run("close/engine-closes-at-once", case_engine_closes_at_once, 10);
    t_run("close/engine-closes-flush-4mib", case_flush_4m_engine_closes, 30);
    t_run("close/engine-closes-flush-nothing-queued",
        case_flush_empty_engine_closes, 10);
    t_run("close/engine-closes-flush-keeps-a-slow-steady-reader",
        case_flush_slow_reader_engine_closes, 20);
    t_run("close/engine-closes-flush-gives-up-on-stuck-peer",
        case_flush_timeout_engine_closes, 10);
    t_run("close/engine-closes-flush-gives-up-while-host-waits-forever",
        case_flush_timeout_idle_engine_closes, 10);
    t_run("close/drop-queued-sends", case_drop_sends, 15);
    t_run("close/close-fds-inside-callbacks", case_close_in_callback, 10);
    t_run("close/host-closes-first-inside-callbacks",
        case_host_first_in_callback, 10);
    t_run("close/destroy-with-everything-in-use", case_destroy_busy, 10);
    return t_exit_code();
}
