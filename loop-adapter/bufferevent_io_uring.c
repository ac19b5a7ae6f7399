/*
 * Copyright (c) 2026 ringplug contributors
 *
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions
 * are met:
 * 1. Redistributions of source code must retain the above copyright
 *    notice, this list of conditions and the following disclaimer.
 * 2. Redistributions in binary form must reproduce the above copyright
 *    notice, this list of conditions and the following disclaimer in the
 *    documentation and/or other materials provided with the distribution.
 * 3. The name of the author may not be used to endorse or promote products
 *    derived from this software without specific prior written permission.
 *
 * THIS SOFTWARE IS PROVIDED BY THE AUTHOR ``AS IS'' AND ANY EXPRESS OR
 * IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES
 * OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED.
 * IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY DIRECT, INDIRECT,
 * INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT
 * NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
 * DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
 * THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
 * (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF
 * THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
 */

/*
 * The completion bufferevent: what bufferevent_socket_new hands out on an
 * io_uring base, as it hands out bufferevent_async on an IOCP base.
 *
 * Reads: a multishot receive into the engine's provided buffers.  When the
 * engine reports data, the buffers enter the input evbuffer by reference
 * (released to the ring when the evbuffer lets go of them) while at least
 * a quarter of the ring is free, and by copy below that, so that a reader
 * who leaves its input unread cannot hold the ring.  While reading is off
 * (disabled, watermark, rate limit) the receive stays armed and the engine
 * keeps at most BEV_IO_URING_MAX_QUEUED bytes; if the ring runs low then,
 * the queue is copied aside into a stash and, past BEV_IO_URING_MAX_STASH,
 * the receive is stopped until reading resumes.  A copy without memory
 * (into the input, aside, or from the stash back) waits for it: tried
 * again after the loop's next wait, which lasts 10 ms at most meanwhile
 * (io_uring_cfd_retry_), with one warning.
 *
 * Writes: one send in flight per bufferevent, in the engine's reference
 * mode, straight from the output evbuffer's chains; the chains are pinned
 * and the buffer's start frozen until the send's done callback, and only
 * then drained.  The in-flight send holds a reference on the bufferevent;
 * bufferevent_free hands the send's pinned chains to the engine (struct
 * bev_io_uring_send) and drops it, so nothing the kernel may still read is
 * freed and nothing waits for the kernel.
 *
 * Connecting stays on the readiness path: bufferevent_socket_connect
 * borrows ev_write for the socket's own write callback (as it does for
 * bufferevent_async without ConnectEx), which calls
 * bufferevent_io_uring_set_connected_ once the connection is up.  A socket
 * that bufferevent_setfd gives us before its connect is over is watched the
 * same way, by our own callback in ev_write (bev_io_uring_watch).  Timeouts
 * are libevent's generic timeout events in ev_read and ev_write.
 */
#include "event2/event-config.h"
#include "evconfig-private.h"

#ifdef EVENT__HAVE_IO_URING

#include <sys/types.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <sys/socket.h>
#include <unistd.h>
#endif
#include <errno.h>
#include <string.h>

#include "event2/util.h"
#include "event2/buffer.h"
#include "event2/buffer_compat.h"
#include "event2/bufferevent.h"
#include "event2/bufferevent_struct.h"
#include "event2/event.h"
#include "event-internal.h"
#include "evthread-internal.h"
#include "log-internal.h"
#include "mm-internal.h"
#include "bufferevent-internal.h"
#include "evbuffer-internal.h"
#include "util-internal.h"
#include "io_uring-internal.h"

/* Bytes the engine may hold for us while reading is off. */
#define BEV_IO_URING_MAX_QUEUED	(64 * 1024)
/* Bytes copied aside while reading is off and the ring runs low, before
 * the receive is stopped. */
#define BEV_IO_URING_MAX_STASH	(256 * 1024)
/* One send: at most this many chains and bytes. */
#define BEV_IO_URING_IOV	16
#define BEV_IO_URING_MAX_SEND	(1024 * 1024)

static int be_io_uring_enable(struct bufferevent *, short);
static int be_io_uring_disable(struct bufferevent *, short);
static void be_io_uring_unlink(struct bufferevent *);
static void be_io_uring_destruct(struct bufferevent *);
static int be_io_uring_adj_timeouts(struct bufferevent *);
static int be_io_uring_flush(struct bufferevent *, short,
    enum bufferevent_flush_mode);
static int be_io_uring_ctrl(struct bufferevent *, enum bufferevent_ctrl_op,
    union bufferevent_ctrl_data *);

/*
 * What one send pinned.  Owned by the bufferevent, or by the engine once
 * the bufferevent was freed with the send still in the kernel (beu NULL):
 * then the done callback unpins (and so frees) the chains itself, and the
 * bufferevent need not outlive the send, nor the base.
 */
struct bev_io_uring_send {
	struct bufferevent_io_uring *beu;
	int npinned;
	struct evbuffer_chain *pinned[BEV_IO_URING_IOV];
};

struct bufferevent_io_uring {
	struct bufferevent_private bev;
	struct io_uring_cfd cfd;	/* fd data of rf; our callback */
	rp_engine_t *engine;
	rp_fd_t *rf;
	evutil_socket_t fd;
	struct evbuffer *stash;		/* read aside while reading was off */

	/* the send in flight: its bytes (as bufferevent_async's), and the
	 * handle it went on (send_rf_gen, a value of rf_gen) */
	size_t write_in_progress;
	unsigned rf_gen;		/* counts handles closed */
	unsigned send_rf_gen;
	struct bev_io_uring_send *send;

	/* an error to report from our callback (bev_io_uring_error) */
	short error_what;
	int error_errno;

	unsigned attached : 1;		/* bev_io_uring_attach put fd on
					   the engine: I/O allowed */
	unsigned unconnected : 1;	/* fd not connected (yet) */
	unsigned recv_on : 1;		/* we asked for the receive */
	unsigned send_done : 1;		/* the send's done callback ran */
	unsigned in_engine_call : 1;	/* inside our own engine call */
	unsigned want_wcb : 1;		/* writing enabled with nothing to
					   send: run the write callback */
	unsigned want_io : 1;		/* consider reading and writing in
					   the loop thread */
	unsigned want_close : 1;	/* close rf in the loop thread */
	unsigned want_setfd : 1;	/* put fd on the engine there */
	unsigned attach_failed : 1;	/* that failed (no memory) */
	unsigned recv_lost : 1;		/* received bytes were lost (no
					   memory): the stream ends there */
	unsigned wait_memory : 1;	/* received bytes wait for memory
					   (warned) */
	unsigned virtual_read : 1;	/* virtual events held on the base */
	unsigned virtual_write : 1;
};

const struct bufferevent_ops bufferevent_ops_io_uring = {
	"socket_io_uring",
	evutil_offsetof(struct bufferevent_io_uring, bev.bev),
	be_io_uring_enable,
	be_io_uring_disable,
	be_io_uring_unlink,
	be_io_uring_destruct,
	be_io_uring_adj_timeouts,
	be_io_uring_flush,
	be_io_uring_ctrl,
};

static inline struct bufferevent_io_uring *
upcast(struct bufferevent *bev)
{
	EVUTIL_ASSERT(BEV_IS_IO_URING(bev));
	return EVUTIL_UPCAST(bev, struct bufferevent_io_uring, bev.bev);
}

static void bev_io_uring_consider_reading(struct bufferevent_io_uring *);
static void bev_io_uring_consider_writing(struct bufferevent_io_uring *);
static void bev_io_uring_connect_cb(evutil_socket_t, short, void *);
static int bev_io_uring_attach(struct bufferevent_io_uring *);

/*
 * An error outside any I/O completion: a receive or a send that could not
 * start, an fd that could not be put on the engine (no memory).  The side
 * is disabled now, and what (BEV_EVENT_ERROR with BEV_EVENT_READING or
 * BEV_EVENT_WRITING) reported from our callback with EVUTIL_SOCKET_ERROR()
 * err, so that the host's bufferevent_enable or bufferevent_write never
 * runs its event callback from inside.
 */
static void
bev_io_uring_error(struct bufferevent_io_uring *beu, short what, int err)
{
	struct bufferevent *bev = &beu->bev.bev;

	bufferevent_disable(bev, ((what & BEV_EVENT_READING) ? EV_READ : 0) |
	    ((what & BEV_EVENT_WRITING) ? EV_WRITE : 0));
	if (!beu->error_what) {
		beu->error_what = what;
		beu->error_errno = err;
	}
	event_callback_activate_(bev->ev_base, &beu->cfd.cb);
}

/* The side on which a bufferevent that cannot do I/O at all reports it, as
 * bev_io_uring_connect_cb does for a failed connect. */
static short
bev_io_uring_error_side(struct bufferevent *bev)
{
	short on = bev->enabled;

	return ((on & EV_WRITE) &&
	    (evbuffer_get_length(bev->output) || !(on & EV_READ)) ?
	    BEV_EVENT_WRITING : BEV_EVENT_READING);
}

/* What bev_io_uring_defer leaves to the loop's thread. */
#define BEV_IO_URING_IO		0	/* consider reading and writing */
#define BEV_IO_URING_CLOSE	1	/* close the handle (free) */
#define BEV_IO_URING_SETFD	2	/* close it, open one for fd */

/*
 * A thread other than the loop's may call us (bufferevent_write,
 * bufferevent_setfd, bufferevent_free from a worker) while the loop's
 * thread runs: waiting in the engine with the base lock released, or
 * running callbacks, which use the engine unlocked.  The engine is not
 * thread-safe, so then the work is left to our callback, which runs in the
 * loop's thread: returns 1 if deferred.  Without threads the base lock is
 * a no-op and nothing is deferred.
 */
static int
bev_io_uring_defer(struct bufferevent_io_uring *beu, int what)
{
	struct event_base *base = beu->bev.bev.ev_base;
	int busy;

	EVBASE_ACQUIRE_LOCK(base, th_base_lock);
	busy = io_uring_loop_elsewhere_(base);
	if (busy && what == BEV_IO_URING_CLOSE) {
		/* A finalizer: if the loop stops before it runs,
		 * event_base_free runs it (a plain callback would be
		 * cancelled, and the reference bufferevent_free left for it
		 * with the bufferevent).  Nothing else is needed of the
		 * callback after a free: it does what was noted too. */
		beu->want_close = 1;
		event_callback_finalize_nolock_(base, 0, &beu->cfd.cb,
		    beu->cfd.cb.evcb_cb_union.evcb_selfcb);
	} else if (busy) {
		if (what == BEV_IO_URING_SETFD)
			beu->want_setfd = 1;
		else
			beu->want_io = 1;
		event_callback_activate_nolock_(base, &beu->cfd.cb);
	}
	EVBASE_RELEASE_LOCK(base, th_base_lock);
	return (busy);
}

/* A stream socket that is connected: what completion I/O can serve. */
static int
bev_io_uring_fd_kind(evutil_socket_t fd, int *connected)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int);
	int type = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, (void *)&type, &len) < 0 ||
	    type != SOCK_STREAM)
		return (0);
	len = sizeof(ss);
	*connected = getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
	return (1);
}

/* The base keeps the loop running while we read or write: libevent counts
 * no event of ours otherwise. */
static void
bev_io_uring_add_virtual_read(struct bufferevent_io_uring *beu)
{
	if (!beu->virtual_read) {
		beu->virtual_read = 1;
		event_base_add_virtual_(beu->bev.bev.ev_base);
	}
}

static void
bev_io_uring_del_virtual_read(struct bufferevent_io_uring *beu)
{
	if (beu->virtual_read) {
		beu->virtual_read = 0;
		event_base_del_virtual_(beu->bev.bev.ev_base);
	}
}

static void
bev_io_uring_add_virtual_write(struct bufferevent_io_uring *beu)
{
	if (!beu->virtual_write) {
		beu->virtual_write = 1;
		event_base_add_virtual_(beu->bev.bev.ev_base);
	}
}

static void
bev_io_uring_del_virtual_write(struct bufferevent_io_uring *beu)
{
	if (beu->virtual_write) {
		beu->virtual_write = 0;
		event_base_del_virtual_(beu->bev.bev.ev_base);
	}
}

/* ev_read and ev_write as timeout-only events (again, after a connect
 * borrowed ev_write for the socket's write callback).  ev_read carries the
 * fd, which it never watches: the OpenSSL filter reads its underlying
 * bufferevent's fd from there. */
static void
bev_io_uring_timers(struct bufferevent *bev, evutil_socket_t fd)
{
	if (!(event_get_events(&bev->ev_write) & EV_WRITE) &&
	    event_get_fd(&bev->ev_read) == fd)
		return;
	event_del(&bev->ev_read);
	event_del(&bev->ev_write);
	bufferevent_init_generic_timeout_cbs_(bev);
	bev->ev_read.ev_fd = fd;
}

/*
 * A socket that bufferevent_setfd gave us before its connect was over (or
 * begun): ev_write watches it on the readiness path, as
 * bufferevent_socket_connect borrows it, while reading or writing is on
 * (the socket bufferevent polls it then too), with the write timeout while
 * writing is on.  reset: start that timeout again.
 */
static void
bev_io_uring_watch(struct bufferevent_io_uring *beu, int reset)
{
	struct bufferevent *bev = &beu->bev.bev;
	const struct timeval *tv = NULL;
	short on = bev->enabled;

	if (beu->bev.read_suspended)
		on &= ~EV_READ;
	if (beu->bev.write_suspended)
		on &= ~EV_WRITE;
	if (event_get_callback(&bev->ev_write) != bev_io_uring_connect_cb ||
	    event_get_fd(&bev->ev_write) != beu->fd) {
		event_del(&bev->ev_write);
		event_assign(&bev->ev_write, bev->ev_base, beu->fd,
		    EV_WRITE|EV_PERSIST|EV_FINALIZE, bev_io_uring_connect_cb,
		    bev);
	}
	if (!beu->attached || !(on & (EV_READ|EV_WRITE))) {
		event_del(&bev->ev_write);
		return;
	}
	if ((on & EV_WRITE) && evutil_timerisset(&bev->timeout_write))
		tv = &bev->timeout_write;
	if (event_pending(&bev->ev_write, EV_TIMEOUT, NULL)) {
		if (tv && !reset)
			return;
		/* no event_add(ev, NULL) drops a timeout */
		event_del(&bev->ev_write);
	}
	if (event_add(&bev->ev_write, tv) < 0) {
		/* no memory to watch the fd: the end of the connect would
		 * never be seen */
		int err = errno ? errno : ENOMEM;
		short side = bev_io_uring_error_side(bev);

		bufferevent_disable(bev, EV_READ|EV_WRITE);
		bev_io_uring_error(beu, BEV_EVENT_ERROR|side, err);
	}
}

static void
bev_io_uring_unpin(struct bev_io_uring_send *t)
{
	int i;

	for (i = 0; i < t->npinned; ++i)
		evbuffer_chain_unpin_(t->pinned[i], EVBUFFER_MEM_PINNED_W);
	t->npinned = 0;
}

/*
 * The send's done callback: the engine no longer needs the chains.  Runs
 * inside rp_engine_wait (the base unlocked) or inside our own
 * rp_fd_close: only note it.
 */
static void
bev_io_uring_send_done(void *arg)
{
	struct bev_io_uring_send *t = arg;
	struct bufferevent_io_uring *beu = t->beu;

	if (!beu) {
		/* abandoned by bufferevent_free: ours alone */
		bev_io_uring_unpin(t);
		mm_free(t);
		return;
	}
	beu->send_done = 1;
	if (!beu->in_engine_call)
		io_uring_cfd_note_(&beu->cfd);
}

/* The send finished (sent, failed or dropped): drain what went out, drop
 * the send's reference.  The caller holds a reference too. */
static void
bev_io_uring_write_complete(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;
	size_t n = beu->write_in_progress;
	int err;

	EVUTIL_ASSERT(n > 0);
	beu->send_done = 0;
	beu->want_wcb = 0;	/* this completion is the write event */
	beu->write_in_progress = 0;
	bev_io_uring_unpin(beu->send);
	bev_io_uring_del_virtual_write(beu);

	/* A send on a handle closed since (setfd, free) was abandoned: the
	 * output was unfrozen then and may hold anything now. */
	if (beu->send_rf_gen != beu->rf_gen || !beu->rf)
		err = -ECANCELED;
	else
		err = rp_send_error(beu->rf);
	if (err == 0) {
		evbuffer_unfreeze(bev->output, 1);
		evbuffer_drain(bev->output, n);
		if (evbuffer_get_length(bev->output))
			BEV_RESET_GENERIC_WRITE_TIMEOUT(bev);
		else
			BEV_DEL_GENERIC_WRITE_TIMEOUT(bev);
		/* Invoke the user callback if our buffer is drained or
		 * below the low watermark. */
		bufferevent_trigger_nolock_(bev, EV_WRITE, 0);
		bev_io_uring_consider_writing(beu);
	} else if (err != -ECANCELED && beu->attached) {
		evbuffer_unfreeze(bev->output, 1);
		bufferevent_decrement_write_buckets_(&beu->bev, -(ev_ssize_t)n);
		IO_URING_SET_SOCKET_ERROR(err);
		bufferevent_disable(bev, EV_WRITE);
		bufferevent_run_eventcb_(bev,
		    BEV_EVENT_WRITING|BEV_EVENT_ERROR, 0);
	}
	bufferevent_decref_(bev);
}

/* Take rf off the engine: its receive and send are cancelled.  A send
 * already in the kernel finishes later (its done callback); with abandon
 * (bufferevent_free) the send and its chains are left to the engine and
 * its reference dropped now. */
static void
bev_io_uring_close_rf(struct bufferevent_io_uring *beu, int abandon)
{
	if (!beu->rf)
		return;
	beu->in_engine_call = 1;
	rp_fd_close(beu->engine, beu->rf, 0);
	beu->in_engine_call = 0;
	beu->rf = NULL;
	beu->recv_on = 0;
	++beu->rf_gen;
	if (beu->write_in_progress)
		evbuffer_unfreeze(beu->bev.bev.output, 1);
	if (beu->send_done) {
		bev_io_uring_write_complete(beu);
	} else if (beu->write_in_progress && abandon) {
		beu->send->beu = NULL;
		beu->send = NULL;
		beu->write_in_progress = 0;
		bev_io_uring_del_virtual_write(beu);
		bufferevent_decref_(&beu->bev.bev);
	}
}

/*
 * Whether the engine we used is gone: the base was freed or reinitialised,
 * or this is a child after fork, where the ring still serves the parent
 * (before event_reinit too).  Then forget its handle and the send it had,
 * here only: nothing reaches the kernel, and the send's reference and
 * pinned chains, which its done callback would have released, go now.
 * Returns 1 if gone.
 */
static int
bev_io_uring_engine_gone(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;

	if (io_uring_cfd_live_(&beu->cfd))
		return (0);
	beu->rf = NULL;
	beu->recv_on = 0;
	bev_io_uring_del_virtual_read(beu);
	beu->send_done = 0;
	if (beu->write_in_progress) {
		beu->write_in_progress = 0;
		++beu->rf_gen;
		evbuffer_unfreeze(bev->output, 1);
		bev_io_uring_unpin(beu->send);
		bev_io_uring_del_virtual_write(beu);
		bufferevent_decref_(bev);
	}
	return (1);
}

/*
 * If the engine we used is gone, take the base's new engine, if it has
 * one (event_reinit in a child).  Returns 0 with a usable engine, -1
 * without.
 */
static int
bev_io_uring_check_engine(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;
	rp_engine_t *e;

	if (!bev_io_uring_engine_gone(beu))
		return (0);
	if (!(e = io_uring_bev_engine_(bev->ev_base))) {
		beu->engine = NULL;
		beu->attached = 0;
		return (-1);
	}
	event_callback_cancel_(bev->ev_base, &beu->cfd.cb);
	io_uring_cfd_init_(bev->ev_base, &beu->cfd,
	    beu->cfd.cb.evcb_cb_union.evcb_selfcb, beu);
	beu->engine = e;
	if (beu->fd >= 0 &&
	    !(beu->rf = IO_URING_FD_OPEN(e, beu->fd, &beu->cfd))) {
		beu->attached = 0;
		beu->attach_failed = 1;
		return (-1);
	}
	return (0);
}

/* Received bytes wait for memory to be copied: our callback runs again
 * after the loop's next wait, which is short meanwhile.  One warning until
 * they move. */
static void
bev_io_uring_wait_memory(struct bufferevent_io_uring *beu)
{
	struct event_base *base = beu->bev.bev.ev_base;

	if (!beu->wait_memory) {
		beu->wait_memory = 1;
		errno = ENOMEM;
		event_warn("bufferevent on fd %d: received bytes wait for "
		    "memory, trying again", (int)beu->fd);
	}
	EVBASE_ACQUIRE_LOCK(base, th_base_lock);
	io_uring_cfd_retry_(&beu->cfd);
	EVBASE_RELEASE_LOCK(base, th_base_lock);
}

/* Reading is off and the ring is low: copy what the engine holds for us
 * aside, so its buffers go back to the ring.  -1 without memory for it
 * (the bytes stay with the engine), or 0. */
static int
bev_io_uring_stash(struct bufferevent_io_uring *beu)
{
	struct evbuffer_iovec v[2];
	size_t q, n;
	int i, nv;

	if (!beu->rf || !(q = rp_recv_queued(beu->rf)) ||
	    rp_bufs_free(beu->engine) * 4 >= rp_bufs_total(beu->engine))
		return (0);
	if (!beu->stash && !(beu->stash = evbuffer_new()))
		return (-1);
	if ((nv = evbuffer_reserve_space(beu->stash, q, v, 2)) < 0)
		return (-1);
	for (i = 0; i < nv; ++i) {
		n = v[i].iov_len < q ? v[i].iov_len : q;
		v[i].iov_len = rp_recv_copy(beu->engine, beu->rf,
		    v[i].iov_base, n);
		q -= v[i].iov_len;
	}
	evbuffer_commit_space(beu->stash, v, nv);
	if (evbuffer_get_length(beu->stash) >= BEV_IO_URING_MAX_STASH &&
	    beu->recv_on) {
		rp_recv_stop(beu->engine, beu->rf);
		beu->recv_on = 0;
	}
	return (0);
}

/* Copy up to n queued bytes into the input buffer; 0 without memory. */
static size_t
bev_io_uring_copy_in(struct bufferevent_io_uring *beu, size_t n)
{
	struct evbuffer *input = beu->bev.bev.input;
	struct evbuffer_iovec v[2];
	size_t got = 0, k;
	int i, nv;

	if ((nv = evbuffer_reserve_space(input, n, v, 2)) < 0)
		return (0);
	for (i = 0; i < nv; ++i) {
		k = v[i].iov_len < n - got ? v[i].iov_len : n - got;
		v[i].iov_len = rp_recv_copy(beu->engine, beu->rf,
		    v[i].iov_base, k);
		got += v[i].iov_len;
	}
	evbuffer_commit_space(input, v, nv);
	return (got);
}

/* Move up to n stashed bytes into the input buffer: the whole stash by
 * its chains, or a part of it by copy (evbuffer_remove_buffer would drop
 * that part when it has no memory for it).  Returns the bytes moved, 0
 * without memory: they wait in the stash. */
static size_t
bev_io_uring_unstash(struct bufferevent_io_uring *beu, size_t n)
{
	struct evbuffer *input = beu->bev.bev.input;
	struct evbuffer_iovec v[2];
	size_t len = evbuffer_get_length(beu->stash), got = 0;
	int i, nv;

	if (len <= n)
		return (evbuffer_add_buffer(input, beu->stash) < 0 ? 0 : len);
	if ((nv = evbuffer_reserve_space(input, n, v, 2)) < 0)
		return (0);
	for (i = 0; i < nv; ++i) {
		if (v[i].iov_len > n - got)
			v[i].iov_len = n - got;
		v[i].iov_len = evbuffer_remove(beu->stash, v[i].iov_base,
		    v[i].iov_len);
		got += v[i].iov_len;
	}
	evbuffer_commit_space(input, v, nv);
	return (got);
}

/*
 * Bytes received could not be put in the input buffer (no memory for a
 * reference nor for a copy) and are gone: the stream ends before them.
 * The receive stops for good and what the engine holds goes back to the
 * ring; reading reports the error from now on, until a new fd.
 */
static void
bev_io_uring_recv_lost(struct bufferevent_io_uring *beu)
{
	size_t q;

	beu->recv_lost = 1;
	if (beu->recv_on) {
		rp_recv_stop(beu->engine, beu->rf);
		beu->recv_on = 0;
	}
	if ((q = rp_recv_queued(beu->rf)))
		rp_recv_consume(beu->engine, beu->rf, q);
	if (beu->stash)
		evbuffer_drain(beu->stash, evbuffer_get_length(beu->stash));
	bev_io_uring_error(beu, BEV_EVENT_READING|BEV_EVENT_ERROR, ENOMEM);
}

/* Move received bytes into the input buffer, as bufferevent_readcb reads
 * the socket: up to the high watermark and the rate limit. */
static void
bev_io_uring_read(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;
	struct bufferevent_private *bev_p = &beu->bev;
	struct evbuffer *input = bev->input;
	ev_ssize_t howmuch = -1, readmax;
	const void *data;
	size_t got = 0, len;
	uint32_t token;
	int st, nomem = 0;

	if (!beu->rf || !beu->attached || bev_p->connecting || beu->unconnected)
		return;
	if (beu->recv_lost) {
		/* a completion that was on its way when the receive stopped */
		if ((len = rp_recv_queued(beu->rf)))
			rp_recv_consume(beu->engine, beu->rf, len);
		return;
	}
	if (!(bev->enabled & EV_READ) || bev_p->read_suspended) {
		if (bev_io_uring_stash(beu) < 0)
			bev_io_uring_wait_memory(beu);
		else
			beu->wait_memory = 0;
		return;
	}

	if (bev->wm_read.high != 0) {
		howmuch = bev->wm_read.high - evbuffer_get_length(input);
		if (howmuch <= 0) {
			bufferevent_wm_suspend_read(bev);
			return;
		}
	}
	readmax = bufferevent_get_read_max_(bev_p);
	if (howmuch < 0 || howmuch > readmax)
		howmuch = readmax;
	if (howmuch <= 0)
		return;

	evbuffer_unfreeze(input, 0);
	/* the stash first: its bytes came before the queue's; without
	 * memory to move them, nothing of the queue either */
	if (beu->stash && evbuffer_get_length(beu->stash) &&
	    !(got = bev_io_uring_unstash(beu, (size_t)howmuch))) {
		howmuch = 0;
		nomem = 1;
	}
	while (got < (size_t)howmuch && rp_recv_queued(beu->rf)) {
		len = rp_recv_peek(beu->rf, &data);
		if (len <= (size_t)howmuch - got &&
		    rp_bufs_free(beu->engine) * 4 >=
		    rp_bufs_total(beu->engine)) {
			token = rp_recv_take(beu->engine, beu->rf, &data,
			    &len);
			if (io_uring_evbuffer_add_buf_(bev->ev_base, input,
				token, data, len) < 0) {
				/* those bytes are gone: the host gets
				 * the ones before, then the error */
				evbuffer_freeze(input, 0);
				bev_io_uring_recv_lost(beu);
				goto deliver;
			}
			got += len;
		} else {
			len = rp_recv_queued(beu->rf);
			if (len > (size_t)howmuch - got)
				len = (size_t)howmuch - got;
			if (!(len = bev_io_uring_copy_in(beu, len))) {
				nomem = 1;
				break;
			}
			got += len;
		}
	}
	evbuffer_freeze(input, 0);

deliver:
	if (got) {
		bufferevent_decrement_read_buckets_(bev_p, got);
		BEV_RESET_GENERIC_READ_TIMEOUT(bev);
		/* Invoke the user callback - must always be called last */
		bufferevent_trigger_nolock_(bev, EV_READ, 0);
	}

	/* The callback may have freed or disabled us (then the bytes that
	 * wait for memory may go aside). */
	if (!beu->rf)
		return;
	if (nomem) {
		/* not on the next pass: that would keep the loop from
		 * sleeping for as long as memory stays out */
		bev_io_uring_wait_memory(beu);
		return;
	}
	beu->wait_memory = 0;
	if (!(bev->enabled & EV_READ) || bev_p->read_suspended)
		return;
	st = rp_recv_status(beu->rf);
	if ((beu->stash && evbuffer_get_length(beu->stash)) ||
	    rp_recv_queued(beu->rf) || (got && st)) {
		/* More than one read's worth: the rest on the next pass, as
		 * the socket's level-triggered read event would.  EOF and
		 * errors too come a pass after the last data, as read()
		 * returns them: deferred callbacks see the data first. */
		EVBASE_ACQUIRE_LOCK(bev->ev_base, th_base_lock);
		event_callback_activate_later_nolock_(bev->ev_base,
		    &beu->cfd.cb);
		EVBASE_RELEASE_LOCK(bev->ev_base, th_base_lock);
		return;
	}
	if (st != 0) {
		short what = BEV_EVENT_READING;

		if (st > 0) {
			what |= BEV_EVENT_EOF;
		} else {
			what |= BEV_EVENT_ERROR;
			IO_URING_SET_SOCKET_ERROR(st);
		}
		bufferevent_disable(bev, EV_READ);
		bufferevent_run_eventcb_(bev, what, 0);
	}
}

/* Our callback: the engine had news for rf, or a send finished. */
static void
bev_io_uring_cb(struct event_callback *cb, void *arg)
{
	struct bufferevent_io_uring *beu = arg;
	struct bufferevent *bev = &beu->bev.bev;

	(void)cb;
	bufferevent_incref_and_lock_(bev);
	/* queued before a fork, run in the child */
	bev_io_uring_engine_gone(beu);
	if (beu->send_done)
		bev_io_uring_write_complete(beu);
	if (beu->want_close) {
		beu->want_close = 0;
		beu->want_setfd = 0;
		bev_io_uring_close_rf(beu, 1);
		bufferevent_decref_(bev);	/* CANCEL_ALL's */
	}
	if (beu->want_setfd && bev_io_uring_attach(beu) < 0) {
		int err = errno;

		bev_io_uring_error(beu, BEV_EVENT_ERROR |
		    bev_io_uring_error_side(bev), err ? err : ENOMEM);
	}
	if (beu->want_io) {
		beu->want_io = 0;
		bev_io_uring_consider_reading(beu);
		bev_io_uring_consider_writing(beu);
	}
	if (beu->want_wcb) {
		beu->want_wcb = 0;
		if (beu->attached && !beu->write_in_progress &&
		    (bev->enabled & EV_WRITE) && !beu->bev.write_suspended)
			bufferevent_trigger_nolock_(bev, EV_WRITE, 0);
	}
	bev_io_uring_read(beu);
	if (beu->error_what) {
		short what = beu->error_what;

		beu->error_what = 0;
		IO_URING_SET_SOCKET_ERROR(-beu->error_errno);
		bufferevent_run_eventcb_(bev, what, 0);
	}
	bufferevent_decref_and_unlock_(bev);
}

static void
bev_io_uring_consider_reading(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;
	int r;

	if (bev_io_uring_defer(beu, BEV_IO_URING_IO))
		return;
	if (bev_io_uring_check_engine(beu) < 0 || !beu->attached || !beu->rf ||
	    beu->bev.connecting || beu->unconnected ||
	    !(bev->enabled & EV_READ) || beu->bev.read_suspended) {
		bev_io_uring_del_virtual_read(beu);
		return;
	}
	if (beu->recv_lost) {
		/* the stream lost bytes: it cannot go on */
		bev_io_uring_error(beu, BEV_EVENT_READING|BEV_EVENT_ERROR,
		    ENOMEM);
		return;
	}
	bev_io_uring_add_virtual_read(beu);
	if (!beu->recv_on && rp_recv_status(beu->rf) == 0) {
		r = rp_recv_start(beu->engine, beu->rf,
		    BEV_IO_URING_MAX_QUEUED);
		if (r < 0) {
			bev_io_uring_error(beu,
			    BEV_EVENT_READING|BEV_EVENT_ERROR, -r);
			return;
		}
		beu->recv_on = 1;
	}
	/* Bytes or the end of the stream already here: no completion will
	 * announce them again. */
	if ((beu->stash && evbuffer_get_length(beu->stash)) ||
	    rp_recv_queued(beu->rf) || rp_recv_status(beu->rf))
		event_callback_activate_(bev->ev_base, &beu->cfd.cb);
}

static void
bev_io_uring_consider_writing(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;
	struct evbuffer *output = bev->output;
	struct evbuffer_chain *chain;
	rp_iovec_t iov[BEV_IO_URING_IOV];
	size_t at_most, sum = 0, take;
	ev_ssize_t limit;
	int n = 0, r;

	if (beu->write_in_progress || beu->bev.connecting ||
	    beu->unconnected)
		return;
	if (bev_io_uring_defer(beu, BEV_IO_URING_IO))
		return;
	if (bev_io_uring_check_engine(beu) < 0 || !beu->attached || !beu->rf ||
	    !(bev->enabled & EV_WRITE) || beu->bev.write_suspended ||
	    !(at_most = evbuffer_get_length(output)))
		return;
	if (rp_send_error(beu->rf))
		return;

	limit = bufferevent_get_write_max_(&beu->bev);
	if (limit >= 0 && at_most > (size_t)limit)
		at_most = (size_t)limit;
	if (at_most > BEV_IO_URING_MAX_SEND)
		at_most = BEV_IO_URING_MAX_SEND;
	if (!at_most)
		return;
	if (!beu->send &&
	    !(beu->send = mm_calloc(1, sizeof(*beu->send)))) {
		bev_io_uring_error(beu, BEV_EVENT_WRITING|BEV_EVENT_ERROR,
		    ENOMEM);
		return;
	}
	beu->send->beu = beu;

	/* Pinned chains are neither freed nor moved nor realigned by later
	 * adds; the frozen start keeps anyone else from draining them. */
	for (chain = output->first; chain && n < BEV_IO_URING_IOV &&
	     sum < at_most; chain = chain->next) {
		if (!chain->off)
			continue;
		take = chain->off < at_most - sum ?
		    chain->off : at_most - sum;
		iov[n].iov_base = chain->buffer + chain->misalign;
		iov[n].iov_len = take;
		evbuffer_chain_pin_(chain, EVBUFFER_MEM_PINNED_W);
		beu->send->pinned[n] = chain;
		sum += take;
		++n;
	}
	beu->send->npinned = n;
	evbuffer_freeze(output, 1);

	bufferevent_incref_(bev);
	beu->write_in_progress = sum;
	beu->send_rf_gen = beu->rf_gen;
	beu->send_done = 0;
	beu->in_engine_call = 1;
	r = rp_send(beu->engine, beu->rf, iov, n, 0, bev_io_uring_send_done,
	    beu->send);
	beu->in_engine_call = 0;
	if (r < 0) {
		/* all or nothing: the engine queued none of it (no memory),
		 * the output still holds every byte */
		beu->write_in_progress = 0;
		beu->send_done = 0;
		evbuffer_unfreeze(output, 1);
		bev_io_uring_unpin(beu->send);
		bev_io_uring_error(beu, BEV_EVENT_WRITING|BEV_EVENT_ERROR, -r);
		bufferevent_decref_(bev);
		return;
	}
	bufferevent_decrement_write_buckets_(&beu->bev, sum);
	bev_io_uring_add_virtual_write(beu);
	beu->want_wcb = 0;
	if (evutil_timerisset(&bev->timeout_write) &&
	    !event_pending(&bev->ev_write, EV_TIMEOUT, NULL))
		event_add(&bev->ev_write, &bev->timeout_write);
}

static void
be_io_uring_outbuf_cb(struct evbuffer *buf,
    const struct evbuffer_cb_info *cbinfo, void *arg)
{
	struct bufferevent *bev = arg;

	(void)buf;
	if (!cbinfo->n_added)
		return;
	bufferevent_incref_and_lock_(bev);
	bev_io_uring_consider_writing(upcast(bev));
	bufferevent_decref_and_unlock_(bev);
}

static int
be_io_uring_enable(struct bufferevent *bev, short what)
{
	struct bufferevent_io_uring *beu = upcast(bev);

	/* Without a (connected) fd only the timeouts run, as a socket
	 * bufferevent's events on fd -1 are timeouts alone. */
	if (beu->bev.connecting || beu->unconnected || beu->fd < 0) {
		if (what & EV_READ)
			BEV_RESET_GENERIC_READ_TIMEOUT(bev);
		if ((what & EV_WRITE) && beu->fd < 0)
			BEV_RESET_GENERIC_WRITE_TIMEOUT(bev);
		if (beu->unconnected && !beu->bev.connecting)
			bev_io_uring_watch(beu, what & EV_WRITE);
		return (0);
	}
	if (!beu->attached) {
		/* setfd's engine part is to come, or it failed (no memory):
		 * then try it again, in the loop's thread */
		if (beu->want_setfd)
			return (0);
		if (!beu->attach_failed)
			return (-1);
		if (bev_io_uring_defer(beu, BEV_IO_URING_SETFD))
			return (0);
		return (bev_io_uring_attach(beu));
	}
	bev_io_uring_timers(bev, beu->fd);

	if (what & EV_READ) {
		BEV_RESET_GENERIC_READ_TIMEOUT(bev);
		bev_io_uring_consider_reading(beu);
	}
	if (what & EV_WRITE) {
		if (evbuffer_get_length(bev->output))
			BEV_RESET_GENERIC_WRITE_TIMEOUT(bev);
		bev_io_uring_consider_writing(beu);
		/* The socket bufferevent's write event fires once for a
		 * writable socket even with nothing to write, and runs the
		 * write callback (TLS filters start their handshake so). */
		if (!beu->write_in_progress && !beu->want_wcb) {
			beu->want_wcb = 1;
			event_callback_activate_(bev->ev_base, &beu->cfd.cb);
		}
	}
	return (0);
}

static int
be_io_uring_disable(struct bufferevent *bev, short what)
{
	struct bufferevent_io_uring *beu = upcast(bev);

	if (what & EV_READ) {
		BEV_DEL_GENERIC_READ_TIMEOUT(bev);
		bev_io_uring_del_virtual_read(beu);
	}
	if (beu->unconnected && !beu->bev.connecting) {
		bev_io_uring_watch(beu, 0);
		return (0);
	}
	/* Don't actually disable the write if we are trying to connect:
	 * ev_write is the connect's then. */
	if ((what & EV_WRITE) && !beu->bev.connecting)
		BEV_DEL_GENERIC_WRITE_TIMEOUT(bev);
	return (0);
}

static void
be_io_uring_unlink(struct bufferevent *bev)
{
	struct bufferevent_io_uring *beu = upcast(bev);

	EVUTIL_ASSERT(!beu->write_in_progress);
	if (!bev_io_uring_engine_gone(beu))
		bev_io_uring_close_rf(beu, 1);
	bev_io_uring_del_virtual_read(beu);
	bev_io_uring_del_virtual_write(beu);
	io_uring_cfd_clear_(&beu->cfd);
}

static void
be_io_uring_destruct(struct bufferevent *bev)
{
	struct bufferevent_io_uring *beu = upcast(bev);
	struct bufferevent_private *bev_p = BEV_UPCAST(bev);

	if ((bev_p->options & BEV_OPT_CLOSE_ON_FREE) && beu->fd >= 0)
		evutil_closesocket(beu->fd);
	beu->fd = -1;
	if (beu->stash)
		evbuffer_free(beu->stash);
	if (beu->send)
		mm_free(beu->send);
	evutil_getaddrinfo_cancel_async_(bev_p->dns_request);
}

static int
be_io_uring_adj_timeouts(struct bufferevent *bev)
{
	struct bufferevent_io_uring *beu = upcast(bev);

	/* While connecting, ev_write is the connect's own event. */
	if (beu->bev.connecting)
		return (bufferevent_generic_adj_existing_timeouts_(bev));
	if (beu->unconnected) {
		if ((bev->enabled & EV_READ) && !beu->bev.read_suspended &&
		    evutil_timerisset(&bev->timeout_read))
			event_add(&bev->ev_read, &bev->timeout_read);
		else
			event_del(&bev->ev_read);
		bev_io_uring_watch(beu, 1);
		return (0);
	}
	bev_io_uring_timers(bev, beu->fd);
	return (bufferevent_generic_adj_timeouts_(bev));
}

static int
be_io_uring_flush(struct bufferevent *bev, short what,
    enum bufferevent_flush_mode mode)
{
	(void)bev;
	(void)what;
	(void)mode;
	return (0);
}

/*
 * The engine's part of bufferevent_setfd, in the loop's thread (or while
 * no loop runs): close the old fd's handle, open one for beu->fd, and
 * start I/O, or watch a connect.
 */
static int
bev_io_uring_attach(struct bufferevent_io_uring *beu)
{
	struct bufferevent *bev = &beu->bev.bev;

	beu->want_setfd = 0;
	beu->attach_failed = 0;
	if (!bev_io_uring_engine_gone(beu))
		bev_io_uring_close_rf(beu, 0);
	/* takes the base's new engine, and opens beu->fd on it, if ours was
	 * gone */
	if (bev_io_uring_check_engine(beu) < 0) {
		beu->attach_failed = beu->fd >= 0;
		return (beu->fd < 0 ? 0 : -1);
	}
	if (beu->fd < 0)
		return (0);
	if (!beu->rf &&
	    !(beu->rf = IO_URING_FD_OPEN(beu->engine, beu->fd, &beu->cfd))) {
		beu->attach_failed = 1;
		return (-1);
	}
	beu->attached = 1;
	if (beu->unconnected) {
		/* bufferevent_socket_connect watches its own connect in
		 * ev_write (this may run after it, handed over) */
		if (!beu->bev.connecting)
			bev_io_uring_watch(beu, 1);
	} else
		be_io_uring_enable(bev, bev->enabled &
		    ~((beu->bev.read_suspended ? EV_READ : 0) |
			(beu->bev.write_suspended ? EV_WRITE : 0)));
	return (0);
}

static int
bev_io_uring_setfd(struct bufferevent_io_uring *beu, evutil_socket_t fd)
{
	struct bufferevent *bev = &beu->bev.bev;
	int connected = 0;

	if (fd >= 0 && !bev_io_uring_fd_kind(fd, &connected)) {
		event_warnx("%s: fd %d is not a stream socket: a completion "
		    "bufferevent cannot use it", __func__, (int)fd);
		return (-1);
	}
	bev_io_uring_del_virtual_read(beu);
	bev_io_uring_timers(bev, fd);
	/* as be_socket_setfd */
	evbuffer_unfreeze(bev->input, 0);
	if (beu->stash)
		evbuffer_drain(beu->stash, evbuffer_get_length(beu->stash));
	beu->recv_lost = 0;

	/* as be_socket_setfd */
	evutil_getaddrinfo_cancel_async_(beu->bev.dns_request);
	beu->fd = fd;
	beu->attached = 0;
	beu->unconnected = fd >= 0 && !connected;
	/* From another thread while the loop runs, the engine's part (and
	 * any error of it: an error event) comes in the loop's thread. */
	if (bev_io_uring_defer(beu, BEV_IO_URING_SETFD))
		return (0);
	return (bev_io_uring_attach(beu));
}

static int
be_io_uring_ctrl(struct bufferevent *bev, enum bufferevent_ctrl_op op,
    union bufferevent_ctrl_data *data)
{
	struct bufferevent_io_uring *beu = upcast(bev);

	switch (op) {
	case BEV_CTRL_SET_FD:
		return (bev_io_uring_setfd(beu, data->fd));
	case BEV_CTRL_GET_FD:
		data->fd = beu->fd;
		return (0);
	case BEV_CTRL_CANCEL_ALL:
		/* bufferevent_free: no more I/O; the fd closes now (after
		 * the engine's cancel), so the peer sees the close at once.
		 * From another thread while the loop waits: the handle is
		 * closed by our callback, and the fd only then. */
		bev_io_uring_engine_gone(beu);
		if (beu->rf) {
			bufferevent_incref_(bev);
			if (bev_io_uring_defer(beu, BEV_IO_URING_CLOSE)) {
				beu->attached = 0;
				beu->attach_failed = 0;
				bev_io_uring_del_virtual_read(beu);
				return (0);
			}
			bufferevent_decref_(bev);
		}
		bev_io_uring_close_rf(beu, 1);
		bev_io_uring_del_virtual_read(beu);
		beu->attached = 0;
		beu->want_setfd = 0;
		beu->attach_failed = 0;
		/* a poll holds the file too */
		if (event_get_callback(&bev->ev_write) ==
		    bev_io_uring_connect_cb)
			event_del(&bev->ev_write);
		if ((beu->bev.options & BEV_OPT_CLOSE_ON_FREE) &&
		    beu->fd >= 0) {
			evutil_closesocket(beu->fd);
			beu->fd = -1;
		}
		return (0);
	case BEV_CTRL_GET_UNDERLYING:
	default:
		return (-1);
	}
}

struct bufferevent *
bufferevent_io_uring_new_(struct event_base *base, evutil_socket_t fd,
    int options)
{
	struct bufferevent_io_uring *beu;
	struct bufferevent *bev;
	rp_engine_t *e;
	int connected = 0;

	if (!(e = io_uring_bev_engine_(base)))
		return (NULL);
	/* Pipes, ptys, datagram and unconnected sockets stay with the
	 * socket bufferevent (readiness). */
	if (fd >= 0 && (!bev_io_uring_fd_kind(fd, &connected) || !connected))
		return (NULL);

	if (!(beu = mm_calloc(1, sizeof(*beu))))
		return (NULL);
	if (bufferevent_init_common_(&beu->bev, base,
		&bufferevent_ops_io_uring, options) < 0) {
		mm_free(beu);
		return (NULL);
	}
	bev = &beu->bev.bev;
	beu->engine = e;
	beu->fd = -1;
	io_uring_cfd_init_(base, &beu->cfd, bev_io_uring_cb, beu);
	bufferevent_init_generic_timeout_cbs_(bev);

	if (!evbuffer_add_cb(bev->output, be_io_uring_outbuf_cb, bev)) {
		bufferevent_free(bev);
		return (NULL);
	}
	/* As the socket bufferevent: nobody else adds to the input.  The
	 * output's start is frozen only while a send is in flight. */
	evbuffer_freeze(bev->input, 0);

	if (fd >= 0 && bev_io_uring_setfd(beu, fd) < 0) {
		/* the caller makes a socket bufferevent on fd: not ours to
		 * close (BEV_OPT_CLOSE_ON_FREE) */
		beu->fd = -1;
		bufferevent_free(bev);
		return (NULL);
	}
	/* A new socket bufferevent's write event is not added until data
	 * or an explicit enable comes: no write callback yet. */
	beu->want_wcb = 0;
	return (bev);
}

/*
 * ev_write's callback while bev_io_uring_watch watches a connect: the
 * socket is writable, so the connect is over.  Hand over to completion I/O,
 * or report the connect's error (in EVUTIL_SOCKET_ERROR) as
 * BEV_EVENT_ERROR, with BEV_EVENT_WRITING if there is output to write (or
 * reading is off) and BEV_EVENT_READING otherwise, the side on which the
 * socket bufferevent sees it.  No BEV_EVENT_CONNECTED: the socket
 * bufferevent reports none after bufferevent_setfd either.
 */
static void
bev_io_uring_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	struct bufferevent_io_uring *beu = upcast(bev);
	short on = bev->enabled, side;
	int c, err;

	bufferevent_incref_and_lock_(bev);
	if (!beu->attached || !beu->unconnected || beu->bev.connecting) {
		event_del(&bev->ev_write);
		goto done;
	}
	if (what == EV_TIMEOUT) {
		/* as bufferevent_writecb */
		bufferevent_disable(bev, EV_WRITE);
		bufferevent_run_eventcb_(bev,
		    BEV_EVENT_WRITING|BEV_EVENT_TIMEOUT, 0);
		goto done;
	}
	if (beu->bev.read_suspended)
		on &= ~EV_READ;
	if (beu->bev.write_suspended)
		on &= ~EV_WRITE;
	/* Writing alone with nothing to write: the socket bufferevent runs
	 * the write callback and its first write sees the error; so does
	 * our first send, if the error is left in the socket. */
	if ((on & (EV_READ|EV_WRITE)) == EV_WRITE &&
	    !evbuffer_get_length(bev->output))
		c = 1;
	else
		c = evutil_socket_finished_connecting_(fd);
	if (c == 0)
		goto done;
	if (c > 0) {
		bufferevent_io_uring_set_connected_(bev);
		goto done;
	}
	err = EVUTIL_SOCKET_ERROR();
	side = (on & EV_WRITE) &&
	    (evbuffer_get_length(bev->output) || !(on & EV_READ)) ?
	    EV_WRITE : EV_READ;
	event_del(&bev->ev_write);
	bufferevent_disable(bev, side);
	EVUTIL_SET_SOCKET_ERROR(err);
	bufferevent_run_eventcb_(bev, BEV_EVENT_ERROR |
	    (side == EV_WRITE ? BEV_EVENT_WRITING : BEV_EVENT_READING), 0);
done:
	bufferevent_decref_and_unlock_(bev);
}

void
bufferevent_io_uring_set_connected_(struct bufferevent *bev)
{
	struct bufferevent_io_uring *beu = upcast(bev);

	beu->unconnected = 0;
	bev_io_uring_timers(bev, beu->fd);
	/* the connect's setfd could not put the fd on the engine, nor could
	 * this: the host hears of it after BEV_EVENT_CONNECTED */
	if (be_io_uring_enable(bev, bev->enabled &
		~((beu->bev.read_suspended ? EV_READ : 0) |
		    (beu->bev.write_suspended ? EV_WRITE : 0))) < 0 &&
	    !beu->attached)
		bev_io_uring_error(beu, BEV_EVENT_ERROR |
		    bev_io_uring_error_side(bev), errno ? errno : ENOMEM);
}

#endif /* EVENT__HAVE_IO_URING */
