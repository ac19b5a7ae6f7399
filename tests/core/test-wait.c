/*
 * Batching and waiting: a submission queue far smaller than one pass's
 * burst of requests flushes itself and nothing is lost; rp_engine_wait()
 * honours its timeout (0: no blocking, n ms: about n ms, -1: until a
 * completion).
 */

#include "harness.h"

#define NC  64      /* connections in completion mode */
#define NR  128     /* connections in readiness mode */
#define MSG 100
#define OUT 1024

typedef struct conn {
    rp_fd_t  *f;
    int       fd;
    int       peer;
    int       readiness;
    int       closed;
    int       ready;
    size_t    got;
    long      bad_at;
    int       send_res;
    unsigned  poll_mask;
    int       poll_events;
} conn_t;

static conn_t        conns[NC + NR];
static int           cb_bad;
static rp_engine_t  *eng;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    if (c == NULL || c->closed || c->f != f) {
        cb_bad++;
        return;
    }
    switch (ev) {
    case RP_EV_POLL:
        if (!c->readiness || res < 0) {
            cb_bad++;
        }
        c->poll_mask |= (unsigned) res;
        c->poll_events++;
        break;
    case RP_EV_RECV:
        c->ready = 1;
        break;
    case RP_EV_SEND:
        c->send_res += res;
        break;
    default:
        cb_bad++;
    }
}

static int
burst_done(void *arg)
{
    uint8_t  buf[MSG * 2];
    int      i, done = 0;
    size_t   n;
    long     bad;

    (void) arg;
    for (i = 0; i < NC + NR; i++) {
        conn_t  *c = &conns[i];

        if (c->readiness) {
            done += (c->poll_mask & (i & 1 ? RP_OUT : RP_IN)) != 0;
            continue;
        }
        if (c->ready) {
            c->ready = 0;
            while ((n = rp_recv_copy(eng, c->f, buf, sizeof(buf))) > 0) {
                bad = t_pat_check(i, c->got, buf, n);
                if (bad >= 0 && c->bad_at < 0) {
                    c->bad_at = (long) (c->got + bad);
                }
                c->got += n;
            }
        }
        done += c->got >= MSG && c->send_res == OUT;
    }
    return done == NC + NR;
}

static void
case_sq_full(void)
{
    rp_stats_t  st;
    uint8_t     buf[OUT];
    unsigned    entries = 4;
    int         lfd = -1, i, rc, calls = 0;

    memset(conns, 0, sizeof(conns));
    for (i = 0; i < NC + NR; i++) {
        conns[i].fd = conns[i].peer = -1;
    }
    cb_bad = 0;

    eng = t_engine(entries, 0, 256, 4096, on_event);
    if (eng == NULL) {
        t_rc = T_PASS;
        entries = 8;
        eng = t_engine(entries, 0, 256, 4096, on_event);
    }
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    for (i = 0; i < NC + NR; i++) {
        conn_t  *c = &conns[i];

        CHECK(t_pair(lfd, &c->fd, &c->peer) == 0, "pair %d", i);
        c->readiness = i >= NC;
        c->bad_at = -1;
        c->f = rp_fd_open(eng, c->fd, c);
        CHECK(c->f != NULL, "rp_fd_open");
        /* Data is already waiting: everything completes at once. */
        t_pat_fill(i, 0, buf, MSG);
        CHECK(send(c->peer, buf, MSG, 0) == MSG, "peer send");
    }
    usleep(10000);

    /* One pass: hundreds of requests into a 4-entry SQ (readiness fds:
       even ones wait for RP_IN, odd ones for RP_OUT). */
    for (i = 0; i < NC + NR; i++) {
        conn_t  *c = &conns[i];

        if (c->readiness) {
            rc = rp_poll(eng, c->f, i & 1 ? RP_OUT : RP_IN, RP_POLL_ONESHOT);
            CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
            calls++;
            continue;
        }
        rc = rp_recv_start(eng, c->f, 0);
        CHECK(rc == 0, "rp_recv_start: %s", strerror(-rc));
        t_pat_fill(1000 + i, 0, buf, OUT);
        rc = rp_send(eng, c->f, &(rp_iovec_t) { buf, OUT }, 1,
            RP_SEND_COPY, NULL, NULL);
        CHECK(rc == 0, "rp_send: %s", strerror(-rc));
        calls += 2;
    }
#ifndef _WIN32
    /* Windows has no submission queue to fill: each request goes to the
       kernel as it is made (RIO's deferred ones at the commit) */
    rp_engine_stats(eng, &st);
    CHECK(st.sq_full > 0, "stats.sq_full 0 after %d requests into a "
        "%u-entry SQ without a wait", calls, entries);
#endif

    rc = t_loop(eng, burst_done, NULL, 10, 10000);
    for (i = 0; i < NC + NR && rc != 0; i++) {
        conn_t  *c = &conns[i];

        CHECK(c->readiness ? (c->poll_mask & (i & 1 ? RP_OUT : RP_IN)) != 0
                           : c->got >= MSG && c->send_res == OUT,
            "conn %d (%s) never completed: got %zu send %d poll 0x%x", i,
            c->readiness ? "poll" : "recv/send", c->got, c->send_res,
            c->poll_mask);
    }
    CHECK(rc == 0, "burst not complete: %s", strerror(-rc));
    for (i = 0; i < NC + NR; i++) {
        conn_t  *c = &conns[i];

        CHECK(c->bad_at == -1, "conn %d wrong byte at %ld", i, c->bad_at);
        CHECK(!c->readiness || c->poll_events == 1, "one-shot poll of conn "
            "%d fired %d times", i, c->poll_events);
        if (!c->readiness) {
            ssize_t  n = recv(c->peer, buf, OUT, MSG_WAITALL);

            CHECK(n == OUT, "peer %d read %zd of %d", i, n, OUT);
            CHECK(t_pat_check(1000 + i, 0, buf, OUT) == -1, "peer %d: wrong "
                "bytes", i);
        }
    }
    CHECK(cb_bad == 0, "%d unexpected callbacks", cb_bad);
    rp_engine_stats(eng, &st);
    t_diag("sq-full: %d requests, %u-entry SQ: sq_full %llu, enters %llu, "
        "cq_overflow %llu", calls, entries, (unsigned long long) st.sq_full,
        (unsigned long long) st.enters, (unsigned long long) st.cq_overflow);

out:
    for (i = 0; i < NC + NR; i++) {
        if (conns[i].f != NULL && eng != NULL) {
            rp_fd_close(eng, conns[i].f, 0);
        }
        conns[i].closed = 1;
        t_close(&conns[i].fd);
        t_close(&conns[i].peer);
    }
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}

/* ---- timeouts ------------------------------------------------------------- */

static void
timed_wait(int armed)
{
    conn_t      c;
    rp_stats_t  st0, st;
    double      t0, ms, min;
    int         lfd = -1, peer = -1, rc, i;

    memset(&c, 0, sizeof(c));
    c.fd = -1;
    cb_bad = 0;
    eng = t_engine(16, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    if (armed) {
        lfd = t_listen();
        CHECK(lfd >= 0, "listen");
        CHECK(t_pair(lfd, &c.fd, &peer) == 0, "pair");
        c.f = rp_fd_open(eng, c.fd, &c);
        CHECK(c.f != NULL, "rp_fd_open");
        CHECK(rp_recv_start(eng, c.f, 0) == 0, "rp_recv_start");
        rc = rp_engine_wait(eng, 0);
        CHECK(rc >= 0, "wait(0): %s", strerror(-rc));
    }

    rp_engine_stats(eng, &st0);
    min = 1e9;
    for (i = 0; i < 3; i++) {
        t0 = t_now_ms();
        rc = rp_engine_wait(eng, 0);
        ms = t_now_ms() - t0;
        CHECK(rc == 0, "rp_engine_wait(0) with nothing ready returned %d", rc);
        CHECK(ms < 100, "rp_engine_wait(0) blocked %.1f ms", ms);
        min = ms < min ? ms : min;
    }
    /* The bound above forgives a loaded machine; the fastest of three
       calls must not have waited at all. */
    CHECK(min < 10, "rp_engine_wait(0) took at least %.1f ms", min);
    for (i = 0; i < 3; i++) {
        t0 = t_now_ms();
        rc = rp_engine_wait(eng, 50);
        ms = t_now_ms() - t0;
        CHECK(rc == 0, "rp_engine_wait(50) with nothing ready returned %d "
            "(%s)", rc, rc < 0 ? strerror(-rc) : "completions");
        CHECK(ms >= 45 && ms <= 250, "rp_engine_wait(50) returned after "
            "%.1f ms", ms);
    }
    rp_engine_stats(eng, &st);
    CHECK(st.waits == st0.waits + 6, "stats.waits moved by %llu for 6 calls",
        (unsigned long long) (st.waits - st0.waits));
    CHECK(cb_bad == 0, "%d unexpected callbacks", cb_bad);

out:
    if (c.f != NULL && eng != NULL) {
        rp_fd_close(eng, c.f, 0);
    }
    t_close(&c.fd);
    t_close(&peer);
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}

static void case_timeout_idle(void)  { timed_wait(0); }
static void case_timeout_armed(void) { timed_wait(1); }

static void *
late_sender(void *arg)
{
    usleep(40000);
    if (send(*(int *) arg, "late", 4, 0) != 4) {
        return arg;
    }
    return NULL;
}

static void
case_forever_wakes(void)
{
    conn_t      c;
    pthread_t   th;
    double      t0, ms;
    int         lfd = -1, peer = -1, rc, started = 0;

    memset(&c, 0, sizeof(c));
    c.fd = -1;
    cb_bad = 0;
    eng = t_engine(16, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &c.fd, &peer) == 0, "pair");
    c.f = rp_fd_open(eng, c.fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    CHECK(rp_recv_start(eng, c.f, 0) == 0, "rp_recv_start");
    rc = rp_engine_wait(eng, 0);
    CHECK(rc >= 0, "wait(0): %s", strerror(-rc));

    CHECK(pthread_create(&th, NULL, late_sender, &peer) == 0, "thread");
    started = 1;
    t0 = t_now_ms();
    do {
        rc = rp_engine_wait(eng, -1);
    } while (rc == -EINTR);
    ms = t_now_ms() - t0;
    CHECK(rc >= 1, "rp_engine_wait(-1) returned %d", rc);
    CHECK(c.ready, "returned without RP_EV_RECV");
    CHECK(ms >= 30 && ms < 1000, "rp_engine_wait(-1) returned after %.1f ms "
        "for data sent after 40 ms", ms);
    CHECK(rp_recv_queued(c.f) == 4, "%zu bytes queued, want 4",
        rp_recv_queued(c.f));

out:
    if (started) {
        pthread_join(th, NULL);
    }
    if (c.f != NULL && eng != NULL) {
        rp_fd_close(eng, c.f, 0);
    }
    t_close(&c.fd);
    t_close(&peer);
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}

#ifdef _WIN32
/* No POSIX signals on Windows: nothing ends a wait from outside but a
   completion (a host posts its own to the port). */
static void
case_signal(void)
{
    SKIP("Windows has no signals to end GetQueuedCompletionStatusEx");
out:
    return;
}
#else
/*
 * A signal ends rp_engine_wait(-1) with -EINTR (or 0), as it ends
 * epoll_wait(): nginx workers notice reload and quit this way.
 */
static volatile sig_atomic_t  got_sig;

static void
on_usr1(int sig)
{
    (void) sig;
    got_sig = 1;
}

static void *
signaller(void *arg)
{
    usleep(50000);
    kill(getpid(), SIGUSR1);
    (void) arg;
    return NULL;
}

static void
case_signal(void)
{
    struct sigaction  sa;
    pthread_t         th;
    sigset_t          set;
    double            t0, ms;
    int               rc, started = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;            /* no SA_RESTART, like nginx */
    sigaction(SIGUSR1, &sa, NULL);
    got_sig = 0;
    eng = t_engine(16, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    /* Only this thread takes the signal. */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    CHECK(pthread_create(&th, NULL, signaller, NULL) == 0, "thread");
    started = 1;
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    t0 = t_now_ms();
    rc = rp_engine_wait(eng, -1);
    ms = t_now_ms() - t0;
    CHECK(got_sig, "returned (%d) without the signal", rc);
    CHECK(rc == -EINTR || rc == 0, "rp_engine_wait(-1) returned %d (%s) "
        "for a signal", rc, rc < 0 ? strerror(-rc) : "completions");
    CHECK(ms < 1000, "returned %.0f ms after start", ms);

out:
    if (started) {
        pthread_join(th, NULL);
    }
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}
#endif

/* rp_engine_flush(): queued requests reach the kernel with no wait. */
static void
case_flush(void)
{
    conn_t   c;
    char     buf[16];
    int      lfd = -1, peer = -1, rc;
    ssize_t  n;
    struct pollfd  pfd;

    memset(&c, 0, sizeof(c));
    c.fd = -1;
    eng = t_engine(16, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &c.fd, &peer) == 0, "pair");
    c.f = rp_fd_open(eng, c.fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    rc = rp_send(eng, c.f, &(rp_iovec_t) { "flushed", 7 }, 1,
        RP_SEND_COPY, NULL, NULL);
    CHECK(rc == 0, "rp_send: %s", strerror(-rc));
    rc = rp_engine_flush(eng);
    CHECK(rc >= 1, "rp_engine_flush returned %d with a send queued", rc);
    pfd.fd = peer;
    pfd.events = POLLIN;
    CHECK(poll(&pfd, 1, 100) == 1, "peer got nothing within 100 ms of "
        "rp_engine_flush");
    n = recv(peer, buf, sizeof(buf), 0);
    CHECK(n == 7 && memcmp(buf, "flushed", 7) == 0, "peer got %zd bytes", n);
    CHECK(rp_engine_flush(eng) == 0, "flush with nothing queued");

out:
    if (c.f != NULL && eng != NULL) {
        rp_fd_close(eng, c.f, 0);
    }
    t_close(&c.fd);
    t_close(&peer);
    t_close(&lfd);
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}

static void
case_wait_us(void)
{
    double  t0, ms, min = 1e9;
    int     rc, i;

    eng = t_engine(16, 0, 16, 4096, on_event);
    if (eng == NULL) {
        goto out;
    }
    for (i = 0; i < 5; i++) {
        t0 = t_now_ms();
        rc = rp_engine_wait_us(eng, 3500);
        ms = t_now_ms() - t0;
        CHECK(rc == 0, "rp_engine_wait_us(3500) returned %d", rc);
        CHECK(ms >= 3.4, "rp_engine_wait_us(3500) returned after %.2f ms",
            ms);
        min = ms < min ? ms : min;
    }
    /* Not rounded up to whole milliseconds (or more) every time. */
    CHECK(min < 4.5, "rp_engine_wait_us(3500): fastest of 5 took %.2f ms",
        min);

out:
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("wait/sq-smaller-than-burst", case_sq_full, 30);
    t_run("wait/timeout-nothing-armed", case_timeout_idle, 10);
    t_run("wait/timeout-recv-armed", case_timeout_armed, 10);
    t_run("wait/forever-wakes-on-data", case_forever_wakes, 10);
    t_run("wait/signal-ends-forever-wait", case_signal, 10);
    t_run("wait/flush-submits-without-waiting", case_flush, 10);
    t_run("wait/wait-us-microseconds", case_wait_us, 10);
    return t_exit_code();
}
