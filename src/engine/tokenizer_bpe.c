/* tokenizer_bpe.c -- the byte-level BPE encoder (tokenizer.ggml.model = "gpt2").
 * Three steps, as llama.cpp does them:
 *  1. pre-tokenize: the patterns of the vocabulary's tokenizer.ggml.pre split the text in
 *     turn (each pattern cuts every piece left by the previous one; text between matches is
 *     kept as its own piece), PCRE2 in UTF + UCP mode;
 *  2. each piece is rewritten byte by byte through GPT-2's bytes_to_unicode table;
 *  3. adjacent symbols are merged lowest merge rank first (ties: leftmost) until no pair of
 *     tokenizer.ggml.merges applies; leftovers fall back to one-byte tokens.
 * Input is untrusted: invalid UTF-8 becomes U+FFFD before matching (PCRE2 needs valid UTF-8),
 * and every match runs under a match limit. Owns the compiled patterns via struct tokenizer. */
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_int.h"
#include "util/utf8.h"
#include "util/xalloc.h"

/* ===== pre-tokenizer patterns ================================================================= */

/* llama.cpp's notion of whitespace (its \s): ASCII \t..\r and space plus the Unicode spaces.
 * Spelled out so PCRE2's own \s (which differs on U+0085 and U+001C..U+001F) cannot drift. */
#define WS                                                                                         \
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"                \
    "\\x{205F}\\x{3000}"
#define SP "[" WS "]"
#define NSP "[^" WS "]"

#define RE_GPT2                                                                                    \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" SP "+(?!" NSP ")"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3_DIGITS(d)                                                                        \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" d "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" SP   \
                    "*[\\r\\n]+|" SP "+(?!" NSP ")|" SP "+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

struct bpe_pre {
    const char *names[8];       /* tokenizer.ggml.pre values, NULL-terminated */
    const char *re[TOK_MAX_RE]; /* applied in order, NULL-terminated */
    bool ignore_merges;         /* a piece that is a token is emitted unmerged (Llama 3) */
    bool add_bos;               /* default for add_bos_token */
};

static const struct bpe_pre bpe_pres[] = {
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", NULL},
     {RE_LLAMA3_DIGITS("\\p{N}{1,3}"), NULL},
     true,
     true},
    {{"dbrx", "smaug-bpe", "chatglm-bpe", NULL},
     {RE_LLAMA3_DIGITS("\\p{N}{1,3}"), NULL},
     false,
     false},
    {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", NULL},
     {RE_LLAMA3_DIGITS("\\p{N}"), NULL},
     false,
     false},
    {{"deepseek-llm", NULL},
     {"[\\r\\n]",
      /* the Latin, Greek, Cyrillic, ... letter ranges of DeepSeek's tokenizer.json */
      SP "?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
         "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
         "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"
         "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}"
         "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
         "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
         "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}"
         "\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}"
         "\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
         "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
         "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
         "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"
         "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
         "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
         "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
         "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
         "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
         "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      SP "?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      SP "+$", RE_CJK, "\\p{N}+", NULL},
     false,
     false},
    {{"deepseek-coder", NULL},
     {"[\\r\\n]", SP "?\\p{L}+", SP "?\\p{P}+", RE_CJK, "\\p{N}", NULL},
     false,
     false},
    {{"falcon", NULL},
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]", NULL},
     false,
     false},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", NULL},
     {"\\p{N}", RE_GPT2, NULL},
     false,
     false},
    {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", NULL},
     {RE_GPT2, NULL},
     false,
     false},
    {{"jina-v2-es", "jina-v2-de", "jina-v1-en", "jina-v2-code", "roberta-bpe", NULL},
     {RE_GPT2, NULL},
     false,
     false},
    {{"poro-chat", "bloom", "gpt3-finnish", NULL},
     {" ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+", NULL},
     false,
     false},
    {{"viking", NULL},
     {" ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+",
      "\\p{N}", NULL},
     false,
     false},
};

/* llama.cpp falls back to these for "default", a missing key or an unknown name */
static const struct bpe_pre bpe_pre_default = {
    {"default", NULL},
    {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL},
    false,
    false};

#define BPE_MATCH_LIMIT 10000000u /* PCRE2 backtracking steps per match */

int
tok_bpe_setup(struct tokenizer *t, struct al_err *e)
{
    const struct bpe_pre *pre = &bpe_pre_default;
    for (size_t i = 0; i < sizeof(bpe_pres) / sizeof(bpe_pres[0]); i++)
        for (size_t k = 0; bpe_pres[i].names[k]; k++)
            if (strcmp(bpe_pres[i].names[k], t->pre_name) == 0)
                pre = &bpe_pres[i];
    t->ignore_merges = pre->ignore_merges;
    t->add_bos = pre->add_bos;
    for (size_t i = 0; pre->re[i]; i++) {
        int code = 0;
        PCRE2_SIZE at = 0;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)pre->re[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof(msg));
            return al_errf(e, AL_EINTERNAL, "pre-tokenizer '%s' pattern %zu, offset %zu: %s",
                           t->pre_name, i, (size_t)at, (const char *)msg);
        }
        /* JIT is only a speed-up; the interpreter gives the same matches */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        t->re[t->n_re++] = re;
    }
    return 0;
}

/* ===== UTF-8 clean-up ========================================================================= */

/* Decode like llama.cpp (lead byte decides the length, continuation bytes are checked, no
 * overlong check) and re-encode canonically; anything undecodable, surrogates and code points
 * past U+10FFFF become U+FFFD, so PCRE2 always sees valid UTF-8. Returns bytes written to
 * out, which holds at least 3 * n. */
static size_t
bpe_utf8_clean(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t adv = 1;
        o += utf8_encode(tok_utf8_next(s + i, n - i, &adv), out + o);
        i += adv;
    }
    return o;
}

/* ===== splitting ============================================================================== */

struct bpe_span {
    size_t off; /* bytes into the cleaned text */
    size_t len;
};

struct bpe_spans {
    struct bpe_span *v; /* owned */
    size_t n;           /* spans stored */
    size_t cap;         /* spans allocated */
};

static void
bpe_spans_push(struct bpe_spans *s, size_t off, size_t len)
{
    if (len == 0)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n].off = off;
    s->v[s->n].len = len;
    s->n++;
}

/* Cut one span with one pattern: matches and the gaps between them both become spans. The
 * span is the whole subject, so lookaheads and $ stop at its end, as in llama.cpp. */
static int
bpe_split_span(const struct tokenizer *t, const pcre2_code *re, const char *text,
               struct bpe_span sp, pcre2_match_data *md, pcre2_match_context *mc,
               struct bpe_spans *out, struct al_err *e)
{
    const PCRE2_SPTR subj = (PCRE2_SPTR)(text + sp.off);
    size_t pos = 0, gap = 0;
    while (pos < sp.len) {
        int rc = pcre2_match(re, subj, sp.len, pos, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return al_errf(e, rc == PCRE2_ERROR_MATCHLIMIT ? AL_ELIMIT : AL_EINTERNAL,
                           "pre-tokenizer '%s' at text byte %zu: %s", t->pre_name, sp.off + pos,
                           (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* an empty match cuts nothing; step over one character and search on */
            pos = ms + 1;
            while (pos < sp.len && (subj[pos] & 0xC0) == 0x80)
                pos++;
            continue;
        }
        bpe_spans_push(out, sp.off + gap, ms - gap);
        bpe_spans_push(out, sp.off + ms, me - ms);
        gap = pos = me;
    }
    bpe_spans_push(out, sp.off + gap, sp.len - gap);
    return 0;
}

/* ===== merging ================================================================================ */

struct bpe_sym {
    int32_t prev; /* previous live symbol, -1 at the start */
    int32_t next; /* next live symbol, -1 at the end */
    uint32_t off; /* bytes into the encoded word (input is bounded, see tokenizer.h) */
    uint32_t n;   /* bytes; 0 once merged away */
};

/* Scratch reused across the pieces of one encode call. */
struct bpe_work {
    char *word;           /* owned: the byte-level encoded piece */
    size_t word_cap;      /* bytes allocated for word */
    struct bpe_sym *sym;  /* owned: one symbol per character of word */
    size_t sym_cap;       /* symbols allocated */
    struct tok_heap heap;  /* candidate pairs of the current piece */
};

static void
bpe_try_pair(const struct tokenizer *t, const char *w, const struct bpe_sym *sym, int32_t l,
             int32_t r, struct tok_heap *h)
{
    if (l < 0 || r < 0)
        return;
    int32_t rank = tok_merge_rank(t, w + sym[l].off, sym[l].n, w + sym[r].off, sym[r].n);
    if (rank < 0)
        return;
    struct tok_pair p = {
        .left = l, .right = r, .key = rank, .n_left = sym[l].n, .n_right = sym[r].n};
    tok_heap_push(h, p);
}

static void
bpe_emit(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out)
{
    int32_t id = tok_lookup(t, s, n);
    if (id != TOKENIZER_NULL) {
        tok_ids_push(out, id);
        return;
    }
    /* llama.cpp's fallback: single bytes of the encoded string that happen to be tokens */
    for (size_t j = 0; j < n; j++) {
        id = tok_lookup(t, s + j, 1);
        if (id != TOKENIZER_NULL)
            tok_ids_push(out, id);
    }
}

static void
bpe_word(const struct tokenizer *t, const unsigned char *piece, size_t n, struct bpe_work *w,
         struct tok_ids *out)
{
    /* every byte becomes a code point below 324: at most 2 UTF-8 bytes */
    if (w->word_cap < 2 * n) {
        w->word_cap = 2 * n;
        w->word = xrealloc(w->word, w->word_cap);
    }
    size_t wn = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t cp = t->byte_cp[piece[i]];
        if (cp < 0x80) {
            w->word[wn++] = (char)cp;
        } else {
            w->word[wn++] = (char)(0xC0 | (cp >> 6));
            w->word[wn++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (t->ignore_merges && tok_lookup(t, w->word, wn) != TOKENIZER_NULL) {
        tok_ids_push(out, tok_lookup(t, w->word, wn));
        return;
    }
    if (w->sym_cap < n) {
        w->sym_cap = n;
        w->sym = xrealloc(w->sym, w->sym_cap * sizeof(*w->sym));
    }
    struct bpe_sym *sym = w->sym;
    int32_t nsym = 0;
    for (size_t off = 0; off < wn;) {
        size_t len = tok_utf8_len((unsigned char)w->word[off]);
        if (len > wn - off)
            len = wn - off;
        sym[nsym].prev = nsym - 1;
        sym[nsym].off = (uint32_t)off;
        sym[nsym].n = (uint32_t)len;
        off += len;
        sym[nsym].next = off == wn ? -1 : nsym + 1;
        nsym++;
    }
    w->heap.n = 0;
    for (int32_t i = 1; i < nsym; i++)
        bpe_try_pair(t, w->word, sym, i - 1, i, &w->heap);
    while (w->heap.n > 0) {
        struct tok_pair p = tok_heap_pop(&w->heap);
        struct bpe_sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n != p.n_left || r->n != p.n_right)
            continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = p.left;
        bpe_try_pair(t, w->word, sym, l->prev, p.left, &w->heap);
        bpe_try_pair(t, w->word, sym, p.left, l->next, &w->heap);
    }
    for (int32_t i = 0; i != -1 && nsym > 0; i = sym[i].next)
        bpe_emit(t, w->word + sym[i].off, sym[i].n, out);
}

int
tok_bpe_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
               struct al_err *e)
{
    int rc = -1;
    char *clean = NULL;
    struct bpe_spans cur = {0}, next = {0};
    struct bpe_work w = {0};
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;

    if (n == 0)
        return 0;
    clean = xmalloc(3 * n); /* n <= TOKENIZER_MAX_INPUT: no overflow */
    size_t cn = bpe_utf8_clean((const unsigned char *)s, n, clean);
    md = pcre2_match_data_create(8, NULL);
    mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        al_errf(e, AL_EINTERNAL, "pcre2: out of memory");
        goto done;
    }
    pcre2_set_match_limit(mc, BPE_MATCH_LIMIT);

    bpe_spans_push(&cur, 0, cn);
    for (size_t r = 0; r < t->n_re; r++) {
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++)
            if (bpe_split_span(t, t->re[r], clean, cur.v[i], md, mc, &next, e) < 0)
                goto done;
        struct bpe_spans tmp = cur;
        cur = next;
        next = tmp;
    }
    for (size_t i = 0; i < cur.n; i++)
        bpe_word(t, (const unsigned char *)clean + cur.v[i].off, cur.v[i].len, &w, out);
    rc = 0;
done:
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    free(w.word);
    free(w.sym);
    free(w.heap.v);
    free(cur.v);
    free(next.v);
    free(clean);
    return rc;
}
