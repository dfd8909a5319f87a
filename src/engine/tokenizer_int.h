/* tokenizer_int.h -- internals shared by tokenizer.c (loading, special tokens, decoding),
 * tokenizer_spm.c and tokenizer_bpe.c (the two encoders). Not for other modules: the public
 * interface is engine/tokenizer.h. Everything here is immutable after tokenizer_load. */
#ifndef AIRLOCK_ENGINE_TOKENIZER_INT_H
#define AIRLOCK_ENGINE_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <locale.h>
#include <pcre2.h>

#include "engine/tokenizer.h"

/* Token attributes, llama.cpp's bit values so a reader can compare the two side by side. */
enum tok_attr {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
};

enum tok_kind { TOK_KIND_SPM, TOK_KIND_BPE, TOK_KIND_WPM };

#define TOK_MAX_RE 8 /* pre-tokenizer patterns applied in sequence */

struct tok_entry {
    uint32_t text_off;  /* into tokenizer.text; the string is NUL-terminated there too */
    uint32_t text_len;  /* bytes */
    uint32_t piece_off; /* into tokenizer.pieces */
    uint32_t piece_len; /* bytes of decoded text (0 for control tokens) */
    float score;        /* SPM merge priority: higher merges first */
    uint32_t attr;      /* enum tok_attr bits */
    bool eog;           /* ends generation */
};

struct tok_merge {
    uint32_t off;       /* into tokenizer.merge_text: left bytes then right bytes */
    uint32_t left_len;  /* bytes */
    uint32_t right_len; /* bytes */
    int32_t rank;       /* position in tokenizer.ggml.merges: lower merges first */
};

struct tokenizer {
    enum tok_kind kind;       /* which encoder; fixed by tokenizer.ggml.model */
    char pre_name[64];        /* tokenizer.ggml.pre as given, "default" when absent */
    uint32_t n_vocab;         /* >= 1 */
    struct tok_entry *tok;    /* owned, n_vocab entries */
    char *text;               /* owned arena of token strings */
    char *pieces;             /* owned arena of decoded pieces */
    size_t max_piece;         /* longest piece_len */
    uint32_t *index;          /* owned open-addressing table: token id + 1, 0 = empty */
    size_t index_mask;        /* table size - 1 (power of two) */
    struct tok_merge *merges; /* owned, n_merges entries (BPE only) */
    size_t n_merges;          /* entries used in merges (duplicates skipped) */
    char *merge_text;         /* owned arena for merge strings */
    uint32_t *merge_index;    /* owned table: merge index + 1, 0 = empty */
    size_t merge_mask;
    int32_t *special;           /* owned: control/user-defined/unknown ids, longest text first */
    size_t n_special;           /* entries in special */
    pcre2_code *re[TOK_MAX_RE]; /* owned compiled pre-tokenizer patterns (BPE only) */
    size_t n_re;                /* patterns in re */
    uint16_t byte_cp[256];      /* GPT-2 bytes_to_unicode: byte -> code point */
    int16_t cp_byte[324];       /* inverse for code points < 324, -1 when unmapped */
    int32_t bos, eos, eot, eom, unk, pad; /* TOKENIZER_NULL when absent */
    int32_t sep;                          /* WPM: appended by add_special ([SEP]) */
    uint64_t *spm_pairs; /* SPM: owned set of adjacent character pairs inside tokens; NULL = none */
    size_t spm_pairs_mask; /* table size - 1; 0 marks an empty slot */
    bool spm_pair_zero;    /* the pair whose key is 0 is in the set */
    size_t wpm_max_len;    /* WPM: longest token in bytes, capped (tokenizer_wpm.c) */
    pcre2_code *wpm_class; /* WPM: owned, classifies one character */
    locale_t wpm_lower;    /* WPM: owned C.UTF-8 locale for towlower_l, 0 if none */
    bool add_bos, add_eos; /* from metadata, else the vocabulary type's default */
    bool add_space_prefix; /* SPM: put a space before text (and strip it on decode) */
    bool ignore_merges;    /* BPE: a pre-token that is itself a token is not merged */
    char *chat_template;   /* owned, NULL when absent */
};

/* Growable id list; the encoders append to it. */
struct tok_ids {
    int32_t *v; /* owned */
    size_t n;   /* ids stored */
    size_t cap; /* ids allocated */
};

void tok_ids_push(struct tok_ids *o, int32_t id);
/* Exact lookup of a token string; TOKENIZER_NULL when absent. */
int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n);
/* Merge rank of the pair (left, right); -1 when not a merge. */
int32_t tok_merge_rank(const struct tokenizer *t, const char *l, size_t ln, const char *r,
                       size_t rn);

/* A candidate merge of two adjacent symbols, as both merging encoders (SPM, BPE) keep them: a
 * binary heap takes the lowest key first (BPE: the merge rank; SPM: minus the score of the
 * token the pair would form), the leftmost pair among equal keys. n_left and n_right are the
 * symbols' sizes when the pair was made: sizes only grow by merging, so a pair whose symbols
 * no longer have them is stale and is skipped when popped. */
struct tok_pair {
    int32_t left;  /* symbol indices */
    int32_t right;
    double key;    /* lower first; exact for every int32 rank and float score */
    uint32_t n_left;
    uint32_t n_right;
};

struct tok_heap {
    struct tok_pair *v; /* owned */
    size_t n;           /* pairs stored */
    size_t cap;         /* pairs allocated */
};

void tok_heap_push(struct tok_heap *h, struct tok_pair p);
/* The first pair; h->n > 0. */
struct tok_pair tok_heap_pop(struct tok_heap *h);
/* Length of the UTF-8 sequence a lead byte announces, llama.cpp's rule (stray continuation
 * bytes count as 1). */
static inline size_t
tok_utf8_len(unsigned char c)
{
    static const unsigned char lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

/* One code point from s[0..n) the way llama.cpp decodes (lead byte gives the length,
 * continuation bytes checked, no overlong check); U+FFFD for anything undecodable, surrogates
 * and values past U+10FFFF. *adv: bytes consumed (>= 1). */
uint32_t tok_utf8_next(const unsigned char *s, size_t n, size_t *adv);
/* llama.cpp's whitespace set (Unicode White_Space minus U+001C..U+001F). */
bool tok_is_space(uint32_t cp);
/* First code point of cp's canonical decomposition, or cp (tokenizer_nfd.c). */
uint32_t tok_nfd_first(uint32_t cp);

/* SPM: collect every adjacent character pair that occurs inside a token. A boundary in the
 * text between two characters that form no such pair can never be merged across, so the
 * encoder works on the pieces between such boundaries separately (same result, small heaps). */
void tok_spm_setup(struct tokenizer *t);

/* s: text with spaces already escaped to U+2581. */
void tok_spm_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out);
/* Compile the pre-tokenizer patterns for t->pre_name (sets ignore_merges, add_bos defaults). */
int tok_bpe_setup(struct tokenizer *t, struct al_err *e);
int tok_bpe_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                   struct al_err *e);
/* WordPiece: compile the character classifier, open the case-mapping locale. */
int tok_wpm_setup(struct tokenizer *t, struct al_err *e);
int tok_wpm_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out,
                   struct al_err *e);

#endif
