/* tokenizer.h -- text <-> token ids for the vocabularies GGUF files carry: SentencePiece-style
 * ("llama": best-score bigram merging with byte fallback), byte-level BPE ("gpt2": ranked
 * merges after the pre-tokenizer regexes that tokenizer.ggml.pre names) and WordPiece ("bert",
 * embedding models: greedy longest match after lower-casing and accent folding). Behaviour follows
 * llama.cpp's, so token ids match the reference engine id for id (docs/tokenizers.md).
 * Owns: a copy of every token string, the lookup tables, the compiled PCRE2 pre-tokenizer
 * patterns and the chat template string. Does not read files (format/gguf) or render chat
 * templates (engine/template). Both the vocabulary and the text to encode are untrusted: every
 * count is checked at load, and encoding is O(n log n) in the input with a PCRE2 match limit.
 * A loaded tokenizer is immutable: any number of threads may encode/decode with it at once. */
#ifndef AIRLOCK_ENGINE_TOKENIZER_H
#define AIRLOCK_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct gguf;
struct tokenizer;

#define TOKENIZER_NULL (-1) /* "no such token" (absent BOS, EOT, ...) */
/* Longest text tokenizer_encode accepts, bytes. Worst-case memory is about 64 bytes per input
 * byte (an SPM symbol and up to three candidate pairs per character of the escaped text). */
#define TOKENIZER_MAX_INPUT (8u << 20)

/* Build from the tokenizer.ggml.* keys of g (borrowed for the call only: everything is
 * copied). *out returns owned (tokenizer_free). Unknown tokenizer.ggml.model values are
 * refused by name (AL_EUNSUPPORTED). */
int tokenizer_load(struct tokenizer **out, const struct gguf *g, struct al_err *e);
void tokenizer_free(struct tokenizer *t); /* NULL is fine */

/* Encode len bytes of text (borrowed; any bytes, need not be NUL-terminated or valid UTF-8).
 * add_special: add BOS/EOS as the metadata says (tokenizer.ggml.add_bos_token, ...);
 * WordPiece always adds [CLS] ... [SEP].
 * parse_special: text such as "<|im_start|>" becomes that control token; when false only
 * user-defined tokens are matched literally, as llama.cpp does.
 * *ids returns owned (free(); non-NULL even when *n is 0), *n its length. AL_ELIMIT when
 * len > TOKENIZER_MAX_INPUT or a pattern hits PCRE2's match limit. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t **ids, size_t *n, struct al_err *e);

/* The bytes id stands for in generated text: byte-level BPE unmapped, SPM "\xe2\x96\x81" ->
 * space, <0xAB> -> one byte, control/unknown tokens -> empty (llama.cpp with special=false).
 * Borrowed from t (not NUL-terminated); an out-of-range id gives "" and *len 0. */
const char *tokenizer_piece(const struct tokenizer *t, int32_t id, size_t *len);
/* The token's vocabulary string as stored (e.g. "\xc4\xa0the", "<|im_end|>"); borrowed from
 * t, NUL-terminated. */
const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len);
/* Longest piece of any token, bytes: a detok_push buffer of this + 4 always suffices. */
size_t tokenizer_max_piece(const struct tokenizer *t);

/* Append the pieces of ids (borrowed) to out (borrowed). For SPM vocabularies with
 * add_space_prefix the space the encoder put in front of the text is removed again, so
 * decode(encode(s)) == s for every lossless input (docs/tokenizers.md lists exceptions).
 * Fails (AL_EUSAGE) on an id outside the vocabulary. */
int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, struct buf *out,
                     struct al_err *e);

int32_t tokenizer_bos(const struct tokenizer *t); /* TOKENIZER_NULL when none */
int32_t tokenizer_eos(const struct tokenizer *t); /* TOKENIZER_NULL when none */
int32_t tokenizer_n_vocab(const struct tokenizer *t);
bool tokenizer_add_bos(const struct tokenizer *t);
bool tokenizer_add_eos(const struct tokenizer *t);
/* End of generation: EOS, EOT, EOM and tokens such as <|im_end|>, <|eot_id|>, <|end|>. */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);
/* Control-type token (rendered as empty text). */
bool tokenizer_is_control(const struct tokenizer *t, int32_t id);
/* tokenizer.chat_template, NUL-terminated, owned by t; NULL when the file has none. */
const char *tokenizer_chat_template(const struct tokenizer *t);
/* "spm", "bpe" or "wpm", and the pre-tokenizer name as given (or "default"), for diagnostics. */
const char *tokenizer_kind_name(const struct tokenizer *t);
const char *tokenizer_pre_name(const struct tokenizer *t);

/* Streaming detokenizer: turns ids into text one at a time without ever splitting a UTF-8
 * sequence (a byte-fallback character arrives as several tokens). Plain value, no cleanup. */
struct detok {
    const struct tokenizer *t; /* borrowed */
    unsigned char pend[4];     /* bytes of an incomplete UTF-8 sequence held back */
    size_t npend;              /* 0..3 */
};

void detok_init(struct detok *d, const struct tokenizer *t); /* t borrowed while d is used */
/* Append the piece of id and write out every complete UTF-8 sequence; incomplete tails are
 * held back, invalid bytes pass through unchanged. Returns the bytes written. When they would
 * not fit in cap, nothing is written, d is unchanged and the size needed is returned (> cap),
 * as snprintf does; tokenizer_max_piece(t) + 4 is always enough. */
size_t detok_push(struct detok *d, int32_t id, char *out, size_t cap);
/* Write whatever is held back (an incomplete sequence at the end of generation); same
 * return convention, at most 4 bytes. */
size_t detok_flush(struct detok *d, char *out, size_t cap);

#endif
