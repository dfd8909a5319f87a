/* test_safetensors.c -- format/safetensors.c: crafted headers, good and hostile. Each case
 * builds the file bytes in memory (8-byte length, JSON, data) and checks the verdict and that
 * the error names the field or byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "util/err.h"
#include "util/fsx.h"
#include "util/xalloc.h"

/* header JSON, then data_len zero bytes; the returned buffer is owned */
static uint8_t *
st_make(const char *json, size_t data_len, size_t *len)
{
    size_t hl = strlen(json);
    *len = 8 + hl + data_len;
    uint8_t *b = xcalloc(*len, 1);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    return b;
}

static int
st_try(const char *json, size_t data_len, struct al_err *e)
{
    size_t len;
    uint8_t *b = st_make(json, data_len, &len);
    struct safetensors st;
    int rc = safetensors_parse(&st, b, len, len, "t.safetensors", e);
    safetensors_free(&st);
    free(b);
    return rc;
}

static void
safetensors_accepts_good_file(void **state)
{
    (void)state;
    const char *j = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
                    "\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}  ";
    size_t len;
    uint8_t *b = st_make(j, 20, &len);
    struct safetensors st;
    struct al_err e = {0};
    assert_int_equal(safetensors_parse(&st, b, len, len, "good", &e), 0);
    assert_int_equal(st.n_tensors, 2);
    assert_string_equal(st.tensors[0].name, "a"); /* sorted by offset */
    assert_int_equal(st.tensors[0].dtype, ST_F16);
    assert_int_equal(st.tensors[0].n_elems, 6);
    assert_int_equal(st.tensors[1].dtype, ST_F32);
    assert_int_equal(st.n_params, 8);
    assert_int_equal(st.n_meta, 1);
    assert_string_equal(st.meta[0].key, "format");
    assert_string_equal(st.meta[0].value, "pt");
    assert_int_equal(st.data_offset, 8 + strlen(j));
    safetensors_free(&st);
    free(b);
}

static void
safetensors_accepts_scalar_and_empty_tensor(void **state)
{
    (void)state;
    struct al_err e = {0};
    assert_int_equal(st_try("{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                            "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[8,8]}}",
                            8, &e), 0);
    assert_int_equal(st_try("{}", 0, &e), 0);
}

static void
safetensors_rejects_truncated(void **state)
{
    (void)state;
    const char *j = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    size_t len;
    uint8_t *b = st_make(j, 16, &len);
    struct safetensors st;
    struct al_err e = {0};
    /* the file is shorter than the header says */
    assert_int_equal(safetensors_parse(&st, b, 20, 20, "trunc", &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_non_null(strstr(e.msg, "beyond the end"));
    /* fewer than 8 bytes */
    assert_int_equal(safetensors_parse(&st, b, 5, 5, "trunc", &e), -1);
    assert_non_null(strstr(e.msg, "8-byte header length"));
    /* data cut short: tensor end beyond the file */
    assert_int_equal(safetensors_parse(&st, b, len - 4, len - 4, "trunc", &e), -1);
    assert_non_null(strstr(e.msg, "data_offsets end 16"));
    /* header present in full but the caller gave only part of it */
    assert_int_equal(safetensors_parse(&st, b, 30, len, "trunc", &e), -1);
    assert_non_null(strstr(e.msg, "truncated"));
    free(b);
}

static void
safetensors_rejects_overlapping_offsets(void **state)
{
    (void)state;
    struct al_err e = {0};
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                            12, &e), -1);
    assert_non_null(strstr(e.msg, "overlap"));
    /* a gap could hide bytes nobody hashes as a tensor */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                            12, &e), -1);
    assert_non_null(strstr(e.msg, "gap"));
    /* trailing bytes after the last tensor */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                            8, &e), -1);
    assert_non_null(strstr(e.msg, "cover 4 data bytes"));
    /* end before begin */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}",
                            4, &e), -1);
    assert_non_null(strstr(e.msg, "before begin"));
}

static void
safetensors_rejects_bad_dtype(void **state)
{
    (void)state;
    struct al_err e = {0};
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                            4, &e), -1);
    assert_int_equal(e.code, AL_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "F33"));
    assert_int_equal(st_try("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &e),
                     -1);
    assert_non_null(strstr(e.msg, "dtype"));
    /* size mismatch: 3 F16 are 6 bytes, not 8 */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                            8, &e), -1);
    assert_non_null(strstr(e.msg, "span 8 bytes"));
    /* sub-byte dtype must fill whole bytes */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}",
                            1, &e), -1);
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}",
                            2, &e), 0);
    /* unknown field, negative offset, metadata value not a string */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
                            "\"x\":1}}", 1, &e), -1);
    assert_non_null(strstr(e.msg, "unknown field"));
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
                            1, &e), -1);
    assert_int_equal(st_try("{\"__metadata__\":{\"k\":1}}", 0, &e), -1);
    assert_non_null(strstr(e.msg, "__metadata__"));
}

static void
safetensors_rejects_header_length_beyond_file(void **state)
{
    (void)state;
    uint8_t b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    struct safetensors st;
    struct al_err e = {0};
    assert_int_equal(safetensors_parse(&st, b, sizeof b, sizeof b, "huge", &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    assert_non_null(strstr(e.msg, "byte 0"));
    b[7] = 0;
    b[0] = 100;
    b[1] = b[2] = b[3] = b[4] = b[5] = b[6] = 0;
    assert_int_equal(safetensors_parse(&st, b, sizeof b, sizeof b, "long", &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_non_null(strstr(e.msg, "beyond the end"));
}

static void
safetensors_rejects_shape_overflow(void **state)
{
    (void)state;
    struct al_err e = {0};
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                            "\"data_offsets\":[0,4]}}", 4, &e), -1);
    assert_non_null(strstr(e.msg, "overflow"));
    /* product fits but bytes overflow */
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                            "\"data_offsets\":[0,8]}}", 8, &e), -1);
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                            "\"data_offsets\":[0,4]}}", 4, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
}

static void
safetensors_rejects_hostile_json(void **state)
{
    (void)state;
    struct al_err e = {0};
    assert_int_equal(st_try("{\"a\":[[[[[[[[[[1]]]]]]]]]]}", 0, &e), -1);
    assert_non_null(strstr(e.msg, "nests deeper"));
    assert_int_equal(st_try("[1,2]", 0, &e), -1);
    assert_int_equal(st_try("{\"a\":1,\"a\":2}", 0, &e), -1);
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}} x",
                            1, &e), -1);
    assert_non_null(strstr(e.msg, "JSON header"));
    assert_int_equal(st_try("{\"a\":\"\\u0000\"}", 0, &e), -1);
    assert_int_equal(st_try("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                            &e), -1);
    assert_int_equal(st_try("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}",
                            1, &e), -1);
}

static void
safetensors_open_reads_only_the_header(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_safetensorsXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = fsx_join(dir, "m.safetensors");
    const char *j = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[8,8],\"data_offsets\":[0,128]}}";
    size_t len;
    uint8_t *b = st_make(j, 128, &len);
    struct al_err e = {0};
    assert_int_equal(fsx_write_atomic(path, b, len, 0644, 0, &e), 0);
    struct safetensors st;
    assert_int_equal(safetensors_open(&st, path, &e), 0);
    assert_int_equal(st.n_tensors, 1);
    assert_int_equal(st.n_params, 64);
    assert_int_equal(st.file_size, len);
    safetensors_free(&st);
    /* truncate the file: open must fail with a message, not crash */
    assert_int_equal(truncate(path, 8 + (off_t)strlen(j) / 2), 0);
    assert_int_equal(safetensors_open(&st, path, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_int_equal(truncate(path, 3), 0);
    assert_int_equal(safetensors_open(&st, path, &e), -1);
    safetensors_free(&st);
    free(b);
    fsx_remove_tree(dir);
    free(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(safetensors_accepts_good_file),
        cmocka_unit_test(safetensors_accepts_scalar_and_empty_tensor),
        cmocka_unit_test(safetensors_rejects_truncated),
        cmocka_unit_test(safetensors_rejects_overlapping_offsets),
        cmocka_unit_test(safetensors_rejects_bad_dtype),
        cmocka_unit_test(safetensors_rejects_header_length_beyond_file),
        cmocka_unit_test(safetensors_rejects_shape_overflow),
        cmocka_unit_test(safetensors_rejects_hostile_json),
        cmocka_unit_test(safetensors_open_reads_only_the_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
