
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
 * Completion mode (io_uring_completion on): the module installs its own
 * ngx_io.  A stream socket's read side enters completion mode on the first
 * call to the module's recv or recv_chain: that read is done synchronously
 * as ngx_unix_recv() would, then a multishot receive into the worker's
 * provided buffers is armed and the poll drops IN|RDHUP; nginx's later reads
 * copy out of the per-connection queue.  Sends are copied into the engine's
 * ordered send queue (one send in flight per socket, submitted with the
 * pass); file buffers go out with nginx's own sendfile chain once the queue
 * is empty.  Whatever nginx reads itself (TLS, the MSG_PEEK sniff, PROXY
 * protocol, UDP, listeners, the channel) never calls these hooks first and
 * stays in readiness mode on the same ring.
 *
 * A dynamic module cannot add fields to ngx_connection_t or ngx_event_t, so
 * the per-descriptor state lives in a side table indexed by fd, the same key
 * epoll uses.
 *
 * This file holds the event actions, the ring's callback and the side
 * table; completion mode's reads are in ngx_event_io_uring_recv.c, its
 * writes in ngx_event_io_uring_send.c, the $io_uring_stats variable in
 * ngx_http_io_uring_module.c, what they share in ngx_event_io_uring.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_io_uring.h>

#include <dlfcn.h>
#include <malloc.h>
#include <sys/eventfd.h>


/* side-table pages never move, so rp_fd data may point into them */
#define NGX_IO_URING_FD_PAGE  1024

/* event record flag: the send queue drained (or failed), not a poll */
#define NGX_IO_URING_SENT      0x10000


typedef struct {
    ngx_int_t            entries;
    ngx_bufs_t           buffers;
    ngx_flag_t           fallback;
    ngx_flag_t           completion;
} ngx_io_uring_conf_t;


typedef struct {
    void                *data;        /* connection | instance, as epoll */
    unsigned             revents;
} ngx_io_uring_event_t;


static ngx_int_t ngx_io_uring_init(ngx_cycle_t *cycle, ngx_msec_t timer);
static ngx_int_t ngx_io_uring_fallback(ngx_cycle_t *cycle, ngx_msec_t timer,
    ngx_err_t err, const char *why);
static void ngx_io_uring_completion_init(ngx_io_uring_conf_t *iocf);
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
static int ngx_io_uring_prepare_pass(ngx_cycle_t *cycle, ngx_msec_t timer);
static void ngx_io_uring_write_event(ngx_cycle_t *cycle, ngx_connection_t *c,
    ngx_int_t instance, unsigned revents, ngx_uint_t flags);

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


rp_engine_t                  *ngx_io_uring_engine;
ngx_io_uring_counters_t       ngx_io_uring_counters;
size_t                        ngx_io_uring_recv_max;

ngx_queue_t                   ngx_io_uring_held_queue;
ngx_queue_t                   ngx_io_uring_unread_queue;
ngx_queue_t                   ngx_io_uring_drained_queue;

ngx_event_t                   ngx_io_uring_idle_event;
ngx_uint_t                    ngx_io_uring_dispatching;

static ngx_io_uring_event_t  *event_list;
static ngx_uint_t             nevents;
static ngx_uint_t             event_list_size;
static ngx_uint_t             event_pass;

static ngx_io_uring_fd_t    **fd_pages;
static ngx_uint_t             fd_npages;

static ngx_queue_t            rearm_queue;

static int                    notify_fd = -1;
static ngx_event_t            notify_event;
static ngx_connection_t       notify_conn;

static ngx_uint_t             completion;

/* the mail module's STARTTLS hands a socket to OpenSSL mid-stream */
static ngx_connection_handler_pt  mail_init_connection;

static ngx_os_io_t  ngx_io_uring_io = {
    ngx_io_uring_recv,
    ngx_io_uring_recv_chain,
    NULL,                                /* udp_recv: ngx_os_io's */
    ngx_io_uring_send,
    NULL,                                /* udp_send: ngx_os_io's */
    NULL,                                /* udp_send_chain: ngx_os_io's */
    ngx_io_uring_send_chain,
    0
};

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

    { ngx_string("io_uring_completion"),
      NGX_EVENT_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      0,
      offsetof(ngx_io_uring_conf_t, completion),
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
    ngx_uint_t            size, created;
    rp_engine_params_t    params;
    ngx_io_uring_conf_t  *iocf;

    iocf = ngx_event_get_conf(cycle->conf_ctx, ngx_event_io_uring_module);

    created = 0;

    if (ngx_io_uring_engine == NULL) {
        ngx_io_uring_params(iocf, &params);

#ifdef RP_FAULT_INJECTION
        {
            char  *v = getenv("RP_FAIL_ALLOC");

            rp_fault_set(v ? atol(v) : 0);
        }
#endif

        why[0] = '\0';

        rc = rp_engine_create(&params, ngx_io_uring_event_handler,
                              &ngx_io_uring_engine, why, sizeof(why));

        if (rc < 0) {
            ngx_io_uring_engine = NULL;

            /* why names the cause and the errno; else nginx names errno */

            return ngx_io_uring_fallback(cycle, timer, why[0] ? 0 : -rc, why);
        }

        created = 1;
    }

    /*
     * one entry per connection per pass, whatever one reap delivers (a
     * connection's poll, receive and send completions share its entry, as
     * epoll reports one event per fd), plus the notify eventfd: the list
     * never grows while completions are being reaped
     */

    size = cycle->connection_n + 1;

    if (event_list_size < size) {
        if (event_list) {
            ngx_free(event_list);
        }

        event_list = ngx_io_uring_fault() ? NULL
                     : ngx_alloc(sizeof(ngx_io_uring_event_t) * size,
                                 cycle->log);
        if (event_list == NULL) {
            event_list_size = 0;

            /* a ring just made, nothing on it yet: epoll takes over */

            if (created) {
                rp_engine_destroy(ngx_io_uring_engine);
                ngx_io_uring_engine = NULL;

                return ngx_io_uring_fallback(cycle, timer, 0,
                                             "no memory for the event list "
                                             "(ENOMEM)");
            }

            return NGX_ERROR;
        }

        event_list_size = size;
    }

    if (created) {
        ngx_queue_init(&rearm_queue);
        ngx_queue_init(&ngx_io_uring_held_queue);
        ngx_queue_init(&ngx_io_uring_unread_queue);
        ngx_queue_init(&ngx_io_uring_drained_queue);

        ngx_io_uring_idle_event.handler = ngx_io_uring_idle_handler;
        ngx_io_uring_idle_event.log = cycle->log;

        if (ngx_io_uring_notify_init(cycle->log) != NGX_OK) {
            ngx_io_uring_module_ctx.actions.notify = NULL;
        }

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "using %s", rp_engine_describe(ngx_io_uring_engine));
    }

    completion = iocf->completion;

    if (completion) {
        ngx_io_uring_completion_init(iocf);

    } else {
        ngx_io = ngx_os_io;
    }

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


/*
 * No ring in this worker: one line naming the cause, then nginx's own
 * epoll module runs the worker; with "io_uring_fallback off" the worker
 * exits with the fatal code.
 */

static ngx_int_t
ngx_io_uring_fallback(ngx_cycle_t *cycle, ngx_msec_t timer, ngx_err_t err,
    const char *why)
{
    ngx_io_uring_conf_t  *iocf;
#if (NGX_HAVE_EPOLL)
    ngx_event_module_t   *epoll;
#endif

    iocf = ngx_event_get_conf(cycle->conf_ctx, ngx_event_io_uring_module);

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


/* completion mode: the module's ngx_io, a connection's share of buffers */

static void
ngx_io_uring_completion_init(ngx_io_uring_conf_t *iocf)
{
    ngx_io_uring_io.udp_recv = ngx_os_io.udp_recv;
    ngx_io_uring_io.udp_send = ngx_os_io.udp_send;
    ngx_io_uring_io.udp_send_chain = ngx_os_io.udp_send_chain;
    ngx_io_uring_io.flags = ngx_os_io.flags;

    ngx_io = ngx_io_uring_io;

    /*
     * a connection nginx leaves unread holds at most about this much of
     * the shared buffers: an eighth of them, 64k at most, one at least
     */

    ngx_io_uring_recv_max = ngx_min((size_t) 65536,
                                    (size_t) iocf->buffers.num
                                    * iocf->buffers.size / 8);
    ngx_io_uring_recv_max = ngx_max(ngx_io_uring_recv_max,
                                    (size_t) iocf->buffers.size);

    /*
     * the engine copies sends into 16k segments and keeps 64 of them for
     * reuse; a worker with more in flight malloc()s and frees the rest,
     * and glibc's default trimming gives the heap top back and
     * page-faults it in again: keep up to 16m of it.  Measured (64
     * connections, 3 runs each): for return-200, one segment a response,
     * no difference, no brk() and no page faults either way; for a 64k
     * response from memory (sendfile off), 31-37us of worker CPU per
     * request with this call, 40-50us and 0.4-3.9 minor faults without
     */

    (void) mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);

    mail_init_connection = (ngx_connection_handler_pt)
                               dlsym(RTLD_DEFAULT,
                                     "ngx_mail_init_connection");
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

    if (iocf->completion) {
        p->buf_count = (unsigned) iocf->buffers.num;
        p->buf_size = (unsigned) iocf->buffers.size;

    } else {
        p->buf_count = RP_NO_BUFFERS;
    }
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
    size_t              len;
    u_char              buf[768];
    ngx_msec_t          deadline;
    ngx_uint_t          i, j;
    rp_stats_t          st;
    ngx_io_uring_fd_t  *fe;

#ifdef RP_FAULT_INJECTION
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "io_uring fault injection: %l allocations", rp_fault_count());
#endif

    if (ngx_io_uring_engine == NULL) {
        return;
    }

    /*
     * a worker leaving gracefully exits with connections nginx left open
     * (HTTP/2 after its GOAWAY, idle keepalive ones): with epoll the
     * kernel still sends what their socket buffers hold, so their queues
     * are flushed as a close would
     */

    if (!ngx_terminate) {
        for (i = 0; i < fd_npages; i++) {
            for (j = 0; fd_pages[i] && j < NGX_IO_URING_FD_PAGE; j++) {
                fe = &fd_pages[i][j];

                if (fe->rf && fe->send_mode && rp_send_pending(fe->rf)) {
                    ngx_io_uring_close(fe);
                }
            }
        }
    }

    /*
     * sockets closed with bytes still queued are sent by the engine after
     * nginx's close(): a worker leaving gracefully gives them up to 5s, as
     * the kernel would still send what a socket buffer holds
     */

    rp_engine_stats(ngx_io_uring_engine, &st);

    if (st.flushing_now && !ngx_terminate) {
        ngx_time_update();
        deadline = ngx_current_msec + 5000;

        while (st.flushing_now
               && (ngx_msec_int_t) (deadline - ngx_current_msec) > 0)
        {
            nevents = 0;
            (void) rp_engine_wait(ngx_io_uring_engine, 50);
            ngx_time_update();
            rp_engine_stats(ngx_io_uring_engine, &st);
        }

        if (st.flushing_now) {
            ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                          "io_uring: %uD closed connections still had "
                          "bytes queued at exit", st.flushing_now);
        }
    }

    len = rp_stats_format(&st, (char *) buf, sizeof(buf));
    len = ngx_io_uring_counters_format(buf + len, buf + sizeof(buf)) - buf;

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0, "io_uring stats: %*s",
                  len, buf);

    /* the engine cancels every poll; the fds are nginx's to close */

    rp_engine_destroy(ngx_io_uring_engine);
    ngx_io_uring_engine = NULL;

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
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    c = ev->data;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "io_uring add event: fd:%d ev:%i fl:%08XD",
                   c->fd, event, flags);

    fe = ngx_io_uring_open(c, ev->log);
    if (fe == NULL) {
        return NGX_ERROR;
    }

    ev->active = 1;

    /* NGX_CLEAR_EVENT is EPOLLET; without it nginx wants level-triggered */

    fe->level = !(flags & NGX_CLEAR_EVENT);

    if (ngx_io_uring_update(fe, c, ev->log) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * as epoll reports a socket that is readable when it is added: what the
     * queue already holds is an event
     */

    if (event == NGX_READ_EVENT && fe->recv_mode && !ev->ready
        && ngx_io_uring_unread(fe))
    {
        ev->ready = 1;
        ngx_post_event(ev, &ngx_posted_events);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_io_uring_del_event(ngx_event_t *ev, ngx_int_t event, ngx_uint_t flags)
{
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    c = ev->data;

    ev->active = 0;

    fe = ngx_io_uring_fd(c->fd, 0, ev->log);

    if (fe == NULL || fe->rf == NULL) {
        return NGX_OK;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "io_uring del event: fd:%d ev:%i fl:%08XD",
                   c->fd, event, flags);

    /*
     * unlike epoll, a poll keeps the file open: before nginx closes the
     * descriptor, the engine must let go of it
     */

    if (flags & NGX_CLOSE_EVENT) {
        ngx_io_uring_close(fe);
        return NGX_OK;
    }

    /*
     * the other event still wanted; disabled accept events come back soon
     * on the same descriptor; a completion-mode socket keeps its queues
     */

    if ((c->read && c->read->active) || (c->write && c->write->active)
        || (flags & NGX_DISABLE_EVENT) || fe->recv_mode || fe->send_mode)
    {
        return ngx_io_uring_update(fe, c, ev->log);
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

    c->read->active = 1;
    c->write->active = 1;

    fe->level = 0;

    return ngx_io_uring_update(fe, c, c->log);
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
    ngx_event_t        *rev;
    ngx_queue_t        *queue;
    ngx_connection_t   *c;

    timeout = ngx_io_uring_prepare_pass(cycle, timer);

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                   "io_uring timer: %d", timeout);

    nevents = 0;
    event_pass++;
    ngx_io_uring_dispatching = 1;

    n = rp_engine_wait(ngx_io_uring_engine, timeout);

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

        /* what the last handler left in the upstream keepalive cache */

        if (!ngx_queue_empty(&ngx_io_uring_unread_queue)) {
            ngx_io_uring_idle_close();
        }

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

            /*
             * RP_RDHUP: a poll saw the peer's FIN, or the receive queue
             * ends with EOF or an error, which ngx_http_test_reading() and
             * the upstream's broken connection check must see as epoll's
             * EPOLLRDHUP
             */

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

        if (revents & (RP_OUT|NGX_IO_URING_SENT)) {
            ngx_io_uring_write_event(cycle, c, instance, revents, flags);
        }
    }

    if (!ngx_queue_empty(&ngx_io_uring_unread_queue)) {
        ngx_io_uring_idle_close();
    }

    ngx_io_uring_dispatching = 0;

    return rc;
}


/*
 * Before the wait: one-shot polls that fired in the last pass and are
 * still wanted are re-armed, input nginx left unread may leave the ring's
 * buffers, and drained send queues post their write events, in which case
 * the wait must not block.  Returns the wait's timeout, -1 for none.
 */

static int
ngx_io_uring_prepare_pass(ngx_cycle_t *cycle, ngx_msec_t timer)
{
    ngx_queue_t        *q;
    ngx_io_uring_fd_t  *fe;

    while (!ngx_queue_empty(&rearm_queue)) {
        q = ngx_queue_head(&rearm_queue);
        fe = ngx_queue_data(q, ngx_io_uring_fd_t, rearm);

        ngx_queue_remove(q);
        fe->on_rearm = 0;

        if (fe->rf && fe->events && rp_poll_armed(fe->rf) == 0) {
            (void) ngx_io_uring_arm(fe, fe->events, fe->level, cycle->log);
        }
    }

    ngx_io_uring_spill(cycle->log);

    if (!ngx_queue_empty(&ngx_io_uring_drained_queue)
        && ngx_io_uring_drained())
    {
        timer = 0;
    }

    if (timer == NGX_TIMER_INFINITE) {
        return -1;
    }

    return (int) ngx_min(timer, (ngx_msec_t) NGX_MAX_INT32_VALUE);
}


/*
 * The write side of a connection's entry: the send queue drained (or
 * failed) while nginx waited for it, or a poll saw room.
 */

static void
ngx_io_uring_write_event(ngx_cycle_t *cycle, ngx_connection_t *c,
    ngx_int_t instance, unsigned revents, ngx_uint_t flags)
{
    ngx_event_t        *wev;
    ngx_io_uring_fd_t  *fe;

    wev = c->write;

    if (c->fd == -1 || wev->instance != instance) {

        /*
         * the read handler closed the connection (one entry carries
         * all of a pass's events for a connection), or closed it and
         * reused it for another
         */

        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                       "io_uring: stale event %p", c);
        return;
    }

    if (revents & NGX_IO_URING_SENT) {

        /*
         * the send queue drained (or failed) while nginx waited for it:
         * a write event even if nginx never added one, as the wait may
         * be for c->buffered only
         */

        wev->ready = 1;

        if (flags & NGX_POST_EVENTS) {
            ngx_post_event(wev, &ngx_posted_events);

        } else {
            wev->handler(wev);
        }

        return;
    }

    if ((revents & RP_OUT) && wev->active) {

        fe = ngx_io_uring_fd(c->fd, 0, cycle->log);

        if (fe && fe->rf && fe->send_mode) {

            /*
             * the poll is there for nginx's own sendfile; while the
             * queue holds bytes its drain posts the write event
             */

            if (fe->os_wait) {
                fe->os_wait = 0;
                (void) ngx_io_uring_update(fe, c, cycle->log);
            }

            if (rp_send_pending(fe->rf)) {
                return;
            }
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


/*
 * The engine's callback runs inside rp_engine_wait(): it only records the
 * event, so nginx's handlers run after the engine has finished reaping, as
 * they do after epoll_wait().  The engine never calls it for a closed fd.
 */

static void
ngx_io_uring_event_handler(rp_engine_t *e, rp_fd_t *f, void *data,
    enum rp_event ev, int res)
{
    ngx_connection_t      *c;
    ngx_io_uring_fd_t     *fe;

    fe = data;

    if (ev == RP_EV_SEND) {
        if (!ngx_io_uring_sent(fe, f, res)) {
            return;
        }

    } else if (ev == RP_EV_RECV) {

        /* data, EOF or an error is queued: the read event is ready */

        if (!fe->on_held && rp_recv_queued(f)) {
            fe->on_held = 1;
            ngx_queue_insert_tail(&ngx_io_uring_held_queue, &fe->held);
        }

        /* input for a connection in the upstream keepalive cache */

        c = fe->conn;

        if (c->idle && c->listening == NULL) {
            ngx_io_uring_unread_add(fe);
        }

        res = RP_IN;

        if (rp_recv_peer_closed(f)) {
            res |= RP_RDHUP;
        }
    }

    if (fe->pass == event_pass && fe->index < nevents) {

        /* the connection's entry of this pass: what it reports adds up */

        if (ev == RP_EV_SEND) {
            event_list[fe->index].revents |= RP_OUT|NGX_IO_URING_SENT;

        } else if (res < 0) {
            event_list[fe->index].revents |= RP_ERR|RP_HUP;

        } else {
            event_list[fe->index].revents |= (unsigned) res;
        }

        goto armed;
    }

    if (nevents == event_list_size) {

        /* cannot be: one entry per connection, connection_n + 1 of them */

        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "io_uring: event list of %ui full, event on fd:%d "
                      "lost", event_list_size, fe->conn->fd);
        return;
    }

    fe->pass = event_pass;
    fe->index = nevents;

    event_list[nevents].data = (void *) ((uintptr_t) fe->conn | fe->instance);

    if (ev == RP_EV_SEND) {
        event_list[nevents].revents = RP_OUT|NGX_IO_URING_SENT;

    } else if (res < 0) {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, -res,
                       "io_uring poll failed on fd:%d ev:%04XD",
                       fe->conn->fd, fe->events);

        event_list[nevents].revents = RP_ERR|RP_HUP;

    } else {
        event_list[nevents].revents = (unsigned) res;
    }

    nevents++;

armed:

    if (ev != RP_EV_POLL) {
        return;
    }

    /*
     * a one-shot poll has fired: re-armed at the start of the next pass,
     * after nginx has handled it; a failed poll is left to nginx's handler,
     * re-arming it would only fail again
     */

    if (res >= 0 && fe->events && !fe->on_rearm && rp_poll_armed(f) == 0) {
        fe->on_rearm = 1;
        ngx_queue_insert_tail(&rearm_queue, &fe->rearm);
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

        pages = ngx_io_uring_fault() ? NULL
                : ngx_calloc(sizeof(ngx_io_uring_fd_t *) * n, log);
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

        fd_pages[p] = ngx_io_uring_fault() ? NULL
                      : ngx_calloc(sizeof(ngx_io_uring_fd_t)
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

        (void) rp_poll(ngx_io_uring_engine, fe->rf, 0, RP_POLL_ONESHOT);

        ngx_io_uring_close(fe);
    }

    if (fe->rf == NULL) {
        fe->rf = rp_fd_open(ngx_io_uring_engine, c->fd, fe);

        if (fe->rf == NULL) {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "rp_fd_open(%d) failed", c->fd);
            return NULL;
        }

        fe->events = 0;
        fe->level = 0;
        fe->recv_mode = 0;
        fe->send_mode = 0;
        fe->os_wait = 0;
        fe->wait_space = 0;
        fe->wait_drain = 0;
        fe->sent = 0;
        fe->direct = 0;
    }

    /* as epoll's data.ptr: the latest connection added on the descriptor */

    if (fe->conn != c) {
        fe->pass = 0;          /* no merging into another's entry */
    }

    fe->conn = c;
    fe->instance = c->read->instance;

    return fe;
}


static ngx_int_t
ngx_io_uring_arm(ngx_io_uring_fd_t *fe, unsigned events, ngx_uint_t level,
    ngx_log_t *log)
{
    int  rc;

    if (fe->on_rearm) {
        ngx_queue_remove(&fe->rearm);
        fe->on_rearm = 0;
    }

    if (events == fe->events && level == fe->level
        && rp_poll_armed(fe->rf) == events)
    {
        return NGX_OK;
    }

    fe->events = events;
    fe->level = level;

    rc = rp_poll(ngx_io_uring_engine, fe->rf, events,
                 level ? RP_POLL_ONESHOT : RP_POLL_MULTISHOT);

    if (rc < 0) {
        ngx_log_error(NGX_LOG_ALERT, log, -rc, "rp_poll(%d, %04XD, %s) failed",
                      rp_fd_fileno(fe->rf), events,
                      level ? "oneshot" : "multishot");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The poll mask follows what nginx wants, less what completion mode does
 * itself: no IN|RDHUP once the receive is armed, OUT only while nginx's own
 * sendfile waits for room.
 */

ngx_int_t
ngx_io_uring_update(ngx_io_uring_fd_t *fe, ngx_connection_t *c,
    ngx_log_t *log)
{
    unsigned  events;

    events = 0;

    if (c->read && c->read->active && !fe->recv_mode) {
        events |= RP_IN|RP_RDHUP;
    }

    if (c->write && c->write->active && (!fe->send_mode || fe->os_wait)) {
        events |= RP_OUT;
    }

    return ngx_io_uring_arm(fe, events, fe->level, log);
}


/*
 * Bytes nginx handed to the send queue are sent before the FIN
 * (RP_CLOSE_FLUSH: the engine goes on with a duplicate descriptor); the
 * receive and the poll are cancelled at once, so close() really closes.
 */

static void
ngx_io_uring_close(ngx_io_uring_fd_t *fe)
{
    if (fe->on_rearm) {
        ngx_queue_remove(&fe->rearm);
        fe->on_rearm = 0;
    }

    if (fe->on_held) {
        ngx_queue_remove(&fe->held);
        fe->on_held = 0;
    }

    if (fe->on_unread) {
        ngx_queue_remove(&fe->unread);
        fe->on_unread = 0;
    }

    if (fe->on_drained) {
        ngx_queue_remove(&fe->drained);
        fe->on_drained = 0;
    }

    if (fe->spill) {
        ngx_free(fe->spill);
        fe->spill = NULL;
    }

    fe->spill_size = 0;
    fe->spill_pos = 0;
    fe->spill_last = 0;
    fe->stopped = 0;

    rp_fd_close(ngx_io_uring_engine, fe->rf,
                fe->send_mode ? RP_CLOSE_FLUSH : 0);

    fe->rf = NULL;
    fe->conn = NULL;
    fe->events = 0;
    fe->recv_mode = 0;
    fe->send_mode = 0;
    fe->os_wait = 0;
    fe->wait_space = 0;
    fe->wait_drain = 0;
    fe->sent = 0;
    fe->direct = 0;
    fe->pass = 0;
}


/*
 * The side-table slot of a connection whose I/O may run in completion
 * mode: a stream socket with events, on a worker with a ring and provided
 * buffers, not a mail listener's (STARTTLS).  NULL: nginx's own ngx_os_io.
 */

ngx_io_uring_fd_t *
ngx_io_uring_conn(ngx_connection_t *c)
{
    if (!completion || ngx_io_uring_engine == NULL || c->fd < 0
        || c->type != SOCK_STREAM || c->read == NULL || c->write == NULL)
    {
        return NULL;
    }

    if (c->listening && mail_init_connection
        && c->listening->handler == mail_init_connection)
    {
        return NULL;
    }

    return ngx_io_uring_open(c, c->log);
}


/* the module's own counters, after the engine's */

u_char *
ngx_io_uring_counters_format(u_char *p, u_char *last)
{
    return ngx_slprintf(p, last, " bufs=%ui completion_reads=%ui "
                        "completion_sends=%ui sendfile_sends=%ui "
                        "direct_send_conns=%ui "
                        "readiness_reads=%ui spills=%ui preads=%ui "
                        "idle_closes=%ui stale_reuses=%ui",
                        (ngx_uint_t) (ngx_io_uring_engine
                                      ? rp_bufs_total(ngx_io_uring_engine)
                                      : 0),
                        ngx_io_uring_counters.recv_conns,
                        ngx_io_uring_counters.send_conns,
                        ngx_io_uring_counters.os_sends,
                        ngx_io_uring_counters.direct_conns,
                        ngx_io_uring_counters.readiness,
                        ngx_io_uring_counters.spills,
                        ngx_io_uring_counters.preads,
                        ngx_io_uring_counters.idle_closes,
                        ngx_io_uring_counters.stale_reuses);
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
    iocf->completion = NGX_CONF_UNSET;

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
    ngx_conf_init_value(iocf->completion, 1);

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
