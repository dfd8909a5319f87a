/* tokenizer.c -- loading a vocabulary from GGUF metadata, the lookup tables, special-token
 * handling, decoding and the streaming detokenizer (the encoders live in tokenizer_spm.c,
 * tokenizer_bpe.c and tokenizer_wpm.c). Special-token rules (which ids, BOS/EOS defaults, end-of-generation
 * tokens, how special text is cut out before encoding) mirror llama.cpp's vocabulary loader
 * so that prompts tokenize to the same ids. The GGUF metadata is untrusted: counts and ids are
 * checked; all strings are copied so the file may be closed after loading. */
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_int.h"
#include "format/gguf.h"
#include "util/utf8.h"
#include "util/xalloc.h"

#define TOK_MAX_VOCAB (1u << 22)   /* tokens: 4 Mi, far above any real vocabulary */
#define TOK_MAX_MERGES (1u << 23)  /* merges: 8 Mi */
#define TOK_MAX_ARENA (256u << 20) /* bytes of token or merge strings */

static const char spm_space[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's visible space */

/* ===== small helpers ========================================================================== */

void
tok_ids_push(struct tok_ids *o, int32_t id)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n++] = id;
}

uint32_t
tok_utf8_next(const unsigned char *s, size_t n, size_t *adv)
{
    unsigned char c = s[0];
    *adv = 1;
    if (c < 0x80)
        return c;
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (need == 0 || need > n)
        return 0xFFFD;
    uint32_t cp = c & (0x7F >> need);
    for (size_t k = 1; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    *adv = need;
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0xFFFD;
    return cp;
}

bool
tok_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* FNV-1a, 64-bit; seeded so pair keys and plain keys can share the code */
static uint64_t
tok_hash(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define TOK_HASH_SEED 0xcbf29ce484222325ull

static size_t
tok_table_size(size_t n)
{
    size_t sz = 16;
    while (sz < 2 * n)
        sz *= 2;
    return sz;
}

static const char *
tok_text(const struct tokenizer *t, int32_t id)
{
    return t->text + t->tok[id].text_off;
}

int32_t
tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)tok_hash(TOK_HASH_SEED, s, n) & t->index_mask;
    for (;;) {
        uint32_t v = t->index[i];
        if (v == 0)
            return TOKENIZER_NULL;
        const struct tok_entry *te = &t->tok[v - 1];
        if (te->text_len == n && memcmp(t->text + te->text_off, s, n) == 0)
            return (int32_t)(v - 1);
        i = (i + 1) & t->index_mask;
    }
}

static uint64_t
tok_pair_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    uint64_t h = tok_hash(TOK_HASH_SEED, l, ln);
    h = tok_hash(h, "\xff", 1); /* separator: ("ab","c") and ("a","bc") hash apart */
    return tok_hash(h, r, rn);
}

int32_t
tok_merge_rank(const struct tokenizer *t, const char *l, size_t ln, const char *r, size_t rn)
{
    if (!t->merge_index)
        return -1;
    size_t i = (size_t)tok_pair_hash(l, ln, r, rn) & t->merge_mask;
    for (;;) {
        uint32_t v = t->merge_index[i];
        if (v == 0)
            return -1;
        const struct tok_merge *m = &t->merges[v - 1];
        const char *mt = t->merge_text + m->off;
        if (m->left_len == ln && m->right_len == rn && memcmp(mt, l, ln) == 0 &&
            memcmp(mt + ln, r, rn) == 0)
            return m->rank;
        i = (i + 1) & t->merge_mask;
    }
}

static bool
tok_pair_before(const struct tok_pair *a, const struct tok_pair *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    return a->left < b->left;
}

void
tok_heap_push(struct tok_heap *h, struct tok_pair p)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!tok_pair_before(&p, &h->v[up]))
            break;
        h->v[i] = h->v[up];
        i = up;
    }
    h->v[i] = p;
}

struct tok_pair
tok_heap_pop(struct tok_heap *h)
{
    struct tok_pair top = h->v[0];
    struct tok_pair last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && tok_pair_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!tok_pair_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

/* ===== loading ================================================================================ */

/* Optional token-id key: kept at the default when absent or out of range (llama.cpp warns and
 * does the same); a key of the wrong type is an error. */
static int
tok_load_id(const struct gguf *g, const char *key, uint32_t n_vocab, int32_t *id, struct al_err *e)
{
    uint32_t v = 0;
    int rc = gguf_get_u32(g, key, &v, e);
    if (rc < 0)
        return -1;
    if (rc == 0 && v < n_vocab)
        *id = (int32_t)v;
    return 0;
}

static int
tok_load_bool(const struct gguf *g, const char *key, bool *out, struct al_err *e)
{
    bool v = false;
    int rc = gguf_get_bool(g, key, &v, e);
    if (rc < 0)
        return -1;
    if (rc == 0)
        *out = v;
    return 0;
}

static int
tok_load_tokens(struct tokenizer *t, const struct gguf *g, struct al_err *e)
{
    int rc = -1;
    struct gguf_str *strs = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    uint64_t n = 0, n_scores = 0, n_types = 0;
    struct buf arena;
    buf_init(&arena);

    int got = gguf_get_arr_str(g, "tokenizer.ggml.tokens", &strs, &n, e);
    if (got < 0)
        goto done;
    if (got > 0) {
        al_errf(e, AL_EFORMAT, "%s: no tokenizer.ggml.tokens", g->what);
        goto done;
    }
    if (n == 0 || n > TOK_MAX_VOCAB) {
        al_errf(e, n ? AL_ELIMIT : AL_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries",
                g->what, (unsigned long long)n);
        goto done;
    }
    if (gguf_get_arr_f32(g, "tokenizer.ggml.scores", &scores, &n_scores, e) < 0 ||
        gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &types, &n_types, e) < 0)
        goto done;
    if (types && n_types < n) {
        al_errf(e, AL_EFORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens",
                g->what, (unsigned long long)n_types, (unsigned long long)n);
        goto done;
    }
    t->n_vocab = (uint32_t)n;
    t->tok = xcalloc(n, sizeof(*t->tok));
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        struct tok_entry *te = &t->tok[i];
        if (arena.len + strs[i].n + 32 > TOK_MAX_ARENA) {
            al_errf(e, AL_ELIMIT, "%s: token strings exceed %u bytes", g->what, TOK_MAX_ARENA);
            goto done;
        }
        te->text_off = (uint32_t)arena.len;
        if (strs[i].n == 0)
            buf_printf(&arena, "[EMPTY_%u]", i); /* llama.cpp's name for an empty token */
        else
            buf_append(&arena, strs[i].p, (size_t)strs[i].n);
        te->text_len = (uint32_t)(arena.len - te->text_off);
        buf_putc(&arena, '\0');
        te->score = scores && i < n_scores ? scores[i] : 0.0f;
        te->attr = TOK_ATTR_NORMAL;
        if (types) {
            switch (types[i]) {
            case 1:
                te->attr = TOK_ATTR_NORMAL;
                break;
            case 2:
                te->attr = TOK_ATTR_UNKNOWN;
                break;
            case 3:
                te->attr = TOK_ATTR_CONTROL;
                break;
            case 4:
                te->attr = TOK_ATTR_USER_DEFINED;
                break;
            case 5:
                te->attr = TOK_ATTR_UNUSED;
                break;
            case 6:
                te->attr = TOK_ATTR_BYTE;
                break;
            default:
                te->attr = TOK_ATTR_UNDEFINED;
                break;
            }
        }
    }
    t->text = arena.data ? buf_steal(&arena) : xstrdup("");

    /* later duplicates win, as in llama.cpp's token_to_id map */
    size_t sz = tok_table_size(t->n_vocab);
    t->index = xcalloc(sz, sizeof(*t->index));
    t->index_mask = sz - 1;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        const struct tok_entry *te = &t->tok[i];
        size_t h =
            (size_t)tok_hash(TOK_HASH_SEED, t->text + te->text_off, te->text_len) & t->index_mask;
        for (;; h = (h + 1) & t->index_mask) {
            uint32_t v = t->index[h];
            if (v == 0) {
                t->index[h] = i + 1;
                break;
            }
            const struct tok_entry *o = &t->tok[v - 1];
            if (o->text_len == te->text_len &&
                memcmp(t->text + o->text_off, t->text + te->text_off, te->text_len) == 0) {
                t->index[h] = i + 1;
                break;
            }
        }
    }
    rc = 0;
done:
    buf_free(&arena);
    free(strs);
    free(scores);
    free(types);
    return rc;
}

static int
tok_load_merges(struct tokenizer *t, const struct gguf *g, struct al_err *e)
{
    int rc = -1;
    struct gguf_str *strs = NULL;
    uint64_t n = 0;
    struct buf arena;
    buf_init(&arena);

    int got = gguf_get_arr_str(g, "tokenizer.ggml.merges", &strs, &n, e);
    if (got < 0)
        goto done;
    if (got > 0) {
        al_errf(e, AL_EFORMAT, "%s: BPE vocabulary without tokenizer.ggml.merges", g->what);
        goto done;
    }
    if (n > TOK_MAX_MERGES) {
        al_errf(e, AL_ELIMIT, "%s: tokenizer.ggml.merges has %llu entries", g->what,
                (unsigned long long)n);
        goto done;
    }
    t->merges = xcalloc(n ? n : 1, sizeof(*t->merges));
    size_t sz = tok_table_size(n);
    t->merge_index = xcalloc(sz, sizeof(*t->merge_index));
    t->merge_mask = sz - 1;
    for (size_t i = 0; i < n; i++) {
        const char *s = strs[i].p;
        size_t len = (size_t)strs[i].n;
        if (arena.len + len > TOK_MAX_ARENA) {
            al_errf(e, AL_ELIMIT, "%s: merge strings exceed %u bytes", g->what, TOK_MAX_ARENA);
            goto done;
        }
        /* "left right", split at the first space after the first byte; a line without one
         * is the pair ("", "") as in llama.cpp */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        size_t ln = sp ? (size_t)(sp - s) : 0;
        size_t rn = sp ? len - ln - 1 : 0;
        const char *r = sp ? sp + 1 : s;
        t->merge_text = arena.data; /* borrowed view for the duplicate check */
        if (tok_merge_rank(t, s, ln, r, rn) >= 0)
            continue; /* first occurrence keeps its rank */
        struct tok_merge *m = &t->merges[t->n_merges];
        m->off = (uint32_t)arena.len;
        m->left_len = (uint32_t)ln;
        m->right_len = (uint32_t)rn;
        m->rank = (int32_t)i;
        buf_append(&arena, s, ln);
        buf_append(&arena, r, rn);
        size_t h = (size_t)tok_pair_hash(s, ln, r, rn) & t->merge_mask;
        while (t->merge_index[h] != 0)
            h = (h + 1) & t->merge_mask;
        t->merge_index[h] = (uint32_t)(t->n_merges + 1);
        t->n_merges++;
    }
    t->merge_text = arena.data ? buf_steal(&arena) : xstrdup("");
    rc = 0;
done:
    if (rc < 0)
        t->merge_text = NULL; /* still owned by arena */
    buf_free(&arena);
    free(strs);
    return rc;
}

static int32_t
tok_find_named(const struct tokenizer *t, const char *const *names)
{
    for (size_t i = 0; names[i]; i++) {
        int32_t id = tok_lookup(t, names[i], strlen(names[i]));
        if (id != TOKENIZER_NULL)
            return id;
    }
    return TOKENIZER_NULL;
}

/* The end-of-turn tokens llama.cpp recognises by text: they end generation and are treated
 * as control tokens even when the file types them otherwise. */
static const char *const tok_eot_names[] = {"<|eot_id|>",
                                            "<|im_end|>",
                                            "<|end|>",
                                            "<end_of_turn>",
                                            "<|endoftext|>",
                                            "<|end_of_text|>",
                                            "<EOT>",
                                            "_<EOT>",
                                            "[EOT]",
                                            "<\xef\xbd\x9c"
                                            "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                            "<end_of_utterance>",
                                            NULL};
static const char *const tok_eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
    "<EOT>",      "_<EOT>",     "[EOT]",   "[EOS]",         "<|end_of_text|>", "<end_of_utterance>",
    NULL};
/* fill-in-the-middle markers: control tokens; pad/repo/file-separator also end generation */
static const char *const tok_fim_names[] = {
    "<|fim_prefix|>", "<fim-prefix>",   "<fim_prefix>", "<|fim_suffix|>", "<fim-suffix>",
    "<fim_suffix>",   "<|fim_middle|>", "<fim-middle>", "<fim_middle>",   NULL};
static const char *const tok_fim_eog_names[] = {
    "<|fim_pad|>", "<fim-pad>",  "<fim_pad>",    "<|fim_repo|>", "<|repo_name|>",
    "<fim-repo>",  "<reponame>", "<|file_sep|>", "<file_sep>",   NULL};

static void
tok_mark_control(struct tokenizer *t, const char *const *names, bool eog)
{
    for (size_t i = 0; names[i]; i++) {
        int32_t id = tok_lookup(t, names[i], strlen(names[i]));
        if (id == TOKENIZER_NULL)
            continue;
        t->tok[id].attr |= TOK_ATTR_CONTROL;
        if (eog)
            t->tok[id].eog = true;
    }
}

/* Tokens cut out of the text before encoding: longest text first so "<|im_start|>" wins over
 * a shorter token it contains; equal lengths keep id order. */
static void
tok_build_special(struct tokenizer *t)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            n++;
    t->special = xmalloc((n ? n : 1) * sizeof(*t->special));
    t->n_special = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            t->special[t->n_special++] = (int32_t)i;
    /* insertion sort would be quadratic on hostile vocabularies: a stable merge sort */
    int32_t *tmp = xmalloc((n ? n : 1) * sizeof(*tmp));
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) {
                if (t->tok[t->special[b]].text_len > t->tok[t->special[a]].text_len)
                    tmp[k++] = t->special[b++];
                else
                    tmp[k++] = t->special[a++];
            }
            while (a < mid)
                tmp[k++] = t->special[a++];
            while (b < hi)
                tmp[k++] = t->special[b++];
        }
        memcpy(t->special, tmp, n * sizeof(*tmp));
    }
    free(tmp);
}

/* GPT-2's reversible byte <-> printable code point table */
static void
tok_build_byte_map(struct tokenizer *t)
{
    for (size_t i = 0; i < sizeof(t->cp_byte) / sizeof(t->cp_byte[0]); i++)
        t->cp_byte[i] = -1;
    uint16_t extra = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        uint16_t cp = printable ? (uint16_t)b : extra++;
        t->byte_cp[b] = cp;
        t->cp_byte[cp] = (int16_t)b;
    }
}

static int
tok_parse_hex_byte(const char *s, size_t n)
{
    /* "<0xAB>" */
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The text a token contributes to output, as llama.cpp's token_to_piece(special=false). */
static void
tok_render_piece(const struct tokenizer *t, int32_t id, struct buf *out)
{
    const struct tok_entry *te = &t->tok[id];
    const char *s = tok_text(t, id);
    size_t n = te->text_len;
    if (te->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))
        return;
    if (te->attr & TOK_ATTR_USER_DEFINED) {
        buf_append(out, s, n);
        return;
    }
    if (t->kind == TOK_KIND_SPM || t->kind == TOK_KIND_WPM) {
        if (te->attr & TOK_ATTR_NORMAL) {
            for (size_t i = 0; i < n;) {
                if (n - i >= 3 && memcmp(s + i, spm_space, 3) == 0) {
                    buf_putc(out, ' ');
                    i += 3;
                } else {
                    buf_putc(out, s[i++]);
                }
            }
        } else if (te->attr & TOK_ATTR_BYTE) {
            int b = tok_parse_hex_byte(s, n);
            if (b >= 0)
                buf_putc(out, (char)b);
        }
        return;
    }
    if (!(te->attr & TOK_ATTR_NORMAL))
        return;
    /* byte-level BPE: each code point stands for one byte; others are kept as they are */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = tok_utf8_len(c);
        if (len > n - i)
            len = n - i;
        uint32_t cp = c;
        if (len == 2 && ((unsigned char)s[i + 1] & 0xC0) == 0x80)
            cp = ((uint32_t)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
        else if (len != 1)
            cp = UINT32_MAX;
        if (cp < sizeof(t->cp_byte) / sizeof(t->cp_byte[0]) && t->cp_byte[cp] >= 0)
            buf_putc(out, (char)t->cp_byte[cp]);
        else
            buf_append(out, s + i, len);
        i += len;
    }
}

static void
tok_build_pieces(struct tokenizer *t)
{
    struct buf arena;
    buf_init(&arena);
    t->max_piece = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        size_t start = arena.len;
        tok_render_piece(t, (int32_t)i, &arena);
        t->tok[i].piece_off = (uint32_t)start;
        t->tok[i].piece_len = (uint32_t)(arena.len - start);
        if (t->tok[i].piece_len > t->max_piece)
            t->max_piece = t->tok[i].piece_len;
    }
    t->pieces = arena.data ? buf_steal(&arena) : xstrdup("");
}

/* general.name says phi-3: its special tokens swallow the whitespace after them */
static void
tok_apply_name_rules(struct tokenizer *t, const struct gguf *g)
{
    struct gguf_str name = {0};
    struct al_err ignored = {0};
    /* general.name is not tokenizer data: a missing or odd one only skips the rule */
    if (gguf_get_str(g, "general.name", &name, &ignored) != 0)
        return;
    char low[256];
    size_t n = name.n < sizeof(low) - 1 ? (size_t)name.n : sizeof(low) - 1;
    for (size_t i = 0; i < n; i++) {
        char c = name.p[i];
        low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    low[n] = '\0';
    if (!strstr(low, "phi-3") && !strstr(low, "phi3"))
        return;
    for (size_t i = 0; i < t->n_special; i++)
        t->tok[t->special[i]].attr |= TOK_ATTR_RSTRIP;
    static const char *const strip[] = {"</s>", NULL};
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
    for (size_t i = 0; strip[i]; i++) {
        int32_t id = tok_lookup(t, strip[i], strlen(strip[i]));
        if (id != TOKENIZER_NULL)
            t->tok[id].attr |= TOK_ATTR_RSTRIP;
    }
    for (size_t i = 0; keep[i]; i++) {
        int32_t id = tok_lookup(t, keep[i], strlen(keep[i]));
        if (id != TOKENIZER_NULL)
            t->tok[id].attr &= ~(uint32_t)TOK_ATTR_RSTRIP;
    }
}

int
tokenizer_load(struct tokenizer **out, const struct gguf *g, struct al_err *e)
{
    int rc = -1;
    struct tokenizer *t = xcalloc(1, sizeof(*t));
    struct gguf_str model = {0}, pre = {0};
    *out = NULL;

    int got = gguf_get_str(g, "tokenizer.ggml.model", &model, e);
    if (got < 0)
        goto done;
    if (got > 0) {
        al_errf(e, AL_EFORMAT, "%s: no tokenizer.ggml.model", g->what);
        goto done;
    }
    if (gguf_str_eq(model, "llama")) {
        t->kind = TOK_KIND_SPM;
    } else if (gguf_str_eq(model, "gpt2")) {
        t->kind = TOK_KIND_BPE;
    } else if (gguf_str_eq(model, "bert")) {
        t->kind = TOK_KIND_WPM;
    } else {
        al_errf(e, AL_EUNSUPPORTED,
                "%s: tokenizer.ggml.model '%.*s' is not supported "
                "(supported: llama, gpt2, bert)",
                g->what, (int)(model.n > 64 ? 64 : model.n), model.p);
        goto done;
    }
    got = gguf_get_str(g, "tokenizer.ggml.pre", &pre, e);
    if (got < 0)
        goto done;
    if (got == 0 && pre.n > 0 && pre.n < sizeof(t->pre_name)) {
        memcpy(t->pre_name, pre.p, (size_t)pre.n);
        t->pre_name[pre.n] = '\0';
    } else {
        memcpy(t->pre_name, "default", sizeof("default"));
    }
    if (tok_load_tokens(t, g, e) < 0)
        goto done;
    tok_build_byte_map(t);

    t->eot = t->eom = t->pad = t->sep = TOKENIZER_NULL;
    if (t->kind == TOK_KIND_SPM) {
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_space_prefix = true;
        t->add_bos = true;
        tok_spm_setup(t);
    } else if (t->kind == TOK_KIND_WPM) {
        /* BERT: [CLS] 101 first, [SEP] 102 last, [UNK] 100, [PAD] 0 */
        t->bos = 101, t->eos = TOKENIZER_NULL, t->unk = 100, t->sep = 102, t->pad = 0;
        t->add_bos = true;
        if (tok_wpm_setup(t, e) < 0)
            goto done;
    } else {
        t->bos = 11, t->eos = 11, t->unk = TOKENIZER_NULL;
        if (tok_load_merges(t, g, e) < 0 || tok_bpe_setup(t, e) < 0)
            goto done;
    }
    /* a default the vocabulary is too small for means "none" */
    if (t->bos >= (int32_t)t->n_vocab)
        t->bos = TOKENIZER_NULL;
    if (t->eos >= (int32_t)t->n_vocab)
        t->eos = TOKENIZER_NULL;
    if (t->unk >= (int32_t)t->n_vocab)
        t->unk = TOKENIZER_NULL;
    if (t->sep >= (int32_t)t->n_vocab)
        t->sep = TOKENIZER_NULL;
    if (t->pad >= (int32_t)t->n_vocab)
        t->pad = TOKENIZER_NULL;

    if (tok_load_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, e) < 0 ||
        tok_load_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, e) < 0 ||
        tok_load_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, e) < 0 ||
        tok_load_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, e) < 0 ||
        tok_load_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom, e) < 0 ||
        tok_load_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, e) < 0 ||
        tok_load_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, e) < 0 ||
        /* sic: the key is spelt this way in GGUF files */
        tok_load_id(g, "tokenizer.ggml.seperator_token_id", t->n_vocab, &t->sep, e) < 0 ||
        tok_load_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, e) < 0 ||
        tok_load_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, e) < 0)
        goto done;

    if (t->eot == TOKENIZER_NULL)
        t->eot = tok_find_named(t, tok_eot_names);
    if (t->eom == TOKENIZER_NULL) {
        static const char *const eom_names[] = {"<|eom_id|>", NULL};
        t->eom = tok_find_named(t, eom_names);
    }
    tok_mark_control(t, tok_eot_names, false);
    tok_mark_control(t, tok_eog_names, true);
    tok_mark_control(t, tok_fim_names, false);
    tok_mark_control(t, tok_fim_eog_names, true);
    if (t->eos != TOKENIZER_NULL)
        t->tok[t->eos].eog = true;
    if (t->eot != TOKENIZER_NULL) {
        t->tok[t->eot].eog = true;
        t->tok[t->eot].attr |= TOK_ATTR_CONTROL;
    }
    if (t->eom != TOKENIZER_NULL) {
        t->tok[t->eom].eog = true;
        t->tok[t->eom].attr |= TOK_ATTR_CONTROL;
    }

    tok_build_special(t);
    tok_apply_name_rules(t, g);
    tok_build_pieces(t);

    struct gguf_str tmpl = {0};
    got = gguf_get_str(g, "tokenizer.chat_template", &tmpl, e);
    if (got < 0)
        goto done;
    if (got == 0)
        t->chat_template = xstrndup(tmpl.p, (size_t)tmpl.n);
    *out = t;
    t = NULL;
    rc = 0;
done:
    tokenizer_free(t);
    return rc;
}

void
tokenizer_free(struct tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    pcre2_code_free(t->wpm_class);
    free(t->spm_pairs);
    if (t->wpm_lower)
        freelocale(t->wpm_lower);
    free(t->tok);
    free(t->text);
    free(t->pieces);
    free(t->index);
    free(t->merges);
    free(t->merge_text);
    free(t->merge_index);
    free(t->special);
    free(t->chat_template);
    free(t);
}

/* ===== encoding =============================================================================== */

struct tok_frag {
    size_t off; /* raw text: byte range of the input */
    size_t len;
    int32_t id; /* a special token, or TOKENIZER_NULL for raw text */
};

struct tok_frags {
    struct tok_frag *v; /* owned */
    size_t n;           /* fragments stored, in text order */
    size_t cap;         /* fragments allocated */
};

static void
tok_frags_push(struct tok_frags *f, size_t off, size_t len, int32_t id)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n].off = off;
    f->v[f->n].len = len;
    f->v[f->n].id = id;
    f->n++;
}

static bool
tok_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Cut the raw-text fragments of cur around every occurrence of token id, into next. */
static void
tok_partition_one(const struct tokenizer *t, const char *text, int32_t id,
                  const struct tok_frags *cur, struct tok_frags *next)
{
    const char *needle = tok_text(t, id);
    size_t nl = t->tok[id].text_len;
    uint32_t attr = t->tok[id].attr;
    next->n = 0;
    for (size_t i = 0; i < cur->n; i++) {
        struct tok_frag f = cur->v[i];
        if (f.id != TOKENIZER_NULL) {
            tok_frags_push(next, f.off, f.len, f.id);
            continue;
        }
        size_t off = f.off, len = f.len;
        while (len > 0) {
            const char *m = memmem(text + off, len, needle, nl);
            if (!m) {
                tok_frags_push(next, off, len, TOKENIZER_NULL);
                break;
            }
            size_t at = (size_t)(m - text);
            size_t left = at - off;
            if (attr & TOK_ATTR_LSTRIP)
                while (left > 0 && tok_isspace(text[off + left - 1]))
                    left--;
            if (left > 0)
                tok_frags_push(next, off, left, TOKENIZER_NULL);
            tok_frags_push(next, at, nl, id);
            size_t roff = at + nl, rlen = off + len - roff;
            if (attr & TOK_ATTR_RSTRIP)
                while (rlen > 0 && tok_isspace(text[roff])) {
                    roff++;
                    rlen--;
                }
            off = roff;
            len = rlen;
        }
    }
}

/* Which 1-, 2- and (hashed) 3-byte strings occur in the text. Vocabularies carry hundreds or
 * thousands of special tokens (DeepSeek: 2400); a token with a byte string the text lacks
 * cannot occur in any fragment of it, so most are ruled out without a memmem over the text. */
struct tok_grams {
    uint64_t one[256 / 64];     /* bit b: byte b occurs */
    uint64_t two[65536 / 64];   /* bit (b0 << 8 | b1): the pair occurs */
    uint64_t three[65536 / 64]; /* bit tok_gram3(b0, b1, b2): some triple with that hash */
};

static uint32_t
tok_gram3(const unsigned char *p)
{
    uint32_t v = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
    return (v * 2654435761u) >> 16;
}

static void
tok_grams_build(struct tok_grams *g, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    memset(g, 0, sizeof(*g));
    for (size_t i = 0; i < n; i++) {
        g->one[p[i] >> 6] |= 1ull << (p[i] & 63);
        if (i + 1 < n) {
            uint32_t b = ((uint32_t)p[i] << 8) | p[i + 1];
            g->two[b >> 6] |= 1ull << (b & 63);
        }
        if (i + 2 < n) {
            uint32_t h = tok_gram3(p + i);
            g->three[h >> 6] |= 1ull << (h & 63);
        }
    }
}

static bool
tok_grams_may_contain(const struct tok_grams *g, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n == 1)
        return g->one[p[0] >> 6] >> (p[0] & 63) & 1;
    if (n == 2) {
        uint32_t b = ((uint32_t)p[0] << 8) | p[1];
        return g->two[b >> 6] >> (b & 63) & 1;
    }
    for (size_t i = 0; i + 2 < n; i++) {
        uint32_t h = tok_gram3(p + i);
        if (!(g->three[h >> 6] >> (h & 63) & 1))
            return false;
    }
    return true;
}

int
tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t **ids, size_t *n, struct al_err *e)
{
    int rc = -1;
    struct tok_ids out = {0};
    struct tok_frags cur = {0}, next = {0};
    struct buf esc;
    buf_init(&esc);
    *ids = NULL;
    *n = 0;

    if (len > TOKENIZER_MAX_INPUT) {
        al_errf(e, AL_ELIMIT, "text to tokenize is %zu bytes (limit %u)", len, TOKENIZER_MAX_INPUT);
        goto done;
    }
    if (len > 0)
        tok_frags_push(&cur, 0, len, TOKENIZER_NULL);
    struct tok_grams grams;
    if (t->n_special > 0 && len > 0)
        tok_grams_build(&grams, text, len);
    for (size_t s = 0; s < t->n_special && cur.n > 0; s++) {
        int32_t id = t->special[s];
        uint32_t attr = t->tok[id].attr;
        if (!parse_special && (attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
            continue; /* only user-defined tokens are matched in plain text */
        if (!tok_grams_may_contain(&grams, tok_text(t, id), t->tok[id].text_len))
            continue;
        bool found = false;
        for (size_t i = 0; i < cur.n && !found; i++)
            found = cur.v[i].id == TOKENIZER_NULL &&
                    memmem(text + cur.v[i].off, cur.v[i].len, tok_text(t, id),
                           t->tok[id].text_len) != NULL;
        if (!found)
            continue;
        tok_partition_one(t, text, id, &cur, &next);
        struct tok_frags tmp = cur;
        cur = next;
        next = tmp;
    }

    /* WordPiece always frames the text with [CLS] ... [SEP] when add_special (llama.cpp) */
    if (add_special && (t->add_bos || t->kind == TOK_KIND_WPM) && t->bos != TOKENIZER_NULL)
        tok_ids_push(&out, t->bos);
    bool prev_special = true; /* SPM: the text start gets the space prefix */
    for (size_t i = 0; i < cur.n; i++) {
        const struct tok_frag *f = &cur.v[i];
        if (f->id != TOKENIZER_NULL) {
            tok_ids_push(&out, f->id);
            prev_special = true;
            continue;
        }
        if (t->kind == TOK_KIND_SPM) {
            buf_reset(&esc);
            if (t->add_space_prefix && prev_special)
                buf_append(&esc, spm_space, 3);
            const char *s = text + f->off;
            for (size_t k = 0; k < f->len; k++) {
                if (s[k] == ' ')
                    buf_append(&esc, spm_space, 3);
                else
                    buf_putc(&esc, s[k]);
            }
            tok_spm_encode(t, esc.data, esc.len, &out);
        } else if (t->kind == TOK_KIND_WPM) {
            if (tok_wpm_encode(t, text + f->off, f->len, &out, e) < 0)
                goto done;
        } else if (tok_bpe_encode(t, text + f->off, f->len, &out, e) < 0) {
            goto done;
        }
        prev_special = false;
    }
    if (add_special && t->add_eos && t->eos != TOKENIZER_NULL)
        tok_ids_push(&out, t->eos);
    if (add_special && t->kind == TOK_KIND_WPM && t->sep != TOKENIZER_NULL)
        tok_ids_push(&out, t->sep);

    *ids = out.v ? out.v : xmalloc(sizeof(int32_t));
    *n = out.n;
    out.v = NULL;
    rc = 0;
done:
    free(out.v);
    free(cur.v);
    free(next.v);
    buf_free(&esc);
    return rc;
}

/* ===== decoding =============================================================================== */

const char *
tokenizer_piece(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    *len = t->tok[id].piece_len;
    return t->pieces + t->tok[id].piece_off;
}

const char *
tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    *len = t->tok[id].text_len;
    return tok_text(t, id);
}

size_t
tokenizer_max_piece(const struct tokenizer *t)
{
    return t->max_piece;
}

int
tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, struct buf *out,
                 struct al_err *e)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab)
            return al_errf(e, AL_EUSAGE,
                           "token id %d at position %zu is outside the "
                           "vocabulary (%u tokens)",
                           ids[i], i, t->n_vocab);
        size_t len = 0;
        const char *p = tokenizer_piece(t, ids[i], &len);
        /* llama.cpp strips the encoder's space prefix from the first token only */
        if (i == 0 && t->add_space_prefix && len > 0 && p[0] == ' ') {
            p++;
            len--;
        }
        buf_append(out, p, len);
    }
    return 0;
}

int32_t
tokenizer_bos(const struct tokenizer *t)
{
    return t->bos;
}
int32_t
tokenizer_eos(const struct tokenizer *t)
{
    return t->eos;
}
int32_t
tokenizer_n_vocab(const struct tokenizer *t)
{
    return (int32_t)t->n_vocab;
}
bool
tokenizer_add_bos(const struct tokenizer *t)
{
    return t->add_bos && t->bos != TOKENIZER_NULL;
}
bool
tokenizer_add_eos(const struct tokenizer *t)
{
    return t->add_eos && t->eos != TOKENIZER_NULL;
}
const char *
tokenizer_chat_template(const struct tokenizer *t)
{
    return t->chat_template;
}
const char *
tokenizer_kind_name(const struct tokenizer *t)
{
    return t->kind == TOK_KIND_SPM ? "spm" : t->kind == TOK_KIND_WPM ? "wpm" : "bpe";
}
const char *
tokenizer_pre_name(const struct tokenizer *t)
{
    return t->pre_name;
}

bool
tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_vocab && t->tok[id].eog;
}

bool
tokenizer_is_control(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_vocab && (t->tok[id].attr & TOK_ATTR_CONTROL);
}

/* ===== streaming detokenizer ================================================================== */

void
detok_init(struct detok *d, const struct tokenizer *t)
{
    memset(d, 0, sizeof(*d));
    d->t = t;
}

/* How many trailing bytes of s[0..n) form an incomplete (so far valid) UTF-8 sequence. */
static size_t
detok_incomplete_tail(const unsigned char *s, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation: keep looking for the lead byte */
        size_t need = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (c >= 0xF8)
            need = 1;
        return need > back ? back : 0;
    }
    return 0;
}

size_t
detok_push(struct detok *d, int32_t id, char *out, size_t cap)
{
    size_t plen = 0;
    const char *p = tokenizer_piece(d->t, id, &plen);
    size_t total = d->npend + plen;
    /* the tail can only be held back if it lies in the last 3 bytes of pend+piece */
    unsigned char tail[8];
    size_t tn = total < 3 ? total : 3;
    for (size_t i = 0; i < tn; i++) {
        size_t at = total - tn + i;
        tail[i] = at < d->npend ? d->pend[at] : (unsigned char)p[at - d->npend];
    }
    size_t hold = detok_incomplete_tail(tail, tn);
    size_t emit = total - hold;
    if (emit > cap)
        return emit;
    size_t from_pend = emit < d->npend ? emit : d->npend;
    memcpy(out, d->pend, from_pend);
    if (emit > from_pend)
        memcpy(out + from_pend, p, emit - from_pend);
    /* keep the held bytes (they may straddle pend and the piece) */
    unsigned char keep[4];
    for (size_t i = 0; i < hold; i++) {
        size_t at = emit + i;
        keep[i] = at < d->npend ? d->pend[at] : (unsigned char)p[at - d->npend];
    }
    memcpy(d->pend, keep, hold);
    d->npend = hold;
    return emit;
}

size_t
detok_flush(struct detok *d, char *out, size_t cap)
{
    size_t n = d->npend;
    if (n > cap)
        return n;
    memcpy(out, d->pend, n);
    d->npend = 0;
    return n;
}
