/*
 * ringplug core, io_uring engine: ring setup with feature probing, batched
 * submission, one submit-and-wait per loop pass, completion dispatch.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "uring-int.h"

#define RP_OPS_PER_CHUNK  256
#define RP_REAP_BATCH     128

static const char *const rp_name = "io_uring";

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

static int
rp_ring_init(rp_engine_t *e, unsigned entries, unsigned cq_entries,
    char *why, size_t why_len)
{
    struct io_uring_params  p;
    size_t                  i;
    int                     rc = -EINVAL;

    i = (e->params_flags & RP_ENGINE_SHARED_THREADS) ? 1 : 0;

    for ( /* void */ ; i < sizeof(rp_tiers) / sizeof(rp_tiers[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = rp_tiers[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = cq_entries;

        rc = rp_fault_alloc() ? -ENOMEM
             : io_uring_queue_init_params(entries, &e->ring, &p);
        if (rc == 0) {
            e->setup_flags = p.flags;
            e->features = p.features;
            return 0;
        }
        if (rc != -EINVAL) {
            break;
        }
    }

    rp_explain_setup(-rc, why, why_len);
    return rc;
}

/* Wait for one probe completion and note what it says. */
static int
rp_probe_cqe(rp_engine_t *e, int *poll_more, int *poll_res, int *recv_res,
    int *cancel_res, int *seen)
{
    struct io_uring_cqe  *cqe;
    int                   rc;

    rc = io_uring_wait_cqe(&e->ring, &cqe);
    if (rc < 0) {
        return rc;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        rp_buf_got(e, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        rp_buf_recycle(e, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    }
    switch (cqe->user_data) {
    case 2:
        if (cqe->flags & IORING_CQE_F_MORE) {
            *poll_more = 1;
        } else {
            *poll_res = cqe->res ? cqe->res : -ECANCELED;
            (*seen)++;
        }
        break;
    case 3:
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            *recv_res = cqe->res;
            (*seen)++;
        }
        break;
    case 4:
        *cancel_res = cqe->res;
        (*seen)++;
        break;
    }
    io_uring_cqe_seen(&e->ring, cqe);
    return 0;
}

/*
 * Functional probe of what the opcode table cannot tell: multishot receive
 * with buffer select (6.0) and cancel by fd (5.19), on a socketpair.
 */
static int
rp_probe_ops(rp_engine_t *e, char *why, size_t why_len)
{
    struct io_uring_probe  *pr;
    struct io_uring_sqe    *sqe;
    int                     sv[2], rc, i, seen = 0, want = 0;
    int                     poll_res = 0, poll_more = 0, recv_res = 0;
    int                     cancel_res = 0, cancel_sent = 0;
    static const int        need[] = {
        IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_ASYNC_CANCEL,
        IORING_OP_RECV, IORING_OP_SEND, IORING_OP_SENDMSG,
    };

    if (!(e->features & IORING_FEAT_EXT_ARG)
        || !(e->features & IORING_FEAT_NODROP)
        || !(e->features & IORING_FEAT_FAST_POLL))
    {
        rp_why(why, why_len, "io_uring is too old: the kernel lacks "
                     "EXT_ARG/NODROP/FAST_POLL (needs Linux >= 6.0)");
        return -EOPNOTSUPP;
    }

    pr = io_uring_get_probe_ring(&e->ring);
    if (pr == NULL) {
        rp_why(why, why_len, "io_uring opcode probe failed "
                     "(needs Linux >= 6.0)");
        return -EOPNOTSUPP;
    }
    for (i = 0; i < (int) (sizeof(need) / sizeof(need[0])); i++) {
        if (!io_uring_opcode_supported(pr, need[i])) {
            io_uring_free_probe(pr);
            rp_why(why, why_len, "io_uring lacks opcode %d "
                         "(needs Linux >= 6.0)", need[i]);
            return -EOPNOTSUPP;
        }
    }
    io_uring_free_probe(pr);

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
    sqe = io_uring_get_sqe(&e->ring);
    io_uring_prep_poll_multishot(sqe, sv[0], POLLOUT);
    sqe->user_data = 2;
    want++;

    if (e->has_bufs) {
        sqe = io_uring_get_sqe(&e->ring);
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = e->bufs.bgid;
        sqe->user_data = 3;
        want++;
    }

    rc = io_uring_submit(&e->ring);

    /*
     * Phase one: the poll's first answer.  Phase two: cancel by fd, then
     * every request ends (the cancel and the ones it cancels).
     */
    for (i = 0; rc >= 0 && i < 16 && seen < want; i++) {
        if (!cancel_sent && (poll_more || poll_res != 0)) {
            sqe = io_uring_get_sqe(&e->ring);
            io_uring_prep_cancel_fd(sqe, sv[0], IORING_ASYNC_CANCEL_ALL);
            sqe->user_data = 4;
            want++;
            cancel_sent = 1;
            rc = io_uring_submit(&e->ring);
            if (rc < 0) {
                break;
            }
        }
        rc = rp_probe_cqe(e, &poll_more, &poll_res, &recv_res, &cancel_res,
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

RP_EXPORT int
rp_engine_create(const rp_engine_params_t *p, rp_event_cb cb,
    rp_engine_t **out, char *why, size_t why_len)
{
    rp_engine_t  *e;
    unsigned      entries, cq_entries, buf_count, buf_size;
    int           rc, n;

    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }

    entries = (p && p->entries) ? p->entries : 1024;
    cq_entries = (p && p->cq_entries) ? p->cq_entries : entries * 8;
    if (cq_entries < entries) {
        cq_entries = entries;
    }
    buf_count = (p && p->buf_count) ? p->buf_count : 1024;
    buf_size = (p && p->buf_size) ? p->buf_size : 16384;

    e = rp_fault_alloc() ? NULL : calloc(1, sizeof(*e));
    if (e == NULL) {
        rp_why(why, why_len, "io_uring engine: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    e->cb = cb;
    e->params_flags = p ? p->flags : 0;
    e->flush_timeout_ms = (p && p->flush_timeout_ms) ? p->flush_timeout_ms
                                                     : 60000;
    e->next_gen = 1;

    rc = rp_ring_init(e, entries, cq_entries, why, why_len);
    if (rc < 0) {
        free(e);
        return rc;
    }

    if (buf_count != RP_NO_BUFFERS) {
        rc = rp_bufring_init(e, buf_count, buf_size);
        if (rc < 0) {
            if (rc == -EINVAL || rc == -EOPNOTSUPP) {
                rp_why(why, why_len, "io_uring lacks provided buffer "
                             "rings (needs Linux >= 5.19)");
            } else {
                rp_why(why, why_len, "io_uring buffer ring of %u x %u "
                       "failed (%s)", buf_count, buf_size, strerror(-rc));
            }
            io_uring_queue_exit(&e->ring);
            free(e);
            return rc;
        }
        e->has_bufs = true;
    }

    rc = rp_probe_ops(e, why, why_len);
    if (rc < 0) {
        rp_bufring_free(e, true);
        io_uring_queue_exit(&e->ring);
        free(e);
        return rc;
    }

    /*
     * A registered ring fd saves an fdget per enter, but registrations are
     * per thread: only when one thread owns the ring.
     */
    if (!(e->params_flags & RP_ENGINE_SHARED_THREADS)) {
        (void) io_uring_register_ring_fd(&e->ring);
    }

    n = snprintf(e->desc, sizeof(e->desc), "io_uring: sq %u, cq %u, %s",
                 e->ring.sq.ring_entries, e->ring.cq.ring_entries,
                 (e->setup_flags & IORING_SETUP_DEFER_TASKRUN)
                 ? "defer_taskrun"
                 : (e->setup_flags & IORING_SETUP_COOP_TASKRUN)
                   ? "coop_taskrun" : "plain");
    if (n > 0 && (size_t) n < sizeof(e->desc)) {
        if (e->has_bufs) {
            snprintf(e->desc + n, sizeof(e->desc) - n, ", %u x %u buffers",
                     e->bufs.count, e->bufs.size);
        } else {
            snprintf(e->desc + n, sizeof(e->desc) - n, ", no buffer ring");
        }
    }

    *out = e;
    return 0;
}

static void
rp_ops_free_all(rp_engine_t *e)
{
    unsigned  i;

    for (i = 0; i < e->n_op_chunks; i++) {
        free(e->op_chunks[i]);
    }
    free(e->op_chunks);
    e->op_chunks = NULL;
    e->n_op_chunks = 0;
    e->op_free = NULL;
}

RP_EXPORT void
rp_engine_destroy(rp_engine_t *e)
{
    struct io_uring_sqe  *sqe;
    int                   i;

    if (e == NULL) {
        return;
    }

    /*
     * Ask the kernel to let go of everything, and give it a moment, so no
     * receive writes into buffers being unmapped.  The host hears nothing
     * more.
     */
    e->cb = NULL;
    if (e->ops_live > 0) {
        sqe = rp_get_sqe(e);
        if (sqe != NULL) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            sqe->user_data = RP_UD_CANCEL;
        }
        for (i = 0; i < 20 && e->ops_live > 0; i++) {
            if (rp_engine_wait(e, 5) < 0) {
                break;
            }
        }
    }

    rp_fd_drop_all(e, true);
    io_uring_queue_exit(&e->ring);
    rp_bufring_free(e, false);
    rp_ops_free_all(e);
    free(e);
}

RP_EXPORT void
rp_engine_forget(rp_engine_t *e)
{
    if (e == NULL) {
        return;
    }

    /*
     * The parent still owns the ring and the kernel's view of the buffers:
     * submit nothing, call no host callback, just drop this copy.
     */
    rp_fd_drop_all(e, false);
    io_uring_queue_exit(&e->ring);
    rp_bufring_free(e, false);
    rp_ops_free_all(e);
    free(e);
}

RP_EXPORT const char *
rp_engine_name(const rp_engine_t *e)
{
    (void) e;
    return rp_name;
}

RP_EXPORT const char *
rp_engine_describe(const rp_engine_t *e)
{
    return e->desc;
}

/* An SQE, flushing the SQ to the kernel first if it is full. */
struct io_uring_sqe *
rp_get_sqe(rp_engine_t *e)
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
        sqe = io_uring_get_sqe(&e->ring);
        if (sqe != NULL) {
            e->st.sqes++;
            return sqe;
        }
        e->st.sq_full++;
        rc = rp_submit_now(e);
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {
            break;
        }
        if (rc < 0) {
            (void) io_uring_get_events(&e->ring);
        }
    }
    return NULL;
}

int
rp_submit_now(rp_engine_t *e)
{
    int  rc;

    e->st.enters++;
    rc = io_uring_submit(&e->ring);
    return rc;
}

#ifdef RP_FAULT_INJECTION

static long  rp_fault_nth, rp_fault_seen;

RP_EXPORT int
rp_fault_alloc(void)
{
    return ++rp_fault_seen == rp_fault_nth;
}

RP_EXPORT void
rp_fault_set(long nth)
{
    rp_fault_nth = nth;
    rp_fault_seen = 0;
}

RP_EXPORT long
rp_fault_count(void)
{
    return rp_fault_seen;
}

#endif

rp_op_t *
rp_op_new(rp_engine_t *e, rp_fd_t *f, enum rp_op_kind kind)
{
    rp_op_t   *op, *chunk;
    void     **chunks;
    unsigned   i;

    if (e->op_free == NULL) {
        chunk = rp_fault_alloc() ? NULL
                : calloc(RP_OPS_PER_CHUNK, sizeof(rp_op_t));
        if (chunk == NULL) {
            return NULL;
        }
        chunks = rp_fault_alloc() ? NULL
                 : realloc(e->op_chunks,
                           (e->n_op_chunks + 1) * sizeof(void *));
        if (chunks == NULL) {
            free(chunk);
            return NULL;
        }
        e->op_chunks = chunks;
        e->op_chunks[e->n_op_chunks++] = chunk;
        for (i = 0; i < RP_OPS_PER_CHUNK; i++) {
            chunk[i].next_free = e->op_free;
            e->op_free = &chunk[i];
        }
    }

    op = e->op_free;
    e->op_free = op->next_free;
    op->next_free = NULL;
    op->fd = f;
    op->kind = (uint8_t) kind;
    op->multishot = 0;
    op->gen = f->gen;
    f->refs++;
    e->ops_live++;
    return op;
}

void
rp_op_free(rp_engine_t *e, rp_op_t *op)
{
    rp_op_t  **pp;

    if (op->cancel_pending) {
        for (pp = &e->cancels; *pp != NULL; pp = &(*pp)->cancel_next) {
            if (*pp == op) {
                *pp = op->cancel_next;
                break;
            }
        }
        op->cancel_pending = 0;
        op->cancel_next = NULL;
    }
    op->fd = NULL;
    op->kind = 0;
    e->ops_live--;
    op->next_free = e->op_free;
    e->op_free = op;
}

static void
rp_reap(rp_engine_t *e, int *handled)
{
    struct io_uring_cqe  *cqes[RP_REAP_BATCH];
    struct {
        uint64_t  ud;
        int32_t   res;
        uint32_t  flags;
    }                     batch[RP_REAP_BATCH];
    unsigned              n, i, budget;

    /*
     * A bounded reap: completions that callbacks cause while it runs are
     * left for the next pass, so a busy fd cannot keep the loop here.
     */
    budget = e->ring.cq.ring_entries * 2;

    while (budget > 0) {
        /*
         * Completions that did not fit wait in the kernel's overflow list
         * (NODROP); peek_batch fetches them with an enter of its own.
         */
        if (io_uring_cq_has_overflow(&e->ring)) {
            e->st.cq_overflow++;
            e->st.enters++;
        }
        n = io_uring_peek_batch_cqe(&e->ring, cqes,
                                    budget < RP_REAP_BATCH ? budget
                                                           : RP_REAP_BATCH);
        if (n == 0) {
            return;
        }

        /*
         * Copy and release the CQ slots before calling the host, which may
         * close fds and submit from its callback.
         */
        for (i = 0; i < n; i++) {
            batch[i].ud = cqes[i]->user_data;
            batch[i].res = cqes[i]->res;
            batch[i].flags = cqes[i]->flags;
        }
        io_uring_cq_advance(&e->ring, n);
        e->st.cqes += n;
        *handled += (int) n;
        budget -= n;

        for (i = 0; i < n; i++) {
            if (batch[i].ud == RP_UD_CANCEL || batch[i].ud == 0) {
                continue;
            }
            rp_fd_complete(e, (rp_op_t *) (uintptr_t) batch[i].ud,
                           batch[i].res, batch[i].flags);
        }
    }
}

RP_EXPORT int
rp_engine_wait(rp_engine_t *e, int timeout_ms)
{
    return rp_engine_wait_us(e, timeout_ms < 0 ? -1
                                : (long long) timeout_ms * 1000);
}

RP_EXPORT int
rp_engine_wait_us(rp_engine_t *e, long long timeout_us)
{
    struct __kernel_timespec   ts;
    struct io_uring_cqe       *cqe;
    int                        rc, handled = 0;

    long long                  flush_us;

    e->st.waits++;

    rp_fd_prepare(e);

    /* closed fds still sending have a deadline the host knows nothing of */
    flush_us = rp_fd_flush_wait_us(e);
    if (flush_us >= 0 && (timeout_us < 0 || flush_us < timeout_us)) {
        timeout_us = flush_us;
    }

    /*
     * One system call: submit what the pass queued and wait, with the
     * host's timeout.  Even a zero timeout enters with GETEVENTS so that
     * deferred task work (DEFER_TASKRUN) runs.  liburing enters only when
     * there is something to submit or nothing to reap.
     */
    if (io_uring_sq_ready(&e->ring) > 0 || io_uring_cq_ready(&e->ring) == 0) {
        e->st.enters++;
    }

    if (timeout_us < 0) {
        rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, NULL, NULL);
    } else {
        ts.tv_sec = timeout_us / 1000000;
        ts.tv_nsec = (timeout_us % 1000000) * 1000;
        rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
    }

    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY
        && rc != -EAGAIN)
    {
        return rc;
    }

    rp_reap(e, &handled);

    if (rc == -EINTR && handled == 0) {
        return -EINTR;
    }
    return handled;
}

RP_EXPORT int
rp_engine_flush(rp_engine_t *e)
{
    rp_fd_prepare(e);
    if (io_uring_sq_ready(&e->ring) == 0) {
        return 0;
    }
    return rp_submit_now(e);
}

RP_EXPORT void
rp_engine_stats(const rp_engine_t *e, rp_stats_t *st)
{
    *st = e->st;
    st->bufs_in_use_now = e->has_bufs ? e->bufs.in_use : 0;
}

RP_EXPORT size_t
rp_stats_format(const rp_stats_t *st, char *buf, size_t len)
{
    int  n;

    n = snprintf(buf, len,
                 "enters=%llu waits=%llu sqes=%llu cqes=%llu recv_bytes=%llu "
                 "send_bytes=%llu enobufs=%llu rearms=%llu cancels=%llu "
                 "stale=%llu sq_full=%llu cq_overflow=%llu send_partial=%llu "
                 "flush_timeouts=%llu bufs_in_use=%u fds=%u",
                 (unsigned long long) st->enters,
                 (unsigned long long) st->waits,
                 (unsigned long long) st->sqes,
                 (unsigned long long) st->cqes,
                 (unsigned long long) st->recv_bytes,
                 (unsigned long long) st->send_bytes,
                 (unsigned long long) st->enobufs,
                 (unsigned long long) st->rearms,
                 (unsigned long long) st->cancels,
                 (unsigned long long) st->stale,
                 (unsigned long long) st->sq_full,
                 (unsigned long long) st->cq_overflow,
                 (unsigned long long) st->send_partial,
                 (unsigned long long) st->flush_timeouts,
                 st->bufs_in_use_now, st->fds_open_now);
    if (n < 0) {
        return 0;
    }
    return (size_t) n < len ? (size_t) n : (len ? len - 1 : 0);
}
