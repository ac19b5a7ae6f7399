/*
 * ringplug core: the engine-neutral engine.  Creation and teardown around
 * the backend, one submit-and-wait per loop pass, completion dispatch, op
 * allocation, counters.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define RP_OPS_PER_CHUNK  256
#define RP_REAP_BATCH     128

RP_EXPORT int
rp_engine_create(const rp_engine_params_t *p, rp_event_cb cb,
    rp_engine_t **out, char *why, size_t why_len)
{
    rp_engine_params_t  r;
    rp_engine_t        *e;
    int                 rc;

    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }

    memset(&r, 0, sizeof(r));
    r.entries = (p && p->entries) ? p->entries : 1024;
    r.cq_entries = (p && p->cq_entries) ? p->cq_entries : r.entries * 8;
    if (r.cq_entries < r.entries) {
        r.cq_entries = r.entries;
    }
    r.buf_count = (p && p->buf_count) ? p->buf_count : 1024;
    r.buf_size = (p && p->buf_size) ? p->buf_size : 16384;
    r.flags = p ? p->flags : 0;
    r.flush_timeout_ms = (p && p->flush_timeout_ms) ? p->flush_timeout_ms
                                                    : 60000;

    rc = rp_be_create(&r, &e, why, why_len);
    if (rc < 0) {
        return rc;
    }
    e->cb = cb;
    e->params_flags = r.flags;
    e->flush_timeout_ms = r.flush_timeout_ms;
    e->next_gen = 1;

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
    int  i;

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
        (void) rp_be_cancel_all(e);
        for (i = 0; i < 20 && e->ops_live > 0; i++) {
            if (rp_engine_wait(e, 5) < 0) {
                break;
            }
        }
    }

    rp_fd_drop_all(e, true);
    rp_bufs_meta_free(e);
    /*
     * Ops the kernel has not let go of by now stay allocated: on Windows it
     * writes an overlapped request's status into the op when it completes.
     */
    if (e->ops_live == 0) {
        rp_ops_free_all(e);
    }
    rp_be_destroy(e, false);
}

RP_EXPORT void
rp_engine_forget(rp_engine_t *e)
{
    if (e == NULL) {
        return;
    }

    /*
     * The parent still owns the kernel objects and the kernel's view of the
     * buffers: submit nothing, call no host callback, just drop this copy.
     */
    rp_fd_drop_all(e, false);
    rp_bufs_meta_free(e);
    rp_ops_free_all(e);
    rp_be_destroy(e, true);
}

RP_EXPORT const char *
rp_engine_name(const rp_engine_t *e)
{
    (void) e;
    return rp_be_name();
}

RP_EXPORT const char *
rp_engine_describe(const rp_engine_t *e)
{
    return e->desc;
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
    rp_op_t   *op;
    char      *chunk;
    void     **chunks;
    unsigned   i;

    if (e->op_free == NULL) {
        chunk = rp_fault_alloc() ? NULL : calloc(RP_OPS_PER_CHUNK, e->op_size);
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
            op = (rp_op_t *) (chunk + i * e->op_size);
            op->next_free = e->op_free;
            e->op_free = op;
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

/*
 * A bounded reap: completions that callbacks cause while it runs are left
 * for the next pass, so a busy fd cannot keep the loop here.  The backend
 * frees the kernel's slots before any host callback runs (the host may
 * close fds and submit from its callback).
 */
static int
rp_reap(rp_engine_t *e)
{
    rp_done_t  batch[RP_REAP_BATCH];
    unsigned   n, i, budget;
    int        handled = 0;

    budget = e->reap_budget;

    while (budget > 0) {
        n = rp_be_reap(e, batch, budget < RP_REAP_BATCH ? budget
                                                        : RP_REAP_BATCH);
        if (n == 0) {
            break;
        }
        e->st.cqes += n;
        handled += (int) n;
        budget -= n;

        for (i = 0; i < n; i++) {
            if (batch[i].op != NULL) {
                rp_fd_complete(e, &batch[i]);
            }
        }
    }
    return handled;
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
    long long  flush_us;
    int        rc, handled;

    e->st.waits++;

    rp_fd_prepare(e);

    /* closed fds still sending have a deadline the host knows nothing of */
    flush_us = rp_fd_flush_wait_us(e);
    if (flush_us >= 0 && (timeout_us < 0 || flush_us < timeout_us)) {
        timeout_us = flush_us;
    }

    rc = rp_be_wait(e, timeout_us);
    if (rc < 0 && rc != -EINTR) {
        return rc;
    }

    handled = rp_reap(e);

    if (rc == -EINTR && handled == 0) {
        return -EINTR;
    }
    return handled;
}

RP_EXPORT int
rp_engine_flush(rp_engine_t *e)
{
    rp_fd_prepare(e);
    return rp_be_submit(e, false);
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
