/*
 * ringplug core: the completion engine that the nginx module and the
 * libevent backend share.
 *
 * This header is the seam.  It names no host type (nginx, libevent) and no
 * kernel interface type, and builds on POSIX and Windows alike, so every
 * engine implements the same functions: io_uring on Linux (core/uring.c,
 * whose header comment gives its specifics), Registered I/O on Windows.
 *
 * Model
 * -----
 * One engine per event loop (an nginx worker, a libevent event_base).  The
 * host opens one rp_fd per socket it wants on the engine and gets back a
 * core-owned handle; every operation the kernel runs on the host's behalf
 * belongs to that handle, never to a host struct.  A handle is closed with
 * rp_fd_close(); completions that arrive for it afterwards (the socket
 * number may already have been reused by the host) are recognised, their
 * buffers returned, and dropped.
 *
 * Work is batched: calls below only queue requests.  rp_engine_wait()
 * hands everything queued to the kernel in one call together with the
 * wait, then reaps all completions and reports them through the host's
 * callback.  A full request queue flushes itself; rp_fd_close() submits its
 * cancels at once so the socket really closes.
 *
 * Each fd is used in one of two modes, which may change over its life:
 *  - readiness: rp_poll() arms a poll (multishot for edge-triggered use,
 *    one-shot for level-triggered use); the callback gets RP_EV_POLL with
 *    the ready mask.
 *  - completion: rp_recv_start() arms a multishot receive into the engine's
 *    provided buffers; data queues on the handle and RP_EV_RECV tells the
 *    host to take it with rp_recv_copy() or rp_recv_peek()/rp_recv_consume().
 *    rp_send() queues bytes; one send is in flight per fd, so byte order is
 *    kept, and partial sends are continued.
 *
 * What every engine must do
 * -------------------------
 * Everything the functions below promise, on the engine's own kernel
 * interface: requests queued between waits go to the kernel together; one
 * wait per loop pass that also takes the host's timeout; completions of a
 * closed handle never reach the host; a receive that runs out of provided
 * buffers stops and resumes by itself, losing and reordering nothing; one
 * send in flight per fd; a close cancels the fd's requests at once.  An
 * engine whose kernel interface has no readiness of its own (RIO) still
 * implements rp_poll(), with the OS's readiness mechanism reported through
 * the same wait and the same callback (on Windows: the AFD poll technique on
 * the engine's completion port); it returns -EOPNOTSUPP for a descriptor it
 * cannot watch, and the host then keeps that descriptor on its own loop.
 * An engine that cannot run at all fails rp_engine_create() with a reason,
 * and the host falls back to its own loop.
 *
 * Errors are returned as -errno.  Nothing here is thread-safe: an engine is
 * used by one thread at a time.
 */

#ifndef RINGPLUG_H
#define RINGPLUG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rp_engine rp_engine_t;
typedef struct rp_fd     rp_fd_t;

/* A socket: a descriptor on POSIX, a SOCKET (UINT_PTR) on Windows. */
#ifdef _WIN32
typedef uintptr_t rp_socket_t;
#define RP_INVALID_SOCKET  (~(rp_socket_t) 0)
#else
typedef int rp_socket_t;
#define RP_INVALID_SOCKET  (-1)
#endif

/*
 * A piece of memory to send.  On POSIX its layout is struct iovec's (core
 * checks it), so a host passes its iovec array with a cast and no copy.
 */
typedef struct rp_iovec {
    void    *iov_base;
    size_t   iov_len;
} rp_iovec_t;

/* Ready mask for rp_poll() and RP_EV_POLL; the same bits as poll(2). */
#define RP_IN       0x0001u
#define RP_PRI      0x0002u
#define RP_OUT      0x0004u
#define RP_ERR      0x0008u
#define RP_HUP      0x0010u
#define RP_RDHUP    0x2000u

/* rp_poll() flags. */
#define RP_POLL_MULTISHOT  0x1u   /* stays armed: edge-triggered use */
#define RP_POLL_ONESHOT    0x0u   /* fires once: re-arm for level-triggered */

/* rp_engine_params.flags */
#define RP_ENGINE_SHARED_THREADS  0x1u  /* the loop may move between threads:
                                           the engine must not bind itself
                                           to the creating thread */

typedef struct rp_engine_params {
    unsigned  entries;      /* requests queued per pass before the engine
                               submits early; 0: 1024 */
    unsigned  cq_entries;   /* completions the kernel can hold; 0: 8 x
                               entries */
    unsigned  buf_count;    /* provided buffers (the engine may round up:
                               rp_bufs_total() tells); 0: 1024;
                               RP_NO_BUFFERS: none (readiness only) */
    unsigned  buf_size;     /* bytes per provided buffer; 0: 16384 */
    unsigned  flags;        /* RP_ENGINE_* */
    unsigned  flush_timeout_ms; /* RP_CLOSE_FLUSH gives up after this long
                               without the peer taking bytes; 0: 60000 */
} rp_engine_params_t;

#define RP_NO_BUFFERS  0xffffffffu

/* Events delivered to the host callback. */
enum rp_event {
    RP_EV_POLL = 1,   /* res: ready mask (RP_IN...), or -errno */
    RP_EV_RECV,       /* data, EOF or an error is queued on the fd:
                         drain with rp_recv_copy()/rp_recv_peek() */
    RP_EV_SEND,       /* res: bytes the kernel accepted, or -errno; the send
                         queue shrank (see rp_send_pending()) */
};

/*
 * The host's completion callback.  fd_data is what the host passed to
 * rp_fd_open() (or rp_fd_set_data()); it is never called for a closed fd.
 */
typedef void (*rp_event_cb)(rp_engine_t *e, rp_fd_t *f, void *fd_data,
    enum rp_event ev, int res);

/* Engine counters; all monotonic except the three "now" fields. */
typedef struct rp_stats {
    uint64_t  enters;          /* calls into the kernel's I/O interface (any
                                  reason): io_uring_enter on io_uring */
    uint64_t  waits;           /* rp_engine_wait calls */
    uint64_t  sqes;            /* requests submitted */
    uint64_t  cqes;            /* completions reaped */
    uint64_t  recv_bytes;
    uint64_t  send_bytes;
    uint64_t  enobufs;         /* multishot receives stopped by ENOBUFS */
    uint64_t  rearms;          /* receives re-armed after ENOBUFS or end */
    uint64_t  cancels;         /* cancel requests submitted */
    uint64_t  stale;           /* completions for closed fds, dropped */
    uint64_t  sq_full;         /* early submits: the submission queue was
                                  full */
    uint64_t  cq_overflow;     /* passes that found the completion queue
                                  overflowed */
    uint64_t  send_partial;    /* short sends continued */
    uint64_t  flush_timeouts;  /* closed fds whose queue was dropped because
                                  the peer stopped reading */
    uint32_t  bufs_in_use_now; /* provided buffers held by the host/queues */
    uint32_t  fds_open_now;
    uint32_t  flushing_now;    /* closed with RP_CLOSE_FLUSH, still sending */
} rp_stats_t;

/*
 * Create an engine: the kernel side (a ring, a completion queue), its
 * provided buffers and the op tables.  What the engine requires of the
 * kernel is probed here, once.  On failure returns -errno and writes a
 * one-line human reason (blocked by a seccomp filter or a sysctl, a memory
 * limit, a kernel too old, naming the missing feature) into why (if
 * why_len > 0).  On success *out owns the kernel objects; free it with
 * rp_engine_destroy().
 */
int rp_engine_create(const rp_engine_params_t *p, rp_event_cb cb,
    rp_engine_t **out, char *why, size_t why_len);

/*
 * Cancel everything, wait briefly for the kernel to let go of every buffer,
 * and free the engine.  Host data of open fds is not touched and no callback
 * runs.  While requests are still in the kernel this waits for them, up to
 * about 100 ms: a host that closes its fds (rp_fd_close) and runs one
 * rp_engine_wait(e, 0) first makes it return at once.
 */
void rp_engine_destroy(rp_engine_t *e);

/*
 * Free the engine in a child after fork(): its kernel objects are shared
 * with the parent, so nothing is cancelled or submitted, only this
 * process's references and memory are dropped.
 */
void rp_engine_forget(rp_engine_t *e);

/* The engine's name: "io_uring" (or another engine's). */
const char *rp_engine_name(const rp_engine_t *e);

/* Feature summary for logs, one line (io_uring: "io_uring: sq 1024,
   cq 8192, defer_taskrun, 1024 x 16384 buffers"). */
const char *rp_engine_describe(const rp_engine_t *e);

/*
 * Submit all queued requests and wait up to timeout_ms (-1: forever, 0: do
 * not block) for at least one completion, in one system call; then reap every
 * completion and call the callback for each.  Returns the number of
 * completions handled (>= 0), or -errno for a ring failure (-EINTR when a
 * signal interrupted the wait, which is not an error for the caller).
 */
int rp_engine_wait(rp_engine_t *e, int timeout_ms);

/* rp_engine_wait() with a timeout in microseconds (-1: forever), for hosts
   with precise timers. */
int rp_engine_wait_us(rp_engine_t *e, long long timeout_us);

/* Submit queued requests now without waiting.  Returns >= 0 or -errno. */
int rp_engine_flush(rp_engine_t *e);

/* Copy the counters. */
void rp_engine_stats(const rp_engine_t *e, rp_stats_t *st);

/* Format the counters on one line ("enters=.. sqes=.."); returns length. */
size_t rp_stats_format(const rp_stats_t *st, char *buf, size_t len);

/*
 * Put socket s on the engine.  The engine never closes s itself (see
 * rp_fd_close).  Returns NULL with errno set on allocation failure.
 */
rp_fd_t *rp_fd_open(rp_engine_t *e, rp_socket_t s, void *fd_data);

void rp_fd_set_data(rp_fd_t *f, void *fd_data);
void *rp_fd_data(const rp_fd_t *f);
rp_socket_t rp_fd_fileno(const rp_fd_t *f);

/* rp_fd_set_flags() flags */
#define RP_FD_REGISTERED_IO  0x1u  /* Windows: the socket was made with
                                      WSA_FLAG_REGISTERED_IO, so the engine
                                      may run its data path on RIO; without
                                      it, overlapped I/O.  Ignored elsewhere */

/* Tell the engine about the socket, before its first receive or send. */
void rp_fd_set_flags(rp_fd_t *f, unsigned flags);

/* rp_fd_close() flags */
#define RP_CLOSE_FLUSH   0x1u  /* keep sending queued bytes, then close */
#define RP_CLOSE_SOCKET  0x2u  /* the engine closes the socket, the host
                                  must not: at once, or when the flush
                                  ends */

/*
 * Take the fd off the engine: cancel its poll and receive (by request, so
 * this is exact even after the host closed the socket), submitted at once,
 * not at the end of the pass, so that the host's close really closes the
 * socket; drop received-but-unread data and return its buffers.
 * Without RP_CLOSE_FLUSH queued sends are dropped too.
 * With RP_CLOSE_FLUSH and bytes still queued, the engine keeps a duplicate
 * of the socket, sends the rest on it and closes it when the queue is empty,
 * a send fails, or the peer has taken no byte for flush_timeout_ms; the host
 * may close its own socket right after this call either way.
 * With RP_CLOSE_SOCKET the socket is the engine's from this call on: the
 * engine closes it itself, right after the cancels or when the flush ends,
 * and no duplicate is made.  Where a send in flight is bound to the handle
 * it was issued on (RIO: the request queue is the socket's), only this
 * keeps a flush whole: a host that closes its own handle ends that send,
 * and the stream is cut.
 * After this call f is invalid for the host; no more callbacks for it.
 */
void rp_fd_close(rp_engine_t *e, rp_fd_t *f, unsigned flags);

/*
 * Readiness mode.  Arm (or re-arm with a new mask) a poll for events (RP_IN,
 * RP_OUT, RP_RDHUP...).  RP_POLL_MULTISHOT keeps it armed; a one-shot poll
 * fires once.  Replacing an armed poll cancels the old one; its late
 * completions are dropped.  events == 0 disarms.  Returns 0 or -errno
 * (-EOPNOTSUPP: this engine cannot watch this descriptor).
 */
int rp_poll(rp_engine_t *e, rp_fd_t *f, unsigned events, unsigned flags);

/* Armed poll mask (0 if none). */
unsigned rp_poll_armed(const rp_fd_t *f);

/*
 * Completion mode, receive side.  Arm a multishot receive into provided
 * buffers (no-op if already armed).  Received data queues on the fd in order;
 * RP_EV_RECV is reported when the queue becomes non-empty, at EOF and on
 * error.  If the buffer ring runs dry the receive stops (ENOBUFS) and is
 * re-armed by the engine when buffers come back; no byte is lost.
 * While more than max_queued bytes wait unread, the engine stops the receive
 * and re-arms it when the host has read the queue down (0: no limit).
 * Returns 0 or -errno (-EOPNOTSUPP: engine has no buffer ring).
 */
int rp_recv_start(rp_engine_t *e, rp_fd_t *f, size_t max_queued);

/* Stop receiving into buffers (cancel the multishot receive). Data already
   queued stays queued. */
void rp_recv_stop(rp_engine_t *e, rp_fd_t *f);

/* Bytes queued and not yet taken by the host. */
size_t rp_recv_queued(const rp_fd_t *f);

/*
 * Receive state after the queue: 0 while the stream is open, 1 after EOF,
 * or -errno of a receive error.  Only meaningful once rp_recv_queued() is 0:
 * EOF and errors are reported in order behind the data.
 */
int rp_recv_status(const rp_fd_t *f);

/* Whether a receive is armed in the kernel now. */
int rp_recv_armed(const rp_fd_t *f);

/*
 * Watch for the peer's FIN while the receive is not armed because it is
 * paused by max_queued or stopped by rp_recv_stop().  The kernel then still
 * holds unread bytes and the FIN behind them, which readiness mode would
 * report at once (EPOLLRDHUP).  With on, a one-shot poll for POLLRDHUP is
 * armed in those states; when it fires RP_EV_RECV is reported (maybe with
 * no new data) and rp_recv_peer_closed() says 1.
 */
void rp_recv_watch_fin(rp_engine_t *e, rp_fd_t *f, int on);

/*
 * 1 once the peer is known to have closed its side: EOF or an error is
 * queued (rp_recv_status() != 0), or the FIN watch saw it while bytes still
 * wait in the kernel.  Unread data may still come first.
 */
int rp_recv_peer_closed(const rp_fd_t *f);

/*
 * Copy up to len queued bytes into dst and consume them, returning buffers to
 * the ring as they empty.  Returns bytes copied (0 if the queue is empty).
 */
size_t rp_recv_copy(rp_engine_t *e, rp_fd_t *f, void *dst, size_t len);

/*
 * Zero-copy access: point *data at the first queued buffer's unread bytes
 * and return their length (0 if empty).  The pointer stays valid until that
 * buffer is consumed; see rp_recv_take() to keep it longer.
 */
size_t rp_recv_peek(const rp_fd_t *f, const void **data);

/* Consume len bytes from the front of the queue (len <= rp_recv_queued). */
void rp_recv_consume(rp_engine_t *e, rp_fd_t *f, size_t len);

/*
 * Detach the first queued buffer from the fd: *data and *len describe its unread
 * bytes and the returned token must be given to rp_buf_release() when the
 * host is done with it (for example from an evbuffer cleanup callback).
 * Returns a token > 0, or 0 if the queue is empty.
 */
uint32_t rp_recv_take(rp_engine_t *e, rp_fd_t *f, const void **data,
    size_t *len);

/* Return a buffer taken with rp_recv_take() to the ring; a token given
   back twice is ignored. */
void rp_buf_release(rp_engine_t *e, uint32_t token);

/* Provided buffers free now, and the total. */
unsigned rp_bufs_free(const rp_engine_t *e);
unsigned rp_bufs_total(const rp_engine_t *e);

/*
 * Completion mode, send side.  Queue iovcnt buffers for sending after
 * everything queued before (byte order is kept; one send in flight per fd).
 * RP_SEND_COPY copies the bytes now (the host may reuse its memory at once);
 * otherwise the memory must stay valid until done(arg) is called, which
 * happens once, when the engine no longer needs it (sent, failed or dropped
 * at close).  Returns 0 or -errno; a failed send is reported later through
 * RP_EV_SEND with -errno and the queue is dropped.
 */
#define RP_SEND_COPY  0x1u
typedef void (*rp_send_done_cb)(void *arg);

int rp_send(rp_engine_t *e, rp_fd_t *f, const rp_iovec_t *iov, int iovcnt,
    unsigned flags, rp_send_done_cb done, void *arg);

/* Bytes queued or in flight, not yet accepted by the kernel. */
size_t rp_send_pending(const rp_fd_t *f);

/* First send error seen on the fd (sticky), or 0. */
int rp_send_error(const rp_fd_t *f);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLUG_H */
