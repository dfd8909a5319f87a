/* manifest.c -- sha256sum manifests: strict parse, path normalisation, canonical sorted write,
 * and a link-refusing scan of a directory tree to compare a manifest against.
 * Does not hash file contents (crypto/hash.c) or check signatures (transfer/minisig.c, pgp.c).
 * Spec: docs/formats/manifest.md. All input (manifest text, directory contents) is untrusted. */
#include "transfer/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/utf8.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* ===== Path checks ===================================================================== */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t
utf8_seq_len(const unsigned char *p, size_t n)
{
    return utf8_decode(p, n, NULL);
}

int
manifest_path_check(const char *rel, size_t len, const char *what, struct al_err *e)
{
    const unsigned char *p = (const unsigned char *)rel;
    if (len == 0)
        return al_errf(e, AL_EFORMAT, "%s: empty path", what);
    if (len > MANIFEST_PATH_MAX)
        return al_errf(e, AL_EFORMAT, "%s: path of %zu bytes is longer than %u", what, len,
                       MANIFEST_PATH_MAX);
    if (memchr(rel, '\0', len))
        return al_errf(e, AL_EFORMAT, "%s: path holds a NUL byte", what);
    if (p[0] == '/')
        return al_errf(e, AL_EFORMAT, "%s: absolute path '%.200s' refused", what, rel);
    size_t comp = 0; /* start of the current component */
    for (size_t i = 0; i <= len;) {
        if (i == len || p[i] == '/') {
            size_t clen = i - comp;
            if (clen == 0)
                return al_errf(e, AL_EFORMAT, "%s: empty component in path '%.200s'%s", what, rel,
                               i == len ? " (ends with '/')" : "");
            if (clen > MANIFEST_NAME_MAX)
                return al_errf(e, AL_EFORMAT, "%s: component of %zu bytes (limit %u) in '%.200s'",
                               what, clen, MANIFEST_NAME_MAX, rel);
            if ((clen == 1 && p[comp] == '.') ||
                (clen == 2 && p[comp] == '.' && p[comp + 1] == '.'))
                return al_errf(e, AL_EFORMAT, "%s: '%.*s' component in path '%.200s' refused", what,
                               (int)clen, rel + comp, rel);
            comp = i + 1;
            i++;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7f)
            return al_errf(e, AL_EFORMAT, "%s: control byte 0x%02x at byte %zu of path '%.*s...'",
                           what, p[i], i, (int)(i < 200 ? i : 200), rel);
        size_t sl = utf8_seq_len(p + i, len - i);
        if (sl == 0)
            return al_errf(e, AL_EFORMAT, "%s: invalid UTF-8 at byte %zu of path '%.*s...'", what,
                           i, (int)(i < 200 ? i : 200), rel);
        i += sl;
    }
    return 0;
}

void
manifest_text_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            p[i++] = '?';
            continue;
        }
        size_t sl = utf8_seq_len(p + i, n - i);
        if (sl == 0) {
            p[i++] = '?';
            continue;
        }
        i += sl;
    }
}

/* ===== Lifecycle ========================================================================= */

void
manifest_init(struct manifest *m)
{
    memset(m, 0, sizeof *m);
}

void
manifest_free(struct manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].path);
    free(m->v);
    memset(m, 0, sizeof *m);
}

static struct manifest_entry *
manifest_push(struct manifest *m)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        size_t bytes;
        if (!size_mul_ok(m->cap, sizeof *m->v, &bytes))
            abort(); /* n is bounded by MANIFEST_MAX_ENTRIES long before this */
        m->v = xrealloc(m->v, bytes);
    }
    struct manifest_entry *en = &m->v[m->n++];
    memset(en, 0, sizeof *en);
    return en;
}

void
manifest_add(struct manifest *m, const char *path, const uint8_t sha256[SHA256_LEN])
{
    struct manifest_entry *en = manifest_push(m);
    en->path = xstrdup(path);
    memcpy(en->sha256, sha256, SHA256_LEN);
}

/* ===== Parse ============================================================================= */

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One line without its '\n'. */
static int
manifest_parse_line(struct manifest *m, const char *s, size_t n, size_t lineno, const char *what,
                    struct al_err *e)
{
    bool escaped = false;
    if (n > 0 && s[0] == '\\') {
        escaped = true;
        s++;
        n--;
    }
    if (n < 64 + 2 + 1)
        return al_errf(e, AL_EFORMAT, "%s: line %zu: too short for \"HASH  path\"", what, lineno);
    uint8_t sha[SHA256_LEN];
    for (size_t i = 0; i < SHA256_LEN; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return al_errf(e, AL_EFORMAT,
                           "%s: line %zu: byte %zu is not a hex digit of a SHA-256 hash", what,
                           lineno, 2 * i + (hi < 0 ? 0 : 1) + 1 + (escaped ? 1 : 0));
        sha[i] = (uint8_t)(hi << 4 | lo);
    }
    if (s[64] != ' ')
        return al_errf(e, AL_EFORMAT, "%s: line %zu: expected ' ' after the 64-digit hash", what,
                       lineno);
    if (s[65] != ' ' && s[65] != '*')
        return al_errf(e, AL_EFORMAT,
                       "%s: line %zu: expected a text (' ') or binary ('*') marker after the hash",
                       what, lineno);
    const char *p = s + 66;
    size_t plen = n - 66;
    if (memchr(p, '\0', plen))
        return al_errf(e, AL_EFORMAT, "%s: line %zu: NUL byte in path", what, lineno);
    if (plen > 0 && p[plen - 1] == '\r')
        return al_errf(e, AL_EFORMAT, "%s: line %zu: carriage return at end of line (CRLF file?)",
                       what, lineno);
    char *path = xmalloc(plen + 1);
    size_t o = 0;
    for (size_t i = 0; i < plen; i++) {
        if (escaped && p[i] == '\\') {
            if (i + 1 == plen) {
                free(path);
                return al_errf(e, AL_EFORMAT, "%s: line %zu: dangling '\\' at end of path", what,
                               lineno);
            }
            char c = p[++i];
            if (c == '\\')
                path[o++] = '\\';
            else if (c == 'n')
                path[o++] = '\n';
            else if (c == 'r')
                path[o++] = '\r';
            else {
                free(path);
                return al_errf(e, AL_EFORMAT, "%s: line %zu: unknown escape '\\%c' in path", what,
                               lineno, c);
            }
        } else {
            path[o++] = p[i];
        }
    }
    path[o] = '\0';
    struct manifest_entry *en = manifest_push(m);
    en->path = path;
    memcpy(en->sha256, sha, SHA256_LEN);
    en->binary = s[65] == '*';
    en->line = lineno;
    return 0;
}

int
manifest_parse(const char *text, size_t len, const char *what, struct manifest *m, struct al_err *e)
{
    manifest_init(m);
    if (len > MANIFEST_MAX_BYTES)
        return al_errf(e, AL_ELIMIT, "%s: %zu bytes, limit %u", what, len, MANIFEST_MAX_BYTES);
    size_t lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (m->n >= MANIFEST_MAX_ENTRIES) {
            al_errf(e, AL_ELIMIT, "%s: more than %u lines", what, MANIFEST_MAX_ENTRIES);
            goto fail;
        }
        if (n == 0) {
            al_errf(e, AL_EFORMAT, "%s: line %zu: empty line", what, lineno);
            goto fail;
        }
        if (manifest_parse_line(m, text + pos, n, lineno, what, e) != 0)
            goto fail;
        pos += n + (nl ? 1 : 0);
    }
    if (m->n == 0) {
        al_errf(e, AL_EFORMAT, "%s: no entries", what);
        goto fail;
    }
    return 0;
fail:
    manifest_free(m);
    return -1;
}

/* ===== Normalise, sort, find, format ===================================================== */

static int
entry_cmp(const void *a, const void *b)
{
    const struct manifest_entry *x = a, *y = b;
    return strcmp(x->path, y->path);
}

void
manifest_sort(struct manifest *m)
{
    if (m->n > 1)
        qsort(m->v, m->n, sizeof *m->v, entry_cmp);
}

const struct manifest_entry *
manifest_find(const struct manifest *m, const char *path)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, m->v[mid].path);
        if (c == 0)
            return &m->v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int
manifest_normalize(struct manifest *m, const char *strip_prefix, const char *what, struct al_err *e)
{
    size_t plen = 0;
    if (strip_prefix) {
        plen = strlen(strip_prefix);
        while (plen > 1 && strip_prefix[plen - 1] == '/')
            plen--; /* "/mnt/drive/" and "/mnt/drive" mean the same */
    }
    for (size_t i = 0; i < m->n; i++) {
        struct manifest_entry *en = &m->v[i];
        const char *p = en->path;
        if (p[0] == '/' && strip_prefix) {
            if (strncmp(p, strip_prefix, plen) != 0 || (p[plen] != '/' && plen != 1))
                return al_errf(e, AL_EFORMAT,
                               "%s: line %zu: absolute path '%.200s' is not under "
                               "--strip-prefix %s",
                               what, en->line, p, strip_prefix);
            p += plen;
            while (*p == '/')
                p++;
        }
        while (p[0] == '.' && p[1] == '/')
            p += 2; /* `sha256sum ./x` and `find . -type f` write "./x" */
        if (p[0] == '/')
            return al_errf(e, AL_EFORMAT,
                           "%s: line %zu: absolute path '%.200s' refused (map it "
                           "with --strip-prefix DIR)",
                           what, en->line, en->path);
        char ctx[128];
        snprintf(ctx, sizeof ctx, "%s: line %zu", what, en->line);
        if (manifest_path_check(p, strlen(p), ctx, e) != 0)
            return -1;
        if (p != en->path)
            memmove(en->path, p, strlen(p) + 1);
    }
    manifest_sort(m);
    for (size_t i = 1; i < m->n; i++)
        if (strcmp(m->v[i - 1].path, m->v[i].path) == 0) {
            size_t a = m->v[i - 1].line, b = m->v[i].line;
            return al_errf(e, AL_EFORMAT, "%s: duplicate entry for '%.200s' (lines %zu and %zu)",
                           what, m->v[i].path, a < b ? a : b, a < b ? b : a);
        }
    return 0;
}

char *
manifest_format(const struct manifest *m)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < m->n; i++) {
        const struct manifest_entry *en = &m->v[i];
        bool esc = strpbrk(en->path, "\\\n\r") != NULL;
        char hex[2 * SHA256_LEN + 1];
        hash_hex(en->sha256, SHA256_LEN, hex);
        if (esc)
            buf_putc(&b, '\\');
        buf_puts(&b, hex);
        buf_puts(&b, en->binary ? " *" : "  ");
        for (const char *p = en->path; *p; p++) {
            if (esc && *p == '\\')
                buf_puts(&b, "\\\\");
            else if (esc && *p == '\n')
                buf_puts(&b, "\\n");
            else if (esc && *p == '\r')
                buf_puts(&b, "\\r");
            else
                buf_putc(&b, *p);
        }
        buf_putc(&b, '\n');
    }
    if (!b.data)
        buf_puts(&b, "");
    return buf_steal(&b);
}

/* ===== Directory scan ==================================================================== */

struct scan_list {
    struct manifest_scan_item *v; /* owned */
    size_t n, cap;
};

static void
scan_list_add(struct scan_list *l, char *path, const char *kind, const struct stat *st)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].path = path;
    l->v[l->n].kind = kind;
    l->v[l->n].size = (uint64_t)st->st_size;
    l->v[l->n].nlink = (uint64_t)st->st_nlink;
    l->n++;
}

static const char *
scan_kind(mode_t m)
{
    if (S_ISREG(m))
        return "regular file";
    if (S_ISLNK(m))
        return "symbolic link";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "device";
    if (S_ISFIFO(m))
        return "fifo";
    if (S_ISSOCK(m))
        return "socket";
    return "special file";
}

/* dfd is owned and closed here; prefix is "" or "a/b/". depth bounds recursion. */
static int
scan_walk(int dfd, const char *root, const char *prefix, int depth, struct scan_list *files,
          struct scan_list *specials, struct al_err *e)
{
    int rc = -1;
    DIR *d = NULL;
    if (depth > 512) {
        al_errf(e, AL_ELIMIT, "%s/%s: directories nested deeper than 512", root, prefix);
        close(dfd);
        goto out;
    }
    d = fdopendir(dfd);
    if (!d) {
        al_errno(e, errno, "%s/%s: opendir", root, prefix);
        close(dfd);
        goto out;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                al_errno(e, errno, "%s/%s: readdir", root, prefix);
                goto out;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            al_errno(e, errno, "%s/%s%s: stat", root, prefix, de->d_name);
            goto out;
        }
        char *rel = xasprintf("%s%s", prefix, de->d_name);
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                al_errno(e, errno, "%s/%s: open directory", root, rel);
                free(rel);
                goto out;
            }
            char *sp = xasprintf("%s/", rel);
            free(rel);
            int r = scan_walk(sub, root, sp, depth + 1, files, specials, e);
            free(sp);
            if (r != 0)
                goto out;
        } else if (S_ISREG(st.st_mode)) {
            scan_list_add(files, rel, "regular file", &st);
        } else {
            scan_list_add(specials, rel, scan_kind(st.st_mode), &st);
        }
    }
    rc = 0;
out:
    if (d)
        closedir(d);
    return rc;
}

static int
scan_item_cmp(const void *a, const void *b)
{
    const struct manifest_scan_item *x = a, *y = b;
    return strcmp(x->path, y->path);
}

int
manifest_scan_dir(const char *root, struct manifest_scan *s, struct al_err *e)
{
    memset(s, 0, sizeof *s);
    struct scan_list files = {0}, specials = {0};
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT)
            return al_errf(e, AL_ENOTFOUND, "%s: no such directory", root);
        return al_errno(e, errno, "%s: open directory", root);
    }
    int r = scan_walk(dfd, root, "", 0, &files, &specials, e);
    s->files = files.v;
    s->n_files = files.n;
    s->specials = specials.v;
    s->n_specials = specials.n;
    if (r != 0) {
        manifest_scan_free(s);
        return -1;
    }
    if (s->n_files > 1)
        qsort(s->files, s->n_files, sizeof *s->files, scan_item_cmp);
    if (s->n_specials > 1)
        qsort(s->specials, s->n_specials, sizeof *s->specials, scan_item_cmp);
    return 0;
}

void
manifest_scan_free(struct manifest_scan *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i].path);
    for (size_t i = 0; i < s->n_specials; i++)
        free(s->specials[i].path);
    free(s->files);
    free(s->specials);
    memset(s, 0, sizeof *s);
}
