/* store.h -- the local model store under a data directory: verified bundles imported into
 * content-addressed blobs, one immutable directory per model version (docs/store.md).
 *
 *   DIR/store/blobs/sha256/<hex>            payload file contents, named by their SHA-256, 0444
 *   DIR/store/models/<name>/<version>/      MANIFEST.sha256, MANIFEST.sha256.minisig, BOM.json
 *                                           (the bundle's signed bytes) and record.json
 *   DIR/store/tmp/                          private staging of an import in progress
 *   DIR/store/lock                          flock()ed by an import for its whole duration
 *
 * Import verifies the bundle with transfer/bundle.c (the code `airlock verify` runs), checks
 * the signature again over the exact manifest bytes it stores, then copies each payload file
 * into its blob hashing the bytes written and refuses any that differ from the signed manifest
 * (a file changed after verification is caught). Blobs and the version directory appear only
 * by rename after fsync; identical blobs are shared; a version is never replaced.
 * Does not serve models (server/), has no lifecycle states (staged/promoted) or garbage
 * collection yet. Bundles are untrusted; the store's own files are re-validated when read. */
#ifndef AIRLOCK_STORE_STORE_H
#define AIRLOCK_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/hash.h"
#include "transfer/bundle.h"
#include "util/err.h"

struct progress; /* util/progress.h */

#define STORE_NAME_MAX 128             /* bytes of a model name or version */
#define STORE_RECORD_FILE "record.json"
#define STORE_RECORD_MAX (64u << 20)   /* bytes of a record.json read back */

/* ===== Records =========================================================================== */

struct store_file {
    char *path;                 /* owned, relative to the bundle root ("payload/x.gguf") */
    uint8_t sha256[SHA256_LEN]; /* content hash = blob name */
    char hex[2 * SHA256_LEN + 1]; /* lower-case hex of sha256 */
    uint64_t size;              /* bytes */
    char format[32];            /* safety classifier's format of the blob: "gguf", "json", ... */
};

/* One imported version, as record.json describes it. */
struct store_record {
    char *name;                 /* owned, passed store_name_check */
    char *version;              /* owned, passed store_name_check */
    char signer_key_id[17];     /* minisign key id (16 hex digits); "" when imported unsigned */
    char *trusted_comment;      /* owned signed comment of the bundle; "" when unsigned */
    int64_t imported;           /* unix seconds of the import */
    uint64_t size;              /* sum of payload file sizes */
    struct store_file *files;   /* owned, n_files, manifest order (BOM.json not included) */
    size_t n_files;
    int model;                  /* index of the GGUF to serve in files, -1 when none */
    char *dir;                  /* owned path of the version directory */
    char *model_blob;           /* owned path of the model's blob, NULL when model < 0 */
};

void store_record_free(struct store_record *r); /* safe on a zeroed record */

/* Parse record.json text (len bytes, untrusted: the store's files are re-validated when read)
 * of version `version` of `name`; path names it in errors. Fills every field but dir and
 * model_blob, which depend on where the store is. AL_EFORMAT / AL_EUNSUPPORTED on bad input. */
int store_record_parse(const char *text, size_t len, const char *path, const char *name,
                       const char *version, struct store_record *r, struct al_err *e);

/* ===== Names ============================================================================= */

/* A name or version usable as one path component and in NAME:VERSION: 1..128 bytes of
 * [A-Za-z0-9._+-], starting with a letter or digit (so never "", ".", ".." or hidden).
 * AL_EFORMAT naming `what` otherwise. */
int store_name_check(const char *s, const char *what, struct al_err *e);

/* ===== Import ============================================================================ */

/* Test seam: called once right after bundle_verify passed, before the store reads the bundle
 * again (its manifest, then each file as it is copied). */
typedef void (*store_hook_fn)(void *ud, const char *bundle_path);

struct store_import_opts {
    const char *bundle;      /* bundle directory or .tar (borrowed) */
    const char *trust;       /* minisign public key or directory of *.pub; NULL only with
                                allow_unsigned */
    const char *model_file;  /* payload path of the GGUF to serve when there are several
                                ("payload/x.gguf" or "x.gguf"); NULL = the only one */
    bool allow_unsigned;     /* import a bundle whose signature is not checked */
    bool allow_code, allow_pickle; /* as verify's flags */
    bool progress;           /* draw progress bars (caller decides: TTY and not --json) */
    int threads;             /* verification threads, 0 = online CPUs */
    store_hook_fn after_verify; /* may be NULL */
    void *hook_ud;
};

struct store_import_result {
    struct store_record rec; /* what is now in the store (owned) */
    bool already;            /* the same name+version with the same manifest was there */
    size_t blobs_new;        /* blobs this import wrote */
    size_t blobs_shared;     /* payload files whose blob was already present */
    uint64_t bytes_copied;   /* bytes written into new blobs */
};

void store_import_result_free(struct store_import_result *res); /* safe on zeroed */

/* Import o->bundle into data_dir's store (created when missing). r receives the per-path
 * verification report of bundle_verify. Errors: AL_EVERIFY (signature, hash, unsafe file,
 * bundle changed during import), AL_EFORMAT (not an airlock bundle, unusable name/version),
 * AL_EEXIST (name+version already imported with a different manifest), AL_EUSAGE, AL_EIO.
 * On any error the store holds exactly what it held before. */
int store_import(const char *data_dir, const struct store_import_opts *o,
                 struct store_import_result *res, struct bundle_report *r, struct al_err *e);

/* ===== Reading =========================================================================== */

struct store_list {
    struct store_record *v; /* owned, n entries sorted by name, then newest first */
    size_t n;
};

/* Every imported version. A missing store is an empty list. */
int store_list(const char *data_dir, struct store_list *l, struct al_err *e);
void store_list_free(struct store_list *l); /* safe on zeroed */

/* Split "NAME[:VERSION]" into owned strings (*version NULL when absent); both checked. */
int store_spec_parse(const char *spec, char **name, char **version, struct al_err *e);

/* The record of name at version, or of its newest version (latest import time, ties broken
 * by version order) when version is NULL. AL_ENOTFOUND when absent. */
int store_resolve(const char *data_dir, const char *name, const char *version,
                  struct store_record *out, struct al_err *e);

/* Hash the model blob of r (adding to prog, may be NULL) and compare with its name:
 * AL_EVERIFY when the stored bytes changed since import. */
int store_check_model(const struct store_record *r, struct progress *prog, struct al_err *e);

#endif
