/* membw.c -- memory read bandwidth with N threads (the decode speed bound: weights bytes per
 * token / this figure). Each thread sums its half (third, ...) of a 1 GiB buffer in two
 * patterns, taking turns: front to back as one stream (what STREAM-like read tests do, and
 * the bound bench/engine.sh reports), and as four streams, the quarters of its slice, one
 * 64-byte line from each in turn. Prints the best pass of each, in GB/s: "ONE FOUR".
 * Benchmark only.
 *
 * Why the second: on the Zen 5 host this was written on, one core reading one stream stops
 * at about 28 GB/s (its prefetchers' depth, not the memory's limit), and four streams 128 MiB
 * apart per core read 15-18 % more. That is bandwidth a decode step cannot easily use -- its
 * independent reads are one layer's matrices, a few MiB to tens of MiB, and four streams 64 KiB
 * to 4 MiB apart read only 22-37 GB/s (against 53-55 for one) -- but it is the machine's,
 * so engine.sh shows the fraction against it too. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { LINE_WORDS = 8 }; /* 64-byte lines of 8-byte words */

struct slice {
    const uint64_t *p; /* borrowed */
    size_t n;          /* words */
    int streams;       /* 1 or 4 */
    uint64_t sum;      /* result, keeps the loads alive */
};

static void *
reader(void *arg)
{
    struct slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t per = s->n / (size_t)s->streams / LINE_WORDS * LINE_WORDS;
    for (size_t i = 0; i < per; i += LINE_WORDS)
        for (int k = 0; k < s->streams; k++) {
            const uint64_t *q = s->p + (size_t)k * per + i;
            a += q[0] + q[4];
            b += q[1] + q[5];
            c += q[2] + q[6];
            d += q[3] + q[7];
        }
    s->sum = a + b + c + d;
    return NULL;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One pass of every thread over its slice: GB/s read, or 0 if a thread did not start. */
static double
pass(const uint64_t *buf, size_t words, int threads, int streams, uint64_t *total)
{
    pthread_t th[256];
    struct slice sl[256];
    size_t per = words / (size_t)threads / LINE_WORDS * LINE_WORDS;
    per = per / (size_t)streams / LINE_WORDS * LINE_WORDS * (size_t)streams;
    double t0 = now();
    int started = 0;
    for (int t = 0; t < threads; t++) {
        sl[t] = (struct slice){buf + per * (size_t)t, per, streams, 0};
        if (pthread_create(&th[t], NULL, reader, &sl[t]) != 0)
            break;
        started++;
    }
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        *total += sl[t].sum;
    }
    if (started < threads)
        return 0;
    return (double)(per * (size_t)threads * 8) / (now() - t0) / 1e9;
}

int
main(int argc, char **argv)
{
    int threads = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2;
    if (threads < 1 || threads > 256)
        threads = 2;
    size_t bytes = (size_t)1 << 30, words = bytes / 8;
    /* On 2 MiB pages, as airlock holds a model's weights by default (model_load_weights): on
     * 4 KiB pages the same loop reads 15-20 % slower, and the bound would flatter the engine. */
    size_t huge = (size_t)2 << 20;
    uint8_t *raw = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
    if (raw == MAP_FAILED)
        return 1;
    uint64_t *buf = (uint64_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise(buf, bytes, MADV_HUGEPAGE);
    memset(buf, 1, bytes);
    double best[2] = {0, 0};
    uint64_t total = 0;
    /* the two patterns take turns, so a slow minute of the host hits both */
    for (int round = 0; round < 6; round++)
        for (int k = 0; k < 2; k++) {
            double gbs = pass(buf, words, threads, k ? 4 : 1, &total);
            if (gbs > best[k])
                best[k] = gbs;
        }
    if (total == 42)
        puts("");
    printf("%.2f %.2f\n", best[0], best[1]);
    munmap(raw, bytes + huge);
    return 0;
}
