/*
 * le-basic: the backend a base gets, what it advertises, and the three
 * trigger modes, on the libevent under test.
 *
 * Usage: le-basic <expected method> [avoid-method]
 * LE_DEBUG=1 turns on libevent's debug logging.
 *
 * Creates a base (with event_config_avoid_method(avoid) if given), checks
 * event_base_get_method() is the expected one, and for io_uring that the
 * features are ET|O1|EARLY_CLOSE.  Then on socketpairs:
 *  - level-triggered: an unread byte keeps a read event firing, pass after
 *    pass, and stops once read;
 *  - EV_ET: an unread byte fires once, a new byte fires again;
 *  - EV_CLOSED: the peer's shutdown(SHUT_WR) fires EV_CLOSED with no read
 *    interest;
 *  - EV_WRITE and a timeout fire; event_del stops an event;
 *  - close means close: event_del and close() of an fd whose poll is armed
 *    gives the peer EOF at once, before the loop runs again.
 * Prints "ok" and exits 0, or names the failed check and exits 1.
 */

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "le-basic: %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static int  count;
static short last;

static void
count_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) arg;
    count++;
    last = what;
}

static void
pair(int sv[2])
{
    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
}

/* Run n non-blocking passes of the loop: one dispatch and its callbacks
 * each (EVLOOP_NONBLOCK alone keeps looping while callbacks run). */
static void
passes(struct event_base *base, int n)
{
    while (n-- > 0) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

static void
level_triggered(struct event_base *base)
{
    int            sv[2];
    char           c;
    struct event  *ev;

    pair(sv);
    ev = event_new(base, sv[1], EV_READ | EV_PERSIST, count_cb, NULL);
    event_add(ev, NULL);
    passes(base, 3);
    CHECK(count == 0, "read event fired on an empty socket (%d)", count);

    CHECK(write(sv[0], "x", 1) == 1, "write");
    passes(base, 5);
    CHECK(count == 5, "level-triggered: unread byte fired %d times in 5 "
          "passes, want 5", count);

    CHECK(read(sv[1], &c, 1) == 1, "read");
    count = 0;
    passes(base, 5);
    CHECK(count <= 1, "level-triggered: fired %d times after the read", count);

    count = 0;
    event_del(ev);
    CHECK(write(sv[0], "y", 1) == 1, "write");
    passes(base, 3);
    CHECK(count == 0, "event fired after event_del (%d)", count);
    event_free(ev);
    close(sv[0]);
    close(sv[1]);
}

static void
edge_triggered(struct event_base *base)
{
    int            sv[2];
    struct event  *ev;

    pair(sv);
    count = 0;
    ev = event_new(base, sv[1], EV_READ | EV_ET | EV_PERSIST, count_cb, NULL);
    event_add(ev, NULL);
    CHECK(write(sv[0], "x", 1) == 1, "write");
    passes(base, 5);
    CHECK(count == 1, "EV_ET: unread byte fired %d times, want 1", count);
    CHECK(write(sv[0], "y", 1) == 1, "write");
    passes(base, 5);
    CHECK(count == 2, "EV_ET: second byte gave %d events in all, want 2",
          count);
    event_free(ev);
    close(sv[0]);
    close(sv[1]);
}

static void
early_close(struct event_base *base)
{
    int            sv[2];
    struct event  *ev;

    pair(sv);
    count = 0;
    last = 0;
    ev = event_new(base, sv[1], EV_CLOSED, count_cb, NULL);
    event_add(ev, NULL);
    passes(base, 2);
    CHECK(count == 0, "EV_CLOSED fired on an open socket");
    shutdown(sv[0], SHUT_WR);
    event_base_dispatch(base);
    CHECK(count == 1 && (last & EV_CLOSED), "EV_CLOSED: count %d what 0x%x",
          count, last);
    event_free(ev);
    close(sv[0]);
    close(sv[1]);
}

static void
write_and_timeout(struct event_base *base)
{
    int             sv[2];
    struct event   *ev, *tm;
    struct timeval  tv = { 0, 20000 };

    pair(sv);
    count = 0;
    ev = event_new(base, sv[0], EV_WRITE, count_cb, NULL);
    event_add(ev, NULL);
    event_base_dispatch(base);
    CHECK(count == 1 && (last & EV_WRITE), "EV_WRITE: count %d", count);

    count = 0;
    tm = event_new(base, -1, 0, count_cb, NULL);
    event_add(tm, &tv);
    event_base_dispatch(base);
    CHECK(count == 1 && (last & EV_TIMEOUT), "timeout: count %d", count);
    event_free(ev);
    event_free(tm);
    close(sv[0]);
    close(sv[1]);
}

static void
close_means_close(struct event_base *base)
{
    int            sv[2];
    char           c;
    struct event  *ev;

    pair(sv);
    count = 0;
    ev = event_new(base, sv[1], EV_READ | EV_PERSIST, count_cb, NULL);
    event_add(ev, NULL);
    passes(base, 2);
    event_del(ev);
    close(sv[1]);
    CHECK(read(sv[0], &c, 1) == 0, "peer sees no EOF after event_del and "
          "close (the kernel still holds the socket)");
    passes(base, 2);
    CHECK(count == 0, "deleted event fired");
    event_free(ev);
    close(sv[0]);
}

int
main(int argc, char **argv)
{
    struct event_config  *cfg;
    struct event_base    *base;
    const char           *method;
    int                   features;

    if (argc < 2) {
        fprintf(stderr, "usage: le-basic <expected method> [avoid]\n");
        return 2;
    }
    alarm(30);
    if (getenv("LE_DEBUG") != NULL) {
        event_enable_debug_logging(EVENT_DBG_ALL);
    }

    cfg = event_config_new();
    if (argc > 2) {
        event_config_avoid_method(cfg, argv[2]);
    }
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    CHECK(base != NULL, "no event base");

    method = event_base_get_method(base);
    features = event_base_get_features(base);
    printf("method %s features 0x%x\n", method, features);
    CHECK(strcmp(method, argv[1]) == 0, "method is %s, want %s", method,
          argv[1]);
    if (strcmp(method, "io_uring") == 0) {
        CHECK(features == (EV_FEATURE_ET | EV_FEATURE_O1
                           | EV_FEATURE_EARLY_CLOSE),
              "io_uring features 0x%x", features);
    }

    level_triggered(base);
    edge_triggered(base);
    early_close(base);
    write_and_timeout(base);
    close_means_close(base);

    event_base_free(base);
    printf("ok\n");
    return 0;
}
