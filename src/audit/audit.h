/* audit.h -- the hash-chained, append-only audit log (format: docs/formats/audit-log.md).
 * Owns: formatting request records as JSON Lines, the SHA-256 chain (each record's "prev" is
 * the hash of the previous line's exact bytes, newline included), group-committed durable
 * appends, signed checkpoints, and verification of a whole log.
 * Does not own: key material or signature formats. Checkpoints are signed and checked through
 * the callbacks below; audit_sig.h adapts them to transfer/minisig.h.
 * A log handed to audit_verify*() is untrusted input; records given to audit_append() come from
 * the server and are trusted to be what it saw (text fields may still be arbitrary bytes). */
#ifndef AIRLOCK_AUDIT_AUDIT_H
#define AIRLOCK_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_LINE_MAX (16u << 20)         /* longest line the verifier accepts (bytes) */
#define AUDIT_CONTENT_MAX (4u << 20)       /* larger prompt/response text is not logged */

/* Sign msg (the checkpoint statement); returns an owned signature text in *sig_out. */
typedef int (*audit_sign_fn)(void *ctx, const void *msg, size_t len, char **sig_out,
                             struct al_err *e);
/* Check sig_text over msg; 0 when it verifies, -1 with AL_EVERIFY (or AL_EFORMAT) if not. */
typedef int (*audit_check_fn)(void *ctx, const void *msg, size_t len, const char *sig_text,
                              struct al_err *e);

struct audit_options {
    bool content;                /* also log prompt/response text (--audit-content) */
    uint64_t checkpoint_every;   /* records between signed checkpoints; 0 = only at close */
    audit_sign_fn sign;          /* NULL: no checkpoints are written */
    void *sign_ctx;              /* borrowed; must outlive the writer */
};

/* One request as the server saw it. Every pointer is borrowed for the call only. */
struct audit_record {
    const char *key_name;        /* API key name, never the key; NULL when auth is off */
    const char *client;          /* client address, e.g. "127.0.0.1:51234" */
    const char *endpoint;        /* "/v1/chat/completions" */
    const char *model_id;
    const char *model_version;   /* e.g. the model file's SHA-256; NULL if unknown */
    const void *prompt;          /* hashed always; logged as text only with options.content */
    size_t prompt_len;
    const void *response;
    size_t response_len;
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t latency_ms;
    int status;                  /* HTTP status returned */
};

struct audit_writer; /* opaque: one open log, shared by all request threads */

/* Open (create 0600, or continue) the log at path. An existing log continues its chain from
 * the last line; a log whose last line is torn (no newline, or not a record) is refused with
 * AL_EFORMAT until `airlock audit repair` has cut the torn tail off. The file is locked, so a
 * second writer on the same log fails with AL_EEXIST. */
int audit_open(const char *path, const struct audit_options *opt, struct audit_writer **out,
               struct al_err *e);
/* Append one record and return once it is on disk (fdatasync). Thread-safe: concurrent
 * appends are written and synced together by whichever caller is the current leader.
 * seq_out (may be NULL) receives the record's seq. After a write or sync failure the writer
 * refuses every later append (the file may end in a torn line). */
int audit_append(struct audit_writer *w, const struct audit_record *r, uint64_t *seq_out,
                 struct al_err *e);
/* Write a signed checkpoint now (no-op without a signer or with nothing new since the last). */
int audit_checkpoint(struct audit_writer *w, struct al_err *e);
/* Counters since open, for tests and the server's metrics. */
struct audit_stats {
    uint64_t records;      /* request records appended */
    uint64_t checkpoints;  /* checkpoint records appended */
    uint64_t syncs;        /* fdatasync calls: fewer than appends when commits were grouped */
    uint64_t last_seq;     /* seq of the last durable line */
    char head[65];         /* SHA-256 hex of the last line written (chain head) */
};
void audit_stats_get(struct audit_writer *w, struct audit_stats *out);
/* Checkpoint, sync and close; frees w even on failure. Safe on NULL. */
int audit_close(struct audit_writer *w, struct al_err *e);

/* The text a checkpoint signs: "airlock-audit-checkpoint v1\nseq: N\nprev: HEX\n".
 * Returns its length (no NUL counted). */
#define AUDIT_STATEMENT_MAX 160
size_t audit_checkpoint_statement(uint64_t seq, const char *prev_hex,
                                  char out[AUDIT_STATEMENT_MAX]);

/* ---- verification ---- */

enum audit_fault {
    AUDIT_FAULT_NONE = 0,
    AUDIT_FAULT_TORN,          /* last line has no newline or is not a JSON record */
    AUDIT_FAULT_MALFORMED,     /* a line that is not an audit record */
    AUDIT_FAULT_SEQ,           /* seq gap or repeat: records missing or reordered */
    AUDIT_FAULT_HASH,          /* prev does not match the previous line: edited or missing */
    AUDIT_FAULT_SIGNATURE,     /* a checkpoint signature does not verify */
};

struct audit_verify_result {
    uint64_t lines;            /* lines read, including a bad one */
    uint64_t records;          /* request records that passed */
    uint64_t checkpoints;      /* checkpoint records that passed */
    uint64_t signatures;       /* checkpoint signatures verified (only with a checker) */
    uint64_t last_seq;         /* seq of the last good line (0: none) */
    uint64_t signed_seq;       /* seq of the last verified checkpoint (0: none) */
    char head[65];             /* SHA-256 hex of the last good line (genesis if none) */
    enum audit_fault fault;    /* first problem found */
    uint64_t bad_line;         /* 1-based line of the first bad record (0: none) */
    uint64_t bad_seq;          /* its seq when readable (0: unknown) */
    uint64_t good_bytes;       /* bytes up to the end of the last good line */
};

/* Verify a whole log held in memory (the fuzz entry point; audit_verify maps the file).
 * name is used in messages. check may be NULL: then checkpoints are parsed but signatures are
 * not checked. Returns 0 for an intact log; -1 with AL_EVERIFY for a broken chain or a bad
 * signature, AL_EFORMAT for a malformed or torn record, the first problem described in e and
 * res. */
int audit_verify_mem(const char *data, size_t len, const char *name, audit_check_fn check,
                     void *check_ctx, struct audit_verify_result *res, struct al_err *e);
int audit_verify(const char *path, audit_check_fn check, void *check_ctx,
                 struct audit_verify_result *res, struct al_err *e);
/* Stable name of a fault for --json ("torn", "malformed", "seq_gap", "hash_mismatch", ...). */
const char *audit_fault_name(enum audit_fault f);

/* Cut a torn final line off a log whose every earlier line verifies (signatures unchecked).
 * The torn bytes are saved to PATH.torn first. *cut_bytes receives how many were removed
 * (0 if the log was intact). Any other fault is refused: tampering is not repaired. */
int audit_repair(const char *path, uint64_t *cut_bytes, struct al_err *e);

#endif
