
/*
 * ringplug: the io_uring event module for nginx.
 *
 * Readiness mode: every descriptor nginx puts on the event loop gets a
 * multishot poll on the worker's ring (edge-triggered, like epoll's EPOLLET)
 * or, for the few events nginx adds level-triggered (listening sockets, the
 * channel), a one-shot poll re-armed at the start of the next pass.
 * Everything queued in a pass goes to the kernel together with the wait, in
 * one io_uring_enter().  The ring itself lives in core/ (ringplug.h).
 *
 * A dynamic module cannot add fields to ngx_connection_t or ngx_event_t, so
 * the per-descriptor state lives in a side table indexed by fd, the same key
 * epoll uses.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <sys/eventfd.h>

#include <ringplug.h>


/* side-table pages never move, so rp_fd data may point into them */
#define NGX_IO_URING_FD_PAGE  1024


typedef struct {
    ngx_int_t            entries;
    ngx_bufs_t           buffers;
    ngx_flag_t           fallback;
} ngx_io_uring_conf_t;


typedef struct {
    rp_fd_t             *rf;
    ngx_connection_t    *conn;
    ngx_queue_t          queue;       /* in rearm_queue */
    unsigned             events;      /* RP_* mask nginx wants */
    unsigned             instance:1;
    unsigned             level:1;     /* one-shot, re-armed after it fires */
    unsigned             rearm:1;
} ngx_io_uring_fd_t;


typedef struct {
    void                *data;        /* connection | instance, as epoll */
    unsigned             revents;
} ngx_io_uring_event_t;


static ngx_int_t ngx_io_uring_init(ngx_cycle_t *cycle, ngx_msec_t timer);
static void ngx_io_uring_params(ngx_io_uring_conf_t *iocf,
    rp_engine_params_t *p);
static ngx_int_t ngx_io_uring_notify_init(ngx_log_t *log);
static void ngx_io_uring_notify_handler(ngx_event_t *ev);
static void ngx_io_uring_done(ngx_cycle_t *cycle);
static ngx_int_t ngx_io_uring_add_event(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t flags);
static ngx_int_t ngx_io_uring_del_event(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t flags);
static ngx_int_t ngx_io_uring_add_connection(ngx_connection_t *c);
static ngx_int_t ngx_io_uring_del_connection(ngx_connection_t *c,
    ngx_uint_t flags);
static ngx_int_t ngx_io_uring_notify(ngx_event_handler_pt handler);
static ngx_int_t ngx_io_uring_process_events(ngx_cycle_t *cycle,
    ngx_msec_t timer, ngx_uint_t flags);

static void ngx_io_uring_event_handler(rp_engine_t *e, rp_fd_t *f,
    void *data, enum rp_event ev, int res);
static ngx_io_uring_fd_t *ngx_io_uring_fd(ngx_socket_t fd, ngx_uint_t create,
    ngx_log_t *log);
static ngx_io_uring_fd_t *ngx_io_uring_open(ngx_connection_t *c,
    ngx_log_t *log);
static ngx_int_t ngx_io_uring_arm(ngx_io_uring_fd_t *fe, unsigned events,
    ngx_uint_t level, ngx_log_t *log);
static void ngx_io_uring_close(ngx_io_uring_fd_t *fe);

static char *ngx_io_uring_buffers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_io_uring_create_conf(ngx_cycle_t *cycle);
static char *ngx_io_uring_init_conf(ngx_cycle_t *cycle, void *conf);
static void ngx_io_uring_exit_process(ngx_cycle_t *cycle);


#if (NGX_HAVE_EPOLL)
extern ngx_module_t  ngx_epoll_module;
#endif


static rp_engine_t           *engine;

static ngx_io_uring_event_t  *event_list;
static ngx_uint_t             nevents;
static ngx_uint_t             event_list_size;

static ngx_io_uring_fd_t    **fd_pages;
static ngx_uint_t             fd_npages;

static ngx_queue_t            rearm_queue;

static int                    notify_fd = -1;
static ngx_event_t            notify_event;
static ngx_connection_t       notify_conn;

static ngx_str_t      io_uring_name = ngx_string("io_uring");

static ngx_conf_num_bounds_t  ngx_io_uring_entries_bounds = {
    ngx_conf_check_num_bounds, 1, 32768
};


static ngx_command_t  ngx_io_uring_commands[] = {

    { ngx_string("io_uring_entries"),
      NGX_EVENT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_io_uring_conf_t, entries),
      &ngx_io_uring_entries_bounds },

    { ngx_string("io_uring_buffers"),
      NGX_EVENT_CONF|NGX_CONF_TAKE2,
      ngx_io_uring_buffers,
      0,
      offsetof(ngx_io_uring_conf_t, buffers),
      NULL },

    { ngx_string("io_uring_fallback"),
      NGX_EVENT_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      0,
      offsetof(ngx_io_uring_conf_t, fallback),
      NULL },

      ngx_null_command
};


static ngx_event_module_t  ngx_io_uring_module_ctx = {
    &io_uring_name,
    ngx_io_uring_create_conf,            /* create configuration */
    ngx_io_uring_init_conf,              /* init configuration */

    {
        ngx_io_uring_add_event,          /* add an event */
        ngx_io_uring_del_event,          /* delete an event */
        ngx_io_uring_add_event,          /* enable an event */
        ngx_io_uring_del_event,          /* disable an event */
        ngx_io_uring_add_connection,     /* add an connection */
        ngx_io_uring_del_connection,     /* delete an connection */
        ngx_io_uring_notify,             /* trigger a notify */
        ngx_io_uring_process_events,     /* process the events */
        ngx_io_uring_init,               /* init the events */
        ngx_io_uring_done,               /* done the events */
    }
};

ngx_module_t  ngx_event_io_uring_module = {
    NGX_MODULE_V1,
    &ngx_io_uring_module_ctx,            /* module context */
    ngx_io_uring_commands,               /* module directives */
    NGX_EVENT_MODULE,                    /* module type */
    NULL,                                /* init master */
    NULL,                                /* init module */
    NULL,                                /* init process */
    NULL,                                /* init thread */
    NULL,                                /* exit thread */
    ngx_io_uring_exit_process,           /* exit process */
    NULL,                                /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * Runs in every worker (and cache process) after fork, from
 * ngx_event_process_init(): the ring must belong to the process using it.
 */

static ngx_int_t
ngx_io_uring_init(ngx_cycle_t *cycle, ngx_msec_t timer)
{
    int                   rc;
    char                  why[256];
    ngx_err_t             err;
    ngx_uint_t            size;
    rp_engine_params_t    params;
    ngx_io_uring_conf_t  *iocf;
#if (NGX_HAVE_EPOLL)
    ngx_event_module_t   *epoll;
#endif

    iocf = ngx_event_get_conf(cycle->conf_ctx, ngx_event_io_uring_module);

    if (engine == NULL) {
        ngx_io_uring_params(iocf, &params);

        why[0] = '\0';

        rc = rp_engine_create(&params, ngx_io_uring_event_handler, &engine,
                              why, sizeof(why));

        if (rc < 0) {
            engine = NULL;

            /* why names the cause and the errno; else nginx names errno */

            err = why[0] ? 0 : -rc;

            if (!iocf->fallback) {
                ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                              "io_uring is not available: %s", why);
                return NGX_ERROR;
            }

#if (NGX_HAVE_EPOLL)
            ngx_log_error(NGX_LOG_WARN, cycle->log, err,
                          "io_uring is not available: %s, using epoll", why);

            epoll = ngx_epoll_module.ctx;

            return epoll->actions.init(cycle, timer);
#else
            ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                          "io_uring is not available: %s", why);
            return NGX_ERROR;
#endif
        }

        ngx_queue_init(&rearm_queue);

        if (ngx_io_uring_notify_init(cycle->log) != NGX_OK) {
            ngx_io_uring_module_ctx.actions.notify = NULL;
        }

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "using %s", rp_engine_describe(engine));
    }

    /* the CQ holds 8 completions per SQ entry; more grows the list */

    size = 8 * (ngx_uint_t) iocf->entries;

    if (event_list_size < size) {
        if (event_list) {
            ngx_free(event_list);
        }

        event_list = ngx_alloc(sizeof(ngx_io_uring_event_t) * size,
                               cycle->log);
        if (event_list == NULL) {
            event_list_size = 0;
            return NGX_ERROR;
        }

        event_list_size = size;
    }

    ngx_io = ngx_os_io;

    ngx_event_actions = ngx_io_uring_module_ctx.actions;

    /*
     * NGX_USE_EPOLL_EVENT selects nginx's Linux paths, which suit a
     * multishot poll as they suit EPOLLET: ngx_unix_recv() trusts
     * rev->pending_eof and skips the recv() that would only say EAGAIN,
     * listening and channel events are added as plain events (level-
     * triggered here), accepted connections get their read event only.
     * EPOLLEXCLUSIVE is the one epoll feature a poll cannot take: the flag
     * is dropped in add_event, so accept_mutex off wakes every worker.
     */

    ngx_event_flags = NGX_USE_CLEAR_EVENT
                      |NGX_USE_GREEDY_EVENT
                      |NGX_USE_EPOLL_EVENT;

#if (NGX_HAVE_EPOLLRDHUP)
    /* a poll reports POLLRDHUP from the same ->poll() as epoll does */
    ngx_use_epoll_rdhup = 1;
#endif

    return NGX_OK;
}


static void
ngx_io_uring_params(ngx_io_uring_conf_t *iocf, rp_engine_params_t *p)
{
    ngx_memzero(p, sizeof(rp_engine_params_t));

    p->entries = (unsigned) iocf->entries;

    /*
     * readiness mode reads with nginx's own recv(): no provided buffers;
     * io_uring_buffers sizes the ring for completion mode
     */

    p->buf_count = RP_NO_BUFFERS;
}


static ngx_int_t
ngx_io_uring_notify_init(ngx_log_t *log)
{
    ngx_io_uring_fd_t  *fe;

    notify_fd = eventfd(0, EFD_NONBLOCK);

    if (notify_fd == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "eventfd() failed");
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, log, 0,
                   "notify eventfd: %d", notify_fd);

    notify_event.handler = ngx_io_uring_notify_handler;
    notify_event.log = log;
    notify_event.active = 1;

    notify_conn.fd = notify_fd;
    notify_conn.read = &notify_event;
    notify_conn.log = log;

    fe = ngx_io_uring_open(&notify_conn, log);

    if (fe == NULL || ngx_io_uring_arm(fe, RP_IN, 0, log) != NGX_OK) {
        if (fe) {
            ngx_io_uring_close(fe);
        }

        if (close(notify_fd) == -1) {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "eventfd close() failed");
        }

        notify_fd = -1;

        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_io_uring_notify_handler(ngx_event_t *ev)
{
    ssize_t               n;
    uint64_t              count;
    ngx_err_t             err;
    ngx_event_handler_pt  handler;

    /* the poll is edge-triggered: the counter is drained only before wrap */

    if (++ev->index == NGX_MAX_UINT32_VALUE) {
        ev->index = 0;

        n = read(notify_fd, &count, sizeof(uint64_t));

        err = ngx_errno;

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                       "read() eventfd %d: %z count:%uL", notify_fd, n, count);

        if ((size_t) n != sizeof(uint64_t)) {
            ngx_log_error(NGX_LOG_ALERT, ev->log, err,
                          "read() eventfd %d failed", notify_fd);
        }
    }

    handler = ev->data;
    handler(ev);
}


/*
 * nginx never calls actions.done; ngx_io_uring_exit_process() does, so a
 * worker that exits releases its ring.
 */

static void
ngx_io_uring_done(ngx_cycle_t *cycle)
{
    size_t       len;
    u_char       buf[512];
    ngx_uint_t   i;
    rp_stats_t   st;

    if (engine == NULL) {
        return;
    }

    rp_engine_stats(engine, &st);
    len = rp_stats_format(&st, (char *) buf, sizeof(buf));

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0, "io_uring stats: %*s",
                  ngx_min(len, sizeof(buf) - 1), buf);

    /* the engine cancels every poll; the fds are nginx's to close */

    rp_engine_destroy(engine);
    engine = NULL;

    if (notify_fd != -1) {
        if (close(notify_fd) == -1) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "eventfd close() failed");
        }

        notify_fd = -1;
    }

    for (i = 0; i < fd_npages; i++) {
        if (fd_pages[i]) {
            ngx_free(fd_pages[i]);
        }
    }

    if (fd_pages) {
        ngx_free(fd_pages);
    }

    fd_pages = NULL;
    fd_npages = 0;

    ngx_free(event_list);

    event_list = NULL;
    event_list_size = 0;
    nevents = 0;
}


static ngx_int_t
ngx_io_uring_add_event(ngx_event_t *ev, ngx_int_t event, ngx_uint_t flags)
{
    unsigned            events, prev;
    ngx_event_t        *e;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    c = ev->data;

    if (event == NGX_READ_EVENT) {
        e = c->write;
        prev = RP_OUT;
        events = RP_IN|RP_RDHUP;

    } else {
        e = c->read;
        prev = RP_IN|RP_RDHUP;
        events = RP_OUT;
    }

    if (e->active) {
        events |= prev;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "io_uring add event: fd:%d ev:%04XD fl:%08XD",
                   c->fd, events, flags);

    fe = ngx_io_uring_open(c, ev->log);
    if (fe == NULL) {
        return NGX_ERROR;
    }

    /* NGX_CLEAR_EVENT is EPOLLET; without it nginx wants level-triggered */

    if (ngx_io_uring_arm(fe, events, !(flags & NGX_CLEAR_EVENT), ev->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ev->active = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_io_uring_del_event(ngx_event_t *ev, ngx_int_t event, ngx_uint_t flags)
{
    unsigned            prev;
    ngx_event_t        *e;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    c = ev->data;

    ev->active = 0;

    fe = ngx_io_uring_fd(c->fd, 0, ev->log);

    if (fe == NULL || fe->rf == NULL) {
        return NGX_OK;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "io_uring del event: fd:%d ev:%04XD fl:%08XD",
                   c->fd, event, flags);

    /*
     * unlike epoll, a poll keeps the file open: before nginx closes the
     * descriptor, the engine must let go of it
     */

    if (flags & NGX_CLOSE_EVENT) {
        ngx_io_uring_close(fe);
        return NGX_OK;
    }

    if (event == NGX_READ_EVENT) {
        e = c->write;
        prev = RP_OUT;

    } else {
        e = c->read;
        prev = RP_IN|RP_RDHUP;
    }

    if (e->active) {
        return ngx_io_uring_arm(fe, prev, fe->level, ev->log);
    }

    /* disabled accept events come back soon on the same descriptor */

    if (flags & NGX_DISABLE_EVENT) {
        return ngx_io_uring_arm(fe, 0, fe->level, ev->log);
    }

    ngx_io_uring_close(fe);

    return NGX_OK;
}


static ngx_int_t
ngx_io_uring_add_connection(ngx_connection_t *c)
{
    ngx_io_uring_fd_t  *fe;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "io_uring add connection: fd:%d", c->fd);

    fe = ngx_io_uring_open(c, c->log);
    if (fe == NULL) {
        return NGX_ERROR;
    }

    if (ngx_io_uring_arm(fe, RP_IN|RP_OUT|RP_RDHUP, 0, c->log) != NGX_OK) {
        return NGX_ERROR;
    }

    c->read->active = 1;
    c->write->active = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_io_uring_del_connection(ngx_connection_t *c, ngx_uint_t flags)
{
    ngx_io_uring_fd_t  *fe;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "io_uring del connection: fd:%d fl:%08XD", c->fd, flags);

    fe = ngx_io_uring_fd(c->fd, 0, c->log);

    if (fe && fe->rf) {
        ngx_io_uring_close(fe);
    }

    c->read->active = 0;
    c->write->active = 0;

    return NGX_OK;
}


/* called from thread pool threads: touches the eventfd only, not the ring */

static ngx_int_t
ngx_io_uring_notify(ngx_event_handler_pt handler)
{
    static uint64_t inc = 1;

    notify_event.data = handler;

    if ((size_t) write(notify_fd, &inc, sizeof(uint64_t)) != sizeof(uint64_t)) {
        ngx_log_error(NGX_LOG_ALERT, notify_event.log, ngx_errno,
                      "write() to eventfd %d failed", notify_fd);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_io_uring_process_events(ngx_cycle_t *cycle, ngx_msec_t timer,
    ngx_uint_t flags)
{
    int                 n, timeout;
    unsigned            revents;
    ngx_int_t           instance, rc;
    ngx_uint_t          i, level;
    ngx_err_t           err;
    ngx_queue_t        *q;
    ngx_event_t        *rev, *wev;
    ngx_queue_t        *queue;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    /* re-arm one-shot polls that fired in the last pass and are still wanted */

    while (!ngx_queue_empty(&rearm_queue)) {
        q = ngx_queue_head(&rearm_queue);
        fe = ngx_queue_data(q, ngx_io_uring_fd_t, queue);

        ngx_queue_remove(q);
        fe->rearm = 0;

        if (fe->rf && fe->events && rp_poll_armed(fe->rf) == 0) {
            (void) ngx_io_uring_arm(fe, fe->events, fe->level, cycle->log);
        }
    }

    if (timer == NGX_TIMER_INFINITE) {
        timeout = -1;

    } else {
        timeout = (int) ngx_min(timer, (ngx_msec_t) NGX_MAX_INT32_VALUE);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                   "io_uring timer: %d", timeout);

    nevents = 0;

    n = rp_engine_wait(engine, timeout);

    err = (n < 0) ? -n : 0;

    if (flags & NGX_UPDATE_TIME || ngx_event_timer_alarm) {
        ngx_time_update();
    }

    rc = NGX_OK;

    if (err) {
        if (err == NGX_EINTR) {

            if (ngx_event_timer_alarm) {
                ngx_event_timer_alarm = 0;
                level = 0;

            } else {
                level = NGX_LOG_INFO;
            }

        } else {
            level = NGX_LOG_ALERT;
        }

        if (level) {
            ngx_log_error(level, cycle->log, err,
                          "rp_engine_wait(%d) failed", timeout);
            rc = NGX_ERROR;
        }
    }

    for (i = 0; i < nevents; i++) {
        c = event_list[i].data;

        instance = (uintptr_t) c & 1;
        c = (ngx_connection_t *) ((uintptr_t) c & (uintptr_t) ~1);

        rev = c->read;

        if (c->fd == -1 || rev->instance != instance) {

            /*
             * the stale event from a file descriptor
             * that was just closed in this iteration
             */

            ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                           "io_uring: stale event %p", c);
            continue;
        }

        revents = event_list[i].revents;

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                       "io_uring: fd:%d ev:%04XD d:%p",
                       c->fd, revents, event_list[i].data);

        if (revents & (RP_ERR|RP_HUP)) {
            ngx_log_debug2(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                           "io_uring error on fd:%d ev:%04XD",
                           c->fd, revents);

            /*
             * if the error events were returned, add RP_IN and RP_OUT
             * to handle the events at least in one active handler
             */

            revents |= RP_IN|RP_OUT;
        }

        if ((revents & RP_IN) && rev->active) {

#if (NGX_HAVE_EPOLLRDHUP)
            if (revents & RP_RDHUP) {
                rev->pending_eof = 1;
            }
#endif

            rev->ready = 1;
            rev->available = -1;

            if (flags & NGX_POST_EVENTS) {
                queue = rev->accept ? &ngx_posted_accept_events
                                    : &ngx_posted_events;

                ngx_post_event(rev, queue);

            } else {
                rev->handler(rev);
            }
        }

        wev = c->write;

        if ((revents & RP_OUT) && wev->active) {

            if (c->fd == -1 || wev->instance != instance) {

                /*
                 * the stale event from a file descriptor
                 * that was just closed in this iteration
                 */

                ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                               "io_uring: stale event %p", c);
                continue;
            }

            wev->ready = 1;
#if (NGX_THREADS)
            wev->complete = 1;
#endif

            if (flags & NGX_POST_EVENTS) {
                ngx_post_event(wev, &ngx_posted_events);

            } else {
                wev->handler(wev);
            }
        }
    }

    return rc;
}


/*
 * The engine's callback runs inside rp_engine_wait(): it only records the
 * event, so nginx's handlers run after the engine has finished reaping, as
 * they do after epoll_wait().  The engine never calls it for a closed fd.
 */

static void
ngx_io_uring_event_handler(rp_engine_t *e, rp_fd_t *f, void *data,
    enum rp_event ev, int res)
{
    ngx_uint_t             size;
    ngx_io_uring_fd_t     *fe;
    ngx_io_uring_event_t  *list;

    if (ev != RP_EV_POLL) {
        return;
    }

    fe = data;

    if (nevents == event_list_size) {
        size = 2 * event_list_size;

        list = ngx_alloc(sizeof(ngx_io_uring_event_t) * size, ngx_cycle->log);
        if (list == NULL) {
            return;
        }

        ngx_memcpy(list, event_list,
                   sizeof(ngx_io_uring_event_t) * event_list_size);
        ngx_free(event_list);

        event_list = list;
        event_list_size = size;
    }

    event_list[nevents].data = (void *) ((uintptr_t) fe->conn | fe->instance);

    if (res < 0) {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, -res,
                       "io_uring poll failed on fd:%d ev:%04XD",
                       fe->conn->fd, fe->events);

        event_list[nevents].revents = RP_ERR|RP_HUP;

    } else {
        event_list[nevents].revents = (unsigned) res;
    }

    nevents++;

    /*
     * a one-shot poll has fired: re-armed at the start of the next pass,
     * after nginx has handled it; a failed poll is left to nginx's handler,
     * re-arming it would only fail again
     */

    if (res >= 0 && fe->events && !fe->rearm && rp_poll_armed(f) == 0) {
        fe->rearm = 1;
        ngx_queue_insert_tail(&rearm_queue, &fe->queue);
    }
}


static ngx_io_uring_fd_t *
ngx_io_uring_fd(ngx_socket_t fd, ngx_uint_t create, ngx_log_t *log)
{
    ngx_uint_t           n, p;
    ngx_io_uring_fd_t  **pages;

    if (fd < 0) {
        return NULL;
    }

    p = (ngx_uint_t) fd / NGX_IO_URING_FD_PAGE;

    if (p >= fd_npages) {
        if (!create) {
            return NULL;
        }

        n = ngx_max(p + 1, 2 * fd_npages);

        pages = ngx_calloc(sizeof(ngx_io_uring_fd_t *) * n, log);
        if (pages == NULL) {
            return NULL;
        }

        if (fd_pages) {
            ngx_memcpy(pages, fd_pages,
                       sizeof(ngx_io_uring_fd_t *) * fd_npages);
            ngx_free(fd_pages);
        }

        fd_pages = pages;
        fd_npages = n;
    }

    if (fd_pages[p] == NULL) {
        if (!create) {
            return NULL;
        }

        fd_pages[p] = ngx_calloc(sizeof(ngx_io_uring_fd_t)
                                 * NGX_IO_URING_FD_PAGE, log);
        if (fd_pages[p] == NULL) {
            return NULL;
        }
    }

    return &fd_pages[p][(ngx_uint_t) fd % NGX_IO_URING_FD_PAGE];
}


/* the side-table slot of c->fd, with the descriptor on the engine */

static ngx_io_uring_fd_t *
ngx_io_uring_open(ngx_connection_t *c, ngx_log_t *log)
{
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_fd(c->fd, 1, log);
    if (fe == NULL) {
        return NULL;
    }

    if (fe->rf && fe->conn != c && fe->conn->fd != c->fd) {

        /*
         * the descriptor was closed without a del and its number reused:
         * the old poll still holds the old file
         */

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, log, 0,
                       "io_uring: fd:%d reused, dropping stale %p",
                       c->fd, fe->conn);

        /*
         * the close cancels by descriptor, which now names the new file:
         * cancel the old poll by itself first
         */

        (void) rp_poll(engine, fe->rf, 0, RP_POLL_ONESHOT);

        ngx_io_uring_close(fe);
    }

    if (fe->rf == NULL) {
        fe->rf = rp_fd_open(engine, c->fd, fe);

        if (fe->rf == NULL) {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "rp_fd_open(%d) failed", c->fd);
            return NULL;
        }

        fe->events = 0;
        fe->level = 0;
    }

    /* as epoll's data.ptr: the latest connection added on the descriptor */

    fe->conn = c;
    fe->instance = c->read->instance;

    return fe;
}


static ngx_int_t
ngx_io_uring_arm(ngx_io_uring_fd_t *fe, unsigned events, ngx_uint_t level,
    ngx_log_t *log)
{
    int  rc;

    if (fe->rearm) {
        ngx_queue_remove(&fe->queue);
        fe->rearm = 0;
    }

    if (events == fe->events && level == fe->level
        && rp_poll_armed(fe->rf) == events)
    {
        return NGX_OK;
    }

    fe->events = events;
    fe->level = level;

    rc = rp_poll(engine, fe->rf, events,
                 level ? RP_POLL_ONESHOT : RP_POLL_MULTISHOT);

    if (rc < 0) {
        ngx_log_error(NGX_LOG_ALERT, log, -rc, "rp_poll(%d, %04XD, %s) failed",
                      rp_fd_fileno(fe->rf), events,
                      level ? "oneshot" : "multishot");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_io_uring_close(ngx_io_uring_fd_t *fe)
{
    if (fe->rearm) {
        ngx_queue_remove(&fe->queue);
        fe->rearm = 0;
    }

    rp_fd_close(engine, fe->rf, 0);

    fe->rf = NULL;
    fe->conn = NULL;
    fe->events = 0;
}


static char *
ngx_io_uring_buffers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_io_uring_conf_t *iocf = conf;

    char  *rv;

    rv = ngx_conf_set_bufs_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* a buffer ring holds at most 32768 entries */

    if (iocf->buffers.num > 32768) {
        return "has more than 32768 buffers";
    }

    return NGX_CONF_OK;
}


static void *
ngx_io_uring_create_conf(ngx_cycle_t *cycle)
{
    ngx_io_uring_conf_t  *iocf;

    iocf = ngx_pcalloc(cycle->pool, sizeof(ngx_io_uring_conf_t));
    if (iocf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     iocf->buffers = { 0, 0 };
     */

    iocf->entries = NGX_CONF_UNSET;
    iocf->fallback = NGX_CONF_UNSET;

    return iocf;
}


static char *
ngx_io_uring_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_io_uring_conf_t *iocf = conf;

    int                  rc;
    char                 why[256];
    rp_engine_t         *e;
    ngx_event_conf_t    *ecf;
    rp_engine_params_t   params;

    ngx_conf_init_value(iocf->entries, 1024);
    ngx_conf_init_value(iocf->fallback, 1);

    if (iocf->buffers.num == 0) {
        iocf->buffers.num = 1024;
        iocf->buffers.size = 16384;
    }

    ecf = ngx_event_get_conf(cycle->conf_ctx, ngx_event_core_module);

    if (ecf->use != ngx_event_io_uring_module.ctx_index || iocf->fallback) {
        return NGX_CONF_OK;
    }

    /*
     * "io_uring_fallback off": refuse the configuration (nginx -t, start,
     * reload) where workers could not create their ring
     */

    ngx_io_uring_params(iocf, &params);

    why[0] = '\0';

    rc = rp_engine_create(&params, ngx_io_uring_event_handler, &e,
                          why, sizeof(why));

    if (rc < 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, why[0] ? 0 : -rc,
                      "io_uring is not available: %s "
                      "and \"io_uring_fallback\" is off", why);
        return NGX_CONF_ERROR;
    }

    rp_engine_destroy(e);

    return NGX_CONF_OK;
}


static void
ngx_io_uring_exit_process(ngx_cycle_t *cycle)
{
    ngx_io_uring_done(cycle);
}
