/*
 * Allocation failure injection (issue #13): the engine built with
 * -DRP_FAULT_INJECTION and ASan+LSan; a scenario that uses every path that
 * allocates (engine and buffer ring setup, fd open, op chunks, copied and
 * reference send segments, receive, poll, close with a flush) runs once to
 * count the allocations it reaches, then once per n with the n-th one
 * failed, each in a child process.  Each must end with exit 0: the failure
 * reported to the host as an error (-ENOMEM, NULL with errno), the host
 * carrying on or cleaning up, no crash, no leak (LSan), and on the
 * connection that goes on every byte delivered once and in order both
 * ways (a send refused with -ENOMEM queued nothing and is sent again).
 */

#include "harness.h"
#include "engine.h"

#ifndef RP_FAULT_INJECTION
#error "build with -DRP_FAULT_INJECTION"
#endif

#define UP_BYTES    20000
#define SENDS       24

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    (void) e; (void) f; (void) data; (void) ev; (void) res;
}

static void
ref_done(void *arg)
{
    free(arg);
}

/* 0: handled (whatever failed), 1: a check failed */
static int
scenario(void)
{
    rp_engine_params_t   p;
    rp_engine_t         *e = NULL;
    rp_fd_t             *f = NULL, *g = NULL;
    char                 why[256];
    uint8_t              buf[8192], *mem;
    rp_iovec_t         iov, iov2[2];
    uint64_t             up_got = 0, down_sent = 0, down_got = 0;
    size_t               n, len;
    ssize_t              r;
    int                  lfd = -1, fd = -1, peer = -1, fd2 = -1, peer2 = -1;
    int                  rc, i, bad = 0, tries;
    double               end;

    memset(&p, 0, sizeof(p));
    p.entries = 8;
    p.buf_count = 8;
    p.buf_size = 1024;
    rc = rp_engine_create(&p, on_event, &e, why, sizeof(why));
    if (rc < 0) {
        if (rc != -ENOMEM || why[0] == '\0') {
            fprintf(stderr, "engine: %d without a reason (%s)\n", rc, why);
            return 1;
        }
        return 0;                   /* a clear error: done */
    }
    lfd = t_listen();
    if (lfd < 0 || t_pair(lfd, &fd, &peer) < 0
        || t_pair(lfd, &fd2, &peer2) < 0)
    {
        fprintf(stderr, "pairs\n");
        bad = 1;
        goto out;
    }
    t_set_nonblock(peer, 1);

    f = rp_fd_open(e, fd, NULL);
    if (f == NULL) {
        if (errno != ENOMEM) {
            fprintf(stderr, "rp_fd_open: NULL with errno %d\n", errno);
            bad = 1;
        }
        goto out;
    }
    g = rp_fd_open(e, fd2, NULL);
    if (g == NULL && errno != ENOMEM) {
        fprintf(stderr, "rp_fd_open 2: NULL with errno %d\n", errno);
        bad = 1;
        goto out;
    }
    if (g != NULL) {
        rc = rp_poll(e, g, RP_IN, RP_POLL_MULTISHOT);
        if (rc < 0 && rc != -ENOMEM) {
            fprintf(stderr, "rp_poll: %d\n", rc);
            bad = 1;
            goto out;
        }
    }

    /* receive: a refused start is tried again, as a host would */
    for (tries = 0; (rc = rp_recv_start(e, f, 0)) == -ENOMEM && tries < 2;
         tries++) { }
    if (rc < 0) {
        fprintf(stderr, "rp_recv_start: %d\n", rc);
        bad = 1;
        goto out;
    }
    t_pat_fill(7, 0, buf, sizeof(buf));
    for (n = 0; n < UP_BYTES; n += len) {
        len = UP_BYTES - n < 4000 ? UP_BYTES - n : 4000;
        t_pat_fill(7, n, buf, len);
        if (write(peer, buf, len) != (ssize_t) len) {
            fprintf(stderr, "peer write\n");
            bad = 1;
            goto out;
        }
    }

    /* sends: copied and by reference; -ENOMEM queues nothing: again */
    for (i = 0; i < SENDS; i++) {
        len = 1000 + (size_t) i * 700;
        mem = malloc(len);
        t_pat_fill(8, down_sent, mem, len);
        /* two pieces: a failure on the second must not queue the first */
        iov2[0].iov_base = mem;
        iov2[0].iov_len = len / 2;
        iov2[1].iov_base = mem + len / 2;
        iov2[1].iov_len = len - len / 2;
        for (tries = 0; tries < 2; tries++) {
            if (i & 1) {
                rc = rp_send(e, f, iov2, 2, 0, ref_done, mem);
            } else {
                rc = rp_send(e, f, iov2, 2, RP_SEND_COPY, NULL, NULL);
            }
            if (rc != -ENOMEM) {
                break;
            }
        }
        if (rc < 0) {
            fprintf(stderr, "rp_send %d: %d\n", i, rc);
            free(mem);
            bad = 1;
            goto out;
        }
        if (!(i & 1)) {
            free(mem);
        }
        down_sent += len;
        if (i % 4 == 3) {
            (void) rp_engine_wait(e, 0);
        }
    }

    end = t_now_ms() + 5000;
    while (up_got < UP_BYTES || down_got < down_sent) {
        if (t_now_ms() > end) {
            fprintf(stderr, "stall: up %llu of %d, down %llu of %llu\n",
                    (unsigned long long) up_got, UP_BYTES,
                    (unsigned long long) down_got,
                    (unsigned long long) down_sent);
            bad = 1;
            goto out;
        }
        (void) rp_engine_wait(e, 2);
        while ((n = rp_recv_copy(e, f, buf, sizeof(buf))) > 0) {
            if (t_pat_check(7, up_got, buf, n) >= 0) {
                fprintf(stderr, "received byte out of order\n");
                bad = 1;
                goto out;
            }
            up_got += n;
        }
        while ((r = read(peer, buf, sizeof(buf))) > 0) {
            if (t_pat_check(8, down_got, buf, (size_t) r) >= 0) {
                fprintf(stderr, "sent byte out of order at %llu\n",
                        (unsigned long long) down_got);
                bad = 1;
                goto out;
            }
            down_got += (size_t) r;
        }
    }
    if (up_got != UP_BYTES || down_got != down_sent) {
        fprintf(stderr, "byte counts\n");
        bad = 1;
    }

out:
    if (g != NULL) {
        rp_fd_close(e, g, 0);
    }
    if (f != NULL) {
        /* a last copied send, then close with the flush */
        iov.iov_base = buf;
        iov.iov_len = 100;
        (void) rp_send(e, f, &iov, 1, RP_SEND_COPY, NULL, NULL);
        rp_fd_close(e, f, RP_CLOSE_FLUSH);
    }
    t_close(&fd);
    t_close(&fd2);
    if (e != NULL) {
        for (i = 0; i < 20; i++) {
            (void) rp_engine_wait(e, 1);
        }
        rp_engine_destroy(e);
    }
    t_close(&peer);
    t_close(&peer2);
    t_close(&lfd);
    return bad;
}

/* Run the scenario with the n-th allocation failed (0: none) in a child:
 * its exit status, and with n 0 the number of allocations it asked for. */
static int
child(long nth, long *count)
{
    int     p[2], st;
    pid_t   pid;
    long    c = 0;

    if (pipe(p) < 0 || (pid = fork()) < 0) {
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        rp_fault_set(nth);
        st = scenario();
        c = rp_fault_count();
        if (write(p[1], &c, sizeof(c)) != sizeof(c)) {
            _exit(3);
        }
        exit(st);   /* exit(), not _exit(): LSan checks at exit */
    }
    close(p[1]);
    if (read(p[0], &c, sizeof(c)) != sizeof(c)) {
        c = -1;
    }
    close(p[0]);
    waitpid(pid, &st, 0);
    if (count) {
        *count = c;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
case_each_allocation(void)
{
    long   count = 0, n, failed_n = 0, first_bad = 0;
    int    rc, first_rc = 0;

    rc = child(0, &count);
    CHECK(rc == 0, "the scenario without faults failed (exit %d)", rc);
    CHECK(count > 5, "only %ld allocations reached", count);
    for (n = 1; n <= count; n++) {
        rc = child(n, NULL);
        if (rc != 0) {
            if (failed_n++ == 0) {
                first_bad = n;
                first_rc = rc;
            }
        }
    }
    CHECK(failed_n == 0, "%ld of %ld injected failures not handled, the "
        "first at allocation %ld (exit %d: 1 a check, 23 a leak, >128 a "
        "signal; run build/core-faults/test-faults to see)", failed_n,
        count, first_bad, first_rc);
    t_diag("each of the %ld allocations failed in turn: handled", count);
out:
    return;
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("faults/each-allocation-fails-in-turn", case_each_allocation, 300);
    return t_exit_code();
}
