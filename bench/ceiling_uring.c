/*
 * ceiling_uring: the do-nothing HTTP/1.1 responder on io_uring, the best a
 * host could hope for on this kernel.
 *
 * Multishot accept; per connection one multishot RECV selecting from a
 * provided buffer ring (registered with io_uring_register_buf_ring and
 * mmap'ed here: liburing 2.3 has no io_uring_setup_buf_ring); every buffer
 * goes back to the ring in the pass that consumed it.  Responses are SENDs
 * from one static buffer of back-to-back responses, one in flight per
 * socket so bytes stay in order.  Everything queued in a pass goes to the
 * kernel in the next io_uring_submit_and_wait_timeout, the only enter of a
 * pass unless the SQ fills.
 *
 * With "echo" as the second argument it is the do-nothing echo server
 * instead, the ceiling of the ping-pong rows: received bytes are copied to
 * the connection's echo buffer (ECHO_MAX; a connection that overruns it is
 * closed, which ping-pong never does) and sent from there, one SEND in
 * flight.
 *
 * Usage: ceiling_uring [port [echo]]   (port 0 or none: the kernel picks one)
 * Prints "port=N method=io_uring flags=..." once listening; on SIGTERM or
 * SIGINT prints "passes=N cqes=N enobufs=N accepts=N" on stderr and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "responder.h"

#define SQ_ENTRIES  1024
#define CQ_ENTRIES  8192
#define NBUFS       2048        /* power of two */
#define BUF_SIZE    4096
#define BGID        1
#define MAX_FDS     65536
#define ECHO_MAX    262144

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

struct conn {
    uint32_t    gen;
    unsigned    match;
    size_t      owed;
    size_t      sent;
    char       *echo;       /* echo mode: bytes [0, owed) to send back */
    unsigned    open:1;
    unsigned    recv_armed:1;
    unsigned    sending:1;
    unsigned    closing:1;
};

static volatile sig_atomic_t     stop;
static struct io_uring           ring;
static struct io_uring_buf_ring *br;
static char                     *bufs;
static int                       buf_returned;
static struct conn              *conns;
static uint32_t                  next_gen;
static int                       lfd;
static int                       echo_mode;
static unsigned long             n_passes, n_cqes, n_enobufs, n_accepts;

static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

static inline uint64_t
mkdata(int op, uint32_t gen, int fd)
{
    return (uint64_t) op << 56 | (uint64_t) (gen & 0xffffff) << 32
           | (uint32_t) fd;
}

static struct io_uring_sqe *
get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

    if (sqe == NULL) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void
arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, mkdata(OP_ACCEPT, 0, lfd));
}

static void
arm_recv(int fd, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, mkdata(OP_RECV, c->gen, fd));
    c->recv_armed = 1;
}

static void
queue_send(int fd, struct conn *c)
{
    struct io_uring_sqe *sqe;
    size_t               off = c->sent % resp_len;
    size_t               n = resp_batch_len - off;

    if (c->sending || c->owed == 0 || c->closing) {
        return;
    }
    if (n > c->owed) {
        n = c->owed;
    }
    sqe = get_sqe();
    if (c->echo != NULL) {
        io_uring_prep_send(sqe, fd, c->echo, c->owed, MSG_NOSIGNAL);
    } else {
        io_uring_prep_send(sqe, fd, resp_batch + off, n, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, mkdata(OP_SEND, c->gen, fd));
    c->sending = 1;
}

/*
 * Close once no op holds the socket.  With one still in flight, shutdown()
 * makes the multishot RECV end with 0 and the SEND fail, and the last of
 * their CQEs comes back here.
 */
static void
conn_close(int fd, struct conn *c)
{
    if (c->recv_armed || c->sending) {
        if (!c->closing) {
            c->closing = 1;
            shutdown(fd, SHUT_RDWR);
        }
        return;
    }
    c->open = 0;
    close(fd);
    free(c->echo);
    c->echo = NULL;
}

static void
buf_return(unsigned bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t) bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(NBUFS), buf_returned++);
}

static void
on_accept(struct io_uring_cqe *cqe)
{
    int one = 1;
    int fd = cqe->res;

    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        arm_accept();
    }
    if (fd < 0) {
        return;
    }
    n_accepts++;
    if (fd >= MAX_FDS) {
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&conns[fd], 0, sizeof(conns[fd]));
    if (echo_mode && (conns[fd].echo = malloc(ECHO_MAX)) == NULL) {
        close(fd);
        return;
    }
    conns[fd].gen = ++next_gen;
    conns[fd].open = 1;
    arm_recv(fd, &conns[fd]);
}

static void
on_recv(struct io_uring_cqe *cqe, int fd, struct conn *c)
{
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

        if (cqe->res > 0 && !c->closing && c->echo != NULL) {
            if (c->owed + (size_t) cqe->res > ECHO_MAX) {
                fprintf(stderr, "ceiling_uring: fd %d overran its echo "
                        "buffer, closing it\n", fd);
                buf_return(bid);
                conn_close(fd, c);
                return;
            }
            memcpy(c->echo + c->owed, bufs + (size_t) bid * BUF_SIZE,
                   (size_t) cqe->res);
            c->owed += (size_t) cqe->res;

        } else if (cqe->res > 0 && !c->closing) {
            c->owed += resp_len * count_requests(&c->match,
                                                 bufs + (size_t) bid * BUF_SIZE,
                                                 (size_t) cqe->res);
        }
        buf_return(bid);
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = 0;
    }
    if (cqe->res == -ENOBUFS) {
        n_enobufs++;
    }
    if (c->closing || cqe->res == 0
        || (cqe->res < 0 && cqe->res != -ENOBUFS))
    {
        conn_close(fd, c);
        return;
    }
    if (!c->recv_armed) {
        arm_recv(fd, c);
    }
    queue_send(fd, c);
}

static void
on_send(struct io_uring_cqe *cqe, int fd, struct conn *c)
{
    c->sending = 0;
    if (cqe->res < 0 || c->closing) {
        conn_close(fd, c);
        return;
    }
    c->owed -= (size_t) cqe->res;
    c->sent += (size_t) cqe->res;
    if (c->echo != NULL && c->owed > 0) {
        /* what arrived while the send was in flight moves to the front */
        memmove(c->echo, c->echo + cqe->res, c->owed);
    }
    queue_send(fd, c);
}

static void
handle(struct io_uring_cqe *cqe)
{
    uint64_t     d = io_uring_cqe_get_data64(cqe);
    int          op = (int) (d >> 56);
    uint32_t     gen = (uint32_t) (d >> 32) & 0xffffff;
    int          fd = (int) (uint32_t) d;
    struct conn *c;

    if (op == OP_ACCEPT) {
        on_accept(cqe);
        return;
    }
    c = &conns[fd];
    if (!c->open || (c->gen & 0xffffff) != gen) {
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            buf_return(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        }
        return;
    }
    if (op == OP_RECV) {
        on_recv(cqe, fd, c);
    } else {
        on_send(cqe, fd, c);
    }
}

static int
ring_setup(const char **how)
{
    static const struct { unsigned flags; const char *name; } tries[] = {
        { IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
          "single_issuer,defer_taskrun" },
        { IORING_SETUP_COOP_TASKRUN, "coop_taskrun" },
        { 0, "none" },
    };
    int ret = -EINVAL;

    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p = { .cq_entries = CQ_ENTRIES };

        p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
        ret = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
        if (ret == 0) {
            *how = tries[i].name;
            return 0;
        }
    }
    return ret;
}

static int
bufring_setup(void)
{
    struct io_uring_buf_reg reg = { .ring_entries = NBUFS, .bgid = BGID };
    size_t                  len = NBUFS * sizeof(struct io_uring_buf);
    int                     ret;

    br = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
              -1, 0);
    bufs = malloc((size_t) NBUFS * BUF_SIZE);
    if (br == MAP_FAILED || bufs == NULL) {
        return -ENOMEM;
    }
    reg.ring_addr = (unsigned long) (uintptr_t) br;
    ret = io_uring_register_buf_ring(&ring, &reg, 0);
    if (ret < 0) {
        return ret;
    }
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < NBUFS; i++) {
        buf_return(i);
    }
    io_uring_buf_ring_advance(br, buf_returned);
    buf_returned = 0;
    return 0;
}

int
main(int argc, char **argv)
{
    struct __kernel_timespec ts = { .tv_sec = 1 };
    struct sigaction         sa = { .sa_handler = on_signal };
    struct io_uring_cqe     *cqe;
    const char              *how = "";
    unsigned                 head, n;
    int                      port, ret;

    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    resp_init();
    echo_mode = argc > 2 && strcmp(argv[2], "echo") == 0;
    conns = calloc(MAX_FDS, sizeof(*conns));
    lfd = listen_loopback(argc > 1 ? atoi(argv[1]) : 0, &port);
    if (conns == NULL || lfd < 0) {
        perror("ceiling_uring: listen");
        return 1;
    }
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) & ~O_NONBLOCK);

    ret = ring_setup(&how);
    if (ret < 0) {
        fprintf(stderr, "ceiling_uring: io_uring_queue_init_params: %s\n",
                strerror(-ret));
        return 1;
    }
    ret = bufring_setup();
    if (ret < 0) {
        fprintf(stderr, "ceiling_uring: io_uring_register_buf_ring: %s\n",
                strerror(-ret));
        return 1;
    }
    arm_accept();

    printf("port=%d method=io_uring flags=%s\n", port, how);
    fflush(stdout);

    while (!stop) {
        ret = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR) {
            fprintf(stderr, "ceiling_uring: io_uring_submit_and_wait: %s\n",
                    strerror(-ret));
            return 1;
        }
        n_passes++;
        n = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            handle(cqe);
            n++;
        }
        io_uring_cq_advance(&ring, n);
        n_cqes += n;
        if (buf_returned > 0) {
            io_uring_buf_ring_advance(br, buf_returned);
            buf_returned = 0;
        }
    }

    fprintf(stderr, "passes=%lu cqes=%lu enobufs=%lu accepts=%lu\n",
            n_passes, n_cqes, n_enobufs, n_accepts);
    return 0;
}
