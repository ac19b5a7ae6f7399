
/*
 * ringplug: the $io_uring_stats variable, built into the io_uring event
 * module's object when nginx has HTTP.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>
#include <ngx_event_io_uring.h>


static ngx_int_t ngx_http_io_uring_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_io_uring_stats_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


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

    if (ngx_io_uring_engine == NULL) {
        v->data = (u_char *) "off";
        v->len = sizeof("off") - 1;

    } else {
        len = 640;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        rp_engine_stats(ngx_io_uring_engine, &st);

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
