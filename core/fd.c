/*
 * ringplug core: per-fd state, engine-neutral.  Readiness polls, the
 * multishot receive and its queue of provided buffers, the ordered send
 * queue with one send in flight, and close.  Requests reach the kernel only
 * through the backend (rp_be_*, engine.h).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define RP_SEG_MIN_CAP   16384
#define RP_SEG_CACHE     64      /* copy segments kept for reuse: 1 MiB */
#define RP_REF_CACHE     256     /* reference segments kept for reuse */

static void rp_fd_maybe_free(rp_engine_t *e, rp_fd_t *f);
static int rp_recv_arm(rp_engine_t *e, rp_fd_t *f);
static void rp_fin_arm(rp_engine_t *e, rp_fd_t *f);
static void rp_fin_disarm(rp_engine_t *e, rp_fd_t *f);
static void rp_sendq_drop(rp_engine_t *e, rp_fd_t *f, bool call_done);

RP_EXPORT rp_fd_t *
rp_fd_open(rp_engine_t *e, rp_socket_t fd, void *fd_data)
{
    rp_fd_t  *f;

    f = rp_be_fd_new(e);
    if (f == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    f->e = e;
    f->fd = fd;
    f->sendfd = fd;
    f->data = fd_data;
    f->gen = e->next_gen++;

    f->next = e->fds;
    if (e->fds != NULL) {
        e->fds->prev = f;
    }
    e->fds = f;
    e->st.fds_open_now++;
    return f;
}

RP_EXPORT void
rp_fd_set_data(rp_fd_t *f, void *fd_data)
{
    f->data = fd_data;
}

RP_EXPORT void
rp_fd_set_flags(rp_fd_t *f, unsigned flags)
{
    f->flags = flags;
}

RP_EXPORT void *
rp_fd_data(const rp_fd_t *f)
{
    return f->data;
}

RP_EXPORT rp_socket_t
rp_fd_fileno(const rp_fd_t *f)
{
    return f->fd;
}

static void
rp_unlink(rp_engine_t *e, rp_fd_t *f)
{
    if (f->prev != NULL) {
        f->prev->next = f->next;
    } else {
        e->fds = f->next;
    }
    if (f->next != NULL) {
        f->next->prev = f->prev;
    }
}

static void
rp_cancel_op(rp_engine_t *e, rp_op_t *op)
{
    if (rp_be_cancel(e, op) < 0) {
        /* no room for it now: the next pass sends it (rp_cancels_retry) */
        if (!op->cancel_pending) {
            op->cancel_pending = 1;
            op->cancel_next = e->cancels;
            e->cancels = op;
        }
        return;
    }
    e->st.cancels++;
}

static void
rp_cancels_retry(rp_engine_t *e)
{
    rp_op_t  *op;

    while ((op = e->cancels) != NULL) {
        e->cancels = op->cancel_next;
        op->cancel_pending = 0;
        op->cancel_next = NULL;
        rp_cancel_op(e, op);
        if (op->cancel_pending) {
            return;                 /* still no room */
        }
    }
}

/* An operation allocated and never submitted: the backend had no room. */
static void
rp_op_unsubmitted(rp_engine_t *e, rp_fd_t *f, rp_op_t *op)
{
    rp_op_free(e, op);
    f->refs--;
}

/* Call the host, keeping f alive across the call. */
static void
rp_notify(rp_engine_t *e, rp_fd_t *f, enum rp_event ev, int res)
{
    if (f->closed || e->cb == NULL) {
        return;
    }
    f->refs++;
    e->cb(e, f, f->data, ev, res);
    f->refs--;
}

static void
rp_rearm_later(rp_engine_t *e, rp_fd_t *f)
{
    if (!f->on_rearm) {
        f->on_rearm = 1;
        f->rearm_next = e->rearm;
        e->rearm = f;
    }
}

/* Return every queued receive buffer to the pool. */
static void
rp_recvq_drop(rp_engine_t *e, rp_fd_t *f)
{
    uint32_t  bid;

    while (f->recvq_head != 0) {
        bid = f->recvq_head - 1;
        f->recvq_head = e->bufs.meta[bid].next;
        rp_buf_recycle(e, bid);
    }
    f->recvq_tail = 0;
    f->recvq_bytes = 0;
}

/* A closed fd is done sending: close the duplicate (or, with
   RP_CLOSE_SOCKET, the socket itself), leave the list. */
static void
rp_flush_end(rp_engine_t *e, rp_fd_t *f)
{
    rp_fd_t  **pp;

    for (pp = &e->flushing; *pp != NULL; pp = &(*pp)->flush_next) {
        if (*pp == f) {
            *pp = f->flush_next;
            break;
        }
    }
    f->flush_next = NULL;
    rp_os_close(f->sendfd);
    f->sendfd = RP_INVALID_SOCKET;
    f->flushing = 0;
    e->st.flushing_now--;
}

/*
 * Closed fds whose peer has taken nothing for flush_timeout_ms: cancel the
 * send, drop the queue (its memory goes when the cancelled send completes)
 * and close the duplicate, as the kernel would give up on an orphan socket.
 */
static void
rp_flush_expire(rp_engine_t *e)
{
    rp_fd_t   *f, *next;
    uint64_t   now, progress;

    if (e->flushing == NULL) {
        return;
    }
    now = rp_os_now_ms();
    for (f = e->flushing; f != NULL; f = next) {
        next = f->flush_next;
        if (f->flush_deadline > now) {
            continue;
        }
        progress = rp_os_peer_progress(f->sendfd);
        if (progress != f->flush_mark) {
            f->flush_mark = progress;
            f->flush_deadline = now + e->flush_timeout_ms;
            continue;
        }
        e->st.flush_timeouts++;
        f->send_err = -ETIMEDOUT;
        if (f->send_op != NULL) {
            if (rp_be_cancel_sock(e, f->sendfd) < 0) {
                continue;           /* the next pass tries again */
            }
            e->st.cancels++;
            (void) rp_be_submit(e, true);
        } else {
            rp_sendq_drop(e, f, true);
        }
        rp_flush_end(e, f);
        rp_fd_maybe_free(e, f);
    }
}

/* How long the pass may wait before a flush deadline: -1 if none. */
long long
rp_fd_flush_wait_us(rp_engine_t *e)
{
    rp_fd_t   *f;
    uint64_t   now, first = UINT64_MAX;

    if (e->flushing == NULL) {
        return -1;
    }
    for (f = e->flushing; f != NULL; f = f->flush_next) {
        if (f->flush_deadline < first) {
            first = f->flush_deadline;
        }
    }
    now = rp_os_now_ms();
    /* the coarse clock ticks in milliseconds: wake just after the tick */
    return first > now ? (long long) (first - now) * 1000 + 1000 : 0;
}

RP_EXPORT void
rp_fd_close(rp_engine_t *e, rp_fd_t *f, unsigned flags)
{
    rp_socket_t  dupfd;
    bool         flush;

    if (f->closed) {
        return;
    }
    f->closed = 1;
    f->recv_want = 0;
    e->st.fds_open_now--;
    rp_recvq_drop(e, f);

    flush = (flags & RP_CLOSE_FLUSH) && f->sendq_bytes > 0
            && f->send_err == 0;
    if (flush) {
        /*
         * The host closes its socket right after this call; sends still
         * queued go to a duplicate, closed once the queue is empty: the
         * backend's own send handle if it made one (Windows), else a new
         * one.  With RP_CLOSE_SOCKET the host does not close it: they go
         * on the socket itself, which the flush's end closes.
         */
        dupfd = f->sendfd;
        if (dupfd == f->fd && (flags & RP_CLOSE_SOCKET)) {
            f->close_fd = 1;        /* the socket itself goes on */
        } else if (dupfd == f->fd && rp_os_dup(f->fd, &dupfd) < 0) {
            flush = false;
        }
        if (flush) {
            f->sendfd = dupfd;
            f->flushing = 1;
            e->st.flushing_now++;
            f->flush_deadline = rp_os_now_ms() + e->flush_timeout_ms;
            f->flush_mark = rp_os_peer_progress(dupfd);
            f->flush_next = e->flushing;
            e->flushing = f;
        }
    }

    /*
     * Cancel the fd's own requests by user_data: exact even if the host has
     * already closed the descriptor and its number names another file now.
     * A send being flushed is left to finish.
     */
    if (f->poll_op != NULL) {
        rp_cancel_op(e, f->poll_op);
    }
    if (f->recv_op != NULL) {
        rp_cancel_op(e, f->recv_op);
    }
    if (f->fin_op != NULL) {
        rp_cancel_op(e, f->fin_op);
    }
    f->poll_op = NULL;
    f->recv_op = NULL;
    f->fin_op = NULL;
    f->rearm_poll = 0;
    f->rearm_recv = 0;

    if (!flush) {
        if (f->send_op != NULL) {
            /* its memory is released when the kernel lets go of it */
            f->send_err = -ECANCELED;
            rp_cancel_op(e, f->send_op);
        } else {
            rp_sendq_drop(e, f, true);
        }
        if (f->sendfd != f->fd) {
            /* the backend's own send handle (Windows), the send on it
               cancelled above: the host's close must be the last */
            rp_os_close(f->sendfd);
            f->sendfd = RP_INVALID_SOCKET;
        }
    }

    /*
     * Submit now, and let the kernel run the cancels' work in the same
     * call: the host's close that follows must be the socket's last
     * reference, so the peer sees the FIN at once.
     */
    (void) rp_be_submit(e, true);

    if ((flags & RP_CLOSE_SOCKET) && !f->close_fd) {
        /* the host's close, done here; a flush goes on its own handle */
        rp_os_close(f->fd);
    }

    rp_fd_maybe_free(e, f);
}

/*
 * Free a closed fd once the kernel and the engine's lists are done with it;
 * the list walkers (re-arm, send submission) call this again.
 */
static void
rp_fd_maybe_free(rp_engine_t *e, rp_fd_t *f)
{
    if (!f->closed || f->refs > 0 || f->flushing || f->starved
        || f->send_dirty || f->on_rearm)
    {
        return;
    }
    rp_sendq_drop(e, f, true);
    rp_unlink(e, f);
    rp_be_fd_free(e, f);
}

/* ---- readiness ---------------------------------------------------------- */

RP_EXPORT int
rp_poll(rp_engine_t *e, rp_fd_t *f, unsigned events, unsigned flags)
{
    rp_op_t  *op;
    int       rc;

    if (f->closed) {
        return -EBADF;
    }

    if (f->poll_op != NULL || f->rearm_poll) {
        if (f->poll_mask == events && f->poll_flags == flags) {
            return 0;
        }
    }
    if (f->poll_op != NULL) {
        /* Its late completions are dropped: it is no longer current. */
        rp_cancel_op(e, f->poll_op);
        f->poll_op = NULL;
    }

    f->poll_mask = events;
    f->poll_flags = flags;
    f->rearm_poll = 0;
    if (events == 0) {
        return 0;
    }

    op = rp_op_new(e, f, RP_OP_POLL);
    if (op == NULL) {
        return -ENOMEM;
    }
    op->multishot = (flags & RP_POLL_MULTISHOT) ? 1 : 0;
    rc = rp_be_poll(e, op, f->fd, events, op->multishot);
    if (rc < 0) {
        rp_op_unsubmitted(e, f, op);
        return rc;
    }
    f->poll_op = op;
    return 0;
}

RP_EXPORT unsigned
rp_poll_armed(const rp_fd_t *f)
{
    return (f->poll_op != NULL || f->rearm_poll) ? f->poll_mask : 0;
}

static void
rp_poll_done(rp_engine_t *e, rp_fd_t *f, rp_op_t *op, int res, bool more)
{
    bool  current = !f->closed && f->poll_op == op;

    if (!more && f->poll_op == op) {
        f->poll_op = NULL;
    }

    if (!current) {
        e->st.stale++;
        return;
    }

    /*
     * A multishot poll can end on its own (an overflowing CQ): the host asked
     * for it to stay armed, so re-arm it when the next pass is prepared, not
     * from here, where a still-ready fd would complete again at once while
     * this very reap runs.
     */
    if (!more && (f->poll_flags & RP_POLL_MULTISHOT) && res >= 0) {
        f->rearm_poll = 1;
        rp_rearm_later(e, f);
    }

    rp_notify(e, f, RP_EV_POLL, res);
}

/* ---- receive ------------------------------------------------------------ */

static int
rp_recv_arm(rp_engine_t *e, rp_fd_t *f)
{
    rp_op_t  *op;
    int       rc;

    op = rp_op_new(e, f, RP_OP_RECV);
    if (op == NULL) {
        return -ENOMEM;
    }
    op->multishot = 1;
    rc = rp_be_recv(e, op, f->fd);
    if (rc < 0) {
        rp_op_unsubmitted(e, f, op);
        return rc;
    }
    f->recv_op = op;

    /* the receive sees the FIN itself */
    rp_fin_disarm(e, f);
    return 0;
}

RP_EXPORT int
rp_recv_start(rp_engine_t *e, rp_fd_t *f, size_t max_queued)
{
    if (!e->has_bufs) {
        return -EOPNOTSUPP;
    }
    if (f->closed) {
        return -EBADF;
    }
    f->recvq_max = max_queued;
    f->recv_want = 1;
    if (f->recv_op != NULL || f->recv_status != 0 || f->starved
        || f->recv_paused || f->rearm_recv)
    {
        return 0;
    }
    return rp_recv_arm(e, f);
}

RP_EXPORT void
rp_recv_stop(rp_engine_t *e, rp_fd_t *f)
{
    f->recv_want = 0;
    f->recv_paused = 0;
    if (f->recv_op != NULL) {
        rp_cancel_op(e, f->recv_op);
        f->recv_op = NULL;
    }
    rp_fin_arm(e, f);
}

RP_EXPORT void
rp_recv_watch_fin(rp_engine_t *e, rp_fd_t *f, int on)
{
    f->fin_watch = on ? 1 : 0;
    if (!on) {
        rp_fin_disarm(e, f);
    } else if (f->recv_op == NULL && !f->rearm_recv) {
        rp_fin_arm(e, f);
    }
}

RP_EXPORT int
rp_recv_peer_closed(const rp_fd_t *f)
{
    return f->peer_fin || f->recv_status != 0;
}

/*
 * A one-shot poll for the FIN only (RP_RDHUP; errors and hang-up are
 * always reported): data arriving does not complete it.  Armed when the
 * receive is paused or stopped while the stream is open, cancelled when it
 * is armed again.  Not for ENOBUFS: buffers come back within a pass or two,
 * and a storm of re-arms would double its SQEs.
 */
static void
rp_fin_arm(rp_engine_t *e, rp_fd_t *f)
{
    rp_op_t  *op;

    if (!f->fin_watch || f->closed || f->fin_op != NULL || f->peer_fin
        || f->recv_status != 0)
    {
        return;
    }
    op = rp_op_new(e, f, RP_OP_FIN);
    if (op == NULL) {
        return;
    }
    if (rp_be_poll(e, op, f->fd, RP_RDHUP, false) < 0) {
        rp_op_unsubmitted(e, f, op);
        return;                     /* the receive's end still shows a FIN */
    }
    f->fin_op = op;
}

static void
rp_fin_disarm(rp_engine_t *e, rp_fd_t *f)
{
    if (f->fin_op != NULL) {
        rp_cancel_op(e, f->fin_op);
        f->fin_op = NULL;
    }
}

static void
rp_fin_done(rp_engine_t *e, rp_fd_t *f, rp_op_t *op, int res)
{
    if (f->closed || f->fin_op != op) {
        e->st.stale++;
        return;
    }
    f->fin_op = NULL;
    if (res > 0) {
        f->peer_fin = 1;
        rp_notify(e, f, RP_EV_RECV, 0);
    }
}

RP_EXPORT size_t
rp_recv_queued(const rp_fd_t *f)
{
    return f->recvq_bytes;
}

RP_EXPORT int
rp_recv_status(const rp_fd_t *f)
{
    return f->recv_status;
}

RP_EXPORT int
rp_recv_armed(const rp_fd_t *f)
{
    return f->recv_op != NULL || f->rearm_recv;
}

static void
rp_recv_done(rp_engine_t *e, rp_fd_t *f, const rp_done_t *d)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;
    int            res = d->res;
    bool           more = d->flags & RP_DONE_MORE;
    bool           armed = f->recv_op == d->op;
    bool           notify = false;

    if (!more && armed) {
        f->recv_op = NULL;
    }

    if (d->flags & RP_DONE_BUF) {
        bid = d->bid;
        rp_buf_got(e, bid);

        /*
         * Data from any receive of an open fd is queued, also from one being
         * cancelled (paused or stopped): those bytes have left the socket.
         */
        if (f->closed || res <= 0) {
            if (f->closed) {
                e->st.stale++;
            }
            rp_buf_recycle(e, bid);

        } else {
            m = &e->bufs.meta[bid];
            m->next = 0;
            m->off = 0;
            m->len = (uint32_t) res;
            if (f->recvq_tail != 0) {
                e->bufs.meta[f->recvq_tail - 1].next = bid + 1;
            } else {
                f->recvq_head = bid + 1;
            }
            f->recvq_tail = bid + 1;
            f->recvq_bytes += (size_t) res;
            e->st.recv_bytes += (uint64_t) res;
            notify = true;
        }

    } else if (f->closed) {
        e->st.stale++;
        return;
    }

    if (f->closed) {
        return;
    }

    if (res == 0 && !(d->flags & RP_DONE_BUF)) {
        f->recv_status = 1;
        f->recv_want = 0;
        notify = true;

    } else if (res < 0) {
        if (res == -ENOBUFS) {
            e->st.enobufs++;
            if (armed && !more && f->recv_want && !f->starved) {
                f->starved = 1;
                f->starve_next = e->starved;
                e->starved = f;
            }
        } else if (res != -ECANCELED) {
            f->recv_status = res;
            f->recv_want = 0;
            notify = true;
        }

    } else if (armed && !more && f->recv_want && !f->recv_paused) {
        /* the kernel ended the multishot receive; keep receiving */
        f->rearm_recv = 1;
        rp_rearm_later(e, f);
    }

    /* Too much unread: stop receiving until the host catches up. */
    if (f->recvq_max != 0 && f->recvq_bytes > f->recvq_max
        && f->recv_op != NULL)
    {
        rp_cancel_op(e, f->recv_op);
        f->recv_op = NULL;
        f->recv_paused = 1;
        rp_fin_arm(e, f);
    }

    if (notify) {
        rp_notify(e, f, RP_EV_RECV, res);
    }
}

/* After the host read: resume a paused receive once the queue is low. */
static void
rp_recv_resume(rp_engine_t *e, rp_fd_t *f)
{
    if (f->recv_paused && f->recvq_bytes <= f->recvq_max / 2 && !f->closed) {
        f->recv_paused = 0;
        if (f->recv_want && f->recv_op == NULL && !f->starved
            && f->recv_status == 0)
        {
            e->st.rearms++;
            if (rp_recv_arm(e, f) < 0) {
                f->rearm_recv = 1;      /* no op or room: the next pass */
                rp_rearm_later(e, f);
            }
        }
    }
}

/* Re-arm the multishot requests the kernel ended on its own. */
static void
rp_rearm_ended(rp_engine_t *e)
{
    rp_fd_t  *f, *next;
    int       again_poll = 0, again_recv = 0;

    f = e->rearm;
    e->rearm = NULL;
    for ( /* void */ ; f != NULL; f = next) {
        next = f->rearm_next;
        f->rearm_next = NULL;
        f->on_rearm = 0;
        if (!f->closed) {
            if (f->rearm_poll && f->poll_op == NULL && f->poll_mask != 0) {
                e->st.rearms++;
                f->rearm_poll = 0;
                again_poll = rp_poll(e, f, f->poll_mask, f->poll_flags) < 0;
            }
            if (f->rearm_recv && f->recv_op == NULL && f->recv_want
                && !f->recv_paused && !f->starved && f->recv_status == 0)
            {
                e->st.rearms++;
                again_recv = rp_recv_arm(e, f) < 0;
            }
        }
        /* an op or room that could not be had: the next pass tries again */
        f->rearm_poll = again_poll;
        f->rearm_recv = again_recv;
        if (again_poll || again_recv) {
            rp_rearm_later(e, f);
        }
        again_poll = again_recv = 0;
        rp_fd_maybe_free(e, f);
    }
}

static void
rp_rearm_starved(rp_engine_t *e)
{
    rp_fd_t   *f, *next;
    unsigned   threshold;

    if (e->starved == NULL) {
        return;
    }

    /* Re-arming into one free buffer would only run dry again at once. */
    threshold = e->bufs.count / 16;
    if (threshold > 16) {
        threshold = 16;
    }
    if (threshold == 0) {
        threshold = 1;
    }
    if (rp_bufs_free(e) < threshold) {
        return;
    }

    f = e->starved;
    e->starved = NULL;
    for ( /* void */ ; f != NULL; f = next) {
        next = f->starve_next;
        f->starve_next = NULL;
        f->starved = 0;
        if (!f->closed && f->recv_want && f->recv_op == NULL
            && !f->recv_paused && f->recv_status == 0)
        {
            e->st.rearms++;
            if (rp_recv_arm(e, f) < 0) {
                f->rearm_recv = 1;      /* no op or room: the next pass */
                rp_rearm_later(e, f);
            }
        }
        rp_fd_maybe_free(e, f);
    }
}

static void rp_submit_sends(rp_engine_t *e);

/*
 * Before a pass's submit: re-arm what the kernel ended, what ran out of
 * buffers, and prepare one send for every fd written to in the pass.
 */
void
rp_fd_prepare(rp_engine_t *e)
{
    rp_cancels_retry(e);
    rp_flush_expire(e);
    rp_rearm_ended(e);
    rp_rearm_starved(e);
    rp_submit_sends(e);
}

static void
rp_recvq_consume(rp_engine_t *e, rp_fd_t *f, void *dst, size_t len)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;
    size_t         n;

    while (len > 0 && f->recvq_head != 0) {
        bid = f->recvq_head - 1;
        m = &e->bufs.meta[bid];
        n = m->len < len ? m->len : len;
        if (dst != NULL) {
            memcpy(dst, rp_buf_addr(e, bid) + m->off, n);
            dst = (char *) dst + n;
        }
        m->off += (uint32_t) n;
        m->len -= (uint32_t) n;
        f->recvq_bytes -= n;
        len -= n;
        if (m->len == 0) {
            f->recvq_head = m->next;
            if (f->recvq_head == 0) {
                f->recvq_tail = 0;
            }
            rp_buf_recycle(e, bid);
        }
    }
    rp_recv_resume(e, f);
}

RP_EXPORT size_t
rp_recv_copy(rp_engine_t *e, rp_fd_t *f, void *dst, size_t len)
{
    if (len > f->recvq_bytes) {
        len = f->recvq_bytes;
    }
    rp_recvq_consume(e, f, dst, len);
    return len;
}

RP_EXPORT size_t
rp_recv_peek(const rp_fd_t *f, const void **data)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;

    if (f->recvq_head == 0) {
        *data = NULL;
        return 0;
    }
    bid = f->recvq_head - 1;
    m = &f->e->bufs.meta[bid];
    *data = rp_buf_addr(f->e, bid) + m->off;
    return m->len;
}

RP_EXPORT void
rp_recv_consume(rp_engine_t *e, rp_fd_t *f, size_t len)
{
    if (len > f->recvq_bytes) {
        len = f->recvq_bytes;
    }
    rp_recvq_consume(e, f, NULL, len);
}

RP_EXPORT uint32_t
rp_recv_take(rp_engine_t *e, rp_fd_t *f, const void **data, size_t *len)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;

    if (f->recvq_head == 0) {
        return 0;
    }
    bid = f->recvq_head - 1;
    m = &e->bufs.meta[bid];
    *data = rp_buf_addr(e, bid) + m->off;
    *len = m->len;

    f->recvq_head = m->next;
    if (f->recvq_head == 0) {
        f->recvq_tail = 0;
    }
    f->recvq_bytes -= m->len;
    m->next = 0;
    rp_recv_resume(e, f);
    return bid + 1;
}

RP_EXPORT void
rp_buf_release(rp_engine_t *e, uint32_t token)
{
    if (token == 0 || token > e->bufs.count) {
        return;
    }
    rp_buf_recycle(e, token - 1);
}

/* ---- send --------------------------------------------------------------- */

/*
 * Segments are allocated on every send of every connection: the freed ones
 * are kept for the next (a 16 KiB malloc/free pair per response cost about
 * 5% of an nginx worker's CPU on return-200).
 */
static rp_seg_t *
rp_seg_new(rp_engine_t *e, size_t cap)
{
    rp_seg_t  *s;

    if (cap == RP_SEG_MIN_CAP && e->seg_cache != NULL) {
        s = e->seg_cache;
        e->seg_cache = s->next;
        e->seg_cached--;

    } else if (cap == 0 && e->ref_cache != NULL) {
        s = e->ref_cache;
        e->ref_cache = s->next;
        e->ref_cached--;

    } else {
        s = rp_fault_alloc() ? NULL : malloc(sizeof(rp_seg_t) + cap);
        if (s == NULL) {
            return NULL;
        }
    }

    memset(s, 0, sizeof(*s));
    s->cap = cap;
    s->owned = cap > 0;
    s->base = s->data;
    return s;
}

/* The segment goes back before done() runs: the host may do anything there. */
static void
rp_seg_release(rp_engine_t *e, rp_seg_t *s)
{
    rp_send_done_cb   done = s->done;
    void             *arg = s->arg;

    if (s->cap == RP_SEG_MIN_CAP && e->seg_cached < RP_SEG_CACHE) {
        s->next = e->seg_cache;
        e->seg_cache = s;
        e->seg_cached++;

    } else if (s->cap == 0 && e->ref_cached < RP_REF_CACHE) {
        s->next = e->ref_cache;
        e->ref_cache = s;
        e->ref_cached++;

    } else {
        free(s);
    }

    if (done != NULL) {
        done(arg);
    }
}

static void
rp_seg_cache_free(rp_engine_t *e)
{
    rp_seg_t  *s;

    while ((s = e->seg_cache) != NULL) {
        e->seg_cache = s->next;
        free(s);
    }
    while ((s = e->ref_cache) != NULL) {
        e->ref_cache = s->next;
        free(s);
    }
    e->seg_cached = 0;
    e->ref_cached = 0;
}

static void
rp_sendq_drop(rp_engine_t *e, rp_fd_t *f, bool call_done)
{
    rp_seg_t  *s, *next;

    /* the queue is empty before any done() runs */
    s = f->sendq_head;
    f->sendq_head = NULL;
    f->sendq_tail = NULL;
    f->sendq_bytes = 0;
    f->send_inflight = 0;

    for ( /* void */ ; s != NULL; s = next) {
        next = s->next;
        if (!call_done) {
            s->done = NULL;
        }
        rp_seg_release(e, s);
    }
}

static void
rp_sendq_mark_dirty(rp_engine_t *e, rp_fd_t *f)
{
    if (!f->send_dirty && f->send_op == NULL) {
        f->send_dirty = 1;
        f->dirty_next = e->dirty;
        e->dirty = f;
    }
}

static rp_seg_t *
rp_seg_append(rp_fd_t *f, rp_seg_t *s)
{
    s->next = NULL;
    if (f->sendq_tail != NULL) {
        f->sendq_tail->next = s;
    } else {
        f->sendq_head = s;
    }
    f->sendq_tail = s;
    return s;
}

RP_EXPORT int
rp_send(rp_engine_t *e, rp_fd_t *f, const rp_iovec_t *iov, int iovcnt,
    unsigned flags, rp_send_done_cb done, void *arg)
{
    rp_seg_t  *s, *last = NULL;
    size_t     total = 0, n, room, cap;
    int        i;

    if (f->closed) {
        return -EBADF;
    }
    if (f->send_err != 0) {
        return f->send_err;
    }

    for (i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    if (total == 0) {
        if (done != NULL) {
            done(arg);
        }
        return 0;
    }

    /*
     * All or nothing: every segment the call needs is allocated before any
     * byte is queued, so -ENOMEM leaves the queue as it was and the caller
     * still owns its memory (a reference send has no done() attached to a
     * prefix, a copied one queues no prefix the caller sends again).
     */

    if (flags & RP_SEND_COPY) {
        s = f->sendq_tail;
        room = (s != NULL && s->owned) ? s->cap - s->len : 0;

        if (total > room) {
            /* the tail's room, then one segment for all of the rest */
            cap = total - room < RP_SEG_MIN_CAP ? RP_SEG_MIN_CAP : total - room;
            last = rp_seg_new(e, cap);
            if (last == NULL) {
                return -ENOMEM;
            }
        }

        for (i = 0; i < iovcnt; i++) {
            const char  *p = iov[i].iov_base;
            size_t       left = iov[i].iov_len;

            while (left > 0) {
                s = f->sendq_tail;
                room = (s != NULL && s->owned) ? s->cap - s->len : 0;
                if (room == 0) {
                    s = rp_seg_append(f, last);
                    room = s->cap;
                    last = NULL;
                }
                /* bytes already handed to an in-flight send stay put */
                n = left < room ? left : room;
                memcpy(s->data + s->len, p, n);
                s->len += n;
                f->sendq_bytes += n;
                left -= n;
                p += n;
            }
        }
        if (done != NULL) {
            done(arg);
        }

    } else {
        rp_seg_t  *head = NULL, **tail = &head;

        for (i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len == 0) {
                continue;
            }
            s = rp_seg_new(e, 0);
            if (s == NULL) {
                while ((s = head) != NULL) {
                    head = s->next;
                    rp_seg_release(e, s);   /* no done(): none attached */
                }
                return -ENOMEM;
            }
            s->base = iov[i].iov_base;
            s->len = iov[i].iov_len;
            *tail = s;
            tail = &s->next;
            last = s;
        }

        for (s = head; s != NULL; s = head) {
            head = s->next;
            rp_seg_append(f, s);
            f->sendq_bytes += s->len;
        }
        last->done = done;
        last->arg = arg;
    }

    rp_sendq_mark_dirty(e, f);
    return 0;
}

RP_EXPORT size_t
rp_send_pending(const rp_fd_t *f)
{
    return f->sendq_bytes;
}

RP_EXPORT int
rp_send_error(const rp_fd_t *f)
{
    return f->send_err;
}

static void
rp_send_arm(rp_engine_t *e, rp_fd_t *f)
{
    rp_op_t   *op;
    rp_seg_t  *s;
    int        n = 0;

    f->send_inflight = 0;
    for (s = f->sendq_head; s != NULL && n < RP_SEND_IOV; s = s->next) {
        if (s->len == s->off) {
            continue;
        }
        f->iov[n].iov_base = (char *) s->base + s->off;
        f->iov[n].iov_len = s->len - s->off;
        f->send_inflight += s->len - s->off;
        n++;
    }
    if (n == 0) {
        return;
    }

    op = rp_op_new(e, f, RP_OP_SEND);
    if (op == NULL) {
        rp_sendq_mark_dirty(e, f);
        return;
    }
    if (rp_be_send(e, op, f->sendfd, f->iov, n) < 0) {
        rp_op_unsubmitted(e, f, op);
        f->send_inflight = 0;
        rp_sendq_mark_dirty(e, f);  /* the next pass tries again */
        return;
    }
    f->send_op = op;
}

static void
rp_submit_sends(rp_engine_t *e)
{
    rp_fd_t  *f, *next;

    f = e->dirty;
    e->dirty = NULL;
    for ( /* void */ ; f != NULL; f = next) {
        next = f->dirty_next;
        f->dirty_next = NULL;
        f->send_dirty = 0;
        if (f->send_op == NULL && f->sendq_head != NULL && f->send_err == 0) {
            rp_send_arm(e, f);
        }
        rp_fd_maybe_free(e, f);
    }
}

/* The kernel accepted n bytes: release the segments they complete. */
static void
rp_sendq_advance(rp_fd_t *f, size_t n)
{
    rp_seg_t  *s;
    size_t     take;

    while (n > 0 && (s = f->sendq_head) != NULL) {
        take = s->len - s->off;
        if (take > n) {
            take = n;
        }
        s->off += take;
        f->sendq_bytes -= take;
        n -= take;
        if (s->off == s->len) {
            f->sendq_head = s->next;
            if (f->sendq_head == NULL) {
                f->sendq_tail = NULL;
            }
            rp_seg_release(f->e, s);
        }
    }
}

static void
rp_send_done(rp_engine_t *e, rp_fd_t *f, int res)
{
    if (f->flushing && res > 0) {
        f->flush_deadline = rp_os_now_ms() + e->flush_timeout_ms;
    }

    if (res > 0) {
        e->st.send_bytes += (uint64_t) res;
        if ((size_t) res < f->send_inflight) {
            e->st.send_partial++;
        }
        rp_sendq_advance(f, (size_t) res);
    } else if (res < 0 && f->send_err == 0) {
        f->send_err = res;
    }
    f->send_inflight = 0;

    if (f->send_err != 0) {
        rp_sendq_drop(e, f, true);
    } else if (f->sendq_head != NULL) {
        rp_sendq_mark_dirty(e, f);
    }

    if (f->flushing && f->sendq_head == NULL) {
        rp_flush_end(e, f);
        return;
    }

    rp_notify(e, f, RP_EV_SEND, res);
}

/* ---- completion dispatch ----------------------------------------------- */

void
rp_fd_complete(rp_engine_t *e, const rp_done_t *d)
{
    rp_op_t  *op = d->op;
    rp_fd_t  *f = op->fd;
    int       res = d->res;
    bool      more = d->flags & RP_DONE_MORE;

    if (!more) {
        if (op->kind == RP_OP_SEND && f->send_op == op) {
            f->send_op = NULL;
        }
    }

    /* Hold f while handling: the host may close it from its callback. */
    f->refs++;

    switch (op->kind) {
    case RP_OP_POLL:
        rp_poll_done(e, f, op, res, more);
        break;
    case RP_OP_RECV:
        rp_recv_done(e, f, d);
        break;
    case RP_OP_SEND:
        rp_send_done(e, f, res);
        break;
    case RP_OP_FIN:
        rp_fin_done(e, f, op, res);
        break;
    default:
        break;
    }

    if (!more) {
        rp_op_free(e, op);
        f->refs--;
    }
    f->refs--;
    rp_fd_maybe_free(e, f);
}

void
rp_fd_drop_all(rp_engine_t *e, bool call_done)
{
    rp_fd_t  *f, *next;

    for (f = e->fds; f != NULL; f = next) {
        next = f->next;
        if (call_done) {
            rp_recvq_drop(e, f);
        }
        rp_sendq_drop(e, f, call_done);
        if (f->sendfd != RP_INVALID_SOCKET
            && (f->sendfd != f->fd || f->close_fd))
        {
            rp_os_close(f->sendfd);
        }
        rp_be_fd_free(e, f);
    }
    e->fds = NULL;
    e->starved = NULL;
    e->dirty = NULL;
    e->rearm = NULL;
    e->flushing = NULL;
    e->st.flushing_now = 0;
    rp_seg_cache_free(e);
}
