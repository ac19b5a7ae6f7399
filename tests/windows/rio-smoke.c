/*
 * A bufferevent and evhttp smoke test of libevent's DLLs on Windows, run
 * under Wine by tests/windows/run.sh: on the ringplug backend ("rio"), on
 * the stock win32 backend (EVENT_NORIO=1), and on the DLLs built against
 * the tests' RIO stand-in (make windows-standin).
 *
 * Usage: rio-smoke.exe <expected method> [rio-path]
 *   rio-path: also require that the engine ran its RIO data path (the
 *   stand-in build): its counters show RIO receives and sends.
 *
 * One line per check, "ok NAME" or "not ok NAME: why"; exit 0 when all are
 * ok.  The checks:
 *   method   event_base_get_method() is the expected one
 *   echo     1 MiB through an evconnlistener, a bufferevent on the accepted
 *            socket echoing it and a bufferevent_socket_connect client
 *   http     an evhttp server and client on the same base: GET of a
 *            256 KiB reply, POST of a 64 KiB body echoed back
 *   engine   on rio: the engine's counters (EVENT_IO_URING_STATS=1, read
 *            through libevent's log callback when the base is freed) show
 *            the bytes above received and sent by the engine, i.e. the
 *            bufferevents were the engine's completion bufferevents; on
 *            win32: no engine counters at all
 *   rio-path (with rio-path) the RIO stand-in linked into
 *            libevent_core-2-1-7.dll (the DLLs of make windows-standin;
 *            rpstandin_get_stats, exported as every symbol of the DLL is)
 *            issued receives and sends and returned their results through
 *            RIODequeueCompletion: the sockets libevent made ran on RIO,
 *            not on the overlapped path
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "rio-standin.h"

#define ECHO_BYTES  (1024 * 1024)
#define GET_BYTES   (256 * 1024)
#define POST_BYTES  (64 * 1024)

static int failures;
static char stats_line[1024];

static void
check(int ok, const char *name, const char *why)
{
    if (ok) {
        printf("ok %s\n", name);
    } else {
        printf("not ok %s: %s\n", name, why);
        failures++;
    }
    fflush(stdout);
}

static void
log_cb(int severity, const char *msg)
{
    (void) severity;
    /* the backend's counters line: "<method>: enters=.. ..." */
    if (strstr(msg, "recv_bytes=") != NULL) {
        snprintf(stats_line, sizeof(stats_line), "%s", msg);
    } else {
        fprintf(stderr, "libevent: %s\n", msg);
    }
}

static unsigned long long
stat_of(const char *line, const char *key)
{
    const char *p = strstr(line, key);

    return p == NULL ? 0 : strtoull(p + strlen(key), NULL, 10);
}

static unsigned char
pattern(size_t i)
{
    return (unsigned char) ((i * 7 + i / 251) & 0xff);
}

/* ---- echo ---------------------------------------------------------------- */

struct echo {
    struct event_base   *base;
    struct bufferevent  *server;
    struct bufferevent  *client;
    size_t               got;
    int                  bad;
    int                  done;
};

static void
server_read(struct bufferevent *bev, void *arg)
{
    (void) arg;
    bufferevent_write_buffer(bev,
                             bufferevent_get_input(bev));
}

static void
server_event(struct bufferevent *bev, short what, void *arg)
{
    struct echo *e = arg;

    (void) what;
    bufferevent_free(bev);
    e->server = NULL;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int len, void *arg)
{
    struct echo *e = arg;

    (void) l;
    (void) sa;
    (void) len;
    e->server = bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(e->server, server_read, NULL, server_event, e);
    bufferevent_enable(e->server, EV_READ | EV_WRITE);
}

static void
client_read(struct bufferevent *bev, void *arg)
{
    struct echo *e = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned char buf[16384];
    size_t n, i;

    while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++) {
            if (buf[i] != pattern(e->got + i)) {
                e->bad = 1;
            }
        }
        e->got += n;
    }
    if (e->got >= ECHO_BYTES) {
        e->done = 1;
        event_base_loopexit(e->base, NULL);
    }
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
    struct echo *e = arg;
    unsigned char *data;
    size_t i;

    if (what & BEV_EVENT_CONNECTED) {
        data = malloc(ECHO_BYTES);
        for (i = 0; i < ECHO_BYTES; i++) {
            data[i] = pattern(i);
        }
        bufferevent_write(bev, data, ECHO_BYTES);
        free(data);
        return;
    }
    fprintf(stderr, "echo client: event 0x%x, error %d\n", what,
            EVUTIL_SOCKET_ERROR());
    event_base_loopexit(e->base, NULL);
}

static void
test_echo(struct event_base *base)
{
    struct echo e;
    struct sockaddr_in sin;
    struct evconnlistener *l;
    struct timeval tv = { 20, 0 };
    int len = sizeof(sin);
    char why[128];

    memset(&e, 0, sizeof(e));
    e.base = base;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = evconnlistener_new_bind(base, accept_cb, &e,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                -1, (struct sockaddr *) &sin, sizeof(sin));
    if (l == NULL) {
        check(0, "echo", "evconnlistener_new_bind failed");
        return;
    }
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *) &sin, &len);
    e.client = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(e.client, client_read, NULL, client_event, &e);
    bufferevent_enable(e.client, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(e.client, (struct sockaddr *) &sin,
                                   sizeof(sin)) < 0)
    {
        check(0, "echo", "bufferevent_socket_connect failed");
    } else {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        snprintf(why, sizeof(why), "%lu of %u bytes back%s",
                 (unsigned long) e.got, ECHO_BYTES,
                 e.bad ? ", some wrong" : "");
        check(e.done && !e.bad && e.got == ECHO_BYTES, "echo", why);
    }
    bufferevent_free(e.client);
    if (e.server != NULL) {
        bufferevent_free(e.server);
    }
    evconnlistener_free(l);
}

/* ---- http ---------------------------------------------------------------- */

struct http {
    struct event_base  *base;
    int                 get_ok;
    int                 post_ok;
    int                 pending;
    char                why[128];
};

static void
http_cb(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new(), *in;
    unsigned char *data;
    size_t i;

    (void) arg;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        in = evhttp_request_get_input_buffer(req);
        evbuffer_add_buffer(out, in);
    } else {
        data = malloc(GET_BYTES);
        for (i = 0; i < GET_BYTES; i++) {
            data[i] = pattern(i);
        }
        evbuffer_add(out, data, GET_BYTES);
        free(data);
    }
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static int
body_ok(struct evhttp_request *req, size_t want)
{
    struct evbuffer *in;
    unsigned char *p;
    size_t i;

    if (req == NULL || evhttp_request_get_response_code(req) != 200) {
        return 0;
    }
    in = evhttp_request_get_input_buffer(req);
    if (evbuffer_get_length(in) != want) {
        return 0;
    }
    p = evbuffer_pullup(in, -1);
    for (i = 0; i < want; i++) {
        if (p[i] != pattern(i)) {
            return 0;
        }
    }
    return 1;
}

static void
get_done(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;

    h->get_ok = body_ok(req, GET_BYTES);
    if (--h->pending == 0) {
        event_base_loopexit(h->base, NULL);
    }
}

static void
post_done(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;

    h->post_ok = body_ok(req, POST_BYTES);
    if (--h->pending == 0) {
        event_base_loopexit(h->base, NULL);
    }
}

static void
test_http(struct event_base *base)
{
    struct http h;
    struct evhttp *srv;
    struct evhttp_bound_socket *bs;
    struct evhttp_connection *conn;
    struct evhttp_request *req;
    struct sockaddr_in sin;
    struct timeval tv = { 20, 0 };
    int len = sizeof(sin);
    unsigned char *data;
    size_t i;

    memset(&h, 0, sizeof(h));
    h.base = base;
    srv = evhttp_new(base);
    evhttp_set_gencb(srv, http_cb, NULL);
    bs = evhttp_bind_socket_with_handle(srv, "127.0.0.1", 0);
    if (bs == NULL) {
        check(0, "http", "evhttp_bind_socket_with_handle failed");
        evhttp_free(srv);
        return;
    }
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *) &sin,
                &len);
    conn = evhttp_connection_base_new(base, NULL, "127.0.0.1",
                                      ntohs(sin.sin_port));

    req = evhttp_request_new(get_done, &h);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
                      "localhost");
    evhttp_make_request(conn, req, EVHTTP_REQ_GET, "/get");
    h.pending++;

    req = evhttp_request_new(post_done, &h);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
                      "localhost");
    data = malloc(POST_BYTES);
    for (i = 0; i < POST_BYTES; i++) {
        data[i] = pattern(i);
    }
    evbuffer_add(evhttp_request_get_output_buffer(req), data, POST_BYTES);
    free(data);
    evhttp_make_request(conn, req, EVHTTP_REQ_POST, "/post");
    h.pending++;

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    snprintf(h.why, sizeof(h.why), "GET %s, POST %s",
             h.get_ok ? "ok" : "failed", h.post_ok ? "ok" : "failed");
    check(h.get_ok && h.post_ok, "http", h.why);
    evhttp_connection_free(conn);
    evhttp_free(srv);
}

int
main(int argc, char **argv)
{
    struct event_base *base;
    const char *want = argc > 1 ? argv[1] : "rio";
    WSADATA wsa;
    char why[1200];
    unsigned long long rb, sb;

    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
        printf("not ok wsastartup\n");
        return 1;
    }
    /* the backend prints its engine counters when the base is freed */
    _putenv("EVENT_IO_URING_STATS=1");
    event_set_log_callback(log_cb);

    base = event_base_new();
    if (base == NULL) {
        check(0, "method", "event_base_new failed");
        return 1;
    }
    snprintf(why, sizeof(why), "libevent chose '%s'",
             event_base_get_method(base));
    check(strcmp(event_base_get_method(base), want) == 0, "method", why);

    test_echo(base);
    test_http(base);

    event_base_free(base);
    rb = stat_of(stats_line, "recv_bytes=");
    sb = stat_of(stats_line, "send_bytes=");
    if (strcmp(want, "rio") == 0) {
        /* echo: 1 MiB in and out on each side; http: the bodies */
        snprintf(why, sizeof(why), "engine counters: %s",
                 stats_line[0] ? stats_line : "none reported");
        check(rb >= 2ull * ECHO_BYTES + GET_BYTES + POST_BYTES
              && sb >= 2ull * ECHO_BYTES + GET_BYTES + POST_BYTES,
              "engine", why);
    } else {
        snprintf(why, sizeof(why), "engine counters on %s: %s", want,
                 stats_line);
        check(stats_line[0] == '\0', "engine", why);
    }
    if (stats_line[0]) {
        fprintf(stderr, "%s\n", stats_line);
    }
    if (argc > 2 && strcmp(argv[2], "rio-path") == 0) {
        void (*get)(struct rpstandin_stats *) = NULL;
        struct rpstandin_stats st;
        HMODULE m = GetModuleHandleA("libevent_core-2-1-7.dll");

        memset(&st, 0, sizeof(st));
        if (m != NULL) {
            get = (void (*)(struct rpstandin_stats *)) (void (*)(void))
                GetProcAddress(m, "rpstandin_get_stats");
        }
        if (get == NULL) {
            check(0, "rio-path", "no RIO stand-in in "
                  "libevent_core-2-1-7.dll (not the stand-in build)");
        } else {
            get(&st);
            snprintf(why, sizeof(why), "stand-in: %lu receives, %lu sends "
                     "issued, %lu results dequeued, %lu notifications",
                     st.issued_recv, st.issued_send, st.dequeued,
                     st.notifications);
            check(st.issued_recv > 0 && st.issued_send > 0
                  && st.dequeued > 0 && st.notifications > 0,
                  "rio-path", why);
            fprintf(stderr, "%s\n", why);
        }
    }
    WSACleanup();
    return failures ? 1 : 0;
}
