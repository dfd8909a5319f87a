/* api.h -- the OpenAI and Anthropic wire formats: parse request bodies into one neutral
 * struct api_request, and build response objects and streaming chunks from results.
 * Pure functions over jansson values: no sockets, no model. Request bodies are untrusted; every
 * field is type- and range-checked and a failure names the offending parameter the way the
 * OpenAI API does ({"error":{"message","type","param","code"}}). */
#ifndef AIRLOCK_SERVER_API_H
#define AIRLOCK_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/template.h"
#include "util/buf.h"

enum api_kind {
    API_CHAT,        /* POST /v1/chat/completions */
    API_COMPLETION,  /* POST /v1/completions */
    API_MESSAGES,    /* POST /v1/messages (Anthropic) */
    API_EMBEDDINGS,  /* POST /v1/embeddings */
};

enum api_format {
    API_FORMAT_TEXT,        /* free text */
    API_FORMAT_JSON_OBJECT, /* response_format {"type":"json_object"} */
    API_FORMAT_JSON_SCHEMA, /* response_format {"type":"json_schema", ...} */
};

enum api_encoding {
    API_ENCODING_FLOAT,     /* embeddings as JSON numbers (OpenAI's default) */
    API_ENCODING_BASE64,    /* embeddings as base64 of little-endian float32 bytes */
};

#define API_MAX_STOP 16
#define API_MAX_MESSAGES 4096
#define API_MAX_INPUTS 2048      /* embedding inputs per request, as OpenAI allows */

/* One embedding input: text to tokenize, or token ids the client tokenized itself. */
struct api_input {
    char *text;                 /* owned UTF-8 (non-empty), or NULL when given as token ids */
    size_t len;                 /* bytes of text */
    int32_t *ids;               /* owned token ids (>= 0, not yet checked against a vocabulary),
                                 * or NULL when given as text */
    size_t n_ids;               /* >= 1 when ids is set */
};

struct api_request {
    enum api_kind kind;
    char *model;                /* owned; as the client sent it */
    struct chat_msg *msgs;      /* owned array; role/content strings owned */
    size_t n_msgs;
    char *prompt;               /* owned; completions: the prompt text */
    struct api_input *inputs;   /* owned; embeddings: 1..API_MAX_INPUTS inputs */
    size_t n_inputs;
    enum api_encoding encoding; /* embeddings: encoding_format */
    int dimensions;             /* embeddings: requested width; 0 = not given */
    int max_tokens;             /* -1 = until the context is full */
    double temperature;         /* 0 = greedy */
    double top_p;               /* 1 = off */
    int top_k;                  /* 0 = off */
    double min_p;               /* 0 = off */
    double presence_penalty;    /* OpenAI range [-2, 2] */
    double frequency_penalty;   /* OpenAI range [-2, 2] */
    double repeat_penalty;      /* 1 = off (llama.cpp-style extension) */
    char *stop[API_MAX_STOP];   /* owned */
    size_t n_stop;
    bool has_seed;
    uint64_t seed;
    bool logprobs;
    int top_logprobs;           /* 0..20 */
    char *user;                 /* owned; end-user id, recorded in the audit log */
    bool stream;
    bool include_usage;         /* stream_options.include_usage */
    bool echo;                  /* completions: echo the prompt */
    enum api_format format;
    json_t *schema;             /* owned reference: the json_schema's "schema", or NULL */
};

struct api_error {
    int status;          /* HTTP status */
    const char *type;    /* "invalid_request_error", ... */
    char param[64];      /* offending parameter or "" */
    const char *code;    /* machine code or NULL */
    char message[512];
};

/* Parse a request body of the given kind. On failure fills err and returns -1. */
int api_parse(enum api_kind kind, const char *body, size_t len, struct api_request *req,
              struct api_error *err);
void api_request_free(struct api_request *req); /* safe on a zeroed struct */

/* The error object for err, in OpenAI's shape (or Anthropic's for API_MESSAGES). */
json_t *api_error_json(enum api_kind kind, const struct api_error *err);

/* Generation outcome used by the builders. */
struct api_usage {
    int prompt_tokens;
    int completion_tokens;
};

enum api_finish {
    API_FINISH_STOP,    /* end-of-generation token or a stop string */
    API_FINISH_LENGTH,  /* max_tokens or the context filled up */
};

const char *api_finish_openai(enum api_finish f);    /* "stop" / "length" */
const char *api_finish_anthropic(enum api_finish f); /* "end_turn" / "max_tokens" / "stop_sequence" */

/* Append the OpenAI embeddings response to out:
 * {"object":"list","data":[{"object":"embedding","index":i,"embedding":...}],"model":model,
 *  "usage":{"prompt_tokens":n,"total_tokens":n}}
 * vecs holds n_vecs rows of dim floats. "embedding" is an array of numbers printed with 9
 * significant digits (enough to give back the exact float32) for API_ENCODING_FLOAT, or the
 * base64 of the row's little-endian float32 bytes for API_ENCODING_BASE64. Written as text, not
 * as a jansson tree: 2048 inputs of a 4096-wide model would be 8M JSON values.
 * Returns -1 (out unchanged) when a value is not finite: JSON cannot carry NaN or infinity. */
int api_embeddings_body(struct buf *out, const float *vecs, size_t n_vecs, int dim,
                        enum api_encoding enc, const char *model, int prompt_tokens);

/* Make a response id like "chatcmpl-<24 hex>" from random bytes. */
void api_make_id(const char *prefix, char *out, size_t cap);

#endif
