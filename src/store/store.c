/* store.c -- import verified bundles into a content-addressed store and read it back
 * (contract: store.h; layout and guarantees: docs/store.md).
 *
 * Import order, all under an exclusive flock on DIR/store/lock:
 *   1. bundle_verify: the full check `airlock verify` makes (signature, every file, safety).
 *   2. Read MANIFEST.sha256, its .minisig and BOM.json again and check the signature, the
 *      trusted comment and the BOM hash over exactly these bytes: they are what gets stored,
 *      and they must name the same bundle and signer that step 1 verified.
 *   3. Copy every payload file whose blob is missing into DIR/store/tmp, hashing the bytes as
 *      they are written; a digest that differs from the signed manifest stops the import
 *      (the file changed after step 1). fsync, chmod 0444, rename to blobs/sha256/<hex>.
 *   4. Check the bundle on disk is still the one step 1 verified (same inode, size, times),
 *      classify every stored blob and apply verify's pickle/code policy to those bytes.
 *   5. Build the version directory under tmp, fsync it, rename it into models/<name>/.
 * Any failure removes the staging directory and the blobs this import created, so the store
 * is left as it was. Bundles are untrusted; record.json is re-validated when read. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "transfer/bom.h"
#include "transfer/manifest.h"
#include "transfer/minisig.h"
#include "transfer/safety.h"
#include "transfer/tar.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/progress.h"
#include "util/xalloc.h"

#define STORE_CHUNK (1u << 20)       /* bytes per read while copying into a blob */
#define STORE_SIG_MAX (64u << 10)    /* bytes of MANIFEST.sha256.minisig */
#define STORE_BOM_MAX (256u << 20)   /* bytes of BOM.json, as bundle.c allows */
#define STORE_RECORD_FORMAT "airlock-store-record"
#define STORE_RECORD_VERSION 1

/* ===== Types ============================================================================= */

/* The store's directories, opened for one operation. */
struct store_dirs {
    char *root;    /* owned: DIR/store */
    char *blobs;   /* owned: DIR/store/blobs/sha256 */
    char *models;  /* owned: DIR/store/models */
    char *tmp;     /* owned: DIR/store/tmp */
    int blobs_fd;  /* owned directory fd of blobs, -1 when closed */
    int lock_fd;   /* owned fd of DIR/store/lock while flock()ed, -1 otherwise */
};

/* The bundle's own files as read by the store, and what they say once checked. */
struct meta {
    char *man, *sig, *bom;            /* owned exact bytes; sig NULL when absent */
    size_t man_len, sig_len, bom_len;
    struct manifest m;                /* parsed from man, normalised and sorted */
    struct bom_parsed bp;             /* parsed from bom */
    bool have_bp;
    char *name, *version;             /* owned: from the signed trusted comment (or the BOM
                                         when unsigned) */
    char signer[17];                  /* key id hex; "" when unsigned */
    char *tc;                         /* owned trusted comment; "" when unsigned */
    uint64_t *size;                   /* owned, m.n: BOM size of each manifest entry,
                                         UINT64_MAX when the BOM does not list it */
};

/* ===== Records =========================================================================== */

void
store_record_free(struct store_record *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->version);
    free(r->trusted_comment);
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i].path);
    free(r->files);
    free(r->dir);
    free(r->model_blob);
    memset(r, 0, sizeof *r);
    r->model = -1;
}

void
store_import_result_free(struct store_import_result *res)
{
    if (!res)
        return;
    store_record_free(&res->rec);
    memset(res, 0, sizeof *res);
    res->rec.model = -1;
}

void
store_list_free(struct store_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        store_record_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void
meta_free(struct meta *m)
{
    free(m->man);
    free(m->sig);
    free(m->bom);
    manifest_free(&m->m);
    if (m->have_bp)
        bom_parsed_free(&m->bp);
    free(m->name);
    free(m->version);
    free(m->tc);
    free(m->size);
    memset(m, 0, sizeof *m);
}

/* ===== Names ============================================================================= */

int
store_name_check(const char *s, const char *what, struct al_err *e)
{
    if (!s || !*s)
        return al_errf(e, AL_EFORMAT, "%s is empty", what);
    size_t n = strlen(s);
    if (n > STORE_NAME_MAX)
        return al_errf(e, AL_EFORMAT, "%s is %zu bytes, at most %d", what, n, STORE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (i == 0 && !alnum)
            return al_errf(e, AL_EFORMAT,
                           "%s '%.140s' must start with a letter or digit (the store uses it as "
                           "a directory name)", what, s);
        if (!alnum && c != '.' && c != '_' && c != '-' && c != '+')
            return al_errf(e, AL_EFORMAT,
                           "%s '%.140s': byte %zu (0x%02x) is not allowed; only letters, digits "
                           "and . _ - + (the store uses it as a directory name)", what, s, i, c);
    }
    return 0;
}

int
store_spec_parse(const char *spec, char **name, char **version, struct al_err *e)
{
    *name = NULL;
    *version = NULL;
    const char *colon = strchr(spec, ':');
    char *n = colon ? xstrndup(spec, (size_t)(colon - spec)) : xstrdup(spec);
    char *v = colon ? xstrdup(colon + 1) : NULL;
    if (store_name_check(n, "model name", e) < 0 || (v && store_name_check(v, "version", e) < 0)) {
        if (e)
            manifest_text_sanitize(e->msg);
        free(n);
        free(v);
        return -1;
    }
    *name = n;
    *version = v;
    return 0;
}

/* ===== Small file helpers ================================================================ */

/* Create name under dfd (O_EXCL, never following links), write data, fsync, close. */
static int
write_at(int dfd, const char *name, const void *data, size_t len, struct al_err *e)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return al_errno(e, errno, "%s: create", name);
    int rc = fsx_write_all(fd, data, len, name, e);
    if (rc == 0 && fsync(fd) != 0)
        rc = al_errno(e, errno, "%s: fsync", name);
    if (close(fd) != 0 && rc == 0)
        rc = al_errno(e, errno, "%s: close", name);
    return rc;
}

static int
fsync_fd(int fd, const char *what, struct al_err *e)
{
    if (fsync(fd) != 0 && errno != EINVAL)
        return al_errno(e, errno, "%s: fsync", what);
    return 0;
}

static int
open_dir(const char *path, struct al_err *e)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return al_errno(e, errno, "%s: open directory", path);
    return fd;
}

/* ===== Store directories and the import lock ============================================= */

static void
dirs_close(struct store_dirs *d)
{
    if (d->blobs_fd >= 0)
        close(d->blobs_fd);
    if (d->lock_fd >= 0)
        close(d->lock_fd); /* releases the flock */
    free(d->root);
    free(d->blobs);
    free(d->models);
    free(d->tmp);
    memset(d, 0, sizeof *d);
    d->blobs_fd = -1;
    d->lock_fd = -1;
}

static void
dirs_paths(struct store_dirs *d, const char *data_dir)
{
    memset(d, 0, sizeof *d);
    d->blobs_fd = -1;
    d->lock_fd = -1;
    d->root = fsx_join(data_dir, "store");
    d->blobs = fsx_join(d->root, "blobs/sha256");
    d->models = fsx_join(d->root, "models");
    d->tmp = fsx_join(d->root, "tmp");
}

/* Create the layout, take the lock, and clear what an interrupted import left in tmp/ (no
 * other import can be running while we hold the lock). */
static int
dirs_open_locked(struct store_dirs *d, const char *data_dir, struct al_err *e)
{
    dirs_paths(d, data_dir);
    if (fsx_mkdir_p(data_dir, 0700, e) < 0 || fsx_mkdir_p(d->blobs, 0755, e) < 0 ||
        fsx_mkdir_p(d->models, 0755, e) < 0 || fsx_mkdir_p(d->tmp, 0700, e) < 0)
        return -1;
    char *lock = fsx_join(d->root, "lock");
    d->lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d->lock_fd < 0) {
        al_errno(e, errno, "%s: open", lock);
        free(lock);
        return -1;
    }
    while (flock(d->lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            al_errno(e, errno, "%s: lock", lock);
            free(lock);
            return -1;
        }
    }
    free(lock);
    d->blobs_fd = open_dir(d->blobs, e);
    if (d->blobs_fd < 0)
        return -1;
    DIR *td = opendir(d->tmp);
    if (!td)
        return al_errno(e, errno, "%s: opendir", d->tmp);
    struct dirent *de;
    while ((de = readdir(td)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = fsx_join(d->tmp, de->d_name);
        fsx_remove_tree(p); /* leftovers of an interrupted import: never referenced */
        free(p);
    }
    closedir(td);
    return 0;
}

/* ===== Reading the bundle's own files ==================================================== */

/* Called by walk_tar on each entry in archive order. It may read the entry's data
 * (tar_reader_read, tar_reader_slurp) or leave it, and libarchive skips it. < 0 stops. */
typedef int (*walk_tar_fn)(struct tar_reader *tr, const struct tar_entry *te, void *ud,
                            struct al_err *e);

/* Open the tar at path (a regular file) and call fn(tr, te, ud, e) on each of its entries.
 * 0 when every entry was seen; -1 on a read error, a refused entry or fn's failure. */
static int
walk_tar(const char *path, walk_tar_fn fn, void *ud, struct al_err *e)
{
    int rc = -1;
    struct tar_reader tr;
    memset(&tr, 0, sizeof tr);
    int fd = fsx_open_read(path, e);
    if (fd < 0)
        return -1;
    if (tar_reader_open_fd(&tr, fd, path, e) < 0)
        goto out;
    for (;;) {
        struct tar_entry te;
        int n = tar_reader_next(&tr, &te, e);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (fn(&tr, &te, ud, e) < 0)
            goto out;
    }
    rc = 0;
out:
    tar_reader_close(&tr);
    close(fd);
    return rc;
}

/* walk_tar_fn for meta_read_tar: keep the bundle's own files whole, skip the rest. */
static int
meta_take_entry(struct tar_reader *tr, const struct tar_entry *te, void *ud, struct al_err *e)
{
    struct meta *m = ud;
    if (!strcmp(te->path, BUNDLE_MANIFEST))
        return tar_reader_slurp(tr, te, MANIFEST_MAX_BYTES, &m->man, &m->man_len, e);
    if (!strcmp(te->path, BUNDLE_SIG))
        return tar_reader_slurp(tr, te, STORE_SIG_MAX, &m->sig, &m->sig_len, e);
    if (!strcmp(te->path, BUNDLE_BOM))
        return tar_reader_slurp(tr, te, STORE_BOM_MAX, &m->bom, &m->bom_len, e);
    return 0;
}

static int
meta_read_tar(const char *path, struct meta *m, struct al_err *e)
{
    return walk_tar(path, meta_take_entry, m, e);
}

static int
meta_read_dir(const char *dir, struct meta *m, struct al_err *e)
{
    static const struct { const char *name; size_t max; } f[] = {
        {BUNDLE_MANIFEST, MANIFEST_MAX_BYTES}, {BUNDLE_SIG, STORE_SIG_MAX}, {BUNDLE_BOM, STORE_BOM_MAX},
    };
    char **dst[] = {&m->man, &m->sig, &m->bom};
    size_t *len[] = {&m->man_len, &m->sig_len, &m->bom_len};
    for (size_t i = 0; i < 3; i++) {
        char *p = fsx_join(dir, f[i].name);
        struct stat st;
        int k = 0;
        if (lstat(p, &st) == 0)
            k = fsx_read_file(p, f[i].max, dst[i], len[i], e);
        free(p);
        if (k < 0)
            return -1;
    }
    return 0;
}

/* "airlock-bundle v1 name=N version=V bom-sha256=HEX ...": owned value of key, or NULL. */
static char *
tc_value(const char *tc, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = tc; *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && p[kl] == '=' && !strncmp(p, key, kl))
            return xstrndup(p + kl + 1, n - kl - 1);
        p += n;
    }
    return NULL;
}

static int
bom_file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct bom_file *)a)->path, ((const struct bom_file *)b)->path);
}

/* m->size[i] = the BOM's size of manifest entry i (UINT64_MAX when not listed). */
static void
meta_sizes(struct meta *m)
{
    m->size = xcalloc(m->m.n + 1, sizeof *m->size);
    qsort(m->bp.files, m->bp.n, sizeof *m->bp.files, bom_file_cmp);
    for (size_t i = 0; i < m->m.n; i++) {
        struct bom_file key = {.path = m->m.v[i].path};
        const struct bom_file *f =
            m->bp.n ? bsearch(&key, m->bp.files, m->bp.n, sizeof key, bom_file_cmp) : NULL;
        m->size[i] = f ? f->size : UINT64_MAX;
    }
}

/* Check m's bytes on their own: signature by a trusted key over the manifest, the trusted
 * comment, the BOM's hash and names, the manifest's paths. Fills name/version/signer/tc. */
static int
meta_check(const struct minisig_trust *t, struct meta *m, struct al_err *e)
{
    int rc = -1;
    char *tname = NULL, *tver = NULL, *tbom = NULL;
    uint8_t d[SHA256_LEN];
    char hx[2 * SHA256_LEN + 1];
    struct minisig_sig s;
    memset(&s, 0, sizeof s);
    if (!m->man || !m->bom) {
        al_errf(e, AL_EVERIFY, "%s is missing", !m->man ? BUNDLE_MANIFEST : BUNDLE_BOM);
        goto out;
    }
    if (hash_sha256(m->bom, m->bom_len, d, e) < 0)
        goto out;
    hash_hex(d, SHA256_LEN, hx);
    if (t) {
        if (!m->sig) {
            al_errf(e, AL_EVERIFY, "%s is missing", BUNDLE_SIG);
            goto out;
        }
        if (minisig_sig_parse(m->sig, m->sig_len, &s, e) < 0) {
            e->code = AL_EVERIFY;
            al_errctx(e, "%s", BUNDLE_SIG);
            goto out;
        }
        char kid[17];
        minisig_keyid_hex(s.key_id, kid);
        bool known = false;
        for (size_t i = 0; i < t->n; i++)
            known = known || !memcmp(t->keys[i].key_id, s.key_id, MINISIG_KEYID_LEN);
        if (!known) {
            al_errf(e, AL_EVERIFY, "%s: signed by key ID %s, which is not a trusted key",
                    BUNDLE_SIG, kid);
            goto out;
        }
        if (minisig_verify_buf(t, &s, m->man, m->man_len, NULL, e) < 0) {
            e->code = AL_EVERIFY;
            goto out;
        }
        memcpy(m->signer, kid, sizeof kid);
        if (strncmp(s.trusted_comment, "airlock-bundle v1 ", 18) != 0) {
            al_errf(e, AL_EVERIFY, "%s: trusted comment is not an airlock-bundle v1 comment",
                    BUNDLE_SIG);
            goto out;
        }
        tname = tc_value(s.trusted_comment, "name");
        tver = tc_value(s.trusted_comment, "version");
        tbom = tc_value(s.trusted_comment, "bom-sha256");
        if (!tname || !tver || !tbom) {
            al_errf(e, AL_EVERIFY, "%s: trusted comment lacks name=, version= or bom-sha256=",
                    BUNDLE_SIG);
            goto out;
        }
        if (strcmp(hx, tbom) != 0) {
            al_errf(e, AL_EVERIFY, "%s has SHA-256 %s but the signed comment says %.80s",
                    BUNDLE_BOM, hx, tbom);
            goto out;
        }
        m->tc = xstrdup(s.trusted_comment);
    } else {
        m->tc = xstrdup("");
    }
    struct al_err pe = {0};
    if (manifest_parse(m->man, m->man_len, BUNDLE_MANIFEST, &m->m, &pe) < 0 ||
        manifest_normalize(&m->m, NULL, BUNDLE_MANIFEST, &pe) < 0) {
        al_errf(e, AL_EVERIFY, "%s", pe.msg);
        goto out;
    }
    const struct manifest_entry *be = manifest_find(&m->m, BUNDLE_BOM);
    if (!be || memcmp(be->sha256, d, SHA256_LEN) != 0) {
        al_errf(e, AL_EVERIFY, "%s: %s", BUNDLE_MANIFEST,
                be ? "BOM.json's hash differs from the manifest's" : "does not list BOM.json");
        goto out;
    }
    for (size_t i = 0; i < m->m.n; i++) {
        const char *p = m->m.v[i].path;
        if (strcmp(p, BUNDLE_BOM) != 0 && strncmp(p, BUNDLE_PAYLOAD "/", 8) != 0) {
            al_errf(e, AL_EVERIFY, "%s: '%s' is neither BOM.json nor under payload/",
                    BUNDLE_MANIFEST, p);
            goto out;
        }
    }
    if (bom_parse(m->bom, m->bom_len, &m->bp, &pe) < 0) {
        al_errf(e, AL_EVERIFY, "%s: %s", BUNDLE_BOM, pe.msg);
        goto out;
    }
    m->have_bp = true;
    const char *bn = m->bp.name ? m->bp.name : "", *bv = m->bp.version ? m->bp.version : "";
    if (tname && (strcmp(tname, bn) != 0 || strcmp(tver, bv) != 0)) {
        al_errf(e, AL_EVERIFY, "%s names %.100s %.100s but the signature names %.100s %.100s",
                BUNDLE_BOM, bn, bv, tname, tver);
        goto out;
    }
    m->name = xstrdup(tname ? tname : bn);
    m->version = xstrdup(tver ? tver : bv);
    meta_sizes(m);
    rc = 0;
out:
    free(tname);
    free(tver);
    free(tbom);
    return rc;
}

/* ===== Copying into blobs ================================================================ */

/* One import's staging and the blobs it added (removed again if the import fails). */
struct txn {
    char *dir;        /* owned: DIR/store/tmp/import-XXXXXX */
    int fd;           /* owned directory fd of dir, -1 when closed */
    char **added;     /* owned hex names of blobs this import renamed into place */
    size_t n_added, cap_added;
    size_t n_tmp;     /* counter for temp file names */
};

static bool
all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Source of one file's bytes: a plain fd, or the current entry of a tar. */
struct copy_src {
    int fd;                /* used when tr == NULL */
    struct tar_reader *tr; /* else read the current entry */
};

/* Copy src into a new blob named after want, hashing exactly the bytes written. The blob is
 * renamed into place only when that hash equals want. A source growing past want_size (the
 * BOM's size; UINT64_MAX = unknown) is cut off there: it cannot match anyway.
 * *added: whether a blob was created. */
static int
copy_into_blob(struct store_dirs *d, struct txn *x, struct copy_src *src, const char *path,
               const uint8_t want[SHA256_LEN], uint64_t want_size, struct progress *prog,
               uint64_t *copied, bool *added, struct al_err *e)
{
    int rc = -1, out = -1;
    struct hash_ctx hc = {0};
    uint8_t *chunk = xmalloc(STORE_CHUNK);
    char tmpname[32], hx[2 * SHA256_LEN + 1], got_hx[2 * SHA256_LEN + 1];
    uint8_t got[SHA256_LEN];
    uint64_t total = 0;
    bool hole_at_end = false;
    *added = false;
    hash_hex(want, SHA256_LEN, hx);
    snprintf(tmpname, sizeof tmpname, "blob-%zu", x->n_tmp++);
    out = openat(x->fd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        al_errno(e, errno, "%s/%s: create", x->dir, tmpname);
        goto out;
    }
    if (hash_sha256_init(&hc, e) < 0)
        goto out;
    for (;;) {
        ssize_t r = src->tr ? tar_reader_read(src->tr, chunk, STORE_CHUNK, e)
                            : read(src->fd, chunk, STORE_CHUNK);
        if (r < 0) {
            if (!src->tr && errno == EINTR)
                continue;
            if (!src->tr)
                al_errno(e, errno, "%s: read", path);
            goto out;
        }
        if (r == 0)
            break;
        if (want_size != UINT64_MAX && total + (uint64_t)r > want_size) {
            al_errf(e, AL_EVERIFY, "%s changed after verification: more than the %llu bytes "
                    "the signed BOM lists; nothing imported", path,
                    (unsigned long long)want_size);
            goto out;
        }
        if (hash_update(&hc, chunk, (size_t)r, e) < 0)
            goto out;
        if ((size_t)r == STORE_CHUNK && all_zero(chunk, (size_t)r)) {
            /* a MiB of zeros stays a hole, as pack and verify --extract keep it */
            if (lseek(out, r, SEEK_CUR) < 0) {
                al_errno(e, errno, "%s: seek", path);
                goto out;
            }
            hole_at_end = true;
        } else {
            if (fsx_write_all(out, chunk, (size_t)r, path, e) < 0)
                goto out;
            hole_at_end = false;
        }
        total += (uint64_t)r;
        progress_add(prog, (uint64_t)r);
    }
    if (hole_at_end && ftruncate(out, (off_t)total) != 0) {
        al_errno(e, errno, "%s: truncate", path);
        goto out;
    }
    if (hash_final(&hc, got, e) < 0)
        goto out;
    if (memcmp(got, want, SHA256_LEN) != 0) {
        hash_hex(got, SHA256_LEN, got_hx);
        al_errf(e, AL_EVERIFY,
                "%s changed after verification: the %llu bytes copied have SHA-256 %s, the "
                "signed manifest says %s; nothing imported", path, (unsigned long long)total,
                got_hx, hx);
        goto out;
    }
    if (fchmod(out, 0444) != 0 || fsync(out) != 0) {
        al_errno(e, errno, "%s: chmod/fsync", path);
        goto out;
    }
    if (close(out) != 0) {
        out = -1;
        al_errno(e, errno, "%s: close", path);
        goto out;
    }
    out = -1;
    if (renameat2(x->fd, tmpname, d->blobs_fd, hx, RENAME_NOREPLACE) == 0) {
        x->added = xrealloc(x->added, (x->n_added + 1) * sizeof *x->added);
        x->added[x->n_added++] = xstrdup(hx);
        *added = true;
    } else if (errno == EEXIST) {
        (void)unlinkat(x->fd, tmpname, 0); /* same content already stored: keep that one */
    } else {
        al_errno(e, errno, "%s/%s: rename into place", d->blobs, hx);
        goto out;
    }
    *copied += total;
    rc = 0;
out:
    if (out >= 0)
        close(out);
    hash_ctx_free(&hc);
    free(chunk);
    return rc;
}

/* 1 when the blob is present (its size must be expected, unless UINT64_MAX), 0 when absent. */
static int
blob_present(struct store_dirs *d, const uint8_t sha[SHA256_LEN], uint64_t expected,
             struct al_err *e)
{
    char hx[2 * SHA256_LEN + 1];
    struct stat st;
    hash_hex(sha, SHA256_LEN, hx);
    if (fstatat(d->blobs_fd, hx, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 0;
        return al_errno(e, errno, "%s/%s: stat", d->blobs, hx);
    }
    if (!S_ISREG(st.st_mode))
        return al_errf(e, AL_EIO, "%s/%s: not a regular file; the store is damaged", d->blobs,
                       hx);
    if (expected != UINT64_MAX && (uint64_t)st.st_size != expected)
        return al_errf(e, AL_EVERIFY, "%s/%s: %lld bytes, the bundle says %llu; the store is "
                       "damaged", d->blobs, hx, (long long)st.st_size,
                       (unsigned long long)expected);
    return 1;
}

static int
index_hash_cmp(const void *a, const void *b, void *arg)
{
    const struct manifest *m = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = memcmp(m->v[i].sha256, m->v[j].sha256, SHA256_LEN);
    return c ? c : (i < j ? -1 : i > j);
}

/* Which payload entries need a copy: not in the store yet and not a later duplicate of an
 * entry with the same content. */
static int
plan_copies(struct store_dirs *d, const struct meta *m, bool *need, size_t *n_shared,
            uint64_t *bytes, struct al_err *e)
{
    int rc = -1;
    size_t *idx = xcalloc(m->m.n + 1, sizeof *idx);
    *n_shared = 0;
    *bytes = 0;
    for (size_t i = 0; i < m->m.n; i++)
        idx[i] = i;
    qsort_r(idx, m->m.n, sizeof *idx, index_hash_cmp, (void *)&m->m);
    for (size_t k = 0; k < m->m.n; k++) {
        size_t i = idx[k];
        const struct manifest_entry *me = &m->m.v[i];
        need[i] = false;
        if (!strcmp(me->path, BUNDLE_BOM))
            continue;
        bool dup = k > 0 && strcmp(m->m.v[idx[k - 1]].path, BUNDLE_BOM) != 0 &&
                   !memcmp(m->m.v[idx[k - 1]].sha256, me->sha256, SHA256_LEN);
        int p = dup ? 1 : blob_present(d, me->sha256, m->size[i], e);
        if (p < 0)
            goto out;
        if (p) {
            (*n_shared)++;
            continue;
        }
        need[i] = true;
        *bytes += m->size[i] == UINT64_MAX ? 0 : m->size[i];
    }
    rc = 0;
out:
    free(idx);
    return rc;
}

/* One import's copying: which entries still need a blob, and where the counts go. */
struct copy_job {
    struct store_dirs *d;            /* borrowed */
    struct txn *x;                   /* borrowed */
    const char *bundle;              /* borrowed path, for messages */
    const struct meta *m;            /* borrowed: the verified manifest and BOM sizes */
    bool *need;                      /* borrowed, m->m.n: copy still needed; cleared here */
    struct progress *prog;           /* borrowed */
    struct store_import_result *res; /* borrowed: blobs_new, blobs_shared, bytes_copied */
};

/* Copy manifest entry i from src into its blob and count it. */
static int
copy_entry(const struct copy_job *j, struct copy_src *src, size_t i, struct al_err *e)
{
    const struct manifest_entry *me = &j->m->m.v[i];
    bool added;
    if (copy_into_blob(j->d, j->x, src, me->path, me->sha256, j->m->size[i], j->prog,
                       &j->res->bytes_copied, &added, e) < 0)
        return -1;
    j->res->blobs_new += added;
    j->res->blobs_shared += !added;
    j->need[i] = false;
    return 0;
}

static int
copy_from_dir(const struct copy_job *j, struct al_err *e)
{
    for (size_t i = 0; i < j->m->m.n; i++) {
        if (!j->need[i])
            continue;
        const struct manifest_entry *me = &j->m->m.v[i];
        char *full = fsx_join(j->bundle, me->path);
        int fd = fsx_open_read(full, e);
        free(full);
        if (fd < 0) {
            e->code = AL_EVERIFY; /* it was there and verified a moment ago */
            return al_errctx(e, "%s changed after verification", me->path);
        }
        struct copy_src src = {.fd = fd, .tr = NULL};
        int k = copy_entry(j, &src, i, e);
        close(fd);
        if (k < 0)
            return -1;
    }
    return 0;
}

/* walk_tar_fn for copy_from_tar: copy a payload entry that still needs its blob. */
static int
copy_tar_entry(struct tar_reader *tr, const struct tar_entry *te, void *ud, struct al_err *e)
{
    const struct copy_job *j = ud;
    if (te->is_dir || !strcmp(te->path, BUNDLE_MANIFEST) || !strcmp(te->path, BUNDLE_SIG) ||
        !strcmp(te->path, BUNDLE_BOM))
        return 0;
    const struct manifest_entry *me = manifest_find(&j->m->m, te->path);
    if (!me)
        return al_errf(e, AL_EVERIFY, "%s: entry %s is not in the verified manifest: the "
                       "bundle changed after verification", j->bundle, te->path);
    size_t i = (size_t)(me - j->m->m.v);
    if (!j->need[i])
        return 0; /* libarchive skips the data */
    struct copy_src src = {.fd = -1, .tr = tr};
    return copy_entry(j, &src, i, e);
}

static int
copy_from_tar(const struct copy_job *j, struct al_err *e)
{
    if (walk_tar(j->bundle, copy_tar_entry, (void *)j, e) < 0)
        return -1;
    for (size_t i = 0; i < j->m->m.n; i++)
        if (j->need[i])
            return al_errf(e, AL_EVERIFY, "%s: %s is missing: the bundle changed after "
                           "verification", j->bundle, j->m->m.v[i].path);
    return 0;
}

/* ===== record.json ======================================================================= */

static json_t *
record_to_json(const struct store_record *r, const struct meta *m)
{
    char when[32] = "";
    time_t t = (time_t)r->imported;
    struct tm tmv;
    if (gmtime_r(&t, &tmv))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    uint8_t d[SHA256_LEN];
    char mh[2 * SHA256_LEN + 1] = "", bh[2 * SHA256_LEN + 1] = "";
    if (hash_sha256(m->man, m->man_len, d, NULL) == 0)
        hash_hex(d, SHA256_LEN, mh);
    if (hash_sha256(m->bom, m->bom_len, d, NULL) == 0)
        hash_hex(d, SHA256_LEN, bh);
    json_t *files = json_array();
    for (size_t i = 0; i < r->n_files; i++)
        json_array_append_new(files, json_pack("{s:s,s:s,s:I,s:s}", "path", r->files[i].path,
                                               "sha256", r->files[i].hex, "size",
                                               (json_int_t)r->files[i].size, "format",
                                               r->files[i].format));
    return json_pack("{s:s,s:i,s:s,s:s,s:b,s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:o,s:o}", "format",
                     STORE_RECORD_FORMAT, "format_version", STORE_RECORD_VERSION, "name",
                     r->name, "version", r->version, "signed", r->signer_key_id[0] != '\0',
                     "signer_key_id", r->signer_key_id, "trusted_comment", r->trusted_comment,
                     "imported_unix", (json_int_t)r->imported, "imported", when,
                     "manifest_sha256", mh, "bom_sha256", bh, "size", (json_int_t)r->size,
                     "model", r->model >= 0 ? json_string(r->files[r->model].path) : json_null(),
                     "files", files);
}

static bool
is_lower_hex64(const char *s)
{
    if (strlen(s) != 2 * SHA256_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* Read and validate DIR/store/models/<name>/<version>/record.json. */
int
store_record_parse(const char *text, size_t len, const char *path, const char *name,
                   const char *version, struct store_record *r, struct al_err *e)
{
    int rc = -1;
    json_t *j = NULL;
    memset(r, 0, sizeof *r);
    r->model = -1;
    json_error_t je;
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    const char *fmt = NULL, *jn = NULL, *jv = NULL, *signer = NULL, *tc = NULL;
    json_int_t fv = 0, imported = 0;
    json_t *files = NULL, *model = NULL;
    if (!j || json_unpack(j, "{s:s,s:I,s:s,s:s,s:s,s:s,s:I,s:o,s:o}", "format", &fmt,
                          "format_version", &fv, "name", &jn, "version", &jv, "signer_key_id",
                          &signer, "trusted_comment", &tc, "imported_unix", &imported, "files",
                          &files, "model", &model) != 0) {
        al_errf(e, AL_EFORMAT, "%s: not a store record%s%s", path, j ? "" : ": ",
                j ? "" : je.text);
        goto out;
    }
    if (strcmp(fmt, STORE_RECORD_FORMAT) != 0 || fv != STORE_RECORD_VERSION) {
        al_errf(e, AL_EUNSUPPORTED, "%s: record format %.40s v%lld, this airlock reads %s v%d",
                path, fmt, (long long)fv, STORE_RECORD_FORMAT, STORE_RECORD_VERSION);
        goto out;
    }
    if (strcmp(jn, name) != 0 || strcmp(jv, version) != 0) {
        al_errf(e, AL_EFORMAT, "%s: names %.140s %.140s, not its directory", path, jn, jv);
        goto out;
    }
    if (strlen(signer) != 0 && strlen(signer) != 16) {
        al_errf(e, AL_EFORMAT, "%s: bad signer_key_id", path);
        goto out;
    }
    if (!json_is_array(files) || (!json_is_null(model) && !json_is_string(model))) {
        al_errf(e, AL_EFORMAT, "%s: files must be an array and model a string or null", path);
        goto out;
    }
    r->name = xstrdup(name);
    r->version = xstrdup(version);
    snprintf(r->signer_key_id, sizeof r->signer_key_id, "%s", signer);
    r->trusted_comment = xstrdup(tc);
    r->imported = (int64_t)imported;
    r->files = xcalloc(json_array_size(files) + 1, sizeof *r->files);
    for (size_t i = 0; i < json_array_size(files); i++) {
        const char *fp = NULL, *fh = NULL, *ff = NULL;
        json_int_t sz = -1;
        struct store_file *f = &r->files[i];
        if (json_unpack(json_array_get(files, i), "{s:s,s:s,s:I,s:s}", "path", &fp, "sha256", &fh,
                        "size", &sz, "format", &ff) != 0 ||
            !is_lower_hex64(fh) || sz < 0 || (uint64_t)sz > UINT64_MAX - r->size ||
            strlen(ff) >= sizeof f->format ||
            manifest_path_check(fp, strlen(fp), path, e) < 0) {
            al_errf(e, AL_EFORMAT, "%s: files[%zu] is malformed", path, i);
            goto out;
        }
        f->path = xstrdup(fp);
        memcpy(f->hex, fh, sizeof f->hex);
        hash_unhex(fh, 2 * SHA256_LEN, f->sha256, SHA256_LEN);
        f->size = (uint64_t)sz;
        snprintf(f->format, sizeof f->format, "%s", ff);
        r->size += f->size;
        r->n_files++;
        if (json_is_string(model) && !strcmp(json_string_value(model), fp))
            r->model = (int)i;
    }
    if (json_is_string(model) && r->model < 0) {
        al_errf(e, AL_EFORMAT, "%s: model %.200s is not one of its files", path,
                json_string_value(model));
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        manifest_text_sanitize(e->msg);
        store_record_free(r);
    }
    json_decref(j);
    return rc;
}

static int
record_load(const struct store_dirs *d, const char *name, const char *version,
            struct store_record *r, struct al_err *e)
{
    char *text = NULL;
    size_t len = 0;
    memset(r, 0, sizeof *r);
    r->model = -1;
    char *vdir = xasprintf("%s/%s/%s", d->models, name, version);
    char *path = fsx_join(vdir, STORE_RECORD_FILE);
    int rc = fsx_read_file(path, STORE_RECORD_MAX, &text, &len, e);
    if (rc == 0)
        rc = store_record_parse(text, len, path, name, version, r, e);
    if (rc == 0) {
        r->dir = vdir;
        vdir = NULL;
        if (r->model >= 0)
            r->model_blob = fsx_join(d->blobs, r->files[r->model].hex);
    }
    free(text);
    free(path);
    free(vdir);
    return rc;
}

/* ===== Import ============================================================================ */

/* The record of what this import stores: files (payload only, manifest order), formats from
 * the stored blobs, and the GGUF to serve. */
static int
record_build(const struct store_dirs *d, const struct store_import_opts *o, const struct meta *m,
             struct store_record *r, struct al_err *e)
{
    memset(r, 0, sizeof *r);
    r->model = -1;
    r->name = xstrdup(m->name);
    r->version = xstrdup(m->version);
    snprintf(r->signer_key_id, sizeof r->signer_key_id, "%s", m->signer);
    r->trusted_comment = xstrdup(m->tc);
    r->imported = (int64_t)time(NULL);
    r->files = xcalloc(m->m.n + 1, sizeof *r->files);
    char *want = NULL;
    if (o->model_file)
        want = strncmp(o->model_file, BUNDLE_PAYLOAD "/", 8) == 0
                   ? xstrdup(o->model_file)
                   : xasprintf(BUNDLE_PAYLOAD "/%s", o->model_file);
    size_t n_gguf = 0;
    struct buf names;
    buf_init(&names);
    for (size_t i = 0; i < m->m.n; i++) {
        const struct manifest_entry *me = &m->m.v[i];
        if (!strcmp(me->path, BUNDLE_BOM))
            continue;
        struct store_file *f = &r->files[r->n_files];
        f->path = xstrdup(me->path);
        memcpy(f->sha256, me->sha256, SHA256_LEN);
        hash_hex(me->sha256, SHA256_LEN, f->hex);
        char *blob = fsx_join(d->blobs, f->hex);
        struct stat st;
        struct safety_verdict v;
        int k = lstat(blob, &st) == 0 ? safety_classify_file(blob, me->path, &v, e)
                                      : al_errno(e, errno, "%s: stat", blob);
        free(blob);
        if (k < 0) {
            r->n_files++;
            goto fail;
        }
        f->size = (uint64_t)st.st_size;
        snprintf(f->format, sizeof f->format, "%s", v.format);
        /* verify's safety policy again, on the bytes stored (not on what verify read) */
        if ((v.cls == SAFETY_PICKLE && !o->allow_pickle) ||
            (v.cls == SAFETY_CODE && !o->allow_code)) {
            bool pk = v.cls == SAFETY_PICKLE;
            al_errf(e, AL_EVERIFY, "%s: %s: %s (%s); refused without --allow-%s",
                    pk ? "pickle" : "code", me->path, v.format, v.reason, pk ? "pickle" : "code");
            r->n_files++;
            goto fail;
        }
        r->size += f->size;
        bool gguf = !strcmp(v.format, "gguf");
        if (gguf) {
            buf_printf(&names, "%s%s", n_gguf ? ", " : "", me->path);
            n_gguf++;
        }
        if (want ? !strcmp(want, me->path) && gguf : gguf && n_gguf == 1)
            r->model = (int)r->n_files;
        r->n_files++;
    }
    if (want && r->model < 0) {
        al_errf(e, AL_EUSAGE, "--model-file %s: not a GGUF file of this bundle (GGUF files: %s)",
                want, n_gguf ? names.data : "none");
        goto fail;
    }
    if (!want && n_gguf > 1) {
        al_errf(e, AL_EUSAGE, "the bundle holds %zu GGUF files (%s): name the one to serve "
                "with --model-file", n_gguf, names.data);
        goto fail;
    }
    if (r->model >= 0)
        r->model_blob = fsx_join(d->blobs, r->files[r->model].hex);
    free(want);
    buf_free(&names);
    return 0;
fail:
    manifest_text_sanitize(e->msg);
    free(want);
    buf_free(&names);
    store_record_free(r);
    return -1;
}

/* Stage the version directory in the txn and rename it to models/<name>/<version>.
 * Returns 1 when that version appeared meanwhile (caller compares), 0 when placed. */
static int
version_commit(struct store_dirs *d, struct txn *x, const struct meta *m,
               const struct store_record *r, struct al_err *e)
{
    int rc = -1, vfd = -1, nfd = -1;
    char *text = NULL;
    json_t *j = NULL;
    if (mkdirat(x->fd, "version", 0755) != 0) {
        al_errno(e, errno, "%s/version: mkdir", x->dir);
        goto out;
    }
    vfd = openat(x->fd, "version", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (vfd < 0) {
        al_errno(e, errno, "%s/version: open", x->dir);
        goto out;
    }
    j = record_to_json(r, m);
    text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (!text) {
        al_errf(e, AL_EINTERNAL, "record.json: cannot serialise");
        goto out;
    }
    size_t tl = strlen(text);
    text = xrealloc(text, tl + 2);
    text[tl] = '\n';
    text[tl + 1] = '\0';
    if (write_at(vfd, BUNDLE_MANIFEST, m->man, m->man_len, e) < 0 ||
        (m->sig && write_at(vfd, BUNDLE_SIG, m->sig, m->sig_len, e) < 0) ||
        write_at(vfd, BUNDLE_BOM, m->bom, m->bom_len, e) < 0 ||
        write_at(vfd, STORE_RECORD_FILE, text, tl + 1, e) < 0 ||
        fsync_fd(vfd, "version directory", e) < 0)
        goto out;
    char *ndir = fsx_join(d->models, m->name);
    bool made = mkdir(ndir, 0755) == 0;
    if (!made && errno != EEXIST) {
        al_errno(e, errno, "%s: mkdir", ndir);
        free(ndir);
        goto out;
    }
    if (made && fsx_fsync_dir(d->models, e) < 0) {
        free(ndir);
        goto out;
    }
    nfd = open_dir(ndir, e);
    free(ndir);
    if (nfd < 0)
        goto out;
    if (renameat2(x->fd, "version", nfd, m->version, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            rc = 1;
            goto out;
        }
        al_errno(e, errno, "%s/%s/%s: rename into place", d->models, m->name, m->version);
        goto out;
    }
    if (fsync_fd(nfd, m->name, e) < 0)
        goto out;
    rc = 0;
out:
    if (vfd >= 0)
        close(vfd);
    if (nfd >= 0)
        close(nfd);
    free(text);
    json_decref(j);
    return rc;
}

/* 1 when models/<name>/<version> exists with exactly this manifest, 0 when it does not exist,
 * -1 with AL_EEXIST when it exists with another one. */
static int
version_compare(const struct store_dirs *d, const struct meta *m, struct al_err *e)
{
    char *vdir = xasprintf("%s/%s/%s", d->models, m->name, m->version);
    char *mp = fsx_join(vdir, BUNDLE_MANIFEST);
    struct stat st;
    int rc;
    if (lstat(vdir, &st) != 0) {
        rc = errno == ENOENT ? 0 : al_errno(e, errno, "%s: stat", vdir);
    } else {
        char *have = NULL;
        size_t hl = 0;
        struct al_err re = {0};
        bool same = fsx_read_file(mp, MANIFEST_MAX_BYTES, &have, &hl, &re) == 0 &&
                    hl == m->man_len && !memcmp(have, m->man, hl);
        free(have);
        rc = same ? 1
                  : al_errf(e, AL_EEXIST,
                            "%s %s is already in the store with a different signed manifest "
                            "(%s); a version is never replaced: pack the new content as a new "
                            "version",
                            m->name, m->version, vdir);
    }
    free(mp);
    free(vdir);
    return rc;
}

/* What identifies the bundle on disk: the tar file itself, or a directory's manifest. */
static int
bundle_ident(const char *bundle, bool is_tar, struct stat *st, struct al_err *e)
{
    char *p = is_tar ? xstrdup(bundle) : fsx_join(bundle, BUNDLE_MANIFEST);
    int rc = lstat(p, st) == 0 ? 0 : al_errno(e, errno, "%s: stat", p);
    free(p);
    return rc;
}

static bool
ident_same(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void
txn_abort(struct store_dirs *d, struct txn *x)
{
    for (size_t i = 0; i < x->n_added; i++)
        (void)unlinkat(d->blobs_fd, x->added[i], 0); /* best effort: failure cleanup */
    if (x->n_added && d->blobs_fd >= 0)
        (void)fsync(d->blobs_fd); /* best effort: failure cleanup */
}

static void
txn_free(struct txn *x)
{
    if (x->fd >= 0)
        close(x->fd);
    if (x->dir)
        fsx_remove_tree(x->dir);
    free(x->dir);
    for (size_t i = 0; i < x->n_added; i++)
        free(x->added[i]);
    free(x->added);
    memset(x, 0, sizeof *x);
    x->fd = -1;
}

int
store_import(const char *data_dir, const struct store_import_opts *o,
             struct store_import_result *res, struct bundle_report *r, struct al_err *e)
{
    int rc = -1;
    struct store_dirs d = {.blobs_fd = -1, .lock_fd = -1};
    struct txn x = {.fd = -1};
    struct meta m;
    memset(&m, 0, sizeof m);
    struct minisig_trust trust = {0};
    bool have_trust = false, is_tar = false, committed = false;
    bool *need = NULL;
    struct progress p;
    bool progress_on = false;
    struct stat sb, id_before, id_after;
    memset(res, 0, sizeof *res);
    res->rec.model = -1;

    if (!o->trust && !o->allow_unsigned) {
        al_errf(e, AL_EUSAGE, "--trust PUBFILE_OR_DIR is required (or --allow-unsigned)");
        goto out;
    }
    if (o->trust && o->allow_unsigned) {
        al_errf(e, AL_EUSAGE, "--trust and --allow-unsigned are exclusive");
        goto out;
    }
    if (lstat(o->bundle, &sb) != 0) {
        al_errno(e, errno, "%s", o->bundle);
        goto out;
    }
    is_tar = S_ISREG(sb.st_mode);
    if (!is_tar) {
        char *pm = fsx_join(o->bundle, BUNDLE_MANIFEST), *pb = fsx_join(o->bundle, BUNDLE_BOM);
        bool native = S_ISDIR(sb.st_mode) && lstat(pm, &sb) == 0 && lstat(pb, &sb) == 0;
        free(pm);
        free(pb);
        if (!native) {
            al_errf(e, AL_EFORMAT, "%s: not an airlock bundle (a directory with %s and %s, or "
                    "its .tar); drives are checked with `airlock verify`", o->bundle,
                    BUNDLE_MANIFEST, BUNDLE_BOM);
            goto out;
        }
    }
    if (o->trust) {
        if (minisig_trust_load(o->trust, &trust, e) < 0)
            goto out;
        have_trust = true;
    }
    if (dirs_open_locked(&d, data_dir, e) < 0)
        goto out;

    /* 1. everything `airlock verify` checks */
    struct bundle_verify_opts vo = {.path = o->bundle, .trust = o->trust,
                                    .allow_unsigned = o->allow_unsigned,
                                    .allow_code = o->allow_code, .allow_pickle = o->allow_pickle,
                                    .progress = o->progress, .threads = o->threads};
    if (bundle_ident(o->bundle, is_tar, &id_before, e) < 0 || bundle_verify(&vo, r, e) < 0)
        goto out;
    if (o->after_verify)
        o->after_verify(o->hook_ud, o->bundle);

    /* 2. the bytes we store, checked on their own, must be the bundle step 1 verified */
    if ((is_tar ? meta_read_tar(o->bundle, &m, e) : meta_read_dir(o->bundle, &m, e)) < 0 ||
        meta_check(have_trust ? &trust : NULL, &m, e) < 0)
        goto out;
    if (!r->name || !r->version || strcmp(r->name, m.name) != 0 ||
        strcmp(r->version, m.version) != 0 || strcmp(r->signer_key_id, m.signer) != 0) {
        al_errf(e, AL_EVERIFY, "%s changed during the import (verified %s %s, then read "
                "%.100s %.100s); nothing imported", o->bundle, r->name ? r->name : "?",
                r->version ? r->version : "?", m.name, m.version);
        goto out;
    }
    if (store_name_check(m.name, "bundle name", e) < 0 ||
        store_name_check(m.version, "bundle version", e) < 0) {
        al_errctx(e, "%s", o->bundle);
        goto out;
    }
    int already = version_compare(&d, &m, e);
    if (already < 0)
        goto out;

    /* 3. blobs: copy what is missing, hashing the bytes written */
    x.dir = xasprintf("%s/import-XXXXXX", d.tmp);
    if (!mkdtemp(x.dir)) {
        al_errno(e, errno, "%s: create", x.dir);
        free(x.dir);
        x.dir = NULL;
        goto out;
    }
    x.fd = open_dir(x.dir, e);
    if (x.fd < 0)
        goto out;
    need = xcalloc(m.m.n + 1, sizeof *need);
    uint64_t to_copy = 0;
    if (plan_copies(&d, &m, need, &res->blobs_shared, &to_copy, e) < 0)
        goto out;
    progress_init(&p, "importing", to_copy, o->progress && to_copy > 0);
    progress_on = true;
    struct copy_job job = {.d = &d, .x = &x, .bundle = o->bundle, .m = &m, .need = need,
                           .prog = &p, .res = res};
    if ((is_tar ? copy_from_tar(&job, e) : copy_from_dir(&job, e)) < 0)
        goto out;
    progress_finish(&p);
    progress_on = false;
    if (res->blobs_new && fsync_fd(d.blobs_fd, d.blobs, e) < 0)
        goto out;
    /* 4. a bundle replaced meanwhile by another validly signed one is still not what step 1
     * verified: refuse it too (record_build then applies the safety policy to the blobs) */
    if (bundle_ident(o->bundle, is_tar, &id_after, e) < 0)
        goto out;
    if (!ident_same(&id_before, &id_after)) {
        al_errf(e, AL_EVERIFY, "%s%s%s was replaced or modified during the import; nothing "
                "imported", o->bundle, is_tar ? "" : "/", is_tar ? "" : BUNDLE_MANIFEST);
        goto out;
    }

    /* 5. the version directory, atomically */
    if (already) {
        res->already = true;
        if (record_load(&d, m.name, m.version, &res->rec, e) < 0)
            goto out;
        committed = true;
        rc = 0;
        goto out;
    }
    if (record_build(&d, o, &m, &res->rec, e) < 0)
        goto out;
    int k = version_commit(&d, &x, &m, &res->rec, e);
    if (k < 0)
        goto out;
    if (k == 1) { /* appeared meanwhile (not through an import: they hold the lock) */
        int same = version_compare(&d, &m, e);
        if (same <= 0) {
            if (same == 0)
                al_errf(e, AL_EIO, "%s %s: version directory vanished", m.name, m.version);
            goto out;
        }
        res->already = true;
        store_record_free(&res->rec);
        if (record_load(&d, m.name, m.version, &res->rec, e) < 0)
            goto out;
    } else {
        res->rec.dir = xasprintf("%s/%s/%s", d.models, m.name, m.version);
    }
    committed = true;
    rc = 0;
out:
    if (progress_on)
        progress_finish(&p);
    if (!committed && d.blobs_fd >= 0)
        txn_abort(&d, &x);
    txn_free(&x);
    free(need);
    meta_free(&m);
    if (have_trust)
        minisig_trust_free(&trust);
    dirs_close(&d);
    if (rc < 0) {
        store_record_free(&res->rec);
        if (e)
            manifest_text_sanitize(e->msg);
    }
    return rc;
}

/* ===== Listing and resolving ============================================================= */

/* Newer first: later import, then the higher version in version order. */
static int
record_newer_first(const void *a, const void *b)
{
    const struct store_record *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (x->imported != y->imported)
        return x->imported > y->imported ? -1 : 1;
    return -strverscmp(x->version, y->version);
}

/* Records of every version of name (or of every name when name is NULL). */
static int
list_versions(const struct store_dirs *d, const char *name, struct store_list *l,
              struct al_err *e)
{
    DIR *nd = NULL;
    struct dirent *de;
    size_t cap = 0;
    memset(l, 0, sizeof *l);
    if (!name) {
        DIR *md = opendir(d->models);
        if (!md)
            return errno == ENOENT ? 0 : al_errno(e, errno, "%s: opendir", d->models);
        while ((de = readdir(md)) != NULL) {
            if (store_name_check(de->d_name, "name", NULL) < 0)
                continue; /* ".", "..": nothing else is ever created here */
            struct store_list one;
            if (list_versions(d, de->d_name, &one, e) < 0) {
                closedir(md);
                store_list_free(l);
                return -1;
            }
            for (size_t i = 0; i < one.n; i++) {
                if (l->n == cap) {
                    cap = cap ? cap * 2 : 16;
                    l->v = xrealloc(l->v, cap * sizeof *l->v);
                }
                l->v[l->n++] = one.v[i];
            }
            free(one.v);
        }
        closedir(md);
        if (l->n)
            qsort(l->v, l->n, sizeof *l->v, record_newer_first);
        return 0;
    }
    char *ndir = fsx_join(d->models, name);
    nd = opendir(ndir);
    free(ndir);
    if (!nd)
        return errno == ENOENT ? 0 : al_errno(e, errno, "%s/%s: opendir", d->models, name);
    while ((de = readdir(nd)) != NULL) {
        if (store_name_check(de->d_name, "version", NULL) < 0)
            continue;
        if (l->n == cap) {
            cap = cap ? cap * 2 : 8;
            l->v = xrealloc(l->v, cap * sizeof *l->v);
        }
        if (record_load(d, name, de->d_name, &l->v[l->n], e) < 0) {
            closedir(nd);
            store_list_free(l);
            return -1;
        }
        l->n++;
    }
    closedir(nd);
    if (l->n)
        qsort(l->v, l->n, sizeof *l->v, record_newer_first);
    return 0;
}

int
store_list(const char *data_dir, struct store_list *l, struct al_err *e)
{
    struct store_dirs d;
    dirs_paths(&d, data_dir);
    int rc = list_versions(&d, NULL, l, e);
    dirs_close(&d);
    return rc;
}

int
store_resolve(const char *data_dir, const char *name, const char *version,
              struct store_record *out, struct al_err *e)
{
    struct store_dirs d;
    int rc = -1;
    memset(out, 0, sizeof *out);
    out->model = -1;
    dirs_paths(&d, data_dir);
    if (store_name_check(name, "model name", e) < 0 ||
        (version && store_name_check(version, "version", e) < 0)) {
        manifest_text_sanitize(e->msg);
        goto out;
    }
    if (version) {
        char *vdir = xasprintf("%s/%s/%s", d.models, name, version);
        struct stat st;
        bool there = lstat(vdir, &st) == 0;
        free(vdir);
        if (!there) {
            al_errf(e, AL_ENOTFOUND, "%s:%s is not in the store %s (see `airlock models`)", name,
                    version, d.root);
            goto out;
        }
        rc = record_load(&d, name, version, out, e);
        goto out;
    }
    struct store_list l;
    if (list_versions(&d, name, &l, e) < 0)
        goto out;
    if (l.n == 0) {
        al_errf(e, AL_ENOTFOUND, "%s is not in the store %s (see `airlock models`)", name,
                d.root);
        store_list_free(&l);
        goto out;
    }
    *out = l.v[0]; /* sorted newest first */
    for (size_t i = 1; i < l.n; i++)
        store_record_free(&l.v[i]);
    free(l.v);
    rc = 0;
out:
    dirs_close(&d);
    return rc;
}

int
store_check_model(const struct store_record *r, struct progress *prog, struct al_err *e)
{
    if (r->model < 0 || !r->model_blob)
        return al_errf(e, AL_ENOTFOUND, "%s:%s has no GGUF model file", r->name, r->version);
    const struct store_file *f = &r->files[r->model];
    uint8_t got[SHA256_LEN];
    uint64_t size = 0;
    if (hash_sha256_file(r->model_blob, got, &size, prog, e) < 0)
        return -1;
    if (memcmp(got, f->sha256, SHA256_LEN) != 0 || size != f->size) {
        char hx[2 * SHA256_LEN + 1];
        hash_hex(got, SHA256_LEN, hx);
        return al_errf(e, AL_EVERIFY, "%s: stored blob of %s:%s (%s) changed since import: "
                       "SHA-256 %s, %llu bytes", r->model_blob, r->name, r->version, f->path, hx,
                       (unsigned long long)size);
    }
    return 0;
}
