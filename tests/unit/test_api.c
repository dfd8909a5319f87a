/* test_api.c -- the embeddings side of src/server/api.c: 'input' in each shape OpenAI accepts
 * (string, strings, token ids, arrays of token ids) and every malformed one refused with
 * param "input"; encoding_format and dimensions; and the response body, byte for byte, in
 * both encodings (float text that gives back the exact float32 values, base64 of
 * little-endian float32). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "util/buf.h"

static void
parse_ok(const char *body, struct api_request *req)
{
    struct api_error err;
    if (api_parse(API_EMBEDDINGS, body, strlen(body), req, &err) != 0)
        fail_msg("%s: %s", body, err.message);
}

/* The body must be refused with 400 naming param (and code, when given). */
static void
parse_bad(const char *body, const char *param, const char *code)
{
    struct api_request req;
    struct api_error err;
    if (api_parse(API_EMBEDDINGS, body, strlen(body), &req, &err) == 0) {
        api_request_free(&req);
        fail_msg("accepted: %s", body);
    }
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, param);
    if (code)
        assert_string_equal(err.code, code);
    assert_true(strlen(err.message) > 0);
}

static void
input_in_every_openai_shape(void **state)
{
    (void)state;
    struct api_request r;
    parse_ok("{\"model\":\"m\",\"input\":\"Once upon a time\"}", &r);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0].text, "Once upon a time");
    assert_int_equal(r.inputs[0].len, 16);
    assert_null(r.inputs[0].ids);
    assert_int_equal(r.encoding, API_ENCODING_FLOAT);
    assert_int_equal(r.dimensions, 0);
    api_request_free(&r);

    parse_ok("{\"input\":[\"a\",\"b c\"],\"encoding_format\":\"base64\",\"dimensions\":64}", &r);
    assert_int_equal(r.n_inputs, 2);
    assert_string_equal(r.inputs[1].text, "b c");
    assert_int_equal(r.encoding, API_ENCODING_BASE64);
    assert_int_equal(r.dimensions, 64);
    api_request_free(&r);

    parse_ok("{\"input\":[1,403,0,2147483647]}", &r); /* one input, given as token ids */
    assert_int_equal(r.n_inputs, 1);
    assert_null(r.inputs[0].text);
    assert_int_equal(r.inputs[0].n_ids, 4);
    assert_int_equal(r.inputs[0].ids[1], 403);
    assert_int_equal(r.inputs[0].ids[3], 2147483647);
    api_request_free(&r);

    parse_ok("{\"input\":[[1,2],[3]],\"encoding_format\":null}", &r);
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.inputs[0].n_ids, 2);
    assert_int_equal(r.inputs[1].n_ids, 1);
    assert_int_equal(r.inputs[1].ids[0], 3);
    assert_int_equal(r.encoding, API_ENCODING_FLOAT);
    api_request_free(&r);

    /* the most inputs OpenAI allows */
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"input\":[");
    for (int i = 0; i < API_MAX_INPUTS; i++)
        buf_printf(&b, "%s\"x%d\"", i ? "," : "", i);
    buf_puts(&b, "]}");
    parse_ok(b.data, &r);
    assert_int_equal(r.n_inputs, API_MAX_INPUTS);
    api_request_free(&r);
    buf_free(&b);
}

static void
malformed_input_is_refused_by_name(void **state)
{
    (void)state;
    parse_bad("{\"model\":\"m\"}", "input", "missing_required_parameter");
    parse_bad("{\"input\":null}", "input", "missing_required_parameter");
    parse_bad("{\"input\":\"\"}", "input", "invalid_value");
    parse_bad("{\"input\":[]}", "input", "invalid_value");
    parse_bad("{\"input\":[\"ok\",\"\"]}", "input", "invalid_value");
    parse_bad("{\"input\":[[]]}", "input", "invalid_value");
    parse_bad("{\"input\":5}", "input", "invalid_type");
    parse_bad("{\"input\":{}}", "input", "invalid_type");
    parse_bad("{\"input\":true}", "input", "invalid_type");
    parse_bad("{\"input\":[1.5]}", "input", "invalid_type");
    parse_bad("{\"input\":[null]}", "input", "invalid_type");
    parse_bad("{\"input\":[\"a\",[1]]}", "input", "invalid_type");
    parse_bad("{\"input\":[[1],\"a\"]}", "input", "invalid_type");
    parse_bad("{\"input\":[1,\"a\"]}", "input", "invalid_type");
    parse_bad("{\"input\":[[1,[2]]]}", "input", "invalid_type");
    parse_bad("{\"input\":[-1]}", "input", "invalid_value");
    parse_bad("{\"input\":[[2147483648]]}", "input", "invalid_value");
    parse_bad("{\"input\":\"x\",\"encoding_format\":\"int8\"}", "encoding_format",
              "invalid_value");
    parse_bad("{\"input\":\"x\",\"encoding_format\":1}", "encoding_format", "invalid_type");
    parse_bad("{\"input\":\"x\",\"dimensions\":0}", "dimensions", "invalid_value");
    parse_bad("{\"input\":\"x\",\"dimensions\":\"64\"}", "dimensions", "invalid_type");
    parse_bad("{\"input\":\"x\",\"model\":5}", "model", "invalid_type");
    parse_bad("{\"input\":\"x\",\"input\":\"y\"}", "", "invalid_json");

    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"input\":[");
    for (int i = 0; i <= API_MAX_INPUTS; i++)
        buf_printf(&b, "%s\"x\"", i ? "," : "");
    buf_puts(&b, "]}");
    parse_bad(b.data, "input", "invalid_value");
    buf_free(&b);
}

static void
float_body_has_openai_shape_and_exact_values(void **state)
{
    (void)state;
    const float v[6] = {1.0f, -2.5f, 0.1f, 0.0f, 3.0e-7f, -0.333333343f};
    struct buf b;
    buf_init(&b);
    assert_int_equal(api_embeddings_body(&b, v, 2, 3, API_ENCODING_FLOAT, "m\"x", 7), 0);
    assert_string_equal(b.data,
                        "{\"object\":\"list\",\"data\":["
                        "{\"object\":\"embedding\",\"index\":0,\"embedding\":[1,-2.5,0.100000001]},"
                        "{\"object\":\"embedding\",\"index\":1,\"embedding\":"
                        "[0,3.00000011e-07,-0.333333343]}],"
                        "\"model\":\"m\\\"x\",\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}");
    /* the body is JSON, and every number reads back as the same float32 */
    json_error_t je;
    json_t *o = json_loads(b.data, 0, &je);
    assert_non_null(o);
    json_t *data = json_object_get(o, "data");
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_object_get(json_array_get(data, i), "embedding");
        for (size_t j = 0; j < 3; j++)
            assert_true((float)json_number_value(json_array_get(e, j)) == v[i * 3 + j]);
    }
    json_decref(o);
    buf_free(&b);
}

static void
base64_body_is_little_endian_float32(void **state)
{
    (void)state;
    const float v[2] = {1.0f, -2.0f}; /* 00 00 80 3f, 00 00 00 c0 */
    struct buf b;
    buf_init(&b);
    assert_int_equal(api_embeddings_body(&b, v, 1, 2, API_ENCODING_BASE64, "m", 3), 0);
    assert_string_equal(b.data, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                                "\"embedding\":\"AACAPwAAAMA=\"}],\"model\":\"m\",\"usage\":"
                                "{\"prompt_tokens\":3,\"total_tokens\":3}}");
    buf_free(&b);
}

static void
non_finite_values_are_refused(void **state)
{
    (void)state;
    float v[3] = {0.5f, NAN, 0.5f};
    struct buf b;
    buf_init(&b);
    assert_int_equal(api_embeddings_body(&b, v, 1, 3, API_ENCODING_FLOAT, "m", 1), -1);
    assert_int_equal(b.len, 0);
    v[1] = INFINITY;
    assert_int_equal(api_embeddings_body(&b, v, 1, 3, API_ENCODING_BASE64, "m", 1), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(input_in_every_openai_shape),
        cmocka_unit_test(malformed_input_is_refused_by_name),
        cmocka_unit_test(float_body_has_openai_shape_and_exact_values),
        cmocka_unit_test(base64_body_is_little_endian_float32),
        cmocka_unit_test(non_finite_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
