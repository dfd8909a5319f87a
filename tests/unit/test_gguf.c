/* test_gguf.c -- the GGUF reader on the real models in ../shared/models, on every truncation
 * of a small file, and on hand-made hostile headers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/xalloc.h"

static char *
model_path(const char *name)
{
    const char *shared = getenv("SHARED");
    return xasprintf("%s/models/%s", shared ? shared : "../shared", name);
}

static void
gguf_reads_stories_metadata(void **state)
{
    (void)state;
    char *p = model_path("stories260K-f32.gguf");
    struct gguf g;
    struct al_err e = {0};
    assert_int_equal(gguf_open(&g, p, NULL, &e), 0);
    assert_true(g.version == 2 || g.version == 3);
    struct gguf_str arch;
    assert_int_equal(gguf_get_str(&g, "general.architecture", &arch, &e), 0);
    assert_true(gguf_str_eq(arch, "llama"));
    uint32_t n_embd = 0, n_layer = 0;
    assert_int_equal(gguf_get_u32(&g, "llama.embedding_length", &n_embd, &e), 0);
    assert_int_equal(gguf_get_u32(&g, "llama.block_count", &n_layer, &e), 0);
    assert_int_equal(n_embd, 64);
    assert_int_equal(n_layer, 5);
    struct gguf_str *toks = NULL;
    uint64_t n = 0;
    assert_int_equal(gguf_get_arr_str(&g, "tokenizer.ggml.tokens", &toks, &n, &e), 0);
    assert_int_equal(n, 512);
    free(toks);
    float *scores = NULL;
    assert_int_equal(gguf_get_arr_f32(&g, "tokenizer.ggml.scores", &scores, &n, &e), 0);
    assert_int_equal(n, 512);
    free(scores);
    const struct gguf_tensor *t = gguf_find_tensor(&g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    assert_int_equal(t->type, GGML_TYPE_F32);
    assert_non_null(t->data);
    assert_int_equal(gguf_get_u32(&g, "no.such.key", &n_embd, &e), 1);
    /* a string key read as an integer is a type error naming the key */
    assert_int_equal(gguf_get_u32(&g, "general.architecture", &n_embd, &e), -1);
    assert_non_null(strstr(e.msg, "general.architecture"));
    gguf_close(&g);
    free(p);
}

static void
gguf_opens_every_shared_model(void **state)
{
    (void)state;
    static const char *names[] = {
        "stories260K-f32.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf",
        "llama2-tiny-random-f16.gguf", "llama-k-small-f16.gguf", "llama-k-small-q4_0.gguf",
        "llama-k-small-q4_1.gguf", "llama-k-small-q5_0.gguf", "llama-k-small-q8_0.gguf",
        "llama-k-small-q4_k_m.gguf", "llama-k-small-q5_k_m.gguf", "llama-k-small-q6_k.gguf",
        "qwen2-k-small-q4_k_m.gguf",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = model_path(names[i]);
        struct gguf g;
        struct al_err e = {0};
        int rc = gguf_open(&g, p, NULL, &e);
        if (rc != 0)
            fail_msg("%s: %s", names[i], e.msg);
        assert_true(g.n_tensors > 0);
        for (uint64_t k = 0; k < g.n_tensors; k++) {
            const struct gguf_tensor *t = &g.tensors[k];
            assert_non_null(t->data);
            assert_true(t->data + t->nbytes <= g.base + g.size);
        }
        gguf_close(&g);
        free(p);
    }
}

/* Every prefix of a real file must fail cleanly (header) or parse header-only (data past the
 * prefix is only range-checked against the claimed file size). */
static void
gguf_truncations_fail_cleanly(void **state)
{
    (void)state;
    char *p = model_path("stories260K-q4_0.gguf");
    char *data = NULL;
    size_t len = 0;
    struct al_err e = {0};
    assert_int_equal(fsx_read_file(p, 1u << 24, &data, &len, &e), 0);
    size_t step = 1;
    for (size_t cut = 0; cut < len; cut += step) {
        if (cut > 20000)
            step = 4099;
        uint8_t *copy = xmalloc(cut ? cut : 1);
        memcpy(copy, data, cut);
        struct gguf g;
        /* truncated file: the file size is the cut, so any tensor data past it is an error */
        int rc = gguf_parse(&g, copy, cut, cut, "cut", NULL, &e);
        if (rc == 0)
            fail_msg("truncation at %zu of %zu accepted", cut, len);
        gguf_close(&g);
        free(copy);
    }
    free(data);
    free(p);
}

static void
put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {v, v >> 8, v >> 16, v >> 24};
    buf_append(b, x, 4);
}

static void
put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void
put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    buf_puts(b, s);
}

static int
parse_buf(struct buf *b, struct al_err *e)
{
    struct gguf g;
    int rc = gguf_parse(&g, (const uint8_t *)b->data, b->len, b->len, "hostile", NULL, e);
    gguf_close(&g);
    return rc;
}

static void
gguf_rejects_hostile_headers(void **state)
{
    (void)state;
    struct al_err e = {0};
    struct buf b;

    /* huge kv count: refused before any allocation */
    buf_init(&b);
    put_u32(&b, GGUF_MAGIC); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, UINT64_C(1) << 19);
    assert_int_equal(parse_buf(&b, &e), -1);
    assert_non_null(strstr(e.msg, "more than"));
    buf_free(&b);

    /* string length beyond the file */
    buf_init(&b);
    put_u32(&b, GGUF_MAGIC); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 1);
    put_u64(&b, UINT64_C(1) << 60);
    assert_int_equal(parse_buf(&b, &e), -1);
    buf_free(&b);

    /* array of 2^61 uint32 */
    buf_init(&b);
    put_u32(&b, GGUF_MAGIC); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 1);
    put_str(&b, "a"); put_u32(&b, GGUF_VT_ARRAY); put_u32(&b, GGUF_VT_UINT32);
    put_u64(&b, UINT64_C(1) << 61);
    assert_int_equal(parse_buf(&b, &e), -1);
    assert_non_null(strstr(e.msg, "'a'"));
    buf_free(&b);

    /* duplicate key */
    buf_init(&b);
    put_u32(&b, GGUF_MAGIC); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 2);
    put_str(&b, "k"); put_u32(&b, GGUF_VT_UINT8); buf_putc(&b, 1);
    put_str(&b, "k"); put_u32(&b, GGUF_VT_UINT8); buf_putc(&b, 2);
    assert_int_equal(parse_buf(&b, &e), -1);
    assert_non_null(strstr(e.msg, "duplicate key"));
    buf_free(&b);

    /* bad alignment */
    buf_init(&b);
    put_u32(&b, GGUF_MAGIC); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 1);
    put_str(&b, "general.alignment"); put_u32(&b, GGUF_VT_UINT32); put_u32(&b, 48);
    assert_int_equal(parse_buf(&b, &e), -1);
    assert_non_null(strstr(e.msg, "power of two"));
    buf_free(&b);

    /* tensor past end, unknown type, overlapping tensors */
    for (int variant = 0; variant < 3; variant++) {
        buf_init(&b);
        put_u32(&b, GGUF_MAGIC); put_u32(&b, 3); put_u64(&b, 2); put_u64(&b, 0);
        put_str(&b, "t0"); put_u32(&b, 1); put_u64(&b, 8);
        put_u32(&b, variant == 1 ? 99 : GGML_TYPE_F32); put_u64(&b, 0);
        put_str(&b, "t1"); put_u32(&b, 1); put_u64(&b, variant == 0 ? 1000 : 8);
        put_u32(&b, GGML_TYPE_F32); put_u64(&b, variant == 2 ? 0 : 32);
        while (b.len % 32)
            buf_putc(&b, 0);
        for (int i = 0; i < 64; i++)
            buf_putc(&b, 0);
        assert_int_equal(parse_buf(&b, &e), -1);
        buf_free(&b);
    }

    /* wrong magic and version 1 */
    buf_init(&b);
    put_u32(&b, 0x12345678); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 0);
    assert_int_equal(parse_buf(&b, &e), -1);
    assert_non_null(strstr(e.msg, "not a GGUF"));
    buf_free(&b);
    buf_init(&b);
    put_u32(&b, GGUF_MAGIC); put_u32(&b, 1); put_u64(&b, 0); put_u64(&b, 0);
    assert_int_equal(parse_buf(&b, &e), -1);
    assert_int_equal(e.code, AL_EUNSUPPORTED);
    buf_free(&b);
}

static void
gguf_close_is_safe_on_zeroed(void **state)
{
    (void)state;
    struct gguf g;
    memset(&g, 0, sizeof g);
    gguf_close(&g);
    gguf_close(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gguf_reads_stories_metadata),
        cmocka_unit_test(gguf_opens_every_shared_model),
        cmocka_unit_test(gguf_truncations_fail_cleanly),
        cmocka_unit_test(gguf_rejects_hostile_headers),
        cmocka_unit_test(gguf_close_is_safe_on_zeroed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
