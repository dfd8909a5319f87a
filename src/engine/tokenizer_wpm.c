/* tokenizer_wpm.c -- the WordPiece encoder of BERT-style embedding models
 * (tokenizer.ggml.model = "bert"), as llama.cpp runs it: each code point is folded to the
 * first code point of its canonical decomposition (accents drop) and lower-cased; whitespace
 * separates words, control characters vanish, punctuation, ASCII symbols and CJK ideographs
 * are words of their own; every word, prefixed with U+2581, is cut greedily into the longest
 * vocabulary tokens from the left, and a word with an uncuttable rest becomes [UNK].
 * Character classes come from PCRE2's Unicode tables, lower-casing from the C.UTF-8 locale
 * (a locale object, not the process locale). Input is untrusted: lengths are bounded by
 * tokenizer_encode; the greedy search is bounded by the (capped) longest token. */
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "engine/tokenizer_int.h"
#include "util/utf8.h"
#include "util/xalloc.h"

/* Tokens longer than this are never tried: keeps the greedy search O(n * cap) on hostile
 * vocabularies. Real WordPiece vocabularies stay far below (bert-bge: 21 bytes). */
#define WPM_MAX_TOKEN_LEN 64

int
tok_wpm_setup(struct tokenizer *t, struct al_err *e)
{
    /* group 1: punctuation, group 2: symbol, group 3: control (Cc, Cf, Co; llama.cpp leaves
     * unassigned code points alone) */
    static const char pattern[] = "(\\p{P})|(\\p{S})|([\\p{Cc}\\p{Cf}\\p{Co}])";
    int code = 0;
    PCRE2_SIZE at = 0;
    t->wpm_class = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &at, NULL);
    if (!t->wpm_class)
        return al_errf(e, AL_EINTERNAL, "WordPiece character classes: PCRE2 error %d", code);
    /* only a speed-up */
    (void)pcre2_jit_compile(t->wpm_class, PCRE2_JIT_COMPLETE);
    /* without C.UTF-8 only ASCII is lower-cased: worse, but never wrong for ASCII text */
    t->wpm_lower = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    size_t max = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].text_len > max)
            max = t->tok[i].text_len;
    t->wpm_max_len = max < WPM_MAX_TOKEN_LEN ? max : WPM_MAX_TOKEN_LEN;
    return 0;
}

enum wpm_class { WPM_OTHER, WPM_PUNCT, WPM_SYMBOL, WPM_CONTROL };

static enum wpm_class
wpm_classify(const struct tokenizer *t, uint32_t cp, pcre2_match_data *md)
{
    char u[4];
    size_t n = utf8_encode(cp, u);
    int rc = pcre2_match(t->wpm_class, (PCRE2_SPTR)u, n, 0, 0, md, NULL);
    if (rc < 0)
        return WPM_OTHER;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    for (int g = 1; g <= 3 && g < rc; g++)
        if (ov[2 * g] != PCRE2_UNSET)
            return (enum wpm_class)g;
    return WPM_OTHER;
}

static bool
wpm_is_cjk(uint32_t cp)
{
    /* the CJK ideograph blocks BERT's tokenizer isolates (with its 0x2B920 quirk) */
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Cut one word ("\xe2\x96\x81" + text, in w[0..n)) into tokens, or [UNK] when impossible. */
static void
wpm_word(const struct tokenizer *t, const char *w, size_t n, struct tok_ids *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = i + t->wpm_max_len < n ? i + t->wpm_max_len : n;
        int32_t id = TOKENIZER_NULL;
        for (; j > i; j--) {
            id = tok_lookup(t, w + i, j - i);
            if (id != TOKENIZER_NULL)
                break;
        }
        if (id == TOKENIZER_NULL) {
            out->n = start; /* the whole word is unknown */
            break;
        }
        tok_ids_push(out, id);
        i = j;
    }
    if (out->n == start && t->unk != TOKENIZER_NULL)
        tok_ids_push(out, t->unk);
}

int
tok_wpm_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
               struct al_err *e)
{
    static const char prefix[] = "\xe2\x96\x81";
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md)
        return al_errf(e, AL_EINTERNAL, "pcre2: out of memory");
    /* the current word, prefix included; at most 4 bytes per input byte plus the prefix */
    char *word = xmalloc(4 * n + sizeof(prefix));
    size_t wn = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i <= n;) {
        uint32_t cp = 0x20; /* the end of the text ends the last word */
        size_t adv = 1;
        if (i < n)
            cp = tok_nfd_first(tok_utf8_next(u + i, n - i, &adv));
        i += adv;
        if (tok_is_space(cp)) {
            if (wn > 0)
                wpm_word(t, word, wn, out);
            wn = 0;
            continue;
        }
        enum wpm_class cls = wpm_classify(t, cp, md);
        if (cp == 0 || cp == 0xFFFD || cls == WPM_CONTROL)
            continue;
        uint32_t low = cp;
        if (t->wpm_lower)
            low = (uint32_t)towlower_l((wint_t)cp, t->wpm_lower);
        else if (cp >= 'A' && cp <= 'Z')
            low = cp + ('a' - 'A');
        if (low > 0x10FFFF || (low >= 0xD800 && low <= 0xDFFF))
            low = cp;
        bool alone = cls == WPM_PUNCT || (cp < 0x7F && cls == WPM_SYMBOL) || wpm_is_cjk(cp);
        if (alone && wn > 0) {
            wpm_word(t, word, wn, out);
            wn = 0;
        }
        if (wn == 0) {
            memcpy(word, prefix, 3);
            wn = 3;
        }
        wn += utf8_encode(low, word + wn);
        if (alone) {
            wpm_word(t, word, wn, out);
            wn = 0;
        }
    }
    free(word);
    pcre2_match_data_free(md);
    return 0;
}
