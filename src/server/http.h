/* http.h -- the HTTP front end over libmicrohttpd: one thread per connection, bounded bodies,
 * idle and total-header timeouts, OpenAI-shaped JSON errors, and server-sent-event streams
 * that a generation thread can write into while the connection thread sends them.
 * Owns sockets and request buffers; knows nothing about models or routes (the application's
 * route function does). Everything a client sends is untrusted. */
#ifndef AIRLOCK_SERVER_HTTP_H
#define AIRLOCK_SERVER_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"

struct http_req;
struct http_stream;

/* Called once per request after the whole body arrived (or was refused as too large: then the
 * server has already answered 413 and route is not called). Runs in the connection's thread
 * and may block. It must answer exactly once with one of the http_reply_* functions. */
typedef void (*http_route_fn)(void *app, struct http_req *r);

struct http_config {
    const char *host;          /* numeric address to bind, e.g. "127.0.0.1" or "::1" */
    int port;                  /* 0 = pick a free port (see http_port) */
    size_t max_body;           /* bytes; larger bodies get 413 */
    int max_connections;       /* simultaneous connections (threads) */
    int max_per_ip;            /* simultaneous connections from one address */
    int idle_timeout_s;        /* close a connection idle this long */
    int header_timeout_s;      /* close a connection whose request headers take longer than
                                * this, however slowly they trickle in (slowloris); 0 = 15 */
};

struct http_conn;              /* per-connection bookkeeping for the header deadline */

struct http_server {
    void *daemon;              /* struct MHD_Daemon*, owned */
    pthread_mutex_t conns_mu;  /* guards conns */
    struct http_conn *conns;   /* open connections (watchdog list) */
    pthread_t watchdog;        /* enforces header_timeout_s */
    bool watchdog_running;
    bool stopping;             /* set under conns_mu to end the watchdog */
    pthread_cond_t stop_cv;
    struct http_config cfg;    /* copy; host string borrowed */
    http_route_fn route;       /* application dispatcher */
    void *app;                 /* passed to route */
    int port;                  /* bound port */
};

int http_start(struct http_server *s, const struct http_config *cfg, http_route_fn route,
               void *app, struct al_err *e);
void http_stop(struct http_server *s); /* closes the listener and waits for connections */

/* ---- request accessors ---- */
const char *http_method(const struct http_req *r);
const char *http_path(const struct http_req *r);           /* without the query string */
const char *http_header(const struct http_req *r, const char *name); /* NULL when absent */
const char *http_client(const struct http_req *r);         /* "127.0.0.1" */
const struct buf *http_body(const struct http_req *r);
/* True once the client has gone away (checked on the socket without blocking). */
bool http_client_gone(struct http_req *r);

/* ---- replies (exactly one per request) ---- */
void http_reply(struct http_req *r, int status, const char *content_type, const void *body,
                size_t len);
/* Takes a reference to body (json_decref'd here). */
void http_reply_json(struct http_req *r, int status, json_t *body);
/* OpenAI-shaped error: {"error":{"message","type","param","code"}}. param/code may be NULL. */
void http_reply_error(struct http_req *r, int status, const char *type, const char *param,
                      const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Add a header to the next reply of r (call before http_reply*). name/value copied. */
void http_add_header(struct http_req *r, const char *name, const char *value);
int http_last_status(const struct http_req *r); /* status of the reply sent (0 if none) */

/* Start a streaming reply (e.g. text/event-stream). Returns a stream the producer writes into
 * from any thread; the connection thread sends what was written until http_stream_end. The
 * returned reference belongs to the producer and is released by http_stream_end. */
struct http_stream *http_reply_stream(struct http_req *r, int status, const char *content_type);
/* Append bytes; returns false when the client has gone (stop producing). */
bool http_stream_write(struct http_stream *st, const void *p, size_t n);
bool http_stream_printf(struct http_stream *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool http_stream_cancelled(struct http_stream *st);
void http_stream_end(struct http_stream *st); /* flush, close, release the producer's ref */

#endif
