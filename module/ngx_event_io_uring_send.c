
/*
 * ringplug: completion mode's writes (io_uring_completion on).  Sends are
 * copied into the engine's ordered send queue (one send in flight per
 * socket, submitted with the pass); file buffers go out with nginx's own
 * sendfile chain once the queue is empty, or are read into the queue when
 * they are small.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_io_uring.h>

#if (NGX_IO_URING_HTTP)
#include <ngx_http.h>
#endif


/* bytes nginx may queue for sending on one socket before it sees NGX_AGAIN */
#define NGX_IO_URING_SEND_MAX  (256 * 1024)

/*
 * a chain with at most this much file data is read into the send queue;
 * more goes with nginx's sendfile: per request, pread+send cost 10% less
 * worker CPU than sendfile for 4 and 8 KiB files, 10% more at 16 KiB and
 * 30% more at 32 KiB (bench/README.md, "File buffers")
 */
#define NGX_IO_URING_PREAD_MAX  (8 * 1024)

/*
 * a c->buffered bit (NGX_LOWLEVEL_BUFFERED, beside NGX_SSL_BUFFERED and
 * NGX_HTTP_V2_BUFFERED): set while the send queue holds bytes, so nginx
 * finishes a request, half-closes (lingering close, proxy_half_close) or
 * shuts down only once they are in the socket, as with SSL's own buffer
 */
#define NGX_IO_URING_BUFFERED  0x08


static ngx_chain_t *ngx_io_uring_os_send_chain(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, ngx_chain_t *in, off_t limit);
static ngx_chain_t *ngx_io_uring_send_queue(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, ngx_chain_t *in, off_t limit, ngx_uint_t pread,
    off_t *sent);
static u_char *ngx_io_uring_pread(ngx_connection_t *c, ngx_buf_t *b,
    off_t size, size_t used);
static void ngx_io_uring_send_enter(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_int_t ngx_io_uring_send_failed(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_uint_t ngx_io_uring_send_stale(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static void ngx_io_uring_buffered(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_uint_t ngx_io_uring_direct(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_uint_t ngx_io_uring_preadable(ngx_chain_t *in);


static u_char  pread_buf[NGX_IO_URING_PREAD_MAX];


ssize_t
ngx_io_uring_send(ngx_connection_t *c, u_char *buf, size_t size)
{
    int                 rc;
    size_t              room;
    ssize_t             n;
    rp_iovec_t          iov;
    ngx_event_t        *wev;
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_conn(c);

    if (fe == NULL) {
        return ngx_os_io.send(c, buf, size);
    }

    ngx_io_uring_send_enter(c, fe);

    wev = c->write;

    if (rp_send_error(fe->rf)) {
        return ngx_io_uring_send_failed(c, fe);
    }

    if (ngx_io_uring_send_stale(c, fe)) {
        return NGX_ERROR;
    }

    /*
     * A connection's first bytes by c->send() may be protocol bits written
     * once ahead of a stream (the PROXY protocol header before proxy_ssl's
     * handshake): what comes next may be OpenSSL writing to the socket
     * itself, so until bytes have gone out they go straight out, as on
     * epoll, and keep their place ahead of it.  After that (the stream
     * proxy's data) they are queued.
     */

    if (!fe->sent && rp_send_pending(fe->rf) == 0 && !fe->wait_drain) {
        n = ngx_os_io.send(c, buf, size);

        if (n > 0) {
            fe->sent = 1;
        }

        if (n != NGX_ERROR && !wev->ready && !fe->os_wait) {
            fe->os_wait = 1;
            (void) ngx_io_uring_update(fe, c, c->log);
        }

        return n;
    }

    room = NGX_IO_URING_SEND_MAX - ngx_min(rp_send_pending(fe->rf),
                                           NGX_IO_URING_SEND_MAX);

    if (room == 0 || fe->wait_drain) {
        fe->wait_space = 1;
        wev->ready = 0;
        return NGX_AGAIN;
    }

    size = ngx_min(size, room);

    iov.iov_base = buf;
    iov.iov_len = size;

    rc = rp_send(ngx_io_uring_engine, fe->rf, &iov, 1, RP_SEND_COPY,
                 NULL, NULL);

    if (rc < 0) {
        wev->error = 1;
        return ngx_connection_error(c, -rc, "rp_send() failed");
    }

    ngx_io_uring_buffered(c, fe);

    c->sent += size;

    if (c->sent) {
        fe->sent = 1;
    }

    return size;
}


/*
 * Memory buffers are copied into the send queue up to its cap; the queue
 * being full is NGX_AGAIN for nginx (wev->ready = 0, the chain returned
 * where it stopped) and the drain below half posts the write event.  File
 * buffers keep their place behind the queue: with the queue empty nginx's
 * own sendfile chain sends them now, else they wait for it to drain.
 */

ngx_chain_t *
ngx_io_uring_send_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    off_t               send;
    size_t              pending, room;
    ngx_uint_t          pread;
    ngx_chain_t        *cl;
    ngx_event_t        *wev;
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_conn(c);

    if (fe == NULL) {
        return ngx_os_io.send_chain(c, in, limit);
    }

    ngx_io_uring_send_enter(c, fe);

    wev = c->write;

    if (rp_send_error(fe->rf)) {
        (void) ngx_io_uring_send_failed(c, fe);
        return NGX_CHAIN_ERROR;
    }

    if (ngx_io_uring_send_stale(c, fe)) {
        return NGX_CHAIN_ERROR;
    }

    pending = rp_send_pending(fe->rf);

    pread = ngx_io_uring_preadable(in);

    if (pending == 0) {
        c->buffered &= ~NGX_IO_URING_BUFFERED;

        if (fe->on_drained) {
            ngx_queue_remove(&fe->drained);
            fe->on_drained = 0;
        }

        for (cl = in; cl; cl = cl->next) {
            if (!ngx_buf_special(cl->buf) && !ngx_buf_in_memory(cl->buf)) {
                break;
            }
        }

        if ((cl && !pread) || ngx_io_uring_direct(c, fe)) {
            return ngx_io_uring_os_send_chain(c, fe, in, limit);
        }
    }

    if (!wev->ready) {
        return in;
    }

    if (limit == 0 || limit > (off_t) (NGX_MAX_SIZE_T_VALUE - ngx_pagesize)) {
        limit = NGX_MAX_SIZE_T_VALUE - ngx_pagesize;
    }

    room = NGX_IO_URING_SEND_MAX - ngx_min(pending, NGX_IO_URING_SEND_MAX);
    limit = ngx_min(limit, (off_t) room);

    cl = ngx_io_uring_send_queue(c, fe, in, limit, pread, &send);

    if (cl == NGX_CHAIN_ERROR) {
        return NGX_CHAIN_ERROR;
    }

    if (cl && !fe->wait_drain) {
        for ( /* void */ ; cl && ngx_buf_special(cl->buf); cl = cl->next) {
            /* void */
        }

        if (cl) {
            fe->wait_space = 1;
        }
    }

    /*
     * a call that brings nothing new while bytes are queued is a flush, as
     * nginx makes one for SSL's buffer: the socket is not writable until
     * the queue is in it, so a caller that goes on to shutdown() (HTTP/2's
     * lingering close, after its GOAWAY) waits for the drain first
     */

    if (send == 0 && cl == NULL && rp_send_pending(fe->rf)) {
        fe->wait_drain = 1;
    }

    if (fe->wait_space || fe->wait_drain) {
        wev->ready = 0;
    }

    ngx_io_uring_buffered(c, fe);

    c->sent += send;

    if (c->sent) {
        fe->sent = 1;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "io_uring send_chain: fd:%d %O queued, %uz pending%s",
                   c->fd, send, rp_send_pending(fe->rf),
                   wev->ready ? "" : ", waiting");

    return ngx_chain_update_sent(in, send);
}


/*
 * A file in the chain and nothing queued: nginx's sendfile; an HTTP/2
 * connection's writes: nginx's writev.  When the socket is full, a poll OUT
 * waits for room.
 */

static ngx_chain_t *
ngx_io_uring_os_send_chain(ngx_connection_t *c, ngx_io_uring_fd_t *fe,
    ngx_chain_t *in, off_t limit)
{
    if (!fe->direct) {
        ngx_io_uring_counters.os_sends++;
    }

    in = ngx_os_io.send_chain(c, in, limit);

    if (c->sent) {
        fe->sent = 1;
    }

    if (in != NGX_CHAIN_ERROR && !c->write->ready && !fe->os_wait) {
        fe->os_wait = 1;
        (void) ngx_io_uring_update(fe, c, c->log);
    }

    return in;
}


/*
 * Copies the chain into the send queue, up to limit: memory buffers, and
 * file buffers when ngx_io_uring_preadable() found them small; a larger
 * file waits for the queue to drain.  Returns the link where it stopped,
 * with the bytes queued in *sent, or NGX_CHAIN_ERROR.
 */

static ngx_chain_t *
ngx_io_uring_send_queue(ngx_connection_t *c, ngx_io_uring_fd_t *fe,
    ngx_chain_t *in, off_t limit, ngx_uint_t pread, off_t *sent)
{
    int            rc, niov;
    off_t          send, size;
    size_t         used;
    ngx_buf_t     *b;
    ngx_chain_t   *cl;
    rp_iovec_t     iovs[NGX_IOVS_PREALLOCATE];

    send = 0;
    niov = 0;
    used = 0;

    for (cl = in; cl && send < limit; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b)) {
            continue;
        }

        if (!ngx_buf_in_memory(b) && !pread) {
            fe->wait_drain = 1;
            break;
        }

        size = ngx_buf_in_memory(b) ? b->last - b->pos
                                    : b->file_last - b->file_pos;
        size = ngx_min(size, limit - send);

        if (size == 0) {
            continue;
        }

        if (niov == NGX_IOVS_PREALLOCATE) {
            rc = rp_send(ngx_io_uring_engine, fe->rf, iovs, niov,
                         RP_SEND_COPY, NULL, NULL);
            if (rc < 0) {
                goto failed;
            }

            niov = 0;
        }

        if (ngx_buf_in_memory(b)) {
            iovs[niov].iov_base = b->pos;

        } else {
            iovs[niov].iov_base = ngx_io_uring_pread(c, b, size, used);

            if (iovs[niov].iov_base == NULL) {
                return NGX_CHAIN_ERROR;
            }

            used += (size_t) size;
        }

        iovs[niov].iov_len = (size_t) size;
        niov++;

        send += size;
    }

    if (niov) {
        rc = rp_send(ngx_io_uring_engine, fe->rf, iovs, niov,
                     RP_SEND_COPY, NULL, NULL);
        if (rc < 0) {
            goto failed;
        }
    }

    *sent = send;

    return cl;

failed:

    c->write->error = 1;
    (void) ngx_connection_error(c, -rc, "rp_send() failed");

    return NGX_CHAIN_ERROR;
}


/*
 * A small file: one pread() into the queue costs less than sendfile() with
 * TCP_CORK around it, and keeps its place.  The bytes go to pread_buf at
 * used, where the send_chain call's rp_send() copies them from.
 */

static u_char *
ngx_io_uring_pread(ngx_connection_t *c, ngx_buf_t *b, off_t size,
    size_t used)
{
    u_char   *p;
    ssize_t   n;

    p = pread_buf + used;

    n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

    if (n == NGX_ERROR) {
        return NULL;
    }

    if (n != size) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "file \"%s\" was truncated", b->file->name.data);
        return NULL;
    }

    ngx_io_uring_counters.preads++;

    return p;
}


static void
ngx_io_uring_send_enter(ngx_connection_t *c, ngx_io_uring_fd_t *fe)
{
    if (fe->send_mode) {
        return;
    }

    fe->send_mode = 1;
    ngx_io_uring_counters.send_conns++;

    /* a poll OUT nginx asked for now only serves its own sendfile */

    if (c->write->active) {
        (void) ngx_io_uring_update(fe, c, c->log);
    }
}


static ngx_int_t
ngx_io_uring_send_failed(ngx_connection_t *c, ngx_io_uring_fd_t *fe)
{
    ngx_err_t  err;

    err = -rp_send_error(fe->rf);

    c->write->error = 1;
    c->buffered &= ~NGX_IO_URING_BUFFERED;

    ngx_set_socket_errno(err);

    return ngx_connection_error(c, err, "send() failed");
}


/*
 * The first send on a connection taken from the upstream keepalive cache
 * (ngx_http_upstream_get_keepalive_peer() sets c->sent to 0) that already
 * has input: it cannot answer a request not sent yet.  The cache handed it
 * out before ngx_io_uring_idle_close() saw it idle (a subrequest's
 * connection taken by its parent within the same handler); with epoll the
 * keepalive close handler's MSG_PEEK would have closed it.  The send fails
 * with nothing sent, so nginx closes the connection and tries the request
 * again on another one (a cached connection's error gives the try back).
 * Logged at info: epoll's error log shows nothing for such an upstream.
 */

static ngx_uint_t
ngx_io_uring_send_stale(ngx_connection_t *c, ngx_io_uring_fd_t *fe)
{
    int        status;
    size_t     n;
    ngx_err_t  err;

    if (c->sent || !fe->sent || !fe->recv_mode || c->listening != NULL
        || !ngx_io_uring_unread(fe))
    {
        return 0;
    }

    n = fe->spill_last - fe->spill_pos + rp_recv_queued(fe->rf);
    status = rp_recv_status(fe->rf);
    err = (status < 0) ? -status : 0;

    ngx_io_uring_counters.stale_reuses++;

    ngx_log_error(NGX_LOG_INFO, c->log, err,
                  "kept-alive upstream connection has %uz unread bytes%s, "
                  "not sending the request on it",
                  n, (status == 1) ? " and EOF" : "");

    c->write->error = 1;

    return 1;
}


/*
 * While bytes are queued, c->buffered tells nginx not to finalize, half-close
 * or shut down the connection yet.  Not on an HTTP upstream connection
 * (c->data is the request, which starts with its signature): nginx never
 * shuts one down, and ngx_chain_writer() takes c->buffered for a request
 * not sent yet (no keepalive for grpc after a control frame, no
 * request_body_sent), where epoll's socket would have taken the bytes.
 */

static void
ngx_io_uring_buffered(ngx_connection_t *c, ngx_io_uring_fd_t *fe)
{
    if (rp_send_pending(fe->rf) == 0) {
        return;
    }

#if (NGX_IO_URING_HTTP)
    if (c->listening == NULL && c->data
        && ((ngx_http_request_t *) c->data)->signature == NGX_HTTP_MODULE)
    {
        return;
    }
#endif

    c->buffered |= NGX_IO_URING_BUFFERED;
}


/*
 * HTTP/2 connections write with nginx's own send_chain, straight into the
 * socket, once the queue is empty.  Their close paths (GOAWAY, then the
 * lingering close's shutdown(SHUT_WR) in ngx_http_v2_finalize_connection())
 * do not wait for c->buffered as HTTP/1 and stream do: a GOAWAY still in
 * the queue would be cut off by the FIN.  Their reads stay on the ring.
 * ngx_http_v2_init() makes c->data the HTTP/2 connection, whose first field
 * points back at c; a request or session (c->data elsewhere) starts with
 * its signature.
 */

static ngx_uint_t
ngx_io_uring_direct(ngx_connection_t *c, ngx_io_uring_fd_t *fe)
{
#if (NGX_IO_URING_HTTP)
    ngx_http_request_t        *r;
#if (NGX_HTTP_V2)
    ngx_http_v2_connection_t  *h2c;
#endif

    if (fe->direct) {
        return 1;
    }

    if (c->listening == NULL || c->data == NULL) {
        return 0;
    }

    r = c->data;

    if (r->signature == NGX_HTTP_MODULE) {

        /*
         * ngx_http_filter_finalize_request() (image_filter, xslt) replaces
         * a response mid-stream and relies on the replacement being written
         * in the same call: ngx_http_finalize_request() tears the upstream
         * down only on NGX_OK, while NGX_AGAIN leaves it running on state
         * the internal redirect reset (a NULL r->cache, a crash).  That
         * response alone goes through nginx's writev, as on epoll.
         */

        if (r->filter_finalize) {
            return 1;
        }

        return 0;
    }

#if (NGX_HTTP_V2)
    h2c = c->data;

    if (h2c->connection != c) {
        return 0;
    }

    fe->direct = 1;
    ngx_io_uring_counters.direct_conns++;

    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}


/* at most NGX_IO_URING_PREAD_MAX bytes of files, none read by threads */

static ngx_uint_t
ngx_io_uring_preadable(ngx_chain_t *in)
{
    off_t         size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b) || ngx_buf_in_memory(b)) {
            continue;
        }

#if (NGX_THREADS)
        if (b->file->thread_handler) {
            return 0;
        }
#endif

        size += b->file_last - b->file_pos;

        if (size > NGX_IO_URING_PREAD_MAX) {
            return 0;
        }
    }

    return 1;
}


/*
 * A send completed: whether nginx waits for it, for room in the queue
 * (below half the cap, as a socket buffer wakes a writer), for the queue to
 * drain (file data, c->buffered) or for an error to be reported.
 */

ngx_uint_t
ngx_io_uring_sent(ngx_io_uring_fd_t *fe, rp_fd_t *f, int res)
{
    size_t      pending;
    ngx_uint_t  drained;

    pending = rp_send_pending(f);

    drained = (pending == 0
               && (fe->wait_drain
                   || (fe->conn->buffered & NGX_IO_URING_BUFFERED)));

    /*
     * the bit goes with the send_chain call the write event leads to, as
     * SSL's does; a filter with nothing to add may not make one (gunzip,
     * for a HEAD request): the next pass clears the bit and posts the
     * write event once more
     */

    if (drained && !fe->on_drained) {
        fe->on_drained = 1;
        ngx_queue_insert_tail(&ngx_io_uring_drained_queue, &fe->drained);
    }

    if (res < 0
        || (fe->wait_space && pending <= NGX_IO_URING_SEND_MAX / 2)
        || drained)
    {
        fe->wait_space = 0;
        fe->wait_drain = 0;
        return 1;
    }

    return 0;
}


/*
 * Connections whose drained queue posted a write event in the last pass and
 * still carry the bit: nothing called send_chain since, so the bit goes
 * here and the write event is posted again for the handler to see nothing
 * buffered.  Returns whether an event was posted (the wait must not block).
 */

ngx_uint_t
ngx_io_uring_drained(void)
{
    ngx_uint_t          posted;
    ngx_queue_t        *q;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    posted = 0;

    while (!ngx_queue_empty(&ngx_io_uring_drained_queue)) {
        q = ngx_queue_head(&ngx_io_uring_drained_queue);
        fe = ngx_queue_data(q, ngx_io_uring_fd_t, drained);

        ngx_queue_remove(q);
        fe->on_drained = 0;

        c = fe->conn;

        if (fe->rf == NULL || rp_send_pending(fe->rf)
            || !(c->buffered & NGX_IO_URING_BUFFERED))
        {
            continue;
        }

        c->buffered &= ~NGX_IO_URING_BUFFERED;

        c->write->ready = 1;
        ngx_post_event(c->write, &ngx_posted_events);

        posted = 1;
    }

    return posted;
}
