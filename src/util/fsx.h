/* fsx.h -- file-system helpers that never leave half-written files and never follow links
 * where that would let input escape. Writers go through a temp file in the destination
 * directory, fsync, rename, then fsync the directory. */
#ifndef AIRLOCK_UTIL_FSX_H
#define AIRLOCK_UTIL_FSX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* open(path, O_RDONLY|O_NOFOLLOW|O_CLOEXEC); refuses anything but a regular file. */
int fsx_open_read(const char *path, struct al_err *e);
/* Read a whole regular file of at most max bytes into an owned, NUL-terminated buffer. */
int fsx_read_file(const char *path, size_t max, char **out, size_t *out_len, struct al_err *e);
/* Atomically replace (or create) path with data: temp file, fsync, rename, fsync dir.
 * mode is applied to the new file. With excl, fails with AL_EEXIST if path exists. */
int fsx_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int excl,
                     struct al_err *e);
/* fsync the directory containing path (or path itself if it is a directory). */
int fsx_fsync_dir(const char *dirpath, struct al_err *e);
/* write all bytes, retrying on EINTR/short writes. */
int fsx_write_all(int fd, const void *p, size_t n, const char *what, struct al_err *e);
/* mkdir -p with mode; existing directories are fine. */
int fsx_mkdir_p(const char *path, mode_t mode, struct al_err *e);
/* rm -rf without following symlinks (used to clean up our own temp dirs). Best effort. */
void fsx_remove_tree(const char *path);
/* Directory part of path in an owned string ("." when none). */
char *fsx_dirname(const char *path);
/* Join a and b with one '/', owned. */
char *fsx_join(const char *a, const char *b);

/* Read-only mapping of a whole regular file (empty files map to base == NULL, size 0). */
struct fsx_map {
    int fd;              /* owned, -1 when closed */
    const uint8_t *base; /* mapping, NULL for an empty file */
    size_t size;         /* file size in bytes */
};
int fsx_map_open(struct fsx_map *m, const char *path, struct al_err *e);
void fsx_map_close(struct fsx_map *m); /* safe on a zeroed or closed map */

#endif
