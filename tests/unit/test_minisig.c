/* test_minisig.c -- transfer/minisig.c (keys, signatures, trust sets, verification) and
 * transfer/sign.c (secret key files, signing). The fixed vectors were made by the real
 * minisign 0.11 (`minisign -G -W`, `minisign -S`, `minisign -S -l`), so these tests prove
 * compatibility even where the minisign binary is absent. Encrypted keys use tiny scrypt
 * costs here; the 1 GiB default is exercised by tests/e2e/minisign_interop.sh. */
/* cmocka needs these headers first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/secmem.h"
#include "transfer/minisig.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/xalloc.h"

static const char mk_pub[] = "untrusted comment: minisign public key 37973272F7A4CA3\n"
                             "RWSjTHovJ3N5Ax5OeWd17k/3WM+r7HBx0gm8DySX+joQP+qAeETjkNxe\n";
static const char mk_key[] =
    "untrusted comment: minisign encrypted secret key\n"
    "RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAo0x6LydzeQN0dmh5"
    "FFYPjlTIW3RjAR0XXwrl1C1hcwSx452ZReamCR5OeWd17k/3WM+r7HBx0gm8DySX+joQP+qAeETjkNxeAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
static const char mk_msg[] = "airlock test vector\n";
static const char mk_sig[] =
    "untrusted comment: test sig\n"
    "RUSjTHovJ3N5A9Tor+OR8vJXkU/0GSLPYIjKHYd3PgT+lXcDNgNPNN/LBYWjQVWu1xofipPbkd5FtOD5mroucJsv"
    "S8GedQ9yigc=\n"
    "trusted comment: fixed vector\n"
    "wP84AisTA4WSqnoIPwDluFjWhJXPd/xx+my34e3WZ8sP2eBlXimcp5yWB7rBMo1oz7D0KCT5KuuGJOSX+VWKDw==\n";
static const char mk_legacy_sig[] =
    "untrusted comment: signature from minisign secret key\n"
    "RWSjTHovJ3N5A04fcujfhPZj0cHIhF+st+yVQicK8KNIwLXX3cLwooMeNSz2tH28BmOd9undwLaJXMIcPdFf99hR"
    "zdsd5dViLQc=\n"
    "trusted comment: legacy vector\n"
    "ERr2sJEZswyhbprQJeGPcmTRPuIhwtD6s7pvuo7957KwnFEgzZPpGTCJ4RI8h3kpEy+zWJjtobkPtRTtSkSRCg==\n";

/* tiny scrypt cost for tests: N = 1024, r = 8, p = 1 (1 MiB) */
#define TEST_OPS 32768ULL
#define TEST_MEM (16ULL << 20)

/* ===== Helpers =============================================================================== */

static struct minisig_trust
trust_of(const char *pub_text)
{
    struct minisig_trust t = {0};
    struct al_err e = {0};
    t.keys = xcalloc(1, sizeof *t.keys);
    assert_int_equal(minisig_pubkey_parse(pub_text, strlen(pub_text), &t.keys[0], &e), 0);
    t.n = 1;
    return t;
}

/* text with the first occurrence of from replaced by to (owned) */
static char *
replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static void
expect_sig_reject(const char *text, enum al_code code, const char *needle)
{
    struct minisig_sig s;
    struct al_err e = {0};
    assert_int_equal(minisig_sig_parse(text, strlen(text), &s, &e), -1);
    if (e.code != code || !strstr(e.msg, needle))
        fail_msg("want code %d containing \"%s\", got %d: %s", code, needle, e.code, e.msg);
}

static void
expect_pub_reject(const char *text, enum al_code code, const char *needle)
{
    struct minisig_pubkey pk;
    struct al_err e = {0};
    assert_int_equal(minisig_pubkey_parse(text, strlen(text), &pk, &e), -1);
    if (e.code != code || !strstr(e.msg, needle))
        fail_msg("want code %d containing \"%s\", got %d: %s", code, needle, e.code, e.msg);
}

static struct minisig_seckey *
seckey_new(void)
{
    struct minisig_seckey *sk = NULL;
    struct al_err e = {0};
    assert_int_equal(minisig_seckey_generate(&sk, &e), 0);
    return sk;
}

/* ===== Parsing and formatting ================================================================ */

static void
minisig_pubkey_round_trips(void **st)
{
    (void)st;
    struct minisig_pubkey pk, bare;
    struct al_err e = {0};
    char id[17];
    assert_int_equal(minisig_pubkey_parse(mk_pub, strlen(mk_pub), &pk, &e), 0);
    minisig_keyid_hex(pk.key_id, id);
    assert_string_equal(id, "037973272F7A4CA3");
    const char *line = strchr(mk_pub, '\n') + 1;
    assert_int_equal(minisig_pubkey_parse(line, strlen(line) - 1, &bare, &e), 0);
    assert_memory_equal(pk.pk, bare.pk, 32);
    assert_memory_equal(pk.key_id, bare.key_id, 8);
    char *text = minisig_pubkey_format(&pk, NULL);
    assert_string_equal(text, "untrusted comment: minisign public key 037973272F7A4CA3\n"
                              "RWSjTHovJ3N5Ax5OeWd17k/3WM+r7HBx0gm8DySX+joQP+qAeETjkNxe\n");
    free(text);
    text = minisig_pubkey_format(&pk, "mine");
    assert_int_equal(strncmp(text, "untrusted comment: mine\n", 24), 0);
    free(text);
}

static void
minisig_sig_round_trips(void **st)
{
    (void)st;
    struct minisig_sig s;
    struct al_err e = {0};
    assert_int_equal(minisig_sig_parse(mk_sig, strlen(mk_sig), &s, &e), 0);
    assert_true(s.prehashed);
    assert_string_equal(s.untrusted_comment, "test sig");
    assert_string_equal(s.trusted_comment, "fixed vector");
    char *text = minisig_sig_format(&s);
    assert_string_equal(text, mk_sig);
    free(text);
    assert_int_equal(minisig_sig_parse(mk_legacy_sig, strlen(mk_legacy_sig), &s, &e), 0);
    assert_false(s.prehashed);
    text = minisig_sig_format(&s);
    assert_string_equal(text, mk_legacy_sig);
    free(text);
    /* a missing final newline is tolerated, as minisign does */
    assert_int_equal(minisig_sig_parse(mk_sig, strlen(mk_sig) - 1, &s, &e), 0);
}

static void
minisig_sig_rejects_malformed(void **st)
{
    (void)st;
    char *t;
    t = replace(mk_sig, "untrusted comment: ", "untrusted-comment: ");
    expect_sig_reject(t, AL_EFORMAT, "line 1 must start with");
    free(t);
    t = replace(mk_sig, "trusted comment: fixed", "Trusted comment: fixed");
    expect_sig_reject(t, AL_EFORMAT, "line 3 must start with");
    free(t);
    t = replace(mk_sig, "RUSjTHov", "RUSj*Hov");
    expect_sig_reject(t, AL_EFORMAT, "invalid base64 character 0x2a at column 5");
    free(t);
    t = replace(mk_sig, "RUSjTHov", "RUSjTHo");
    expect_sig_reject(t, AL_EFORMAT, "expected 100");
    free(t);
    t = replace(mk_sig, "Dw==\n", "Dw==\nextra\n");
    expect_sig_reject(t, AL_EFORMAT, "unexpected data after line 4");
    free(t);
    t = replace(mk_sig, "Dw==\n", "Dw==\n\n");
    expect_sig_reject(t, AL_EFORMAT, "unexpected data after line 4");
    free(t);
    t = replace(mk_sig, "Dw==", "Dx==");
    expect_sig_reject(t, AL_EFORMAT, "canonical");
    free(t);
    t = replace(mk_sig, "test sig\n", "test sig\r\n");
    expect_sig_reject(t, AL_EFORMAT, "line 1 ends with a carriage return");
    free(t);
    t = replace(mk_sig, "test sig", "test\x01sig");
    expect_sig_reject(t, AL_EFORMAT, "control character");
    free(t);
    t = replace(mk_sig, "fixed vector", "fixed \xc3\x28 vector");
    expect_sig_reject(t, AL_EFORMAT, "invalid UTF-8");
    free(t);
    /* "EX" algorithm, re-encoded: RUSj -> RVhj decodes to 'E','X',... */
    t = replace(mk_sig, "RUSjTHov", "RVhjTHov");
    expect_sig_reject(t, AL_EUNSUPPORTED, "unsupported signature algorithm 0x4558");
    free(t);
    expect_sig_reject("untrusted comment: x\n", AL_EFORMAT, "truncated");
    expect_sig_reject("", AL_EFORMAT, "truncated");
    /* over-long comments */
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "untrusted comment: ");
    for (int i = 0; i < MINISIG_COMMENT_MAX + 1; i++)
        buf_putc(&b, 'a');
    buf_puts(&b, strchr(mk_sig, '\n'));
    expect_sig_reject(b.data, AL_ELIMIT, "limit 1024");
    buf_reset(&b);
    buf_append(&b, mk_sig, (size_t)(strstr(mk_sig, "fixed vector") - mk_sig));
    for (int i = 0; i < MINISIG_TRUSTED_COMMENT_MAX + 1; i++)
        buf_putc(&b, 'b');
    buf_puts(&b, strstr(mk_sig, "\nwP84"));
    expect_sig_reject(b.data, AL_ELIMIT, "limit 8173");
    buf_free(&b);
    /* NUL inside the text */
    struct minisig_sig s;
    struct al_err e = {0};
    char nul[sizeof mk_sig];
    memcpy(nul, mk_sig, sizeof mk_sig);
    nul[22] = '\0';
    assert_int_equal(minisig_sig_parse(nul, sizeof mk_sig - 1, &s, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
}

static void
minisig_pubkey_rejects_malformed(void **st)
{
    (void)st;
    char *t;
    t = replace(mk_pub, "RWSj", "RVhj");
    expect_pub_reject(t, AL_EUNSUPPORTED, "unsupported public key algorithm");
    free(t);
    t = replace(mk_pub, "Nxe\n", "Nxe\nmore\n");
    expect_pub_reject(t, AL_EFORMAT, "unexpected data after line 2");
    free(t);
    t = replace(mk_pub, "kNxe", "kNx");
    expect_pub_reject(t, AL_EFORMAT, "expected 56");
    free(t);
    expect_pub_reject("keys/release.pub", AL_EFORMAT, "base64");
    expect_pub_reject("untrusted comment: only\n", AL_EFORMAT, "truncated");
}

/* ===== Verification ========================================================================== */

static void
minisig_verifies_minisign_vectors(void **st)
{
    (void)st;
    struct minisig_trust t = trust_of(mk_pub);
    struct minisig_sig s;
    struct al_err e = {0};
    const struct minisig_pubkey *signer = NULL;
    assert_int_equal(minisig_sig_parse(mk_sig, strlen(mk_sig), &s, &e), 0);
    assert_int_equal(minisig_verify_buf(&t, &s, mk_msg, strlen(mk_msg), &signer, &e), 0);
    assert_ptr_equal(signer, &t.keys[0]);
    assert_int_equal(minisig_sig_parse(mk_legacy_sig, strlen(mk_legacy_sig), &s, &e), 0);
    assert_int_equal(minisig_verify_buf(&t, &s, mk_msg, strlen(mk_msg), NULL, &e), 0);
    /* one byte of the message changed */
    assert_int_equal(minisig_verify_buf(&t, &s, "airlock test vectoR\n", 20, NULL, &e), -1);
    assert_int_equal(e.code, AL_EVERIFY);
    assert_non_null(strstr(e.msg, "signature does not match"));
    minisig_trust_free(&t);
}

static void
minisig_sign_then_verify_and_tamper(void **st)
{
    (void)st;
    struct minisig_seckey *sk = seckey_new();
    struct minisig_trust t = {0};
    struct minisig_sig s, s2;
    struct al_err e = {0};
    t.keys = xcalloc(1, sizeof *t.keys);
    minisig_seckey_pubkey(sk, &t.keys[0]);
    t.n = 1;
    const char data[] = "model weights";
    assert_int_equal(minisig_sign_buf(sk, data, sizeof data, "timestamp:1\tfile:x", NULL, &s, &e),
                     0);
    assert_true(s.prehashed);
    assert_string_equal(s.untrusted_comment, "signature from airlock secret key");
    assert_int_equal(minisig_verify_buf(&t, &s, data, sizeof data, NULL, &e), 0);
    /* formatted and parsed back, it still verifies */
    char *text = minisig_sig_format(&s);
    assert_int_equal(minisig_sig_parse(text, strlen(text), &s2, &e), 0);
    assert_int_equal(minisig_verify_buf(&t, &s2, data, sizeof data, NULL, &e), 0);
    free(text);
    /* edited trusted comment */
    s2 = s;
    s2.trusted_comment[0] = 'T';
    assert_int_equal(minisig_verify_buf(&t, &s2, data, sizeof data, NULL, &e), -1);
    assert_int_equal(e.code, AL_EVERIFY);
    assert_non_null(strstr(e.msg, "trusted comment was modified"));
    /* flipped signature byte */
    s2 = s;
    s2.sig[10] ^= 1;
    assert_int_equal(minisig_verify_buf(&t, &s2, data, sizeof data, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "signature does not match"));
    /* flipped global signature byte */
    s2 = s;
    s2.global_sig[63] ^= 0x80;
    assert_int_equal(minisig_verify_buf(&t, &s2, data, sizeof data, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "trusted comment"));
    /* different data */
    assert_int_equal(minisig_verify_buf(&t, &s, data, sizeof data - 1, NULL, &e), -1);
    /* wrong key: the message names both key ids */
    struct minisig_trust other = trust_of(mk_pub);
    assert_int_equal(minisig_verify_buf(&other, &s, data, sizeof data, NULL, &e), -1);
    assert_int_equal(e.code, AL_EVERIFY);
    char id[17];
    minisig_keyid_hex(s.key_id, id);
    assert_non_null(strstr(e.msg, id));
    assert_non_null(strstr(e.msg, "037973272F7A4CA3"));
    assert_non_null(strstr(e.msg, "unknown key ID"));
    /* same key id, different key: signature check fails */
    memcpy(other.keys[0].key_id, s.key_id, MINISIG_KEYID_LEN);
    assert_int_equal(minisig_verify_buf(&other, &s, data, sizeof data, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "signature does not match"));
    /* comments are checked when signing */
    assert_int_equal(minisig_sign_buf(sk, data, 1, "bad\nline", NULL, &s2, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    minisig_trust_free(&other);
    minisig_trust_free(&t);
    minisig_seckey_free(sk);
}

static void
minisig_sign_file_and_verify_file(void **st)
{
    (void)st;
    char dir[] = "/tmp/test_minisig.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct al_err e = {0};
    char *path = fsx_join(dir, "weights.bin");
    size_t n = 5u << 20;
    uint8_t *buf = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 131 + (i >> 13));
    assert_int_equal(fsx_write_atomic(path, buf, n, 0600, 0, &e), 0);
    struct minisig_seckey *sk = seckey_new();
    struct minisig_trust t = {0};
    struct minisig_sig s;
    t.keys = xcalloc(1, sizeof *t.keys);
    minisig_seckey_pubkey(sk, &t.keys[0]);
    t.n = 1;
    assert_int_equal(minisig_sign_file(sk, path, NULL, "c", &s, &e), 0);
    assert_non_null(strstr(s.trusted_comment, "\tfile:weights.bin\thashed"));
    assert_int_equal(strncmp(s.trusted_comment, "timestamp:", 10), 0);
    assert_int_equal(minisig_verify_file(&t, &s, path, NULL, &e), 0);
    assert_int_equal(minisig_verify_buf(&t, &s, buf, n, NULL, &e), 0);
    buf[n / 2] ^= 1;
    assert_int_equal(fsx_write_atomic(path, buf, n, 0600, 0, &e), 0);
    assert_int_equal(minisig_verify_file(&t, &s, path, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "weights.bin"));
    /* the legacy minisign vector through the file path */
    struct minisig_trust mt = trust_of(mk_pub);
    assert_int_equal(fsx_write_atomic(path, mk_msg, strlen(mk_msg), 0600, 0, &e), 0);
    assert_int_equal(minisig_sig_parse(mk_legacy_sig, strlen(mk_legacy_sig), &s, &e), 0);
    assert_int_equal(minisig_verify_file(&mt, &s, path, NULL, &e), 0);
    minisig_trust_free(&mt);
    minisig_trust_free(&t);
    minisig_seckey_free(sk);
    free(buf);
    free(path);
    fsx_remove_tree(dir);
}

/* ===== Trust sets ============================================================================ */

static void
minisig_trust_dir_loads_all_and_names_bad_files(void **st)
{
    (void)st;
    char dir[] = "/tmp/test_minisig.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct al_err e = {0};
    struct minisig_trust t = {0};
    assert_int_equal(minisig_trust_load(dir, &t, &e), -1);
    assert_int_equal(e.code, AL_ENOTFOUND);
    struct minisig_seckey *sk = seckey_new();
    struct minisig_pubkey pk;
    minisig_seckey_pubkey(sk, &pk);
    char *mine = minisig_pubkey_format(&pk, NULL);
    char *p1 = fsx_join(dir, "a.pub"), *p2 = fsx_join(dir, "b.pub"), *p3 = fsx_join(dir, "notes");
    assert_int_equal(fsx_write_atomic(p1, mk_pub, strlen(mk_pub), 0644, 0, &e), 0);
    assert_int_equal(fsx_write_atomic(p2, mine, strlen(mine), 0644, 0, &e), 0);
    assert_int_equal(fsx_write_atomic(p3, "x", 1, 0644, 0, &e), 0);
    assert_int_equal(minisig_trust_load(dir, &t, &e), 0);
    assert_int_equal(t.n, 2);
    assert_non_null(strstr(t.keys[0].source, "a.pub"));
    minisig_trust_free(&t);
    assert_int_equal(minisig_trust_load(p2, &t, &e), 0);
    assert_int_equal(t.n, 1);
    minisig_trust_free(&t);
    /* a malformed .pub is an error naming it, not skipped */
    char *p4 = fsx_join(dir, "c.pub");
    assert_int_equal(fsx_write_atomic(p4, "garbage\n", 8, 0644, 0, &e), 0);
    assert_int_equal(minisig_trust_load(dir, &t, &e), -1);
    assert_non_null(strstr(e.msg, "c.pub"));
    assert_null(t.keys);
    /* the same key id with a different key is ambiguous */
    char *clash = xstrdup(mine);
    char *line2 = strchr(clash, '\n') + 1;
    line2[20] = line2[20] == 'A' ? 'B' : 'A';
    assert_int_equal(fsx_write_atomic(p4, clash, strlen(clash), 0644, 0, &e), 0);
    assert_int_equal(minisig_trust_load(dir, &t, &e), -1);
    assert_non_null(strstr(e.msg, "share key ID"));
    char *nope = fsx_join(dir, "nope.pub");
    assert_int_equal(minisig_trust_load(nope, &t, &e), -1);
    assert_int_equal(e.code, AL_ENOTFOUND);
    /* a bare base64 key is not a path */
    const char *line = strchr(mk_pub, '\n') + 1;
    assert_int_equal(minisig_trust_load(line, &t, &e), -1);
    free(nope);
    free(clash);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(mine);
    minisig_seckey_free(sk);
    fsx_remove_tree(dir);
}

/* ===== Secret keys =========================================================================== */

static void
minisig_seckey_round_trips_encrypted_and_plain(void **st)
{
    (void)st;
    struct al_err e = {0};
    struct minisig_seckey *sk = seckey_new(), *back = NULL;
    struct minisig_pubkey a, b;
    struct minisig_seckey_info info;
    minisig_seckey_pubkey(sk, &a);
    char *plain = minisig_seckey_format(sk, NULL, 0, 0, NULL, &e);
    assert_non_null(plain);
    assert_int_equal(minisig_seckey_inspect(plain, strlen(plain), &info, &e), 0);
    assert_false(info.encrypted);
    assert_string_equal(info.comment, "airlock secret key");
    assert_int_equal(minisig_seckey_parse(plain, strlen(plain), "k", NULL, &back, &e), 0);
    minisig_seckey_pubkey(back, &b);
    assert_memory_equal(a.pk, b.pk, 32);
    assert_memory_equal(a.key_id, b.key_id, 8);
    minisig_seckey_free(back);
    char *enc = minisig_seckey_format(sk, "pw", TEST_OPS, TEST_MEM, "c", &e);
    assert_non_null(enc);
    assert_int_equal(minisig_seckey_inspect(enc, strlen(enc), &info, &e), 0);
    assert_true(info.encrypted);
    assert_int_equal(info.opslimit, TEST_OPS);
    assert_int_equal(info.memlimit, TEST_MEM);
    assert_int_equal(minisig_seckey_parse(enc, strlen(enc), "k", "pw", &back, &e), 0);
    minisig_seckey_pubkey(back, &b);
    assert_memory_equal(a.pk, b.pk, 32);
    minisig_seckey_free(back);
    assert_int_equal(minisig_seckey_parse(enc, strlen(enc), "k", "wrong", &back, &e), -1);
    assert_int_equal(e.code, AL_EVERIFY);
    assert_non_null(strstr(e.msg, "wrong passphrase"));
    assert_null(back);
    secmem_free(enc);
    /* a cost beyond the cap is refused before any work */
    enc = minisig_seckey_format(sk, "pw", 1ULL << 40, 1ULL << 40, NULL, &e);
    assert_null(enc);
    assert_int_equal(e.code, AL_ELIMIT);
    secmem_free(plain);
    minisig_seckey_free(sk);
}

static void
minisig_seckey_reads_minisign_key_and_rejects_bad(void **st)
{
    (void)st;
    struct al_err e = {0};
    struct minisig_seckey *sk = NULL;
    struct minisig_pubkey pk, want;
    struct minisig_sig s;
    if (minisig_seckey_parse(mk_key, strlen(mk_key), "mk", NULL, &sk, &e) != 0)
        fail_msg("%s", e.msg);
    minisig_seckey_pubkey(sk, &pk);
    assert_int_equal(minisig_pubkey_parse(mk_pub, strlen(mk_pub), &want, &e), 0);
    assert_memory_equal(pk.pk, want.pk, 32);
    assert_memory_equal(pk.key_id, want.key_id, 8);
    /* Ed25519 is deterministic: same key, message and comment give minisign's bytes */
    assert_int_equal(
        minisig_sign_buf(sk, mk_msg, strlen(mk_msg), "fixed vector", "test sig", &s, &e), 0);
    char *text = minisig_sig_format(&s);
    assert_string_equal(text, mk_sig);
    free(text);
    minisig_seckey_free(sk);
    char *t = replace(mk_key, "RWQAAEIy", "RWQAAEIz");
    assert_int_equal(minisig_seckey_parse(t, strlen(t), "mk", NULL, &sk, &e), -1);
    assert_int_equal(e.code, AL_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "checksum algorithm"));
    free(t);
    t = replace(mk_key, "RWQAAEIy", "RWQBAEIy");
    assert_int_equal(minisig_seckey_parse(t, strlen(t), "mk", NULL, &sk, &e), -1);
    assert_non_null(strstr(e.msg, "key derivation"));
    free(t);
    /* a non-zero checksum that does not match */
    t = replace(mk_key, "AAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAQ=");
    assert_int_equal(minisig_seckey_parse(t, strlen(t), "mk", NULL, &sk, &e), -1);
    assert_non_null(strstr(e.msg, "checksum"));
    free(t);
    /* the public half inside sk corrupted */
    t = replace(mk_key, "kNxeAAAA", "kNxfAAAA");
    assert_int_equal(minisig_seckey_parse(t, strlen(t), "mk", NULL, &sk, &e), -1);
    assert_non_null(strstr(e.msg, "do not match"));
    free(t);
    t = replace(mk_key, "untrusted", "trusted");
    assert_int_equal(minisig_seckey_parse(t, strlen(t), "mk", NULL, &sk, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    free(t);
    t = xasprintf("%sjunk\n", mk_key);
    assert_int_equal(minisig_seckey_parse(t, strlen(t), "mk", NULL, &sk, &e), -1);
    assert_non_null(strstr(e.msg, "unexpected data"));
    free(t);
    assert_null(sk);
}

static void
minisig_keygen_writes_private_pair_once(void **st)
{
    (void)st;
    char dir[] = "/tmp/test_minisig.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct al_err e = {0};
    char *pub = fsx_join(dir, "k.pub"), *sec = fsx_join(dir, "k.key");
    uint8_t id[MINISIG_KEYID_LEN];
    assert_int_equal(minisig_keygen_ex(pub, sec, NULL, false, false, NULL, id, &e), 0);
    struct stat sp, ss;
    assert_int_equal(stat(pub, &sp), 0);
    assert_int_equal(stat(sec, &ss), 0);
    assert_int_equal(sp.st_mode & 0777, 0600);
    assert_int_equal(ss.st_mode & 0777, 0600);
    struct minisig_pubkey pk;
    assert_int_equal(minisig_pubkey_load(pub, &pk, &e), 0);
    assert_memory_equal(pk.key_id, id, 8);
    assert_int_equal(minisig_keygen(pub, sec, NULL, false, false, &e), -1);
    assert_int_equal(e.code, AL_EEXIST);
    assert_int_equal(minisig_keygen(pub, sec, NULL, false, true, &e), 0);
    assert_int_equal(minisig_keygen(pub, pub, NULL, false, true, &e), -1);
    assert_int_equal(minisig_keygen(pub, sec, "", true, true, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    /* pub exists, sec does not: nothing is written */
    assert_int_equal(unlink(sec), 0);
    assert_int_equal(minisig_keygen(pub, sec, NULL, false, false, &e), -1);
    assert_int_equal(access(sec, F_OK), -1);
    free(pub);
    free(sec);
    fsx_remove_tree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minisig_pubkey_round_trips),
        cmocka_unit_test(minisig_sig_round_trips),
        cmocka_unit_test(minisig_sig_rejects_malformed),
        cmocka_unit_test(minisig_pubkey_rejects_malformed),
        cmocka_unit_test(minisig_verifies_minisign_vectors),
        cmocka_unit_test(minisig_sign_then_verify_and_tamper),
        cmocka_unit_test(minisig_sign_file_and_verify_file),
        cmocka_unit_test(minisig_trust_dir_loads_all_and_names_bad_files),
        cmocka_unit_test(minisig_seckey_round_trips_encrypted_and_plain),
        cmocka_unit_test(minisig_seckey_reads_minisign_key_and_rejects_bad),
        cmocka_unit_test(minisig_keygen_writes_private_pair_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
