/* fuzz_tokenizer.c -- libFuzzer target for the tokenizers (engine/tokenizer*.c).
 * Two kinds of input:
 *  - starting with "GGUF": a hostile vocabulary file; parsed, loaded as a tokenizer, used to
 *    encode and decode a fixed string;
 *  - anything else: byte 0 picks a real vocabulary (llama-spm, qwen2, llama-bpe, phi-3,
 *    bert-bge, from $SHARED or ../shared, loaded once) and the add_special / parse_special
 *    flags; the rest is the text to encode, then decode and stream back through detok.
 * Seeds: fuzz/corpus/tokenizer/ (plain and special-token text, invalid UTF-8, a tiny vocab).
 * When the shared vocabularies are missing, text inputs are skipped. Prints nothing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"
#include "format/gguf.h"
#include "util/buf.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_N_VOCABS 5

/* the fuzzer's one process-wide cache of loaded vocabularies (harness only) */
static struct tokenizer *fuzz_vocabs[FUZZ_N_VOCABS];
static bool fuzz_loaded;

static void
fuzz_load_vocabs(void)
{
    static const char *const names[FUZZ_N_VOCABS] = {"llama-spm", "qwen2", "llama-bpe", "phi-3",
                                                     "bert-bge"};
    const char *shared = getenv("SHARED");
    fuzz_loaded = true;
    for (size_t i = 0; i < FUZZ_N_VOCABS; i++) {
        char *p = xasprintf("%s/vectors/tokenizer/ggml-vocab-%s.gguf",
                            shared ? shared : "../shared", names[i]);
        struct gguf g;
        struct al_err e = {0};
        if (gguf_open(&g, p, NULL, &e) == 0)
            (void)tokenizer_load(&fuzz_vocabs[i], &g, &e); /* NULL on failure: skipped */
        gguf_close(&g);
        free(p);
    }
}

/* Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
static bool
fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (len == 0 || len > n - i)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* A token whose piece is its own text and not an ordinary SPM piece: user-defined. */
static bool
fuzz_has_user_token(const struct tokenizer *t, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t pl = 0, tl = 0;
        const char *p = tokenizer_piece(t, ids[i], &pl);
        const char *x = tokenizer_token_text(t, ids[i], &tl);
        if (pl > 1 && pl == tl && memcmp(p, x, pl) == 0 && !memchr(x, ' ', tl) && x[0] == '<')
            return true;
    }
    return false;
}

static void
fuzz_exercise(const struct tokenizer *t, const char *text, size_t len, bool add_special,
              bool parse_special)
{
    struct al_err e = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, text, len, add_special, parse_special, &ids, &n, &e) != 0)
        return;
    struct buf b;
    buf_init(&b);
    if (tokenizer_decode(t, ids, n, &b, &e) != 0)
        abort(); /* every id the encoder produces is in the vocabulary */
    /* lossless on valid UTF-8 when nothing special is added or parsed: byte-level BPE
     * always, SPM unless the text holds U+2581 itself (it decodes as a space) or a
     * user-defined token (the text after it gets a space prefix) */
    bool lossless = strcmp(tokenizer_kind_name(t), "bpe") == 0 ||
                    (strcmp(tokenizer_kind_name(t), "spm") == 0 &&
                     !memmem(text, len, "\xe2\x96\x81", 3) && !fuzz_has_user_token(t, ids, n));
    if (lossless && !add_special && !parse_special &&
        fuzz_utf8_valid((const unsigned char *)text, len) &&
        (b.len != len || memcmp(b.data ? b.data : "", text, len) != 0))
        abort();
    /* streaming gives the same bytes as decode, apart from the space prefix decode strips */
    struct detok d;
    detok_init(&d, t);
    size_t cap = tokenizer_max_piece(t) + 4;
    char *chunk = xmalloc(cap);
    struct buf s;
    buf_init(&s);
    for (size_t i = 0; i < n; i++) {
        size_t w = detok_push(&d, ids[i], chunk, cap);
        if (w > cap)
            abort();
        buf_append(&s, chunk, w);
    }
    buf_append(&s, chunk, detok_flush(&d, chunk, cap));
    if (s.len < b.len || s.len > b.len + 1)
        abort();
    for (size_t i = 0; i < n; i++)
        (void)tokenizer_is_eog(t, ids[i]);
    free(chunk);
    buf_free(&s);
    buf_free(&b);
    free(ids);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        struct gguf g;
        struct al_err e = {0};
        struct tokenizer *t = NULL;
        if (gguf_parse(&g, data, size, size, "fuzz", NULL, &e) == 0 &&
            tokenizer_load(&t, &g, &e) == 0) {
            static const char sample[] = " Hello <|im_start|>wor\xc3ld\xf0\x9f\xa6\x99 123";
            fuzz_exercise(t, sample, sizeof(sample) - 1, true, true);
            fuzz_exercise(t, sample, sizeof(sample) - 1, false, false);
        }
        tokenizer_free(t);
        gguf_close(&g);
        return 0;
    }
    if (size < 1)
        return 0;
    if (!fuzz_loaded)
        fuzz_load_vocabs();
    const struct tokenizer *t = fuzz_vocabs[data[0] % FUZZ_N_VOCABS];
    if (!t)
        return 0;
    fuzz_exercise(t, (const char *)data + 1, size - 1, data[0] & 0x10, data[0] & 0x20);
    return 0;
}
