/* cmd_sign.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_sign_usage[] = "Usage: airlock sign ...\n";

int
cmd_sign(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock sign: not built yet\n");
    return AL_EXIT_IO;
}
