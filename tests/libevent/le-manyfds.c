/*
 * le-manyfds: 10,000 registered fds (both ends of 5,000 socketpairs).
 *
 * Usage: le-manyfds <expected method>
 * Raises RLIMIT_NOFILE to its hard limit (exits 77, "skip", if that cannot
 * hold 10,000 fds plus a margin).  Then:
 *  1. a byte to every fd: each read event fires exactly once;
 *  2. a byte to 100 chosen fds: exactly those fire;
 *  3. event_del on every other fd, a byte to all: only the rest fire, and
 *     the deleted ones stay quiet;
 * each round within a bounded time.  Prints the timings and "ok".
 */

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NFDS   10000
#define MARGIN 64

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "le-manyfds: %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static int            fds[NFDS];      /* fds[i ^ 1] is fds[i]'s peer */
static struct event  *evs[NFDS];
static int            hits[NFDS];
static int            total;

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
    int   i = (int) (intptr_t) arg;
    char  c;

    (void) what;
    CHECK(read(fd, &c, 1) == 1, "read fd %d", (int) fd);
    hits[i]++;
    total++;
}

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Loop until want callbacks ran (and a few passes more, to catch extra
 * ones), within ten seconds. */
static double
run_until(struct event_base *base, int want)
{
    double  start = now();
    int     extra = 3;

    while (total < want || extra-- > 0) {
        if (total < want) {
            event_base_loop(base, EVLOOP_ONCE);
        } else {
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
        CHECK(now() - start < 10, "only %d of %d events in 10 s", total, want);
    }
    CHECK(total == want, "%d events, want %d", total, want);
    return now() - start;
}

static void
poke(int i)
{
    CHECK(write(fds[i ^ 1], "x", 1) == 1, "write to peer of fd %d", fds[i]);
}

int
main(int argc, char **argv)
{
    struct event_base  *base;
    struct rlimit       rl;
    double              t;
    int                 i;

    if (argc < 2) {
        fprintf(stderr, "usage: le-manyfds <expected method>\n");
        return 2;
    }

    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < NFDS + MARGIN) {
        printf("skip: RLIMIT_NOFILE hard limit %lu < %d\n",
               (unsigned long) rl.rlim_max, NFDS + MARGIN);
        return 77;
    }
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");

    base = event_base_new();
    CHECK(base != NULL, "no base");
    CHECK(strcmp(event_base_get_method(base), argv[1]) == 0,
          "method %s, want %s", event_base_get_method(base), argv[1]);

    t = now();
    for (i = 0; i < NFDS; i += 2) {
        CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, &fds[i]) == 0,
              "socketpair %d", i / 2);
    }
    for (i = 0; i < NFDS; i++) {
        evutil_make_socket_nonblocking(fds[i]);
        evs[i] = event_new(base, fds[i], EV_READ | EV_PERSIST, read_cb,
                           (void *) (intptr_t) i);
        CHECK(evs[i] != NULL && event_add(evs[i], NULL) == 0, "add %d", i);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(total == 0, "%d events before any write", total);
    printf("register %d fds: %.3f s\n", NFDS, now() - t);

    for (i = 0; i < NFDS; i++) {
        poke(i);
    }
    t = run_until(base, NFDS);
    for (i = 0; i < NFDS; i++) {
        CHECK(hits[i] == 1, "fd %d fired %d times", fds[i], hits[i]);
    }
    printf("all %d ready: %.3f s\n", NFDS, t);

    memset(hits, 0, sizeof(hits));
    total = 0;
    for (i = 0; i < 100; i++) {
        poke(i * 97);
    }
    t = run_until(base, 100);
    for (i = 0; i < NFDS; i++) {
        CHECK(hits[i] == (i % 97 == 0 && i / 97 < 100), "fd %d fired %d times",
              fds[i], hits[i]);
    }
    printf("100 of %d ready: %.3f s\n", NFDS, t);

    memset(hits, 0, sizeof(hits));
    total = 0;
    for (i = 0; i < NFDS; i += 2) {
        event_del(evs[i]);
    }
    for (i = 0; i < NFDS; i++) {
        poke(i);
    }
    t = run_until(base, NFDS / 2);
    for (i = 0; i < NFDS; i++) {
        CHECK(hits[i] == (i & 1), "fd %d fired %d times", fds[i], hits[i]);
    }
    printf("%d of %d ready after deleting half: %.3f s\n", NFDS / 2, NFDS, t);

    for (i = 0; i < NFDS; i++) {
        event_free(evs[i]);
        close(fds[i]);
    }
    event_base_free(base);
    printf("ok\n");
    return 0;
}
