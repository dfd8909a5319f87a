/* cmd_run.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_run_usage[] = "Usage: airlock run ...\n";

int
cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock run: not built yet\n");
    return AL_EXIT_IO;
}
