/* cmd_run.c -- `airlock run MODEL -p TEXT`: one-shot generation in the terminal.
 * Generated text goes to stdout as it is produced (never a partial UTF-8 character); timings
 * and diagnostics go to stderr. The prompt is not echoed unless --echo is given. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "util/fsx.h"

const char cmd_run_usage[] =
    "Usage: airlock run MODEL.gguf (-p TEXT | -f FILE) [options]\n"
    "\n"
    "Generate text from a prompt with the built-in engine and print it to stdout.\n"
    "The prompt is tokenized with BOS as the model's metadata asks; special-token text such as\n"
    "<|im_start|> is matched only with --special.\n"
    "\n"
    "Options:\n"
    "  -p, --prompt TEXT      the prompt\n"
    "  -f, --file FILE        read the prompt from FILE (at most 8 MiB)\n"
    "      --echo             print the prompt before the generated text\n"
    "      --special          parse special-token text in the prompt\n"
    "  -v, --verbose          print load and speed details to stderr\n" ENGINE_CLI_USAGE_SAMPLER
        ENGINE_CLI_USAGE_ENGINE
    "\n"
    "Examples:\n"
    "  airlock run model.gguf -p 'Once upon a time' -n 64 --temp 0\n"
    "  airlock run model.gguf -p 'Q: name a colour.\\nA:' --stop '\\n' --seed 42\n"
    "\n"
    "Exit status: 0 ok, 2 usage, 3 I/O or internal error, 4 malformed or unsupported model.\n";

static int
emit_stdout(void *ud, const char *text, size_t len)
{
    (void)ud;
    if (fwrite(text, 1, len, stdout) != len)
        return 1; /* stdout closed: stop generating */
    fflush(stdout);
    return 0;
}

int
cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"prompt", required_argument, NULL, 'p'},
        {"file", required_argument, NULL, 'f'},
        {"echo", no_argument, NULL, OPT_ECHO},
        {"special", no_argument, NULL, 'S'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        ENGINE_CLI_OPTIONS,
        SAMPLER_CLI_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct engine_cli ec;
    struct al_err e = {0};
    struct llm l;
    struct gen_session g;
    struct gen_stats st;
    const char *prompt = NULL, *file = NULL;
    char *file_text = NULL;
    size_t prompt_len = 0;
    bool echo = false, special = false, verbose = false;
    int rc = AL_EXIT_USAGE;
    int c;

    memset(&l, 0, sizeof l);
    memset(&g, 0, sizeof g);
    engine_cli_defaults(&ec);
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:f:n:t:c:vh", opts, NULL)) != -1) {
        int r = engine_cli_option(&ec, c == 'c' ? OPT_CTX : c, optarg, &e);
        if (r < 0)
            return cli_usage_error("run", "%s", e.msg);
        if (r > 0)
            continue;
        switch (c) {
        case 'p':
            prompt = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case OPT_ECHO:
            echo = true;
            break;
        case 'S':
            special = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            cli_print_usage("run", stdout);
            return AL_EXIT_OK;
        default:
            return cli_usage_error("run", "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("run", "a MODEL.gguf is required");
    if (optind + 1 < argc)
        return cli_usage_error("run", "unexpected argument '%s'", argv[optind + 1]);
    if (!prompt == !file)
        return cli_usage_error("run", "give exactly one of -p TEXT and -f FILE");
    const char *path = argv[optind];

    if (file) {
        if (fsx_read_file(file, 8u << 20, &file_text, &prompt_len, &e) < 0)
            goto fail;
        prompt = file_text;
    } else {
        prompt_len = strlen(prompt);
    }
    if (engine_cli_open(&ec, &l, path, &e) < 0)
        goto fail;
    if (verbose)
        fprintf(stderr, "airlock run: %s, %d layers, dim %d, vocab %d, ctx %d, %d threads, %s "
                "kernels\n", l.m.type_name, l.m.hp.n_layer, l.m.hp.dim, l.m.hp.n_vocab,
                l.en.n_ctx, l.en.n_threads, l.en.k->name);
    if (gen_init(&g, &l.en, l.tok, 0, &e) < 0)
        goto fail;
    if (gen_prompt_text(&g, prompt, prompt_len, true, special, &e) < 0)
        goto fail;
    if (echo) {
        fwrite(prompt, 1, prompt_len, stdout);
        fflush(stdout);
    }
    if (gen_generate(&g, &ec.gp, emit_stdout, NULL, &st, &e) < 0)
        goto fail;
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr,
            "airlock run: prompt %d tokens in %.1f ms (%.2f t/s), generated %d tokens in %.1f ms "
            "(%.2f t/s), stop: %s\n",
            st.n_prompt, st.prompt_ms, st.prompt_ms > 0 ? st.n_prompt * 1e3 / st.prompt_ms : 0.0,
            st.n_gen, st.gen_ms, st.gen_ms > 0 ? st.n_gen * 1e3 / st.gen_ms : 0.0,
            gen_stop_name(st.stop));
    rc = AL_EXIT_OK;
    goto out;
fail:
    rc = cli_fail("run", &e, false);
out:
    gen_free(&g);
    llm_close(&l);
    free(file_text);
    return rc;
}
