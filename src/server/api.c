/* api.c -- OpenAI / Anthropic request parsing and response helpers (see api.h).
 * Unknown fields are ignored as the real APIs do; known fields must have the documented type
 * and range. Strings keep whatever UTF-8 jansson accepted (jansson refuses invalid UTF-8). */
#include "server/api.h"

#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* ===== Errors ================================================================================= */

static int
fail(struct api_error *err, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
fail(struct api_error *err, int status, const char *param, const char *code, const char *fmt, ...)
{
    err->status = status;
    err->type = status == 401   ? "authentication_error"
                : status == 404 ? "not_found_error"
                : status == 429 ? "rate_limit_error"
                : status >= 500 ? "server_error"
                                : "invalid_request_error";
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *
api_error_json(enum api_kind kind, const struct api_error *err)
{
    if (kind == API_MESSAGES) {
        /* Anthropic: {"type":"error","error":{"type":...,"message":...}} */
        const char *t = err->status == 401   ? "authentication_error"
                        : err->status == 404 ? "not_found_error"
                        : err->status == 413 ? "request_too_large"
                        : err->status == 429 ? "rate_limit_error"
                        : err->status == 503 ? "overloaded_error"
                        : err->status >= 500 ? "api_error"
                                             : "invalid_request_error";
        return json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", t, "message",
                         err->message);
    }
    return json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", err->message, "type", err->type,
                     "param", err->param[0] ? json_string(err->param) : json_null(), "code",
                     err->code ? json_string(err->code) : json_null());
}

/* ===== Field readers ========================================================================== */

static const char *
type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Optional number in [lo, hi]; absent or null leaves *out unchanged. */
static int
get_num(const json_t *o, const char *key, double lo, double hi, double *out, struct api_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(err, 400, key, "invalid_type", "'%s' must be a number, not %s", key,
                    type_name(v));
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return fail(err, 400, key, "invalid_value", "'%s' is %g; it must be between %g and %g",
                    key, d, lo, hi);
    *out = d;
    return 0;
}

static int
get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out, bool *set,
        struct api_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return fail(err, 400, key, "invalid_type", "'%s' must be an integer, not %s", key,
                    type_name(v));
    long long n = json_integer_value(v);
    if (n < lo || n > hi)
        return fail(err, 400, key, "invalid_value", "'%s' is %lld; it must be between %lld and %lld",
                    key, n, lo, hi);
    *out = n;
    if (set)
        *set = true;
    return 0;
}

static int
get_bool(const json_t *o, const char *key, bool *out, struct api_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(err, 400, key, "invalid_type", "'%s' must be a boolean, not %s", key,
                    type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int
get_str(const json_t *o, const char *key, bool required, char **out, struct api_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fail(err, 400, key, "missing_required_parameter",
                        "missing required parameter '%s'", key);
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, 400, key, "invalid_type", "'%s' must be a string, not %s", key,
                    type_name(v));
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

/* Message content: a string, or an array of parts of which the text parts are joined
 * ({"type":"text","text":...}); other part types (images) are refused by name. */
static int
get_content(const json_t *v, const char *param, char **out, struct api_error *err)
{
    if (!v || json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (json_is_string(v)) {
        *out = xstrndup(json_string_value(v), json_string_length(v));
        return 0;
    }
    if (!json_is_array(v))
        return fail(err, 400, param, "invalid_type", "'%s' must be a string or an array of "
                    "content parts, not %s", param, type_name(v));
    struct buf b;
    buf_init(&b);
    size_t i;
    const json_t *part;
    json_array_foreach(v, i, part) {
        const char *t = json_string_value(json_object_get(part, "type"));
        const json_t *text = json_object_get(part, "text");
        if (!t || strcmp(t, "text") != 0 || !json_is_string(text)) {
            buf_free(&b);
            return fail(err, 400, param, "unsupported_content",
                        "%s[%zu]: only text content parts are supported (got type '%s')", param,
                        i, t ? t : "none");
        }
        buf_append(&b, json_string_value(text), json_string_length(text));
    }
    *out = buf_steal(&b);
    return 0;
}

static int
get_stop(const json_t *o, const char *key, struct api_request *req, struct api_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return fail(err, 400, key, "invalid_value", "'%s' must not be empty", key);
        req->stop[req->n_stop++] = xstrdup(json_string_value(v));
        return 0;
    }
    if (!json_is_array(v))
        return fail(err, 400, key, "invalid_type", "'%s' must be a string or an array of strings",
                    key);
    if (json_array_size(v) > API_MAX_STOP)
        return fail(err, 400, key, "invalid_value", "'%s' has %zu entries; at most %d allowed",
                    key, json_array_size(v), API_MAX_STOP);
    size_t i;
    const json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0)
            return fail(err, 400, key, "invalid_value", "'%s[%zu]' must be a non-empty string",
                        key, i);
        req->stop[req->n_stop++] = xstrdup(json_string_value(s));
    }
    return 0;
}

static int
get_messages(const json_t *o, struct api_request *req, bool anthropic, struct api_error *err)
{
    const json_t *msgs = json_object_get(o, "messages");
    if (!msgs)
        return fail(err, 400, "messages", "missing_required_parameter",
                    "missing required parameter 'messages'");
    if (!json_is_array(msgs))
        return fail(err, 400, "messages", "invalid_type", "'messages' must be an array");
    size_t n = json_array_size(msgs);
    if (n == 0)
        return fail(err, 400, "messages", "invalid_value", "'messages' must not be empty");
    if (n > API_MAX_MESSAGES)
        return fail(err, 400, "messages", "invalid_value", "%zu messages; at most %d allowed", n,
                    API_MAX_MESSAGES);
    /* one extra slot for an Anthropic top-level system prompt */
    req->msgs = xcalloc(n + 1, sizeof *req->msgs);
    if (anthropic) {
        const json_t *sys = json_object_get(o, "system");
        if (sys && !json_is_null(sys)) {
            char *text = NULL;
            if (get_content(sys, "system", &text, err) < 0)
                return -1;
            req->msgs[0].role = xstrdup("system");
            req->msgs[0].content = text;
            req->n_msgs = 1;
        }
    }
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m))
            return fail(err, 400, param, "invalid_type", "'%s' must be an object", param);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role)
            return fail(err, 400, param, "invalid_value", "'%s.role' must be a string", param);
        bool ok = anthropic ? (!strcmp(role, "user") || !strcmp(role, "assistant"))
                            : (!strcmp(role, "system") || !strcmp(role, "developer") ||
                               !strcmp(role, "user") || !strcmp(role, "assistant") ||
                               !strcmp(role, "tool"));
        if (!ok)
            return fail(err, 400, param, "invalid_value", "'%s.role' is '%s'; expected %s", param,
                        role, anthropic ? "user or assistant" :
                        "system, developer, user, assistant or tool");
        char *content = NULL;
        char cparam[64];
        snprintf(cparam, sizeof cparam, "%s.content", param);
        if (get_content(json_object_get(m, "content"), cparam, &content, err) < 0)
            return -1;
        /* "developer" is OpenAI's newer name for the system role */
        req->msgs[req->n_msgs].role = xstrdup(!strcmp(role, "developer") ? "system" : role);
        req->msgs[req->n_msgs].content = content;
        req->n_msgs++;
    }
    return 0;
}

static int
get_response_format(const json_t *o, struct api_request *req, struct api_error *err)
{
    const json_t *rf = json_object_get(o, "response_format");
    if (!rf || json_is_null(rf))
        return 0;
    const char *t = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !t)
        return fail(err, 400, "response_format", "invalid_type",
                    "'response_format' must be an object with a 'type'");
    if (!strcmp(t, "text"))
        return 0;
    if (!strcmp(t, "json_object")) {
        req->format = API_FORMAT_JSON_OBJECT;
        return 0;
    }
    if (!strcmp(t, "json_schema")) {
        const json_t *js = json_object_get(rf, "json_schema");
        const json_t *schema = json_object_get(js, "schema");
        if (!json_is_object(js) || !json_is_object(schema))
            return fail(err, 400, "response_format.json_schema", "invalid_value",
                        "'response_format.json_schema.schema' must be an object");
        req->format = API_FORMAT_JSON_SCHEMA;
        req->schema = json_incref((json_t *)schema);
        return 0;
    }
    return fail(err, 400, "response_format.type", "invalid_value",
                "'response_format.type' is '%s'; expected text, json_object or json_schema", t);
}

/* ===== Embedding inputs ======================================================================= */

/* One token-id input: a non-empty array of integers in [0, INT32_MAX]. Whether each id is in
 * the model's vocabulary is the server's check (this file knows no model). */
static int
get_token_ids(const json_t *arr, const char *param, struct api_input *in, struct api_error *err)
{
    size_t n = json_array_size(arr);
    if (n == 0)
        return fail(err, 400, "input", "invalid_value", "'%s' is an empty array of token ids",
                    param);
    in->ids = xcalloc(n, sizeof *in->ids);
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v))
            return fail(err, 400, "input", "invalid_type", "'%s[%zu]' must be a token id (an "
                        "integer), not %s", param, i, type_name(v));
        json_int_t id = json_integer_value(v);
        if (id < 0 || id > INT32_MAX)
            return fail(err, 400, "input", "invalid_value", "'%s[%zu]' is %lld; a token id is "
                        "between 0 and %d", param, i, (long long)id, INT32_MAX);
        in->ids[in->n_ids++] = (int32_t)id;
    }
    return 0;
}

static int
get_text_input(const json_t *v, const char *param, struct api_input *in, struct api_error *err)
{
    if (json_string_length(v) == 0)
        return fail(err, 400, "input", "invalid_value", "'%s' is an empty string; every input "
                    "needs at least one character", param);
    in->len = json_string_length(v);
    in->text = xstrndup(json_string_value(v), in->len);
    return 0;
}

/* 'input' as OpenAI accepts it: a string, an array of strings, an array of token ids (one
 * input) or an array of arrays of token ids. An array holds one kind only, as in OpenAI's
 * schema. Every failure names param "input" and says which entry was wrong. */
static int
get_inputs(const json_t *o, struct api_request *req, struct api_error *err)
{
    const json_t *in = json_object_get(o, "input");
    if (!in || json_is_null(in))
        return fail(err, 400, "input", "missing_required_parameter",
                    "missing required parameter 'input'");
    if (json_is_string(in)) {
        req->inputs = xcalloc(1, sizeof *req->inputs);
        req->n_inputs = 1; /* counted first so that api_request_free frees a partial entry */
        return get_text_input(in, "input", &req->inputs[0], err);
    }
    if (!json_is_array(in))
        return fail(err, 400, "input", "invalid_type", "'input' must be a string, an array of "
                    "strings, an array of token ids or an array of arrays of token ids, not %s",
                    type_name(in));
    size_t n = json_array_size(in);
    if (n == 0)
        return fail(err, 400, "input", "invalid_value", "'input' must not be an empty array");
    const json_t *first = json_array_get(in, 0);
    if (json_is_integer(first)) {
        req->inputs = xcalloc(1, sizeof *req->inputs);
        req->n_inputs = 1;
        return get_token_ids(in, "input", &req->inputs[0], err);
    }
    if (!json_is_string(first) && !json_is_array(first))
        return fail(err, 400, "input", "invalid_type", "'input[0]' must be a string, a token id "
                    "or an array of token ids, not %s", type_name(first));
    if (n > API_MAX_INPUTS)
        return fail(err, 400, "input", "invalid_value", "'input' has %zu entries; at most %d "
                    "allowed", n, API_MAX_INPUTS);
    bool text = json_is_string(first);
    req->inputs = xcalloc(n, sizeof *req->inputs);
    size_t i;
    const json_t *v;
    json_array_foreach(in, i, v) {
        char param[32];
        snprintf(param, sizeof param, "input[%zu]", i);
        bool ok = text ? json_is_string(v) : json_is_array(v);
        if (!ok)
            return fail(err, 400, "input", "invalid_type", "'%s' is %s but 'input[0]' is %s; "
                        "'input' must be an array of strings or an array of arrays of token "
                        "ids", param, type_name(v), type_name(first));
        struct api_input *e = &req->inputs[req->n_inputs++];
        if ((text ? get_text_input(v, param, e, err) : get_token_ids(v, param, e, err)) < 0)
            return -1;
    }
    return 0;
}

static int
get_encoding(const json_t *o, struct api_request *req, struct api_error *err)
{
    const json_t *v = json_object_get(o, "encoding_format");
    req->encoding = API_ENCODING_FLOAT;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(err, 400, "encoding_format", "invalid_type", "'encoding_format' must be a "
                    "string, not %s", type_name(v));
    const char *ef = json_string_value(v);
    if (!strcmp(ef, "float"))
        return 0;
    if (!strcmp(ef, "base64")) {
        req->encoding = API_ENCODING_BASE64;
        return 0;
    }
    return fail(err, 400, "encoding_format", "invalid_value",
                "'encoding_format' is '%.100s'; expected float or base64", ef);
}

/* ===== Parse ================================================================================== */

static void
defaults(struct api_request *req, enum api_kind kind)
{
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->max_tokens = -1;
    req->temperature = 1.0;
    req->top_p = 1.0;
    req->repeat_penalty = 1.0;
}

static int
parse_sampling(const json_t *o, struct api_request *req, struct api_error *err)
{
    long long v;
    bool set = false;
    if (get_num(o, "temperature", 0, 2, &req->temperature, err) < 0 ||
        get_num(o, "top_p", 0, 1, &req->top_p, err) < 0 ||
        get_num(o, "min_p", 0, 1, &req->min_p, err) < 0 ||
        get_num(o, "presence_penalty", -2, 2, &req->presence_penalty, err) < 0 ||
        get_num(o, "frequency_penalty", -2, 2, &req->frequency_penalty, err) < 0 ||
        get_num(o, "repeat_penalty", 0, 10, &req->repeat_penalty, err) < 0)
        return -1;
    v = 0;
    if (get_int(o, "top_k", 0, 1000000, &v, NULL, err) < 0)
        return -1;
    req->top_k = (int)v;
    v = 0;
    set = false;
    if (get_int(o, "seed", INT64_MIN, INT64_MAX, &v, &set, err) < 0)
        return -1;
    req->has_seed = set;
    req->seed = (uint64_t)v;
    v = 1;
    if (get_int(o, "n", 1, 128, &v, NULL, err) < 0)
        return -1;
    if (v != 1)
        return fail(err, 400, "n", "unsupported_value",
                    "'n' is %lld; this server generates one choice per request (n = 1)", v);
    return 0;
}

static int
parse_max_tokens(const json_t *o, const char *key, struct api_request *req, struct api_error *err)
{
    long long v = -1;
    bool set = false;
    /* 1<<20 tokens is far beyond any context; larger values are clearly mistakes */
    if (get_int(o, key, 1, 1 << 20, &v, &set, err) < 0)
        return -1;
    if (set)
        req->max_tokens = (int)v;
    return 0;
}

int
api_parse(enum api_kind kind, const char *body, size_t len, struct api_request *req,
          struct api_error *err)
{
    defaults(req, kind);
    memset(err, 0, sizeof *err);
    json_error_t je;
    /* jansson bounds nesting depth (2048) and rejects invalid UTF-8 */
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return fail(err, 400, NULL, "invalid_json", "request body is not valid JSON: %s "
                    "(line %d, column %d)", je.text, je.line, je.column);
    int rc = -1;
    if (!json_is_object(o)) {
        fail(err, 400, NULL, "invalid_json", "request body must be a JSON object");
        goto out;
    }
    if (get_str(o, "model", kind == API_MESSAGES, &req->model, err) < 0 ||
        get_str(o, "user", false, &req->user, err) < 0)
        goto out;
    if (kind == API_EMBEDDINGS) {
        if (get_inputs(o, req, err) < 0 || get_encoding(o, req, err) < 0)
            goto out;
        long long d = 0;
        if (get_int(o, "dimensions", 1, 1 << 20, &d, NULL, err) < 0)
            goto out;
        req->dimensions = (int)d;
        rc = 0;
        goto out;
    }
    if (parse_sampling(o, req, err) < 0 || get_bool(o, "stream", &req->stream, err) < 0)
        goto out;
    const json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_object(so) && !json_is_null(so)) {
        fail(err, 400, "stream_options", "invalid_type", "'stream_options' must be an object");
        goto out;
    }
    if (so && json_is_object(so) && get_bool(so, "include_usage", &req->include_usage, err) < 0)
        goto out;
    if (kind == API_MESSAGES) {
        if (!json_object_get(o, "max_tokens")) {
            fail(err, 400, "max_tokens", "missing_required_parameter",
                 "missing required parameter 'max_tokens'");
            goto out;
        }
        if (get_num(o, "temperature", 0, 1, &req->temperature, err) < 0 ||
            parse_max_tokens(o, "max_tokens", req, err) < 0 ||
            get_stop(o, "stop_sequences", req, err) < 0 || get_messages(o, req, true, err) < 0)
            goto out;
        rc = 0;
        goto out;
    }
    if (parse_max_tokens(o, "max_tokens", req, err) < 0 ||
        parse_max_tokens(o, "max_completion_tokens", req, err) < 0 ||
        get_stop(o, "stop", req, err) < 0)
        goto out;
    if (kind == API_CHAT) {
        if (get_messages(o, req, false, err) < 0 || get_response_format(o, req, err) < 0 ||
            get_bool(o, "logprobs", &req->logprobs, err) < 0)
            goto out;
        long long tl = 0;
        if (get_int(o, "top_logprobs", 0, 20, &tl, NULL, err) < 0)
            goto out;
        req->top_logprobs = (int)tl;
        if (req->top_logprobs > 0 && !req->logprobs) {
            fail(err, 400, "top_logprobs", "invalid_value",
                 "'top_logprobs' requires 'logprobs' to be true");
            goto out;
        }
    } else {
        const json_t *p = json_object_get(o, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (!json_is_string(p)) {
            fail(err, 400, "prompt", p ? "invalid_type" : "missing_required_parameter",
                 "'prompt' must be a string (or an array holding one string)");
            goto out;
        }
        req->prompt = xstrndup(json_string_value(p), json_string_length(p));
        long long lp = 0;
        bool lps = false;
        if (get_int(o, "logprobs", 0, 20, &lp, &lps, err) < 0 ||
            get_bool(o, "echo", &req->echo, err) < 0)
            goto out;
        req->logprobs = lps;
        req->top_logprobs = (int)lp;
    }
    rc = 0;
out:
    json_decref(o);
    if (rc < 0)
        api_request_free(req);
    return rc;
}

void
api_request_free(struct api_request *req)
{
    if (!req)
        return;
    for (size_t i = 0; i < req->n_msgs; i++) {
        free((char *)req->msgs[i].role);
        free((char *)req->msgs[i].content);
    }
    free(req->msgs);
    for (size_t i = 0; i < req->n_inputs; i++) {
        free(req->inputs[i].text);
        free(req->inputs[i].ids);
    }
    free(req->inputs);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->model);
    free(req->prompt);
    free(req->user);
    json_decref(req->schema);
    enum api_kind k = req->kind;
    memset(req, 0, sizeof *req);
    req->kind = k;
}

/* ===== Responses ============================================================================== */

const char *
api_finish_openai(enum api_finish f)
{
    return f == API_FINISH_LENGTH ? "length" : "stop";
}

const char *
api_finish_anthropic(enum api_finish f)
{
    return f == API_FINISH_LENGTH ? "max_tokens" : "end_turn";
}

/* ===== Embeddings response ==================================================================== */

static void
put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

int
api_embeddings_body(struct buf *out, const float *vecs, size_t n_vecs, int dim,
                    enum api_encoding enc, const char *model, int prompt_tokens)
{
    for (size_t i = 0; i < n_vecs * (size_t)dim; i++)
        if (!isfinite(vecs[i]))
            return -1;
    json_t *m = json_string(model);
    char *mj = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
    json_decref(m);
    size_t raw_len = (size_t)dim * 4;
    unsigned char *raw = enc == API_ENCODING_BASE64 ? xmalloc(raw_len) : NULL;
    char *b64 = enc == API_ENCODING_BASE64 ? xmalloc(4 * ((raw_len + 2) / 3) + 1) : NULL;
    buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n_vecs; i++) {
        const float *v = vecs + i * (size_t)dim;
        buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "",
                   i);
        if (enc == API_ENCODING_BASE64) {
            for (int j = 0; j < dim; j++) {
                uint32_t u;
                memcpy(&u, &v[j], 4);
                put_le32(raw + (size_t)j * 4, u);
            }
            int n = EVP_EncodeBlock((unsigned char *)b64, raw, (int)raw_len);
            buf_putc(out, '"');
            buf_append(out, b64, (size_t)n);
            buf_putc(out, '"');
        } else {
            buf_putc(out, '[');
            for (int j = 0; j < dim; j++) /* %.9g: the shortest width that round-trips float32 */
                buf_printf(out, "%s%.9g", j ? "," : "", (double)v[j]);
            buf_putc(out, ']');
        }
        buf_putc(out, '}');
    }
    buf_printf(out, "],\"model\":%s,\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}",
               mj ? mj : "\"\"", prompt_tokens, prompt_tokens);
    free(mj);
    free(raw);
    free(b64);
    return 0;
}

void
api_make_id(const char *prefix, char *out, size_t cap)
{
    unsigned char r[12];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0, sizeof r);
    int n = snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof r && n > 0 && (size_t)n + 2 < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", r[i]);
}
