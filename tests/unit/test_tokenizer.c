/* test_tokenizer.c -- the tokenizers against llama.cpp's conformance vectors
 * (../shared/vectors/tokenizer: exact ids for every string, add_special=false,
 * parse_special=false, and decode(encode(s)) == s), against the prompt tokens and generated
 * text of ../shared/models/reference/ (*.greedy.jsonl), plus special tokens, BOS/EOS rules,
 * streaming detokenization of split UTF-8, and hostile input. */
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

#include "engine/tokenizer.h"
#include "format/gguf.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/xalloc.h"

static char *
shared_path(const char *rel)
{
    const char *shared = getenv("SHARED");
    return xasprintf("%s/%s", shared ? shared : "../shared", rel);
}

/* Each vocabulary is loaded once and shared by the tests (the largest take a while under
 * ASan); tok_cache_free releases them after the group. */
struct tok_cached {
    char *rel;           /* owned: path below $SHARED */
    struct tokenizer *t; /* owned */
};
static struct tok_cached tok_cache[16];

static struct tokenizer *
load_tok(const char *rel)
{
    size_t i = 0;
    for (; i < sizeof(tok_cache) / sizeof(tok_cache[0]) && tok_cache[i].rel; i++)
        if (strcmp(tok_cache[i].rel, rel) == 0)
            return tok_cache[i].t;
    assert_true(i < sizeof(tok_cache) / sizeof(tok_cache[0]));
    char *p = shared_path(rel);
    struct gguf g;
    struct al_err e = {0};
    struct tokenizer *t = NULL;
    if (gguf_open(&g, p, NULL, &e) != 0)
        fail_msg("%s: %s", p, e.msg);
    if (tokenizer_load(&t, &g, &e) != 0)
        fail_msg("%s: %s", p, e.msg);
    gguf_close(&g); /* the tokenizer must not depend on the mapping */
    free(p);
    tok_cache[i].rel = xstrdup(rel);
    tok_cache[i].t = t;
    return t;
}

static int
tok_cache_free(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(tok_cache) / sizeof(tok_cache[0]); i++) {
        tokenizer_free(tok_cache[i].t);
        free(tok_cache[i].rel);
        tok_cache[i].t = NULL;
        tok_cache[i].rel = NULL;
    }
    return 0;
}

/* ===== conformance vectors ==================================================================== */

static const char vec_sep[] = "\n__ggml_vocab_test__\n";

/* Vocabularies whose decoding differs from the input by design; checked only for ids. */
static bool
vec_lossy(const char *vocab)
{
    /* WordPiece lower-cases, drops accents and control characters and splits punctuation
     * off: it never round-trips (docs/tokenizers.md) */
    return strcmp(vocab, "bert-bge") == 0;
}

/* Next line of a NUL-terminated buffer (empty lines kept: the empty string's ids are an
 * empty line), NULL at the end. */
static char *
next_line_take(char **cursor)
{
    char *s = *cursor;
    if (!s || !*s)
        return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = s + strlen(s);
    }
    return s;
}

static void
run_vocab(const char *name)
{
    char *rel = xasprintf("vectors/tokenizer/ggml-vocab-%s.gguf", name);
    char *inp_path = shared_path(rel);
    char *out_path = xasprintf("%s.out", inp_path);
    char *tmp = xasprintf("%s.inp", inp_path);
    free(inp_path);
    inp_path = tmp;
    struct al_err e = {0};
    char *inp = NULL, *outp = NULL;
    size_t inp_n = 0, out_n = 0;
    if (fsx_read_file(inp_path, 1 << 24, &inp, &inp_n, &e) != 0 ||
        fsx_read_file(out_path, 1 << 24, &outp, &out_n, &e) != 0)
        fail_msg("%s", e.msg);

    clock_t t0 = clock();
    struct tokenizer *t = load_tok(rel);
    double load_s = (double)(clock() - t0) / CLOCKS_PER_SEC;

    size_t n_cases = 0, n_ids_ok = 0, n_rt_ok = 0, n_rt = 0;
    const char *ip = inp, *iend = inp + inp_n;
    char *next_line = outp;
    char *line = next_line_take(&next_line);
    for (;;) {
        const char *sep = memmem(ip, (size_t)(iend - ip), vec_sep, sizeof(vec_sep) - 1);
        size_t slen = sep ? (size_t)(sep - ip) : (size_t)(iend - ip);
        if (!sep && slen == 0)
            break;
        if (!line)
            fail_msg("%s: more strings than expected-id lines", name);
        /* expected ids */
        int32_t want[4096];
        size_t nwant = 0;
        for (char *q = line; *q;) {
            while (*q == ' ' || *q == '\r')
                q++;
            if (!*q)
                break;
            char *end = NULL;
            long v = strtol(q, &end, 10);
            assert_true(end != q && nwant < 4096);
            want[nwant++] = (int32_t)v;
            q = end;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(tokenizer_encode(t, ip, slen, false, false, &ids, &n, &e), 0);
        bool ok = n == nwant && memcmp(ids, want, n * sizeof(*ids)) == 0;
        n_ids_ok += ok;
        if (!ok) {
            struct buf msg;
            buf_init(&msg);
            buf_printf(&msg, "%s case %zu '%.*s': got", name, n_cases, (int)slen, ip);
            for (size_t i = 0; i < n; i++)
                buf_printf(&msg, " %d", ids[i]);
            buf_printf(&msg, " want %s", line);
            print_message("%s\n", msg.data);
            buf_free(&msg);
        }
        if (!vec_lossy(name)) {
            struct buf dec;
            buf_init(&dec);
            assert_int_equal(tokenizer_decode(t, ids, n, &dec, &e), 0);
            bool rt = dec.len == slen && memcmp(dec.data ? dec.data : "", ip, slen) == 0;
            n_rt++;
            n_rt_ok += rt;
            if (!rt)
                print_message("%s case %zu: decode gives '%.*s' for '%.*s'\n", name, n_cases,
                              (int)dec.len, dec.data ? dec.data : "", (int)slen, ip);
            buf_free(&dec);
        }
        free(ids);
        n_cases++;
        line = next_line_take(&next_line);
        if (!sep)
            break;
        ip = sep + sizeof(vec_sep) - 1;
    }
    print_message("vocab %-13s ids %zu/%zu, round trip %zu/%zu, load %.3f s\n", name, n_ids_ok,
                  n_cases, n_rt_ok, n_rt, load_s);
    assert_true(n_cases > 0);
    assert_int_equal(n_ids_ok, n_cases);
    assert_int_equal(n_rt_ok, n_rt);
    free(inp);
    free(outp);
    free(inp_path);
    free(out_path);
    free(rel);
}

static void
vocab_llama_spm(void **state)
{
    (void)state;
    run_vocab("llama-spm");
}
static void
vocab_llama_bpe(void **state)
{
    (void)state;
    run_vocab("llama-bpe");
}
static void
vocab_qwen2(void **state)
{
    (void)state;
    run_vocab("qwen2");
}
static void
vocab_phi_3(void **state)
{
    (void)state;
    run_vocab("phi-3");
}
static void
vocab_gpt_2(void **state)
{
    (void)state;
    run_vocab("gpt-2");
}
static void
vocab_deepseek_llm(void **state)
{
    (void)state;
    run_vocab("deepseek-llm");
}
static void
vocab_falcon(void **state)
{
    (void)state;
    run_vocab("falcon");
}

static void
vocab_bert_bge(void **state)
{
    (void)state;
    run_vocab("bert-bge");
}

/* ===== reference generations ================================================================== */

static void
run_reference(const char *model, const char *jsonl)
{
    char *mrel = xasprintf("models/%s", model);
    struct tokenizer *t = load_tok(mrel);
    char *jp = shared_path(jsonl);
    struct al_err e = {0};
    char *data = NULL;
    size_t len = 0;
    if (fsx_read_file(jp, 1 << 26, &data, &len, &e) != 0)
        fail_msg("%s", e.msg);
    size_t lines = 0, ok_prompt = 0, ok_text = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        assert_non_null(o);
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        json_t *pt = json_object_get(o, "prompt_tokens");
        json_t *gen = json_object_get(o, "generated");
        const char *text = json_string_value(json_object_get(o, "text"));
        assert_non_null(prompt);
        assert_non_null(text);
        int32_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(tokenizer_encode(t, prompt, strlen(prompt), true, false, &ids, &n, &e), 0);
        bool ok = n == json_array_size(pt);
        for (size_t i = 0; ok && i < n; i++)
            ok = ids[i] == (int32_t)json_integer_value(json_array_get(pt, i));
        if (!ok) {
            print_message("%s: prompt '%s' tokenizes to %zu ids:", model, prompt, n);
            for (size_t i = 0; i < n; i++)
                print_message(" %d", ids[i]);
            print_message("\n");
        }
        ok_prompt += ok;
        free(ids);

        /* streaming with a tiny buffer exercised through the retry convention */
        struct detok d;
        detok_init(&d, t);
        struct buf got;
        buf_init(&got);
        char *chunk = xmalloc(tokenizer_max_piece(t) + 4);
        for (size_t i = 0; i < json_array_size(gen); i++) {
            int32_t id = (int32_t)json_integer_value(json_array_get(gen, i));
            size_t w = detok_push(&d, id, chunk, tokenizer_max_piece(t) + 4);
            assert_true(w <= tokenizer_max_piece(t) + 4);
            buf_append(&got, chunk, w);
        }
        buf_append(&got, chunk, detok_flush(&d, chunk, 4));
        free(chunk);
        bool tok_ok =
            got.len == strlen(text) && memcmp(got.data ? got.data : "", text, got.len) == 0;
        if (!tok_ok)
            print_message("%s: text '%.*s' want '%s'\n", model, (int)got.len,
                          got.data ? got.data : "", text);
        ok_text += tok_ok;
        buf_free(&got);
        json_decref(o);
        lines++;
    }
    print_message("reference %-26s prompts %zu/%zu, texts %zu/%zu\n", model, ok_prompt, lines,
                  ok_text, lines);
    assert_true(lines > 0);
    assert_int_equal(ok_prompt, lines);
    assert_int_equal(ok_text, lines);
    free(data);
    free(jp);
    free(mrel);
}

static void
ref_stories(void **state)
{
    (void)state;
    run_reference("stories260K-f32.gguf", "models/reference/stories260K-f32.greedy.jsonl");
}

static void
ref_llama2_tiny(void **state)
{
    (void)state;
    run_reference("llama2-tiny-random-f16.gguf",
                  "models/reference/llama2-tiny-random-f16.greedy.jsonl");
}

static void
ref_llama_k_small(void **state)
{
    (void)state;
    run_reference("llama-k-small-q8_0.gguf", "models/reference/llama-k-small-q8_0.greedy.jsonl");
}

static void
ref_qwen2(void **state)
{
    (void)state;
    run_reference("qwen2-k-small-q4_k_m.gguf",
                  "models/reference/qwen2-k-small-q4_k_m.greedy.jsonl");
}

/* ===== special tokens, BOS/EOS, pieces ======================================================== */

static bool
ids_contain(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static void
special_tokens_qwen2(void **state)
{
    (void)state;
    struct tokenizer *t = load_tok("vectors/tokenizer/ggml-vocab-qwen2.gguf");
    struct al_err e = {0};
    const char *chat = "<|im_start|>user\nhi<|im_end|>\n";
    int32_t *ids = NULL;
    size_t n = 0;
    size_t len = 0;
    const char *txt = tokenizer_token_text(t, 151644, &len);
    assert_int_equal(len, strlen("<|im_start|>"));
    assert_memory_equal(txt, "<|im_start|>", len);

    assert_int_equal(tokenizer_encode(t, chat, strlen(chat), true, true, &ids, &n, &e), 0);
    assert_true(n >= 4);
    assert_int_equal(ids[0], 151644); /* no BOS: qwen2 metadata says add_bos_token = false */
    assert_true(ids_contain(ids, n, 151645));
    /* control tokens render as nothing; the rest round-trips */
    struct buf dec;
    buf_init(&dec);
    assert_int_equal(tokenizer_decode(t, ids, n, &dec, &e), 0);
    assert_string_equal(dec.data, "user\nhi\n");
    buf_free(&dec);
    free(ids);

    /* parse_special = false: the same text is plain text */
    assert_int_equal(tokenizer_encode(t, chat, strlen(chat), false, false, &ids, &n, &e), 0);
    assert_false(ids_contain(ids, n, 151644));
    assert_false(ids_contain(ids, n, 151645));
    free(ids);

    assert_true(tokenizer_is_eog(t, 151645));  /* <|im_end|> */
    assert_true(tokenizer_is_eog(t, 151643));  /* <|endoftext|> */
    assert_false(tokenizer_is_eog(t, 151644)); /* <|im_start|> */
    assert_false(tokenizer_is_eog(t, 9707));
    assert_false(tokenizer_is_eog(t, -1));
    assert_false(tokenizer_is_eog(t, 1 << 30));
    assert_false(tokenizer_add_bos(t));
    assert_true(tokenizer_is_control(t, 151644));
    assert_int_equal(tokenizer_n_vocab(t), 151936);
    assert_string_equal(tokenizer_kind_name(t), "bpe");
    assert_string_equal(tokenizer_pre_name(t), "qwen2");
}

static void
bos_rules_and_pieces(void **state)
{
    (void)state;
    struct al_err e = {0};
    int32_t *ids = NULL;
    size_t n = 0, len = 0;

    /* SPM (Llama 2): BOS added, no EOS, space prefix, byte tokens, control pieces empty */
    struct tokenizer *t = load_tok("vectors/tokenizer/ggml-vocab-llama-spm.gguf");
    assert_true(tokenizer_add_bos(t));
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_is_eog(t, 2));
    assert_int_equal(tokenizer_encode(t, "Hello", 5, true, false, &ids, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043); /* "\xe2\x96\x81Hello" */
    free(ids);
    assert_int_equal(tokenizer_encode(t, "", 0, true, false, &ids, &n, &e), 0);
    assert_int_equal(n, 1); /* just BOS, like SentencePiece */
    free(ids);
    assert_int_equal(tokenizer_encode(t, "", 0, false, false, &ids, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_non_null(ids);
    free(ids);
    /* "<s>" in text is plain text unless parse_special */
    assert_int_equal(tokenizer_encode(t, "<s>x", 4, false, true, &ids, &n, &e), 0);
    assert_int_equal(ids[0], 1);
    free(ids);
    assert_int_equal(tokenizer_encode(t, "<s>x", 4, false, false, &ids, &n, &e), 0);
    assert_false(ids_contain(ids, n, 1));
    free(ids);
    assert_int_equal(tokenizer_piece(t, 1, &len)[0], '\0');
    assert_int_equal(len, 0);
    assert_memory_equal(tokenizer_piece(t, 13, &len), "\n", 1); /* <0x0A> */
    assert_int_equal(len, 1);
    assert_memory_equal(tokenizer_piece(t, 15043, &len), " Hello", 6);
    assert_int_equal(len, 6);
    tokenizer_piece(t, -5, &len);
    assert_int_equal(len, 0);
    struct buf b;
    buf_init(&b);
    int32_t bad[] = {15043, 99999999};
    assert_int_equal(tokenizer_decode(t, bad, 2, &b, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    buf_free(&b);

    /* Llama 3 BPE: BOS by metadata, <|eot_id|> ends generation */
    t = load_tok("vectors/tokenizer/ggml-vocab-llama-bpe.gguf");
    assert_true(tokenizer_add_bos(t));
    assert_int_equal(tokenizer_encode(t, "Hello", 5, true, false, &ids, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], tokenizer_bos(t));
    assert_int_equal(ids[1], 9906);
    free(ids);
    int32_t eot = -1;
    for (int32_t i = 0; i < tokenizer_n_vocab(t); i++) {
        size_t tl = 0;
        const char *tx = tokenizer_token_text(t, i, &tl);
        if (tl == 10 && memcmp(tx, "<|eot_id|>", 10) == 0)
            eot = i;
    }
    assert_true(eot >= 0);
    assert_true(tokenizer_is_eog(t, eot));
    assert_true(tokenizer_is_eog(t, tokenizer_eos(t)));
    assert_memory_equal(tokenizer_piece(t, 9906, &len), "Hello", 5);
    assert_memory_equal(tokenizer_piece(t, 22691, &len), " Hello", 6);

    /* WordPiece: [CLS] text [SEP], lower-cased, accents folded, punctuation split off */
    t = load_tok("vectors/tokenizer/ggml-vocab-bert-bge.gguf");
    assert_string_equal(tokenizer_kind_name(t), "wpm");
    assert_int_equal(tokenizer_encode(t, "H\xc3\xa9llo, World", 13, true, false, &ids, &n, &e), 0);
    assert_int_equal(n, 5); /* [CLS] hello , world [SEP] */
    assert_int_equal(ids[0], 101);
    assert_int_equal(ids[n - 1], 102);
    struct buf wb;
    buf_init(&wb);
    assert_int_equal(tokenizer_decode(t, ids, n, &wb, &e), 0);
    assert_string_equal(wb.data, " hello , world");
    buf_free(&wb);
    free(ids);
}

/* Random mixes of special-token text and plain words: with parse_special every special text
 * becomes its token (counted), and rendering control tokens by their text gives the input back
 * (byte-level BPE is otherwise lossless). Exercises the n-gram prefilter of the cut. */
static void
special_text_cut_exactly(void **state)
{
    (void)state;
    static const char *const vocabs[] = {"llama-bpe", "qwen2", "deepseek-llm"};
    static const char *const words[] = {" hello", "x",    " <|", "|> ",
                                        "\n",     " 123", "<",   "\xe4\xbd\xa0"};
    struct al_err e = {0};
    uint32_t x = 7;
    for (size_t v = 0; v < sizeof(vocabs) / sizeof(vocabs[0]); v++) {
        char *rel = xasprintf("vectors/tokenizer/ggml-vocab-%s.gguf", vocabs[v]);
        struct tokenizer *t = load_tok(rel);
        free(rel);
        /* the control tokens (user-defined ones cannot be told from plain text here) */
        int32_t *spec = xmalloc((size_t)tokenizer_n_vocab(t) * sizeof(*spec));
        size_t nspec = 0;
        for (int32_t i = 0; i < tokenizer_n_vocab(t); i++)
            if (tokenizer_is_control(t, i))
                spec[nspec++] = i;
        assert_true(nspec > 0);
        for (int round = 0; round < 50; round++) {
            struct buf text;
            buf_init(&text);
            size_t inserted = 0;
            for (int k = 0; k < 20; k++) {
                x = x * 1103515245u + 12345u;
                if ((x >> 16) % 3 == 0) {
                    size_t tl = 0;
                    const char *tx = tokenizer_token_text(t, spec[(x >> 8) % nspec], &tl);
                    buf_append(&text, tx, tl);
                    inserted++;
                }
                buf_puts(&text, words[(x >> 20) % 8]);
                buf_puts(&text, " w ");
            }
            int32_t *ids = NULL;
            size_t n = 0;
            assert_int_equal(tokenizer_encode(t, text.data, text.len, false, true, &ids, &n, &e),
                             0);
            struct buf back;
            buf_init(&back);
            size_t found = 0;
            for (size_t i = 0; i < n; i++) {
                size_t l = 0;
                const char *p = tokenizer_piece(t, ids[i], &l);
                if (tokenizer_is_control(t, ids[i]))
                    p = tokenizer_token_text(t, ids[i], &l);
                for (size_t k = 0; k < nspec; k++)
                    found += spec[k] == ids[i];
                buf_append(&back, p, l);
            }
            assert_int_equal(found, inserted);
            assert_int_equal(back.len, text.len);
            assert_memory_equal(back.data, text.data, text.len);
            buf_free(&back);
            buf_free(&text);
            free(ids);
        }
        free(spec);
    }
}

static void
phi3_special_tokens_strip_whitespace(void **state)
{
    (void)state;
    /* general.name "Phi3": special tokens swallow the whitespace after them (llama.cpp's
     * rule for Phi-3), the text after a special token gets the SPM space prefix */
    struct tokenizer *t = load_tok("vectors/tokenizer/ggml-vocab-phi-3.gguf");
    struct al_err e = {0};
    const char *s = "<|user|>\n  Hi<|end|>\n<|assistant|>";
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, s, strlen(s), true, true, &ids, &n, &e), 0);
    int32_t want[] = {1, 32010, 6324, 32007, 32001}; /* <s> <|user|> _Hi <|end|> <|assistant|> */
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof(want));
    free(ids);
    assert_true(tokenizer_is_eog(t, 32007));  /* <|end|> */
    assert_true(tokenizer_is_eog(t, 32000));  /* <|endoftext|> */
    assert_false(tokenizer_is_eog(t, 32001)); /* <|assistant|> */
}

/* ===== streaming detokenizer ================================================================== */

static void
detok_holds_partial_utf8(void **state)
{
    (void)state;
    struct tokenizer *t = load_tok("vectors/tokenizer/ggml-vocab-llama-spm.gguf");
    struct al_err e = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    const char *s = "a\xf0\x9f\xa6\x99z"; /* the llama emoji falls back to 4 byte tokens */
    assert_int_equal(tokenizer_encode(t, s, strlen(s), false, false, &ids, &n, &e), 0);
    struct detok d;
    detok_init(&d, t);
    char out[64];
    struct buf all;
    buf_init(&all);
    size_t pushes_with_nothing = 0;
    for (size_t i = 0; i < n; i++) {
        /* a buffer too small leaves the state alone and reports the size needed */
        struct detok probe = d;
        size_t need = detok_push(&probe, ids[i], out, 0);
        if (need > 0)
            assert_memory_equal(&probe, &d, sizeof(d));
        size_t w = detok_push(&d, ids[i], out, sizeof(out));
        assert_int_equal(need, w);
        /* every chunk is valid UTF-8 on its own: never ends inside a sequence */
        if (w > 0) {
            unsigned char last = (unsigned char)out[w - 1];
            assert_true(last < 0x80 || (w >= 4 && (unsigned char)out[w - 4] == 0xf0));
        }
        pushes_with_nothing += w == 0;
        buf_append(&all, out, w);
    }
    assert_int_equal(detok_flush(&d, out, sizeof(out)), 0);
    assert_int_equal(pushes_with_nothing, 3);
    assert_string_equal(all.data, " a\xf0\x9f\xa6\x99z");
    buf_free(&all);
    free(ids);

    /* a truncated sequence comes out at flush */
    detok_init(&d, t);
    int32_t lead = -1;
    for (int32_t i = 0; i < tokenizer_n_vocab(t); i++) {
        size_t tl = 0;
        const char *tx = tokenizer_token_text(t, i, &tl);
        if (tl == 6 && memcmp(tx, "<0xF0>", 6) == 0)
            lead = i;
    }
    assert_true(lead >= 0);
    assert_int_equal(detok_push(&d, lead, out, sizeof(out)), 0);
    assert_int_equal(detok_flush(&d, out, 0), 1); /* too small: size reported, kept */
    assert_int_equal(detok_flush(&d, out, sizeof(out)), 1);
    assert_int_equal((unsigned char)out[0], 0xf0);
    assert_int_equal(detok_flush(&d, out, sizeof(out)), 0);
}

/* ===== hostile input and speed ================================================================ */

static void
hostile_and_long_input(void **state)
{
    (void)state;
    static const char *const vocabs[] = {"llama-spm", "llama-bpe", "qwen2", "deepseek-llm",
                                         "falcon",    "gpt-2",     "phi-3"};
    struct al_err e = {0};
    size_t big = 128 * 1024;
    char *junk = xmalloc(big);
    uint32_t x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (char)(x >> 16);
    }
    char *text = xmalloc(big);
    static const char piece[] =
        "The quick brown fox, 12345 jumps! \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe "
        "\xe6\x88\x91\xe6\x83\xb3   \n\t";
    for (size_t i = 0; i < big; i++)
        text[i] = piece[i % (sizeof(piece) - 1)];
    char *spaces = xmalloc(big);
    memset(spaces, ' ', big);
    spaces[big - 1] = 'x';
    for (size_t v = 0; v < sizeof(vocabs) / sizeof(vocabs[0]); v++) {
        char *rel = xasprintf("vectors/tokenizer/ggml-vocab-%s.gguf", vocabs[v]);
        struct tokenizer *t = load_tok(rel);
        int32_t *ids = NULL;
        size_t n = 0;
        clock_t t0 = clock();
        assert_int_equal(tokenizer_encode(t, junk, big, true, true, &ids, &n, &e), 0);
        struct buf b;
        buf_init(&b);
        assert_int_equal(tokenizer_decode(t, ids, n, &b, &e), 0);
        buf_free(&b);
        free(ids);
        assert_int_equal(tokenizer_encode(t, text, big, false, false, &ids, &n, &e), 0);
        buf_init(&b);
        assert_int_equal(tokenizer_decode(t, ids, n, &b, &e), 0);
        if (strcmp(vocabs[v], "bert-bge") != 0) {
            assert_int_equal(b.len, big);
            assert_memory_equal(b.data, text, big);
        }
        buf_free(&b);
        free(ids);
        assert_int_equal(tokenizer_encode(t, spaces, big, false, false, &ids, &n, &e), 0);
        free(ids);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        print_message("%-13s 3 x 128 KiB (random, text, spaces) in %.2f s\n", vocabs[v], secs);
        assert_true(secs < 20.0); /* quadratic behaviour would take minutes */
        free(rel);
    }
    struct tokenizer *t = load_tok("vectors/tokenizer/ggml-vocab-qwen2.gguf");
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(
        tokenizer_encode(t, junk, (size_t)TOKENIZER_MAX_INPUT + 1, false, false, &ids, &n, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    assert_null(ids);
    free(junk);
    free(text);
    free(spaces);
}

static void
refuses_broken_metadata(void **state)
{
    (void)state;
    /* a GGUF with no tokenizer keys at all */
    static const uint8_t empty[] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0,
                                    0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0};
    struct gguf g;
    struct al_err e = {0};
    struct tokenizer *t = NULL;
    assert_int_equal(gguf_parse(&g, empty, sizeof(empty), sizeof(empty), "empty.gguf", NULL, &e),
                     0);
    assert_int_equal(tokenizer_load(&t, &g, &e), -1);
    assert_null(t);
    assert_non_null(strstr(e.msg, "tokenizer.ggml.model"));
    gguf_close(&g);
}

/* The hand-made vocabularies of the fuzz corpus: merge order worked out by hand. */
static struct tokenizer *
load_local(const char *path)
{
    struct gguf g;
    struct al_err e = {0};
    struct tokenizer *t = NULL;
    if (gguf_open(&g, path, NULL, &e) != 0 || tokenizer_load(&t, &g, &e) != 0)
        fail_msg("%s: %s", path, e.msg);
    gguf_close(&g);
    return t;
}

static void
tiny_vocabs_by_hand(void **state)
{
    (void)state;
    struct al_err e = {0};
    int32_t *ids = NULL;
    size_t n = 0;

    /* SPM: "\xe2\x96\x81Hello" merges best score first: _H, ll, _He, llo, _Hello */
    struct tokenizer *t = load_local("fuzz/corpus/tokenizer/vocab-spm.gguf");
    assert_int_equal(tokenizer_encode(t, "Hello", 5, true, false, &ids, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 267);
    free(ids);
    /* <|im_end|> is typed user-defined but named like an end-of-turn token: it becomes a
     * control token, so it is only recognised with parse_special, and the text after it gets
     * the space prefix again */
    assert_int_equal(tokenizer_encode(t, "Hi<|im_end|>x", 13, false, true, &ids, &n, &e), 0);
    int32_t want[] = {260, 3 + 'i', 269, 259, 3 + 'x'};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof(want));
    assert_true(tokenizer_is_eog(t, 269));
    free(ids);
    assert_null(tokenizer_chat_template(t));
    tokenizer_free(t);

    /* BPE: ranks "\xc4\xa0 H" 0, "e l" 1, "l l" 2: once "el" forms, "l l" is stale */
    t = load_local("fuzz/corpus/tokenizer/vocab-bpe.gguf");
    assert_int_equal(tokenizer_encode(t, " Hello", 6, false, false, &ids, &n, &e), 0);
    int32_t want2[] = {256, 257, 'l', 'o'}; /* byte tokens sit at their byte value */
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want2, sizeof(want2));
    free(ids);
    assert_string_equal(tokenizer_chat_template(t), "{{ x }}");
    assert_int_equal(tokenizer_eos(t), tokenizer_n_vocab(t) - 1);
    assert_false(tokenizer_add_bos(t));
    tokenizer_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vocab_llama_spm),
        cmocka_unit_test(vocab_llama_bpe),
        cmocka_unit_test(vocab_qwen2),
        cmocka_unit_test(vocab_phi_3),
        cmocka_unit_test(vocab_gpt_2),
        cmocka_unit_test(vocab_deepseek_llm),
        cmocka_unit_test(vocab_falcon),
        cmocka_unit_test(vocab_bert_bge),
        cmocka_unit_test(ref_stories),
        cmocka_unit_test(ref_llama2_tiny),
        cmocka_unit_test(ref_llama_k_small),
        cmocka_unit_test(ref_qwen2),
        cmocka_unit_test(special_tokens_qwen2),
        cmocka_unit_test(bos_rules_and_pieces),
        cmocka_unit_test(special_text_cut_exactly),
        cmocka_unit_test(phi3_special_tokens_strip_whitespace),
        cmocka_unit_test(detok_holds_partial_utf8),
        cmocka_unit_test(hostile_and_long_input),
        cmocka_unit_test(refuses_broken_metadata),
        cmocka_unit_test(tiny_vocabs_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, tok_cache_free);
}
