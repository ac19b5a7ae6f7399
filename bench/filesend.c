/*
 * filesend: what it costs a sender to put a cached file on a loopback TCP
 * connection, three ways, for the choice the nginx module makes for file
 * buffers in completion mode (module/README.md):
 *
 *   sendfile  sendfile(2), what nginx does with `sendfile on`
 *   pread     pread(2) into memory, then send(2): what the module does for
 *             chains with up to 32 KiB of file data (one copy more, but no
 *             TCP_CORK dance and the bytes join the ordered send queue)
 *   splice    io_uring: a SPLICE file->pipe linked to a SPLICE pipe->socket,
 *             the only asynchronous zero-copy file send io_uring has
 *
 * A reader thread on CPU 1 drains the connection; the sender runs on CPU 0.
 * The sender's cost is the process's CPU time (RUSAGE_SELF: every thread,
 * io_uring's io-wq workers included, where SPLICE always runs) less the
 * reader thread's.
 *
 * Usage: filesend sendfile|pread|splice FILE ITERATIONS
 * Prints "method=M bytes=N us_per_file=X".
 */
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t  fsize;
static size_t  total;
static double  reader_us;

static double
cpu_us(int who)
{
    struct rusage  ru;

    getrusage(who, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec
           + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

static void
pin(int cpu)
{
    cpu_set_t  set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void) sched_setaffinity(0, sizeof(set), &set);
}

static void *
reader(void *arg)
{
    static char  buf[262144];
    int          fd = (int) (long) arg;
    size_t       got = 0;
    ssize_t      n;
    double       t0;

    pin(1);
    t0 = cpu_us(RUSAGE_THREAD);
    while (got < total && (n = read(fd, buf, sizeof(buf))) > 0) {
        got += (size_t) n;
    }
    reader_us = cpu_us(RUSAGE_THREAD) - t0;
    return NULL;
}

static int
send_all(int s, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(s, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            perror("filesend: send");
            return -1;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

static int
splice_file(struct io_uring *ring, int file, int pipe_r, int pipe_w, int s)
{
    struct io_uring_sqe  *sqe;
    struct io_uring_cqe  *cqe;
    size_t                off = 0;
    int                   res[2];

    while (off < fsize) {
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_splice(sqe, file, (int64_t) off, pipe_w, -1,
                             (unsigned) (fsize - off), 0);
        sqe->flags |= IOSQE_IO_LINK;
        sqe->user_data = 0;
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_splice(sqe, pipe_r, -1, s, -1,
                             (unsigned) (fsize - off), 0);
        sqe->user_data = 1;
        if (io_uring_submit_and_wait(ring, 2) < 0) {
            return -1;
        }
        for (int i = 0; i < 2; i++) {
            if (io_uring_wait_cqe(ring, &cqe) < 0) {
                return -1;
            }
            res[cqe->user_data] = cqe->res;
            io_uring_cqe_seen(ring, cqe);
        }
        if (res[0] <= 0 || res[1] != res[0]) {
            fprintf(stderr, "filesend: splice in %d, out %d\n", res[0],
                    res[1]);
            return -1;
        }
        off += (size_t) res[0];
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in  sin = { .sin_family = AF_INET };
    socklen_t           len = sizeof(sin);
    struct io_uring     ring;
    pthread_t           th;
    double              t0, t1;
    char               *buf;
    int                 file, l, c, s, iters, p[2], rc = 0;

    if (argc != 4 || (strcmp(argv[1], "sendfile") && strcmp(argv[1], "pread")
                      && strcmp(argv[1], "splice")))
    {
        fprintf(stderr, "usage: filesend sendfile|pread|splice FILE N\n");
        return 2;
    }
    iters = atoi(argv[3]);
    file = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (file < 0 || iters < 1) {
        perror("filesend: open");
        return 2;
    }
    fsize = (size_t) lseek(file, 0, SEEK_END);
    total = fsize * (size_t) iters;
    buf = malloc(fsize);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (buf == NULL || l < 0 || c < 0
        || bind(l, (struct sockaddr *) &sin, sizeof(sin)) < 0
        || listen(l, 1) < 0
        || getsockname(l, (struct sockaddr *) &sin, &len) < 0
        || connect(c, (struct sockaddr *) &sin, sizeof(sin)) < 0
        || (s = accept(l, NULL, NULL)) < 0
        || pipe2(p, O_CLOEXEC) < 0
        || io_uring_queue_init(64, &ring, 0) < 0)
    {
        perror("filesend: setup");
        return 1;
    }
    (void) fcntl(p[0], F_SETPIPE_SZ, (int) fsize);

    pthread_create(&th, NULL, reader, (void *) (long) c);
    pin(0);

    t0 = cpu_us(RUSAGE_SELF);
    for (int i = 0; i < iters && rc == 0; i++) {
        if (strcmp(argv[1], "sendfile") == 0) {
            off_t  off = 0;

            while ((size_t) off < fsize && rc == 0) {
                if (sendfile(s, file, &off, fsize - (size_t) off) < 0) {
                    perror("filesend: sendfile");
                    rc = -1;
                }
            }

        } else if (strcmp(argv[1], "pread") == 0) {
            if (pread(file, buf, fsize, 0) != (ssize_t) fsize) {
                perror("filesend: pread");
                rc = -1;
            } else {
                rc = send_all(s, buf, fsize);
            }

        } else {
            rc = splice_file(&ring, file, p[0], p[1], s);
        }
    }
    if (rc < 0) {
        return 1;
    }
    pthread_join(th, NULL);
    t1 = cpu_us(RUSAGE_SELF) - reader_us;
    io_uring_queue_exit(&ring);

    printf("method=%s bytes=%zu us_per_file=%.2f\n", argv[1], fsize,
           (t1 - t0) / iters);
    return 0;
}
