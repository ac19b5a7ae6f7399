/*
 * le_echo: a bufferevent echo server, the libevent ping-pong row (driven
 * by pingpong.c).  Built against the libevent under test, so the backend
 * is whatever that build picks: io_uring by default, epoll with
 * EVENT_NOIO_URING=1; completion bufferevents, once the loop adapter has
 * them, by the environment variable it defines.
 *
 * Usage: le_echo [port]   (0 or none: the kernel picks one)
 * Prints "port=N method=M version=V" once listening.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void
on_read(struct bufferevent *bev, void *arg)
{
    (void) arg;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    (void) arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
    }
}

static void
on_accept(struct evconnlistener *lev, evutil_socket_t fd,
          struct sockaddr *sa, int salen, void *arg)
{
    struct bufferevent *bev;
    int                 one = 1;

    (void) lev;
    (void) sa;
    (void) salen;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) sig;
    (void) what;
    event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
    struct sockaddr_in      sin = { .sin_family = AF_INET };
    socklen_t               len = sizeof(sin);
    struct evconnlistener  *lev;
    struct event_base      *base;
    struct event           *term;

    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "le_echo: event_base_new failed\n");
        return 1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((unsigned short) (argc > 1 ? atoi(argv[1]) : 0));
    lev = evconnlistener_new_bind(base, on_accept, base,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                  4096, (struct sockaddr *) &sin, sizeof(sin));
    if (lev == NULL
        || getsockname(evconnlistener_get_fd(lev), (struct sockaddr *) &sin,
                       &len) < 0)
    {
        fprintf(stderr, "le_echo: bind failed\n");
        return 1;
    }
    term = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(term, NULL);

    printf("port=%d method=%s version=%s\n", ntohs(sin.sin_port),
           event_base_get_method(base), event_get_version());
    fflush(stdout);

    event_base_dispatch(base);

    event_free(term);
    evconnlistener_free(lev);
    event_base_free(base);
    return 0;
}
