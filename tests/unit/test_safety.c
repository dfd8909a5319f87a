/* test_safety.c -- transfer/safety.c: pickle, zip-pickle, code, weights and data verdicts.
 * Fixtures: tests/vectors/safety/ (made by make-vectors.py with the Python standard library)
 * plus bytes built here. Ordinary text and binary must never be flagged as pickle. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/safety.h"
#include "util/err.h"
#include "util/fsx.h"
#include "util/xalloc.h"

#define VEC "tests/vectors/safety/"

static void
classify_mem(const char *name, const void *p, size_t n, struct safety_verdict *v)
{
    safety_classify(name, p, n, n, v);
}

static void
classify_vec(const char *file, struct safety_verdict *v)
{
    struct al_err e = {0};
    char *path = fsx_join(VEC, file);
    int rc = safety_classify_file(path, file, v, &e);
    if (rc != 0)
        fail_msg("%s: %s", path, e.msg);
    free(path);
}

static void
safety_flags_pickles_of_every_protocol(void **state)
{
    (void)state;
    static const char *const files[] = {
        "pickle-p0.pkl", "pickle-p1.bin", "pickle-p2.pt", "pickle-p4.pth", "pickle-p5.ckpt",
        "pickle-p2-noext.dat", "pickle-p0-global.txt",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct safety_verdict v;
        classify_vec(files[i], &v);
        if (v.cls != SAFETY_PICKLE)
            fail_msg("%s: got %s (%s: %s)", files[i], safety_class_name(v.cls), v.format,
                     v.reason);
        assert_string_equal(v.format, "pickle");
    }
    struct safety_verdict v;
    classify_vec("pickle-p0-global.txt", &v);
    assert_non_null(strstr(v.reason, "imports globals"));
    assert_string_equal(v.imports, "builtins.print");
    classify_vec("pickle-p2.pt", &v);
    assert_string_equal(v.imports, ""); /* a plain dict imports nothing */
}

/* The globals a pickle imports are listed without running it: GLOBAL (protocol 2) and
 * STACK_GLOBAL with memoized strings (protocol 4), also inside a stored zip member. */
static void
safety_lists_pickle_imports(void **state)
{
    (void)state;
    struct safety_verdict v;
    classify_vec("ordered-p2.pkl", &v);
    assert_string_equal(v.imports, "collections.OrderedDict");
    classify_vec("ordered-p4.pkl", &v);
    assert_string_equal(v.imports, "collections.OrderedDict");
    classify_vec("torch-zip.pt", &v);
    assert_string_equal(v.imports, "collections.OrderedDict");
    /* protocol 4: "os" memoized, reused through BINGET for a second STACK_GLOBAL */
    static const uint8_t p4[] = {
        0x80, 0x04, 0x8c, 0x02, 'o', 's', 0x94, 0x8c, 0x06, 's', 'y', 's', 't', 'e', 'm', 0x94,
        0x93, 0x94, 'h', 0x00, 0x8c, 0x05, 'g', 'e', 't', 'p', 'w', 0x94, 0x93, 0x94, 0x86,
        '.'};
    safety_classify("x.pkl", p4, sizeof p4, sizeof p4, &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    assert_string_equal(v.imports, "os.system, os.getpw");
    /* many distinct globals: the list is cut with "..." and stays a C string */
    uint8_t many[8192];
    size_t n = 0;
    many[n++] = 0x80;
    many[n++] = 0x02;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf((char *)many + n, sizeof many - n, "cmodule%03d\nname\n0", i);
    many[n++] = 'N';
    many[n++] = '.';
    safety_classify("x.pkl", many, n, n, &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    assert_true(strlen(v.imports) < sizeof v.imports);
    assert_non_null(strstr(v.imports, "module000.name, module001.name"));
    assert_non_null(strstr(v.imports, "..."));
}

static void
safety_flags_torch_zip(void **state)
{
    (void)state;
    struct safety_verdict v;
    classify_vec("torch-zip.pt", &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    assert_string_equal(v.format, "zip-pickle");
    assert_non_null(strstr(v.reason, "archive/data.pkl"));
    classify_vec("plain.zip", &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    assert_string_equal(v.format, "zip");
}

/* A stored zip whose first member is larger than the head window: only the central directory
 * reveals the pickle member behind it. */
static void
safety_finds_pickle_member_in_central_directory(void **state)
{
    (void)state;
    size_t big = SAFETY_HEAD_BYTES + 1000;
    const char *n1 = "archive/data/0", *n2 = "archive/data.pkl";
    size_t l1 = strlen(n1), l2 = strlen(n2);
    size_t cap = 30 + l1 + big + 30 + l2 + 4 + 46 + l1 + 46 + l2 + 22;
    uint8_t *z = xcalloc(cap, 1);
    size_t at = 0, off1, off2;
#define PUT16(p, v) ((p)[0] = (uint8_t)(v), (p)[1] = (uint8_t)((v) >> 8))
#define PUT32(p, v) (PUT16(p, (v) & 0xffff), PUT16((p) + 2, ((uint32_t)(v)) >> 16))
    off1 = at;
    memcpy(z + at, "PK\3\4", 4);
    PUT32(z + at + 18, (uint32_t)big);
    PUT32(z + at + 22, (uint32_t)big);
    PUT16(z + at + 26, l1);
    memcpy(z + at + 30, n1, l1);
    at += 30 + l1 + big;
    off2 = at;
    memcpy(z + at, "PK\3\4", 4);
    PUT32(z + at + 18, 4);
    PUT32(z + at + 22, 4);
    PUT16(z + at + 26, l2);
    memcpy(z + at + 30, n2, l2);
    at += 30 + l2;
    memcpy(z + at, "\x80\x02N.", 4);
    at += 4;
    size_t cd = at;
    const char *names[2] = {n1, n2};
    size_t lens[2] = {l1, l2}, offs[2] = {off1, off2};
    for (int i = 0; i < 2; i++) {
        memcpy(z + at, "PK\1\2", 4);
        PUT16(z + at + 28, lens[i]);
        PUT32(z + at + 42, (uint32_t)offs[i]);
        memcpy(z + at + 46, names[i], lens[i]);
        at += 46 + lens[i];
    }
    memcpy(z + at, "PK\5\6", 4);
    PUT16(z + at + 8, 2);
    PUT16(z + at + 10, 2);
    PUT32(z + at + 12, (uint32_t)(at - cd));
    PUT32(z + at + 16, (uint32_t)cd);
    at += 22;
    assert_int_equal(at, cap);

    /* the head alone does not show the member */
    struct safety_verdict v;
    safety_classify("model.zip", z, SAFETY_HEAD_BYTES, cap, &v);
    assert_int_equal(v.cls, SAFETY_DATA);

    char dir[] = "/tmp/test_safetyXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = fsx_join(dir, "model.zip");
    struct al_err e = {0};
    assert_int_equal(fsx_write_atomic(path, z, cap, 0644, 0, &e), 0);
    assert_int_equal(safety_classify_file(path, "model.zip", &v, &e), 0);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    assert_string_equal(v.format, "zip-pickle");
    assert_non_null(strstr(v.reason, "central directory"));
    /* a broken end record must not crash or mislead: the file is then plain zip data */
    z[cap - 22] = 'X';
    assert_int_equal(fsx_write_atomic(path, z, cap, 0644, 0, &e), 0);
    assert_int_equal(safety_classify_file(path, "model.zip", &v, &e), 0);
    assert_int_equal(v.cls, SAFETY_DATA);
    /* an end record pointing outside the file */
    z[cap - 22] = 'P';
    PUT32(z + cap - 22 + 16, 0xfffffff0u);
    assert_int_equal(fsx_write_atomic(path, z, cap, 0644, 0, &e), 0);
    assert_int_equal(safety_classify_file(path, "model.zip", &v, &e), 0);
    assert_int_equal(v.cls, SAFETY_DATA);
    fsx_remove_tree(dir);
    free(path);
    free(z);
#undef PUT16
#undef PUT32
}

static void
safety_flags_code(void **state)
{
    (void)state;
    struct safety_verdict v;
    classify_vec("modeling_x.py", &v);
    assert_int_equal(v.cls, SAFETY_CODE);
    assert_string_equal(v.format, "python");
    classify_vec("script.sh", &v);
    assert_int_equal(v.cls, SAFETY_CODE);
    assert_string_equal(v.format, "script");

    classify_mem("run", "#!/usr/bin/env python3\nprint(1)\n", 31, &v);
    assert_int_equal(v.cls, SAFETY_CODE);
    assert_string_equal(v.format, "python");
    classify_mem("libx.so.1.2", "", 0, &v);
    assert_int_equal(v.cls, SAFETY_CODE);
    assert_string_equal(v.format, "shared-object");
    classify_mem("x.PYC", "\x55\x0d\x0d\x0a", 4, &v);
    assert_string_equal(v.format, "python-bytecode");
    classify_mem("tool.exe", "", 0, &v);
    assert_int_equal(v.cls, SAFETY_CODE);

    uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    classify_mem("weights.dat", elf, sizeof elf, &v);
    assert_int_equal(v.cls, SAFETY_CODE);
    assert_string_equal(v.format, "elf");
    uint8_t pe[128] = {'M', 'Z'};
    pe[0x3c] = 0x40;
    memcpy(pe + 0x40, "PE\0\0", 4);
    classify_mem("a.dat", pe, sizeof pe, &v);
    assert_string_equal(v.format, "pe");
    /* "MZ" alone is text, not an executable */
    classify_mem("notes.txt", "MZ is a postcode\n", 17, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    uint8_t macho[32] = {0xcf, 0xfa, 0xed, 0xfe};
    classify_mem("a.dat", macho, sizeof macho, &v);
    assert_string_equal(v.format, "mach-o");
}

static void
safety_recognises_weights(void **state)
{
    (void)state;
    struct safety_verdict v;
    uint8_t g[32] = {'G', 'G', 'U', 'F', 3};
    classify_mem("m.gguf", g, sizeof g, &v);
    assert_int_equal(v.cls, SAFETY_WEIGHTS);
    assert_string_equal(v.format, "gguf");
    uint8_t st[16] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    classify_mem("m.safetensors", st, 12, &v);
    assert_int_equal(v.cls, SAFETY_WEIGHTS);
    assert_string_equal(v.format, "safetensors");
    /* a header length beyond the file is not safetensors */
    st[0] = 200;
    classify_mem("m.safetensors", st, 12, &v);
    assert_int_not_equal(v.cls, SAFETY_WEIGHTS);
    /* the real test models */
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    char *path = fsx_join(shared, "models/stories260K-q8_0.gguf");
    struct al_err e = {0};
    if (safety_classify_file(path, "stories260K-q8_0.gguf", &v, &e) == 0)
        assert_int_equal(v.cls, SAFETY_WEIGHTS);
    free(path);
}

static void
safety_leaves_ordinary_data_alone(void **state)
{
    (void)state;
    struct safety_verdict v;
    classify_vec("config.json", &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    assert_string_equal(v.format, "json");
    classify_vec("model-card.md", &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    assert_string_equal(v.format, "text");
    /* text under a pickle extension is still text */
    static const char *const texts[] = {
        "(hello world)\n", "cat\ndog\n", "S'quoted'\nbut not a pickle", "I am text.\n",
        "Lorem ipsum dolor sit amet.", "(((((((((",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        classify_mem("vocab.bin", texts[i], strlen(texts[i]), &v);
        if (v.cls != SAFETY_DATA)
            fail_msg("text %zu \"%s\" classified %s: %s", i, texts[i], safety_class_name(v.cls),
                     v.reason);
        classify_mem("notes.txt", texts[i], strlen(texts[i]), &v);
        assert_int_equal(v.cls, SAFETY_DATA);
    }
    /* structurally a pickle, but harmless: flagged only under a pickle extension */
    classify_mem("notes.txt", "}]})(.", 6, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    classify_mem("x.pkl", "}]})(.", 6, &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    /* a llama2.c checkpoint .bin starts with int32 config fields, not opcodes */
    uint8_t ck[64] = {0x20, 0x01, 0, 0, 0x00, 0x03, 0, 0, 6, 0, 0, 0};
    classify_mem("model.bin", ck, sizeof ck, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    assert_string_equal(v.format, "binary");
    /* random-looking binary starting like PROTO but not walking as a pickle */
    uint8_t rnd[64];
    for (size_t i = 0; i < sizeof rnd; i++)
        rnd[i] = (uint8_t)(i * 37 + 11);
    rnd[0] = 0x80;
    rnd[1] = 0x02;
    rnd[2] = 0x00;
    classify_mem("blob.dat", rnd, sizeof rnd, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    classify_mem("empty.bin", "", 0, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    assert_string_equal(v.format, "empty");
    assert_string_equal(safety_class_name(SAFETY_CODE), "code");
}

static void
safety_flags_truncated_pickle_head(void **state)
{
    (void)state;
    /* a torch legacy checkpoint: protocol 2 then a huge BINBYTES argument past the window */
    uint8_t h[64] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50,
                     0x19, '.', 0x80, 0x02, '}', 'q', 0x00, '(', 'X', 0x04, 0, 0, 0, 'a', 'b', 'c',
                     'd', 'q', 0x01, 'B', 0xff, 0xff, 0xff, 0x00};
    struct safety_verdict v;
    safety_classify("pytorch_model.bin", h, 37, 1u << 30, &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    /* numpy object arrays load through pickle */
    const char npy[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }";
    classify_mem("a.npy", npy, sizeof npy - 1, &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    const char npy2[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    classify_mem("a.npy", npy2, sizeof npy2 - 1, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
    /* compressed joblib */
    classify_mem("model.joblib", "\x78\x9c\x01\x02\x03\x04\x05\x06", 8, &v);
    assert_int_equal(v.cls, SAFETY_PICKLE);
    classify_mem("model.bin", "\x78\x9c\x01\x02\x03\x04\x05\x06", 8, &v);
    assert_int_equal(v.cls, SAFETY_DATA);
}

/* Random bytes under a pickle extension: the walk must (almost) never take them for a pickle.
 * Deterministic xorshift data; measured 0 of 200000 4 KiB heads and 1 of 200000 whole 64-byte
 * files when this test was written. */
static void
safety_random_binary_is_not_pickle(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ULL;
    uint8_t b[4096];
    int heads = 0, wholes = 0;
    for (int i = 0; i < 20000; i++) {
        for (size_t j = 0; j < sizeof b; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[j] = (uint8_t)x;
        }
        struct safety_verdict v;
        safety_classify("pytorch_model.bin", b, sizeof b, UINT64_C(1) << 33, &v);
        heads += v.cls != SAFETY_DATA;
        safety_classify("w.pkl", b, 64, 64, &v);
        wholes += v.cls != SAFETY_DATA;
    }
    assert_int_equal(heads, 0);
    assert_true(wholes <= 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(safety_flags_pickles_of_every_protocol),
        cmocka_unit_test(safety_flags_torch_zip),
        cmocka_unit_test(safety_lists_pickle_imports),
        cmocka_unit_test(safety_finds_pickle_member_in_central_directory),
        cmocka_unit_test(safety_flags_code),
        cmocka_unit_test(safety_recognises_weights),
        cmocka_unit_test(safety_leaves_ordinary_data_alone),
        cmocka_unit_test(safety_flags_truncated_pickle_head),
        cmocka_unit_test(safety_random_binary_is_not_pickle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
