/* cmd_inspect.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_inspect_usage[] = "Usage: airlock inspect ...\n";

int
cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock inspect: not built yet\n");
    return AL_EXIT_IO;
}
