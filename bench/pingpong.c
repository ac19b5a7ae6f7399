/*
 * pingpong: the load generator for echo servers (le_echo.c), the
 * bufferevent ping-pong row.  Each of N connections sends a message of S
 * bytes, waits for all S to come back, and sends the next, for D seconds.
 * Plain epoll so the client is the same whatever the server runs on.
 *
 * Usage: pingpong PORT CONNS SECONDS [SIZE]
 * Prints one line: "requests=N seconds=F p50_us=X p99_us=Y errors=E",
 * latencies from a 1 us histogram (the last bucket holds everything over
 * 1 s).  Exits 1 if no connection could be made.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 1000000

struct pconn {
    int         fd;
    size_t      got;
    uint64_t    t0;
};

static uint32_t hist[HIST_US + 1];
static char     msg[65536];
static size_t   size = 64;

static uint64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int
ping(struct pconn *c)
{
    c->got = 0;
    c->t0 = now_us();
    return send(c->fd, msg, size, MSG_NOSIGNAL) == (ssize_t) size ? 0 : -1;
}

static uint64_t
percentile(uint64_t total, double p)
{
    uint64_t want = (uint64_t) (total * p + 0.5), seen = 0;

    for (uint64_t i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen >= want && seen > 0) {
            return i;
        }
    }
    return HIST_US;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in  sin = { .sin_family = AF_INET };
    struct epoll_event  evs[256];
    struct pconn       *conns;
    uint64_t            start, end, requests = 0, errors = 0;
    int                 nconns, seconds, ep, live = 0;
    char                buf[65536];

    if (argc < 4) {
        fprintf(stderr, "usage: pingpong PORT CONNS SECONDS [SIZE]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    nconns = atoi(argv[2]);
    seconds = atoi(argv[3]);
    if (argc > 4) {
        size = (size_t) atoi(argv[4]);
    }
    if (nconns < 1 || seconds < 1 || size < 1 || size > sizeof(msg)) {
        fprintf(stderr, "pingpong: bad arguments\n");
        return 2;
    }
    memset(msg, 'x', size);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((unsigned short) atoi(argv[1]));
    conns = calloc((size_t) nconns, sizeof(*conns));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || ep < 0) {
        perror("pingpong: setup");
        return 1;
    }

    for (int i = 0; i < nconns; i++) {
        struct epoll_event  ev = { .events = EPOLLIN, .data.u32 = (uint32_t) i };
        int                 one = 1;
        int                 fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        conns[i].fd = -1;
        if (fd < 0 || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
            if (fd >= 0) {
                close(fd);
            }
            errors++;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conns[i].fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        live++;
    }
    if (live == 0) {
        fprintf(stderr, "pingpong: no connection to port %s\n", argv[1]);
        return 1;
    }

    start = now_us();
    end = start + (uint64_t) seconds * 1000000;
    for (int i = 0; i < nconns; i++) {
        if (conns[i].fd >= 0 && ping(&conns[i]) < 0) {
            errors++;
        }
    }

    while (live > 0) {
        uint64_t t = now_us();
        int      n;

        if (t >= end) {
            break;
        }
        n = epoll_wait(ep, evs, 256, (int) ((end - t) / 1000) + 1);
        for (int i = 0; i < n; i++) {
            struct pconn *c = &conns[evs[i].data.u32];
            ssize_t       r;

            r = recv(c->fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) {
                    continue;
                }
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                live--;
                continue;
            }
            c->got += (size_t) r;
            if (c->got >= size) {
                uint64_t lat = now_us() - c->t0;

                hist[lat > HIST_US ? HIST_US : lat]++;
                requests++;
                if (ping(c) < 0) {
                    errors++;
                }
            }
        }
    }
    end = now_us();

    printf("requests=%llu seconds=%.3f p50_us=%llu p99_us=%llu errors=%llu\n",
           (unsigned long long) requests, (double) (end - start) / 1e6,
           (unsigned long long) percentile(requests, 0.50),
           (unsigned long long) percentile(requests, 0.99),
           (unsigned long long) errors);
    return 0;
}
