/* metrics.h -- a metrics registry (counters, gauges, histograms with labels) rendered in the
 * Prometheus text exposition format 0.0.4, plus the ready-made set of series `airlock serve`
 * exports (struct metrics_server).
 * Concurrency: updates through a struct metrics_series pointer are lock-free atomics and may
 * come from any thread. Looking a series up by label values takes that family's read lock
 * (a write lock only the first time a label combination appears); there is no global lock on
 * the hot path. Series pointers stay valid until the registry is freed, so callers may cache
 * them. The registry is owned by its creator; nothing here is global.
 * Does not serve HTTP: the server calls metrics_server_render for GET /metrics. */
#ifndef AIRLOCK_METRICS_METRICS_H
#define AIRLOCK_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_LABELS_MAX 4        /* label names per family */
#define METRICS_BUCKETS_MAX 32      /* histogram upper bounds, +Inf not counted */
#define METRICS_SERIES_MAX 4096     /* label combinations per family; more are dropped */
#define METRICS_LABEL_VALUE_MAX 256 /* longer label values are cut */

enum metrics_type {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
};

struct metrics_registry;  /* opaque, owns its families */
struct metrics_family;    /* opaque, owns its series */
struct metrics_series;    /* opaque; NULL is accepted (and ignored) by every update */

struct metrics_registry *metrics_registry_new(void);
void metrics_registry_free(struct metrics_registry *r);  /* safe on NULL */

/* Register a family. labels: NULL-terminated label names (NULL for none). buckets: strictly
 * increasing finite upper bounds, histograms only. Validates names as Prometheus does
 * ([a-zA-Z_:][a-zA-Z0-9_:]*, labels without ':' and not starting "__", "le" reserved);
 * AL_EUSAGE on a bad name, AL_EEXIST on a duplicate. An unlabelled family gets its one series
 * at once, so it is exported (as 0) before the first update. */
struct metrics_family *metrics_family_add(struct metrics_registry *r, enum metrics_type type,
                                          const char *name, const char *help,
                                          const char *const *labels, const double *buckets,
                                          size_t n_buckets, struct al_err *e);

/* The series for these label values (one per label name, in order; NULL reads as ""), created
 * on first use. Values should be UTF-8 from a small fixed set (route names, not raw URLs):
 * every distinct value is a new series, and once a family holds METRICS_SERIES_MAX series this
 * returns NULL (updates then do nothing). */
struct metrics_series *metrics_series_get(struct metrics_family *f, const char *const *values);
/* Shorthands for families with no, one or two labels. */
struct metrics_series *metrics_series0(struct metrics_family *f);
struct metrics_series *metrics_series1(struct metrics_family *f, const char *v1);
struct metrics_series *metrics_series2(struct metrics_family *f, const char *v1, const char *v2);

void metrics_counter_add(struct metrics_series *s, double v);  /* v < 0 or NaN is ignored */
void metrics_counter_inc(struct metrics_series *s);
void metrics_gauge_set(struct metrics_series *s, double v);
void metrics_gauge_add(struct metrics_series *s, double v);
void metrics_histogram_observe(struct metrics_series *s, double v);
double metrics_value(const struct metrics_series *s);  /* counter/gauge value; sum for histograms */

/* Append the exposition text of every family, in registration order, to out. */
void metrics_render(struct metrics_registry *r, struct buf *out);

/* ===== The series `airlock serve` exports ================================================ */

struct metrics_server {
    struct metrics_registry *reg;             /* owned */
    struct metrics_family *requests;          /* airlock_requests_total{endpoint,status} */
    struct metrics_series *prompt_tokens;     /* airlock_prompt_tokens_total (tokens in) */
    struct metrics_series *completion_tokens; /* airlock_completion_tokens_total (tokens out) */
    struct metrics_series *embed_inputs;      /* airlock_embedding_inputs_total: vectors out */
    struct metrics_series *embed_tokens;      /* airlock_embedding_tokens_total: their tokens */
    struct metrics_family *ttft;              /* airlock_time_to_first_token_seconds{endpoint} */
    struct metrics_family *latency;           /* airlock_request_duration_seconds{endpoint} */
    struct metrics_series *tokens_per_second; /* airlock_generation_tokens_per_second, gauge */
    struct metrics_series *queue_depth;       /* airlock_queue_depth: requests waiting */
    struct metrics_series *active_slots;      /* airlock_active_slots: sequences decoding */
    struct metrics_series *slots;             /* airlock_slots: configured --parallel */
    struct metrics_family *model_info;        /* airlock_model_info{model,version,quant} = 1 */
    struct metrics_series *kv_used;           /* airlock_kv_cache_used_cells */
    struct metrics_series *kv_capacity;       /* airlock_kv_cache_capacity_cells */
    struct metrics_series *kv_usage;          /* airlock_kv_cache_usage_ratio, 0..1 */
    struct metrics_series *rss;               /* process_resident_memory_bytes, set at render */
};

int metrics_server_init(struct metrics_server *m, struct al_err *e);
void metrics_server_free(struct metrics_server *m);  /* safe on a zeroed struct */
/* Record one finished request. ttft_s < 0 means no token was produced (not observed). */
void metrics_server_request(struct metrics_server *m, const char *endpoint, int status,
                            int64_t prompt_tokens, int64_t completion_tokens, double latency_s,
                            double ttft_s);
/* Record one answered embeddings request: inputs embedded and the tokens in them. Only for
 * a request that returned its vectors; its tokens also count in prompt_tokens (through
 * metrics_server_request), so these say how much of that work was embedding. */
void metrics_server_embeddings(struct metrics_server *m, int64_t inputs, int64_t tokens);
/* Set the model info series (value 1); version and quant may be NULL (exported as ""). */
void metrics_server_model(struct metrics_server *m, const char *id, const char *version,
                          const char *quant);
void metrics_server_kv(struct metrics_server *m, uint64_t used, uint64_t capacity);
/* Refresh process RSS from /proc/self/statm and append the whole exposition to out. An
 * unreadable statm leaves the last RSS value and is not an error for the scrape. */
void metrics_server_render(struct metrics_server *m, struct buf *out);
/* Resident set size of this process in bytes, from /proc/self/statm. */
int metrics_rss_bytes(uint64_t *out, struct al_err *e);

#endif
