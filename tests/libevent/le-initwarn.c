/*
 * le-initwarn: the io_uring backend's init warns, as epoll's does, when it
 * fails for a reason other than io_uring being unavailable (ENOSYS) or
 * forbidden (EPERM, EACCES: seccomp, io_uring_disabled), which stay on a
 * debug line (tests/libevent/noring.sh checks that).  Here the process has
 * no descriptor left (RLIMIT_NOFILE at its lowest free fd), so
 * io_uring_setup() fails with EMFILE: a [warn] naming io_uring and the
 * cause must reach libevent's log callback.  With no descriptor at all the
 * base cannot be made on any backend (libevent's signal socketpair is fatal),
 * so the verdict may come from libevent's fatal callback.
 * Prints "ok" and exits 0, or names the failed check and exits 1.
 */

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char  warned[512];

static void
log_cb(int severity, const char *msg)
{
    if (severity >= EVENT_LOG_WARN && strstr(msg, "io_uring") != NULL
        && warned[0] == '\0')
    {
        snprintf(warned, sizeof(warned), "%s", msg);
    }
}

static int
verdict(const char *base)
{
    if (warned[0] == '\0') {
        fprintf(stderr, "le-initwarn: io_uring's init failed with EMFILE "
            "and logged no warning (base: %s)\n", base);
        return 1;
    }
    printf("warned: %s\nok\n", warned);
    fflush(stdout);
    return 0;
}

static void
fatal_cb(int err)
{
    (void) err;
    fflush(stdout);
    _exit(verdict("none: libevent's fatal error"));
}

int
main(void)
{
    struct rlimit       old, low;
    struct event_base  *base;
    int                 fd, rc;

    event_set_log_callback(log_cb);
    event_set_fatal_callback(fatal_cb);

    /* the lowest free descriptor: nothing above it may be opened */
    fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || getrlimit(RLIMIT_NOFILE, &old) < 0) {
        fprintf(stderr, "le-initwarn: setup failed\n");
        return 1;
    }
    close(fd);
    low = old;
    low.rlim_cur = (rlim_t) fd;
    if (setrlimit(RLIMIT_NOFILE, &low) < 0) {
        fprintf(stderr, "le-initwarn: setrlimit failed\n");
        return 1;
    }
    base = event_base_new();
    setrlimit(RLIMIT_NOFILE, &old);

    rc = verdict(base ? event_base_get_method(base) : "none");
    if (base != NULL) {
        event_base_free(base);
    }
    return rc;
}
