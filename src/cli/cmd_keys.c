/* cmd_keys.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_keys_usage[] = "Usage: airlock keys ...\n";

int
cmd_keys(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock keys: not built yet\n");
    return AL_EXIT_IO;
}
