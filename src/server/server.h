/* server.h -- `airlock serve`: load a model, start the scheduler, and serve the OpenAI- and
 * Anthropic-compatible HTTP API with API keys, an audit log and Prometheus metrics.
 * The pieces live in their own modules (http, api, sched, keys, audit, metrics); this one wires
 * them together and owns their lifetimes. */
#ifndef AIRLOCK_SERVER_SERVER_H
#define AIRLOCK_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "audit/audit.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "metrics/metrics.h"
#include "server/api.h"
#include "server/http.h"
#include "server/keys.h"
#include "server/sched.h"
#include "util/err.h"

struct server_config {
    const char *host;            /* bind address, default 127.0.0.1 */
    int port;                    /* default 8080; 0 = any free port */
    const char *model_path;      /* GGUF file */
    const char *model_id;        /* NULL = file name without .gguf */
    const char *model_version;   /* version in the model store, or NULL (a plain file) */
    const char *model_signer;    /* key id that signed the imported bundle, or NULL */
    const char *model_sha256;    /* hex SHA-256 the served bytes must have (a stored model's
                                  * signed hash), or NULL */
    const char *data_dir;        /* keys.json lives here */
    const char *audit_log;       /* NULL = DATA/audit.jsonl */
    const char *audit_key;       /* minisign secret key for signed checkpoints, or NULL */
    bool audit_content;          /* also log prompt and response text */
    bool no_auth;                /* loopback only */
    int parallel;                /* sequence slots */
    int max_queue;               /* waiting requests before 429 */
    int ctx;                     /* positions per slot; 0 = model's, capped at 4096 */
    int threads;                 /* 0 = physical cores */
    const char *kernels;         /* NULL = auto */
    bool mmap_weights;           /* serve from the file's pages, not a huge-page copy */
    size_t max_body;             /* request body limit */
    double request_timeout_s;    /* 0 = none */
};

struct server {
    struct server_config cfg;    /* copy; strings borrowed from argv */
    char model_id[256];
    char model_sha256[65];       /* model file hash: the audit log's model version */
    char fingerprint[32];        /* system_fingerprint: "airlock-VERSION" */
    struct model model;          /* owned */
    struct tokenizer *tok;       /* owned */
    struct jgram_vocab *jvocab;  /* owned: token-piece trie for JSON-constrained sampling */
    char *chat_template;         /* owned: the model's template or the fallback */
    char bos_text[64];           /* BOS token text for templates ("" when none) */
    char eos_text[64];
    struct engine engine;        /* owned; driven only by the scheduler thread */
    struct sched sched;          /* owned */
    struct keyring keys;         /* owned */
    struct audit_writer *audit;  /* owned, NULL when disabled */
    void *audit_signer;          /* owned signing context for checkpoints */
    struct metrics_server metrics; /* owned */
    struct http_server http;     /* owned */
    char model_version[129];     /* store version, "" for a plain file */
    char signer[128];            /* key id that signed the model's bundle, "" when unknown */
    char model_note[256];        /* shown on the chat page (e.g. "completes stories") */
    _Atomic double last_tps;     /* decode tokens/s of the last finished request */
    atomic_bool ready;           /* model loaded and scheduler running */
    time_t started;              /* unix seconds */
    pthread_t finisher;          /* writes audit records of streams, then ends them */
    pthread_mutex_t fin_mu;
    pthread_cond_t fin_cv;
    struct greq *fin_head;        /* queue of finished streamed requests */
    bool fin_stop;
};

/* Load everything and start listening. On failure everything started is torn down. */
int server_start(struct server *s, const struct server_config *cfg, struct al_err *e);
/* Stop listening, finish or cancel requests, flush the audit log. */
void server_stop(struct server *s);

/* Endpoints implemented in other files of this module. */
void srv_handle_metrics(struct server *s, struct http_req *r);
void srv_handle_embeddings(struct server *s, struct http_req *r);
bool srv_is_web_path(const char *path);
void srv_handle_web(struct server *s, struct http_req *r);

#endif
