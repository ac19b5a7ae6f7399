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
 * The io_uring backend: readiness through the ringplug engine (core/).
 *
 * add and del queue changes on libevent's changelist, as kqueue and epoll's
 * changelist mode do; dispatch turns them into poll requests and hands them
 * to the kernel together with the wait, in one io_uring_enter.  The one
 * exception is a del that removes an fd's last interest while its poll is
 * in the kernel: that poll is cancelled at once (see io_uring_del).  add
 * makes the fd's state, so that without memory event_add fails; a poll the
 * engine cannot take at dispatch (no memory, a full ring) is tried again
 * each pass (io_uring_arm_failed), and the wait lasts IO_URING_RETRY_MSEC
 * at most meanwhile; so are a bufferevent's received bytes that wait for
 * memory (io_uring_cfd_retry_).
 *
 * Level-triggered interest (libevent's default) is a one-shot poll that
 * dispatch arms again after it fired, for as long as the fd stays
 * registered: a still-ready fd completes at once, so nothing is lost.
 * EV_ET is a multishot poll, which the kernel runs edge-triggered.
 *
 * An fd that the kernel refused (closed before its poll reached the kernel,
 * EBADF) stays quiet until libevent changes its interest again, as epoll
 * forgets a closed fd.
 *
 * Completion bufferevents (bufferevent_io_uring.c) share the engine: it is
 * created with provided buffers unless EVENT_IO_URING_NO_BEV is set or the
 * base has EVENT_BASE_FLAG_IO_URING_NO_BEV (EVENT_IO_URING_BUFFERS sizes the
 * ring).  Their handles carry a struct io_uring_cfd as fd data; their
 * receive and send reports are noted on iop->noted_cfds and their callbacks
 * activated once the wait is over.
 */
#include "event2/event-config.h"
#include "evconfig-private.h"

#ifdef EVENT__HAVE_IO_URING

#include <sys/types.h>
#include <errno.h>
#include <limits.h>
#ifndef _WIN32
#include <pthread.h>
#include <unistd.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "ringplug.h"

#include "event-internal.h"
#include "evsignal-internal.h"
#include "evthread-internal.h"
#include "log-internal.h"
#include "evmap-internal.h"
#include "changelist-internal.h"
#include "mm-internal.h"
#include "util-internal.h"
#include "event2/buffer.h"
#include "io_uring-internal.h"

/*
 * Which process owns a ring: fork() runs the child handler, which bumps a
 * process-wide count, so "same process" is one compare where getpid() would
 * be a system call on every delete.
 */
static unsigned io_uring_forks;
#ifdef _WIN32
/* No fork on Windows: one process owns its engines. */
#define io_uring_watch_forks()
#else
static pthread_once_t io_uring_forks_once = PTHREAD_ONCE_INIT;

static void
io_uring_fork_child(void)
{
	io_uring_forks++;
}

static void
io_uring_forks_register(void)
{
	pthread_atfork(NULL, NULL, io_uring_fork_child);
}

static void
io_uring_watch_forks(void)
{
	pthread_once(&io_uring_forks_once, io_uring_forks_register);
}
#endif /* _WIN32 */

#define io_uring_same_process(iop) ((iop)->forks == io_uring_forks)

static void *io_uring_init(struct event_base *);
static int io_uring_add(struct event_base *, evutil_socket_t, short, short,
    void *);
static int io_uring_del(struct event_base *, evutil_socket_t, short, short,
    void *);
static int io_uring_dispatch(struct event_base *, struct timeval *);
static void io_uring_dealloc(struct event_base *);

const struct eventop io_uringops = {
	IO_URING_METHOD,
	io_uring_init,
	io_uring_add,
	io_uring_del,
	io_uring_dispatch,
	io_uring_dealloc,
	1, /* need reinit: the ring is shared with the parent after fork */
	IO_URING_FEATURES,
	EVENT_CHANGELIST_FDINFO_SIZE
};

/* Same cap as epoll: the wait timeout is an int of milliseconds. */
#define MAX_IO_URING_TIMEOUT_MSEC (35*60*1000)
/* The longest wait while a poll the engine refused for now (no memory, a
 * full ring) waits to be armed again, or a bufferevent's bytes wait for
 * memory. */
#define IO_URING_RETRY_MSEC 10

#define IO_URING_QUEUED_ARM	0x01	/* on iop->arm */
#define IO_URING_QUEUED_READY	0x02	/* on iop->ready */
#define IO_URING_CHANGED	0x04	/* interest changed: arm a new poll */
#define IO_URING_DEAD		0x08	/* the kernel refused the fd */
#define IO_URING_RETRY		0x10	/* arming failed for now: again */

/* What we know about one registered fd. */
struct io_uring_fd {
	struct io_uringop *iop;
	rp_fd_t *rf;
	evutil_socket_t fd;
	short events;		/* EV_READ|EV_WRITE|EV_CLOSED, and EV_ET */
	unsigned char flags;	/* IO_URING_* */
	unsigned revents;	/* poll mask reported in this pass */
	int error;		/* poll error reported in this pass */
	struct io_uring_fd *arm_next;	/* on iop->arm */
	struct io_uring_fd *ready_next;	/* on iop->ready */
};

struct io_uringop {
	rp_engine_t *engine;
	unsigned forks;		/* io_uring_forks when the ring was made */

	struct io_uring_fd **fds;	/* indexed by fd */
	int nfds;

	/* fds to (re)arm before the next wait, and fds reported by it, in
	 * order; lists through the fds' state, so that queueing allocates
	 * nothing (the engine callback queues, unlocked, in the wait). */
	struct io_uring_fd *arm, **arm_tail;
	struct io_uring_fd *ready, **ready_tail;

	struct event_base *base;
	int waiting;		/* dispatch is in rp_engine_wait_us, unlocked */

	/* Completion bufferevents: whether they are on (the engine has
	 * provided buffers), the handles noted as having news in the last
	 * wait, and one slot per provided buffer lent to an evbuffer (the
	 * evbuffer's cleanup finds the engine and the buffer through it). */
	int completion_bevs;
	struct io_uring_cfd *noted_cfds;
	struct io_uring_cfd *retry_cfds;	/* to run after the next wait */
	struct io_uring_bufref *bufrefs;	/* one per buffer in the ring */
	unsigned nlent;			/* buffers lent out now */
	int orphaned;			/* base freed, buffers still lent */
	struct io_uring_cfd *all_cfds;	/* every bufferevent's, to detach */
	/* buffers let go of by another thread while the loop ran, for the
	 * loop's thread to give back (release_cb) */
	struct io_uring_bufref *released;
	struct event_callback release_cb;
};

struct io_uring_bufref {
	struct io_uringop *iop;
	struct io_uring_bufref *next;	/* on iop->released */
};

static void io_uring_event_cb(rp_engine_t *, rp_fd_t *, void *,
    enum rp_event, int);
static void io_uring_bev_detach_all(struct io_uringop *);
static void io_uring_release_cb(struct event_callback *, void *);
static void io_uring_buf_put(struct io_uring_bufref *);

/* Whether the engine gets provided buffers for completion bufferevents,
 * and how many (*count: 0 for the engine's default). */
static int
io_uring_bev_wanted(struct event_base *base, unsigned *count)
{
	int env = !(base->flags & EVENT_BASE_FLAG_IGNORE_ENV);
	const char *s;
	char *end;
	long n;

	if ((base->flags & EVENT_BASE_FLAG_IO_URING_NO_BEV) ||
	    (env && (s = evutil_getenv_("EVENT_IO_URING_NO_BEV")) &&
		*s && strcmp(s, "0"))) {
		*count = RP_NO_BUFFERS;
		return (0);
	}
	*count = 0;
	if (env && (s = evutil_getenv_("EVENT_IO_URING_BUFFERS")) && *s) {
		n = strtol(s, &end, 10);
		if (*end || n < 1 || n > 32768) {
			event_warnx("EVENT_IO_URING_BUFFERS=%s: want 1..32768",
			    s);
			return (-1);
		}
		*count = (unsigned)n;
	}
	return (0);
}

static void *
io_uring_init(struct event_base *base)
{
	struct io_uringop *iop;
	rp_engine_params_t params;
	char why[256];
	int res;

	if (!(iop = mm_calloc(1, sizeof(struct io_uringop)))) {
		event_warn("io_uring backend unavailable: its state");
		return (NULL);
	}
	iop->arm_tail = &iop->arm;
	iop->ready_tail = &iop->ready;

	/* Provided buffers only for completion bufferevents.  libevent may
	 * dispatch a base from another thread than the one that created
	 * it. */
	memset(&params, 0, sizeof(params));
	params.entries = 256;
	params.buf_count = RP_NO_BUFFERS;
	params.flags = RP_ENGINE_SHARED_THREADS;
	if (io_uring_bev_wanted(base, &params.buf_count) < 0) {
		mm_free(iop);
		return (NULL);
	}

	why[0] = '\0';
	res = rp_engine_create(&params, io_uring_event_cb, &iop->engine,
	    why, sizeof(why));
	if (res < 0) {
		/* As epoll's init: io_uring missing (ENOSYS, EOPNOTSUPP: an
		 * old kernel) or forbidden (EPERM, EACCES: seccomp,
		 * io_uring_disabled) is a quiet fallback to the next
		 * backend; anything else (EMFILE, ENOMEM...) is a warning. */
		if (res == -ENOSYS || res == -EOPNOTSUPP || res == -EPERM
		    || res == -EACCES) {
			if (why[0])
				event_debug(("%s: no io_uring: %s", __func__,
					why));
			else
				event_debug(("%s: no io_uring: "
					"rp_engine_create: %s", __func__,
					strerror(-res)));
		} else if (why[0]) {
			event_warnx("io_uring backend unavailable: %s", why);
		} else {
			event_warnx("io_uring backend unavailable: "
			    "rp_engine_create: %s", strerror(-res));
		}
		mm_free(iop);
		return (NULL);
	}
	io_uring_watch_forks();
#ifdef _WIN32
	io_uring_win32_engine_(iop->engine);
#endif
	iop->forks = io_uring_forks;
	iop->base = base;
	event_callback_init_(base, &iop->release_cb);
	iop->release_cb.evcb_cb_union.evcb_selfcb = io_uring_release_cb;
	iop->release_cb.evcb_arg = iop;
	iop->release_cb.evcb_closure = EV_CLOSURE_CB_SELF;
	if (params.buf_count != RP_NO_BUFFERS) {
		iop->bufrefs = mm_calloc(rp_bufs_total(iop->engine),
		    sizeof(*iop->bufrefs));
		if (!iop->bufrefs) {
			event_warn("io_uring backend unavailable: %u buffer "
			    "slots", rp_bufs_total(iop->engine));
			rp_engine_destroy(iop->engine);
			mm_free(iop);
			return (NULL);
		}
		iop->completion_bevs = 1;
	}
	event_debug(("%s: %s", __func__,
		rp_engine_describe(iop->engine)));

	evsig_init_(base);

	return (iop);
}

/* fd's state, made if it has none yet; NULL without memory. */
static struct io_uring_fd *
io_uring_fd_state(struct io_uringop *iop, evutil_socket_t fd)
{
	struct io_uring_fd *st;
	int n;
	void *p;

	if (fd < iop->nfds && (st = iop->fds[fd]))
		return (st);
	if (fd >= iop->nfds) {
		n = iop->nfds ? iop->nfds : 64;
		while (n <= fd)
			n *= 2;
		if (!(p = mm_realloc(iop->fds, n * sizeof(*iop->fds))))
			return (NULL);
		iop->fds = p;
		memset(iop->fds + iop->nfds, 0,
		    (n - iop->nfds) * sizeof(*iop->fds));
		iop->nfds = n;
	}
	if (!(st = mm_calloc(1, sizeof(*st))))
		return (NULL);
	st->iop = iop;
	st->fd = fd;
	iop->fds[fd] = st;
	return (st);
}

static void
io_uring_queue_arm(struct io_uringop *iop, struct io_uring_fd *st)
{
	if (st->flags & IO_URING_QUEUED_ARM)
		return;
	st->flags |= IO_URING_QUEUED_ARM;
	st->arm_next = NULL;
	*iop->arm_tail = st;
	iop->arm_tail = &st->arm_next;
}

/* Cancel st's poll by its request, not by fd number: the host may have
 * closed the fd already, or opened another file under its number. */
static void
io_uring_disarm(struct io_uringop *iop, struct io_uring_fd *st)
{
	if (st->rf && rp_poll_armed(st->rf))
		rp_poll(iop->engine, st->rf, 0, 0);
}


/* Apply one changelist entry to our fd table.  The kernel hears of it when
 * the fd is armed. */
static int
io_uring_apply_one_change(struct io_uringop *iop,
    const struct event_change *ch)
{
	struct io_uring_fd *st;
	short events = ch->old_events & (EV_READ|EV_WRITE|EV_CLOSED);
	ev_uint8_t all = ch->read_change | ch->write_change |
	    ch->close_change;
	int et;

	if (!(all & (EV_CHANGE_ADD|EV_CHANGE_DEL)))
		return (0);

	if (ch->read_change & EV_CHANGE_ADD)
		events |= EV_READ;
	else if (ch->read_change & EV_CHANGE_DEL)
		events &= ~EV_READ;
	if (ch->write_change & EV_CHANGE_ADD)
		events |= EV_WRITE;
	else if (ch->write_change & EV_CHANGE_DEL)
		events &= ~EV_WRITE;
	if (ch->close_change & EV_CHANGE_ADD)
		events |= EV_CLOSED;
	else if (ch->close_change & EV_CHANGE_DEL)
		events &= ~EV_CLOSED;

	st = ch->fd < iop->nfds ? iop->fds[ch->fd] : NULL;

	/* libevent refuses to mix edge- and level-triggered events on one fd,
	 * so an add tells the mode, and without one the mode is unchanged. */
	if (all & EV_CHANGE_ADD)
		et = (all & EV_CHANGE_ET) != 0;
	else
		et = st && (st->events & EV_ET);

	event_debug(("%s: fd %d: events 0x%x -> 0x%x%s", __func__,
		(int)ch->fd, ch->old_events, events, et ? " (ET)" : ""));

	/* An fd without interest keeps its entry and engine handle, only its
	 * poll goes: closing the handle would cancel by fd number, a walk of
	 * every request in the ring. */
	if (events == 0) {
		if (st) {
			io_uring_disarm(iop, st);
			st->events = 0;
			st->flags &= ~(IO_URING_CHANGED|IO_URING_DEAD);
		}
		return (0);
	}

	/* io_uring_add made it; should it be missing, make it now */
	if (!st && !(st = io_uring_fd_state(iop, ch->fd)))
		return (-1);

	st->events = events | (et ? EV_ET : 0);
	st->flags &= ~IO_URING_DEAD;
	st->flags |= IO_URING_CHANGED;
	io_uring_queue_arm(iop, st);
	return (0);
}

/*
 * Queue the change like event_changelist_add_, with the fd's state made
 * first: without memory the host's event_add fails, where dispatch, which
 * applies the change later, could only warn and leave the fd deaf.  Safe
 * while another thread waits in the engine: the loop's thread reads the fd
 * table only with the base lock held, and the engine callback reaches an
 * fd's state through its own pointer.
 */
static int
io_uring_add(struct event_base *base, evutil_socket_t fd, short old,
    short events, void *p)
{
	if (!io_uring_fd_state(base->evbase, fd))
		return (-1);
	return (event_changelist_add_(base, fd, old, events, p));
}

/*
 * Queue the change like event_changelist_del_, and when the fd's last
 * interest goes while its poll is still in the kernel, cancel the poll now:
 * that poll holds a reference on the file, and the host's close() that
 * usually follows must really close the socket (send FIN) at once, as it
 * does on epoll, not at the next dispatch.  Not while another thread runs
 * the loop, which owns the engine then (its callbacks use it unlocked);
 * the change waits for it, and libevent wakes it.  Not in a child after
 * fork either: the ring is the parent's (event_base_free deletes every
 * event before dealloc).
 */
static int
io_uring_del(struct event_base *base, evutil_socket_t fd, short old,
    short events, void *p)
{
	struct io_uringop *iop = base->evbase;
	struct io_uring_fd *st;

	if (event_changelist_del_(base, fd, old, events, p) < 0)
		return (-1);

	if ((old & ~events & (EV_READ|EV_WRITE|EV_CLOSED)) != 0 ||
	    io_uring_loop_elsewhere_(base) || fd >= iop->nfds ||
	    !(st = iop->fds[fd]))
		return (0);
	if (st->rf && rp_poll_armed(st->rf) && io_uring_same_process(iop)) {
		io_uring_disarm(iop, st);
		rp_engine_flush(iop->engine);
	}
	return (0);
}

static int
io_uring_apply_changes(struct event_base *base)
{
	struct event_changelist *changelist = &base->changelist;
	struct io_uringop *iop = base->evbase;
	int i, r = 0;

	for (i = 0; i < changelist->n_changes; ++i) {
		if (io_uring_apply_one_change(iop,
			&changelist->changes[i]) < 0) {
			event_warn("%s: fd %d", __func__,
			    (int)changelist->changes[i].fd);
			r = -1;
		}
	}
	return (r);
}

static unsigned
io_uring_mask(short events)
{
	unsigned mask = 0;

	if (events & EV_READ)
		mask |= RP_IN;
	if (events & EV_WRITE)
		mask |= RP_OUT;
	if (events & EV_CLOSED)
		mask |= RP_RDHUP;
	return (mask);
}

/*
 * The engine could not take st's poll now: no memory, or a full ring
 * (-ENOMEM, -EBUSY, -EAGAIN).  st stays on the arm list, tried again each
 * pass, and dispatch waits IO_URING_RETRY_MSEC at most meanwhile; one
 * warning until it succeeds.  Any other error is the fd's (warned, not
 * retried).  Returns 1 if st is to be retried.
 */
static int
io_uring_arm_failed(struct io_uring_fd *st, const char *what, int err)
{
	int again = err == ENOMEM || err == EBUSY || err == EAGAIN;

	if (!(st->flags & IO_URING_RETRY)) {
		errno = err;
		event_warn("io_uring_arm: %s(%d)%s", what, (int)st->fd,
		    again ? ", trying again" : "");
	}
	if (!again) {
		st->flags &= ~IO_URING_RETRY;
		return (0);
	}
	st->flags |= IO_URING_RETRY;
	return (1);
}

/* Queue a poll for every fd on the arm list whose interest changed or whose
 * poll is no longer in the kernel. */
static void
io_uring_arm(struct io_uringop *iop)
{
	struct io_uring_fd *st, *next;
	unsigned mask, flags;
	int res;

	st = iop->arm;
	iop->arm = NULL;
	iop->arm_tail = &iop->arm;
	for (; st; st = next) {
		next = st->arm_next;
		st->arm_next = NULL;
		st->flags &= ~IO_URING_QUEUED_ARM;
		if (st->events == 0 || (st->flags & IO_URING_DEAD)) {
			st->flags &= ~IO_URING_RETRY;
			continue;
		}

		mask = io_uring_mask(st->events);
		flags = (st->events & EV_ET) ?
		    RP_POLL_MULTISHOT : RP_POLL_ONESHOT;

		if (!st->rf) {
			st->rf = rp_fd_open(iop->engine, st->fd, st);
			if (!st->rf) {
				if (io_uring_arm_failed(st, "rp_fd_open",
					errno))
					io_uring_queue_arm(iop, st);
				continue;
			}
		}
		if (st->flags & IO_URING_CHANGED) {
			/* A new request even for the same mask: the fd
			 * may have been closed and its number reused since
			 * the old poll went in. */
			io_uring_disarm(iop, st);
			st->flags &= ~IO_URING_CHANGED;
		} else if (rp_poll_armed(st->rf) == mask) {
			st->flags &= ~IO_URING_RETRY;
			continue;
		}

		res = rp_poll(iop->engine, st->rf, mask, flags);
		if (res < 0) {
			if (io_uring_arm_failed(st, "rp_poll", -res))
				io_uring_queue_arm(iop, st);
			continue;
		}
		st->flags &= ~IO_URING_RETRY;
	}
}

/* Runs inside rp_engine_wait_us, without the base lock: only note the report;
 * dispatch acts on it once it holds the lock again. */
static void
io_uring_event_cb(rp_engine_t *e, rp_fd_t *f, void *fd_data,
    enum rp_event ev, int res)
{
	struct io_uring_fd *st = fd_data;
	struct io_uringop *iop;

	(void)e;
	(void)f;
	if (ev != RP_EV_POLL) {
		/* Only bufferevents receive and send. */
		if (fd_data)
			io_uring_cfd_note_(fd_data);
		return;
	}
	if (!st)
		return;
	iop = st->iop;
	if (res < 0)
		st->error = res;
	else
		st->revents |= (unsigned)res;
	if (!(st->flags & IO_URING_QUEUED_READY)) {
		st->flags |= IO_URING_QUEUED_READY;
		st->ready_next = NULL;
		*iop->ready_tail = st;
		iop->ready_tail = &st->ready_next;
	}
}

static void
io_uring_activate(struct event_base *base, struct io_uringop *iop)
{
	struct io_uring_fd *st, *next;
	unsigned what;
	short ev;

	st = iop->ready;
	iop->ready = NULL;
	iop->ready_tail = &iop->ready;
	for (; st; st = next) {
		next = st->ready_next;
		st->ready_next = NULL;
		st->flags &= ~IO_URING_QUEUED_READY;
		what = st->revents;
		st->revents = 0;

		if (st->error == -ECANCELED) {
			/* Cancelled by someone else (a cancel by fd, an
			 * exiting thread on older kernels): ask again. */
			st->error = 0;
		} else if (st->error) {
			/* EBADF: closed before the poll reached the kernel.
			 * Like epoll, which drops a closed fd, stay quiet
			 * until libevent changes the fd's interest. */
			if (st->error != -EBADF) {
				errno = -st->error;
				event_warn("%s: poll on fd %d", __func__,
				    (int)st->fd);
			}
			st->error = 0;
			if (!what) {
				st->flags |= IO_URING_DEAD;
				continue;
			}
		}

		if (!rp_poll_armed(st->rf))
			io_uring_queue_arm(iop, st);

		ev = 0;
		if (what & RP_ERR) {
			ev = EV_READ | EV_WRITE;
		} else if ((what & RP_HUP) && !(what & RP_RDHUP)) {
			ev = EV_READ | EV_WRITE;
		} else {
			if (what & RP_IN)
				ev |= EV_READ;
			if (what & RP_OUT)
				ev |= EV_WRITE;
			if (what & RP_RDHUP)
				ev |= EV_CLOSED;
		}
		if (!ev)
			continue;

		evmap_io_active_(base, st->fd, ev |
		    ((IO_URING_FEATURES & EV_FEATURE_ET) ? EV_ET : 0));
	}
}

/* Activate the callbacks of the bufferevents that had news, and of those
 * waiting to try again. */
static void
io_uring_run_noted(struct event_base *base, struct io_uringop *iop)
{
	struct io_uring_cfd *cfd;

	while ((cfd = iop->noted_cfds)) {
		iop->noted_cfds = cfd->noted_next;
		cfd->noted_next = NULL;
		cfd->noted = 0;
		event_callback_activate_nolock_(base, &cfd->cb);
	}
	while ((cfd = iop->retry_cfds)) {
		iop->retry_cfds = cfd->retry_next;
		cfd->retry_next = NULL;
		cfd->retry = 0;
		event_callback_activate_nolock_(base, &cfd->cb);
	}
}

static int
io_uring_dispatch(struct event_base *base, struct timeval *tv)
{
	struct io_uringop *iop = base->evbase;
	long long timeout_us = -1;
	long timeout = -1;
	int res;

	if (tv != NULL) {
		timeout = evutil_tv_to_msec_(tv);
		if (timeout < 0 || timeout > MAX_IO_URING_TIMEOUT_MSEC)
			timeout = MAX_IO_URING_TIMEOUT_MSEC;
		/* With EVENT_BASE_FLAG_PRECISE_TIMER libevent reads a
		 * precise clock, so wait to the microsecond, as epoll does
		 * with its timerfd; otherwise its clock is coarse and
		 * milliseconds rounded up, as epoll waits, are right. */
		if (base->flags & EVENT_BASE_FLAG_PRECISE_TIMER)
			timeout_us = timeout < MAX_IO_URING_TIMEOUT_MSEC ?
			    tv->tv_sec * 1000000LL + tv->tv_usec :
			    timeout * 1000LL;
		else
			timeout_us = timeout * 1000LL;
	}

	io_uring_apply_changes(base);
	event_changelist_remove_all_(&base->changelist, base);
	io_uring_arm(iop);
	/* polls and bufferevents to try again soon */
	if ((iop->arm || iop->retry_cfds) && (timeout_us < 0 ||
		timeout_us > IO_URING_RETRY_MSEC * 1000LL))
		timeout_us = IO_URING_RETRY_MSEC * 1000LL;

	iop->waiting = 1;
	EVBASE_RELEASE_LOCK(base, th_base_lock);

	res = rp_engine_wait_us(iop->engine, timeout_us);

	EVBASE_ACQUIRE_LOCK(base, th_base_lock);
	iop->waiting = 0;

	io_uring_activate(base, iop);
	io_uring_run_noted(base, iop);

	if (res < 0) {
		if (res != -EINTR) {
			errno = -res;
			event_warn("rp_engine_wait_us");
			return (-1);
		}
		return (0);
	}

	event_debug(("%s: rp_engine_wait_us reports %d", __func__, res));
	return (0);
}

static void
io_uring_dealloc(struct event_base *base)
{
	struct io_uringop *iop = base->evbase;
	int i;

	evsig_dealloc_(base);

	/* EVENT_IO_URING_STATS=1: the engine's counters, one line per base,
	 * for operators and benchmarks (enters per pass, cancels...). */
	if (!(base->flags & EVENT_BASE_FLAG_IGNORE_ENV) &&
	    evutil_getenv_("EVENT_IO_URING_STATS") != NULL) {
		rp_stats_t st;
		char line[512];

		rp_engine_stats(iop->engine, &st);
		rp_stats_format(&st, line, sizeof(line));
		event_msgx("%s: %s", IO_URING_METHOD, line);
	}

	/* In a child after fork the ring still serves the parent: drop our
	 * references without cancelling the parent's requests.  In the
	 * parent, cancel every poll by its request and reap the
	 * cancellations, so that closing the handles needs no cancel by fd
	 * and destroy has nothing left to wait for. */
	if (io_uring_same_process(iop)) {
		for (i = 0; i < iop->nfds; ++i)
			if (iop->fds[i])
				io_uring_disarm(iop, iop->fds[i]);
		rp_engine_wait_us(iop->engine, 0);
		for (i = 0; i < iop->nfds; ++i)
			if (iop->fds[i] && iop->fds[i]->rf)
				rp_fd_close(iop->engine, iop->fds[i]->rf, 0);
	}
	io_uring_bev_detach_all(iop);
	event_callback_cancel_nolock_(base, &iop->release_cb, 0);
	while (iop->released) {
		struct io_uring_bufref *ref = iop->released;

		iop->released = ref->next;
		io_uring_buf_put(ref);
	}
	if (iop->nlent > 0) {
		/* Evbuffers still hold provided buffers: the engine and iop
		 * live on until the last one comes back. */
		iop->orphaned = 1;
	} else if (!io_uring_same_process(iop))
		rp_engine_forget(iop->engine);
	else
		rp_engine_destroy(iop->engine);
	for (i = 0; i < iop->nfds; ++i)
		if (iop->fds[i])
			mm_free(iop->fds[i]);
	if (iop->fds)
		mm_free(iop->fds);
	if (iop->orphaned)
		return;
	if (iop->bufrefs)
		mm_free(iop->bufrefs);

	memset(iop, 0, sizeof(struct io_uringop));
	mm_free(iop);
}

/* ---- for completion bufferevents (io_uring-internal.h) ---- */

rp_engine_t *
io_uring_bev_engine_(struct event_base *base)
{
	struct io_uringop *iop;

	if (!base || base->evsel != &io_uringops)
		return (NULL);
	iop = base->evbase;
	if (!iop->completion_bevs || !io_uring_same_process(iop))
		return (NULL);
	return (iop->engine);
}

void
io_uring_cfd_init_(struct event_base *base, struct io_uring_cfd *cfd,
    void (*cb)(struct event_callback *, void *), void *arg)
{
	struct io_uringop *iop = base->evbase;

	memset(cfd, 0, sizeof(*cfd));
	event_callback_init_(base, &cfd->cb);
	cfd->cb.evcb_cb_union.evcb_selfcb = cb;
	cfd->cb.evcb_arg = arg;
	cfd->cb.evcb_closure = EV_CLOSURE_CB_SELF;
	cfd->base = base;
	cfd->iop = iop;
	/* bufferevents come and go in any thread */
	EVBASE_ACQUIRE_LOCK(base, th_base_lock);
	cfd->all_next = iop->all_cfds;
	if (iop->all_cfds)
		iop->all_cfds->all_prev = &cfd->all_next;
	cfd->all_prev = &iop->all_cfds;
	iop->all_cfds = cfd;
	EVBASE_RELEASE_LOCK(base, th_base_lock);
}

int
io_uring_loop_elsewhere_(struct event_base *base)
{
	struct io_uringop *iop = base->evbase;

	return (base->evsel == &io_uringops &&
	    (iop->waiting || EVBASE_NEED_NOTIFY(base)));
}

int
io_uring_cfd_live_(const struct io_uring_cfd *cfd)
{
	return (cfd->iop && io_uring_same_process(cfd->iop));
}

void
io_uring_cfd_note_(struct io_uring_cfd *cfd)
{
	struct io_uringop *iop = cfd->iop;

	if (cfd->noted || !iop)
		return;
	cfd->noted = 1;
	cfd->noted_next = iop->noted_cfds;
	iop->noted_cfds = cfd;
}

void
io_uring_cfd_retry_(struct io_uring_cfd *cfd)
{
	struct io_uringop *iop = cfd->iop;

	if (cfd->retry || !iop)
		return;
	cfd->retry = 1;
	cfd->retry_next = iop->retry_cfds;
	iop->retry_cfds = cfd;
}

void
io_uring_cfd_clear_(struct io_uring_cfd *cfd)
{
	struct io_uringop *iop;
	struct io_uring_cfd **p;

	EVBASE_ACQUIRE_LOCK(cfd->base, th_base_lock);
	event_callback_cancel_nolock_(cfd->base, &cfd->cb, 0);
	if (!(iop = cfd->iop)) {
		EVBASE_RELEASE_LOCK(cfd->base, th_base_lock);
		return;
	}
	/* Only a handle with news is noted, and only the loop's thread
	 * (or one while no loop runs) frees a bufferevent with a live
	 * handle: the list is not being filled now. */
	if (cfd->noted) {
		for (p = &iop->noted_cfds; *p; p = &(*p)->noted_next) {
			if (*p == cfd) {
				*p = cfd->noted_next;
				break;
			}
		}
		cfd->noted = 0;
	}
	if (cfd->retry) {
		for (p = &iop->retry_cfds; *p; p = &(*p)->retry_next) {
			if (*p == cfd) {
				*p = cfd->retry_next;
				break;
			}
		}
		cfd->retry = 0;
	}
	if (cfd->all_next)
		cfd->all_next->all_prev = cfd->all_prev;
	*cfd->all_prev = cfd->all_next;
	cfd->iop = NULL;
	EVBASE_RELEASE_LOCK(cfd->base, th_base_lock);
}

/* The base goes (or is reinitialised after fork): its bufferevents keep
 * their cfd but lose the engine, which they notice (cfd->iop == NULL). */
static void
io_uring_bev_detach_all(struct io_uringop *iop)
{
	struct io_uring_cfd *cfd;

	while ((cfd = iop->all_cfds)) {
		iop->all_cfds = cfd->all_next;
		cfd->all_next = NULL;
		cfd->all_prev = NULL;
		cfd->noted = 0;
		cfd->noted_next = NULL;
		cfd->retry = 0;
		cfd->retry_next = NULL;
		cfd->iop = NULL;
	}
	iop->noted_cfds = NULL;
	iop->retry_cfds = NULL;
}

/* Give a buffer lent to an evbuffer back to the ring, in the loop's
 * thread (or while no loop runs). */
static void
io_uring_buf_put(struct io_uring_bufref *ref)
{
	struct io_uringop *iop = ref->iop;

	/* A child after fork must not hand the parent's ring buffers back
	 * (its reinit orphaned this iop). */
	if (!iop->orphaned || io_uring_same_process(iop))
		rp_buf_release(iop->engine,
		    (uint32_t)(ref - iop->bufrefs) + 1);
	if (--iop->nlent == 0 && iop->orphaned) {
		if (io_uring_same_process(iop))
			rp_engine_destroy(iop->engine);
		else
			rp_engine_forget(iop->engine);
		mm_free(iop->bufrefs);
		mm_free(iop);
	}
}

/*
 * An evbuffer let go of a provided buffer.  That may happen in any thread
 * (bufferevent_read on a BEV_OPT_THREADSAFE bufferevent): while another
 * thread runs the loop, whose engine adds to the ring's tail unlocked, the
 * buffer waits on iop->released for release_cb in the loop's thread.
 */
static void
io_uring_buf_cleanup(const void *data, size_t len, void *extra)
{
	struct io_uring_bufref *ref = extra;
	struct io_uringop *iop = ref->iop;
	struct event_base *base = iop->base;

	(void)data;
	(void)len;
	if (!iop->orphaned) {
		EVBASE_ACQUIRE_LOCK(base, th_base_lock);
		if (io_uring_loop_elsewhere_(base)) {
			ref->next = iop->released;
			iop->released = ref;
			/* the base had no priorities yet in io_uring_init */
			if (!(iop->release_cb.evcb_flags & EVLIST_ACTIVE))
				iop->release_cb.evcb_pri =
				    base->nactivequeues - 1;
			event_callback_activate_nolock_(base,
			    &iop->release_cb);
			EVBASE_RELEASE_LOCK(base, th_base_lock);
			return;
		}
		EVBASE_RELEASE_LOCK(base, th_base_lock);
	}
	io_uring_buf_put(ref);
}

static void
io_uring_release_cb(struct event_callback *cb, void *arg)
{
	struct io_uringop *iop = arg;
	struct io_uring_bufref *ref, *next;

	(void)cb;
	EVBASE_ACQUIRE_LOCK(iop->base, th_base_lock);
	ref = iop->released;
	iop->released = NULL;
	EVBASE_RELEASE_LOCK(iop->base, th_base_lock);
	for (; ref; ref = next) {
		next = ref->next;
		io_uring_buf_put(ref);
	}
}

#ifdef RP_FAULT_INJECTION
static int io_uring_fault_fallback;	/* the next allocation is one */
static int io_uring_fault_fallbacks;	/* fail them too */
static long io_uring_fault_nfallbacks;
static int io_uring_fault_out;		/* every allocation fails */
static long io_uring_fault_nout;

void
io_uring_fault_fallback_(void)
{
	io_uring_fault_fallback = 1;
}

void
io_uring_fault_fallbacks_fail_(int on)
{
	io_uring_fault_fallbacks = on;
	io_uring_fault_nfallbacks = 0;
}

long
io_uring_fault_fallbacks_(void)
{
	return (io_uring_fault_nfallbacks);
}

void
io_uring_fault_memory_out_(int on)
{
	io_uring_fault_out = on;
	if (on)
		io_uring_fault_nout = 0;
}

long
io_uring_fault_memory_out_count_(void)
{
	return (io_uring_fault_nout);
}

int
io_uring_fault_(void)
{
	int fail = rp_fault_alloc();

	if (io_uring_fault_fallback) {
		io_uring_fault_fallback = 0;
		++io_uring_fault_nfallbacks;
		fail |= io_uring_fault_fallbacks;
	}
	if (io_uring_fault_out) {
		++io_uring_fault_nout;
		fail = 1;
	}
	if (fail)
		errno = ENOMEM;
	return (fail);
}
#endif

int
io_uring_evbuffer_add_buf_(struct event_base *base, struct evbuffer *buf,
    uint32_t token, const void *data, size_t len)
{
	struct io_uringop *iop = base->evbase;
	struct io_uring_bufref *ref = &iop->bufrefs[token - 1];
	int r;

	ref->iop = iop;
	if (evbuffer_add_reference(buf, data, len, io_uring_buf_cleanup,
		ref) < 0) {
		/* no chain for the reference: a copy, if it can be made */
		io_uring_fault_fallback_();
		r = evbuffer_add(buf, data, len);
		rp_buf_release(iop->engine, token);
		return (r);
	}
	++iop->nlent;
	return (0);
}

#endif /* EVENT__HAVE_IO_URING */
