/* cmd_bench.c -- `airlock bench MODEL -p P -n G [-d D]`: prompt-processing and generation
 * speed, measured the way llama-bench measures it so the two can be put side by side: pp P =
 * one batch of P tokens (BOS then random ids); tg G = G single-token decode steps; both from an
 * empty cache, or with -d after D untimed context tokens (llama-bench's "@ dD" tests: decode
 * with a long conversation behind it); one warm-up run of each, then -r repetitions; t/s per
 * repetition, reported as mean and sample standard deviation. Output: llama-bench's markdown table, or with
 * --json an array of rows using llama-bench's JSON field names. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "util/parse.h"
#include "util/xalloc.h"

const char cmd_bench_usage[] =
    "Usage: airlock bench MODEL.gguf [-p P] [-n G] [-d D] [-t N] [-r REPS] [--json]\n"
    "\n"
    "Measure prompt processing (ppP: P tokens in one batch) and text generation (tgG: G tokens\n"
    "one at a time) in tokens per second, like llama-bench: one warm-up run, then REPS timed\n"
    "runs from an empty cache (or after D context tokens); prints mean +/- standard deviation.\n"
    "\n"
    "Options:\n"
    "  -p, --n-prompt P       prompt tokens (default 512; 0 skips the test)\n"
    "  -n, --n-gen G          generated tokens (default 128; 0 skips the test)\n"
    "  -d, --n-depth D        context tokens in the cache before each timed run, not timed\n"
    "                         (default 0; the tests are then named ppP @ dD, tgG @ dD)\n"
    "  -r, --repetitions R    timed runs per test (default 5)\n"
    "  -t, --threads N        worker threads (default: physical cores)\n"
    "  -b, --batch-size N     tokens per forward step for the prompt (default 512)\n"
    "      --kernels NAME     ref, avx2, avx512 or auto\n"
    "      --mmap             run from the file's pages as stored, instead of a copy on\n"
    "                         2 MiB pages with Q4_0/Q5_0 rows regrouped for decode\n"
    "      --json             print a JSON array of rows with llama-bench's field names\n"
    "                         (model_filename, model_type, model_size, model_n_params,\n"
    "                         n_prompt, n_gen, n_threads, avg_ts, stddev_ts, samples_ts, ...)\n"
    "\n"
    "Example:\n"
    "  airlock bench model-q8_0.gguf -t 2 -p 512 -n 128 --json\n"
    "\n"
    "Exit status: 0 ok, 2 usage, 3 I/O or internal error, 4 malformed or unsupported model.\n";

struct bench_row {
    int n_prompt;        /* tokens in the prompt test, 0 for tg */
    int n_gen;           /* tokens in the generation test, 0 for pp */
    int n_depth;         /* untimed context tokens before each run */
    int reps;            /* timed repetitions */
    double *ns;          /* owned, reps durations in nanoseconds */
    double avg_ns;       /* mean duration */
    double stddev_ns;    /* sample standard deviation of durations */
    double avg_ts;       /* mean of per-run tokens/s */
    double stddev_ts;    /* sample standard deviation of per-run tokens/s */
};

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int32_t
random_token(uint64_t *rng, int n_vocab)
{
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((*rng >> 33) % (uint64_t)n_vocab);
}

/* One run of the test; returns its wall time in ns or -1. tok and pos hold at least
 * max(n_depth, n_prompt) entries. */
static double
run_once(struct llm *l, const struct bench_row *r, int32_t *tok, int32_t *pos, float *logits,
         uint64_t *rng, struct al_err *e)
{
    int n_vocab = l->m.hp.n_vocab;
    int d = r->n_depth;
    int32_t bos = tokenizer_bos(l->tok);
    if (bos == TOKENIZER_NULL)
        bos = 0;
    engine_seq_truncate(&l->en, 0, 0);
    if (d > 0) {  /* the context: BOS and random ids, one batch, not timed */
        for (int i = 0; i < d; i++) {
            tok[i] = i == 0 ? bos : random_token(rng, n_vocab);
            pos[i] = i;
        }
        struct batch b = {.n_tokens = d, .token = tok, .pos = pos};
        if (engine_decode(&l->en, &b, logits, e) < 0)
            return -1;
    }
    double t0 = now_ns();
    if (r->n_prompt > 0) {
        for (int i = 0; i < r->n_prompt; i++) {
            tok[i] = i == 0 && d == 0 ? bos : random_token(rng, n_vocab);
            pos[i] = d + i;
        }
        struct batch b = {.n_tokens = r->n_prompt, .token = tok, .pos = pos};
        if (engine_decode(&l->en, &b, logits, e) < 0)
            return -1;
    } else {
        int32_t t = d == 0 ? bos : random_token(rng, n_vocab);
        for (int i = 0; i < r->n_gen; i++) {
            int32_t p = d + i;
            struct batch b = {.n_tokens = 1, .token = &t, .pos = &p};
            if (engine_decode(&l->en, &b, logits, e) < 0)
                return -1;
            /* like llama-bench: the next input is a random id, not a sampled one */
            t = random_token(rng, n_vocab);
        }
    }
    return now_ns() - t0;
}

static int
run_test(struct llm *l, struct bench_row *r, struct al_err *e)
{
    int n = r->n_prompt > 0 ? r->n_prompt : r->n_gen;
    int cap = r->n_depth > r->n_prompt ? r->n_depth : r->n_prompt;
    cap = cap > 0 ? cap : 1;
    int32_t *tok = xmalloc((size_t)cap * sizeof *tok);
    int32_t *pos = xmalloc((size_t)cap * sizeof *pos);
    float *logits = xmalloc((size_t)l->m.hp.n_vocab * sizeof *logits);
    uint64_t rng = 42;
    int rc = -1;
    r->ns = xcalloc((size_t)r->reps, sizeof *r->ns);
    if (run_once(l, r, tok, pos, logits, &rng, e) < 0) /* warm-up */
        goto out;
    for (int i = 0; i < r->reps; i++) {
        r->ns[i] = run_once(l, r, tok, pos, logits, &rng, e);
        if (r->ns[i] < 0)
            goto out;
    }
    double s = 0, s2 = 0, ts = 0, ts2 = 0;
    for (int i = 0; i < r->reps; i++) {
        double t = 1e9 * n / r->ns[i];
        s += r->ns[i];
        s2 += r->ns[i] * r->ns[i];
        ts += t;
        ts2 += t * t;
    }
    int k = r->reps;
    r->avg_ns = s / k;
    r->avg_ts = ts / k;
    r->stddev_ns = k > 1 ? sqrt(fmax(0, (s2 - s * s / k) / (k - 1))) : 0;
    r->stddev_ts = k > 1 ? sqrt(fmax(0, (ts2 - ts * ts / k) / (k - 1))) : 0;
    rc = 0;
out:
    free(tok);
    free(pos);
    free(logits);
    return rc;
}

static json_t *
row_json(const struct llm *l, const char *path, const struct bench_row *r, int n_batch)
{
    json_t *o = json_object();
    json_t *ns = json_array(), *ts = json_array();
    int n = r->n_prompt > 0 ? r->n_prompt : r->n_gen;
    for (int i = 0; i < r->reps; i++) {
        json_array_append_new(ns, json_integer((json_int_t)r->ns[i]));
        json_array_append_new(ts, json_real(1e9 * n / r->ns[i]));
    }
    json_object_set_new(o, "build_commit", json_string("airlock"));
    json_object_set_new(o, "build_number", json_integer(0));
    json_object_set_new(o, "cpu_info", json_string(""));
    json_object_set_new(o, "gpu_info", json_string(""));
    json_object_set_new(o, "backends", json_string("CPU"));
    json_object_set_new(o, "kernels", json_string(l->en.k->name));
    json_object_set_new(o, "model_filename", json_string(path));
    json_object_set_new(o, "model_type", json_string(l->m.type_name));
    json_object_set_new(o, "model_size", json_integer((json_int_t)l->m.weight_bytes));
    json_object_set_new(o, "model_n_params", json_integer((json_int_t)l->m.n_params));
    json_object_set_new(o, "n_batch", json_integer(n_batch));
    json_object_set_new(o, "n_ubatch", json_integer(n_batch));
    json_object_set_new(o, "n_threads", json_integer(l->en.n_threads));
    json_object_set_new(o, "type_k", json_string("f16"));
    json_object_set_new(o, "type_v", json_string("f16"));
    json_object_set_new(o, "n_gpu_layers", json_integer(0));
    json_object_set_new(o, "flash_attn", json_false());
    json_object_set_new(o, "use_mmap", json_boolean(l->residency != MODEL_RESIDENT));
    /* not in llama-bench: weight bytes a decode step reads (bench/engine.sh's bound) */
    json_object_set_new(o, "weight_bytes_per_token", json_integer((json_int_t)l->m.step_bytes));
    json_object_set_new(o, "embeddings", json_false());
    json_object_set_new(o, "n_prompt", json_integer(r->n_prompt));
    json_object_set_new(o, "n_gen", json_integer(r->n_gen));
    json_object_set_new(o, "n_depth", json_integer(r->n_depth));
    json_object_set_new(o, "avg_ns", json_integer((json_int_t)r->avg_ns));
    json_object_set_new(o, "stddev_ns", json_integer((json_int_t)r->stddev_ns));
    json_object_set_new(o, "avg_ts", json_real(r->avg_ts));
    json_object_set_new(o, "stddev_ts", json_real(r->stddev_ts));
    json_object_set_new(o, "samples_ns", ns);
    json_object_set_new(o, "samples_ts", ts);
    return o;
}

static void
print_table(const struct llm *l, const struct bench_row *rows, int n_rows)
{
    double mib = (double)l->m.weight_bytes / (1024.0 * 1024.0);
    double p = (double)l->m.n_params;
    char size[32], params[32];
    if (mib >= 1024)
        snprintf(size, sizeof size, "%.2f GiB", mib / 1024);
    else
        snprintf(size, sizeof size, "%.2f MiB", mib);
    if (p >= 1e9)
        snprintf(params, sizeof params, "%.2f B", p / 1e9);
    else if (p >= 1e6)
        snprintf(params, sizeof params, "%.2f M", p / 1e6);
    else
        snprintf(params, sizeof params, "%.2f K", p / 1e3);
    printf("| model                          |       size |     params | backend    | threads "
           "|            test |                  t/s |\n");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: "
           "| --------------: | -------------------: |\n");
    for (int i = 0; i < n_rows; i++) {
        char test[32], ts[48];
        int k = rows[i].n_prompt > 0
                    ? snprintf(test, sizeof test, "pp%d", rows[i].n_prompt)
                    : snprintf(test, sizeof test, "tg%d", rows[i].n_gen);
        if (rows[i].n_depth > 0 && k > 0 && (size_t)k < sizeof test)
            snprintf(test + k, sizeof test - (size_t)k, " @ d%d", rows[i].n_depth);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", rows[i].avg_ts, rows[i].stddev_ts);
        printf("| %-30s | %10s | %10s | CPU-%-6s | %7d | %15s | %20s |\n", l->m.type_name, size,
               params, l->en.k->name, l->en.n_threads, test, ts);
    }
}

int
cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'},
        {"n-depth", required_argument, NULL, 'd'},
        {"repetitions", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},
        {"batch-size", required_argument, NULL, 'b'},
        {"kernels", required_argument, NULL, OPT_KERNELS},
        {"mmap", no_argument, NULL, OPT_MMAP},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct engine_cli ec;
    struct al_err e = {0};
    struct llm l;
    struct bench_row rows[2];
    int n_rows = 0;
    int n_prompt = 512, n_gen = 128, n_depth = 0, reps = 5;
    bool json = false;
    int rc = AL_EXIT_USAGE;
    int c;

    memset(&l, 0, sizeof l);
    memset(rows, 0, sizeof rows);
    engine_cli_defaults(&ec);
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:d:r:t:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_int(optarg, 0, 1 << 20, "-p", &n_prompt, &e) < 0)
                return cli_usage_error("bench", "%s", e.msg);
            break;
        case 'n':
            if (parse_int(optarg, 0, 1 << 20, "-n", &n_gen, &e) < 0)
                return cli_usage_error("bench", "%s", e.msg);
            break;
        case 'd':
            if (parse_int(optarg, 0, 1 << 20, "-d", &n_depth, &e) < 0)
                return cli_usage_error("bench", "%s", e.msg);
            break;
        case 'r':
            if (parse_int(optarg, 1, 1000, "-r", &reps, &e) < 0)
                return cli_usage_error("bench", "%s", e.msg);
            break;
        case 'b':
            if (engine_cli_option(&ec, OPT_BATCH, optarg, &e) < 0)
                return cli_usage_error("bench", "%s", e.msg);
            break;
        case 't':
        case OPT_KERNELS:
        case OPT_MMAP:
            if (engine_cli_option(&ec, c, optarg, &e) < 0)
                return cli_usage_error("bench", "%s", e.msg);
            break;
        case OPT_JSON:
            json = true;
            ec.progress = false; /* stderr stays clean for --json runs */
            break;
        case 'h':
            cli_print_usage("bench", stdout);
            return AL_EXIT_OK;
        default:
            return cli_usage_error("bench", "unknown or incomplete option");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("bench", "one MODEL.gguf is required");
    if (n_prompt == 0 && n_gen == 0)
        return cli_usage_error("bench", "-p and -n are both 0: nothing to measure");
    const char *path = argv[optind];
    ec.eo.n_ctx = n_depth + (n_prompt > n_gen ? n_prompt : n_gen) + 1;
    ec.ctx_given = true;
    if (ec.eo.n_batch == 0)
        ec.eo.n_batch = 512;
    if (engine_cli_open(&ec, &l, path, &e) < 0)
        goto fail;
    if (n_prompt > 0) {
        rows[n_rows] = (struct bench_row){.n_prompt = n_prompt, .n_depth = n_depth, .reps = reps};
        if (run_test(&l, &rows[n_rows++], &e) < 0)
            goto fail;
    }
    if (n_gen > 0) {
        rows[n_rows] = (struct bench_row){.n_gen = n_gen, .n_depth = n_depth, .reps = reps};
        if (run_test(&l, &rows[n_rows++], &e) < 0)
            goto fail;
    }
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < n_rows; i++)
            json_array_append_new(arr, row_json(&l, path, &rows[i], ec.eo.n_batch));
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(arr);
    } else {
        print_table(&l, rows, n_rows);
    }
    rc = AL_EXIT_OK;
    goto out;
fail:
    rc = cli_fail("bench", &e, json);
out:
    for (int i = 0; i < 2; i++)
        free(rows[i].ns);
    llm_close(&l);
    return rc;
}
