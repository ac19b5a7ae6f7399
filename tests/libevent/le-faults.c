/*
 * le-faults: allocation failure injection on the libevent side (issue #13).
 *
 * libevent with the io_uring backend, its completion bufferevents and the
 * engine, all built with -DRP_FAULT_INJECTION and ASan+LSan in a tree of
 * their own (make libevent-faults): every allocation of the engine and of
 * the adapter (io_uring.c and bufferevent_io_uring.c: their mm_* calls and
 * the libevent calls they make that allocate) asks rp_fault_alloc() first,
 * one count for both.  That library exports rp_fault_set,
 * rp_fault_count and the adapter's fallback hooks, which this program
 * calls.
 *
 * A scenario on one io_uring base (EVENT_IO_URING_BUFFERS=4, so that the
 * ring runs low and the copy and stash paths run too):
 *   echo   ECHO_CONNS clients connected with bufferevent_socket_connect to
 *          an evconnlistener echo server send ECHO_BYTES each in pieces of
 *          1 to 4096 bytes; the server checks each byte it gets and echoes
 *          the input buffer as it is (provided buffers by reference), the
 *          client checks each byte that comes back
 *   setfd  one more echo client, on a socket handed over with
 *          bufferevent_setfd before the host connects it (the bufferevent
 *          watches the connect), written to at once
 *   sink   a client sends SINK_BYTES to a server bufferevent that turns
 *          reading off for SINK_HOLD_MS after its first bytes (the engine
 *          holds, then stashes, what arrives), then on: every byte checked
 *   abort  a client writes ABORT_BYTES and frees its bufferevent with the
 *          send in flight; its server checks the prefix it gets and echoes
 *          into the closed connection (errors expected there)
 *   http   evhttp: a GET of HTTP_BYTES and a POST of HTTP_BYTES on one
 *          keep-alive connection, both bodies checked
 * It runs once to count the allocations it reaches, then once per n with
 * the n-th one failed, each in a child process (pass "each"); then again
 * for the n whose failure a fallback followed (the adapter's: a copy of a
 * received buffer after no memory for a reference to it), with the
 * fallback failed too (pass "fallbacks").  Each child must exit 0:
 *   - no crash, no ASan/LSan report (exit 23), no hang (STALL_MS);
 *   - every byte any side receives is its stream's, in order, once;
 *   - a stream cut short has a clear error on one of its two ends: an
 *     error event on its bufferevent, or a call of the host's that failed
 *     (bufferevent_socket_new, bufferevent_write...); evhttp requests end
 *     in their callback, with the response or the error;
 *   - a base that fell back from io_uring logged a warning naming it.
 * Pass "hold" (first): memory out for HOLD_MS, every allocation of the
 * adapter failed, while two streams of HOLD_BYTES arrive from writer
 * threads on completion bufferevents that must copy (a ring of 4 buffers
 * that ran low with reading off, and a stash of more than one read); reading
 * goes back on HOLD_READ_MS into it.  Their bytes wait for memory: the
 * loop must sleep meanwhile (at most HOLD_MAX_TRIES allocations tried and
 * HOLD_MAX_CPU_MS of the loop thread's CPU in the hold), warn once per
 * bufferevent, and deliver every byte in order once memory returns.
 * Without a failure everything completes, on io_uring with completion
 * bufferevents, with no error and no warning: the first run, and the runs
 * whose n is past the allocations they reach (a run may reach more or
 * fewer than the first: the number of reads varies with timing, so n goes
 * a tenth past the first count).  The driver stops after MAX_FAILED
 * failed runs.
 *
 * Usage: le-faults                    the three passes, in children
 *        le-faults each|fallbacks n   one run, in this process: the n-th
 *                                     allocation failed (and fallbacks)
 *        le-faults hold               pass hold's run, in this process
 * Prints, per pass, one line per outcome kind and "le-faults: pass NAME:
 * ok", or names the failed runs and "le-faults: pass NAME: FAIL: why".
 */

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* from the fault build of core (core/engine.h), exported by its libevent */
void rp_fault_set(long nth);
long rp_fault_count(void);
/* from the fault build's io_uring.c (io_uring-internal.h): fail the
 * fallbacks too, and how many ran */
void io_uring_fault_fallbacks_fail_(int on);
long io_uring_fault_fallbacks_(void);
/* every allocation of the adapter failed while on, and how many were */
void io_uring_fault_memory_out_(int on);
long io_uring_fault_memory_out_count_(void);

/* A sanitizer report ends a child with 23, apart from a failed check (1);
 * ASAN_OPTIONS may add to this. */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
    return "detect_leaks=1:exitcode=23";
}

#define ECHO_CONNS    3
#define ECHO_BYTES    (96 * 1024)
#define SINK_BYTES    (192 * 1024)
#define SINK_HOLD_MS  30
#define ABORT_BYTES   (512 * 1024)
#define HTTP_BYTES    (48 * 1024)
#define STALL_MS      5000    /* LE_FAULTS_STALL_MS overrides */
#define MAX_FAILED    20

#define HOLD_STREAMS     2
#define HOLD_BYTES       (1024 * 1024)
#define HOLD_FIRST       (64 * 1024)   /* the arrive stream's before it */
#define HOLD_START_MS    100   /* memory goes out, the streams running */
#define HOLD_READ_MS     50    /* into it: reading back on */
#define HOLD_MS          300   /* memory out that long */
/* In the hold the bufferevents try again after each wait, of 10 ms at
 * most meanwhile: about 30 passes, one allocation each per bufferevent
 * (61 in all, measured); a loop trying every pass makes thousands (about
 * 31,000, and 240 ms of CPU). */
#define HOLD_MAX_TRIES   300
#define HOLD_MAX_CPU_MS  (HOLD_MS / 3)

/* K_SETFD: an echo client whose socket the host hands over with
 * bufferevent_setfd, then connects */
enum kind { K_ECHO, K_SETFD, K_SINK, K_ABORT };

#define ECHOES(c)  ((c)->kind == K_ECHO || (c)->kind == K_SETFD)

/* What a child saw, for the summary. */
#define O_FALLBACK    0x01   /* the base is not io_uring (and warned) */
#define O_WARN        0x02   /* a warning was logged */
#define O_BEV_ERROR   0x04   /* an error event (none expected) */
#define O_CALL_FAILED 0x08   /* a call of the host's failed */
#define O_HTTP_ERROR  0x10   /* an evhttp request ended in error */
#define O_SOCKET_BEV  0x20   /* a socket bufferevent instead */
#define O_CUT         0x40   /* a stream cut short (with its error) */
#define O_NOT_REACHED 0x80   /* fewer than n allocations */

static const char *outcome_names[] = {
    "base fell back to epoll with a warning", "warning logged",
    "bufferevent error event", "a call of the host's failed",
    "evhttp request error", "socket bufferevent instead",
    "a stream cut short", "n-th allocation not reached",
};

struct conn {
    int                  id;
    enum kind            kind;
    unsigned short       port;        /* the client's, to pair the server */
    struct bufferevent  *cli, *srv;
    size_t               total, sent, cli_got, srv_got;
    int                  cli_error, srv_error, failed_call;
    int                  cli_done, srv_done;
    struct event        *hold;
};

#define NCONNS  (ECHO_CONNS + 3)

static struct event_base  *base;
static struct conn         conns[NCONNS];
static unsigned            outcome;
static char                first_warning[200];
static int                 http_done, http_ok;
static const char         *bad;     /* the first failed check */
static int                 stall_ms;
static char                bad_buf[300];
static int                 nwarnings;

static void
fail(const char *fmt, ...)
{
    va_list  ap;

    if (bad == NULL) {
        va_start(ap, fmt);
        vsnprintf(bad_buf, sizeof(bad_buf), fmt, ap);
        va_end(ap);
        bad = bad_buf;
    }
    event_base_loopbreak(base);
}

static void
log_cb(int severity, const char *msg)
{
    if (severity >= EVENT_LOG_WARN) {
        outcome |= O_WARN;
        nwarnings++;
        if (first_warning[0] == '\0') {
            snprintf(first_warning, sizeof(first_warning), "%s", msg);
        }
    }
}

/* Byte off of stream id: a hash, so that a piece repeated or skipped, of
 * any length, shows within a few bytes. */
static unsigned char
pattern(int id, size_t off)
{
    unsigned long long  x;

    x = ((unsigned long long) off + 1) * 0x9E3779B97F4A7C15ull
        ^ (unsigned long long) id * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return (unsigned char) (x >> 56);
}

static int
is_completion(struct bufferevent *bev)
{
    return strcmp(*(const char *const *) bev->be_ops, "socket_io_uring") == 0;
}

/* Check what buf holds as stream id's bytes from *off on, without taking
 * them; *off moves on.  0, or -1 after fail(). */
static int
check_evbuffer(struct evbuffer *buf, int id, size_t *off, const char *who)
{
    struct evbuffer_iovec  v[64];
    struct evbuffer_ptr    at;
    const unsigned char   *p;
    size_t                 len = evbuffer_get_length(buf), i, done = 0;
    int                    nv, k;

    while (done < len) {
        if (evbuffer_ptr_set(buf, &at, done, EVBUFFER_PTR_SET) < 0) {
            fail("%s %d: evbuffer_ptr_set", who, id);
            return -1;
        }
        nv = evbuffer_peek(buf, (ev_ssize_t) (len - done), &at, v, 64);
        if (nv > 64) {
            nv = 64;
        }
        for (k = 0; k < nv && done < len; k++) {
            p = v[k].iov_base;
            for (i = 0; i < v[k].iov_len && done + i < len; i++) {
                if (p[i] != pattern(id, *off + i)) {
                    fail("%s %d: byte %zu is %u, want %u", who, id, *off + i,
                         p[i], pattern(id, *off + i));
                    return -1;
                }
            }
            *off += i;
            done += i;
        }
    }
    return 0;
}

static int
check_bytes(const unsigned char *p, size_t n, int id, size_t *off,
    const char *who)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (p[i] != pattern(id, *off + i)) {
            fail("%s %d: byte %zu is %u, want %u", who, id, *off + i, p[i],
                 pattern(id, *off + i));
            return -1;
        }
    }
    *off += n;
    return 0;
}

/* ---- servers ---------------------------------------------------------- */

static void sink_hold(struct conn *c);
static void sink_on(evutil_socket_t fd, short what, void *arg);

static void
srv_read(struct bufferevent *bev, void *arg)
{
    struct conn      *c = arg;
    struct evbuffer  *in = bufferevent_get_input(bev);

    if (check_evbuffer(in, c->id, &c->srv_got, "server") < 0) {
        return;
    }
    if (c->srv_got > c->total) {
        fail("server %d: %zu bytes of %zu", c->id, c->srv_got, c->total);
        return;
    }
    if (c->kind == K_SINK) {
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->srv_got == c->total) {
            c->srv_done = 1;
            bufferevent_free(bev);
            c->srv = NULL;
        } else if (c->hold == NULL) {
            sink_hold(c);
        }
        return;
    }
    /* the input as it is, provided buffers by reference */
    if (bufferevent_write_buffer(bev, in) < 0) {
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
        c->srv_done = 1;
        bufferevent_free(bev);
        c->srv = NULL;
    }
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn  *c = arg;

    if (what & BEV_EVENT_ERROR) {
        c->srv_error = 1;
        if (c->kind != K_ABORT) {
            outcome |= O_BEV_ERROR;
        }
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        c->srv_done = 1;
        bufferevent_free(bev);
        c->srv = NULL;
    }
}

/* Reading was on (the receive armed); off now for a while. */
static void
sink_hold(struct conn *c)
{
    struct timeval  tv = { 0, SINK_HOLD_MS * 1000 };

    if (bufferevent_disable(c->srv, EV_READ) < 0
        || (c->hold = evtimer_new(base, sink_on, c)) == NULL
        || evtimer_add(c->hold, &tv) < 0)
    {
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
    }
}

static void
sink_on(evutil_socket_t fd, short what, void *arg)
{
    struct conn  *c = arg;

    (void) fd;
    (void) what;
    if (c->srv != NULL && bufferevent_enable(c->srv, EV_READ) < 0) {
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
    }
}

static void
srv_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
    struct sockaddr_in  *sin = (struct sockaddr_in *) sa;
    struct bufferevent  *bev;
    struct conn         *c = NULL;
    int                  i;

    (void) lev;
    (void) socklen;
    (void) arg;
    for (i = 0; i < NCONNS; i++) {
        if (conns[i].port == ntohs(sin->sin_port)) {
            c = &conns[i];
        }
    }
    if (c == NULL || c->srv != NULL || c->srv_done) {
        fail("accepted an unknown connection (port %u)",
             ntohs(sin->sin_port));
        evutil_closesocket(fd);
        return;
    }
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        c->failed_call = 1;
        c->srv_done = 1;
        outcome |= O_CALL_FAILED;
        evutil_closesocket(fd);
        return;
    }
    if (!is_completion(bev)) {
        outcome |= O_SOCKET_BEV;
    }
    c->srv = bev;
    bufferevent_setcb(bev, srv_read, NULL, srv_event, c);
    if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0) {
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
    }
}

/* ---- clients ---------------------------------------------------------- */

/* Write the stream on, in pieces of 1 to 4096 bytes, while the output
 * holds less than 64 KiB (the abort client: all of it at once). */
static void
cli_fill(struct conn *c)
{
    unsigned char  buf[4096];
    size_t         n, i;

    while (c->cli != NULL && c->sent < c->total
           && (c->kind == K_ABORT
               || evbuffer_get_length(bufferevent_get_output(c->cli))
                  < 65536))
    {
        n = c->total - c->sent;
        n = n < sizeof(buf) ? n : (size_t) (1 + (c->sent * 13) % sizeof(buf));
        for (i = 0; i < n; i++) {
            buf[i] = pattern(c->id, c->sent + i);
        }
        if (bufferevent_write(c->cli, buf, n) < 0) {
            /* nothing of it was queued: the stream ends here */
            c->failed_call = 1;
            outcome |= O_CALL_FAILED;
            c->cli_done = 1;
            bufferevent_free(c->cli);
            c->cli = NULL;
            return;
        }
        c->sent += n;
    }
}

static void
cli_read(struct bufferevent *bev, void *arg)
{
    struct conn      *c = arg;
    struct evbuffer  *in = bufferevent_get_input(bev);
    unsigned char     buf[8192];
    size_t            n;

    while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
        if (!ECHOES(c)) {
            fail("client %d: %zu bytes from a server that sends none",
                 c->id, n);
            return;
        }
        if (check_bytes(buf, n, c->id, &c->cli_got, "client") < 0) {
            return;
        }
    }
    if (c->cli_got > c->sent) {
        fail("client %d: %zu bytes back of %zu sent", c->id, c->cli_got,
             c->sent);
        return;
    }
    if (c->cli_got == c->total) {
        c->cli_done = 1;
        bufferevent_free(bev);
        c->cli = NULL;
        return;
    }
    cli_fill(c);
}

static void
cli_write(struct bufferevent *bev, void *arg)
{
    struct conn  *c = arg;

    (void) bev;
    cli_fill(c);
    if (c->cli != NULL && c->kind == K_SINK && c->sent == c->total
        && evbuffer_get_length(bufferevent_get_output(c->cli)) == 0)
    {
        /* all sent: the sink's server checks it */
        c->cli_done = 1;
        bufferevent_free(c->cli);
        c->cli = NULL;
    }
}

static void
cli_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn  *c = arg;

    if (what & BEV_EVENT_CONNECTED) {
        if (!is_completion(bev)) {
            outcome |= O_SOCKET_BEV;
        }
        cli_fill(c);
        if (c->cli != NULL && c->kind == K_ABORT) {
            /* free with the send in flight */
            c->cli_done = 1;
            bufferevent_free(c->cli);
            c->cli = NULL;
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        c->cli_error = 1;
        outcome |= O_BEV_ERROR;
    }
    c->cli_done = 1;
    bufferevent_free(bev);
    c->cli = NULL;
}

/* The K_SETFD client: a socket given to a bufferevent with
 * bufferevent_setfd before the host connects it (the bufferevent watches
 * the connect), written to at once.  0, or -1 after a system call failed. */
static int
conn_start_setfd(struct conn *c, const struct sockaddr_in *to)
{
    struct sockaddr_in  me;
    socklen_t           len = sizeof(me);
    int                 fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    c->cli = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->cli != NULL && !is_completion(c->cli)) {
        outcome |= O_SOCKET_BEV;
    }
    if (c->cli != NULL) {
        bufferevent_setcb(c->cli, cli_read, cli_write, cli_event, c);
    }
    if (c->cli == NULL || bufferevent_setfd(c->cli, fd) < 0
        || bufferevent_enable(c->cli, EV_READ | EV_WRITE) < 0)
    {
        /* not connected: the server sees nothing; the bufferevent
         * closes fd if it took it */
        if (c->cli == NULL || bufferevent_getfd(c->cli) != fd) {
            close(fd);
        }
        if (c->cli != NULL) {
            bufferevent_free(c->cli);
            c->cli = NULL;
        }
        c->cli_done = c->srv_done = 1;
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
        return 0;
    }
    if ((connect(fd, (const struct sockaddr *) to, sizeof(*to)) < 0
         && errno != EINPROGRESS)
        || getsockname(fd, (struct sockaddr *) &me, &len) < 0)
    {
        return -1;
    }
    c->port = ntohs(me.sin_port);
    cli_fill(c);
    return 0;
}

static int
conn_start(struct conn *c, const struct sockaddr_in *to)
{
    struct sockaddr_in  me;
    socklen_t           len = sizeof(me);

    int                 rc;

    if (c->kind == K_SETFD) {
        return conn_start_setfd(c, to);
    }
    c->cli = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->cli == NULL) {
        c->cli_done = c->srv_done = 1;
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
        return 0;
    }
    bufferevent_setcb(c->cli, c->kind == K_ECHO ? cli_read : NULL,
                      cli_write, cli_event, c);
    rc = bufferevent_enable(c->cli, c->kind == K_ECHO ? EV_READ | EV_WRITE
                                                       : EV_WRITE);
    if (rc == 0) {
        rc = bufferevent_socket_connect(c->cli, (struct sockaddr *) to,
                                        sizeof(*to));
    }
    /* a connect that failed after its SYN went out (its event_add) is
     * accepted all the same: the server must know it */
    if (bufferevent_getfd(c->cli) >= 0) {
        if (getsockname(bufferevent_getfd(c->cli), (struct sockaddr *) &me,
                        &len) < 0)
        {
            return -1;
        }
        c->port = ntohs(me.sin_port);
    }
    if (rc < 0) {
        c->cli_done = 1;
        if (c->port == 0) {
            c->srv_done = 1;
        }
        c->failed_call = 1;
        outcome |= O_CALL_FAILED;
        bufferevent_free(c->cli);
        c->cli = NULL;
    }
    return 0;
}

/* ---- evhttp ----------------------------------------------------------- */

static void
http_handler(struct evhttp_request *req, void *arg)
{
    struct evbuffer  *in = evhttp_request_get_input_buffer(req);
    struct evbuffer  *out;
    unsigned char     buf[4096];
    size_t            off = 0, n, i;

    (void) arg;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        if (evbuffer_get_length(in) != HTTP_BYTES
            || check_evbuffer(in, 90, &off, "http server") < 0)
        {
            if (bad == NULL) {
                fail("http server: POST body of %zu bytes",
                     evbuffer_get_length(in));
            }
            return;
        }
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    if ((out = evbuffer_new()) == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    for (off = 0; off < HTTP_BYTES; off += n) {
        n = HTTP_BYTES - off < sizeof(buf) ? HTTP_BYTES - off : sizeof(buf);
        for (i = 0; i < n; i++) {
            buf[i] = pattern(91, off + i);
        }
        if (evbuffer_add(out, buf, n) < 0) {
            evbuffer_free(out);
            evhttp_send_error(req, 500, NULL);
            return;
        }
    }
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void
http_get_done(struct evhttp_request *req, void *arg)
{
    size_t  off = 0;

    (void) arg;
    http_done++;
    if (req == NULL || evhttp_request_get_response_code(req) != 200) {
        outcome |= O_HTTP_ERROR;
        return;
    }
    if (evbuffer_get_length(evhttp_request_get_input_buffer(req))
        != HTTP_BYTES)
    {
        fail("http GET: 200 with %zu bytes",
             evbuffer_get_length(evhttp_request_get_input_buffer(req)));
        return;
    }
    if (check_evbuffer(evhttp_request_get_input_buffer(req), 91, &off,
                       "http client") == 0)
    {
        http_ok++;
    }
}

static void
http_post_done(struct evhttp_request *req, void *arg)
{
    (void) arg;
    http_done++;
    if (req == NULL || evhttp_request_get_response_code(req) != 200) {
        outcome |= O_HTTP_ERROR;
        return;
    }
    http_ok++;
}

/* Both requests on one connection; a request not made counts as done in
 * error (the host's call failed). */
static void
http_start(struct evhttp_connection *hc)
{
    struct evhttp_request  *req;
    unsigned char           buf[4096];
    size_t                  off, n, i;

    req = hc ? evhttp_request_new(http_get_done, NULL) : NULL;
    if (req == NULL || evhttp_make_request(hc, req, EVHTTP_REQ_GET, "/get")
                       < 0)
    {
        http_done++;
        outcome |= O_CALL_FAILED;
    }
    req = hc ? evhttp_request_new(http_post_done, NULL) : NULL;
    if (req == NULL) {
        http_done++;
        outcome |= O_CALL_FAILED;
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
                      "127.0.0.1");
    for (off = 0; off < HTTP_BYTES; off += n) {
        n = HTTP_BYTES - off < sizeof(buf) ? HTTP_BYTES - off : sizeof(buf);
        for (i = 0; i < n; i++) {
            buf[i] = pattern(90, off + i);
        }
        evbuffer_add(evhttp_request_get_output_buffer(req), buf, n);
    }
    if (evhttp_make_request(hc, req, EVHTTP_REQ_POST, "/post") < 0) {
        http_done++;
        outcome |= O_CALL_FAILED;
    }
}

/* ---- the scenario ----------------------------------------------------- */

static void
stall_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    fail("stalled for %d ms", stall_ms);
}

static int
all_done(void)
{
    int  i;

    for (i = 0; i < NCONNS; i++) {
        if (!conns[i].cli_done || !conns[i].srv_done) {
            return 0;
        }
    }
    return http_done == 2;
}

/* A listener on a free loopback port, disabled: evconnlistener_new_bind
 * drops the result of its event_add, so the caller enables it and sees. */
static struct evconnlistener *
listen_any(struct sockaddr_in *sin, evconnlistener_cb cb)
{
    struct evconnlistener  *lev;
    socklen_t               len = sizeof(*sin);

    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x7f000001);
    lev = evconnlistener_new_bind(base, cb, NULL,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE
                                  | LEV_OPT_DISABLED,
                                  -1, (struct sockaddr *) sin, sizeof(*sin));
    if (lev != NULL
        && getsockname(evconnlistener_get_fd(lev), (struct sockaddr *) sin,
                       &len) < 0)
    {
        evconnlistener_free(lev);
        lev = NULL;
    }
    return lev;
}

/* The verdict on one connection: its bytes were checked as they came. */
static void
conn_verdict(struct conn *c)
{
    int  errors = c->cli_error || c->srv_error || c->failed_call;

    switch (c->kind) {
    case K_ECHO:
    case K_SETFD:
        if (c->cli_got == c->total && c->srv_got == c->total) {
            return;
        }
        break;
    case K_SINK:
        if (c->srv_got == c->total) {
            return;
        }
        break;
    case K_ABORT:
        /* the client left early: only its server's bytes were checked */
        return;
    }
    outcome |= O_CUT;
    if (!errors) {
        fail("conn %d: cut short without an error (client got %zu, "
             "server got %zu of %zu)", c->id, c->cli_got, c->srv_got,
             c->total);
    }
}

/* 0, or 1 with `bad` set. */
static int
scenario(long nth, int fallbacks)
{
    struct evconnlistener     *lev = NULL, *hlev = NULL;
    struct evhttp             *http = NULL;
    struct evhttp_connection  *hc = NULL;
    struct event              *stall = NULL;
    struct sockaddr_in         sin, hsin;
    struct timeval             tv_stall;
    const char                *method;
    int                        i, serve = 1, serve_http = 1;

    stall_ms = getenv("LE_FAULTS_STALL_MS") ? atoi(getenv("LE_FAULTS_STALL_MS"))
                                             : STALL_MS;
    tv_stall.tv_sec = stall_ms / 1000;
    tv_stall.tv_usec = stall_ms % 1000 * 1000;
    event_set_log_callback(log_cb);
    setenv("EVENT_IO_URING_BUFFERS", "4", 1);
    rp_fault_set(nth);
    io_uring_fault_fallbacks_fail_(fallbacks);

    base = event_base_new();
    if (base == NULL) {
        /* epoll would have done: not an allocation of ours */
        snprintf(bad_buf, sizeof(bad_buf), "event_base_new: NULL");
        bad = bad_buf;
        return 1;
    }
    method = event_base_get_method(base);
    if (strcmp(method, "io_uring") != 0) {
        outcome |= O_FALLBACK;
        if (first_warning[0] == '\0' || strstr(first_warning, "io_uring")
                                        == NULL)
        {
            fail("the base is on %s, and no warning names io_uring",
                 method);
        }
    }

    for (i = 0; i < NCONNS; i++) {
        conns[i].id = i + 1;
        conns[i].kind = i < ECHO_CONNS ? K_ECHO
                        : i == ECHO_CONNS ? K_SETFD
                        : i == ECHO_CONNS + 1 ? K_SINK : K_ABORT;
        conns[i].total = ECHOES(&conns[i]) ? ECHO_BYTES + i * 1000
                         : conns[i].kind == K_SINK ? SINK_BYTES : ABORT_BYTES;
    }
    stall = evtimer_new(base, stall_cb, NULL);
    lev = listen_any(&sin, srv_accept);
    http = evhttp_new(base);
    hlev = listen_any(&hsin, NULL);
    if (stall == NULL || lev == NULL || http == NULL || hlev == NULL
        || evtimer_add(stall, &tv_stall) < 0
        || evhttp_bind_listener(http, hlev) == NULL)
    {
        /* libevent's own setup, not the adapter's: never fails here */
        if (hlev != NULL) {
            evconnlistener_free(hlev);
        }
        fail("setup failed");
        goto out;
    }
    evhttp_set_gencb(http, http_handler, NULL);
    /* the listeners' event_add: the backend's allocations */
    if (evconnlistener_enable(lev) < 0) {
        outcome |= O_CALL_FAILED;
        serve = 0;
    }
    if (evconnlistener_enable(hlev) < 0) {
        outcome |= O_CALL_FAILED;
        serve_http = 0;
    }

    for (i = 0; i < NCONNS && bad == NULL; i++) {
        if (!serve) {
            conns[i].cli_done = conns[i].srv_done = 1;
            conns[i].failed_call = 1;
        } else if (conn_start(&conns[i], &sin) < 0) {
            fail("conn %d: getsockname", conns[i].id);
        }
    }
    if (serve_http) {
        hc = evhttp_connection_base_new(base, NULL, "127.0.0.1",
                                        ntohs(hsin.sin_port));
        http_start(hc);
    } else {
        http_done = 2;
    }

    while (bad == NULL && !all_done()) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    if (bad == NULL) {
        for (i = 0; i < NCONNS; i++) {
            conn_verdict(&conns[i]);
        }
    }
    if (bad == NULL && http_ok != 2 && !(outcome & (O_HTTP_ERROR
                                                     | O_CALL_FAILED)))
    {
        fail("http: %d of 2 requests right, no error", http_ok);
    }

out:
    for (i = 0; i < NCONNS; i++) {
        if (conns[i].cli != NULL) {
            bufferevent_free(conns[i].cli);
        }
        if (conns[i].srv != NULL) {
            bufferevent_free(conns[i].srv);
        }
        if (conns[i].hold != NULL) {
            event_free(conns[i].hold);
        }
    }
    if (hc != NULL) {
        evhttp_connection_free(hc);
    }
    if (http != NULL) {
        evhttp_free(http);
    }
    if (lev != NULL) {
        evconnlistener_free(lev);
    }
    if (stall != NULL) {
        event_free(stall);
    }
    event_base_free(base);
    libevent_global_shutdown();
    return bad != NULL;
}

/* ---- pass hold: memory out for a while -------------------------------- */

/*
 * Two streams, each from a writer thread on a plain socket to a completion
 * bufferevent:
 *   arrive  HOLD_FIRST bytes read as they come; at the hold, reading off
 *           and the rest sent (the ring of 4 buffers runs low, and nothing
 *           can be copied aside), reading on again HOLD_READ_MS later:
 *           the input needs a copy
 *   stash   reading off after its first bytes (what arrives is copied
 *           aside, up to the stash's limit), on again HOLD_READ_MS into
 *           the hold: the stash is more than one read, moved by copy
 */
struct hstream {
    int                  id;
    int                  wfd;         /* the writer's end */
    struct bufferevent  *bev;
    size_t               got;
    int                  eof, off;
    pthread_t            writer;
    int                  writer_err;
};

static struct hstream  hstreams[HOLD_STREAMS];
static int             hold_state;     /* 0 before, 1 in, 2 after */
static double          hold_cpu0, hold_t0;
static long            hold_tries;
static double          hold_cpu_ms, hold_wall_ms;
static int             hold_warnings;
static int             hold_go[2] = { -1, -1 };   /* the arrive writer's */
static struct event   *t_start, *t_read, *t_end;

static double
cpu_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double
wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *
hold_writer(void *arg)
{
    struct hstream  *h = arg;
    unsigned char    buf[65536];
    size_t           off, n, i;
    ssize_t          w;
    char             go;

    for (off = 0; off < HOLD_BYTES; off += (size_t) w) {
        if (h->id == 1 && off == HOLD_FIRST
            && read(hold_go[0], &go, 1) != 1)
        {
            h->writer_err = EPIPE;
            break;
        }
        n = HOLD_BYTES - off < sizeof(buf) ? HOLD_BYTES - off : sizeof(buf);
        if (h->id == 1 && off < HOLD_FIRST && n > HOLD_FIRST - off) {
            n = HOLD_FIRST - off;
        }
        for (i = 0; i < n; i++) {
            buf[i] = pattern(h->id, off + i);
        }
        w = send(h->wfd, buf, n, 0);
        if (w < 0) {
            h->writer_err = errno;
            break;
        }
    }
    close(h->wfd);
    return NULL;
}

static void
hold_read(struct bufferevent *bev, void *arg)
{
    struct hstream   *h = arg;
    struct evbuffer  *in = bufferevent_get_input(bev);

    if (check_evbuffer(in, h->id, &h->got, "hold stream") < 0) {
        return;
    }
    evbuffer_drain(in, evbuffer_get_length(in));
    if (h->got > HOLD_BYTES) {
        fail("stream %d: %zu bytes of %d", h->id, h->got, HOLD_BYTES);
        return;
    }
    if (h->id == 2 && hold_state == 0 && !h->off) {
        /* the stash stream: reading off until into the hold */
        h->off = 1;
        bufferevent_disable(bev, EV_READ);
    }
}

static void
hold_event(struct bufferevent *bev, short what, void *arg)
{
    struct hstream  *h = arg;

    (void) bev;
    if (what & BEV_EVENT_EOF) {
        h->eof = 1;
        if (h->got != HOLD_BYTES) {
            fail("stream %d: EOF after %zu bytes of %d", h->id, h->got,
                 HOLD_BYTES);
        }
        return;
    }
    fail("stream %d: event 0x%x (%s) after %zu bytes", h->id, what,
         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), h->got);
}

/* The arrive stream's writer sends the rest. */
static void
hold_let_go(void)
{
    if (hold_go[1] >= 0) {
        if (write(hold_go[1], "g", 1) != 1) {
            fail("write: %s", strerror(errno));
        }
        close(hold_go[1]);
        hold_go[1] = -1;
    }
}

static void
hold_end(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    hold_tries = io_uring_fault_memory_out_count_();
    io_uring_fault_memory_out_(0);
    hold_cpu_ms = cpu_ms() - hold_cpu0;
    hold_wall_ms = wall_ms() - hold_t0;
    hold_warnings = nwarnings;
    hold_state = 2;
}

static void
hold_reading_on(evutil_socket_t fd, short what, void *arg)
{
    int  i;

    (void) fd;
    (void) what;
    (void) arg;
    for (i = 0; i < HOLD_STREAMS; i++) {
        if (bufferevent_enable(hstreams[i].bev, EV_READ) < 0) {
            fail("stream %d: bufferevent_enable: -1", hstreams[i].id);
        }
    }
}

/* Once the arrive stream has its first bytes and the stash stream's
 * reading is off (HOLD_START_MS, or later on a slow machine). */
static void
hold_start(evutil_socket_t fd, short what, void *arg)
{
    struct timeval  tv_again = { 0, 10000 },
                    tv_read = { 0, HOLD_READ_MS * 1000 },
                    tv_end = { 0, HOLD_MS * 1000 };

    (void) fd;
    (void) what;
    (void) arg;
    if (!hstreams[1].off || hstreams[0].got != HOLD_FIRST) {
        if (evtimer_add(t_start, &tv_again) < 0) {
            fail("evtimer_add");
        }
        return;
    }
    if (evtimer_add(t_read, &tv_read) < 0
        || evtimer_add(t_end, &tv_end) < 0)
    {
        fail("evtimer_add");
        return;
    }
    bufferevent_disable(hstreams[0].bev, EV_READ);
    hold_t0 = wall_ms();
    hold_cpu0 = cpu_ms();
    nwarnings = 0;
    hold_state = 1;
    io_uring_fault_memory_out_(1);
    hold_let_go();
}

/* A connected loopback pair: *srv for the bufferevent, *cli the writer's.
 * 0 or -1. */
static int
tcp_pair(int *srv, int *cli)
{
    struct sockaddr_in  sin;
    socklen_t           len = sizeof(sin);
    int                 l;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    *srv = *cli = -1;
    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) {
        return -1;
    }
    if (bind(l, (struct sockaddr *) &sin, sizeof(sin)) < 0
        || listen(l, 1) < 0
        || getsockname(l, (struct sockaddr *) &sin, &len) < 0
        || (*cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0
        || connect(*cli, (struct sockaddr *) &sin, sizeof(sin)) < 0
        || (*srv = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
           < 0)
    {
        close(l);
        return -1;
    }
    close(l);
    return 0;
}

/* Pass hold's run: 0, or 1 with `bad` set. */
static int
hold_scenario(void)
{
    struct event    *stall;
    struct timeval   tv_stall, tv_start = { 0, HOLD_START_MS * 1000 };
    struct hstream  *h;
    int              i, fd, started = 0;

    stall_ms = getenv("LE_FAULTS_STALL_MS") ? atoi(getenv("LE_FAULTS_STALL_MS"))
                                             : STALL_MS;
    tv_stall.tv_sec = stall_ms / 1000;
    tv_stall.tv_usec = stall_ms % 1000 * 1000;
    for (i = 0; i < HOLD_STREAMS; i++) {
        hstreams[i].wfd = -1;
    }
    event_set_log_callback(log_cb);
    setenv("EVENT_IO_URING_BUFFERS", "4", 1);
    rp_fault_set(0);
    io_uring_fault_fallbacks_fail_(0);
    if (pipe2(hold_go, O_CLOEXEC) < 0) {
        snprintf(bad_buf, sizeof(bad_buf), "pipe2: %s", strerror(errno));
        bad = bad_buf;
        return 1;
    }

    base = event_base_new();
    if (base == NULL || strcmp(event_base_get_method(base), "io_uring")) {
        snprintf(bad_buf, sizeof(bad_buf), "no io_uring base");
        bad = bad_buf;
        if (base != NULL) {
            event_base_free(base);
        }
        close(hold_go[0]);
        close(hold_go[1]);
        return 1;
    }
    stall = evtimer_new(base, stall_cb, NULL);
    t_start = evtimer_new(base, hold_start, NULL);
    t_read = evtimer_new(base, hold_reading_on, NULL);
    t_end = evtimer_new(base, hold_end, NULL);
    if (stall == NULL || t_start == NULL || t_read == NULL || t_end == NULL
        || evtimer_add(stall, &tv_stall) < 0
        || evtimer_add(t_start, &tv_start) < 0)
    {
        fail("hold: timers");
        goto out;
    }
    for (i = 0; i < HOLD_STREAMS; i++) {
        h = &hstreams[i];
        h->id = i + 1;
        if (tcp_pair(&fd, &h->wfd) < 0) {
            fail("stream %d: a loopback pair: %s", h->id, strerror(errno));
            goto out;
        }
        h->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (h->bev == NULL || !is_completion(h->bev)) {
            fail("stream %d: no completion bufferevent", h->id);
            if (h->bev == NULL) {
                close(fd);
            }
            goto out;
        }
        bufferevent_setcb(h->bev, hold_read, NULL, hold_event, h);
        if (bufferevent_enable(h->bev, EV_READ) < 0) {
            fail("stream %d: bufferevent_enable: -1", h->id);
            goto out;
        }
    }
    for (i = 0; i < HOLD_STREAMS; i++) {
        if (pthread_create(&hstreams[i].writer, NULL, hold_writer,
                           &hstreams[i]) != 0)
        {
            fail("pthread_create");
            goto out;
        }
        started++;
    }

    while (bad == NULL && !(hstreams[0].eof && hstreams[1].eof
                            && hold_state == 2))
    {
        event_base_loop(base, EVLOOP_ONCE);
    }
    for (i = 0; i < HOLD_STREAMS && bad == NULL; i++) {
        if (hstreams[i].writer_err) {
            fail("stream %d: the writer's send: %s", hstreams[i].id,
                 strerror(hstreams[i].writer_err));
        }
    }
    if (bad == NULL && hold_tries == 0) {
        fail("no allocation tried while memory was out: the hold missed "
             "the copies");
    }
    if (bad == NULL && hold_tries > HOLD_MAX_TRIES) {
        fail("%ld allocations tried in %.0f ms without memory (at most "
             "%d): the loop spins", hold_tries, hold_wall_ms,
             HOLD_MAX_TRIES);
    }
    if (bad == NULL && hold_cpu_ms > HOLD_MAX_CPU_MS) {
        fail("the loop used %.0f ms of CPU in %.0f ms without memory (at "
             "most %d): it spins", hold_cpu_ms, hold_wall_ms,
             HOLD_MAX_CPU_MS);
    }
    if (bad == NULL && (hold_warnings < 1 || hold_warnings > HOLD_STREAMS)) {
        fail("%d warnings while memory was out, want 1 to %d (one per "
             "bufferevent)", hold_warnings, HOLD_STREAMS);
    }

out:
    io_uring_fault_memory_out_(0);
    /* a writer still waiting sees EOF, one blocked in send the close */
    if (hold_go[1] >= 0) {
        close(hold_go[1]);
        hold_go[1] = -1;
    }
    for (i = 0; i < HOLD_STREAMS; i++) {
        if (hstreams[i].bev != NULL) {
            bufferevent_free(hstreams[i].bev);
        }
    }
    for (i = 0; i < HOLD_STREAMS; i++) {
        if (i < started) {
            pthread_join(hstreams[i].writer, NULL);
        } else if (hstreams[i].wfd >= 0) {
            close(hstreams[i].wfd);
        }
    }
    if (stall != NULL) {
        event_free(stall);
    }
    if (t_start != NULL) {
        event_free(t_start);
    }
    if (t_read != NULL) {
        event_free(t_read);
    }
    if (t_end != NULL) {
        event_free(t_end);
    }
    close(hold_go[0]);
    event_base_free(base);
    libevent_global_shutdown();
    return bad != NULL;
}

/* ---- the driver ------------------------------------------------------- */

struct report {
    long      count;
    long      fallbacks;
    unsigned  outcome;
    long      tries;        /* pass hold: allocations tried in the hold */
    double    cpu_ms, wall_ms;
    int       warnings;
    char      why[300];
};

/* Run the scenario with the n-th allocation failed (0: none; fallbacks:
 * and the fallbacks after it), or pass hold's (nth -1), in a child: its
 * exit status (0 ok, 1 a check, 23 a leak, 128+ a signal), and what it
 * reported. */
static int
child(long nth, int fallbacks, struct report *r)
{
    int    p[2], st;
    pid_t  pid;

    memset(r, 0, sizeof(*r));
    fflush(stdout);
    if (pipe(p) < 0 || (pid = fork()) < 0) {
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        st = nth < 0 ? hold_scenario() : scenario(nth, fallbacks);
        r->tries = hold_tries;
        r->cpu_ms = hold_cpu_ms;
        r->wall_ms = hold_wall_ms;
        r->warnings = hold_warnings;
        r->count = rp_fault_count();
        r->fallbacks = io_uring_fault_fallbacks_();
        r->outcome = outcome;
        if (nth > r->count) {
            r->outcome |= O_NOT_REACHED;
        }
        snprintf(r->why, sizeof(r->why), "%s", bad ? bad : "");
        if (write(p[1], r, sizeof(*r)) != (ssize_t) sizeof(*r)) {
            _exit(3);
        }
        exit(st);   /* exit(), not _exit(): LSan checks at exit */
    }
    close(p[1]);
    if (read(p[0], r, sizeof(*r)) != (ssize_t) sizeof(*r)) {
        r->count = -1;
        snprintf(r->why, sizeof(r->why), "no report (crashed?)");
    }
    close(p[0]);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

struct pass {
    const char  *name;
    int          fallbacks;
    long         runs, bad, plain, reached, hist[8];
    double       t0;
};

/* One run of a pass, judged and counted.  0, or 1 if it failed. */
static int
run_one(struct pass *ps, long n, struct report *r, int verbose)
{
    int  rc, k;

    rc = child(n, ps->fallbacks, r);
    ps->runs++;
    if (verbose) {
        printf("le-faults: %s n %ld: exit %d, outcome 0x%02x, %ld "
               "fallbacks %s\n", ps->name, n, rc, r->outcome, r->fallbacks,
               r->why);
    }
    if (rc == 0 && (r->outcome & O_NOT_REACHED)
        && r->outcome != O_NOT_REACHED)
    {
        /* nothing failed, yet something was reported */
        rc = 1;
        snprintf(r->why, sizeof(r->why), "outcome 0x%02x without a "
                 "failed allocation (%ld reached)", r->outcome, r->count);
    }
    if (ps->fallbacks && r->fallbacks > 0) {
        ps->reached++;
    }
    if (rc != 0) {
        ps->bad++;
        printf("le-faults: %s: allocation %ld failed: exit %d%s%s%s\n",
               ps->name, n, rc, rc == 23 ? " (an ASan/LSan report in the log)"
                   : rc > 128 ? " (a signal)" : "", r->why[0] ? ": " : "",
               r->why);
        return 1;
    }
    if (r->outcome == 0) {
        ps->plain++;
    }
    for (k = 0; k < 8; k++) {
        if (r->outcome & (1u << k)) {
            ps->hist[k]++;
        }
    }
    return 0;
}

/* Its summary, and its verdict line: "le-faults: pass NAME: ok" or
 * "... FAIL: why" (tests/libevent/faults.sh reads them). */
static int
pass_end(struct pass *ps, const char *range)
{
    int  k;

    printf("le-faults: %s: n = %s, %ld runs in %.1f s: %ld handled, %ld "
           "not\n", ps->name, range, ps->runs, now_s() - ps->t0,
           ps->runs - ps->bad, ps->bad);
    if (ps->fallbacks) {
        printf("    %5ld  the fallback's allocation failed too\n",
               ps->reached);
    }
    printf("    %5ld  absorbed: everything complete, nothing reported "
           "(a retry, a copy instead of a reference)\n", ps->plain);
    for (k = 0; k < 8; k++) {
        if (ps->hist[k]) {
            printf("    %5ld  %s\n", ps->hist[k], outcome_names[k]);
        }
    }
    if (ps->bad) {
        printf("le-faults: pass %s: FAIL: %ld of %ld runs\n", ps->name,
               ps->bad, ps->runs);
        return 1;
    }
    if (ps->fallbacks && ps->reached == 0) {
        printf("le-faults: pass %s: FAIL: no run reached a fallback\n",
               ps->name);
        return 1;
    }
    printf("le-faults: pass %s: ok\n", ps->name);
    return 0;
}

/* Pass hold, in a child: its summary and verdict line.  0, or 1. */
static int
hold_pass(void)
{
    struct report  r;
    double         t0 = now_s();
    int            rc;

    rc = child(-1, 0, &r);
    printf("le-faults: hold: memory out %.0f ms (%d streams of %d KiB "
           "arriving): %ld allocations tried, %.1f ms of the loop's CPU, %d "
           "warnings (%.1f s)\n", r.wall_ms, HOLD_STREAMS, HOLD_BYTES / 1024,
           r.tries, r.cpu_ms, r.warnings, now_s() - t0);
    if (rc != 0) {
        printf("le-faults: pass hold: FAIL: exit %d%s%s%s\n", rc,
               rc == 23 ? " (an ASan/LSan report in the log)"
                   : rc > 128 ? " (a signal)" : "", r.why[0] ? ": " : "",
               r.why);
        return 1;
    }
    printf("le-faults: pass hold: ok\n");
    return 0;
}

int
main(int argc, char **argv)
{
    struct report  r;
    struct pass    each = { "each", 0, 0, 0, 0, 0, { 0 }, 0 };
    struct pass    fb = { "fallbacks", 1, 0, 0, 0, 0, { 0 }, 0 };
    long           count, n, last, *fbn, nfb = 0, i;
    double         t0 = now_s();
    int            rc, hold_rc, verbose = getenv("LE_FAULTS_VERBOSE") != NULL;
    char           range[64];

    /* as servers do: a peer that went away is an error, not a signal */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3) {
        /* one run, here, to debug: le-faults each|fallbacks n */
        rc = scenario(atol(argv[2]), strcmp(argv[1], "fallbacks") == 0);
        printf("allocations %ld, fallbacks %ld, outcome 0x%x, warning "
               "'%s': %s\n", rp_fault_count(), io_uring_fault_fallbacks_(),
               outcome, first_warning, bad ? bad : "ok");
        return rc;
    }
    if (argc == 2 && strcmp(argv[1], "hold") == 0) {
        rc = hold_scenario();
        printf("memory out %.0f ms: %ld allocations tried, %.1f ms CPU, %d "
               "warnings; streams got %zu and %zu of %d bytes: %s\n",
               hold_wall_ms, hold_tries, hold_cpu_ms, hold_warnings,
               hstreams[0].got, hstreams[1].got, HOLD_BYTES,
               bad ? bad : "ok");
        return rc;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: le-faults [each|fallbacks n | hold]\n");
        return 2;
    }

    rc = hold_pass();

    hold_rc = rc;
    rc = child(0, 0, &r);
    if (rc != 0 || r.outcome != 0) {
        printf("le-faults: the scenario without a failure: exit %d, outcome "
               "0x%x: %s\n", rc, r.outcome, r.why);
        printf("le-faults: pass each: FAIL: the scenario without a "
               "failure\n");
        printf("le-faults: pass fallbacks: FAIL: the scenario without a "
               "failure\n");
        return 1;
    }
    count = r.count;
    printf("le-faults: the scenario reaches %ld allocations (%.1f s)\n",
           count, now_s() - t0);
    if (count < 20) {
        printf("le-faults: pass each: FAIL: too few allocations counted\n");
        printf("le-faults: pass fallbacks: FAIL: too few allocations\n");
        return 1;
    }

    /* each: every n the first run reached, and a tenth beyond; the n
     * whose failure a fallback followed are noted for the next pass */
    last = count + count / 10;
    fbn = calloc((size_t) last, sizeof(*fbn));
    if (fbn == NULL) {
        return 2;
    }
    each.t0 = now_s();
    for (n = 1; n <= last && each.bad < MAX_FAILED; n++) {
        if (run_one(&each, n, &r, verbose) == 0 && r.fallbacks > 0) {
            fbn[nfb++] = n;
        }
    }
    snprintf(range, sizeof(range), "1..%ld", n - 1);
    rc = pass_end(&each, range);

    /* fallbacks: those n again, with the fallbacks failed too */
    fb.t0 = now_s();
    for (i = 0; i < nfb && fb.bad < MAX_FAILED; i++) {
        run_one(&fb, fbn[i], &r, verbose);
    }
    snprintf(range, sizeof(range), "%ld of them", nfb);
    rc |= pass_end(&fb, range);
    free(fbn);
    return rc | hold_rc;
}
