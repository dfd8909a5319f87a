/* bundle.c -- pack and verify pipelines for signed transfer bundles and sha256sum drives.
 * Owns the verification order (signature by a trusted key, trusted comment vs BOM hash,
 * strict manifest, then every file: size, hash, presence, safety), the per-path report, and
 * the all-or-nothing output: pack builds beside its target and renames; verify --extract
 * stages under a temp dir beside DEST (files created with openat/O_NOFOLLOW relative to a
 * directory fd, never through libarchive's extract-to-disk) and renames only when all holds.
 * Does not parse tar, manifests, BOMs or signatures itself (tar.c, manifest.c, bom.c,
 * minisig.c, pgp.c). Spec: docs/formats/bundle.md. Everything read is untrusted.
 *
 * One exception to "no global mutable state": the SIGINT/SIGTERM handler must know which
 * temp directory to remove, so extract_cleanup_* below hold it while an extraction runs. Only
 * bundle_verify sets and clears them, from the main thread, with the handler installed. */
#include "transfer/bundle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "crypto/hash.h"
#include "transfer/bom.h"
#include "transfer/manifest.h"
#include "transfer/minisig.h"
#include "transfer/pgp.h"
#include "transfer/safety.h"
#include "transfer/tar.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/progress.h"
#include "util/xalloc.h"

#define BUNDLE_SIG_MAX (64u << 10)  /* bytes of a .minisig/.sig/.asc file */
#define BUNDLE_BOM_MAX (256u << 20) /* bytes of BOM.json */
#define BUNDLE_CHUNK (1u << 20)     /* bytes per read while copying/streaming */

/* One file seen in the bundle/drive: from a directory scan, a tar entry, or a staged copy. */
struct found {
    char *path;                 /* owned, relative to the root */
    char *disk_path;            /* owned full path to read it again (NULL for streamed tars) */
    uint64_t size;              /* bytes actually read/hashed */
    uint8_t sha256[SHA256_LEN]; /* digest of those bytes, valid when rc == 0 */
    int rc;                     /* 0 hashed, -1 failed (err) */
    char err[AL_ERR_MSG];       /* why hashing failed */
    struct safety_verdict v;    /* classified from the file's own bytes */
    bool classified;            /* v is valid */
    bool matched;               /* consumed by the comparison */
};

struct found_list {
    struct found *v; /* owned, n entries */
    size_t n, cap;
};

/* ===== Report helpers ==================================================================== */

void
bundle_report_init(struct bundle_report *r)
{
    memset(r, 0, sizeof *r);
}

void
bundle_report_free(struct bundle_report *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->version);
    free(r->manifest_path);
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i].path);
    free(r->files);
    for (size_t i = 0; i < r->n_failures; i++) {
        free(r->failures[i].path);
        free(r->failures[i].message);
    }
    free(r->failures);
    for (size_t i = 0; i < r->n_warnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    for (size_t i = 0; i < r->n_notes; i++)
        free(r->notes[i]);
    free(r->notes);
    memset(r, 0, sizeof *r);
}

static void *
grow(void *v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return v;
    *cap = *cap ? *cap * 2 : 16;
    return xrealloc(v, *cap * elem);
}

static void
rep_file(struct bundle_report *r, const char *path, const char *status)
{
    r->files = grow(r->files, &r->cap_files, r->n_files, sizeof *r->files);
    r->files[r->n_files].path = xstrdup(path);
    manifest_text_sanitize(r->files[r->n_files].path); /* names are untrusted bytes */
    r->files[r->n_files].status = status;
    r->n_files++;
}

__attribute__((format(printf, 4, 5))) static void
rep_fail(struct bundle_report *r, const char *path, const char *kind, const char *fmt, ...)
{
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_puts(&b, tmp);
    manifest_text_sanitize(b.data);
    r->failures = grow(r->failures, &r->cap_failures, r->n_failures, sizeof *r->failures);
    r->failures[r->n_failures].path = xstrdup(path ? path : "");
    manifest_text_sanitize(r->failures[r->n_failures].path);
    r->failures[r->n_failures].kind = kind;
    r->failures[r->n_failures].message = buf_steal(&b);
    r->n_failures++;
}

__attribute__((format(printf, 2, 3))) static void
rep_warn(struct bundle_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    r->warnings = grow(r->warnings, &r->cap_warnings, r->n_warnings, sizeof *r->warnings);
    manifest_text_sanitize(tmp);
    r->warnings[r->n_warnings++] = xstrdup(tmp);
}

__attribute__((format(printf, 2, 3))) static void
rep_note(struct bundle_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    r->notes = grow(r->notes, &r->cap_notes, r->n_notes, sizeof *r->notes);
    manifest_text_sanitize(tmp);
    r->notes[r->n_notes++] = xstrdup(tmp);
}

static struct found *
found_add(struct found_list *l, const char *path)
{
    l->v = grow(l->v, &l->cap, l->n, sizeof *l->v);
    struct found *f = &l->v[l->n++];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    return f;
}

static void
found_list_free(struct found_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].disk_path);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int
found_cmp(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->path, ((const struct found *)b)->path);
}

/* ===== Byte streaming: read once, hash, optionally write, keep the head ================== */

struct stream_src {
    int fd;                /* read from this fd when tr == NULL */
    struct tar_reader *tr; /* or from the current tar entry */
};

static bool
all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* read() that does not make the kernel zero-fill holes: inside a hole of a sparse file it
 * returns zeros from memory and seeks past them (as `cp --sparse` finds them, with
 * SEEK_DATA/SEEK_HOLE). *next_hole caches where the current data region ends; start at 0.
 * Falls back to plain read() where the file system cannot tell. */
static ssize_t
sparse_read(int fd, uint8_t *p, size_t n, uint64_t pos, int64_t *next_hole)
{
    if (*next_hole >= 0 && (int64_t)pos >= *next_hole) {
        off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
        if (d < 0 && errno == ENXIO) {
            struct stat st; /* no data after pos: a hole up to the end of the file */
            d = fstat(fd, &st) == 0 ? st.st_size : (off_t)pos;
        }
        if (d < 0) {
            *next_hole = -1; /* SEEK_DATA unsupported: read everything */
        } else if ((uint64_t)d > pos) {
            size_t k = (uint64_t)d - pos < n ? (size_t)((uint64_t)d - pos) : n;
            memset(p, 0, k);
            if (lseek(fd, (off_t)(pos + k), SEEK_SET) < 0)
                return -1;
            return (ssize_t)k;
        } else {
            off_t h = lseek(fd, (off_t)pos, SEEK_HOLE);
            *next_hole = h > (off_t)pos ? (int64_t)h : -1;
        }
        if (lseek(fd, (off_t)pos, SEEK_SET) < 0)
            return -1;
    }
    if (*next_hole > 0 && (uint64_t)*next_hole - pos < n)
        n = (size_t)((uint64_t)*next_hole - pos);
    return read(fd, p, n);
}

/* Stream src into the hash (and out_fd when >= 0, keeping zero blocks as holes); keep the
 * first SAFETY_HEAD_BYTES in head. */
static int
stream_copy(struct stream_src *src, int out_fd, const char *what, uint8_t sha[SHA256_LEN],
            uint64_t *size, uint8_t *head, size_t *head_len, struct progress *prog,
            struct al_err *e)
{
    int rc = -1;
    struct hash_ctx hc = {0};
    uint8_t *chunk = xmalloc(BUNDLE_CHUNK);
    uint64_t total = 0;
    int64_t next_hole = 0; /* sparse_read's cursor: offset of the next hole */
    bool hole_at_end = false;
    if (head_len)
        *head_len = 0;
    if (hash_sha256_init(&hc, e) != 0)
        goto out;
    for (;;) {
        ssize_t r;
        if (src->tr) {
            r = tar_reader_read(src->tr, chunk, BUNDLE_CHUNK, e);
            if (r < 0)
                goto out;
        } else {
            r = sparse_read(src->fd, chunk, BUNDLE_CHUNK, total, &next_hole);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                al_errno(e, errno, "%s: read", what);
                goto out;
            }
        }
        if (r == 0)
            break;
        if (hash_update(&hc, chunk, (size_t)r, e) != 0)
            goto out;
        if (head && *head_len < SAFETY_HEAD_BYTES) {
            size_t k = SAFETY_HEAD_BYTES - *head_len;
            if (k > (size_t)r)
                k = (size_t)r;
            memcpy(head + *head_len, chunk, k);
            *head_len += k;
        }
        if (out_fd >= 0) {
            /* keep sparse inputs sparse: a 2 GiB hole must not become 2 GiB of disk */
            if ((size_t)r == BUNDLE_CHUNK && all_zero(chunk, (size_t)r)) {
                if (lseek(out_fd, r, SEEK_CUR) < 0) {
                    al_errno(e, errno, "%s: seek", what);
                    goto out;
                }
                hole_at_end = true;
            } else {
                if (fsx_write_all(out_fd, chunk, (size_t)r, what, e) != 0)
                    goto out;
                hole_at_end = false;
            }
        }
        total += (uint64_t)r;
        progress_add(prog, (uint64_t)r);
    }
    if (out_fd >= 0 && hole_at_end && ftruncate(out_fd, (off_t)total) != 0) {
        al_errno(e, errno, "%s: truncate", what);
        goto out;
    }
    if (hash_final(&hc, sha, e) != 0)
        goto out;
    *size = total;
    rc = 0;
out:
    hash_ctx_free(&hc);
    free(chunk);
    return rc;
}

/* Owned copy of path without trailing slashes ("B/" and "B" name the same output). */
static char *
path_trim(const char *path)
{
    char *p = xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    return p;
}

/* ===== Staging directory: files created only below a directory fd ======================= */

/* Create the parents of rel under root_fd (mkdirat + O_NOFOLLOW at each step) and open the
 * file itself O_CREAT|O_EXCL. Returns the fd or -1. */
static int
stage_open(int root_fd, const char *rel, struct al_err *e)
{
    int rc = -1;
    char *p = xstrdup(rel);
    int dfd = dup(root_fd);
    if (dfd < 0) {
        al_errno(e, errno, "%s: dup", rel);
        goto out;
    }
    char *s = p;
    for (char *slash; (slash = strchr(s, '/')) != NULL; s = slash + 1) {
        *slash = '\0';
        if (mkdirat(dfd, s, 0755) != 0 && errno != EEXIST) {
            al_errno(e, errno, "%s: create directory %s", rel, s);
            goto out;
        }
        int nfd = openat(dfd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            al_errno(e, errno, "%s: open directory %s", rel, s);
            goto out;
        }
        close(dfd);
        dfd = nfd;
    }
    rc = openat(dfd, s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (rc < 0)
        al_errno(e, errno, "%s: create", rel);
out:
    if (dfd >= 0)
        close(dfd);
    free(p);
    return rc;
}

static int
stage_write_buf(int root_fd, const char *rel, const void *data, size_t len, struct al_err *e)
{
    int fd = stage_open(root_fd, rel, e);
    if (fd < 0)
        return -1;
    int rc = fsx_write_all(fd, data, len, rel, e);
    if (rc == 0 && fsync(fd) != 0)
        rc = al_errno(e, errno, "%s: fsync", rel);
    close(fd);
    return rc;
}

/* fsync every directory of the staged tree (files were fsynced as they were closed). */
static int
stage_fsync_dirs(int dfd, int depth, struct al_err *e)
{
    int rc = -1;
    int own = dup(dfd);
    DIR *d = own >= 0 ? fdopendir(own) : NULL;
    if (!d) {
        if (own >= 0)
            close(own);
        return al_errno(e, errno, "staging directory: opendir");
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            depth > 4096)
            continue;
        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            al_errno(e, errno, "staging directory %s: open", de->d_name);
            goto out;
        }
        int r = stage_fsync_dirs(sub, depth + 1, e);
        close(sub);
        if (r != 0)
            goto out;
    }
    if (fsync(dfd) != 0) {
        al_errno(e, errno, "staging directory: fsync");
        goto out;
    }
    rc = 0;
out:
    closedir(d);
    return rc;
}

/* ----- interruption: remove the staging directory with async-signal-safe calls only ----- */

static char extract_cleanup_path[PATH_MAX];         /* temp dir to remove on a signal */
static volatile sig_atomic_t extract_cleanup_armed; /* 1 while extract_cleanup_path is live */

static void
sig_rmtree_at(int dfd, int depth)
{
    char dbuf[1024];
    for (int pass = 0; pass < 1000; pass++) {
        int removed = 0;
        if (lseek(dfd, 0, SEEK_SET) < 0)
            return;
        for (;;) {
            long n = syscall(SYS_getdents64, dfd, dbuf, sizeof dbuf);
            if (n <= 0)
                break;
            for (long off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(void *)(dbuf + off);
                off += d->d_reclen;
                const char *nm = d->d_name;
                if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
                    continue;
                if (unlinkat(dfd, nm, 0) == 0) {
                    removed++;
                } else if (depth < 256) {
                    int sub = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (sub >= 0) {
                        sig_rmtree_at(sub, depth + 1);
                        close(sub);
                    }
                    if (unlinkat(dfd, nm, AT_REMOVEDIR) == 0)
                        removed++;
                }
            }
        }
        if (removed == 0)
            return;
    }
}

static void
extract_on_signal(int sig)
{
    if (extract_cleanup_armed) {
        int fd = open(extract_cleanup_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            sig_rmtree_at(fd, 0);
            close(fd);
        }
        rmdir(extract_cleanup_path);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ===== Comparison: expected (manifest) vs found ========================================== */

struct expect {
    const struct manifest_entry *m; /* borrowed */
    uint64_t bom_size;              /* size the BOM promises; UINT64_MAX when unknown */
    bool check_safety;              /* payload file: refuse pickle/code unless allowed */
};

static const char *
hexs(const uint8_t *d, char out[2 * SHA256_LEN + 1])
{
    hash_hex(d, SHA256_LEN, out);
    return out;
}

static void
check_safety(const struct bundle_verify_opts *o, struct bundle_report *r, struct found *f)
{
    if (!f->classified)
        return;
    if (f->v.cls == SAFETY_PICKLE) {
        if (o->allow_pickle) {
            r->pickle_allowed = true;
            rep_warn(r, "%s: pickle (%s) allowed by --allow-pickle: loading it can run code",
                     f->path, f->v.format);
        } else {
            rep_fail(r, f->path, "pickle", "pickle: %s: %s (%s); refused without --allow-pickle",
                     f->path, f->v.format, f->v.reason);
        }
    } else if (f->v.cls == SAFETY_CODE) {
        if (o->allow_code) {
            r->code_allowed = true;
            rep_warn(r, "%s: executable code (%s) allowed by --allow-code", f->path, f->v.format);
        } else {
            rep_fail(r, f->path, "code", "code: %s: %s (%s); refused without --allow-code", f->path,
                     f->v.format, f->v.reason);
        }
    }
}

/* ex sorted by path (manifest order), fl sorted by path. */
static void
compare_sets(const struct bundle_verify_opts *o, struct bundle_report *r, struct expect *ex,
             size_t n_ex, struct found_list *fl)
{
    size_t i = 0, j = 0;
    size_t *missing = xcalloc(n_ex + 1, sizeof *missing);
    size_t n_missing = 0;
    char h1[65], h2[65];
    while (i < n_ex || j < fl->n) {
        int c = i >= n_ex ? 1 : j >= fl->n ? -1 : strcmp(ex[i].m->path, fl->v[j].path);
        if (c < 0) {
            missing[n_missing++] = i++;
            continue;
        }
        if (c > 0) {
            j++; /* extra: handled below, after renames are paired */
            continue;
        }
        struct found *f = &fl->v[j];
        const struct expect *x = &ex[i];
        f->matched = true;
        r->bytes += f->size;
        if (f->rc != 0) {
            rep_fail(r, f->path, "unreadable", "unreadable: %s", f->err);
            rep_file(r, f->path, "unreadable");
        } else if (x->bom_size != UINT64_MAX && f->size < x->bom_size) {
            rep_fail(r, f->path, "truncated", "truncated: %s has %llu bytes, BOM says %llu",
                     f->path, (unsigned long long)f->size, (unsigned long long)x->bom_size);
            rep_file(r, f->path, "truncated");
        } else if (x->bom_size != UINT64_MAX && f->size != x->bom_size) {
            rep_fail(r, f->path, "size", "size differs: %s has %llu bytes, BOM says %llu", f->path,
                     (unsigned long long)f->size, (unsigned long long)x->bom_size);
            rep_file(r, f->path, "size");
        } else if (memcmp(f->sha256, x->m->sha256, SHA256_LEN) != 0) {
            rep_fail(r, f->path, "modified", "modified: %s: SHA-256 %s, manifest says %s", f->path,
                     hexs(f->sha256, h1), hexs(x->m->sha256, h2));
            rep_file(r, f->path, "modified");
        } else {
            size_t before = r->n_failures;
            if (x->check_safety)
                check_safety(o, r, f);
            rep_file(r, f->path, r->n_failures > before ? r->failures[before].kind : "ok");
        }
        i++;
        j++;
    }
    /* a missing file whose hash equals an extra file's was renamed */
    for (size_t k = 0; k < n_missing; k++) {
        const struct expect *x = &ex[missing[k]];
        struct found *to = NULL;
        for (size_t q = 0; q < fl->n && !to; q++)
            if (!fl->v[q].matched && fl->v[q].rc == 0 &&
                memcmp(fl->v[q].sha256, x->m->sha256, SHA256_LEN) == 0)
                to = &fl->v[q];
        if (to) {
            to->matched = true;
            rep_fail(r, x->m->path, "renamed", "renamed: %s -> %s", x->m->path, to->path);
            rep_file(r, x->m->path, "renamed");
        } else {
            rep_fail(r, x->m->path, "missing", "missing: %s (listed in the manifest)", x->m->path);
            rep_file(r, x->m->path, "missing");
        }
    }
    for (size_t q = 0; q < fl->n; q++)
        if (!fl->v[q].matched) {
            rep_fail(r, fl->v[q].path, "extra", "extra file: %s (not in the manifest)",
                     fl->v[q].path);
            rep_file(r, fl->v[q].path, "extra");
        }
    free(missing);
}

/* ===== Signatures ======================================================================== */

/* minisign over data: key id first (its own message), then the signature itself. */
static int
check_minisig(const struct minisig_trust *t, const char *sig_text, size_t sig_len,
              const char *sig_name, const void *data, size_t len, struct minisig_sig *sig,
              struct bundle_report *r)
{
    struct al_err e = {0};
    if (minisig_sig_parse(sig_text, sig_len, sig, &e) != 0) {
        rep_fail(r, sig_name, "signature", "signature: %s: %s", sig_name, e.msg);
        return -1;
    }
    char kid[17];
    minisig_keyid_hex(sig->key_id, kid);
    bool known = false;
    for (size_t i = 0; i < t->n; i++)
        if (memcmp(t->keys[i].key_id, sig->key_id, MINISIG_KEYID_LEN) == 0)
            known = true;
    if (!known) {
        rep_fail(r, sig_name, "signature",
                 "signature: %s: signed by key ID %s, which is not "
                 "a trusted key (wrong or unknown key)",
                 sig_name, kid);
        return -1;
    }
    const struct minisig_pubkey *signer = NULL;
    if (minisig_verify_buf(t, sig, data, len, &signer, &e) != 0) {
        rep_fail(r, sig_name, "signature", "signature: %s: %s", sig_name, e.msg);
        return -1;
    }
    snprintf(r->signer_key_id, sizeof r->signer_key_id, "%s", kid);
    return 0;
}

/* "airlock-bundle v1 name=N version=V bom-sha256=HEX created=UNIX": value of key, or NULL. */
static char *
tc_field(const char *tc, const char *key)
{
    size_t kl = strlen(key);
    const char *p = tc;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && p[kl] == '=' && strncmp(p, key, kl) == 0)
            return xstrndup(p + kl + 1, n - kl - 1);
        p += n;
    }
    return NULL;
}

/* ===== Native bundle metadata: signature, trusted comment, BOM, manifest =================== */

struct native_meta {
    struct manifest man;   /* normalised, sorted */
    struct bom_parsed bom; /* parsed BOM */
    bool have_bom;
};

static void
native_meta_free(struct native_meta *nm)
{
    manifest_free(&nm->man);
    if (nm->have_bom)
        bom_parsed_free(&nm->bom);
    memset(nm, 0, sizeof *nm);
}

/* 0 ok, 1 failure recorded in r (stop), -1 error in e. */
static int
native_check_meta(const struct bundle_verify_opts *o, const struct minisig_trust *t,
                  const char *man, size_t man_len, const char *sig, size_t sig_len, const char *bom,
                  size_t bom_len, struct native_meta *nm, struct bundle_report *r, struct al_err *e)
{
    int rc = 1;
    char *tname = NULL, *tver = NULL, *tbom = NULL;
    struct minisig_sig s;
    memset(&s, 0, sizeof s);
    if (!man) {
        rep_fail(r, BUNDLE_MANIFEST, "missing", "missing: %s", BUNDLE_MANIFEST);
        goto out;
    }
    if (!bom) {
        rep_fail(r, BUNDLE_BOM, "missing", "missing: %s", BUNDLE_BOM);
        goto out;
    }
    if (t) {
        if (!sig) {
            rep_fail(r, BUNDLE_SIG, "signature", "signature: %s is missing", BUNDLE_SIG);
            goto out;
        }
        if (check_minisig(t, sig, sig_len, BUNDLE_SIG, man, man_len, &s, r) != 0)
            goto out;
        const char *tc = s.trusted_comment;
        if (strncmp(tc, "airlock-bundle v1 ", 18) != 0) {
            rep_fail(r, BUNDLE_SIG, "signature",
                     "signature: trusted comment '%.200s' is not "
                     "an airlock-bundle v1 comment",
                     tc);
            goto out;
        }
        tname = tc_field(tc, "name");
        tver = tc_field(tc, "version");
        tbom = tc_field(tc, "bom-sha256");
        if (!tname || !tver || !tbom) {
            rep_fail(r, BUNDLE_SIG, "signature",
                     "signature: trusted comment '%.200s' lacks "
                     "name=, version= or bom-sha256=",
                     tc);
            goto out;
        }
        uint8_t d[SHA256_LEN];
        char hx[65];
        if (hash_sha256(bom, bom_len, d, e) != 0) {
            rc = -1;
            goto out;
        }
        hexs(d, hx);
        if (strcmp(hx, tbom) != 0) {
            rep_fail(r, BUNDLE_BOM, "bom",
                     "bom: %s has SHA-256 %s but the signed trusted "
                     "comment says bom-sha256=%.80s (BOM edited?)",
                     BUNDLE_BOM, hx, tbom);
            goto out;
        }
    } else {
        r->unsigned_allowed = true;
        rep_warn(r, "the manifest signature was NOT checked (--allow-unsigned): nothing "
                    "vouches for these files");
    }
    struct al_err pe = {0};
    if (bom_parse(bom, bom_len, &nm->bom, &pe) != 0) {
        rep_fail(r, BUNDLE_BOM, "bom", "bom: %s: %s", BUNDLE_BOM, pe.msg);
        goto out;
    }
    nm->have_bom = true;
    r->name = xstrdup(nm->bom.name ? nm->bom.name : "");
    r->version = xstrdup(nm->bom.version ? nm->bom.version : "");
    if (tname && (strcmp(tname, r->name) != 0 || strcmp(tver, r->version) != 0)) {
        rep_fail(r, BUNDLE_BOM, "bom",
                 "bom: %s names %s %s but the signature names %.100s "
                 "%.100s",
                 BUNDLE_BOM, r->name, r->version, tname, tver);
        goto out;
    }
    if (manifest_parse(man, man_len, BUNDLE_MANIFEST, &nm->man, &pe) != 0 ||
        manifest_normalize(&nm->man, NULL, BUNDLE_MANIFEST, &pe) != 0) {
        rep_fail(r, BUNDLE_MANIFEST, "manifest", "manifest: %s", pe.msg);
        goto out;
    }
    for (size_t i = 0; i < nm->man.n; i++) {
        const char *p = nm->man.v[i].path;
        if (strcmp(p, BUNDLE_BOM) != 0 && strncmp(p, BUNDLE_PAYLOAD "/", 8) != 0) {
            rep_fail(r, p, "manifest",
                     "manifest: line %zu: '%s' is neither BOM.json nor under "
                     "payload/",
                     nm->man.v[i].line, p);
            goto out;
        }
    }
    if (!manifest_find(&nm->man, BUNDLE_BOM)) {
        rep_fail(r, BUNDLE_MANIFEST, "manifest", "manifest: does not list %s", BUNDLE_BOM);
        goto out;
    }
    /* the BOM and the manifest must describe the same payload */
    size_t n_payload = 0;
    for (size_t i = 0; i < nm->man.n; i++)
        if (strncmp(nm->man.v[i].path, BUNDLE_PAYLOAD "/", 8) == 0)
            n_payload++;
    bool bad = false;
    for (size_t i = 0; i < nm->bom.n; i++) {
        const struct bom_file *bf = &nm->bom.files[i];
        const struct manifest_entry *me = manifest_find(&nm->man, bf->path);
        if (!me) {
            rep_fail(r, bf->path, "bom", "bom: %s is in BOM.json but not in the manifest",
                     bf->path);
            bad = true;
        } else if (memcmp(me->sha256, bf->sha256, SHA256_LEN) != 0) {
            rep_fail(r, bf->path, "bom",
                     "bom: %s: BOM.json and the manifest disagree on its "
                     "SHA-256",
                     bf->path);
            bad = true;
        }
    }
    if (!bad && nm->bom.n != n_payload) {
        rep_fail(r, BUNDLE_BOM, "bom",
                 "bom: BOM.json lists %zu files, the manifest %zu payload "
                 "files",
                 nm->bom.n, n_payload);
        bad = true;
    }
    if (bad)
        goto out;
    rc = 0;
out:
    free(tname);
    free(tver);
    free(tbom);
    return rc;
}

static void
native_compare(const struct bundle_verify_opts *o, struct native_meta *nm, struct found_list *fl,
               struct bundle_report *r)
{
    struct expect *ex = xcalloc(nm->man.n + 1, sizeof *ex);
    for (size_t i = 0; i < nm->man.n; i++) {
        ex[i].m = &nm->man.v[i];
        ex[i].bom_size = UINT64_MAX;
        ex[i].check_safety = strncmp(ex[i].m->path, BUNDLE_PAYLOAD "/", 8) == 0;
        for (size_t k = 0; k < nm->bom.n; k++)
            if (strcmp(nm->bom.files[k].path, ex[i].m->path) == 0) {
                ex[i].bom_size = nm->bom.files[k].size;
                break;
            }
    }
    qsort(fl->v, fl->n, sizeof *fl->v, found_cmp);
    compare_sets(o, r, ex, nm->man.n, fl);
    free(ex);
}

/* ===== Hashing a directory's files in parallel =========================================== */

static int
hash_found(const struct bundle_verify_opts *o, struct found_list *fl, struct al_err *e)
{
    uint64_t total = 0;
    struct hash_job *jobs = xcalloc(fl->n + 1, sizeof *jobs);
    for (size_t i = 0; i < fl->n; i++)
        jobs[i].path = fl->v[i].disk_path;
    struct progress p;
    for (size_t i = 0; i < fl->n; i++)
        total += fl->v[i].size;
    progress_init(&p, "verifying", total, o->progress);
    int rc = hash_files(jobs, fl->n, o->threads, &p, e);
    progress_finish(&p);
    if (rc == 0)
        for (size_t i = 0; i < fl->n; i++) {
            fl->v[i].rc = jobs[i].rc;
            fl->v[i].size = jobs[i].size;
            memcpy(fl->v[i].sha256, jobs[i].sha256, SHA256_LEN);
            if (jobs[i].rc != 0)
                snprintf(fl->v[i].err, sizeof fl->v[i].err, "%s", jobs[i].err.msg);
        }
    free(jobs);
    return rc;
}

static void
classify_found(struct found *f)
{
    struct al_err e = {0};
    if (f->disk_path && safety_classify_file(f->disk_path, f->path, &f->v, &e) == 0)
        f->classified = true;
}

/* Collect regular files of root; specials and hard links are refused into r. Paths in skip
 * (NULL-terminated) are left out. */
static int
collect_dir(const char *root, const char *const *skip, struct found_list *fl,
            struct bundle_report *r, uint64_t *total, struct al_err *e)
{
    struct manifest_scan sc;
    if (manifest_scan_dir(root, &sc, e) != 0)
        return -1;
    for (size_t i = 0; i < sc.n_specials; i++)
        rep_fail(r, sc.specials[i].path, "refused", "refused: %s is a %s", sc.specials[i].path,
                 sc.specials[i].kind);
    *total = 0;
    for (size_t i = 0; i < sc.n_files; i++) {
        bool skipped = false;
        for (size_t k = 0; skip && skip[k]; k++)
            if (strcmp(skip[k], sc.files[i].path) == 0)
                skipped = true;
        if (skipped)
            continue;
        if (sc.files[i].nlink > 1) {
            rep_fail(r, sc.files[i].path, "refused", "refused: %s is a hard link (%llu links)",
                     sc.files[i].path, (unsigned long long)sc.files[i].nlink);
            continue;
        }
        struct found *f = found_add(fl, sc.files[i].path);
        f->disk_path = fsx_join(root, sc.files[i].path);
        f->size = sc.files[i].size;
        *total += f->size;
    }
    manifest_scan_free(&sc);
    return 0;
}

/* Copy every found file into the staging dir, hashing what is written; classify the copy. */
static int
stage_copy_found(const struct bundle_verify_opts *o, int stage_fd, const char *stage_path,
                 struct found_list *fl, uint64_t total, struct al_err *e)
{
    struct progress p;
    progress_init(&p, "extracting", total, o->progress);
    int rc = -1;
    for (size_t i = 0; i < fl->n; i++) {
        struct found *f = &fl->v[i];
        int in = fsx_open_read(f->disk_path, e);
        if (in < 0)
            goto out;
        int out_fd = stage_open(stage_fd, f->path, e);
        if (out_fd < 0) {
            close(in);
            goto out;
        }
        struct stream_src src = {.fd = in, .tr = NULL};
        int r = stream_copy(&src, out_fd, f->path, f->sha256, &f->size, NULL, NULL, &p, e);
        if (r == 0 && fsync(out_fd) != 0)
            r = al_errno(e, errno, "%s: fsync", f->path);
        close(in);
        close(out_fd);
        if (r != 0)
            goto out;
        free(f->disk_path);
        f->disk_path = fsx_join(stage_path, f->path); /* verify the copy, not the source */
    }
    rc = 0;
out:
    progress_finish(&p);
    return rc;
}

/* ===== Verify: directory bundle, tar bundle, drive ======================================== */

static int
fsync_parent(const char *path, struct al_err *e)
{
    char *d = fsx_dirname(path);
    int rc = fsx_fsync_dir(d, e);
    free(d);
    return rc;
}

struct stage {
    char *tmp; /* owned temp dir beside DEST, NULL when not extracting */
    int fd;    /* dir fd of tmp, -1 when closed */
    struct sigaction old_int, old_term;
    bool handlers;
};

static int
stage_begin(const char *dest, struct stage *st, struct al_err *e)
{
    struct stat sb;
    if (lstat(dest, &sb) == 0)
        return al_errf(e, AL_EEXIST, "--extract %s: already exists; DEST must not exist yet", dest);
    char *dir = fsx_dirname(dest);
    const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
    st->tmp = xasprintf("%s/.%s.airlock-XXXXXX", dir, base);
    free(dir);
    if (strlen(st->tmp) >= sizeof extract_cleanup_path || !mkdtemp(st->tmp)) {
        int err = errno;
        free(st->tmp);
        st->tmp = NULL;
        return al_errno(e, err, "--extract %s: create temp directory beside it", dest);
    }
    st->fd = open(st->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (st->fd < 0)
        return al_errno(e, errno, "%s: open", st->tmp);
    memcpy(extract_cleanup_path, st->tmp, strlen(st->tmp) + 1);
    extract_cleanup_armed = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = extract_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &st->old_int);
    sigaction(SIGTERM, &sa, &st->old_term);
    st->handlers = true;
    return 0;
}

/* On success move tmp to dest; on failure (ok == false) remove it. Always disarms. */
static int
stage_end(const char *dest, struct stage *st, bool ok, struct al_err *e)
{
    int rc = 0;
    if (!st->tmp)
        return 0;
    if (ok) {
        if (stage_fsync_dirs(st->fd, 0, e) != 0)
            ok = false, rc = -1;
        else if (renameat2(AT_FDCWD, st->tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0)
            ok = false, rc = al_errno(e, errno, "--extract: rename %s to %s", st->tmp, dest);
        else if (fsx_fsync_dir(dest, e) != 0 || fsync_parent(dest, e) != 0)
            rc = -1;
    }
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    if (!ok)
        fsx_remove_tree(st->tmp);
    extract_cleanup_armed = 0;
    if (st->handlers) {
        sigaction(SIGINT, &st->old_int, NULL);
        sigaction(SIGTERM, &st->old_term, NULL);
        st->handlers = false;
    }
    free(st->tmp);
    st->tmp = NULL;
    return rc;
}

/* Read one of the bundle's own files. Absent: *out = NULL, 0 (reported as missing later).
 * Present but unreadable (a symlink, too big, not a regular file): failure in r, -1. */
static int
read_meta(const char *path, const char *name, size_t max, char **out, size_t *len,
          struct bundle_report *r)
{
    struct stat sb;
    struct al_err re = {0};
    *out = NULL;
    *len = 0;
    if (lstat(path, &sb) != 0)
        return 0;
    if (fsx_read_file(path, max, out, len, &re) != 0) {
        rep_fail(r, name, "refused", "refused: %s", re.msg);
        return -1;
    }
    return 0;
}

static int
verify_native_dir(const struct bundle_verify_opts *o, const struct minisig_trust *t,
                  struct stage *st, struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    char *man = NULL, *sig = NULL, *bom = NULL;
    size_t man_len = 0, sig_len = 0, bom_len = 0;
    char *pm = fsx_join(o->path, BUNDLE_MANIFEST), *ps = fsx_join(o->path, BUNDLE_SIG),
         *pb = fsx_join(o->path, BUNDLE_BOM);
    struct native_meta nm;
    memset(&nm, 0, sizeof nm);
    struct found_list fl = {0};
    r->mode = "bundle";
    if (read_meta(pm, BUNDLE_MANIFEST, MANIFEST_MAX_BYTES, &man, &man_len, r) != 0 ||
        read_meta(ps, BUNDLE_SIG, BUNDLE_SIG_MAX, &sig, &sig_len, r) != 0 ||
        read_meta(pb, BUNDLE_BOM, BUNDLE_BOM_MAX, &bom, &bom_len, r) != 0) {
        rc = 0;
        goto out;
    }
    int m = native_check_meta(o, t, man, man_len, sig, sig_len, bom, bom_len, &nm, r, e);
    if (m != 0) {
        rc = m < 0 ? -1 : 0;
        goto out;
    }
    static const char *const skip[] = {BUNDLE_MANIFEST, BUNDLE_SIG, NULL};
    uint64_t total = 0;
    if (collect_dir(o->path, skip, &fl, r, &total, e) != 0)
        goto out;
    if (st->tmp) {
        if (stage_copy_found(o, st->fd, st->tmp, &fl, total, e) != 0 ||
            stage_write_buf(st->fd, BUNDLE_MANIFEST, man, man_len, e) != 0 ||
            (sig && stage_write_buf(st->fd, BUNDLE_SIG, sig, sig_len, e) != 0))
            goto out;
    } else if (hash_found(o, &fl, e) != 0) {
        goto out;
    }
    for (size_t i = 0; i < fl.n; i++)
        if (strncmp(fl.v[i].path, BUNDLE_PAYLOAD "/", 8) == 0)
            classify_found(&fl.v[i]);
    native_compare(o, &nm, &fl, r);
    rc = 0;
out:
    found_list_free(&fl);
    native_meta_free(&nm);
    free(man);
    free(sig);
    free(bom);
    free(pm);
    free(ps);
    free(pb);
    return rc;
}

static int
verify_tar(const struct bundle_verify_opts *o, const struct minisig_trust *t, struct stage *st,
           struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    int fd = -1;
    char *man = NULL, *sig = NULL, *bom = NULL;
    size_t man_len = 0, sig_len = 0, bom_len = 0;
    uint8_t *head = xmalloc(SAFETY_HEAD_BYTES);
    struct tar_reader tr;
    memset(&tr, 0, sizeof tr);
    struct native_meta nm;
    memset(&nm, 0, sizeof nm);
    struct found_list fl = {0};
    struct progress p;
    bool progress_on = false;
    struct stat sb;
    r->mode = "bundle-tar";
    fd = fsx_open_read(o->path, e);
    if (fd < 0)
        goto out;
    progress_init(&p, st->tmp ? "extracting" : "verifying",
                  fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0, o->progress);
    progress_on = true;
    if (tar_reader_open_fd(&tr, fd, o->path, e) != 0)
        goto out;
    for (;;) {
        struct tar_entry te;
        int n = tar_reader_next(&tr, &te, e);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (te.is_dir)
            continue;
        if (strcmp(te.path, BUNDLE_MANIFEST) == 0 || strcmp(te.path, BUNDLE_SIG) == 0) {
            bool is_man = strcmp(te.path, BUNDLE_MANIFEST) == 0;
            char **dst = is_man ? &man : &sig;
            size_t *dlen = is_man ? &man_len : &sig_len;
            size_t max = is_man ? MANIFEST_MAX_BYTES : BUNDLE_SIG_MAX;
            if (tar_reader_slurp(&tr, &te, max, dst, dlen, e) != 0)
                goto out;
            if (st->tmp && stage_write_buf(st->fd, te.path, *dst, *dlen, e) != 0)
                goto out;
            continue;
        }
        if (strcmp(te.path, BUNDLE_BOM) == 0) {
            /* kept whole: its hash is signed, and bom_parse needs all of it */
            if (tar_reader_slurp(&tr, &te, BUNDLE_BOM_MAX, &bom, &bom_len, e) != 0)
                goto out;
            struct found *bf = found_add(&fl, te.path);
            bf->size = bom_len;
            if (hash_sha256(bom, bom_len, bf->sha256, e) != 0)
                goto out;
            if (st->tmp && stage_write_buf(st->fd, te.path, bom, bom_len, e) != 0)
                goto out;
            continue;
        }
        struct found *f = found_add(&fl, te.path);
        int out_fd = -1;
        if (st->tmp) {
            out_fd = stage_open(st->fd, te.path, e);
            if (out_fd < 0)
                goto out;
            f->disk_path = fsx_join(st->tmp, te.path);
        }
        struct stream_src src = {.fd = -1, .tr = &tr};
        size_t head_len = 0;
        int k = stream_copy(&src, out_fd, te.path, f->sha256, &f->size, head, &head_len, &p, e);
        if (k == 0 && out_fd >= 0 && fsync(out_fd) != 0)
            k = al_errno(e, errno, "%s: fsync", te.path);
        if (out_fd >= 0)
            close(out_fd);
        if (k != 0)
            goto out;
        if (f->size != te.size) {
            al_errf(e, AL_EFORMAT, "%s: entry %s holds %llu bytes, header says %llu", o->path,
                    te.path, (unsigned long long)f->size, (unsigned long long)te.size);
            goto out;
        }
        if (strncmp(te.path, BUNDLE_PAYLOAD "/", 8) == 0) {
            if (f->disk_path) {
                classify_found(f);
            } else {
                safety_classify(te.path, head, head_len, f->size, &f->v);
                f->classified = true;
            }
        }
    }
    progress_finish(&p);
    progress_on = false;
    int m = native_check_meta(o, t, man, man_len, sig, sig_len, bom, bom_len, &nm, r, e);
    if (m != 0) {
        rc = m < 0 ? -1 : 0;
        goto out;
    }
    native_compare(o, &nm, &fl, r);
    rc = 0;
out:
    if (progress_on)
        progress_finish(&p);
    tar_reader_close(&tr);
    if (fd >= 0)
        close(fd);
    found_list_free(&fl);
    native_meta_free(&nm);
    free(head);
    free(man);
    free(sig);
    free(bom);
    return rc;
}

/* Drive manifest: --manifest, else TRANSFER_MANIFEST.sha256, SHA256SUMS, or one *.sha256. */
static char *
drive_find_manifest(const char *dir, struct al_err *e)
{
    static const char *const names[] = {"TRANSFER_MANIFEST.sha256", "SHA256SUMS", NULL};
    struct stat sb;
    for (size_t i = 0; names[i]; i++) {
        char *p = fsx_join(dir, names[i]);
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            return p;
        free(p);
    }
    DIR *d = opendir(dir);
    if (!d) {
        al_errno(e, errno, "%s: opendir", dir);
        return NULL;
    }
    char *found = NULL;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 7 && strcmp(de->d_name + n - 7, ".sha256") == 0) {
            count++;
            free(found);
            found = fsx_join(dir, de->d_name);
        }
    }
    closedir(d);
    if (count == 1)
        return found;
    free(found);
    if (count > 1)
        al_errf(e, AL_EUSAGE, "%s: several *.sha256 files; name one with --manifest FILE", dir);
    else
        al_errf(e, AL_ENOTFOUND,
                "%s: no bundle (MANIFEST.sha256 + BOM.json) and no manifest "
                "(TRANSFER_MANIFEST.sha256, SHA256SUMS, *.sha256); name one with --manifest",
                dir);
    return NULL;
}

/* The manifest's path relative to dir as an owned string, or NULL when it lies outside.
 * Both are resolved first, so "./drive/X" and "drive/X" name the same file. */
static char *
rel_inside(const char *dir, const char *path)
{
    char *rd = realpath(dir, NULL), *rp = realpath(path, NULL), *rel = NULL;
    if (rd && rp) {
        size_t n = strlen(rd);
        if (strncmp(rp, rd, n) == 0 && rp[n] == '/')
            rel = xstrdup(rp + n + 1);
        else if (strcmp(rd, "/") == 0 && rp[0] == '/')
            rel = xstrdup(rp + 1);
    }
    free(rd);
    free(rp);
    return rel;
}

/* Run gpgv over a private copy of exactly the bytes we parse, so the file cannot change
 * between the signature check and the parse. */
static int
drive_check_gpg(const struct bundle_verify_opts *o, const char *man, size_t man_len,
                const char *sig_path, struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    char *sig = NULL;
    size_t sig_len = 0;
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *dir = xasprintf("%s/airlock-gpgv-XXXXXX", tmpdir);
    char *pm = NULL, *ps = NULL;
    if (!mkdtemp(dir)) {
        al_errno(e, errno, "%s: create temp directory", dir);
        free(dir);
        return -1;
    }
    pm = fsx_join(dir, "manifest");
    ps = fsx_join(dir, "manifest.sig");
    if (fsx_read_file(sig_path, BUNDLE_SIG_MAX, &sig, &sig_len, e) != 0 ||
        fsx_write_atomic(pm, man, man_len, 0600, 1, e) != 0 ||
        fsx_write_atomic(ps, sig, sig_len, 0600, 1, e) != 0)
        goto out;
    struct pgp_result res;
    struct al_err ge = {0};
    if (pgp_verify_detached(o->trust_gpg, ps, pm, &res, &ge) != 0) {
        if (ge.code != AL_EVERIFY) {
            *e = ge;
            goto out;
        }
        /* gpgv names our private copy; name the drive's file instead */
        const char *msg = strncmp(ge.msg, ps, strlen(ps)) == 0 ? ge.msg + strlen(ps) + 2 : ge.msg;
        rep_fail(r, sig_path, "signature", "signature: %s: %s", sig_path, msg);
        rc = 0;
        goto out;
    }
    snprintf(r->signer_key_id, sizeof r->signer_key_id, "%s", res.fingerprint);
    rc = 0;
out:
    fsx_remove_tree(dir);
    free(dir);
    free(pm);
    free(ps);
    free(sig);
    return rc;
}

static int
verify_drive(const struct bundle_verify_opts *o, const struct minisig_trust *t, struct stage *st,
             struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    char *mpath = NULL, *man = NULL, *sig = NULL, *sig_minisig = NULL, *sig_gpg = NULL;
    char *mrel = NULL;
    size_t man_len = 0, sig_len = 0;
    struct manifest m;
    manifest_init(&m);
    struct found_list fl = {0};
    struct expect *ex = NULL;
    struct stat sb;
    r->mode = "drive";
    mpath = o->manifest ? xstrdup(o->manifest) : drive_find_manifest(o->path, e);
    if (!mpath)
        goto out;
    r->manifest_path = xstrdup(mpath);
    if (fsx_read_file(mpath, MANIFEST_MAX_BYTES, &man, &man_len, e) != 0)
        goto out;
    sig_minisig = xasprintf("%s.minisig", mpath);
    char *asc = xasprintf("%s.asc", mpath);
    sig_gpg = xasprintf("%s.sig", mpath);
    if (lstat(sig_gpg, &sb) != 0 && lstat(asc, &sb) == 0) {
        free(sig_gpg);
        sig_gpg = asc;
    } else {
        free(asc);
    }
    /* 1. signature */
    if (t) {
        if (lstat(sig_minisig, &sb) != 0) {
            rep_fail(r, sig_minisig, "signature",
                     "signature: %s is missing (--trust expects a "
                     "minisign signature of the manifest)",
                     sig_minisig);
            rc = 0;
            goto out;
        }
        if (fsx_read_file(sig_minisig, BUNDLE_SIG_MAX, &sig, &sig_len, e) != 0)
            goto out;
        struct minisig_sig s;
        if (check_minisig(t, sig, sig_len, sig_minisig, man, man_len, &s, r) != 0) {
            rc = 0;
            goto out;
        }
    } else if (o->trust_gpg) {
        if (lstat(sig_gpg, &sb) != 0) {
            rep_fail(r, sig_gpg, "signature",
                     "signature: neither %s nor its .asc form exists "
                     "(--trust-gpg expects an OpenPGP detached signature)",
                     sig_gpg);
            rc = 0;
            goto out;
        }
        if (drive_check_gpg(o, man, man_len, sig_gpg, r, e) != 0)
            goto out;
        if (r->n_failures) {
            rc = 0;
            goto out;
        }
    } else {
        r->unsigned_allowed = true;
        rep_warn(r,
                 "the manifest %s is UNSIGNED (--allow-unsigned): nothing vouches for these "
                 "files; they only match a list anyone could have written",
                 mpath);
    }
    /* 2. manifest */
    struct al_err pe = {0};
    if (manifest_parse(man, man_len, mpath, &m, &pe) != 0 ||
        manifest_normalize(&m, o->strip_prefix, mpath, &pe) != 0) {
        rep_fail(r, mpath, "manifest", "manifest: %s", pe.msg);
        rc = 0;
        goto out;
    }
    mrel = rel_inside(o->path, mpath);
    char *srel_m = mrel ? xasprintf("%s.minisig", mrel) : NULL;
    char *srel_s = mrel ? xasprintf("%s.sig", mrel) : NULL;
    char *srel_a = mrel ? xasprintf("%s.asc", mrel) : NULL;
    const char *skip[] = {mrel, srel_m, srel_s, srel_a, NULL};
    /* a manifest written by `sha256sum * > SHA256SUMS` may list itself: skip with a note */
    ex = xcalloc(m.n + 1, sizeof *ex);
    size_t n_ex = 0;
    for (size_t i = 0; i < m.n; i++) {
        bool self = false;
        for (size_t k = 0; mrel && skip[k]; k++)
            if (strcmp(m.v[i].path, skip[k]) == 0)
                self = true;
        if (self) {
            rep_note(r, "%s: line %zu lists %s itself; skipped", mpath, m.v[i].line, m.v[i].path);
            continue;
        }
        ex[n_ex].m = &m.v[i];
        ex[n_ex].bom_size = UINT64_MAX;
        ex[n_ex].check_safety = true;
        n_ex++;
    }
    uint64_t total = 0;
    int cr = collect_dir(o->path, mrel ? skip : NULL, &fl, r, &total, e);
    if (cr == 0 && st->tmp) {
        cr = stage_copy_found(o, st->fd, st->tmp, &fl, total, e);
        if (cr == 0 && mrel)
            cr = stage_write_buf(st->fd, mrel, man, man_len, e);
        if (cr == 0 && mrel && sig)
            cr = stage_write_buf(st->fd, srel_m, sig, sig_len, e);
    } else if (cr == 0) {
        cr = hash_found(o, &fl, e);
    }
    free(srel_m);
    free(srel_s);
    free(srel_a);
    if (cr != 0)
        goto out;
    for (size_t i = 0; i < fl.n; i++)
        classify_found(&fl.v[i]);
    qsort(fl.v, fl.n, sizeof *fl.v, found_cmp);
    compare_sets(o, r, ex, n_ex, &fl);
    rc = 0;
out:
    free(ex);
    found_list_free(&fl);
    manifest_free(&m);
    free(mrel);
    free(mpath);
    free(man);
    free(sig);
    free(sig_minisig);
    free(sig_gpg);
    return rc;
}

int
bundle_verify(const struct bundle_verify_opts *o, struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    struct minisig_trust trust = {0};
    bool have_trust = false;
    struct stage st = {.tmp = NULL, .fd = -1};
    char *dest = NULL;
    struct stat sb;
    if (!o->trust && !o->trust_gpg && !o->allow_unsigned)
        return al_errf(e, AL_EUSAGE,
                       "no trust anchor: give --trust PUBKEY, --trust-gpg KEYRING, "
                       "or --allow-unsigned");
    if (o->trust && o->trust_gpg)
        return al_errf(e, AL_EUSAGE, "--trust and --trust-gpg are exclusive");
    if (lstat(o->path, &sb) != 0)
        return al_errno(e, errno, "%s", o->path);
    bool is_tar = S_ISREG(sb.st_mode);
    if (!is_tar && !S_ISDIR(sb.st_mode))
        return al_errf(e, AL_EUSAGE, "%s: not a directory or a tar file", o->path);
    char *pm = fsx_join(o->path, BUNDLE_MANIFEST), *pb = fsx_join(o->path, BUNDLE_BOM);
    bool native = !is_tar && !o->manifest && lstat(pm, &sb) == 0 && lstat(pb, &sb) == 0;
    free(pm);
    free(pb);
    if ((is_tar || native) && o->trust_gpg)
        return al_errf(e, AL_EUSAGE, "%s: airlock bundles are signed with minisign; use --trust",
                       o->path);
    if (o->trust) {
        if (minisig_trust_load(o->trust, &trust, e) != 0)
            goto out;
        have_trust = true;
    }
    if (o->extract) {
        dest = path_trim(o->extract);
        if (stage_begin(dest, &st, e) != 0)
            goto out;
    }
    int k = is_tar   ? verify_tar(o, have_trust ? &trust : NULL, &st, r, e)
            : native ? verify_native_dir(o, have_trust ? &trust : NULL, &st, r, e)
                     : verify_drive(o, have_trust ? &trust : NULL, &st, r, e);
    if (k != 0) {
        if (e && e->code == AL_EVERIFY) /* a refused tar entry: keep it in the report too */
            rep_fail(r, "", "refused", "refused: %s", e->msg);
        goto out;
    }
    r->ok = r->n_failures == 0;
    if (stage_end(dest, &st, r->ok, e) != 0)
        goto out;
    if (!r->ok) {
        al_errf(e, AL_EVERIFY, "%s: verification failed (%zu problem%s)", o->path, r->n_failures,
                r->n_failures == 1 ? "" : "s");
        goto out;
    }
    rc = 0;
out:
    stage_end(dest, &st, false, NULL);
    free(dest);
    if (have_trust)
        minisig_trust_free(&trust);
    if (rc != 0 && e)
        manifest_text_sanitize(e->msg); /* it may quote hostile names */
    return rc;
}

/* ===== Pack ============================================================================== */

static int
pack_check_word(const char *what, const char *s, struct al_err *e)
{
    if (!s || !*s)
        return al_errf(e, AL_EUSAGE, "%s is required", what);
    if (strlen(s) > 128)
        return al_errf(e, AL_EUSAGE, "%s is longer than 128 bytes", what);
    for (const char *p = s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '=')
            return al_errf(e, AL_EUSAGE, "%s '%s': only printable ASCII without spaces or '='",
                           what, s);
    return 0;
}

static bool
ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* Directory output: files are copied (and hashed while copied) by -j workers, each taking
 * the next file; every file is still read exactly once. */
struct pack_pool {
    const struct bundle_pack_opts *o; /* borrowed */
    const struct manifest_scan *sc;   /* borrowed: sources, sizes */
    struct bom_file *bf;              /* borrowed: out sha256/size per file */
    int tmp_fd;                       /* staging directory fd */
    struct progress *p;               /* shared; progress_add is thread-safe */
    _Atomic size_t next;              /* next file index to take */
    _Atomic int failed;               /* set by the first failing worker */
    struct al_err *errs;              /* one per worker */
};

static int
pack_copy_one(struct pack_pool *pp, size_t i, struct al_err *e)
{
    int rc = -1, in = -1, out_fd = -1;
    char *full = fsx_join(pp->o->src, pp->sc->files[i].path);
    struct bom_file *b = &pp->bf[i];
    in = fsx_open_read(full, e);
    if (in < 0)
        goto out;
    out_fd = stage_open(pp->tmp_fd, b->path, e);
    if (out_fd < 0)
        goto out;
    struct stream_src src = {.fd = in, .tr = NULL};
    if (stream_copy(&src, out_fd, b->path, b->sha256, &b->size, NULL, NULL, pp->p, e) != 0)
        goto out;
    if (fsync(out_fd) != 0) {
        al_errno(e, errno, "%s: fsync", b->path);
        goto out;
    }
    if (b->size != pp->sc->files[i].size) {
        al_errf(e, AL_EIO, "%s: changed size while being packed", full);
        goto out;
    }
    rc = 0;
out:
    if (out_fd >= 0)
        close(out_fd);
    if (in >= 0)
        close(in);
    free(full);
    return rc;
}

struct pack_worker_arg {
    struct pack_pool *pp; /* borrowed */
    struct al_err *e;     /* this worker's error */
};

static void *
pack_worker(void *arg)
{
    struct pack_worker_arg *wa = arg;
    struct pack_pool *pp = wa->pp;
    for (;;) {
        size_t i = atomic_fetch_add(&pp->next, 1);
        if (i >= pp->sc->n_files || atomic_load(&pp->failed))
            break;
        if (pack_copy_one(pp, i, wa->e) != 0) {
            atomic_store(&pp->failed, 1);
            break;
        }
    }
    return NULL;
}

static int
pack_copy_parallel(const struct bundle_pack_opts *o, const struct manifest_scan *sc,
                   struct bom_file *bf, int tmp_fd, struct progress *p, struct al_err *e)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = o->threads > 0 ? (size_t)o->threads : cpus > 0 ? (size_t)cpus : 1;
    if (nt > sc->n_files)
        nt = sc->n_files;
    if (nt == 0)
        return 0;
    struct pack_pool pp = {.o = o, .sc = sc, .bf = bf, .tmp_fd = tmp_fd, .p = p};
    atomic_init(&pp.next, 0);
    atomic_init(&pp.failed, 0);
    struct al_err *errs = xcalloc(nt, sizeof *errs);
    struct pack_worker_arg *args = xcalloc(nt, sizeof *args);
    pthread_t *th = xcalloc(nt, sizeof *th);
    size_t started = 0;
    for (size_t k = 0; k < nt; k++) {
        args[k].pp = &pp;
        args[k].e = &errs[k];
        if (k > 0 && pthread_create(&th[k], NULL, pack_worker, &args[k]) != 0)
            break; /* fewer workers is fine: the others take more files */
        started = k + 1;
    }
    pack_worker(&args[0]); /* the calling thread works too */
    for (size_t k = 1; k < started; k++)
        pthread_join(th[k], NULL);
    int rc = 0;
    if (atomic_load(&pp.failed)) {
        for (size_t k = 0; k < nt; k++)
            if (errs[k].code != AL_OK) {
                *e = errs[k];
                break;
            }
        rc = -1;
    }
    free(th);
    free(args);
    free(errs);
    return rc;
}

/* Replace out with the finished temp directory tmp (NOREPLACE unless force). */
static int
pack_dir_commit(const char *tmp, const char *out, bool force, struct al_err *e)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) == 0)
        return fsync_parent(out, e);
    if (errno != EEXIST || !force)
        return errno == EEXIST
                   ? al_errf(e, AL_EEXIST, "%s: already exists (use --force to replace it)", out)
                   : al_errno(e, errno, "%s: rename into place", out);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) != 0)
        return al_errno(e, errno, "%s: swap in the new bundle", out);
    fsx_remove_tree(tmp); /* tmp now holds the old bundle */
    return fsync_parent(out, e);
}

int
bundle_pack(const struct bundle_pack_opts *o, struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    char *out = path_trim(o->out);
    struct minisig_seckey *sk = NULL;
    struct manifest_scan sc;
    memset(&sc, 0, sizeof sc);
    struct bom_file *bf = NULL;
    size_t nbf = 0;
    struct manifest man;
    manifest_init(&man);
    char *bom = NULL, *mtext = NULL, *sigtext = NULL, *tc = NULL, *tmpdir = NULL;
    int tmp_fd = -1;
    struct tar_writer tw;
    memset(&tw, 0, sizeof tw);
    tw.fd = -1;
    bool is_tar = ends_with(out, ".tar");
    struct progress p;
    bool progress_on = false;
    struct stat sb;
    time_t now = time(NULL);

    if (pack_check_word("--name", o->name, e) != 0 ||
        pack_check_word("--version", o->version, e) != 0)
        goto out;
    if (!o->key_path) {
        al_errf(e, AL_EUSAGE, "--key KEYFILE is required");
        goto out;
    }
    if (!o->force && lstat(out, &sb) == 0) {
        al_errf(e, AL_EEXIST, "%s: already exists (use --force to replace it)", out);
        goto out;
    }
    {
        char *src_real = realpath(o->src, NULL);
        char *od = fsx_dirname(out);
        char *out_real = realpath(od, NULL);
        free(od);
        bool inside = src_real && out_real &&
                      (strcmp(src_real, out_real) == 0 ||
                       (strncmp(out_real, src_real, strlen(src_real)) == 0 &&
                        out_real[strlen(src_real)] == '/'));
        free(src_real);
        free(out_real);
        if (inside) {
            al_errf(e, AL_EUSAGE, "%s: output must not be inside the source directory %s", out,
                    o->src);
            goto out;
        }
    }
    /* the key first: a passphrase prompt must not wait for hours of hashing */
    if (minisig_seckey_load(o->key_path, o->passphrase, &sk, e) != 0)
        goto out;
    if (manifest_scan_dir(o->src, &sc, e) != 0)
        goto out;
    if (sc.n_specials && !o->skip_special) {
        struct buf b;
        buf_init(&b);
        for (size_t i = 0; i < sc.n_specials && i < 5; i++)
            buf_printf(&b, "%s%s (%s)", i ? ", " : "", sc.specials[i].path, sc.specials[i].kind);
        al_errf(e, AL_EFORMAT,
                "%s: refusing to pack %zu non-regular file%s: %s%s (use "
                "--skip-special to leave them out)",
                o->src, sc.n_specials, sc.n_specials == 1 ? "" : "s", b.data,
                sc.n_specials > 5 ? ", ..." : "");
        buf_free(&b);
        goto out;
    }
    for (size_t i = 0; i < sc.n_specials; i++)
        rep_warn(r, "%s: %s skipped (--skip-special)", sc.specials[i].path, sc.specials[i].kind);
    bf = xcalloc(sc.n_files + 1, sizeof *bf);
    uint64_t total = 0;
    for (size_t i = 0; i < sc.n_files; i++) {
        char *rel = xasprintf(BUNDLE_PAYLOAD "/%s", sc.files[i].path);
        bf[nbf].path = rel;
        nbf++;
        if (manifest_path_check(rel, strlen(rel), o->src, e) != 0)
            goto out;
        char *full = fsx_join(o->src, sc.files[i].path);
        int k = safety_classify_file(full, sc.files[i].path, &bf[i].safety, e);
        if (k == 0)
            k = bom_model_meta(full, &bf[i].safety, &bf[i].meta, e);
        free(full);
        if (k != 0)
            goto out;
        if (bf[i].safety.cls == SAFETY_PICKLE || bf[i].safety.cls == SAFETY_CODE)
            rep_warn(r, "%s: %s (%s) flagged in the BOM; verify refuses it without --allow-%s", rel,
                     safety_class_name(bf[i].safety.cls), bf[i].safety.format,
                     bf[i].safety.cls == SAFETY_PICKLE ? "pickle" : "code");
        total += sc.files[i].size;
    }
    progress_init(&p, "packing", total, o->progress);
    progress_on = true;
    if (is_tar) {
        if (tar_writer_open(&tw, out, o->force, now, e) != 0)
            goto out;
    } else {
        char *od = fsx_dirname(out);
        const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
        tmpdir = xasprintf("%s/.%s.airlock-XXXXXX", od, base);
        free(od);
        if (!mkdtemp(tmpdir)) {
            al_errno(e, errno, "%s: create temp directory beside it", out);
            free(tmpdir);
            tmpdir = NULL;
            goto out;
        }
        (void)chmod(tmpdir, 0755); /* best effort: mkdtemp makes 0700 */
        tmp_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tmp_fd < 0) {
            al_errno(e, errno, "%s: open", tmpdir);
            goto out;
        }
    }
    if (is_tar) {
        /* one stream: files go in order, each read once and hashed as it is written */
        for (size_t i = 0; i < sc.n_files; i++) {
            char *full = fsx_join(o->src, sc.files[i].path);
            int in = fsx_open_read(full, e);
            free(full);
            if (in < 0)
                goto out;
            int k = tar_writer_add_fd(&tw, bf[i].path, in, sc.files[i].size, bf[i].sha256, &p, e);
            bf[i].size = sc.files[i].size;
            close(in);
            if (k != 0)
                goto out;
        }
    } else if (pack_copy_parallel(o, &sc, bf, tmp_fd, &p, e) != 0) {
        goto out;
    }
    for (size_t i = 0; i < sc.n_files; i++) {
        manifest_add(&man, bf[i].path, bf[i].sha256);
        rep_file(r, bf[i].path, safety_class_name(bf[i].safety.cls));
        r->bytes += bf[i].size;
    }
    progress_finish(&p);
    progress_on = false;
    struct bom_info info = {.name = o->name,
                            .version = o->version,
                            .creator = o->creator,
                            .source = o->source,
                            .license = o->license,
                            .created = now};
    bom = bom_build(&info, bf, nbf, e);
    if (!bom)
        goto out;
    uint8_t bd[SHA256_LEN];
    char bhex[65];
    if (hash_sha256(bom, strlen(bom), bd, e) != 0)
        goto out;
    manifest_add(&man, BUNDLE_BOM, bd);
    manifest_sort(&man);
    mtext = manifest_format(&man);
    tc = xasprintf("airlock-bundle v1 name=%s version=%s bom-sha256=%s created=%lld", o->name,
                   o->version, hexs(bd, bhex), (long long)now);
    struct minisig_sig sig;
    if (minisig_sign_buf(sk, mtext, strlen(mtext), tc, "signature from airlock secret key", &sig,
                         e) != 0)
        goto out;
    sigtext = minisig_sig_format(&sig);
    minisig_keyid_hex(sig.key_id, r->signer_key_id);
    if (is_tar) {
        if (tar_writer_add_buf(&tw, BUNDLE_BOM, bom, strlen(bom), e) != 0 ||
            tar_writer_add_buf(&tw, BUNDLE_MANIFEST, mtext, strlen(mtext), e) != 0 ||
            tar_writer_add_buf(&tw, BUNDLE_SIG, sigtext, strlen(sigtext), e) != 0 ||
            tar_writer_commit(&tw, e) != 0)
            goto out;
    } else {
        if (stage_write_buf(tmp_fd, BUNDLE_BOM, bom, strlen(bom), e) != 0 ||
            stage_write_buf(tmp_fd, BUNDLE_MANIFEST, mtext, strlen(mtext), e) != 0 ||
            stage_write_buf(tmp_fd, BUNDLE_SIG, sigtext, strlen(sigtext), e) != 0 ||
            stage_fsync_dirs(tmp_fd, 0, e) != 0 || pack_dir_commit(tmpdir, out, o->force, e) != 0)
            goto out;
        free(tmpdir);
        tmpdir = NULL;
    }
    r->mode = is_tar ? "bundle-tar" : "bundle";
    r->name = xstrdup(o->name);
    r->version = xstrdup(o->version);
    r->ok = true;
    rc = 0;
out:
    if (progress_on)
        progress_finish(&p);
    tar_writer_abort(&tw);
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (tmpdir) {
        fsx_remove_tree(tmpdir);
        free(tmpdir);
    }
    for (size_t i = 0; i < nbf; i++)
        bom_file_free(&bf[i]);
    free(bf);
    manifest_scan_free(&sc);
    manifest_free(&man);
    minisig_seckey_free(sk);
    free(bom);
    free(mtext);
    free(sigtext);
    free(tc);
    if (rc != 0 && e)
        manifest_text_sanitize(e->msg);
    free(out);
    return rc;
}
