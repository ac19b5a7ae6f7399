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
 * The Windows parts of the ringplug backend ("rio" on Windows), built only
 * there (patches/libevent-rio-windows.patch): what io_uring.c and
 * bufferevent_io_uring.c need of the OS beyond ringplug.h.
 *
 * Registered I/O runs only on sockets made with WSA_FLAG_REGISTERED_IO, a
 * creation flag that cannot be read back from a socket.  So once a rio
 * base's engine has RIO (io_uring_win32_engine_), the sockets libevent
 * makes itself are made with it and remembered here: evutil_socket_ (the
 * listeners of evconnlistener_new_bind and evhttp_bind_socket, the sockets
 * of bufferevent_socket_connect and evhttp connections) and
 * evutil_accept4_ on such a listener (an accepted socket has its
 * listener's flags); evutil_closesocket forgets them.  The completion
 * bufferevent marks the handle of a remembered socket RP_FD_REGISTERED_IO
 * (io_uring_win32_fd_open_), so the engine runs its data on RIO.  Every
 * other socket (made by the program, passed in, a socketpair) runs on the
 * engine's overlapped data path.  Before any rio base with RIO exists, and
 * where RIO is unavailable (Wine), sockets are made as stock libevent makes
 * them.
 *
 * A test build (-DRP_RIO_STANDIN) makes, accepts and closes sockets
 * through the tests' RIO stand-in (tests/windows/rio-standin.h), which
 * keeps its own record of them, as its engine takes RIO from it.
 */
#include "event2/event-config.h"
#include "evconfig-private.h"

#if defined(EVENT__HAVE_IO_URING) && defined(_WIN32)

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringplug.h"
#include "io_uring-internal.h"

#ifdef RP_RIO_STANDIN
#include "rio-standin.h"
#define rio_wsasocket	rpstandin_WSASocketW
#define rio_accept	rpstandin_accept
#define rio_close	rpstandin_closesocket
#else
#define rio_wsasocket	WSASocketW
#define rio_accept	accept
#define rio_close	closesocket
#endif

/* A rio base's engine had RIO: make registered-I/O sockets from now on. */
static volatile LONG rio_sockets;

/* The sockets made with WSA_FLAG_REGISTERED_IO, a hash set. */
#define RIO_SET_BUCKETS 1024
struct rio_sock {
	SOCKET s;
	struct rio_sock *next;
};
static struct rio_sock *rio_set[RIO_SET_BUCKETS];
static SRWLOCK rio_set_lock = SRWLOCK_INIT;

static unsigned
rio_bucket(SOCKET s)
{
	/* handles are multiples of 4 */
	return (unsigned)((s >> 2) % RIO_SET_BUCKETS);
}

static void
rio_set_add(SOCKET s)
{
	struct rio_sock *n = malloc(sizeof(*n));

	if (!n)
		return;		/* the socket runs on the overlapped path */
	n->s = s;
	AcquireSRWLockExclusive(&rio_set_lock);
	n->next = rio_set[rio_bucket(s)];
	rio_set[rio_bucket(s)] = n;
	ReleaseSRWLockExclusive(&rio_set_lock);
}

static int
rio_set_has(SOCKET s)
{
	struct rio_sock *n;

	AcquireSRWLockShared(&rio_set_lock);
	for (n = rio_set[rio_bucket(s)]; n; n = n->next)
		if (n->s == s)
			break;
	ReleaseSRWLockShared(&rio_set_lock);
	return (n != NULL);
}

static void
rio_set_remove(SOCKET s)
{
	struct rio_sock **p, *n = NULL;

	AcquireSRWLockExclusive(&rio_set_lock);
	for (p = &rio_set[rio_bucket(s)]; *p; p = &(*p)->next) {
		if ((*p)->s == s) {
			n = *p;
			*p = n->next;
			break;
		}
	}
	ReleaseSRWLockExclusive(&rio_set_lock);
	free(n);
}

void
io_uring_win32_engine_(rp_engine_t *e)
{
	if (strncmp(rp_engine_describe(e), "rio: RIO ", 9) == 0)
		InterlockedExchange(&rio_sockets, 1);
}

evutil_socket_t
io_uring_win32_socket_(int domain, int type, int protocol)
{
	SOCKET s;

	if (!rio_sockets || type != SOCK_STREAM)
		return (socket(domain, type, protocol));
	s = rio_wsasocket(domain, type, protocol, NULL, 0,
	    WSA_FLAG_OVERLAPPED | WSA_FLAG_REGISTERED_IO);
	if (s == INVALID_SOCKET)
		return (socket(domain, type, protocol));
	rio_set_add(s);
	return ((evutil_socket_t)s);
}

evutil_socket_t
io_uring_win32_accept_(evutil_socket_t ls, struct sockaddr *sa, int *len)
{
	SOCKET s;

	if (!rio_sockets || !rio_set_has((SOCKET)ls))
		return ((evutil_socket_t)accept((SOCKET)ls, sa, len));
	s = rio_accept((SOCKET)ls, sa, len);
	if (s != INVALID_SOCKET)
		rio_set_add(s);
	return ((evutil_socket_t)s);
}

int
io_uring_win32_closesocket_(evutil_socket_t s)
{
	if (rio_sockets)
		rio_set_remove((SOCKET)s);
	return (rio_close((SOCKET)s));
}

rp_fd_t *
io_uring_win32_fd_open_(rp_engine_t *e, evutil_socket_t s, void *data)
{
	rp_fd_t *f = rp_fd_open(e, (rp_socket_t)s, data);

	if (f && rio_sockets && rio_set_has((SOCKET)s))
		rp_fd_set_flags(f, RP_FD_REGISTERED_IO);
	return (f);
}

/* The engine's -errno as the WSA code a Windows program expects from
 * EVUTIL_SOCKET_ERROR() (the inverse of core/win/rio.c's mapping). */
int
io_uring_wsa_error_(int neg_errno)
{
	switch (-neg_errno) {
	case 0:
		return (0);
	case ECANCELED:
		return (WSA_OPERATION_ABORTED);
	case ECONNRESET:
		return (WSAECONNRESET);
	case ECONNABORTED:
		return (WSAECONNABORTED);
	case EPIPE:
		return (WSAESHUTDOWN);
	case ENOTCONN:
		return (WSAENOTCONN);
	case EBADF:
		return (WSAENOTSOCK);
	case ETIMEDOUT:
		return (WSAETIMEDOUT);
	case EAGAIN:
		return (WSAEWOULDBLOCK);
	case EINVAL:
		return (WSAEINVAL);
	case ENOMEM:
	case ENOBUFS:
		return (WSAENOBUFS);
	case EOPNOTSUPP:
		return (WSAEOPNOTSUPP);
	default:
		/* EIO: any other failure of the connection */
		return (WSAECONNABORTED);
	}
}

#endif /* EVENT__HAVE_IO_URING && _WIN32 */
