/* sched.c -- continuous batching scheduler (see sched.h).
 * One thread loops: admit queued jobs into free slots, embed some inputs of embedding jobs,
 * build a batch of (a) the last sampled token of every generating slot and (b) prompt chunks
 * of slots in prefill, run engine_decode once, then sample and emit for every slot whose
 * logits came back. A slot's cache survives its job: admission picks the free slot sharing the
 * longest prefix with the new prompt, and on a tie (or for an embedding, which wipes its slot)
 * the one whose cache is worth least. */
#include "server/sched.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"
#include "util/xalloc.h"

/* ===== Types ================================================================================== */

enum slot_state {
    SLOT_FREE,     /* no job; cache holds `hist` for prefix reuse */
    SLOT_PREFILL,  /* feeding prompt tokens */
    SLOT_GEN,      /* generating: `next` is the token to feed */
    SLOT_EMBED,    /* embedding job: the slot's cache is engine_embed's scratch (kept empty) */
};

struct sched_slot {
    enum slot_state state;
    struct sched_job *job;     /* current job, NULL when free */
    int32_t *hist;             /* owned, n_ctx: tokens whose K/V are in this slot's cache */
    int n_hist;                /* == engine_seq_len(slot) */
    int n_prompt_done;         /* prompt tokens in the cache */
    int32_t next;              /* sampled token not yet fed */
    int n_gen;                 /* tokens generated so far */
    int cached;                /* prompt tokens reused from the previous job */
    struct sampler smp;        /* owned, per-job sampler state */
    struct detok dt;           /* streaming detokenizer */
    struct buf text;           /* generated text not yet released (may prefix a stop string) */
    double t_first;            /* time of first token, 0 before */
    int logits_row;            /* row in sched.logits for this step, -1 = none */
    struct jgram_state gst;    /* grammar position when the job is constrained */
    uint8_t *allowed;          /* owned, n_vocab: grammar mask scratch */
    int embed_next;            /* SLOT_EMBED: next input to embed */
    uint64_t last_used;        /* sched.tick when the slot last ended a job: smaller = idle
                                * longer, so its cached prefix is the least likely wanted */
};

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ===== Job completion ========================================================================= */

/* Prompt tokens of a job as reported in its result: an embedding job's inputs together
 * (sched_submit keeps the sum within int). */
static int
job_prompt_tokens(const struct sched_job *job)
{
    if (job->kind != SCHED_EMBED)
        return job->n_prompt;
    int n = 0;
    for (int i = 0; i < job->embed.n_inputs; i++)
        n += job->embed.n_tokens[i];
    return n;
}

static void
slot_finish(struct sched *s, struct sched_slot *sl, enum sched_finish f, const char *msg)
{
    struct sched_job *job = sl->job;
    struct sched_result r = {0};
    r.finish = f;
    r.prompt_tokens = job_prompt_tokens(job);
    r.cached_tokens = sl->cached;
    r.completion_tokens = sl->n_gen;
    double t = now_s();
    r.ttft_s = sl->t_first > 0 ? sl->t_first - job->t_submit : 0;
    r.total_s = t - job->t_submit;
    if (msg)
        snprintf(r.message, sizeof r.message, "%s", msg);
    sampler_free(&sl->smp);
    buf_reset(&sl->text);
    sl->job = NULL;
    sl->state = SLOT_FREE;
    sl->last_used = s->tick;
    job->on_done(job->ctx, &r); /* the job may be freed by the callback */
}

/* ===== Stop strings =========================================================================== */

/* Release text that can no longer become part of a stop string; returns true when a stop string
 * matched (text before it released, the rest dropped). */
static bool
emit_text(struct sched_slot *sl, const struct sched_piece *tmpl, bool final, bool *keep_going)
{
    struct sched_job *job = sl->job;
    struct sched_piece pc = *tmpl;
    size_t release = sl->text.len;
    bool matched = false;
    for (int i = 0; i < job->p.n_stop; i++) {
        const char *hit = memmem(sl->text.data ? sl->text.data : "", sl->text.len, job->p.stop[i],
                                 strlen(job->p.stop[i]));
        if (hit && (size_t)(hit - sl->text.data) < release) {
            release = (size_t)(hit - sl->text.data);
            matched = true;
        }
    }
    if (!matched && !final) {
        /* hold back the longest tail that is a proper prefix of some stop string */
        for (int i = 0; i < job->p.n_stop; i++) {
            size_t sn = strlen(job->p.stop[i]);
            for (size_t k = sn - 1; k > 0; k--) {
                if (k > sl->text.len)
                    continue;
                if (memcmp(sl->text.data + sl->text.len - k, job->p.stop[i], k) == 0) {
                    if (sl->text.len - k < release)
                        release = sl->text.len - k;
                    break;
                }
            }
        }
    }
    pc.text = sl->text.data ? sl->text.data : "";
    pc.len = release;
    if (!job->on_piece(job->ctx, &pc))
        *keep_going = false;
    if (matched) {
        buf_reset(&sl->text);
    } else if (release > 0) {
        memmove(sl->text.data, sl->text.data + release, sl->text.len - release);
        sl->text.len -= release;
        sl->text.data[sl->text.len] = '\0';
    }
    return matched;
}

/* ===== Sampling and log-probabilities ========================================================= */

static void
top_logprobs(const float *logits, int n_vocab, int k, struct sched_logprob *top, int32_t chosen,
             struct sched_logprob *chosen_out)
{
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    chosen_out->id = chosen;
    chosen_out->logprob = (float)(logits[chosen] - lse);
    for (int j = 0; j < k; j++)
        top[j] = (struct sched_logprob){-1, -INFINITY};
    for (int i = 0; i < n_vocab; i++) {
        float lp = (float)(logits[i] - lse);
        if (k == 0 || lp <= top[k - 1].logprob)
            continue;
        int j = k - 1;
        while (j > 0 && top[j - 1].logprob < lp) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (struct sched_logprob){i, lp};
    }
}

/* Sample the next token of sl from its logits row and emit the text. */
static void
slot_sample(struct sched *s, struct sched_slot *sl, float *logits)
{
    struct sched_job *job = sl->job;
    int n_vocab = s->n_vocab;
    /* a model may pad its output rows beyond the tokenizer's vocabulary: never pick those */
    for (int i = tokenizer_n_vocab(s->tok); i < n_vocab; i++)
        logits[i] = -INFINITY;
    struct sched_logprob top[SCHED_MAX_TOP_LOGPROBS];
    struct sched_logprob chosen = {0};
    /* log-probabilities describe the model's own distribution, so take them before the
     * sampler applies penalties and truncation */
    float *raw = NULL;
    if (job->p.top_logprobs >= 0) {
        raw = xmalloc((size_t)n_vocab * sizeof *raw);
        memcpy(raw, logits, (size_t)n_vocab * sizeof *raw);
    }
    if (job->p.grammar) {
        /* constrained decoding: only tokens that keep the output a valid prefix survive */
        jgram_mask(job->p.grammar, job->p.gvocab, &sl->gst, sl->allowed);
        for (int i = 0; i < tokenizer_n_vocab(s->tok); i++)
            if (!sl->allowed[i])
                logits[i] = -INFINITY;
    }
    int32_t id = sampler_sample(&sl->smp, logits);
    sampler_accept(&sl->smp, id);
    if (job->p.grammar && !tokenizer_is_eog(s->tok, id)) {
        size_t plen = 0;
        const char *pc = tokenizer_piece(s->tok, id, &plen);
        (void)jgram_state_feed(job->p.grammar, &sl->gst, pc, plen); /* allowed: cannot fail */
    }
    if (raw) {
        top_logprobs(raw, n_vocab, job->p.top_logprobs, top, id, &chosen);
        free(raw);
    }
    if (sl->t_first == 0)
        sl->t_first = now_s();
    sl->n_gen++;
    sl->next = id;
    sl->state = SLOT_GEN;
    struct sched_piece pc = {0};
    pc.id = id;
    pc.chosen = chosen;
    pc.top = top;
    pc.n_top = job->p.top_logprobs > 0 ? job->p.top_logprobs : 0;
    bool keep = true;
    if (tokenizer_is_eog(s->tok, id)) {
        char tail[64];
        size_t n = detok_flush(&sl->dt, tail, sizeof tail);
        buf_append(&sl->text, tail, n);
        emit_text(sl, &pc, true, &keep);
        slot_finish(s, sl, SCHED_FINISH_EOG, NULL);
        return;
    }
    size_t cap = tokenizer_max_piece(s->tok) + 8;
    char *piece = xmalloc(cap);
    size_t n = detok_push(&sl->dt, id, piece, cap);
    buf_append(&sl->text, piece, n);
    free(piece);
    bool length = job->p.max_tokens > 0 && sl->n_gen >= job->p.max_tokens;
    bool context = sl->n_hist + 1 >= sched_n_ctx(s);
    if (length || context) {
        char tail[64];
        size_t m = detok_flush(&sl->dt, tail, sizeof tail);
        buf_append(&sl->text, tail, m);
    }
    if (emit_text(sl, &pc, length || context, &keep)) {
        slot_finish(s, sl, SCHED_FINISH_STOP, NULL);
        return;
    }
    if (!keep || atomic_load(&job->cancel)) {
        slot_finish(s, sl, SCHED_FINISH_CANCELLED, NULL);
        return;
    }
    if (length)
        slot_finish(s, sl, SCHED_FINISH_LENGTH, NULL);
    else if (context)
        slot_finish(s, sl, SCHED_FINISH_CONTEXT, NULL);
}

/* ===== Admission ============================================================================== */

static int
common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

static int
slot_admit(struct sched *s, struct sched_slot *sl, int idx, struct sched_job *job)
{
    int keep = common_prefix(sl->hist, sl->n_hist, job->prompt, job->n_prompt);
    /* at least the last prompt token must run through the model to get its logits */
    if (keep >= job->n_prompt)
        keep = job->n_prompt - 1;
    engine_seq_truncate(s->en, idx, keep);
    sl->n_hist = keep;
    sl->cached = keep;
    sl->n_prompt_done = keep;
    sl->n_gen = 0;
    sl->t_first = 0;
    sl->job = job;
    sl->state = SLOT_PREFILL;
    buf_reset(&sl->text);
    detok_init(&sl->dt, s->tok);
    struct sampler_params sp = {
        .temp = job->p.temperature,
        .top_k = job->p.top_k,
        .top_p = job->p.top_p,
        .min_p = job->p.min_p,
        .repeat_penalty = job->p.repeat_penalty,
        .repeat_last_n = job->p.repeat_last_n,
        .presence_penalty = job->p.presence_penalty,
        .freq_penalty = job->p.frequency_penalty,
        .seed = job->p.seed,
    };
    struct al_err e = {0};
    if (sampler_init(&sl->smp, &sp, s->n_vocab, &e) < 0)
        return -1;
    if (job->p.grammar)
        jgram_state_init(job->p.grammar, &sl->gst);
    /* penalties look back over the prompt too, as llama.cpp's do */
    for (int i = 0; i < job->n_prompt; i++)
        sampler_accept(&sl->smp, job->prompt[i]);
    return 0;
}

/* An embedding job's slot: the cache is wiped, so forget what it held (engine_embed empties
 * the slot again after every input). */
static void
slot_admit_embed(struct sched *s, struct sched_slot *sl, int idx, struct sched_job *job)
{
    engine_seq_truncate(s->en, idx, 0);
    sl->n_hist = 0;
    sl->cached = 0;
    sl->n_prompt_done = 0;
    sl->n_gen = 0;
    sl->t_first = 0;
    sl->embed_next = 0;
    sl->job = job;
    sl->state = SLOT_EMBED;
}

/* True when free slot a's cache is worth less than free slot b's: an empty cache is worth
 * nothing; otherwise the slot idle longer is the less likely to be continued. */
static bool
worth_less(const struct sched_slot *a, const struct sched_slot *b)
{
    if ((a->n_hist == 0) != (b->n_hist == 0))
        return a->n_hist == 0;
    return a->last_used < b->last_used;
}

/* The free slot for job, or -1: for generation the one sharing the longest prefix with the
 * prompt; on a tie, and always for an embedding (it wipes the slot), the one worth least. */
static int
pick_slot(const struct sched *s, const struct sched_job *job)
{
    int best = -1, best_len = -1;
    for (int i = 0; i < s->n_slots; i++) {
        const struct sched_slot *sl = &s->slots[i];
        if (sl->state != SLOT_FREE)
            continue;
        int l = job->kind == SCHED_EMBED
                    ? 0
                    : common_prefix(sl->hist, sl->n_hist, job->prompt, job->n_prompt);
        if (l > best_len || (l == best_len && worth_less(sl, &s->slots[best]))) {
            best = i;
            best_len = l;
        }
    }
    return best;
}

/* Move queued jobs into free slots, first come first served, as many as there are free slots:
 * every request that arrived during the last step starts its prefill in the next one. */
static void
admit(struct sched *s)
{
    for (;;) {
        struct sched_job *job = s->head;
        if (!job)
            return;
        int best = pick_slot(s, job);
        if (best < 0)
            return;
        s->head = job->next;
        if (!s->head)
            s->tail = NULL;
        s->queued--;
        job->next = NULL;
        pthread_mutex_unlock(&s->mu);
        if (job->kind == SCHED_EMBED)
            slot_admit_embed(s, &s->slots[best], best, job);
        else if (slot_admit(s, &s->slots[best], best, job) < 0)
            slot_finish(s, &s->slots[best], SCHED_FINISH_ERROR, "cannot set up the sampler");
        pthread_mutex_lock(&s->mu);
    }
}

/* ===== Embeddings ============================================================================= */

/* Tokens an embedding job may run between two steps while other slots are generating or
 * reading their prompts: about what a short prompt adds to a step, so streams keep their pace
 * (see build_batch). With nothing else running it may use a whole batch. */
#define EMBED_BUSY_TOKENS 64

/* Embed the next inputs of the job in slot idx: whole inputs (engine_embed cannot stop half
 * way) until the budget is spent, at least one, so a request with thousands of inputs delays
 * the generating slots a little at every step, not by all of its work at once. */
static void
embed_some(struct sched *s, int idx, int budget)
{
    struct sched_slot *sl = &s->slots[idx];
    const struct sched_embed *em = &sl->job->embed;
    size_t dim = (size_t)sched_dim(s);
    uint64_t tokens = 0, vectors = 0;
    struct al_err e = {0};
    bool failed = false;
    while (sl->embed_next < em->n_inputs && budget > 0) {
        int i = sl->embed_next;
        if (engine_embed(s->en, idx, em->tokens[i], em->n_tokens[i], em->out + (size_t)i * dim,
                         &e) < 0) {
            failed = true;
            break;
        }
        sl->embed_next++;
        budget -= em->n_tokens[i];
        tokens += (uint64_t)em->n_tokens[i];
        vectors++;
    }
    pthread_mutex_lock(&s->mu);
    s->stats.prompt_tokens_processed += tokens;
    s->stats.inputs_embedded += vectors;
    pthread_mutex_unlock(&s->mu);
    if (failed) {
        engine_seq_truncate(s->en, idx, 0);
        slot_finish(s, sl, SCHED_FINISH_ERROR, e.msg);
    } else if (sl->embed_next == em->n_inputs) {
        slot_finish(s, sl, SCHED_FINISH_EMBEDDED, NULL);
    }
}

static void
run_embeddings(struct sched *s)
{
    bool generating = false;
    for (int i = 0; i < s->n_slots; i++)
        generating |= s->slots[i].state == SLOT_GEN || s->slots[i].state == SLOT_PREFILL;
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].state == SLOT_EMBED)
            embed_some(s, i, generating ? EMBED_BUSY_TOKENS : s->n_batch);
}

/* ===== The step =============================================================================== */

/* Prompt tokens of a slot in prefill not yet in its cache. */
static int
prompt_left(const struct sched_slot *sl)
{
    return sl->job->n_prompt - sl->n_prompt_done;
}

/* Append the next k prompt tokens of slot i to the batch; the prompt's last token asks for
 * logits (the first sampled token comes from them). */
static void
add_prompt_chunk(struct sched *s, int i, int k, int *n, int *rows)
{
    struct sched_slot *sl = &s->slots[i];
    const struct sched_job *job = sl->job;
    for (int j = 0; j < k; j++) {
        int32_t t = job->prompt[sl->n_prompt_done];
        s->b_tok[*n] = t;
        s->b_pos[*n] = sl->n_hist;
        s->b_seq[*n] = i;
        sl->hist[sl->n_hist++] = t;
        sl->n_prompt_done++;
        bool last = sl->n_prompt_done == job->n_prompt;
        s->b_logits[*n] = last ? 1 : 0;
        if (last)
            sl->logits_row = (*rows)++;
        (*n)++;
    }
}

/* Prefill order: fewest prompt tokens left first (the request whose first token is nearest),
 * earlier arrival on a tie. Insertion sort: n_slots is small and the list is mostly sorted
 * already from the previous step. */
static int
prefill_order(const struct sched *s, int *order)
{
    int m = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const struct sched_slot *sl = &s->slots[i];
        if (sl->state != SLOT_PREFILL)
            continue;
        int j = m++;
        while (j > 0) {
            const struct sched_slot *o = &s->slots[order[j - 1]];
            if (prompt_left(o) < prompt_left(sl) ||
                (prompt_left(o) == prompt_left(sl) && o->job->t_submit <= sl->job->t_submit))
                break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    return m;
}

/* One step's batch: (a) the last sampled token of every generating slot, then (b) prompt
 * tokens, at most n_batch in all.
 * (b) decides time to first token. A step costs a fixed part (one pass over the weights,
 * thread wake-ups) plus a part per token, and every request whose prompt is in the step gets
 * its first token only when the whole step is done. Running every waiting prompt in one step
 * (a burst of new requests) therefore makes each of them wait for all of them. Instead each
 * step takes prompts shortest-remaining first (the first token that can come soonest; earlier
 * arrival on a tie) up to a budget of max(the first prompt's remaining tokens,
 * PREFILL_STEP_MIN): the first one in line always completes if it fits the room, and further
 * ones are added, the last possibly in part, only to fill the step up to PREFILL_STEP_MIN
 * tokens, below which the fixed part of a step would dominate. A burst of 8 prompts of ~40
 * tokens thus gives first tokens over three steps instead of all at the end of one, and
 * the streams already generating get a token every step in between; a prompt alone still
 * takes the whole room, so a lone long prompt runs in n_batch chunks as before. The prompt
 * that arrived first gets up to PREFILL_OLDEST_SHARE tokens of every step on top, from what
 * the first in line leaves (when the room is short, still a quarter of it), so a long prompt
 * keeps moving while short ones keep arriving.
 * The sizes come from a simulation of 8 closed-loop clients against measured step costs (the
 * fixed part is worth some 20-40 prompt tokens), then A/B runs of bench/server.sh: 128 cuts
 * the median time to first token of a burst by a third or more for about 1 % fewer tokens per
 * second and a slightly later last first token; 32 or 64 cut the median further but cost
 * 2-6 % of throughput and lengthen the tail much more, every extra step being one more pass
 * over the weights. */
#define PREFILL_STEP_MIN 128
#define PREFILL_OLDEST_SHARE 32

/* Where prefill is slow against a pass over the weights, 128 is too many: on a Zen 3 host
 * (AVX2) with SmolLM2-135M a step of 8 generating slots and no prompt tokens costs 25-33 ms,
 * what ~10 prompt tokens do (2.1-2.7 ms each), not 20-40, so filling a step to 128 tokens made
 * every prompt in it wait ~350 ms for the others.
 * The scheduler therefore measures both costs as it runs (moving averages over steps: those
 * without prompt tokens give the step's cost, those with at least PREFILL_STEP_FLOOR the
 * per-token cost on top) and fills a step only to PREFILL_STEP_WORTH times what its fixed
 * part is worth in prompt tokens, between PREFILL_STEP_FLOOR and PREFILL_STEP_MIN; until both
 * are measured, PREFILL_STEP_MIN. */
#define PREFILL_STEP_FLOOR 16
#define PREFILL_STEP_WORTH 4
#define COST_AVG_WEIGHT 0.125  /* of the newest step in the moving averages */

int
sched_prefill_step_min(double cost_step, double cost_token)
{
    if (!(cost_step > 0) || !(cost_token > 0))
        return PREFILL_STEP_MIN;
    double worth = PREFILL_STEP_WORTH * cost_step / cost_token;
    if (worth >= PREFILL_STEP_MIN)
        return PREFILL_STEP_MIN;
    return worth <= PREFILL_STEP_FLOOR ? PREFILL_STEP_FLOOR : (int)worth;
}

static void
cost_avg(double *avg, double x)
{
    *avg = *avg > 0 ? *avg + COST_AVG_WEIGHT * (x - *avg) : x;
}

/* A step of n_prompt prompt tokens (and any number of generating slots' tokens) took dt. */
static void
learn_step_cost(struct sched *s, int n_prompt, double dt)
{
    if (n_prompt == 0) {
        cost_avg(&s->cost_step, dt);
        return;
    }
    if (s->cost_step <= 0 || n_prompt < PREFILL_STEP_FLOOR || dt <= s->cost_step)
        return;  /* small chunks: the per-token part is lost in the step's own jitter */
    cost_avg(&s->cost_token, (dt - s->cost_step) / n_prompt);
}

static int
build_batch(struct sched *s)
{
    int n = 0, rows = 0;
    for (int i = 0; i < s->n_slots; i++)
        s->slots[i].logits_row = -1;
    /* decode tokens first: one per generating slot keeps latency flat for everyone */
    for (int i = 0; i < s->n_slots && n < s->n_batch; i++) {
        struct sched_slot *sl = &s->slots[i];
        if (sl->state != SLOT_GEN)
            continue;
        s->b_tok[n] = sl->next;
        s->b_pos[n] = sl->n_hist;
        s->b_seq[n] = i;
        s->b_logits[n] = 1;
        sl->hist[sl->n_hist++] = sl->next;
        sl->logits_row = rows++;
        n++;
    }
    int m = prefill_order(s, s->order);
    if (m == 0 || n >= s->n_batch)
        return n;
    int room = s->n_batch - n;
    int first = prompt_left(&s->slots[s->order[0]]);
    /* the oldest prompt's share, unless it is first in line anyway: taken from what the first
     * leaves over, so the first completes when it fits, but never under a quarter of the room */
    int oldest = s->order[0];
    for (int j = 1; j < m; j++)
        if (s->slots[s->order[j]].job->t_submit < s->slots[oldest].job->t_submit)
            oldest = s->order[j];
    int share = 0;
    if (oldest != s->order[0]) {
        int want = prompt_left(&s->slots[oldest]);
        if (want > PREFILL_OLDEST_SHARE)
            want = PREFILL_OLDEST_SHARE;
        int spare = room - first, quarter = room / 4;
        share = want <= spare ? want : spare > quarter ? spare : quarter;
        if (share > want)
            share = want;
    }
    int step_min = sched_prefill_step_min(s->cost_step, s->cost_token);
    int budget = (first > step_min ? first : step_min) + share;
    if (budget > room)
        budget = room;
    int left = budget - share;
    for (int j = 0; j < m && left > 0; j++) {
        int i = s->order[j];
        if (i == oldest && share > 0)
            continue;
        int k = prompt_left(&s->slots[i]);
        if (k > left)
            k = left;
        add_prompt_chunk(s, i, k, &n, &rows);
        left -= k;
    }
    if (share > 0)
        add_prompt_chunk(s, oldest, share, &n, &rows);
    return n;
}

/* Finish cancelled and timed-out jobs before spending compute on them. */
static void
drop_cancelled(struct sched *s)
{
    for (int i = 0; i < s->n_slots; i++) {
        struct sched_slot *sl = &s->slots[i];
        if (sl->state == SLOT_FREE)
            continue;
        struct sched_job *job = sl->job;
        bool timeout = job->p.timeout_s > 0 && now_s() - job->t_submit > job->p.timeout_s;
        if (atomic_load(&job->cancel) || timeout)
            slot_finish(s, sl, SCHED_FINISH_CANCELLED, timeout ? "request timed out" : NULL);
    }
}

static void
step(struct sched *s)
{
    int n = build_batch(s);
    if (n == 0)
        return;
    struct batch b = {n, s->b_tok, s->b_pos, s->b_seq, s->b_logits};
    struct al_err e = {0};
    uint64_t prompt_toks = 0;
    for (int i = 0; i < n; i++)
        prompt_toks += s->b_logits[i] ? 0 : 1;
    int n_gen = 0;  /* the generating slots' tokens lead the batch; the rest are prompt */
    for (int i = 0; i < s->n_slots; i++)
        n_gen += s->slots[i].state == SLOT_GEN;
    double t0 = now_s();
    if (engine_decode(s->en, &b, s->logits, &e) < 0) {
        for (int i = 0; i < s->n_slots; i++) {
            struct sched_slot *sl = &s->slots[i];
            if (sl->state != SLOT_GEN && sl->state != SLOT_PREFILL)
                continue;
            engine_seq_truncate(s->en, i, 0);
            sl->n_hist = 0;
            slot_finish(s, sl, SCHED_FINISH_ERROR, e.msg);
        }
        return;
    }
    learn_step_cost(s, n - n_gen, now_s() - t0);
    int n_vocab = s->n_vocab;
    uint64_t generated = 0;
    for (int i = 0; i < s->n_slots; i++) {
        struct sched_slot *sl = &s->slots[i];
        if (sl->logits_row < 0 || (sl->state != SLOT_GEN && sl->state != SLOT_PREFILL))
            continue;
        slot_sample(s, sl, s->logits + (size_t)sl->logits_row * n_vocab);
        generated++;
    }
    pthread_mutex_lock(&s->mu);
    s->stats.steps++;
    s->stats.tokens_generated += generated;
    s->stats.prompt_tokens_processed += prompt_toks;
    pthread_mutex_unlock(&s->mu);
}

static void
refresh_stats(struct sched *s)
{
    int active = 0, used = 0;
    for (int i = 0; i < s->n_slots; i++) {
        active += s->slots[i].state != SLOT_FREE;
        used += s->slots[i].n_hist;
    }
    s->stats.active = active;
    s->stats.queued = s->queued;
    s->stats.kv_used = used;
    s->stats.kv_total = s->n_slots * sched_n_ctx(s);
    s->stats.n_slots = s->n_slots;
}

static void *
sched_main(void *arg)
{
    struct sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        admit(s);
        bool busy = false;
        for (int i = 0; i < s->n_slots; i++)
            busy |= s->slots[i].state != SLOT_FREE;
        refresh_stats(s);
        if (s->stop)
            break;
        if (!busy) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        s->tick++;
        drop_cancelled(s);
        run_embeddings(s);
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    /* shutting down: cancel everything still queued or running */
    struct sched_job *q = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].state != SLOT_FREE)
            slot_finish(s, &s->slots[i], SCHED_FINISH_CANCELLED, "server shutting down");
    while (q) {
        struct sched_job *next = q->next;
        struct sched_result r = {.finish = SCHED_FINISH_CANCELLED,
                                 .prompt_tokens = job_prompt_tokens(q)};
        snprintf(r.message, sizeof r.message, "server shutting down");
        q->on_done(q->ctx, &r);
        q = next;
    }
    return NULL;
}

/* ===== Public ================================================================================= */

int
sched_n_ctx(const struct sched *s)
{
    return s->en->n_ctx;
}

int
sched_dim(const struct sched *s)
{
    return s->en->m->hp.dim;
}

int
sched_start(struct sched *s, struct engine *en, const struct tokenizer *tok, int n_slots,
            int max_queue, struct al_err *e)
{
    memset(s, 0, sizeof *s);
    if (n_slots < 1 || n_slots > en->kv.n_seq)
        return al_errf(e, AL_EUSAGE, "%d slots requested but the engine has %d sequence slots",
                       n_slots, en->kv.n_seq);
    s->en = en;
    s->tok = tok;
    s->n_slots = n_slots;
    s->max_queue = max_queue;
    s->n_batch = en->n_batch;
    s->slots = xcalloc((size_t)n_slots, sizeof *s->slots);
    for (int i = 0; i < n_slots; i++) {
        s->slots[i].hist = xcalloc((size_t)en->n_ctx, sizeof(int32_t));
        s->slots[i].allowed = xmalloc((size_t)tokenizer_n_vocab(tok));
        buf_init(&s->slots[i].text);
    }
    s->n_vocab = en->m->hp.n_vocab;
    if (tokenizer_n_vocab(tok) > s->n_vocab)
        return al_errf(e, AL_EFORMAT, "the tokenizer has %d tokens but the model only %d output "
                       "rows", tokenizer_n_vocab(tok), s->n_vocab);
    int n_vocab = s->n_vocab;
    s->logits = xmalloc((size_t)n_slots * (size_t)n_vocab * sizeof(float));
    s->b_tok = xcalloc((size_t)s->n_batch, sizeof(int32_t));
    s->b_pos = xcalloc((size_t)s->n_batch, sizeof(int32_t));
    s->b_seq = xcalloc((size_t)s->n_batch, sizeof(int32_t));
    s->b_logits = xcalloc((size_t)s->n_batch, 1);
    s->order = xcalloc((size_t)n_slots, sizeof *s->order);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0)
        return al_errf(e, AL_EIO, "cannot start the scheduler thread");
    s->started = true;
    return 0;
}

void
sched_stop(struct sched *s)
{
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        /* mu and cv stay valid: a late sched_submit sees `stop` and fails cleanly */
        s->started = false;
    }
    for (int i = 0; s->slots && i < s->n_slots; i++) {
        free(s->slots[i].hist);
        free(s->slots[i].allowed);
        buf_free(&s->slots[i].text);
        sampler_free(&s->slots[i].smp);
    }
    free(s->slots);
    free(s->logits);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_logits);
    free(s->order);
    s->order = NULL;
    s->slots = NULL;
    s->logits = NULL;
    s->b_tok = s->b_pos = s->b_seq = NULL;
    s->b_logits = NULL;
}

/* An embedding job must be runnable to the end: engine_embed would only find a bad input
 * after the inputs before it had run. */
static int
check_embed(const struct sched *s, const struct sched_embed *em, struct al_err *e)
{
    if (em->n_inputs < 1 || !em->tokens || !em->n_tokens || !em->out)
        return al_errf(e, AL_EUSAGE, "an embedding job needs at least one input and an output");
    long long total = 0;
    for (int i = 0; i < em->n_inputs; i++) {
        int n = em->n_tokens[i];
        if (n < 1)
            return al_errf(e, AL_EUSAGE, "input %d is empty after tokenization", i);
        if (n > sched_n_ctx(s))
            return al_errf(e, AL_EUSAGE, "input %d has %d tokens; this model's context holds %d",
                           i, n, sched_n_ctx(s));
        for (int t = 0; t < n; t++)
            if (em->tokens[i][t] < 0 || em->tokens[i][t] >= s->n_vocab)
                return al_errf(e, AL_EUSAGE, "input %d: token %d is id %d, outside the "
                               "vocabulary of %d", i, t, em->tokens[i][t], s->n_vocab);
        total += n;
    }
    if (total > INT_MAX)
        return al_errf(e, AL_ELIMIT, "%lld tokens in one embedding request", total);
    return 0;
}

int
sched_submit(struct sched *s, struct sched_job *job, struct al_err *e)
{
    if (job->kind == SCHED_EMBED) {
        if (check_embed(s, &job->embed, e) < 0)
            return -1;
    } else if (job->n_prompt < 1) {
        return al_errf(e, AL_EUSAGE, "the prompt is empty after tokenization");
    } else if (job->n_prompt >= sched_n_ctx(s)) {
        return al_errf(e, AL_EUSAGE, "the prompt has %d tokens; this model's context holds %d "
                       "(prompt plus completion)", job->n_prompt, sched_n_ctx(s));
    }
    job->next = NULL;
    job->t_submit = now_s();
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        return al_errf(e, AL_EIO, "server is shutting down");
    }
    if (s->queued >= s->max_queue) {
        pthread_mutex_unlock(&s->mu);
        return al_errf(e, AL_ELIMIT, "too many requests waiting (%d queued); retry later",
                       s->queued);
    }
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    s->queued++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void
sched_get_stats(struct sched *s, struct sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}
