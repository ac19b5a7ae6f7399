/*
 * floor_epoll: the do-nothing HTTP/1.1 responder on epoll, the floor every
 * benchmark row is compared with.
 *
 * Level-triggered epoll, one read per readiness event (a second only when
 * the first filled the buffer), the responses for every complete request
 * in that read written at once.  Requests are counted by their "\r\n\r\n"
 * terminator, carried across reads, so pipelining works; bodies are not
 * expected.  A response the socket cannot take whole waits for EPOLLOUT.
 *
 * With "echo" as the second argument it is the do-nothing echo server
 * instead, the floor of the ping-pong rows: every byte read is written
 * back, in order; a connection stops reading while ECHO_MAX bytes wait to
 * be written.
 *
 * Usage: floor_epoll [port [echo]]   (port 0 or none: the kernel picks one)
 * Prints "port=N method=epoll" on stdout once listening, then runs until
 * SIGTERM or SIGINT.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "responder.h"

#define MAX_EVENTS 256
#define ECHO_MAX   65536

struct conn {
    unsigned    match;      /* bytes of "\r\n\r\n" matched so far */
    size_t      owed;       /* response bytes not yet written */
    size_t      sent;       /* response bytes written in all */
    unsigned    mask;       /* epoll events registered */
    char       *echo;       /* echo mode: the owed bytes, ECHO_MAX room */
};

static volatile sig_atomic_t stop;
static struct conn          *conns;
static int                   nconns;
static int                   echo_mode;

static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

static void
conn_close(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd].echo);
    conns[fd].echo = NULL;
}

/* Write what is owed; returns -1 when the connection must be closed. */
static int
conn_flush(int ep, int fd, struct conn *c)
{
    unsigned  mask;

    while (c->owed > 0) {
        size_t  off = c->sent % resp_len;
        size_t  n = resp_batch_len - off;
        ssize_t w;

        if (n > c->owed) {
            n = c->owed;
        }
        if (c->echo != NULL) {
            w = send(fd, c->echo, c->owed, MSG_NOSIGNAL);
        } else {
            w = send(fd, resp_batch + off, n, MSG_NOSIGNAL);
        }
        if (w < 0) {
            if (errno == EAGAIN) {
                break;
            }
            return -1;
        }
        c->owed -= (size_t) w;
        c->sent += (size_t) w;
        if (c->echo != NULL && c->owed > 0) {
            memmove(c->echo, c->echo + w, c->owed);
        }
    }

    /* a full echo buffer stops reading until it drains */
    mask = (c->echo != NULL && c->owed == ECHO_MAX ? 0 : EPOLLIN)
           | (c->owed > 0 ? EPOLLOUT : 0);
    if (mask != c->mask) {
        struct epoll_event ev = { .events = mask, .data.fd = fd };

        c->mask = mask;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
conn_read(int ep, int fd, struct conn *c)
{
    char    buf[16384];
    ssize_t n;

    if (c->echo != NULL) {
        if (c->owed == ECHO_MAX) {
            return 0;
        }
        n = recv(fd, c->echo + c->owed, ECHO_MAX - c->owed, 0);
        if (n == 0) {
            return -1;
        }
        if (n < 0) {
            return errno == EAGAIN ? 0 : -1;
        }
        c->owed += (size_t) n;
        return conn_flush(ep, fd, c);
    }

    do {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0) {
            return -1;
        }
        if (n < 0) {
            return errno == EAGAIN ? 0 : -1;
        }
        c->owed += resp_len * count_requests(&c->match, buf, (size_t) n);
    } while ((size_t) n == sizeof(buf));

    return conn_flush(ep, fd, c);
}

static void
do_accept(int ep, int lfd)
{
    for ( ;; ) {
        struct epoll_event  ev = { .events = EPOLLIN };
        int                 one = 1;
        int                 fd;

        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        if (fd >= nconns) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        memset(&conns[fd], 0, sizeof(conns[fd]));
        conns[fd].mask = EPOLLIN;
        if (echo_mode && (conns[fd].echo = malloc(ECHO_MAX)) == NULL) {
            close(fd);
            continue;
        }
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
        }
    }
}

int
main(int argc, char **argv)
{
    struct epoll_event  evs[MAX_EVENTS];
    struct epoll_event  lev = { .events = EPOLLIN };
    struct sigaction    sa = { .sa_handler = on_signal };
    int                 ep, lfd, port, i, n;

    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    resp_init();
    echo_mode = argc > 2 && strcmp(argv[2], "echo") == 0;
    nconns = 65536;
    conns = calloc((size_t) nconns, sizeof(*conns));
    lfd = listen_loopback(argc > 1 ? atoi(argv[1]) : 0, &port);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || lfd < 0 || ep < 0) {
        perror("floor_epoll: setup");
        return 1;
    }
    lev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    printf("port=%d method=epoll\n", port);
    fflush(stdout);

    while (!stop) {
        n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        for (i = 0; i < n; i++) {
            int          fd = evs[i].data.fd;
            struct conn *c = &conns[fd];
            int          rc = 0;

            if (fd == lfd) {
                do_accept(ep, lfd);
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                rc = conn_flush(ep, fd, c);
            }
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                rc = conn_read(ep, fd, c);
            }
            if (rc < 0) {
                conn_close(ep, fd);
            }
        }
    }
    return 0;
}
