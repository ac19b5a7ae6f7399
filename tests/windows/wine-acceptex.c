/*
 * wine-acceptex: what AcceptEx does on a socket that is not listening.
 *
 * libevent's regress case iocp/listener/error makes an evconnlistener of a
 * connected socket and waits for the error callback.  On Windows AcceptEx
 * fails there; under Wine 8.0 it returns ERROR_IO_PENDING and never
 * completes, so the case hangs.  This program shows which: it prints one
 * line and exits 0 if AcceptEx failed at once or completed within 2 s, 1 if
 * it stayed pending (the Wine behaviour tests/windows/regress.sh names as
 * the reason it skips that case).
 */

#include <winsock2.h>
#include <mswsock.h>
#include <stdio.h>
#include <string.h>

int
main(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    int len = sizeof(a);
    GUID g = WSAID_ACCEPTEX;
    LPFN_ACCEPTEX acceptex;
    OVERLAPPED ov, *pov;
    SOCKET l, c, s, t;
    ULONG_PTR key;
    WSADATA wd;
    HANDLE iocp;
    DWORD n;
    char buf[2 * (sizeof(struct sockaddr_in) + 16)];
    BOOL rc;

    WSAStartup(MAKEWORD(2, 2), &wd);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    bind(l, (struct sockaddr *) &a, sizeof(a));
    listen(l, 1);
    getsockname(l, (struct sockaddr *) &a, &len);
    c = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                   WSA_FLAG_OVERLAPPED);
    connect(c, (struct sockaddr *) &a, sizeof(a));
    s = accept(l, NULL, NULL);
    if (WSAIoctl(c, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, sizeof(g),
                 &acceptex, sizeof(acceptex), &n, NULL, NULL) != 0) {
        printf("no AcceptEx: error %d\n", WSAGetLastError());
        return 2;
    }
    iocp = CreateIoCompletionPort((HANDLE) c, NULL, 0, 1);
    t = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                   WSA_FLAG_OVERLAPPED);
    memset(&ov, 0, sizeof(ov));
    rc = acceptex(c, t, buf, 0, sizeof(struct sockaddr_in) + 16,
                  sizeof(struct sockaddr_in) + 16, &n, &ov);
    if (!rc && WSAGetLastError() != ERROR_IO_PENDING) {
        printf("AcceptEx on a connected socket failed at once: error %d\n",
               WSAGetLastError());
        return 0;
    }
    if (GetQueuedCompletionStatus(iocp, &n, &key, &pov, 2000)
        || pov != NULL) {
        printf("AcceptEx on a connected socket completed: error %lu\n",
               GetLastError());
        return 0;
    }
    printf("AcceptEx on a connected socket is still pending after 2 s\n");
    closesocket(s);
    return 1;
}
