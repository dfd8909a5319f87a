/* hash.c -- SHA-256 and BLAKE2b-512 through OpenSSL EVP, one-file hashing with a reader
 * thread so that reading overlaps hashing, and a worker pool for many files.
 * Does not judge results (callers compare digests). File paths come from callers; file
 * contents are untrusted but only ever fed to the hash, never interpreted. */
#include "crypto/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/fsx.h"
#include "util/progress.h"
#include "util/xalloc.h"

/* 4 MiB reads amortise the syscall and page-cache copy; two buffers are enough for the
 * reader to stay one chunk ahead of the hasher. Files below FILE_OVERLAP_MIN are read in
 * line: a thread would cost more than it saves. */
#define FILE_CHUNK (4u << 20)
#define FILE_NBUF 2
#define FILE_OVERLAP_MIN (16u << 20)

/* ===== Streaming contexts ============================================================== */

static int
ctx_init(struct hash_ctx *c, const EVP_MD *md, const char *name, struct al_err *e)
{
    c->md = NULL;
    if (!md)
        return al_errf(e, AL_EINTERNAL, "%s is not available in this OpenSSL", name);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (!m)
        return al_errf(e, AL_EINTERNAL, "%s: EVP_MD_CTX_new failed", name);
    if (EVP_DigestInit_ex(m, md, NULL) != 1) {
        EVP_MD_CTX_free(m);
        return al_errf(e, AL_EINTERNAL, "%s: digest init failed", name);
    }
    c->md = m;
    return 0;
}

int
hash_sha256_init(struct hash_ctx *c, struct al_err *e)
{
    return ctx_init(c, EVP_sha256(), "SHA-256", e);
}

int
hash_blake2b512_init(struct hash_ctx *c, struct al_err *e)
{
    return ctx_init(c, EVP_blake2b512(), "BLAKE2b-512", e);
}

int
hash_update(struct hash_ctx *c, const void *p, size_t n, struct al_err *e)
{
    if (!c->md)
        return al_errf(e, AL_EINTERNAL, "hash_update on a finished context");
    if (n == 0)
        return 0;
    if (EVP_DigestUpdate(c->md, p, n) != 1)
        return al_errf(e, AL_EINTERNAL, "digest update failed");
    return 0;
}

int
hash_final(struct hash_ctx *c, uint8_t *out, struct al_err *e)
{
    if (!c->md)
        return al_errf(e, AL_EINTERNAL, "hash_final on a finished context");
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(c->md, out, &len);
    hash_ctx_free(c);
    if (ok != 1)
        return al_errf(e, AL_EINTERNAL, "digest final failed");
    return 0;
}

void
hash_ctx_free(struct hash_ctx *c)
{
    if (c && c->md) {
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
    }
}

/* ===== One-shot and hex ================================================================= */

static int
hash_oneshot(const EVP_MD *md, const char *name, const void *p, size_t n, uint8_t *out,
             struct al_err *e)
{
    if (!md)
        return al_errf(e, AL_EINTERNAL, "%s is not available in this OpenSSL", name);
    unsigned int len = 0;
    if (EVP_Digest(n ? p : "", n, out, &len, md, NULL) != 1)
        return al_errf(e, AL_EINTERNAL, "%s: digest failed", name);
    return 0;
}

int
hash_sha256(const void *p, size_t n, uint8_t out[SHA256_LEN], struct al_err *e)
{
    return hash_oneshot(EVP_sha256(), "SHA-256", p, n, out, e);
}

int
hash_blake2b512(const void *p, size_t n, uint8_t out[BLAKE2B512_LEN], struct al_err *e)
{
    return hash_oneshot(EVP_blake2b512(), "BLAKE2b-512", p, n, out, e);
}

void
hash_hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
hash_unhex(const char *hex, size_t hexlen, uint8_t *d, size_t n)
{
    if (hexlen != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(hex[2 * i]);
        int lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        d[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* ===== One file: reader thread + hasher ==================================================
 * The reader fills FILE_NBUF buffers in turn; the hasher (calling thread) consumes them in
 * the same order. Each slot is either empty (reader may fill) or full (hasher may hash);
 * a full slot with len 0 marks end of file, and err != 0 a read error. */

struct rd_slot {
    uint8_t *data; /* FILE_CHUNK bytes, owned by struct rd_pipe */
    size_t len;    /* bytes valid; written by reader while empty, read by hasher when full */
    int err;       /* errno of a failed read, 0 otherwise; same ownership as len */
    bool full;     /* guarded by rd_pipe.mu */
};

struct rd_pipe {
    int fd;             /* borrowed, read only by the reader thread */
    pthread_mutex_t mu; /* guards slot[].full and stop */
    pthread_cond_t cv;  /* signalled on every change of full/stop */
    struct rd_slot slot[FILE_NBUF];
    bool stop; /* set by the hasher to make the reader quit early */
};

static ssize_t
read_full(int fd, uint8_t *p, size_t n, int *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void *
rd_pipe_reader(void *arg)
{
    struct rd_pipe *rp = arg;
    for (size_t i = 0;; i = (i + 1) % FILE_NBUF) {
        struct rd_slot *s = &rp->slot[i];
        pthread_mutex_lock(&rp->mu);
        while (s->full && !rp->stop)
            pthread_cond_wait(&rp->cv, &rp->mu);
        bool stop = rp->stop;
        pthread_mutex_unlock(&rp->mu);
        if (stop)
            break;
        s->err = 0;
        ssize_t r = read_full(rp->fd, s->data, FILE_CHUNK, &s->err);
        s->len = r > 0 ? (size_t)r : 0;
        pthread_mutex_lock(&rp->mu);
        s->full = true;
        pthread_cond_broadcast(&rp->cv);
        pthread_mutex_unlock(&rp->mu);
        if (r <= 0)
            break;
    }
    return NULL;
}

/* Hash everything readable from fd with a reader thread. Returns 0, or -1 with e set. */
static int
hash_fd_overlapped(int fd, const char *path, struct hash_ctx *c, uint64_t *size,
                   struct progress *prog, struct al_err *e)
{
    int rc = -1;
    bool started = false;
    struct rd_pipe rp;
    memset(&rp, 0, sizeof rp);
    rp.fd = fd;
    pthread_mutex_init(&rp.mu, NULL);
    pthread_cond_init(&rp.cv, NULL);
    for (size_t i = 0; i < FILE_NBUF; i++)
        rp.slot[i].data = xaligned_alloc(4096, FILE_CHUNK);
    pthread_t th;
    int perr = pthread_create(&th, NULL, rd_pipe_reader, &rp);
    if (perr != 0) {
        al_errno(e, perr, "%s: start reader thread", path);
        goto out;
    }
    started = true;
    for (size_t i = 0;; i = (i + 1) % FILE_NBUF) {
        struct rd_slot *s = &rp.slot[i];
        pthread_mutex_lock(&rp.mu);
        while (!s->full)
            pthread_cond_wait(&rp.cv, &rp.mu);
        pthread_mutex_unlock(&rp.mu);
        if (s->err) {
            al_errno(e, s->err, "%s: read", path);
            goto out;
        }
        if (s->len == 0)
            break;
        if (hash_update(c, s->data, s->len, e) < 0)
            goto out;
        *size += s->len;
        progress_add(prog, s->len);
        pthread_mutex_lock(&rp.mu);
        s->full = false;
        pthread_cond_broadcast(&rp.cv);
        pthread_mutex_unlock(&rp.mu);
    }
    rc = 0;
out:
    if (started) {
        pthread_mutex_lock(&rp.mu);
        rp.stop = true;
        pthread_cond_broadcast(&rp.cv);
        pthread_mutex_unlock(&rp.mu);
        pthread_join(th, NULL);
    }
    for (size_t i = 0; i < FILE_NBUF; i++)
        free(rp.slot[i].data);
    pthread_cond_destroy(&rp.cv);
    pthread_mutex_destroy(&rp.mu);
    return rc;
}

static int
hash_fd_inline(int fd, const char *path, struct hash_ctx *c, uint64_t *size, struct progress *prog,
               struct al_err *e)
{
    int rc = -1;
    uint8_t *b = xaligned_alloc(4096, FILE_CHUNK);
    for (;;) {
        int err = 0;
        ssize_t r = read_full(fd, b, FILE_CHUNK, &err);
        if (r < 0) {
            al_errno(e, err, "%s: read", path);
            goto out;
        }
        if (r == 0)
            break;
        if (hash_update(c, b, (size_t)r, e) < 0)
            goto out;
        *size += (uint64_t)r;
        progress_add(prog, (uint64_t)r);
    }
    rc = 0;
out:
    free(b);
    return rc;
}

/* overlap: use a reader thread for large files (false when every core already hashes). */
static int
hash_file_any(const char *path, bool blake, uint8_t *out, uint64_t *size, struct progress *prog,
              bool overlap, struct al_err *e)
{
    int rc = -1;
    int fd = -1;
    struct hash_ctx c = {0};
    uint64_t n = 0;
    fd = fsx_open_read(path, e);
    if (fd < 0)
        goto out;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        al_errno(e, errno, "%s: stat", path);
        goto out;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* best effort: read-ahead hint */
    if ((blake ? hash_blake2b512_init(&c, e) : hash_sha256_init(&c, e)) < 0)
        goto out;
    int r;
    if (overlap && (uint64_t)st.st_size >= FILE_OVERLAP_MIN)
        r = hash_fd_overlapped(fd, path, &c, &n, prog, e);
    else
        r = hash_fd_inline(fd, path, &c, &n, prog, e);
    if (r < 0)
        goto out;
    if (hash_final(&c, out, e) < 0)
        goto out;
    if (size)
        *size = n;
    rc = 0;
out:
    hash_ctx_free(&c);
    if (fd >= 0)
        close(fd);
    return rc;
}

int
hash_sha256_file(const char *path, uint8_t out[SHA256_LEN], uint64_t *size, struct progress *prog,
                 struct al_err *e)
{
    return hash_file_any(path, false, out, size, prog, true, e);
}

int
hash_blake2b512_file(const char *path, uint8_t out[BLAKE2B512_LEN], struct al_err *e)
{
    return hash_file_any(path, true, out, NULL, NULL, true, e);
}

/* ===== Many files: a worker pool, largest file first =====================================
 * Workers take the next index from an atomic counter over jobs sorted by size, so the big
 * files start early and the small ones fill the gaps at the end. */

struct pool_item {
    size_t job;    /* index into the caller's jobs */
    uint64_t size; /* from stat; 0 when stat failed (the worker reports the error) */
};

struct pool {
    struct hash_job *jobs;   /* borrowed; each job written only by the worker that took it */
    struct pool_item *order; /* owned, sorted largest first */
    size_t n;
    _Atomic size_t next;   /* next position in order to take */
    struct progress *prog; /* borrowed, thread-safe adds */
    bool overlap;          /* reader threads only when workers < cores */
};

/* CPUs this process may run on (taskset, cpusets), falling back to the online count. */
static long
usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static int
pool_item_cmp(const void *a, const void *b)
{
    const struct pool_item *x = a;
    const struct pool_item *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return x->job < y->job ? -1 : (x->job > y->job);
}

static void *
pool_worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        struct hash_job *j = &p->jobs[p->order[i].job];
        al_err_clear(&j->err);
        j->size = 0;
        j->rc = hash_file_any(j->path, false, j->sha256, &j->size, p->prog, p->overlap, &j->err);
    }
    return NULL;
}

int
hash_files(struct hash_job *jobs, size_t n, int threads, struct progress *prog, struct al_err *e)
{
    int rc = -1;
    pthread_t *th = NULL;
    size_t started = 0;
    struct pool p;
    memset(&p, 0, sizeof p);
    long cpus = usable_cpus();
    if (threads < 0)
        return al_errf(e, AL_EUSAGE, "hash_files: %d threads", threads);
    size_t nt = threads == 0 ? (size_t)cpus : (size_t)threads;
    if (nt > n)
        nt = n;
    if (n == 0)
        return 0;
    p.jobs = jobs;
    p.n = n;
    p.prog = prog;
    p.overlap = nt < (size_t)cpus;
    atomic_init(&p.next, 0);
    p.order = xcalloc(n, sizeof *p.order);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        p.order[i].job = i;
        p.order[i].size = stat(jobs[i].path, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    qsort(p.order, n, sizeof *p.order, pool_item_cmp);
    if (nt == 1) {
        pool_worker(&p);
        rc = 0;
        goto out;
    }
    th = xcalloc(nt, sizeof *th);
    for (; started < nt; started++) {
        int perr = pthread_create(&th[started], NULL, pool_worker, &p);
        if (perr != 0) {
            if (started > 0)
                break; /* fewer workers still finish every job */
            al_errno(e, perr, "hash_files: start worker thread");
            goto out;
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    free(p.order);
    return rc;
}
