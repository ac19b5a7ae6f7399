/*
 * A completion queue far smaller than one pass's completions.
 *
 * The kernel keeps what does not fit on its overflow list, and stops a
 * multishot request whose completion had to overflow (its last CQE comes
 * without IORING_CQE_F_MORE).  Nothing may be lost: every poll is reported
 * and keeps firing on later rounds, every received byte arrives in order.
 */

#include "harness.h"

#define NP      128     /* polled connections */
#define NR      64      /* receiving connections */
#define ROUNDS  3

typedef struct conn {
    rp_fd_t   *f;
    int        fd;
    int        peer;
    int        closed;
    int        events;
    int        ready;
    uint64_t   seed;
    uint64_t   off;
    int        eof;
    int        err;
    long       bad_at;
} conn_t;

static conn_t        conns[NP > NR ? NP : NR];
static int           nconns;
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
    if (ev == RP_EV_POLL && res > 0 && (res & RP_IN)) {
        c->events++;
    } else if (ev == RP_EV_RECV) {
        c->ready = 1;
    } else {
        cb_bad++;
    }
}

/* A tiny CQ; the kernel may insist on cq >= sq, so try a few shapes. */
static rp_engine_t *
tiny_engine(unsigned buf_count, unsigned *cq)
{
    static const unsigned  shapes[][2] = { { 8, 8 }, { 8, 16 }, { 16, 16 } };
    unsigned               i;
    rp_engine_t           *e = NULL;

    for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]) && e == NULL; i++) {
        t_rc = T_PASS;
        e = t_engine(shapes[i][0], shapes[i][1], buf_count, 4096, on_event);
        *cq = shapes[i][1];
    }
    return e;
}

static void
cleanup(void)
{
    int  i;

    for (i = 0; i < nconns; i++) {
        if (conns[i].f != NULL && eng != NULL) {
            rp_fd_close(eng, conns[i].f, 0);
        }
        conns[i].closed = 1;
        t_close(&conns[i].fd);
        t_close(&conns[i].peer);
    }
    if (eng != NULL) {
        rp_engine_destroy(eng);
    }
    eng = NULL;
}

static int  want_events;

static int
all_polled(void *arg)
{
    int  i;

    (void) arg;
    for (i = 0; i < nconns; i++) {
        if (conns[i].events < want_events) {
            return 0;
        }
    }
    return 1;
}

static void
case_polls(void)
{
    rp_stats_t  st;
    unsigned    cq = 0;
    char        buf[64];
    int         lfd = -1, i, r, rc;

    memset(conns, 0, sizeof(conns));
    nconns = 0;
    cb_bad = 0;
    eng = tiny_engine(RP_NO_BUFFERS, &cq);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    for (i = 0; i < NP; i++) {
        conn_t  *c = &conns[i];

        c->fd = c->peer = -1;
        nconns++;
        CHECK(t_pair(lfd, &c->fd, &c->peer) == 0, "pair");
        c->f = rp_fd_open(eng, c->fd, c);
        CHECK(c->f != NULL, "rp_fd_open");
        rc = rp_poll(eng, c->f, RP_IN, RP_POLL_MULTISHOT);
        CHECK(rc == 0, "rp_poll: %s", strerror(-rc));
    }
    rc = t_spin(eng, 10);
    CHECK(rc == 0, "%d completions before any data", rc);

    for (r = 1; r <= ROUNDS; r++) {
        /* Every connection becomes readable while the engine looks away. */
        for (i = 0; i < NP; i++) {
            CHECK(send(conns[i].peer, "x", 1, 0) == 1, "send");
        }
        usleep(20000);
        want_events = r;
        rc = t_loop(eng, all_polled, NULL, 10, 5000);
        for (i = 0; i < NP && rc != 0; i++) {
            CHECK(conns[i].events >= r, "round %d: conn %d reported %d "
                "times (lost after CQ overflow?)", r, i, conns[i].events);
        }
        for (i = 0; i < NP; i++) {
            while (recv(conns[i].fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
            }
            CHECK(rp_poll_armed(conns[i].f) == RP_IN, "conn %d multishot poll "
                "no longer armed", i);
        }
    }
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);
    rp_engine_stats(eng, &st);
    t_diag("cq-overflow/polls: %d polls x %d rounds, cq %u: cq_overflow %llu, "
        "cqes %llu, enters %llu", NP, ROUNDS, cq,
        (unsigned long long) st.cq_overflow, (unsigned long long) st.cqes,
        (unsigned long long) st.enters);

out:
    cleanup();
    t_close(&lfd);
}

static int
all_received(void *arg)
{
    uint8_t  buf[16384];
    int      i, done = 0;
    size_t   n;
    long     bad;

    (void) arg;
    for (i = 0; i < nconns; i++) {
        conn_t  *c = &conns[i];

        if (c->ready) {
            c->ready = 0;
            while ((n = rp_recv_copy(eng, c->f, buf, sizeof(buf))) > 0) {
                bad = t_pat_check(c->seed, c->off, buf, n);
                if (bad >= 0 && c->bad_at < 0) {
                    c->bad_at = (long) (c->off + bad);
                }
                c->off += n;
            }
            if (rp_recv_status(c->f) == 1) {
                c->eof = 1;
            } else if (rp_recv_status(c->f) < 0) {
                c->err = rp_recv_status(c->f);
            }
        }
        done += c->eof || c->err;
    }
    return done == nconns;
}

static void
case_recv(void)
{
    t_peer_t    peers[NR];
    t_peers_t   ps;
    rp_stats_t  st;
    unsigned    cq = 0;
    int         lfd = -1, i, rc, started = 0;

    memset(conns, 0, sizeof(conns));
    memset(peers, 0, sizeof(peers));
    memset(&ps, 0, sizeof(ps));
    nconns = 0;
    cb_bad = 0;
    eng = tiny_engine(512, &cq);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    for (i = 0; i < NR; i++) {
        conn_t  *c = &conns[i];

        c->fd = c->peer = -1;
        nconns++;
        CHECK(t_pair(lfd, &c->fd, &c->peer) == 0, "pair");
        c->seed = 500 + i;
        c->bad_at = -1;
        c->f = rp_fd_open(eng, c->fd, c);
        CHECK(c->f != NULL, "rp_fd_open");
        rc = rp_recv_start(eng, c->f, 0);
        CHECK(rc == 0, "rp_recv_start: %s", strerror(-rc));
        peers[i].fd = c->peer;
        peers[i].seed = c->seed;
        peers[i].total = 256 * 1024;
        peers[i].max_chunk = 8192;
        peers[i].shut = 1;
    }
    rc = rp_engine_wait(eng, 0);
    CHECK(rc >= 0, "wait: %s", strerror(-rc));

    ps.p = peers;
    ps.n = NR;
    ps.limit_ms = 20000;
    CHECK(t_peers_start(&ps) == 0, "pthread_create");
    started = 1;
    /* Let completions pile up before the first reap. */
    usleep(30000);
    rc = t_loop(eng, all_received, NULL, 10, 20000);
    t_peers_join(&ps);
    started = 0;
    CHECK(rc == 0, "not all streams ended: %s", strerror(-rc));
    for (i = 0; i < NR; i++) {
        conn_t  *c = &conns[i];

        CHECK(peers[i].err == 0, "peer %d: %s", i, strerror(peers[i].err));
        CHECK(c->bad_at == -1, "conn %d wrong byte at %ld", i, c->bad_at);
        CHECK(c->err == 0, "conn %d error %s", i, strerror(-c->err));
        CHECK(c->off == peers[i].total, "conn %d got %llu of %llu", i,
            (unsigned long long) c->off, (unsigned long long) peers[i].total);
    }
    CHECK(cb_bad == 0, "%d bad callbacks", cb_bad);
    rp_engine_stats(eng, &st);
    t_diag("cq-overflow/recv: %d conns, cq %u: cq_overflow %llu, rearms %llu, "
        "enobufs %llu, cqes/enter %.2f", NR, cq,
        (unsigned long long) st.cq_overflow, (unsigned long long) st.rearms,
        (unsigned long long) st.enobufs,
        st.enters ? (double) st.cqes / st.enters : 0.0);

out:
    if (started) {
        t_peers_join(&ps);
    }
    for (i = 0; i < nconns; i++) {
        conns[i].peer = -1;     /* the peer thread's sockets, closed below */
    }
    cleanup();
    for (i = 0; i < NR; i++) {
        if (peers[i].fd > 0) {
            close(peers[i].fd);
        }
    }
    t_close(&lfd);
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("cq-overflow/64-multishot-recvs", case_recv, 40);
    t_run("cq-overflow/128-multishot-polls", case_polls, 10);
    return t_exit_code();
}
