/*
 * ringplug core: what the engine asks of the OS besides its kernel I/O
 * interface, on Windows.
 */

/*
 * SIO_TCP_INFO and TCP_INFO_v0 (Windows 10 1703): mingw-w64 declares them
 * only for that target.  This file alone asks for it; the ioctl fails on
 * an older Windows (and under Wine 8.0) and rp_os_peer_progress() falls
 * back.
 */
#ifndef NTDDI_VERSION
#define NTDDI_VERSION  0x0A000003       /* NTDDI_WIN10_RS2 */
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT   0x0A00
#endif

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mstcpip.h>
#include <windows.h>
#include <errno.h>
#include <string.h>

#include "engine.h"

#ifdef RP_RIO_STANDIN
#include "rio-standin.h"
#define rp_closesocket  rpstandin_closesocket
#else
#define rp_closesocket  closesocket
#endif

/*
 * A second socket for the same connection (WSADuplicateSocketW, which
 * works within one process too), overlapped, so the engine's sends (rio.c)
 * and a flushing close go on after the host closes its own.  Not
 * inherited: a child process the host starts must not hold the connection
 * open.
 */
int
rp_os_dup(rp_socket_t s, rp_socket_t *out)
{
    WSAPROTOCOL_INFOW  pi;
    SOCKET             d;

    if (WSADuplicateSocketW((SOCKET) s, GetCurrentProcessId(), &pi) != 0) {
        return -EBADF;
    }
    d = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
                   &pi, 0,
                   WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (d == INVALID_SOCKET) {
        return -EMFILE;
    }
    *out = (rp_socket_t) d;
    return 0;
}

/*
 * The engine's own handles, and the host's socket after
 * rp_fd_close(RP_CLOSE_SOCKET).  The RIO stand-in test build closes through
 * the stand-in, which must see a registered socket's close (it ends the
 * socket's request queue); it passes other handles to closesocket().
 */
void
rp_os_close(rp_socket_t s)
{
    rp_closesocket((SOCKET) s);
}

/*
 * How far the peer has got: bytes sent minus bytes in flight (SIO_TCP_INFO,
 * Windows 10 1703 and later); 0 where that cannot be had, so a flushing
 * close then counts its deadline from its last completed send.
 */
uint64_t
rp_os_peer_progress(rp_socket_t s)
{
#ifdef SIO_TCP_INFO
    TCP_INFO_v0  ti;
    DWORD        version = 0, bytes = 0;

    memset(&ti, 0, sizeof(ti));
    if (WSAIoctl((SOCKET) s, SIO_TCP_INFO, &version, sizeof(version), &ti,
                 sizeof(ti), &bytes, NULL, NULL) == 0)
    {
        return ti.BytesOut - ti.BytesInFlight;
    }
#else
    (void) s;
#endif
    return 0;
}

uint64_t
rp_os_now_ms(void)
{
    return GetTickCount64();
}
