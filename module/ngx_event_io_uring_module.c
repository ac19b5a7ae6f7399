
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
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <dlfcn.h>
#include <malloc.h>
#include <sys/eventfd.h>

#if (NGX_IO_URING_HTTP)
#include <ngx_http.h>
#endif

#include <ringplug.h>


/*
 * Fault injection, in a test build only (make module-faults: core and this
 * file with -DRP_FAULT_INJECTION): `env RP_FAIL_ALLOC=n;` fails the n-th
 * allocation a worker's engine or this module makes, counted from the
 * worker's init; the worker's exit line says how many there were.
 */
#ifdef RP_FAULT_INJECTION
int rp_fault_alloc(void);
void rp_fault_set(long nth);
long rp_fault_count(void);
#define ngx_io_uring_fault()  rp_fault_alloc()
#else
#define ngx_io_uring_fault()  0
#endif


/* side-table pages never move, so rp_fd data may point into them */
#define NGX_IO_URING_FD_PAGE  1024

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

/* event record flag: the send queue drained (or failed), not a poll */
#define NGX_IO_URING_SENT      0x10000


typedef struct {
    ngx_int_t            entries;
    ngx_bufs_t           buffers;
    ngx_flag_t           fallback;
    ngx_flag_t           completion;
} ngx_io_uring_conf_t;


typedef struct {
    rp_fd_t             *rf;
    ngx_connection_t    *conn;
    ngx_queue_t          queue;       /* in rearm_queue */
    ngx_queue_t          held;        /* in held_queue: holds ring buffers */
    ngx_queue_t          unread;      /* in unread_queue: may be idle */
    ngx_queue_t          drained;     /* in drained_queue */
    u_char              *spill;       /* unread bytes moved off the ring */
    size_t               spill_size;
    size_t               spill_pos;
    size_t               spill_last;
    unsigned             events;      /* RP_* mask nginx wants */
    unsigned             instance:1;
    unsigned             level:1;     /* one-shot, re-armed after it fires */
    unsigned             rearm:1;
    unsigned             recv_mode:1; /* read side in completion mode */
    unsigned             send_mode:1; /* writes go to the send queue */
    unsigned             os_wait:1;   /* sendfile said EAGAIN: poll OUT */
    unsigned             wait_space:1;
    unsigned             wait_drain:1;
    unsigned             on_held:1;
    unsigned             on_unread:1;
    unsigned             on_drained:1;
    unsigned             stopped:1;   /* receive stopped: spill is full */
    unsigned             sent:1;      /* bytes went out: c->sent 0 is reuse */
    unsigned             direct:1;    /* writes by nginx's own send_chain */
    ngx_uint_t           pass;        /* the pass of event_list[index] */
    ngx_uint_t           index;
} ngx_io_uring_fd_t;


typedef struct {
    ngx_uint_t           recv_conns;  /* read sides put in completion mode */
    ngx_uint_t           send_conns;
    ngx_uint_t           os_sends;    /* file chains sent by nginx's own */
    ngx_uint_t           direct_conns; /* HTTP/2: writes by nginx's own */
    ngx_uint_t           preads;      /* small files read into the queue */
    ngx_uint_t           readiness;   /* stream sockets left in readiness */
    ngx_uint_t           spills;      /* unread queues moved off the ring */
    ngx_uint_t           idle_closes; /* idle upstreams with input closed */
    ngx_uint_t           stale_reuses; /* reused with input: send refused */
} ngx_io_uring_counters_t;


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
static ngx_uint_t ngx_io_uring_sent(ngx_io_uring_fd_t *fe, rp_fd_t *f,
    int res);
static ngx_io_uring_fd_t *ngx_io_uring_fd(ngx_socket_t fd, ngx_uint_t create,
    ngx_log_t *log);
static ngx_io_uring_fd_t *ngx_io_uring_open(ngx_connection_t *c,
    ngx_log_t *log);
static ngx_int_t ngx_io_uring_arm(ngx_io_uring_fd_t *fe, unsigned events,
    ngx_uint_t level, ngx_log_t *log);
static ngx_int_t ngx_io_uring_update(ngx_io_uring_fd_t *fe,
    ngx_connection_t *c, ngx_log_t *log);
static void ngx_io_uring_close(ngx_io_uring_fd_t *fe);

static ngx_io_uring_fd_t *ngx_io_uring_conn(ngx_connection_t *c);
static ssize_t ngx_io_uring_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static ssize_t ngx_io_uring_recv_chain(ngx_connection_t *c,
    ngx_chain_t *chain, off_t limit);
static ssize_t ngx_io_uring_recv_queued(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, ngx_chain_t *chain, u_char *buf, size_t size,
    off_t limit);
static void ngx_io_uring_recv_enter(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, ssize_t n);
static size_t ngx_io_uring_recv_copy(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe, u_char *dst, size_t len);
static void ngx_io_uring_spill(ngx_log_t *log);
static ngx_uint_t ngx_io_uring_unread(ngx_io_uring_fd_t *fe);
static void ngx_io_uring_unread_add(ngx_io_uring_fd_t *fe);
static void ngx_io_uring_idle_close(void);
static ngx_uint_t ngx_io_uring_drained(void);
static void ngx_io_uring_idle_handler(ngx_event_t *ev);
static ssize_t ngx_io_uring_send(ngx_connection_t *c, u_char *buf,
    size_t size);
static ngx_chain_t *ngx_io_uring_send_chain(ngx_connection_t *c,
    ngx_chain_t *in, off_t limit);
static void ngx_io_uring_send_enter(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_int_t ngx_io_uring_send_failed(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_uint_t ngx_io_uring_send_stale(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static void ngx_io_uring_buffered(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static ngx_uint_t ngx_io_uring_preadable(ngx_chain_t *in);
static ngx_uint_t ngx_io_uring_direct(ngx_connection_t *c,
    ngx_io_uring_fd_t *fe);
static u_char *ngx_io_uring_counters_format(u_char *p, u_char *last);

static char *ngx_io_uring_buffers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_io_uring_create_conf(ngx_cycle_t *cycle);
static char *ngx_io_uring_init_conf(ngx_cycle_t *cycle, void *conf);
static void ngx_io_uring_exit_process(ngx_cycle_t *cycle);

#if (NGX_IO_URING_HTTP)
static ngx_int_t ngx_http_io_uring_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_io_uring_stats_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
#endif


#if (NGX_HAVE_EPOLL)
extern ngx_module_t  ngx_epoll_module;
#endif


static rp_engine_t           *engine;

static ngx_io_uring_event_t  *event_list;
static ngx_uint_t             nevents;
static ngx_uint_t             event_list_size;
static ngx_uint_t             event_pass;

static ngx_io_uring_fd_t    **fd_pages;
static ngx_uint_t             fd_npages;

static ngx_queue_t            rearm_queue;
static ngx_queue_t            held_queue;
static ngx_queue_t            unread_queue;
static ngx_queue_t            drained_queue;

static ngx_event_t            idle_event;
static ngx_uint_t             dispatching;

static int                    notify_fd = -1;
static ngx_event_t            notify_event;
static ngx_connection_t       notify_conn;

static ngx_uint_t             completion;
static u_char                 pread_buf[NGX_IO_URING_PREAD_MAX];
static size_t                 recv_max;
static ngx_io_uring_counters_t  counters;

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


#if (NGX_IO_URING_HTTP)

/* $io_uring_stats: the worker's engine counters, for the operator */

static ngx_http_module_t  ngx_http_io_uring_module_ctx = {
    ngx_http_io_uring_add_variables,     /* preconfiguration */
    NULL,                                /* postconfiguration */

    NULL,                                /* create main configuration */
    NULL,                                /* init main configuration */

    NULL,                                /* create server configuration */
    NULL,                                /* merge server configuration */

    NULL,                                /* create location configuration */
    NULL                                 /* merge location configuration */
};


ngx_module_t  ngx_http_io_uring_module = {
    NGX_MODULE_V1,
    &ngx_http_io_uring_module_ctx,       /* module context */
    NULL,                                /* module directives */
    NGX_HTTP_MODULE,                     /* module type */
    NULL,                                /* init master */
    NULL,                                /* init module */
    NULL,                                /* init process */
    NULL,                                /* init thread */
    NULL,                                /* exit thread */
    NULL,                                /* exit process */
    NULL,                                /* exit master */
    NGX_MODULE_V1_PADDING
};

#endif


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
    ngx_uint_t            size, created;
    rp_engine_params_t    params;
    ngx_io_uring_conf_t  *iocf;
#if (NGX_HAVE_EPOLL)
    ngx_event_module_t   *epoll;
#endif

    iocf = ngx_event_get_conf(cycle->conf_ctx, ngx_event_io_uring_module);

    created = 0;

    if (engine == NULL) {
        ngx_io_uring_params(iocf, &params);

#ifdef RP_FAULT_INJECTION
        {
            char  *v = getenv("RP_FAIL_ALLOC");

            rp_fault_set(v ? atol(v) : 0);
        }
#endif

        why[0] = '\0';

        rc = rp_engine_create(&params, ngx_io_uring_event_handler, &engine,
                              why, sizeof(why));

        if (rc < 0) {
            engine = NULL;

            /* why names the cause and the errno; else nginx names errno */

            err = why[0] ? 0 : -rc;

        fallback:

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
                rp_engine_destroy(engine);
                engine = NULL;
                err = 0;
                ngx_cpystrn((u_char *) why, (u_char *) "no memory for the "
                            "event list (ENOMEM)", sizeof(why));
                goto fallback;
            }

            return NGX_ERROR;
        }

        event_list_size = size;
    }

    if (created) {
        ngx_queue_init(&rearm_queue);
        ngx_queue_init(&held_queue);
        ngx_queue_init(&unread_queue);
        ngx_queue_init(&drained_queue);

        idle_event.handler = ngx_io_uring_idle_handler;
        idle_event.log = cycle->log;

        if (ngx_io_uring_notify_init(cycle->log) != NGX_OK) {
            ngx_io_uring_module_ctx.actions.notify = NULL;
        }

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "using %s", rp_engine_describe(engine));
    }

    completion = iocf->completion;

    if (completion) {
        ngx_io_uring_io.udp_recv = ngx_os_io.udp_recv;
        ngx_io_uring_io.udp_send = ngx_os_io.udp_send;
        ngx_io_uring_io.udp_send_chain = ngx_os_io.udp_send_chain;
        ngx_io_uring_io.flags = ngx_os_io.flags;

        ngx_io = ngx_io_uring_io;

        /*
         * a connection nginx leaves unread holds at most about this much of
         * the shared buffers: an eighth of them, 64k at most, one at least
         */

        recv_max = ngx_min((size_t) 65536,
                           (size_t) iocf->buffers.num * iocf->buffers.size / 8);
        recv_max = ngx_max(recv_max, (size_t) iocf->buffers.size);

        /*
         * the engine copies sends into 16k segments, malloc()ed and freed
         * per response: glibc's default trimming gives the heap top back
         * and page-faults it in again on every burst (3% of the worker's
         * CPU on return-200); keep up to 16m of it
         */

        (void) mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);

        mail_init_connection = (ngx_connection_handler_pt)
                                   dlsym(RTLD_DEFAULT,
                                         "ngx_mail_init_connection");

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

    if (engine == NULL) {
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

    rp_engine_stats(engine, &st);

    if (st.flushing_now && !ngx_terminate) {
        ngx_time_update();
        deadline = ngx_current_msec + 5000;

        while (st.flushing_now
               && (ngx_msec_int_t) (deadline - ngx_current_msec) > 0)
        {
            nevents = 0;
            (void) rp_engine_wait(engine, 50);
            ngx_time_update();
            rp_engine_stats(engine, &st);
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

    ngx_io_uring_spill(cycle->log);

    if (!ngx_queue_empty(&drained_queue) && ngx_io_uring_drained()) {
        timer = 0;
    }

    if (timer == NGX_TIMER_INFINITE) {
        timeout = -1;

    } else {
        timeout = (int) ngx_min(timer, (ngx_msec_t) NGX_MAX_INT32_VALUE);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                   "io_uring timer: %d", timeout);

    nevents = 0;
    event_pass++;
    dispatching = 1;

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

        /* what the last handler left in the upstream keepalive cache */

        if (!ngx_queue_empty(&unread_queue)) {
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

        if (!(revents & (RP_OUT|NGX_IO_URING_SENT))) {
            continue;
        }

        wev = c->write;

        if (c->fd == -1 || wev->instance != instance) {

            /*
             * the read handler closed the connection (one entry carries
             * all of a pass's events for a connection), or closed it and
             * reused it for another
             */

            ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cycle->log, 0,
                           "io_uring: stale event %p", c);
            continue;
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

            continue;
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
                    continue;
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

    if (!ngx_queue_empty(&unread_queue)) {
        ngx_io_uring_idle_close();
    }

    dispatching = 0;

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
            ngx_queue_insert_tail(&held_queue, &fe->held);
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

    if (res >= 0 && fe->events && !fe->rearm && rp_poll_armed(f) == 0) {
        fe->rearm = 1;
        ngx_queue_insert_tail(&rearm_queue, &fe->queue);
    }
}


/*
 * A send completed: whether nginx waits for it, for room in the queue
 * (below half the cap, as a socket buffer wakes a writer), for the queue to
 * drain (file data, c->buffered) or for an error to be reported.
 */

static ngx_uint_t
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
        ngx_queue_insert_tail(&drained_queue, &fe->drained);
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


/*
 * The poll mask follows what nginx wants, less what completion mode does
 * itself: no IN|RDHUP once the receive is armed, OUT only while nginx's own
 * sendfile waits for room.
 */

static ngx_int_t
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
    if (fe->rearm) {
        ngx_queue_remove(&fe->queue);
        fe->rearm = 0;
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

    rp_fd_close(engine, fe->rf, fe->send_mode ? RP_CLOSE_FLUSH : 0);

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

static ngx_io_uring_fd_t *
ngx_io_uring_conn(ngx_connection_t *c)
{
    if (!completion || engine == NULL || c->fd < 0 || c->type != SOCK_STREAM
        || c->read == NULL || c->write == NULL)
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


static ssize_t
ngx_io_uring_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    ssize_t             n;
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_conn(c);

    if (fe == NULL) {
        counters.readiness++;
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


static ssize_t
ngx_io_uring_recv_chain(ngx_connection_t *c, ngx_chain_t *chain, off_t limit)
{
    ssize_t             n;
    ngx_io_uring_fd_t  *fe;

    fe = ngx_io_uring_conn(c);

    if (fe == NULL) {
        counters.readiness++;
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

    rc = rp_recv_start(engine, fe->rf, recv_max);

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

    rp_recv_watch_fin(engine, fe->rf, 1);

    fe->recv_mode = 1;
    counters.recv_conns++;

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

        rc = rp_recv_start(engine, fe->rf, recv_max);

        if (rc < 0) {
            ngx_log_error(NGX_LOG_ALERT, c->log, -rc,
                          "rp_recv_start(%d) failed", c->fd);
        }
    }

    if (n < len) {
        n += rp_recv_copy(engine, fe->rf, dst + n, len - n);
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

static void
ngx_io_uring_spill(ngx_log_t *log)
{
    size_t              n, size;
    u_char             *p;
    ngx_queue_t        *q, *next;
    ngx_io_uring_fd_t  *fe;

    if (ngx_queue_empty(&held_queue)
        || rp_bufs_free(engine) >= rp_bufs_total(engine) / 2)
    {
        return;
    }

    for (q = ngx_queue_head(&held_queue);
         q != ngx_queue_sentinel(&held_queue);
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

        fe->spill_last += rp_recv_copy(engine, fe->rf,
                                       fe->spill + fe->spill_last, n);
        counters.spills++;

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, log, 0,
                       "io_uring: fd:%d %uz unread bytes spilled",
                       rp_fd_fileno(fe->rf), fe->spill_last);

        if (fe->spill_last >= recv_max && !fe->stopped
            && rp_recv_status(fe->rf) == 0)
        {
            rp_recv_stop(engine, fe->rf);
            fe->stopped = 1;
        }
    }
}


/* input nginx has not read yet: bytes (spilled or queued), EOF or an error */

static ngx_uint_t
ngx_io_uring_unread(ngx_io_uring_fd_t *fe)
{
    return fe->spill_last > fe->spill_pos || rp_recv_queued(fe->rf)
           || rp_recv_status(fe->rf);
}


static void
ngx_io_uring_unread_add(ngx_io_uring_fd_t *fe)
{
    if (!fe->on_unread) {
        fe->on_unread = 1;
        ngx_queue_insert_tail(&unread_queue, &fe->unread);
    }

    /*
     * the event loop checks after every handler it calls; from a timer or
     * a posted event the check goes first among the posted events, before
     * a request posted behind it can take the connection from the cache
     */

    if (!dispatching && !idle_event.posted) {
        idle_event.posted = 1;
        ngx_queue_insert_head(&ngx_posted_events, &idle_event.queue);
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

static void
ngx_io_uring_idle_close(void)
{
    ngx_queue_t        *q;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    while (!ngx_queue_empty(&unread_queue)) {
        q = ngx_queue_head(&unread_queue);
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

        counters.idle_closes++;

        c->close = 1;
        c->read->handler(c->read);
    }
}


/*
 * Connections whose drained queue posted a write event in the last pass and
 * still carry the bit: nothing called send_chain since, so the bit goes
 * here and the write event is posted again for the handler to see nothing
 * buffered.  Returns whether an event was posted (the wait must not block).
 */

static ngx_uint_t
ngx_io_uring_drained(void)
{
    ngx_uint_t          posted;
    ngx_queue_t        *q;
    ngx_connection_t   *c;
    ngx_io_uring_fd_t  *fe;

    posted = 0;

    while (!ngx_queue_empty(&drained_queue)) {
        q = ngx_queue_head(&drained_queue);
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


static void
ngx_io_uring_idle_handler(ngx_event_t *ev)
{
    ngx_io_uring_idle_close();
}


static ssize_t
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

    rc = rp_send(engine, fe->rf, &iov, 1, RP_SEND_COPY, NULL, NULL);

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

static ngx_chain_t *
ngx_io_uring_send_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    int                 rc, niov;
    off_t               send, size;
    size_t              pending, room, used;
    ssize_t             n;
    ngx_buf_t          *b;
    ngx_uint_t          pread;
    ngx_chain_t        *cl;
    ngx_event_t        *wev;
    rp_iovec_t          iovs[NGX_IOVS_PREALLOCATE];
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

            /*
             * a file in the chain and nothing queued: nginx's sendfile;
             * an HTTP/2 connection's writes: nginx's writev
             */

            if (!fe->direct) {
                counters.os_sends++;
            }

            in = ngx_os_io.send_chain(c, in, limit);

            if (c->sent) {
                fe->sent = 1;
            }

            if (in != NGX_CHAIN_ERROR && !wev->ready && !fe->os_wait) {
                fe->os_wait = 1;
                (void) ngx_io_uring_update(fe, c, c->log);
            }

            return in;
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
            rc = rp_send(engine, fe->rf, iovs, niov, RP_SEND_COPY, NULL, NULL);
            if (rc < 0) {
                goto failed;
            }

            niov = 0;
        }

        if (ngx_buf_in_memory(b)) {
            iovs[niov].iov_base = b->pos;

        } else {

            /*
             * a small file: one pread() into the queue costs less than
             * sendfile() with TCP_CORK around it, and keeps its place
             */

            n = ngx_read_file(b->file, pread_buf + used, (size_t) size,
                              b->file_pos);

            if (n == NGX_ERROR) {
                return NGX_CHAIN_ERROR;
            }

            if (n != size) {
                ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                              "file \"%s\" was truncated", b->file->name.data);
                return NGX_CHAIN_ERROR;
            }

            iovs[niov].iov_base = pread_buf + used;
            used += (size_t) size;
            counters.preads++;
        }

        iovs[niov].iov_len = (size_t) size;
        niov++;

        send += size;
    }

    if (niov) {
        rc = rp_send(engine, fe->rf, iovs, niov, RP_SEND_COPY, NULL, NULL);
        if (rc < 0) {
            goto failed;
        }
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

failed:

    wev->error = 1;
    (void) ngx_connection_error(c, -rc, "rp_send() failed");

    return NGX_CHAIN_ERROR;
}


static void
ngx_io_uring_send_enter(ngx_connection_t *c, ngx_io_uring_fd_t *fe)
{
    if (fe->send_mode) {
        return;
    }

    fe->send_mode = 1;
    counters.send_conns++;

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

    counters.stale_reuses++;

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
    counters.direct_conns++;

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


/* the module's own counters, after the engine's */

static u_char *
ngx_io_uring_counters_format(u_char *p, u_char *last)
{
    return ngx_slprintf(p, last, " bufs=%ui completion_reads=%ui "
                        "completion_sends=%ui sendfile_sends=%ui "
                        "direct_send_conns=%ui "
                        "readiness_reads=%ui spills=%ui preads=%ui "
                        "idle_closes=%ui stale_reuses=%ui",
                        (ngx_uint_t) (engine ? rp_bufs_total(engine) : 0),
                        counters.recv_conns, counters.send_conns,
                        counters.os_sends, counters.direct_conns,
                        counters.readiness,
                        counters.spills, counters.preads,
                        counters.idle_closes, counters.stale_reuses);
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


#if (NGX_IO_URING_HTTP)

static ngx_str_t  ngx_http_io_uring_stats_name = ngx_string("io_uring_stats");


static ngx_int_t
ngx_http_io_uring_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_http_io_uring_stats_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_io_uring_stats_variable;

    return NGX_OK;
}


static ngx_int_t
ngx_http_io_uring_stats_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char      *p;
    size_t       len;
    rp_stats_t   st;

    if (engine == NULL) {
        v->data = (u_char *) "off";
        v->len = sizeof("off") - 1;

    } else {
        len = 640;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        rp_engine_stats(engine, &st);

        v->data = p;

        p += rp_stats_format(&st, (char *) p, len);
        p = ngx_io_uring_counters_format(p, v->data + len);

        v->len = p - v->data;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}

#endif
