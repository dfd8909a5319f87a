/* cmd_perplexity.c -- `airlock perplexity MODEL FILE --ctx N`: perplexity the way
 * llama-perplexity computes it, so the numbers can be compared directly: tokenize the whole
 * file (BOS first when the vocabulary asks), cut it into chunks of N tokens, put BOS in each
 * chunk's first position (when the vocabulary adds BOS), evaluate each chunk from an empty
 * cache, and score only the second half of each chunk (positions N/2 .. N-2 predicting the
 * next token), so every scored token has at least N/2 tokens of context.
 * Prints running estimates "[i]ppl," and ends with "Final estimate: PPL = X +/- Y". */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "util/fsx.h"
#include "util/parse.h"
#include "util/xalloc.h"

const char cmd_perplexity_usage[] =
    "Usage: airlock perplexity MODEL.gguf FILE [--ctx N] [options]\n"
    "\n"
    "Compute the model's perplexity on a text file, as llama-perplexity does: the file is\n"
    "tokenized (with BOS when the vocabulary asks), split into chunks of N tokens whose first\n"
    "token is replaced by BOS, and the second half of every chunk is scored. Prints the running\n"
    "estimate after each chunk, then a line 'Final estimate: PPL = X +/- Y'.\n"
    "\n"
    "Options:\n"
    "  -c, --ctx N            chunk size in tokens (default 512); the file needs 2N tokens\n"
    "      --chunks K         score at most K chunks (default: all)\n"
    "  -t, --threads N        worker threads (default: physical cores)\n"
    "      --batch-size N     tokens per forward step (default 512)\n"
    "      --kernels NAME     ref, avx2, avx512 or auto\n"
    "\n"
    "Example:\n"
    "  airlock perplexity model.gguf wiki.test.raw --ctx 512\n"
    "\n"
    "Exit status: 0 ok, 2 usage, 3 I/O or internal error, 4 malformed input or too little text.\n";

#define MAX_TEXT (256u << 20)

/* -log p(target) from one row of logits, in double as llama-perplexity accumulates it. */
static double
nll_of(const float *logits, int n_vocab, int target)
{
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)(logits[i] - mx));
    return -((double)(logits[target] - mx) - log(sum));
}

int
cmd_perplexity(int argc, char **argv)
{
    static const struct option opts[] = {
        {"chunks", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        ENGINE_CLI_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct engine_cli ec;
    struct al_err e = {0};
    struct llm l;
    char *text = NULL;
    size_t text_len = 0;
    int32_t *tokens = NULL, *chunk = NULL, *pos = NULL;
    int8_t *want = NULL;
    float *logits = NULL;
    size_t n_tok = 0;
    int n_ctx = 512, max_chunks = -1;
    int rc = AL_EXIT_USAGE;
    int c;

    memset(&l, 0, sizeof l);
    engine_cli_defaults(&ec);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:h", opts, NULL)) != -1) {
        int r = engine_cli_option(&ec, c == 'c' ? OPT_CTX : c, optarg, &e);
        if (r < 0)
            return cli_usage_error("perplexity", "%s", e.msg);
        if (r > 0)
            continue;
        switch (c) {
        case 'k':
            if (parse_int(optarg, 1, 1 << 30, "--chunks", &max_chunks, &e) < 0)
                return cli_usage_error("perplexity", "%s", e.msg);
            break;
        case 'h':
            cli_print_usage("perplexity", stdout);
            return AL_EXIT_OK;
        default:
            return cli_usage_error("perplexity", "unknown or incomplete option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("perplexity", "MODEL.gguf and FILE are required");
    if (ec.ctx_given)
        n_ctx = ec.eo.n_ctx;
    if (n_ctx < 4)
        return cli_usage_error("perplexity", "--ctx must be at least 4");
    const char *path = argv[optind];
    const char *file = argv[optind + 1];

    ec.eo.n_ctx = n_ctx;
    ec.ctx_given = true;
    if (fsx_read_file(file, MAX_TEXT, &text, &text_len, &e) < 0)
        goto fail;
    if (engine_cli_open(&ec, &l, path, &e) < 0)
        goto fail;
    if (tokenizer_encode(l.tok, text, text_len, true, false, &tokens, &n_tok, &e) < 0)
        goto fail;
    if (n_tok < 2 * (size_t)n_ctx) {
        al_errf(&e, AL_EFORMAT, "%s: %zu tokens, need at least 2 x --ctx = %d", file, n_tok,
                2 * n_ctx);
        goto fail;
    }
    int n_chunk = (int)(n_tok / (size_t)n_ctx);
    if (max_chunks > 0 && n_chunk > max_chunks)
        n_chunk = max_chunks;
    int n_vocab = l.m.hp.n_vocab;
    int first = n_ctx / 2;
    bool add_bos = tokenizer_add_bos(l.tok) && tokenizer_bos(l.tok) != TOKENIZER_NULL;
    fprintf(stderr, "airlock perplexity: %zu tokens, %d chunks of %d, scoring from %d\n", n_tok,
            n_chunk, n_ctx, first);

    chunk = xmalloc((size_t)n_ctx * sizeof *chunk);
    pos = xmalloc((size_t)n_ctx * sizeof *pos);
    want = xmalloc((size_t)n_ctx);
    logits = xmalloc((size_t)(n_ctx - first) * (size_t)n_vocab * sizeof *logits);
    for (int i = 0; i < n_ctx; i++) {
        pos[i] = i;
        want[i] = i >= first && i < n_ctx - 1;
    }
    double nll = 0, nll2 = 0;
    long count = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int ci = 0; ci < n_chunk; ci++) {
        memcpy(chunk, tokens + (size_t)ci * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos)
            chunk[0] = tokenizer_bos(l.tok);
        engine_seq_truncate(&l.en, 0, 0);
        struct batch b = {.n_tokens = n_ctx, .token = chunk, .pos = pos, .logits = want};
        if (engine_decode(&l.en, &b, logits, &e) < 0)
            goto fail;
        for (int j = first; j < n_ctx - 1; j++) {
            /* the target is the file's own next token (position 0's BOS swap never matters) */
            double v = nll_of(logits + (size_t)(j - first) * n_vocab, n_vocab,
                              tokens[(size_t)ci * n_ctx + j + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        if (ci == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
            fprintf(stderr, "airlock perplexity: %.2f seconds per chunk\n", s);
        }
        printf("[%d]%.4f,", ci + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    printf("\n");
    double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    double err = var > 0 && count > 1 ? ppl * sqrt(var / (double)(count - 1)) : 0.0;
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
    rc = AL_EXIT_OK;
    goto out;
fail:
    rc = cli_fail("perplexity", &e, false);
out:
    free(text);
    free(tokens);
    free(chunk);
    free(pos);
    free(want);
    free(logits);
    llm_close(&l);
    return rc;
}
