/*
 * ringplug core, io_uring engine: per-fd state.  Readiness polls, the
 * multishot receive and its queue of provided buffers, the ordered send
 * queue with one send in flight, and close.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "uring-int.h"

#define RP_SEG_MIN_CAP   16384
#define RP_SEG_CACHE     64      /* copy segments kept for reuse: 1 MiB */
#define RP_REF_CACHE     256     /* reference segments kept for reuse */
#define RP_SEND_FLAGS    (MSG_NOSIGNAL | MSG_WAITALL)

static void rp_fd_maybe_free(rp_engine_t *e, rp_fd_t *f);
static int rp_recv_arm(rp_engine_t *e, rp_fd_t *f);
static void rp_fin_arm(rp_engine_t *e, rp_fd_t *f);
static void rp_fin_disarm(rp_engine_t *e, rp_fd_t *f);
static void rp_sq_drop(rp_engine_t *e, rp_fd_t *f, bool call_done);

RP_EXPORT rp_fd_t *
rp_fd_open(rp_engine_t *e, int fd, void *fd_data)
{
    rp_fd_t  *f;

    f = rp_fault_alloc() ? NULL : calloc(1, sizeof(*f));
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

RP_EXPORT void *
rp_fd_data(const rp_fd_t *f)
{
    return f->data;
}

RP_EXPORT int
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
    struct io_uring_sqe  *sqe;

    sqe = rp_get_sqe(e);
    if (sqe == NULL) {
        /* no SQE to be had now: the next pass sends it (rp_cancels_retry) */
        if (!op->cancel_pending) {
            op->cancel_pending = 1;
            op->cancel_next = e->cancels;
            e->cancels = op;
        }
        return;
    }
    io_uring_prep_cancel64(sqe, (uint64_t) (uintptr_t) op, 0);
    sqe->user_data = RP_UD_CANCEL;
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
            return;                 /* still no SQE */
        }
    }
}

/* An operation allocated and never submitted: no SQE could be had. */
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

/* Return every queued receive buffer to the ring. */
static void
rp_rq_drop(rp_engine_t *e, rp_fd_t *f)
{
    uint32_t  bid;

    while (f->rq_head != 0) {
        bid = f->rq_head - 1;
        f->rq_head = e->bufs.meta[bid].next;
        rp_buf_recycle(e, bid);
    }
    f->rq_tail = 0;
    f->rq_bytes = 0;
}

static uint64_t
rp_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/*
 * How far the peer has got: TCP's count of acknowledged bytes, or for other
 * stream sockets the bytes still queued.  A send with MSG_WAITALL completes
 * only when all of it is out, so completions alone cannot show a slow but
 * steady reader.
 */
static uint64_t
rp_peer_progress(int fd)
{
    struct tcp_info  ti;
    socklen_t        len = sizeof(ti);
    int              outq = 0;

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0
        && len >= offsetof(struct tcp_info, tcpi_bytes_acked)
                  + sizeof(ti.tcpi_bytes_acked))
    {
        return ti.tcpi_bytes_acked;
    }
    if (ioctl(fd, SIOCOUTQ, &outq) == 0) {
        return (uint64_t) outq;
    }
    return 0;
}

/* A closed fd is done sending: close the duplicate, leave the list. */
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
    close(f->sendfd);
    f->sendfd = -1;
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
    struct io_uring_sqe  *sqe;
    rp_fd_t              *f, *next;
    uint64_t              now, progress;

    if (e->flushing == NULL) {
        return;
    }
    now = rp_now_ms();
    for (f = e->flushing; f != NULL; f = next) {
        next = f->flush_next;
        if (f->flush_deadline > now) {
            continue;
        }
        progress = rp_peer_progress(f->sendfd);
        if (progress != f->flush_mark) {
            f->flush_mark = progress;
            f->flush_deadline = now + e->flush_timeout_ms;
            continue;
        }
        e->st.flush_timeouts++;
        f->send_err = -ETIMEDOUT;
        if (f->send_op != NULL) {
            sqe = rp_get_sqe(e);
            if (sqe == NULL) {
                continue;           /* the next pass tries again */
            }
            io_uring_prep_cancel_fd(sqe, f->sendfd, IORING_ASYNC_CANCEL_ALL);
            sqe->user_data = RP_UD_CANCEL;
            e->st.cancels++;
            e->st.enters++;
            (void) io_uring_submit_and_get_events(&e->ring);
        } else {
            rp_sq_drop(e, f, true);
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
    now = rp_now_ms();
    /* the coarse clock ticks in milliseconds: wake just after the tick */
    return first > now ? (long long) (first - now) * 1000 + 1000 : 0;
}

RP_EXPORT void
rp_fd_close(rp_engine_t *e, rp_fd_t *f, unsigned flags)
{
    bool  flush;
    int   dupfd;

    if (f->closed) {
        return;
    }
    f->closed = 1;
    f->recv_want = 0;
    e->st.fds_open_now--;
    rp_rq_drop(e, f);

    flush = (flags & RP_CLOSE_FLUSH) && f->sq_bytes > 0 && f->send_err == 0;
    if (flush) {
        /*
         * The host closes its fd right after this call; sends still queued
         * go to a duplicate, closed once the queue is empty.
         */
        dupfd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
        if (dupfd < 0) {
            flush = false;
        } else {
            f->sendfd = dupfd;
            f->flushing = 1;
            e->st.flushing_now++;
            f->flush_deadline = rp_now_ms() + e->flush_timeout_ms;
            f->flush_mark = rp_peer_progress(dupfd);
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
            rp_sq_drop(e, f, true);
        }
    }

    if (io_uring_sq_ready(&e->ring) > 0) {
        /*
         * Submit now, and run task work in the same enter: with
         * DEFER_TASKRUN the cancelled requests drop their file references
         * only then, and the host's close() that follows must be the last
         * reference, so the peer sees the FIN at once.
         */
        e->st.enters++;
        (void) io_uring_submit_and_get_events(&e->ring);
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
    rp_sq_drop(e, f, true);
    rp_unlink(e, f);
    free(f);
}

/* ---- readiness ---------------------------------------------------------- */

RP_EXPORT int
rp_poll(rp_engine_t *e, rp_fd_t *f, unsigned events, unsigned flags)
{
    struct io_uring_sqe  *sqe;
    rp_op_t              *op;

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
    sqe = rp_get_sqe(e);
    if (sqe == NULL) {
        rp_op_unsubmitted(e, f, op);
        return -EBUSY;
    }
    if (flags & RP_POLL_MULTISHOT) {
        op->multishot = 1;
        io_uring_prep_poll_multishot(sqe, f->fd, events);
    } else {
        io_uring_prep_poll_add(sqe, f->fd, events);
    }
    io_uring_sqe_set_data(sqe, op);
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
    struct io_uring_sqe  *sqe;
    rp_op_t              *op;

    op = rp_op_new(e, f, RP_OP_RECV);
    if (op == NULL) {
        return -ENOMEM;
    }
    op->multishot = 1;
    sqe = rp_get_sqe(e);
    if (sqe == NULL) {
        rp_op_unsubmitted(e, f, op);
        return -EBUSY;
    }
    io_uring_prep_recv_multishot(sqe, f->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = e->bufs.bgid;
    io_uring_sqe_set_data(sqe, op);
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
    f->rq_max = max_queued;
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
 * A one-shot poll for the FIN only (POLLRDHUP; errors and hang-up are
 * always reported): data arriving does not complete it.  Armed when the
 * receive is paused or stopped while the stream is open, cancelled when it
 * is armed again.  Not for ENOBUFS: buffers come back within a pass or two,
 * and a storm of re-arms would double its SQEs.
 */
static void
rp_fin_arm(rp_engine_t *e, rp_fd_t *f)
{
    struct io_uring_sqe  *sqe;
    rp_op_t              *op;

    if (!f->fin_watch || f->closed || f->fin_op != NULL || f->peer_fin
        || f->recv_status != 0)
    {
        return;
    }
    op = rp_op_new(e, f, RP_OP_FIN);
    if (op == NULL) {
        return;
    }
    sqe = rp_get_sqe(e);
    if (sqe == NULL) {
        rp_op_unsubmitted(e, f, op);
        return;                     /* the receive's end still shows a FIN */
    }
    io_uring_prep_poll_add(sqe, f->fd, POLLRDHUP);
    io_uring_sqe_set_data(sqe, op);
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
    return f->rq_bytes;
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
rp_recv_done(rp_engine_t *e, rp_fd_t *f, rp_op_t *op, int res,
    unsigned flags)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;
    bool           more = flags & IORING_CQE_F_MORE;
    bool           armed = f->recv_op == op;
    bool           notify = false;

    if (!more && armed) {
        f->recv_op = NULL;
    }

    if (flags & IORING_CQE_F_BUFFER) {
        bid = flags >> IORING_CQE_BUFFER_SHIFT;
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
            if (f->rq_tail != 0) {
                e->bufs.meta[f->rq_tail - 1].next = bid + 1;
            } else {
                f->rq_head = bid + 1;
            }
            f->rq_tail = bid + 1;
            f->rq_bytes += (size_t) res;
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

    if (res == 0 && !(flags & IORING_CQE_F_BUFFER)) {
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
    if (f->rq_max != 0 && f->rq_bytes > f->rq_max && f->recv_op != NULL) {
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
    if (f->recv_paused && f->rq_bytes <= f->rq_max / 2 && !f->closed) {
        f->recv_paused = 0;
        if (f->recv_want && f->recv_op == NULL && !f->starved
            && f->recv_status == 0)
        {
            e->st.rearms++;
            if (rp_recv_arm(e, f) < 0) {
                f->rearm_recv = 1;      /* no op or SQE: the next pass */
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
        /* an op or SQE that could not be had: the next pass tries again */
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
                f->rearm_recv = 1;      /* no op or SQE: the next pass */
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
rp_rq_consume(rp_engine_t *e, rp_fd_t *f, void *dst, size_t len)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;
    size_t         n;

    while (len > 0 && f->rq_head != 0) {
        bid = f->rq_head - 1;
        m = &e->bufs.meta[bid];
        n = m->len < len ? m->len : len;
        if (dst != NULL) {
            memcpy(dst, rp_buf_addr(e, bid) + m->off, n);
            dst = (char *) dst + n;
        }
        m->off += (uint32_t) n;
        m->len -= (uint32_t) n;
        f->rq_bytes -= n;
        len -= n;
        if (m->len == 0) {
            f->rq_head = m->next;
            if (f->rq_head == 0) {
                f->rq_tail = 0;
            }
            rp_buf_recycle(e, bid);
        }
    }
    rp_recv_resume(e, f);
}

RP_EXPORT size_t
rp_recv_copy(rp_engine_t *e, rp_fd_t *f, void *dst, size_t len)
{
    if (len > f->rq_bytes) {
        len = f->rq_bytes;
    }
    rp_rq_consume(e, f, dst, len);
    return len;
}

RP_EXPORT size_t
rp_recv_peek(const rp_fd_t *f, const void **data)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;

    if (f->rq_head == 0) {
        *data = NULL;
        return 0;
    }
    bid = f->rq_head - 1;
    m = &f->e->bufs.meta[bid];
    *data = rp_buf_addr(f->e, bid) + m->off;
    return m->len;
}

RP_EXPORT void
rp_recv_consume(rp_engine_t *e, rp_fd_t *f, size_t len)
{
    if (len > f->rq_bytes) {
        len = f->rq_bytes;
    }
    rp_rq_consume(e, f, NULL, len);
}

RP_EXPORT uint32_t
rp_recv_take(rp_engine_t *e, rp_fd_t *f, const void **data, size_t *len)
{
    rp_bufmeta_t  *m;
    uint32_t       bid;

    if (f->rq_head == 0) {
        return 0;
    }
    bid = f->rq_head - 1;
    m = &e->bufs.meta[bid];
    *data = rp_buf_addr(e, bid) + m->off;
    *len = m->len;

    f->rq_head = m->next;
    if (f->rq_head == 0) {
        f->rq_tail = 0;
    }
    f->rq_bytes -= m->len;
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
rp_sq_drop(rp_engine_t *e, rp_fd_t *f, bool call_done)
{
    rp_seg_t  *s, *next;

    /* the queue is empty before any done() runs */
    s = f->sq_head;
    f->sq_head = NULL;
    f->sq_tail = NULL;
    f->sq_bytes = 0;
    f->sq_inflight = 0;

    for ( /* void */ ; s != NULL; s = next) {
        next = s->next;
        if (!call_done) {
            s->done = NULL;
        }
        rp_seg_release(e, s);
    }
}

static void
rp_sq_mark_dirty(rp_engine_t *e, rp_fd_t *f)
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
    if (f->sq_tail != NULL) {
        f->sq_tail->next = s;
    } else {
        f->sq_head = s;
    }
    f->sq_tail = s;
    return s;
}

RP_EXPORT int
rp_send(rp_engine_t *e, rp_fd_t *f, const struct iovec *iov, int iovcnt,
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
        s = f->sq_tail;
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
                s = f->sq_tail;
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
                f->sq_bytes += n;
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
            f->sq_bytes += s->len;
        }
        last->done = done;
        last->arg = arg;
    }

    rp_sq_mark_dirty(e, f);
    return 0;
}

RP_EXPORT size_t
rp_send_pending(const rp_fd_t *f)
{
    return f->sq_bytes;
}

RP_EXPORT int
rp_send_error(const rp_fd_t *f)
{
    return f->send_err;
}

static void
rp_send_arm(rp_engine_t *e, rp_fd_t *f)
{
    struct io_uring_sqe  *sqe;
    rp_op_t              *op;
    rp_seg_t             *s;
    int                   n = 0;

    f->sq_inflight = 0;
    for (s = f->sq_head; s != NULL && n < RP_SEND_IOV; s = s->next) {
        if (s->len == s->off) {
            continue;
        }
        f->iov[n].iov_base = (char *) s->base + s->off;
        f->iov[n].iov_len = s->len - s->off;
        f->sq_inflight += s->len - s->off;
        n++;
    }
    if (n == 0) {
        return;
    }

    op = rp_op_new(e, f, RP_OP_SEND);
    if (op == NULL) {
        rp_sq_mark_dirty(e, f);
        return;
    }
    sqe = rp_get_sqe(e);
    if (sqe == NULL) {
        rp_op_unsubmitted(e, f, op);
        f->sq_inflight = 0;
        rp_sq_mark_dirty(e, f);     /* the next pass tries again */
        return;
    }
    if (n == 1) {
        io_uring_prep_send(sqe, f->sendfd, f->iov[0].iov_base,
                           f->iov[0].iov_len, RP_SEND_FLAGS);
    } else {
        memset(&f->msg, 0, sizeof(f->msg));
        f->msg.msg_iov = f->iov;
        f->msg.msg_iovlen = (size_t) n;
        io_uring_prep_sendmsg(sqe, f->sendfd, &f->msg, RP_SEND_FLAGS);
    }
    io_uring_sqe_set_data(sqe, op);
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
        if (f->send_op == NULL && f->sq_head != NULL && f->send_err == 0) {
            rp_send_arm(e, f);
        }
        rp_fd_maybe_free(e, f);
    }
}

/* The kernel accepted n bytes: release the segments they complete. */
static void
rp_sq_advance(rp_fd_t *f, size_t n)
{
    rp_seg_t  *s;
    size_t     take;

    while (n > 0 && (s = f->sq_head) != NULL) {
        take = s->len - s->off;
        if (take > n) {
            take = n;
        }
        s->off += take;
        f->sq_bytes -= take;
        n -= take;
        if (s->off == s->len) {
            f->sq_head = s->next;
            if (f->sq_head == NULL) {
                f->sq_tail = NULL;
            }
            rp_seg_release(f->e, s);
        }
    }
}

static void
rp_send_done(rp_engine_t *e, rp_fd_t *f, int res)
{
    if (f->flushing && res > 0) {
        f->flush_deadline = rp_now_ms() + e->flush_timeout_ms;
    }

    if (res > 0) {
        e->st.send_bytes += (uint64_t) res;
        if ((size_t) res < f->sq_inflight) {
            e->st.send_partial++;
        }
        rp_sq_advance(f, (size_t) res);
    } else if (res < 0 && f->send_err == 0) {
        f->send_err = res;
    }
    f->sq_inflight = 0;

    if (f->send_err != 0) {
        rp_sq_drop(e, f, true);
    } else if (f->sq_head != NULL) {
        rp_sq_mark_dirty(e, f);
    }

    if (f->flushing && f->sq_head == NULL) {
        rp_flush_end(e, f);
        return;
    }

    rp_notify(e, f, RP_EV_SEND, res);
}

/* ---- completion dispatch ----------------------------------------------- */

void
rp_fd_complete(rp_engine_t *e, rp_op_t *op, int res, unsigned flags)
{
    rp_fd_t  *f = op->fd;
    bool      more = flags & IORING_CQE_F_MORE;

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
        rp_recv_done(e, f, op, res, flags);
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
            rp_rq_drop(e, f);
        }
        rp_sq_drop(e, f, call_done);
        if (f->flushing && f->sendfd >= 0) {
            close(f->sendfd);
        }
        free(f);
    }
    e->fds = NULL;
    e->starved = NULL;
    e->dirty = NULL;
    e->rearm = NULL;
    e->flushing = NULL;
    e->st.flushing_now = 0;
    rp_seg_cache_free(e);
}
