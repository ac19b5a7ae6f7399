/*
 * The core tests on Windows (mingw-w64; run under Wine by
 * tests/core/run-windows.sh): the POSIX calls the tests make, on Winsock,
 * so each test's own code reads as on Linux.  harness.h includes this file
 * instead of the POSIX headers when _WIN32 is defined; nothing else does.
 *
 * Sockets are kept in ints, as on Linux, -1 meaning none: a SOCKET is a
 * kernel handle, whose value fits in 32 bits.  Under the POSIX names:
 *  - socket() and accept4() (SOCK_CLOEXEC, SOCK_NONBLOCK), close() (a
 *    socket with closesocket(), any other handle with CloseHandle()),
 *    send()/recv() and write()/read() on sockets, setsockopt() taking any
 *    pointer, poll() on WSAPoll (struct pollfd with an int fd, a negative fd
 *    skipped), socketpair() (AF_UNIX, SOCK_STREAM) as a loopback TCP pair;
 *  - errno set from WSAGetLastError(); strerror() also naming the Winsock
 *    errno values (ECONNRESET...) that msvcrt's does not;
 *  - MSG_NOSIGNAL is 0 (Windows has no SIGPIPE); MSG_DONTWAIT makes a
 *    blocking socket non-blocking for that one call.
 *
 * The RIO stand-in build (-DRP_RIO_STANDIN, suite windows-core-rio-standin)
 * makes every socket with the stand-in's rpstandin_WSASocketW(...,
 * WSA_FLAG_REGISTERED_IO) or rpstandin_accept(), closes it with
 * rpstandin_closesocket(), and has rp_fd_open() mark every socket
 * RP_FD_REGISTERED_IO: the engine runs its RIO data path on the stand-in's
 * rule-checking RIO table (tests/windows/rio-standin.h).  An engine of that
 * build that does not take the table fails rp_engine_create() here.  The
 * stand-in's own handle of a socket with a request queue (its requests go
 * on it, as RIO's are bound to the socket) stands for RIO's hold on the
 * socket, which is no handle: getpeername() does not see it, so a test
 * counting the handles on a connection counts the host's and the engine's.
 */

#ifndef RP_TEST_HARNESS_WIN_H
#define RP_TEST_HARNESS_WIN_H

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <winternl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringplug.h"

#ifdef RP_RIO_STANDIN
#include "rio-standin.h"
#endif

/* the SAL annotations windows.h defines would take names tests use */
#undef IN
#undef OUT
#undef OPTIONAL

#ifndef SHUT_WR
#define SHUT_WR  SD_SEND
#endif

/* mingw's C99 printf (-D__USE_MINGW_ANSI_STDIO=1: %zu, %lld) is gnu_printf
   to the compiler; its plain "printf" means msvcrt's */
#define T_PRINTF  gnu_printf

/* accept4()/socket() flags of Linux's, for the shims below only */
#define SOCK_CLOEXEC   0x40000000
#define SOCK_NONBLOCK  0x20000000
#define MSG_NOSIGNAL   0
#define MSG_DONTWAIT   0x40000000

/* ---- errno -------------------------------------------------------------- */

static inline int
t_w_errno(int wsa)
{
    switch (wsa) {
    case WSAEWOULDBLOCK:  return EAGAIN;
    case WSAEINTR:        return EINTR;
    case WSAECONNRESET:   return ECONNRESET;
    case WSAECONNABORTED: return ECONNABORTED;
    case WSAENETRESET:    return ECONNRESET;
    case WSAESHUTDOWN:    return EPIPE;
    case WSAENOTCONN:     return ENOTCONN;
    case WSAENOTSOCK:     return EBADF;
    case WSAEINVAL:       return EINVAL;
    case WSAEMFILE:       return EMFILE;
    case WSAENOBUFS:      return ENOBUFS;
    case WSAETIMEDOUT:    return ETIMEDOUT;
    case WSAECONNREFUSED: return ECONNREFUSED;
    case WSAEADDRINUSE:   return EADDRINUSE;
    default:              return EIO;
    }
}

/* msvcrt's strerror() knows errno values up to 42 only */
static inline const char *
t_w_strerror(int err)
{
    static char  buf[32];

    switch (err) {
    case EADDRINUSE:   return "Address in use";
    case ECANCELED:    return "Operation canceled";
    case ECONNABORTED: return "Connection aborted";
    case ECONNREFUSED: return "Connection refused";
    case ECONNRESET:   return "Connection reset";
    case ENOBUFS:      return "No buffer space available";
    case ENOTCONN:     return "Not connected";
    case ENOTSOCK:     return "Not a socket";
    case EOPNOTSUPP:   return "Operation not supported";
    case ETIME:        return "Timer expired";
    case ETIMEDOUT:    return "Timed out";
    default:
        if (err > 42 || err < 0) {
            snprintf(buf, sizeof(buf), "errno %d", err);
            return buf;
        }
        return strerror(err);
    }
}

/* ---- sockets ---------------------------------------------------------- */

/* Which sockets are non-blocking (Windows cannot be asked). */
#define T_W_NB_MAX  8192
static int      t_w_nb[T_W_NB_MAX];
static int      t_w_nb_n;
static SRWLOCK  t_w_nb_lock = SRWLOCK_INIT;

static inline int
t_w_nb_find(int s)
{
    int  i;

    for (i = 0; i < t_w_nb_n; i++) {
        if (t_w_nb[i] == s) {
            return i;
        }
    }
    return -1;
}

static inline void
t_w_nb_mark(int s, int on)
{
    int  i;

    AcquireSRWLockExclusive(&t_w_nb_lock);
    i = t_w_nb_find(s);
    if (on && i < 0 && t_w_nb_n < T_W_NB_MAX) {
        t_w_nb[t_w_nb_n++] = s;
    } else if (!on && i >= 0) {
        t_w_nb[i] = t_w_nb[--t_w_nb_n];
    }
    ReleaseSRWLockExclusive(&t_w_nb_lock);
}

static inline int
t_w_nb_is(int s)
{
    int  i;

    AcquireSRWLockShared(&t_w_nb_lock);
    i = t_w_nb_find(s);
    ReleaseSRWLockShared(&t_w_nb_lock);
    return i >= 0;
}

static inline int
t_w_fionbio(int s, int on)
{
    u_long  v = on ? 1 : 0;

    return ioctlsocket((SOCKET) s, FIONBIO, &v) == 0 ? 0 : -1;
}

static inline int
t_w_set_nonblock(int s, int on)
{
    if (t_w_fionbio(s, on) < 0) {
        errno = t_w_errno(WSAGetLastError());
        return -1;
    }
    t_w_nb_mark(s, on);
    return 0;
}

static inline int
t_w_socket(int af, int type, int proto)
{
    DWORD   fl = WSA_FLAG_OVERLAPPED;
    SOCKET  s;

    type &= ~(SOCK_CLOEXEC | SOCK_NONBLOCK);
#ifdef RP_RIO_STANDIN
    fl |= WSA_FLAG_REGISTERED_IO;
    s = rpstandin_WSASocketW(af, type, proto, NULL, 0, fl);
#else
    s = WSASocketW(af, type, proto, NULL, 0, fl);
#endif
    if (s == INVALID_SOCKET) {
        errno = t_w_errno(WSAGetLastError());
        return -1;
    }
    return (int) s;
}

static inline int
t_w_accept4(int l, struct sockaddr *sa, int *len, int flags)
{
    SOCKET  s;

#ifdef RP_RIO_STANDIN
    s = rpstandin_accept((SOCKET) l, sa, len);
#else
    s = accept((SOCKET) l, sa, len);
#endif
    if (s == INVALID_SOCKET) {
        errno = t_w_errno(WSAGetLastError());
        return -1;
    }
    if ((flags & SOCK_NONBLOCK) && t_w_set_nonblock((int) s, 1) < 0) {
        closesocket(s);
        return -1;
    }
    return (int) s;
}

static inline int
t_w_close(int fd)
{
    int  rc;

    t_w_nb_mark(fd, 0);
#ifdef RP_RIO_STANDIN
    rc = rpstandin_closesocket((SOCKET) fd);
#else
    rc = closesocket((SOCKET) fd);
#endif
    if (rc != 0 && WSAGetLastError() == WSAENOTSOCK) {
        rc = CloseHandle((HANDLE) (intptr_t) fd) ? 0 : -1;
    }
    return rc;
}

/* send() or recv() with MSG_DONTWAIT for once on a blocking socket, and
   errno set as on POSIX */
static inline long long
t_w_io(int s, void *buf, size_t len, int flags, int sending)
{
    int  once = (flags & MSG_DONTWAIT) && !t_w_nb_is(s), r, err = 0;

    if (once) {
        t_w_fionbio(s, 1);
    }
    r = sending ? send((SOCKET) s, buf, (int) len, flags & ~MSG_DONTWAIT)
                : recv((SOCKET) s, buf, (int) len, flags & ~MSG_DONTWAIT);
    if (r < 0) {
        err = WSAGetLastError();
    }
    if (once) {
        t_w_fionbio(s, 0);
    }
    if (r < 0) {
        errno = t_w_errno(err);
        return -1;
    }
    return r;
}

static inline long long
t_w_send(int s, const void *buf, size_t len, int flags)
{
    return t_w_io(s, (void *) buf, len, flags, 1);
}

static inline long long
t_w_recv(int s, void *buf, size_t len, int flags)
{
    return t_w_io(s, buf, len, flags, 0);
}

/* poll(2) over WSAPoll: an int fd, negative ones skipped as poll(2) does */
struct t_w_pollfd {
    int    fd;
    short  events;
    short  revents;
};

static inline int
t_w_poll(struct t_w_pollfd *p, unsigned long n, int ms)
{
    WSAPOLLFD      w[256];
    unsigned long  i, k = 0;
    int            rc;

    for (i = 0; i < n && k < 256; i++) {
        p[i].revents = 0;
        if (p[i].fd >= 0) {
            w[k].fd = (SOCKET) p[i].fd;
            w[k].events = p[i].events;
            w[k].revents = 0;
            k++;
        }
    }
    if (k == 0) {
        Sleep(ms < 0 ? INFINITE : (DWORD) ms);
        return 0;
    }
    rc = WSAPoll(w, k, ms);
    if (rc < 0) {
        errno = t_w_errno(WSAGetLastError());
        return -1;
    }
    for (i = 0, k = 0; i < n; i++) {
        if (p[i].fd >= 0) {
            p[i].revents = w[k++].revents;
        }
    }
    return rc;
}

/* socketpair(AF_UNIX, SOCK_STREAM): a loopback TCP pair */
static inline int
t_w_socketpair(int af, int type, int proto, int sv[2])
{
    struct sockaddr_in  sa;
    int                 sl = sizeof(sa), l, c = -1, s = -1;

    (void) proto;
    if (af != AF_UNIX || (type & 0xff) != SOCK_STREAM) {
        errno = EOPNOTSUPP;
        return -1;
    }
    l = t_w_socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind((SOCKET) l, (struct sockaddr *) &sa, sizeof(sa)) == 0
        && listen((SOCKET) l, 1) == 0
        && getsockname((SOCKET) l, (struct sockaddr *) &sa, &sl) == 0
        && (c = t_w_socket(AF_INET, SOCK_STREAM, 0)) >= 0
        && connect((SOCKET) c, (struct sockaddr *) &sa, sl) == 0)
    {
        s = t_w_accept4(l, NULL, NULL, 0);
    }
    t_w_close(l);
    if (s < 0) {
        if (c >= 0) {
            t_w_close(c);
        }
        return -1;
    }
    sv[0] = s;
    sv[1] = c;
    return 0;
}

#ifdef RP_RIO_STANDIN
/* Every socket of this build was made with WSA_FLAG_REGISTERED_IO. */
static inline rp_fd_t *
t_w_fd_open(rp_engine_t *e, rp_socket_t s, void *data)
{
    rp_fd_t  *f = (rp_fd_open)(e, s, data);
    int       type = 0, len = sizeof(type);

    if (f != NULL && getsockopt((SOCKET) s, SOL_SOCKET, SO_TYPE,
                                (char *) &type, &len) == 0)
    {
        rp_fd_set_flags(f, RP_FD_REGISTERED_IO);
    }
    return f;
}

/* An engine of this build that runs the overlapped data path would test
   nothing of RIO: it fails here, with what it says about itself. */
static inline int
t_w_engine_create(const rp_engine_params_t *p, rp_event_cb cb,
    rp_engine_t **out, char *why, size_t why_len)
{
    int  rc = (rp_engine_create)(p, cb, out, why, why_len);

    if (rc == 0 && strstr(rp_engine_describe(*out), "RIO data path") == NULL)
    {
        if (why != NULL && why_len > 0) {
            snprintf(why, why_len, "stand-in build, but the engine did not "
                     "take the stand-in's RIO table: \"%s\"",
                     rp_engine_describe(*out));
        }
        rp_engine_destroy(*out);
        *out = NULL;
        return -ENOTSUP;
    }
    return rc;
}

/* The stand-in's own handles are not the program's (see the top). */
static inline int
t_w_getpeername(SOCKET s, struct sockaddr *sa, int *len)
{
    if (rpstandin_owns(s)) {
        WSASetLastError(WSAENOTSOCK);
        return SOCKET_ERROR;
    }
    return getpeername(s, sa, len);
}

#define getpeername(s, sa, len) \
    t_w_getpeername((SOCKET) (s), (sa), (len))
#define rp_fd_open(e, s, d)  t_w_fd_open((e), (s), (d))
#define rp_engine_create(p, cb, out, why, len) \
    t_w_engine_create((p), (cb), (out), (why), (len))
#endif

/*
 * What the engine needs of Windows: an I/O completion port and
 * \Device\Afd (readiness); RIO is optional (the overlapped data path runs
 * without it).  Where both can be had, an engine that refuses to start is
 * a failure, not a reason to skip.
 */
typedef NTSTATUS (NTAPI *t_w_nt_create_file_fn)(PHANDLE, ACCESS_MASK,
    POBJECT_ATTRIBUTES, PIO_STATUS_BLOCK, PLARGE_INTEGER, ULONG, ULONG,
    ULONG, ULONG, PVOID, ULONG);

static inline int
t_w_engine_capable(void)
{
    t_w_nt_create_file_fn  create;
    UNICODE_STRING         name;
    OBJECT_ATTRIBUTES      attr;
    IO_STATUS_BLOCK        iosb;
    HANDLE                 port, afd = NULL;
    NTSTATUS               st;

    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (port == NULL) {
        return 0;
    }
    CloseHandle(port);
    create = (t_w_nt_create_file_fn) (void (*)(void))
             GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "NtCreateFile");
    if (create == NULL) {
        return 0;
    }
    RtlInitUnicodeString(&name, L"\\Device\\Afd\\RingplugTest");
    InitializeObjectAttributes(&attr, &name, 0, NULL, NULL);
    st = create(&afd, SYNCHRONIZE, &attr, &iosb, NULL, 0,
                FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, NULL, 0);
    if (st != 0) {
        return 0;
    }
    CloseHandle(afd);
    return 1;
}

/*
 * What the platform does where Windows and Wine differ, asked of Winsock
 * itself, so a case that depends on it runs where it holds and says why it
 * is skipped where it does not (Wine 8.0 in both, seen here).
 */

/* A reset that arrives while no receive is pending is reported to the
   next receive (Windows: WSAECONNRESET).  Wine's server reads the socket's
   error itself (SO_ERROR, which clears it): the receive then sees EOF. */
static inline int
t_w_reset_reported_late(void)
{
    struct linger  lg = { 1, 0 };
    char           buf[64];
    int            sv[2], r, err = 0;

    if (t_w_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        return 1;
    }
    send((SOCKET) sv[1], "0123456789", 10, 0);
    setsockopt((SOCKET) sv[1], SOL_SOCKET, SO_LINGER, (const char *) &lg,
               sizeof(lg));
    t_w_close(sv[1]);
    Sleep(50);
    do {
        r = recv((SOCKET) sv[0], buf, sizeof(buf), 0);
        err = r < 0 ? WSAGetLastError() : 0;
    } while (r > 0);
    t_w_close(sv[0]);
    return err == WSAECONNRESET;
}

/* A FIN behind unread bytes is readiness (AFD_POLL_DISCONNECT, WSAPoll's
   POLLHUP) before the bytes are read.  Wine reports the disconnect only
   once nothing is left to read (its server peeks for EOF). */
static inline int
t_w_fin_seen_behind_data(void)
{
    WSAPOLLFD  p;
    int        sv[2], r;

    if (t_w_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        return 1;
    }
    send((SOCKET) sv[1], "x", 1, 0);
    shutdown((SOCKET) sv[1], SD_SEND);
    Sleep(50);
    p.fd = (SOCKET) sv[0];
    p.events = POLLRDNORM;
    p.revents = 0;
    r = WSAPoll(&p, 1, 200);
    t_w_close(sv[0]);
    t_w_close(sv[1]);
    return r == 1 && (p.revents & POLLHUP);
}

/* The POSIX names, from here on. */
#define socket(af, type, proto)  t_w_socket((af), (type), (proto))
#define accept4(l, sa, len, fl)  t_w_accept4((l), (sa), (len), (fl))
#define close(fd)                t_w_close(fd)
#define send(s, b, n, fl)        t_w_send((s), (b), (n), (fl))
#define recv(s, b, n, fl)        t_w_recv((s), (b), (n), (fl))
#define write(s, b, n)           t_w_send((s), (b), (n), 0)
#define read(s, b, n)            t_w_recv((s), (b), (n), 0)
#define setsockopt(s, l, o, v, n) \
    setsockopt((SOCKET) (s), (l), (o), (const char *) (v), (n))
#define poll(p, n, ms)           t_w_poll((p), (n), (ms))
#define pollfd                   t_w_pollfd
#define socketpair(af, t, p, sv) t_w_socketpair((af), (t), (p), (sv))
#define strerror(err)            t_w_strerror(err)

#endif /* RP_TEST_HARNESS_WIN_H */
