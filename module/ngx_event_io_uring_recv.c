
/*
 * ringplug: completion mode's reads (io_uring_completion on).  A stream
 * socket's read side enters completion mode on the first call to recv or
 * recv_chain: that read is done synchronously as ngx_unix_recv() would,
 * then a multishot receive into the worker's provided buffers is armed;
 * nginx's later reads copy out of the per-connection queue.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_io_uring.h>


static void ngx_io_uring_recv_enter(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, ssize_t n);
static ssize_t ngx_io_uring_recv_queued(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, ngx_chain_t *chain, u_char *buf, size_t size,
    off_t limit);
static size_t ngx_io_uring_recv_copy(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, u_char *dst, size_t len);


ssize_t
ngx_io_uring_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    ssize_t             n;
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_conn(c);

    if (fe == NULL) {
        ngx_io_uring_counters.readiness++;
        return ngx_os_io.recv(c, buf, size);
    }

    if (fe->recv_mode) {
        return ngx_io_uring_recv_queued(c, fe, NULL, buf, size, 0);
    }

    /* the first read: synchronous, as epoll would do it, then the ring */

    n = ngx_os_io.recv(c, buf, size);

    ngx_io_uring_recv_enter(c, fe, n);

    return n;
}


ssize_t
ngx_io_uring_recv_chain(ngx_connection_t *c, ngx_chain_t *chain, off_t limit)
{
    ssize_t             n;
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_conn(c);

    if (fe == NULL) {
        ngx_io_uring_counters.readiness++;
        return ngx_os_io.recv_chain(c, chain, limit);
    }

    if (fe->recv_mode) {
        return ngx_io_uring_recv_queued(c, fe, chain, NULL, 0, limit);
    }

    n = ngx_os_io.recv_chain(c, chain, limit);

    ngx_io_uring_recv_enter(c, fe, n);

    return n;
}


/* after the synchronous first read: arm the multishot receive */

static void
ngx_io_uring_recv_enter(ngx_connection_t *c, ngx_io_uring_fd_t *fe, ssize_t n)
{
    int  rc;

    if (n == 0 || n == NGX_ERROR || c->read->eof || c->read->error) {
        return;
    }

    /*
     * a read that filled the buffer may have left bytes in the socket,
     * which nginx's next read gets at once with epoll (the rest of a body
     * that came with its headers): the ring takes over once a read has
     * drained the socket (ngx_unix_recv() clears rev->ready) or found it
     * empty
     */

    if (n != NGX_AGAIN && c->read->ready) {
        return;
    }

    rc = rp_recv_start(ngx_io_uring_engine, fe->rf, ngx_io_uring_recv_max);

    if (rc < 0) {
        ngx_log_error(NGX_LOG_ALERT, c->log, -rc, "rp_recv_start(%d) failed",
                      c->fd);
        return;
    }

    /*
     * while the receive waits for nginx to read (recv_max queued or
     * spilled), the kernel keeps the rest and the FIN: a poll reports the
     * FIN as epoll's EPOLLRDHUP would, for ngx_http_test_reading() and
     * the upstream's broken connection check
     */

    rp_recv_watch_fin(ngx_io_uring_engine, fe->rf, 1);

    fe->recv_mode = 1;
    ngx_io_uring_counters.recv_conns++;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "io_uring: fd:%d read side in completion mode", c->fd);

    (void) ngx_io_uring_update(fe, c, c->log);
}


/*
 * Copy from the receive queue into buf (recv) or the chain's buffers
 * (recv_chain), with ngx_unix_recv()'s results: bytes, 0 and rev->eof at
 * EOF, NGX_ERROR with errno and rev->error, NGX_AGAIN with rev->ready = 0.
 * The read event stays ready while the queue holds more.
 */

static ssize_t
ngx_io_uring_recv_queued(ngx_connection_t *c, ngx_io_uring_fd_t *fe,
    ngx_chain_t *chain, u_char *buf, size_t size, off_t limit)
{
    int           status;
    size_t        n, total, want;
    ngx_err_t     err;
    ngx_buf_t    *b;
    ngx_event_t  *rev;

    rev = c->read;

    if (fe->spill_last > fe->spill_pos || rp_recv_queued(fe->rf)) {

        if (chain == NULL) {
            total = ngx_io_uring_recv_copy(c, fe, buf, size);

        } else {
            total = 0;

            for ( /* void */ ; chain; chain = chain->next) {
                b = chain->buf;
                want = b->end - b->last;

                if (limit) {
                    if (total >= (size_t) limit) {
                        break;
                    }

                    want = ngx_min(want, (size_t) limit - total);
                }

                /* ngx_readv_chain() leaves moving b->last to its caller */

                n = ngx_io_uring_recv_copy(c, fe, b->last, want);

                total += n;

                if (n < want) {
                    break;
                }
            }
        }

        if (fe->spill_last == fe->spill_pos && rp_recv_queued(fe->rf) == 0
            && rp_recv_status(fe->rf) == 0)
        {
            rev->ready = 0;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, c->log, 0,
                       "io_uring recv: fd:%d %uz, %uz left",
                       c->fd, total, rp_recv_queued(fe->rf));

        /*
         * an upstream connection with input left over may be one nginx
         * is about to put in its keepalive cache: that input is not a
         * response to anything
         */

        if (c->listening == NULL && ngx_io_uring_unread(fe)) {
            ngx_io_uring_unread_add(fe);
        }

        if (total) {
            return total;
        }

        return NGX_AGAIN;
    }

    status = rp_recv_status(fe->rf);

    rev->ready = 0;

    if (status == 1) {
        rev->eof = 1;
        return 0;
    }

    if (status < 0) {
        err = -status;
        ngx_set_socket_errno(err);

        rev->eof = 1;
        rev->error = 1;

        return ngx_connection_error(c, err, "recv() failed");
    }

    return NGX_AGAIN;
}


/* the spilled bytes first, then the ring's queue */

static size_t
ngx_io_uring_recv_copy(ngx_connection_t *c, ngx_io_uring_fd_t *fe,
    u_char *dst, size_t len)
{
    int     rc;
    size_t  n;

    n = ngx_min(len, fe->spill_last - fe->spill_pos);

    if (n) {
        ngx_memcpy(dst, fe->spill + fe->spill_pos, n);
        fe->spill_pos += n;

        if (fe->spill_pos == fe->spill_last) {
            fe->spill_pos = 0;
            fe->spill_last = 0;
        }
    }

    if (fe->stopped && fe->spill_last == 0) {
        fe->stopped = 0;

        rc = rp_recv_start(ngx_io_uring_engine, fe->rf, ngx_io_uring_recv_max);

        if (rc < 0) {
            ngx_log_error(NGX_LOG_ALERT, c->log, -rc,
                          "rp_recv_start(%d) failed", c->fd);
        }
    }

    if (n < len) {
        n += rp_recv_copy(ngx_io_uring_engine, fe->rf, dst + n, len - n);
    }

    return n;
}


/*
 * Provided buffers are shared by every connection of the worker, and a
 * connection nginx does not read from now (a request waiting for its
 * upstream, pipelined requests behind a response) would hold them while
 * others starve.  When fewer than half are free, what nginx left unread
 * after the last pass is copied into the connection's own memory and the
 * buffers go back to the ring; at recv_max bytes the receive stops until
 * nginx reads (the kernel keeps the rest, as with epoll).
 */

void
ngx_io_uring_spill(ngx_log_t *log)
{
    size_t              n, size;
    u_char             *p;
    ngx_queue_t        *q, *next;
    ngx_io_uring_fd_t  *fe;

    if (ngx_queue_empty(&ngx_io_uring_held_queue)
        || rp_bufs_free(ngx_io_uring_engine)
           >= rp_bufs_total(ngx_io_uring_engine) / 2)
    {
        return;
    }

    for (q = ngx_queue_head(&ngx_io_uring_held_queue);
         q != ngx_queue_sentinel(&ngx_io_uring_held_queue);
         q = next)
    {
        next = ngx_queue_next(q);
        fe = ngx_queue_data(q, ngx_io_uring_fd_t, held);

        ngx_queue_remove(q);
        fe->on_held = 0;

        n = rp_recv_queued(fe->rf);

        if (n == 0) {
            continue;
        }

        if (fe->spill_pos) {
            fe->spill_last -= fe->spill_pos;
            ngx_memmove(fe->spill, fe->spill + fe->spill_pos, fe->spill_last);
            fe->spill_pos = 0;
        }

        if (fe->spill_last + n > fe->spill_size) {
            size = ngx_max(fe->spill_last + n, 2 * fe->spill_size);
            size = ngx_max(size, 4096);

            p = ngx_io_uring_fault() ? NULL : ngx_alloc(size, log);
            if (p == NULL) {
                continue;
            }

            if (fe->spill) {
                ngx_memcpy(p, fe->spill, fe->spill_last);
                ngx_free(fe->spill);
            }

            fe->spill = p;
            fe->spill_size = size;
        }

        fe->spill_last += rp_recv_copy(ngx_io_uring_engine, fe->rf,
                                       fe->spill + fe->spill_last, n);
        ngx_io_uring_counters.spills++;

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, log, 0,
                       "io_uring: fd:%d %uz unread bytes spilled",
                       rp_fd_fileno(fe->rf), fe->spill_last);

        if (fe->spill_last >= ngx_io_uring_recv_max && !fe->stopped
            && rp_recv_status(fe->rf) == 0)
        {
            rp_recv_stop(ngx_io_uring_engine, fe->rf);
            fe->stopped = 1;
        }
    }
}


/* input nginx has not read yet: bytes (spilled or queued), EOF or an error */

ngx_uint_t
ngx_io_uring_unread(ngx_io_uring_fd_t *fe)
{
    return fe->spill_last > fe->spill_pos || rp_recv_queued(fe->rf)
           || rp_recv_status(fe->rf);
}


void
ngx_io_uring_unread_add(ngx_io_uring_fd_t *fe)
{
    if (!fe->on_unread) {
        fe->on_unread = 1;
        ngx_queue_insert_tail(&ngx_io_uring_unread_queue, &fe->unread);
    }

    /*
     * the event loop checks after every handler it calls; from a timer or
     * a posted event the check goes first among the posted events, before
     * a request posted behind it can take the connection from the cache
     */

    if (!ngx_io_uring_dispatching && !ngx_io_uring_idle_event.posted) {
        ngx_io_uring_idle_event.posted = 1;
        ngx_queue_insert_head(&ngx_posted_events,
                              &ngx_io_uring_idle_event.queue);
    }
}


/*
 * An upstream connection idle in nginx's keepalive cache (c->idle without
 * c->listening: client keep-alive and HTTP/2 connections have one) that has
 * input is closed, as ngx_http_upstream_keepalive_close_handler() closes it
 * with epoll when recv(MSG_PEEK) finds bytes: here they have left the
 * socket already.  c->close tells the close handler, as
 * ngx_close_idle_connections() tells idle connections.  Checked for the
 * connections nginx last read with input left over (the end of a response
 * and stray bytes in one read) and those that got input while idle.
 */

void
ngx_io_uring_idle_close(void)
{
    ngx_queue_t        *q;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    while (!ngx_queue_empty(&ngx_io_uring_unread_queue)) {
        q = ngx_queue_head(&ngx_io_uring_unread_queue);
        fe = ngx_queue_data(q, ngx_io_uring_fd_t, unread);

        ngx_queue_remove(q);
        fe->on_unread = 0;

        c = fe->conn;

        if (c == NULL || !c->idle || c->listening != NULL
            || !ngx_io_uring_unread(fe))
        {
            continue;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, c->log, 0,
                       "io_uring: fd:%d idle upstream connection has "
                       "input (%uz bytes), closing", c->fd,
                       fe->spill_last - fe->spill_pos
                       + rp_recv_queued(fe->rf));

        ngx_io_uring_counters.idle_closes++;

        c->close = 1;
        c->read->handler(c->read);
    }
}


void
ngx_io_uring_idle_handler(ngx_event_t *ev)
{
    ngx_io_uring_idle_close();
}
