/*
 * ringplug core, Windows: the Registered I/O (RIO) ABI.
 *
 * Winsock's RIO extension (Windows 8 / Server 2012 and later) is reached
 * through a function table: WSAIoctl(SIO_GET_MULTIPLE_EXTENSION_FUNCTION_
 * POINTER) with WSAID_MULTIPLE_RIO fills a RIO_EXTENSION_FUNCTION_TABLE.
 * The Windows SDK declares the table in mswsock.h and its types in
 * mswsockdef.h; mingw-w64 10.0 (Debian 12) declares only
 * WSA_FLAG_REGISTERED_IO.  This header declares the rest from Microsoft's
 * documented ABI (the SDK's mswsock.h/mswsockdef.h as published in
 * microsoft/win32metadata, and the RIO pages of the Win32 API reference),
 * the way libevent declares AcceptEx for old headers.
 *
 * Each group is declared only where the system headers lack it, keyed on a
 * macro the SDK defines in the same group:
 *   RIO_INVALID_CQ     -> the types of mswsockdef.h (RIO_BUFFERID, RIO_CQ,
 *                         RIO_RQ, RIORESULT, RIO_BUF, RIO_MSG_*, RIO_INVALID_*,
 *                         RIO_MAX_CQ_SIZE, RIO_CORRUPT_CQ)
 *   WSAID_MULTIPLE_RIO -> the function types, RIO_NOTIFICATION_COMPLETION
 *                         and RIO_EXTENSION_FUNCTION_TABLE of mswsock.h
 * so it compiles with mingw-w64's headers and with the SDK's alike, and the
 * size checks at the end hold for whichever declarations won.
 *
 * Only declarations: no function here, nothing to link.
 */

#ifndef RP_WIN_RIO_H
#define RP_WIN_RIO_H

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ws2def.h: the ioctl that returns a table of extension functions. */
#ifndef SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER
#define SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER  _WSAIORW(IOC_WS2, 36)
#endif

/* winsock2.h: WSASocket() flag for sockets that take a request queue. */
#ifndef WSA_FLAG_REGISTERED_IO
#define WSA_FLAG_REGISTERED_IO  0x100
#endif

/* mswsockdef.h */
#ifndef RIO_INVALID_CQ

typedef struct RIO_BUFFERID_t *RIO_BUFFERID, **PRIO_BUFFERID;
typedef struct RIO_CQ_t *RIO_CQ, **PRIO_CQ;
typedef struct RIO_RQ_t *RIO_RQ, **PRIO_RQ;

typedef struct _RIORESULT {
    LONG      Status;              /* 0 or a Winsock error code */
    ULONG     BytesTransferred;
    ULONGLONG SocketContext;       /* RIOCreateRequestQueue's SocketContext */
    ULONGLONG RequestContext;      /* the request's RequestContext */
} RIORESULT, *PRIORESULT;

/* A slice of a registered buffer. */
typedef struct _RIO_BUF {
    RIO_BUFFERID BufferId;
    ULONG        Offset;
    ULONG        Length;
} RIO_BUF, *PRIO_BUF;

#define RIO_MSG_DONT_NOTIFY    0x00000001
#define RIO_MSG_DEFER          0x00000002
#define RIO_MSG_WAITALL        0x00000004
#define RIO_MSG_COMMIT_ONLY    0x00000008

#define RIO_INVALID_BUFFERID   ((RIO_BUFFERID)(ULONG_PTR)0xFFFFFFFF)
#define RIO_INVALID_CQ         ((RIO_CQ)0)
#define RIO_INVALID_RQ         ((RIO_RQ)0)

#define RIO_MAX_CQ_SIZE        0x8000000
#define RIO_CORRUPT_CQ         0xFFFFFFFF

#endif /* RIO_INVALID_CQ */

/* mswsock.h */
#ifndef WSAID_MULTIPLE_RIO

typedef BOOL (PASCAL *LPFN_RIORECEIVE)(RIO_RQ SocketQueue, PRIO_BUF pData,
    ULONG DataBufferCount, DWORD Flags, PVOID RequestContext);

typedef int (PASCAL *LPFN_RIORECEIVEEX)(RIO_RQ SocketQueue, PRIO_BUF pData,
    ULONG DataBufferCount, PRIO_BUF pLocalAddress, PRIO_BUF pRemoteAddress,
    PRIO_BUF pControlContext, PRIO_BUF pFlags, DWORD Flags,
    PVOID RequestContext);

typedef BOOL (PASCAL *LPFN_RIOSEND)(RIO_RQ SocketQueue, PRIO_BUF pData,
    ULONG DataBufferCount, DWORD Flags, PVOID RequestContext);

typedef BOOL (PASCAL *LPFN_RIOSENDEX)(RIO_RQ SocketQueue, PRIO_BUF pData,
    ULONG DataBufferCount, PRIO_BUF pLocalAddress, PRIO_BUF pRemoteAddress,
    PRIO_BUF pControlContext, PRIO_BUF pFlags, DWORD Flags,
    PVOID RequestContext);

typedef VOID (PASCAL *LPFN_RIOCLOSECOMPLETIONQUEUE)(RIO_CQ CQ);

typedef enum _RIO_NOTIFICATION_COMPLETION_TYPE {
    RIO_EVENT_COMPLETION = 1,
    RIO_IOCP_COMPLETION  = 2,
} RIO_NOTIFICATION_COMPLETION_TYPE, *PRIO_NOTIFICATION_COMPLETION_TYPE;

typedef struct _RIO_NOTIFICATION_COMPLETION {
    RIO_NOTIFICATION_COMPLETION_TYPE Type;
    union {
        struct {
            HANDLE EventHandle;
            BOOL   NotifyReset;
        } Event;
        struct {
            HANDLE IocpHandle;
            PVOID  CompletionKey;
            PVOID  Overlapped;     /* must not be NULL */
        } Iocp;
    };
} RIO_NOTIFICATION_COMPLETION, *PRIO_NOTIFICATION_COMPLETION;

typedef RIO_CQ (PASCAL *LPFN_RIOCREATECOMPLETIONQUEUE)(DWORD QueueSize,
    PRIO_NOTIFICATION_COMPLETION NotificationCompletion);

typedef RIO_RQ (PASCAL *LPFN_RIOCREATEREQUESTQUEUE)(SOCKET Socket,
    ULONG MaxOutstandingReceive, ULONG MaxReceiveDataBuffers,
    ULONG MaxOutstandingSend, ULONG MaxSendDataBuffers, RIO_CQ ReceiveCQ,
    RIO_CQ SendCQ, PVOID SocketContext);

typedef ULONG (PASCAL *LPFN_RIODEQUEUECOMPLETION)(RIO_CQ CQ,
    PRIORESULT Array, ULONG ArraySize);

typedef VOID (PASCAL *LPFN_RIODEREGISTERBUFFER)(RIO_BUFFERID BufferId);

typedef INT (PASCAL *LPFN_RIONOTIFY)(RIO_CQ CQ);

typedef RIO_BUFFERID (PASCAL *LPFN_RIOREGISTERBUFFER)(PCHAR DataBuffer,
    DWORD DataLength);

typedef BOOL (PASCAL *LPFN_RIORESIZECOMPLETIONQUEUE)(RIO_CQ CQ,
    DWORD QueueSize);

typedef BOOL (PASCAL *LPFN_RIORESIZEREQUESTQUEUE)(RIO_RQ RQ,
    DWORD MaxOutstandingReceive, DWORD MaxOutstandingSend);

typedef struct _RIO_EXTENSION_FUNCTION_TABLE {
    DWORD                          cbSize;
    LPFN_RIORECEIVE                RIOReceive;
    LPFN_RIORECEIVEEX              RIOReceiveEx;
    LPFN_RIOSEND                   RIOSend;
    LPFN_RIOSENDEX                 RIOSendEx;
    LPFN_RIOCLOSECOMPLETIONQUEUE   RIOCloseCompletionQueue;
    LPFN_RIOCREATECOMPLETIONQUEUE  RIOCreateCompletionQueue;
    LPFN_RIOCREATEREQUESTQUEUE     RIOCreateRequestQueue;
    LPFN_RIODEQUEUECOMPLETION      RIODequeueCompletion;
    LPFN_RIODEREGISTERBUFFER       RIODeregisterBuffer;
    LPFN_RIONOTIFY                 RIONotify;
    LPFN_RIOREGISTERBUFFER         RIORegisterBuffer;
    LPFN_RIORESIZECOMPLETIONQUEUE  RIOResizeCompletionQueue;
    LPFN_RIORESIZEREQUESTQUEUE     RIOResizeRequestQueue;
} RIO_EXTENSION_FUNCTION_TABLE, *PRIO_EXTENSION_FUNCTION_TABLE;

/* 8509e081-96dd-4005-b165-9e2ee8c79e3f */
#define WSAID_MULTIPLE_RIO \
    {0x8509e081, 0x96dd, 0x4005, {0xb1, 0x65, 0x9e, 0x2e, 0xe8, 0xc7, 0x9e, 0x3f}}

#endif /* WSAID_MULTIPLE_RIO */

/*
 * The layout the kernel and mswsock.dll expect, checked against whichever
 * declarations are in force (ours or the SDK's).  x64 only: the engine is
 * built for 64-bit Windows.
 */
#if defined(_WIN64) && !defined(__cplusplus)
_Static_assert(sizeof(RIO_BUF) == 16, "RIO_BUF is 16 bytes on x64");
_Static_assert(offsetof(RIO_BUF, Offset) == 8, "RIO_BUF.Offset at 8");
_Static_assert(sizeof(RIORESULT) == 24, "RIORESULT is 24 bytes");
_Static_assert(offsetof(RIORESULT, SocketContext) == 8,
               "RIORESULT.SocketContext at 8");
_Static_assert(sizeof(RIO_NOTIFICATION_COMPLETION) == 32,
               "RIO_NOTIFICATION_COMPLETION is 32 bytes on x64");
_Static_assert(offsetof(RIO_NOTIFICATION_COMPLETION, Iocp.Overlapped) == 24,
               "RIO_NOTIFICATION_COMPLETION.Iocp.Overlapped at 24");
_Static_assert(sizeof(RIO_EXTENSION_FUNCTION_TABLE) == 112,
               "RIO_EXTENSION_FUNCTION_TABLE is 112 bytes on x64");
_Static_assert(offsetof(RIO_EXTENSION_FUNCTION_TABLE, RIOResizeRequestQueue)
               == 104, "RIOResizeRequestQueue is the table's last entry");
_Static_assert(SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER == 0xC8000024,
               "SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER");
#endif

#ifdef __cplusplus
}
#endif

#endif /* RP_WIN_RIO_H */
