/* grammar.h -- JSON-constrained sampling for the server's response_format ("json_object" and
 * "json_schema"): a schema subset compiled into an incremental recogniser over UTF-8 BYTES,
 * and a token mask computed from it so that every sampled token keeps the output a prefix of
 * a valid document (docs/json-mode.md).
 * Owns: the compiled schema (struct jgram, immutable once built) and a byte trie of token
 * pieces (struct jgram_vocab, immutable, one per tokenizer). Does not sample, touch logits or
 * decode tokens itself. The schema is untrusted (it comes from a request): its size, nesting
 * and literal lengths are bounded, unsupported keywords are refused by name.
 *
 * Scheduler contract (one struct jgram_state per sequence, plain value, no cleanup):
 *   jgram_state_init(g, &st);
 *   each step:  jgram_mask(g, v, &st, allowed);          allowed has n_vocab entries
 *               logits[id] = -INFINITY where !allowed[id]; sample id;
 *               piece = tokenizer_piece(tok, id, &len);
 *               if (tokenizer_is_eog(tok, id)) stop;          only allowed once done
 *               jgram_state_feed(g, &st, piece, len);         cannot fail for an allowed id
 * End-of-generation tokens are allowed exactly when jgram_state_done() is true; after a
 * complete top-level object or array nothing but EOG is allowed, so the model stops there.
 * Length caps (strings, numbers, items, whitespace runs, nesting) are enforced by refusing the
 * bytes that would make the document impossible to finish within them, so every state the
 * mask allows can still be completed. A sequence cut off by max_tokens is the only way the
 * output can fail to parse (finish_reason "length").
 * Thread safety: g and v are read-only after construction and may be shared by any number of
 * threads; a jgram_state belongs to one sequence. */
#ifndef AIRLOCK_ENGINE_GRAMMAR_H
#define AIRLOCK_ENGINE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/tokenizer.h"
#include "util/err.h"

#define JGRAM_MAX_DEPTH 32   /* nesting of objects/arrays (each open value uses one frame) */
#define JGRAM_MAX_THREADS 8  /* parallel parses kept alive for ambiguous anyOf/oneOf */

struct jgram;
struct jgram_vocab;

/* Caps on what the grammar lets a model produce. Zero fields take the defaults. */
struct jgram_limits {
    uint32_t max_string;  /* raw bytes between the quotes of one string; default 4096, <= 65000 */
    uint32_t max_items;   /* members of a free object / items of an array without maxItems;
                           * default 1024, <= 65000 */
    uint32_t max_number;  /* characters of one number; default 32, <= 255 */
    uint32_t max_ws;      /* whitespace bytes in one gap between tokens; default 24 (pretty
                           * printing to depth 5 at indent 4), <= 64 */
    uint32_t max_depth;   /* open objects/arrays plus the innermost scalar; default and
                           * most JGRAM_MAX_DEPTH */
};

/* One step of the recogniser: which value is being read and how far. Internal layout, exposed
 * only so that states are plain values the caller can copy and keep per sequence. */
struct jgram_frame {
    uint16_t node;   /* compiled schema node */
    uint8_t phase;   /* what the next byte may be (grammar.c: enum phase) */
    uint8_t ws;      /* whitespace bytes used in the current gap */
    uint8_t sub;     /* phase-specific: UTF-8/escape state in strings, number state */
    uint8_t k;       /* phase-specific: \u digits read, surrogate flag */
    uint16_t n;      /* phase-specific: string/number length, items, next property */
    uint32_t v;      /* phase-specific: \u value, literal range, key candidate and position */
};

struct jgram_thread {
    uint32_t depth;                           /* frames in use; 0 = a complete value */
    struct jgram_frame f[JGRAM_MAX_DEPTH];    /* f[depth-1] is the innermost open value */
};

struct jgram_state {
    uint32_t n_threads;                       /* 1..JGRAM_MAX_THREADS alive parses */
    struct jgram_thread t[JGRAM_MAX_THREADS];
};

/* Compile a JSON schema (borrowed; NULL = any JSON object, the json_object mode) into *out
 * (owned, free with jgram_free). lim may be NULL. Fails with AL_EUNSUPPORTED naming the first
 * unsupported keyword, AL_EFORMAT for a malformed schema, AL_ELIMIT for one over the bounds. */
int jgram_new(const json_t *schema, const struct jgram_limits *lim, struct jgram **out,
              struct al_err *e);
/* Compile an OpenAI response_format object: {"type":"text"} gives *out = NULL (no grammar),
 * {"type":"json_object"} and {"type":"json_schema","json_schema":{"schema":{...}}} a grammar.
 * Errors are AL_EUSAGE naming the field (HTTP 400). */
int jgram_from_response_format(const json_t *rf, const struct jgram_limits *lim,
                               struct jgram **out, struct al_err *e);
void jgram_free(struct jgram *g); /* NULL is fine */

/* The state before the first byte. */
void jgram_state_init(const struct jgram *g, struct jgram_state *st);
/* Advance by n bytes. Returns false and leaves *st unchanged when any byte would break the
 * grammar or a cap; n == 0 always succeeds. */
bool jgram_state_feed(const struct jgram *g, struct jgram_state *st, const char *bytes,
                      size_t n);
/* A complete document has been read: only now may generation end. */
bool jgram_state_done(const struct jgram *g, const struct jgram_state *st);
/* No byte at all is acceptable any more (done and closed): only EOG remains. */
bool jgram_state_closed(const struct jgram *g, const struct jgram_state *st);

/* Trie of every token's piece, built once per tokenizer (t borrowed; it must outlive the
 * result). Never fails except by aborting on exhausted memory. */
struct jgram_vocab *jgram_vocab_new(const struct tokenizer *t);
void jgram_vocab_free(struct jgram_vocab *v); /* NULL is fine */

/* allowed[id] = 1 for every token whose whole piece can be fed to st, and for EOG tokens when
 * st is done; 0 otherwise (empty-piece and control tokens always). allowed has
 * tokenizer_n_vocab(t) entries. The hot path: a walk of v's trie pruned at the first invalid
 * byte, with whole subtrees of plain string text accepted at once. */
void jgram_mask(const struct jgram *g, const struct jgram_vocab *v, const struct jgram_state *st,
                uint8_t *allowed);

#endif
