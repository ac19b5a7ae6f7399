/*
 * After fork(): the child drops its copy of the engine with
 * rp_engine_forget() and builds its own; the parent's ring, its armed
 * receive and its buffers must not notice.
 */

#include <sys/wait.h>

#include "harness.h"

typedef struct conn {
    rp_fd_t   *f;
    int        ready;
    uint64_t   off;
    long       bad_at;
} conn_t;

static rp_engine_t  *eng;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    conn_t  *c = data;

    (void) e;
    (void) f;
    (void) res;
    if (c != NULL && ev == RP_EV_RECV) {
        c->ready = 1;
    }
}

static int
drained(void *arg)
{
    conn_t   *c = arg;
    uint8_t   buf[4096];
    size_t    n;
    long      bad;

    if (c->ready) {
        c->ready = 0;
        while ((n = rp_recv_copy(eng, c->f, buf, sizeof(buf))) > 0) {
            bad = t_pat_check(9, c->off, buf, n);
            if (bad >= 0 && c->bad_at < 0) {
                c->bad_at = (long) (c->off + bad);
            }
            c->off += n;
        }
    }
    return c->off >= 20000 || c->bad_at >= 0;
}

/* The child: forget the parent's engine, then work with a fresh one. */
static int
child(void)
{
    rp_engine_t  *e2 = NULL;
    conn_t        c;
    int           lfd, fd, peer, i;
    char          buf[16];

    rp_engine_forget(eng);
    eng = NULL;
    memset(&c, 0, sizeof(c));
    e2 = t_engine(16, 0, 16, 4096, on_event);
    if (e2 == NULL) {
        return 2;
    }
    lfd = t_listen();
    if (lfd < 0 || t_pair(lfd, &fd, &peer) < 0) {
        return 3;
    }
    c.f = rp_fd_open(e2, fd, &c);
    if (c.f == NULL || rp_recv_start(e2, c.f, 0) < 0
        || send(peer, "child", 5, 0) != 5)
    {
        return 4;
    }
    for (i = 0; i < 200 && !c.ready; i++) {
        rp_engine_wait(e2, 10);
    }
    if (rp_recv_copy(e2, c.f, buf, sizeof(buf)) != 5) {
        return 5;
    }
    rp_fd_close(e2, c.f, 0);
    rp_engine_destroy(e2);
    return 0;
}

static void
fork_case(unsigned flags)
{
    conn_t    c;
    uint8_t   buf[10000];
    int       lfd = -1, fd = -1, peer = -1, rc, st;
    pid_t     pid;

    memset(&c, 0, sizeof(c));
    c.bad_at = -1;
    eng = t_engine_flags(16, 0, 16, 4096, flags, on_event);
    if (eng == NULL) {
        goto out;
    }
    lfd = t_listen();
    CHECK(lfd >= 0, "listen");
    CHECK(t_pair(lfd, &fd, &peer) == 0, "pair");
    c.f = rp_fd_open(eng, fd, &c);
    CHECK(c.f != NULL, "rp_fd_open");
    CHECK(rp_recv_start(eng, c.f, 0) == 0, "rp_recv_start");
    CHECK(rp_engine_wait(eng, 0) >= 0, "wait");

    fflush(stdout);
    pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        _exit(child());
    }

    /* Data for the parent while the child forgets its copy. */
    t_pat_fill(9, 0, buf, sizeof(buf));
    CHECK(send(peer, buf, sizeof(buf), 0) == sizeof(buf), "send");
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status 0x%x "
        "(2: new engine, 3-5: its receive)", st);

    /* And after the child is gone. */
    t_pat_fill(9, sizeof(buf), buf, sizeof(buf));
    CHECK(send(peer, buf, sizeof(buf), 0) == sizeof(buf), "send");
    rc = t_loop(eng, drained, &c, 10, 3000);
    CHECK(rc == 0, "parent got %llu of 20000 bytes after the child's "
        "rp_engine_forget", (unsigned long long) c.off);
    CHECK(c.bad_at == -1, "wrong byte at %ld", c.bad_at);
    CHECK(rp_recv_armed(c.f), "parent's receive no longer armed");

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
}

/* SINGLE_ISSUER would refuse a child's submissions on the shared ring
   anyway; without it (a loop that moves between threads) only forgetting
   properly keeps the child off the parent's ring. */
static void case_fork(void)        { fork_case(0); }
static void case_fork_shared(void) { fork_case(RP_ENGINE_SHARED_THREADS); }

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("fork/child-forgets-parent-unaffected", case_fork, 20);
    t_run("fork/child-forgets-shared-threads-ring", case_fork_shared, 20);
    return t_exit_code();
}
