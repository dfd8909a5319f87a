/* audit.c -- hash-chained JSON Lines audit log: group-committed writer, verifier, repair.
 * Format: docs/formats/audit-log.md. Every line is one JSON object ending in '\n'; its "prev"
 * is the SHA-256 of the previous line's exact bytes (newline included), the first line's is
 * 64 zeros. Checkpoint lines carry a signature over the chain head made through a callback.
 * Does not parse signatures or touch keys (audit_sig.c does). Logs being verified or reopened
 * are untrusted: every line is bounded, parsed strictly, and never trusted for sizes. */
#include "audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "crypto/hash.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/xalloc.h"

#define FIELD_MAX 1024 /* bytes kept of a metadata string (client, endpoint, model ...) */

/* ===== Types ============================================================================== */

/* One open log. Request threads call audit_append concurrently; all fields below the mutex
 * are guarded by it. Writing and syncing happen outside the lock, by one leader at a time
 * (flushing), so appends keep formatting into `pending` while a sync is in flight and the
 * next leader commits them all with a single fdatasync. */
struct audit_writer {
    int fd;                    /* O_APPEND, flock'ed; owned; touched only by the leader */
    char *path;                /* owned */
    struct audit_options opt;  /* copied at open; sign_ctx borrowed */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* broadcast when a leader finishes a flush */
    uint64_t next_seq;         /* seq of the next line to format */
    char head[65];             /* SHA-256 hex of the last formatted line */
    struct buf pending;        /* formatted lines not yet handed to a leader */
    uint64_t pending_seq;      /* seq of the last line formatted (in pending or later) */
    uint64_t durable_seq;      /* every line up to this seq is written and synced */
    uint64_t since_checkpoint; /* request records formatted since the last checkpoint */
    bool flushing;             /* a leader is writing outside the lock */
    struct audit_stats stats;  /* counters for audit_stats_get */
    bool failed;               /* sticky: a write, sync or signature failed; no new appends */
    bool io_failed;            /* sticky: a write or sync failed; nothing more is written */
    struct al_err fail;        /* the failure that set `failed` */
};

/* ===== Small helpers ====================================================================== */

static int
sha256_hex(const void *p, size_t n, char out[65], struct al_err *e)
{
    uint8_t d[SHA256_LEN];
    if (hash_sha256(p, n, d, e) < 0)
        return -1;
    hash_hex(d, sizeof d, out);
    return 0;
}

/* RFC 3339 UTC with milliseconds: 2026-11-24T09:15:47.123Z */
static void
time_now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* A metadata string as JSON: null when absent, cut at FIELD_MAX, and a placeholder when the
 * bytes are not UTF-8 (the server may pass client-controlled text; the log must stay JSON). */
static json_t *
json_meta(const char *s)
{
    if (!s)
        return json_null();
    size_t n = strnlen(s, FIELD_MAX);
    json_t *j = json_stringn(s, n);
    return j ? j : json_string("(invalid UTF-8)");
}

static void
content_put(json_t *o, const char *field, const void *p, size_t n)
{
    char key[32];
    if (n > AUDIT_CONTENT_MAX) {
        snprintf(key, sizeof key, "%s_omitted", field);
        json_object_set_new(o, key, json_string("too large"));
        return;
    }
    json_t *j = json_stringn(p ? p : "", n);
    if (j) {
        json_object_set_new(o, field, j);
        return;
    }
    /* not UTF-8: keep the exact bytes, base64-encoded */
    char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, p, (int)n);
    snprintf(key, sizeof key, "%s_base64", field);
    json_object_set_new(o, key, json_string(b64));
    free(b64);
}

static bool
is_lower_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 64;
}

size_t
audit_checkpoint_statement(uint64_t seq, const char *prev_hex, char out[AUDIT_STATEMENT_MAX])
{
    int n = snprintf(out, AUDIT_STATEMENT_MAX, "airlock-audit-checkpoint v1\nseq: %" PRIu64
                     "\nprev: %.64s\n", seq, prev_hex);
    return n < 0 ? 0 : (size_t)n;
}

/* ===== Writer: formatting (caller holds mu for the *_locked functions) ==================== */

/* The record's fields except seq/time/prev, as a compact JSON object "{...}". Built outside
 * the lock because hashing a large prompt is the slow part of an append. */
static char *
record_body(const struct audit_record *r, bool content, struct al_err *e)
{
    char ph[65], rh[65];
    char *out = NULL;
    if (sha256_hex(r->prompt ? r->prompt : "", r->prompt_len, ph, e) < 0 ||
        sha256_hex(r->response ? r->response : "", r->response_len, rh, e) < 0)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("request"));
    json_object_set_new(o, "key", json_meta(r->key_name));
    json_object_set_new(o, "client", json_meta(r->client));
    json_object_set_new(o, "endpoint", json_meta(r->endpoint));
    json_object_set_new(o, "model", json_meta(r->model_id));
    json_object_set_new(o, "model_version", json_meta(r->model_version));
    json_object_set_new(o, "prompt_sha256", json_string(ph));
    json_object_set_new(o, "response_sha256", json_string(rh));
    json_object_set_new(o, "prompt_tokens", json_integer(r->prompt_tokens));
    json_object_set_new(o, "completion_tokens", json_integer(r->completion_tokens));
    json_object_set_new(o, "latency_ms", json_integer(r->latency_ms));
    json_object_set_new(o, "status", json_integer(r->status));
    if (content) {
        content_put(o, "prompt", r->prompt, r->prompt_len);
        content_put(o, "response", r->response, r->response_len);
    }
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!out)
        al_errf(e, AL_EINTERNAL, "audit: cannot encode record as JSON");
    return out;
}

/* Frame body "{...}" as the next line: seq and time first, prev last, then chain it. */
static int
line_add_locked(struct audit_writer *w, const char *body, struct al_err *e)
{
    char tbuf[32];
    size_t blen = strlen(body);
    if (blen < 2 || body[0] != '{' || body[blen - 1] != '}')
        return al_errf(e, AL_EINTERNAL, "audit: record body is not a JSON object");
    time_now_rfc3339(tbuf);
    size_t start = w->pending.len;
    buf_printf(&w->pending, "{\"seq\":%" PRIu64 ",\"time\":\"%s\",", w->next_seq, tbuf);
    buf_append(&w->pending, body + 1, blen - 2);
    buf_printf(&w->pending, ",\"prev\":\"%s\"}\n", w->head);
    if (sha256_hex(w->pending.data + start, w->pending.len - start, w->head, e) < 0) {
        w->pending.len = start;
        return -1;
    }
    w->pending_seq = w->next_seq++;
    return 0;
}

static int
checkpoint_add_locked(struct audit_writer *w, struct al_err *e)
{
    if (!w->opt.sign || w->since_checkpoint == 0)
        return 0;
    char stmt[AUDIT_STATEMENT_MAX];
    size_t n = audit_checkpoint_statement(w->next_seq, w->head, stmt);
    char *sig = NULL;
    char *body = NULL;
    int rc = -1;
    if (w->opt.sign(w->opt.sign_ctx, stmt, n, &sig, e) < 0) {
        al_errctx(e, "%s: signing checkpoint seq %" PRIu64, w->path, w->next_seq);
        goto out;
    }
    json_t *o = json_pack("{s:s,s:s}", "type", "checkpoint", "sig", sig);
    if (o)
        body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!body) {
        al_errf(e, AL_EINTERNAL, "%s: checkpoint signature is not encodable as JSON", w->path);
        goto out;
    }
    if (line_add_locked(w, body, e) < 0)
        goto out;
    w->since_checkpoint = 0;
    w->stats.checkpoints++;
    rc = 0;
out:
    free(body);
    free(sig);
    return rc;
}

static void
fail_set_locked(struct audit_writer *w, const struct al_err *why)
{
    if (!w->failed) {
        w->failed = true;
        w->fail = *why;
    }
}

static int
fail_report(const struct audit_writer *w, struct al_err *e)
{
    return al_errf(e, w->fail.code == AL_OK ? AL_EIO : w->fail.code,
                   "%s: audit log is unusable after an earlier failure (%s)", w->path,
                   w->fail.msg);
}

/* Group commit: return once every line up to seq is written and synced. Whoever finds no
 * flush in progress becomes the leader and commits everything pending, its followers' lines
 * included; the others wait for the broadcast and usually find their seq already durable. */
static int
flush_until_locked(struct audit_writer *w, uint64_t seq, struct al_err *e)
{
    while (w->durable_seq < seq) {
        if (w->io_failed)
            return fail_report(w, e);
        if (w->flushing) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        struct buf batch = w->pending;
        uint64_t last = w->pending_seq;
        buf_init(&w->pending);
        w->flushing = true;
        pthread_mutex_unlock(&w->mu);

        struct al_err we = {0};
        int rc = fsx_write_all(w->fd, batch.data, batch.len, w->path, &we);
        if (rc == 0 && fdatasync(w->fd) != 0)
            rc = al_errno(&we, errno, "%s: fdatasync", w->path);
        buf_free(&batch);

        pthread_mutex_lock(&w->mu);
        w->flushing = false;
        w->stats.syncs++;
        if (rc == 0) {
            w->durable_seq = last;
        } else {
            fail_set_locked(w, &we); /* the file may now end in a torn line */
            w->io_failed = true;
        }
        pthread_cond_broadcast(&w->cv);
    }
    return 0;
}

/* ===== Writer: open, append, close ======================================================== */

/* Find the last line of a non-empty log: it must end in '\n' and be a JSON object with a
 * positive integer seq. Fills the chain head (hash of that line) and the next seq. */
static int
tail_read(struct audit_writer *w, int fd, uint64_t size, struct al_err *e)
{
    int rc = -1;
    size_t want = 65536;
    char *chunk = NULL;
    json_t *j = NULL;
    for (;;) {
        size_t n = size < want ? (size_t)size : want;
        free(chunk);
        chunk = xmalloc(n);
        ssize_t got = pread(fd, chunk, n, (off_t)(size - n));
        if (got != (ssize_t)n) {
            al_errno(e, got < 0 ? errno : EIO, "%s: reading the last record", w->path);
            goto out;
        }
        if (chunk[n - 1] != '\n') {
            al_errf(e, AL_EFORMAT, "%s: torn final record (no newline) at the end of the log; "
                    "check it with 'airlock audit verify' and cut it off with 'airlock audit "
                    "repair' before appending", w->path);
            goto out;
        }
        char *nl = NULL;
        for (size_t i = n - 1; i > 0; i--)
            if (chunk[i - 1] == '\n') {
                nl = chunk + i - 1;
                break;
            }
        if (!nl && n < size) {
            if (want > AUDIT_LINE_MAX) {
                al_errf(e, AL_EFORMAT, "%s: last record is longer than %u bytes", w->path,
                        AUDIT_LINE_MAX);
                goto out;
            }
            want *= 4;
            continue;
        }
        const char *line = nl ? nl + 1 : chunk;
        size_t llen = (size_t)(chunk + n - line);
        json_error_t jerr;
        j = json_loadb(line, llen - 1, JSON_REJECT_DUPLICATES, &jerr);
        json_t *seq = json_object_get(j, "seq");
        if (!json_is_object(j) || !json_is_integer(seq) || json_integer_value(seq) < 1) {
            al_errf(e, AL_EFORMAT, "%s: torn final record (invalid JSON) at the end of the log; "
                    "check it with 'airlock audit verify' and cut it off with 'airlock audit "
                    "repair' before appending", w->path);
            goto out;
        }
        if (sha256_hex(line, llen, w->head, e) < 0)
            goto out;
        w->next_seq = (uint64_t)json_integer_value(seq) + 1;
        w->pending_seq = w->durable_seq = w->next_seq - 1;
        rc = 0;
        goto out;
    }
out:
    json_decref(j);
    free(chunk);
    return rc;
}

int
audit_open(const char *path, const struct audit_options *opt, struct audit_writer **out,
           struct al_err *e)
{
    *out = NULL;
    struct audit_writer *w = xcalloc(1, sizeof *w);
    struct stat st;
    w->fd = -1;
    w->path = xstrdup(path);
    if (opt)
        w->opt = *opt;
    memcpy(w->head, AUDIT_GENESIS, sizeof w->head);
    w->next_seq = 1;
    buf_init(&w->pending);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);

    w->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        if (errno == ELOOP)
            al_errf(e, AL_EVERIFY, "%s: is a symbolic link; refusing to follow it", path);
        else
            al_errno(e, errno, "%s: open audit log", path);
        goto fail;
    }
    if (fstat(w->fd, &st) != 0) {
        al_errno(e, errno, "%s: stat", path);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        al_errf(e, AL_EFORMAT, "%s: not a regular file", path);
        goto fail;
    }
    if (flock(w->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            al_errf(e, AL_EEXIST, "%s: audit log is in use by another writer", path);
        else
            al_errno(e, errno, "%s: lock", path);
        goto fail;
    }
    if (st.st_size == 0) {
        /* a new file: make its directory entry durable before the first acknowledgement */
        char *dir = fsx_dirname(path);
        int rc = fsx_fsync_dir(dir, e);
        free(dir);
        if (rc < 0)
            goto fail;
    } else if (tail_read(w, w->fd, (uint64_t)st.st_size, e) < 0) {
        goto fail;
    }
    *out = w;
    return 0;
fail:
    if (w->fd >= 0)
        close(w->fd);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    buf_free(&w->pending);
    free(w->path);
    free(w);
    return -1;
}

int
audit_append(struct audit_writer *w, const struct audit_record *r, uint64_t *seq_out,
             struct al_err *e)
{
    int rc = -1;
    char *body = record_body(r, w->opt.content, e);
    if (!body)
        return -1;
    pthread_mutex_lock(&w->mu);
    if (w->failed) {
        fail_report(w, e);
        goto out;
    }
    if (line_add_locked(w, body, e) < 0)
        goto out;
    uint64_t seq = w->pending_seq;
    w->since_checkpoint++;
    w->stats.records++;
    if (w->opt.checkpoint_every && w->since_checkpoint >= w->opt.checkpoint_every) {
        struct al_err ce = {0};
        if (checkpoint_add_locked(w, &ce) < 0)
            fail_set_locked(w, &ce); /* fail closed: later appends are refused */
    }
    /* wait through any checkpoint just added too, so it is never left unsynced */
    if (flush_until_locked(w, w->pending_seq, e) < 0 && w->durable_seq < seq)
        goto out;
    if (seq_out)
        *seq_out = seq;
    rc = 0;
out:
    pthread_mutex_unlock(&w->mu);
    free(body);
    return rc;
}

int
audit_checkpoint(struct audit_writer *w, struct al_err *e)
{
    int rc = -1;
    pthread_mutex_lock(&w->mu);
    if (w->failed) {
        fail_report(w, e);
        goto out;
    }
    if (checkpoint_add_locked(w, e) < 0 || flush_until_locked(w, w->pending_seq, e) < 0)
        goto out;
    rc = 0;
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void
audit_stats_get(struct audit_writer *w, struct audit_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->last_seq = w->durable_seq;
    memcpy(out->head, w->head, sizeof out->head);
    pthread_mutex_unlock(&w->mu);
}

int
audit_close(struct audit_writer *w, struct al_err *e)
{
    if (!w)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (!w->failed)
        rc = checkpoint_add_locked(w, e);
    if (rc == 0)
        rc = flush_until_locked(w, w->pending_seq, e);
    pthread_mutex_unlock(&w->mu);
    if (w->fd >= 0) {
        if (rc == 0 && fsync(w->fd) != 0)
            rc = al_errno(e, errno, "%s: fsync", w->path);
        close(w->fd);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    buf_free(&w->pending);
    free(w->path);
    free(w);
    return rc;
}

/* ===== Verification ======================================================================= */

const char *
audit_fault_name(enum audit_fault f)
{
    switch (f) {
    case AUDIT_FAULT_NONE: return "none";
    case AUDIT_FAULT_TORN: return "torn";
    case AUDIT_FAULT_MALFORMED: return "malformed";
    case AUDIT_FAULT_SEQ: return "seq_gap";
    case AUDIT_FAULT_HASH: return "hash_mismatch";
    case AUDIT_FAULT_SIGNATURE: return "bad_signature";
    }
    return "unknown";
}

__attribute__((format(printf, 6, 7))) static int
fault(struct audit_verify_result *res, enum audit_fault f, uint64_t line, uint64_t seq,
      struct al_err *e, const char *fmt, ...)
{
    char msg[AL_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    res->fault = f;
    res->bad_line = line;
    res->bad_seq = seq;
    enum al_code code = (f == AUDIT_FAULT_TORN || f == AUDIT_FAULT_MALFORMED) ? AL_EFORMAT
                                                                              : AL_EVERIFY;
    return al_errf(e, code, "%s", msg);
}

int
audit_verify_mem(const char *data, size_t len, const char *name, audit_check_fn check,
                 void *check_ctx, struct audit_verify_result *res, struct al_err *e)
{
    memset(res, 0, sizeof *res);
    memcpy(res->head, AUDIT_GENESIS, sizeof res->head);
    uint64_t expect = 1;
    size_t pos = 0;
    int rc = -1;
    json_t *j = NULL;
    while (pos < len) {
        uint64_t lineno = ++res->lines;
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        if (!nl) {
            fault(res, AUDIT_FAULT_TORN, lineno, 0, e,
                  "%s: line %" PRIu64 ": torn final record (no newline)", name, lineno);
            goto out;
        }
        size_t llen = (size_t)(nl - line);
        bool last = (size_t)(nl + 1 - data) == len;
        if (llen > AUDIT_LINE_MAX) {
            fault(res, AUDIT_FAULT_MALFORMED, lineno, 0, e,
                  "%s: line %" PRIu64 ": %zu bytes, limit %u", name, lineno, llen,
                  AUDIT_LINE_MAX);
            goto out;
        }
        json_error_t jerr;
        json_decref(j);
        j = json_loadb(line, llen, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j)) {
            if (last)
                fault(res, AUDIT_FAULT_TORN, lineno, 0, e,
                      "%s: line %" PRIu64 ": torn final record (invalid JSON)", name, lineno);
            else
                fault(res, AUDIT_FAULT_MALFORMED, lineno, 0, e,
                      "%s: line %" PRIu64 ": not a JSON object (%s at column %d)", name,
                      lineno, j ? "not an object" : jerr.text, jerr.column);
            goto out;
        }
        json_t *jseq = json_object_get(j, "seq");
        const char *type = json_string_value(json_object_get(j, "type"));
        const char *prev = json_string_value(json_object_get(j, "prev"));
        if (!json_is_integer(jseq) || json_integer_value(jseq) < 1) {
            fault(res, AUDIT_FAULT_MALFORMED, lineno, 0, e,
                  "%s: line %" PRIu64 ": field \"seq\" missing or not a positive integer", name,
                  lineno);
            goto out;
        }
        uint64_t seq = (uint64_t)json_integer_value(jseq);
        if (!type || (strcmp(type, "request") != 0 && strcmp(type, "checkpoint") != 0)) {
            fault(res, AUDIT_FAULT_MALFORMED, lineno, seq, e,
                  "%s: line %" PRIu64 " (seq %" PRIu64 "): field \"type\" missing or not "
                  "\"request\"/\"checkpoint\"", name, lineno, seq);
            goto out;
        }
        if (!prev || !is_lower_hex64(prev)) {
            fault(res, AUDIT_FAULT_MALFORMED, lineno, seq, e,
                  "%s: line %" PRIu64 " (seq %" PRIu64 "): field \"prev\" missing or not 64 "
                  "lower-case hex digits", name, lineno, seq);
            goto out;
        }
        if (!json_is_string(json_object_get(j, "time"))) {
            fault(res, AUDIT_FAULT_MALFORMED, lineno, seq, e,
                  "%s: line %" PRIu64 " (seq %" PRIu64 "): field \"time\" missing", name,
                  lineno, seq);
            goto out;
        }
        if (seq != expect) {
            fault(res, AUDIT_FAULT_SEQ, lineno, seq, e,
                  "%s: line %" PRIu64 " (seq %" PRIu64 "): expected seq %" PRIu64 ": %s", name,
                  lineno, seq, expect,
                  seq > expect ? "records are missing or reordered"
                                   : "records are repeated or reordered");
            goto out;
        }
        if (strcmp(prev, res->head) != 0) {
            if (lineno == 1)
                fault(res, AUDIT_FAULT_HASH, 1, seq, e,
                      "%s: line 1 (seq %" PRIu64 "): prev is not the genesis value: the log "
                      "does not start at its first record", name, seq);
            else
                fault(res, AUDIT_FAULT_HASH, lineno - 1, seq - 1, e,
                      "%s: line %" PRIu64 " (seq %" PRIu64 "): record was modified: its "
                      "SHA-256 %.16s... does not match the prev %.16s... of line %" PRIu64
                      " (seq %" PRIu64 ")", name, lineno - 1, seq - 1, res->head, prev,
                      lineno, seq);
            goto out;
        }
        if (strcmp(type, "checkpoint") == 0) {
            const char *sig = json_string_value(json_object_get(j, "sig"));
            if (!sig) {
                fault(res, AUDIT_FAULT_MALFORMED, lineno, seq, e,
                      "%s: line %" PRIu64 " (seq %" PRIu64 "): checkpoint without \"sig\"",
                      name, lineno, seq);
                goto out;
            }
            if (check) {
                char stmt[AUDIT_STATEMENT_MAX];
                size_t n = audit_checkpoint_statement(seq, prev, stmt);
                struct al_err ce = {0};
                if (check(check_ctx, stmt, n, sig, &ce) < 0) {
                    fault(res, AUDIT_FAULT_SIGNATURE, lineno, seq, e,
                          "%s: line %" PRIu64 " (seq %" PRIu64 "): bad checkpoint signature: %s",
                          name, lineno, seq, ce.msg);
                    goto out;
                }
                res->signatures++;
                res->signed_seq = seq;
            }
            res->checkpoints++;
        } else {
            res->records++;
        }
        if (sha256_hex(line, llen + 1, res->head, e) < 0)
            goto out;
        res->last_seq = seq;
        res->good_bytes = (uint64_t)(nl + 1 - data);
        expect++;
        pos = (size_t)(nl + 1 - data);
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int
audit_verify(const char *path, audit_check_fn check, void *check_ctx,
             struct audit_verify_result *res, struct al_err *e)
{
    struct fsx_map m = {.fd = -1};
    memset(res, 0, sizeof *res);
    memcpy(res->head, AUDIT_GENESIS, sizeof res->head);
    if (fsx_map_open(&m, path, e) < 0)
        return -1;
    int rc = audit_verify_mem((const char *)m.base, m.size, path, check, check_ctx, res, e);
    fsx_map_close(&m);
    return rc;
}

/* ===== Repair ============================================================================= */

int
audit_repair(const char *path, uint64_t *cut_bytes, struct al_err *e)
{
    struct fsx_map m = {.fd = -1};
    struct audit_verify_result res;
    struct al_err ve = {0};
    char *torn_path = NULL;
    int fd = -1;
    int rc = -1;
    *cut_bytes = 0;
    fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        al_errno(e, errno, "%s: open", path);
        goto out;
    }
    /* hold the writer lock so a running server cannot append while we cut */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        al_errf(e, AL_EEXIST, "%s: audit log is in use by a writer; stop it first", path);
        goto out;
    }
    if (fsx_map_open(&m, path, e) < 0)
        goto out;
    if (audit_verify_mem((const char *)m.base, m.size, path, NULL, NULL, &res, &ve) == 0) {
        rc = 0;
        goto out;
    }
    if (res.fault != AUDIT_FAULT_TORN) {
        *e = ve;
        al_errctx(e, "not repairing (only a torn final record is repaired)");
        goto out;
    }
    torn_path = xasprintf("%s.torn", path);
    if (fsx_write_atomic(torn_path, m.base + res.good_bytes, m.size - res.good_bytes, 0600, 0,
                         e) < 0)
        goto out;
    if (ftruncate(fd, (off_t)res.good_bytes) != 0 || fsync(fd) != 0) {
        al_errno(e, errno, "%s: truncate to %" PRIu64 " bytes", path, res.good_bytes);
        goto out;
    }
    *cut_bytes = m.size - res.good_bytes;
    rc = 0;
out:
    fsx_map_close(&m);
    free(torn_path);
    if (fd >= 0)
        close(fd);
    return rc;
}
