/* fsx.c -- careful file-system helpers (see fsx.h). */
#include "util/fsx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

int
fsx_open_read(const char *path, struct al_err *e)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            return al_errf(e, AL_EVERIFY, "%s: is a symbolic link; refusing to follow it", path);
        return al_errno(e, errno, "%s: open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return al_errno(e, err, "%s: stat", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return al_errf(e, AL_EFORMAT, "%s: not a regular file", path);
    }
    return fd;
}

int
fsx_read_file(const char *path, size_t max, char **out, size_t *out_len, struct al_err *e)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    int fd = fsx_open_read(path, e);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return al_errno(e, err, "%s: stat", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return al_errf(e, AL_ELIMIT, "%s: %lld bytes, limit %zu", path, (long long)st.st_size,
                       max);
    }
    size_t cap = (size_t)st.st_size;
    char *p = xmalloc(cap + 1);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            /* the file grew while we read it: allow up to max */
            if (cap >= max) {
                char c;
                ssize_t r = read(fd, &c, 1);
                if (r > 0) {
                    free(p);
                    close(fd);
                    return al_errf(e, AL_ELIMIT, "%s: larger than limit %zu", path, max);
                }
                break;
            }
            cap = cap * 2 + 4096 > max ? max : cap * 2 + 4096;
            p = xrealloc(p, cap + 1);
        }
        ssize_t r = read(fd, p + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            free(p);
            close(fd);
            return al_errno(e, err, "%s: read", path);
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    p[len] = '\0';
    *out = p;
    if (out_len)
        *out_len = len;
    return 0;
}

int
fsx_write_all(int fd, const void *p, size_t n, const char *what, struct al_err *e)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return al_errno(e, errno, "%s: write", what);
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

char *
fsx_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

char *
fsx_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    if (la && a[la - 1] == '/')
        return xasprintf("%s%s", a, b);
    return xasprintf("%s/%s", a, b);
}

int
fsx_fsync_dir(const char *dirpath, struct al_err *e)
{
    int fd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_errno(e, errno, "%s: open directory", dirpath);
    if (fsync(fd) != 0 && errno != EINVAL) {
        int err = errno;
        close(fd);
        return al_errno(e, err, "%s: fsync directory", dirpath);
    }
    close(fd);
    return 0;
}

int
fsx_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int excl,
                 struct al_err *e)
{
    int rc = -1;
    int fd = -1;
    char *dir = fsx_dirname(path);
    char *tmp = xasprintf("%s.tmp.XXXXXX", path);
    if (excl && access(path, F_OK) == 0) {
        al_errf(e, AL_EEXIST, "%s: already exists (use --force to overwrite)", path);
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        al_errno(e, errno, "%s: create temporary file", tmp);
        goto out;
    }
    if (fchmod(fd, mode) != 0) {
        al_errno(e, errno, "%s: chmod", tmp);
        goto out;
    }
    if (fsx_write_all(fd, data, len, tmp, e) < 0)
        goto out;
    if (fsync(fd) != 0) {
        al_errno(e, errno, "%s: fsync", tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        al_errno(e, errno, "%s: close", tmp);
        goto out;
    }
    fd = -1;
    if (excl) {
        /* link() fails if path appeared meanwhile: no silent overwrite race */
        if (link(tmp, path) != 0) {
            if (errno == EEXIST)
                al_errf(e, AL_EEXIST, "%s: already exists (use --force to overwrite)", path);
            else
                al_errno(e, errno, "%s: link", path);
            goto out;
        }
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        al_errno(e, errno, "%s: rename", path);
        goto out;
    }
    if (fsx_fsync_dir(dir, e) < 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

int
fsx_mkdir_p(const char *path, mode_t mode, struct al_err *e)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            int err = errno;
            al_errno(e, err, "%s: mkdir", p);
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        rc = al_errno(e, errno, "%s: mkdir", p);
    free(p);
    return rc;
}

void
fsx_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char *child = fsx_join(path, de->d_name);
                fsx_remove_tree(child);
                free(child);
            }
            closedir(d);
        }
        (void)rmdir(path); /* best effort: cleanup only */
    } else {
        (void)unlink(path); /* best effort: cleanup only */
    }
}

/* Files of 2 MiB or more are mapped at a 2 MiB-aligned address, so that their pages can later
 * be backed by huge pages in place (model.c replaces a model's mapping by such a copy; a huge
 * page can only map an aligned address). An address range is reserved with room to align,
 * the file is mapped over its aligned part and the rest is given back. */
#define MAP_ALIGN ((size_t)2 << 20)

static void *
map_aligned(int fd, size_t size)
{
    if (size < MAP_ALIGN)
        return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    size_t len = (size + page - 1) / page * page;
    if (len > SIZE_MAX - MAP_ALIGN)
        return MAP_FAILED;
    uint8_t *r = mmap(NULL, len + MAP_ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    if (r == MAP_FAILED)
        return MAP_FAILED;
    uint8_t *a = (uint8_t *)(((uintptr_t)r + MAP_ALIGN - 1) & ~(uintptr_t)(MAP_ALIGN - 1));
    void *p = mmap(a, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        munmap(r, len + MAP_ALIGN);
        errno = err;
        return MAP_FAILED;
    }
    if (a > r)
        munmap(r, (size_t)(a - r));
    if (r + len + MAP_ALIGN > a + len)
        munmap(a + len, (size_t)(r + len + MAP_ALIGN - (a + len)));
    return p;
}

int
fsx_map_open(struct fsx_map *m, const char *path, struct al_err *e)
{
    m->fd = -1;
    m->base = NULL;
    m->size = 0;
    int fd = fsx_open_read(path, e);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return al_errno(e, err, "%s: stat", path);
    }
    m->fd = fd;
    m->size = (size_t)st.st_size;
    if (m->size == 0)
        return 0;
    void *p = map_aligned(fd, m->size);
    if (p == MAP_FAILED) {
        int err = errno;
        close(fd);
        m->fd = -1;
        return al_errno(e, err, "%s: mmap", path);
    }
    m->base = p;
    return 0;
}

void
fsx_map_close(struct fsx_map *m)
{
    if (m->base)
        munmap((void *)m->base, m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->base = NULL;
    m->size = 0;
    m->fd = -1;
}
