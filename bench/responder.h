/*
 * What the two minimal responders (floor_epoll.c, ceiling_uring.c) share:
 * the fixed keep-alive response, a request counter that survives requests
 * split across reads, and the loopback listener.  Header-only so each
 * responder stays one self-contained program.
 */
#ifndef RINGPLUG_BENCH_RESPONDER_H
#define RINGPLUG_BENCH_RESPONDER_H

#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESP_TEXT "HTTP/1.1 200 OK\r\n" \
                  "Server: ringplug-bench\r\n" \
                  "Content-Type: text/plain\r\n" \
                  "Content-Length: 2\r\n" \
                  "\r\n" \
                  "ok"

/*
 * resp_batch holds RESP_BATCH back-to-back copies of the response, so the
 * bytes owed for any number of pipelined requests can be sent from it:
 * byte k of the response stream is resp_batch[k % resp_len], and a send
 * may run from any offset to the end of the batch.
 */
#define RESP_BATCH 64

static const size_t resp_len = sizeof(RESP_TEXT) - 1;
static char         resp_batch[RESP_BATCH * (sizeof(RESP_TEXT) - 1)];
static const size_t resp_batch_len = sizeof(resp_batch);

static inline void
resp_init(void)
{
    for (size_t i = 0; i < RESP_BATCH; i++) {
        memcpy(resp_batch + i * resp_len, RESP_TEXT, resp_len);
    }
}

/*
 * Count the requests completed in buf: each ends at "\r\n\r\n".  *match
 * carries how much of the terminator the previous read ended with.
 */
static inline size_t
count_requests(unsigned *match, const char *buf, size_t len)
{
    static const char   term[4] = { '\r', '\n', '\r', '\n' };
    unsigned            m = *match;
    size_t              n = 0;

    for (size_t i = 0; i < len; i++) {
        if (buf[i] == term[m]) {
            if (++m == 4) {
                n++;
                m = 0;
            }
        } else {
            m = buf[i] == '\r' ? 1 : 0;
        }
    }
    *match = m;
    return n;
}

/*
 * A listening TCP socket on 127.0.0.1:port (port 0: the kernel picks);
 * the port it got goes to *bound.  Returns the fd, or -1.
 */
static inline int
listen_loopback(int port, int *bound)
{
    struct sockaddr_in  sin = { .sin_family = AF_INET };
    socklen_t           len = sizeof(sin);
    int                 one = 1;
    int                 fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((unsigned short) port);
    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0
        || listen(fd, 4096) < 0
        || getsockname(fd, (struct sockaddr *) &sin, &len) < 0)
    {
        close(fd);
        return -1;
    }
    *bound = ntohs(sin.sin_port);
    return fd;
}

#endif
