/*
 * le-fork: a base keeps working across fork(), in the parent and in a child
 * that calls event_reinit(), with both looping at the same time; and a
 * child that frees the inherited base without event_reinit() must not take
 * the parent's armed events with it.
 *
 * Usage: le-fork <expected method>
 * Prints "ok" and exits 0, or names the failed check and exits 1.
 */

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PINGS  200

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "le-fork[%d]: %s:%d: ", (int) getpid(), __FILE__, \
            __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

struct pinger {
    struct event_base  *base;
    int                 sv[2];
    int                 got;
    int                 want;
};

/* Read one ping and send the next until want pings went round. */
static void
ping_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pinger  *p = arg;
    char            c;

    (void) what;
    CHECK(read(fd, &c, 1) == 1, "read ping");
    if (++p->got == p->want) {
        event_base_loopexit(p->base, NULL);
        return;
    }
    CHECK(write(p->sv[0], "p", 1) == 1, "write ping");
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pinger  *p = arg;

    (void) fd;
    (void) what;
    CHECK(0, "timed out after %d of %d pings", p->got, p->want);
}

static struct event *
pinger_init(struct event_base *base, struct pinger *p)
{
    struct event  *ev;

    memset(p, 0, sizeof(*p));
    p->base = base;
    CHECK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) == 0, "socketpair");
    evutil_make_socket_nonblocking(p->sv[1]);
    ev = event_new(base, p->sv[1], EV_READ | EV_PERSIST, ping_cb, p);
    event_add(ev, NULL);
    return ev;
}

/* Send n pings round through the loop, within five seconds. */
static void
pinger_run(struct pinger *p, int n)
{
    struct event    *tm;
    struct timeval   tv = { 5, 0 };

    p->got = 0;
    p->want = n;
    tm = evtimer_new(p->base, timeout_cb, p);
    evtimer_add(tm, &tv);
    CHECK(write(p->sv[0], "p", 1) == 1, "write ping");
    event_base_dispatch(p->base);
    CHECK(p->got == n, "%d of %d pings", p->got, n);
    event_free(tm);
}

static void
check_method(struct event_base *base, const char *want)
{
    CHECK(strcmp(event_base_get_method(base), want) == 0, "method %s, want %s",
          event_base_get_method(base), want);
}

static void
reap(pid_t pid, const char *what)
{
    int  status;

    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s child failed (status 0x%x)", what, status);
}

int
main(int argc, char **argv)
{
    struct event_base  *base;
    struct event       *ev_parent, *ev_child;
    struct pinger       parent, child;
    pid_t               pid;

    if (argc < 2) {
        fprintf(stderr, "usage: le-fork <expected method>\n");
        return 2;
    }
    alarm(60);

    base = event_base_new();
    CHECK(base != NULL, "no base");
    check_method(base, argv[1]);
    ev_parent = pinger_init(base, &parent);
    pinger_run(&parent, 10);

    /* Both loop at once: the child on its own pair after event_reinit,
     * the parent on its pair. */
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK(event_reinit(base) == 0, "event_reinit");
        check_method(base, argv[1]);
        event_del(ev_parent);
        ev_child = pinger_init(base, &child);
        pinger_run(&child, PINGS);
        event_free(ev_child);
        event_free(ev_parent);
        event_base_free(base);
        exit(0);
    }
    pinger_run(&parent, PINGS);
    reap(pid, "event_reinit");
    pinger_run(&parent, 10);

    /* The parent's read event is armed in the kernel now; a child that
     * frees the base it inherited must leave it armed. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        event_base_free(base);
        _exit(0);
    }
    reap(pid, "event_base_free");
    pinger_run(&parent, 10);

    event_free(ev_parent);
    event_base_free(base);
    printf("ok\n");
    return 0;
}
