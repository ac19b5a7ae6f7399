/*
 * libFuzzer target (issue #13): the engine on the real kernel ring, driven
 * by a fuzzed script over up to four unix socketpairs.  Each script byte
 * picks an operation on a connection: the peer writes the next bytes of its
 * stream, the host reads some (copied, or taken and held, which starves the
 * 8 provided buffers), the host sends (copied or by reference), the peer
 * reads some, the receive stops or restarts, an engine pass runs, or the
 * connection closes (flushing what is queued) and a new socketpair takes
 * its place, usually on the same descriptor numbers (fd reuse).
 *
 * What must hold, or the target aborts (a finding):
 * - every byte the host reads is the peer's stream, in order, once;
 * - every byte the host queued reaches the peer, in order, once, also after
 *   the host closed the connection (RP_CLOSE_FLUSH), followed by EOF;
 * - the engine never calls back for a closed connection (stale completions
 *   after fd reuse are dropped) nor reports an error on a healthy pair;
 * - at the end of each script, with the held buffers released, everything
 *   is delivered within 2 s (no stall), and every provided buffer is back.
 *
 *   make fuzz                  FUZZ_SECONDS (default 120) of fuzzing
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ringplug.h"

#define NCONN      4
#define NHOLD      8
#define BUF_COUNT  8
#define BUF_SIZE   512
#define REF_MAX    8            /* reference sends in flight per connection */

typedef struct {
    int        live;
    uint32_t   gen;             /* bumped at every open */
    rp_fd_t   *f;
    int        fd;              /* the host's end */
    int        peer;            /* the peer's end */
    uint64_t   up_sent;         /* peer -> host: written by the peer */
    uint64_t   up_got;          /* read by the host, checked */
    int        up_eof;
    uint64_t   down_sent;       /* host -> peer: queued by the host */
    uint64_t   down_got;        /* read by the peer, checked */
    uint32_t   held[NHOLD];
    int        nheld;
    int        receiving;
    unsigned   seed;
    uint8_t   *ref[REF_MAX];    /* reference sends' memory, freed by done */
} conn_t;

typedef struct {                /* a connection closed with bytes queued */
    int        peer;
    uint64_t   want;
    uint64_t   got;
    unsigned   seed;
} closing_t;

static rp_engine_t  *eng;
static conn_t        conns[NCONN];
static closing_t     closing[64];
static int           nclosing;
static unsigned      seeds;

#define FAIL(...)                                                           \
    do {                                                                    \
        fprintf(stderr, "fuzz-engine: " __VA_ARGS__);                       \
        fputc('\n', stderr);                                                \
        abort();                                                            \
    } while (0)

static inline uint8_t
pat(unsigned seed, uint64_t off)
{
    uint64_t  x = (off >> 3) * 0x9e3779b97f4a7c15ull ^ seed;

    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return (uint8_t) (x >> ((off & 7) * 8));
}

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    if (c == NULL || c < conns || c >= conns + NCONN) {
        FAIL("callback with foreign data %p", data);
    }
    if (!c->live || c->f != f) {
        FAIL("callback (ev %d res %d) for a closed connection", ev, res);
    }
    if (ev == RP_EV_SEND && res < 0) {
        FAIL("send error %d on a healthy pair", res);
    }
}

typedef struct {
    conn_t   *c;
    uint8_t  *mem;
    uint32_t  gen;
} refarg_t;

static void
ref_done(void *arg)
{
    refarg_t  *r = arg;

    free(r->mem);
    free(r);
}

static void
conn_open(conn_t *c)
{
    int  sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) < 0)
    {
        FAIL("socketpair: %s", strerror(errno));
    }
    memset(c, 0, sizeof(*c));
    c->fd = sv[0];
    c->peer = sv[1];
    c->seed = ++seeds;
    c->f = rp_fd_open(eng, c->fd, c);
    if (c->f == NULL) {
        FAIL("rp_fd_open: %s", strerror(errno));
    }
    c->live = 1;
    if (rp_recv_start(eng, c->f, 4 * BUF_SIZE) < 0) {
        FAIL("rp_recv_start");
    }
    c->receiving = 1;
}

static void
release_held(conn_t *c)
{
    while (c->nheld > 0) {
        rp_buf_release(eng, c->held[--c->nheld]);
    }
}

static void
host_read(conn_t *c, size_t n, int take)
{
    uint8_t      buf[4096];
    const void  *p;
    size_t       got, i;
    uint32_t     tok;

    if (take && c->nheld < NHOLD) {
        got = 0;
        tok = rp_recv_take(eng, c->f, &p, &got);
        if (tok == 0) {
            return;
        }
        for (i = 0; i < got; i++) {
            if (((const uint8_t *) p)[i] != pat(c->seed, c->up_got + i)) {
                FAIL("conn %d: byte %llu read (taken) is not the peer's",
                     (int) (c - conns), (unsigned long long) (c->up_got + i));
            }
        }
        c->up_got += got;
        c->held[c->nheld++] = tok;
        return;
    }
    if (n > sizeof(buf)) {
        n = sizeof(buf);
    }
    got = rp_recv_copy(eng, c->f, buf, n);
    for (i = 0; i < got; i++) {
        if (buf[i] != pat(c->seed, c->up_got + i)) {
            FAIL("conn %d: byte %llu read is not the peer's",
                 (int) (c - conns), (unsigned long long) (c->up_got + i));
        }
    }
    c->up_got += got;
}

static void
peer_write(conn_t *c, size_t n)
{
    uint8_t  buf[8192];
    size_t   i;
    ssize_t  w;

    if (n > sizeof(buf)) {
        n = sizeof(buf);
    }
    for (i = 0; i < n; i++) {
        buf[i] = pat(c->seed, c->up_sent + i);
    }
    w = write(c->peer, buf, n);
    if (w > 0) {
        c->up_sent += (size_t) w;
    }
}

static void
host_send(conn_t *c, size_t n, int ref)
{
    rp_iovec_t  iov[2];
    uint8_t      *mem;
    refarg_t     *r;
    size_t        i, half;
    int           rc;

    if (n == 0 || rp_send_pending(c->f) > (256u << 10)) {
        return;
    }
    mem = malloc(n);
    if (mem == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        mem[i] = pat(c->seed ^ 0x5a5a5a5a, c->down_sent + i);
    }
    half = n / 2;
    iov[0].iov_base = mem;
    iov[0].iov_len = half;
    iov[1].iov_base = mem + half;
    iov[1].iov_len = n - half;
    if (ref) {
        r = malloc(sizeof(*r));
        if (r == NULL) {
            free(mem);
            return;
        }
        r->c = c;
        r->mem = mem;
        rc = rp_send(eng, c->f, iov, 2, 0, ref_done, r);
        if (rc < 0) {
            free(mem);
            free(r);
            FAIL("rp_send (ref): %d", rc);
        }
    } else {
        rc = rp_send(eng, c->f, iov, 2, RP_SEND_COPY, NULL, NULL);
        free(mem);
        if (rc < 0) {
            FAIL("rp_send (copy): %d", rc);
        }
    }
    c->down_sent += n;
}

/* Read what the peer has; returns 1 at EOF. */
static int
peer_drain(int fd, unsigned seed, uint64_t *got, size_t max)
{
    uint8_t  buf[8192];
    ssize_t  r;
    size_t   i;

    while (max > 0) {
        r = read(fd, buf, max < sizeof(buf) ? max : sizeof(buf));
        if (r == 0) {
            return 1;
        }
        if (r < 0) {
            return 0;
        }
        for (i = 0; i < (size_t) r; i++) {
            if (buf[i] != pat(seed ^ 0x5a5a5a5a, *got + i)) {
                FAIL("peer: byte %llu is not the host's",
                     (unsigned long long) (*got + i));
            }
        }
        *got += (size_t) r;
        max -= (size_t) r;
    }
    return 0;
}

static void drain_all(void);

static void
conn_close(conn_t *c)
{
    closing_t  *k;

    if (nclosing == (int) (sizeof(closing) / sizeof(closing[0]))) {
        drain_all();                /* the harness's table is full */
    }
    release_held(c);
    c->live = 0;
    rp_fd_close(eng, c->f, RP_CLOSE_FLUSH);
    close(c->fd);
    k = &closing[nclosing++];
    k->peer = c->peer;
    k->want = c->down_sent;
    k->got = c->down_got;
    k->seed = c->seed;
}

static uint64_t
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static int
settled(void)
{
    int  i;

    for (i = 0; i < NCONN; i++) {
        if (conns[i].live && (conns[i].up_got != conns[i].up_sent
                              || conns[i].down_got != conns[i].down_sent))
        {
            return 0;
        }
    }
    return nclosing == 0;
}

static void
drain_all(void)
{
    uint64_t  end = now_ms() + 2000;
    int       i, eof;

    for (i = 0; i < NCONN; i++) {
        if (conns[i].live) {
            release_held(&conns[i]);
            if (!conns[i].receiving) {
                (void) rp_recv_start(eng, conns[i].f, 4 * BUF_SIZE);
                conns[i].receiving = 1;
            }
        }
    }
    while (!settled()) {
        if (now_ms() > end) {
            for (i = 0; i < NCONN; i++) {
                fprintf(stderr, "conn %d: live %d up %llu/%llu down "
                        "%llu/%llu pending %zu queued %zu\n", i,
                        conns[i].live,
                        (unsigned long long) conns[i].up_got,
                        (unsigned long long) conns[i].up_sent,
                        (unsigned long long) conns[i].down_got,
                        (unsigned long long) conns[i].down_sent,
                        conns[i].live ? rp_send_pending(conns[i].f) : 0,
                        conns[i].live ? rp_recv_queued(conns[i].f) : 0);
            }
            FAIL("stall: not delivered within 2 s (%d closing)", nclosing);
        }
        (void) rp_engine_wait(eng, 1);
        for (i = 0; i < NCONN; i++) {
            if (conns[i].live) {
                host_read(&conns[i], 4096, 0);
                (void) peer_drain(conns[i].peer, conns[i].seed,
                                  &conns[i].down_got, SIZE_MAX);
            }
        }
        for (i = 0; i < nclosing; i++) {
            eof = peer_drain(closing[i].peer, closing[i].seed,
                             &closing[i].got, SIZE_MAX);
            if (eof) {
                if (closing[i].got != closing[i].want) {
                    FAIL("closed connection: peer got %llu of %llu bytes "
                         "queued before the close",
                         (unsigned long long) closing[i].got,
                         (unsigned long long) closing[i].want);
                }
                close(closing[i].peer);
                closing[i] = closing[--nclosing];
                i--;
            }
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_engine_params_t  p;
    char                why[256];
    size_t              i, n;
    conn_t             *c;
    int                 rc;

    if (eng == NULL) {
        memset(&p, 0, sizeof(p));
        p.entries = 16;         /* a small SQ: full-SQ flushes too */
        p.buf_count = BUF_COUNT;
        p.buf_size = BUF_SIZE;
        rc = rp_engine_create(&p, on_event, &eng, why, sizeof(why));
        if (rc < 0) {
            fprintf(stderr, "fuzz-engine: no engine: %s\n", why);
            exit(1);
        }
    }
    for (i = 0; i < NCONN; i++) {
        conn_open(&conns[i]);
    }

    for (i = 0; i + 1 < size && i < 4096; i += 2) {
        c = &conns[data[i] & (NCONN - 1)];
        n = (size_t) data[i + 1] * 37 + 1;
        switch ((data[i] >> 2) % 9) {
        case 0:
            peer_write(c, n);
            break;
        case 1:
            host_read(c, n, 0);
            break;
        case 2:
            host_read(c, n, 1);
            break;
        case 3:
            host_send(c, n, data[i] & 0x80);
            break;
        case 4:
            (void) peer_drain(c->peer, c->seed, &c->down_got, n);
            break;
        case 5:
            if (c->receiving) {
                rp_recv_stop(eng, c->f);
            } else {
                (void) rp_recv_start(eng, c->f, 4 * BUF_SIZE);
            }
            c->receiving = !c->receiving;
            break;
        case 6:
        case 7:
            (void) rp_engine_wait(eng, 0);
            break;
        case 8:
            if (data[i + 1] & 1) {
                conn_close(c);
                conn_open(c);       /* usually the same fd numbers */
            } else if (c->nheld > 0) {
                rp_buf_release(eng, c->held[--c->nheld]);
            }
            break;
        }
    }

    drain_all();

    for (i = 0; i < NCONN; i++) {
        conn_close(&conns[i]);
    }
    drain_all();
    for (i = 0; i < 50 && rp_bufs_free(eng) != rp_bufs_total(eng); i++) {
        (void) rp_engine_wait(eng, 1);
    }
    if (rp_bufs_free(eng) != rp_bufs_total(eng)) {
        FAIL("%u of %u provided buffers not back after every connection "
             "closed", rp_bufs_total(eng) - rp_bufs_free(eng),
             rp_bufs_total(eng));
    }
    return 0;
}
