/*
 * ringplug core: what the engine asks of the OS besides its kernel I/O
 * interface, on POSIX (Linux).  A Windows engine brings its own.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "engine.h"

int
rp_os_dup(rp_socket_t s, rp_socket_t *out)
{
    int  fd;

    fd = fcntl(s, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    *out = fd;
    return 0;
}

void
rp_os_close(rp_socket_t s)
{
    close(s);
}

/*
 * How far the peer has got: TCP's count of acknowledged bytes, or for other
 * stream sockets the bytes still queued.  A send with MSG_WAITALL completes
 * only when all of it is out, so completions alone cannot show a slow but
 * steady reader.
 */
uint64_t
rp_os_peer_progress(rp_socket_t s)
{
    struct tcp_info  ti;
    socklen_t        len = sizeof(ti);
    int              outq = 0;

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0
        && len >= offsetof(struct tcp_info, tcpi_bytes_acked)
                  + sizeof(ti.tcpi_bytes_acked))
    {
        return ti.tcpi_bytes_acked;
    }
    if (ioctl(s, SIOCOUTQ, &outq) == 0) {
        return (uint64_t) outq;
    }
    return 0;
}

uint64_t
rp_os_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}
