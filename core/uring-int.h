/*
 * ringplug core, io_uring engine: internal types shared by uring.c (ring
 * setup, submission, completion dispatch), bufring.c (provided buffers) and
 * fd.c (per-fd state: poll, receive queue, send queue, close).
 * Nothing outside core/ includes this file.
 */

#ifndef RP_URING_INT_H
#define RP_URING_INT_H

#include <liburing.h>
#include <stdbool.h>

#include "ringplug.h"

#define RP_EXPORT  __attribute__((visibility("default")))

/* user_data tags that carry no op: completions of cancel requests. */
#define RP_UD_CANCEL  1ull

/*
 * Fault injection (a test build with -DRP_FAULT_INJECTION, tests/core/
 * test-faults.c): every allocation the engine makes, and the ring's own
 * setup, asks rp_fault_alloc() first and fails as it would for real when
 * it says so.  Compiled out otherwise.
 */
#ifdef RP_FAULT_INJECTION
RP_EXPORT int rp_fault_alloc(void);
RP_EXPORT void rp_fault_set(long nth);      /* 0: none */
RP_EXPORT long rp_fault_count(void);        /* allocations asked about */
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
 * One request in the kernel.  user_data is the op's address; an op lives
 * until its final completion (no IORING_CQE_F_MORE), so the address cannot
 * be reused while the kernel may still post completions for it.  An op whose
 * fd was closed, or which was replaced (a new poll mask, a stopped receive),
 * is no longer "current": its completions are counted stale and dropped.
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

#define RP_SEND_IOV  8           /* iovecs per SENDMSG */

struct rp_fd {
    rp_engine_t    *e;
    void           *data;
    int             fd;
    int             sendfd;      /* fd sends go to (a dup after close) */
    uint32_t        gen;
    unsigned        refs;        /* ops in flight + callbacks running */

    unsigned        closed:1;
    unsigned        flushing:1;  /* closed with RP_CLOSE_FLUSH, still sending */
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

    /* receive queue: provided-buffer ids chained through bufring meta */
    rp_op_t        *recv_op;
    uint32_t        rq_head;     /* buffer id + 1, 0: empty */
    uint32_t        rq_tail;
    size_t          rq_bytes;
    size_t          rq_max;
    int             recv_status; /* 0 open, 1 EOF, -errno */
    rp_op_t        *fin_op;      /* one-shot POLLRDHUP while paused/stopped */

    /* send queue */
    rp_op_t        *send_op;
    rp_seg_t       *sq_head;
    rp_seg_t       *sq_tail;
    size_t          sq_bytes;
    size_t          sq_inflight; /* bytes handed to the in-flight send */
    int             send_err;
    struct msghdr   msg;
    struct iovec    iov[RP_SEND_IOV];

    /* engine lists */
    rp_fd_t        *prev;        /* all fds, for destroy/forget */
    rp_fd_t        *next;
    rp_fd_t        *starve_next;
    rp_fd_t        *dirty_next;
    rp_fd_t        *rearm_next;
    rp_fd_t        *flush_next;  /* closed, still sending */
    uint64_t        flush_deadline; /* ms, CLOCK_MONOTONIC */
    uint64_t        flush_mark;  /* peer progress seen at the last deadline */
};

typedef struct rp_bufmeta {
    uint32_t        next;        /* next buffer id + 1 in an fd queue */
    uint32_t        off;
    uint32_t        len;
    uint32_t        held;        /* 1 while outside the kernel's ring */
} rp_bufmeta_t;

typedef struct rp_bufring {
    struct io_uring_buf_ring *br;
    size_t          br_bytes;
    unsigned char  *mem;
    size_t          mem_bytes;
    rp_bufmeta_t   *meta;
    unsigned        count;
    unsigned        size;
    unsigned        mask;
    unsigned        in_use;
    uint16_t        bgid;
} rp_bufring_t;

struct rp_engine {
    struct io_uring ring;
    rp_event_cb     cb;
    unsigned        setup_flags;
    unsigned        features;
    unsigned        params_flags;
    rp_bufring_t    bufs;
    bool            has_bufs;

    rp_op_t        *op_free;
    rp_op_t        *cancels;     /* cancels that found no SQE, for the next pass */
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

/* uring.c */
struct io_uring_sqe *rp_get_sqe(rp_engine_t *e);
int rp_submit_now(rp_engine_t *e);
rp_op_t *rp_op_new(rp_engine_t *e, rp_fd_t *f, enum rp_op_kind kind);
void rp_op_free(rp_engine_t *e, rp_op_t *op);

/* bufring.c */
int rp_bufring_init(rp_engine_t *e, unsigned count, unsigned size);
void rp_bufring_free(rp_engine_t *e, bool unregister);
void rp_buf_got(rp_engine_t *e, uint32_t bid);
void rp_buf_recycle(rp_engine_t *e, uint32_t bid);
static inline unsigned char *
rp_buf_addr(rp_engine_t *e, uint32_t bid)
{
    return e->bufs.mem + (size_t) bid * e->bufs.size;
}

/* fd.c */
void rp_fd_complete(rp_engine_t *e, rp_op_t *op, int res, unsigned flags);
void rp_fd_prepare(rp_engine_t *e);
long long rp_fd_flush_wait_us(rp_engine_t *e);
void rp_fd_drop_all(rp_engine_t *e, bool call_done);

#endif /* RP_URING_INT_H */
