/*
 * The ring runs the engine's own requests and nothing else (issue #13,
 * security): the engine is built with -DRP_FAULT_INJECTION (the test build,
 * suite core-faults), whose rp_test_open_file() puts an IORING_OP_OPENAT on
 * the engine's ring.  The kernel must refuse it (-EACCES, from
 * IORING_REGISTER_RESTRICTIONS), for a file this process could open, and
 * the engine must carry on serving its own requests afterwards.
 */

#include "harness.h"
#include "engine.h"

#ifndef RP_FAULT_INJECTION
#error "build with -DRP_FAULT_INJECTION"
#endif

static int  got;

static void
on_event(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    char  buf[64];

    (void) data; (void) res;
    if (ev == RP_EV_RECV) {
        got += (int) rp_recv_copy(e, f, buf, sizeof(buf));
    }
}

static int
got_all(void *arg)
{
    return got >= *(int *) arg;
}

static void
open_refused(unsigned flags)
{
    rp_engine_t  *e = NULL;
    rp_fd_t      *f = NULL;
    char          msg[] = "still serving";
    int           fd, lfd = -1, srv = -1, cli = -1, rc, want;

    fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open(/proc/self/status) itself failed: %s",
        strerror(errno));
    close(fd);

    e = t_engine_flags(64, 0, 8, 4096, flags, on_event);
    CHECK(e != NULL, "no engine");

    rc = rp_test_open_file(e, "/proc/self/status");
    CHECK(rc == -EACCES, "an OPENAT on the engine's ring got %d (%s), want "
        "-EACCES: the ring is not restricted to the engine's requests", rc,
        rc < 0 ? strerror(-rc) : "a descriptor");

    lfd = t_listen();
    CHECK(t_pair(lfd, &srv, &cli) == 0, "no TCP pair");
    f = rp_fd_open(e, srv, NULL);
    CHECK(f != NULL, "rp_fd_open");
    CHECK(rp_recv_start(e, f, 0) == 0, "rp_recv_start");
    CHECK(write(cli, msg, sizeof(msg)) == (ssize_t) sizeof(msg), "write");
    want = (int) sizeof(msg);
    CHECK(t_loop(e, got_all, &want, 10, 3000) == 0,
        "after the refused request the engine received %d of %d bytes", got,
        want);
    t_diag("OPENAT refused with -EACCES; the engine received after it");
out:
    if (f != NULL) {
        rp_fd_close(e, f, 0);
    }
    if (e != NULL) {
        rp_engine_destroy(e);
    }
    t_close(&srv);
    t_close(&cli);
    t_close(&lfd);
}

static void
case_open_refused(void)
{
    open_refused(0);
}

static void
case_open_refused_shared(void)
{
    open_refused(RP_ENGINE_SHARED_THREADS);
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("restrict/openat-refused", case_open_refused, 30);
    t_run("restrict/openat-refused-shared-threads", case_open_refused_shared,
          30);
    return t_exit_code();
}
