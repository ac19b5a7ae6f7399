
/*
 * ringplug: what the parts of the io_uring event module share.
 *
 * ngx_event_io_uring_module.c   the event actions, the ring's callback and
 *                               the side table of descriptors
 * ngx_event_io_uring_recv.c     completion mode's recv and recv_chain
 * ngx_event_io_uring_send.c     completion mode's send and send_chain
 * ngx_http_io_uring_module.c    the $io_uring_stats variable
 */


#ifndef _NGX_EVENT_IO_URING_H_INCLUDED_
#define _NGX_EVENT_IO_URING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <ringplug.h>


/*
 * Fault injection, in a test build only (make module-faults: core and this
 * module with -DRP_FAULT_INJECTION): `env RP_FAIL_ALLOC=n;` fails the n-th
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


/*
 * A descriptor's entry in the side table, indexed by fd.  It is linked into
 * the worker's queues by the field named as the queue (rearm_queue,
 * ngx_io_uring_held_queue, ...) while its on_ bit is set.
 */

typedef struct {
    rp_fd_t             *rf;
    ngx_connection_t    *conn;
    ngx_queue_t          rearm;       /* a one-shot poll fired: re-arm it */
    ngx_queue_t          held;        /* holds ring buffers: may spill */
    ngx_queue_t          unread;      /* has input nginx left: may be idle */
    ngx_queue_t          drained;     /* send queue drained: post a write */
    u_char              *spill;       /* unread bytes moved off the ring */
    size_t               spill_size;
    size_t               spill_pos;
    size_t               spill_last;
    unsigned             events;      /* RP_* mask nginx wants */
    unsigned             instance:1;
    unsigned             level:1;     /* one-shot, re-armed after it fires */
    unsigned             recv_mode:1; /* read side in completion mode */
    unsigned             send_mode:1; /* writes go to the send queue */
    unsigned             os_wait:1;   /* sendfile said EAGAIN: poll OUT */
    unsigned             wait_space:1;
    unsigned             wait_drain:1;
    unsigned             on_rearm:1;
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


/* ngx_event_io_uring_module.c */
ngx_io_uring_fd_t *ngx_io_uring_conn(ngx_connection_t *c);
ngx_int_t ngx_io_uring_update(ngx_io_uring_fd_t *fe, ngx_connection_t *c,
    ngx_log_t *log);
u_char *ngx_io_uring_counters_format(u_char *p, u_char *last);

/* ngx_event_io_uring_recv.c */
ssize_t ngx_io_uring_recv(ngx_connection_t *c, u_char *buf, size_t size);
ssize_t ngx_io_uring_recv_chain(ngx_connection_t *c, ngx_chain_t *chain,
    off_t limit);
void ngx_io_uring_spill(ngx_log_t *log);
ngx_uint_t ngx_io_uring_unread(ngx_io_uring_fd_t *fe);
void ngx_io_uring_unread_add(ngx_io_uring_fd_t *fe);
void ngx_io_uring_idle_close(void);
void ngx_io_uring_idle_handler(ngx_event_t *ev);

/* ngx_event_io_uring_send.c */
ssize_t ngx_io_uring_send(ngx_connection_t *c, u_char *buf, size_t size);
ngx_chain_t *ngx_io_uring_send_chain(ngx_connection_t *c, ngx_chain_t *in,
    off_t limit);
ngx_uint_t ngx_io_uring_sent(ngx_io_uring_fd_t *fe, rp_fd_t *f, int res);
ngx_uint_t ngx_io_uring_drained(void);


extern ngx_module_t              ngx_event_io_uring_module;

extern rp_engine_t              *ngx_io_uring_engine;
extern ngx_io_uring_counters_t   ngx_io_uring_counters;
extern size_t                    ngx_io_uring_recv_max;

extern ngx_queue_t               ngx_io_uring_held_queue;
extern ngx_queue_t               ngx_io_uring_unread_queue;
extern ngx_queue_t               ngx_io_uring_drained_queue;

extern ngx_event_t               ngx_io_uring_idle_event;
extern ngx_uint_t                ngx_io_uring_dispatching;


#endif /* _NGX_EVENT_IO_URING_H_INCLUDED_ */
