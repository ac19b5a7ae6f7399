/*
 * A STAND-IN for Winsock's Registered I/O, for tests only.
 *
 * Wine (Debian 12's 8.0) has no RIO: WSAIoctl(SIO_GET_MULTIPLE_EXTENSION_
 * FUNCTION_POINTER, WSAID_MULTIPLE_RIO) fails there.  This file gives a
 * RIO_EXTENSION_FUNCTION_TABLE whose functions (rpstandin_RIOReceive, ...)
 * do the I/O with overlapped WSARecv/WSASend and deliver completions the
 * way RIO does: into fixed-size completion queues drained by
 * RIODequeueCompletion, with one notification per RIONotify posted to the
 * IOCP (or event) named at RIOCreateCompletionQueue.
 *
 * It is stricter than RIO.  Every documented rule is checked, and a breach
 * ends the process at once with a line "rpstandin: RIO rule broken
 * [<rule>]: ..." on stderr and exit code RPSTANDIN_EXIT_BREACH, where real
 * RIO would return an error the caller may not look at (or, for some rules,
 * corrupt its queues silently).  The rules, by name:
 *   buffer-id          a RIO_BUF names no registered buffer (never
 *                      registered, or deregistered)
 *   buffer-range       Offset/Length not inside the registered buffer, or 0
 *   buffer-overlap     a slice overlaps one an unfinished request uses
 *                      (RIOReceive/RIOSend remarks)
 *   recv-depth         more than MaxOutstandingReceive receives charged to
 *   send-depth         (or sends) the request queue; RIO_MSG_DEFER requests
 *                      count, and a request stays charged until its
 *                      completion is dequeued
 *   cq-capacity        the request queues bound to a completion queue need
 *                      more entries than it has (RIOCreateRequestQueue,
 *                      RIOResizeRequestQueue, RIOResizeCompletionQueue)
 *   cq-size            a queue size of 0 or above RIO_MAX_CQ_SIZE
 *   notify-pending     RIONotify while the previous one has not fired
 *                      (RIO returns WSAEALREADY)
 *   notify-setup       RIO_IOCP_COMPLETION without an IOCP or an
 *                      OVERLAPPED, RIO_EVENT_COMPLETION without an event,
 *                      RIONotify on a queue made without notification
 *   rq-threads         two threads in one request queue at once
 *                      (RIO_MSG_COMMIT_ONLY excepted, as documented)
 *   cq-threads         two threads in one completion queue at once
 *   socket-flag        a request queue for a socket not made with
 *                      WSA_FLAG_REGISTERED_IO, or a second one for a socket
 *   deregister-in-use  RIODeregisterBuffer while a request not yet dequeued
 *                      uses the buffer ("a serious error", undefined in RIO)
 *   cq-close-in-use    RIOCloseCompletionQueue while requests that complete
 *                      into it are not yet dequeued
 *   rq-handle          a RIO_RQ that is not a live request queue
 *   cq-handle          a RIO_CQ that is not a live completion queue
 *   args               bad flags for the call, RIO_MSG_COMMIT_ONLY with
 *                      data or context, a buffer count other than 1, a NULL
 *                      array or size 0 for RIODequeueCompletion
 * What the stand-in cannot do (TCP only, no RIOReceiveEx/RIOSendEx
 * addresses) ends the process the same way with RPSTANDIN_EXIT_UNSUPPORTED.
 *
 * WSA_FLAG_REGISTERED_IO cannot be read back from a socket, so the sockets
 * a request queue is made for must come from rpstandin_WSASocketW() with
 * the flag, or rpstandin_accept() on such a listener; and closed with
 * rpstandin_closesocket(), which completes the socket's unfinished
 * requests with WSA_OPERATION_ABORTED and frees its request queue once
 * they are dequeued.  rpstandin_WSAIoctl() answers the RIO table request
 * and passes everything else to WSAIoctl(): code under test takes its
 * function table from it as it would from WSAIoctl() on Windows.
 *
 * The I/O runs on one thread of the stand-in's own ("the kernel"):
 * requests are issued there in the order they are committed (RIO_MSG_DEFER
 * requests wait for the next request without it, or RIO_MSG_COMMIT_ONLY,
 * and are never issued before), and the call that commits them returns
 * once they are issued, as RIO's call hands them to the kernel;
 * completions arrive there as WSARecv/WSASend completion routines.
 * They are issued on a duplicate of the socket (WSADuplicateSocketW) the
 * request queue holds, never on the caller's handle: a request is bound
 * to its socket, as RIO's are.  The caller's sockets are never associated
 * with an IOCP by the stand-in.
 */

#ifndef RPSTANDIN_RIO_H
#define RPSTANDIN_RIO_H

#include "rio.h"

#define RPSTANDIN_EXIT_BREACH       86
#define RPSTANDIN_EXIT_UNSUPPORTED  87

/*
 * Fill *table with the stand-in's RIO functions (cbSize set) and start its
 * I/O thread on first use.  The table stays valid for the process.
 */
void rpstandin_rio_table(RIO_EXTENSION_FUNCTION_TABLE *table);

/*
 * WSAIoctl() as code under test calls it: SIO_GET_MULTIPLE_EXTENSION_
 * FUNCTION_POINTER with WSAID_MULTIPLE_RIO fills the caller's
 * RIO_EXTENSION_FUNCTION_TABLE from rpstandin_rio_table() and returns 0
 * (WSAEFAULT and SOCKET_ERROR if the output is too small); any other
 * request is WSAIoctl()'s.
 */
int WSAAPI rpstandin_WSAIoctl(SOCKET s, DWORD code, LPVOID in, DWORD inlen,
                              LPVOID out, DWORD outlen, LPDWORD bytes,
                              LPWSAOVERLAPPED ov,
                              LPWSAOVERLAPPED_COMPLETION_ROUTINE routine);

/*
 * WSASocketW(); a socket made with WSA_FLAG_REGISTERED_IO is remembered as
 * one that may get a request queue.
 */
SOCKET WSAAPI rpstandin_WSASocketW(int af, int type, int protocol,
                                   LPWSAPROTOCOL_INFOW info, GROUP g,
                                   DWORD flags);

/* accept(); the new socket is registered-I/O capable if the listener is. */
SOCKET WSAAPI rpstandin_accept(SOCKET s, struct sockaddr *addr, int *len);

/*
 * closesocket(); first the socket's request queue (if any) is closed:
 * requests never issued complete with WSA_OPERATION_ABORTED, issued ones
 * are cancelled (CancelIoEx) and complete with whatever that gives them
 * (WSA_OPERATION_ABORTED, or the bytes of a request that finished first).
 * The requests are bound to the socket, not to its handle value: they run
 * on a duplicate of the socket of the stand-in's own, which this call
 * closes once the issued ones are back (it waits for them up to 5 s, then
 * says so on stderr), so the socket is closed when it returns.  Its
 * completion queue entries are released when the last result is dequeued.
 */
int WSAAPI rpstandin_closesocket(SOCKET s);

/*
 * 1 if s is the stand-in's own handle of a socket whose request queue is
 * live (the duplicate its requests go on).  Real RIO holds a socket
 * without a handle: a test that counts the handles on a connection leaves
 * these out.
 */
int rpstandin_owns(SOCKET s);

/*
 * Test hooks.  rpstandin_hold_ms(): every request queue and completion
 * queue call keeps its queue marked busy this much longer, so a test can
 * make two threads meet in one queue.  rpstandin_corrupt_cq(): from now on
 * the queue answers RIODequeueCompletion with RIO_CORRUPT_CQ and requests
 * into it fail with WSAEINVAL, as RIO's do when it finds a queue damaged.
 */
void rpstandin_hold_ms(DWORD ms);
void rpstandin_corrupt_cq(RIO_CQ cq);

/* Counters since the process started. */
struct rpstandin_stats {
    unsigned long notify_calls;     /* RIONotify calls */
    unsigned long notifications;    /* notifications delivered */
    unsigned long dequeue_calls;    /* RIODequeueCompletion calls */
    unsigned long dequeued;         /* results returned */
    unsigned long max_batch;        /* most results one call returned */
    unsigned long issued_recv;      /* WSARecv calls */
    unsigned long issued_send;      /* WSASend calls */
    unsigned long commits;          /* times deferred requests were issued */
    unsigned long deferred_issued;  /* requests issued after RIO_MSG_DEFER */
};
void rpstandin_get_stats(struct rpstandin_stats *st);

/*
 * What is left: registered buffers, deferred requests never committed,
 * requests not yet dequeued, completion queues not closed.  Each is
 * printed to stderr; returns how many there are (0: all was given back).
 */
int rpstandin_leftovers(void);

#endif /* RPSTANDIN_RIO_H */
