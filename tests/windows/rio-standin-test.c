/*
 * Tests of the RIO stand-in (rio-standin.c), run under Wine by
 * tests/windows/run.sh, one case per process:
 *
 *   rio-standin-test [--real] CASE
 *
 * Exit 0: the case passed; 1: it failed (a "FAIL:" line says why); 77:
 * skipped ("SKIP:" line).  A breach-* case passes when the stand-in ends the
 * process with RPSTANDIN_EXIT_BREACH and names the rule: run.sh checks that,
 * and, on the stand-in built with that rule muted, that the case then
 * fails (so each case shows its rule is what catches the breach).
 *
 * The other cases use RIO as an engine would (registered buffer slices, a
 * completion queue notified through an IOCP, RIO_MSG_DEFER batches,
 * RIODequeueCompletion in batches) over a real TCP connection on loopback.
 * With --real they run on the system's RIO (WSAIoctl's table; Windows 8 and
 * later: the GitHub workflow), without it on the stand-in, so the same
 * code is the proof that the stand-in behaves as RIO does.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rio-standin.h"

#define KEY          0x52494fu     /* the completion key of our RIONotify */
#define SLICE        4096
#define SLICES       8
#define ECHO_BYTES   (1u << 20)

static RIO_EXTENSION_FUNCTION_TABLE rio;
static int real;

static SOCKET (WSAAPI *sock_new)(int, int, int, LPWSAPROTOCOL_INFOW, GROUP,
                                 DWORD);
static SOCKET (WSAAPI *sock_accept)(SOCKET, struct sockaddr *, int *);
static int (WSAAPI *sock_close)(SOCKET);

/* One RIO connection: its socket, the peer's, queues and one buffer. */
struct env {
    SOCKET        s, peer;
    HANDLE        iocp;
    OVERLAPPED    nov;
    RIO_CQ        cq;
    RIO_RQ        rq;
    char         *mem;
    RIO_BUFFERID  id;
};

static void
fail(const char *fmt, ...)
{
    va_list ap;

    fputs("FAIL: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    ExitProcess(1);
}

static void
skip(const char *why)
{
    printf("SKIP: %s\n", why);
    fflush(stdout);
    ExitProcess(77);
}

/* A connected pair on loopback: *s accepted from a RIO-capable listener. */
static void
tcp_pair(SOCKET *s, SOCKET *peer, DWORD flags)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    int len = sizeof(a);
    SOCKET l;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = sock_new(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, flags);
    if (l == INVALID_SOCKET || bind(l, (struct sockaddr *) &a, sizeof(a))
        || listen(l, 1) || getsockname(l, (struct sockaddr *) &a, &len))
        fail("listener: error %d", WSAGetLastError());
    *peer = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (*peer == INVALID_SOCKET
        || connect(*peer, (struct sockaddr *) &a, sizeof(a)))
        fail("connect: error %d", WSAGetLastError());
    *s = sock_accept(l, NULL, NULL);
    if (*s == INVALID_SOCKET)
        fail("accept: error %d", WSAGetLastError());
    sock_close(l);
}

static RIO_CQ
cq_new(struct env *e, DWORD size)
{
    RIO_NOTIFICATION_COMPLETION nc;
    RIO_CQ cq;

    memset(&nc, 0, sizeof(nc));
    nc.Type = RIO_IOCP_COMPLETION;
    nc.Iocp.IocpHandle = e->iocp;
    nc.Iocp.CompletionKey = (PVOID) (ULONG_PTR) KEY;
    nc.Iocp.Overlapped = &e->nov;
    cq = rio.RIOCreateCompletionQueue(size, &nc);
    if (cq == RIO_INVALID_CQ)
        fail("RIOCreateCompletionQueue(%lu): error %d", size,
             WSAGetLastError());
    return cq;
}

static RIO_RQ
rq_new(struct env *e, SOCKET s, ULONG recvs, ULONG sends)
{
    RIO_RQ rq = rio.RIOCreateRequestQueue(s, recvs, 1, sends, 1, e->cq,
                                          e->cq, e);

    if (rq == RIO_INVALID_RQ)
        fail("RIOCreateRequestQueue(%lu, %lu): error %d", recvs, sends,
             WSAGetLastError());
    return rq;
}

/* The whole setup with a completion queue of cq_size entries. */
static void
env_open(struct env *e, DWORD cq_size, ULONG recvs, ULONG sends)
{
    memset(e, 0, sizeof(*e));
    e->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (e->iocp == NULL)
        fail("CreateIoCompletionPort: %lu", GetLastError());
    e->mem = VirtualAlloc(NULL, SLICES * SLICE, MEM_COMMIT | MEM_RESERVE,
                          PAGE_READWRITE);
    e->id = rio.RIORegisterBuffer(e->mem, SLICES * SLICE);
    if (e->id == RIO_INVALID_BUFFERID)
        fail("RIORegisterBuffer: error %d", WSAGetLastError());
    e->cq = cq_new(e, cq_size);
    tcp_pair(&e->s, &e->peer, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
    e->rq = rq_new(e, e->s, recvs, sends);
}

static void
env_close(struct env *e)
{
    if (e->s != INVALID_SOCKET)
        sock_close(e->s);
    closesocket(e->peer);
    rio.RIOCloseCompletionQueue(e->cq);
    rio.RIODeregisterBuffer(e->id);
    CloseHandle(e->iocp);
    if (!real && rpstandin_leftovers() != 0)
        fail("the stand-in reports things not given back");
}

static RIO_BUF
slice(struct env *e, ULONG i, ULONG len)
{
    RIO_BUF b = { e->id, i * SLICE, len };

    return b;
}

static void
post(struct env *e, int send, ULONG i, ULONG len, DWORD flags, ULONG ctx)
{
    RIO_BUF b = slice(e, i, len);
    BOOL ok = send ? rio.RIOSend(e->rq, &b, 1, flags, (PVOID)(ULONG_PTR) ctx)
                   : rio.RIOReceive(e->rq, &b, 1, flags,
                                    (PVOID)(ULONG_PTR) ctx);

    if (!ok)
        fail("RIO%s(slice %lu, %lu bytes, flags %#lx): error %d",
             send ? "Send" : "Receive", i, len, flags, WSAGetLastError());
}

static void
commit(struct env *e, int send)
{
    BOOL ok = send ? rio.RIOSend(e->rq, NULL, 0, RIO_MSG_COMMIT_ONLY, NULL)
                   : rio.RIOReceive(e->rq, NULL, 0, RIO_MSG_COMMIT_ONLY,
                                    NULL);

    if (!ok)
        fail("RIO_MSG_COMMIT_ONLY: error %d", WSAGetLastError());
}

static void
notify(struct env *e)
{
    INT rc = rio.RIONotify(e->cq);

    if (rc != ERROR_SUCCESS)
        fail("RIONotify: %d", rc);
}

/* 1 if our RIONotify packet arrives within ms, 0 if nothing does. */
static int
wait_notify(struct env *e, DWORD ms)
{
    DWORD bytes;
    ULONG_PTR key;
    OVERLAPPED *ov;

    if (!GetQueuedCompletionStatus(e->iocp, &bytes, &key, &ov, ms)) {
        if (ov == NULL && GetLastError() == WAIT_TIMEOUT)
            return 0;
        fail("GetQueuedCompletionStatus: %lu", GetLastError());
    }
    if (key != KEY || ov != &e->nov)
        fail("a packet not from RIONotify: key %#lx, overlapped %p",
             (unsigned long) key, (void *) ov);
    return 1;
}

static ULONG
dequeue(struct env *e, RIORESULT *r, ULONG n)
{
    ULONG got = rio.RIODequeueCompletion(e->cq, r, n);

    if (got == RIO_CORRUPT_CQ)
        fail("RIODequeueCompletion: RIO_CORRUPT_CQ");
    return got;
}

/* Poll for one result for up to ms (for requests flagged DONT_NOTIFY). */
static RIORESULT
dequeue_one(struct env *e, DWORD ms)
{
    RIORESULT r;
    DWORD t;

    for (t = 0; t <= ms; t += 10) {
        if (dequeue(e, &r, 1) == 1)
            return r;
        Sleep(10);
    }
    fail("no result within %lu ms", ms);
    return r;
}

static unsigned char
pattern(size_t i)
{
    return (unsigned char) (i * 7 + i / 251);
}

static DWORD WINAPI
echo_writer(LPVOID arg)
{
    struct env *e = arg;
    static char buf[65536];
    size_t off = 0, i;
    int n, chunk;

    while (off < ECHO_BYTES) {
        /* uneven writes, so receives see every size */
        chunk = (int) (1 + (off * 131) % sizeof(buf));
        if (chunk > (int) (ECHO_BYTES - off))
            chunk = (int) (ECHO_BYTES - off);
        for (i = 0; i < (size_t) chunk; i++)
            buf[i] = (char) pattern(off + i);
        n = send(e->peer, buf, chunk, 0);
        if (n <= 0)
            fail("peer send: error %d", WSAGetLastError());
        off += (size_t) n;
    }
    shutdown(e->peer, SD_SEND);
    return 0;
}

static size_t echo_got;

static DWORD WINAPI
echo_reader(LPVOID arg)
{
    struct env *e = arg;
    static char buf[65536];
    int n, i;

    while ((n = recv(e->peer, buf, sizeof(buf), 0)) > 0)
        for (i = 0; i < n; i++, echo_got++)
            if ((unsigned char) buf[i] != pattern(echo_got))
                fail("echo byte %zu is %#x, sent %#x", echo_got,
                     (unsigned char) buf[i], pattern(echo_got));
    if (n < 0)
        fail("peer recv: error %d", WSAGetLastError());
    return 0;
}

/*
 * Echo 1 MiB.  Each of 4 slices is either receiving or sending what it
 * received; the sends of a batch go out deferred and are committed with
 * RIO_MSG_COMMIT_ONLY, the receives re-posted deferred likewise.  One
 * RIONotify per wait, results dequeued up to 16 at a time.
 */
static void
case_echo(void)
{
    struct env e;
    RIORESULT r[16];
    HANDLE th[2];
    int eof = 0, inflight = 0, sends, recvs;
    unsigned long packets = 0;
    ULONG n, i, k;
    struct rpstandin_stats st;

    env_open(&e, 8, 4, 4);
    for (i = 0; i < 4; i++)
        post(&e, 0, i, SLICE, i < 3 ? RIO_MSG_DEFER : 0, i);
    inflight = 4;
    th[0] = CreateThread(NULL, 0, echo_writer, &e, 0, NULL);
    th[1] = CreateThread(NULL, 0, echo_reader, &e, 0, NULL);
    while (inflight > 0) {
        notify(&e);
        if (!wait_notify(&e, 10000))
            fail("no notification within 10 s (%d requests in flight)",
                 inflight);
        packets++;
        while ((n = dequeue(&e, r, 16)) > 0) {
            sends = recvs = 0;
            for (k = 0; k < n; k++) {
                i = (ULONG) (r[k].RequestContext & 0xff);
                if (r[k].SocketContext != (ULONGLONG) (ULONG_PTR) &e)
                    fail("SocketContext %#llx", r[k].SocketContext);
                if (r[k].Status != 0)
                    fail("slice %lu: status %ld", i, r[k].Status);
                if (r[k].RequestContext & 0x100) {
                    if (eof) {
                        inflight--;
                        continue;
                    }
                    post(&e, 0, i, SLICE, RIO_MSG_DEFER, i);
                    recvs++;
                } else if (r[k].BytesTransferred == 0) {
                    eof = 1;
                    inflight--;
                } else {
                    post(&e, 1, i, r[k].BytesTransferred, RIO_MSG_DEFER,
                         i | 0x100);
                    sends++;
                }
            }
            if (sends)
                commit(&e, 1);
            if (recvs)
                commit(&e, 0);
        }
    }
    sock_close(e.s);
    e.s = INVALID_SOCKET;
    if (WaitForMultipleObjects(2, th, TRUE, 10000) != WAIT_OBJECT_0)
        fail("peer threads did not finish");
    if (echo_got != ECHO_BYTES)
        fail("echoed %zu bytes of %u", echo_got, ECHO_BYTES);
    if (wait_notify(&e, 0))
        fail("a notification nobody asked for");
    printf("echo: %u bytes, %lu notifications\n", ECHO_BYTES, packets);
    if (!real) {
        rpstandin_get_stats(&st);
        printf("stand-in: RIONotify %lu, notified %lu, dequeue calls %lu, "
               "results %lu, largest batch %lu, WSARecv %lu, WSASend %lu, "
               "commits %lu, deferred requests issued %lu\n",
               st.notify_calls, st.notifications, st.dequeue_calls,
               st.dequeued, st.max_batch, st.issued_recv, st.issued_send,
               st.commits, st.deferred_issued);
        if (st.notifications != packets || st.notify_calls != packets)
            fail("%lu packets for %lu notifications and %lu RIONotify calls",
                 packets, st.notifications, st.notify_calls);
        if (st.deferred_issued == 0)
            fail("no deferred request was issued");
    }
    env_close(&e);
}

/*
 * RIONotify: nothing before a result; one packet per call; a queue that is
 * already non-empty notifies at once; RIO_MSG_DONT_NOTIFY results never do.
 */
static void
case_notify(void)
{
    struct env e;
    RIORESULT r;

    env_open(&e, 4, 2, 2);
    post(&e, 0, 0, SLICE, 0, 1);
    notify(&e);
    if (wait_notify(&e, 200))
        fail("notified with the queue empty");
    send(e.peer, "a", 1, 0);
    if (!wait_notify(&e, 5000))
        fail("no notification for a result");
    if (dequeue(&e, &r, 1) != 1 || r.BytesTransferred != 1)
        fail("expected 1 result of 1 byte");
    post(&e, 0, 0, SLICE, 0, 2);
    send(e.peer, "b", 1, 0);
    if (wait_notify(&e, 300))
        fail("notified without a RIONotify");
    notify(&e);
    if (!wait_notify(&e, 2000))
        fail("RIONotify on a non-empty queue did not notify at once");
    r = dequeue_one(&e, 2000);
    if (r.RequestContext != 2)
        fail("RequestContext %llu", r.RequestContext);
    post(&e, 0, 0, SLICE, RIO_MSG_DONT_NOTIFY, 3);
    notify(&e);
    send(e.peer, "c", 1, 0);
    r = dequeue_one(&e, 2000);
    if (r.RequestContext != 3)
        fail("RequestContext %llu", r.RequestContext);
    if (wait_notify(&e, 300))
        fail("a RIO_MSG_DONT_NOTIFY result notified");
    env_close(&e);
}

/*
 * RIO_MSG_DEFER: a deferred send is charged and completes once committed.
 * The stand-in never issues it before the commit (RIO may), so there the
 * peer must see nothing first.
 */
static void
case_defer(void)
{
    struct env e;
    RIORESULT r;
    char buf[16];
    DWORD ms = 300;
    int n;

    env_open(&e, 4, 2, 2);
    memcpy(e.mem, "hello", 5);
    post(&e, 1, 0, 5, RIO_MSG_DEFER, 7);
    setsockopt(e.peer, SOL_SOCKET, SO_RCVTIMEO, (char *) &ms, sizeof(ms));
    n = recv(e.peer, buf, sizeof(buf), 0);
    if (!real && n != SOCKET_ERROR)
        fail("a deferred send reached the peer before its commit (%d)", n);
    if (n == SOCKET_ERROR) {
        commit(&e, 1);
        ms = 5000;
        setsockopt(e.peer, SOL_SOCKET, SO_RCVTIMEO, (char *) &ms, sizeof(ms));
        n = recv(e.peer, buf, sizeof(buf), 0);
    }
    if (n != 5 || memcmp(buf, "hello", 5) != 0)
        fail("peer got %d bytes", n);
    notify(&e);
    if (!wait_notify(&e, 5000))
        fail("no notification for the committed send");
    if (dequeue(&e, &r, 1) != 1 || r.RequestContext != 7
        || r.BytesTransferred != 5 || r.Status != 0)
        fail("send result: context %llu, %lu bytes, status %ld",
             r.RequestContext, r.BytesTransferred, r.Status);
    env_close(&e);
}

/* Receives the stand-in has issued so far (0 on RIO). */
static ULONG
recvs_issued(void)
{
    struct rpstandin_stats st;

    if (real)
        return 0;
    rpstandin_get_stats(&st);
    return st.issued_recv;
}

/*
 * Until the stand-in has issued a receive since it had issued `before`
 * (the receive is in Winsock's hands, waiting for data); on RIO a moment.
 */
static void
wait_issued(ULONG before)
{
    int i;

    if (real) {
        Sleep(10);
        return;
    }
    for (i = 0; i < 5000 && recvs_issued() == before; i++)
        Sleep(1);
    if (recvs_issued() == before)
        fail("the stand-in issued no receive within 5 s");
}

/* 1 if the peer sees its connection end (EOF or reset) within ms. */
static int
peer_sees_close(SOCKET peer, DWORD ms)
{
    char buf[256];
    int n;

    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, (char *) &ms, sizeof(ms));
    do
        n = recv(peer, buf, sizeof(buf), 0);
    while (n > 0);
    return n == 0 || WSAGetLastError() != WSAETIMEDOUT;
}

/*
 * A request is bound to its socket, not to its handle value.  A receive
 * that data has woken just as its socket is closed must not take the data
 * of the socket that gets the handle value next: under Wine 8.0 the recv()
 * of an overlapped request woken by data runs a moment later, on whatever
 * the request's handle value names by then, so a stand-in issuing its
 * requests on the caller's handle loses this race now and then (here: in
 * every run of this loop), and so would one closing a handle of its own
 * under such a request.  Each round A, with a receive issued, gets data
 * and is closed at once; B, whose peer has already sent its bytes, is
 * accepted straight after.  Wine gives a new handle the lowest free value,
 * so the test chooses the value B gets: every value below A's is taken by
 * a placeholder event (before the request queue is made, so the stand-in's
 * own handles come above A's), and the lowest placeholder is freed just
 * before the accept, for the temporary handle Wine's accept() makes first.
 * Even rounds: B gets A's value (in 64 to 100% of them here, not always,
 * for a reason not pinned down; a quarter is required).  Odd rounds: A's
 * value is taken again by an event first, so B gets the lowest value freed
 * by the close besides A's: a handle of the stand-in's own closed under
 * the request, if one was.  B must read exactly its peer's bytes; A's
 * receive must end with A's bytes or an error, and A's peer must see the
 * close.
 */
#define BIND_ROUNDS  600        /* on RIO: 50 */

static void
close_binds(struct env *e)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    int len = sizeof(a), n, got, i, round, reused = 0, aborted = 0;
    int rounds = real ? 50 : BIND_ROUNDS;
    static char abuf[SLICE], bbuf[SLICE];
    HANDLE ph[258];
    int nph;
    SOCKET l, peer_b, b, s_a, peer_a;
    RIORESULT r;
    DWORD ms = 5000;
    ULONG issued;

    memset(abuf, 'A', sizeof(abuf));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (l == INVALID_SOCKET || bind(l, (struct sockaddr *) &a, sizeof(a))
        || listen(l, 1) || getsockname(l, (struct sockaddr *) &a, &len))
        fail("B's listener: error %d", WSAGetLastError());
    for (round = 0; round < rounds; round++) {
        nph = 0;
        ph[nph++] = CreateEventW(NULL, FALSE, FALSE, NULL);
        /* B: connected, its bytes sent, waiting in the backlog */
        memset(bbuf, 'B', sizeof(bbuf));
        peer_b = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        if (peer_b == INVALID_SOCKET
            || connect(peer_b, (struct sockaddr *) &a, sizeof(a))
            || send(peer_b, bbuf, sizeof(bbuf), 0) != sizeof(bbuf))
            fail("round %d: B's peer: error %d", round, WSAGetLastError());
        tcp_pair(&s_a, &peer_a, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
        while (nph < 256) {
            ph[nph] = CreateEventW(NULL, FALSE, FALSE, NULL);
            if (ph[nph] == NULL)
                fail("CreateEventW: %lu", GetLastError());
            if ((ULONG_PTR) ph[nph++] > (ULONG_PTR) s_a)
                break;
        }
        e->rq = rq_new(e, s_a, 1, 1);
        issued = recvs_issued();
        post(e, 0, 0, SLICE, 0, 3);
        wait_issued(issued);
        if (send(peer_a, abuf, sizeof(abuf), 0) != sizeof(abuf))
            fail("round %d: A's peer: send: error %d", round,
                 WSAGetLastError());
        sock_close(s_a);
        if (round & 1)
            ph[nph++] = CreateEventW(NULL, FALSE, FALSE, NULL);
        CloseHandle(ph[0]);
        b = accept(l, NULL, NULL);
        ph[0] = CreateEventW(NULL, FALSE, FALSE, NULL);
        if (b == INVALID_SOCKET)
            fail("round %d: accept B: error %d", round, WSAGetLastError());
        reused += !(round & 1) && b == s_a;
        setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, (char *) &ms, sizeof(ms));
        memset(bbuf, 0, sizeof(bbuf));
        for (got = 0; got < (int) sizeof(bbuf); got += n) {
            n = recv(b, bbuf + got, sizeof(bbuf) - got, 0);
            if (n <= 0)
                fail("round %d: B read %d of its peer's %d bytes (then %d, "
                     "error %d): a receive of closed A took them through a "
                     "handle value B now has", round, got,
                     (int) sizeof(bbuf), n, WSAGetLastError());
        }
        for (i = 0; i < got; i++)
            if (bbuf[i] != 'B')
                fail("round %d: B read a byte not from its peer at %d",
                     round, i);
        r = dequeue_one(e, 5000);
        if (r.RequestContext != 3)
            fail("round %d: A's result: context %llu", round,
                 r.RequestContext);
        if (r.Status != 0)
            aborted++;
        else
            for (i = 0; i < (int) r.BytesTransferred; i++)
                if (e->mem[i] != 'A')
                    fail("round %d: A's receive got a byte not from A's "
                         "peer at %d", round, i);
        if (!peer_sees_close(peer_a, 5000))
            fail("round %d: A's peer saw no end of the connection within "
                 "5 s of the close", round);
        while (nph > 0)
            CloseHandle(ph[--nph]);
        closesocket(b);
        closesocket(peer_b);
        closesocket(peer_a);
    }
    closesocket(l);
    printf("close: %d rounds, B got A's handle value in %d of the %d even "
           "ones, A's receive woken by data at the close ended with an "
           "error in %d\n", rounds, reused, rounds / 2, aborted);
    if (!real && reused < rounds / 2 / 4)
        fail("B got A's handle value in %d of %d even rounds: the case did "
             "not test what it should", reused, rounds / 2);
}

/*
 * End of stream and close: the peer's FIN completes a receive with 0 bytes;
 * closing our socket completes its pending receive (issued, waiting for
 * data) with an error and the peer sees the connection end; the completion
 * queue entries its request queue held are free again once that result is
 * dequeued.  Then close_binds().
 */
static void
case_close(void)
{
    struct env e;
    RIORESULT r;
    SOCKET s2, peer2;
    ULONG issued;

    env_open(&e, 2, 1, 1);
    post(&e, 0, 0, SLICE, 0, 1);
    shutdown(e.peer, SD_SEND);
    notify(&e);
    if (!wait_notify(&e, 5000))
        fail("no notification for end of stream");
    if (dequeue(&e, &r, 1) != 1 || r.Status != 0 || r.BytesTransferred != 0)
        fail("end of stream: status %ld, %lu bytes", r.Status,
             r.BytesTransferred);
    closesocket(e.peer);
    tcp_pair(&s2, &peer2, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
    sock_close(e.s);
    e.s = s2;
    e.peer = peer2;
    e.rq = rq_new(&e, s2, 1, 1);
    issued = recvs_issued();
    post(&e, 0, 0, SLICE, 0, 2);
    notify(&e);
    wait_issued(issued);
    sock_close(s2);
    if (!wait_notify(&e, 5000))
        fail("no notification for a receive cut by close");
    if (dequeue(&e, &r, 1) != 1 || r.Status == 0)
        fail("receive cut by close: status %ld", r.Status);
    printf("close: pending receive completed with status %ld\n", r.Status);
    if (!peer_sees_close(e.peer, 5000))
        fail("the peer saw no end of the connection within 5 s of the "
             "close");
    closesocket(e.peer);
    close_binds(&e);
    tcp_pair(&e.s, &e.peer, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
    e.rq = rq_new(&e, e.s, 1, 1);
    env_close(&e);
}

/* RIO_EVENT_COMPLETION: the event is set by a result after RIONotify. */
static void
case_notify_event(void)
{
    RIO_NOTIFICATION_COMPLETION nc;
    struct env e;
    HANDLE ev;
    RIORESULT r;

    memset(&e, 0, sizeof(e));
    e.mem = VirtualAlloc(NULL, SLICES * SLICE, MEM_COMMIT | MEM_RESERVE,
                         PAGE_READWRITE);
    e.id = rio.RIORegisterBuffer(e.mem, SLICES * SLICE);
    ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    memset(&nc, 0, sizeof(nc));
    nc.Type = RIO_EVENT_COMPLETION;
    nc.Event.EventHandle = ev;
    nc.Event.NotifyReset = FALSE;
    e.cq = rio.RIOCreateCompletionQueue(4, &nc);
    if (e.cq == RIO_INVALID_CQ)
        fail("RIOCreateCompletionQueue: error %d", WSAGetLastError());
    tcp_pair(&e.s, &e.peer, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
    e.rq = rq_new(&e, e.s, 2, 2);
    post(&e, 0, 0, SLICE, 0, 1);
    notify(&e);
    if (WaitForSingleObject(ev, 200) != WAIT_TIMEOUT)
        fail("the event was set with the queue empty");
    send(e.peer, "a", 1, 0);
    if (WaitForSingleObject(ev, 5000) != WAIT_OBJECT_0)
        fail("the event was not set for a result");
    if (dequeue(&e, &r, 1) != 1 || r.BytesTransferred != 1)
        fail("expected 1 result of 1 byte");
    ResetEvent(ev);
    post(&e, 0, 0, SLICE, 0, 2);
    send(e.peer, "b", 1, 0);
    r = dequeue_one(&e, 2000);
    if (WaitForSingleObject(ev, 300) != WAIT_TIMEOUT)
        fail("the event was set without a RIONotify");
    sock_close(e.s);
    closesocket(e.peer);
    rio.RIOCloseCompletionQueue(e.cq);
    rio.RIODeregisterBuffer(e.id);
    CloseHandle(ev);
    if (!real && rpstandin_leftovers() != 0)
        fail("the stand-in reports things not given back");
}

/*
 * RIOResizeRequestQueue and RIOResizeCompletionQueue: a deeper request
 * queue takes more receives, a completion queue may shrink to what its
 * request queues need.
 */
static void
case_resize(void)
{
    struct env e;
    RIORESULT r[4];
    ULONG got = 0, n;

    env_open(&e, 8, 1, 1);
    post(&e, 0, 0, SLICE, RIO_MSG_DEFER, 0);
    if (!rio.RIOResizeRequestQueue(e.rq, 3, 1))
        fail("RIOResizeRequestQueue(3, 1): error %d", WSAGetLastError());
    post(&e, 0, 1, SLICE, RIO_MSG_DEFER, 1);
    post(&e, 0, 2, SLICE, 0, 2);
    if (!rio.RIOResizeCompletionQueue(e.cq, 4))
        fail("RIOResizeCompletionQueue(4): error %d", WSAGetLastError());
    send(e.peer, "abc", 3, 0);
    shutdown(e.peer, SD_SEND);
    while (got < 3) {
        notify(&e);
        if (!wait_notify(&e, 5000))
            fail("%lu of 3 receives completed", got);
        while ((n = dequeue(&e, r, 4)) > 0)
            got += n;
    }
    env_close(&e);
}

/* RIO_CORRUPT_CQ: a damaged queue says so, and takes no more requests. */
static void
case_corrupt(void)
{
    struct env e;
    RIORESULT r;
    RIO_BUF b;

    if (real)
        skip("needs the stand-in's hook to damage a queue");
    env_open(&e, 4, 2, 2);
    rpstandin_corrupt_cq(e.cq);
    if (rio.RIODequeueCompletion(e.cq, &r, 1) != RIO_CORRUPT_CQ)
        fail("a damaged queue did not answer RIO_CORRUPT_CQ");
    b = slice(&e, 0, SLICE);
    if (rio.RIOReceive(e.rq, &b, 1, 0, NULL)
        || WSAGetLastError() != WSAEINVAL)
        fail("a request into a damaged queue did not fail with WSAEINVAL");
    sock_close(e.s);
    closesocket(e.peer);
    rio.RIOCloseCompletionQueue(e.cq);
    rio.RIODeregisterBuffer(e.id);
}

/* The table through rpstandin_WSAIoctl, as an engine would ask for it. */
static void
case_table(void)
{
    RIO_EXTENSION_FUNCTION_TABLE t;
    GUID g = WSAID_MULTIPLE_RIO;
    DWORD bytes = 0, i;
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    void **fn = (void **) &t.RIOReceive;

    memset(&t, 0, sizeof(t));
    if (rpstandin_WSAIoctl(s, SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER,
                           &g, sizeof(g), &t, sizeof(t), &bytes, NULL,
                           NULL) != 0)
        fail("rpstandin_WSAIoctl: error %d", WSAGetLastError());
    if (bytes != sizeof(t) || t.cbSize != sizeof(t))
        fail("%lu bytes, cbSize %lu", bytes, t.cbSize);
    for (i = 0; i < 13; i++)
        if (fn[i] == NULL)
            fail("table entry %lu is NULL", i);
    closesocket(s);
}

/* Wine has no RIO: the reason the stand-in exists (fails if that changes). */
static void
case_wine_lacks_rio(void)
{
    RIO_EXTENSION_FUNCTION_TABLE t;
    GUID g = WSAID_MULTIPLE_RIO;
    DWORD bytes = 0;
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);

    if (WSAIoctl(s, SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER, &g,
                 sizeof(g), &t, sizeof(t), &bytes, NULL, NULL) == 0)
        fail("WSAIoctl returned a RIO table: this system has RIO, run the "
             "tests with --real");
    printf("WSAIoctl(SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER, "
           "WSAID_MULTIPLE_RIO): error %d\n", WSAGetLastError());
    closesocket(s);
}

/* --- rule breaches: each must end the process with the rule's name --- */

static void
undetected(void)
{
    fail("breach not detected (last error %d)", WSAGetLastError());
}

static struct env be;

static DWORD WINAPI
thread_recv(LPVOID arg)
{
    (void) arg;
    post(&be, 0, 0, SLICE, RIO_MSG_DEFER, 0);
    return 0;
}

static DWORD WINAPI
thread_dequeue(LPVOID arg)
{
    RIORESULT r;

    (void) arg;
    rio.RIODequeueCompletion(be.cq, &r, 1);
    return 0;
}

static void
case_breach(const char *name)
{
    RIO_BUF b;
    RIO_CQ cq;
    RIO_NOTIFICATION_COMPLETION nc;
    RIORESULT r;
    RIO_BUFFERID id;
    SOCKET s, peer;

    if (real)
        skip("rule breaches are the stand-in's to catch");
    if (!strcmp(name, "buffer-id")) {
        env_open(&be, 4, 2, 2);
        b.BufferId = (RIO_BUFFERID) (ULONG_PTR) 12345;
        b.Offset = 0;
        b.Length = 16;
        rio.RIOReceive(be.rq, &b, 1, 0, NULL);
    } else if (!strcmp(name, "buffer-id-stale")) {
        env_open(&be, 4, 2, 2);
        id = rio.RIORegisterBuffer(be.mem + SLICE, SLICE);
        rio.RIODeregisterBuffer(id);
        b.BufferId = id;
        b.Offset = 0;
        b.Length = 16;
        rio.RIOSend(be.rq, &b, 1, 0, NULL);
    } else if (!strcmp(name, "buffer-range")) {
        env_open(&be, 4, 2, 2);
        b = slice(&be, SLICES - 1, 200);
        b.Offset += SLICE - 100;
        rio.RIOReceive(be.rq, &b, 1, 0, NULL);
    } else if (!strcmp(name, "buffer-overlap")) {
        env_open(&be, 4, 2, 2);
        post(&be, 0, 0, 100, 0, 0);
        b = slice(&be, 0, 100);
        b.Offset = 50;
        rio.RIOSend(be.rq, &b, 1, 0, NULL);
    } else if (!strcmp(name, "recv-depth")) {
        env_open(&be, 4, 2, 2);
        post(&be, 0, 0, SLICE, RIO_MSG_DEFER, 0);
        post(&be, 0, 1, SLICE, RIO_MSG_DEFER, 1);
        b = slice(&be, 2, SLICE);
        rio.RIOReceive(be.rq, &b, 1, RIO_MSG_DEFER, NULL);
    } else if (!strcmp(name, "send-depth")) {
        env_open(&be, 4, 2, 1);
        post(&be, 1, 0, 10, RIO_MSG_DEFER, 0);
        b = slice(&be, 1, 10);
        rio.RIOSend(be.rq, &b, 1, RIO_MSG_DEFER, NULL);
    } else if (!strcmp(name, "send-depth-until-dequeued")) {
        env_open(&be, 4, 2, 1);
        post(&be, 1, 0, 10, 0, 0);
        notify(&be);
        if (!wait_notify(&be, 5000))
            fail("the first send did not complete");
        b = slice(&be, 1, 10);
        rio.RIOSend(be.rq, &b, 1, 0, NULL);
    } else if (!strcmp(name, "cq-capacity")) {
        env_open(&be, 4, 2, 2);
        tcp_pair(&s, &peer, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
        rio.RIOCreateRequestQueue(s, 1, 1, 0, 1, be.cq, be.cq, NULL);
    } else if (!strcmp(name, "cq-capacity-one")) {
        env_open(&be, 4, 1, 1);
        tcp_pair(&s, &peer, WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
        cq = cq_new(&be, 4);
        rio.RIOCreateRequestQueue(s, 2, 1, 3, 1, cq, cq, NULL);
    } else if (!strcmp(name, "cq-capacity-resize")) {
        env_open(&be, 4, 2, 2);
        rio.RIOResizeCompletionQueue(be.cq, 3);
    } else if (!strcmp(name, "cq-size")) {
        rio.RIOCreateCompletionQueue(0, NULL);
    } else if (!strcmp(name, "notify-pending")) {
        env_open(&be, 4, 2, 2);
        notify(&be);
        rio.RIONotify(be.cq);
    } else if (!strcmp(name, "notify-setup")) {
        memset(&nc, 0, sizeof(nc));
        nc.Type = RIO_IOCP_COMPLETION;
        nc.Iocp.IocpHandle = CreateIoCompletionPort(INVALID_HANDLE_VALUE,
                                                    NULL, 0, 1);
        rio.RIOCreateCompletionQueue(4, &nc);
    } else if (!strcmp(name, "rq-threads")) {
        env_open(&be, 4, 2, 2);
        rpstandin_hold_ms(500);
        CreateThread(NULL, 0, thread_recv, NULL, 0, NULL);
        Sleep(100);
        b = slice(&be, 1, 10);
        rio.RIOSend(be.rq, &b, 1, RIO_MSG_DEFER, NULL);
    } else if (!strcmp(name, "cq-threads")) {
        env_open(&be, 4, 2, 2);
        rpstandin_hold_ms(500);
        CreateThread(NULL, 0, thread_dequeue, NULL, 0, NULL);
        Sleep(100);
        rio.RIODequeueCompletion(be.cq, &r, 1);
    } else if (!strcmp(name, "socket-flag")) {
        memset(&be, 0, sizeof(be));
        be.iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
        be.cq = cq_new(&be, 4);
        tcp_pair(&s, &peer, WSA_FLAG_OVERLAPPED);
        rio.RIOCreateRequestQueue(s, 1, 1, 1, 1, be.cq, be.cq, NULL);
    } else if (!strcmp(name, "deregister-in-use")) {
        env_open(&be, 4, 2, 2);
        post(&be, 0, 0, SLICE, 0, 0);
        rio.RIODeregisterBuffer(be.id);
    } else if (!strcmp(name, "cq-close-in-use")) {
        env_open(&be, 4, 2, 2);
        post(&be, 0, 0, SLICE, 0, 0);
        rio.RIOCloseCompletionQueue(be.cq);
    } else if (!strcmp(name, "rq-handle")) {
        env_open(&be, 4, 2, 2);
        sock_close(be.s);
        b = slice(&be, 0, 10);
        rio.RIOSend(be.rq, &b, 1, 0, NULL);
    } else if (!strcmp(name, "cq-handle")) {
        env_open(&be, 4, 2, 2);
        sock_close(be.s);
        rio.RIOCloseCompletionQueue(be.cq);
        rio.RIODequeueCompletion(be.cq, &r, 1);
    } else if (!strcmp(name, "args-commit")) {
        env_open(&be, 4, 2, 2);
        b = slice(&be, 0, 10);
        rio.RIOSend(be.rq, &b, 1, RIO_MSG_COMMIT_ONLY, NULL);
    } else if (!strcmp(name, "args-flags")) {
        env_open(&be, 4, 2, 2);
        b = slice(&be, 0, 10);
        rio.RIOSend(be.rq, &b, 1, RIO_MSG_WAITALL, NULL);
    } else {
        fprintf(stderr, "unknown breach case %s\n", name);
        ExitProcess(2);
    }
    undetected();
}

int
main(int argc, char **argv)
{
    WSADATA wd;
    GUID g = WSAID_MULTIPLE_RIO;
    DWORD bytes;
    SOCKET s;
    const char *name;
    int a = 1;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > a && !strcmp(argv[a], "--real")) {
        real = 1;
        a++;
    }
    if (argc != a + 1) {
        fprintf(stderr, "usage: rio-standin-test [--real] CASE\n");
        return 2;
    }
    name = argv[a];
    if (WSAStartup(MAKEWORD(2, 2), &wd))
        fail("WSAStartup");
    if (real) {
        s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        if (WSAIoctl(s, SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER, &g,
                     sizeof(g), &rio, sizeof(rio), &bytes, NULL, NULL))
            skip("no RIO here: WSAIoctl(WSAID_MULTIPLE_RIO) failed");
        closesocket(s);
        sock_new = WSASocketW;
        sock_accept = accept;
        sock_close = closesocket;
    } else {
        rpstandin_rio_table(&rio);
        sock_new = rpstandin_WSASocketW;
        sock_accept = rpstandin_accept;
        sock_close = rpstandin_closesocket;
    }
    if (!strcmp(name, "echo"))
        case_echo();
    else if (!strcmp(name, "notify"))
        case_notify();
    else if (!strcmp(name, "defer"))
        case_defer();
    else if (!strcmp(name, "close"))
        case_close();
    else if (!strcmp(name, "notify-event"))
        case_notify_event();
    else if (!strcmp(name, "resize"))
        case_resize();
    else if (!strcmp(name, "corrupt"))
        case_corrupt();
    else if (!strcmp(name, "table"))
        case_table();
    else if (!strcmp(name, "wine-lacks-rio"))
        case_wine_lacks_rio();
    else if (!strncmp(name, "breach-", 7))
        case_breach(name + 7);
    else {
        fprintf(stderr, "unknown case %s\n", name);
        return 2;
    }
    return 0;
}
