/*
 * Never fail to start: when io_uring is unusable, rp_engine_create() fails
 * cleanly with -errno and one human line naming the cause.
 *
 * The program runs itself under build/tools/rp-noring (seccomp makes
 * io_uring_setup fail with EPERM, as Docker's default profile does, or with
 * ENOSYS) and in a child with RLIMIT_MEMLOCK at 0, both as root and as
 * nobody (kernels since 5.12 do not charge rings to memlock, but pinned
 * buffer memory may be): there the engine must either work, checked with a
 * real loopback receive, or fail with a clear reason.
 *
 * Child mode: test-probe --child [--setuid] [--memlock0] prints one line
 * "raw <errno> rc <rc> works <0|1> why <text>" and exits 0.
 */

#include <grp.h>
#include <linux/io_uring.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"

/* ---- child ---------------------------------------------------------------- */

static int  child_ready;

static void
child_cb(rp_engine_t *e, rp_fd_t *f, void *data, enum rp_event ev, int res)
{
    (void) e;
    (void) f;
    (void) data;
    (void) res;
    if (ev == RP_EV_RECV) {
        child_ready = 1;
    }
}

/* A real receive through the engine: 1 if "hello" arrives. */
static int
child_loopback(rp_engine_t *e)
{
    rp_fd_t  *f;
    char      buf[16];
    int       lfd, fd, peer, i, ok = 0;

    lfd = t_listen();
    if (lfd < 0 || t_pair(lfd, &fd, &peer) < 0) {
        return 0;
    }
    f = rp_fd_open(e, fd, NULL);
    if (f != NULL && rp_recv_start(e, f, 0) == 0
        && send(peer, "hello", 5, 0) == 5)
    {
        for (i = 0; i < 100 && !child_ready; i++) {
            rp_engine_wait(e, 10);
        }
        ok = child_ready && rp_recv_copy(e, f, buf, sizeof(buf)) == 5
             && memcmp(buf, "hello", 5) == 0;
    }
    if (f != NULL) {
        rp_fd_close(e, f, 0);
    }
    close(fd);
    close(peer);
    close(lfd);
    return ok;
}

static int
child_main(int argc, char **argv)
{
    struct io_uring_params  p;
    struct rlimit           rl = { 0, 0 };
    rp_engine_params_t      ep;
    rp_engine_t            *e = NULL;
    char                    why[512] = "";
    long                    fd;
    int                     i, raw = 0, rc, works = 0;

    for (i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--memlock0")
            && setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
        {
            printf("setup setrlimit: %s\n", strerror(errno));
            return 0;
        }
        if (!strcmp(argv[i], "--setuid")
            && (setgroups(0, NULL) < 0 || setgid(65534) < 0
                || setuid(65534) < 0))
        {
            printf("setup setuid: %s\n", strerror(errno));
            return 0;
        }
    }

    memset(&p, 0, sizeof(p));
    fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0) {
        raw = errno;
    } else {
        close(fd);
    }

    memset(&ep, 0, sizeof(ep));
    rc = rp_engine_create(&ep, child_cb, &e, why, sizeof(why));
    if (rc == 0) {
        works = child_loopback(e);
        rp_engine_destroy(e);
    }
    printf("raw %d rc %d works %d why %s\n", raw, rc, works, why);
    return 0;
}

/* ---- parent ---------------------------------------------------------------- */

typedef struct result {
    int   raw, rc, works;
    char  why[512];
    int   why_lines;        /* newlines inside why */
    char  out[1024];
} result_t;

/* Run argv with stdout captured; fills r; returns 0 or -1 (+ t_set). */
static int
spawn(char *const argv[], result_t *r)
{
    int      p[2], st, n = 0;
    ssize_t  k;
    pid_t    pid;
    char    *w;

    memset(r, 0, sizeof(*r));
    if (pipe2(p, O_CLOEXEC) < 0) {
        t_set(T_FAIL, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        execv(argv[0], argv);
        printf("exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    while ((k = read(p[0], r->out + n, sizeof(r->out) - 1 - n)) > 0) {
        n += k;
    }
    close(p[0]);
    r->out[n] = '\0';
    if (pid < 0 || waitpid(pid, &st, 0) < 0) {
        t_set(T_FAIL, "fork/wait: %s", strerror(errno));
        return -1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        t_set(T_FAIL, "child %s %d; output: %.300s",
            WIFSIGNALED(st) ? "killed by signal" : "exited with",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), r->out);
        return -1;
    }
    if (sscanf(r->out, "raw %d rc %d works %d why ", &r->raw, &r->rc,
            &r->works) != 3
        || (w = strstr(r->out, " why ")) == NULL)
    {
        t_set(T_FAIL, "child said: %.300s", r->out);
        return -1;
    }
    w += 5;
    /* Our own line ends in one newline; any other is in why itself. */
    n = (int) strlen(w);
    if (n > 0 && w[n - 1] == '\n') {
        w[--n] = '\0';
    }
    snprintf(r->why, sizeof(r->why), "%s", w);
    for (; *w; w++) {
        r->why_lines += *w == '\n';
    }
    return 0;
}

static char  self[512], noring[600];

static int
find_paths(void)
{
    ssize_t  n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char    *slash;
    const char *env = getenv("RP_NORING");

    if (n <= 0) {
        return -1;
    }
    self[n] = '\0';
    if (env != NULL && *env) {
        snprintf(noring, sizeof(noring), "%s", env);
    } else {
        /* build/tests/core[-san]/test-probe -> build/tools/rp-noring */
        snprintf(noring, sizeof(noring), "%s", self);
        slash = strrchr(noring, '/');
        if (slash == NULL) {
            return -1;
        }
        snprintf(slash, noring + sizeof(noring) - slash,
            "/../../tools/rp-noring");
    }
    return 0;
}

static int
icontains(const char *s, const char *w)
{
    return strcasestr(s, w) != NULL;
}

static void
seccomp_case(int enosys)
{
    result_t  r;
    char     *argv[5];
    int       i = 0, want = enosys ? ENOSYS : EPERM;

    CHECK(find_paths() == 0, "cannot find myself");
    CHECK(access(noring, X_OK) == 0, "%s not built (make tools)", noring);
    argv[i++] = noring;
    if (enosys) {
        argv[i++] = "--enosys";
    }
    argv[i++] = self;
    argv[i++] = "--child";
    argv[i] = NULL;
    if (spawn(argv, &r) < 0) {
        goto out;
    }
    CHECK(r.raw == want, "rp-noring did not block io_uring_setup (raw errno "
        "%d)", r.raw);
    CHECK(r.rc == -want, "rp_engine_create returned %d, want %d", r.rc,
        -want);
    CHECK(r.why[0] != '\0', "no reason given");
    CHECK(r.why_lines == 0, "reason is not one line: \"%s\"", r.why);
    CHECK(strstr(r.why, "io_uring") != NULL, "reason does not name "
        "io_uring: \"%s\"", r.why);
    if (enosys) {
        CHECK(icontains(r.why, "kernel") || icontains(r.why, "ENOSYS")
            || icontains(r.why, "not implemented")
            || icontains(r.why, "not supported") || icontains(r.why, "seccomp"),
            "reason does not say the kernel lacks io_uring: \"%s\"", r.why);
    } else {
        CHECK(icontains(r.why, "seccomp") || icontains(r.why, "blocked")
            || icontains(r.why, "not permitted"), "reason does not say "
            "io_uring is blocked (seccomp): \"%s\"", r.why);
    }
    t_diag("%s: \"%s\"", enosys ? "ENOSYS" : "EPERM", r.why);

out:
    return;
}

static void case_eperm(void)  { seccomp_case(0); }
static void case_enosys(void) { seccomp_case(1); }

static void
memlock_case(int as_nobody)
{
    result_t  r;
    char     *argv[6];
    int       i = 0;

    CHECK(find_paths() == 0, "cannot find myself");
    argv[i++] = self;
    argv[i++] = "--child";
    argv[i++] = "--memlock0";
    if (as_nobody) {
        argv[i++] = "--setuid";
    }
    argv[i] = NULL;
    if (spawn(argv, &r) < 0) {
        goto out;
    }
    CHECK(strncmp(r.out, "setup", 5) != 0, "child: %s", r.out);
    if (r.rc == 0) {
        CHECK(r.works, "engine created with RLIMIT_MEMLOCK 0 but a loopback "
            "receive through it failed");
        t_diag("memlock 0%s: engine works", as_nobody ? " as nobody" : "");
    } else {
        CHECK(r.why[0] != '\0' && r.why_lines == 0
            && strstr(r.why, "io_uring") != NULL,
            "failed (%d) without a clear one-line reason: \"%s\"", r.rc,
            r.why);
        if (r.rc == -ENOMEM) {
            CHECK(icontains(r.why, "memlock"), "ENOMEM under RLIMIT_MEMLOCK "
                "0 but the reason does not name it: \"%s\"", r.why);
        }
        t_diag("memlock 0%s: engine refused (%d): \"%s\"",
            as_nobody ? " as nobody" : "", r.rc, r.why);
    }

out:
    return;
}

static void case_memlock_root(void)   { memlock_case(0); }
static void case_memlock_nobody(void) { memlock_case(1); }

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--child")) {
        return child_main(argc, argv);
    }
    t_init(argc, argv);
    t_run("probe/seccomp-eperm", case_eperm, 20);
    t_run("probe/seccomp-enosys", case_enosys, 20);
    t_run("probe/memlock-0-root", case_memlock_root, 20);
    if (geteuid() == 0) {
        t_run("probe/memlock-0-nobody", case_memlock_nobody, 20);
    }
    return t_exit_code();
}
