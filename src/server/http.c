/* http.c -- libmicrohttpd front end (see http.h).
 * Thread per connection: a route may block while a generation runs, and a stream's reader may
 * wait for the next token; connection count and per-address count are capped so that this
 * cannot exhaust threads, and an idle timeout closes slow-header (slowloris) clients.
 * Streams are reference counted between the producer (the scheduler thread) and the response
 * (the connection thread); whichever lets go last frees the stream. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "util/xalloc.h"

/* ===== Types ================================================================================== */

struct hdr {
    char *name, *value; /* owned */
};

struct http_req {
    struct http_server *srv;        /* borrowed */
    struct MHD_Connection *conn;    /* borrowed; valid until the completed callback */
    char method[16];
    char *path;                     /* owned */
    struct buf body;                /* owned request body */
    bool too_large;                 /* body exceeded cfg.max_body: answered with 413 */
    uint64_t dropped;               /* body bytes received in all */
    bool replied;                   /* one reply per request */
    int status;                     /* status of the reply */
    char client[INET6_ADDRSTRLEN];  /* peer address */
    struct hdr *hdrs;               /* owned extra response headers */
    size_t n_hdrs;
};

/* One open connection, for the watchdog: libmicrohttpd's own timeout only measures silence, so
 * a client that sends one header byte every few seconds would hold a thread forever. */
struct http_conn {
    int fd;                         /* the connection's socket (owned by MHD) */
    double since;                   /* monotonic time the current request's headers began */
    bool in_request;                /* headers complete: the request is being handled */
    struct http_conn *prev, *next;  /* list in http_server.conns, guarded by conns_mu */
};

struct http_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* signalled on write, end and cancel */
    struct buf pending;             /* written by the producer, not yet sent */
    size_t sent;                    /* bytes of pending already handed to MHD */
    bool ended;                     /* producer called http_stream_end */
    bool cancelled;                 /* client went away or response freed */
    int refs;                       /* producer + response */
    struct MHD_Connection *conn;    /* for the disconnect check; NULL once the response is freed */
};

/* ===== Small helpers ========================================================================== */

static int
socket_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 1;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return 1;
    if (p.revents & POLLIN) {
        char c;
        ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0;
    }
    return 0;
}

static void
add_common_headers(struct http_req *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    for (size_t i = 0; i < r->n_hdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
}

static void
queue(struct http_req *r, int status, struct MHD_Response *resp)
{
    add_common_headers(r, resp);
    r->replied = true;
    r->status = status;
    (void)MHD_queue_response(r->conn, (unsigned)status, resp); /* fails only if the client left */
    MHD_destroy_response(resp);
}

/* ===== Replies ================================================================================ */

void
http_add_header(struct http_req *r, const char *name, const char *value)
{
    r->hdrs = xrealloc(r->hdrs, (r->n_hdrs + 1) * sizeof *r->hdrs);
    r->hdrs[r->n_hdrs].name = xstrdup(name);
    r->hdrs[r->n_hdrs].value = xstrdup(value);
    r->n_hdrs++;
}

void
http_reply(struct http_req *r, int status, const char *content_type, const void *body, size_t len)
{
    if (r->replied)
        return;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return;
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    queue(r, status, resp);
}

void
http_reply_json(struct http_req *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) {
        http_reply(r, 500, "application/json",
                   "{\"error\":{\"message\":\"could not encode response\",\"type\":\"server_error\"}}",
                   76);
        return;
    }
    size_t n = strlen(s);
    http_reply(r, status, "application/json", s, n);
    free(s);
}

void
http_reply_error(struct http_req *r, int status, const char *type, const char *param,
                 const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:s,s:s,s:o,s:o}", "message", msg, "type", type, "param",
                            param ? json_string(param) : json_null(), "code",
                            code ? json_string(code) : json_null());
    /* a message with invalid UTF-8 (echoed from input) cannot be packed: say so instead */
    if (!err)
        err = json_pack("{s:s,s:s,s:n,s:n}", "message", "invalid request", "type", type,
                        "param", "code");
    http_reply_json(r, status, json_pack("{s:o}", "error", err));
}

int
http_last_status(const struct http_req *r)
{
    return r->status;
}

/* ===== Streams ================================================================================ */

static void
stream_unref(struct http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left > 0)
        return;
    buf_free(&st->pending);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct http_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        size_t avail = st->pending.len - st->sent;
        if (avail > 0) {
            size_t n = avail < max ? avail : max;
            memcpy(out, st->pending.data + st->sent, n);
            st->sent += n;
            if (st->sent == st->pending.len) {
                buf_reset(&st->pending);
                st->sent = 0;
            }
            pthread_mutex_unlock(&st->mu);
            return (ssize_t)n;
        }
        if (st->ended) {
            pthread_mutex_unlock(&st->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (st->cancelled) {
            pthread_mutex_unlock(&st->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        /* wake up regularly to notice a client that hung up while nothing was being sent,
         * so its generation slot is freed at once rather than at the next token */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&st->cv, &st->mu, &ts);
        if (st->conn && socket_gone(st->conn)) {
            st->cancelled = true;
            pthread_mutex_unlock(&st->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void
stream_free(void *cls)
{
    struct http_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    if (!st->ended)
        st->cancelled = true;
    st->conn = NULL;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

struct http_stream *
http_reply_stream(struct http_req *r, int status, const char *content_type)
{
    if (r->replied)
        return NULL;
    struct http_stream *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    buf_init(&st->pending);
    st->refs = 2;
    st->conn = r->conn;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!resp) {
        st->refs = 1;
        st->cancelled = true;
        return st;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    queue(r, status, resp);
    return st;
}

bool
http_stream_write(struct http_stream *st, const void *p, size_t n)
{
    pthread_mutex_lock(&st->mu);
    bool ok = !st->cancelled;
    if (ok) {
        buf_append(&st->pending, p, n);
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return ok;
}

bool
http_stream_printf(struct http_stream *st, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    bool ok = http_stream_write(st, s, (size_t)n);
    free(s);
    return ok;
}

bool
http_stream_cancelled(struct http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    bool c = st->cancelled;
    pthread_mutex_unlock(&st->mu);
    return c;
}

void
http_stream_end(struct http_stream *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->ended = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

/* ===== Request accessors ====================================================================== */

const char *
http_method(const struct http_req *r)
{
    return r->method;
}

const char *
http_path(const struct http_req *r)
{
    return r->path;
}

const char *
http_header(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
http_client(const struct http_req *r)
{
    return r->client;
}

const struct buf *
http_body(const struct http_req *r)
{
    return &r->body;
}

bool
http_client_gone(struct http_req *r)
{
    return socket_gone(r->conn) != 0;
}

/* ===== MHD callbacks ========================================================================== */

static void
req_free(struct http_req *r)
{
    if (!r)
        return;
    buf_free(&r->body);
    free(r->path);
    for (size_t i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    free(r);
}

static void
peer_address(struct MHD_Connection *c, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct http_conn *
conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void
conn_mark(struct http_server *s, struct MHD_Connection *conn, bool in_request)
{
    struct http_conn *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&s->conns_mu);
    c->in_request = in_request;
    c->since = mono_now();
    pthread_mutex_unlock(&s->conns_mu);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->srv = s;
        r->conn = conn;
        snprintf(r->method, sizeof r->method, "%s", method);
        const char *q = strchr(url, '?');
        r->path = q ? xstrndup(url, (size_t)(q - url)) : xstrdup(url);
        buf_init(&r->body);
        peer_address(conn, r->client, sizeof r->client);
        *con_cls = r;
        conn_mark(s, conn, true);
        /* refuse an announced oversize body before reading any of it */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            unsigned long long n = 0;
            const char *p = cl;
            while (*p >= '0' && *p <= '9' && n < (1ull << 62))
                n = n * 10 + (unsigned)(*p++ - '0');
            if (n > s->cfg.max_body) {
                r->too_large = true;
                /* A modest excess is read and dropped so that the client, still sending, gets
                 * to read the 413; a huge one is answered at once and the connection closed. */
                if (n > 16 * (unsigned long long)s->cfg.max_body)
                    http_reply_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                                     "request body of %llu bytes exceeds the limit of %zu bytes",
                                     n, s->cfg.max_body);
            }
        }
        return MHD_YES;
    }
    r->conn = conn;
    if (*upload_size > 0) {
        if (!r->too_large && r->body.len + *upload_size > s->cfg.max_body) {
            r->too_large = true;
            buf_free(&r->body);
        }
        if (!r->too_large)
            buf_append(&r->body, upload, *upload_size);
        r->dropped += *upload_size;
        *upload_size = 0;
        /* stop reading a body that keeps coming long after the limit */
        if (r->too_large && !r->replied && r->dropped > 16 * (uint64_t)s->cfg.max_body)
            http_reply_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                             "request body exceeds the limit of %zu bytes", s->cfg.max_body);
        return MHD_YES;
    }
    if (r->too_large && !r->replied) {
        http_reply_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                         "request body exceeds the limit of %zu bytes", s->cfg.max_body);
        return MHD_YES;
    }
    if (r->replied)
        return MHD_YES;
    s->route(s->app, r);
    if (!r->replied)
        http_reply_error(r, 500, "server_error", NULL, NULL, "no response was produced");
    return MHD_YES;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *c = xcalloc(1, sizeof *c);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        c->since = mono_now();
        pthread_mutex_lock(&s->conns_mu);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->conns_mu);
        *socket_ctx = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_ctx) {
        struct http_conn *c = *socket_ctx;
        pthread_mutex_lock(&s->conns_mu);
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&s->conns_mu);
        free(c);
        *socket_ctx = NULL;
    }
}

/* Once a second: shut down connections whose request headers have been arriving for longer
 * than header_timeout_s. shutdown() (not close) makes MHD's own thread see the end of the
 * stream and release the connection through its normal path. */
static void *
watchdog_main(void *arg)
{
    struct http_server *s = arg;
    double limit = s->cfg.header_timeout_s > 0 ? s->cfg.header_timeout_s : 15;
    pthread_mutex_lock(&s->conns_mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->stop_cv, &s->conns_mu, &ts);
        double now = mono_now();
        for (struct http_conn *c = s->conns; c; c = c->next)
            if (!c->in_request && c->fd >= 0 && now - c->since > limit) {
                (void)shutdown(c->fd, SHUT_RDWR); /* best effort: the client may be gone */
                c->since = now;                   /* do not repeat every second */
            }
    }
    pthread_mutex_unlock(&s->conns_mu);
    return NULL;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    (void)toe;
    conn_mark(s, conn, false); /* keep-alive: the next request's headers start now */
    req_free(*con_cls);
    *con_cls = NULL;
}

static void
on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap; /* MHD's own diagnostics (e.g. a client resetting a connection) are not errors */
}

/* ===== Lifecycle ============================================================================== */

int
http_start(struct http_server *s, const struct http_config *cfg, http_route_fn route, void *app,
           struct al_err *e)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->route = route;
    s->app = app;
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_cond_init(&s->stop_cv, NULL);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)cfg->port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, cfg->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)cfg->port);
        sl = sizeof *s6;
        flags |= MHD_USE_IPv6;
    } else {
        return al_errf(e, AL_EUSAGE, "--host '%s' is not a numeric IPv4 or IPv6 address",
                       cfg->host);
    }
    (void)sl;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->max_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL, MHD_OPTION_END);
    if (!d)
        return al_errf(e, AL_EIO, "cannot listen on %s port %d (in use, or not permitted)",
                       cfg->host, cfg->port);
    s->daemon = d;
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0)
        s->watchdog_running = true;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return 0;
}

void
http_stop(struct http_server *s)
{
    if (s->watchdog_running) {
        pthread_mutex_lock(&s->conns_mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->stop_cv);
        pthread_mutex_unlock(&s->conns_mu);
        pthread_join(s->watchdog, NULL);
        s->watchdog_running = false;
    }
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
