/* tar.h -- the bundle's tar container over libarchive (docs/formats/bundle.md).
 * Writer: POSIX pax, regular files only, fixed owner/mode/mtime, each file hashed while it is
 * written, output built under a temp name beside the target and renamed when complete.
 * Reader: pax or ustar only, no compression filters; every entry passes tar_entry_check before
 * the caller sees it: regular files and directories only (no symlinks, hardlinks, devices,
 * fifos, sparse files), relative UTF-8 names without "..", control bytes or over-long parts,
 * no duplicates. The reader never writes to disk: extraction is the caller's job (bundle.c,
 * through openat on a directory fd). Archive bytes are untrusted. */
#ifndef AIRLOCK_TRANSFER_TAR_H
#define AIRLOCK_TRANSFER_TAR_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "crypto/hash.h"
#include "util/err.h"

#define TAR_MAX_ENTRIES 1000000u

struct progress;

/* ===== Writer ============================================================================ */
struct tar_writer {
    void *a;          /* struct archive*, owned */
    int fd;           /* temp output file, owned, -1 when closed */
    char *tmp_path;   /* owned; removed by abort */
    char *final_path; /* owned */
    time_t mtime;     /* stamped on every entry */
    locale_t loc;     /* owned C.UTF-8 locale, made current (this thread only) around archive
                         calls so names are UTF-8 whatever the process locale is */
};

/* Create path's temp sibling; with !force an existing path is AL_EEXIST. */
int tar_writer_open(struct tar_writer *w, const char *path, bool force, time_t mtime,
                    struct al_err *e);
/* Append a regular file read from fd (borrowed) which must hold exactly size bytes; the file
 * is read once and its SHA-256 returned in sha256. */
int tar_writer_add_fd(struct tar_writer *w, const char *name, int fd, uint64_t size,
                      uint8_t sha256[SHA256_LEN], struct progress *prog, struct al_err *e);
/* Append a regular file from memory. */
int tar_writer_add_buf(struct tar_writer *w, const char *name, const void *data, size_t len,
                       struct al_err *e);
/* Finish the archive, fsync, rename into place, fsync the directory. */
int tar_writer_commit(struct tar_writer *w, struct al_err *e);
/* Drop everything written so far (safe after commit or on a zeroed writer). */
void tar_writer_abort(struct tar_writer *w);

/* ===== Reader ============================================================================ */
struct tar_reader {
    void *a;          /* struct archive*, owned */
    const char *what; /* borrowed name for messages */
    char **seen;      /* owned open-addressing set of entry names, cap slots */
    size_t n_seen;
    size_t cap;
    char *path;   /* owned copy of the current entry's checked name */
    locale_t loc; /* owned C.UTF-8 locale, as in tar_writer */
};

struct tar_entry {
    const char *path; /* borrowed from the reader until the next call; relative, no '/' at end */
    bool is_dir;
    uint64_t size; /* bytes of data (0 for directories) */
};

/* fd is borrowed and must stay open until close. */
int tar_reader_open_fd(struct tar_reader *r, int fd, const char *what, struct al_err *e);
int tar_reader_open_memory(struct tar_reader *r, const void *p, size_t n, const char *what,
                           struct al_err *e);
/* 1: *ent filled; 0: end of archive; -1: error or refused entry (AL_EFORMAT / AL_EVERIFY). */
int tar_reader_next(struct tar_reader *r, struct tar_entry *ent, struct al_err *e);
/* Read entry data; returns bytes (0 at the end of the entry) or -1. */
ssize_t tar_reader_read(struct tar_reader *r, void *p, size_t n, struct al_err *e);
/* Read all of the current entry ent (as tar_reader_next just returned it) into one owned,
 * NUL-terminated buffer: *out and its length *len. *out must be NULL on entry: a buffer
 * already filled means the entry appears twice (AL_EFORMAT). An entry whose header says more
 * than max bytes is AL_ELIMIT before anything is read; more data than the header says is
 * AL_EFORMAT. On error *out and *len are unchanged. For the bundle's own small files
 * (manifest, signature, BOM); payloads are streamed with tar_reader_read. */
int tar_reader_slurp(struct tar_reader *r, const struct tar_entry *ent, size_t max, char **out,
                     size_t *len, struct al_err *e);
void tar_reader_close(struct tar_reader *r); /* safe on a zeroed reader */

/* Read a whole in-memory archive through the same checks (fuzz entry point). */
int tar_validate_memory(const void *p, size_t n, struct al_err *e);

#endif
