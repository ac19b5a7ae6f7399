/*
 * le-threads: a base made in one thread and dispatched in others, woken
 * across threads.
 *
 * Usage: le-threads <expected method>
 * With evthread_use_pthreads(), the main thread makes the base and registers
 * a socketpair read event; a second thread dispatches it (a ring created by
 * one thread, entered by another).  While that thread waits with no timeout:
 *  - the main thread adds a new read event and writes to its pair: the
 *    waiting loop must take the change and report the event;
 *  - the main thread event_active()s a timer-less event: it must run;
 *  - the main thread calls event_base_loopbreak(): dispatch must return.
 * Then a third thread dispatches the same base and sees the first event.
 * Prints "ok" and exits 0, or names the failed check and exits 1.
 */

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "le-threads: %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static struct event_base  *base;
static volatile int        hits_a, hits_b, hits_c, loop_done;

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
    char  c;

    (void) what;
    CHECK(read(fd, &c, 1) == 1, "read");
    (*(volatile int *) arg)++;
}

static void
active_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (*(volatile int *) arg)++;
}

static void *
loop_thread(void *arg)
{
    (void) arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    loop_done = 1;
    return NULL;
}

/* Wait up to five seconds for *v to reach want. */
static void
await(volatile int *v, int want, const char *what)
{
    struct timespec  ts = { 0, 1000000 };
    int              i;

    for (i = 0; i < 5000 && *v < want; i++) {
        nanosleep(&ts, NULL);
    }
    CHECK(*v >= want, "%s: not seen from the looping thread", what);
}

int
main(int argc, char **argv)
{
    pthread_t      t;
    int            a[2], b[2];
    struct event  *ev_a, *ev_b, *ev_c;

    if (argc < 2) {
        fprintf(stderr, "usage: le-threads <expected method>\n");
        return 2;
    }
    alarm(30);
    CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    base = event_base_new();
    CHECK(base != NULL, "no base");
    CHECK(strcmp(event_base_get_method(base), argv[1]) == 0,
          "method %s, want %s", event_base_get_method(base), argv[1]);

    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0, "socketpair");
    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0, "socketpair");
    ev_a = event_new(base, a[1], EV_READ | EV_PERSIST, read_cb, (void *) &hits_a);
    ev_b = event_new(base, b[1], EV_READ | EV_PERSIST, read_cb, (void *) &hits_b);
    ev_c = event_new(base, -1, 0, active_cb, (void *) &hits_c);
    event_add(ev_a, NULL);

    CHECK(pthread_create(&t, NULL, loop_thread, NULL) == 0, "pthread_create");
    usleep(50000);          /* let it reach the wait */

    event_add(ev_b, NULL);
    CHECK(write(b[0], "b", 1) == 1, "write");
    await(&hits_b, 1, "event added from another thread");

    event_active(ev_c, EV_READ, 0);
    await(&hits_c, 1, "event_active from another thread");

    usleep(20000);
    event_base_loopbreak(base);
    await(&loop_done, 1, "event_base_loopbreak from another thread");
    pthread_join(t, NULL);

    loop_done = 0;
    CHECK(pthread_create(&t, NULL, loop_thread, NULL) == 0, "pthread_create");
    CHECK(write(a[0], "a", 1) == 1, "write");
    await(&hits_a, 1, "event on a base now looping in a third thread");
    event_base_loopbreak(base);
    await(&loop_done, 1, "second loopbreak");
    pthread_join(t, NULL);

    event_free(ev_a);
    event_free(ev_b);
    event_free(ev_c);
    event_base_free(base);
    printf("ok\n");
    return 0;
}
