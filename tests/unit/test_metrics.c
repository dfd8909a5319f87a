/* test_metrics.c -- metrics registry: exact Prometheus 0.0.4 exposition text (escaping,
 * histogram buckets, +Inf, value formatting), name validation, lock-free updates from many
 * threads, the cardinality cap, and the server's ready-made series. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

static void
metrics_exposition_text_is_exact(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct al_err e = {0};
    const char *const l2[] = {"endpoint", "status", NULL};
    const char *const l1[] = {"endpoint", NULL};
    const char *const la[] = {"a", NULL};
    const double b3[] = {0.25, 0.5, 1};
    const double b1[] = {1};
    struct metrics_family *req = metrics_family_add(r, METRICS_COUNTER, "test_requests_total",
                                                    "Requests.\nSecond \\ line", l2, NULL, 0, &e);
    struct metrics_family *temp =
        metrics_family_add(r, METRICS_GAUGE, "test_temp", "Temp.", NULL, NULL, 0, &e);
    struct metrics_family *lat = metrics_family_add(r, METRICS_HISTOGRAM, "test_latency_seconds",
                                                    "Latency.", l1, b3, 3, &e);
    struct metrics_family *h0 =
        metrics_family_add(r, METRICS_HISTOGRAM, "test_h0", "H.", NULL, b1, 1, &e);
    struct metrics_family *empty =
        metrics_family_add(r, METRICS_COUNTER, "test_empty_total", "Nothing yet.", la, NULL, 0, &e);
    struct metrics_family *inf =
        metrics_family_add(r, METRICS_GAUGE, "test_inf", "Inf.", NULL, NULL, 0, &e);
    struct metrics_family *big =
        metrics_family_add(r, METRICS_GAUGE, "test_big", "Big and small.", la, NULL, 0, &e);
    assert_non_null(req);
    assert_non_null(temp);
    assert_non_null(lat);
    assert_non_null(h0);
    assert_non_null(empty);
    assert_non_null(inf);
    assert_non_null(big);

    metrics_counter_inc(metrics_series2(req, "/v1/chat", "200"));
    metrics_counter_inc(metrics_series2(req, "/v1/chat", "200"));
    metrics_counter_add(metrics_series2(req, "a\"b\\c\nd", "500"), 1.5);
    metrics_counter_add(metrics_series2(req, "/v1/chat", "200"), -4); /* ignored */
    metrics_gauge_set(metrics_series0(temp), 0.1);
    struct metrics_series *x = metrics_series1(lat, "x");
    metrics_histogram_observe(x, 0.125);
    metrics_histogram_observe(x, 0.25); /* le is inclusive */
    metrics_histogram_observe(x, 0.75);
    metrics_histogram_observe(x, 4);
    metrics_gauge_set(metrics_series0(inf), INFINITY);
    metrics_gauge_set(metrics_series1(big, "int"), 12345678901.0);
    metrics_gauge_set(metrics_series1(big, "small"), 1e-9);
    metrics_gauge_set(metrics_series1(big, "neg"), -2.5);
    metrics_gauge_set(metrics_series1(big, "nan"), NAN);

    struct buf out;
    buf_init(&out);
    metrics_render(r, &out);
    const char *want =
        "# HELP test_requests_total Requests.\\nSecond \\\\ line\n"
        "# TYPE test_requests_total counter\n"
        "test_requests_total{endpoint=\"/v1/chat\",status=\"200\"} 2\n"
        "test_requests_total{endpoint=\"a\\\"b\\\\c\\nd\",status=\"500\"} 1.5\n"
        "# HELP test_temp Temp.\n"
        "# TYPE test_temp gauge\n"
        "test_temp 0.1\n"
        "# HELP test_latency_seconds Latency.\n"
        "# TYPE test_latency_seconds histogram\n"
        "test_latency_seconds_bucket{endpoint=\"x\",le=\"0.25\"} 2\n"
        "test_latency_seconds_bucket{endpoint=\"x\",le=\"0.5\"} 2\n"
        "test_latency_seconds_bucket{endpoint=\"x\",le=\"1\"} 3\n"
        "test_latency_seconds_bucket{endpoint=\"x\",le=\"+Inf\"} 4\n"
        "test_latency_seconds_sum{endpoint=\"x\"} 5.125\n"
        "test_latency_seconds_count{endpoint=\"x\"} 4\n"
        "# HELP test_h0 H.\n"
        "# TYPE test_h0 histogram\n"
        "test_h0_bucket{le=\"1\"} 0\n"
        "test_h0_bucket{le=\"+Inf\"} 0\n"
        "test_h0_sum 0\n"
        "test_h0_count 0\n"
        "# HELP test_empty_total Nothing yet.\n"
        "# TYPE test_empty_total counter\n"
        "# HELP test_inf Inf.\n"
        "# TYPE test_inf gauge\n"
        "test_inf +Inf\n"
        "# HELP test_big Big and small.\n"
        "# TYPE test_big gauge\n"
        "test_big{a=\"int\"} 12345678901\n"
        "test_big{a=\"small\"} 1e-09\n"
        "test_big{a=\"neg\"} -2.5\n"
        "test_big{a=\"nan\"} NaN\n";
    assert_string_equal(out.data, want);
    buf_free(&out);
    metrics_registry_free(r);
}

static void
metrics_rejects_bad_names_and_buckets(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct al_err e = {0};
    const char *const le[] = {"le", NULL};
    const char *const dunder[] = {"__x", NULL};
    const char *const colon[] = {"a:b", NULL};
    const char *const five[] = {"a", "b", "c", "d", "e", NULL};
    const double dec[] = {1, 0.5};
    const double nan_b[] = {NAN};
    const double ok_b[] = {1};
    assert_null(metrics_family_add(r, METRICS_COUNTER, "1abc", "", NULL, NULL, 0, &e));
    assert_int_equal(e.code, AL_EUSAGE);
    assert_null(metrics_family_add(r, METRICS_COUNTER, "a-b", "", NULL, NULL, 0, &e));
    assert_null(metrics_family_add(r, METRICS_COUNTER, "", "", NULL, NULL, 0, &e));
    assert_null(metrics_family_add(r, METRICS_COUNTER, "ok", "", dunder, NULL, 0, &e));
    assert_null(metrics_family_add(r, METRICS_COUNTER, "ok", "", colon, NULL, 0, &e));
    assert_null(metrics_family_add(r, METRICS_COUNTER, "ok", "", five, NULL, 0, &e));
    assert_int_equal(e.code, AL_ELIMIT);
    assert_null(metrics_family_add(r, METRICS_HISTOGRAM, "h", "", le, ok_b, 1, &e));
    assert_null(metrics_family_add(r, METRICS_HISTOGRAM, "h", "", NULL, dec, 2, &e));
    assert_null(metrics_family_add(r, METRICS_HISTOGRAM, "h", "", NULL, nan_b, 1, &e));
    assert_null(metrics_family_add(r, METRICS_HISTOGRAM, "h", "", NULL, NULL, 0, &e));
    assert_non_null(metrics_family_add(r, METRICS_COUNTER, "ns:ok_total", "", le, NULL, 0, &e));
    assert_null(metrics_family_add(r, METRICS_GAUGE, "ns:ok_total", "", NULL, NULL, 0, &e));
    assert_int_equal(e.code, AL_EEXIST);
    metrics_registry_free(r);
}

struct worker {
    struct metrics_family *req;
    struct metrics_family *hist;
    struct metrics_series *shared;
    int id;
};

enum { THREADS = 8, ROUNDS = 20000 };

static void *
worker_run(void *p)
{
    struct worker *w = p;
    char mine[16];
    snprintf(mine, sizeof mine, "t%d", w->id % 4);
    for (int i = 0; i < ROUNDS; i++) {
        metrics_counter_inc(w->shared);
        metrics_counter_inc(metrics_series2(w->req, mine, i % 2 ? "200" : "500"));
        metrics_histogram_observe(metrics_series1(w->hist, mine), 0.5);
    }
    return NULL;
}

static void
metrics_concurrent_updates_are_exact(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct al_err e = {0};
    const char *const l2[] = {"endpoint", "status", NULL};
    const char *const l1[] = {"endpoint", NULL};
    const double b[] = {1};
    struct metrics_family *total =
        metrics_family_add(r, METRICS_COUNTER, "c_total", "", NULL, NULL, 0, &e);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].req = i ? w[0].req : metrics_family_add(r, METRICS_COUNTER, "r_total", "", l2,
                                                     NULL, 0, &e);
        w[i].hist = i ? w[0].hist : metrics_family_add(r, METRICS_HISTOGRAM, "h_seconds", "",
                                                       l1, b, 1, &e);
        w[i].shared = metrics_series0(total);
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    struct buf out;
    buf_init(&out);
    metrics_render(r, &out); /* rendering while updating must be safe */
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(metrics_value(metrics_series0(total)) == (double)THREADS * ROUNDS);
    assert_true(metrics_value(metrics_series2(w[0].req, "t0", "200")) ==
                (double)(THREADS / 4) * ROUNDS / 2);
    buf_reset(&out);
    metrics_render(r, &out);
    char line[128];
    snprintf(line, sizeof line, "h_seconds_count{endpoint=\"t3\"} %d\n", (THREADS / 4) * ROUNDS);
    assert_non_null(strstr(out.data, line));
    snprintf(line, sizeof line, "h_seconds_bucket{endpoint=\"t3\",le=\"1\"} %d\n",
             (THREADS / 4) * ROUNDS);
    assert_non_null(strstr(out.data, line));
    buf_free(&out);
    metrics_registry_free(r);
}

static void
metrics_series_cap_drops_new_label_values(void **state)
{
    (void)state;
    struct metrics_registry *r = metrics_registry_new();
    struct al_err e = {0};
    const char *const l1[] = {"v", NULL};
    struct metrics_family *f = metrics_family_add(r, METRICS_COUNTER, "many_total", "", l1,
                                                  NULL, 0, &e);
    char v[16];
    for (int i = 0; i < METRICS_SERIES_MAX; i++) {
        snprintf(v, sizeof v, "%d", i);
        assert_non_null(metrics_series1(f, v));
    }
    assert_null(metrics_series1(f, "one-too-many"));
    metrics_counter_inc(NULL); /* no-op */
    assert_non_null(metrics_series1(f, "7")); /* existing ones still resolve */
    metrics_registry_free(r);
}

static void
metrics_server_exports_the_issue_series(void **state)
{
    (void)state;
    struct metrics_server m;
    struct al_err e = {0};
    assert_int_equal(metrics_server_init(&m, &e), 0);
    metrics_server_model(&m, "tiny", "sha256:ab", "Q4_K_M");
    metrics_server_request(&m, "/v1/chat/completions", 200, 10, 5, 0.3, 0.02);
    metrics_server_request(&m, "/v1/chat/completions", 401, 0, 0, 0.001, -1);
    metrics_server_request(&m, "/v1/embeddings", 200, 7, 0, 0.01, -1);
    metrics_server_embeddings(&m, 2, 7);
    metrics_server_embeddings(&m, 0, 0); /* nothing to add */
    metrics_server_kv(&m, 256, 1024);
    metrics_gauge_set(m.queue_depth, 3);
    metrics_gauge_set(m.active_slots, 2);
    metrics_gauge_set(m.slots, 4);
    metrics_gauge_set(m.tokens_per_second, 41.5);
    struct buf out;
    buf_init(&out);
    metrics_server_render(&m, &out);
    static const char *const want[] = {
        "airlock_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1\n",
        "airlock_requests_total{endpoint=\"/v1/chat/completions\",status=\"401\"} 1\n",
        "airlock_prompt_tokens_total 17\n",
        "airlock_completion_tokens_total 5\n",
        "# TYPE airlock_embedding_inputs_total counter\nairlock_embedding_inputs_total 2\n",
        "# TYPE airlock_embedding_tokens_total counter\nairlock_embedding_tokens_total 7\n",
        "airlock_time_to_first_token_seconds_bucket{endpoint=\"/v1/chat/completions\","
        "le=\"0.025\"} 1\n",
        "airlock_time_to_first_token_seconds_count{endpoint=\"/v1/chat/completions\"} 1\n",
        "airlock_request_duration_seconds_count{endpoint=\"/v1/chat/completions\"} 2\n",
        "airlock_generation_tokens_per_second 41.5\n",
        "airlock_queue_depth 3\n",
        "airlock_active_slots 2\n",
        "airlock_slots 4\n",
        "airlock_model_info{model=\"tiny\",version=\"sha256:ab\",quant=\"Q4_K_M\"} 1\n",
        "airlock_kv_cache_used_cells 256\n",
        "airlock_kv_cache_capacity_cells 1024\n",
        "airlock_kv_cache_usage_ratio 0.25\n",
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out.data, want[i]))
            fail_msg("missing: %s\nin:\n%s", want[i], out.data);
    uint64_t rss = 0;
    assert_int_equal(metrics_rss_bytes(&rss, &e), 0);
    assert_true(rss > 1024 * 1024);
    assert_true(metrics_value(m.rss) > 0);
    buf_free(&out);
    metrics_server_free(&m);
    metrics_server_free(&m); /* safe twice */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_exposition_text_is_exact),
        cmocka_unit_test(metrics_rejects_bad_names_and_buckets),
        cmocka_unit_test(metrics_concurrent_updates_are_exact),
        cmocka_unit_test(metrics_series_cap_drops_new_label_values),
        cmocka_unit_test(metrics_server_exports_the_issue_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
