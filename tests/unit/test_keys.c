/* test_keys.c -- API keys: shown once, stored only salted-hashed at 0600, checked with distinct
 * verdicts for unknown, expired and revoked keys; strict keys.json parsing; expiry syntax. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/keys.h"
#include "util/fsx.h"
#include "util/xalloc.h"

#define NOW ((time_t)1795000000) /* 2026-11-18 */

static int
setup(void **state)
{
    char *dir = xstrdup("/tmp/test_keys.XXXXXX");
    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int
teardown(void **state)
{
    fsx_remove_tree(*state);
    free(*state);
    return 0;
}

static void
file_put(const char *dir, const char *text, mode_t mode)
{
    struct al_err e = {0};
    char *p = fsx_join(dir, KEYS_FILE);
    assert_int_equal(fsx_write_atomic(p, text, strlen(text), mode, 0, &e), 0);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void
keys_roundtrip_stores_only_a_salted_hash(void **state)
{
    const char *dir = *state;
    struct keyring kr = {0}, back = {0};
    struct al_err e = {0};
    char t1[KEYS_TOKEN_LEN + 1], t2[KEYS_TOKEN_LEN + 1];
    assert_int_equal(keys_load(dir, &kr, &e), 0); /* missing file: empty */
    assert_int_equal(kr.n, 0);
    assert_int_equal(keys_add(&kr, "alice", NOW, 0, t1, &e), 0);
    assert_int_equal(keys_add(&kr, "bob", NOW, NOW + 3600, t2, &e), 0);
    assert_int_equal(strlen(t1), KEYS_TOKEN_LEN);
    assert_memory_equal(t1, "al-", 3);
    assert_string_not_equal(t1, t2);
    assert_null(strpbrk(t1 + 3, "+/="));
    assert_int_equal(keys_save(&kr, dir, &e), 0);

    char *path = fsx_join(dir, KEYS_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = NULL;
    size_t len;
    assert_int_equal(fsx_read_file(path, 1 << 20, &text, &len, &e), 0);
    assert_null(strstr(text, t1 + 3));
    assert_null(strstr(text, t2 + 3));
    assert_non_null(strstr(text, "\"salt\""));
    free(text);
    free(path);

    assert_int_equal(keys_load(dir, &back, &e), 0);
    assert_int_equal(back.n, 2);
    const char *who = NULL;
    assert_int_equal(keys_check(&back, t1, NOW, &who), KEYS_OK);
    assert_string_equal(who, "alice");
    assert_int_equal(keys_check(&back, t2, NOW, &who), KEYS_OK);
    assert_string_equal(who, "bob");
    assert_int_equal(back.keys[1].expires, NOW + 3600);
    keys_free(&kr);
    keys_free(&back);
}

static void
keys_check_refuses_with_distinct_reasons(void **state)
{
    (void)state;
    struct keyring kr = {0};
    struct al_err e = {0};
    char ok[KEYS_TOKEN_LEN + 1], exp[KEYS_TOKEN_LEN + 1], rev[KEYS_TOKEN_LEN + 1];
    const char *who = NULL;
    assert_int_equal(keys_add(&kr, "ok", NOW, 0, ok, &e), 0);
    assert_int_equal(keys_add(&kr, "exp", NOW - 100, NOW - 1, exp, &e), 0);
    assert_int_equal(keys_add(&kr, "rev", NOW - 100, 0, rev, &e), 0);
    assert_int_equal(keys_revoke(&kr, "rev", NOW - 10, &e), 0);

    assert_int_equal(keys_check(&kr, ok, NOW, &who), KEYS_OK);
    assert_int_equal(keys_check(&kr, exp, NOW, &who), KEYS_EXPIRED);
    assert_string_equal(who, "exp");
    assert_int_equal(keys_check(&kr, exp, NOW - 2, &who), KEYS_OK); /* before expiry */
    assert_int_equal(keys_check(&kr, rev, NOW, &who), KEYS_REVOKED);
    assert_string_equal(who, "rev");
    assert_string_equal(keys_verdict_str(KEYS_REVOKED), "API key revoked");
    assert_string_equal(keys_verdict_str(KEYS_EXPIRED), "API key expired");

    char bad[KEYS_TOKEN_LEN + 1];
    memcpy(bad, ok, sizeof bad);
    bad[KEYS_TOKEN_LEN - 1] ^= 1; /* one bit off */
    assert_int_equal(keys_check(&kr, bad, NOW, &who), KEYS_UNKNOWN);
    assert_null(who);
    assert_int_equal(keys_check(&kr, "", NOW, &who), KEYS_UNKNOWN);
    assert_int_equal(keys_check(&kr, NULL, NOW, &who), KEYS_UNKNOWN);
    char *longtok = xmalloc(5000);
    memset(longtok, 'a', 4999);
    longtok[4999] = '\0';
    assert_int_equal(keys_check(&kr, longtok, NOW, &who), KEYS_UNKNOWN);
    free(longtok);
    char prefix[20];
    memcpy(prefix, ok, 19);
    prefix[19] = '\0';
    assert_int_equal(keys_check(&kr, prefix, NOW, NULL), KEYS_UNKNOWN);

    /* revoking twice keeps the first time; unknown names are an error */
    assert_int_equal(keys_revoke(&kr, "rev", NOW, &e), 0);
    assert_int_equal(keys_find(&kr, "rev")->revoked, NOW - 10);
    assert_int_equal(keys_revoke(&kr, "nobody", NOW, &e), -1);
    assert_int_equal(e.code, AL_ENOTFOUND);
    keys_free(&kr);
}

static void
keys_names_are_validated_and_never_reused(void **state)
{
    (void)state;
    struct keyring kr = {0};
    struct al_err e = {0};
    char t[KEYS_TOKEN_LEN + 1];
    assert_int_equal(keys_add(&kr, "a b", NOW, 0, t, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    assert_int_equal(keys_add(&kr, "", NOW, 0, t, &e), -1);
    assert_int_equal(keys_add(&kr, "../x", NOW, 0, t, &e), -1);
    char longname[80];
    memset(longname, 'n', 65);
    longname[65] = '\0';
    assert_int_equal(keys_add(&kr, longname, NOW, 0, t, &e), -1);
    longname[64] = '\0';
    assert_int_equal(keys_add(&kr, longname, NOW, 0, t, &e), 0);
    assert_int_equal(keys_add(&kr, "svc.ci_1-a", NOW, 0, t, &e), 0);
    assert_int_equal(keys_revoke(&kr, "svc.ci_1-a", NOW, &e), 0);
    assert_int_equal(keys_add(&kr, "svc.ci_1-a", NOW, 0, t, &e), -1);
    assert_int_equal(e.code, AL_EEXIST);
    keys_free(&kr);
}

static void
keys_load_refuses_group_readable_file(void **state)
{
    const char *dir = *state;
    struct keyring kr = {0};
    struct al_err e = {0};
    file_put(dir, "{\"version\":1,\"keys\":[]}", 0644);
    assert_int_equal(keys_load(dir, &kr, &e), -1);
    assert_int_equal(e.code, AL_EVERIFY);
    assert_non_null(strstr(e.msg, "chmod 600"));
    file_put(dir, "{\"version\":1,\"keys\":[]}", 0600);
    assert_int_equal(keys_load(dir, &kr, &e), 0);
    keys_free(&kr);
}

static void
keys_load_rejects_malformed_entries(void **state)
{
    const char *dir = *state;
    struct keyring kr = {0};
    struct al_err e = {0};
#define ENTRY(name, salt, hash, created)                                                       \
    "{\"name\":\"" name "\",\"salt\":\"" salt "\",\"sha256\":\"" hash "\",\"created\":\"" created \
    "\",\"expires\":null,\"revoked\":null}"
#define SALT "00112233445566778899aabbccddeeff"
#define HASH "0000000000000000000000000000000000000000000000000000000000000000"
    static const struct {
        const char *text;
        enum al_code code;
        const char *needle;
    } cases[] = {
        {"not json", AL_EFORMAT, "line 1"},
        {"{\"version\":2,\"keys\":[]}", AL_EUNSUPPORTED, "version"},
        {"{\"version\":1}", AL_EFORMAT, "\"keys\""},
        {"{\"version\":1,\"version\":1,\"keys\":[]}", AL_EFORMAT, "line"},
        {"{\"version\":1,\"keys\":[" ENTRY("a b", SALT, HASH, "2026-01-01T00:00:00Z") "]}",
         AL_EFORMAT, "keys[0].name"},
        {"{\"version\":1,\"keys\":[" ENTRY("a", "0011", HASH, "2026-01-01T00:00:00Z") "]}",
         AL_EFORMAT, "keys[0].salt"},
        {"{\"version\":1,\"keys\":[" ENTRY("a", SALT, "xyz", "2026-01-01T00:00:00Z") "]}",
         AL_EFORMAT, "keys[0].sha256"},
        {"{\"version\":1,\"keys\":[" ENTRY("a", SALT, HASH, "2026-02-30T00:00:00Z") "]}",
         AL_EFORMAT, "keys[0].created"},
        {"{\"version\":1,\"keys\":[" ENTRY("a", SALT, HASH, "2026-01-01T00:00:00Z") ","
         ENTRY("a", SALT, HASH, "2026-01-01T00:00:00Z") "]}", AL_EFORMAT, "duplicate"},
        {"{\"version\":1,\"keys\":[7]}", AL_EFORMAT, "keys[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        file_put(dir, cases[i].text, 0600);
        al_err_clear(&e);
        assert_int_equal(keys_load(dir, &kr, &e), -1);
        assert_int_equal(e.code, cases[i].code);
        if (!strstr(e.msg, cases[i].needle))
            fail_msg("case %zu: '%s' not in '%s'", i, cases[i].needle, e.msg);
        assert_int_equal(kr.n, 0);
    }
    file_put(dir, "{\"version\":1,\"keys\":[" ENTRY("a", SALT, HASH, "2026-01-01T00:00:00Z") "]}",
             0600);
    assert_int_equal(keys_load(dir, &kr, &e), 0);
    assert_int_equal(kr.n, 1);
    keys_free(&kr);
}

static void
keys_expiry_accepts_dates_and_durations(void **state)
{
    (void)state;
    struct al_err e = {0};
    time_t t;
    char s[21];
    assert_int_equal(keys_expiry_parse("2027-01-31", NOW, &t, &e), 0);
    keys_time_format(t, s);
    assert_string_equal(s, "2027-01-31T00:00:00Z");
    assert_int_equal(keys_expiry_parse("2027-01-31T12:30:05Z", NOW, &t, &e), 0);
    keys_time_format(t, s);
    assert_string_equal(s, "2027-01-31T12:30:05Z");
    assert_int_equal(keys_expiry_parse("90d", NOW, &t, &e), 0);
    assert_int_equal(t, NOW + 90 * 86400);
    assert_int_equal(keys_expiry_parse("12h", NOW, &t, &e), 0);
    assert_int_equal(t, NOW + 12 * 3600);
    assert_int_equal(keys_expiry_parse("2w", NOW, &t, &e), 0);
    assert_int_equal(keys_expiry_parse("1y", NOW, &t, &e), 0);
    static const char *bad[] = {"2020-01-01", "2027-02-30", "2027-13-01", "d", "0d", "-5d",
                                "5x", "2027-01-31T25:00:00Z", "2027-01-31 12:00:00", "1e3d",
                                "999999999999999999999d", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (keys_expiry_parse(bad[i], NOW, &t, &e) != -1)
            fail_msg("accepted '%s'", bad[i]);
}

static void
keys_token_comes_from_bearer_or_x_api_key(void **state)
{
    (void)state;
    char t[KEYS_PRESENTED_MAX + 1];
    assert_int_equal(keys_token_from_headers("Bearer al-abc", NULL, t), 0);
    assert_string_equal(t, "al-abc");
    assert_int_equal(keys_token_from_headers("  bearer \tal-abc  ", "al-other", t), 0);
    assert_string_equal(t, "al-abc");
    assert_int_equal(keys_token_from_headers(NULL, " al-xyz ", t), 0);
    assert_string_equal(t, "al-xyz");
    assert_int_equal(keys_token_from_headers("Basic dXNlcjpwdw==", "al-xyz", t), 0);
    assert_string_equal(t, "al-xyz");
    assert_int_equal(keys_token_from_headers("Basic dXNlcjpwdw==", NULL, t), -1);
    assert_int_equal(keys_token_from_headers("Bearer ", NULL, t), -1);
    assert_int_equal(keys_token_from_headers("Bearerx al-abc", NULL, t), -1);
    assert_int_equal(keys_token_from_headers(NULL, NULL, t), -1);
    char *huge = xmalloc(KEYS_PRESENTED_MAX + 10);
    memset(huge, 'a', KEYS_PRESENTED_MAX + 9);
    huge[KEYS_PRESENTED_MAX + 9] = '\0';
    assert_int_equal(keys_token_from_headers(NULL, huge, t), -1);
    free(huge);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(keys_roundtrip_stores_only_a_salted_hash, setup,
                                        teardown),
        cmocka_unit_test(keys_check_refuses_with_distinct_reasons),
        cmocka_unit_test(keys_names_are_validated_and_never_reused),
        cmocka_unit_test_setup_teardown(keys_load_refuses_group_readable_file, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_load_rejects_malformed_entries, setup, teardown),
        cmocka_unit_test(keys_expiry_accepts_dates_and_durations),
        cmocka_unit_test(keys_token_comes_from_bearer_or_x_api_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
