/*
 * ringplug core: the io_uring backend (Linux >= 6.0).  Everything the engine
 * asks of the kernel goes through the rp_be_* functions here; nothing else
 * in core/ includes liburing.
 *
 * io_uring specifics of the contract in ringplug.h:
 *  - Setup tries ring flags best first: SINGLE_ISSUER|DEFER_TASKRUN (6.1),
 *    then COOP_TASKRUN (5.19), then plain; always a CQ of cq_entries
 *    (CQSIZE, CLAMP) and SUBMIT_ALL where taken.  RP_ENGINE_SHARED_THREADS
 *    skips the first tier, which binds the ring to its creating thread, and
 *    the registered ring fd, which is per thread.
 *  - Required and probed once: EXT_ARG, NODROP and FAST_POLL; the opcodes
 *    used; multishot poll (5.13), multishot receive (6.0), provided buffer
 *    rings (5.19) and cancel by fd (5.19), the last three on a socketpair.
 *    Setup failures name their cause: a seccomp filter (Docker's default
 *    profile), kernel.io_uring_disabled, RLIMIT_MEMLOCK, no io_uring.
 *  - entries is the SQ size; a full SQ is submitted early (sq_full).
 *  - Provided buffers are one buffer ring (one group); the count is rounded
 *    up to a power of two, at most 32768.
 *  - One wait is one io_uring_submit_and_wait_timeout: submit, wait and the
 *    host's timeout in one io_uring_enter.  A CQ overflow is flushed from
 *    the kernel's overflow list (NODROP): nothing is lost.
 *  - A close submits its cancels with GETEVENTS, so deferred task work runs
 *    and the cancelled requests drop their file references before the
 *    host's close().
 *  - Sends use MSG_WAITALL (the kernel continues short sends on stream
 *    sockets) and MSG_NOSIGNAL; one piece is a SEND, more a SENDMSG.
 *  - The flush duplicate is a dup() (F_DUPFD_CLOEXEC), closed with close().
 *  - The ring is made disabled and enabled with IORING_REGISTER_RESTRICTIONS:
 *    the kernel refuses any request but the engine's own (poll, cancel,
 *    receive, send, sendmsg; buffer select the only SQE flag) and every
 *    registration after setup, so no request on the ring can open, read or
 *    write a file, whatever a bug in the engine or its host would submit.
 *  - Every io_uring_enter goes through rp_uring_enter(), which counts it.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "engine.h"

#define RP_BGID       0
#define RP_SEND_FLAGS (MSG_NOSIGNAL | MSG_WAITALL)

/* user_data of requests that carry no op */
enum rp_uring_ud {
    RP_UD_NONE = 0,
    RP_UD_CANCEL,                /* the engine's cancels */
    RP_UD_PROBE_POLL,            /* the setup probe's requests */
    RP_UD_PROBE_RECV,
    RP_UD_PROBE_CANCEL,
    RP_UD_TEST,                  /* rp_test_open_file() */
    RP_UD_LAST = RP_UD_TEST,     /* above this: an rp_op_t's address */
};

/* The engine with the ring; e first, so an rp_engine_t * is one of these. */
typedef struct rp_uring {
    rp_engine_t                e;
    struct io_uring            ring;
    unsigned                   setup_flags;
    unsigned                   features;
    struct io_uring_buf_ring  *br;
    size_t                     br_bytes;
    size_t                     mem_bytes;
    unsigned                   br_mask;
} rp_uring_t;

/* An fd with the header a SENDMSG reads until its completion. */
typedef struct rp_uring_fd {
    rp_fd_t                    f;
    struct msghdr              msg;
} rp_uring_fd_t;

/* Hosts pass struct iovec arrays as rp_iovec_t: the layouts must agree. */
_Static_assert(sizeof(rp_iovec_t) == sizeof(struct iovec)
               && offsetof(rp_iovec_t, iov_base)
                  == offsetof(struct iovec, iov_base)
               && offsetof(rp_iovec_t, iov_len)
                  == offsetof(struct iovec, iov_len),
               "rp_iovec_t must have struct iovec's layout");

enum rp_enter {
    RP_ENTER_SUBMIT,             /* submit the SQ */
    RP_ENTER_SUBMIT_RUN,         /* submit and run task work (GETEVENTS) */
    RP_ENTER_EVENTS,             /* run task work, flush an overflowed CQ */
    RP_ENTER_WAIT,               /* submit and wait for one completion */
};

static inline rp_uring_t *
rp_uring(rp_engine_t *e)
{
    return (rp_uring_t *) e;
}

/*
 * Every call into the kernel, counted.  A wait with completions already in
 * the CQ and nothing to submit does not enter (liburing returns at once).
 */
static int
rp_uring_enter(rp_uring_t *u, enum rp_enter how, long long timeout_us)
{
    struct __kernel_timespec   ts;
    struct io_uring_cqe       *cqe;

    switch (how) {
    case RP_ENTER_SUBMIT:
        u->e.st.enters++;
        return io_uring_submit(&u->ring);

    case RP_ENTER_SUBMIT_RUN:
        u->e.st.enters++;
        return io_uring_submit_and_get_events(&u->ring);

    case RP_ENTER_EVENTS:
        u->e.st.enters++;
        return io_uring_get_events(&u->ring);

    case RP_ENTER_WAIT:
        /*
         * Even a zero timeout enters with GETEVENTS so that deferred task
         * work (DEFER_TASKRUN) runs.
         */
        if (io_uring_sq_ready(&u->ring) > 0
            || io_uring_cq_ready(&u->ring) == 0)
        {
            u->e.st.enters++;
        }
        if (timeout_us < 0) {
            return io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, NULL,
                                                    NULL);
        }
        ts.tv_sec = timeout_us / 1000000;
        ts.tv_nsec = (timeout_us % 1000000) * 1000;
        return io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    }
    return -EINVAL;
}

/* An SQE, flushing the SQ to the kernel first if it is full. */
static struct io_uring_sqe *
rp_get_sqe(rp_uring_t *u)
{
    struct io_uring_sqe  *sqe;
    int                   rc, tries;

    /*
     * A full SQ is submitted to make room, as io_uring_get_sqe()'s callers
     * do.  -EBUSY or -EAGAIN (completions the kernel cannot post yet, short
     * of memory) may pass once the overflowed completions are flushed, so
     * the submit is tried again a few times; any other error (-EEXIST: not
     * the ring's issuer; a ring the kernel refuses) will not pass.  Then,
     * like io_uring_get_sqe(), NULL: the caller fails its operation or
     * retries it on the next pass; it never spins here.
     */
    for (tries = 0; tries < 4; tries++) {
        sqe = io_uring_get_sqe(&u->ring);
        if (sqe != NULL) {
            u->e.st.sqes++;
            return sqe;
        }
        u->e.st.sq_full++;
        rc = rp_uring_enter(u, RP_ENTER_SUBMIT, 0);
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {
            break;
        }
        if (rc < 0) {
            (void) rp_uring_enter(u, RP_ENTER_EVENTS, 0);
        }
    }
    return NULL;
}

/* ---- setup --------------------------------------------------------------- */

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

static int
rp_read_int_file(const char *path, int *val)
{
    FILE  *f;
    int    n;

    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    n = fscanf(f, "%d", val);
    fclose(f);
    return n == 1 ? 0 : -1;
}

static bool
rp_seccomp_filtered(void)
{
    FILE  *f;
    char   line[128];
    int    mode = 0;

    f = fopen("/proc/self/status", "re");
    if (f == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Seccomp: %d", &mode) == 1) {
            break;
        }
    }
    fclose(f);
    return mode == 2;
}

/* Explain why io_uring_setup() failed, in one line. */
static void
rp_explain_setup(int err, char *why, size_t len)
{
    struct rlimit  rl;
    int            disabled = 0;
    const char    *es = strerror(err);

    if (err == EPERM || err == EACCES || err == ENOSYS) {
        if (rp_read_int_file("/proc/sys/kernel/io_uring_disabled",
                             &disabled) == 0 && disabled != 0)
        {
            if (disabled == 1) {
                rp_why(why, len, "io_uring_setup() failed (%s): "
                       "kernel.io_uring_disabled=1 and this process is not "
                       "in kernel.io_uring_group", es);
            } else {
                rp_why(why, len, "io_uring_setup() failed (%s): io_uring "
                       "is disabled by kernel.io_uring_disabled=%d",
                       es, disabled);
            }
            return;
        }
        if (rp_seccomp_filtered()) {
            rp_why(why, len, "io_uring_setup() failed (%s): io_uring is "
                   "blocked by a seccomp filter (Docker's default profile "
                   "does this; allow io_uring_setup/enter/register)", es);
            return;
        }
        if (err == ENOSYS) {
            rp_why(why, len, "io_uring_setup() failed (%s): the kernel has "
                   "no io_uring (CONFIG_IO_URING off or too old)", es);
            return;
        }
        rp_why(why, len, "io_uring_setup() failed (%s): not permitted by "
               "the security policy", es);
        return;
    }

    if (err == ENOMEM && getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
        rp_why(why, len, "io_uring_setup() failed (%s): cannot lock the "
               "ring's memory: RLIMIT_MEMLOCK is %llu KiB; raise it "
               "(ulimit -l, LimitMEMLOCK=)", es,
               (unsigned long long) (rl.rlim_cur / 1024));
        return;
    }

    rp_why(why, len, "io_uring_setup() failed (%s)", es);
}

/*
 * Ring flags, best first.  DEFER_TASKRUN (6.1) runs completions only when
 * we wait, which is what an event loop does anyway; COOP_TASKRUN (5.19)
 * avoids IPIs; the last tier only asks for a larger CQ.
 */
static const unsigned rp_tiers[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
        | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG
        | IORING_SETUP_SUBMIT_ALL,
    0,
};

/* The only requests the ring runs: rp_be_poll, _recv, _send, _cancel*. */
static const uint8_t rp_allowed_ops[] = {
    IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL, IORING_OP_RECV,
    IORING_OP_SEND, IORING_OP_SENDMSG,
};

static int
rp_ring_init(rp_uring_t *u, const rp_engine_params_t *p, char *why,
    size_t why_len)
{
    struct io_uring_params  ip;
    size_t                  i;
    int                     rc = -EINVAL;

    i = (p->flags & RP_ENGINE_SHARED_THREADS) ? 1 : 0;

    for ( /* void */ ; i < sizeof(rp_tiers) / sizeof(rp_tiers[0]); i++) {
        memset(&ip, 0, sizeof(ip));
        ip.flags = rp_tiers[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP
                   | IORING_SETUP_R_DISABLED;
        ip.cq_entries = p->cq_entries;

        rc = rp_fault_alloc() ? -ENOMEM
             : io_uring_queue_init_params(p->entries, &u->ring, &ip);
        if (rc == 0) {
            u->setup_flags = ip.flags;
            u->features = ip.features;
            return 0;
        }
        if (rc != -EINVAL) {
            break;
        }
    }

    rp_explain_setup(-rc, why, why_len);
    return rc;
}

static void
rp_bufring_free(rp_uring_t *u, bool unregister)
{
    if (unregister && u->br != NULL) {
        (void) io_uring_unregister_buf_ring(&u->ring, RP_BGID);
    }
    if (u->br != NULL) {
        munmap(u->br, u->br_bytes);
        u->br = NULL;
    }
    if (u->e.bufs.mem != NULL) {
        munmap(u->e.bufs.mem, u->mem_bytes);
        u->e.bufs.mem = NULL;
    }
    rp_bufs_meta_free(&u->e);
}

/*
 * The provided buffers: one buffer ring, registered as group RP_BGID, over
 * count buffers of size bytes.  liburing 2.3 has io_uring_register_buf_ring()
 * but not io_uring_setup_buf_ring(): the ring memory is mmap()ed here.
 */
static int
rp_bufring_init(rp_uring_t *u, unsigned count, unsigned size)
{
    rp_engine_t              *e = &u->e;
    struct io_uring_buf_reg   reg;
    unsigned                  n, i;
    int                       rc;

    /* The kernel wants a power of two, at most 32768 entries. */
    for (n = 1; n < count && n < 32768; n <<= 1) {
        /* void */
    }
    if (size < 64) {
        size = 64;
    }

    u->br_mask = io_uring_buf_ring_mask(n);
    u->br_bytes = (size_t) n * sizeof(struct io_uring_buf);
    u->br = rp_fault_alloc() ? MAP_FAILED
            : mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (u->br == MAP_FAILED) {
        u->br = NULL;
        return -ENOMEM;
    }

    u->mem_bytes = (size_t) n * size;
    e->bufs.mem = rp_fault_alloc() ? MAP_FAILED
                  : mmap(NULL, u->mem_bytes, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (e->bufs.mem == MAP_FAILED) {
        e->bufs.mem = NULL;
        rp_bufring_free(u, false);
        return -ENOMEM;
    }

    rc = rp_bufs_meta_init(e, n, size);
    if (rc < 0) {
        rp_bufring_free(u, false);
        return rc;
    }

    io_uring_buf_ring_init(u->br);

    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long) u->br;
    reg.ring_entries = n;
    reg.bgid = RP_BGID;

    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0) {
        rp_bufring_free(u, false);
        return rc;
    }

    for (i = 0; i < n; i++) {
        io_uring_buf_ring_add(u->br, rp_buf_addr(e, i), size, (uint16_t) i,
                              u->br_mask, (int) i);
    }
    io_uring_buf_ring_advance(u->br, (int) n);

    return 0;
}

/* Wait for one probe completion and note what it says. */
static int
rp_probe_cqe(rp_uring_t *u, int *poll_more, int *poll_res, int *recv_res,
    int *cancel_res, int *seen)
{
    struct io_uring_cqe  *cqe;
    uint32_t              bid;
    int                   rc;

    rc = rp_uring_enter(u, RP_ENTER_WAIT, -1);
    if (rc < 0 && rc != -ETIME) {
        return rc;
    }
    if (io_uring_peek_cqe(&u->ring, &cqe) != 0) {
        return 0;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        rp_buf_got(&u->e, bid);
        rp_buf_recycle(&u->e, bid);
    }
    switch (cqe->user_data) {
    case RP_UD_PROBE_POLL:
        if (cqe->flags & IORING_CQE_F_MORE) {
            *poll_more = 1;
        } else {
            *poll_res = cqe->res ? cqe->res : -ECANCELED;
            (*seen)++;
        }
        break;
    case RP_UD_PROBE_RECV:
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            *recv_res = cqe->res;
            (*seen)++;
        }
        break;
    case RP_UD_PROBE_CANCEL:
        *cancel_res = cqe->res;
        (*seen)++;
        break;
    }
    io_uring_cqe_seen(&u->ring, cqe);
    return 0;
}

/* The features and opcodes the engine needs, from the kernel's tables. */
static int
rp_probe_opcodes(rp_uring_t *u, char *why, size_t why_len)
{
    struct io_uring_probe  *pr;
    size_t                  i;

    if (!(u->features & IORING_FEAT_EXT_ARG)
        || !(u->features & IORING_FEAT_NODROP)
        || !(u->features & IORING_FEAT_FAST_POLL))
    {
        rp_why(why, why_len, "io_uring is too old: the kernel lacks "
                     "EXT_ARG/NODROP/FAST_POLL (needs Linux >= 6.0)");
        return -EOPNOTSUPP;
    }

    pr = io_uring_get_probe_ring(&u->ring);
    if (pr == NULL) {
        rp_why(why, why_len, "io_uring opcode probe failed "
                     "(needs Linux >= 6.0)");
        return -EOPNOTSUPP;
    }
    for (i = 0; i < sizeof(rp_allowed_ops); i++) {
        if (!io_uring_opcode_supported(pr, rp_allowed_ops[i])) {
            io_uring_free_probe(pr);
            rp_why(why, why_len, "io_uring lacks opcode %d "
                         "(needs Linux >= 6.0)", rp_allowed_ops[i]);
            return -EOPNOTSUPP;
        }
    }
    io_uring_free_probe(pr);
    return 0;
}

/*
 * io_uring_register(2) itself: liburing 2.3 declares
 * io_uring_register_restrictions() and io_uring_enable_rings() but its
 * shared library does not export them.
 */
static int
rp_register(rp_uring_t *u, unsigned op, void *arg, unsigned n)
{
    long  rc;

    rc = syscall(__NR_io_uring_register, u->ring.ring_fd, op, arg, n);
    return rc < 0 ? -errno : 0;
}

/*
 * Restrict the disabled ring to the engine's own requests, then enable it.
 * Registrations the engine makes (the buffer ring, the ring fd) come before
 * this; after it only the ring fd's unregistration at exit is allowed.
 */
static int
rp_restrict(rp_uring_t *u, char *why, size_t why_len)
{
    struct io_uring_restriction  res[sizeof(rp_allowed_ops) + 2];
    unsigned                     n = 0;
    size_t                       i;
    int                          rc;

    memset(res, 0, sizeof(res));
    for (i = 0; i < sizeof(rp_allowed_ops); i++) {
        res[n].opcode = IORING_RESTRICTION_SQE_OP;
        res[n++].sqe_op = rp_allowed_ops[i];
    }
    res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    res[n++].sqe_flags = IOSQE_BUFFER_SELECT;
    res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
    res[n++].register_op = IORING_UNREGISTER_RING_FDS;

    rc = rp_register(u, IORING_REGISTER_RESTRICTIONS, res, n);
    if (rc < 0) {
        rp_why(why, why_len, "io_uring restrictions failed (%s)",
               strerror(-rc));
        return rc;
    }
    rc = rp_register(u, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (rc < 0) {
        rp_why(why, why_len, "io_uring ring enable failed (%s)",
               strerror(-rc));
        return rc;
    }
    return 0;
}

/*
 * Functional probe of what the opcode table cannot tell: multishot receive
 * with buffer select (6.0) and cancel by fd (5.19), on a socketpair.
 */
static int
rp_probe_ops(rp_uring_t *u, char *why, size_t why_len)
{
    struct io_uring_sqe  *sqe;
    int                   sv[2], rc, i, seen = 0, want = 0;
    int                   poll_res = 0, poll_more = 0, recv_res = 0;
    int                   cancel_res = 0, cancel_sent = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = -errno;
        rp_why(why, why_len, "socketpair() for the io_uring probe failed "
               "(%s)", strerror(-rc));
        return rc;
    }

    /*
     * On sv[0]: a multishot poll for POLLOUT (ready at once, so a kernel
     * that knows multishot polls says so with IORING_CQE_F_MORE), a
     * multishot receive into the buffer ring, then, once the poll has
     * answered, one cancel by fd for both.  Old kernels answer -EINVAL to
     * what they lack.
     */
    sqe = io_uring_get_sqe(&u->ring);
    io_uring_prep_poll_multishot(sqe, sv[0], POLLOUT);
    sqe->user_data = RP_UD_PROBE_POLL;
    want++;

    if (u->e.has_bufs) {
        sqe = io_uring_get_sqe(&u->ring);
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = RP_BGID;
        sqe->user_data = RP_UD_PROBE_RECV;
        want++;
    }

    rc = rp_uring_enter(u, RP_ENTER_SUBMIT, 0);

    /*
     * Phase one: the poll's first answer.  Phase two: cancel by fd, then
     * every request ends (the cancel and the ones it cancels).
     */
    for (i = 0; rc >= 0 && i < 16 && seen < want; i++) {
        if (!cancel_sent && (poll_more || poll_res != 0)) {
            sqe = io_uring_get_sqe(&u->ring);
            io_uring_prep_cancel_fd(sqe, sv[0], IORING_ASYNC_CANCEL_ALL);
            sqe->user_data = RP_UD_PROBE_CANCEL;
            want++;
            cancel_sent = 1;
            rc = rp_uring_enter(u, RP_ENTER_SUBMIT, 0);
            if (rc < 0) {
                break;
            }
        }
        rc = rp_probe_cqe(u, &poll_more, &poll_res, &recv_res, &cancel_res,
                          &seen);
    }

    close(sv[0]);
    close(sv[1]);

    if (rc < 0) {
        rp_why(why, why_len, "io_uring probe failed (%s)", strerror(-rc));
        return rc;
    }
    if (poll_res == -EINVAL || !poll_more) {
        rp_why(why, why_len, "io_uring lacks multishot poll "
               "(needs Linux >= 5.13)");
        return -EOPNOTSUPP;
    }
    if (recv_res == -EINVAL) {
        rp_why(why, why_len, "io_uring lacks multishot receive "
               "(needs Linux >= 6.0)");
        return -EOPNOTSUPP;
    }
    if (cancel_res == -EINVAL) {
        rp_why(why, why_len, "io_uring lacks cancel by fd "
               "(needs Linux >= 5.19)");
        return -EOPNOTSUPP;
    }
    return 0;
}

static void
rp_describe(rp_uring_t *u)
{
    rp_engine_t  *e = &u->e;
    int           n;

    n = snprintf(e->desc, sizeof(e->desc), "io_uring: sq %u, cq %u, %s",
                 u->ring.sq.ring_entries, u->ring.cq.ring_entries,
                 (u->setup_flags & IORING_SETUP_DEFER_TASKRUN)
                 ? "defer_taskrun"
                 : (u->setup_flags & IORING_SETUP_COOP_TASKRUN)
                   ? "coop_taskrun" : "plain");
    if (n > 0 && (size_t) n < sizeof(e->desc)) {
        if (e->has_bufs) {
            snprintf(e->desc + n, sizeof(e->desc) - n, ", %u x %u buffers",
                     e->bufs.count, e->bufs.size);
        } else {
            snprintf(e->desc + n, sizeof(e->desc) - n, ", no buffer ring");
        }
    }
}

int
rp_be_create(const rp_engine_params_t *p, rp_engine_t **out, char *why,
    size_t why_len)
{
    rp_uring_t  *u;
    int          rc;

    u = rp_fault_alloc() ? NULL : calloc(1, sizeof(*u));
    if (u == NULL) {
        rp_why(why, why_len, "io_uring engine: %s", strerror(ENOMEM));
        return -ENOMEM;
    }

    rc = rp_ring_init(u, p, why, why_len);
    if (rc < 0) {
        free(u);
        return rc;
    }

    if (p->buf_count != RP_NO_BUFFERS) {
        rc = rp_bufring_init(u, p->buf_count, p->buf_size);
        if (rc < 0) {
            if (rc == -EINVAL || rc == -EOPNOTSUPP) {
                rp_why(why, why_len, "io_uring lacks provided buffer "
                             "rings (needs Linux >= 5.19)");
            } else {
                rp_why(why, why_len, "io_uring buffer ring of %u x %u "
                       "failed (%s)", p->buf_count, p->buf_size,
                       strerror(-rc));
            }
            io_uring_queue_exit(&u->ring);
            free(u);
            return rc;
        }
        u->e.has_bufs = true;
    }

    /*
     * A registered ring fd saves an fdget per enter, but registrations are
     * per thread: only when one thread owns the ring.
     */
    if (!(p->flags & RP_ENGINE_SHARED_THREADS)) {
        (void) io_uring_register_ring_fd(&u->ring);
    }

    rc = rp_probe_opcodes(u, why, why_len);
    if (rc == 0) {
        rc = rp_restrict(u, why, why_len);
    }
    if (rc == 0) {
        rc = rp_probe_ops(u, why, why_len);
    }
    if (rc < 0) {
        rp_bufring_free(u, true);
        io_uring_queue_exit(&u->ring);
        free(u);
        return rc;
    }

    /* the counters start with the engine's life, not the probe's */
    memset(&u->e.st, 0, sizeof(u->e.st));
    u->e.reap_budget = u->ring.cq.ring_entries * 2;
    u->e.op_size = sizeof(rp_op_t);
    rp_describe(u);

    *out = &u->e;
    return 0;
}

void
rp_be_destroy(rp_engine_t *e, bool forget)
{
    rp_uring_t  *u = rp_uring(e);

    (void) forget;      /* the ring's memory is this process's either way */
    io_uring_queue_exit(&u->ring);
    rp_bufring_free(u, false);
    free(u);
}

const char *
rp_be_name(void)
{
    return "io_uring";
}

rp_fd_t *
rp_be_fd_new(rp_engine_t *e)
{
    rp_uring_fd_t  *uf;

    (void) e;
    uf = rp_fault_alloc() ? NULL : calloc(1, sizeof(*uf));
    return uf != NULL ? &uf->f : NULL;
}

void
rp_be_fd_free(rp_engine_t *e, rp_fd_t *f)
{
    (void) e;
    free((rp_uring_fd_t *) f);
}

/* ---- requests ------------------------------------------------------------ */

int
rp_be_poll(rp_engine_t *e, rp_op_t *op, rp_socket_t s, unsigned events,
    bool multishot)
{
    struct io_uring_sqe  *sqe;

    sqe = rp_get_sqe(rp_uring(e));
    if (sqe == NULL) {
        return -EBUSY;
    }
    if (multishot) {
        io_uring_prep_poll_multishot(sqe, s, events);
    } else {
        io_uring_prep_poll_add(sqe, s, events);
    }
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

int
rp_be_recv(rp_engine_t *e, rp_op_t *op, rp_socket_t s)
{
    struct io_uring_sqe  *sqe;

    sqe = rp_get_sqe(rp_uring(e));
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_recv_multishot(sqe, s, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RP_BGID;
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

int
rp_be_send(rp_engine_t *e, rp_op_t *op, rp_socket_t s,
    const rp_iovec_t *iov, int n)
{
    struct io_uring_sqe  *sqe;
    rp_uring_fd_t        *uf = (rp_uring_fd_t *) op->fd;

    sqe = rp_get_sqe(rp_uring(e));
    if (sqe == NULL) {
        return -EBUSY;
    }
    if (n == 1) {
        io_uring_prep_send(sqe, s, iov[0].iov_base, iov[0].iov_len,
                           RP_SEND_FLAGS);
    } else {
        memset(&uf->msg, 0, sizeof(uf->msg));
        uf->msg.msg_iov = (struct iovec *) iov;
        uf->msg.msg_iovlen = (size_t) n;
        io_uring_prep_sendmsg(sqe, s, &uf->msg, RP_SEND_FLAGS);
    }
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

int
rp_be_cancel(rp_engine_t *e, rp_op_t *op)
{
    struct io_uring_sqe  *sqe;

    sqe = rp_get_sqe(rp_uring(e));
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_cancel64(sqe, (uint64_t) (uintptr_t) op, 0);
    sqe->user_data = RP_UD_CANCEL;
    return 0;
}

int
rp_be_cancel_sock(rp_engine_t *e, rp_socket_t s)
{
    struct io_uring_sqe  *sqe;

    sqe = rp_get_sqe(rp_uring(e));
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_cancel_fd(sqe, s, IORING_ASYNC_CANCEL_ALL);
    sqe->user_data = RP_UD_CANCEL;
    return 0;
}

int
rp_be_cancel_all(rp_engine_t *e)
{
    struct io_uring_sqe  *sqe;

    sqe = rp_get_sqe(rp_uring(e));
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = RP_UD_CANCEL;
    return 0;
}

/* ---- submit, wait, reap -------------------------------------------------- */

int
rp_be_submit(rp_engine_t *e, bool run)
{
    rp_uring_t  *u = rp_uring(e);

    if (io_uring_sq_ready(&u->ring) == 0) {
        return 0;
    }
    return rp_uring_enter(u, run ? RP_ENTER_SUBMIT_RUN : RP_ENTER_SUBMIT, 0);
}

int
rp_be_wait(rp_engine_t *e, long long timeout_us)
{
    int  rc;

    rc = rp_uring_enter(rp_uring(e), RP_ENTER_WAIT, timeout_us);

    /* out of time, or completions the kernel could not post yet */
    if (rc == -ETIME || rc == -EBUSY || rc == -EAGAIN) {
        return 0;
    }
    return rc < 0 ? rc : 0;
}

unsigned
rp_be_reap(rp_engine_t *e, rp_done_t *out, unsigned max)
{
    rp_uring_t           *u = rp_uring(e);
    struct io_uring_cqe  *cqe;
    unsigned              n = 0, head;

    /*
     * Completions that did not fit wait in the kernel's overflow list
     * (NODROP); an enter with GETEVENTS moves them into the CQ.
     */
    if (io_uring_cq_has_overflow(&u->ring)) {
        e->st.cq_overflow++;
        if (io_uring_cq_ready(&u->ring) == 0) {
            (void) rp_uring_enter(u, RP_ENTER_EVENTS, 0);
        }
    }

    io_uring_for_each_cqe(&u->ring, head, cqe) {
        if (n == max) {
            break;
        }
        out[n].op = cqe->user_data > RP_UD_LAST
                    ? (rp_op_t *) (uintptr_t) cqe->user_data : NULL;
        out[n].res = cqe->res;
        out[n].flags = 0;
        out[n].bid = 0;
        if (cqe->flags & IORING_CQE_F_MORE) {
            out[n].flags |= RP_DONE_MORE;
        }
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            out[n].flags |= RP_DONE_BUF;
            out[n].bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        }
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    return n;
}

void
rp_be_buf_put(rp_engine_t *e, uint32_t bid)
{
    rp_uring_t  *u = rp_uring(e);

    io_uring_buf_ring_add(u->br, rp_buf_addr(e, bid), e->bufs.size,
                          (uint16_t) bid, u->br_mask, 0);
    io_uring_buf_ring_advance(u->br, 1);
}

#ifdef RP_FAULT_INJECTION

RP_EXPORT int
rp_test_open_file(rp_engine_t *e, const char *path)
{
    rp_uring_t           *u = rp_uring(e);
    struct io_uring_sqe  *sqe;
    struct io_uring_cqe  *cqe;
    int                   rc, i;

    sqe = rp_get_sqe(u);
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    sqe->user_data = RP_UD_TEST;

    for (i = 0; i < 100; i++) {
        rc = rp_uring_enter(u, RP_ENTER_WAIT, 10000);
        if (rc < 0 && rc != -ETIME && rc != -EINTR) {
            return rc;
        }
        while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
            rc = cqe->res;
            if (cqe->user_data == RP_UD_TEST) {
                io_uring_cqe_seen(&u->ring, cqe);
                if (rc >= 0) {
                    close(rc);
                }
                return rc;
            }
            io_uring_cqe_seen(&u->ring, cqe);
        }
    }
    return -ETIMEDOUT;
}

#endif
