/* cmd_audit.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_audit_usage[] = "Usage: airlock audit ...\n";

int
cmd_audit(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock audit: not built yet\n");
    return AL_EXIT_IO;
}
