/* metrics.c -- metrics registry and Prometheus text exposition 0.0.4 (see metrics.h).
 * Values are doubles stored as bit patterns in _Atomic uint64_t and updated by CAS, so any
 * thread may update a cached series pointer without locks. Each family has a rwlock guarding
 * only its series list (lookups and the renderer read it; a new label combination writes it).
 * The registry mutex guards only the family list (registration and rendering).
 * Label values come from the server (endpoint names, model ids) and are escaped on output;
 * nothing here reads untrusted input except /proc/self/statm. */
#include "metrics/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/parse.h"
#include "util/xalloc.h"

/* ===== Types ============================================================================== */

struct metrics_series {
    char **values;             /* n_labels owned label values; immutable after creation */
    const struct metrics_family *fam;
    _Atomic uint64_t value;    /* double bits: counter/gauge value, histogram sum */
    _Atomic uint64_t *counts;  /* histogram only: n_buckets + 1 per-bucket (non-cumulative) */
};

struct metrics_family {
    enum metrics_type type;
    char *name;                /* owned */
    char *help;                /* owned */
    char *labels[METRICS_LABELS_MAX]; /* owned names; n_labels used */
    size_t n_labels;
    double *buckets;           /* owned upper bounds (histograms), +Inf implied */
    size_t n_buckets;
    pthread_rwlock_t lock;     /* guards series/n_series/cap_series */
    struct metrics_series **series; /* owned, creation order; each series never moves */
    size_t n_series;
    size_t cap_series;
    struct metrics_family *next;    /* registration order; guarded by the registry mutex */
};

struct metrics_registry {
    pthread_mutex_t mu;             /* guards the family list */
    struct metrics_family *first;
    struct metrics_family *last;
};

/* ===== Atomic doubles ===================================================================== */

static double
bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t
double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void
atomic_double_add(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    uint64_t next;
    do {
        next = double_to_bits(bits_to_double(old) + v);
    } while (!atomic_compare_exchange_weak_explicit(a, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* ===== Names and formatting ================================================================ */

static bool
name_ok(const char *s, bool metric)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     (metric && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Shortest of %.15g / %.17g that reads back as the same double, so bounds like 0.1 print as
 * "0.1"; integers print without exponent up to 2^53. */
static void
value_put(struct buf *b, double v)
{
    if (isnan(v)) {
        buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        buf_printf(b, "%.0f", v);
        return;
    }
    char s[40];
    double back = 0;
    snprintf(s, sizeof s, "%.15g", v);
    if (parse_double(s, -DBL_MAX, DBL_MAX, "value", &back, NULL) < 0 || back != v)
        snprintf(s, sizeof s, "%.17g", v);
    buf_puts(b, s);
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void
escape_put(struct buf *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else if (quote && *s == '"')
            buf_puts(b, "\\\"");
        else
            buf_putc(b, *s);
    }
}

/* {a="x",b="y"} plus an optional le, or nothing when there are no labels at all */
static void
labels_put(struct buf *b, const struct metrics_series *s, const char *le)
{
    const struct metrics_family *f = s->fam;
    if (f->n_labels == 0 && !le)
        return;
    buf_putc(b, '{');
    for (size_t i = 0; i < f->n_labels; i++) {
        buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        escape_put(b, s->values[i], true);
        buf_putc(b, '"');
    }
    if (le)
        buf_printf(b, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    buf_putc(b, '}');
}

/* ===== Registry and families =============================================================== */

struct metrics_registry *
metrics_registry_new(void)
{
    struct metrics_registry *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void
series_free(struct metrics_series *s, size_t n_labels)
{
    for (size_t i = 0; i < n_labels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
}

static void
family_free(struct metrics_family *f)
{
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f->series[i], f->n_labels);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    pthread_rwlock_destroy(&f->lock);
    free(f->series);
    free(f->buckets);
    free(f->name);
    free(f->help);
    free(f);
}

void
metrics_registry_free(struct metrics_registry *r)
{
    if (!r)
        return;
    struct metrics_family *f = r->first;
    while (f) {
        struct metrics_family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

struct metrics_family *
metrics_family_add(struct metrics_registry *r, enum metrics_type type, const char *name,
                   const char *help, const char *const *labels, const double *buckets,
                   size_t n_buckets, struct al_err *e)
{
    size_t n_labels = 0;
    if (!name_ok(name, true)) {
        al_errf(e, AL_EUSAGE, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                name ? name : "");
        return NULL;
    }
    for (; labels && labels[n_labels]; n_labels++) {
        const char *l = labels[n_labels];
        if (n_labels == METRICS_LABELS_MAX) {
            al_errf(e, AL_ELIMIT, "%s: more than %d labels", name, METRICS_LABELS_MAX);
            return NULL;
        }
        if (!name_ok(l, false) || strncmp(l, "__", 2) == 0 ||
            (type == METRICS_HISTOGRAM && strcmp(l, "le") == 0)) {
            al_errf(e, AL_EUSAGE, "%s: label name '%s' is not allowed", name, l);
            return NULL;
        }
    }
    if (type == METRICS_HISTOGRAM) {
        if (n_buckets == 0 || n_buckets > METRICS_BUCKETS_MAX) {
            al_errf(e, AL_EUSAGE, "%s: histogram needs 1..%d buckets", name,
                    METRICS_BUCKETS_MAX);
            return NULL;
        }
        for (size_t i = 0; i < n_buckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
                al_errf(e, AL_EUSAGE, "%s: bucket %zu is not finite and increasing", name, i);
                return NULL;
            }
    } else {
        n_buckets = 0;
    }

    struct metrics_family *f = xcalloc(1, sizeof *f);
    f->type = type;
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    f->n_labels = n_labels;
    for (size_t i = 0; i < n_labels; i++)
        f->labels[i] = xstrdup(labels[i]);
    if (n_buckets) {
        f->buckets = xmalloc(n_buckets * sizeof *f->buckets);
        memcpy(f->buckets, buckets, n_buckets * sizeof *f->buckets);
    }
    f->n_buckets = n_buckets;
    pthread_rwlock_init(&f->lock, NULL);

    pthread_mutex_lock(&r->mu);
    for (struct metrics_family *g = r->first; g; g = g->next)
        if (strcmp(g->name, name) == 0) {
            pthread_mutex_unlock(&r->mu);
            family_free(f);
            al_errf(e, AL_EEXIST, "metric '%s' is already registered", name);
            return NULL;
        }
    if (r->last)
        r->last->next = f;
    else
        r->first = f;
    r->last = f;
    pthread_mutex_unlock(&r->mu);
    if (n_labels == 0)
        (void)metrics_series_get(f, NULL); /* export 0 before the first update */
    return f;
}

/* ===== Series ============================================================================== */

static bool
values_equal(const struct metrics_series *s, size_t n, const char *const *values)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(s->values[i], values[i] ? values[i] : "", METRICS_LABEL_VALUE_MAX) != 0)
            return false;
    return true;
}

static struct metrics_series *
series_find(struct metrics_family *f, const char *const *values)
{
    for (size_t i = 0; i < f->n_series; i++)
        if (values_equal(f->series[i], f->n_labels, values))
            return f->series[i];
    return NULL;
}

struct metrics_series *
metrics_series_get(struct metrics_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    pthread_rwlock_rdlock(&f->lock);
    struct metrics_series *s = series_find(f, values);
    pthread_rwlock_unlock(&f->lock);
    if (s)
        return s;

    pthread_rwlock_wrlock(&f->lock);
    s = series_find(f, values); /* another thread may have added it meanwhile */
    if (s || f->n_series >= METRICS_SERIES_MAX)
        goto out;
    s = xcalloc(1, sizeof *s);
    s->fam = f;
    s->values = xcalloc(f->n_labels ? f->n_labels : 1, sizeof *s->values);
    for (size_t i = 0; i < f->n_labels; i++)
        s->values[i] = xstrndup(values[i] ? values[i] : "", METRICS_LABEL_VALUE_MAX);
    if (f->type == METRICS_HISTOGRAM)
        s->counts = xcalloc(f->n_buckets + 1, sizeof *s->counts);
    if (f->n_series == f->cap_series) {
        f->cap_series = f->cap_series ? 2 * f->cap_series : 8;
        f->series = xrealloc(f->series, f->cap_series * sizeof *f->series);
    }
    f->series[f->n_series++] = s;
out:
    pthread_rwlock_unlock(&f->lock);
    return s;
}

struct metrics_series *
metrics_series0(struct metrics_family *f)
{
    return metrics_series_get(f, NULL);
}

struct metrics_series *
metrics_series1(struct metrics_family *f, const char *v1)
{
    const char *v[] = {v1};
    return metrics_series_get(f, v);
}

struct metrics_series *
metrics_series2(struct metrics_family *f, const char *v1, const char *v2)
{
    const char *v[] = {v1, v2};
    return metrics_series_get(f, v);
}

void
metrics_counter_add(struct metrics_series *s, double v)
{
    if (s && v >= 0)
        atomic_double_add(&s->value, v);
}

void
metrics_counter_inc(struct metrics_series *s)
{
    metrics_counter_add(s, 1);
}

void
metrics_gauge_set(struct metrics_series *s, double v)
{
    if (s)
        atomic_store_explicit(&s->value, double_to_bits(v), memory_order_relaxed);
}

void
metrics_gauge_add(struct metrics_series *s, double v)
{
    if (s)
        atomic_double_add(&s->value, v);
}

void
metrics_histogram_observe(struct metrics_series *s, double v)
{
    if (!s || !s->counts || isnan(v))
        return;
    const struct metrics_family *f = s->fam;
    size_t i = 0;
    while (i < f->n_buckets && v > f->buckets[i]) /* le is inclusive */
        i++;
    atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
    atomic_double_add(&s->value, v);
}

double
metrics_value(const struct metrics_series *s)
{
    return s ? bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed)) : 0;
}

/* ===== Rendering =========================================================================== */

static void
histogram_put(struct buf *b, const struct metrics_family *f, const struct metrics_series *s)
{
    /* _count is the +Inf bucket by construction, so the two can never disagree in a scrape */
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->n_buckets; i++) {
        struct buf le;
        buf_init(&le);
        cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
        if (i < f->n_buckets)
            value_put(&le, f->buckets[i]);
        else
            buf_puts(&le, "+Inf");
        buf_printf(b, "%s_bucket", f->name);
        labels_put(b, s, le.data);
        buf_printf(b, " %llu\n", (unsigned long long)cum);
        buf_free(&le);
    }
    buf_printf(b, "%s_sum", f->name);
    labels_put(b, s, NULL);
    buf_putc(b, ' ');
    value_put(b, metrics_value(s));
    buf_printf(b, "\n%s_count", f->name);
    labels_put(b, s, NULL);
    buf_printf(b, " %llu\n", (unsigned long long)cum);
}

void
metrics_render(struct metrics_registry *r, struct buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&r->mu);
    for (struct metrics_family *f = r->first; f; f = f->next) {
        buf_printf(out, "# HELP %s ", f->name);
        escape_put(out, f->help, false);
        buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        pthread_rwlock_rdlock(&f->lock);
        for (size_t i = 0; i < f->n_series; i++) {
            const struct metrics_series *s = f->series[i];
            if (f->type == METRICS_HISTOGRAM) {
                histogram_put(out, f, s);
                continue;
            }
            buf_puts(out, f->name);
            labels_put(out, s, NULL);
            buf_putc(out, ' ');
            value_put(out, metrics_value(s));
            buf_putc(out, '\n');
        }
        pthread_rwlock_unlock(&f->lock);
    }
    pthread_mutex_unlock(&r->mu);
}

/* ===== Server series ======================================================================= */

int
metrics_rss_bytes(uint64_t *out, struct al_err *e)
{
    char text[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_errno(e, errno, "/proc/self/statm: open");
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return al_errf(e, AL_EIO, "/proc/self/statm: empty read");
    text[n] = '\0';
    /* "size resident shared text lib data dt": the second field, in pages */
    char *sp = strchr(text, ' ');
    char *end = sp ? strchr(sp + 1, ' ') : NULL;
    if (!end)
        return al_errf(e, AL_EFORMAT, "/proc/self/statm: expected 7 fields");
    *end = '\0';
    uint64_t pages;
    if (parse_u64(sp + 1, 0, UINT64_MAX / 65536, "/proc/self/statm resident", &pages, e) < 0)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    *out = pages * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}

static const double ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60};
static const double latency_buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                         5,    10,   30,  60,   120, 300, 600};

int
metrics_server_init(struct metrics_server *m, struct al_err *e)
{
    static const char *const l_endpoint_status[] = {"endpoint", "status", NULL};
    static const char *const l_endpoint[] = {"endpoint", NULL};
    static const char *const l_model[] = {"model", "version", "quant", NULL};
    struct metrics_registry *r = metrics_registry_new();
    struct metrics_family *f;
    memset(m, 0, sizeof *m);
    m->reg = r;
#define FAMILY(dst, type, name, help, labels, b, nb)                                           \
    do {                                                                                       \
        if (!(dst = metrics_family_add(r, type, name, help, labels, b, nb, e)))                \
            goto fail;                                                                         \
    } while (0)
#define SINGLE(dst, type, name, help)                                                          \
    do {                                                                                       \
        FAMILY(f, type, name, help, NULL, NULL, 0);                                            \
        dst = metrics_series0(f);                                                              \
    } while (0)
    FAMILY(m->requests, METRICS_COUNTER, "airlock_requests_total",
           "Requests answered, by endpoint and HTTP status.", l_endpoint_status, NULL, 0);
    SINGLE(m->prompt_tokens, METRICS_COUNTER, "airlock_prompt_tokens_total",
           "Prompt tokens processed (tokens in).");
    SINGLE(m->completion_tokens, METRICS_COUNTER, "airlock_completion_tokens_total",
           "Completion tokens generated (tokens out).");
    SINGLE(m->embed_inputs, METRICS_COUNTER, "airlock_embedding_inputs_total",
           "Embedding inputs turned into vectors by /v1/embeddings requests that succeeded.");
    SINGLE(m->embed_tokens, METRICS_COUNTER, "airlock_embedding_tokens_total",
           "Tokens in those embedding inputs (also counted in airlock_prompt_tokens_total).");
    FAMILY(m->ttft, METRICS_HISTOGRAM, "airlock_time_to_first_token_seconds",
           "Time from request arrival to the first generated token.", l_endpoint,
           ttft_buckets, sizeof ttft_buckets / sizeof ttft_buckets[0]);
    FAMILY(m->latency, METRICS_HISTOGRAM, "airlock_request_duration_seconds",
           "Time from request arrival to the last byte of the response.", l_endpoint,
           latency_buckets, sizeof latency_buckets / sizeof latency_buckets[0]);
    SINGLE(m->tokens_per_second, METRICS_GAUGE, "airlock_generation_tokens_per_second",
           "Aggregate decode throughput over the last scheduler interval.");
    SINGLE(m->queue_depth, METRICS_GAUGE, "airlock_queue_depth",
           "Requests waiting for a free slot.");
    SINGLE(m->active_slots, METRICS_GAUGE, "airlock_active_slots",
           "Slots currently decoding a request.");
    SINGLE(m->slots, METRICS_GAUGE, "airlock_slots", "Configured parallel slots (--parallel).");
    FAMILY(m->model_info, METRICS_GAUGE, "airlock_model_info",
           "The loaded model; the value is always 1.", l_model, NULL, 0);
    SINGLE(m->kv_used, METRICS_GAUGE, "airlock_kv_cache_used_cells",
           "KV-cache cells (token positions) in use across all slots.");
    SINGLE(m->kv_capacity, METRICS_GAUGE, "airlock_kv_cache_capacity_cells",
           "KV-cache cells (token positions) allocated.");
    SINGLE(m->kv_usage, METRICS_GAUGE, "airlock_kv_cache_usage_ratio",
           "Fraction of the KV cache in use, 0 to 1.");
    SINGLE(m->rss, METRICS_GAUGE, "process_resident_memory_bytes",
           "Resident memory size in bytes.");
#undef SINGLE
#undef FAMILY
    return 0;
fail:
    metrics_server_free(m);
    return -1;
}

void
metrics_server_free(struct metrics_server *m)
{
    if (!m)
        return;
    metrics_registry_free(m->reg);
    memset(m, 0, sizeof *m);
}

void
metrics_server_request(struct metrics_server *m, const char *endpoint, int status,
                       int64_t prompt_tokens, int64_t completion_tokens, double latency_s,
                       double ttft_s)
{
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    metrics_counter_inc(metrics_series2(m->requests, endpoint, code));
    if (prompt_tokens > 0)
        metrics_counter_add(m->prompt_tokens, (double)prompt_tokens);
    if (completion_tokens > 0)
        metrics_counter_add(m->completion_tokens, (double)completion_tokens);
    metrics_histogram_observe(metrics_series1(m->latency, endpoint), latency_s);
    if (ttft_s >= 0)
        metrics_histogram_observe(metrics_series1(m->ttft, endpoint), ttft_s);
}

void
metrics_server_embeddings(struct metrics_server *m, int64_t inputs, int64_t tokens)
{
    if (inputs > 0)
        metrics_counter_add(m->embed_inputs, (double)inputs);
    if (tokens > 0)
        metrics_counter_add(m->embed_tokens, (double)tokens);
}

void
metrics_server_model(struct metrics_server *m, const char *id, const char *version,
                     const char *quant)
{
    const char *v[] = {id ? id : "", version ? version : "", quant ? quant : ""};
    metrics_gauge_set(metrics_series_get(m->model_info, v), 1);
}

void
metrics_server_kv(struct metrics_server *m, uint64_t used, uint64_t capacity)
{
    metrics_gauge_set(m->kv_used, (double)used);
    metrics_gauge_set(m->kv_capacity, (double)capacity);
    metrics_gauge_set(m->kv_usage, capacity ? (double)used / (double)capacity : 0);
}

void
metrics_server_render(struct metrics_server *m, struct buf *out)
{
    uint64_t rss;
    if (metrics_rss_bytes(&rss, NULL) == 0) /* best effort: keep the last value otherwise */
        metrics_gauge_set(m->rss, (double)rss);
    metrics_render(m->reg, out);
}
