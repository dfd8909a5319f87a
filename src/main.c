/* main.c -- airlock's entry point: the subcommand table, global --help/--version, and the
 * only place that turns an error into a process exit status. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

const struct cli_cmd cli_cmds[] = {
    {"keygen", cmd_keygen, "create an Ed25519 signing key pair in minisign's format", cmd_keygen_usage},
    {"sign", cmd_sign, "sign a file with a minisign-compatible signature", cmd_sign_usage},
    {"pack", cmd_pack, "pack a model directory into a signed transfer bundle", cmd_pack_usage},
    {"verify", cmd_verify, "verify a bundle or a sha256sum-prepared drive; optionally extract", cmd_verify_usage},
    {"import", cmd_import, "verify a bundle and add it to the local model store", cmd_import_usage},
    {"models", cmd_models, "list the model versions in the local store", cmd_models_usage},
    {"inspect", cmd_inspect, "print GGUF/safetensors metadata and a safety verdict", cmd_inspect_usage},
    {"run", cmd_run, "generate text from a GGUF model", cmd_run_usage},
    {"chat", cmd_chat, "chat with a GGUF model in the terminal", cmd_chat_usage},
    {"bench", cmd_bench, "measure prefill and decode speed (llama-bench format)", cmd_bench_usage},
    {"perplexity", cmd_perplexity, "compute perplexity of a model on a text file", cmd_perplexity_usage},
    {"serve", cmd_serve, "serve a model over an OpenAI- and Anthropic-compatible HTTP API", cmd_serve_usage},
    {"keys", cmd_keys, "manage API keys for serve (add, list, revoke)", cmd_keys_usage},
    {"audit", cmd_audit, "verify a hash-chained audit log", cmd_audit_usage},
    {NULL, NULL, NULL, NULL},
};

static void
print_help(FILE *f)
{
    fprintf(f,
            "airlock %s -- carry LLMs into air-gapped networks and serve them there\n\n"
            "Usage: airlock COMMAND [OPTIONS] [ARGS]\n"
            "       airlock help COMMAND | airlock COMMAND --help\n"
            "       airlock --version\n\nCommands:\n",
            AIRLOCK_VERSION);
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        fprintf(f, "  %-11s %s\n", c->name, c->summary);
    fprintf(f,
            "\nExit status:\n"
            "  0  success\n"
            "  1  verification failed: bad signature, hash or size mismatch, missing or extra\n"
            "     file, unsafe content refused\n"
            "  2  usage error: bad command line or option value\n"
            "  3  I/O or internal error: a file could not be read or written; refusing to\n"
            "     replace something that exists (a bundle, a version in the model store)\n"
            "  4  malformed, hostile or unsupported input (e.g. a truncated GGUF header)\n"
            "\nSee docs/exit-codes.md and `man airlock`.\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return AL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        print_help(stdout);
        return AL_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("airlock %s\n", AIRLOCK_VERSION);
        return AL_EXIT_OK;
    }
    if (!strcmp(name, "help")) {
        if (argc < 3) {
            print_help(stdout);
            return AL_EXIT_OK;
        }
        const struct cli_cmd *c = cli_find(argv[2]);
        if (!c) {
            fprintf(stderr, "airlock: unknown command '%s'\n", argv[2]);
            return AL_EXIT_USAGE;
        }
        fputs(c->usage, stdout);
        return AL_EXIT_OK;
    }
    const struct cli_cmd *c = cli_find(name);
    if (!c) {
        fprintf(stderr, "airlock: unknown command '%s'\nRun 'airlock --help' for the list.\n", name);
        return AL_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(c->usage, stdout);
            return AL_EXIT_OK;
        }
    }
    return c->run(argc - 1, argv + 1);
}
