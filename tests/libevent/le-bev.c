/*
 * le-bev: completion bufferevents on the libevent under test.
 *
 * Usage: le-bev <case> [expect: completion|socket]
 *   kind     bufferevent_socket_new on a connected TCP socket and a
 *            socketpair gives the expected kind; on a pipe, a UDP socket
 *            and an unconnected TCP socket always a socket bufferevent, and
 *            on a base with EVENT_BASE_FLAG_IO_URING_NO_BEV too
 *   echo     N TCP connections through an evconnlistener echo server, each
 *            client (connected with bufferevent_socket_connect) sends
 *            SIZE bytes of a per-connection pattern in pieces and checks
 *            every byte that comes back (N, SIZE from LE_BEV_CONNS,
 *            LE_BEV_BYTES; with EVENT_IO_URING_BUFFERS=8 an ENOBUFS storm)
 *   slow     a peer writes 32 MiB to a server bufferevent whose reading
 *            is disabled for a while; meanwhile 16 other connections
 *            ping-pong 200 rounds each; then the slow reader reads it all
 *   free     bufferevent_free with sends in flight (the peer does not
 *            read) and with received data unread, then the loop runs on
 *            and the base is freed (run under ASan/valgrind for lifetimes)
 *   threads  the loop runs in a second thread; the main thread writes to
 *            and frees completion bufferevents (BEV_OPT_THREADSAFE) while
 *            the loop waits in the engine
 *   connect  connect to a closed port: BEV_EVENT_ERROR with
 *            ECONNREFUSED; connect then EOF from the peer: CONNECTED, then
 *            READING|EOF; timeouts: READING|TIMEOUT after 100 ms idle
 *   fork     fork() while a completion bufferevent has a large send in
 *            flight (its peer reads nothing for a while, 24 MiB queued);
 *            the parent goes on and its peer checks every byte of the
 *            stream; the child calls event_reinit, frees what it
 *            inherited, ping-pongs 1 MiB over its own bufferevents,
 *            frees them and the base and exits 0; both end with every
 *            allocation libevent made since the start freed
 *   fork-free-first  the same, but the child frees what it inherited
 *            before event_reinit, on a thread where any io_uring system
 *            call ends the child (on epoll that free deletes the
 *            parent's fds from the epoll set they share: compare with
 *            socket bufferevents on io_uring)
 *   setfd    bufferevent_setfd on a bufferevent made with fd -1, with a
 *            TCP socket whose connect is not over: connect() by hand
 *            (EINPROGRESS) then setfd, and setfd then connect(); output
 *            queued before goes out, the echo comes back, no event at all
 *            (no CONNECTED, as for the socket bufferevent); refused, for
 *            three settings (read+write with output, read only, write
 *            with output): one event, on a side that is on; a completion
 *            bufferevent reports ERROR with ECONNREFUSED, WRITING when it
 *            has output (the socket one says EOF or EPIPE where its read
 *            callback swallowed the ECONNREFUSED, on the side whose event
 *            was added last); a
 *            connect that hangs (full accept queue): WRITING|TIMEOUT and
 *            READING|TIMEOUT after 100 ms
 *   threads-setfd  the loop runs in a second thread; a third thread,
 *            where any io_uring system call ends the process (only the
 *            loop's thread may touch the ring), moves a completion
 *            bufferevent (BEV_OPT_THREADSAFE) to new sockets with
 *            bufferevent_setfd (connected: while the loop waits in the
 *            engine and while it runs a callback; then still connecting) and
 *            checks the echo of each, frees it with 4 MiB going out,
 *            makes one with fd -1, setfd, reads it from its own thread
 *            and frees it, and one more connected there with
 *            bufferevent_socket_connect while the loop runs a callback,
 *            to a full accept queue (the connect is pending for a second);
 *            last, one freed from there while the loop's thread runs a
 *            callback after which the loop stops: its close, left to the
 *            loop's thread, must still run at event_base_free (the -asan
 *            run's LeakSanitizer sees the bufferevent otherwise)
 * Kind: the name in the bufferevent's ops (event2/bufferevent_struct.h):
 * "socket_io_uring" for a completion bufferevent.
 * Prints "ok" and exits 0, or names the failed check and exits 1.
 */

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <pthread.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "le-bev: %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static int    want_completion = 1;
static long   mem_live;     /* libevent's allocations not yet freed */
static short  ev_seen;
static int    ev_errno;

/* libevent's allocator, counted (event_set_mem_functions). */
static void *
mem_malloc(size_t n)
{
    void  *p = malloc(n);

    if (p != NULL) {
        __atomic_add_fetch(&mem_live, 1, __ATOMIC_RELAXED);
    }
    return p;
}

static void *
mem_realloc(void *p, size_t n)
{
    void  *q = realloc(p, n);

    if (p == NULL && q != NULL) {
        __atomic_add_fetch(&mem_live, 1, __ATOMIC_RELAXED);
    }
    return q;
}

static void
mem_free(void *p)
{
    if (p != NULL) {
        __atomic_sub_fetch(&mem_live, 1, __ATOMIC_RELAXED);
    }
    free(p);
}

/*
 * The engine belongs to the thread that runs the loop, and a ring to the
 * process that made it.  A thread that must not touch any ring (another
 * thread while the loop runs, a child before event_reinit) calls this:
 * from then on an io_uring system call on this thread, and only this
 * thread, ends the process with status 3 (seccomp, no TSYNC).
 */
static void
sigsys_cb(int sig, siginfo_t *si, void *uc)
{
    static const char  msg[] = "le-bev: io_uring system call on a thread "
                               "that must not touch the ring\n";

    (void) sig;
    (void) si;
    (void) uc;
    (void) !write(2, msg, sizeof(msg) - 1);
    _exit(3);
}

static void
no_io_uring_here(void)
{
    struct sock_filter  f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog   prog = { sizeof(f) / sizeof(f[0]), f };
    struct sigaction    sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sigsys_cb;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGSYS, &sa, NULL) == 0, "sigaction");
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
          && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0,
          "seccomp: %s", strerror(errno));
}

/* Run fn(arg) on a thread of its own that may not touch any ring. */
struct no_ring_call {
    void  (*fn)(void *);
    void   *arg;
};

static void *
no_ring_thread(void *arg)
{
    struct no_ring_call  *c = arg;

    no_io_uring_here();
    c->fn(c->arg);
    return NULL;
}

static void
call_without_ring(void (*fn)(void *), void *arg)
{
    struct no_ring_call  c = { fn, arg };
    pthread_t            t;

    CHECK(pthread_create(&t, NULL, no_ring_thread, &c) == 0,
          "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

/* The kind's name is the first field of the bufferevent's ops. */
static int
is_completion(struct bufferevent *bev)
{
    return strcmp(*(const char *const *) bev->be_ops, "socket_io_uring") == 0;
}

static void
check_kind(struct bufferevent *bev, const char *what)
{
    CHECK(is_completion(bev) == want_completion, "%s: %s bufferevent",
          what, is_completion(bev) ? "completion" : "socket");
}

static unsigned char
pattern(int conn, size_t off)
{
    return (unsigned char) (conn * 31 + off * 7 + (off >> 9));
}

/*
 * Write stream `conn` from *sent on, up to `total` bytes in all, while the
 * output holds less than `cap` (0: no cap); *sent moves on.
 */
static void
pattern_write(struct bufferevent *bev, int conn, size_t *sent, size_t total,
    size_t cap)
{
    unsigned char  buf[65536];
    size_t         n, i;

    while (*sent < total
           && (cap == 0
               || evbuffer_get_length(bufferevent_get_output(bev)) < cap))
    {
        n = total - *sent < sizeof(buf) ? total - *sent : sizeof(buf);
        for (i = 0; i < n; i++) {
            buf[i] = pattern(conn, *sent + i);
        }
        bufferevent_write(bev, buf, n);
        *sent += n;
    }
}

/* Read everything bev has and check it is stream `conn` from *got on. */
static void
pattern_read(struct bufferevent *bev, int conn, size_t *got, const char *what)
{
    unsigned char  buf[16384];
    size_t         n, i;

    while ((n = bufferevent_read(bev, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++) {
            CHECK(buf[i] == pattern(conn, *got + i),
                  "%s: byte %zu is %u, want %u", what, *got + i, buf[i],
                  pattern(conn, *got + i));
        }
        *got += n;
    }
}

static struct sockaddr_in
listen_addr(struct evconnlistener *lev)
{
    struct sockaddr_in sin;
    socklen_t          len = sizeof(sin);

    CHECK(getsockname(evconnlistener_get_fd(lev), (struct sockaddr *) &sin,
                      &len) == 0, "getsockname");
    return sin;
}

/* ---- echo server ------------------------------------------------------ */

static void
echo_read(struct bufferevent *bev, void *arg)
{
    (void) arg;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void
echo_event(struct bufferevent *bev, short what, void *arg)
{
    (void) arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
    }
}

static void
echo_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
    struct bufferevent  *bev;

    (void) sa;
    (void) socklen;
    (void) arg;
    bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
                                 BEV_OPT_CLOSE_ON_FREE);
    CHECK(bev != NULL, "bufferevent_socket_new (accepted)");
    check_kind(bev, "accepted socket");
    bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static struct evconnlistener *
echo_server(struct event_base *base)
{
    struct sockaddr_in      sin;
    struct evconnlistener  *lev;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    lev = evconnlistener_new_bind(base, echo_accept, NULL,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                  -1, (struct sockaddr *) &sin, sizeof(sin));
    CHECK(lev != NULL, "evconnlistener_new_bind");
    return lev;
}

/* ---- echo clients ----------------------------------------------------- */

struct client {
    struct bufferevent  *bev;
    int                  id;
    size_t               total, sent, got;
    int                  connected, done;
};

static int  clients_done;

static void
client_fill(struct client *c)
{
    unsigned char  buf[4096];
    size_t         n, i;

    /* a few pieces at a time, so the server sees many small reads */
    while (c->sent < c->total
           && evbuffer_get_length(bufferevent_get_output(c->bev)) < 65536)
    {
        n = c->total - c->sent;
        n = n < sizeof(buf) ? n : (size_t) (1 + (c->sent * 13) % sizeof(buf));
        for (i = 0; i < n; i++) {
            buf[i] = pattern(c->id, c->sent + i);
        }
        bufferevent_write(c->bev, buf, n);
        c->sent += n;
    }
}

static void
client_read(struct bufferevent *bev, void *arg)
{
    struct client  *c = arg;
    unsigned char   buf[8192];
    size_t          n, i;

    while ((n = bufferevent_read(bev, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++) {
            CHECK(buf[i] == pattern(c->id, c->got + i),
                  "conn %d: byte %zu is %u, want %u", c->id, c->got + i,
                  buf[i], pattern(c->id, c->got + i));
        }
        c->got += n;
    }
    if (c->got == c->total && !c->done) {
        c->done = 1;
        clients_done++;
        bufferevent_free(bev);
        c->bev = NULL;
        return;
    }
    client_fill(c);
}

static void
client_write(struct bufferevent *bev, void *arg)
{
    (void) bev;
    client_fill(arg);
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
    struct client  *c = arg;

    (void) bev;
    if (what & BEV_EVENT_CONNECTED) {
        c->connected = 1;
        check_kind(c->bev, "connected with bufferevent_socket_connect");
        client_fill(c);
        return;
    }
    CHECK(0, "conn %d: event 0x%x (%s) after %zu of %zu bytes", c->id, what,
          strerror(errno), c->got, c->total);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    CHECK(0, "%s: timed out", (const char *) arg);
}

static int
env_int(const char *name, int dflt)
{
    const char  *s = getenv(name);

    return s != NULL && *s ? atoi(s) : dflt;
}

static void
test_echo(void)
{
    struct event_base      *base = event_base_new();
    struct evconnlistener  *lev = echo_server(base);
    struct sockaddr_in      sin = listen_addr(lev);
    struct timeval          tv = { 60, 0 };
    struct event           *to;
    struct client          *cs;
    int                     n = env_int("LE_BEV_CONNS", 64), i;
    size_t                  size = (size_t) env_int("LE_BEV_BYTES", 1 << 20);

    cs = calloc((size_t) n, sizeof(*cs));
    for (i = 0; i < n; i++) {
        cs[i].id = i;
        cs[i].total = size + (size_t) i * 1000;
        cs[i].bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        CHECK(cs[i].bev != NULL, "bufferevent_socket_new(-1)");
        bufferevent_setcb(cs[i].bev, client_read, client_write, client_event,
                          &cs[i]);
        bufferevent_enable(cs[i].bev, EV_READ | EV_WRITE);
        CHECK(bufferevent_socket_connect(cs[i].bev, (struct sockaddr *) &sin,
                                         sizeof(sin)) == 0, "connect");
    }
    to = evtimer_new(base, timeout_cb, "echo");
    evtimer_add(to, &tv);
    while (clients_done < n) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(to);
    evconnlistener_free(lev);
    /* let the server see the EOFs and free its side */
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    event_base_free(base);
    free(cs);
}

/* ---- kind ------------------------------------------------------------- */

static void
test_kind(void)
{
    struct event_base   *base = event_base_new();
    struct bufferevent  *bev;
    int                  sv[2], fd;

    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    check_kind(bev, "socketpair");
    bufferevent_free(bev);
    close(sv[1]);

    want_completion = 0;
    CHECK(pipe(sv) == 0, "pipe");
    bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    check_kind(bev, "pipe");
    bufferevent_free(bev);
    close(sv[1]);

    fd = socket(AF_INET, SOCK_DGRAM, 0);
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    check_kind(bev, "UDP socket");
    bufferevent_free(bev);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    check_kind(bev, "unconnected TCP socket");
    bufferevent_free(bev);
    event_base_free(base);

    /* turned off by the base's config flag */
    {
        struct event_config  *cfg = event_config_new();

        event_config_set_flag(cfg, EVENT_BASE_FLAG_IO_URING_NO_BEV);
        base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        CHECK(strcmp(event_base_get_method(base), "io_uring") == 0,
              "flag: method %s", event_base_get_method(base));
        CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0,
              "socketpair");
        bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
        check_kind(bev, "socketpair, EVENT_BASE_FLAG_IO_URING_NO_BEV");
        bufferevent_free(bev);
        close(sv[1]);
        event_base_free(base);
    }
}

/* ---- slow reader ------------------------------------------------------ */

#define SLOW_BYTES  (32u << 20)
#define PP_CONNS    16
#define PP_ROUNDS   200

static struct bufferevent  *slow_srv;
static size_t               slow_got, slow_sent;
static int                  pp_done;

struct pp {
    struct bufferevent  *a, *b;
    int                  rounds;
};

static void
slow_read(struct bufferevent *bev, void *arg)
{
    (void) arg;
    pattern_read(bev, 99, &slow_got, "slow");
}

static void
slow_write(struct bufferevent *bev, void *arg)
{
    (void) arg;
    pattern_write(bev, 99, &slow_sent, SLOW_BYTES, 1u << 20);
}

static void
pp_read(struct bufferevent *bev, void *arg)
{
    struct pp  *p = arg;
    char        buf[64];

    while (bufferevent_read(bev, buf, sizeof(buf)) > 0) {
        if (bev == p->a) {
            if (++p->rounds == PP_ROUNDS) {
                pp_done++;
                return;
            }
            bufferevent_write(p->a, "ping", 4);
        } else {
            bufferevent_write(p->b, "pong", 4);
        }
    }
}

static void
fail_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    CHECK(0, "%s: event 0x%x (%s)", (const char *) arg, what,
          strerror(errno));
}

static void
pp_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    CHECK(0, "ping-pong %p: event 0x%x (%s)", arg, what, strerror(errno));
}

static void
tcp_pair(struct event_base *base, struct evconnlistener *lev,
    struct bufferevent **a, struct bufferevent **b)
{
    struct sockaddr_in  sin = listen_addr(lev);
    int                 c, s;

    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *) &sin, sizeof(sin)) == 0, "connect");
    s = accept(evconnlistener_get_fd(lev), NULL, NULL);
    CHECK(s >= 0, "accept");
    evutil_make_socket_nonblocking(c);
    evutil_make_socket_nonblocking(s);
    *a = bufferevent_socket_new(base, c, BEV_OPT_CLOSE_ON_FREE);
    *b = bufferevent_socket_new(base, s, BEV_OPT_CLOSE_ON_FREE);
    check_kind(*a, "tcp pair");
}

static void
test_slow(void)
{
    struct event_base      *base = event_base_new();
    struct evconnlistener  *lev = echo_server(base);
    struct bufferevent     *writer;
    struct pp               pps[PP_CONNS];
    struct timeval          tv = { 60, 0 };
    struct event           *to;
    int                     i;

    evconnlistener_disable(lev);
    tcp_pair(base, lev, &writer, &slow_srv);
    bufferevent_setcb(writer, NULL, slow_write, fail_event, "slow writer");
    bufferevent_setcb(slow_srv, slow_read, NULL, fail_event, "slow reader");
    bufferevent_enable(writer, EV_WRITE);
    slow_write(writer, NULL);
    /* reading on, then off for a while: the queue is taken, then left */
    bufferevent_enable(slow_srv, EV_READ);
    event_base_loop(base, EVLOOP_ONCE);
    bufferevent_disable(slow_srv, EV_READ);

    for (i = 0; i < PP_CONNS; i++) {
        tcp_pair(base, lev, &pps[i].a, &pps[i].b);
        pps[i].rounds = 0;
        bufferevent_setcb(pps[i].a, pp_read, NULL, pp_event, &pps[i]);
        bufferevent_setcb(pps[i].b, pp_read, NULL, pp_event, &pps[i]);
        bufferevent_enable(pps[i].a, EV_READ | EV_WRITE);
        bufferevent_enable(pps[i].b, EV_READ | EV_WRITE);
        bufferevent_write(pps[i].a, "ping", 4);
    }
    to = evtimer_new(base, timeout_cb, "slow");
    evtimer_add(to, &tv);
    while (pp_done < PP_CONNS) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(slow_got < SLOW_BYTES, "slow reader read everything while off");
    fprintf(stderr, "le-bev: ping-pong done with %zu of %u bytes read\n",
            slow_got, SLOW_BYTES);

    bufferevent_enable(slow_srv, EV_READ);
    while (slow_got < SLOW_BYTES) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(slow_got == SLOW_BYTES, "slow: got %zu", slow_got);

    for (i = 0; i < PP_CONNS; i++) {
        bufferevent_free(pps[i].a);
        bufferevent_free(pps[i].b);
    }
    bufferevent_free(writer);
    bufferevent_free(slow_srv);
    event_free(to);
    evconnlistener_free(lev);
    event_base_free(base);
}

/* ---- free with I/O in flight ------------------------------------------ */

static void
test_free(void)
{
    struct event_base      *base = event_base_new();
    struct evconnlistener  *lev = echo_server(base);
    struct bufferevent     *a, *b;
    struct timeval          tv = { 0, 50000 };
    static unsigned char    big[4u << 20];
    int                     round;

    evconnlistener_disable(lev);
    for (round = 0; round < 20; round++) {
        tcp_pair(base, lev, &a, &b);
        bufferevent_setcb(a, NULL, NULL, fail_event, "free a");
        bufferevent_setcb(b, NULL, NULL, fail_event, "free b");
        bufferevent_enable(a, EV_READ | EV_WRITE);
        bufferevent_enable(b, EV_READ);
        bufferevent_disable(b, EV_READ);
        /* more than the socket buffers hold: a send stays in the kernel */
        bufferevent_write(a, big, sizeof(big));
        bufferevent_write(b, "unread", 6);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        switch (round % 3) {
        case 0:
            bufferevent_free(a);
            bufferevent_free(b);
            break;
        case 1:
            bufferevent_free(b);
            bufferevent_free(a);
            break;
        default:
            /* freed in the same pass that queued the write */
            bufferevent_write(a, big, 1000);
            bufferevent_free(a);
            bufferevent_free(b);
            break;
        }
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    /* and one freed with the base right after, without another pass */
    tcp_pair(base, lev, &a, &b);
    bufferevent_enable(a, EV_WRITE);
    bufferevent_write(a, big, sizeof(big));
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    bufferevent_free(a);
    bufferevent_free(b);
    evconnlistener_free(lev);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    event_base_free(base);
}

/* ---- connect and events ------------------------------------------------ */

static void
note_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    (void) arg;
    ev_seen = what;
    ev_errno = errno;
}

static void
test_connect(void)
{
    struct event_base      *base = event_base_new();
    struct evconnlistener  *lev = echo_server(base);
    struct sockaddr_in      sin = listen_addr(lev);
    struct bufferevent     *bev, *a, *b;
    struct timeval          tv = { 0, 100000 };
    int                     i;

    /* refused */
    evconnlistener_free(lev);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, note_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    CHECK(bufferevent_socket_connect(bev, (struct sockaddr *) &sin,
                                     sizeof(sin)) == 0, "connect");
    for (i = 0; i < 50 && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(ev_seen == BEV_EVENT_ERROR && ev_errno == ECONNREFUSED,
          "refused: event 0x%x errno %d", ev_seen, ev_errno);
    bufferevent_free(bev);

    /* connect, then EOF */
    lev = echo_server(base);
    sin = listen_addr(lev);
    evconnlistener_disable(lev);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, note_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    ev_seen = 0;
    CHECK(bufferevent_socket_connect(bev, (struct sockaddr *) &sin,
                                     sizeof(sin)) == 0, "connect");
    for (i = 0; i < 50 && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(ev_seen == BEV_EVENT_CONNECTED, "connect: event 0x%x", ev_seen);
    check_kind(bev, "after connect");
    i = accept(evconnlistener_get_fd(lev), NULL, NULL);
    CHECK(i >= 0, "accept");
    close(i);
    ev_seen = 0;
    for (i = 0; i < 50 && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(ev_seen == (BEV_EVENT_READING | BEV_EVENT_EOF), "eof: event 0x%x",
          ev_seen);
    bufferevent_free(bev);

    /* read timeout */
    tcp_pair(base, lev, &a, &b);
    bufferevent_setcb(a, NULL, NULL, note_event, NULL);
    bufferevent_set_timeouts(a, &tv, NULL);
    bufferevent_enable(a, EV_READ);
    ev_seen = 0;
    for (i = 0; i < 50 && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(ev_seen == (BEV_EVENT_READING | BEV_EVENT_TIMEOUT),
          "timeout: event 0x%x", ev_seen);
    bufferevent_free(a);
    bufferevent_free(b);
    evconnlistener_free(lev);
    event_base_free(base);
}

/* ---- fork with a send in flight ---------------------------------------- */

#define FORK_BYTES  (24u << 20)
#define FORK_MSG    (64u << 10)
#define FORK_ROUNDS 16

static size_t  fork_sent, fork_got;
static int     fork_rounds;

static void
fork_fill(struct bufferevent *bev, void *arg)
{
    (void) arg;
    pattern_write(bev, 5, &fork_sent, FORK_BYTES, 8u << 20);
}

static void
fork_read(struct bufferevent *bev, void *arg)
{
    (void) arg;
    pattern_read(bev, 5, &fork_got, "fork: parent's stream");
}

/* The child's own pair: a sends FORK_MSG bytes, b echoes them back, a
 * checks them and sends the next round. */
static void
fork_child_read(struct bufferevent *bev, void *arg)
{
    struct bufferevent  *a = arg;
    struct evbuffer     *in = bufferevent_get_input(bev);
    unsigned char        buf[FORK_MSG];
    size_t               i;

    if (bev != a) {
        bufferevent_write_buffer(bev, in);
        return;
    }
    while (evbuffer_get_length(in) >= FORK_MSG) {
        evbuffer_remove(in, buf, FORK_MSG);
        for (i = 0; i < FORK_MSG; i++) {
            CHECK(buf[i] == pattern(fork_rounds, i),
                  "fork: child's round %d: byte %zu", fork_rounds, i);
        }
        if (++fork_rounds == FORK_ROUNDS) {
            event_base_loopexit(bufferevent_get_base(bev), NULL);
            return;
        }
        for (i = 0; i < FORK_MSG; i++) {
            buf[i] = pattern(fork_rounds, i);
        }
        bufferevent_write(a, buf, FORK_MSG);
    }
}

struct fork_inherited {
    struct bufferevent     *s, *r;
    struct evconnlistener  *lev;
};

static void
fork_free_inherited(void *arg)
{
    struct fork_inherited  *in = arg;

    bufferevent_free(in->s);
    bufferevent_free(in->r);
    evconnlistener_free(in->lev);
}

static void
fork_child(struct event_base *base, struct evconnlistener *lev,
    struct bufferevent *s, struct bufferevent *r, struct event *to,
    int free_first, long mem_start)
{
    struct bufferevent     *a, *b;
    unsigned char           buf[FORK_MSG];
    struct timeval          tv = { 10, 0 };
    int                     sv[2];
    size_t                  i;
    struct fork_inherited   in = { s, r, lev };

    alarm(20);
    /* What the parent uses is the parent's: let go of it, as a child on
     * socket bufferevents must (their events would poll the parent's
     * sockets again after event_reinit).  Before event_reinit the ring is
     * still the parent's: freeing must not reach it. */
    if (free_first) {
        call_without_ring(fork_free_inherited, &in);
    }
    CHECK(event_reinit(base) == 0, "fork: event_reinit");
    if (!free_first) {
        fork_free_inherited(&in);
    }

    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    a = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    b = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
    check_kind(a, "child's own");
    bufferevent_setcb(a, fork_child_read, NULL, fail_event, a);
    bufferevent_setcb(b, fork_child_read, NULL, fail_event, a);
    bufferevent_enable(a, EV_READ | EV_WRITE);
    bufferevent_enable(b, EV_READ | EV_WRITE);
    for (i = 0; i < FORK_MSG; i++) {
        buf[i] = pattern(0, i);
    }
    bufferevent_write(a, buf, FORK_MSG);
    evtimer_add(to, &tv);
    event_base_dispatch(base);
    CHECK(fork_rounds == FORK_ROUNDS, "fork: child: %d of %d rounds",
          fork_rounds, FORK_ROUNDS);
    bufferevent_free(a);
    bufferevent_free(b);
    event_free(to);
    event_base_free(base);
    CHECK(mem_live == mem_start, "fork: child: %ld of libevent's allocations "
          "not freed", mem_live - mem_start);
    exit(0);
}

static void
test_fork(int free_first)
{
    long                    mem_start = mem_live;
    struct event_base      *base = event_base_new();
    struct evconnlistener  *lev = echo_server(base);
    struct bufferevent     *s, *r;
    struct timeval          tv = { 30, 0 };
    struct event           *to;
    size_t                  before;
    pid_t                   pid;
    int                     st, i;

    evconnlistener_disable(lev);
    tcp_pair(base, lev, &s, &r);
    bufferevent_setcb(s, NULL, fork_fill, fail_event, "fork: sender");
    bufferevent_setcb(r, fork_read, NULL, fail_event, "fork: reader");
    bufferevent_enable(s, EV_WRITE);
    bufferevent_enable(r, EV_READ);
    to = evtimer_new(base, timeout_cb, "fork");
    evtimer_add(to, &tv);
    fork_fill(s, NULL);
    /* the reader takes a little, then nothing: the socket buffers fill
     * and the sender's send stays in the kernel */
    event_base_loop(base, EVLOOP_ONCE);
    bufferevent_disable(r, EV_READ);
    for (i = 0; i < 20; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(5000);
    }
    before = evbuffer_get_length(bufferevent_get_output(s));
    CHECK(before > 0, "fork: the sender's output drained before the fork");
    fprintf(stderr, "le-bev: fork with %zu bytes out, %zu read\n", before,
            fork_got);

    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        fork_child(base, lev, s, r, to, free_first, mem_start);
    }
    bufferevent_enable(r, EV_READ);
    while (fork_got < FORK_BYTES) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(fork_got == FORK_BYTES && fork_sent == FORK_BYTES,
          "fork: sent %zu, got %zu", fork_sent, fork_got);
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st)
          && WEXITSTATUS(st) == 0, "fork: child: status 0x%x", st);
    bufferevent_free(s);
    bufferevent_free(r);
    evconnlistener_free(lev);
    event_free(to);
    event_base_free(base);
    CHECK(mem_live == mem_start, "fork: parent: %ld of libevent's allocations "
          "not freed", mem_live - mem_start);
}

/* ---- setfd with a socket still connecting ------------------------------ */

#define SETFD_BYTES  (256u << 10)

static size_t  setfd_got;

static void
setfd_read(struct bufferevent *bev, void *arg)
{
    (void) arg;
    pattern_read(bev, 7, &setfd_got, "setfd");
}

static struct sockaddr_in
closed_port(void)
{
    struct sockaddr_in  sin;
    socklen_t           len = sizeof(sin);
    int                 fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    CHECK(bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0, "bind");
    CHECK(getsockname(fd, (struct sockaddr *) &sin, &len) == 0,
          "getsockname");
    close(fd);
    return sin;
}

/* A non-blocking connect to sin that is not over yet. */
static int
connect_pending(int fd, const struct sockaddr_in *sin)
{
    int  r = connect(fd, (const struct sockaddr *) sin, sizeof(*sin));

    CHECK(r < 0 && errno == EINPROGRESS, "connect: %d (%s), want EINPROGRESS",
          r, strerror(errno));
    return fd;
}

/* A completion (or socket) bufferevent made with fd -1, output queued. */
static struct bufferevent *
setfd_bev(struct event_base *base, size_t bytes)
{
    struct bufferevent  *bev;
    size_t               off = 0;

    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    CHECK(bev != NULL, "bufferevent_socket_new(-1)");
    check_kind(bev, "fd -1");
    pattern_write(bev, 7, &off, bytes, 0);
    return bev;
}

static void
setfd_echo(struct event_base *base, const struct sockaddr_in *sin,
    int connect_first)
{
    struct bufferevent  *bev = setfd_bev(base, SETFD_BYTES);
    int                  fd = socket(AF_INET, SOCK_STREAM, 0), i;

    evutil_make_socket_nonblocking(fd);
    if (connect_first) {
        connect_pending(fd, sin);
    }
    bufferevent_setcb(bev, setfd_read, NULL, note_event, NULL);
    CHECK(bufferevent_setfd(bev, fd) == 0, "bufferevent_setfd");
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    check_kind(bev, "after setfd");
    if (!connect_first) {
        connect_pending(fd, sin);
    }
    ev_seen = 0;
    setfd_got = 0;
    for (i = 0; i < 5000 && setfd_got < SETFD_BYTES && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(setfd_got == SETFD_BYTES && ev_seen == 0,
          "setfd (%s): %zu of %u bytes back, event 0x%x (%s)",
          connect_first ? "connect, setfd" : "setfd, connect", setfd_got,
          SETFD_BYTES, ev_seen, strerror(ev_errno));
    bufferevent_free(bev);
}

static void
setfd_refused(struct event_base *base, short enable, size_t bytes,
    short side)
{
    struct sockaddr_in   sin = closed_port();
    struct bufferevent  *bev = setfd_bev(base, bytes);
    int                  fd = socket(AF_INET, SOCK_STREAM, 0), i;

    evutil_make_socket_nonblocking(fd);
    connect_pending(fd, &sin);
    bufferevent_setcb(bev, NULL, NULL, note_event, NULL);
    bufferevent_setfd(bev, fd);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_enable(bev, enable);
    ev_seen = 0;
    for (i = 0; i < 50 && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    fprintf(stderr, "le-bev: setfd refused (enable 0x%x, %zu bytes out): "
            "event 0x%x, errno %d (%s)\n", enable, bytes, ev_seen, ev_errno,
            strerror(ev_errno));
    if (want_completion) {
        CHECK(ev_seen == (side | BEV_EVENT_ERROR) && ev_errno == ECONNREFUSED,
              "setfd refused (enable 0x%x): event 0x%x errno %d", enable,
              ev_seen, ev_errno);
    } else {
        /* with both sides on, the one whose event was added last */
        short  sides = ((enable & EV_READ) ? BEV_EVENT_READING : 0)
                       | ((enable & EV_WRITE) ? BEV_EVENT_WRITING : 0);

        CHECK((ev_seen & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
              && (ev_seen & sides) && !(ev_seen & ~sides & 0x0f)
              && !(ev_seen & BEV_EVENT_CONNECTED),
              "setfd refused (enable 0x%x): event 0x%x", enable, ev_seen);
    }
    bufferevent_free(bev);
}

/* A listener that accepts nothing more: its accept queue holds one
 * connection, the next one's SYN is dropped and its connect hangs. */
static void
setfd_timeout(struct event_base *base, int write_timeout)
{
    struct sockaddr_in   sin;
    struct bufferevent  *bev = setfd_bev(base, 1000);
    struct timeval       tv = { 0, 100000 };
    socklen_t            len = sizeof(sin);
    int                  l, c, fd, i;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(l, (struct sockaddr *) &sin, sizeof(sin)) == 0
          && listen(l, 0) == 0
          && getsockname(l, (struct sockaddr *) &sin, &len) == 0, "listen");
    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *) &sin, sizeof(sin)) == 0, "connect");
    fd = socket(AF_INET, SOCK_STREAM, 0);
    evutil_make_socket_nonblocking(fd);
    connect_pending(fd, &sin);
    bufferevent_setcb(bev, NULL, NULL, note_event, NULL);
    bufferevent_setfd(bev, fd);
    bufferevent_set_timeouts(bev, write_timeout ? NULL : &tv,
                             write_timeout ? &tv : NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    ev_seen = 0;
    for (i = 0; i < 50 && !ev_seen; i++) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    CHECK(ev_seen == (BEV_EVENT_TIMEOUT | (write_timeout ? BEV_EVENT_WRITING
                                                          : BEV_EVENT_READING)),
          "setfd %s timeout: event 0x%x", write_timeout ? "write" : "read",
          ev_seen);
    bufferevent_free(bev);
    close(c);
    close(l);
}

static void
test_setfd(void)
{
    struct event_base      *base = event_base_new();
    struct evconnlistener  *lev = echo_server(base);
    struct sockaddr_in      sin = listen_addr(lev);
    struct timeval          tv = { 10, 0 };
    struct event           *to;

    to = evtimer_new(base, timeout_cb, "setfd");
    evtimer_add(to, &tv);
    setfd_echo(base, &sin, 1);
    setfd_echo(base, &sin, 0);
    setfd_refused(base, EV_READ | EV_WRITE, 5, BEV_EVENT_WRITING);
    setfd_refused(base, EV_READ, 0, BEV_EVENT_READING);
    setfd_refused(base, EV_WRITE, 5, BEV_EVENT_WRITING);
    setfd_timeout(base, 1);
    setfd_timeout(base, 0);
    event_free(to);
    evconnlistener_free(lev);
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    event_base_free(base);
}

/* ---- another thread ---------------------------------------------------- */

static volatile size_t  thr_got;

static void
thr_read(struct bufferevent *bev, void *arg)
{
    char  buf[4096];
    size_t n;

    (void) arg;
    while ((n = bufferevent_read(bev, buf, sizeof(buf))) > 0) {
        __atomic_add_fetch(&thr_got, n, __ATOMIC_SEQ_CST);
    }
}

static void *
thr_loop(void *arg)
{
    event_base_dispatch(arg);
    return NULL;
}

static void
test_threads(void)
{
    struct event_base   *base;
    struct bufferevent  *a, *b;
    struct event        *keep;
    struct timeval       tv = { 3600, 0 };
    pthread_t            t;
    int                  sv[2], i;
    char                 msg[1000];

    CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    base = event_base_new();
    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    a = bufferevent_socket_new(base, sv[0],
                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
    b = bufferevent_socket_new(base, sv[1],
                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
    check_kind(a, "threadsafe socketpair");
    bufferevent_setcb(b, thr_read, NULL, fail_event, "threads reader");
    bufferevent_enable(b, EV_READ);
    keep = evtimer_new(base, timeout_cb, "threads");
    evtimer_add(keep, &tv);
    CHECK(pthread_create(&t, NULL, thr_loop, base) == 0, "pthread_create");
    usleep(20000);

    memset(msg, 'x', sizeof(msg));
    for (i = 0; i < 200; i++) {
        bufferevent_write(a, msg, sizeof(msg));
        if (i % 50 == 0) {
            usleep(5000);
        }
    }
    for (i = 0; i < 500 && thr_got < 200 * sizeof(msg); i++) {
        usleep(10000);
    }
    CHECK(thr_got == 200 * sizeof(msg), "threads: got %zu of %zu",
          (size_t) thr_got, 200 * sizeof(msg));

    /* freed from this thread while the loop waits: the peer sees EOF */
    bufferevent_setcb(b, thr_read, NULL, note_event, NULL);
    bufferevent_write(a, msg, sizeof(msg));
    bufferevent_free(a);
    for (i = 0; i < 500 && ev_seen == 0; i++) {
        usleep(10000);
    }
    /* output not yet written when freed may be dropped, as with a socket
     * bufferevent */
    CHECK(ev_seen == (BEV_EVENT_READING | BEV_EVENT_EOF)
          && thr_got >= 200 * sizeof(msg) && thr_got <= 201 * sizeof(msg),
          "threads: after free: event 0x%x, "
          "%zu bytes", ev_seen, (size_t) thr_got);
    bufferevent_free(b);
    event_base_loopbreak(base);
    pthread_join(t, NULL);
    event_free(keep);
    event_base_free(base);
}

/* ---- setfd and free from another thread --------------------------------- */

struct ts {
    struct event_base   *base;
    struct sockaddr_in   sin;
    struct bufferevent  *a;
    int                  fd;        /* a's socket now */
    size_t               sent;
    size_t               got;       /* echoed back, checked (loop thread) */
    struct event        *hold;      /* keeps the loop's thread in a callback */
    int                  peer;      /* the other end of the last one */
};

static volatile int  ts_started, ts_holding, ts_release;

/* The loop's thread runs callbacks (not waiting in the engine) until the
 * other thread is done. */
static void
ts_hold_cb(evutil_socket_t fd, short what, void *arg)
{
    int  ms;

    (void) fd;
    (void) what;
    (void) arg;
    __atomic_store_n(&ts_holding, 1, __ATOMIC_SEQ_CST);
    for (ms = 0; ms < 5000 && !__atomic_load_n(&ts_release, __ATOMIC_SEQ_CST);
         ms++)
    {
        usleep(1000);
    }
    __atomic_store_n(&ts_holding, 0, __ATOMIC_SEQ_CST);
}

static void
ts_start_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    __atomic_store_n(&ts_started, 1, __ATOMIC_SEQ_CST);
}

static void
ts_read(struct bufferevent *bev, void *arg)
{
    struct ts      *t = arg;
    unsigned char   buf[8192];
    size_t          n, i, got = __atomic_load_n(&t->got, __ATOMIC_SEQ_CST);

    while ((n = bufferevent_read(bev, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++) {
            CHECK(buf[i] == pattern(11, got + i), "threads-setfd: byte %zu",
                  got + i);
        }
        got += n;
    }
    __atomic_store_n(&t->got, got, __ATOMIC_SEQ_CST);
}

static void
ts_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    (void) arg;
    CHECK(0, "threads-setfd: event 0x%x (%s)", what, strerror(errno));
}

static int
ts_connect(const struct sockaddr_in *sin)
{
    int  fd = socket(AF_INET, SOCK_STREAM, 0);

    CHECK(connect(fd, (const struct sockaddr *) sin, sizeof(*sin)) == 0,
          "connect");
    evutil_make_socket_nonblocking(fd);
    return fd;
}

static volatile short  ts_connected;

static void
ts_connect_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    (void) arg;
    CHECK(what == BEV_EVENT_CONNECTED, "threads-setfd: connect: event 0x%x "
          "(%s)", what, strerror(errno));
    __atomic_store_n(&ts_connected, 1, __ATOMIC_SEQ_CST);
}

/* Write 256 KiB to d and read their echo here, in this thread. */
static void
ts_echo_here(struct bufferevent *d, const char *what)
{
    unsigned char  buf[4096];
    size_t         got = 0, n, i;
    int            ms;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = pattern(12, i);
    }
    for (i = 0; i < 64; i++) {
        bufferevent_write(d, buf, sizeof(buf));
    }
    for (ms = 0; ms < 10000 && got < 64 * sizeof(buf); ms++) {
        while ((n = bufferevent_read(d, buf, sizeof(buf))) > 0) {
            for (i = 0; i < n; i++) {
                CHECK(buf[i] == pattern(12, (got + i) % sizeof(buf)),
                      "threads-setfd: %s: byte %zu", what, got + i);
            }
            got += n;
        }
        usleep(1000);
    }
    CHECK(got == 64 * sizeof(buf), "threads-setfd: %s: %zu bytes", what,
          got);
}

/* Keep the loop's thread in a callback until ts_release. */
static void
ts_hold(struct ts *t)
{
    struct timeval  tv = { 0, 0 };
    int             ms;

    __atomic_store_n(&ts_release, 0, __ATOMIC_SEQ_CST);
    event_add(t->hold, &tv);
    for (ms = 0; ms < 5000 && !__atomic_load_n(&ts_holding, __ATOMIC_SEQ_CST);
         ms++)
    {
        usleep(1000);
    }
    CHECK(ts_holding, "threads-setfd: the loop's thread is not in the "
          "callback");
}

/* Write n more bytes of the stream and wait for their echo. */
static void
ts_echo(struct ts *t, size_t n, const char *what)
{
    size_t         end = t->sent + n;
    int            ms;

    pattern_write(t->a, 11, &t->sent, end, 0);
    for (ms = 0; ms < 10000
         && __atomic_load_n(&t->got, __ATOMIC_SEQ_CST) < end; ms++)
    {
        usleep(1000);
    }
    CHECK(t->got == end, "threads-setfd: %s: %zu of %zu bytes back", what,
          t->got, end);
}

static void
ts_worker(void *arg)
{
    struct ts           *t = arg;
    struct bufferevent  *d;
    static unsigned char big[4u << 20];
    struct sockaddr_in   sin;
    struct pollfd        pfd;
    socklen_t            len = sizeof(sin);
    char                 buf[16];
    int                  fd, l, ms, sp[2];

    ts_echo(t, 64 << 10, "before setfd");

    /* to a connected socket; the old one is the caller's to close */
    fd = ts_connect(&t->sin);
    CHECK(bufferevent_setfd(t->a, fd) == 0, "setfd");
    close(t->fd);
    t->fd = fd;
    check_kind(t->a, "after setfd from another thread");
    ts_echo(t, 256 << 10, "setfd, connected");

    /* again, while the loop's thread runs a callback */
    ts_hold(t);
    fd = ts_connect(&t->sin);
    CHECK(bufferevent_setfd(t->a, fd) == 0, "setfd");
    close(t->fd);
    t->fd = fd;
    __atomic_store_n(&ts_release, 1, __ATOMIC_SEQ_CST);
    ts_echo(t, 256 << 10, "setfd during a callback");

    /* to one whose connect is not over */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    evutil_make_socket_nonblocking(fd);
    connect_pending(fd, &t->sin);
    CHECK(bufferevent_setfd(t->a, fd) == 0, "setfd");
    close(t->fd);
    t->fd = fd;
    ts_echo(t, 256 << 10, "setfd, connecting");

    /* freed with a send in flight; the echo of these bytes is not the
     * stream's, so the read callback goes first (it could read some of it
     * before the free: a flaky failure at byte 851968 once in 15 runs) */
    bufferevent_setcb(t->a, NULL, NULL, ts_event, t);
    bufferevent_write(t->a, big, sizeof(big));
    bufferevent_free(t->a);
    t->a = NULL;

    /* made here with fd -1, given one, read here */
    d = bufferevent_socket_new(t->base, -1,
                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
    CHECK(d != NULL, "bufferevent_socket_new(-1)");
    check_kind(d, "fd -1 from another thread");
    bufferevent_setcb(d, NULL, NULL, ts_event, NULL);
    CHECK(bufferevent_setfd(d, ts_connect(&t->sin)) == 0, "setfd");
    bufferevent_enable(d, EV_READ | EV_WRITE);
    ts_echo_here(d, "setfd, read here");
    bufferevent_free(d);

    /* and one connected with bufferevent_socket_connect from here, to a
     * listener whose accept queue is full (the SYN is dropped and sent
     * again after a second), while the loop's thread runs a callback: the
     * setfd inside is handed over with the connect still pending, and the
     * connect's own watch must stay */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(l, (struct sockaddr *) &sin, sizeof(sin)) == 0
          && listen(l, 0) == 0
          && getsockname(l, (struct sockaddr *) &sin, &len) == 0, "listen");
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0, "connect");
    d = bufferevent_socket_new(t->base, -1,
                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
    bufferevent_setcb(d, NULL, NULL, ts_connect_event, NULL);
    bufferevent_enable(d, EV_READ | EV_WRITE);
    ts_hold(t);
    CHECK(bufferevent_socket_connect(d, (struct sockaddr *) &sin,
                                     sizeof(sin)) == 0,
          "bufferevent_socket_connect");
    __atomic_store_n(&ts_release, 1, __ATOMIC_SEQ_CST);
    usleep(100000);
    CHECK(!ts_connected, "threads-setfd: connected to a full accept queue");
    close(accept(l, NULL, NULL));
    close(fd);
    for (ms = 0; ms < 5000 && !ts_connected; ms++) {
        usleep(1000);
    }
    CHECK(ts_connected, "threads-setfd: bufferevent_socket_connect from "
          "another thread: no BEV_EVENT_CONNECTED");
    check_kind(d, "connected from another thread");
    fd = accept(l, NULL, NULL);
    CHECK(fd >= 0, "accept");
    CHECK(write(fd, "pong", 4) == 4, "write");
    bufferevent_write(d, "ping", 4);
    for (ms = 0; ms < 5000 && evbuffer_get_length(bufferevent_get_input(d))
         < 4; ms++)
    {
        usleep(1000);
    }
    CHECK(bufferevent_read(d, buf, sizeof(buf)) == 4
          && memcmp(buf, "pong", 4) == 0
          && read(fd, buf, sizeof(buf)) == 4 && memcmp(buf, "ping", 4) == 0,
          "threads-setfd: connected from another thread: no echo");
    bufferevent_free(d);
    close(fd);
    close(l);

    /* freed here while the loop's thread runs a callback, and the loop
     * told to stop before it runs again: the close left to the loop's
     * thread must still happen, at event_base_free, or the bufferevent
     * leaks with its socket open.  Its peer is no bufferevent, so the
     * base holds nothing else. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
    d = bufferevent_socket_new(t->base, sp[0],
                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
    CHECK(d != NULL, "bufferevent_socket_new");
    check_kind(d, "a socketpair from another thread");
    bufferevent_setcb(d, NULL, NULL, ts_event, NULL);
    bufferevent_enable(d, EV_READ | EV_WRITE);
    bufferevent_write(d, "ping", 4);
    /* on the engine now: its send went out */
    pfd.fd = sp[1];
    pfd.events = POLLIN;
    CHECK(poll(&pfd, 1, 5000) == 1 && read(sp[1], buf, sizeof(buf)) == 4
          && memcmp(buf, "ping", 4) == 0,
          "threads-setfd: a socketpair from another thread: no ping");
    ts_hold(t);
    bufferevent_free(d);
    event_base_loopbreak(t->base);
    __atomic_store_n(&ts_release, 1, __ATOMIC_SEQ_CST);
    t->peer = sp[1];
}

static void
test_threads_setfd(void)
{
    struct evconnlistener  *lev;
    struct event           *keep, *start;
    struct timeval          tv = { 3600, 0 }, zero = { 0, 0 };
    struct ts               t;
    pthread_t               loop;
    int                     ms;

    alarm(60);      /* a deadlock ends the process too */
    CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    memset(&t, 0, sizeof(t));
    t.peer = -1;
    t.base = event_base_new();
    lev = echo_server(t.base);
    t.sin = listen_addr(lev);
    t.fd = ts_connect(&t.sin);
    t.a = bufferevent_socket_new(t.base, t.fd,
                                 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
    check_kind(t.a, "threadsafe TCP");
    bufferevent_setcb(t.a, ts_read, NULL, ts_event, &t);
    bufferevent_enable(t.a, EV_READ | EV_WRITE);
    keep = evtimer_new(t.base, timeout_cb, "threads-setfd");
    evtimer_add(keep, &tv);
    start = evtimer_new(t.base, ts_start_cb, NULL);
    evtimer_add(start, &zero);
    t.hold = evtimer_new(t.base, ts_hold_cb, NULL);
    CHECK(pthread_create(&loop, NULL, thr_loop, t.base) == 0,
          "pthread_create");
    for (ms = 0; ms < 5000 && !ts_started; ms++) {
        usleep(1000);
    }
    CHECK(ts_started, "threads-setfd: the loop did not start");
    usleep(10000);

    call_without_ring(ts_worker, &t);

    event_base_loopbreak(t.base);
    pthread_join(loop, NULL);
    event_free(keep);
    event_free(start);
    event_free(t.hold);
    evconnlistener_free(lev);
    event_base_free(t.base);
    /* the one freed as the loop stopped: closed by now */
    {
        struct pollfd  pfd = { t.peer, POLLIN, 0 };
        char           c;

        CHECK(poll(&pfd, 1, 2000) == 1 && read(t.peer, &c, 1) == 0,
              "threads-setfd: a bufferevent freed from another thread as "
              "the loop stopped: its socket is still open after "
              "event_base_free (its close, left to the loop's thread, "
              "never ran)");
        close(t.peer);
    }
}

int
main(int argc, char **argv)
{
    struct event_base  *base;

    CHECK(argc >= 2, "usage: le-bev kind|echo|slow|free|threads|threads-setfd|"
          "connect|fork|fork-free-first|setfd "
          "[completion|socket]");
    if (argc > 2) {
        want_completion = strcmp(argv[2], "socket") != 0;
    }
    signal(SIGPIPE, SIG_IGN);
    event_set_mem_functions(mem_malloc, mem_realloc, mem_free);
    base = event_base_new();
    CHECK(base != NULL, "event_base_new");
    fprintf(stderr, "le-bev: method %s\n", event_base_get_method(base));
    event_base_free(base);

    if (strcmp(argv[1], "kind") == 0) {
        test_kind();
    } else if (strcmp(argv[1], "echo") == 0) {
        test_echo();
    } else if (strcmp(argv[1], "slow") == 0) {
        test_slow();
    } else if (strcmp(argv[1], "free") == 0) {
        test_free();
    } else if (strcmp(argv[1], "threads") == 0) {
        test_threads();
    } else if (strcmp(argv[1], "connect") == 0) {
        test_connect();
    } else if (strcmp(argv[1], "threads-setfd") == 0) {
        test_threads_setfd();
    } else if (strcmp(argv[1], "fork") == 0) {
        test_fork(0);
    } else if (strcmp(argv[1], "fork-free-first") == 0) {
        test_fork(1);
    } else if (strcmp(argv[1], "setfd") == 0) {
        test_setfd();
    } else {
        CHECK(0, "unknown case %s", argv[1]);
    }
    printf("ok\n");
    return 0;
}
