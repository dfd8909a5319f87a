/* test_bom.c -- transfer/bom.c: build + parse round trip, model metadata, strict rejections.
 * Every BOM built here is also written to build/results/boms/unit-*.json, where
 * tests/e2e/bom_cyclonedx.sh validates it with the official CycloneDX 1.6 validator. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/bom.h"
#include "util/err.h"
#include "util/fsx.h"
#include "util/xalloc.h"

#define BOM_OUT "build/results/boms"

static const char *
shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s ? s : "../shared";
}

static void
save_bom(const char *name, const char *text)
{
    struct al_err e = {0};
    assert_int_equal(fsx_mkdir_p(BOM_OUT, 0755, &e), 0);
    char *path = xasprintf("%s/%s", BOM_OUT, name);
    assert_int_equal(fsx_write_atomic(path, text, strlen(text), 0644, 0, &e), 0);
    free(path);
}

static void
fill_file(struct bom_file *f, const char *path, uint64_t size, uint8_t seed,
          enum safety_class cls, const char *format)
{
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->size = size;
    for (int i = 0; i < SHA256_LEN; i++)
        f->sha256[i] = (uint8_t)(seed + i * 7);
    f->safety.cls = cls;
    snprintf(f->safety.format, sizeof f->safety.format, "%s", format);
    snprintf(f->safety.reason, sizeof f->safety.reason, "test reason for %s", format);
}

/* A small safetensors file on disk for bom_model_meta. */
static char *
write_safetensors(const char *dir)
{
    const char *j = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}";
    size_t hl = strlen(j), len = 8 + hl + 20;
    uint8_t *b = xcalloc(len, 1);
    b[0] = (uint8_t)hl;
    memcpy(b + 8, j, hl);
    char *path = fsx_join(dir, "model.safetensors");
    struct al_err e = {0};
    assert_int_equal(fsx_write_atomic(path, b, len, 0644, 0, &e), 0);
    free(b);
    return path;
}

static void
bom_round_trip_with_models(void **state)
{
    (void)state;
    struct al_err e = {0};
    struct bom_file files[6];
    char *gguf_path = fsx_join(shared_dir(), "models/stories260K-q4_0.gguf");
    char dir[] = "/tmp/test_bomXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *st_path = write_safetensors(dir);

    fill_file(&files[0], "payload/stories260K-q4_0.gguf", 277024, 1, SAFETY_WEIGHTS, "gguf");
    assert_int_equal(bom_model_meta(gguf_path, &files[0].safety, &files[0].meta, &e), 0);
    assert_non_null(files[0].meta);
    json_t *m = files[0].meta;
    assert_string_equal(json_string_value(json_object_get(m, "architecture")), "llama");
    assert_int_equal(json_integer_value(json_object_get(m, "vocab_size")), 512);
    assert_true(json_integer_value(json_object_get(m, "parameters")) > 200000);
    assert_true(json_array_size(json_object_get(m, "quantization")) >= 2);

    fill_file(&files[1], "payload/model.safetensors", 48, 2, SAFETY_WEIGHTS, "safetensors");
    assert_int_equal(bom_model_meta(st_path, &files[1].safety, &files[1].meta, &e), 0);
    assert_int_equal(json_integer_value(json_object_get(files[1].meta, "parameters")), 7);
    assert_int_equal(json_array_size(json_object_get(files[1].meta, "dtypes")), 2);

    fill_file(&files[2], "payload/pytorch_model.bin", 1234, 3, SAFETY_PICKLE, "zip-pickle");
    snprintf(files[2].safety.imports, sizeof files[2].safety.imports,
             "collections.OrderedDict, torch._utils._rebuild_tensor_v2");
    fill_file(&files[3], "payload/modeling_x.py", 31, 4, SAFETY_CODE, "python");
    fill_file(&files[4], "payload/sub dir/ünïcödé.json", 0, 5, SAFETY_DATA, "json");
    fill_file(&files[5], "payload/huge.bin", UINT64_C(18446744073709551615), 6, SAFETY_DATA,
              "binary");
    /* non-weights get no metadata */
    void *none = (void *)1;
    assert_int_equal(bom_model_meta(st_path, &files[2].safety, &none, &e), 0);
    assert_null(none);

    struct bom_info info = {
        .name = "stories", .version = "1.0.0", .creator = "Jane Doe <jane@example.org>",
        .source = "https://huggingface.co/karpathy/tinyllamas", .license = "mit",
        .created = 1795000000,
    };
    char *text = bom_build(&info, files, 6, &e);
    assert_non_null(text);
    save_bom("unit-models.json", text);
    assert_non_null(strstr(text, "\"specVersion\": \"1.6\""));
    assert_non_null(strstr(text, "\"id\": \"MIT\""));
    assert_non_null(strstr(text, "\"machine-learning-model\""));
    assert_non_null(strstr(text, "\"airlock:gguf.architecture\""));
    assert_non_null(strstr(text, "\"architectureFamily\": \"llama\""));
    assert_non_null(strstr(text, "\"airlock:safetensors.dtypes\""));
    assert_non_null(strstr(text, "\"value\": \"F16,F32\""));
    assert_non_null(strstr(text, "\"value\": \"pickle\""));
    assert_non_null(strstr(text, "\"value\": \"code\""));
    assert_non_null(strstr(text, "\"airlock:pickle.imports\""));

    struct bom_parsed p;
    assert_int_equal(bom_parse(text, strlen(text), &p, &e), 0);
    assert_string_equal(p.name, "stories");
    assert_string_equal(p.version, "1.0.0");
    assert_int_equal(p.n, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(p.files[i].path, files[i].path);
        assert_true(p.files[i].size == files[i].size);
        assert_memory_equal(p.files[i].sha256, files[i].sha256, SHA256_LEN);
        assert_int_equal(p.files[i].safety.cls, files[i].safety.cls);
        assert_string_equal(p.files[i].safety.format, files[i].safety.format);
    }
    bom_parsed_free(&p);
    free(text);
    for (int i = 0; i < 6; i++)
        bom_file_free(&files[i]);
    free(gguf_path);
    free(st_path);
    fsx_remove_tree(dir);
}

static void
bom_minimal_and_odd_fields(void **state)
{
    (void)state;
    struct al_err e = {0};
    /* no files, default creator, licence that is not an SPDX id, a source that is no URL */
    struct bom_info info = {.name = "empty", .version = "0", .source = "USB stick from lab 3",
                            .license = "Llama 2 Community License", .created = 0};
    char *text = bom_build(&info, NULL, 0, &e);
    assert_non_null(text);
    save_bom("unit-minimal.json", text);
    assert_non_null(strstr(text, "\"name\": \"Llama 2 Community License\""));
    assert_non_null(strstr(text, "\"airlock:source\""));
    assert_non_null(strstr(text, "\"type\": \"data\""));
    assert_non_null(strstr(text, "1970-01-01T00:00:00Z"));
    struct bom_parsed p;
    assert_int_equal(bom_parse(text, strlen(text), &p, &e), 0);
    assert_int_equal(p.n, 0);
    bom_parsed_free(&p);
    free(text);

    /* two builds differ in serial number (random v4 UUID) */
    info.source = NULL;
    info.license = NULL;
    char *a = bom_build(&info, NULL, 0, &e), *b = bom_build(&info, NULL, 0, &e);
    assert_string_not_equal(strstr(a, "urn:uuid:"), strstr(b, "urn:uuid:"));
    save_bom("unit-bare.json", a);
    free(a);
    free(b);

    /* required fields and UTF-8 */
    info.name = NULL;
    assert_null(bom_build(&info, NULL, 0, &e));
    assert_int_equal(e.code, AL_EUSAGE);
    info.name = "x";
    info.creator = "bad \xff byte";
    assert_null(bom_build(&info, NULL, 0, &e));
    assert_non_null(strstr(e.msg, "creator"));
    info.creator = "ok";
    struct bom_file f;
    fill_file(&f, "payload/\xfe.bin", 1, 1, SAFETY_DATA, "binary");
    assert_null(bom_build(&info, &f, 1, &e));
    assert_non_null(strstr(e.msg, "UTF-8"));
    bom_file_free(&f);
}

/* Build a one-file BOM, then replace `from` with `to` in its text and expect rejection. */
static void
expect_reject(const char *from, const char *to, const char *msg_part)
{
    struct al_err e = {0};
    struct bom_file f[2];
    fill_file(&f[0], "payload/a.bin", 10, 9, SAFETY_DATA, "binary");
    fill_file(&f[1], "payload/b.txt", 20, 10, SAFETY_DATA, "text");
    struct bom_info info = {.name = "n", .version = "v", .creator = "c", .created = 1};
    char *text = bom_build(&info, f, 2, &e);
    assert_non_null(text);
    char *at = strstr(text, from);
    if (!at)
        fail_msg("pattern %s not in BOM", from);
    char *edited = xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    struct bom_parsed p;
    if (bom_parse(edited, strlen(edited), &p, &e) == 0)
        fail_msg("edit %s -> %s accepted", from, to);
    if (msg_part && !strstr(e.msg, msg_part))
        fail_msg("edit %s -> %s: message \"%s\" lacks \"%s\"", from, to, e.msg, msg_part);
    free(edited);
    free(text);
    bom_file_free(&f[0]);
    bom_file_free(&f[1]);
}

static void
bom_parse_rejects_hostile_input(void **state)
{
    (void)state;
    expect_reject("payload/b.txt\",\n      \"hashes", "payload/a.bin\",\n      \"hashes",
                  "listed twice");
    expect_reject("\"content\": \"09", "\"content\": \"zz", "hex");
    expect_reject("\"content\": \"09", "\"content\": \"0", "hex");
    expect_reject("\"SHA-256\"", "\"SHA-512\"", "no SHA-256");
    expect_reject("\"airlock:size\"", "\"airlock:sighs\"", "airlock:size");
    expect_reject("\"value\": \"10\"", "\"value\": \"010\"", "not a byte count");
    expect_reject("\"value\": \"10\"", "\"value\": \"-1\"", "not a byte count");
    expect_reject("\"value\": \"10\"", "\"value\": \"99999999999999999999\"", "byte count");
    expect_reject("\"value\": \"10\"", "\"value\": 10", "byte count");
    expect_reject("\"name\": \"payload/a.bin\"", "\"name\": \"../a.bin\"", "safe relative");
    expect_reject("\"name\": \"payload/a.bin\"", "\"name\": \"/etc/passwd\"", "safe relative");
    expect_reject("\"name\": \"payload/a.bin\"", "\"name\": \"payload//a.bin\"", "safe relative");
    expect_reject("\"name\": \"payload/a.bin\"", "\"name\": \"payload/\\u0000x\"", NULL);
    expect_reject("\"name\": \"payload/a.bin\"", "\"name\": \"a\\nb\"", "safe relative");
    expect_reject("\"specVersion\": \"1.6\"", "\"specVersion\": \"1.5\"", "1.6");
    expect_reject("\"version\": \"v\"", "\"version\": 7", "name and version");
    expect_reject("\"type\": \"file\"", "\"type\": \"library\"", "type");
    expect_reject("\"bomFormat\"", "\"bomFormat\": \"x\", \"bomFormat\"", NULL);
    expect_reject("\"components\": [", "\"components\": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]],"
                  "\"x\": [", "nests deeper");
    expect_reject("\"components\": [", "\"components\": {\"a\": [", NULL);
    expect_reject("\"alg\": \"SHA-256\",", "\"alg\": \"SHA-256\", \"content\": \"00\"}, "
                  "{\"alg\": \"SHA-256\",", NULL);

    struct bom_parsed p;
    struct al_err e = {0};
    assert_int_equal(bom_parse("[]", 2, &p, &e), -1);
    assert_int_equal(bom_parse("{", 1, &p, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_int_equal(bom_parse("", 0, &p, &e), -1);
    bom_parsed_free(&p); /* safe after failure */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bom_round_trip_with_models),
        cmocka_unit_test(bom_minimal_and_odd_fields),
        cmocka_unit_test(bom_parse_rejects_hostile_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
