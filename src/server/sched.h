/* sched.h -- continuous batching: one scheduler thread owns the engine and advances every
 * active request together. Each step builds one batch holding the next token of every
 * generating sequence plus prompt chunks of sequences still in prefill, runs the forward pass
 * once, samples each sequence, and hands the new text to the request's callback.
 * Requests wait in a bounded queue for one of --parallel slots; a slot keeps its KV cache after
 * a request ends so a following request that shares the prompt prefix (the next turn of the
 * same conversation) skips recomputing it.
 * Embedding jobs (SCHED_EMBED) take a slot too, as scratch for engine_embed: the idle slot
 * whose cache is worth least (empty, else the longest idle). Between two steps the scheduler
 * embeds that job's next whole inputs: about one short prompt's worth of tokens while other
 * slots generate, a whole batch's worth when nothing else runs, so embeddings and generation
 * share the engine without either waiting for the other to finish.
 * Prefill is scheduled for time to first token: each step finishes the prompt with the fewest
 * tokens left (see build_batch in sched.c) rather than every waiting prompt at once.
 * Threading: sched_submit/sched_cancel are called from HTTP threads; everything else, and every
 * callback, runs on the scheduler thread. */
#ifndef AIRLOCK_SERVER_SCHED_H
#define AIRLOCK_SERVER_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/forward.h"
#include "engine/grammar.h"
#include "engine/tokenizer.h"
#include "util/err.h"

#define SCHED_MAX_STOP 16
#define SCHED_MAX_TOP_LOGPROBS 20

enum sched_finish {
    SCHED_FINISH_EOG,       /* the model produced an end-of-generation token */
    SCHED_FINISH_STOP,      /* a stop string matched (not included in the text) */
    SCHED_FINISH_LENGTH,    /* max_tokens reached */
    SCHED_FINISH_CONTEXT,   /* the context window is full */
    SCHED_FINISH_CANCELLED, /* the client went away or the request timed out */
    SCHED_FINISH_ERROR,     /* the engine failed; see message */
    SCHED_FINISH_EMBEDDED,  /* an embedding job wrote every vector */
};

enum sched_kind {
    SCHED_GENERATE,         /* prompt -> sampled text (the zero value) */
    SCHED_EMBED,            /* inputs -> one sentence embedding each (engine_embed) */
};

/* The inputs and output of a SCHED_EMBED job; all borrowed until on_done. */
struct sched_embed {
    const int32_t *const *tokens; /* n_inputs token arrays */
    const int *n_tokens;          /* length of each: 1..sched_n_ctx() */
    int n_inputs;                 /* >= 1 */
    float *out;                   /* n_inputs rows of sched_dim() floats, written in order */
};

struct sched_logprob {
    int32_t id;        /* token */
    float logprob;     /* natural log of its probability under the model */
};

/* One generated piece of text and, when asked, the log-probabilities of its token. */
struct sched_piece {
    const char *text;  /* borrowed UTF-8 (complete sequences only); may be empty */
    size_t len;
    int32_t id;        /* the token that produced it */
    struct sched_logprob chosen;
    const struct sched_logprob *top; /* n_top entries, best first */
    int n_top;
};

struct sched_result {
    enum sched_finish finish;
    int prompt_tokens;        /* tokens in the prompt (embeddings: in all inputs) */
    int cached_tokens;        /* prompt tokens reused from a slot's cache */
    int completion_tokens;    /* tokens generated */
    double ttft_s;            /* submit -> first token */
    double total_s;           /* submit -> done */
    char message[256];        /* for SCHED_FINISH_ERROR */
};

struct sched_params {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repeat_penalty;     /* 1 = off */
    int repeat_last_n;        /* tokens looked back for penalties */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    uint64_t seed;            /* RNG seed; same seed and prompt -> same output */
    int max_tokens;           /* <= 0: until the context is full */
    int top_logprobs;         /* 0..SCHED_MAX_TOP_LOGPROBS; -1 = no logprobs at all */
    double timeout_s;         /* 0 = none */
    const char *stop[SCHED_MAX_STOP]; /* borrowed until on_done */
    int n_stop;
    const struct jgram *grammar;        /* borrowed; NULL = free text. Output must parse. */
    const struct jgram_vocab *gvocab;   /* borrowed trie of the tokenizer's pieces */
};

struct sched_job {
    /* set by the submitter */
    enum sched_kind kind;
    const int32_t *prompt;    /* SCHED_GENERATE: borrowed until on_done */
    int n_prompt;
    struct sched_params p;    /* SCHED_EMBED reads only timeout_s */
    struct sched_embed embed; /* SCHED_EMBED only */
    /* SCHED_GENERATE: called on the scheduler thread; return false to stop generating (client
     * gone). */
    bool (*on_piece)(void *ctx, const struct sched_piece *piece);
    /* Called exactly once, on the scheduler thread, after which the job is not touched. */
    void (*on_done)(void *ctx, const struct sched_result *r);
    void *ctx;
    _Atomic bool cancel;      /* set from any thread to stop the job at the next step */
    /* scheduler-private */
    struct sched_job *next;   /* queue link */
    double t_submit;          /* monotonic seconds */
};

struct sched_stats {
    int queued;               /* jobs waiting for a slot */
    int active;               /* slots generating or in prefill */
    int n_slots;
    int kv_used;              /* positions held in all slots */
    int kv_total;             /* n_slots * n_ctx */
    uint64_t steps;           /* forward passes run */
    uint64_t tokens_generated;
    uint64_t prompt_tokens_processed; /* prompt tokens run, embedding inputs' tokens included */
    uint64_t inputs_embedded;         /* embedding vectors computed */
};

struct sched_slot;

struct sched {
    struct engine *en;        /* borrowed; only the scheduler thread touches it */
    const struct tokenizer *tok; /* borrowed */
    int n_slots;
    int max_queue;
    int n_batch;              /* most tokens in one forward pass */
    int n_vocab;              /* logits per row: the model's output rows */
    struct sched_slot *slots; /* owned, n_slots */
    pthread_t thread;
    pthread_mutex_t mu;       /* guards queue, queued count, stop flag and stats */
    pthread_cond_t cv;        /* signalled on submit and stop */
    struct sched_job *head, *tail;
    int queued;
    bool stop;
    bool started;
    struct sched_stats stats; /* copy refreshed by the scheduler thread after each step */
    uint64_t tick;            /* scheduler thread only: loop iterations, dates slots' last use */
    float *logits;            /* owned, (n_slots, n_vocab) */
    int32_t *b_tok, *b_pos, *b_seq; /* owned batch arrays, n_batch entries */
    int8_t *b_logits;
    int *order;               /* owned, n_slots: prefill order scratch (scheduler thread) */
    double cost_step;         /* scheduler thread: moving average of a step's seconds without
                               * prompt tokens; 0 until measured */
    double cost_token;        /* the same of each prompt token on top; 0 until measured */
};

int sched_start(struct sched *s, struct engine *en, const struct tokenizer *tok, int n_slots,
                int max_queue, struct al_err *e);
/* Stops accepting work, cancels what is queued or running (their on_done runs), joins. */
void sched_stop(struct sched *s);
/* Queue a job; fails with AL_ELIMIT when the queue is full (HTTP 429) and AL_EUSAGE when the
 * prompt does not fit the context, or an embedding input is empty, longer than the context
 * (the message names its index and length) or holds a token outside the vocabulary (HTTP 400).
 * On success on_done will be called exactly once. */
int sched_submit(struct sched *s, struct sched_job *job, struct al_err *e);
void sched_get_stats(struct sched *s, struct sched_stats *out);
int sched_n_ctx(const struct sched *s);
int sched_dim(const struct sched *s); /* floats in one embedding: the model's width */
/* Prompt tokens a step is filled up to, given the measured seconds of a step without prompt
 * tokens and of each prompt token (<= 0: not measured yet). Exposed for tests. */
int sched_prefill_step_min(double cost_step, double cost_token);

#endif
