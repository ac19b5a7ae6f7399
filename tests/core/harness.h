/*
 * Shared helpers for the core tests: result lines, a watchdog, loopback TCP
 * pairs, a deterministic byte stream to verify order, peer threads that
 * write or read such streams, and an engine loop.
 *
 * Each test program is self-contained apart from this header: it runs its
 * cases with t_run() and exits 0 unless a case failed.  Result lines
 * ("PASS name", "FAIL name -- why", "SKIP name -- why") go to stdout and are
 * appended to $RP_RESULTS when set.  Names are "<prefix>/<case>", the prefix
 * being $RP_TEST_PREFIX or "core".
 *
 * The same programs build for Windows with mingw-w64 (tests/core/
 * windows.mk) and run under Wine: harness-win.h gives the POSIX calls they
 * make on Winsock, and the few places below marked _WIN32 differ: each case
 * runs in a child process the program starts from itself (no fork), under a
 * watchdog in the parent; result lines go to stdout only (the suite script
 * collects them); the engine-capable check asks for what the Windows engine
 * needs.
 */

#ifndef RP_TEST_HARNESS_H
#define RP_TEST_HARNESS_H

#ifdef _WIN32
#include "harness-win.h"      /* Winsock under the POSIX names used here */
#else
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

#include "ringplug.h"

#ifndef T_PRINTF
#define T_PRINTF  printf              /* format attribute of t_diag... */
#endif

enum { T_PASS, T_FAIL, T_SKIP };

static int         t_rc;              /* result of the running case */
static char        t_why[512];        /* first failure or skip reason */
static char        t_name[160];       /* running case, with prefix */
static char        t_alarm_line[256]; /* written by the watchdog */
static int         t_failures;
static const char *t_filter;          /* argv[1]: run matching cases only */

static inline double
t_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#ifdef _WIN32
/* stdout only: tests/core/run-windows.sh takes the lines from there (a
   Windows process cannot be given $RP_RESULTS's Unix path reliably) */
static inline void
t_line(const char *line)
{
    printf("%s\n", line);
    fflush(stdout);
}
#else
static inline void
t_line(const char *line)
{
    const char *path = getenv("RP_RESULTS");
    int         fd;

    printf("%s\n", line);
    fflush(stdout);
    if (path != NULL && *path != '\0') {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dprintf(fd, "%s\n", line);
            close(fd);
        }
    }
}
#endif

/* Informational line ("diag: ..."), stdout only. */
static inline void __attribute__((format(T_PRINTF, 1, 2)))
t_diag(const char *fmt, ...)
{
    va_list  ap;

    printf("diag: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline void __attribute__((format(T_PRINTF, 2, 3)))
t_set(int rc, const char *fmt, ...)
{
    va_list  ap;

    if (t_rc != T_PASS) {
        return;                     /* keep the first reason */
    }
    t_rc = rc;
    va_start(ap, fmt);
    vsnprintf(t_why, sizeof(t_why), fmt, ap);
    va_end(ap);
}

static inline void __attribute__((format(T_PRINTF, 2, 3)))
t_failf(int line, const char *fmt, ...)
{
    char     msg[400];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t_set(T_FAIL, "line %d: %s", line, msg);
}

/* Fail the case (first reason wins) and jump to the case's `out:` label. */
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            t_failf(__LINE__, __VA_ARGS__);                                 \
            goto out;                                                       \
        }                                                                   \
    } while (0)

#define SKIP(...)                                                           \
    do {                                                                    \
        t_set(T_SKIP, __VA_ARGS__);                                         \
        goto out;                                                           \
    } while (0)

static inline const char *
t_prefix(void)
{
    const char *p = getenv("RP_TEST_PREFIX");

    return p != NULL && *p != '\0' ? p : "core";
}

/* The case's one result line. */
static inline void
t_report(int rc, const char *why)
{
    char  line[800];

    switch (rc) {
    case T_PASS:
        snprintf(line, sizeof(line), "PASS %s", t_name);
        break;
    case T_SKIP:
        snprintf(line, sizeof(line), "SKIP %s -- %s", t_name, why);
        break;
    default:
        snprintf(line, sizeof(line), "FAIL %s -- %s", t_name, why);
        t_failures++;
        break;
    }
    t_line(line);
}

#ifdef _WIN32
/*
 * Windows has no fork: the program starts itself again for each case
 * (`prog --rp-case NAME RESULT-FILE`), the child runs only that case and
 * writes its result (one byte T_*, then the reason) to RESULT-FILE, and the
 * parent waits for it under the watchdog (a hang is killed and a FAIL, never
 * a stuck suite).  A crash, or the RIO stand-in ending the process on a rule
 * breach (exit 86), fails that case only; the child's output (stdout and
 * stderr, to a file) is copied to the parent's stdout before its result
 * line.
 */
static const char  *t_w_case;        /* child: the one case to run */
static const char  *t_w_result;      /* child: where its result goes */
static unsigned     t_w_seq;

static inline void
t_w_result_write(int rc, const char *why)
{
    FILE  *fp = fopen(t_w_result, "wb");

    if (fp != NULL) {
        fprintf(fp, "%c%s", '0' + rc, why);
        fclose(fp);
    }
}

static LONG WINAPI
t_w_crashed(EXCEPTION_POINTERS *ep)
{
    char  why[128];

    snprintf(why, sizeof(why), "crashed: exception 0x%08lx at %p",
        (unsigned long) ep->ExceptionRecord->ExceptionCode,
        ep->ExceptionRecord->ExceptionAddress);
    t_w_result_write(T_FAIL, why);
    fflush(stdout);
    TerminateProcess(GetCurrentProcess(), 3);
    return EXCEPTION_EXECUTE_HANDLER;
}

static inline void
t_init(int argc, char **argv)
{
    WSADATA  wd;

    if (argc > 3 && strcmp(argv[1], "--rp-case") == 0) {
        t_w_case = argv[2];
        t_w_result = argv[3];
        SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
        SetUnhandledExceptionFilter(t_w_crashed);
    } else {
        t_filter = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    }
    if (WSAStartup(MAKEWORD(2, 2), &wd) != 0) {
        printf("WSAStartup failed\n");
        exit(2);
    }
    setvbuf(stdout, NULL, _IONBF, 0);   /* msvcrt has no line buffering */
}

/* The child: run the case, write the result, exit. */
static inline void
t_w_child(void (*fn)(void))
{
    t_rc = T_PASS;
    t_why[0] = '\0';
    fn();
    t_w_result_write(t_rc, t_why);
    fflush(stdout);
    exit(0);
}

/* Copy the child's output to ours; keep a line of the stand-in's. */
static inline void
t_w_copy_output(const char *path, char *standin, size_t len)
{
    char   line[1024];
    FILE  *fp = fopen(path, "rb");

    if (fp == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        fputs(line, stdout);
        if (strncmp(line, "rpstandin: ", 11) == 0
            && (standin[0] == '\0' || strstr(line, "rule broken") != NULL))
        {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(standin, len, "%s", line);
        }
    }
    fclose(fp);
}

static inline void
t_run(const char *name, void (*fn)(void), unsigned limit_s)
{
    SECURITY_ATTRIBUTES  sa = { sizeof(sa), NULL, TRUE };
    STARTUPINFOA         si;
    PROCESS_INFORMATION  pi;
    char                 exe[MAX_PATH], dir[MAX_PATH], res[MAX_PATH + 64];
    char                 out[MAX_PATH + 64], cmd[3 * MAX_PATH + 256];
    char                 line[800], msg[1 + sizeof(t_why)], standin[400];
    const char          *why;
    HANDLE               h;
    DWORD                code = 0;
    FILE                *fp;
    size_t               n = 0;
    int                  rc, timed_out = 0;

    if (t_w_case != NULL) {
        if (strcmp(name, t_w_case) == 0) {
            t_w_child(fn);
        }
        return;
    }
    if (t_filter != NULL && strstr(name, t_filter) == NULL) {
        return;
    }
    snprintf(t_name, sizeof(t_name), "%s/%s", t_prefix(), name);
    snprintf(t_alarm_line, sizeof(t_alarm_line),
        "watchdog: no result after %u s", limit_s);

    GetModuleFileNameA(NULL, exe, sizeof(exe));
    GetTempPathA(sizeof(dir), dir);
    snprintf(res, sizeof(res), "%srp-case-%lu-%u.res", dir,
        (unsigned long) GetCurrentProcessId(), t_w_seq);
    snprintf(out, sizeof(out), "%srp-case-%lu-%u.out", dir,
        (unsigned long) GetCurrentProcessId(), t_w_seq++);
    DeleteFileA(res);
    snprintf(cmd, sizeof(cmd), "\"%s\" --rp-case \"%s\" \"%s\"", exe, name,
        res);

    fflush(stdout);
    h = CreateFileA(out, GENERIC_WRITE, FILE_SHARE_READ, &sa, CREATE_ALWAYS,
                    FILE_ATTRIBUTE_NORMAL, NULL);
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = INVALID_HANDLE_VALUE;
    si.hStdOutput = h;
    si.hStdError = h;
    if (h == INVALID_HANDLE_VALUE
        || !CreateProcessA(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si,
                           &pi))
    {
        snprintf(line, sizeof(line), "FAIL %s -- CreateProcess: error %lu",
            t_name, GetLastError());
        if (h != INVALID_HANDLE_VALUE) {
            CloseHandle(h);
        }
        t_failures++;
        t_line(line);
        return;
    }
    CloseHandle(h);
    CloseHandle(pi.hThread);
    if (WaitForSingleObject(pi.hProcess, limit_s * 1000) != WAIT_OBJECT_0) {
        timed_out = 1;
        TerminateProcess(pi.hProcess, 1);
        WaitForSingleObject(pi.hProcess, 5000);
    }
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hProcess);

    standin[0] = '\0';
    t_w_copy_output(out, standin, sizeof(standin));
    DeleteFileA(out);
    fp = timed_out ? NULL : fopen(res, "rb");
    if (fp != NULL) {
        n = fread(msg, 1, sizeof(msg) - 1, fp);
        fclose(fp);
    }
    DeleteFileA(res);
    msg[n] = '\0';

    rc = n > 0 ? msg[0] - '0' : T_FAIL;
    why = n > 0 ? msg + 1 : "";
    if (timed_out) {
        why = t_alarm_line;
    } else if (n == 0 && standin[0] != '\0') {
        snprintf(msg, sizeof(msg), "exit status %lu: %s",
            (unsigned long) code, standin);
        why = msg;
    } else if (n == 0) {
        snprintf(msg, sizeof(msg), "died without a result (exit status "
            "0x%lx)", (unsigned long) code);
        why = msg;
    } else if (rc != T_FAIL && code != 0) {
        rc = T_FAIL;
        snprintf(msg, sizeof(msg), "exit status 0x%lx after the case ended",
            (unsigned long) code);
        why = msg;
    }

    t_report(rc, why);
}
#else
/*
 * Each case runs in a child process: a crash, a hang or a sanitizer report
 * at exit fails that case only, and the next one still runs.  The child
 * sends its result (one byte T_*, then the reason) through t_status_fd; the
 * parent prints it.
 */
static int  t_status_fd = -1;

static inline void
t_on_alarm(int sig)
{
    ssize_t  n;

    (void) sig;
    n = write(t_status_fd, t_alarm_line, strlen(t_alarm_line));
    (void) n;
    _exit(1);
}

static inline void
t_init(int argc, char **argv)
{
    t_filter = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, t_on_alarm);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

/* In the child: run the case under the watchdog, send the result, exit()
   (so LeakSanitizer checks the case). */
static inline void
t_child(void (*fn)(void), unsigned limit_s)
{
    char     msg[1 + sizeof(t_why)];
    ssize_t  n;

    t_rc = T_PASS;
    t_why[0] = '\0';
    alarm(limit_s);
    fn();
    alarm(0);
    msg[0] = (char) ('0' + t_rc);
    snprintf(msg + 1, sizeof(msg) - 1, "%s", t_why);
    n = write(t_status_fd, msg, strlen(msg));
    (void) n;
    fflush(stdout);
    exit(0);
}

/*
 * Run one case under a watchdog of limit_s seconds (a hang is a FAIL, never
 * a stuck suite) and report it.  With an argument, a program runs only the
 * cases whose name contains it.
 */
static inline void
t_run(const char *name, void (*fn)(void), unsigned limit_s)
{
    char     line[800], msg[1 + sizeof(t_why)];
    ssize_t  n, k;
    pid_t    pid;
    int      p[2], ws = 0, rc;
    const char *why;

    if (t_filter != NULL && strstr(name, t_filter) == NULL) {
        return;
    }
    snprintf(t_name, sizeof(t_name), "%s/%s", t_prefix(), name);
    snprintf(t_alarm_line, sizeof(t_alarm_line),
        "%cwatchdog: no result after %u s", '0' + T_FAIL, limit_s);

    fflush(stdout);
    if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        snprintf(line, sizeof(line), "FAIL %s -- pipe/fork: %s", t_name,
            strerror(errno));
        t_failures++;
        t_line(line);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        t_status_fd = p[1];
        t_child(fn, limit_s);
    }
    close(p[1]);
    n = 0;
    while (n < (ssize_t) sizeof(msg) - 1
           && (k = read(p[0], msg + n, sizeof(msg) - 1 - n)) > 0)
    {
        n += k;
    }
    msg[n] = '\0';
    close(p[0]);
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }

    rc = n > 0 ? msg[0] - '0' : T_FAIL;
    why = n > 0 ? msg + 1 : "";
    if (n == 0) {
        snprintf(msg, sizeof(msg), "died without a result (%s %d)",
            WIFSIGNALED(ws) ? "signal" : "exit status",
            WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
        why = msg;
    } else if (rc != T_FAIL && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        /* The case passed, then the process failed at exit: a
           LeakSanitizer (or other sanitizer) report on stderr. */
        rc = T_FAIL;
        snprintf(msg, sizeof(msg), "%s %d after the case ended (sanitizer "
            "report above?)", WIFSIGNALED(ws) ? "signal" : "exit status",
            WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
        why = msg;
    }

    t_report(rc, why);
}
#endif

static inline int
t_exit_code(void)
{
    return t_failures ? 1 : 0;
}

/* ---- deterministic streams ------------------------------------------- */

static inline uint64_t
t_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A small PRNG for sizes and choices. */
static inline uint64_t
t_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    return t_mix(*state);
}

/* Uniform-ish in [lo, hi]. */
static inline size_t
t_range(uint64_t *state, size_t lo, size_t hi)
{
    return lo + (size_t) (t_rand(state) % (hi - lo + 1));
}

/*
 * Stream `seed` at offset `off`: every position of every stream has its own
 * byte, so a lost, repeated, reordered or foreign byte shows.
 */
static inline void
t_pat_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
    uint8_t  *p = buf;
    size_t    i = 0;
    uint64_t  w;

    while (i < len) {
        uint64_t  pos = off + i;
        unsigned  sh = pos & 7;

        w = t_mix(seed * 0x100000001b3ull ^ (pos >> 3));
        for (; sh < 8 && i < len; sh++, i++) {
            p[i] = (uint8_t) (w >> (sh * 8));
        }
    }
}

/* Index of the first byte of buf that is not stream[off...], or -1. */
static inline long
t_pat_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
    const uint8_t  *p = buf;
    size_t          i = 0;
    uint64_t        w;

    while (i < len) {
        uint64_t  pos = off + i;
        unsigned  sh = pos & 7;

        w = t_mix(seed * 0x100000001b3ull ^ (pos >> 3));
        for (; sh < 8 && i < len; sh++, i++) {
            if (p[i] != (uint8_t) (w >> (sh * 8))) {
                return (long) i;
            }
        }
    }
    return -1;
}

/* ---- loopback TCP ------------------------------------------------------- */

#ifdef _WIN32
static inline int
t_set_nonblock(int fd, int on)
{
    return t_w_set_nonblock(fd, on);
}
#else
static inline int
t_set_nonblock(int fd, int on)
{
    int  fl = fcntl(fd, F_GETFL);

    if (fl < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}
#endif

/* A listener on 127.0.0.1, port chosen by the kernel; -1 on error. */
static inline int
t_listen(void)
{
    struct sockaddr_in  sa;
    int                 fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0
        || listen(fd, 1024) < 0)
    {
        close(fd);
        return -1;
    }
    return fd;
}

/* Start a connection to listener lfd; returns the client fd or -1. */
static inline int
t_connect(int lfd)
{
    struct sockaddr_in  sa;
    socklen_t           sl = sizeof(sa);
    int                 fd;

    if (getsockname(lfd, (struct sockaddr *) &sa, &sl) < 0) {
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *) &sa, sl) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * A connected loopback TCP pair: *srv is the accepted side (what a server
 * hands to the engine; non-blocking), *cli the connecting side (the peer;
 * blocking).  rcvbuf/sndbuf > 0 shrink the srv side's buffers first.
 * Returns 0 or -1.
 */
static inline int
t_pair_bufs(int lfd, int *srv, int *cli, int rcvbuf, int sndbuf)
{
    int  c, s, one = 1;

    c = t_connect(lfd);
    if (c < 0) {
        return -1;
    }
    s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (s < 0) {
        close(c);
        return -1;
    }
    if (rcvbuf > 0) {
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    if (sndbuf > 0) {
        setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *srv = s;
    *cli = c;
    return 0;
}

static inline int
t_pair(int lfd, int *srv, int *cli)
{
    return t_pair_bufs(lfd, srv, cli, 0, 0);
}

/* Whether fd has reached EOF within ms: 1 EOF, 0 no, -1 error/RST. */
static inline int
t_eof_within(int fd, int ms)
{
    double  end = t_now_ms() + ms;
    char    buf[4096];

    for ( ;; ) {
        struct pollfd  pfd = { .fd = fd, .events = POLLIN };
        int            left = (int) (end - t_now_ms());
        ssize_t        n;

        if (left < 0) {
            left = 0;
        }
        if (poll(&pfd, 1, left) <= 0) {
            return 0;
        }
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0) {
            return 1;
        }
        if (n < 0 && errno != EAGAIN) {
            return -1;
        }
        if (left == 0) {
            return 0;
        }
    }
}

/* ---- peer threads ------------------------------------------------------- */

/*
 * One peer socket driven by a t_peers thread.  A writer sends `total` bytes
 * of stream `seed` in chunks of random size (1..max_chunk), then shuts down
 * its write side if `shut` is set.  A reader reads and checks stream `seed`
 * until EOF, `total` being what it expects to see.
 */
typedef struct t_peer {
    int       fd;
    uint64_t  seed;
    uint64_t  total;
    size_t    max_chunk;
    int       shut;
    /* results */
    uint64_t  off;          /* bytes written / read and verified */
    int       eof;
    int       err;          /* errno of a failed call */
    long      bad_at;       /* reader: stream offset of first wrong byte */
    uint8_t   bad_got;      /* reader: that byte, and what it should be */
    uint8_t   bad_want;
} t_peer_t;

typedef struct t_peers {
    t_peer_t       *p;
    int             n;
    int             reader;     /* 0: write the streams, 1: read them */
    unsigned        read_delay_us; /* reader: sleep after each read */
    int             limit_ms;   /* give up after this long */
    uint64_t        rng;
    pthread_t       th;
    volatile int    stop;
    volatile int    done;
    int             timed_out;
} t_peers_t;

static inline void *
t_peers_main(void *arg)
{
    t_peers_t     *ps = arg;
    struct pollfd *pfd = calloc(ps->n, sizeof(*pfd));
    size_t         cap = 0;
    uint8_t       *buf = NULL;
    double         end = t_now_ms() + ps->limit_ms;
    int            i, left;

    for (i = 0; i < ps->n; i++) {
        t_set_nonblock(ps->p[i].fd, 1);
        if (!ps->reader && ps->p[i].shut && ps->p[i].off == ps->p[i].total) {
            shutdown(ps->p[i].fd, SHUT_WR);
        }
        if (ps->p[i].max_chunk > cap) {
            cap = ps->p[i].max_chunk;
        }
    }
    buf = malloc(cap ? cap : 1);

    for ( ;; ) {
        int  active = 0;

        for (i = 0; i < ps->n; i++) {
            t_peer_t  *p = &ps->p[i];
            int        busy = ps->reader ? !p->eof : p->off < p->total;

            /* A reader keeps draining after a wrong byte, so the sender
               is not stalled and the case fails on the byte, not on a
               timeout; a writer stops. */
            pfd[i].fd = (busy && !p->err && (ps->reader || p->bad_at < 0))
                        ? p->fd : -1;
            pfd[i].events = ps->reader ? POLLIN : POLLOUT;
            active += pfd[i].fd >= 0;
        }
        if (active == 0 || ps->stop) {
            break;
        }
        left = (int) (end - t_now_ms());
        if (left <= 0) {
            ps->timed_out = 1;
            break;
        }
        if (poll(pfd, ps->n, left < 50 ? left : 50) < 0 && errno != EINTR) {
            break;
        }
        for (i = 0; i < ps->n; i++) {
            t_peer_t  *p = &ps->p[i];
            size_t     want = t_range(&ps->rng, 1, p->max_chunk);
            ssize_t    r;

            if (pfd[i].fd < 0 || pfd[i].revents == 0) {
                continue;
            }
            if (ps->reader) {
                r = recv(p->fd, buf, want, 0);
                if (r == 0) {
                    p->eof = 1;
                } else if (r < 0) {
                    if (errno != EAGAIN && errno != EINTR) {
                        p->err = errno;
                    }
                } else {
                    long  bad = p->bad_at < 0
                                ? t_pat_check(p->seed, p->off, buf, r) : -1;

                    if (bad >= 0) {
                        uint8_t  want[8];

                        p->bad_at = (long) p->off + bad;
                        p->bad_got = buf[bad];
                        t_pat_fill(p->seed, p->bad_at, want, 1);
                        p->bad_want = want[0];
                    }
                    p->off += r;
                    if (ps->read_delay_us) {
                        usleep(ps->read_delay_us);
                    }
                }
            } else {
                if (want > p->total - p->off) {
                    want = p->total - p->off;
                }
                t_pat_fill(p->seed, p->off, buf, want);
                r = send(p->fd, buf, want, MSG_NOSIGNAL);
                if (r < 0) {
                    if (errno != EAGAIN && errno != EINTR) {
                        p->err = errno;
                    }
                } else {
                    p->off += r;
                    if (p->off == p->total && p->shut) {
                        shutdown(p->fd, SHUT_WR);
                    }
                }
            }
        }
    }
    free(buf);
    free(pfd);
    ps->done = 1;
    return NULL;
}

static inline int
t_peers_start(t_peers_t *ps)
{
    int  i;

    /* Before the thread exists: the caller may look at once. */
    for (i = 0; i < ps->n; i++) {
        ps->p[i].bad_at = -1;
    }
    ps->stop = 0;
    ps->done = 0;
    ps->timed_out = 0;
    if (ps->limit_ms == 0) {
        ps->limit_ms = 30000;
    }
    return pthread_create(&ps->th, NULL, t_peers_main, ps) == 0 ? 0 : -1;
}

static inline void
t_peers_join(t_peers_t *ps)
{
    ps->stop = 1;
    pthread_join(ps->th, NULL);
}

/* Close *fd if it is open and mark it closed. */
static inline void
t_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- engine helpers ----------------------------------------------------- */

#ifdef _WIN32
/* Windows: an I/O completion port and \Device\Afd (harness-win.h). */
static inline int
t_kernel_capable(void)
{
    return t_w_engine_capable();
}
#else
/*
 * Whether this kernel has everything the engine requires (multishot receive
 * is the newest: 6.0) and lets this process create rings: if so, an engine
 * that refuses to start is a bug, not a reason to skip.
 */
static inline int
t_kernel_capable(void)
{
    struct io_uring_params  p;
    struct utsname          u;
    int                     major = 0, minor = 0;
    long                    fd;

    if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2
        || major < 6)
    {
        return 0;
    }
    memset(&p, 0, sizeof(p));
    fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0) {
        return 0;
    }
    close((int) fd);
    return 1;
}
#endif

/*
 * Create an engine; on failure mark the case skipped when the kernel or the
 * sandbox lacks what the engine needs, failed when it does not, and return
 * NULL.
 */
static inline rp_engine_t *
t_engine_flags(unsigned entries, unsigned cq_entries, unsigned buf_count,
    unsigned buf_size, unsigned flags, rp_event_cb cb)
{
    rp_engine_params_t  p;
    rp_engine_t        *e = NULL;
    char                why[256] = "";
    int                 rc;

    memset(&p, 0, sizeof(p));
    p.entries = entries;
    p.cq_entries = cq_entries;
    p.buf_count = buf_count;
    p.buf_size = buf_size;
    p.flags = flags;
    rc = rp_engine_create(&p, cb, &e, why, sizeof(why));
    if (rc < 0) {
        t_set(t_kernel_capable() ? T_FAIL : T_SKIP, "engine unavailable: %s "
            "(%s)", why, strerror(-rc));
        return NULL;
    }
    return e;
}

static inline rp_engine_t *
t_engine(unsigned entries, unsigned cq_entries, unsigned buf_count,
    unsigned buf_size, rp_event_cb cb)
{
    return t_engine_flags(entries, cq_entries, buf_count, buf_size, 0, cb);
}

/*
 * Drive the engine until done(arg) returns non-zero, calling it after every
 * rp_engine_wait(step_ms).  Returns 0 when done, -ETIMEDOUT after limit_ms,
 * or the -errno of a failed wait (-EINTR is retried).
 */
static inline int
t_loop(rp_engine_t *e, int (*done)(void *), void *arg, int step_ms,
    int limit_ms)
{
    double  end = t_now_ms() + limit_ms;
    int     rc;

    while (!done(arg)) {
        if (t_now_ms() > end) {
            return -ETIMEDOUT;
        }
        rc = rp_engine_wait(e, step_ms);
        if (rc < 0 && rc != -EINTR && rc != -ETIME) {
            return rc;
        }
    }
    return 0;
}

/* Wait passes for about ms milliseconds, whatever happens. */
static inline int
t_spin(rp_engine_t *e, int ms)
{
    double  end = t_now_ms() + ms;
    int     rc, n = 0;

    while (t_now_ms() < end) {
        rc = rp_engine_wait(e, 5);
        if (rc < 0 && rc != -EINTR && rc != -ETIME) {
            return rc;
        }
        n += rc > 0 ? rc : 0;
    }
    return n;
}

#endif /* RP_TEST_HARNESS_H */
