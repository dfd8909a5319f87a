/* progress.c -- a one-line byte-progress bar on stderr, redrawn at most ~10 times a second.
 * The only library code that writes to a terminal, and only when the caller enabled it
 * (stderr is a tty and the user did not ask for quiet). Never prints to stdout.
 * Line format: "label  [=====>    ]  1.2 GiB / 4.0 GiB  850 MiB/s  ETA 3s". */
#include "util/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_INTERVAL_NS 100000000LL /* 10 redraws per second at most */
#define PROGRESS_BAR_WIDTH 30

/* ===== Helpers ========================================================================= */

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* "1.2 GiB", "512 B": binary units, one decimal above bytes. */
static void
fmt_bytes(char *out, size_t cap, double v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof unit / sizeof unit[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%.0f %s", v, unit[u]);
    else
        snprintf(out, cap, "%.1f %s", v, unit[u]);
}

static void
fmt_eta(char *out, size_t cap, double secs)
{
    if (secs < 0 || secs > 360000.0) {
        snprintf(out, cap, "ETA --");
        return;
    }
    long s = (long)(secs + 0.5);
    if (s >= 3600)
        snprintf(out, cap, "ETA %ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        snprintf(out, cap, "ETA %ldm%02lds", s / 60, s % 60);
    else
        snprintf(out, cap, "ETA %lds", s);
}

/* One write() of the whole line so that concurrent writers cannot interleave within it. */
static void
progress_draw(struct progress *p, int64_t now, bool final)
{
    uint64_t done = atomic_load(&p->done);
    double secs = (double)(now - p->start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0;
    char d[32], t[32], r[32], eta[32];
    char bar[PROGRESS_BAR_WIDTH + 1];
    fmt_bytes(d, sizeof d, (double)done);
    fmt_bytes(r, sizeof r, rate);
    char line[256];
    if (p->total > 0) {
        uint64_t shown = done > p->total ? p->total : done;
        size_t fill = (size_t)((double)shown / (double)p->total * PROGRESS_BAR_WIDTH);
        for (size_t i = 0; i < PROGRESS_BAR_WIDTH; i++)
            bar[i] = i < fill ? '=' : ' ';
        if (fill < PROGRESS_BAR_WIDTH)
            bar[fill] = '>';
        bar[PROGRESS_BAR_WIDTH] = '\0';
        fmt_bytes(t, sizeof t, (double)p->total);
        if (final)
            snprintf(eta, sizeof eta, "in %.1fs", secs);
        else
            fmt_eta(eta, sizeof eta, rate > 0 ? (double)(p->total - shown) / rate : -1);
        snprintf(line, sizeof line, "\r%s  [%s]  %s / %s  %s/s  %s\033[K%s", p->label, bar, d, t, r,
                 eta, final ? "\n" : "");
    } else {
        snprintf(line, sizeof line, "\r%s  %s  %s/s\033[K%s", p->label, d, r, final ? "\n" : "");
    }
    size_t len = strlen(line);
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* best effort: a progress bar that cannot be drawn is not an error */
}

/* ===== Lifecycle and updates ============================================================= */

void
progress_init(struct progress *p, const char *label, uint64_t total, bool enabled)
{
    p->label = label ? label : "";
    p->total = total;
    atomic_init(&p->done, 0);
    p->start_ns = now_ns();
    /* the first draw waits one interval: a rate over microseconds would be noise */
    atomic_init(&p->last_draw_ns, p->start_ns);
    p->enabled = enabled;
}

void
progress_add(struct progress *p, uint64_t bytes)
{
    if (!p)
        return;
    atomic_fetch_add(&p->done, bytes);
    if (!p->enabled)
        return;
    int64_t now = now_ns();
    int64_t last = atomic_load(&p->last_draw_ns);
    if (now - last < PROGRESS_INTERVAL_NS)
        return;
    /* only the thread that wins the exchange draws this interval */
    if (!atomic_compare_exchange_strong(&p->last_draw_ns, &last, now))
        return;
    progress_draw(p, now, false);
}

void
progress_update(struct progress *p, uint64_t done, uint64_t total)
{
    if (!p)
        return;
    uint64_t before = atomic_load(&p->done);
    p->total = total;
    if (done > before)
        progress_add(p, done - before);
}

void
progress_finish(struct progress *p)
{
    if (!p || !p->enabled)
        return;
    progress_draw(p, now_ns(), true);
}
