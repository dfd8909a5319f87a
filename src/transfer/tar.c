/* tar.c -- libarchive wrapper for bundle tars: a streaming pax writer that hashes what it
 * writes, and a reader that refuses every entry a hostile archive could use to escape or
 * confuse extraction (see tar.h). Never writes outside the writer's own temp file; never
 * extracts. Spec: docs/formats/bundle.md. Archive input is untrusted. */
#include "transfer/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transfer/manifest.h"
#include "util/fsx.h"
#include "util/progress.h"
#include "util/xalloc.h"

#define TAR_CHUNK (1u << 20) /* bytes per read/write while streaming a file */

/* libarchive converts names through the calling thread's locale; in the C locale a UTF-8 name
 * cannot be converted and the pax writer crashes or the reader loses the name. Every archive
 * call runs with a private C.UTF-8 locale made current for this thread only (uselocale). */
static locale_t
tar_locale_new(void)
{
    locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    return l ? l : duplocale(LC_GLOBAL_LOCALE);
}

static void
tar_locale_free(locale_t l)
{
    if (l)
        freelocale(l);
}

/* ===== Writer ============================================================================ */

static int
tar_write_header(struct tar_writer *w, const char *name, uint64_t size, struct al_err *e)
{
    int rc = -1;
    locale_t old = uselocale(w->loc);
    struct archive_entry *ent = archive_entry_new();
    archive_entry_copy_pathname(ent, name); /* UTF-8, checked by the caller */
    archive_entry_set_filetype(ent, AE_IFREG);
    archive_entry_set_perm(ent, 0644);
    archive_entry_set_size(ent, (la_int64_t)size);
    archive_entry_set_mtime(ent, w->mtime, 0);
    archive_entry_set_uid(ent, 0);
    archive_entry_set_gid(ent, 0);
    if (archive_write_header(w->a, ent) != ARCHIVE_OK) {
        al_errf(e, AL_EIO, "%s: entry %s: %s", w->final_path, name, archive_error_string(w->a));
        goto out;
    }
    rc = 0;
out:
    archive_entry_free(ent);
    uselocale(old);
    return rc;
}

static int
tar_write_data(struct tar_writer *w, const char *name, const void *p, size_t n, struct al_err *e)
{
    const char *c = p;
    while (n > 0) {
        la_ssize_t r = archive_write_data(w->a, c, n);
        if (r <= 0)
            return al_errf(e, AL_EIO, "%s: entry %s: %s", w->final_path, name,
                           archive_error_string(w->a));
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

int
tar_writer_open(struct tar_writer *w, const char *path, bool force, time_t mtime, struct al_err *e)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->mtime = mtime;
    struct stat st;
    if (!force && lstat(path, &st) == 0)
        return al_errf(e, AL_EEXIST, "%s: already exists (use --force to replace it)", path);
    char *dir = fsx_dirname(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    w->tmp_path = xasprintf("%s/.%s.tmp-XXXXXX", dir, base);
    free(dir);
    w->final_path = xstrdup(path);
    w->fd = mkstemp(w->tmp_path);
    if (w->fd < 0) {
        int err = errno;
        free(w->tmp_path);
        w->tmp_path = NULL;
        tar_writer_abort(w);
        return al_errno(e, err, "%s: create temp file", path);
    }
    (void)fchmod(w->fd, 0644); /* best effort: mkstemp makes 0600 */
    w->loc = tar_locale_new();
    struct archive *a = archive_write_new();
    w->a = a;
    if (archive_write_set_format_pax(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(a, w->fd) != ARCHIVE_OK) {
        al_errf(e, AL_EIO, "%s: %s", path, archive_error_string(a));
        tar_writer_abort(w);
        return -1;
    }
    return 0;
}

int
tar_writer_add_fd(struct tar_writer *w, const char *name, int fd, uint64_t size,
                  uint8_t sha256[SHA256_LEN], struct progress *prog, struct al_err *e)
{
    int rc = -1;
    struct hash_ctx hc = {0};
    uint8_t *chunk = xmalloc(TAR_CHUNK);
    if (tar_write_header(w, name, size, e) != 0 || hash_sha256_init(&hc, e) != 0)
        goto out;
    uint64_t done = 0;
    for (;;) {
        ssize_t r = read(fd, chunk, TAR_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            al_errno(e, errno, "%s: read", name);
            goto out;
        }
        if (r == 0)
            break;
        if ((uint64_t)r > size - done) {
            al_errf(e, AL_EIO, "%s: grew while being packed (expected %llu bytes)", name,
                    (unsigned long long)size);
            goto out;
        }
        if (hash_update(&hc, chunk, (size_t)r, e) != 0 ||
            tar_write_data(w, name, chunk, (size_t)r, e) != 0)
            goto out;
        done += (uint64_t)r;
        progress_add(prog, (uint64_t)r);
    }
    if (done != size) {
        al_errf(e, AL_EIO, "%s: shrank while being packed (%llu of %llu bytes)", name,
                (unsigned long long)done, (unsigned long long)size);
        goto out;
    }
    if (hash_final(&hc, sha256, e) != 0)
        goto out;
    rc = 0;
out:
    hash_ctx_free(&hc);
    free(chunk);
    return rc;
}

int
tar_writer_add_buf(struct tar_writer *w, const char *name, const void *data, size_t len,
                   struct al_err *e)
{
    if (tar_write_header(w, name, len, e) != 0)
        return -1;
    return tar_write_data(w, name, data, len, e);
}

int
tar_writer_commit(struct tar_writer *w, struct al_err *e)
{
    if (archive_write_close(w->a) != ARCHIVE_OK) {
        al_errf(e, AL_EIO, "%s: %s", w->final_path, archive_error_string(w->a));
        goto fail;
    }
    archive_write_free(w->a);
    w->a = NULL;
    if (fsync(w->fd) != 0) {
        al_errno(e, errno, "%s: fsync", w->tmp_path);
        goto fail;
    }
    if (close(w->fd) != 0) {
        w->fd = -1;
        al_errno(e, errno, "%s: close", w->tmp_path);
        goto fail;
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->final_path) != 0) {
        al_errno(e, errno, "%s: rename into place", w->final_path);
        goto fail;
    }
    free(w->tmp_path);
    w->tmp_path = NULL;
    char *dir = fsx_dirname(w->final_path);
    int drc = fsx_fsync_dir(dir, e);
    free(dir);
    if (drc != 0)
        goto fail;
    tar_writer_abort(w); /* frees the rest */
    return 0;
fail:
    tar_writer_abort(w);
    return -1;
}

void
tar_writer_abort(struct tar_writer *w)
{
    if (!w)
        return;
    if (w->a)
        archive_write_free(w->a);
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_path)
        unlink(w->tmp_path);
    tar_locale_free(w->loc);
    free(w->tmp_path);
    free(w->final_path);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}

/* ===== Reader ============================================================================ */

static uint64_t
name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Insert into the seen-set; returns false when the name was already there. */
static bool
seen_insert(struct tar_reader *r, const char *name)
{
    if ((r->n_seen + 1) * 2 > r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 256;
        char **nv = xcalloc(ncap, sizeof *nv);
        for (size_t i = 0; i < r->cap; i++)
            if (r->seen[i]) {
                size_t j = name_hash(r->seen[i]) & (ncap - 1);
                while (nv[j])
                    j = (j + 1) & (ncap - 1);
                nv[j] = r->seen[i];
            }
        free(r->seen);
        r->seen = nv;
        r->cap = ncap;
    }
    size_t j = name_hash(name) & (r->cap - 1);
    while (r->seen[j]) {
        if (strcmp(r->seen[j], name) == 0)
            return false;
        j = (j + 1) & (r->cap - 1);
    }
    r->seen[j] = xstrdup(name);
    r->n_seen++;
    return true;
}

static int
tar_reader_setup(struct tar_reader *r, const char *what, struct al_err *e)
{
    memset(r, 0, sizeof *r);
    r->what = what;
    r->loc = tar_locale_new();
    struct archive *a = archive_read_new();
    r->a = a;
    /* tar only, no decompression: a bundle is never compressed, and filters are attack surface */
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_filter_none(a) != ARCHIVE_OK) {
        al_errf(e, AL_EINTERNAL, "%s: libarchive setup: %s", what, archive_error_string(a));
        tar_reader_close(r);
        return -1;
    }
    return 0;
}

int
tar_reader_open_fd(struct tar_reader *r, int fd, const char *what, struct al_err *e)
{
    if (tar_reader_setup(r, what, e) != 0)
        return -1;
    if (archive_read_open_fd(r->a, fd, 1 << 20) != ARCHIVE_OK) {
        al_errf(e, AL_EFORMAT, "%s: not a tar archive: %s", what, archive_error_string(r->a));
        tar_reader_close(r);
        return -1;
    }
    return 0;
}

int
tar_reader_open_memory(struct tar_reader *r, const void *p, size_t n, const char *what,
                       struct al_err *e)
{
    if (tar_reader_setup(r, what, e) != 0)
        return -1;
    if (archive_read_open_memory(r->a, p, n) != ARCHIVE_OK) {
        al_errf(e, AL_EFORMAT, "%s: not a tar archive: %s", what, archive_error_string(r->a));
        tar_reader_close(r);
        return -1;
    }
    return 0;
}

/* The checks every entry must pass before anyone acts on it. */
static int
tar_entry_check(struct tar_reader *r, struct archive_entry *ent, struct tar_entry *out,
                struct al_err *e)
{
    int fmt = archive_format(r->a);
    if (fmt != ARCHIVE_FORMAT_TAR_USTAR && fmt != ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE &&
        fmt != ARCHIVE_FORMAT_TAR_PAX_RESTRICTED)
        return al_errf(e, AL_EFORMAT,
                       "%s: entry %llu is a '%s' archive entry; only POSIX "
                       "ustar/pax is accepted",
                       r->what, (unsigned long long)r->n_seen + 1,
                       archive_format_name(r->a) ? archive_format_name(r->a) : "unknown");
    const char *raw = archive_entry_pathname_utf8(ent);
    if (!raw)
        raw = archive_entry_pathname(ent);
    if (!raw)
        return al_errf(e, AL_EFORMAT, "%s: entry %llu has no usable name (not UTF-8?)", r->what,
                       (unsigned long long)r->n_seen + 1);
    size_t rawlen = strlen(raw);
    if (rawlen > MANIFEST_PATH_MAX + 2)
        return al_errf(e, AL_EFORMAT, "%s: entry name of %zu bytes is longer than %u", r->what,
                       rawlen, MANIFEST_PATH_MAX);
    if (raw[0] == '/')
        return al_errf(e, AL_EFORMAT, "%s: absolute path '%.200s' refused", r->what, raw);
    const char *name = raw;
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    size_t len = strlen(name);
    mode_t type = archive_entry_filetype(ent);
    bool is_dir = type == AE_IFDIR;
    while (is_dir && len > 0 && name[len - 1] == '/')
        len--;
    if (is_dir && (len == 0 || (len == 1 && name[0] == '.')))
        len = 0; /* "./" itself: the archive root */
    const char *hl = archive_entry_hardlink(ent);
    if (hl)
        return al_errf(e, AL_EVERIFY, "%s: hard link '%.200s' -> '%.200s' refused", r->what, raw,
                       hl);
    if (type == AE_IFLNK)
        return al_errf(e, AL_EVERIFY, "%s: symbolic link '%.200s' -> '%.200s' refused", r->what,
                       raw, archive_entry_symlink(ent) ? archive_entry_symlink(ent) : "?");
    if (type != AE_IFREG && type != AE_IFDIR)
        return al_errf(e, AL_EVERIFY,
                       "%s: '%.200s' is a %s; only regular files and directories "
                       "are accepted",
                       r->what, raw,
                       type == AE_IFCHR || type == AE_IFBLK ? "device"
                       : type == AE_IFIFO                   ? "fifo"
                       : type == AE_IFSOCK                  ? "socket"
                                                            : "special entry");
    if (archive_entry_sparse_count(ent) > 0)
        return al_errf(e, AL_EFORMAT, "%s: '%.200s' is a sparse entry; not supported", r->what,
                       raw);
    if (!is_dir && archive_entry_size(ent) < 0)
        return al_errf(e, AL_EFORMAT, "%s: '%.200s' has a negative size", r->what, raw);
    free(r->path);
    r->path = xstrndup(name, len);
    if (len > 0 && manifest_path_check(r->path, len, r->what, e) != 0)
        return -1;
    if (r->n_seen >= TAR_MAX_ENTRIES)
        return al_errf(e, AL_ELIMIT, "%s: more than %u entries", r->what, TAR_MAX_ENTRIES);
    if (len > 0 && !seen_insert(r, r->path))
        return al_errf(e, AL_EVERIFY, "%s: duplicate entry '%.200s' refused", r->what, r->path);
    out->path = r->path;
    out->is_dir = is_dir;
    out->size = is_dir ? 0 : (uint64_t)archive_entry_size(ent);
    return 0;
}

static int
tar_reader_next_locked(struct tar_reader *r, struct tar_entry *ent, struct al_err *e)
{
    for (;;) {
        struct archive_entry *ae = NULL;
        int st = archive_read_next_header(r->a, &ae);
        if (st == ARCHIVE_EOF)
            return 0;
        if (st != ARCHIVE_OK && st != ARCHIVE_WARN)
            return al_errf(e, AL_EFORMAT, "%s: entry %llu: %s", r->what,
                           (unsigned long long)r->n_seen + 1, archive_error_string(r->a));
        if (st == ARCHIVE_WARN && !archive_entry_pathname_utf8(ae))
            return al_errf(e, AL_EFORMAT, "%s: entry %llu: %s", r->what,
                           (unsigned long long)r->n_seen + 1, archive_error_string(r->a));
        if (tar_entry_check(r, ae, ent, e) != 0)
            return -1;
        if (ent->path[0] == '\0')
            continue; /* the "./" root directory entry carries nothing */
        return 1;
    }
}

int
tar_reader_next(struct tar_reader *r, struct tar_entry *ent, struct al_err *e)
{
    locale_t old = uselocale(r->loc);
    int rc = tar_reader_next_locked(r, ent, e);
    uselocale(old);
    return rc;
}

ssize_t
tar_reader_read(struct tar_reader *r, void *p, size_t n, struct al_err *e)
{
    la_ssize_t got = archive_read_data(r->a, p, n);
    if (got < 0)
        return al_errf(e, AL_EFORMAT, "%s: entry '%.200s': %s", r->what, r->path ? r->path : "?",
                       archive_error_string(r->a));
    return (ssize_t)got;
}

int
tar_reader_slurp(struct tar_reader *r, const struct tar_entry *ent, size_t max, char **out,
                 size_t *len, struct al_err *e)
{
    if (*out)
        return al_errf(e, AL_EFORMAT, "%s: %s appears twice", r->what, ent->path);
    if (ent->size > max)
        return al_errf(e, AL_ELIMIT, "%s: %s is %llu bytes, limit %zu", r->what, ent->path,
                       (unsigned long long)ent->size, max);
    char *p = xmalloc((size_t)ent->size + 1);
    size_t got = 0;
    for (;;) {
        ssize_t k = tar_reader_read(r, p + got, (size_t)ent->size + 1 - got, e);
        if (k < 0) {
            free(p);
            return -1;
        }
        if (k == 0)
            break;
        got += (size_t)k;
        if (got > ent->size) {
            free(p);
            return al_errf(e, AL_EFORMAT, "%s: %s is longer than its header says", r->what,
                           ent->path);
        }
    }
    p[got] = '\0';
    *out = p;
    *len = got;
    return 0;
}

void
tar_reader_close(struct tar_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    for (size_t i = 0; i < r->cap; i++)
        free(r->seen[i]);
    free(r->seen);
    free(r->path);
    tar_locale_free(r->loc);
    memset(r, 0, sizeof *r);
}

int
tar_validate_memory(const void *p, size_t n, struct al_err *e)
{
    struct tar_reader r;
    int rc = -1;
    uint8_t buf[16384];
    if (tar_reader_open_memory(&r, p, n, "tar", e) != 0)
        return -1;
    for (;;) {
        struct tar_entry ent;
        int st = tar_reader_next(&r, &ent, e);
        if (st < 0)
            goto out;
        if (st == 0)
            break;
        uint64_t got = 0;
        for (;;) {
            ssize_t k = tar_reader_read(&r, buf, sizeof buf, e);
            if (k < 0)
                goto out;
            if (k == 0)
                break;
            got += (uint64_t)k;
        }
        if (got != ent.size) {
            al_errf(e, AL_EFORMAT, "tar: entry '%.200s' holds %llu bytes, header says %llu",
                    ent.path, (unsigned long long)got, (unsigned long long)ent.size);
            goto out;
        }
    }
    rc = 0;
out:
    tar_reader_close(&r);
    return rc;
}
