/*
 * le_http: an evhttp server answering every request with 200 "ok", the
 * libevent HTTP row.  Built against the libevent under test (ringplug's
 * build/libevent/prefix), so the backend is whatever that build picks:
 * io_uring by default, epoll with EVENT_NOIO_URING=1.
 *
 * Usage: le_http [port]   (0 or none: the kernel picks one)
 * Prints "port=N method=M version=V" once listening.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static void
on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *body = arg;

    evbuffer_add_reference(body, "ok", 2, NULL, NULL);
    evhttp_send_reply(req, HTTP_OK, "OK", body);
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
    struct sockaddr_in               sin;
    socklen_t                        len = sizeof(sin);
    struct evhttp_bound_socket      *bound;
    struct event_base               *base;
    struct evbuffer                 *body;
    struct event                    *term;
    struct evhttp                   *http;

    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    http = base ? evhttp_new(base) : NULL;
    body = evbuffer_new();
    if (http == NULL || body == NULL) {
        fprintf(stderr, "le_http: event_base_new/evhttp_new failed\n");
        return 1;
    }
    evhttp_set_gencb(http, on_request, body);
    bound = evhttp_bind_socket_with_handle(http, "127.0.0.1",
                                           argc > 1 ? atoi(argv[1]) : 0);
    if (bound == NULL
        || getsockname(evhttp_bound_socket_get_fd(bound),
                       (struct sockaddr *) &sin, &len) < 0)
    {
        fprintf(stderr, "le_http: bind failed\n");
        return 1;
    }
    term = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(term, NULL);

    printf("port=%d method=%s version=%s\n", ntohs(sin.sin_port),
           event_base_get_method(base), event_get_version());
    fflush(stdout);

    event_base_dispatch(base);

    event_free(term);
    evhttp_free(http);
    evbuffer_free(body);
    event_base_free(base);
    return 0;
}
