/* cmd_serve.c -- `airlock serve`: parse options, start the server, wait for SIGINT/SIGTERM,
 * shut down cleanly (requests cancelled, audit log checkpointed and closed). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "server/server.h"
#include "store/store.h"
#include "util/fsx.h"
#include "util/parse.h"
#include "util/progress.h"
#include "util/xalloc.h"

const char cmd_serve_usage[] =
    "Usage: airlock serve [--model MODEL.gguf|NAME[:VERSION]] [--host ADDR] [--port P]\n"
    "                     [--data DIR] [--audit-log FILE] [--audit-content] [--no-auth]\n"
    "                     [OPTIONS]\n"
    "\n"
    "Serve a GGUF model over an OpenAI- and Anthropic-compatible HTTP API:\n"
    "  POST /v1/chat/completions, /v1/completions, /v1/messages, /v1/embeddings\n"
    "  GET  /v1/models, /v1/models/ID, /health, /ready, /metrics (Prometheus)\n"
    "Concurrent requests share forward passes (continuous batching) over --parallel slots.\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE        GGUF model to serve (default: the embedded stories260K, a tiny\n"
    "                          story-completion model that needs no download)\n"
    "  -m, --model NAME[:VERSION]\n"
    "                          a model `airlock import` put in DIR/store: VERSION, or the\n"
    "                          latest import of NAME; its blob is hashed against the signed\n"
    "                          manifest before it is served (an existing FILE takes\n"
    "                          precedence over a name)\n"
    "      --model-id ID       model id clients send (default: NAME for a stored model, else\n"
    "                          the file name without .gguf)\n"
    "      --host ADDR         numeric address to bind (default 127.0.0.1)\n"
    "      --port P            TCP port (default 8080; 0 picks a free one)\n"
    "      --data DIR          data directory holding keys.json and the model store (default\n"
    "                          ./airlock-data or $AIRLOCK_DATA); create keys with\n"
    "                          `airlock keys add NAME`, add models with `airlock import`\n"
    "      --audit-log FILE    hash-chained audit log (default DIR/audit.jsonl; 'off' disables)\n"
    "      --audit-content     also record prompt and response text (default: hashes only)\n"
    "      --audit-key KEYFILE sign a checkpoint every 1000 records and at shutdown with this\n"
    "                          minisign secret key (passphrase: $AIRLOCK_PASSPHRASE or prompt);\n"
    "                          check with `airlock audit verify LOG --trust PUBFILE`\n"
    "      --no-auth           accept requests without an API key; loopback addresses only\n"
    "      --parallel N        sequence slots generating at once (default 4)\n"
    "      --queue N           requests waiting for a slot before 429 (default 64)\n"
    "      --ctx N             context positions per slot (default: model's, at most 4096)\n"
    "  -t, --threads N         compute threads (default: physical cores)\n"
    "      --kernels K         force kernels: ref, avx2, avx512 (default: best for this CPU)\n"
    "      --mmap              serve from the model file's pages as stored (shared page\n"
    "                          cache, less memory) instead of a private copy on 2 MiB\n"
    "                          pages with Q4_0/Q5_0 rows regrouped for decode (faster)\n"
    "      --max-body BYTES    request body limit (default 4M)\n"
    "      --timeout SECONDS   cancel a request running longer than this (default 600)\n"
    "\n"
    "Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 a stored model's blob no\n"
    "longer matches its signed hash, 2 usage error, 3 I/O error (e.g. port in use, no such\n"
    "model), 4 unusable model file.\n"
    "\n"
    "Example:\n"
    "  airlock keys add alice --data ./airlock-data\n"
    "  airlock serve --model model.gguf --data ./airlock-data\n"
    "  airlock import qwen.tar --trust site.pub --data ./airlock-data\n"
    "  airlock serve --model qwen2.5-0.5b-instruct --data ./airlock-data\n"
    "  curl http://127.0.0.1:8080/v1/chat/completions -H \"Authorization: Bearer $KEY\" \\\n"
    "       -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n";

/* On a terminal, read the model file in under a progress bar so that the server's own load
 * (hash, mapping) finds it in memory. Best effort: errors are the server's to report. */
static void
serve_preload(const char *path)
{
    struct model m;
    struct progress p;
    if (!cli_stderr_is_tty() || model_load(&m, path, NULL) < 0)
        return;
    progress_init(&p, "loading", 0, true);
    model_prefault(&m, engine_cli_load_progress, &p);
    progress_finish(&p);
    model_free(&m);
}

/* --model is an existing file (served as before), else NAME[:VERSION] in DIR/store: the
 * blob of its GGUF, checked against the signed hash first; the id defaults to NAME. */
static int
serve_resolve_model(struct server_config *cfg, struct store_record *rec, struct al_err *e)
{
    const char *spec = cfg->model_path;
    struct stat st;
    char *name = NULL, *version = NULL;
    if (stat(spec, &st) == 0 || strchr(spec, '/')) {
        serve_preload(spec);
        return 0; /* a path: the server opens it (and reports what is wrong with it) */
    }
    if (store_spec_parse(spec, &name, &version, e) < 0)
        return al_errf(e, AL_ENOTFOUND, "--model %s: no such file, and not a NAME[:VERSION] "
                       "of the model store", spec);
    int rc = store_resolve(cfg->data_dir, name, version, rec, e);
    if (rc < 0 && e->code == AL_ENOTFOUND) {
        char why[AL_ERR_MSG];
        memcpy(why, e->msg, sizeof why);
        al_errf(e, AL_ENOTFOUND, "--model %s: no such file, and %s", spec, why);
    }
    free(name);
    free(version);
    if (rc < 0)
        return -1;
    if (rec->model < 0)
        return al_errf(e, AL_EUNSUPPORTED, "%s:%s in the store has no GGUF file to serve",
                       rec->name, rec->version);
    char when[32] = "";
    time_t t = (time_t)rec->imported;
    struct tm tmv;
    if (gmtime_r(&t, &tmv))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    fprintf(stderr, "airlock serve: model %s version %s from %s (%s, %s key ID %s, imported "
            "%s)\n", rec->name, rec->version, rec->dir, rec->files[rec->model].path,
            rec->signer_key_id[0] ? "signed by" : "UNSIGNED, no",
            rec->signer_key_id[0] ? rec->signer_key_id : "-", when);
    /* the blob is read whole here anyway: on a terminal this is the load progress bar */
    struct progress p;
    progress_init(&p, "verifying", rec->files[rec->model].size, cli_stderr_is_tty());
    rc = store_check_model(rec, &p, e);
    progress_finish(&p);
    if (rc < 0)
        return -1;
    cfg->model_path = rec->model_blob;
    cfg->model_version = rec->version;
    cfg->model_signer = rec->signer_key_id[0] ? rec->signer_key_id : NULL;
    cfg->model_sha256 = rec->files[rec->model].hex;
    if (!cfg->model_id)
        cfg->model_id = rec->name;
    return 0;
}

int
cmd_serve(int argc, char **argv)
{
    enum { O_MODEL_ID = 256, O_HOST, O_PORT, O_DATA, O_AUDIT, O_AUDIT_CONTENT, O_NO_AUTH,
           O_PARALLEL, O_QUEUE, O_AUDIT_KEY, O_CTX, O_KERNELS, O_MMAP, O_MAX_BODY, O_TIMEOUT };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"model-id", required_argument, NULL, O_MODEL_ID},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"data", required_argument, NULL, O_DATA},
        {"audit-log", required_argument, NULL, O_AUDIT},
        {"audit-content", no_argument, NULL, O_AUDIT_CONTENT},
        {"audit-key", required_argument, NULL, O_AUDIT_KEY},
        {"no-auth", no_argument, NULL, O_NO_AUTH},
        {"parallel", required_argument, NULL, O_PARALLEL},
        {"queue", required_argument, NULL, O_QUEUE},
        {"ctx", required_argument, NULL, O_CTX},
        {"threads", required_argument, NULL, 't'},
        {"kernels", required_argument, NULL, O_KERNELS},
        {"mmap", no_argument, NULL, O_MMAP},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    struct server_config cfg = {
        .host = "127.0.0.1", .port = 8080, .parallel = 4, .max_queue = 64,
        .max_body = 4u << 20, .request_timeout_s = 600,
    };
    const char *data = getenv("AIRLOCK_DATA");
    const char *audit = NULL;
    struct al_err e = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:", opts, NULL)) != -1) {
        uint64_t u;
        double d;
        int rc = 0;
        switch (c) {
        case 'm': cfg.model_path = optarg; break;
        case O_MODEL_ID: cfg.model_id = optarg; break;
        case O_HOST: cfg.host = optarg; break;
        case O_PORT: rc = parse_int(optarg, 0, 65535, "--port", &cfg.port, &e); break;
        case O_DATA: data = optarg; break;
        case O_AUDIT: audit = optarg; break;
        case O_AUDIT_CONTENT: cfg.audit_content = true; break;
        case O_AUDIT_KEY: cfg.audit_key = optarg; break;
        case O_NO_AUTH: cfg.no_auth = true; break;
        case O_PARALLEL: rc = parse_int(optarg, 1, 64, "--parallel", &cfg.parallel, &e); break;
        case O_QUEUE: rc = parse_int(optarg, 0, 100000, "--queue", &cfg.max_queue, &e); break;
        case O_CTX: rc = parse_int(optarg, 16, 1 << 20, "--ctx", &cfg.ctx, &e); break;
        case 't': rc = parse_int(optarg, 1, 1024, "--threads", &cfg.threads, &e); break;
        case O_KERNELS: cfg.kernels = optarg; break;
        case O_MMAP: cfg.mmap_weights = true; break;
        case O_MAX_BODY:
            rc = parse_size(optarg, "--max-body", &u, &e);
            cfg.max_body = (size_t)u;
            break;
        case O_TIMEOUT:
            rc = parse_double(optarg, 0, 1e7, "--timeout", &d, &e);
            cfg.request_timeout_s = d;
            break;
        default: return cli_usage_error("serve", "unknown option");
        }
        if (rc < 0)
            return cli_usage_error("serve", "%s", e.msg);
    }
    if (optind < argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    cfg.data_dir = data ? data : "./airlock-data";
    struct store_record rec;
    memset(&rec, 0, sizeof rec);
    rec.model = -1;
    if (cfg.model_path && serve_resolve_model(&cfg, &rec, &e) < 0) {
        store_record_free(&rec);
        return cli_fail("serve", &e, false);
    }
    char *audit_path = NULL;
    if (!audit)
        audit_path = xasprintf("%s/audit.jsonl", cfg.data_dir);
    else if (strcmp(audit, "off") != 0)
        audit_path = xstrdup(audit);
    cfg.audit_log = audit_path;
    if (audit_path && fsx_mkdir_p(cfg.data_dir, 0700, &e) < 0) {
        free(audit_path);
        store_record_free(&rec);
        return cli_fail("serve", &e, false);
    }

    /* block the stop signals in every thread; the main thread waits for them below */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server *s = xcalloc(1, sizeof *s);
    if (server_start(s, &cfg, &e) < 0) {
        free(s);
        free(audit_path);
        store_record_free(&rec);
        return cli_fail("serve", &e, false);
    }
    if (cfg.no_auth)
        fprintf(stderr,
                "airlock serve: WARNING: --no-auth: any local process can use this server "
                "without an API key\n");
    fprintf(stderr, "airlock serve: %s (%s) on http://%s:%d/ (%d slots, ctx %d)\n", s->model_id,
            s->model.type_name, strchr(cfg.host, ':') ? "[::1]" : cfg.host, s->http.port,
            cfg.parallel, sched_n_ctx(&s->sched));
    if (audit_path)
        fprintf(stderr, "airlock serve: audit log %s\n", audit_path);
    fflush(stderr);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "airlock serve: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(s);
    free(s);
    free(audit_path);
    store_record_free(&rec);
    return AL_EXIT_OK;
}
