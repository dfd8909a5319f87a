/* cmd_perplexity.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_perplexity_usage[] = "Usage: airlock perplexity ...\n";

int
cmd_perplexity(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock perplexity: not built yet\n");
    return AL_EXIT_IO;
}
