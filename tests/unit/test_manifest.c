/* test_manifest.c -- sha256sum manifest parsing (text/binary markers, escapes, strictness),
 * path normalisation (strip-prefix, "./", "..", absolute, duplicates), canonical write, and
 * round trips through the writer. */
/* cmocka needs these first, in this order */
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

#include "transfer/manifest.h"

#define H1 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H2 "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"

static int
parse_norm(const char *text, const char *strip, struct manifest *m, struct al_err *e)
{
    if (manifest_parse(text, strlen(text), "M", m, e) != 0)
        return -1;
    if (manifest_normalize(m, strip, "M", e) != 0) {
        manifest_free(m);
        return -1;
    }
    return 0;
}

static void
test_parse_text_and_binary(void **state)
{
    (void)state;
    struct manifest m;
    struct al_err e = {0};
    const char *t = H2 " *b/bin.dat\n" H1 "  a.txt\n";
    assert_int_equal(parse_norm(t, NULL, &m, &e), 0);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.v[0].path, "a.txt"); /* sorted */
    assert_false(m.v[0].binary);
    assert_string_equal(m.v[1].path, "b/bin.dat");
    assert_true(m.v[1].binary);
    assert_int_equal(m.v[1].line, 1);
    assert_int_equal(m.v[0].sha256[0], 0xe3);
    assert_non_null(manifest_find(&m, "b/bin.dat"));
    assert_null(manifest_find(&m, "nope"));
    manifest_free(&m);
}

static void
test_parse_escapes(void **state)
{
    (void)state;
    struct manifest m;
    struct al_err e = {0};
    const char *t = "\\" H1 "  a\\\\b\n";
    assert_int_equal(manifest_parse(t, strlen(t), "M", &m, &e), 0);
    assert_string_equal(m.v[0].path, "a\\b");
    char *out = manifest_format(&m);
    assert_string_equal(out, t); /* escaped again on the way out */
    free(out);
    manifest_free(&m);
    t = "\\" H1 "  a\\nb\n";
    assert_int_equal(manifest_parse(t, strlen(t), "M", &m, &e), 0);
    assert_string_equal(m.v[0].path, "a\nb");
    /* but a newline in a name is a control byte: refused by normalisation */
    assert_int_equal(manifest_normalize(&m, NULL, "M", &e), -1);
    assert_non_null(strstr(e.msg, "control byte"));
    manifest_free(&m);
    t = "\\" H1 "  a\\qb\n";
    assert_int_equal(manifest_parse(t, strlen(t), "M", &m, &e), -1);
    assert_non_null(strstr(e.msg, "unknown escape"));
}

static void
test_parse_strict(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",               /* no entries */
        "\n",             /* empty line */
        H1 " a.txt\n",    /* one space only */
        H1 "\ta.txt\n",   /* tab */
        H1 "  \n",        /* empty path */
        "zz" H1 "  a\n",  /* not hex */
        "e3b0  a.txt\n",  /* short hash */
        H1 "  a.txt\r\n", /* CRLF */
        H1 "  a.txt\n\n", /* trailing empty line */
        H1 "x a.txt\n",   /* bad marker */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct manifest m;
        struct al_err e = {0};
        assert_int_equal(manifest_parse(bad[i], strlen(bad[i]), "M", &m, &e), -1);
        assert_true(e.code == AL_EFORMAT);
        assert_non_null(strstr(e.msg, "M"));
    }
    /* a last line without newline is fine, as sha256sum -c accepts it */
    struct manifest m;
    struct al_err e = {0};
    assert_int_equal(manifest_parse(H1 "  a", strlen(H1 "  a"), "M", &m, &e), 0);
    manifest_free(&m);
}

static void
test_normalize_paths(void **state)
{
    (void)state;
    struct manifest m;
    struct al_err e = {0};
    assert_int_equal(parse_norm(H1 "  ./x/y\n", NULL, &m, &e), 0);
    assert_string_equal(m.v[0].path, "x/y");
    manifest_free(&m);
    assert_int_equal(parse_norm(H1 "  /mnt/drive/x/y\n", "/mnt/drive", &m, &e), 0);
    assert_string_equal(m.v[0].path, "x/y");
    manifest_free(&m);
    assert_int_equal(parse_norm(H1 "  /mnt/drive/x/y\n", "/mnt/drive/", &m, &e), 0);
    manifest_free(&m);
    static const char *const bad[] = {
        H1 "  /etc/passwd\n",  H1 "  ../x\n",    H1 "  a/../../x\n",
        H1 "  a//b\n",         H1 "  a/./b\n",   H1 "  a/\n",
        H1 "  a\n" H1 "  a\n", H1 "  bad\xff\n", H1 "  ctl\x01x\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        assert_int_equal(parse_norm(bad[i], NULL, &m, &e), -1);
        assert_true(e.msg[0] != '\0');
    }
    assert_int_equal(parse_norm(H1 "  /mnt/drivex/y\n", "/mnt/drive", &m, &e), -1);
    assert_non_null(strstr(e.msg, "not under"));
    assert_int_equal(parse_norm(H1 "  a\n" H2 "  a\n", NULL, &m, &e), -1);
    assert_non_null(strstr(e.msg, "duplicate"));
    /* over-long component and path */
    char *t = malloc(8000);
    snprintf(t, 8000, H1 "  %0300d\n", 7);
    assert_int_equal(parse_norm(t, NULL, &m, &e), -1);
    assert_non_null(strstr(e.msg, "component"));
    strcpy(t, H1 "  ");
    for (int i = 0; i < 30; i++)
        strcat(t, "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
                  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/");
    strcat(t, "f\n");
    assert_int_equal(parse_norm(t, NULL, &m, &e), -1);
    assert_non_null(strstr(e.msg, "longer than"));
    free(t);
}

static void
test_format_roundtrip(void **state)
{
    (void)state;
    struct manifest m, back;
    struct al_err e = {0};
    manifest_init(&m);
    uint8_t d[SHA256_LEN];
    for (int i = 0; i < SHA256_LEN; i++)
        d[i] = (uint8_t)i;
    manifest_add(&m, "payload/z", d);
    manifest_add(&m, "BOM.json", d);
    manifest_add(&m, "payload/ü/名前", d);
    manifest_sort(&m);
    char *txt = manifest_format(&m);
    assert_non_null(strstr(txt, "  BOM.json\n"));
    assert_true(strstr(txt, "BOM.json") < strstr(txt, "payload/z"));
    assert_int_equal(manifest_parse(txt, strlen(txt), "M", &back, &e), 0);
    assert_int_equal(manifest_normalize(&back, NULL, "M", &e), 0);
    assert_int_equal(back.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(back.v[i].path, m.v[i].path);
        assert_memory_equal(back.v[i].sha256, d, SHA256_LEN);
    }
    free(txt);
    manifest_free(&back);
    manifest_free(&m);
}

static void
test_sanitize(void **state)
{
    (void)state;
    char s[] = "ok\x1b[31m \xff\xfe ü";
    manifest_text_sanitize(s);
    assert_string_equal(s, "ok?[31m ?? ü");
}

static void
test_shared_manifest_if_any(void **state)
{
    (void)state;
    /* real sha256sum output of the shared models, when the shared dir has one */
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    char path[4096];
    snprintf(path, sizeof path, "%s/SHA256SUMS", shared);
    FILE *f = fopen(path, "rb");
    if (!f)
        skip();
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    struct manifest m;
    struct al_err e = {0};
    assert_int_equal(manifest_parse(buf, n, path, &m, &e), 0);
    manifest_free(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_text_and_binary),  cmocka_unit_test(test_parse_escapes),
        cmocka_unit_test(test_parse_strict),           cmocka_unit_test(test_normalize_paths),
        cmocka_unit_test(test_format_roundtrip),       cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_shared_manifest_if_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
