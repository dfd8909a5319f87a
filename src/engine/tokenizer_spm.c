/* tokenizer_spm.c -- the SentencePiece-style encoder (tokenizer.ggml.model = "llama").
 * The text is cut into UTF-8 characters; then, repeatedly, the adjacent pair whose
 * concatenation is the vocabulary token with the highest score is merged (ties: leftmost
 * first), exactly the order llama.cpp uses. Characters that never became a token fall back to
 * <0xAB> byte tokens. A binary heap of candidate pairs keeps this O(n log n).
 * Input is untrusted but already bounded by tokenizer_encode; owns nothing beyond one call. */
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_int.h"
#include "util/xalloc.h"

/* ===== symbols and candidate pairs ============================================================ */

struct spm_sym {
    int32_t prev; /* index of the previous live symbol, -1 at the start */
    int32_t next; /* index of the next live symbol, -1 at the end */
    uint32_t off; /* byte offset into the text (input is bounded, see tokenizer.h) */
    uint32_t n;   /* bytes; 0 once merged into its left neighbour */
};

/* ===== pair candidates and byte fallback ====================================================== */

static void
spm_try_pair(const struct tokenizer *t, const char *s, const struct spm_sym *sym, int32_t l,
             int32_t r, struct tok_heap *h)
{
    if (l < 0 || r < 0)
        return;
    uint32_t size = sym[l].n + sym[r].n;
    int32_t id = tok_lookup(t, s + sym[l].off, size);
    if (id == TOKENIZER_NULL)
        return;
    struct tok_pair p = {.left = l, .right = r, .key = -(double)t->tok[id].score,
                         .n_left = sym[l].n, .n_right = sym[r].n};
    tok_heap_push(h, p);
}

/* A byte with no token of its own: <0xAB>, else the one-byte string, else <unk>. */
static int32_t
spm_byte_token(const struct tokenizer *t, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char name[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
    int32_t id = tok_lookup(t, name, sizeof(name));
    if (id == TOKENIZER_NULL)
        id = tok_lookup(t, (const char *)&c, 1);
    if (id == TOKENIZER_NULL)
        id = t->unk;
    return id;
}

/* ===== uncrossable boundaries ================================================================= */

/* A character (1..4 bytes, llama.cpp's length rule) as a number; truncated characters can
 * share a key with a full one, which only makes a boundary look crossable (still exact). */
static uint32_t
spm_char_key(const unsigned char *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t
spm_pair_hash(uint64_t k)
{
    /* splitmix64 finaliser: the keys are far from random */
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebull;
    return k ^ (k >> 31);
}

static bool
spm_pair_has(const struct tokenizer *t, uint64_t key)
{
    if (!t->spm_pairs)
        return true; /* no set: every boundary may be merged across */
    if (key == 0)
        return t->spm_pair_zero;
    for (size_t i = (size_t)spm_pair_hash(key) & t->spm_pairs_mask;;
         i = (i + 1) & t->spm_pairs_mask) {
        if (t->spm_pairs[i] == key)
            return true;
        if (t->spm_pairs[i] == 0)
            return false;
    }
}

/* Vocabularies with more bytes of token text than this skip the pair set (its table takes
 * 16 bytes per byte of text). Real SPM vocabularies have well under 4 MiB. */
#define SPM_PAIRS_MAX_TEXT (4u << 20)

void
tok_spm_setup(struct tokenizer *t)
{
    size_t bound = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        bound += t->tok[i].text_len;
    if (bound > SPM_PAIRS_MAX_TEXT)
        return; /* only an optimisation: not worth the memory on a giant vocabulary */
    size_t sz = 16;
    while (sz < 2 * bound)
        sz *= 2;
    t->spm_pairs = xcalloc(sz, sizeof(*t->spm_pairs));
    t->spm_pairs_mask = sz - 1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const unsigned char *p = (const unsigned char *)t->text + t->tok[id].text_off;
        size_t n = t->tok[id].text_len;
        uint32_t prev = 0;
        for (size_t off = 0; off < n;) {
            size_t len = tok_utf8_len(p[off]);
            if (len > n - off)
                len = n - off;
            uint32_t cur = spm_char_key(p + off, len);
            if (off > 0) {
                uint64_t key = ((uint64_t)prev << 32) | cur;
                if (key == 0) {
                    t->spm_pair_zero = true;
                } else {
                    size_t h = (size_t)spm_pair_hash(key) & t->spm_pairs_mask;
                    while (t->spm_pairs[h] != 0 && t->spm_pairs[h] != key)
                        h = (h + 1) & t->spm_pairs_mask;
                    t->spm_pairs[h] = key;
                }
            }
            prev = cur;
            off += len;
        }
    }
}

/* ===== encoder ================================================================================ */

/* Merge the symbols of one piece (sym[0..nsym), offsets into s) and emit their tokens. */
static void
spm_piece(const struct tokenizer *t, const char *s, struct spm_sym *sym, int32_t nsym,
          struct tok_heap *heap, struct tok_ids *out)
{
    for (int32_t i = 0; i < nsym; i++) {
        sym[i].prev = i - 1;
        sym[i].next = i + 1 == nsym ? -1 : i + 1;
    }
    heap->n = 0;
    for (int32_t i = 1; i < nsym; i++)
        spm_try_pair(t, s, sym, i - 1, i, heap);

    while (heap->n > 0) {
        struct tok_pair p = tok_heap_pop(heap);
        struct spm_sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n != p.n_left || r->n != p.n_right)
            continue; /* stale: one side was merged elsewhere since */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = p.left;
        spm_try_pair(t, s, sym, l->prev, p.left, heap);
        spm_try_pair(t, s, sym, p.left, l->next, heap);
    }

    for (int32_t i = 0; i != -1; i = sym[i].next) {
        /* every merged symbol is a token by construction; single characters may not be */
        int32_t id = tok_lookup(t, s + sym[i].off, sym[i].n);
        if (id != TOKENIZER_NULL) {
            tok_ids_push(out, id);
            continue;
        }
        for (size_t j = 0; j < sym[i].n; j++) {
            int32_t b = spm_byte_token(t, (unsigned char)s[sym[i].off + j]);
            if (b != TOKENIZER_NULL)
                tok_ids_push(out, b);
        }
    }
}

void
tok_spm_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out)
{
    if (n == 0)
        return;
    /* n is bounded by tokenizer_encode, so n symbols always fit in int32_t */
    struct spm_sym *sym = xmalloc(n * sizeof(*sym));
    uint32_t *key = xmalloc(n * sizeof(*key));
    struct tok_heap heap = {0};
    int32_t nsym = 0;
    for (size_t off = 0; off < n;) {
        size_t len = tok_utf8_len((unsigned char)s[off]);
        if (len > n - off)
            len = n - off;
        sym[nsym].off = (uint32_t)off;
        sym[nsym].n = (uint32_t)len;
        key[nsym] = spm_char_key((const unsigned char *)s + off, len);
        off += len;
        nsym++;
    }
    for (int32_t a = 0; a < nsym;) {
        int32_t b = a + 1;
        while (b < nsym && spm_pair_has(t, ((uint64_t)key[b - 1] << 32) | key[b]))
            b++;
        spm_piece(t, s, sym + a, b - a, &heap, out);
        a = b;
    }
    free(heap.v);
    free(key);
    free(sym);
}
