/*
 * ringplug core: the Windows backend, Registered I/O on one completion port
 * (Windows 8 / Server 2012 and later; built with mingw-w64).
 *
 * Windows specifics of the contract in ringplug.h:
 *  - One I/O completion port per engine.  Everything completes there: the
 *    RIO completion queue's notification (RIONotify, re-armed before every
 *    wait), overlapped WSARecv/WSASend, and readiness polls.  One wait is
 *    one GetQueuedCompletionStatusEx with the host's timeout; a RIO
 *    notification is drained with RIODequeueCompletion in batches.
 *  - Data path: RIO for sockets the host made with WSA_FLAG_REGISTERED_IO
 *    and marked so (rp_fd_set_flags(RP_FD_REGISTERED_IO)): one request
 *    queue per socket (2 receives, 1 send deep) on the engine's one RIO
 *    completion queue, grown with RIOResizeCompletionQueue as queues are
 *    added.  Receives go into slices of the one registered buffer pool
 *    (the provided buffers' counterpart: none free, the receive ends with
 *    ENOBUFS and resumes when buffers come back, as on io_uring); sends are
 *    copied into a registered staging slice of 64 KiB (RIO sends only from
 *    registered memory; a longer send continues from the next slice).
 *    Requests are made with RIO_MSG_DEFER and committed per request queue
 *    once per pass (RIO_MSG_COMMIT_ONLY), before the wait.
 *  - The overlapped data path, for every other socket and for the whole
 *    engine when RIO is unavailable (the function table cannot be had:
 *    Wine, old Windows): one WSARecv into a pool buffer at a time, re-posted
 *    as it completes (a multishot receive), WSASend straight from the
 *    host's memory.  rp_engine_describe() says which path runs and why.
 *  - RIO cannot cancel a request: a receive the engine stops (pause, stop)
 *    stays posted until data arrives (queued in order, as on io_uring) or
 *    the socket closes; the op ends when its last request is back.
 *  - Readiness (rp_poll): the AFD poll technique of wepoll, libuv and mio:
 *    IOCTL_AFD_POLL on a \Device\Afd handle associated with the port,
 *    naming the socket's base handle.  Level-triggered; a multishot poll is
 *    re-issued at the start of the next pass.  A descriptor that is not a
 *    socket gets -EOPNOTSUPP.
 *  - Overlapped sends go on a duplicate of the fd's socket of the engine's
 *    own (WSADuplicateSocketW, made at the first send), so the host's
 *    closesocket() after a flushing close does not end the send in flight;
 *    the flush goes on on it.  An fd on RIO keeps a flush whole only with
 *    rp_fd_close(RP_CLOSE_SOCKET): its request queue is the socket's, so
 *    the engine keeps the socket open and the flush goes on on RIO until
 *    the flush's end closes it.  A host that closes the socket itself ends
 *    the RIO send in flight: fd.c takes that as the send's error and drops
 *    the rest, so the stream is cut.
 *    Duplicates share the socket's file object, so its port association.
 *
 * A test build (-DRP_RIO_STANDIN) takes the RIO function table from the
 * tests' rule-checking RIO stand-in (tests/windows/rio-standin.c) instead of
 * WSAIoctl: neither Wine nor the build machine has RIO.
 */

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <winternl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rio.h"
#include "engine.h"

#ifdef RP_RIO_STANDIN
#include "rio-standin.h"
#define rp_wsaioctl  rpstandin_WSAIoctl
#else
#define rp_wsaioctl  WSAIoctl
#endif

/* AFD, as wepoll declares it (msafd.h). */
#define IOCTL_AFD_POLL             0x00012024
#define AFD_POLL_RECEIVE           0x0001
#define AFD_POLL_RECEIVE_EXPEDITED 0x0002
#define AFD_POLL_SEND              0x0004
#define AFD_POLL_DISCONNECT        0x0008
#define AFD_POLL_ABORT             0x0010
#define AFD_POLL_LOCAL_CLOSE       0x0020
#define AFD_POLL_ACCEPT            0x0080
#define AFD_POLL_CONNECT_FAIL      0x0100

#ifndef STATUS_PENDING
#define STATUS_PENDING             ((NTSTATUS) 0x00000103L)
#endif
#ifndef STATUS_CANCELLED
#define STATUS_CANCELLED           ((NTSTATUS) 0xC0000120L)
#endif

typedef struct {
    HANDLE    Handle;
    ULONG     Events;
    NTSTATUS  Status;
} rp_afd_handle_t;

typedef struct {
    LARGE_INTEGER    Timeout;
    ULONG            NumberOfHandles;
    ULONG            Exclusive;
    rp_afd_handle_t  Handles[1];
} rp_afd_poll_t;

typedef NTSTATUS (NTAPI *rp_nt_create_file_fn)(PHANDLE, ACCESS_MASK,
    POBJECT_ATTRIBUTES, PIO_STATUS_BLOCK, PLARGE_INTEGER, ULONG, ULONG,
    ULONG, ULONG, PVOID, ULONG);
typedef NTSTATUS (NTAPI *rp_nt_ioctl_fn)(HANDLE, HANDLE, PIO_APC_ROUTINE,
    PVOID, PIO_STATUS_BLOCK, ULONG, PVOID, ULONG, PVOID, ULONG);
typedef NTSTATUS (NTAPI *rp_nt_cancel_fn)(HANDLE, PIO_STATUS_BLOCK,
    PIO_STATUS_BLOCK);

#define RP_RIO_RECVS      2       /* receives per request queue */
#define RP_RIO_SENDS      1       /* one send in flight per fd */
#define RP_WAIT_BATCH     128     /* completion packets per wait */
#define RP_RIO_BATCH      128     /* RIO results per dequeue */
#define RP_SLICE_MIN      65536   /* bytes per send staging slice */

/* completion keys */
enum {
    RP_KEY_OP = 1,               /* an op's overlapped WSARecv/WSASend */
    RP_KEY_AFD,                  /* an op's AFD poll */
    RP_KEY_RIO,                  /* the RIO completion queue's notification */
};

/* Which data path a socket runs on. */
enum {
    RP_PATH_UNKNOWN = 0,
    RP_PATH_RIO,
    RP_PATH_OVERLAPPED,
};

/* An op with what Windows keeps for it until it completes. */
typedef struct rp_win_op {
    rp_op_t          op;
    OVERLAPPED       ov;          /* overlapped receive or send */
    IO_STATUS_BLOCK  iosb;        /* AFD poll */
    rp_afd_poll_t    poll;
    WSABUF           wsabuf[RP_SEND_IOV];
    rp_socket_t      sock;        /* the socket it runs on */
    unsigned         events;      /* poll: the host's RP_* mask */
    uint32_t         bid;         /* overlapped receive: its buffer */
    int32_t          slice;       /* RIO send: its staging slice, or -1 */
    uint16_t         posted;      /* receives outstanding for this op */
    uint8_t          path;        /* RP_PATH_* of a receive or send */
    uint8_t          issued;      /* in the kernel now (poll, send) */
    uint8_t          cancelled;   /* no re-post; ends when posted is 0 */
    uint8_t          ended;       /* EOF or error reported */
    uint8_t          final;       /* its last completion is pushed */
    struct rp_win_op *repoll_next;
} rp_win_op_t;

/* An fd with its request queue. */
typedef struct rp_win_fd {
    rp_fd_t           f;
    uint8_t           path;       /* RP_PATH_* */
    uint8_t           on_iocp;    /* associated with the port */
    uint8_t           on_commit;  /* deferred RIO requests to commit */
    uint8_t           defer_recv;
    uint8_t           defer_send;
    uint8_t           own_failed; /* no send handle of its own could be had */
    SOCKET            base;       /* AFD's base handle, INVALID_SOCKET: none
                                     looked up yet */
    RIO_RQ            rq;
    unsigned          recvs;      /* receives outstanding on rq */
    struct rp_win_fd *commit_next;
} rp_win_fd_t;

typedef struct rp_win {
    rp_engine_t                   e;
    HANDLE                        iocp;
    HANDLE                        afd;
    rp_nt_ioctl_fn                nt_ioctl;
    rp_nt_cancel_fn               nt_cancel;

    int                           rio;        /* RIO function table had */
    RIO_EXTENSION_FUNCTION_TABLE  fn;
    RIO_CQ                        cq;
    unsigned                      cq_size;
    unsigned                      cq_used;    /* depths of the queues on it */
    OVERLAPPED                    cq_ov;
    int                           cq_armed;   /* a RIONotify is pending */
    RIO_BUFFERID                  pool_id;
    RIO_BUFFERID                  stage_id;
    unsigned char                *stage;      /* send staging slices */
    unsigned                      nslices;
    unsigned                      slice_size;
    int32_t                      *slice_free; /* stack of free slices */
    unsigned                      nslice_free;
    rp_win_op_t                 **bid_op;     /* RIO receive: bid -> op */

    uint32_t                     *buf_free;   /* stack of free buffers */
    unsigned                      nbuf_free;
    size_t                        pool_bytes;

    rp_done_t                    *ready;      /* decoded, not yet reaped */
    unsigned                      ready_head;
    unsigned                      ready_n;
    unsigned                      ready_cap;

    rp_win_op_t                  *repoll;     /* multishot polls to issue */
    rp_win_fd_t                  *commit;     /* request queues to commit */
    uint64_t                      sqes_told;  /* st.sqes at the last submit */
    char                          path_why[96];
} rp_win_t;

static inline rp_win_t *
rp_win(rp_engine_t *e)
{
    return (rp_win_t *) e;
}

static inline rp_win_op_t *
rp_wop(rp_op_t *op)
{
    return (rp_win_op_t *) op;
}

static inline rp_win_fd_t *
rp_wfd(rp_fd_t *f)
{
    return (rp_win_fd_t *) f;
}

/* Every call into the kernel's I/O interface is counted here, and every
   request made (RIO's deferred ones reach the kernel at the commit). */
static inline void
rp_win_entered(rp_win_t *w)
{
    w->e.st.enters++;
}

static inline void
rp_win_request(rp_win_t *w)
{
    w->e.st.sqes++;
}

static void __attribute__((format(printf, 3, 4)))
rp_why(char *why, size_t len, const char *fmt, ...)
{
    va_list  ap;

    if (why != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
}

/* A Winsock or Win32 error as -errno. */
static int
rp_win_errno(DWORD err)
{
    switch (err) {
    case 0:
        return 0;
    case WSA_OPERATION_ABORTED:       /* ERROR_OPERATION_ABORTED too */
        return -ECANCELED;
    case WSAECONNRESET:
    case WSAENETRESET:
    case ERROR_NETNAME_DELETED:
        return -ECONNRESET;
    case WSAECONNABORTED:
    case ERROR_CONNECTION_ABORTED:
        return -ECONNABORTED;
    case WSAESHUTDOWN:
        return -EPIPE;
    case WSAENOTCONN:
        return -ENOTCONN;
    case WSAENOTSOCK:
    case WSAEBADF:
    case ERROR_INVALID_HANDLE:
        return -EBADF;
    case WSAETIMEDOUT:
        return -ETIMEDOUT;
    case WSAEWOULDBLOCK:
        return -EAGAIN;
    case WSAEINVAL:
        return -EINVAL;
    case WSAENOBUFS:
    case ERROR_NOT_ENOUGH_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* ---- decoded completions waiting for rp_be_reap() ----------------------- */

static int
rp_ready_reserve(rp_win_t *w, unsigned n)
{
    rp_done_t  *r;
    unsigned    cap, i;

    if (w->ready_cap - w->ready_n >= n) {
        return 0;
    }
    cap = w->ready_cap ? w->ready_cap : 256;
    while (cap - w->ready_n < n) {
        cap *= 2;
    }
    r = rp_fault_alloc() ? NULL : malloc(cap * sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    for (i = 0; i < w->ready_n; i++) {
        r[i] = w->ready[(w->ready_head + i) % w->ready_cap];
    }
    free(w->ready);
    w->ready = r;
    w->ready_head = 0;
    w->ready_cap = cap;
    return 0;
}

/* Room was reserved for it (or is had now; failing that it is lost, which
   rp_ready_reserve() before every fetch prevents). */
static void
rp_ready_push(rp_win_t *w, rp_op_t *op, int res, uint32_t flags,
    uint32_t bid)
{
    rp_done_t  *d;

    if (w->ready_n == w->ready_cap && rp_ready_reserve(w, 1) < 0) {
        return;
    }
    if (op != NULL && !(flags & RP_DONE_MORE)) {
        rp_wop(op)->final = 1;
    }
    d = &w->ready[(w->ready_head + w->ready_n) % w->ready_cap];
    d->op = op;
    d->res = res;
    d->flags = flags;
    d->bid = bid;
    w->ready_n++;
}

/* ---- the buffer pool and the send staging slices ------------------------ */

static int
rp_buf_take(rp_win_t *w, uint32_t *bid)
{
    if (w->nbuf_free == 0) {
        return -ENOBUFS;
    }
    *bid = w->buf_free[--w->nbuf_free];
    return 0;
}

void
rp_be_buf_put(rp_engine_t *e, uint32_t bid)
{
    rp_win_t  *w = rp_win(e);

    w->buf_free[w->nbuf_free++] = bid;
}

static int
rp_pool_init(rp_win_t *w, unsigned count, unsigned size)
{
    rp_engine_t  *e = &w->e;
    unsigned      i;
    int           rc;

    if (size < 64) {
        size = 64;
    }
    w->pool_bytes = (size_t) count * size;
    e->bufs.mem = rp_fault_alloc() ? NULL
                  : VirtualAlloc(NULL, w->pool_bytes,
                                 MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (e->bufs.mem == NULL) {
        return -ENOMEM;
    }
    w->buf_free = rp_fault_alloc() ? NULL
                  : malloc(count * sizeof(*w->buf_free));
    if (w->buf_free == NULL) {
        return -ENOMEM;
    }
    rc = rp_bufs_meta_init(e, count, size);
    if (rc < 0) {
        return rc;
    }
    for (i = 0; i < count; i++) {
        w->buf_free[i] = count - 1 - i;
    }
    w->nbuf_free = count;
    e->has_bufs = true;
    return 0;
}

static int
rp_slice_take(rp_win_t *w)
{
    return w->nslice_free > 0 ? w->slice_free[--w->nslice_free] : -1;
}

static void
rp_slice_put(rp_win_t *w, int32_t slice)
{
    if (slice >= 0) {
        w->slice_free[w->nslice_free++] = slice;
    }
}

/* ---- setup ----------------------------------------------------------------- */

static int
rp_afd_open(rp_win_t *w, char *why, size_t why_len)
{
    HMODULE               nt;
    rp_nt_create_file_fn  create;
    UNICODE_STRING        name;
    OBJECT_ATTRIBUTES     attr;
    IO_STATUS_BLOCK       iosb;
    NTSTATUS              st;

    nt = GetModuleHandleW(L"ntdll.dll");
    create = (rp_nt_create_file_fn) (void (*)(void))
             GetProcAddress(nt, "NtCreateFile");
    w->nt_ioctl = (rp_nt_ioctl_fn) (void (*)(void))
                  GetProcAddress(nt, "NtDeviceIoControlFile");
    w->nt_cancel = (rp_nt_cancel_fn) (void (*)(void))
                   GetProcAddress(nt, "NtCancelIoFileEx");
    if (create == NULL || w->nt_ioctl == NULL || w->nt_cancel == NULL) {
        rp_why(why, why_len, "ntdll lacks NtCreateFile, "
               "NtDeviceIoControlFile or NtCancelIoFileEx");
        return -ENOSYS;
    }

    RtlInitUnicodeString(&name, L"\\Device\\Afd\\Ringplug");
    InitializeObjectAttributes(&attr, &name, 0, NULL, NULL);
    st = create(&w->afd, SYNCHRONIZE, &attr, &iosb, NULL, 0,
                FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, NULL, 0);
    if (st != 0) {
        w->afd = NULL;
        rp_why(why, why_len, "NtCreateFile(\\Device\\Afd) failed "
               "(status %#lx)", (unsigned long) st);
        return -ENODEV;
    }
    if (CreateIoCompletionPort(w->afd, w->iocp, RP_KEY_AFD, 0) == NULL
        || !SetFileCompletionNotificationModes(w->afd,
                                               FILE_SKIP_SET_EVENT_ON_HANDLE))
    {
        rp_why(why, why_len, "the AFD handle cannot join the completion "
               "port (error %lu)", GetLastError());
        return -EIO;
    }
    return 0;
}

/* The RIO function table, a completion queue on the port, the pool and the
   staging slices registered; any failure leaves the overlapped path. */
static int
rp_rio_init(rp_win_t *w, unsigned cq_entries)
{
    rp_engine_t                  *e = &w->e;
    GUID                          guid = WSAID_MULTIPLE_RIO;
    RIO_NOTIFICATION_COMPLETION   nc;
    SOCKET                        s;
    DWORD                         bytes = 0;
    unsigned                      i;
    int                           rc;

    s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET) {
        snprintf(w->path_why, sizeof(w->path_why), "no socket to ask for "
                 "RIO (error %d)", WSAGetLastError());
        return -1;
    }
    memset(&w->fn, 0, sizeof(w->fn));
    w->fn.cbSize = sizeof(w->fn);
    rc = rp_wsaioctl(s, SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER, &guid,
                     sizeof(guid), &w->fn, sizeof(w->fn), &bytes, NULL,
                     NULL);
    if (rc != 0) {
        snprintf(w->path_why, sizeof(w->path_why), "RIO is unavailable "
                 "(WSAIoctl(WSAID_MULTIPLE_RIO): error %d)",
                 WSAGetLastError());
        closesocket(s);
        return -1;
    }
    closesocket(s);

    memset(&nc, 0, sizeof(nc));
    nc.Type = RIO_IOCP_COMPLETION;
    nc.Iocp.IocpHandle = w->iocp;
    nc.Iocp.CompletionKey = (PVOID) (ULONG_PTR) RP_KEY_RIO;
    nc.Iocp.Overlapped = &w->cq_ov;
    w->cq_size = cq_entries;
    w->cq = w->fn.RIOCreateCompletionQueue(w->cq_size, &nc);
    if (w->cq == RIO_INVALID_CQ) {
        snprintf(w->path_why, sizeof(w->path_why), "RIOCreateCompletionQueue"
                 "(%u) failed (error %d)", w->cq_size, WSAGetLastError());
        return -1;
    }

    if (e->has_bufs) {
        w->pool_id = w->fn.RIORegisterBuffer((PCHAR) e->bufs.mem,
                                             (DWORD) w->pool_bytes);
        /* a send in flight per fd, each up to a slice: 64 KiB slices for
           a sixteenth of the buffer count (4 MiB for 1024 buffers) */
        w->slice_size = e->bufs.size > RP_SLICE_MIN ? e->bufs.size
                                                     : RP_SLICE_MIN;
        w->nslices = e->bufs.count / 16 > 16 ? e->bufs.count / 16 : 16;
        w->stage = rp_fault_alloc() ? NULL
                   : VirtualAlloc(NULL, (size_t) w->nslices * w->slice_size,
                                  MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
        w->slice_free = rp_fault_alloc() ? NULL
                        : malloc(w->nslices * sizeof(*w->slice_free));
        w->bid_op = rp_fault_alloc() ? NULL
                    : calloc(e->bufs.count, sizeof(*w->bid_op));
        if (w->pool_id == RIO_INVALID_BUFFERID || w->stage == NULL
            || w->slice_free == NULL || w->bid_op == NULL)
        {
            snprintf(w->path_why, sizeof(w->path_why), "RIO buffers could "
                     "not be registered (error %d)", WSAGetLastError());
            return -1;
        }
        w->stage_id = w->fn.RIORegisterBuffer((PCHAR) w->stage,
                          (DWORD) ((size_t) w->nslices * w->slice_size));
        if (w->stage_id == RIO_INVALID_BUFFERID) {
            snprintf(w->path_why, sizeof(w->path_why), "RIO staging buffer "
                     "could not be registered (error %d)",
                     WSAGetLastError());
            return -1;
        }
        for (i = 0; i < w->nslices; i++) {
            w->slice_free[i] = (int32_t) (w->nslices - 1 - i);
        }
        w->nslice_free = w->nslices;
    }
    w->rio = 1;
    return 0;
}

static void
rp_rio_free(rp_win_t *w)
{
    if (w->pool_id != NULL && w->pool_id != RIO_INVALID_BUFFERID) {
        w->fn.RIODeregisterBuffer(w->pool_id);
    }
    if (w->stage_id != NULL && w->stage_id != RIO_INVALID_BUFFERID) {
        w->fn.RIODeregisterBuffer(w->stage_id);
    }
    if (w->cq != RIO_INVALID_CQ) {
        w->fn.RIOCloseCompletionQueue(w->cq);
    }
    w->pool_id = NULL;
    w->stage_id = NULL;
    w->cq = RIO_INVALID_CQ;
    if (w->stage != NULL) {
        VirtualFree(w->stage, 0, MEM_RELEASE);
        w->stage = NULL;
    }
    free(w->slice_free);
    free(w->bid_op);
    w->slice_free = NULL;
    w->bid_op = NULL;
    w->rio = 0;
}

static void
rp_win_free(rp_win_t *w)
{
    rp_rio_free(w);
    if (w->afd != NULL) {
        CloseHandle(w->afd);
    }
    if (w->iocp != NULL) {
        CloseHandle(w->iocp);
    }
    if (w->e.bufs.mem != NULL) {
        VirtualFree(w->e.bufs.mem, 0, MEM_RELEASE);
    }
    rp_bufs_meta_free(&w->e);
    free(w->buf_free);
    free(w->ready);
    free(w);
    WSACleanup();
}

int
rp_be_create(const rp_engine_params_t *p, rp_engine_t **out, char *why,
    size_t why_len)
{
    rp_win_t  *w;
    WSADATA    wd;
    int        rc, n;

    if (WSAStartup(MAKEWORD(2, 2), &wd) != 0) {
        rp_why(why, why_len, "WSAStartup failed (error %d)",
               WSAGetLastError());
        return -ENOSYS;
    }
    w = rp_fault_alloc() ? NULL : calloc(1, sizeof(*w));
    if (w == NULL) {
        WSACleanup();
        rp_why(why, why_len, "rio engine: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    w->cq = RIO_INVALID_CQ;

    w->iocp = rp_fault_alloc() ? NULL
              : CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (w->iocp == NULL) {
        rp_why(why, why_len, "CreateIoCompletionPort failed (error %lu)",
               GetLastError());
        rp_win_free(w);
        return -ENOMEM;
    }

    rc = rp_afd_open(w, why, why_len);
    if (rc < 0) {
        rp_win_free(w);
        return rc;
    }

    if (p->buf_count != RP_NO_BUFFERS) {
        rc = rp_pool_init(w, p->buf_count, p->buf_size);
        if (rc < 0) {
            rp_why(why, why_len, "buffer pool of %u x %u failed (%s)",
                   p->buf_count, p->buf_size, strerror(-rc));
            rp_win_free(w);
            return rc;
        }
    }

    if (rp_rio_init(w, p->cq_entries) < 0) {
        rp_rio_free(w);
    }

    if (rp_ready_reserve(w, 2 * RP_WAIT_BATCH) < 0) {
        rp_why(why, why_len, "rio engine: %s", strerror(ENOMEM));
        rp_win_free(w);
        return -ENOMEM;
    }

    w->e.reap_budget = p->cq_entries * 2;
    w->e.op_size = sizeof(rp_win_op_t);

    n = snprintf(w->e.desc, sizeof(w->e.desc), "rio: %s data path",
                 w->rio ? "RIO" : "overlapped");
    if (n > 0 && (size_t) n < sizeof(w->e.desc)) {
        if (w->rio) {
            n += snprintf(w->e.desc + n, sizeof(w->e.desc) - n, ", cq %u",
                          w->cq_size);
        } else {
            n += snprintf(w->e.desc + n, sizeof(w->e.desc) - n, " (%s)",
                          w->path_why);
        }
    }
    if (n > 0 && (size_t) n < sizeof(w->e.desc)) {
        if (w->e.has_bufs) {
            snprintf(w->e.desc + n, sizeof(w->e.desc) - n,
                     ", %u x %u buffers, AFD polls", w->e.bufs.count,
                     w->e.bufs.size);
        } else {
            snprintf(w->e.desc + n, sizeof(w->e.desc) - n,
                     ", no buffers, AFD polls");
        }
    }

    *out = &w->e;
    return 0;
}

void
rp_be_destroy(rp_engine_t *e, bool forget)
{
    rp_win_t  *w = rp_win(e);

    (void) forget;              /* no fork on Windows */
    if (e->ops_live > 0) {
        /*
         * Requests still out (RIO cannot cancel; a socket the host left
         * open): their buffers stay registered and allocated, or the
         * kernel would write into freed memory.  The port goes.
         */
        CloseHandle(w->iocp);
        CloseHandle(w->afd);
        WSACleanup();
        return;
    }
    rp_win_free(w);
}

const char *
rp_be_name(void)
{
    return "rio";
}

rp_fd_t *
rp_be_fd_new(rp_engine_t *e)
{
    rp_win_fd_t  *wf;

    (void) e;
    wf = rp_fault_alloc() ? NULL : calloc(1, sizeof(*wf));
    if (wf == NULL) {
        return NULL;
    }
    wf->base = INVALID_SOCKET;
    wf->rq = RIO_INVALID_RQ;
    return &wf->f;
}

void
rp_be_fd_free(rp_engine_t *e, rp_fd_t *f)
{
    rp_win_t     *w = rp_win(e);
    rp_win_fd_t  *wf = rp_wfd(f), **pp;

    if (wf->on_commit) {
        for (pp = &w->commit; *pp != NULL; pp = &(*pp)->commit_next) {
            if (*pp == wf) {
                *pp = wf->commit_next;
                break;
            }
        }
    }
    if (wf->rq != RIO_INVALID_RQ) {
        /* the queue went with the socket; its depth leaves the CQ */
        w->cq_used -= RP_RIO_RECVS + RP_RIO_SENDS;
    }
    free(wf);
}

/* ---- which path a socket takes -------------------------------------------- */

static int
rp_iocp_join(rp_win_t *w, rp_win_fd_t *wf, SOCKET s)
{
    if (wf->on_iocp) {
        return 0;
    }
    if (CreateIoCompletionPort((HANDLE) s, w->iocp, RP_KEY_OP, 0) == NULL) {
        /* already on a port: ours (an fd opened again for the same
           socket) is the only one it can work with here */
        if (GetLastError() != ERROR_INVALID_PARAMETER) {
            return rp_win_errno(GetLastError());
        }
    } else {
        (void) SetFileCompletionNotificationModes((HANDLE) s,
                                                 FILE_SKIP_SET_EVENT_ON_HANDLE);
    }
    wf->on_iocp = 1;
    return 0;
}

/* A request queue for the socket, growing the completion queue first. */
static int
rp_rq_open(rp_win_t *w, rp_win_fd_t *wf)
{
    unsigned  need = RP_RIO_RECVS + RP_RIO_SENDS, size;

    if (w->cq_used + need > w->cq_size) {
        size = w->cq_size * 2;
        while (size < w->cq_used + need) {
            size *= 2;
        }
        if (size > RIO_MAX_CQ_SIZE
            || !w->fn.RIOResizeCompletionQueue(w->cq, size))
        {
            return -ENOSPC;
        }
        rp_win_entered(w);
        w->cq_size = size;
    }
    wf->rq = w->fn.RIOCreateRequestQueue((SOCKET) wf->f.fd, RP_RIO_RECVS, 1,
                                         RP_RIO_SENDS, 1, w->cq, w->cq, wf);
    rp_win_entered(w);
    if (wf->rq == RIO_INVALID_RQ) {
        return rp_win_errno(WSAGetLastError());
    }
    w->cq_used += need;
    return 0;
}

/* RIO for a registered-I/O socket when the engine has it, else overlapped. */
static uint8_t
rp_path(rp_win_t *w, rp_win_fd_t *wf)
{
    if (wf->path != RP_PATH_UNKNOWN) {
        return wf->path;
    }
    wf->path = RP_PATH_OVERLAPPED;
    if (w->rio && (wf->f.flags & RP_FD_REGISTERED_IO) && w->e.has_bufs
        && rp_rq_open(w, wf) == 0)
    {
        wf->path = RP_PATH_RIO;
    }
    return wf->path;
}

static void
rp_commit_later(rp_win_t *w, rp_win_fd_t *wf, bool recv)
{
    if (recv) {
        wf->defer_recv = 1;
    } else {
        wf->defer_send = 1;
    }
    if (!wf->on_commit) {
        wf->on_commit = 1;
        wf->commit_next = w->commit;
        w->commit = wf;
    }
}

/* Everything deferred this pass goes to the kernel: one call per queue
   and direction. */
static void
rp_commit(rp_win_t *w)
{
    rp_win_fd_t  *wf;

    while ((wf = w->commit) != NULL) {
        w->commit = wf->commit_next;
        wf->commit_next = NULL;
        wf->on_commit = 0;
        /* a closed fd's receives only wait for its socket's close to end
           them, and the host may have closed it first (rp_fd_close()
           allows that): RIO forbids the queue of a closed socket */
        if (wf->defer_recv && !wf->f.closed) {
            (void) w->fn.RIOReceive(wf->rq, NULL, 0, RIO_MSG_COMMIT_ONLY,
                                    NULL);
            rp_win_entered(w);
        }
        if (wf->defer_send) {
            (void) w->fn.RIOSend(wf->rq, NULL, 0, RIO_MSG_COMMIT_ONLY, NULL);
            rp_win_entered(w);
        }
        wf->defer_recv = 0;
        wf->defer_send = 0;
    }
}

/* ---- readiness: AFD polls ----------------------------------------------- */

static ULONG
rp_afd_events(unsigned events)
{
    ULONG  a = AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL | AFD_POLL_LOCAL_CLOSE;

    if (events & RP_IN) {
        a |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT;
    }
    if (events & RP_PRI) {
        a |= AFD_POLL_RECEIVE_EXPEDITED;
    }
    if (events & RP_OUT) {
        a |= AFD_POLL_SEND;
    }
    if (events & RP_RDHUP) {
        a |= AFD_POLL_DISCONNECT;
    }
    return a;
}

static unsigned
rp_afd_ready(ULONG a, unsigned wanted)
{
    unsigned  r = 0;

    if (a & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT)) {
        r |= RP_IN;
    }
    if (a & AFD_POLL_RECEIVE_EXPEDITED) {
        r |= RP_PRI;
    }
    if (a & AFD_POLL_SEND) {
        r |= RP_OUT;
    }
    if (a & AFD_POLL_DISCONNECT) {
        r |= RP_IN | RP_RDHUP;
    }
    if (a & AFD_POLL_ABORT) {
        r |= RP_HUP;
    }
    if (a & AFD_POLL_CONNECT_FAIL) {
        r |= RP_IN | RP_OUT | RP_ERR | RP_RDHUP;
    }
    return r & (wanted | RP_ERR | RP_HUP);
}

static int
rp_afd_issue(rp_win_t *w, rp_win_op_t *wo)
{
    rp_win_fd_t  *wf = rp_wfd(wo->op.fd);
    NTSTATUS      st;

    memset(&wo->iosb, 0, sizeof(wo->iosb));
    memset(&wo->poll, 0, sizeof(wo->poll));
    wo->poll.Timeout.QuadPart = INT64_MAX;
    wo->poll.NumberOfHandles = 1;
    wo->poll.Handles[0].Handle = (HANDLE) wf->base;
    wo->poll.Handles[0].Events = rp_afd_events(wo->events);
    wo->iosb.Status = STATUS_PENDING;

    st = w->nt_ioctl(w->afd, NULL, NULL, &wo->iosb, &wo->iosb,
                     IOCTL_AFD_POLL, &wo->poll, sizeof(wo->poll), &wo->poll,
                     sizeof(wo->poll));
    rp_win_request(w);
    rp_win_entered(w);
    if (st != STATUS_PENDING && st != 0) {
        return rp_win_errno(RtlNtStatusToDosError(st));
    }
    wo->issued = 1;
    return 0;
}

int
rp_be_poll(rp_engine_t *e, rp_op_t *op, rp_socket_t s, unsigned events,
    bool multishot)
{
    rp_win_t     *w = rp_win(e);
    rp_win_op_t  *wo = rp_wop(op);
    rp_win_fd_t  *wf = rp_wfd(op->fd);
    DWORD         bytes;
    SOCKET        base;
    int           rc, type, len = sizeof(type);

    (void) multishot;           /* op->multishot says it */
    if (wf->base == INVALID_SOCKET) {
        /* not a socket: Wine's SIO_BASE_HANDLE answers for any handle */
        if (getsockopt((SOCKET) s, SOL_SOCKET, SO_TYPE, (char *) &type,
                       &len) != 0
            || WSAIoctl((SOCKET) s, SIO_BASE_HANDLE, NULL, 0, &base,
                        sizeof(base), &bytes, NULL, NULL) != 0)
        {
            return -EOPNOTSUPP;
        }
        wf->base = base;
    }
    wo->sock = s;
    wo->events = events;
    wo->cancelled = 0;
    wo->final = 0;
    wo->issued = 0;
    rc = rp_afd_issue(w, wo);
    if (rc < 0) {
        /* reported as the poll's completion, as the kernel would */
        rp_ready_push(w, op, rc, 0, 0);
    }
    return 0;
}

/* Multishot polls that fired last pass are issued again. */
static void
rp_repoll(rp_win_t *w)
{
    rp_win_op_t  *wo;
    int           rc;

    while ((wo = w->repoll) != NULL) {
        w->repoll = wo->repoll_next;
        wo->repoll_next = NULL;
        rc = rp_afd_issue(w, wo);
        if (rc < 0) {
            rp_ready_push(w, &wo->op, rc, 0, 0);
        }
    }
}

static void
rp_afd_done(rp_win_t *w, rp_win_op_t *wo)
{
    NTSTATUS  st = wo->iosb.Status;
    unsigned  ready;

    wo->issued = 0;
    if (st == STATUS_CANCELLED || wo->cancelled) {
        rp_ready_push(w, &wo->op, -ECANCELED, 0, 0);
        return;
    }
    if (st != 0) {
        rp_ready_push(w, &wo->op, rp_win_errno(RtlNtStatusToDosError(st)),
                      0, 0);
        return;
    }
    if (wo->poll.NumberOfHandles == 0) {
        ready = 0;
    } else if (wo->poll.Handles[0].Events & AFD_POLL_LOCAL_CLOSE) {
        /* the host closed the socket under the poll */
        rp_ready_push(w, &wo->op, -EBADF, 0, 0);
        return;
    } else {
        ready = rp_afd_ready(wo->poll.Handles[0].Events, wo->events);
    }
    if (ready == 0) {
        /* nothing the host asked for: wait again */
        if (rp_afd_issue(w, wo) < 0) {
            rp_ready_push(w, &wo->op, -EIO, 0, 0);
        }
        return;
    }
    if (wo->op.multishot) {
        wo->repoll_next = w->repoll;
        w->repoll = wo;
        rp_ready_push(w, &wo->op, (int) ready, RP_DONE_MORE, 0);
    } else {
        rp_ready_push(w, &wo->op, (int) ready, 0, 0);
    }
}

/* ---- receive --------------------------------------------------------------- */

/* Post one receive for op; -ENOBUFS when no buffer is free. */
static int
rp_recv_post(rp_win_t *w, rp_win_op_t *wo)
{
    rp_win_fd_t  *wf = rp_wfd(wo->op.fd);
    rp_engine_t  *e = &w->e;
    RIO_BUF       rb;
    DWORD         flags = 0;
    uint32_t      bid;
    int           rc, err;

    if (rp_buf_take(w, &bid) < 0) {
        return -ENOBUFS;
    }

    if (wo->path == RP_PATH_RIO) {
        rb.BufferId = w->pool_id;
        rb.Offset = bid * e->bufs.size;
        rb.Length = e->bufs.size;
        w->bid_op[bid] = wo;
        if (!w->fn.RIOReceive(wf->rq, &rb, 1, RIO_MSG_DEFER,
                              (PVOID) (ULONG_PTR) ((bid << 1) | 1)))
        {
            err = WSAGetLastError();
            w->bid_op[bid] = NULL;
            rp_be_buf_put(e, bid);
            return rp_win_errno(err);
        }
        rp_win_request(w);
        rp_commit_later(w, wf, true);
        wf->recvs++;
        wo->posted++;
        return 0;
    }

    memset(&wo->ov, 0, sizeof(wo->ov));
    wo->wsabuf[0].buf = (char *) rp_buf_addr(e, bid);
    wo->wsabuf[0].len = e->bufs.size;
    wo->bid = bid;
    rc = WSARecv((SOCKET) wo->sock, wo->wsabuf, 1, NULL, &flags, &wo->ov,
                 NULL);
    rp_win_request(w);
    rp_win_entered(w);
    if (rc != 0 && (err = WSAGetLastError()) != WSA_IO_PENDING) {
        rp_be_buf_put(e, bid);
        return rp_win_errno(err);
    }
    wo->posted++;
    return 0;
}

/*
 * Keep op's receives posted: RIO fills the queue's depth, overlapped one.
 * 0 while something is posted, or while the request queue is full of a
 * stopped receive's requests (op posts when they come back); else why not.
 */
static int
rp_recv_fill(rp_win_t *w, rp_win_op_t *wo)
{
    rp_win_fd_t  *wf = rp_wfd(wo->op.fd);
    int           rc = 0;

    if (wo->path == RP_PATH_RIO) {
        while (wf->recvs < RP_RIO_RECVS && rc == 0) {
            rc = rp_recv_post(w, wo);
        }
        return (wo->posted > 0 || wf->recvs > 0) ? 0 : rc;
    }
    return wo->posted > 0 ? 0 : rp_recv_post(w, wo);
}

/* A stopped receive's request came back: the fd's current one may post. */
static void
rp_recv_resume_current(rp_win_t *w, rp_win_op_t *done)
{
    rp_op_t      *cur = done->op.fd->recv_op;
    rp_win_op_t  *wc;
    int           rc;

    if (cur == NULL || cur == &done->op || done->path != RP_PATH_RIO) {
        return;
    }
    wc = rp_wop(cur);
    if (wc->cancelled || wc->ended || wc->final || wc->path != RP_PATH_RIO) {
        return;
    }
    rc = rp_recv_fill(w, wc);
    if (rc < 0 && wc->posted == 0) {
        rp_ready_push(w, cur, rc, 0, 0);
    }
}

int
rp_be_recv(rp_engine_t *e, rp_op_t *op, rp_socket_t s)
{
    rp_win_t     *w = rp_win(e);
    rp_win_op_t  *wo = rp_wop(op);
    rp_win_fd_t  *wf = rp_wfd(op->fd);
    int           rc;

    wo->sock = s;
    wo->posted = 0;
    wo->cancelled = 0;
    wo->ended = 0;
    wo->final = 0;
    wo->path = rp_path(w, wf);
    if (wo->path == RP_PATH_OVERLAPPED) {
        rc = rp_iocp_join(w, wf, (SOCKET) s);
        if (rc < 0) {
            rp_ready_push(w, op, rc, 0, 0);
            return 0;
        }
    }
    rc = rp_recv_fill(w, wo);
    if (rc < 0) {
        /* no buffer (ENOBUFS, re-armed by the engine) or an error: the
           receive ends at once, as io_uring's would */
        rp_ready_push(w, op, rc, 0, 0);
    }
    return 0;
}

/*
 * One receive of op came back with res bytes (0: EOF, < 0: error) in
 * buffer bid.  Data is reported with RP_DONE_MORE while the op goes on;
 * its last completion comes when nothing of it is posted any more.
 */
static void
rp_recv_done(rp_win_t *w, rp_win_op_t *wo, int res, uint32_t bid)
{
    rp_engine_t  *e = &w->e;
    rp_win_fd_t  *wf = rp_wfd(wo->op.fd);
    int           rc = 0;

    wo->posted--;
    if (wo->path == RP_PATH_RIO) {
        wf->recvs--;
        w->bid_op[bid] = NULL;
        rp_recv_resume_current(w, wo);
    }

    if (res <= 0 || wo->ended) {
        rp_be_buf_put(e, bid);
        if (!wo->ended) {
            wo->ended = 1;
            if (res == -ECANCELED && !wo->cancelled) {
                res = -ECONNABORTED;
            }
            rp_ready_push(w, &wo->op, res, wo->posted ? RP_DONE_MORE : 0, 0);
        } else if (wo->posted == 0) {
            rp_ready_push(w, &wo->op, -ECANCELED, 0, 0);
        }
        return;
    }

    if (!wo->cancelled) {
        rc = rp_recv_fill(w, wo);
    }
    if (wo->posted > 0) {
        rp_ready_push(w, &wo->op, res, RP_DONE_MORE | RP_DONE_BUF, bid);
        return;
    }
    if (wo->cancelled || rc == 0) {
        rp_ready_push(w, &wo->op, res, RP_DONE_BUF, bid);
        return;
    }
    /* nothing could be posted again: data, then the end (ENOBUFS) */
    rp_ready_push(w, &wo->op, res, RP_DONE_MORE | RP_DONE_BUF, bid);
    rp_ready_push(w, &wo->op, rc, 0, 0);
}

/* ---- send -------------------------------------------------------------------- */

int
rp_be_send(rp_engine_t *e, rp_op_t *op, rp_socket_t s,
    const rp_iovec_t *iov, int n)
{
    rp_win_t     *w = rp_win(e);
    rp_win_op_t  *wo = rp_wop(op);
    rp_win_fd_t  *wf = rp_wfd(op->fd);
    RIO_BUF       rb;
    size_t        room, take, len = 0;
    char         *dst;
    rp_socket_t   own;
    int           i, rc, err;

    wo->cancelled = 0;
    wo->final = 0;
    wo->slice = -1;
    wo->path = (s == wf->f.fd) ? rp_path(w, wf) : RP_PATH_OVERLAPPED;

    if (wo->path == RP_PATH_RIO) {
        wo->sock = s;
        wo->slice = rp_slice_take(w);
        if (wo->slice < 0) {
            return -EBUSY;          /* every slice in flight: next pass */
        }
        dst = (char *) w->stage + (size_t) wo->slice * w->slice_size;
        room = w->slice_size;
        for (i = 0; i < n && room > 0; i++) {
            take = iov[i].iov_len < room ? iov[i].iov_len : room;
            memcpy(dst + len, iov[i].iov_base, take);
            len += take;
            room -= take;
        }
        rb.BufferId = w->stage_id;
        rb.Offset = (ULONG) ((size_t) wo->slice * w->slice_size);
        rb.Length = (ULONG) len;
        if (!w->fn.RIOSend(wf->rq, &rb, 1, RIO_MSG_DEFER, op)) {
            err = WSAGetLastError();
            rp_slice_put(w, wo->slice);
            wo->slice = -1;
            rp_ready_push(w, op, rp_win_errno(err), 0, 0);
            return 0;
        }
        rp_win_request(w);
        rp_commit_later(w, wf, false);
        wo->issued = 1;
        return 0;
    }

    if (s == wf->f.fd && !wf->own_failed) {
        /*
         * Overlapped sends go on a socket handle of the engine's own, made
         * at the fd's first send: the host may closesocket() its handle
         * right after rp_fd_close(RP_CLOSE_FLUSH), and that ends a send in
         * flight issued on it (Wine completes it with 0 bytes; Microsoft
         * documents that closesocket cancels pending overlapped I/O),
         * while one issued on another handle of the same socket goes on.
         * fd.c sends on f->sendfd from then on, reuses it for a flushing
         * close instead of a second duplicate, and closes it with the fd.
         * Cost: one WSADuplicateSocketW + WSASocketW and one handle per
         * connection that sends (85 us with its close under Wine 8.0 here,
         * see the commit), none for one that only receives.  Without it
         * (out of handles) the send goes on the host's handle, as before.
         */
        if (rp_os_dup(s, &own) == 0) {
            wf->f.sendfd = own;
            s = own;
        } else {
            wf->own_failed = 1;
        }
    }
    wo->sock = s;
    rc = rp_iocp_join(w, wf, (SOCKET) s);
    if (rc < 0) {
        rp_ready_push(w, op, rc, 0, 0);
        return 0;
    }
    /*
     * A slice at a time, as on RIO: a send in flight when the host makes a
     * flushing close goes on as the flush's first, and each completion
     * shows the peer's progress where SIO_TCP_INFO cannot (Wine), so a
     * slow reader is not taken for a stuck one.
     */
    room = RP_SLICE_MIN;
    for (i = 0; i < n && room > 0; i++) {
        take = iov[i].iov_len < room ? iov[i].iov_len : room;
        wo->wsabuf[i].buf = iov[i].iov_base;
        wo->wsabuf[i].len = (ULONG) take;
        room -= take;
    }
    memset(&wo->ov, 0, sizeof(wo->ov));
    rc = WSASend((SOCKET) s, wo->wsabuf, (DWORD) i, NULL, 0, &wo->ov, NULL);
    rp_win_request(w);
    rp_win_entered(w);
    if (rc != 0 && (err = WSAGetLastError()) != WSA_IO_PENDING) {
        rp_ready_push(w, op, rp_win_errno(err), 0, 0);
        return 0;
    }
    wo->issued = 1;
    return 0;
}

static void
rp_send_done(rp_win_t *w, rp_win_op_t *wo, int res)
{
    wo->issued = 0;
    rp_slice_put(w, wo->slice);
    wo->slice = -1;
    rp_ready_push(w, &wo->op, res, 0, 0);
}

/* ---- cancel ------------------------------------------------------------------ */

int
rp_be_cancel(rp_engine_t *e, rp_op_t *op)
{
    rp_win_t      *w = rp_win(e);
    rp_win_op_t   *wo = rp_wop(op), **pp;
    IO_STATUS_BLOCK  ciosb;

    if (wo->cancelled) {
        return 0;
    }
    wo->cancelled = 1;

    switch (op->kind) {
    case RP_OP_POLL:
    case RP_OP_FIN:
        if (wo->issued) {
            (void) w->nt_cancel(w->afd, &wo->iosb, &ciosb);
            rp_win_request(w);
            rp_win_entered(w);
            return 0;
        }
        /* fired and waiting to be issued again, or failed: it ends now */
        for (pp = &w->repoll; *pp != NULL; pp = &(*pp)->repoll_next) {
            if (*pp == wo) {
                *pp = wo->repoll_next;
                wo->repoll_next = NULL;
                rp_ready_push(w, op, -ECANCELED, 0, 0);
                break;
            }
        }
        return 0;

    case RP_OP_RECV:
        if (wo->final) {
            return 0;               /* its end is already pushed */
        }
        if (wo->posted == 0) {
            /* waiting for room in its request queue: it ends now */
            rp_ready_push(w, op, -ECANCELED, 0, 0);
            return 0;
        }
        if (wo->path == RP_PATH_OVERLAPPED) {
            (void) CancelIoEx((HANDLE) wo->sock, &wo->ov);
            rp_win_request(w);
            rp_win_entered(w);
        }
        /* RIO cannot cancel: the posted receives come back with data or
           when the socket closes */
        return 0;

    case RP_OP_SEND:
        if (wo->issued && wo->path == RP_PATH_OVERLAPPED) {
            (void) CancelIoEx((HANDLE) wo->sock, &wo->ov);
            rp_win_request(w);
            rp_win_entered(w);
        }
        return 0;
    }
    return 0;
}

int
rp_be_cancel_sock(rp_engine_t *e, rp_socket_t s)
{
    (void) CancelIoEx((HANDLE) s, NULL);
    rp_win_request(rp_win(e));
    rp_win_entered(rp_win(e));
    return 0;
}

int
rp_be_cancel_all(rp_engine_t *e)
{
    rp_fd_t  *f;

    for (f = e->fds; f != NULL; f = f->next) {
        if (f->poll_op != NULL) {
            (void) rp_be_cancel(e, f->poll_op);
        }
        if (f->fin_op != NULL) {
            (void) rp_be_cancel(e, f->fin_op);
        }
        if (f->recv_op != NULL) {
            (void) rp_be_cancel(e, f->recv_op);
        }
        if (f->send_op != NULL) {
            (void) rp_be_cancel(e, f->send_op);
        }
    }
    return 0;
}

/* ---- submit, wait, reap ------------------------------------------------------ */

int
rp_be_submit(rp_engine_t *e, bool run)
{
    rp_win_t  *w = rp_win(e);
    uint64_t   n;

    (void) run;                 /* nothing runs deferred on Windows */
    rp_repoll(w);
    if (w->rio) {
        rp_commit(w);
    }
    /* requests that reached the kernel since the last submit (overlapped
       ones went as they were made) */
    n = w->e.st.sqes - w->sqes_told;
    w->sqes_told = w->e.st.sqes;
    return (int) n;
}

/* Decode the RIO results queued in the completion queue. */
static void
rp_rio_drain(rp_win_t *w)
{
    RIORESULT     res[RP_RIO_BATCH];
    rp_win_op_t  *wo;
    ULONG         n, i;
    uint32_t      bid;
    int           r;

    for ( ;; ) {
        if (rp_ready_reserve(w, 2 * RP_RIO_BATCH) < 0) {
            return;             /* left in the CQ: the next notify fires */
        }
        n = w->fn.RIODequeueCompletion(w->cq, res, RP_RIO_BATCH);
        if (n == 0 || n == RIO_CORRUPT_CQ) {
            return;
        }
        for (i = 0; i < n; i++) {
            r = res[i].Status ? rp_win_errno((DWORD) res[i].Status)
                              : (int) res[i].BytesTransferred;
            if (res[i].RequestContext & 1) {
                bid = (uint32_t) (res[i].RequestContext >> 1);
                wo = w->bid_op[bid];
                if (wo != NULL) {
                    rp_recv_done(w, wo, r, bid);
                }
            } else {
                wo = (rp_win_op_t *) (ULONG_PTR) res[i].RequestContext;
                rp_send_done(w, wo, r);
            }
        }
        if (n < RP_RIO_BATCH) {
            return;
        }
    }
}

/*
 * An overlapped receive or send, read from its OVERLAPPED (the host may
 * have closed the socket since, so not through WSAGetOverlappedResult).
 */
static void
rp_ov_done(rp_win_t *w, rp_win_op_t *wo)
{
    NTSTATUS  st = (NTSTATUS) wo->ov.Internal;
    int       res;

    if (st == 0) {
        res = (int) wo->ov.InternalHigh;
    } else {
        res = rp_win_errno(RtlNtStatusToDosError(st));
    }
    if (wo->op.kind == RP_OP_RECV) {
        rp_recv_done(w, wo, res, wo->bid);
    } else {
        rp_send_done(w, wo, res);
    }
}

int
rp_be_wait(rp_engine_t *e, long long timeout_us)
{
    rp_win_t          *w = rp_win(e);
    OVERLAPPED_ENTRY   ent[RP_WAIT_BATCH];
    ULONG              n = 0, i;
    DWORD              ms;
    rp_win_op_t       *wo;

    (void) rp_be_submit(e, false);

    if (w->rio && !w->cq_armed) {
        if (w->fn.RIONotify(w->cq) == 0) {
            w->cq_armed = 1;
        }
        rp_win_entered(w);
    }

    if (w->ready_n > 0 || timeout_us == 0) {
        ms = 0;
    } else if (timeout_us < 0) {
        ms = INFINITE;
    } else {
        ms = (DWORD) ((timeout_us + 999) / 1000);
    }

    if (rp_ready_reserve(w, 2 * RP_WAIT_BATCH) < 0) {
        return w->ready_n > 0 ? 0 : -ENOMEM;
    }

    rp_win_entered(w);
    if (!GetQueuedCompletionStatusEx(w->iocp, ent, RP_WAIT_BATCH, &n, ms,
                                     FALSE))
    {
        if (GetLastError() == WAIT_TIMEOUT) {
            return 0;
        }
        return rp_win_errno(GetLastError());
    }

    for (i = 0; i < n; i++) {
        switch (ent[i].lpCompletionKey) {
        case RP_KEY_RIO:
            w->cq_armed = 0;
            rp_rio_drain(w);
            break;
        case RP_KEY_AFD:
            wo = (rp_win_op_t *) ((char *) ent[i].lpOverlapped
                                  - offsetof(rp_win_op_t, iosb));
            rp_afd_done(w, wo);
            break;
        case RP_KEY_OP:
            wo = (rp_win_op_t *) ((char *) ent[i].lpOverlapped
                                  - offsetof(rp_win_op_t, ov));
            rp_ov_done(w, wo);
            break;
        }
    }
    return 0;
}

unsigned
rp_be_reap(rp_engine_t *e, rp_done_t *out, unsigned max)
{
    rp_win_t  *w = rp_win(e);
    unsigned   n = 0;

    while (n < max && w->ready_n > 0) {
        out[n++] = w->ready[w->ready_head];
        w->ready_head = (w->ready_head + 1) % w->ready_cap;
        w->ready_n--;
    }
    return n;
}
