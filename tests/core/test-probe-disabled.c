/*
 * kernel.io_uring_disabled (Linux 6.6+): 2 disables io_uring for everyone,
 * 1 for unprivileged processes outside kernel.io_uring_group.  The engine
 * must refuse with -EPERM and a one-line reason naming the sysctl.
 *
 * This flips a machine-wide switch, so it lives in its own program and
 * keeps the switch flipped only around one rp_engine_create() call: the
 * value is written back before anything is checked or printed, and the
 * watchdog and exit paths restore it too.  SKIP when the sysctl is missing
 * or read-only (containers).
 */

#include <grp.h>
#include <sys/wait.h>

#include "harness.h"

#define SYSCTL  "/proc/sys/kernel/io_uring_disabled"

static char  orig[16];
static int   changed;

static int
sysctl_write(const char *v)
{
    int      fd = open(SYSCTL, O_WRONLY | O_CLOEXEC);
    ssize_t  n;

    if (fd < 0) {
        return -1;
    }
    n = write(fd, v, strlen(v));
    close(fd);
    return n == (ssize_t) strlen(v) ? 0 : -1;
}

static void
restore(void)
{
    if (changed) {
        sysctl_write(orig);
        changed = 0;
    }
}

static void
on_alarm_restore(int sig)
{
    restore();
    t_on_alarm(sig);
}

static int
sysctl_usable(void)
{
    int      fd;
    ssize_t  n;

    fd = open(SYSCTL, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        t_set(T_SKIP, "kernel lacks kernel.io_uring_disabled (6.6+)");
        return 0;
    }
    n = read(fd, orig, sizeof(orig) - 1);
    close(fd);
    if (n <= 0) {
        t_set(T_SKIP, "cannot read " SYSCTL);
        return 0;
    }
    orig[n] = '\0';
    if (orig[0] != '0') {
        t_set(T_SKIP, "io_uring is already disabled here (%c)", orig[0]);
        return 0;
    }
    if (access(SYSCTL, W_OK) < 0 || sysctl_write(orig) < 0) {
        t_set(T_SKIP, SYSCTL " is read-only here");
        return 0;
    }
    return 1;
}

static void
noop_cb(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    (void) e;
    (void) f;
    (void) data;
    (void) ev;
    (void) res;
}

static void
check_reason(int rc, const char *why)
{
    CHECK(rc == -EPERM, "rp_engine_create returned %d (%s), want -EPERM", rc,
        rc ? strerror(-rc) : "success");
    CHECK(why[0] != '\0' && strchr(why, '\n') == NULL, "reason is empty or "
        "not one line: \"%s\"", why);
    CHECK(strstr(why, "io_uring_disabled") != NULL, "reason does not name "
        "kernel.io_uring_disabled: \"%s\"", why);
    t_diag("io_uring_disabled: \"%s\"", why);

out:
    return;
}

static void
case_disabled_2(void)
{
    rp_engine_params_t  p;
    rp_engine_t        *e = NULL;
    char                why[512] = "";
    int                 rc;

    if (!sysctl_usable()) {
        return;
    }
    memset(&p, 0, sizeof(p));
    changed = 1;
    if (sysctl_write("2") < 0) {
        restore();
        t_set(T_SKIP, "cannot write " SYSCTL);
        return;
    }
    rc = rp_engine_create(&p, noop_cb, &e, why, sizeof(why));
    restore();

    if (rc == 0) {
        rp_engine_destroy(e);
    }
    check_reason(rc, why);
}

/*
 * Value 1 as nobody: the child drops privileges, then waits until the
 * parent has flipped the switch; the parent restores it as soon as the
 * child reports.
 */
static void
case_disabled_1_unprivileged(void)
{
    rp_engine_params_t  p;
    rp_engine_t        *e = NULL;
    char                why[512] = "", go;
    int                 to_child[2], from_child[2], rc = 0, st;
    ssize_t             n;
    pid_t               pid;

    if (geteuid() != 0) {
        t_set(T_SKIP, "needs root to drop to nobody");
        return;
    }
    if (!sysctl_usable()) {
        return;
    }
    if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0) {
        t_set(T_FAIL, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
            _exit(2);
        }
        if (read(to_child[0], &go, 1) != 1) {
            _exit(3);
        }
        memset(&p, 0, sizeof(p));
        rc = rp_engine_create(&p, noop_cb, &e, why, sizeof(why));
        if (rc == 0) {
            rp_engine_destroy(e);
        }
        n = write(from_child[1], &rc, sizeof(rc));
        n = write(from_child[1], why, sizeof(why));
        _exit(n == sizeof(why) ? 0 : 4);
    }
    close(to_child[0]);
    close(from_child[1]);
    if (pid < 0) {
        t_set(T_FAIL, "fork: %s", strerror(errno));
        close(to_child[1]);
        close(from_child[0]);
        return;
    }

    changed = 1;
    if (sysctl_write("1") == 0) {
        n = write(to_child[1], "g", 1);
        n = read(from_child[0], &rc, sizeof(rc));
        if (n == sizeof(rc)) {
            n = read(from_child[0], why, sizeof(why));
        }
    } else {
        n = -1;
    }
    restore();
    close(to_child[1]);
    close(from_child[0]);
    waitpid(pid, &st, 0);

    why[sizeof(why) - 1] = '\0';
    if (n <= 0) {
        t_set(T_FAIL, "child failed (status 0x%x)", st);
        return;
    }
    check_reason(rc, why);
}

int
main(int argc, char **argv)
{
    t_init(argc, argv);
    signal(SIGALRM, on_alarm_restore);
    atexit(restore);
    t_run("probe/io-uring-disabled-2", case_disabled_2, 10);
    t_run("probe/io-uring-disabled-1-nobody", case_disabled_1_unprivileged,
        10);
    return t_exit_code();
}
