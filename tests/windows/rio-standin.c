/*
 * A STAND-IN for Winsock's Registered I/O, for tests only: see
 * rio-standin.h for what it does, the rules it enforces and what it
 * cannot do.
 *
 * State is kept under one lock, taken by the caller's threads and by the
 * stand-in's I/O thread ("the kernel").  Requests are issued on the kernel
 * thread by user APCs queued in commit order; their WSARecv/WSASend
 * completion routines run there too and move the request, which carries its
 * own RIORESULT, onto its completion queue's list.  A request stays charged
 * to its request queue, and its buffer slice stays in use, until
 * RIODequeueCompletion hands its result out.
 *
 * A request queue's requests are bound to its socket, as RIO's are, not to
 * the host's handle value: RIOCreateRequestQueue takes a duplicate of the
 * socket of the stand-in's own (WSADuplicateSocketW) and every request is
 * issued on it.  Under Wine 8.0 an overlapped request already woken by data
 * when its handle is closed still does its recv() on whatever that handle
 * value names by then (seen: a new connection's first 4 KiB taken by a
 * closed socket's receive); so the duplicate stays open until the last
 * request issued on it has come back (its completion routine ran), and
 * rpstandin_closesocket() cancels them (CancelIoEx) and waits for that, so
 * that the socket is closed when it returns, as with closesocket().
 *
 * Handles given out (RIO_CQ, RIO_RQ) point at structs that are never freed,
 * so a stale handle is recognised rather than followed; buffer ids are
 * indices into a table whose slots are never reused.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rio-standin.h"

enum rule {
    R_BUFFER_ID,
    R_BUFFER_RANGE,
    R_BUFFER_OVERLAP,
    R_RECV_DEPTH,
    R_SEND_DEPTH,
    R_CQ_CAPACITY,
    R_CQ_SIZE,
    R_NOTIFY_PENDING,
    R_NOTIFY_SETUP,
    R_RQ_THREADS,
    R_CQ_THREADS,
    R_SOCKET_FLAG,
    R_DEREGISTER_IN_USE,
    R_CQ_CLOSE_IN_USE,
    R_RQ_HANDLE,
    R_CQ_HANDLE,
    R_ARGS,
    R_COUNT
};

static const char *const rule_names[R_COUNT] = {
    "buffer-id", "buffer-range", "buffer-overlap", "recv-depth",
    "send-depth", "cq-capacity", "cq-size", "notify-pending",
    "notify-setup", "rq-threads", "cq-threads", "socket-flag",
    "deregister-in-use", "cq-close-in-use", "rq-handle", "cq-handle",
    "args",
};

/*
 * A mutant build (-DRPSTANDIN_MUTE=R_...) leaves one rule unchecked, so
 * the suite can show that the test for that rule fails without it.  The
 * call then goes on as real RIO would: it returns RIO's error.
 */
#ifndef RPSTANDIN_MUTE
#define RPSTANDIN_MUTE  (-1)
#endif

enum { DIR_RECV, DIR_SEND };

struct scq;
struct srq;

struct sreq {
    WSAOVERLAPPED  ov;           /* first: the completion routine gets it */
    struct srq    *rq;
    int            dir;
    DWORD          flags;
    ULONG          buf;          /* buffer table index */
    ULONG          off, len;
    WSABUF         wb;
    RIORESULT      res;
    int            notify;       /* completion may fire RIONotify */
    struct sreq   *buf_next;     /* the buffer's unfinished requests */
    struct sreq   *next;         /* deferred list, then the CQ's list */
};

struct sbuf {
    char          *base;
    DWORD          len;
    int            live;
    struct sreq   *users;
};

struct scq {
    struct scq    *next;         /* registry */
    int            live, corrupt;
    DWORD          size;
    DWORD          charged;      /* entries the bound request queues need */
    DWORD          count;        /* results waiting to be dequeued */
    DWORD          notifiable;   /* ... of which may fire RIONotify */
    struct sreq   *head, **tail;
    int            has_nc, armed;
    RIO_NOTIFICATION_COMPLETION nc;
    volatile LONG  busy;
};

struct srq {
    struct srq    *next;         /* registry */
    int            live;         /* 0 once its socket is closed */
    int            dead;         /* closed and nothing left: uncharged */
    SOCKET         s;            /* the host's handle */
    SOCKET         own;          /* the stand-in's duplicate: requests go
                                    on it; INVALID_SOCKET once closed */
    ULONG          issued;       /* requests issued on own whose completion
                                    routine has not run */
    PVOID          ctx;
    ULONG          max[2];       /* MaxOutstandingReceive, ...Send */
    ULONG          out[2];       /* charged requests */
    struct scq    *cq[2];        /* ReceiveCQ, SendCQ */
    struct sreq   *deferred[2], **deferred_tail[2];
    volatile LONG  busy;
};

struct ssock {
    SOCKET         s;
    int            rio;          /* made with WSA_FLAG_REGISTERED_IO */
    struct srq    *rq;
};

static INIT_ONCE         once = INIT_ONCE_STATIC_INIT;
static CRITICAL_SECTION  lock;
static CONDITION_VARIABLE own_closed = CONDITION_VARIABLE_INIT;
static CONDITION_VARIABLE issued_cv = CONDITION_VARIABLE_INIT;
static ULONGLONG         queued_seq;   /* requests handed to the I/O thread */
static ULONGLONG         issued_seq;   /* ... that it has issued (or ended) */
static HANDLE            kernel;
static DWORD             hold;
static struct rpstandin_stats stats;

static struct sbuf      *bufs;
static ULONG             nbufs, bufs_cap;
static struct scq       *cqs;
static struct srq       *rqs;
static struct ssock     *socks;
static size_t            nsocks, socks_cap;

/* Ends the process: a rule of RIO's is broken (unless muted). */
static void
rule(enum rule r, const char *fmt, ...)
{
    va_list ap;

    if ((int) r == RPSTANDIN_MUTE)
        return;
    fprintf(stderr, "rpstandin: RIO rule broken [%s]: ", rule_names[r]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    TerminateProcess(GetCurrentProcess(), RPSTANDIN_EXIT_BREACH);
}

/* Ends the process: the caller needs something the stand-in lacks. */
static void
unsupported(const char *what)
{
    fprintf(stderr, "rpstandin: not supported by the stand-in: %s\n", what);
    fflush(stderr);
    TerminateProcess(GetCurrentProcess(), RPSTANDIN_EXIT_UNSUPPORTED);
}

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL)
        unsupported("out of memory");
    return p;
}

static DWORD WINAPI
kernel_main(LPVOID arg)
{
    (void) arg;
    for (;;)
        SleepEx(INFINITE, TRUE);
    return 0;
}

static BOOL CALLBACK
init_once(PINIT_ONCE o, PVOID p, PVOID *ctx)
{
    (void) o; (void) p; (void) ctx;
    InitializeCriticalSection(&lock);
    kernel = CreateThread(NULL, 0, kernel_main, NULL, 0, NULL);
    if (kernel == NULL)
        unsupported("CreateThread for the I/O thread failed");
    return TRUE;
}

static void
standin_init(void)
{
    InitOnceExecuteOnce(&once, init_once, NULL, NULL);
}

/* Marks a queue busy; a second thread arriving meanwhile breaks a rule. */
static void
busy_enter(volatile LONG *busy, enum rule r, const char *fn, void *q)
{
    if (InterlockedExchange(busy, 1) != 0)
        rule(r, "%s(%p): the queue is in use by another thread "
             "(RIO queues take one thread at a time)", fn, q);
}

static void
busy_leave(volatile LONG *busy)
{
    if (hold)
        Sleep(hold);
    InterlockedExchange(busy, 0);
}

static struct scq *
cq_find(RIO_CQ h)
{
    struct scq *cq;

    for (cq = cqs; cq != NULL; cq = cq->next)
        if ((RIO_CQ) cq == h)
            return cq;
    return NULL;
}

/* A live completion queue, or NULL after the cq-handle rule. */
static struct scq *
cq_live(RIO_CQ h, const char *fn)
{
    struct scq *cq = cq_find(h);

    if (cq == NULL || !cq->live) {
        rule(R_CQ_HANDLE, "%s: %p is not a live completion queue%s", fn,
             (void *) h, cq != NULL ? " (closed)" : "");
        return NULL;
    }
    return cq;
}

static struct srq *
rq_live(RIO_RQ h, const char *fn)
{
    struct srq *rq;

    for (rq = rqs; rq != NULL; rq = rq->next)
        if ((RIO_RQ) rq == h)
            break;
    if (rq == NULL || !rq->live) {
        rule(R_RQ_HANDLE, "%s: %p is not a live request queue%s", fn,
             (void *) h, rq != NULL ? " (its socket was closed)" : "");
        return NULL;
    }
    return rq;
}

static struct ssock *
sock_find(SOCKET s)
{
    size_t i;

    for (i = 0; i < nsocks; i++)
        if (socks[i].s == s)
            return &socks[i];
    return NULL;
}

static void
sock_add(SOCKET s, int rio)
{
    struct ssock *ss;

    EnterCriticalSection(&lock);
    ss = sock_find(s);
    if (ss == NULL) {
        if (nsocks == socks_cap) {
            socks_cap = socks_cap ? 2 * socks_cap : 64;
            socks = realloc(socks, socks_cap * sizeof(*socks));
            if (socks == NULL)
                unsupported("out of memory");
        }
        ss = &socks[nsocks++];
    }
    ss->s = s;
    ss->rio = rio;
    ss->rq = NULL;
    LeaveCriticalSection(&lock);
}

/*
 * Entries a completion queue must hold for its request queues: the sum of
 * their depths in the directions bound to it.
 */
static int
cq_fits(struct scq *cq, DWORD more)
{
    return cq->charged <= cq->size && more <= cq->size - cq->charged;
}

/* The request stops being charged; its request queue may now go away. */
static void
req_release(struct sreq *req)
{
    struct srq *rq = req->rq;
    struct sreq **pp;

    rq->out[req->dir]--;
    for (pp = &bufs[req->buf].users; *pp != NULL; pp = &(*pp)->buf_next)
        if (*pp == req) {
            *pp = req->buf_next;
            break;
        }
    free(req);
    if (!rq->live && !rq->dead && rq->out[DIR_RECV] == 0
        && rq->out[DIR_SEND] == 0) {
        rq->dead = 1;
        rq->cq[DIR_RECV]->charged -= rq->max[DIR_RECV];
        rq->cq[DIR_SEND]->charged -= rq->max[DIR_SEND];
    }
}

static void
cq_fire(struct scq *cq)
{
    cq->armed = 0;
    stats.notifications++;
    if (cq->nc.Type == RIO_IOCP_COMPLETION) {
        if (!PostQueuedCompletionStatus(cq->nc.Iocp.IocpHandle, 0,
                                        (ULONG_PTR) cq->nc.Iocp.CompletionKey,
                                        cq->nc.Iocp.Overlapped))
            fprintf(stderr, "rpstandin: PostQueuedCompletionStatus failed: "
                    "%lu\n", GetLastError());
    } else {
        SetEvent(cq->nc.Event.EventHandle);
    }
}

/* The request is done: its result goes on its completion queue. */
static void
req_complete(struct sreq *req, DWORD err, DWORD bytes)
{
    struct scq *cq = req->rq->cq[req->dir];

    req->res.Status = (LONG) err;
    req->res.BytesTransferred = bytes;
    if (!cq->live) {
        /* RIOCloseCompletionQueue: "new completions ... silently dropped" */
        req_release(req);
        return;
    }
    if (cq->count >= cq->size) {
        /* only reachable in a build with cq-capacity muted: RIO's queue
         * would overflow, which it reports as a corrupt queue */
        cq->corrupt = 1;
        req_release(req);
        return;
    }
    req->next = NULL;
    *cq->tail = req;
    cq->tail = &req->next;
    cq->count++;
    if (req->notify) {
        cq->notifiable++;
        if (cq->armed)
            cq_fire(cq);
    }
}

/*
 * One request fewer issued on the queue's duplicate: once the socket is
 * closed and none is left, the duplicate is the caller's to close (outside
 * the lock; then rq_own_closed()), INVALID_SOCKET otherwise.  Under the
 * lock.
 */
static SOCKET
rq_unissue(struct srq *rq)
{
    rq->issued--;
    return !rq->live && rq->issued == 0 ? rq->own : INVALID_SOCKET;
}

/* The duplicate is closed: rpstandin_closesocket() may return. */
static void
rq_own_closed(struct srq *rq)
{
    EnterCriticalSection(&lock);
    rq->own = INVALID_SOCKET;
    WakeAllConditionVariable(&own_closed);
    LeaveCriticalSection(&lock);
}

static void CALLBACK
req_done(DWORD err, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    struct sreq *req = (struct sreq *) ov;
    struct srq *rq = req->rq;
    SOCKET own;

    (void) flags;
    EnterCriticalSection(&lock);
    req_complete(req, err, bytes);
    own = rq_unissue(rq);
    LeaveCriticalSection(&lock);
    if (own != INVALID_SOCKET) {
        closesocket(own);
        rq_own_closed(rq);
    }
}

/*
 * On the kernel thread: hand one request to Winsock, on the queue's own
 * duplicate of the socket.  Under the lock, so a request queue whose
 * socket rpstandin_closesocket() closed issues nothing more.
 */
static void CALLBACK
req_issue(ULONG_PTR arg)
{
    struct sreq *req = (struct sreq *) arg;
    struct srq *rq = req->rq;
    DWORD fl = 0;
    int rc, err;

    EnterCriticalSection(&lock);
    issued_seq++;
    WakeAllConditionVariable(&issued_cv);
    if (!rq->live) {
        req_complete(req, WSA_OPERATION_ABORTED, 0);
        LeaveCriticalSection(&lock);
        return;
    }
    /* its completion routine runs (on this thread) unless this fails */
    rq->issued++;
    if (req->dir == DIR_RECV) {
        stats.issued_recv++;
        if (req->flags & RIO_MSG_WAITALL)
            fl = MSG_WAITALL;
        rc = WSARecv(rq->own, &req->wb, 1, NULL, &fl, &req->ov, req_done);
    } else {
        stats.issued_send++;
        rc = WSASend(rq->own, &req->wb, 1, NULL, 0, &req->ov, req_done);
    }
    if (rc == SOCKET_ERROR && (err = WSAGetLastError()) != WSA_IO_PENDING) {
        rq->issued--;
        req_complete(req, (DWORD) err, 0);
    }
    LeaveCriticalSection(&lock);
}

/* Under the lock: wait until the I/O thread has issued the first seq
   requests handed to it (APCs run in the order they were queued). */
static void
issued_wait(ULONGLONG seq)
{
    while (issued_seq < seq)
        if (!SleepConditionVariableCS(&issued_cv, &lock, 10000)
            && issued_seq < seq)
            unsupported("the I/O thread issued no request in 10 s");
}

/* Issue the direction's deferred requests, in order, on the kernel thread. */
static void
rq_commit(struct srq *rq, int dir)
{
    struct sreq *req, *next;

    req = rq->deferred[dir];
    if (req == NULL)
        return;
    rq->deferred[dir] = NULL;
    rq->deferred_tail[dir] = &rq->deferred[dir];
    stats.commits++;
    for (; req != NULL; req = next) {
        next = req->next;
        if (req->flags & RIO_MSG_DEFER)
            stats.deferred_issued++;
        if (!QueueUserAPC(req_issue, kernel, (ULONG_PTR) req))
            unsupported("QueueUserAPC to the I/O thread failed");
        queued_seq++;
    }
}

/* The slice must lie in one registered buffer and clash with no request. */
static int
slice_ok(const RIO_BUF *b, const char *fn)
{
    ULONG_PTR id = (ULONG_PTR) b->BufferId;
    struct sbuf *sb;
    struct sreq *r;

    if (id == 0 || id > nbufs || !bufs[id - 1].live) {
        rule(R_BUFFER_ID, "%s: BufferId %p is not a registered buffer%s", fn,
             (void *) b->BufferId,
             id != 0 && id <= nbufs ? " (it was deregistered)" : "");
        return WSAEFAULT;
    }
    sb = &bufs[id - 1];
    if (b->Length == 0 || b->Offset > sb->len
        || b->Length > sb->len - b->Offset) {
        rule(R_BUFFER_RANGE, "%s: slice [%lu, +%lu) is not inside the %lu "
             "bytes registered as %p", fn, b->Offset, b->Length, sb->len,
             (void *) b->BufferId);
        return WSAEINVAL;
    }
    for (r = sb->users; r != NULL; r = r->buf_next)
        if (b->Offset < r->off + r->len && r->off < b->Offset + b->Length) {
            rule(R_BUFFER_OVERLAP, "%s: slice [%lu, +%lu) of %p overlaps "
                 "[%lu, +%lu) of an unfinished %s", fn, b->Offset,
                 b->Length, (void *) b->BufferId, r->off, r->len,
                 r->dir == DIR_RECV ? "receive" : "send");
            /* RIO takes it and races; so does the muted stand-in */
            break;
        }
    return 0;
}

/* Everything RIOReceive and RIOSend do, checked; -1 when it succeeded. */
static int
submit(struct srq *rq, PRIO_BUF data, ULONG count, DWORD flags, PVOID ctx,
       int dir, const char *fn)
{
    DWORD allowed = RIO_MSG_DONT_NOTIFY | RIO_MSG_DEFER | RIO_MSG_COMMIT_ONLY
                    | (dir == DIR_RECV ? RIO_MSG_WAITALL : 0);
    struct sreq *req;
    int err;

    if (flags & ~allowed) {
        rule(R_ARGS, "%s: flags %#lx not valid here", fn, flags);
        return WSAEINVAL;
    }
    if (!rq->live) {
        rule(R_RQ_HANDLE, "%s: request queue %p: its socket was closed "
             "meanwhile", fn, (void *) rq);
        return WSAEINVAL;
    }
    if (flags & RIO_MSG_COMMIT_ONLY) {
        if (flags != RIO_MSG_COMMIT_ONLY || data != NULL || count != 0
            || ctx != NULL) {
            rule(R_ARGS, "%s: RIO_MSG_COMMIT_ONLY takes no other flag, no "
                 "data, a count of 0 and a NULL context", fn);
            return WSAEINVAL;
        }
        rq_commit(rq, dir);
        return -1;
    }
    if (!rq->cq[dir]->live) {
        rule(R_CQ_HANDLE, "%s: the %s completion queue of request queue %p "
             "was closed", fn, dir == DIR_RECV ? "receive" : "send",
             (void *) rq);
        return WSAEINVAL;
    }
    if (rq->cq[dir]->corrupt)
        return WSAEINVAL;
    if (data == NULL || count != 1) {
        rule(R_ARGS, "%s: a TCP request takes exactly one RIO_BUF "
             "(pData %p, DataBufferCount %lu)", fn, (void *) data, count);
        return WSAEINVAL;
    }
    if (rq->out[dir] >= rq->max[dir]) {
        rule(dir == DIR_RECV ? R_RECV_DEPTH : R_SEND_DEPTH,
             "%s: request queue %p has %lu %s charged, its depth is %lu "
             "(RIO_MSG_DEFER requests and results not yet dequeued count)",
             fn, (void *) rq, rq->out[dir],
             dir == DIR_RECV ? "receives" : "sends", rq->max[dir]);
        return WSAENOBUFS;
    }
    err = slice_ok(data, fn);
    if (err)
        return err;
    req = xcalloc(1, sizeof(*req));
    req->rq = rq;
    req->dir = dir;
    req->flags = flags;
    req->buf = (ULONG) ((ULONG_PTR) data->BufferId - 1);
    req->off = data->Offset;
    req->len = data->Length;
    req->wb.buf = bufs[req->buf].base + data->Offset;
    req->wb.len = data->Length;
    req->res.SocketContext = (ULONGLONG) (ULONG_PTR) rq->ctx;
    req->res.RequestContext = (ULONGLONG) (ULONG_PTR) ctx;
    req->notify = !(flags & RIO_MSG_DONT_NOTIFY);
    req->buf_next = bufs[req->buf].users;
    bufs[req->buf].users = req;
    rq->out[dir]++;
    *rq->deferred_tail[dir] = req;
    rq->deferred_tail[dir] = &req->next;
    if (!(flags & RIO_MSG_DEFER))
        rq_commit(rq, dir);
    return -1;
}

/* The request queue calls: validate, mark busy, submit, report. */
static BOOL
rq_call(RIO_RQ h, PRIO_BUF data, ULONG count, DWORD flags, PVOID ctx,
        int dir, const char *fn)
{
    struct srq *rq;
    int serial = !(flags & RIO_MSG_COMMIT_ONLY);
    int err;

    standin_init();
    EnterCriticalSection(&lock);
    rq = rq_live(h, fn);
    LeaveCriticalSection(&lock);
    if (rq == NULL) {
        WSASetLastError(WSAEINVAL);
        return FALSE;
    }
    if (serial)
        busy_enter(&rq->busy, R_RQ_THREADS, fn, rq);
    EnterCriticalSection(&lock);
    err = submit(rq, data, count, flags, ctx, dir, fn);
    /* RIO hands a request that is not deferred to the kernel in the call:
       return once the I/O thread has issued what this call committed */
    issued_wait(queued_seq);
    LeaveCriticalSection(&lock);
    if (serial)
        busy_leave(&rq->busy);
    if (err >= 0) {
        WSASetLastError(err);
        return FALSE;
    }
    return TRUE;
}

static BOOL PASCAL
rpstandin_RIOReceive(RIO_RQ rq, PRIO_BUF data, ULONG count, DWORD flags,
                     PVOID ctx)
{
    return rq_call(rq, data, count, flags, ctx, DIR_RECV, "RIOReceive");
}

static int PASCAL
rpstandin_RIOReceiveEx(RIO_RQ rq, PRIO_BUF data, ULONG count,
                       PRIO_BUF local, PRIO_BUF remote, PRIO_BUF control,
                       PRIO_BUF pflags, DWORD flags, PVOID ctx)
{
    if (local != NULL || remote != NULL || control != NULL || pflags != NULL)
        unsupported("RIOReceiveEx with addresses, control or flags buffers");
    return rq_call(rq, data, count, flags, ctx, DIR_RECV, "RIOReceiveEx");
}

static BOOL PASCAL
rpstandin_RIOSend(RIO_RQ rq, PRIO_BUF data, ULONG count, DWORD flags,
                  PVOID ctx)
{
    return rq_call(rq, data, count, flags, ctx, DIR_SEND, "RIOSend");
}

static BOOL PASCAL
rpstandin_RIOSendEx(RIO_RQ rq, PRIO_BUF data, ULONG count, PRIO_BUF local,
                    PRIO_BUF remote, PRIO_BUF control, PRIO_BUF pflags,
                    DWORD flags, PVOID ctx)
{
    if (local != NULL || remote != NULL || control != NULL || pflags != NULL)
        unsupported("RIOSendEx with addresses, control or flags buffers");
    return rq_call(rq, data, count, flags, ctx, DIR_SEND, "RIOSendEx");
}

static RIO_CQ PASCAL
rpstandin_RIOCreateCompletionQueue(DWORD size,
                                   PRIO_NOTIFICATION_COMPLETION nc)
{
    struct scq *cq;

    standin_init();
    if (size == 0 || size > RIO_MAX_CQ_SIZE) {
        rule(R_CQ_SIZE, "RIOCreateCompletionQueue: QueueSize %lu is not in "
             "1..RIO_MAX_CQ_SIZE", size);
        WSASetLastError(WSAEINVAL);
        return RIO_INVALID_CQ;
    }
    if (nc != NULL
        && !(nc->Type == RIO_IOCP_COMPLETION && nc->Iocp.IocpHandle != NULL
             && nc->Iocp.Overlapped != NULL)
        && !(nc->Type == RIO_EVENT_COMPLETION
             && nc->Event.EventHandle != NULL)) {
        rule(R_NOTIFY_SETUP, "RIOCreateCompletionQueue: notification type "
             "%d needs an IOCP handle and an OVERLAPPED, or an event",
             (int) nc->Type);
        WSASetLastError(WSAEINVAL);
        return RIO_INVALID_CQ;
    }
    cq = xcalloc(1, sizeof(*cq));
    cq->live = 1;
    cq->size = size;
    cq->tail = &cq->head;
    if (nc != NULL) {
        cq->has_nc = 1;
        cq->nc = *nc;
    }
    EnterCriticalSection(&lock);
    cq->next = cqs;
    cqs = cq;
    LeaveCriticalSection(&lock);
    return (RIO_CQ) cq;
}

static void PASCAL
rpstandin_RIOCloseCompletionQueue(RIO_CQ h)
{
    struct scq *cq;
    struct srq *rq;
    struct sreq *req;
    ULONG unfinished = 0;

    standin_init();
    if (h == RIO_INVALID_CQ)
        return;
    EnterCriticalSection(&lock);
    cq = cq_live(h, "RIOCloseCompletionQueue");
    LeaveCriticalSection(&lock);
    if (cq == NULL)
        return;
    busy_enter(&cq->busy, R_CQ_THREADS, "RIOCloseCompletionQueue", cq);
    EnterCriticalSection(&lock);
    for (rq = rqs; rq != NULL; rq = rq->next) {
        if (rq->dead)
            continue;
        if (rq->cq[DIR_RECV] == cq)
            unfinished += rq->out[DIR_RECV];
        if (rq->cq[DIR_SEND] == cq)
            unfinished += rq->out[DIR_SEND];
    }
    if (unfinished)
        rule(R_CQ_CLOSE_IN_USE, "RIOCloseCompletionQueue(%p): %lu requests "
             "that complete into it are not dequeued yet", (void *) cq,
             unfinished);
    cq->live = 0;
    while ((req = cq->head) != NULL) {
        cq->head = req->next;
        req_release(req);
    }
    cq->tail = &cq->head;
    cq->count = cq->notifiable = 0;
    LeaveCriticalSection(&lock);
    busy_leave(&cq->busy);
}

static RIO_RQ PASCAL
rpstandin_RIOCreateRequestQueue(SOCKET s, ULONG max_recv, ULONG max_recv_bufs,
                                ULONG max_send, ULONG max_send_bufs,
                                RIO_CQ recv_cq, RIO_CQ send_cq, PVOID ctx)
{
    const char *fn = "RIOCreateRequestQueue";
    struct scq *rcq, *scq;
    struct ssock *ss;
    struct srq *rq = NULL;
    WSAPROTOCOL_INFOW pi;
    SOCKET own;
    int type = 0, len = sizeof(type), err = WSAEINVAL;

    standin_init();
    EnterCriticalSection(&lock);
    ss = sock_find(s);
    rcq = cq_live(recv_cq, fn);
    scq = cq_live(send_cq, fn);
    if (ss == NULL || !ss->rio) {
        rule(R_SOCKET_FLAG, "%s: socket %llu was not made with "
             "WSA_FLAG_REGISTERED_IO (through rpstandin_WSASocketW or "
             "rpstandin_accept)", fn, (unsigned long long) s);
        goto out;
    }
    if (ss->rq != NULL) {
        rule(R_SOCKET_FLAG, "%s: socket %llu already has request queue %p",
             fn, (unsigned long long) s, (void *) ss->rq);
        goto out;
    }
    if (rcq == NULL || scq == NULL)
        goto out;
    if ((max_recv == 0 && max_send == 0)
        || (max_recv != 0 && max_recv_bufs == 0)
        || (max_send != 0 && max_send_bufs == 0)) {
        rule(R_ARGS, "%s: depths %lu/%lu with %lu/%lu data buffers", fn,
             max_recv, max_send, max_recv_bufs, max_send_bufs);
        goto out;
    }
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, (char *) &type, &len) != 0
        || type != SOCK_STREAM)
        unsupported("a request queue for anything but a TCP socket");
    if (rcq == scq ? !cq_fits(rcq, max_recv + max_send)
                   : !cq_fits(rcq, max_recv) || !cq_fits(scq, max_send)) {
        if (rcq == scq)
            rule(R_CQ_CAPACITY, "%s: %lu receives and %lu sends do not fit: "
                 "%lu of the completion queue's %lu entries are taken by "
                 "other request queues", fn, max_recv, max_send,
                 rcq->charged, rcq->size);
        else
            rule(R_CQ_CAPACITY, "%s: %lu receives and %lu sends do not fit: "
                 "the receive queue has %lu of %lu entries taken, the send "
                 "queue %lu of %lu", fn, max_recv, max_send, rcq->charged,
                 rcq->size, scq->charged, scq->size);
        err = WSAENOBUFS;
        goto out;
    }
    /*
     * The requests' own handle of the socket (see the top of the file).
     * Not inherited, as the engine's own duplicates are not.  Without it
     * there is no queue: WSADuplicateSocketW's error, or WSAENOBUFS (RIO's
     * when it lacks the resources).
     */
    if (WSADuplicateSocketW(s, GetCurrentProcessId(), &pi) != 0) {
        err = WSAGetLastError();
        goto out;
    }
    own = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
                     FROM_PROTOCOL_INFO, &pi, 0,
                     WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (own == INVALID_SOCKET) {
        err = WSAENOBUFS;
        goto out;
    }
    rq = xcalloc(1, sizeof(*rq));
    rq->live = 1;
    rq->s = s;
    rq->own = own;
    rq->ctx = ctx;
    rq->max[DIR_RECV] = max_recv;
    rq->max[DIR_SEND] = max_send;
    rq->cq[DIR_RECV] = rcq;
    rq->cq[DIR_SEND] = scq;
    rq->deferred_tail[DIR_RECV] = &rq->deferred[DIR_RECV];
    rq->deferred_tail[DIR_SEND] = &rq->deferred[DIR_SEND];
    rcq->charged += max_recv;
    scq->charged += max_send;
    ss->rq = rq;
    rq->next = rqs;
    rqs = rq;
out:
    LeaveCriticalSection(&lock);
    if (rq == NULL)
        WSASetLastError(err);
    return (RIO_RQ) rq;
}

static ULONG PASCAL
rpstandin_RIODequeueCompletion(RIO_CQ h, PRIORESULT array, ULONG size)
{
    const char *fn = "RIODequeueCompletion";
    struct scq *cq;
    struct sreq *req;
    ULONG n = 0;

    standin_init();
    EnterCriticalSection(&lock);
    cq = cq_live(h, fn);
    LeaveCriticalSection(&lock);
    if (cq == NULL)
        return RIO_CORRUPT_CQ;
    if (array == NULL || size == 0) {
        rule(R_ARGS, "%s: Array %p, ArraySize %lu", fn, (void *) array, size);
        return RIO_CORRUPT_CQ;
    }
    busy_enter(&cq->busy, R_CQ_THREADS, fn, cq);
    EnterCriticalSection(&lock);
    stats.dequeue_calls++;
    if (cq->corrupt) {
        n = RIO_CORRUPT_CQ;
        goto out;
    }
    while (n < size && (req = cq->head) != NULL) {
        cq->head = req->next;
        if (cq->head == NULL)
            cq->tail = &cq->head;
        cq->count--;
        if (req->notify)
            cq->notifiable--;
        array[n++] = req->res;
        req_release(req);
    }
    stats.dequeued += n;
    if (n > stats.max_batch)
        stats.max_batch = n;
out:
    LeaveCriticalSection(&lock);
    busy_leave(&cq->busy);
    return n;
}

static void PASCAL
rpstandin_RIODeregisterBuffer(RIO_BUFFERID id)
{
    ULONG_PTR i = (ULONG_PTR) id;
    struct sbuf *sb;

    standin_init();
    if (id == RIO_INVALID_BUFFERID)
        return;
    EnterCriticalSection(&lock);
    if (i == 0 || i > nbufs || !bufs[i - 1].live) {
        rule(R_BUFFER_ID, "RIODeregisterBuffer: %p is not a registered "
             "buffer%s", (void *) id,
             i != 0 && i <= nbufs ? " (deregistered twice)" : "");
        goto out;
    }
    sb = &bufs[i - 1];
    if (sb->users != NULL)
        rule(R_DEREGISTER_IN_USE, "RIODeregisterBuffer(%p): an unfinished "
             "%s uses [%lu, +%lu) of it (its result is not dequeued)",
             (void *) id, sb->users->dir == DIR_RECV ? "receive" : "send",
             sb->users->off, sb->users->len);
    sb->live = 0;
out:
    LeaveCriticalSection(&lock);
}

static INT PASCAL
rpstandin_RIONotify(RIO_CQ h)
{
    const char *fn = "RIONotify";
    struct scq *cq;
    INT rc = ERROR_SUCCESS;

    standin_init();
    EnterCriticalSection(&lock);
    cq = cq_live(h, fn);
    LeaveCriticalSection(&lock);
    if (cq == NULL)
        return WSAEINVAL;
    busy_enter(&cq->busy, R_CQ_THREADS, fn, cq);
    EnterCriticalSection(&lock);
    if (!cq->has_nc) {
        rule(R_NOTIFY_SETUP, "%s(%p): the queue was made without "
             "RIO_NOTIFICATION_COMPLETION", fn, (void *) cq);
        rc = WSAEINVAL;
        goto out;
    }
    if (cq->armed) {
        rule(R_NOTIFY_PENDING, "%s(%p): the previous RIONotify has not "
             "fired yet (RIO returns WSAEALREADY)", fn, (void *) cq);
        rc = WSAEALREADY;
        goto out;
    }
    stats.notify_calls++;
    if (cq->nc.Type == RIO_EVENT_COMPLETION && cq->nc.Event.NotifyReset)
        ResetEvent(cq->nc.Event.EventHandle);
    if (cq->notifiable)
        cq_fire(cq);
    else
        cq->armed = 1;
out:
    LeaveCriticalSection(&lock);
    busy_leave(&cq->busy);
    return rc;
}

static RIO_BUFFERID PASCAL
rpstandin_RIORegisterBuffer(PCHAR data, DWORD len)
{
    RIO_BUFFERID id;

    standin_init();
    if (data == NULL || len == 0) {
        rule(R_ARGS, "RIORegisterBuffer(%p, %lu)", (void *) data, len);
        WSASetLastError(data == NULL ? WSAEFAULT : WSAEINVAL);
        return RIO_INVALID_BUFFERID;
    }
    EnterCriticalSection(&lock);
    if (nbufs == bufs_cap) {
        bufs_cap = bufs_cap ? 2 * bufs_cap : 64;
        bufs = realloc(bufs, bufs_cap * sizeof(*bufs));
        if (bufs == NULL)
            unsupported("out of memory");
    }
    bufs[nbufs].base = data;
    bufs[nbufs].len = len;
    bufs[nbufs].live = 1;
    bufs[nbufs].users = NULL;
    id = (RIO_BUFFERID) (ULONG_PTR) ++nbufs;
    LeaveCriticalSection(&lock);
    return id;
}

static BOOL PASCAL
rpstandin_RIOResizeCompletionQueue(RIO_CQ h, DWORD size)
{
    const char *fn = "RIOResizeCompletionQueue";
    struct scq *cq;
    BOOL ok = FALSE;

    standin_init();
    EnterCriticalSection(&lock);
    cq = cq_live(h, fn);
    LeaveCriticalSection(&lock);
    if (cq == NULL) {
        WSASetLastError(WSAEINVAL);
        return FALSE;
    }
    busy_enter(&cq->busy, R_CQ_THREADS, fn, cq);
    EnterCriticalSection(&lock);
    if (size == 0 || size > RIO_MAX_CQ_SIZE) {
        rule(R_CQ_SIZE, "%s: QueueSize %lu is not in 1..RIO_MAX_CQ_SIZE", fn,
             size);
        WSASetLastError(WSAEINVAL);
    } else if (size < cq->charged || size < cq->count) {
        rule(R_CQ_CAPACITY, "%s: %lu entries cannot hold the %lu its request "
             "queues need (%lu results waiting)", fn, size, cq->charged,
             cq->count);
        WSASetLastError(WSAENOBUFS);
    } else {
        cq->size = size;
        ok = TRUE;
    }
    LeaveCriticalSection(&lock);
    busy_leave(&cq->busy);
    return ok;
}

static BOOL PASCAL
rpstandin_RIOResizeRequestQueue(RIO_RQ h, DWORD max_recv, DWORD max_send)
{
    const char *fn = "RIOResizeRequestQueue";
    struct srq *rq;
    struct scq *rcq, *scq;
    BOOL ok = FALSE;
    DWORD need_r, need_s;

    standin_init();
    EnterCriticalSection(&lock);
    rq = rq_live(h, fn);
    LeaveCriticalSection(&lock);
    if (rq == NULL) {
        WSASetLastError(WSAEINVAL);
        return FALSE;
    }
    busy_enter(&rq->busy, R_RQ_THREADS, fn, rq);
    EnterCriticalSection(&lock);
    rcq = rq->cq[DIR_RECV];
    scq = rq->cq[DIR_SEND];
    /* what the queues would be charged without this request queue */
    rcq->charged -= rq->max[DIR_RECV];
    scq->charged -= rq->max[DIR_SEND];
    need_r = max_recv;
    need_s = max_send;
    if (max_recv < rq->out[DIR_RECV] || max_send < rq->out[DIR_SEND]) {
        rule(max_recv < rq->out[DIR_RECV] ? R_RECV_DEPTH : R_SEND_DEPTH,
             "%s: depths %lu/%lu below the %lu/%lu requests charged", fn,
             max_recv, max_send, rq->out[DIR_RECV], rq->out[DIR_SEND]);
        WSASetLastError(WSAEINVAL);
    } else if (max_recv == 0 && max_send == 0) {
        rule(R_ARGS, "%s: both depths 0", fn);
        WSASetLastError(WSAEINVAL);
    } else if (rcq == scq ? !cq_fits(rcq, need_r + need_s)
                          : !cq_fits(rcq, need_r) || !cq_fits(scq, need_s)) {
        rule(R_CQ_CAPACITY, "%s: %lu receives and %lu sends do not fit in "
             "the completion queue%s", fn, max_recv, max_send,
             rcq == scq ? "" : "s");
        WSASetLastError(WSAENOBUFS);
    } else {
        rq->max[DIR_RECV] = max_recv;
        rq->max[DIR_SEND] = max_send;
        ok = TRUE;
    }
    rcq->charged += rq->max[DIR_RECV];
    scq->charged += rq->max[DIR_SEND];
    LeaveCriticalSection(&lock);
    busy_leave(&rq->busy);
    return ok;
}

void
rpstandin_rio_table(RIO_EXTENSION_FUNCTION_TABLE *t)
{
    standin_init();
    memset(t, 0, sizeof(*t));
    t->cbSize = sizeof(*t);
    t->RIOReceive = rpstandin_RIOReceive;
    t->RIOReceiveEx = rpstandin_RIOReceiveEx;
    t->RIOSend = rpstandin_RIOSend;
    t->RIOSendEx = rpstandin_RIOSendEx;
    t->RIOCloseCompletionQueue = rpstandin_RIOCloseCompletionQueue;
    t->RIOCreateCompletionQueue = rpstandin_RIOCreateCompletionQueue;
    t->RIOCreateRequestQueue = rpstandin_RIOCreateRequestQueue;
    t->RIODequeueCompletion = rpstandin_RIODequeueCompletion;
    t->RIODeregisterBuffer = rpstandin_RIODeregisterBuffer;
    t->RIONotify = rpstandin_RIONotify;
    t->RIORegisterBuffer = rpstandin_RIORegisterBuffer;
    t->RIOResizeCompletionQueue = rpstandin_RIOResizeCompletionQueue;
    t->RIOResizeRequestQueue = rpstandin_RIOResizeRequestQueue;
}

int WSAAPI
rpstandin_WSAIoctl(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out,
                   DWORD outlen, LPDWORD bytes, LPWSAOVERLAPPED ov,
                   LPWSAOVERLAPPED_COMPLETION_ROUTINE routine)
{
    static const GUID rio = WSAID_MULTIPLE_RIO;

    if (code != SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER
        || in == NULL || inlen != sizeof(GUID)
        || memcmp(in, &rio, sizeof(GUID)) != 0)
        return WSAIoctl(s, code, in, inlen, out, outlen, bytes, ov, routine);
    if (out == NULL || outlen < sizeof(RIO_EXTENSION_FUNCTION_TABLE)) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    rpstandin_rio_table(out);
    if (bytes != NULL)
        *bytes = sizeof(RIO_EXTENSION_FUNCTION_TABLE);
    return 0;
}

SOCKET WSAAPI
rpstandin_WSASocketW(int af, int type, int protocol, LPWSAPROTOCOL_INFOW info,
                     GROUP g, DWORD flags)
{
    SOCKET s = WSASocketW(af, type, protocol, info, g, flags);

    standin_init();
    if (s != INVALID_SOCKET)
        sock_add(s, (flags & WSA_FLAG_REGISTERED_IO) != 0);
    return s;
}

SOCKET WSAAPI
rpstandin_accept(SOCKET ls, struct sockaddr *addr, int *len)
{
    SOCKET s = accept(ls, addr, len);
    struct ssock *l;
    int rio;

    standin_init();
    if (s == INVALID_SOCKET)
        return s;
    EnterCriticalSection(&lock);
    l = sock_find(ls);
    rio = l != NULL && l->rio;
    LeaveCriticalSection(&lock);
    sock_add(s, rio);
    return s;
}

int WSAAPI
rpstandin_closesocket(SOCKET s)
{
    struct ssock *ss;
    struct srq *rq = NULL;
    struct sreq *req, *next;
    SOCKET own = INVALID_SOCKET;
    int dir;

    standin_init();
    EnterCriticalSection(&lock);
    ss = sock_find(s);
    if (ss != NULL) {
        rq = ss->rq;
        *ss = socks[--nsocks];
    }
    if (rq != NULL && rq->live) {
        rq->live = 0;
        for (dir = DIR_RECV; dir <= DIR_SEND; dir++) {
            for (req = rq->deferred[dir]; req != NULL; req = next) {
                next = req->next;
                req_complete(req, WSA_OPERATION_ABORTED, 0);
            }
            rq->deferred[dir] = NULL;
            rq->deferred_tail[dir] = &rq->deferred[dir];
        }
        if (rq->out[DIR_RECV] == 0 && rq->out[DIR_SEND] == 0) {
            rq->dead = 1;
            rq->cq[DIR_RECV]->charged -= rq->max[DIR_RECV];
            rq->cq[DIR_SEND]->charged -= rq->max[DIR_SEND];
        }
        /*
         * Issued ones are cancelled, and the duplicate closes when the
         * last is back (req_done): closing it under a request would let
         * the request reach whatever the handle value names next (Wine).
         * Waited for here, so the socket is closed when this returns, as
         * closesocket()'s is.
         */
        if (rq->issued == 0) {
            own = rq->own;
            rq->own = INVALID_SOCKET;
        } else {
            if (!CancelIoEx((HANDLE) rq->own, NULL)
                && GetLastError() != ERROR_NOT_FOUND)
                fprintf(stderr, "rpstandin: CancelIoEx on the request "
                        "queue's socket failed: %lu\n", GetLastError());
            while (rq->own != INVALID_SOCKET
                   && SleepConditionVariableCS(&own_closed, &lock, 5000))
                ;
            if (rq->own != INVALID_SOCKET)
                fprintf(stderr, "rpstandin: %lu requests issued on socket "
                        "%llu not back 5 s after CancelIoEx: its duplicate "
                        "stays open\n", rq->issued, (unsigned long long) s);
        }
    }
    LeaveCriticalSection(&lock);
    if (own != INVALID_SOCKET)
        closesocket(own);
    return closesocket(s);
}

int
rpstandin_owns(SOCKET s)
{
    struct srq *rq;
    int own = 0;

    standin_init();
    EnterCriticalSection(&lock);
    for (rq = rqs; rq != NULL && !own; rq = rq->next)
        own = rq->live && rq->own == s;
    LeaveCriticalSection(&lock);
    return own;
}

void
rpstandin_hold_ms(DWORD ms)
{
    hold = ms;
}

void
rpstandin_corrupt_cq(RIO_CQ h)
{
    struct scq *cq;

    standin_init();
    EnterCriticalSection(&lock);
    cq = cq_find(h);
    if (cq != NULL)
        cq->corrupt = 1;
    LeaveCriticalSection(&lock);
}

void
rpstandin_get_stats(struct rpstandin_stats *st)
{
    standin_init();
    EnterCriticalSection(&lock);
    *st = stats;
    LeaveCriticalSection(&lock);
}

int
rpstandin_leftovers(void)
{
    struct scq *cq;
    struct srq *rq;
    ULONG i;
    int n = 0;

    standin_init();
    EnterCriticalSection(&lock);
    for (i = 0; i < nbufs; i++)
        if (bufs[i].live) {
            fprintf(stderr, "rpstandin: left: buffer %lu (%lu bytes) still "
                    "registered\n", i + 1, bufs[i].len);
            n++;
        }
    for (rq = rqs; rq != NULL; rq = rq->next) {
        if (rq->deferred[DIR_RECV] != NULL || rq->deferred[DIR_SEND] != NULL) {
            fprintf(stderr, "rpstandin: left: request queue %p has "
                    "RIO_MSG_DEFER requests never committed\n", (void *) rq);
            n++;
        }
        if (rq->live) {
            fprintf(stderr, "rpstandin: left: request queue %p: its socket "
                    "is not closed\n", (void *) rq);
            n++;
        } else if (rq->own != INVALID_SOCKET) {
            fprintf(stderr, "rpstandin: left: request queue %p: %lu "
                    "requests issued on its closed socket not back (its "
                    "duplicate is open)\n", (void *) rq, rq->issued);
            n++;
        }
    }
    for (cq = cqs; cq != NULL; cq = cq->next) {
        if (cq->count) {
            fprintf(stderr, "rpstandin: left: completion queue %p holds %lu "
                    "results not dequeued\n", (void *) cq, cq->count);
            n++;
        }
        if (cq->live) {
            fprintf(stderr, "rpstandin: left: completion queue %p not "
                    "closed\n", (void *) cq);
            n++;
        }
    }
    LeaveCriticalSection(&lock);
    return n;
}
