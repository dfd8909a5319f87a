/* test_audit.c -- audit log: chain continuity, group commit under threads, and every fault
 * the verifier must name (edited, missing, reordered, torn, malformed, bad signature).
 * Signing uses a fake keyed-hash callback so the chain logic is tested apart from minisign. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_sig.h"
#include "crypto/hash.h"
#include "transfer/minisig.h"
#include "util/fsx.h"
#include "util/xalloc.h"

struct fixture {
    char dir[64];
    char *log;
};

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_audit.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->log = fsx_join(f->dir, "audit.jsonl");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    fsx_remove_tree(f->dir);
    free(f->log);
    free(f);
    return 0;
}

/* fake signer: "fake:" + sha256(secret || msg); the checker recomputes it */
static int
fake_sign(void *ctx, const void *msg, size_t len, char **sig_out, struct al_err *e)
{
    const char *secret = ctx;
    char *buf = xmalloc(strlen(secret) + len);
    memcpy(buf, secret, strlen(secret));
    memcpy(buf + strlen(secret), msg, len);
    uint8_t d[32];
    char hex[65];
    int rc = hash_sha256(buf, strlen(secret) + len, d, e);
    free(buf);
    if (rc < 0)
        return -1;
    hash_hex(d, 32, hex);
    *sig_out = xasprintf("fake:%s", hex);
    return 0;
}

static int
fake_check(void *ctx, const void *msg, size_t len, const char *sig_text, struct al_err *e)
{
    char *want = NULL;
    if (fake_sign(ctx, msg, len, &want, e) < 0)
        return -1;
    int ok = strcmp(want, sig_text) == 0;
    free(want);
    return ok ? 0 : al_errf(e, AL_EVERIFY, "signature does not match");
}

static void
record_fill(struct audit_record *r, int i, char *prompt, size_t cap)
{
    snprintf(prompt, cap, "prompt number %d", i);
    memset(r, 0, sizeof *r);
    r->key_name = "alice";
    r->client = "127.0.0.1:5000";
    r->endpoint = "/v1/chat/completions";
    r->model_id = "tiny";
    r->model_version = "abc";
    r->prompt = prompt;
    r->prompt_len = strlen(prompt);
    r->response = "hello";
    r->response_len = 5;
    r->prompt_tokens = 7;
    r->completion_tokens = 1;
    r->latency_ms = 12;
    r->status = 200;
}

static void
log_write(const char *path, int n, const struct audit_options *opt)
{
    struct audit_writer *w = NULL;
    struct al_err e = {0};
    assert_int_equal(audit_open(path, opt, &w, &e), 0);
    for (int i = 0; i < n; i++) {
        struct audit_record r;
        char p[64];
        record_fill(&r, i, p, sizeof p);
        assert_int_equal(audit_append(w, &r, NULL, &e), 0);
    }
    assert_int_equal(audit_close(w, &e), 0);
}

/* read the log, let fn rewrite it in memory, write it back */
static char *
log_read(const char *path, size_t *len)
{
    char *data = NULL;
    struct al_err e = {0};
    assert_int_equal(fsx_read_file(path, 1 << 24, &data, len, &e), 0);
    return data;
}

static void
log_put(const char *path, const char *data, size_t len)
{
    struct al_err e = {0};
    assert_int_equal(fsx_write_atomic(path, data, len, 0600, 0, &e), 0);
}

/* start of line n (1-based) */
static char *
line_at(char *data, int n)
{
    char *p = data;
    for (int i = 1; i < n; i++)
        p = strchr(p, '\n') + 1;
    return p;
}

static int
verify(const char *path, struct audit_verify_result *res, struct al_err *e)
{
    return audit_verify(path, NULL, NULL, res, e);
}

static void
audit_intact_log_verifies_and_reopen_continues_chain(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_write(f->log, 5, NULL);
    log_write(f->log, 3, NULL);
    assert_int_equal(verify(f->log, &res, &e), 0);
    assert_int_equal(res.records, 8);
    assert_int_equal(res.last_seq, 8);
    assert_int_equal(res.fault, AUDIT_FAULT_NONE);
    size_t len;
    char *d = log_read(f->log, &len);
    assert_non_null(strstr(d, "\"seq\":1,\"time\":\""));
    assert_non_null(strstr(d, "\"prev\":\"" AUDIT_GENESIS "\"}\n"));
    assert_null(strstr(d, "prompt number")); /* text is never logged without content */
    assert_non_null(strstr(d, "\"key\":\"alice\""));
    free(d);
}

static void
audit_empty_log_verifies(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_put(f->log, "", 0);
    assert_int_equal(verify(f->log, &res, &e), 0);
    assert_int_equal(res.lines, 0);
}

static void
audit_content_logging_adds_text(void **state)
{
    struct fixture *f = *state;
    struct audit_options opt = {.content = true};
    log_write(f->log, 1, &opt);
    size_t len;
    char *d = log_read(f->log, &len);
    assert_non_null(strstr(d, "\"prompt\":\"prompt number 0\""));
    assert_non_null(strstr(d, "\"response\":\"hello\""));
    free(d);
}

static void
audit_edited_record_is_named(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_write(f->log, 5, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    char *l3 = line_at(d, 3);
    char *tok = strstr(l3, "\"status\":200");
    tok[10] = '4'; /* 200 -> 400, still valid JSON */
    log_put(f->log, d, len);
    free(d);
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(e.code, AL_EVERIFY);
    assert_int_equal(res.fault, AUDIT_FAULT_HASH);
    assert_int_equal(res.bad_line, 3);
    assert_int_equal(res.bad_seq, 3);
    assert_non_null(strstr(e.msg, "line 3 (seq 3): record was modified"));
}

static void
audit_missing_record_is_named(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_write(f->log, 5, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    char *l2 = line_at(d, 2), *l3 = line_at(d, 3);
    memmove(l2, l3, len - (size_t)(l3 - d));
    log_put(f->log, d, len - (size_t)(l3 - l2));
    free(d);
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_SEQ);
    assert_int_equal(res.bad_line, 2);
    assert_int_equal(res.bad_seq, 3);
    assert_non_null(strstr(e.msg, "records are missing"));
}

static void
audit_reordered_records_are_named(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_write(f->log, 4, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    char *l2 = line_at(d, 2), *l3 = line_at(d, 3), *l4 = line_at(d, 4);
    size_t n2 = (size_t)(l3 - l2), n3 = (size_t)(l4 - l3);
    char *tmp = xmalloc(n2 + n3);
    memcpy(tmp, l3, n3);
    memcpy(tmp + n3, l2, n2);
    memcpy(l2, tmp, n2 + n3);
    free(tmp);
    log_put(f->log, d, len);
    free(d);
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_SEQ);
    assert_int_equal(res.bad_line, 2);
    assert_int_equal(res.bad_seq, 3);
}

static void
audit_dropped_head_is_not_genesis(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_write(f->log, 3, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    /* renumber nothing: dropping line 1 leaves seq 2 first -> seq fault on line 1 */
    char *l2 = line_at(d, 2);
    log_put(f->log, l2, len - (size_t)(l2 - d));
    free(d);
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_SEQ);
    assert_int_equal(res.bad_line, 1);
}

static void
audit_forged_first_prev_is_named(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    log_write(f->log, 2, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    char *p = strstr(d, AUDIT_GENESIS);
    p[0] = '1';
    log_put(f->log, d, len);
    free(d);
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_HASH);
    assert_int_equal(res.bad_line, 1);
    assert_non_null(strstr(e.msg, "genesis"));
}

static void
audit_torn_last_line_reported_refused_and_repaired(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    struct audit_writer *w = NULL;
    log_write(f->log, 3, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    log_put(f->log, d, len - 20); /* cut in the middle of line 3 */
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_int_equal(res.fault, AUDIT_FAULT_TORN);
    assert_int_equal(res.bad_line, 3);
    assert_non_null(strstr(e.msg, "line 3: torn final record (no newline)"));
    assert_int_equal(res.records, 2);

    assert_int_equal(audit_open(f->log, NULL, &w, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_non_null(strstr(e.msg, "torn final record"));

    /* a crash can also leave a newline-terminated line of zeros/garbage */
    char *garbage = xmalloc(len - 20 + 8);
    memcpy(garbage, d, len - 20);
    memcpy(garbage + len - 20, "\0\0\0\0\n", 5);
    log_put(f->log, garbage, len - 20 + 5);
    free(garbage);
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_TORN);
    assert_non_null(strstr(e.msg, "torn final record (invalid JSON)"));
    assert_int_equal(audit_open(f->log, NULL, &w, &e), -1);

    uint64_t cut = 0;
    assert_int_equal(audit_repair(f->log, &cut, &e), 0);
    assert_true(cut > 0);
    assert_int_equal(verify(f->log, &res, &e), 0);
    assert_int_equal(res.records, 2);
    log_write(f->log, 2, NULL); /* chain continues from seq 2 */
    assert_int_equal(verify(f->log, &res, &e), 0);
    assert_int_equal(res.last_seq, 4);
    char *torn = xasprintf("%s.torn", f->log);
    assert_int_equal(access(torn, F_OK), 0);
    free(torn);
    free(d);
}

static void
audit_repair_refuses_tampering(void **state)
{
    struct fixture *f = *state;
    struct al_err e = {0};
    log_write(f->log, 3, NULL);
    size_t len;
    char *d = log_read(f->log, &len);
    line_at(d, 2)[strlen("{\"seq\":")] = '7';
    log_put(f->log, d, len);
    free(d);
    uint64_t cut = 0;
    assert_int_equal(audit_repair(f->log, &cut, &e), -1);
    assert_non_null(strstr(e.msg, "not repairing"));
    assert_int_equal(cut, 0);
}

static void
audit_malformed_middle_line_is_named(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    const char *text = "{\"seq\":1,\"time\":\"t\",\"type\":\"request\",\"prev\":\"" AUDIT_GENESIS
                       "\"}\nnot json\n{}\n";
    log_put(f->log, text, strlen(text));
    assert_int_equal(verify(f->log, &res, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_int_equal(res.fault, AUDIT_FAULT_MALFORMED);
    assert_int_equal(res.bad_line, 2);

    const char *dup = "{\"seq\":1,\"seq\":1}\n{}\n";
    assert_int_equal(audit_verify_mem(dup, strlen(dup), "x", NULL, NULL, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_MALFORMED);
    const char *noprev = "{\"seq\":1,\"time\":\"t\",\"type\":\"request\"}\n";
    assert_int_equal(audit_verify_mem(noprev, strlen(noprev), "x", NULL, NULL, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_MALFORMED);
    assert_non_null(strstr(e.msg, "\"prev\""));
}

static void
audit_checkpoints_sign_and_bad_signature_is_named(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    char secret[] = "s3cret";
    struct audit_options opt = {.checkpoint_every = 3, .sign = fake_sign, .sign_ctx = secret};
    log_write(f->log, 7, &opt);
    /* 3 records, cp, 3 records, cp, 1 record, cp at close */
    assert_int_equal(audit_verify(f->log, fake_check, secret, &res, &e), 0);
    assert_int_equal(res.records, 7);
    assert_int_equal(res.checkpoints, 3);
    assert_int_equal(res.signatures, 3);
    assert_int_equal(res.signed_seq, 10);
    assert_int_equal(res.last_seq, 10);

    char other[] = "other";
    assert_int_equal(audit_verify(f->log, fake_check, other, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_SIGNATURE);
    assert_int_equal(res.bad_line, 4);
    assert_int_equal(res.bad_seq, 4);
    assert_non_null(strstr(e.msg, "line 4 (seq 4): bad checkpoint signature"));
    /* without a checker the signatures are not checked */
    assert_int_equal(audit_verify(f->log, NULL, NULL, &res, &e), 0);
    assert_int_equal(res.signatures, 0);
}

static void
audit_minisign_checkpoints_verify_with_the_right_key_only(void **state)
{
    struct fixture *f = *state;
    struct audit_verify_result res;
    struct al_err e = {0};
    char *pub = fsx_join(f->dir, "k.pub"), *sec = fsx_join(f->dir, "k.key");
    char *pub2 = fsx_join(f->dir, "o.pub"), *sec2 = fsx_join(f->dir, "o.key");
    struct minisig_seckey *sk = NULL;
    struct minisig_trust good = {0}, bad = {0};
    assert_int_equal(minisig_keygen(pub, sec, NULL, false, false, &e), 0);
    assert_int_equal(minisig_keygen(pub2, sec2, NULL, false, false, &e), 0);
    assert_int_equal(minisig_seckey_load(sec, NULL, &sk, &e), 0);
    struct audit_options opt = {.checkpoint_every = 2, .sign = audit_sig_sign, .sign_ctx = sk};
    log_write(f->log, 4, &opt);
    assert_int_equal(minisig_trust_load(pub, &good, &e), 0);
    assert_int_equal(minisig_trust_load(pub2, &bad, &e), 0);
    assert_int_equal(audit_verify(f->log, audit_sig_check, &good, &res, &e), 0);
    assert_int_equal(res.signatures, 2);
    assert_int_equal(audit_verify(f->log, audit_sig_check, &bad, &res, &e), -1);
    assert_int_equal(res.fault, AUDIT_FAULT_SIGNATURE);
    assert_int_equal(res.bad_line, 3);
    minisig_trust_free(&good);
    minisig_trust_free(&bad);
    minisig_seckey_free(sk);
    free(pub);
    free(sec);
    free(pub2);
    free(sec2);
}

static void
audit_second_writer_is_refused(void **state)
{
    struct fixture *f = *state;
    struct al_err e = {0};
    struct audit_writer *w1 = NULL, *w2 = NULL;
    assert_int_equal(audit_open(f->log, NULL, &w1, &e), 0);
    assert_int_equal(audit_open(f->log, NULL, &w2, &e), -1);
    assert_int_equal(e.code, AL_EEXIST);
    assert_int_equal(audit_close(w1, &e), 0);
}

struct thread_arg {
    struct audit_writer *w;
    int n;
    int fails;
    uint64_t max_seq;
};

static void *
appender(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        struct audit_record r;
        char prompt[64];
        struct al_err e = {0};
        uint64_t seq = 0;
        record_fill(&r, i, prompt, sizeof prompt);
        if (audit_append(a->w, &r, &seq, &e) < 0)
            a->fails++;
        if (seq > a->max_seq)
            a->max_seq = seq;
    }
    return NULL;
}

static void
audit_concurrent_appends_share_syncs_and_stay_chained(void **state)
{
    struct fixture *f = *state;
    struct al_err e = {0};
    struct audit_writer *w = NULL;
    struct audit_verify_result res;
    char secret[] = "k";
    struct audit_options opt = {.checkpoint_every = 50, .sign = fake_sign, .sign_ctx = secret};
    enum { T = 8, N = 100 };
    pthread_t th[T];
    struct thread_arg args[T];
    assert_int_equal(audit_open(f->log, &opt, &w, &e), 0);
    for (int i = 0; i < T; i++) {
        args[i] = (struct thread_arg){.w = w, .n = N};
        assert_int_equal(pthread_create(&th[i], NULL, appender, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].fails, 0);
    }
    struct audit_stats st;
    audit_stats_get(w, &st);
    assert_int_equal(st.records, T * N);
    assert_int_equal(st.checkpoints, T * N / 50);
    assert_int_equal(st.last_seq, T * N + T * N / 50);
    print_message("group commit: %d appends, %llu fdatasync calls\n", T * N,
                  (unsigned long long)st.syncs);
    assert_true(st.syncs < (uint64_t)T * N); /* commits were shared */
    assert_int_equal(audit_close(w, &e), 0);
    assert_int_equal(audit_verify(f->log, fake_check, secret, &res, &e), 0);
    assert_int_equal(res.records, T * N);
    assert_int_equal(res.checkpoints, T * N / 50);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(audit_intact_log_verifies_and_reopen_continues_chain,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(audit_empty_log_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_content_logging_adds_text, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_edited_record_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_missing_record_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_reordered_records_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_dropped_head_is_not_genesis, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_forged_first_prev_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_torn_last_line_reported_refused_and_repaired,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(audit_repair_refuses_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_malformed_middle_line_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_checkpoints_sign_and_bad_signature_is_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(audit_minisign_checkpoints_verify_with_the_right_key_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(audit_second_writer_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_concurrent_appends_share_syncs_and_stay_chained,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
