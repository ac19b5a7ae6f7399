/*
 * afd-poll-check: does readiness through \Device\Afd and an IOCP work here?
 *
 * RIO has no readiness, so a Windows engine needs another way to learn that
 * a listener can accept or that a socket the host reads itself is readable,
 * delivered on the same IOCP as RIO's notifications.  wepoll, libuv and mio
 * use the AFD driver's poll: a handle opened on \Device\Afd (no endpoint, not
 * a socket) is associated with the IOCP, and IOCTL_AFD_POLL on it, naming a
 * socket's base handle and the events wanted, completes to the IOCP when one
 * of them holds.  This program runs that technique step by step and prints
 * one line per step:
 *
 *   ok NAME             the step behaved as on Windows
 *   not ok NAME: WHY    it did not
 *
 * and exits 0 when every step is ok.  Steps: open, iocp, base-handle,
 * pending (an idle socket's poll waits), readable (data completes it on the
 * IOCP), writable, cancel (NtCancelIoFileEx completes it with
 * STATUS_CANCELLED), hangup (the peer's close is reported), accept (a
 * listener's pending connection).
 *
 * The AFD declarations are the ones wepoll uses (msafd.h, afd.c); Wine's
 * own (include/wine/afd.h) have the same layout and ioctl code.
 */

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <winternl.h>
#include <ntstatus.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define IOCTL_AFD_POLL  0x00012024

#define AFD_POLL_RECEIVE     0x0001
#define AFD_POLL_SEND        0x0004
#define AFD_POLL_DISCONNECT  0x0008
#define AFD_POLL_ABORT       0x0010
#define AFD_POLL_ACCEPT      0x0080

#ifndef STATUS_NOT_FOUND
#define STATUS_NOT_FOUND  ((NTSTATUS) 0xC0000225)
#endif

typedef struct {
    HANDLE   Handle;
    ULONG    Events;
    NTSTATUS Status;
} AFD_POLL_HANDLE_INFO;

typedef struct {
    LARGE_INTEGER        Timeout;
    ULONG                NumberOfHandles;
    ULONG                Exclusive;
    AFD_POLL_HANDLE_INFO Handles[1];
} AFD_POLL_INFO;

typedef NTSTATUS (NTAPI *nt_create_file_fn)(PHANDLE, ACCESS_MASK,
    POBJECT_ATTRIBUTES, PIO_STATUS_BLOCK, PLARGE_INTEGER, ULONG, ULONG,
    ULONG, ULONG, PVOID, ULONG);
typedef NTSTATUS (NTAPI *nt_ioctl_fn)(HANDLE, HANDLE, PIO_APC_ROUTINE, PVOID,
    PIO_STATUS_BLOCK, ULONG, PVOID, ULONG, PVOID, ULONG);
typedef NTSTATUS (NTAPI *nt_cancel_fn)(HANDLE, PIO_STATUS_BLOCK,
    PIO_STATUS_BLOCK);

static nt_create_file_fn nt_create_file;
static nt_ioctl_fn       nt_ioctl;
static nt_cancel_fn      nt_cancel;

static HANDLE            iocp, afd;
static int               failures;

/* One poll in flight: its status block is also its IOCP "overlapped". */
struct poll {
    IO_STATUS_BLOCK iosb;
    AFD_POLL_INFO   info;
};

static void
ok(const char *name)
{
    printf("ok %s\n", name);
}

static void
not_ok(const char *name, const char *fmt, ...)
{
    va_list ap;

    printf("not ok %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    failures++;
}

static int
load_ntdll(void)
{
    HMODULE nt = GetModuleHandleW(L"ntdll.dll");

    nt_create_file = (nt_create_file_fn) (void (*)(void))
                     GetProcAddress(nt, "NtCreateFile");
    nt_ioctl = (nt_ioctl_fn) (void (*)(void))
               GetProcAddress(nt, "NtDeviceIoControlFile");
    nt_cancel = (nt_cancel_fn) (void (*)(void))
                GetProcAddress(nt, "NtCancelIoFileEx");
    return nt_create_file && nt_ioctl && nt_cancel ? 0 : -1;
}

/* The helper handle: \Device\Afd with no endpoint, on our IOCP. */
static int
open_afd(void)
{
    UNICODE_STRING name;
    OBJECT_ATTRIBUTES attr;
    IO_STATUS_BLOCK iosb;
    NTSTATUS st;

    RtlInitUnicodeString(&name, L"\\Device\\Afd\\RingplugPoll");
    InitializeObjectAttributes(&attr, &name, 0, NULL, NULL);
    st = nt_create_file(&afd, SYNCHRONIZE, &attr, &iosb, NULL, 0,
                        FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0,
                        NULL, 0);
    if (st != STATUS_SUCCESS) {
        not_ok("open", "NtCreateFile(\\Device\\Afd\\RingplugPoll): %#lx",
               (unsigned long) st);
        return -1;
    }
    ok("open");
    if (CreateIoCompletionPort(afd, iocp, 0, 0) == NULL
        || !SetFileCompletionNotificationModes(afd,
                                               FILE_SKIP_SET_EVENT_ON_HANDLE)) {
        not_ok("iocp", "associating the AFD handle: error %lu",
               GetLastError());
        return -1;
    }
    ok("iocp");
    return 0;
}

static SOCKET
base_handle(SOCKET s)
{
    SOCKET base = INVALID_SOCKET;
    DWORD bytes;

    if (WSAIoctl(s, SIO_BASE_HANDLE, NULL, 0, &base, sizeof(base), &bytes,
                 NULL, NULL) != 0)
        return INVALID_SOCKET;
    return base;
}

/* Start a poll of one socket for events; STATUS_PENDING or a status. */
static NTSTATUS
poll_start(struct poll *p, SOCKET s, ULONG events)
{
    memset(p, 0, sizeof(*p));
    p->info.Timeout.QuadPart = INT64_MAX;
    p->info.NumberOfHandles = 1;
    p->info.Handles[0].Handle = (HANDLE) s;
    p->info.Handles[0].Events = events;
    p->iosb.Status = STATUS_PENDING;
    return nt_ioctl(afd, NULL, NULL, &p->iosb, &p->iosb, IOCTL_AFD_POLL,
                    &p->info, sizeof(p->info), &p->info, sizeof(p->info));
}

/* 1 if the poll's completion came off the IOCP within ms, else 0. */
static int
poll_wait(struct poll *p, DWORD ms)
{
    OVERLAPPED_ENTRY e;
    ULONG n = 0;

    if (!GetQueuedCompletionStatusEx(iocp, &e, 1, &n, ms, FALSE) || n == 0)
        return 0;
    if (e.lpOverlapped != (LPOVERLAPPED) &p->iosb) {
        printf("# a completion for %p, not this poll\n",
               (void *) e.lpOverlapped);
        return 0;
    }
    return 1;
}

static void
tcp_pair(SOCKET *a, SOCKET *b, SOCKET *listener)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    int len = sizeof(sin);
    SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (struct sockaddr *) &sin, sizeof(sin));
    listen(l, 4);
    getsockname(l, (struct sockaddr *) &sin, &len);
    *b = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    connect(*b, (struct sockaddr *) &sin, sizeof(sin));
    *a = accept(l, NULL, NULL);
    if (listener != NULL)
        *listener = l;
    else
        closesocket(l);
}

static void
check_readiness(SOCKET s, SOCKET peer)
{
    struct poll p;
    NTSTATUS st;
    char c;

    st = poll_start(&p, s, AFD_POLL_RECEIVE);
    if (st != STATUS_PENDING)
        not_ok("pending", "an idle socket's poll returned %#lx",
               (unsigned long) st);
    else if (poll_wait(&p, 200))
        not_ok("pending", "an idle socket's poll completed");
    else
        ok("pending");

    send(peer, "x", 1, 0);
    if (!poll_wait(&p, 2000))
        not_ok("readable", "no completion on the IOCP within 2 s of data");
    else if (p.iosb.Status != STATUS_SUCCESS || p.info.NumberOfHandles != 1
             || !(p.info.Handles[0].Events & AFD_POLL_RECEIVE))
        not_ok("readable", "status %#lx, %lu handles, events %#lx",
               (unsigned long) p.iosb.Status, p.info.NumberOfHandles,
               p.info.Handles[0].Events);
    else
        ok("readable");
    recv(s, &c, 1, 0);

    st = poll_start(&p, s, AFD_POLL_SEND);
    if (st != STATUS_PENDING && st != STATUS_SUCCESS)
        not_ok("writable", "poll returned %#lx", (unsigned long) st);
    else if (!poll_wait(&p, 2000))
        not_ok("writable", "no completion on the IOCP");
    else if (!(p.info.Handles[0].Events & AFD_POLL_SEND))
        not_ok("writable", "events %#lx", p.info.Handles[0].Events);
    else
        ok("writable");
}

static void
check_cancel(SOCKET s)
{
    IO_STATUS_BLOCK ciosb;
    struct poll p;
    NTSTATUS st;

    st = poll_start(&p, s, AFD_POLL_RECEIVE);
    if (st != STATUS_PENDING) {
        not_ok("cancel", "poll returned %#lx", (unsigned long) st);
        return;
    }
    st = nt_cancel(afd, &p.iosb, &ciosb);
    if (st != STATUS_SUCCESS && st != STATUS_NOT_FOUND)
        not_ok("cancel", "NtCancelIoFileEx: %#lx", (unsigned long) st);
    else if (!poll_wait(&p, 2000))
        not_ok("cancel", "no completion for the cancelled poll");
    else if (p.iosb.Status != STATUS_CANCELLED)
        not_ok("cancel", "status %#lx, not STATUS_CANCELLED",
               (unsigned long) p.iosb.Status);
    else
        ok("cancel");
}

static void
check_hangup(SOCKET s, SOCKET peer)
{
    struct poll p;
    NTSTATUS st;

    st = poll_start(&p, s, AFD_POLL_RECEIVE | AFD_POLL_DISCONNECT
                           | AFD_POLL_ABORT);
    closesocket(peer);
    if (st != STATUS_PENDING && st != STATUS_SUCCESS)
        not_ok("hangup", "poll returned %#lx", (unsigned long) st);
    else if (!poll_wait(&p, 2000))
        not_ok("hangup", "no completion within 2 s of the peer's close");
    else if (!(p.info.Handles[0].Events
               & (AFD_POLL_DISCONNECT | AFD_POLL_ABORT)))
        not_ok("hangup", "events %#lx: no DISCONNECT or ABORT",
               p.info.Handles[0].Events);
    else
        ok("hangup");
}

static void
check_accept(SOCKET listener)
{
    struct sockaddr_in sin;
    int len = sizeof(sin);
    struct poll p;
    NTSTATUS st;
    SOCKET c;

    getsockname(listener, (struct sockaddr *) &sin, &len);
    st = poll_start(&p, base_handle(listener), AFD_POLL_ACCEPT);
    c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    connect(c, (struct sockaddr *) &sin, sizeof(sin));
    if (st != STATUS_PENDING && st != STATUS_SUCCESS)
        not_ok("accept", "poll returned %#lx", (unsigned long) st);
    else if (!poll_wait(&p, 2000))
        not_ok("accept", "no completion within 2 s of a connect");
    else if (!(p.info.Handles[0].Events & AFD_POLL_ACCEPT))
        not_ok("accept", "events %#lx", p.info.Handles[0].Events);
    else
        ok("accept");
    closesocket(c);
}

int
main(void)
{
    WSADATA wd;
    SOCKET s, peer, base, listener;

    setvbuf(stdout, NULL, _IONBF, 0);
    WSAStartup(MAKEWORD(2, 2), &wd);
    if (load_ntdll() != 0) {
        not_ok("open", "ntdll lacks NtCreateFile, NtDeviceIoControlFile or "
               "NtCancelIoFileEx");
        return 1;
    }
    iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (open_afd() != 0)
        return 1;
    tcp_pair(&s, &peer, &listener);
    base = base_handle(s);
    if (base == INVALID_SOCKET) {
        not_ok("base-handle", "WSAIoctl(SIO_BASE_HANDLE): error %d",
               WSAGetLastError());
        base = s;
    } else {
        ok("base-handle");
    }
    check_readiness(base, peer);
    check_cancel(base);
    check_hangup(base, peer);
    check_accept(listener);
    return failures ? 1 : 0;
}
