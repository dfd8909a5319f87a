/* generate.c -- prompt evaluation with prefix reuse, the sample/accept loop, and streaming text
 * with stop strings (contract in generate.h).
 * Stop strings: text is held back while its tail could still become a stop string, so the
 * caller never sees a stop string or any part of one; everything before it is emitted. */
#include "engine/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/xalloc.h"

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *
gen_stop_name(enum gen_stop s)
{
    switch (s) {
    case GEN_STOP_LENGTH: return "length";
    case GEN_STOP_EOG: return "eog";
    case GEN_STOP_STRING: return "stop";
    case GEN_STOP_CALLBACK: return "cancelled";
    case GEN_STOP_CONTEXT: return "context";
    default: return "none";
    }
}

/* ===== Lifecycle ================================================================================ */

int
gen_init(struct gen_session *g, struct engine *en, const struct tokenizer *tok, int seq,
         struct al_err *e)
{
    memset(g, 0, sizeof *g);
    if (seq < 0 || seq >= en->kv.n_seq)
        return al_errf(e, AL_EUSAGE, "sequence slot %d outside 0..%d", seq, en->kv.n_seq - 1);
    if (tok && tokenizer_n_vocab(tok) > en->m->hp.n_vocab)
        return al_errf(e, AL_EFORMAT, "tokenizer has %d tokens, the model's output only %d",
                       (int)tokenizer_n_vocab(tok), en->m->hp.n_vocab);
    g->en = en;
    g->tok = tok;
    g->seq = seq;
    g->cap_hist = en->n_ctx;
    g->hist = xmalloc((size_t)g->cap_hist * sizeof *g->hist);
    g->logits = xmalloc((size_t)en->m->hp.n_vocab * sizeof *g->logits);
    g->piece_cap = (tok ? tokenizer_max_piece(tok) : 0) + 8;
    g->piece = xmalloc(g->piece_cap);
    buf_init(&g->pending);
    engine_seq_truncate(en, seq, 0);
    return 0;
}

void
gen_free(struct gen_session *g)
{
    if (!g)
        return;
    free(g->hist);
    free(g->logits);
    free(g->piece);
    buf_free(&g->pending);
    sampler_free(&g->smp);
    memset(g, 0, sizeof *g);
}

/* ===== Prompt =================================================================================== */

int
gen_prompt(struct gen_session *g, const int32_t *ids, int n, struct al_err *e)
{
    struct engine *en = g->en;
    if (n <= 0)
        return al_errf(e, AL_EUSAGE, "empty prompt");
    if (n > g->cap_hist)
        return al_errf(e, AL_ELIMIT, "prompt of %d tokens does not fit the context of %d", n,
                       g->cap_hist);
    int keep = 0;
    while (keep < n && keep < g->n_hist && g->hist[keep] == ids[keep])
        keep++;
    if (keep == n) /* everything cached: re-evaluate the last token to get its logits */
        keep--;
    engine_seq_truncate(en, g->seq, keep);
    g->n_hist = keep;
    g->have_logits = false;

    int todo = n - keep;
    int32_t *pos = xmalloc((size_t)todo * sizeof *pos);
    int32_t *seq = xmalloc((size_t)todo * sizeof *seq);
    for (int i = 0; i < todo; i++) {
        pos[i] = keep + i;
        seq[i] = g->seq;
    }
    double t0 = now_ms();
    struct batch b = {.n_tokens = todo, .token = ids + keep, .pos = pos, .seq = seq};
    int rc = engine_decode(en, &b, g->logits, e);
    free(pos);
    free(seq);
    if (rc < 0) {
        /* the engine refused before running; keep history in step with the cache */
        g->n_hist = engine_seq_len(en, g->seq);
        return -1;
    }
    memcpy(g->hist + keep, ids + keep, (size_t)todo * sizeof *ids);
    g->n_hist = n;
    g->have_logits = true;
    g->st.n_prompt = todo;
    g->st.n_reused = keep;
    g->st.prompt_ms = now_ms() - t0;
    return 0;
}

int
gen_prompt_text(struct gen_session *g, const char *text, size_t len, bool add_special,
                bool parse_special, struct al_err *e)
{
    if (!g->tok)
        return al_errf(e, AL_EINTERNAL, "session has no tokenizer");
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(g->tok, text, len, add_special, parse_special, &ids, &n, e) < 0)
        return -1;
    int rc;
    if (n > (size_t)g->cap_hist)
        rc = al_errf(e, AL_ELIMIT, "prompt of %zu tokens does not fit the context of %d", n,
                     g->cap_hist);
    else
        rc = gen_prompt(g, ids, (int)n, e);
    free(ids);
    return rc;
}

/* ===== Streaming text with stop strings ========================================================= */

/* Length of the longest proper prefix of any stop string that text ends with. */
static size_t
stop_prefix_tail(const struct gen_params *p, const char *text, size_t len)
{
    size_t best = 0;
    for (int i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > best; k--) {
            if (k <= len && memcmp(text + len - k, p->stop[i], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

/* Append text, emit what is final; returns 1 when a stop string or the callback ended it. */
static int
push_text(struct gen_session *g, const char *text, size_t len, gen_emit_fn emit, void *ud,
          enum gen_stop *stop)
{
    struct buf *pb = &g->pending;
    buf_append(pb, text, len);
    size_t cut = pb->len;
    int hit = 0;
    for (int i = 0; i < g->p.n_stop; i++) {
        size_t sl = strlen(g->p.stop[i]);
        if (sl == 0 || sl > pb->len)
            continue;
        const char *f = memmem(pb->data, pb->len, g->p.stop[i], sl);
        if (f && (size_t)(f - pb->data) < cut) {
            cut = (size_t)(f - pb->data);
            hit = 1;
        }
    }
    size_t emit_n = hit ? cut : pb->len - stop_prefix_tail(&g->p, pb->data, pb->len);
    int stop_cb = 0;
    if (emit_n > 0 && emit)
        stop_cb = emit(ud, pb->data, emit_n);
    if (hit) {
        buf_reset(pb);
        *stop = GEN_STOP_STRING;
        return 1;
    }
    memmove(pb->data, pb->data + emit_n, pb->len - emit_n);
    pb->len -= emit_n;
    pb->data[pb->len] = '\0';
    if (stop_cb) {
        *stop = GEN_STOP_CALLBACK;
        return 1;
    }
    return 0;
}

void
gen_finish(struct gen_session *g, gen_emit_fn emit, void *ud)
{
    if (g->tok) {
        size_t n = detok_flush(&g->dt, g->piece, g->piece_cap);
        if (n <= g->piece_cap)
            buf_append(&g->pending, g->piece, n);
    }
    if (g->pending.len > 0 && emit)
        (void)emit(ud, g->pending.data, g->pending.len); /* last text; its answer changes nothing */
    buf_reset(&g->pending);
}

/* ===== Sampling loop ============================================================================= */

int
gen_begin(struct gen_session *g, const struct gen_params *p, struct al_err *e)
{
    if (p->n_stop < 0 || p->n_stop > GEN_MAX_STOP)
        return al_errf(e, AL_EUSAGE, "%d stop strings, at most %d", p->n_stop, GEN_MAX_STOP);
    sampler_free(&g->smp);
    if (sampler_init(&g->smp, &p->sp, g->en->m->hp.n_vocab, e) < 0)
        return -1;
    g->p = *p;
    for (int i = 0; i < g->n_hist; i++)
        sampler_accept(&g->smp, g->hist[i]);
    if (g->tok)
        detok_init(&g->dt, g->tok);
    buf_reset(&g->pending);
    g->st.n_gen = 0;
    g->st.gen_ms = 0;
    g->st.stop = GEN_STOP_NONE;
    return 0;
}

int32_t
gen_sample(struct gen_session *g, gen_emit_fn emit, void *ud, enum gen_stop *stop)
{
    *stop = GEN_STOP_NONE;
    if (g->p.n_predict >= 0 && g->st.n_gen >= g->p.n_predict) {
        *stop = GEN_STOP_LENGTH;
        return -1;
    }
    if (!g->have_logits || g->n_hist >= g->cap_hist) {
        *stop = GEN_STOP_CONTEXT;
        return -1;
    }
    int32_t tok = sampler_sample(&g->smp, g->logits);
    g->have_logits = false;
    g->st.n_gen++;
    if (g->tok && !g->p.ignore_eos && tokenizer_is_eog(g->tok, tok)) {
        *stop = GEN_STOP_EOG;
        return -1;
    }
    sampler_accept(&g->smp, tok);
    if (g->tok) {
        size_t n = detok_push(&g->dt, tok, g->piece, g->piece_cap);
        if (n > g->piece_cap)
            n = 0; /* cannot happen: piece_cap is max piece + 8 */
        if (push_text(g, g->piece, n, emit, ud, stop))
            return -1;
    }
    return tok;
}

int
gen_accept(struct gen_session *g, int32_t tok, struct al_err *e)
{
    int32_t pos = g->n_hist;
    int32_t seq = g->seq;
    struct batch b = {.n_tokens = 1, .token = &tok, .pos = &pos, .seq = &seq};
    if (engine_decode(g->en, &b, g->logits, e) < 0)
        return -1;
    g->hist[g->n_hist++] = tok;
    g->have_logits = true;
    return 0;
}

void
gen_set_logits(struct gen_session *g, int32_t tok, const float *logits)
{
    if (g->n_hist < g->cap_hist)
        g->hist[g->n_hist++] = tok;
    memcpy(g->logits, logits, (size_t)g->en->m->hp.n_vocab * sizeof *logits);
    g->have_logits = true;
}

int
gen_generate(struct gen_session *g, const struct gen_params *p, gen_emit_fn emit, void *ud,
             struct gen_stats *st, struct al_err *e)
{
    int rc = -1;
    if (gen_begin(g, p, e) < 0)
        goto out;
    double t0 = now_ms();
    enum gen_stop stop = GEN_STOP_NONE;
    for (;;) {
        int32_t tok = gen_sample(g, emit, ud, &stop);
        if (tok < 0)
            break;
        /* the last token of a budget needs no evaluation: nothing will read its logits */
        if (p->n_predict >= 0 && g->st.n_gen >= p->n_predict) {
            stop = GEN_STOP_LENGTH;
            break;
        }
        if (g->n_hist >= g->cap_hist) {
            stop = GEN_STOP_CONTEXT;
            break;
        }
        if (gen_accept(g, tok, e) < 0)
            goto out;
    }
    if (stop != GEN_STOP_STRING && stop != GEN_STOP_CALLBACK)
        gen_finish(g, emit, ud);
    g->st.gen_ms = now_ms() - t0;
    g->st.stop = stop;
    rc = 0;
out:
    if (st)
        *st = g->st;
    return rc;
}

/* ===== Loading ==================================================================================== */

int
llm_open_progress(struct llm *l, const char *path, const struct engine_opts *o,
                  model_progress_fn progress, void *ud, struct al_err *e)
{
    memset(l, 0, sizeof *l);
    if (model_load(&l->m, path, e) < 0)
        return -1;
    l->residency = model_load_weights(&l->m, !o->mmap_weights, progress, ud);
    if (!o->mmap_weights)
        (void)model_repack(&l->m);
    if (tokenizer_load(&l->tok, &l->m.gguf, e) < 0) {
        al_errctx(e, "%s", path);
        llm_close(l);
        return -1;
    }
    if (engine_init(&l->en, &l->m, o, e) < 0) {
        llm_close(l);
        return -1;
    }
    return 0;
}

int
llm_open(struct llm *l, const char *path, const struct engine_opts *o, struct al_err *e)
{
    return llm_open_progress(l, path, o, NULL, NULL, e);
}

void
llm_close(struct llm *l)
{
    if (!l)
        return;
    engine_free(&l->en);
    tokenizer_free(l->tok);
    model_free(&l->m);
    memset(l, 0, sizeof *l);
}
