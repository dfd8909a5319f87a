/* engine_cli.h -- options shared by the inference commands (run, chat, bench, perplexity):
 * threads, context, kernels, and the sampling flags, parsed the same way everywhere and
 * documented once (ENGINE_CLI_USAGE_* strings are pasted into each command's usage text). */
#ifndef AIRLOCK_CLI_ENGINE_CLI_H
#define AIRLOCK_CLI_ENGINE_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "engine/generate.h"
#include "util/err.h"

/* Long-option codes above any character. */
enum {
    OPT_CTX = 256, OPT_KERNELS, OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REPEAT_PENALTY,
    OPT_REPEAT_LAST_N, OPT_FREQ_PENALTY, OPT_PRESENCE_PENALTY, OPT_SEED, OPT_STOP, OPT_SYSTEM,
    OPT_JSON, OPT_ECHO, OPT_BATCH, OPT_IGNORE_EOS, OPT_VERBOSE, OPT_MMAP,
};

#define ENGINE_CLI_OPTIONS                                                                     \
    {"threads", required_argument, NULL, 't'}, {"ctx", required_argument, NULL, OPT_CTX},     \
        {"ctx-size", required_argument, NULL, OPT_CTX},                                        \
        {"kernels", required_argument, NULL, OPT_KERNELS},                                     \
        {"batch-size", required_argument, NULL, OPT_BATCH},                                    \
        {"mmap", no_argument, NULL, OPT_MMAP}

#define SAMPLER_CLI_OPTIONS                                                                    \
    {"n-predict", required_argument, NULL, 'n'}, {"temp", required_argument, NULL, OPT_TEMP}, \
        {"top-k", required_argument, NULL, OPT_TOP_K},                                         \
        {"top-p", required_argument, NULL, OPT_TOP_P},                                         \
        {"min-p", required_argument, NULL, OPT_MIN_P},                                         \
        {"repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY},                       \
        {"repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N},                         \
        {"frequency-penalty", required_argument, NULL, OPT_FREQ_PENALTY},                      \
        {"presence-penalty", required_argument, NULL, OPT_PRESENCE_PENALTY},                   \
        {"seed", required_argument, NULL, OPT_SEED}, {"stop", required_argument, NULL, OPT_STOP}, \
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS}

#define ENGINE_CLI_USAGE_ENGINE                                                                \
    "  -t, --threads N        worker threads (default: physical cores)\n"                      \
    "  -c, --ctx N            context positions (default: the model's, at most 4096)\n"       \
    "      --batch-size N     tokens per forward step during prompt evaluation (default 512)\n" \
    "      --kernels NAME     ref, avx2, avx512 or auto (default: best this CPU runs)\n"       \
    "      --mmap             run from the file's pages as stored (shared page cache, less\n" \
    "                         memory) instead of a private copy on 2 MiB pages with Q4_0/Q5_0\n" \
    "                         rows regrouped for decode (faster)\n"

#define ENGINE_CLI_USAGE_SAMPLER                                                               \
    "  -n, --n-predict N      tokens to generate (default 128; -1 = until end or full)\n"     \
    "      --temp T           temperature; 0 = greedy (default 0.8)\n"                         \
    "      --top-k K          keep the K most likely tokens, 0 = off (default 40)\n"           \
    "      --top-p P          keep the smallest set with probability >= P (default 0.95)\n"   \
    "      --min-p P          drop tokens below P x the top probability (default 0.05)\n"     \
    "      --repeat-penalty F divide logits of recent tokens by F (default 1 = off)\n"        \
    "      --repeat-last-n N  tokens the penalties look back on (default 64, -1 = all)\n"     \
    "      --frequency-penalty F  subtract F per earlier occurrence (default 0)\n"            \
    "      --presence-penalty F   subtract F once if the token occurred (default 0)\n"        \
    "      --seed N           random seed; the same seed gives the same output\n"             \
    "      --stop TEXT        stop before TEXT (repeatable, up to 16)\n"                       \
    "      --ignore-eos       keep generating past end-of-generation tokens\n"

struct engine_cli {
    struct engine_opts eo;   /* engine options (-t, --ctx, --kernels, --mmap) */
    struct gen_params gp;    /* generation and sampling options */
    bool ctx_given;          /* --ctx was passed: do not cap it at 4096 */
    bool progress;           /* draw a progress bar on stderr while the weights load: stderr
                              * is a terminal and no --json was seen (engine_cli_option) */
};

void engine_cli_defaults(struct engine_cli *c);
/* Handle one getopt result; returns 1 when it was an engine/sampler option, 0 when it is not,
 * -1 on a bad value (e filled, AL_EUSAGE). OPT_JSON returns 0 (the command handles it) but
 * also turns the load progress bar off. */
int engine_cli_option(struct engine_cli *c, int opt, const char *arg, struct al_err *e);
/* Open the model with these options, applying the default context cap; with c->progress the
 * weights are read in first under a "loading" progress bar. */
int engine_cli_open(struct engine_cli *c, struct llm *l, const char *path, struct al_err *e);
/* model_progress_fn that moves a struct progress (ud) -- also used by `serve`. */
void engine_cli_load_progress(void *ud, uint64_t done, uint64_t total);

#endif
