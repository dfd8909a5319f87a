/* cmd_keygen.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_keygen_usage[] = "Usage: airlock keygen ...\n";

int
cmd_keygen(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock keygen: not built yet\n");
    return AL_EXIT_IO;
}
