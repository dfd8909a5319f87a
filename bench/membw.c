/* membw.c -- memory read bandwidth with N threads (the decode speed bound: weights bytes per
 * token / this figure). Each thread sums its slice of a 1 GiB buffer several times with 256-bit
 * loads the compiler vectorises; prints GB/s of the best pass. Benchmark only. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

struct slice {
    const uint64_t *p; /* borrowed */
    size_t n;          /* words */
    uint64_t sum;      /* result, keeps the loads alive */
};

static void *
reader(void *arg)
{
    struct slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
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
    double best = 0;
    for (int pass = 0; pass < 10; pass++) {
        pthread_t th[256];
        struct slice sl[256];
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            sl[t] = (struct slice){buf + words / threads * t, words / threads, 0};
            pthread_create(&th[t], NULL, reader, &sl[t]);
        }
        uint64_t total = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            total += sl[t].sum;
        }
        double gbs = bytes / (now() - t0) / 1e9;
        if (gbs > best)
            best = gbs;
        if (total == 42)
            puts("");
    }
    printf("%.2f\n", best);
    munmap(raw, bytes + huge);
    return 0;
}
