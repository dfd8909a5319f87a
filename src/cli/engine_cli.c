/* engine_cli.c -- parsing of the options the inference commands share (see engine_cli.h). */
#include "cli/engine_cli.h"

#include <string.h>

#include "cli/cli.h"
#include "util/parse.h"
#include "util/progress.h"

#define DEFAULT_CTX_CAP 4096 /* like llama.cpp's default: a 128k-context model stays small */

void
engine_cli_defaults(struct engine_cli *c)
{
    memset(c, 0, sizeof *c);
    sampler_params_default(&c->gp.sp);
    c->gp.n_predict = 128;
    c->progress = cli_stderr_is_tty();
}

int
engine_cli_option(struct engine_cli *c, int opt, const char *arg, struct al_err *e)
{
    double d;
    int i;
    uint64_t u;
    struct sampler_params *sp = &c->gp.sp;
    switch (opt) {
    case 't':
        if (parse_int(arg, 1, 1024, "--threads", &c->eo.n_threads, e) < 0)
            return -1;
        return 1;
    case OPT_CTX:
        if (parse_int(arg, 1, 1 << 24, "--ctx", &c->eo.n_ctx, e) < 0)
            return -1;
        c->ctx_given = true;
        return 1;
    case OPT_BATCH:
        if (parse_int(arg, 1, 65536, "--batch-size", &c->eo.n_batch, e) < 0)
            return -1;
        return 1;
    case OPT_KERNELS:
        c->eo.kernels = arg;
        return 1;
    case OPT_MMAP:
        c->eo.mmap_weights = true;
        return 1;
    case 'n':
        if (parse_int(arg, -1, 1 << 24, "--n-predict", &c->gp.n_predict, e) < 0)
            return -1;
        return 1;
    case OPT_TEMP:
        if (parse_double(arg, 0, 100, "--temp", &d, e) < 0)
            return -1;
        sp->temp = (float)d;
        return 1;
    case OPT_TOP_K:
        if (parse_int(arg, 0, 1 << 24, "--top-k", &sp->top_k, e) < 0)
            return -1;
        return 1;
    case OPT_TOP_P:
        if (parse_double(arg, 0, 1, "--top-p", &d, e) < 0)
            return -1;
        sp->top_p = (float)d;
        return 1;
    case OPT_MIN_P:
        if (parse_double(arg, 0, 1, "--min-p", &d, e) < 0)
            return -1;
        sp->min_p = (float)d;
        return 1;
    case OPT_REPEAT_PENALTY:
        if (parse_double(arg, 0.001, 100, "--repeat-penalty", &d, e) < 0)
            return -1;
        sp->repeat_penalty = (float)d;
        return 1;
    case OPT_REPEAT_LAST_N:
        if (parse_int(arg, -1, 1 << 20, "--repeat-last-n", &i, e) < 0)
            return -1;
        sp->repeat_last_n = i;
        return 1;
    case OPT_FREQ_PENALTY:
        if (parse_double(arg, -100, 100, "--frequency-penalty", &d, e) < 0)
            return -1;
        sp->freq_penalty = (float)d;
        return 1;
    case OPT_PRESENCE_PENALTY:
        if (parse_double(arg, -100, 100, "--presence-penalty", &d, e) < 0)
            return -1;
        sp->presence_penalty = (float)d;
        return 1;
    case OPT_SEED:
        if (parse_u64(arg, 0, UINT64_MAX, "--seed", &u, e) < 0)
            return -1;
        sp->seed = u;
        return 1;
    case OPT_STOP:
        if (c->gp.n_stop >= GEN_MAX_STOP)
            return al_errf(e, AL_EUSAGE, "at most %d --stop strings", GEN_MAX_STOP);
        if (!arg[0])
            return al_errf(e, AL_EUSAGE, "--stop needs a non-empty string");
        c->gp.stop[c->gp.n_stop++] = arg;
        return 1;
    case OPT_IGNORE_EOS:
        c->gp.ignore_eos = true;
        return 1;
    case OPT_JSON:
        c->progress = false; /* machine output: no bar, even on stderr */
        return 0;
    default:
        return 0;
    }
}

void
engine_cli_load_progress(void *ud, uint64_t done, uint64_t total)
{
    progress_update(ud, done, total);
}

int
engine_cli_open(struct engine_cli *c, struct llm *l, const char *path, struct al_err *e)
{
    struct engine_opts o = c->eo;
    if (!c->ctx_given) {
        /* peek at the model's context to cap it; model_load is cheap (a mapping) */
        struct model m;
        if (model_load(&m, path, e) < 0)
            return -1;
        o.n_ctx = m.hp.n_ctx_train < DEFAULT_CTX_CAP ? m.hp.n_ctx_train : DEFAULT_CTX_CAP;
        model_free(&m);
    }
    if (!c->progress)
        return llm_open(l, path, &o, e);
    struct progress p;
    progress_init(&p, "loading", 0, true);
    int rc = llm_open_progress(l, path, &o, engine_cli_load_progress, &p, e);
    if (atomic_load(&p.done) > 0) /* nothing was drawn when the load failed early */
        progress_finish(&p);
    return rc;
}
