/* cmd_pack.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_pack_usage[] = "Usage: airlock pack ...\n";

int
cmd_pack(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock pack: not built yet\n");
    return AL_EXIT_IO;
}
