/* generate.h -- text generation on one sequence slot of an engine: feed a prompt, sample tokens,
 * stream detokenized text, stop on end-of-generation, stop strings, a token budget or a full
 * context. The CLI uses gen_generate end to end; a scheduler that batches many sessions calls
 * engine_decode itself for several slots and then, per session, gen_set_logits + gen_step.
 * A session borrows its engine and tokenizer and owns its token history, sampler, logits and
 * pending text. One thread drives a session at a time. */
#ifndef AIRLOCK_ENGINE_GENERATE_H
#define AIRLOCK_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "util/buf.h"
#include "util/err.h"

#define GEN_MAX_STOP 16 /* stop strings per request */

struct gen_params {
    struct sampler_params sp;  /* sampling; sp.temp <= 0 is greedy */
    int n_predict;             /* most tokens to generate; < 0 = until EOG or context full */
    const char *stop[GEN_MAX_STOP]; /* borrowed stop strings (not emitted) */
    int n_stop;                /* entries used in stop */
    bool ignore_eos;           /* keep going past end-of-generation tokens (bench) */
};

enum gen_stop {
    GEN_STOP_NONE = 0,  /* still running */
    GEN_STOP_LENGTH,    /* n_predict tokens generated */
    GEN_STOP_EOG,       /* the model produced an end-of-generation token */
    GEN_STOP_STRING,    /* a stop string appeared */
    GEN_STOP_CALLBACK,  /* the emit callback asked to stop */
    GEN_STOP_CONTEXT,   /* the slot's context is full */
};

struct gen_stats {
    int n_prompt;         /* prompt tokens evaluated (after reusing a cached prefix) */
    int n_reused;         /* prompt tokens already in the cache and skipped */
    int n_gen;            /* tokens generated */
    double prompt_ms;     /* wall time of prompt evaluation */
    double gen_ms;        /* wall time of generation (sampling + decode) */
    enum gen_stop stop;   /* why generation ended */
};

/* Receives generated text as it becomes final (never a partial UTF-8 sequence, never a prefix
 * of a stop string). Return nonzero to stop. */
typedef int (*gen_emit_fn)(void *ud, const char *text, size_t len);

struct gen_session {
    struct engine *en;            /* borrowed */
    const struct tokenizer *tok;  /* borrowed; NULL allowed for token-only use (no text) */
    int seq;                      /* KV slot this session owns */
    int32_t *hist;                /* owned, tokens in the slot, n_hist of cap_hist */
    int n_hist;                   /* == engine_seq_len(en, seq) between calls */
    int cap_hist;                 /* allocated entries (n_ctx) */
    float *logits;                /* owned, n_vocab: logits after the last fed token */
    bool have_logits;             /* logits are valid */
    struct sampler smp;           /* per-request sampler (gen_begin) */
    struct detok dt;              /* streaming detokenizer state */
    struct buf pending;           /* detokenized text held back for stop-string matching */
    char *piece;                  /* owned scratch for detok_push, piece_cap bytes */
    size_t piece_cap;             /* tokenizer_max_piece + 8 */
    struct gen_params p;          /* current request */
    struct gen_stats st;          /* current request's counters */
};

int gen_init(struct gen_session *g, struct engine *en, const struct tokenizer *tok, int seq,
             struct al_err *e);
void gen_free(struct gen_session *g); /* safe on a zeroed session */

/* Make the slot hold exactly ids (borrowed): keeps the longest common prefix with what is
 * cached, evaluates the rest in batches, leaves logits for the last token. */
int gen_prompt(struct gen_session *g, const int32_t *ids, int n, struct al_err *e);
/* Tokenize text (add_special: BOS as the vocabulary asks) and gen_prompt the result. */
int gen_prompt_text(struct gen_session *g, const char *text, size_t len, bool add_special,
                    bool parse_special, struct al_err *e);

/* Start a request: sampler from p (copied; stop strings stay borrowed), prompt tokens enter the
 * penalty window, counters reset. Call after gen_prompt. */
int gen_begin(struct gen_session *g, const struct gen_params *p, struct al_err *e);
/* Sample one token from the current logits, stream its text; returns the token or -1 with
 * *stop set (then nothing more will be emitted). Does not evaluate the token: call gen_accept
 * (single session) or put it in a batch and then gen_set_logits. */
int32_t gen_sample(struct gen_session *g, gen_emit_fn emit, void *ud, enum gen_stop *stop);
/* Evaluate token tok on this session's slot (one-token engine_decode), refreshing logits. */
int gen_accept(struct gen_session *g, int32_t tok, struct al_err *e);
/* For batched schedulers: record that tok was evaluated at the end of the slot elsewhere and
 * copy its logits row (n_vocab floats, borrowed). */
void gen_set_logits(struct gen_session *g, int32_t tok, const float *logits);
/* Emit whatever text is still held back (end of a request that did not hit a stop string). */
void gen_finish(struct gen_session *g, gen_emit_fn emit, void *ud);

/* The whole loop: gen_begin, then sample/accept until a stop condition; fills *st. */
int gen_generate(struct gen_session *g, const struct gen_params *p, gen_emit_fn emit, void *ud,
                 struct gen_stats *st, struct al_err *e);

const char *gen_stop_name(enum gen_stop s); /* "length", "eog", "stop", ... */

/* ===== A loaded model, ready to generate: what `run`, `chat`, `bench` and `serve` open ===== */

struct llm {
    struct model m;            /* owned weights mapping and hyperparameters */
    struct tokenizer *tok;     /* owned; from the same GGUF */
    struct engine en;          /* owned; borrows m */
    enum model_residency residency; /* where the weights ended up (model_load_weights) */
};

/* Load path: model, tokenizer, engine (o borrowed; o->n_ctx 0 = the model's context, capped by
 * nothing else, so callers pass their --ctx). On failure l is safe to close. */
int llm_open(struct llm *l, const char *path, const struct engine_opts *o, struct al_err *e);
/* Same, and bring the weights into memory first, reporting bytes to progress (may be NULL:
 * then this is llm_open) -- for a progress bar while a large model loads. */
int llm_open_progress(struct llm *l, const char *path, const struct engine_opts *o,
                      model_progress_fn progress, void *ud, struct al_err *e);
void llm_close(struct llm *l); /* safe on a zeroed or failed llm */

#endif
