/* bundle.h -- the pack and verify pipelines of signed transfer bundles (docs/formats/bundle.md).
 * A bundle is MANIFEST.sha256 + MANIFEST.sha256.minisig + BOM.json + payload/..., as a
 * directory or one POSIX pax tar. verify also accepts drives prepared without airlock: a
 * directory with a sha256sum manifest signed by minisign or OpenPGP (gpgv), or unsigned when
 * the caller allows it. Verification fills a per-path report; only the CLI prints it.
 * Bundle contents, manifests, signatures and tars are untrusted. */
#ifndef AIRLOCK_TRANSFER_BUNDLE_H
#define AIRLOCK_TRANSFER_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define BUNDLE_MANIFEST "MANIFEST.sha256"
#define BUNDLE_SIG "MANIFEST.sha256.minisig"
#define BUNDLE_BOM "BOM.json"
#define BUNDLE_PAYLOAD "payload"

/* ===== Report ============================================================================ */
struct bundle_file_status {
    char *path;         /* owned, relative to the bundle/drive root */
    const char *status; /* static: "ok" or a failure kind */
};

struct bundle_failure {
    char *path;       /* owned; "" when the failure is not about one file */
    const char *kind; /* static: "signature", "bom", "manifest", "modified", "truncated",
                         "size", "missing", "extra", "renamed", "refused", "code", "pickle",
                         "unreadable" */
    char *message;    /* owned, names the path and what failed */
};

struct bundle_report {
    bool ok;                 /* true only when verification passed (or pack completed) */
    const char *mode;        /* static: "bundle", "bundle-tar", "drive" */
    char *name;              /* owned bundle name, NULL for drives */
    char *version;           /* owned bundle version, NULL for drives */
    char signer_key_id[160]; /* minisign key id, or OpenPGP fingerprint; "" when unsigned */
    char *manifest_path;     /* owned, the manifest used (drives) */
    struct bundle_file_status *files; /* owned, n_files */
    size_t n_files, cap_files;
    struct bundle_failure *failures; /* owned, n_failures */
    size_t n_failures, cap_failures;
    char **warnings; /* owned strings, n_warnings */
    size_t n_warnings, cap_warnings;
    char **notes; /* owned strings, n_notes */
    size_t n_notes, cap_notes;
    uint64_t bytes;        /* payload bytes hashed */
    bool code_allowed;     /* code files were present and let through by --allow-code */
    bool pickle_allowed;   /* pickle files were present and let through by --allow-pickle */
    bool unsigned_allowed; /* nothing vouches for the files (--allow-unsigned) */
};

void bundle_report_init(struct bundle_report *r);
void bundle_report_free(struct bundle_report *r); /* safe on a zeroed report */

/* ===== Pack ============================================================================== */
struct bundle_pack_opts {
    const char *src;        /* source directory (borrowed) */
    const char *out;        /* BUNDLE directory, or a path ending in ".tar" */
    const char *name;       /* bundle name: printable ASCII, no spaces */
    const char *version;    /* bundle version: printable ASCII, no spaces */
    const char *key_path;   /* minisign secret key file */
    const char *passphrase; /* NULL: terminal or AIRLOCK_PASSPHRASE (minisig_seckey_load) */
    const char *license, *source, *creator; /* may be NULL */
    bool force;                             /* replace an existing output */
    bool skip_special; /* skip symlinks/devices/fifos/sockets in src instead of failing */
    bool progress;     /* draw a progress bar (caller decides: TTY and not --json) */
    int threads;       /* 0 = online CPUs */
};
/* Files and warnings (flagged pickle/code, skipped specials) go to r. */
int bundle_pack(const struct bundle_pack_opts *o, struct bundle_report *r, struct al_err *e);

/* ===== Verify ============================================================================ */
struct bundle_verify_opts {
    const char *path;         /* bundle directory, bundle .tar, or drive directory */
    const char *trust;        /* minisign public key file or directory of *.pub; may be NULL */
    const char *trust_gpg;    /* OpenPGP keyring for gpgv; may be NULL */
    const char *manifest;     /* drives: explicit manifest file; may be NULL */
    const char *strip_prefix; /* drives: prefix of absolute manifest paths; may be NULL */
    const char *extract;      /* DEST: stage, verify, rename into place; may be NULL */
    bool allow_unsigned, allow_code, allow_pickle;
    bool progress;
    int threads; /* 0 = online CPUs */
};
/* 0 when everything holds. Verification failures: -1 with AL_EVERIFY and r listing each.
 * Other errors (usage, I/O, malformed tar) return -1 with their own code. */
int bundle_verify(const struct bundle_verify_opts *o, struct bundle_report *r, struct al_err *e);

#endif
