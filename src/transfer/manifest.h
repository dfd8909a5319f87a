/* manifest.h -- sha256sum-format manifests (docs/formats/manifest.md): strict parse of the text
 * ("HASH  path") and binary ("HASH *path") forms, escaped lines ('\' first, as GNU sha256sum
 * writes names holding '\\', '\n' or '\r'), path normalisation (relative, or absolute under a
 * --strip-prefix), canonical sorted write, and a scan of a directory tree to compare against.
 * Does not hash (crypto/hash.c) and does not judge signatures (transfer/minisig.c, pgp.c).
 * Manifest text and directory contents are untrusted. */
#ifndef AIRLOCK_TRANSFER_MANIFEST_H
#define AIRLOCK_TRANSFER_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/hash.h"
#include "util/err.h"

#define MANIFEST_MAX_BYTES (64u << 20) /* largest manifest file read */
#define MANIFEST_MAX_ENTRIES 1000000u  /* lines */
#define MANIFEST_PATH_MAX 4096u        /* bytes of one path */
#define MANIFEST_NAME_MAX 255u         /* bytes of one path component */

struct manifest_entry {
    char *path;                 /* owned; unescaped bytes, NUL-terminated */
    uint8_t sha256[SHA256_LEN]; /* expected digest */
    bool binary;                /* written with the ' *' marker */
    size_t line;                /* 1-based line in the source text; 0 when built in memory */
};

struct manifest {
    struct manifest_entry *v; /* owned array of n entries (cap allocated) */
    size_t n;
    size_t cap;
};

void manifest_init(struct manifest *m);
void manifest_free(struct manifest *m); /* safe on a zeroed manifest */

/* Parse sha256sum output. `what` names the source in messages. Lines must be exactly
 * 64 hex digits, ' ', ' ' or '*', a non-empty path, '\n' (the last newline may be missing).
 * Paths are not checked here (see manifest_normalize). */
int manifest_parse(const char *text, size_t len, const char *what, struct manifest *m,
                   struct al_err *e);

/* Check every path and make it relative: an absolute path must start with strip_prefix
 * (may be NULL) followed by '/', which is removed; "./" is dropped. Refuses absolute paths
 * left over, empty/"."/".." components, over-long names, control characters and duplicates.
 * Sorts the entries bytewise by path. */
int manifest_normalize(struct manifest *m, const char *strip_prefix, const char *what,
                       struct al_err *e);

/* Is rel a safe relative path (no '/', "..", ".", empty component, control byte, invalid
 * UTF-8, over-long name)? Fills e naming `what` and the path on failure. */
int manifest_path_check(const char *rel, size_t len, const char *what, struct al_err *e);

/* Make untrusted text safe to show in a message or JSON: in place, every control byte and
 * every byte of an invalid UTF-8 sequence becomes '?'. */
void manifest_text_sanitize(char *s);

/* Add an entry (path copied). */
void manifest_add(struct manifest *m, const char *path, const uint8_t sha256[SHA256_LEN]);
/* Sort bytewise by path. */
void manifest_sort(struct manifest *m);
/* Binary search in a sorted manifest; NULL when absent. */
const struct manifest_entry *manifest_find(const struct manifest *m, const char *path);
/* Canonical text: sorted order as stored, text markers, escaped lines where needed.
 * Returns owned text. */
char *manifest_format(const struct manifest *m);

/* ===== Directory scan ======================================================================
 * Walks root without following links. Regular files go to files (relative paths, sorted);
 * anything else (symlink, device, fifo, socket) goes to specials with its kind. */
struct manifest_scan_item {
    char *path;       /* owned, relative to root */
    const char *kind; /* static: "regular file", "symbolic link", "device", "fifo", "socket" */
    uint64_t size;    /* bytes (regular files) */
    uint64_t nlink;   /* link count (a regular file with >1 is a hard link) */
};
struct manifest_scan {
    struct manifest_scan_item *files; /* owned, n_files */
    size_t n_files;
    struct manifest_scan_item *specials; /* owned, n_specials */
    size_t n_specials;
};
int manifest_scan_dir(const char *root, struct manifest_scan *s, struct al_err *e);
void manifest_scan_free(struct manifest_scan *s);

#endif
