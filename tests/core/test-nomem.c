/*
 * rp_send() under a failed allocation (issue #13): all or nothing.  A send
 * whose second segment cannot be allocated must queue none of its bytes:
 * a reference send with a prefix queued has no done() attached and the
 * host frees memory the kernel may still send; a copied send with a prefix
 * queued has it sent twice when the host retries.  The test program
 * replaces malloc() (glibc's __libc_malloc underneath) to fail the n-th
 * call from a point on; the retry must then deliver every byte once.
 */

#include "harness.h"

#ifndef __SANITIZE_ADDRESS__

#ifdef _WIN32
/* mingw-w64: the program is linked with -Wl,--wrap=malloc (tests/core/
   windows.mk), so every malloc() of the test and of the engine comes to
   __wrap_malloc() */
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
#define T_MALLOC        __wrap_malloc
#define __libc_malloc   __real_malloc
#else
extern void *__libc_malloc(size_t size);
#define T_MALLOC        malloc
#endif

static int  fail_in;     /* the fail_in-th malloc() from now fails; 0: none */
static int  failed;

void *
T_MALLOC(size_t size)
{
    if (fail_in > 0 && --fail_in == 0) {
        failed++;
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(size);
}

static int       n_done;
static int       cb_bad;
static rp_fd_t  *the_f;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    (void) e; (void) data;
    if (f != the_f || ev != RP_EV_SEND || res < 0) {
        cb_bad++;
    }
}

static void
on_done(void *arg)
{
    (void) arg;
    n_done++;
}

static int
drained(void *arg)
{
    return rp_send_pending(arg) == 0;
}

/* Read exactly len bytes of stream seed from offset 0; -1 if not so. */
static long
peer_read(int fd, uint64_t seed, size_t len)
{
    uint8_t  buf[65536];
    size_t   got = 0, n;
    ssize_t  r;
    long     bad;

    while (got < len) {
        n = len - got < sizeof(buf) ? len - got : sizeof(buf);
        r = recv(fd, buf, n, 0);
        if (r <= 0) {
            return -1;
        }
        bad = t_pat_check(seed, got, buf, (size_t) r);
        if (bad >= 0) {
            return -1;
        }
        got += (size_t) r;
    }
    /* and nothing more */
    r = recv(fd, buf, 1, MSG_DONTWAIT);
    return r < 0 && errno == EAGAIN ? (long) got : -1;
}

static void
case_ref(void)
{
    rp_engine_t   *e = NULL;
    rp_iovec_t   iov[3];
    uint8_t       *mem = NULL;
    int            lfd = -1, fd = -1, peer = -1, rc, i;
    size_t         part = 1000;
    long           got;

    n_done = cb_bad = 0;
    e = t_engine(64, 0, 16, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");
    the_f = rp_fd_open(e, fd, NULL);
    CHECK(the_f != NULL, "rp_fd_open");
    mem = __libc_malloc(3 * part);
    CHECK(mem != NULL, "malloc");
    t_pat_fill(1, 0, mem, 3 * part);
    for (i = 0; i < 3; i++) {
        iov[i].iov_base = mem + i * part;
        iov[i].iov_len = part;
    }

    failed = 0;
    fail_in = 2;        /* the second segment */
    rc = rp_send(e, the_f, iov, 3, 0, on_done, NULL);
    fail_in = 0;
    CHECK(failed == 1, "the injected failure was not reached (%d)", failed);
    CHECK(rc == -ENOMEM, "rp_send with its second segment failed: %d, "
        "want -ENOMEM", rc);
    CHECK(rp_send_pending(the_f) == 0, "%zu bytes queued by a failed "
        "reference send (its memory is the caller's again)",
        rp_send_pending(the_f));
    CHECK(n_done == 0, "done() ran for a failed send");

    rc = rp_send(e, the_f, iov, 3, 0, on_done, NULL);
    CHECK(rc == 0, "retry: %s", strerror(-rc));
    rc = t_loop(e, drained, the_f, 10, 5000);
    CHECK(rc == 0, "retry not sent: %s", strerror(-rc));
    CHECK(n_done == 1, "done() ran %d times", n_done);
    got = peer_read(peer, 1, 3 * part);
    CHECK(got == (long) (3 * part), "the peer did not get the %zu bytes "
        "once and in order", 3 * part);
    CHECK(cb_bad == 0, "%d unexpected callbacks", cb_bad);

out:
    if (the_f != NULL && e != NULL) {
        rp_fd_close(e, the_f, 0);
        the_f = NULL;
    }
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    free(mem);
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
}

static void
case_copy(void)
{
    rp_engine_t   *e = NULL;
    rp_iovec_t   iov;
    uint8_t       *mem = NULL;
    int            lfd = -1, fd = -1, peer = -1, rc;
    size_t         small = 100, big = 64 << 10;
    long           got;

    n_done = cb_bad = 0;
    e = t_engine(64, 0, 16, 4096, on_event);
    if (e == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");
    the_f = rp_fd_open(e, fd, NULL);
    CHECK(the_f != NULL, "rp_fd_open");
    mem = __libc_malloc(small + big);
    CHECK(mem != NULL, "malloc");
    t_pat_fill(2, 0, mem, small + big);

    /* a copied segment with room left, then a send that needs one more */
    iov.iov_base = mem;
    iov.iov_len = small;
    rc = rp_send(e, the_f, &iov, 1, RP_SEND_COPY, NULL, NULL);
    CHECK(rc == 0, "rp_send: %s", strerror(-rc));

    iov.iov_base = mem + small;
    iov.iov_len = big;
    failed = 0;
    fail_in = 1;
    rc = rp_send(e, the_f, &iov, 1, RP_SEND_COPY, on_done, NULL);
    fail_in = 0;
    CHECK(failed == 1, "the injected failure was not reached (%d)", failed);
    CHECK(rc == -ENOMEM, "copied send with its segment failed: %d, want "
        "-ENOMEM", rc);
    CHECK(rp_send_pending(the_f) == small, "%zu bytes queued after a failed "
        "copied send, want the %zu before it (a prefix would be sent twice "
        "on the retry)", rp_send_pending(the_f), small);
    CHECK(n_done == 0, "done() ran for a failed send");

    rc = rp_send(e, the_f, &iov, 1, RP_SEND_COPY, on_done, NULL);
    CHECK(rc == 0, "retry: %s", strerror(-rc));
    rc = t_loop(e, drained, the_f, 10, 5000);
    CHECK(rc == 0, "not sent: %s", strerror(-rc));
    got = peer_read(peer, 2, small + big);
    CHECK(got == (long) (small + big), "the peer did not get the %zu bytes "
        "once and in order", small + big);
    CHECK(cb_bad == 0, "%d unexpected callbacks", cb_bad);

out:
    if (the_f != NULL && e != NULL) {
        rp_fd_close(e, the_f, 0);
        the_f = NULL;
    }
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    free(mem);
    t_close(&fd);
    t_close(&peer);
    t_close(&lfd);
}

#else /* __SANITIZE_ADDRESS__ */

static void
case_asan(void)
{
    SKIP("ASan owns malloc(), which this test replaces; the plain core "
        "suite runs it");
out:
    return;
}

#define case_ref   case_asan
#define case_copy  case_asan

#endif

/*
 * A full SQ whose submit keeps failing: the ring used from a thread that is
 * not its issuer (SINGLE_ISSUER with DEFER_TASKRUN: the kernel answers
 * -EEXIST every time).  rp_get_sqe() used to submit in a loop forever;
 * it must give up, rp_poll() fail with an error, and the ring serve on in
 * its own thread.
 */

#define SQ_FDS  12

static rp_engine_t  *sq_e;
static rp_fd_t      *sq_f[SQ_FDS];
static int           sq_rc[SQ_FDS];
static volatile int  sq_done;

static void
sq_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    (void) e; (void) f; (void) data; (void) ev; (void) res;
}

static void *
sq_thread(void *arg)
{
    int  i;

    (void) arg;
    for (i = 0; i < SQ_FDS; i++) {
        sq_rc[i] = rp_poll(sq_e, sq_f[i], RP_IN, RP_POLL_MULTISHOT);
    }
    sq_done = 1;
    return NULL;
}

static void
case_sq_full(void)
{
    pthread_t  th;
    int        lfd = -1, fd[SQ_FDS], peer[SQ_FDS], i, rc, failed_n = 0;
    double     end;

    for (i = 0; i < SQ_FDS; i++) {
        fd[i] = peer[i] = -1;
        sq_f[i] = NULL;
    }
    sq_done = 0;
#ifdef _WIN32
    SKIP("io_uring only: a SINGLE_ISSUER ring whose submit fails from "
        "another thread; the Windows engine has no submission queue");
#endif
    sq_e = t_engine(4, 0, 16, 4096, sq_event);
    if (sq_e == NULL) {
        goto out;
    }
    if (strstr(rp_engine_describe(sq_e), "defer_taskrun") == NULL) {
        SKIP("the ring is not SINGLE_ISSUER here (%s): no submit that "
            "keeps failing", rp_engine_describe(sq_e));
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    for (i = 0; i < SQ_FDS; i++) {
        CHECK(t_pair(lfd, &fd[i], &peer[i]) == 0, "pair");
        sq_f[i] = rp_fd_open(sq_e, fd[i], NULL);
        CHECK(sq_f[i] != NULL, "rp_fd_open");
    }
    CHECK(pthread_create(&th, NULL, sq_thread, NULL) == 0, "pthread_create");
    end = t_now_ms() + 3000;
    while (!sq_done && t_now_ms() < end) {
        usleep(10000);
    }
    CHECK(sq_done, "rp_poll() on a full SQ whose submit keeps failing did "
        "not return in 3 s (rp_get_sqe spinning)");
    pthread_join(th, NULL);
    for (i = 0; i < SQ_FDS; i++) {
        CHECK(sq_rc[i] == 0 || sq_rc[i] == -EBUSY, "rp_poll %d: %d", i,
            sq_rc[i]);
        failed_n += sq_rc[i] < 0;
    }
    CHECK(failed_n > 0, "no rp_poll failed with 12 polls on a 4-entry SQ "
        "that cannot be submitted");
    CHECK(sq_rc[0] == 0, "the first poll, with room in the SQ, failed");

    /* the ring's own thread: what failed is armed now, and works */
    for (i = 0; i < SQ_FDS; i++) {
        rc = rp_poll(sq_e, sq_f[i], RP_IN, RP_POLL_MULTISHOT);
        CHECK(rc == 0, "rp_poll %d from the ring's thread: %d", i, rc);
    }
    rc = rp_engine_wait(sq_e, 0);
    CHECK(rc >= 0 || rc == -ETIME, "wait: %s", strerror(-rc));

out:
    for (i = 0; i < SQ_FDS; i++) {
        if (sq_f[i] != NULL && sq_e != NULL) {
            rp_fd_close(sq_e, sq_f[i], 0);
        }
        t_close(&fd[i]);
        t_close(&peer[i]);
    }
    if (sq_e != NULL) {
        rp_engine_destroy(sq_e);
    }
    t_close(&lfd);
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("nomem/ref-send-all-or-nothing", case_ref, 20);
    t_run("nomem/copy-send-all-or-nothing", case_copy, 20);
    t_run("nomem/sq-full-submit-fails", case_sq_full, 20);
    return t_exit_code();
}
