/*
 * ringplug core: the engine's internal types and the backend seam.
 *
 * Everything here is engine-neutral.  engine.c (create, wait, dispatch,
 * counters), fd.c (per-fd state: poll, receive queue, send queue, close) and
 * bufs.c (the provided-buffer pool) run on any kernel interface; the
 * interface itself is one backend file behind the rp_be_* functions below,
 * in the manner of Redis's ae_epoll.c behind ae.c: core/uring.c for
 * io_uring.  A second engine is one new backend file implementing them,
 * plus the OS helpers (rp_os_*, core/os-posix.c here).
 *
 * Nothing outside core/ includes this file, and it includes no kernel
 * interface header.
 */

#ifndef RP_ENGINE_H
#define RP_ENGINE_H

#include <stdbool.h>

#include "ringplug.h"

#ifdef _WIN32
#define RP_EXPORT
#else
#define RP_EXPORT  __attribute__((visibility("default")))
#endif

/*
 * Fault injection (a test build with -DRP_FAULT_INJECTION, tests/core/
 * test-faults.c): every allocation the engine makes, and the backend's own
 * setup, asks rp_fault_alloc() first and fails as it would for real when it
 * says so.  Compiled out otherwise.
 */
#ifdef RP_FAULT_INJECTION
RP_EXPORT int rp_fault_alloc(void);
RP_EXPORT void rp_fault_set(long nth);      /* 0: none */
RP_EXPORT long rp_fault_count(void);        /* allocations asked about */
/*
 * Ask the kernel interface itself to open path, as a request on the
 * engine's ring beside the engine's own (io_uring: an IORING_OP_OPENAT).
 * Returns what the kernel answered: -EACCES when the engine's restriction
 * to its own requests holds, a descriptor (closed again) when it does not.
 * For an idle engine only.
 */
RP_EXPORT int rp_test_open_file(rp_engine_t *e, const char *path);
#else
#define rp_fault_alloc()  0
#endif

enum rp_op_kind {
    RP_OP_POLL = 1,
    RP_OP_RECV,
    RP_OP_SEND,
    RP_OP_FIN,                   /* poll for the peer's FIN while not receiving */
};

/*
 * One request in the kernel.  The backend hands the op's address to the
 * kernel as the request's tag (io_uring's user_data); an op lives until its
 * final completion (one without RP_DONE_MORE), so the address cannot be
 * reused while the kernel may still complete it.  An op whose fd was closed,
 * or which was replaced (a new poll mask, a stopped receive), is no longer
 * "current": its completions are counted stale and dropped.
 */
typedef struct rp_op {
    rp_fd_t        *fd;
    struct rp_op   *next_free;
    uint8_t         kind;
    uint8_t         multishot;
    uint8_t         cancel_pending; /* on the engine's cancels list */
    uint32_t        gen;         /* fd generation at submission */
    struct rp_op   *cancel_next;
} rp_op_t;

/* A completion as the backend decodes it. */
#define RP_DONE_MORE  0x1u       /* the op stays armed: more will follow */
#define RP_DONE_BUF   0x2u       /* res bytes landed in provided buffer bid */

typedef struct rp_done {
    rp_op_t        *op;          /* NULL: the engine's own (a cancel) */
    int32_t         res;
    uint32_t        flags;       /* RP_DONE_* */
    uint32_t        bid;
} rp_done_t;

/* A run of bytes queued for sending. */
typedef struct rp_seg {
    struct rp_seg   *next;
    const char      *base;
    size_t           len;        /* bytes in the segment */
    size_t           off;        /* bytes already accepted by the kernel */
    size_t           cap;        /* owned segments: capacity of data[] */
    rp_send_done_cb  done;
    void            *arg;
    unsigned         owned:1;
    char             data[];
} rp_seg_t;

#define RP_SEND_IOV  8           /* iovecs per send request */

/*
 * One descriptor on the engine.  The backend allocates it (rp_be_fd_new)
 * and may keep state of its own after it.
 */
struct rp_fd {
    rp_engine_t    *e;
    void           *data;
    rp_socket_t     fd;
    rp_socket_t     sendfd;      /* sends go here: a duplicate after a
                                    flushing close, or the backend's own
                                    made at the first send (Windows) */
    uint32_t        gen;
    unsigned        refs;        /* ops in flight + callbacks running */
    unsigned        flags;       /* RP_FD_* from the host */

    unsigned        closed:1;
    unsigned        flushing:1;  /* closed with RP_CLOSE_FLUSH, still sending */
    unsigned        close_fd:1;  /* RP_CLOSE_SOCKET with sendfd == fd: the
                                    flush's end closes the host's socket */
    unsigned        recv_want:1; /* host wants the multishot receive armed */
    unsigned        recv_paused:1;
    unsigned        starved:1;   /* on the ENOBUFS re-arm list */
    unsigned        send_dirty:1;/* on the to-send list */
    unsigned        rearm_poll:1;/* multishot poll ended by the kernel */
    unsigned        rearm_recv:1;/* multishot receive ended by the kernel */
    unsigned        on_rearm:1;  /* on the re-arm list */
    unsigned        fin_watch:1; /* host wants the FIN seen while not receiving */
    unsigned        peer_fin:1;  /* the FIN poll saw the peer close */

    /* readiness */
    rp_op_t        *poll_op;
    unsigned        poll_mask;
    unsigned        poll_flags;

    /* receive queue: provided-buffer ids chained through the pool's meta */
    rp_op_t        *recv_op;
    uint32_t        recvq_head;  /* buffer id + 1, 0: empty */
    uint32_t        recvq_tail;
    size_t          recvq_bytes;
    size_t          recvq_max;
    int             recv_status; /* 0 open, 1 EOF, -errno */
    rp_op_t        *fin_op;      /* one-shot RP_RDHUP while paused/stopped */

    /* send queue */
    rp_op_t        *send_op;
    rp_seg_t       *sendq_head;
    rp_seg_t       *sendq_tail;
    size_t          sendq_bytes;
    size_t          send_inflight; /* bytes handed to the in-flight send */
    int             send_err;
    rp_iovec_t      iov[RP_SEND_IOV]; /* the in-flight send's pieces */

    /* engine lists */
    rp_fd_t        *prev;        /* all fds, for destroy/forget */
    rp_fd_t        *next;
    rp_fd_t        *starve_next;
    rp_fd_t        *dirty_next;
    rp_fd_t        *rearm_next;
    rp_fd_t        *flush_next;  /* closed, still sending */
    uint64_t        flush_deadline; /* ms, monotonic */
    uint64_t        flush_mark;  /* peer progress seen at the last deadline */
};

typedef struct rp_bufmeta {
    uint32_t        next;        /* next buffer id + 1 in an fd queue */
    uint32_t        off;
    uint32_t        len;
    uint32_t        held;        /* 1 while outside the kernel's hands */
} rp_bufmeta_t;

/* The provided-buffer pool: count buffers of size bytes at mem. */
typedef struct rp_bufs {
    unsigned char  *mem;         /* the backend's (registered) memory */
    rp_bufmeta_t   *meta;
    unsigned        count;
    unsigned        size;
    unsigned        in_use;
} rp_bufs_t;

/*
 * The engine-neutral part of an engine.  The backend allocates it
 * (rp_be_create) with its own state after it.
 */
struct rp_engine {
    rp_event_cb     cb;
    unsigned        params_flags;
    rp_bufs_t       bufs;
    bool            has_bufs;
    unsigned        reap_budget; /* completions one pass handles at most */
    size_t          op_size;     /* an op with the backend's state after it */

    rp_op_t        *op_free;
    rp_op_t        *cancels;     /* cancels that found no room, next pass */
    void          **op_chunks;
    unsigned        n_op_chunks;

    rp_fd_t        *fds;         /* every fd not yet freed */
    rp_fd_t        *starved;     /* receives stopped by ENOBUFS */
    rp_fd_t        *dirty;       /* fds with bytes to send, none in flight */
    rp_fd_t        *rearm;       /* multishot ops the kernel ended */
    rp_fd_t        *flushing;    /* closed fds still sending */
    rp_seg_t       *seg_cache;   /* freed copy segments, for reuse */
    rp_seg_t       *ref_cache;   /* freed reference segments */
    unsigned        seg_cached;
    unsigned        ref_cached;
    unsigned        flush_timeout_ms;
    uint32_t        next_gen;
    unsigned        ops_live;    /* ops the kernel has not finished */

    rp_stats_t      st;
    char            desc[160];
};

/* ---- the backend: one file per kernel interface (core/uring.c) --------- */

/*
 * Make an engine: allocate it (with the backend's own state), set up the
 * kernel side, the provided-buffer pool (p->buf_count != RP_NO_BUFFERS,
 * through rp_bufs_meta_init) and probe what is required; fill e->desc,
 * e->reap_budget and e->op_size (>= sizeof(rp_op_t): ops are allocated
 * with that much room, the backend's own state after the rp_op_t).  p has every default resolved.  -errno and a one-line
 * reason on failure, with nothing left allocated.
 */
int rp_be_create(const rp_engine_params_t *p, rp_engine_t **out, char *why,
    size_t why_len);

/* Release the kernel side and the engine's memory.  forget: a child after
   fork, whose kernel objects the parent still uses: only unmap and free.
   With e->ops_live > 0 the kernel may still write into what those requests
   use: a backend whose kernel does so keeps it. */
void rp_be_destroy(rp_engine_t *e, bool forget);

const char *rp_be_name(void);

/* An fd handle, zeroed, with the backend's own state after it; NULL. */
rp_fd_t *rp_be_fd_new(rp_engine_t *e);
void rp_be_fd_free(rp_engine_t *e, rp_fd_t *f);

/*
 * Queue requests for the next submit.  Each returns 0, or -EBUSY when no
 * room could be had for it now (the caller fails or retries next pass).
 *  poll:   readiness for events (RP_IN...) on op->fd's socket s.
 *  recv:   a multishot receive on s into the provided buffers.
 *  send:   n pieces of iov, in order, on s; iov stays valid until the
 *          op completes.
 *  cancel: the request op (its completions follow, op's last among them).
 *  cancel_sock: every request on socket s.
 *  cancel_all: every request of the engine.
 */
int rp_be_poll(rp_engine_t *e, rp_op_t *op, rp_socket_t s, unsigned events,
    bool multishot);
int rp_be_recv(rp_engine_t *e, rp_op_t *op, rp_socket_t s);
int rp_be_send(rp_engine_t *e, rp_op_t *op, rp_socket_t s,
    const rp_iovec_t *iov, int n);
int rp_be_cancel(rp_engine_t *e, rp_op_t *op);
int rp_be_cancel_sock(rp_engine_t *e, rp_socket_t s);
int rp_be_cancel_all(rp_engine_t *e);

/*
 * Hand the queued requests to the kernel now, if any (0 if none).  run: in
 * the same call let the kernel finish the work completions wait on (with
 * deferred task work, cancelled requests drop their file references only
 * then).  >= 0 or -errno.
 */
int rp_be_submit(rp_engine_t *e, bool run);

/*
 * Submit everything queued and wait up to timeout_us (-1: forever) for a
 * completion, in one kernel call.  0 (completions may be ready, or the time
 * ran out), -EINTR, or -errno for a failure of the kernel interface.
 */
int rp_be_wait(rp_engine_t *e, long long timeout_us);

/*
 * Take up to max completions, decoded, and free their slots in the kernel's
 * queue before the engine calls the host.  Returns how many (0: none ready).
 */
unsigned rp_be_reap(rp_engine_t *e, rp_done_t *out, unsigned max);

/* Give provided buffer bid back to the kernel for receives. */
void rp_be_buf_put(rp_engine_t *e, uint32_t bid);

/* ---- OS helpers (core/os-posix.c) ---------------------------------------- */

/* A second descriptor for the same socket; -errno. */
int rp_os_dup(rp_socket_t s, rp_socket_t *out);
void rp_os_close(rp_socket_t s);
/* How far the peer has got taking what was sent (grows while it reads). */
uint64_t rp_os_peer_progress(rp_socket_t s);
/* A monotonic clock in milliseconds (coarse). */
uint64_t rp_os_now_ms(void);

/* ---- engine.c ------------------------------------------------------------ */

rp_op_t *rp_op_new(rp_engine_t *e, rp_fd_t *f, enum rp_op_kind kind);
void rp_op_free(rp_engine_t *e, rp_op_t *op);

/* ---- bufs.c -------------------------------------------------------------- */

int rp_bufs_meta_init(rp_engine_t *e, unsigned count, unsigned size);
void rp_bufs_meta_free(rp_engine_t *e);
void rp_buf_got(rp_engine_t *e, uint32_t bid);
void rp_buf_recycle(rp_engine_t *e, uint32_t bid);

static inline unsigned char *
rp_buf_addr(rp_engine_t *e, uint32_t bid)
{
    return e->bufs.mem + (size_t) bid * e->bufs.size;
}

/* ---- fd.c ---------------------------------------------------------------- */

void rp_fd_complete(rp_engine_t *e, const rp_done_t *d);
void rp_fd_prepare(rp_engine_t *e);
long long rp_fd_flush_wait_us(rp_engine_t *e);
void rp_fd_drop_all(rp_engine_t *e, bool call_done);

#endif /* RP_ENGINE_H */
