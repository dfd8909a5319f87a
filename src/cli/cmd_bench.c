/* cmd_bench.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_bench_usage[] = "Usage: airlock bench ...\n";

int
cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock bench: not built yet\n");
    return AL_EXIT_IO;
}
