/* bench_kernels.c -- throughput of the compute kernels per weight type and table:
 * decode (gemm with one token: GB/s of weights streamed, against the memory-read bandwidth
 * measured in the same run) and prefill (gemm with 64 tokens, and the packed-panel gemm_tiled
 * with 512 where the table has one: GFLOP/s, 2 flops per weight per token). Threads split the
 * rows as contiguous ranges. Not a test: numbers only.
 *
 * Build and run (after `make`):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -o build/bench_kernels bench/bench_kernels.c build/rel/libairlock.a -lpthread -lm && build/bench_kernels [threads] [table|all]
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "engine/kernels/kernels.h"

struct job {
    const struct kern *k;  /* table under test */
    enum ggml_type wt;
    const void *w;         /* rows x n weights */
    size_t wrb;            /* bytes per weight row */
    int n, r0, r1;         /* row length, this thread's rows */
    const void *xq;        /* n_tok activation rows */
    int n_tok;
    float *out;            /* n_tok x rows */
    int ld;
    const struct kern_xsum *xs; /* gemm_tiled: activation sums; NULL: plain gemm */
    size_t scratch_bytes;  /* gemm_tiled: scratch per thread */
    const float *mem;      /* bandwidth probe: floats to read */
    size_t mem_n;
    float sink;            /* keeps the probe's result alive */
    double cpu;            /* seconds of CPU this thread used (immune to time-slicing) */
};

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void work(struct job *j);

/* Memory the decode streams read from: on 2 MiB pages where the kernel allows, as the engine's
 * weights are (model_load_weights) -- on 4 KiB pages every stream pays a TLB miss and a
 * prefetcher restart per page, which understates what the kernels reach. */
static void *
huge_alloc(size_t n)
{
    size_t huge = (size_t)2 << 20;
    void *p = aligned_alloc(huge, (n + huge - 1) / huge * huge);
    if (p)
        (void)madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE);
    return p;
}

/* GGUF's name, or the row-split layouts' (what model load repacks Q4_0/Q5_0 into) */
static const char *
type_name(enum ggml_type t)
{
    return t == KERN_TYPE_Q4_0_RS ? "Q4_0rs" : t == KERN_TYPE_Q5_0_RS ? "Q5_0rs"
         : t == KERN_TYPE_Q8_0_RS ? "Q8_0rs" : ggml_type_name(t);
}

static void *
run_job(void *p)
{
    struct job *j = p;
    double c0 = cpu_now();
    work(j);
    j->cpu = cpu_now() - c0;
    return NULL;
}

static void
work(struct job *j)
{
    if (j->mem) {
        float s = 0.0f;
        for (size_t off = 0; off < j->mem_n; off += 1 << 20) {
            size_t len = j->mem_n - off < (1u << 20) ? j->mem_n - off : (1u << 20);
            s += j->k->dot_f32((int)len, j->mem + off, j->mem + off);
        }
        j->sink = s;
        return;
    }
    if (j->xs) {
        void *scratch = aligned_alloc(64, (j->scratch_bytes + 63) / 64 * 64);
        if (!scratch)
            return;
        j->k->gemm_tiled(j->wt, j->w, j->wrb, j->n, j->r0, j->r1, j->xq, j->xs, j->n_tok, j->out,
                         j->ld, scratch);
        free(scratch);
        return;
    }
    j->k->gemm(j->wt, j->w, j->wrb, j->n, j->r0, j->r1, j->xq, j->n_tok, j->out, j->ld);
}

/* Run the same job split over nt threads; returns wall seconds (best of reps) and, in *cpu,
 * the best busiest-thread CPU seconds (what the run would take on an otherwise idle machine,
 * as long as memory is not shared with the other load). */
static double
timed(struct job *base, int rows, int nt, int reps, double *cpu)
{
    double best = 1e30;
    *cpu = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        pthread_t th[16];
        struct job jobs[16];
        double t0 = now();
        for (int i = 0; i < nt; i++) {
            jobs[i] = *base;
            jobs[i].r0 = (int)((long long)rows * i / nt);
            jobs[i].r1 = (int)((long long)rows * (i + 1) / nt);
            if (base->mem) {
                size_t per = base->mem_n / (size_t)nt;
                jobs[i].mem = base->mem + per * (size_t)i;
                jobs[i].mem_n = per;
            }
            if (i > 0)
                pthread_create(&th[i], NULL, run_job, &jobs[i]);
        }
        run_job(&jobs[0]);
        for (int i = 1; i < nt; i++)
            pthread_join(th[i], NULL);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
        double c = 0.0;
        for (int i = 0; i < nt; i++)
            c = jobs[i].cpu > c ? jobs[i].cpu : c;
        if (c < *cpu)
            *cpu = c;
    }
    return best;
}

static uint64_t
rng(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Random weights whose half-precision scales are small and finite. */
static void
fill(enum ggml_type wt, uint8_t *w, size_t bytes, uint64_t *s)
{
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t v = rng(s);
        memcpy(w + i, &v, 8);
    }
    /* clear the exponent's top bits of every 16-bit word: any half is then finite and
     * small, and F32/BF16 values stay finite too */
    if (wt == GGML_TYPE_F32)
        for (size_t i = 3; i < bytes; i += 4)
            w[i] &= 0x3f;
    else
        for (size_t i = 1; i < bytes; i += 2)
            w[i] &= 0x3b;
}

int
main(int argc, char **argv)
{
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    const char *only = argc > 2 ? argv[2] : "all";
    if (nt < 1 || nt > 16)
        nt = 1;
    static const enum ggml_type types[] = {
        GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q5_K, GGML_TYPE_Q4_0,
        GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_F16, GGML_TYPE_BF16,
        GGML_TYPE_F32, KERN_TYPE_Q4_0_RS, KERN_TYPE_Q5_0_RS, KERN_TYPE_Q8_0_RS,
    };
    static const char *tables[] = { "avx512", "avx2", "ref" };
    const int n = 4096, dec_bytes_target = 96 << 20, pf_rows = 512, pf_tok = 64, tl_tok = 512;
    uint64_t seed = 1;

    struct al_err e = {0};
    const struct kern *best = kern_select(NULL, &e);
    size_t mem_n = (size_t)256 << 20 >> 2;
    float *mem = huge_alloc(mem_n * sizeof(float));
    float *x = malloc(sizeof(float) * n * tl_tok);
    if (!best || !mem || !x)
        return 1;
    for (size_t i = 0; i < mem_n; i++)
        mem[i] = (float)(i & 7);
    for (int i = 0; i < n * tl_tok; i++)
        x[i] = (float)((int)(rng(&seed) % 2001) - 1000) * 1e-3f;
    struct job jm = { .k = best, .mem = mem, .mem_n = mem_n };
    double cm, tm = timed(&jm, 0, nt, 5, &cm);
    double bw = (double)mem_n * 4 / tm / 1e9, bwc = (double)mem_n * 4 / cm / 1e9;
    printf("threads %d, CPU tables: %s; memory read bandwidth %.1f GB/s wall, %.1f GB/s by CPU "
           "time (%s dot_f32 over 256 MiB)\n", nt, kern_available(), bw, bwc, best->name);
    printf("(wall: elapsed time; cpu: busiest thread's CPU time, robust on a shared machine)\n");
    printf("%-7s %-6s %10s %10s %8s %12s %12s %12s\n", "table", "type", "dec GB/s", "dec GB/s",
           "% of bw", "pref GF/s", "pref GF/s", "tiled GF/s");
    printf("%-7s %-6s %10s %10s %8s %12s %12s %12s\n", "", "", "wall", "cpu", "(cpu)", "wall", "cpu",
           "cpu");

    for (size_t ki = 0; ki < 3; ki++) {
        if (strcmp(only, "all") != 0 && strcmp(only, tables[ki]) != 0)
            continue;
        const struct kern *k = kern_select(tables[ki], &e);
        if (!k)
            continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            enum ggml_type wt = types[ti], at = kern_act_type(wt);
            size_t wrb = kern_row_bytes(wt, n), xrb = kern_row_bytes(at, n);
            int rows = (int)(dec_bytes_target / wrb);
            if (k == kern_ref())
                rows /= 16;  /* the reference is slow: a smaller (cache-resident-ish) matrix */
            uint8_t *w = huge_alloc(wrb * (size_t)rows);
            uint8_t *xq = malloc(xrb * tl_tok);
            size_t out_n = (size_t)rows > (size_t)pf_rows * tl_tok / pf_tok ? (size_t)rows
                                                                           : (size_t)pf_rows * tl_tok / pf_tok;
            float *out = malloc(sizeof(float) * out_n * pf_tok);
            if (!w || !xq || !out)
                return 1;
            fill(wt, w, wrb * (size_t)rows, &seed);
            for (int t = 0; t < tl_tok; t++)
                k->quantize_row(at, x + (size_t)t * n, xq + (size_t)t * xrb, n);
            struct job jd = { .k = k, .wt = wt, .w = w, .wrb = wrb, .n = n, .xq = xq, .n_tok = 1,
                              .out = out, .ld = rows };
            double cd, td = timed(&jd, rows, nt, 5, &cd);
            double gbs = (double)wrb * rows / td / 1e9, gbc = (double)wrb * rows / cd / 1e9;
            struct job jp = jd;
            jp.n_tok = k == kern_ref() ? 8 : pf_tok;
            jp.ld = pf_rows;
            double cp, tp = timed(&jp, pf_rows, nt, 3, &cp);
            double gf = 2.0 * n * pf_rows * jp.n_tok / tp / 1e9;
            double gfc = 2.0 * n * pf_rows * jp.n_tok / cp / 1e9;
            double gft = 0.0;  /* packed-panel gemm over tl_tok tokens, where there is one */
            int xsb = kern_xsum_block(wt);
            if (k->gemm_tiled && xsb > 0) {
                size_t nxs = (size_t)(n / xsb);
                struct kern_xsum *xs = malloc(sizeof *xs * nxs * tl_tok);
                if (!xs)
                    return 1;
                for (int t = 0; t < tl_tok; t++)
                    kern_act_sums(wt, xq + (size_t)t * xrb, n, xs + (size_t)t * nxs);
                struct job jt = jd;
                jt.xs = xs;
                jt.scratch_bytes = k->tiled_scratch(wt, n);
                jt.n_tok = tl_tok;
                jt.ld = pf_rows;
                double ct;
                timed(&jt, pf_rows, nt, 3, &ct);
                gft = 2.0 * n * pf_rows * tl_tok / ct / 1e9;
                free(xs);
            }
            printf("%-7s %-6s %10.1f %10.1f %7.0f%% %12.1f %12.1f %12.1f\n", k->name,
                   type_name(wt), gbs, gbc, 100.0 * gbc / bwc, gf, gfc, gft);
            fflush(stdout);
            free(w);
            free(xq);
            free(out);
        }
    }
    free(mem);
    free(x);
    return 0;
}
