/* cmd_chat.c -- placeholder until the module lands; replaced by its owner. */
#include "cli/cli.h"

const char cmd_chat_usage[] = "Usage: airlock chat ...\n";

int
cmd_chat(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "airlock chat: not built yet\n");
    return AL_EXIT_IO;
}
