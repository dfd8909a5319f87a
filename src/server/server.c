/* server.c -- `airlock serve`: the OpenAI- and Anthropic-compatible API in front of the built-in
 * engine. Owns the route table, authentication, request -> prompt -> scheduler job plumbing,
 * response and SSE formatting, and one audit record per request.
 * Threads: HTTP connection threads run routes; the scheduler thread runs the model and calls
 * back on_piece/on_done; a finisher thread writes audit records of streamed requests (so an
 * fsync never stalls generation) before it sends their final event. */
#include "server/server.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/hash.h"
#include "audit/audit_sig.h"
#include "server/default_model.h"
#include "transfer/minisig.h"
#include "util/xalloc.h"

/* ===== Request context ======================================================================== */

struct greq {
    struct server *srv;          /* borrowed */
    struct api_request req;      /* owned, parsed body */
    char id[64];                 /* "chatcmpl-..." */
    long created;                /* unix seconds */
    const char *endpoint;        /* route path */
    char client[64];
    char key_name[128];
    char *prompt_text;           /* owned: rendered prompt (hashed for the audit log) */
    int32_t *ids;                /* owned prompt tokens */
    size_t n_ids;
    struct sched_job job;
    struct buf text;             /* generated text (non-stream, and for the audit hash) */
    json_t *logprobs;            /* owned array of OpenAI logprob entries, or NULL */
    struct http_stream *stream;  /* streaming reply, or NULL */
    struct jgram *grammar;       /* owned: response_format constraint, or NULL */
    bool first_chunk_sent;       /* stream: role chunk / message_start already sent */
    bool block_open;             /* anthropic: content_block_start sent */
    struct sched_result res;     /* filled by on_done */
    bool done;                   /* set with mu held */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct greq *next;            /* finisher queue link */
    double t0;                   /* monotonic start */
};

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
greq_free(struct greq *g)
{
    if (!g)
        return;
    api_request_free(&g->req);
    free(g->prompt_text);
    free(g->ids);
    buf_free(&g->text);
    json_decref(g->logprobs);
    jgram_free(g->grammar);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

static enum api_finish
finish_of(const struct sched_result *r)
{
    return r->finish == SCHED_FINISH_LENGTH || r->finish == SCHED_FINISH_CONTEXT
               ? API_FINISH_LENGTH
               : API_FINISH_STOP;
}

/* ===== Audit and metrics ====================================================================== */

static void
record(struct server *s, const char *endpoint, const char *client, const char *key_name,
       const char *prompt, size_t prompt_len, const char *resp, size_t resp_len, int status,
       int prompt_tokens, int completion_tokens, double t0, double ttft)
{
    double lat = mono_s() - t0;
    metrics_server_request(&s->metrics, endpoint, status, prompt_tokens, completion_tokens, lat,
                           ttft > 0 ? ttft : -1);
    if (!s->audit)
        return;
    struct audit_record r = {
        .key_name = key_name && *key_name ? key_name : NULL,
        .client = client,
        .endpoint = endpoint,
        .model_id = s->model_id,
        .model_version = s->model_sha256,
        .prompt = prompt ? prompt : "",
        .prompt_len = prompt ? prompt_len : 0,
        .response = resp ? resp : "",
        .response_len = resp ? resp_len : 0,
        .prompt_tokens = prompt_tokens,
        .completion_tokens = completion_tokens,
        .latency_ms = (int64_t)(lat * 1000),
        .status = status,
    };
    struct al_err e = {0};
    if (audit_append(s->audit, &r, NULL, &e) < 0)
        fprintf(stderr, "airlock serve: audit log: %s\n", e.msg);
}

static void
reply_api_error(struct server *s, struct http_req *r, enum api_kind kind, const char *endpoint,
                const char *key_name, const struct api_error *err, double t0)
{
    http_reply_json(r, err->status, api_error_json(kind, err));
    const struct buf *body = http_body(r);
    record(s, endpoint, http_client(r), key_name, body->data, body->len, err->message,
           strlen(err->message), err->status, 0, 0, t0, 0);
}

static void
set_error(struct api_error *err, int status, const char *type, const char *param,
          const char *code, const char *msg)
{
    memset(err, 0, sizeof *err);
    err->status = status;
    err->type = type;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg);
}

/* ===== Auth =================================================================================== */

/* Returns true when the request may proceed; otherwise has answered 401. */
static bool
authorize(struct server *s, struct http_req *r, enum api_kind kind, const char *endpoint,
          char *name_out, size_t cap)
{
    name_out[0] = '\0';
    if (s->cfg.no_auth)
        return true;
    char tok[KEYS_PRESENTED_MAX + 1];
    struct api_error err;
    if (keys_token_from_headers(http_header(r, "Authorization"), http_header(r, "x-api-key"),
                                tok) < 0) {
        set_error(&err, 401, "invalid_request_error", NULL, "missing_api_key",
                  "missing API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'");
        reply_api_error(s, r, kind, endpoint, NULL, &err, mono_s());
        return false;
    }
    const char *name = NULL;
    enum keys_verdict v = keys_check(&s->keys, tok, time(NULL), &name);
    OPENSSL_cleanse(tok, sizeof tok);
    if (v != KEYS_OK) {
        set_error(&err, 401, "invalid_request_error", NULL, "invalid_api_key",
                  keys_verdict_str(v));
        reply_api_error(s, r, kind, endpoint, NULL, &err, mono_s());
        return false;
    }
    snprintf(name_out, cap, "%s", name ? name : "");
    return true;
}

/* ===== Streaming output ======================================================================= */

static void
sse_json(struct http_stream *st, const char *event, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return;
    if (event)
        http_stream_printf(st, "event: %s\ndata: %s\n\n", event, s);
    else
        http_stream_printf(st, "data: %s\n\n", s);
    free(s);
}

static json_t *
openai_chunk(struct greq *g, json_t *delta, const char *finish, json_t *logprobs)
{
    bool chat = g->req.kind == API_CHAT;
    json_t *choice;
    if (chat)
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", 0, "delta", delta, "logprobs",
                           logprobs ? logprobs : json_null(), "finish_reason",
                           finish ? json_string(finish) : json_null());
    else
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", 0, "text", delta, "logprobs",
                           logprobs ? logprobs : json_null(), "finish_reason",
                           finish ? json_string(finish) : json_null());
    return json_pack("{s:s,s:s,s:i,s:s,s:s,s:[o]}", "id", g->id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)g->created, "model", g->srv->model_id, "system_fingerprint",
                     g->srv->fingerprint, "choices", choice);
}

static json_t *
logprob_entry(const struct tokenizer *tok, const struct sched_piece *p)
{
    size_t n = 0;
    const char *t = tokenizer_piece(tok, p->id, &n);
    json_t *bytes = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(bytes, json_integer((unsigned char)t[i]));
    json_t *top = json_array();
    for (int i = 0; i < p->n_top; i++) {
        size_t m = 0;
        const char *tt = tokenizer_piece(tok, p->top[i].id, &m);
        json_t *tb = json_array();
        for (size_t k = 0; k < m; k++)
            json_array_append_new(tb, json_integer((unsigned char)tt[k]));
        json_array_append_new(top, json_pack("{s:s%,s:f,s:o}", "token", tt, m, "logprob",
                                             (double)p->top[i].logprob, "bytes", tb));
    }
    return json_pack("{s:s%,s:f,s:o,s:o}", "token", t, n, "logprob", (double)p->chosen.logprob,
                     "bytes", bytes, "top_logprobs", top);
}

static bool
on_piece(void *ctx, const struct sched_piece *p)
{
    struct greq *g = ctx;
    const struct tokenizer *tok = g->srv->tok;
    buf_append(&g->text, p->text, p->len);
    json_t *lp = NULL;
    if (g->req.logprobs && p->id >= 0) {
        lp = logprob_entry(tok, p);
        if (!g->logprobs)
            g->logprobs = json_array();
        json_array_append(g->logprobs, lp);
    }
    if (!g->stream) {
        json_decref(lp);
        return true;
    }
    if (http_stream_cancelled(g->stream)) {
        json_decref(lp);
        return false;
    }
    if (g->req.kind == API_MESSAGES) {
        json_decref(lp);
        if (!g->block_open) {
            sse_json(g->stream, "content_block_start",
                     json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", 0,
                               "content_block", "type", "text", "text", ""));
            g->block_open = true;
        }
        if (p->len)
            sse_json(g->stream, "content_block_delta",
                     json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index", 0,
                               "delta", "type", "text_delta", "text", p->text, p->len));
        return !http_stream_cancelled(g->stream);
    }
    if (p->len == 0 && !lp)
        return true;
    json_t *delta = g->req.kind == API_CHAT
                        ? json_pack("{s:s%}", "content", p->text, p->len)
                        : json_stringn(p->text, p->len);
    json_t *lps = NULL;
    if (lp)
        lps = g->req.kind == API_CHAT ? json_pack("{s:[o]}", "content", lp) : lp;
    else
        json_decref(lp);
    sse_json(g->stream, NULL, openai_chunk(g, delta, NULL, lps));
    return !http_stream_cancelled(g->stream);
}

/* Final events of a stream, after the audit record is durable. */
static void
stream_finish(struct greq *g)
{
    struct http_stream *st = g->stream;
    const struct sched_result *r = &g->res;
    bool failed = r->finish == SCHED_FINISH_ERROR || r->finish == SCHED_FINISH_CANCELLED;
    if (g->req.kind == API_MESSAGES) {
        if (failed) {
            sse_json(st, "error", json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                                            "api_error", "message",
                                            r->message[0] ? r->message : "generation stopped"));
        } else {
            if (g->block_open)
                sse_json(st, "content_block_stop",
                         json_pack("{s:s,s:i}", "type", "content_block_stop", "index", 0));
            const char *reason = r->finish == SCHED_FINISH_STOP ? "stop_sequence"
                                                                 : api_finish_anthropic(finish_of(r));
            sse_json(st, "message_delta",
                     json_pack("{s:s,s:{s:s,s:n},s:{s:i}}", "type", "message_delta", "delta",
                               "stop_reason", reason, "stop_sequence", "usage", "output_tokens",
                               r->completion_tokens));
            sse_json(st, "message_stop", json_pack("{s:s}", "type", "message_stop"));
        }
        http_stream_end(st);
        return;
    }
    if (failed) {
        struct api_error err;
        set_error(&err, 500, "server_error", NULL, NULL,
                  r->message[0] ? r->message : "generation stopped");
        sse_json(st, NULL, api_error_json(g->req.kind, &err));
    } else {
        json_t *delta = g->req.kind == API_CHAT ? json_object() : json_string("");
        sse_json(st, NULL, openai_chunk(g, delta, api_finish_openai(finish_of(r)), NULL));
        if (g->req.include_usage) {
            json_t *o = openai_chunk(g, json_object(), NULL, NULL);
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage",
                                json_pack("{s:i,s:i,s:i}", "prompt_tokens", r->prompt_tokens,
                                          "completion_tokens", r->completion_tokens,
                                          "total_tokens", r->prompt_tokens + r->completion_tokens));
            sse_json(st, NULL, o);
        }
    }
    http_stream_write(st, "data: [DONE]\n\n", 14);
    http_stream_end(st);
}

static void
audit_gen(struct greq *g, int status)
{
    double decode_s = g->res.total_s - g->res.ttft_s;
    if (g->res.completion_tokens > 1 && decode_s > 0) {
        double tps = (g->res.completion_tokens - 1) / decode_s;
        g->srv->last_tps = tps;
        metrics_gauge_set(g->srv->metrics.tokens_per_second, tps);
    }
    record(g->srv, g->endpoint, g->client, g->key_name, g->prompt_text,
           g->prompt_text ? strlen(g->prompt_text) : 0, g->text.data, g->text.len, status,
           g->res.prompt_tokens, g->res.completion_tokens, g->t0, g->res.ttft_s);
}

static void
on_done(void *ctx, const struct sched_result *r)
{
    struct greq *g = ctx;
    struct server *s = g->srv;
    pthread_mutex_lock(&g->mu);
    g->res = *r;
    if (g->stream) {
        /* hand over to the finisher: audit (fsync) off the scheduler thread */
        pthread_mutex_unlock(&g->mu);
        pthread_mutex_lock(&s->fin_mu);
        g->next = s->fin_head;
        s->fin_head = g;
        pthread_cond_signal(&s->fin_cv);
        pthread_mutex_unlock(&s->fin_mu);
        return;
    }
    g->done = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void *
finisher_main(void *arg)
{
    struct server *s = arg;
    pthread_mutex_lock(&s->fin_mu);
    for (;;) {
        while (!s->fin_head && !s->fin_stop)
            pthread_cond_wait(&s->fin_cv, &s->fin_mu);
        struct greq *g = s->fin_head;
        if (!g && s->fin_stop)
            break;
        s->fin_head = g->next;
        pthread_mutex_unlock(&s->fin_mu);
        bool ok = g->res.finish != SCHED_FINISH_ERROR && g->res.finish != SCHED_FINISH_CANCELLED;
        audit_gen(g, ok ? 200 : g->res.finish == SCHED_FINISH_CANCELLED ? 499 : 500);
        stream_finish(g);
        greq_free(g);
        pthread_mutex_lock(&s->fin_mu);
    }
    pthread_mutex_unlock(&s->fin_mu);
    return NULL;
}

/* ===== Non-streaming bodies =================================================================== */

static json_t *
openai_body(struct greq *g)
{
    const struct sched_result *r = &g->res;
    json_t *usage = json_pack("{s:i,s:i,s:i}", "prompt_tokens", r->prompt_tokens,
                              "completion_tokens", r->completion_tokens, "total_tokens",
                              r->prompt_tokens + r->completion_tokens);
    const char *fin = api_finish_openai(finish_of(r));
    const char *text = g->text.data ? g->text.data : "";
    json_t *choice;
    if (g->req.kind == API_CHAT) {
        json_t *lp = g->logprobs ? json_pack("{s:O}", "content", g->logprobs) : json_null();
        choice = json_pack("{s:i,s:{s:s,s:s%,s:n},s:o,s:s}", "index", 0, "message", "role",
                           "assistant", "content", text, g->text.len, "refusal", "logprobs", lp,
                           "finish_reason", fin);
    } else {
        choice = json_pack("{s:i,s:s%,s:o,s:s}", "index", 0, "text", text, g->text.len,
                           "logprobs", g->logprobs ? json_incref(g->logprobs) : json_null(),
                           "finish_reason", fin);
    }
    return json_pack("{s:s,s:s,s:i,s:s,s:s,s:[o],s:o}", "id", g->id, "object",
                     g->req.kind == API_CHAT ? "chat.completion" : "text_completion", "created",
                     (json_int_t)g->created, "model", g->srv->model_id, "system_fingerprint",
                     g->srv->fingerprint, "choices", choice, "usage", usage);
}

static json_t *
anthropic_body(struct greq *g)
{
    const struct sched_result *r = &g->res;
    const char *reason = r->finish == SCHED_FINISH_STOP ? "stop_sequence"
                                                         : api_finish_anthropic(finish_of(r));
    return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s%}],s:s,s:n,s:{s:i,s:i}}", "id", g->id, "type",
                     "message", "role", "assistant", "model", g->srv->model_id, "content", "type",
                     "text", "text", g->text.data ? g->text.data : "", g->text.len, "stop_reason",
                     reason, "stop_sequence", "usage", "input_tokens", r->prompt_tokens,
                     "output_tokens", r->completion_tokens);
}

/* ===== Prompt building ======================================================================== */

static int
build_prompt(struct server *s, struct greq *g, struct api_error *err)
{
    struct al_err e = {0};
    struct buf b;
    buf_init(&b);
    bool add_special = true;
    if (g->req.kind == API_COMPLETION) {
        buf_puts(&b, g->req.prompt);
    } else {
        size_t n = 0;
        const char *bos = s->bos_text, *eos = s->eos_text;
        if (chat_template_render(s->chat_template, g->req.msgs, g->req.n_msgs, true, bos, eos, &b,
                                 &e) < 0) {
            buf_free(&b);
            set_error(err, 400, "invalid_request_error", "messages", "template_error", e.msg);
            return -1;
        }
        (void)n;
        /* templates that write the BOS text themselves must not get a second one */
        if (bos[0] && strncmp(b.data ? b.data : "", bos, strlen(bos)) == 0)
            add_special = false;
    }
    g->prompt_text = buf_steal(&b);
    if (tokenizer_encode(s->tok, g->prompt_text, strlen(g->prompt_text), add_special, true,
                         &g->ids, &g->n_ids, &e) < 0) {
        set_error(err, e.code == AL_ELIMIT ? 413 : 400, "invalid_request_error",
                  g->req.kind == API_COMPLETION ? "prompt" : "messages", "invalid_prompt", e.msg);
        return -1;
    }
    int n_ctx = sched_n_ctx(&s->sched);
    if ((int)g->n_ids >= n_ctx) {
        char m[256];
        snprintf(m, sizeof m, "this model's maximum context length is %d tokens; the prompt has "
                 "%zu tokens", n_ctx, g->n_ids);
        set_error(err, 400, "invalid_request_error",
                  g->req.kind == API_COMPLETION ? "prompt" : "messages", "context_length_exceeded",
                  m);
        return -1;
    }
    if (g->req.max_tokens > 0 && (int)g->n_ids + g->req.max_tokens > n_ctx &&
        g->req.kind == API_MESSAGES) {
        /* Anthropic clients always send max_tokens; clamp to what fits instead of failing */
        g->req.max_tokens = n_ctx - (int)g->n_ids;
    }
    return 0;
}

/* ===== Generation endpoints =================================================================== */

static void
handle_generate(struct server *s, struct http_req *r, enum api_kind kind, const char *endpoint)
{
    double t0 = mono_s();
    char key_name[128];
    if (!authorize(s, r, kind, endpoint, key_name, sizeof key_name))
        return;
    struct greq *g = xcalloc(1, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    buf_init(&g->text);
    g->srv = s;
    g->t0 = t0;
    g->endpoint = endpoint;
    snprintf(g->client, sizeof g->client, "%s", http_client(r));
    snprintf(g->key_name, sizeof g->key_name, "%s", key_name);
    g->created = (long)time(NULL);
    api_make_id(kind == API_CHAT ? "chatcmpl-" : kind == API_MESSAGES ? "msg_" : "cmpl-", g->id,
                sizeof g->id);
    struct api_error err;
    const struct buf *body = http_body(r);
    if (api_parse(kind, body->data ? body->data : "", body->len, &g->req, &err) < 0)
        goto fail;
    if (g->req.model && strcmp(g->req.model, s->model_id) != 0 &&
        strcmp(g->req.model, "default") != 0) {
        char m[300];
        snprintf(m, sizeof m, "The model '%.200s' does not exist; this server serves '%s'",
                 g->req.model, s->model_id);
        set_error(&err, 400, "invalid_request_error", "model", "model_not_found", m);
        goto fail;
    }
    if (g->req.format != API_FORMAT_TEXT) {
        struct al_err ge = {0};
        const json_t *schema = g->req.format == API_FORMAT_JSON_SCHEMA ? g->req.schema : NULL;
        if (jgram_new(schema, NULL, &g->grammar, &ge) < 0) {
            set_error(&err, 400, "invalid_request_error", "response_format", "invalid_schema",
                      ge.msg);
            goto fail;
        }
    }
    if (build_prompt(s, g, &err) < 0)
        goto fail;

    struct sched_params *p = &g->job.p;
    p->temperature = (float)g->req.temperature;
    p->top_k = g->req.top_k;
    p->top_p = (float)g->req.top_p;
    p->min_p = (float)g->req.min_p;
    p->repeat_penalty = (float)g->req.repeat_penalty;
    p->repeat_last_n = 64;
    p->presence_penalty = (float)g->req.presence_penalty;
    p->frequency_penalty = (float)g->req.frequency_penalty;
    p->seed = g->req.has_seed ? g->req.seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)g;
    p->max_tokens = g->req.max_tokens;
    p->top_logprobs = g->req.logprobs ? g->req.top_logprobs : -1;
    p->timeout_s = s->cfg.request_timeout_s;
    for (size_t i = 0; i < g->req.n_stop && i < SCHED_MAX_STOP; i++)
        p->stop[p->n_stop++] = g->req.stop[i];
    p->grammar = g->grammar;
    p->gvocab = s->jvocab;
    g->job.prompt = g->ids;
    g->job.n_prompt = (int)g->n_ids;
    g->job.on_piece = on_piece;
    g->job.on_done = on_done;
    g->job.ctx = g;

    if (g->req.stream) {
        g->stream = http_reply_stream(r, 200, "text/event-stream");
        if (kind == API_MESSAGES) {
            sse_json(g->stream, "message_start",
                     json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:i,s:i}}}", "type",
                               "message_start", "message", "id", g->id, "type", "message", "role",
                               "assistant", "model", s->model_id, "content", "stop_reason",
                               "stop_sequence", "usage", "input_tokens", (int)g->n_ids,
                               "output_tokens", 0));
        } else if (kind == API_CHAT) {
            sse_json(g->stream, NULL,
                     openai_chunk(g, json_pack("{s:s,s:s}", "role", "assistant", "content", ""),
                                  NULL, NULL));
        }
    }
    struct al_err e = {0};
    if (sched_submit(&s->sched, &g->job, &e) < 0) {
        int status = e.code == AL_ELIMIT ? 429 : e.code == AL_EUSAGE ? 400 : 503;
        if (g->stream) {
            set_error(&err, status, status == 429 ? "rate_limit_error" : "server_error", NULL,
                      status == 429 ? "queue_full" : NULL, e.msg);
            sse_json(g->stream, kind == API_MESSAGES ? "error" : NULL, api_error_json(kind, &err));
            http_stream_end(g->stream);
            record(s, endpoint, g->client, g->key_name, g->prompt_text, strlen(g->prompt_text),
                   e.msg, strlen(e.msg), status, (int)g->n_ids, 0, t0, 0);
            greq_free(g);
            return;
        }
        set_error(&err, status, status == 429 ? "rate_limit_error" : "server_error", NULL,
                  status == 429 ? "queue_full" : NULL, e.msg);
        goto fail;
    }
    if (g->stream)
        return; /* the scheduler and the finisher own g now */

    /* non-streaming: wait, noticing a client that hangs up so its slot is freed */
    pthread_mutex_lock(&g->mu);
    while (!g->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (!g->done && http_client_gone(r))
            atomic_store(&g->job.cancel, true);
    }
    pthread_mutex_unlock(&g->mu);
    int status = 200;
    if (g->res.finish == SCHED_FINISH_ERROR || g->res.finish == SCHED_FINISH_CANCELLED) {
        status = g->res.finish == SCHED_FINISH_CANCELLED ? 499 : 500;
        set_error(&err, status == 499 ? 408 : 500, "server_error", NULL, NULL,
                  g->res.message[0] ? g->res.message : "request cancelled");
        audit_gen(g, status);
        http_reply_json(r, err.status, api_error_json(kind, &err));
        greq_free(g);
        return;
    }
    audit_gen(g, status);
    http_reply_json(r, 200, kind == API_MESSAGES ? anthropic_body(g) : openai_body(g));
    greq_free(g);
    return;
fail:
    reply_api_error(s, r, kind, endpoint, key_name, &err, t0);
    greq_free(g);
}

/* ===== Other endpoints ======================================================================== */

static json_t *
model_object(struct server *s)
{
    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "id", s->model_id, "object", "model", "created",
                          (json_int_t)s->started, "owned_by", "airlock");
    if (s->model_version[0]) /* an extension field; OpenAI clients ignore unknown fields */
        json_object_set_new(o, "version", json_string(s->model_version));
    return o;
}

static void
handle_models(struct server *s, struct http_req *r, const char *id)
{
    char key_name[128];
    if (!authorize(s, r, API_CHAT, "/v1/models", key_name, sizeof key_name))
        return;
    if (id) {
        if (strcmp(id, s->model_id) != 0) {
            http_reply_error(r, 404, "invalid_request_error", "model", "model_not_found",
                             "The model '%.200s' does not exist", id);
            return;
        }
        http_reply_json(r, 200, model_object(s));
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_object(s)));
}

static void
route(void *app, struct http_req *r)
{
    struct server *s = app;
    const char *m = http_method(r), *p = http_path(r);
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
    static const struct {
        const char *path;
        enum api_kind kind;
    } gen_routes[] = {
        {"/v1/chat/completions", API_CHAT},
        {"/v1/completions", API_COMPLETION},
        {"/v1/messages", API_MESSAGES},
    };
    for (size_t i = 0; i < sizeof gen_routes / sizeof gen_routes[0]; i++) {
        if (strcmp(p, gen_routes[i].path) != 0)
            continue;
        if (!post) {
            http_add_header(r, "Allow", "POST");
            http_reply_error(r, 405, "invalid_request_error", NULL, "method_not_allowed",
                             "%s is not allowed on %s; use POST", m, p);
            return;
        }
        if (!atomic_load(&s->ready)) {
            http_reply_error(r, 503, "server_error", NULL, "not_ready", "model is loading");
            return;
        }
        handle_generate(s, r, gen_routes[i].kind, gen_routes[i].path);
        return;
    }
    if (!strcmp(p, "/v1/embeddings")) {
        if (!post) {
            http_add_header(r, "Allow", "POST");
            http_reply_error(r, 405, "invalid_request_error", NULL, "method_not_allowed",
                             "%s is not allowed on %s; use POST", m, p);
            return;
        }
        if (!atomic_load(&s->ready)) {
            http_reply_error(r, 503, "server_error", NULL, "not_ready", "model is loading");
            return;
        }
        srv_handle_embeddings(s, r);
        return;
    }
    bool known_get = !strcmp(p, "/health") || !strcmp(p, "/ready") || !strcmp(p, "/metrics") ||
                     !strcmp(p, "/v1/models") || !strncmp(p, "/v1/models/", 11) ||
                     srv_is_web_path(p);
    if (known_get && !get) {
        http_add_header(r, "Allow", "GET, HEAD");
        http_reply_error(r, 405, "invalid_request_error", NULL, "method_not_allowed",
                         "%s is not allowed on %s; use GET", m, p);
        return;
    }
    if (!strcmp(p, "/health")) {
        http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
    } else if (!strcmp(p, "/ready")) {
        bool ready = atomic_load(&s->ready);
        http_reply_json(r, ready ? 200 : 503,
                        json_pack("{s:s,s:s}", "status", ready ? "ready" : "loading", "model",
                                  s->model_id));
    } else if (!strcmp(p, "/metrics")) {
        srv_handle_metrics(s, r);
    } else if (!strcmp(p, "/v1/models")) {
        handle_models(s, r, NULL);
    } else if (!strncmp(p, "/v1/models/", 11)) {
        handle_models(s, r, p + 11);
    } else if (srv_is_web_path(p)) {
        srv_handle_web(s, r);
    } else {
        http_reply_error(r, 404, "invalid_request_error", NULL, "not_found",
                         "no route for %s %.200s", m, p);
    }
}

/* ===== Metrics, embeddings, web =============================================================== */

void
srv_handle_metrics(struct server *s, struct http_req *r)
{
    struct sched_stats st;
    sched_get_stats(&s->sched, &st);
    metrics_gauge_set(s->metrics.queue_depth, st.queued);
    metrics_gauge_set(s->metrics.active_slots, st.active);
    metrics_gauge_set(s->metrics.slots, st.n_slots);
    metrics_server_kv(&s->metrics, (uint64_t)st.kv_used, (uint64_t)st.kv_total);
    struct buf b;
    buf_init(&b);
    metrics_server_render(&s->metrics, &b);
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    buf_free(&b);
}

/* One /v1/embeddings request. The HTTP thread waits for the scheduler, so all of it lives on
 * that thread's stack and heap; the scheduler only writes vecs and calls embed_done. */
struct ereq {
    struct sched_job job;
    int32_t **ids;               /* owned: n token arrays (a client's own ids are copied) */
    int *n_ids;                  /* owned: n lengths */
    size_t n;
    float *vecs;                 /* owned: n rows of the model's width */
    struct sched_result res;     /* filled by embed_done */
    bool done;                   /* set with mu held */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void
embed_done(void *ctx, const struct sched_result *r)
{
    struct ereq *q = ctx;
    pthread_mutex_lock(&q->mu);
    q->res = *r;
    q->done = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Token ids of every input: text through the tokenizer (BOS/EOS as the vocabulary asks, no
 * special-token parsing: the text is data, not markup), ids checked against the vocabulary.
 * Fills q->ids/n_ids and *total; on failure err names input[i]. */
static int
embed_tokenize(struct server *s, const struct api_request *req, struct ereq *q, long long *total,
               struct api_error *err)
{
    int n_ctx = sched_n_ctx(&s->sched), n_vocab = tokenizer_n_vocab(s->tok);
    char m[320];
    q->n = req->n_inputs;
    q->ids = xcalloc(q->n, sizeof *q->ids);
    q->n_ids = xcalloc(q->n, sizeof *q->n_ids);
    *total = 0;
    for (size_t i = 0; i < q->n; i++) {
        const struct api_input *in = &req->inputs[i];
        size_t n = 0;
        if (in->text) {
            struct al_err e = {0};
            if (tokenizer_encode(s->tok, in->text, in->len, true, false, &q->ids[i], &n, &e) < 0) {
                snprintf(m, sizeof m, "input[%zu]: %s", i, e.msg);
                set_error(err, e.code == AL_ELIMIT ? 413 : 400, "invalid_request_error", "input",
                          "invalid_input", m);
                return -1;
            }
        } else {
            n = in->n_ids;
            q->ids[i] = xmalloc(n * sizeof *q->ids[i]);
            memcpy(q->ids[i], in->ids, n * sizeof *q->ids[i]);
            for (size_t t = 0; t < n; t++) {
                if (q->ids[i][t] >= n_vocab) {
                    snprintf(m, sizeof m, "input[%zu][%zu] is token id %d; this model's "
                             "vocabulary has %d tokens (0..%d)", i, t, q->ids[i][t], n_vocab,
                             n_vocab - 1);
                    set_error(err, 400, "invalid_request_error", "input", "invalid_value", m);
                    return -1;
                }
            }
        }
        if (n == 0) {
            snprintf(m, sizeof m, "input[%zu] gives no tokens", i);
            set_error(err, 400, "invalid_request_error", "input", "invalid_value", m);
            return -1;
        }
        if (n > (size_t)n_ctx) {
            snprintf(m, sizeof m, "input[%zu] has %zu tokens; this model's maximum context length "
                     "is %d tokens", i, n, n_ctx);
            set_error(err, 400, "invalid_request_error", "input", "context_length_exceeded", m);
            return -1;
        }
        q->n_ids[i] = (int)n;
        *total += (long long)n;
    }
    if (*total > INT32_MAX) {
        set_error(err, 400, "invalid_request_error", "input", "invalid_value",
                  "too many tokens in one request");
        return -1;
    }
    return 0;
}

/* What the audit log hashes as this request's prompt: the inputs as one compact JSON array of
 * strings or of arrays of token ids (a single string input becomes a one-element array). */
static char *
embed_audit_text(const struct api_request *req)
{
    struct buf b;
    buf_init(&b);
    buf_putc(&b, '[');
    for (size_t i = 0; i < req->n_inputs; i++) {
        const struct api_input *in = &req->inputs[i];
        if (i)
            buf_putc(&b, ',');
        if (in->text) {
            json_t *j = json_stringn(in->text, in->len);
            char *t = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
            json_decref(j);
            buf_puts(&b, t ? t : "\"\"");
            free(t);
        } else {
            buf_putc(&b, '[');
            for (size_t t = 0; t < in->n_ids; t++)
                buf_printf(&b, "%s%d", t ? "," : "", in->ids[t]);
            buf_putc(&b, ']');
        }
    }
    buf_putc(&b, ']');
    return buf_steal(&b);
}

static void
ereq_free(struct ereq *q)
{
    for (size_t i = 0; q->ids && i < q->n; i++)
        free(q->ids[i]);
    free(q->ids);
    free(q->n_ids);
    free(q->vecs);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

void
srv_handle_embeddings(struct server *s, struct http_req *r)
{
    const char *endpoint = "/v1/embeddings";
    double t0 = mono_s();
    char key_name[128];
    if (!authorize(s, r, API_EMBEDDINGS, endpoint, key_name, sizeof key_name))
        return;
    struct api_request req;
    struct api_error err;
    const struct buf *body = http_body(r);
    if (api_parse(API_EMBEDDINGS, body->data ? body->data : "", body->len, &req, &err) < 0) {
        reply_api_error(s, r, API_EMBEDDINGS, endpoint, key_name, &err, t0);
        return;
    }
    struct ereq q = {0};
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    char *audit_text = NULL;
    struct buf out;
    buf_init(&out);
    int dim = sched_dim(&s->sched);
    long long total = 0;
    if (req.model && strcmp(req.model, s->model_id) != 0 && strcmp(req.model, "default") != 0) {
        char m[300];
        snprintf(m, sizeof m, "The model '%.200s' does not exist; this server serves '%s'",
                 req.model, s->model_id);
        set_error(&err, 400, "invalid_request_error", "model", "model_not_found", m);
        goto fail;
    }
    if (req.dimensions && req.dimensions != dim) {
        char m[200];
        snprintf(m, sizeof m, "'dimensions' is %d; this model's embeddings have %d dimensions "
                 "(omit the field or send %d)", req.dimensions, dim, dim);
        set_error(&err, 400, "invalid_request_error", "dimensions", "invalid_value", m);
        goto fail;
    }
    if (embed_tokenize(s, &req, &q, &total, &err) < 0)
        goto fail;
    q.vecs = xmalloc(q.n * (size_t)dim * sizeof *q.vecs);
    q.job.kind = SCHED_EMBED;
    q.job.embed.tokens = (const int32_t *const *)q.ids;
    q.job.embed.n_tokens = q.n_ids;
    q.job.embed.n_inputs = (int)q.n;
    q.job.embed.out = q.vecs;
    q.job.p.timeout_s = s->cfg.request_timeout_s;
    q.job.on_done = embed_done;
    q.job.ctx = &q;
    struct al_err e = {0};
    if (sched_submit(&s->sched, &q.job, &e) < 0) {
        int status = e.code == AL_ELIMIT ? 429 : e.code == AL_EUSAGE ? 400 : 503;
        set_error(&err, status,
                  status == 429 ? "rate_limit_error"
                  : status == 400 ? "invalid_request_error"
                                  : "server_error",
                  status == 400 ? "input" : NULL, status == 429 ? "queue_full" : NULL, e.msg);
        goto fail;
    }
    /* wait, noticing a client that hangs up so its slot is freed */
    pthread_mutex_lock(&q.mu);
    while (!q.done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q.cv, &q.mu, &ts);
        if (!q.done && http_client_gone(r))
            atomic_store(&q.job.cancel, true);
    }
    pthread_mutex_unlock(&q.mu);
    audit_text = embed_audit_text(&req);
    int status = 200;
    if (q.res.finish != SCHED_FINISH_EMBEDDED) {
        status = q.res.finish == SCHED_FINISH_CANCELLED ? 499 : 500;
        const char *msg = q.res.message[0] ? q.res.message : "request cancelled";
        set_error(&err, status == 499 ? 408 : 500, "server_error", NULL, NULL, msg);
        http_reply_json(r, err.status, api_error_json(API_EMBEDDINGS, &err));
        record(s, endpoint, http_client(r), key_name, audit_text, strlen(audit_text), msg,
               strlen(msg), status, (int)total, 0, t0, 0);
        goto out;
    }
    if (api_embeddings_body(&out, q.vecs, q.n, dim, req.encoding, s->model_id, (int)total) < 0) {
        const char *msg = "the model produced a non-finite embedding value";
        set_error(&err, 500, "server_error", NULL, NULL, msg);
        http_reply_json(r, 500, api_error_json(API_EMBEDDINGS, &err));
        record(s, endpoint, http_client(r), key_name, audit_text, strlen(audit_text), msg,
               strlen(msg), 500, (int)total, 0, t0, 0);
        goto out;
    }
    /* the record is durable before the client sees the answer, as for generation */
    record(s, endpoint, http_client(r), key_name, audit_text, strlen(audit_text), out.data,
           out.len, 200, (int)total, 0, t0, 0);
    metrics_server_embeddings(&s->metrics, (int64_t)q.n, total); /* before the client can scrape */
    http_reply(r, 200, "application/json", out.data, out.len);
    goto out;
fail:
    reply_api_error(s, r, API_EMBEDDINGS, endpoint, key_name, &err, t0);
out:
    free(audit_text);
    buf_free(&out);
    ereq_free(&q);
    api_request_free(&req);
}

/* ===== Lifecycle ============================================================================== */

static bool
is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

static void
token_text(const struct tokenizer *t, int32_t id, char *out, size_t cap)
{
    out[0] = '\0';
    if (id == TOKENIZER_NULL)
        return;
    size_t n = 0;
    const char *p = tokenizer_token_text(t, id, &n);
    if (p && n < cap) {
        memcpy(out, p, n);
        out[n] = '\0';
    }
}

int
server_start(struct server *s, const struct server_config *cfg, struct al_err *e)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->started = time(NULL);
    pthread_mutex_init(&s->fin_mu, NULL);
    pthread_cond_init(&s->fin_cv, NULL);
    snprintf(s->fingerprint, sizeof s->fingerprint, "airlock-%s", AIRLOCK_VERSION);
    if (cfg->no_auth && !is_loopback(cfg->host))
        return al_errf(e, AL_EUSAGE, "--no-auth is only allowed on a loopback address "
                       "(127.0.0.0/8 or ::1), not on %s", cfg->host);
    if (cfg->model_version)
        snprintf(s->model_version, sizeof s->model_version, "%s", cfg->model_version);
    if (cfg->model_signer)
        snprintf(s->signer, sizeof s->signer, "%s", cfg->model_signer);
    const char *id_from = cfg->model_path ? cfg->model_path : DEFAULT_MODEL_ID;
    if (cfg->model_id) {
        snprintf(s->model_id, sizeof s->model_id, "%s", cfg->model_id);
    } else {
        const char *b = strrchr(id_from, '/');
        snprintf(s->model_id, sizeof s->model_id, "%s", b ? b + 1 : id_from);
        size_t n = strlen(s->model_id);
        if (n > 5 && !strcmp(s->model_id + n - 5, ".gguf"))
            s->model_id[n - 5] = '\0';
    }
    const uint8_t *embedded = NULL;
    size_t embedded_len = 0;
    if (!cfg->model_path) {
        if (default_model_get(&embedded, &embedded_len, e) < 0)
            return -1;
        snprintf(s->model_sha256, sizeof s->model_sha256, "%s", DEFAULT_MODEL_SHA256);
        snprintf(s->model_note, sizeof s->model_note, "%s", DEFAULT_MODEL_NOTE);
    }
    if (metrics_server_init(&s->metrics, e) < 0)
        return -1;
    if (!cfg->no_auth) {
        if (keys_load(cfg->data_dir, &s->keys, e) < 0)
            goto fail;
        if (s->keys.n == 0) {
            al_errf(e, AL_EUSAGE, "no API keys in %s/keys.json: create one with `airlock keys add "
                    "NAME --data %s`, or use --no-auth on a loopback address", cfg->data_dir,
                    cfg->data_dir);
            goto fail;
        }
    }
    if (cfg->model_path) {
        if (model_load(&s->model, cfg->model_path, e) < 0)
            goto fail;
        (void)model_load_weights(&s->model, !cfg->mmap_weights, NULL, NULL);
        /* The hash is taken over the bytes that will be served (the private copy, by default),
         * so a file changed after `serve` checked it cannot slip in between check and use. */
        uint8_t digest[SHA256_LEN];
        if (hash_sha256(s->model.gguf.map.base, s->model.gguf.map.size, digest, e) < 0)
            goto fail;
        hash_hex(digest, SHA256_LEN, s->model_sha256);
        if (cfg->model_sha256 && strcmp(cfg->model_sha256, s->model_sha256) != 0) {
            al_errf(e, AL_EVERIFY, "%s: the loaded bytes hash to %s, not the signed %s: the "
                    "file changed after it was checked", cfg->model_path, s->model_sha256,
                    cfg->model_sha256);
            goto fail;
        }
        if (!cfg->mmap_weights)  /* after the hash: it rewrites bytes in the private copy */
            (void)model_repack(&s->model);
    } else {
        struct gguf g;
        if (gguf_parse(&g, embedded, embedded_len, embedded_len, "embedded " DEFAULT_MODEL_ID,
                       NULL, e) < 0 ||
            model_bind(&s->model, &g, e) < 0)
            goto fail;
    }
    if (tokenizer_load(&s->tok, &s->model.gguf, e) < 0)
        goto fail;
    const char *tmpl = tokenizer_chat_template(s->tok);
    s->chat_template = xstrdup(tmpl ? tmpl : chat_template_fallback());
    if (chat_template_check(s->chat_template, e) < 0) {
        al_errctx(e, "%s: tokenizer.chat_template", cfg->model_path);
        goto fail;
    }
    s->jvocab = jgram_vocab_new(s->tok);
    token_text(s->tok, tokenizer_bos(s->tok), s->bos_text, sizeof s->bos_text);
    token_text(s->tok, tokenizer_eos(s->tok), s->eos_text, sizeof s->eos_text);
    int ctx = cfg->ctx > 0 ? cfg->ctx : s->model.hp.n_ctx_train;
    if (cfg->ctx <= 0 && ctx > 4096)
        ctx = 4096;
    struct engine_opts eo = {.n_ctx = ctx, .n_seq = cfg->parallel, .n_threads = cfg->threads,
                             .kernels = cfg->kernels};
    if (engine_init(&s->engine, &s->model, &eo, e) < 0)
        goto fail;
    metrics_server_model(&s->metrics, s->model_id, s->model_sha256, s->model.type_name);
    if (cfg->audit_log) {
        struct audit_options ao = {.content = cfg->audit_content, .checkpoint_every = 1000};
        if (cfg->audit_key) {
            /* signed checkpoints: the key is loaded once and kept in locked memory */
            struct minisig_seckey *sk = NULL;
            if (minisig_seckey_load(cfg->audit_key, NULL, &sk, e) < 0)
                goto fail;
            s->audit_signer = sk;
            ao.sign = audit_sig_sign;
            ao.sign_ctx = sk;
        }
        if (audit_open(cfg->audit_log, &ao, &s->audit, e) < 0)
            goto fail;
    }
    if (sched_start(&s->sched, &s->engine, s->tok, cfg->parallel, cfg->max_queue, e) < 0)
        goto fail;
    if (pthread_create(&s->finisher, NULL, finisher_main, s) != 0) {
        al_errf(e, AL_EIO, "cannot start the finisher thread");
        goto fail;
    }
    struct http_config hc = {.host = cfg->host, .port = cfg->port, .max_body = cfg->max_body,
                             .max_connections = 256, .max_per_ip = 64, .idle_timeout_s = 30};
    if (http_start(&s->http, &hc, route, s, e) < 0)
        goto fail;
    atomic_store(&s->ready, true);
    return 0;
fail:
    server_stop(s);
    return -1;
}

void
server_stop(struct server *s)
{
    atomic_store(&s->ready, false);
    http_stop(&s->http);
    if (s->sched.started)
        sched_stop(&s->sched);
    if (s->finisher) {
        pthread_mutex_lock(&s->fin_mu);
        s->fin_stop = true;
        pthread_cond_broadcast(&s->fin_cv);
        pthread_mutex_unlock(&s->fin_mu);
        pthread_join(s->finisher, NULL);
        s->finisher = 0;
    }
    engine_free(&s->engine);
    if (s->audit) {
        struct al_err e = {0};
        if (audit_close(s->audit, &e) < 0)
            fprintf(stderr, "airlock serve: audit log: %s\n", e.msg);
        s->audit = NULL;
    }
    jgram_vocab_free(s->jvocab);
    s->jvocab = NULL;
    minisig_seckey_free(s->audit_signer);
    s->audit_signer = NULL;
    tokenizer_free(s->tok);
    s->tok = NULL;
    free(s->chat_template);
    s->chat_template = NULL;
    model_free(&s->model);
    keys_free(&s->keys);
    metrics_server_free(&s->metrics);
}
