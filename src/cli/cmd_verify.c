/* cmd_verify.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_verify_usage[] = "Usage: airlock verify ...\n";

int
cmd_verify(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock verify: not built yet\n");
    return AL_EXIT_IO;
}
