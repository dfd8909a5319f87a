/* test_grammar.c -- the JSON grammar (engine/grammar.c): hand-fed byte sequences accepted or
 * refused for json_object mode and many schemas, refused schema keywords, the token mask on
 * real vocabularies compared token by token with feeding each piece, and random walks that
 * pick uniformly among allowed tokens until end-of-generation, whose text must parse with
 * jansson and satisfy the schema. */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/grammar.h"
#include "engine/tokenizer.h"
#include "format/gguf.h"
#include "util/buf.h"
#include "util/xalloc.h"

static char *
shared_path(const char *rel)
{
    const char *shared = getenv("SHARED");
    return xasprintf("%s/%s", shared ? shared : "../shared", rel);
}

static struct tokenizer *
load_tok(const char *rel)
{
    char *p = shared_path(rel);
    struct gguf g;
    struct al_err e = {0};
    struct tokenizer *t = NULL;
    if (gguf_open(&g, p, NULL, &e) != 0)
        fail_msg("%s: %s", p, e.msg);
    if (tokenizer_load(&t, &g, &e) != 0)
        fail_msg("%s: %s", p, e.msg);
    gguf_close(&g);
    free(p);
    return t;
}

/* Loading qwen2's 150k-token vocabulary and its trie takes a few seconds under ASan: the
 * tests share one copy, made on first use and freed in the group teardown. */
struct vocab_fixture {
    const char *rel;
    struct tokenizer *tok;
    struct jgram_vocab *v;
};

static struct vocab_fixture fixtures[] = {
    {"vectors/tokenizer/ggml-vocab-qwen2.gguf", NULL, NULL},
    {"vectors/tokenizer/ggml-vocab-llama-spm.gguf", NULL, NULL},
    {"models/stories260K-f32.gguf", NULL, NULL},
};

static struct vocab_fixture *
fixture(const char *rel)
{
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        struct vocab_fixture *f = &fixtures[i];
        if (strcmp(f->rel, rel) != 0)
            continue;
        if (!f->tok) {
            f->tok = load_tok(rel);
            f->v = jgram_vocab_new(f->tok);
        }
        return f;
    }
    fail_msg("no fixture %s", rel);
    return NULL;
}

static int
fixtures_free(void **unused)
{
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        jgram_vocab_free(fixtures[i].v);
        tokenizer_free(fixtures[i].tok);
        fixtures[i].v = NULL;
        fixtures[i].tok = NULL;
    }
    return 0;
}

static json_t *
js(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v)
        fail_msg("bad test schema: %s: %s", je.text, text);
    return v;
}

static struct jgram *
compile_or_fail(const char *schema, const struct jgram_limits *lim)
{
    json_t *s = schema ? js(schema) : NULL;
    struct jgram *g = NULL;
    struct al_err e = {0};
    if (jgram_new(s, lim, &g, &e) != 0)
        fail_msg("schema refused: %s: %s", e.msg, schema);
    json_decref(s);
    return g;
}

/* Whole text accepted and complete? Fed in one call and byte by byte, which must agree. */
static bool
accepts(const struct jgram *g, const char *text)
{
    struct jgram_state a, b;
    jgram_state_init(g, &a);
    jgram_state_init(g, &b);
    bool whole = jgram_state_feed(g, &a, text, strlen(text)) && jgram_state_done(g, &a);
    bool bytes = true;
    for (size_t i = 0; text[i] && bytes; i++)
        bytes = jgram_state_feed(g, &b, text + i, 1);
    bytes = bytes && jgram_state_done(g, &b);
    assert_int_equal(whole, bytes);
    return whole;
}

static void
expect(const struct jgram *g, const char *text, bool ok)
{
    if (accepts(g, text) != ok)
        fail_msg("expected %s: %s", ok ? "accept" : "reject", text);
}

/* ---- json_object mode ------------------------------------------------------------------ */

static void
object_mode_accepts_json_objects(void **unused)
{
    struct jgram *g = compile_or_fail(NULL, NULL);
    expect(g, "{}", true);
    expect(g, " {}", true);
    expect(g, "{\"a\":1}", true);
    expect(g, "{ \"a\" : 1 , \"b\" : [ ] }", true);
    expect(g, "{\n" "                       }", true); /* 24 bytes of whitespace */
    expect(g, "{ \n\t\"a\":\t1}", true);
    expect(g, "{\n  \"a\": [1, -2.5e+3, 0, true, false, null, \"x\"],\n  \"b\": {\"c\": {}}\n}",
           true);
    expect(g, "{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \\u00e9 \\ud83d\\ude00 \\n\\t\\\"\\\\\\/\"}",
           true);
    expect(g, "{\"\":\"\"}", true);
    expect(g, "{\"a\":-0.0E-0}", true);
    json_t *v = json_loads("{\"s\":\"\\ud83d\\ude00\"}", 0, NULL);
    assert_non_null(v); /* what the grammar allows, jansson parses */
    json_decref(v);
    jgram_free(g);
}

static void
object_mode_refuses_everything_else(void **unused)
{
    struct jgram *g = compile_or_fail(NULL, NULL);
    const char *bad[] = {
        "[]", "1", "\"x\"", "null", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}",
        "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":+1}",
        "{}}", "{} ", "{}x", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}", "{'a':1}",
        "{\"a\":\"\x01\"}", "{\"a\":\"\n\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\udc00\"}", "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\x80\"}", "{\"a\":\"\xe2\x82\"}",
        "{\n                         }", /* more whitespace than one gap may hold (24) */
        "{\n\n}", "{  }", "{\n }\n", "{\r\n}", "{\n \n}",
        "{\"a\":[1 2]}", "{\"a\" 1}", "{1:2}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(g, bad[i], false);
    jgram_free(g);
}

static void
feed_failure_leaves_state_unchanged(void **unused)
{
    struct jgram *g = compile_or_fail(NULL, NULL);
    struct jgram_state st, copy;
    jgram_state_init(g, &st);
    assert_true(jgram_state_feed(g, &st, "{\"a\":", 5));
    copy = st;
    assert_false(jgram_state_feed(g, &st, "1]", 2)); /* '1' fits, ']' does not */
    assert_memory_equal(&copy, &st, sizeof st);
    assert_false(jgram_state_done(g, &st));
    assert_true(jgram_state_feed(g, &st, "1}", 2));
    assert_true(jgram_state_done(g, &st));
    assert_true(jgram_state_closed(g, &st));
    assert_true(jgram_state_feed(g, &st, "", 0));
    jgram_free(g);
}

static void
caps_force_strings_and_numbers_to_close(void **unused)
{
    struct jgram_limits lim = {.max_string = 12, .max_number = 4, .max_items = 2, .max_ws = 1};
    struct jgram *g = compile_or_fail(NULL, &lim);
    expect(g, "{\"a\":\"123456789012\"}", true);
    expect(g, "{\"a\":\"1234567890123\"}", false);
    expect(g, "{\"a\":1234}", true);
    expect(g, "{\"a\":12345}", false);
    expect(g, "{\"a\":1.5e}", false);
    expect(g, "{\"a\":[1,2]}", true);
    expect(g, "{\"a\":[1,2,3]}", false);
    expect(g, "{\"a\":1,\"b\":2,\"c\":3}", false);
    expect(g, "{ \"a\":1}", true);
    expect(g, "{  \"a\":1}", false);
    /* an escape or a UTF-8 character that could not finish under the cap is refused at once */
    struct jgram_state st;
    jgram_state_init(g, &st);
    assert_true(jgram_state_feed(g, &st, "{\"a\":\"12345678901", 17));
    assert_false(jgram_state_feed(g, &st, "\\", 1));
    assert_false(jgram_state_feed(g, &st, "\xc3", 1));
    assert_true(jgram_state_feed(g, &st, "x", 1));
    assert_false(jgram_state_feed(g, &st, "x", 1));
    assert_true(jgram_state_feed(g, &st, "\"}", 2));
    jgram_state_init(g, &st);
    assert_true(jgram_state_feed(g, &st, "{\"a\":\"1", 7));
    assert_false(jgram_state_feed(g, &st, "\\ud800", 6)); /* the pair needs 12 bytes */
    assert_true(jgram_state_feed(g, &st, "\\u00e9", 6));
    jgram_state_init(g, &st);
    assert_true(jgram_state_feed(g, &st, "{\"a\":1.", 7));
    assert_false(jgram_state_feed(g, &st, "5e", 2)); /* the exponent digit would not fit */
    jgram_free(g);
}

/* xorshift64: a fixed seed gives the same documents and walks on every run */
static uint64_t
rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static json_t *
random_value(uint64_t *rng, int depth)
{
    static const char *const strs[] = {"", "a", "h\"i", "\\/", "caf\xc3\xa9", "\xf0\x9f\x98\x80",
                                       "\t\n", "x\x01y", "\xe2\x82\xac"};
    switch (rng_next(rng) % (depth > 3 ? 5 : 7)) {
    case 0:
        return json_integer((json_int_t)(rng_next(rng) % 2000000) - 1000000);
    case 1:
        return json_real(((double)(rng_next(rng) % 100000) - 50000) / 7.0);
    case 2:
        return json_string(strs[rng_next(rng) % (sizeof strs / sizeof strs[0])]);
    case 3:
        return json_boolean(rng_next(rng) & 1);
    case 4:
        return json_null();
    case 5: {
        json_t *a = json_array();
        for (uint64_t n = rng_next(rng) % 4; n > 0; n--)
            json_array_append_new(a, random_value(rng, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint64_t n = rng_next(rng) % 4; n > 0; n--) {
            char key[8];
            snprintf(key, sizeof key, "k%u", (unsigned)(rng_next(rng) % 5));
            json_object_set_new(o, key, random_value(rng, depth + 1));
        }
        return o;
    }
    }
}

/* Does the text break one of the grammar's deliberate caps that jansson does not have? */
static bool
beyond_caps(const char *t, size_t n)
{
    if (n > 0 && strchr(" \n\t\r", t[n - 1]))
        return true; /* trailing whitespace */
    for (size_t i = 0; i < n; i++) {
        /* a gap: at most one space or tab, then at most one newline and indentation */
        size_t run = 0, nl = 0, before = 0;
        while (i + run < n && t[i + run] && strchr(" \n\t\r", t[i + run])) {
            char c = t[i + run];
            if (c == '\r')
                return true;
            if (c == '\n')
                nl++;
            else if (!nl)
                before++;
            run++;
        }
        if (run > 24 || nl > 1 || before > 1)
            return true;
        if (t[i] == 'e' || t[i] == 'E') {
            size_t z = i + 1, digits = 0;
            if (z < n && (t[z] == '+' || t[z] == '-'))
                z++;
            while (z < n && t[z] >= '0' && t[z] <= '9') {
                digits++;
                z++;
            }
            if (digits > 2)
                return true;
        }
    }
    return false;
}

static void
object_mode_agrees_with_jansson_on_mutated_documents(void **unused)
{
    struct jgram *g = compile_or_fail(NULL, NULL);
    uint64_t rng = 88172645463325252ull;
    static const char alphabet[] = "{}[]\":,0123456789-+.eEtrufalsn \n\\u/bx\x01\xc3\xa9\x80";
    char doc[4096];
    int compared = 0;
    for (int it = 0; it < 400; it++) {
        json_t *o = json_object();
        for (uint64_t n = rng_next(&rng) % 4; n > 0; n--) {
            char key[8];
            snprintf(key, sizeof key, "k%u", (unsigned)(rng_next(&rng) % 5));
            json_object_set_new(o, key, random_value(&rng, 1));
        }
        size_t flags = rng_next(&rng) & 1 ? JSON_COMPACT : JSON_INDENT(rng_next(&rng) % 3);
        if (rng_next(&rng) & 1)
            flags |= JSON_ENSURE_ASCII;
        char *s = json_dumps(o, flags);
        size_t len = strlen(s);
        json_decref(o);
        if (!beyond_caps(s, len) && !accepts(g, s))
            fail_msg("valid document refused: %s", s);
        for (int m = 0; m < 10 && len + 2 < sizeof doc; m++) {
            memcpy(doc, s, len);
            size_t l = len, pos = rng_next(&rng) % (l + 1);
            char c = alphabet[rng_next(&rng) % (sizeof alphabet - 1)];
            switch (rng_next(&rng) % 3) {
            case 0:
                memmove(doc + pos + 1, doc + pos, l - pos);
                doc[pos] = c;
                l++;
                break;
            case 1:
                if (pos < l) {
                    memmove(doc + pos, doc + pos + 1, l - pos - 1);
                    l--;
                }
                break;
            default:
                if (pos < l)
                    doc[pos] = c;
            }
            if (beyond_caps(doc, l))
                continue;
            json_t *v = json_loadb(doc, l, 0, NULL);
            bool want = v && json_is_object(v);
            json_decref(v);
            struct jgram_state st;
            jgram_state_init(g, &st);
            bool got = jgram_state_feed(g, &st, doc, l) && jgram_state_done(g, &st);
            if (want != got)
                fail_msg("jansson %d, grammar %d: %.*s", want, got, (int)l, doc);
            compared++;
        }
        free(s);
    }
    assert_true(compared > 2000);
    jgram_free(g);
}

/* ---- schemas --------------------------------------------------------------------------- */

static void
schema_properties_in_order_required_enforced(void **unused)
{
    struct jgram *g = compile_or_fail(
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
        "\"age\":{\"type\":\"integer\"},\"score\":{\"type\":\"number\"},"
        "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"ok\"],"
        "\"additionalProperties\":false,\"title\":\"ignored\"}", NULL);
    expect(g, "{\"name\":\"x\",\"ok\":true}", true);
    expect(g, "{\"name\":\"x\",\"age\":3,\"score\":-1.5e2,\"ok\":false}", true);
    expect(g, "{\"name\":\"x\",\"score\":2,\"ok\":false}", true);
    expect(g, "{\"ok\":true,\"name\":\"x\"}", false);     /* schema order */
    expect(g, "{\"name\":\"x\"}", false);                  /* ok missing */
    expect(g, "{}", false);
    expect(g, "{\"name\":\"x\",\"age\":3.5,\"ok\":true}", false); /* integer */
    expect(g, "{\"name\":\"x\",\"other\":1,\"ok\":true}", false);
    expect(g, "{\"name\":1,\"ok\":true}", false);
    expect(g, "{\"name\":\"x\",\"ok\":null}", false);
    expect(g, "{\"name\":\"x\",\"age\":1,\"age\":2,\"ok\":true}", false);
    expect(g, "[]", false);
    jgram_free(g);
}

static void
schema_enum_const_and_type_lists(void **unused)
{
    struct jgram *g = compile_or_fail(
        "{\"properties\":{\"c\":{\"enum\":[\"red\",\"re\",1,12,1.5,null,true]},"
        "\"k\":{\"const\":\"fixed\"},\"m\":{\"type\":[\"string\",\"null\"]},"
        "\"u\":{\"enum\":[\"caf\\u00e9\",\"a\\\"b\"]}},\"required\":[\"c\",\"k\",\"m\"]}", NULL);
    expect(g, "{\"c\":\"red\",\"k\":\"fixed\",\"m\":null}", true);
    expect(g, "{\"c\":\"re\",\"k\":\"fixed\",\"m\":\"s\"}", true);
    expect(g, "{\"c\":1,\"k\":\"fixed\",\"m\":null}", true);
    expect(g, "{\"c\":12,\"k\":\"fixed\",\"m\":null}", true);
    expect(g, "{\"c\":1.5,\"k\":\"fixed\",\"m\":null}", true);
    expect(g, "{\"c\":null,\"k\":\"fixed\",\"m\":null}", true);
    expect(g, "{\"c\":true,\"k\":\"fixed\",\"m\":null}", true);
    expect(g, "{\"c\":\"red\",\"k\":\"fixed\",\"m\":null,\"u\":\"caf\xc3\xa9\"}", true);
    expect(g, "{\"c\":\"red\",\"k\":\"fixed\",\"m\":null,\"u\":\"a\\\"b\"}", true);
    expect(g, "{\"c\":\"r\",\"k\":\"fixed\",\"m\":null}", false);
    expect(g, "{\"c\":2,\"k\":\"fixed\",\"m\":null}", false);
    expect(g, "{\"c\":false,\"k\":\"fixed\",\"m\":null}", false);
    expect(g, "{\"c\":\"red\",\"k\":\"other\",\"m\":null}", false);
    expect(g, "{\"c\":\"red\",\"k\":\"fixed\",\"m\":1}", false);
    jgram_free(g);

    g = compile_or_fail("{\"type\":\"object\",\"additionalProperties\":"
                        "{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}", NULL);
    expect(g, "{\"a\":[1,2],\"b\":[]}", true);
    expect(g, "{}", true);
    expect(g, "{\"a\":\"x\"}", false);
    expect(g, "{\"a\":[1.5]}", false);
    jgram_free(g);
    g = compile_or_fail("{\"type\":\"object\",\"additionalProperties\":false}", NULL);
    expect(g, "{}", true);
    expect(g, "{\"a\":1}", false);
    jgram_free(g);

    /* lengths count characters: an escape or a UTF-8 sequence is one */
    g = compile_or_fail("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", NULL);
    expect(g, "\"ab\"", true);
    expect(g, "\"a\\n\xc3\xa9\"", true);
    expect(g, "\"\\ud83d\\ude00\\u00e9\"", true);
    expect(g, "\"a\"", false);
    expect(g, "\"\"", false);
    expect(g, "\"abcd\"", false);
    expect(g, "\"\\ud83d\\ude00\\u00e9x\"", true); /* a surrogate pair is one character */
    expect(g, "\"\\ud83d\\ude00\\u00e9xy\"", false);
    jgram_free(g);

    g = compile_or_fail("{\"type\":\"integer\"}", NULL);
    expect(g, "0", true);
    expect(g, "-12", true);
    expect(g, "1.0", false);
    expect(g, "1e3", false);
    expect(g, "01", false);
    jgram_free(g);
    g = compile_or_fail("{\"type\":\"string\"}", NULL);
    expect(g, "\"\"", true);
    expect(g, "\"a\" ", false);
    jgram_free(g);
    g = compile_or_fail("true", NULL);
    expect(g, "[1,{\"a\":null}]", true);
    expect(g, "false", true);
    jgram_free(g);
}

static void
schema_arrays_nested_and_bounded(void **unused)
{
    struct jgram *g = compile_or_fail(
        "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"p\":"
        "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":2}},"
        "\"required\":[\"p\"]},\"minItems\":1,\"maxItems\":3}", NULL);
    expect(g, "[{\"p\":[]}]", true);
    expect(g, "[{\"p\":[1,2]},{\"p\":[3]}]", true);
    expect(g, "[ {\"p\": [1, 2]}, {\"p\": []}, {\"p\": [0]} ]", true);
    expect(g, "[]", false);
    expect(g, "[{\"p\":[1,2,3]}]", false);
    expect(g, "[{\"p\":[]},{\"p\":[]},{\"p\":[]},{\"p\":[]}]", false);
    expect(g, "[{}]", false);
    expect(g, "[{\"p\":[]}", false);
    jgram_free(g);
}

static void
schema_any_of_keeps_alternatives_until_they_differ(void **unused)
{
    struct jgram *g = compile_or_fail(
        "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"circle\"},"
        "\"r\":{\"type\":\"number\"}},\"required\":[\"kind\",\"r\"]},"
        "{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"rect\"},"
        "\"w\":{\"type\":\"number\"},\"h\":{\"type\":\"number\"}},"
        "\"required\":[\"kind\",\"w\",\"h\"]},"
        "{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"circle\"},"
        "\"d\":{\"type\":\"integer\"}},\"required\":[\"kind\",\"d\"]},"
        "{\"type\":\"null\"}, {\"type\":\"array\",\"items\":{\"type\":\"string\"}}],"
        "\"description\":\"a shape\"}", NULL);
    expect(g, "{\"kind\":\"circle\",\"r\":1.5}", true);
    expect(g, "{\"kind\":\"circle\",\"d\":2}", true);
    expect(g, "{\"kind\":\"rect\",\"w\":1,\"h\":2}", true);
    expect(g, "null", true);
    expect(g, "[\"a\",\"b\"]", true);
    expect(g, "{\"kind\":\"rect\",\"r\":1}", false);
    expect(g, "{\"kind\":\"circle\",\"d\":2.5}", false);
    expect(g, "{\"kind\":\"circle\",\"w\":1,\"h\":2}", false);
    expect(g, "[1]", false);
    jgram_free(g);

    g = compile_or_fail("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"string\"},"
                        "{\"anyOf\":[{\"type\":\"boolean\"},{\"enum\":[\"x\",2.5]}]}]}", NULL);
    expect(g, "3", true);
    expect(g, "2.5", true);
    expect(g, "2.6", false);
    expect(g, "\"x\"", true);
    expect(g, "false", true);
    expect(g, "null", false);
    jgram_free(g);
}

static void
schema_nested_and_recursive_alternatives_stay_live(void **unused)
{
    /* twelve non-recursive levels: flattened into one fork */
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 12; i++)
        buf_printf(&b, "{\"anyOf\":[{\"const\":%d},", i);
    buf_puts(&b, "{\"type\":\"string\"}");
    for (int i = 0; i < 12; i++)
        buf_puts(&b, "]}");
    struct jgram *g = compile_or_fail(b.data, NULL);
    expect(g, "\"deep\"", true);
    expect(g, "11", true);
    expect(g, "12", false);
    jgram_free(g);
    buf_free(&b);
    /* alternatives that recurse into themselves many ways: bounded work, still finishes */
    buf_init(&b);
    buf_puts(&b, "{\"$defs\":{");
    for (int i = 0; i < 20; i++)
        buf_printf(&b, "%s\"a%d\":{\"anyOf\":[{\"$ref\":\"#/$defs/a%d\"},"
                   "{\"$ref\":\"#/$defs/a%d\"},{\"type\":\"array\",\"items\":"
                   "{\"$ref\":\"#/$defs/a0\"}},{\"const\":%d}]}", i ? "," : "", i,
                   (i + 1) % 20, (i + 7) % 20, i);
    buf_puts(&b, "},\"$ref\":\"#/$defs/a0\"}");
    g = compile_or_fail(b.data, NULL);
    expect(g, "[[0],[3],0]", true);
    expect(g, "[[[7]]]", true);
    expect(g, "[20]", false);
    /* ambiguity beyond JGRAM_MAX_THREADS drops parses, never liveness: feed random bytes,
     * keep the accepted ones, and some byte must always remain acceptable */
    struct jgram_state st;
    jgram_state_init(g, &st);
    uint64_t rng = 7;
    for (int i = 0; i < 3000 && !jgram_state_closed(g, &st); i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        char c = "[]0123456789,"[(rng >> 33) % 13];
        (void)jgram_state_feed(g, &st, &c, 1);
        bool live = jgram_state_done(g, &st);
        for (int x = 1; x < 256 && !live; x++) {
            struct jgram_state tmp = st;
            char cx = (char)x;
            live = jgram_state_feed(g, &tmp, &cx, 1);
        }
        assert_true(live);
    }
    jgram_free(g);
    buf_free(&b);
}

static void
schema_refs_and_recursion(void **unused)
{
    struct jgram *g = compile_or_fail(
        "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
        "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},"
        "\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}", NULL);
    expect(g, "{\"v\":1}", true);
    expect(g, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3,\"kids\":[{\"v\":4}]}]}", true);
    expect(g, "{\"v\":1,\"kids\":[{}]}", false);
    jgram_free(g);

    g = compile_or_fail("{\"definitions\":{\"a/b\":{\"type\":\"boolean\"}},\"type\":\"object\","
                        "\"properties\":{\"x\":{\"$ref\":\"#/definitions/a~1b\"}}}", NULL);
    expect(g, "{\"x\":true}", true);
    expect(g, "{\"x\":1}", false);
    jgram_free(g);

    /* recursion deeper than the stack is cut off where it can still close */
    struct jgram_limits lim = {.max_depth = 3};
    g = compile_or_fail("{\"$defs\":{\"l\":{\"type\":\"array\","
                        "\"items\":{\"$ref\":\"#/$defs/l\"}}},"
                        "\"$ref\":\"#/$defs/l\"}", &lim);
    expect(g, "[[[]]]", true);
    expect(g, "[[[[]]]]", false);
    jgram_free(g);
}

static void
schema_refusals_name_the_keyword(void **unused)
{
    static const struct { const char *schema; enum al_code code; const char *needle; } cases[] = {
        {"{\"type\":\"string\",\"pattern\":\"^a\"}", AL_EUNSUPPORTED, "pattern"},
        {"{\"type\":\"integer\",\"minimum\":0}", AL_EUNSUPPORTED, "minimum"},
        {"{\"allOf\":[{\"type\":\"string\"}]}", AL_EUNSUPPORTED, "allOf"},
        {"{\"$ref\":\"http://example.com/s.json\"}", AL_EUNSUPPORTED, "$ref"},
        {"{\"$ref\":\"#/$defs/missing\"}", AL_EFORMAT, "does not resolve"},
        {"{\"type\":\"strnig\"}", AL_EFORMAT, "strnig"},
        {"{\"enum\":[{\"a\":1}]}", AL_EUNSUPPORTED, "enum"},
        {"{\"enum\":[]}", AL_EFORMAT, "enum"},
        {"{\"type\":\"array\",\"minItems\":5,\"maxItems\":2}", AL_ELIMIT, "minItems"},
        {"{\"type\":\"array\",\"minItems\":-1}", AL_EFORMAT, "minItems"},
        {"{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", AL_ELIMIT, "minLength"},
        {"{\"type\":\"string\",\"minLength\":100000}", AL_ELIMIT, "minLength"},
        {"{\"$defs\":{\"a\":{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/a\"}},"
         "\"required\":[\"x\"]}},\"$ref\":\"#/$defs/a\"}", AL_EUNSUPPORTED, "finite"},
        {"{\"anyOf\":[{\"type\":\"string\"}],\"type\":\"string\"}", AL_EUNSUPPORTED, "type"},
        {"[1]", AL_EUNSUPPORTED, "schema"},
        {"false", AL_EUNSUPPORTED, "schema"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *s = js(cases[i].schema);
        struct jgram *g = NULL;
        struct al_err e = {0};
        assert_int_equal(jgram_new(s, NULL, &g, &e), -1);
        assert_null(g);
        if ((int)e.code != (int)cases[i].code || !strstr(e.msg, cases[i].needle))
            fail_msg("%s: got code %d \"%s\"", cases[i].schema, e.code, e.msg);
        json_decref(s);
    }
    /* too deep to compile */
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 200; i++)
        buf_puts(&b, "{\"type\":\"array\",\"items\":");
    buf_puts(&b, "{}");
    for (int i = 0; i < 200; i++)
        buf_puts(&b, "}");
    json_t *s = js(b.data);
    struct jgram *g = NULL;
    struct al_err e = {0};
    assert_int_equal(jgram_new(s, NULL, &g, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    json_decref(s);
    buf_free(&b);
}

static void
response_format_objects(void **unused)
{
    struct jgram *g = NULL;
    struct al_err e = {0};
    json_t *rf = js("{\"type\":\"text\"}");
    assert_int_equal(jgram_from_response_format(rf, NULL, &g, &e), 0);
    assert_null(g);
    json_decref(rf);
    rf = js("{\"type\":\"json_object\"}");
    assert_int_equal(jgram_from_response_format(rf, NULL, &g, &e), 0);
    assert_true(accepts(g, "{}"));
    jgram_free(g);
    json_decref(rf);
    rf = js("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"strict\":true,"
            "\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"}},"
            "\"required\":[\"a\"]}}}");
    assert_int_equal(jgram_from_response_format(rf, NULL, &g, &e), 0);
    assert_true(accepts(g, "{\"a\":null}"));
    jgram_free(g);
    json_decref(rf);
    rf = js("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"format\":\"x\","
            "\"minimum\":3}}}");
    assert_int_equal(jgram_from_response_format(rf, NULL, &g, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    assert_non_null(strstr(e.msg, "minimum"));
    json_decref(rf);
    rf = js("{\"type\":\"xml\"}");
    assert_int_equal(jgram_from_response_format(rf, NULL, &g, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    json_decref(rf);
}

/* ---- masks on real vocabularies --------------------------------------------------------- */

/* The mask must equal feeding each token's piece on its own. */
static void
check_mask_exact(const struct jgram *g, const struct jgram_vocab *v, const struct tokenizer *t,
                 const struct jgram_state *st, uint8_t *allowed)
{
    jgram_mask(g, v, st, allowed);
    bool done = jgram_state_done(g, st);
    struct jgram_state tmp = *st;
    int32_t n = tokenizer_n_vocab(t);
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *p = tokenizer_piece(t, id, &len);
        bool want;
        if (tokenizer_is_eog(t, id))
            want = done;
        else if (len == 0 || tokenizer_is_control(t, id))
            want = false;
        else {
            want = jgram_state_feed(g, &tmp, p, len);
            if (want)
                tmp = *st;
        }
        if (want != (allowed[id] != 0))
            fail_msg("token %d \"%.*s\": mask %d, feeding says %d", id, (int)len, p,
                     allowed[id], want);
    }
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
mask_matches_feeding_on_real_vocabs(void **unused)
{
    static const char *vocabs[] = {
        "vectors/tokenizer/ggml-vocab-qwen2.gguf",
        "vectors/tokenizer/ggml-vocab-llama-spm.gguf",
    };
    static const struct { const char *schema; const char *prefix; } states[] = {
        {NULL, ""},
        {NULL, "{"},
        {NULL, "{\""},
        {NULL, "{\"key\": \"some text "},
        {NULL, "{\"key\": \"caf\xc3"},
        {NULL, "{\"key\": \"x\\u00"},
        {NULL, "{\"key\": \"x\\ud83d"},
        {NULL, "{\"a\": 12"},
        {NULL, "{\"a\": [1, {\"b\": tr"},
        {NULL, "{\"a\": {}}"},
        {"{\"properties\":{\"name\":{\"type\":\"string\"},\"nick\":{\"type\":\"string\"},"
         "\"color\":{\"enum\":[\"red\",\"green\"]}},\"required\":[\"color\"]}", "{\"n"},
        {"{\"properties\":{\"name\":{\"type\":\"string\"},\"nick\":{\"type\":\"string\"},"
         "\"color\":{\"enum\":[\"red\",\"green\"]}},\"required\":[\"color\"]}", "{\"color\": "},
        {"{\"type\":\"number\"}", "-1.5"},
        {"{\"type\":\"string\",\"maxLength\":5}", "\"ab"},
        {"{\"type\":\"string\",\"minLength\":4090}", "\"ab"},
    };
    uint8_t *allowed = NULL;
    for (size_t vi = 0; vi < sizeof vocabs / sizeof vocabs[0]; vi++) {
        double t0 = now_s();
        struct vocab_fixture *fx = fixture(vocabs[vi]);
        double t1 = now_s();
        struct tokenizer *t = fx->tok;
        struct jgram_vocab *v = fx->v;
        allowed = xrealloc(allowed, (size_t)tokenizer_n_vocab(t));
        struct jgram *prev = NULL;
        const char *prev_schema = "";
        for (size_t si = 0; si < sizeof states / sizeof states[0]; si++) {
            const char *sc = states[si].schema ? states[si].schema : "";
            if (!prev || strcmp(sc, prev_schema) != 0) {
                jgram_free(prev);
                prev = compile_or_fail(states[si].schema, NULL);
                prev_schema = sc;
            }
            struct jgram_state st;
            jgram_state_init(prev, &st);
            assert_true(jgram_state_feed(prev, &st, states[si].prefix,
                                         strlen(states[si].prefix)));
            check_mask_exact(prev, v, t, &st, allowed);
        }
        /* timing of the hot path (ASan build: several times slower than release) */
        struct jgram_state st;
        jgram_state_init(prev, &st);
        jgram_free(prev);
        prev = compile_or_fail(NULL, NULL);
        jgram_state_init(prev, &st);
        assert_true(jgram_state_feed(prev, &st, "{\"k\": \"te", 9));
        double t2 = now_s();
        for (int r = 0; r < 5; r++)
            jgram_mask(prev, v, &st, allowed);
        double t3 = now_s();
        jgram_state_init(prev, &st);
        for (int r = 0; r < 5; r++)
            jgram_mask(prev, v, &st, allowed);
        double t4 = now_s();
        print_message("%s: load+trie %.0f ms; mask in string %.2f ms, at start %.2f ms\n",
                      vocabs[vi], (t1 - t0) * 1e3, (t3 - t2) * 1e3 / 5, (t4 - t3) * 1e3 / 5);
        jgram_free(prev);
    }
    free(allowed);
}

static void
start_allows_only_whitespace_then_brace(void **unused)
{
    struct vocab_fixture *fx = fixture("vectors/tokenizer/ggml-vocab-qwen2.gguf");
    struct tokenizer *t = fx->tok;
    struct jgram_vocab *v = fx->v;
    struct jgram *g = compile_or_fail(NULL, NULL);
    int32_t n = tokenizer_n_vocab(t);
    uint8_t *allowed = xmalloc((size_t)n);
    struct jgram_state st;
    jgram_state_init(g, &st);
    jgram_mask(g, v, &st, allowed);
    int n_allowed = 0;
    bool brace = false;
    for (int32_t id = 0; id < n; id++) {
        if (!allowed[id])
            continue;
        n_allowed++;
        size_t len;
        const char *p = tokenizer_piece(t, id, &len);
        size_t i = 0;
        while (i < len && strchr(" \n\t\r", p[i]))
            i++;
        if (i < len && p[i] != '{')
            fail_msg("token %d \"%.*s\" allowed at the start", id, (int)len, p);
        assert_false(tokenizer_is_eog(t, id));
        brace = brace || (len == 1 && p[0] == '{');
    }
    assert_true(brace);
    assert_true(n_allowed > 1);
    /* after the object closes only end-of-generation is left */
    assert_true(jgram_state_feed(g, &st, "{}", 2));
    jgram_mask(g, v, &st, allowed);
    for (int32_t id = 0; id < n; id++)
        assert_int_equal(allowed[id] != 0, tokenizer_is_eog(t, id));
    free(allowed);
    jgram_free(g);
}

/* ---- random walks ---------------------------------------------------------------------- */

static const json_t *
resolve(const json_t *root, const json_t *s)
{
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (!ref)
        return s;
    const char *name = strrchr(ref, '/');
    const json_t *defs = json_object_get(root, strstr(ref, "$defs") ? "$defs" : "definitions");
    return resolve(root, json_object_get(defs, name + 1));
}

static bool
type_ok(const char *t, const json_t *v)
{
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    return strcmp(t, "null") == 0 && json_is_null(v);
}

/* A validator for the subset the tests use, written independently of the grammar. */
static bool
valid(const json_t *root, const json_t *s, const json_t *v)
{
    if (!s || json_is_true(s))
        return true;
    s = resolve(root, s);
    const json_t *alts = json_object_get(s, "anyOf");
    if (!alts)
        alts = json_object_get(s, "oneOf");
    if (alts) {
        size_t i;
        json_t *a;
        json_array_foreach(alts, i, a) {
            if (valid(root, a, v))
                return true;
        }
        return false;
    }
    const json_t *c = json_object_get(s, "const");
    if (c)
        return json_equal(c, v);
    const json_t *en = json_object_get(s, "enum");
    if (en) {
        size_t i;
        json_t *x;
        json_array_foreach(en, i, x) {
            if (json_equal(x, v))
                return true;
        }
        return false;
    }
    const json_t *type = json_object_get(s, "type");
    if (json_is_string(type) && !type_ok(json_string_value(type), v))
        return false;
    if (json_is_array(type)) {
        bool any = false;
        size_t i;
        json_t *x;
        json_array_foreach(type, i, x) {
            any = any || type_ok(json_string_value(x), v);
        }
        if (!any)
            return false;
    }
    if (json_is_string(v)) {
        size_t cps = 0;
        for (const unsigned char *p = (const unsigned char *)json_string_value(v); *p; p++)
            cps += (*p & 0xc0) != 0x80;
        const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
        if ((mn && cps < (size_t)json_integer_value(mn)) ||
            (mx && cps > (size_t)json_integer_value(mx)))
            return false;
    }
    const json_t *props = json_object_get(s, "properties");
    const json_t *ap = json_object_get(s, "additionalProperties");
    if (json_is_object(v) && !props && json_is_object(ap)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (!valid(root, ap, x))
                return false;
        }
    }
    if (json_is_object(v) && props) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            const json_t *ps = json_object_get(props, k);
            if (!ps || !valid(root, ps, x))
                return false;
        }
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(s, "required"), i, r) {
            if (!json_object_get(v, json_string_value(r)))
                return false;
        }
    }
    if (json_is_array(v)) {
        const json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
        if (mn && json_array_size(v) < (size_t)json_integer_value(mn))
            return false;
        if (mx && json_array_size(v) > (size_t)json_integer_value(mx))
            return false;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!valid(root, json_object_get(s, "items"), x))
                return false;
        }
    }
    return true;
}

/* Sample uniformly among allowed tokens until end-of-generation; returns the text (owned). */
static char *
walk(const struct jgram *g, const struct jgram_vocab *v, const struct tokenizer *t,
     uint64_t seed, int cap)
{
    int32_t n = tokenizer_n_vocab(t);
    uint8_t *allowed = xmalloc((size_t)n);
    int32_t *cand = xmalloc((size_t)n * sizeof *cand);
    struct buf out;
    buf_init(&out);
    buf_puts(&out, "");
    struct jgram_state st;
    jgram_state_init(g, &st);
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 1;
    int step;
    for (step = 0; step < cap; step++) {
        jgram_mask(g, v, &st, allowed);
        int nc = 0;
        for (int32_t id = 0; id < n; id++)
            if (allowed[id])
                cand[nc++] = id;
        if (nc == 0)
            fail_msg("seed %llu: dead end after \"%s\"", (unsigned long long)seed, out.data);
        int32_t id = cand[rng_next(&rng) % (uint64_t)nc];
        if (tokenizer_is_eog(t, id)) {
            assert_true(jgram_state_done(g, &st));
            break;
        }
        size_t len;
        const char *p = tokenizer_piece(t, id, &len);
        if (!jgram_state_feed(g, &st, p, len))
            fail_msg("allowed token %d \"%.*s\" refused after \"%s\"", id, (int)len, p,
                     out.data);
        buf_append(&out, p, len);
    }
    if (step == cap)
        fail_msg("seed %llu: no end after %d tokens: \"%s\"", (unsigned long long)seed, cap,
                 out.data);
    free(allowed);
    free(cand);
    return buf_steal(&out);
}

static const char *const walk_schemas[] = {
    NULL,
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
    "\"maxItems\":3},\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"age\"]}",
    "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"circle\"},"
    "\"r\":{\"type\":\"number\"}},\"required\":[\"kind\",\"r\"]},{\"type\":\"object\","
    "\"properties\":{\"kind\":{\"const\":\"rect\"},\"w\":{\"type\":\"number\"},"
    "\"h\":{\"type\":\"number\"}},\"required\":[\"kind\",\"w\",\"h\"]},{\"type\":\"null\"}]}",
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
    "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
    "\"$ref\":\"#/$defs/node\"}",
    "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\",1,1.5,"
    "null,true]},\"maybe\":{\"type\":[\"string\",\"null\"]},\"n\":{\"type\":\"number\"}},"
    "\"required\":[\"color\",\"maybe\",\"n\"]}",
    "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":4}",
    "{\"type\":\"string\",\"minLength\":3,\"maxLength\":5}",
    "{\"type\":\"number\"}",
    "{\"type\":\"object\",\"additionalProperties\":{\"anyOf\":[{\"type\":\"integer\"},"
    "{\"type\":\"object\",\"additionalProperties\":{\"enum\":[\"x\",\"y\"]}}]}}",
};

static void
run_walks(const char *vocab, int seeds, int cap)
{
    struct vocab_fixture *fx = fixture(vocab);
    struct tokenizer *t = fx->tok;
    struct jgram_vocab *v = fx->v;
    /* small caps make every document finite, so uniform walks must end */
    struct jgram_limits lim = {.max_string = 16, .max_items = 3, .max_number = 8, .max_ws = 1,
                               .max_depth = 4};
    for (size_t si = 0; si < sizeof walk_schemas / sizeof walk_schemas[0]; si++) {
        struct jgram *g = compile_or_fail(walk_schemas[si], &lim);
        json_t *schema = walk_schemas[si] ? js(walk_schemas[si]) : NULL;
        for (int seed = 1; seed <= seeds; seed++) {
            char *text = walk(g, v, t, (uint64_t)seed + si * 1000, cap);
            json_error_t je;
            json_t *doc = json_loads(text, JSON_DECODE_ANY, &je);
            if (!doc)
                fail_msg("schema %zu seed %d: jansson: %s: \"%s\"", si, seed, je.text, text);
            if (!schema && !json_is_object(doc))
                fail_msg("json_object mode produced a non-object: %s", text);
            if (schema && !valid(schema, schema, doc))
                fail_msg("schema %zu seed %d: output does not satisfy it: %s", si, seed, text);
            json_decref(doc);
            free(text);
        }
        json_decref(schema);
        jgram_free(g);
    }
}

static void
random_walks_parse_and_satisfy_schema_small_vocab(void **unused)
{
    run_walks("models/stories260K-f32.gguf", 25, 4000);
}

static void
random_walks_parse_and_satisfy_schema_qwen2(void **unused)
{
    run_walks("vectors/tokenizer/ggml-vocab-qwen2.gguf", 2, 4000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(object_mode_accepts_json_objects),
        cmocka_unit_test(object_mode_refuses_everything_else),
        cmocka_unit_test(feed_failure_leaves_state_unchanged),
        cmocka_unit_test(caps_force_strings_and_numbers_to_close),
        cmocka_unit_test(object_mode_agrees_with_jansson_on_mutated_documents),
        cmocka_unit_test(schema_properties_in_order_required_enforced),
        cmocka_unit_test(schema_enum_const_and_type_lists),
        cmocka_unit_test(schema_arrays_nested_and_bounded),
        cmocka_unit_test(schema_any_of_keeps_alternatives_until_they_differ),
        cmocka_unit_test(schema_refs_and_recursion),
        cmocka_unit_test(schema_nested_and_recursive_alternatives_stay_live),
        cmocka_unit_test(schema_refusals_name_the_keyword),
        cmocka_unit_test(response_format_objects),
        cmocka_unit_test(start_allows_only_whitespace_then_brace),
        cmocka_unit_test(mask_matches_feeding_on_real_vocabs),
        cmocka_unit_test(random_walks_parse_and_satisfy_schema_small_vocab),
        cmocka_unit_test(random_walks_parse_and_satisfy_schema_qwen2),
    };
    return cmocka_run_group_tests(tests, NULL, fixtures_free);
}
