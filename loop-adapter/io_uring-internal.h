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
 * What the io_uring backend (io_uring.c) offers the completion bufferevent
 * (bufferevent_io_uring.c): the base's engine, and a way to hear about
 * receive and send completions of the engine handles a bufferevent owns.
 */
#ifndef IO_URING_INTERNAL_H_INCLUDED_
#define IO_URING_INTERNAL_H_INCLUDED_

#include "event2/event-config.h"

#ifdef EVENT__HAVE_IO_URING

#include "ringplug.h"
#include "event-internal.h"

struct io_uringop;
struct evbuffer;

/*
 * What differs by OS.  On Windows the engine is Registered I/O (core/win/)
 * and the backend is named "rio" (EVENT_NORIO, event_config_avoid_method
 * "rio"); its polls are AFD polls, level-triggered (a multishot poll is
 * issued again each pass), so it does not claim EV_FEATURE_ET, and its
 * events carry no EV_ET.  Nor EV_FEATURE_EARLY_CLOSE: AFD reports the
 * peer's FIN (AFD_POLL_DISCONNECT) only once the bytes before it are read
 * (so under Wine 8.0, and so Windows documents FD_CLOSE), where the
 * feature promises it with data unread (libevent's test-closed).  The
 * engine reports errors as -errno; Windows programs read socket errors as
 * WSA codes (io_uring-win32.c maps them).
 */
#ifdef _WIN32
#define IO_URING_METHOD		"rio"
#define IO_URING_FEATURES	EV_FEATURE_O1
int io_uring_wsa_error_(int neg_errno);
#define IO_URING_SET_SOCKET_ERROR(neg) \
	EVUTIL_SET_SOCKET_ERROR(io_uring_wsa_error_(neg))
/* Registered-I/O sockets (io_uring-win32.c; evutil.c calls the socket,
 * accept and close hooks, patches/libevent-rio-windows.patch). */
void io_uring_win32_engine_(rp_engine_t *e);
rp_fd_t *io_uring_win32_fd_open_(rp_engine_t *e, evutil_socket_t s,
    void *data);
#define IO_URING_FD_OPEN(e, s, data)	io_uring_win32_fd_open_(e, s, data)
#else
#define IO_URING_METHOD		"io_uring"
#define IO_URING_FEATURES	(EV_FEATURE_ET|EV_FEATURE_O1|EV_FEATURE_EARLY_CLOSE)
#define IO_URING_SET_SOCKET_ERROR(neg)	EVUTIL_SET_SOCKET_ERROR(-(neg))
#define IO_URING_FD_OPEN(e, s, data)	rp_fd_open(e, s, data)
#endif

/*
 * The fd_data of an engine handle that a bufferevent owns.  The backend's
 * engine callback notes it when RP_EV_RECV or RP_EV_SEND arrives (or when
 * io_uring_cfd_note_ is called from a send's done callback), and activates
 * cb once the wait is over and the base lock is held again, so cb runs in
 * the loop's callback phase like any event callback.
 */
struct io_uring_cfd {
	struct event_callback cb;
	struct event_base *base;
	struct io_uringop *iop;
	struct io_uring_cfd *noted_next;	/* on iop->noted_cfds */
	struct io_uring_cfd *retry_next;	/* on iop->retry_cfds */
	struct io_uring_cfd *all_next;	/* on the backend's list of all */
	struct io_uring_cfd **all_prev;
	unsigned noted : 1;		/* on iop->noted_cfds */
	unsigned retry : 1;		/* on iop->retry_cfds */
};

/* The base's engine when completion bufferevents may be used on it (the
 * backend is io_uring, the engine has provided buffers, and neither
 * EVENT_IO_URING_NO_BEV nor EVENT_BASE_FLAG_IO_URING_NO_BEV turned them
 * off); otherwise NULL. */
rp_engine_t *io_uring_bev_engine_(struct event_base *base);

/* Prepare cfd for base (whose engine io_uring_bev_engine_ returned). */
void io_uring_cfd_init_(struct event_base *base, struct io_uring_cfd *cfd,
    void (*cb)(struct event_callback *, void *), void *arg);

/* Run cfd's callback once the current (or next) wait is over.  Only
 * touches cfd and the backend's list: safe from inside rp_engine_wait. */
void io_uring_cfd_note_(struct io_uring_cfd *cfd);

/* Run cfd's callback after the next wait, which lasts 10 ms at most
 * while any callback waits so: for work that waits for memory, tried again
 * without keeping the loop from sleeping (as a poll the engine could not
 * take).  Call with the base lock held. */
void io_uring_cfd_retry_(struct io_uring_cfd *cfd);

/* Whether another thread runs the base's loop now: waiting in the engine
 * (dispatch released the base lock for the wait) or running callbacks,
 * which use the engine without the base lock.  Then only that thread may
 * touch the engine.  Call with the base lock held. */
int io_uring_loop_elsewhere_(struct event_base *base);

/* Whether cfd's engine still serves this bufferevent: the base was not
 * freed or reinitialised since io_uring_cfd_init_, and this is the process
 * that made the ring (a child after fork must not touch it, even before
 * event_reinit). */
int io_uring_cfd_live_(const struct io_uring_cfd *cfd);

/* Forget cfd (its bufferevent is going away): off the backend's lists,
 * callback cancelled.  cfd->iop is NULL afterwards, and also once the base
 * was freed or reinitialised after fork (the engine is gone then). */
void io_uring_cfd_clear_(struct io_uring_cfd *cfd);

/*
 * Append a provided buffer taken with rp_recv_take() to buf without a copy.
 * The buffer goes back to the ring when buf no longer references it, even
 * after the base is freed (the engine then lives until its last buffer
 * comes back).  Without memory for the reference the bytes are copied.
 * Returns 0, or -1: no memory for either, the bytes are lost (the buffer
 * was released).
 */
int io_uring_evbuffer_add_buf_(struct event_base *base, struct evbuffer *buf,
    uint32_t token, const void *data, size_t len);

#ifdef RP_FAULT_INJECTION
/*
 * A test build (make libevent-faults, tests/libevent/le-faults.c): every
 * allocation of io_uring.c and bufferevent_io_uring.c, their own and the
 * ones libevent makes for them in the calls below, asks core's
 * rp_fault_alloc() first and fails as it would without memory.  One count
 * for core and the adapter.  Include this header last.
 */
#include <errno.h>

#include "mm-internal.h"
#include "event2/buffer.h"
#include "event2/bufferevent.h"
#include "bufferevent-internal.h"

/* core's (core/engine.h) */
int rp_fault_alloc(void);
long rp_fault_count(void);

/* Whether to fail this allocation, with errno ENOMEM as libevent's own
 * allocators set it (io_uring.c). */
int io_uring_fault_(void);
/*
 * The next allocation is a fallback for one that just failed (a copy of a
 * received buffer after no memory for a reference to it).  le-faults has
 * fallbacks fail too in a second pass (on: 1), and counts them.
 */
void io_uring_fault_fallback_(void);
void io_uring_fault_fallbacks_fail_(int on);
long io_uring_fault_fallbacks_(void);
/*
 * Memory out (on: 1) until memory returns (on: 0): every allocation of the
 * adapter fails meanwhile (core's still count, and fail only by
 * rp_fault_set).  The count is of the adapter's allocations failed since
 * memory went out (le-faults' pass "hold").
 */
void io_uring_fault_memory_out_(int on);
long io_uring_fault_memory_out_count_(void);

static inline void *
io_uring_fault_malloc_(size_t size)
{
	return (io_uring_fault_() ? NULL : mm_malloc(size));
}

static inline void *
io_uring_fault_calloc_(size_t count, size_t size)
{
	return (io_uring_fault_() ? NULL : mm_calloc(count, size));
}

static inline void *
io_uring_fault_realloc_(void *p, size_t size)
{
	return (io_uring_fault_() ? NULL : mm_realloc(p, size));
}

static inline struct evbuffer *
io_uring_fault_evbuffer_new_(void)
{
	return (io_uring_fault_() ? NULL : evbuffer_new());
}

static inline int
io_uring_fault_evbuffer_add_reference_(struct evbuffer *buf,
    const void *data, size_t len, evbuffer_ref_cleanup_cb cleanup, void *arg)
{
	return (io_uring_fault_() ? -1 :
	    evbuffer_add_reference(buf, data, len, cleanup, arg));
}

static inline int
io_uring_fault_evbuffer_add_(struct evbuffer *buf, const void *data,
    size_t len)
{
	return (io_uring_fault_() ? -1 : evbuffer_add(buf, data, len));
}

static inline int
io_uring_fault_evbuffer_reserve_space_(struct evbuffer *buf,
    ev_ssize_t size, struct evbuffer_iovec *vec, int n_vec)
{
	return (io_uring_fault_() ? -1 :
	    evbuffer_reserve_space(buf, size, vec, n_vec));
}

static inline struct evbuffer_cb_entry *
io_uring_fault_evbuffer_add_cb_(struct evbuffer *buf, evbuffer_cb_func cb,
    void *arg)
{
	return (io_uring_fault_() ? NULL : evbuffer_add_cb(buf, cb, arg));
}

static inline int
io_uring_fault_bufferevent_init_common_(struct bufferevent_private *bev_p,
    struct event_base *base, const struct bufferevent_ops *ops,
    enum bufferevent_options options)
{
	return (io_uring_fault_() ? -1 :
	    bufferevent_init_common_(bev_p, base, ops, options));
}

#undef mm_malloc
#undef mm_calloc
#undef mm_realloc
#define mm_malloc(size)		io_uring_fault_malloc_(size)
#define mm_calloc(count, size)	io_uring_fault_calloc_((count), (size))
#define mm_realloc(p, size)	io_uring_fault_realloc_((p), (size))
#define evbuffer_new()		io_uring_fault_evbuffer_new_()
#define evbuffer_add_reference(buf, data, len, cleanup, arg) \
	io_uring_fault_evbuffer_add_reference_((buf), (data), (len), \
	    (cleanup), (arg))
#define evbuffer_add(buf, data, len) \
	io_uring_fault_evbuffer_add_((buf), (data), (len))
#define evbuffer_reserve_space(buf, size, vec, n_vec) \
	io_uring_fault_evbuffer_reserve_space_((buf), (size), (vec), (n_vec))
#define evbuffer_add_cb(buf, cb, arg) \
	io_uring_fault_evbuffer_add_cb_((buf), (cb), (arg))
#define bufferevent_init_common_(bev_p, base, ops, options) \
	io_uring_fault_bufferevent_init_common_((bev_p), (base), (ops), \
	    (options))
#else
#define io_uring_fault_fallback_()
#endif /* RP_FAULT_INJECTION */

#endif /* EVENT__HAVE_IO_URING */
#endif /* IO_URING_INTERNAL_H_INCLUDED_ */
