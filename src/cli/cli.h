/* cli.h -- the subcommand contract. Each `airlock CMD` lives in src/cli/cmd_CMD.c and exports
 *   int cmd_CMD(int argc, char **argv);       argv[0] is "CMD"; returns a process exit status
 *   extern const char cmd_CMD_usage[];        full --help text (also the man page source)
 * Commands parse options with getopt_long, print results to stdout (JSON with --json),
 * diagnostics to stderr, and turn a struct al_err into an exit status with cli_fail(). */
#ifndef AIRLOCK_CLI_CLI_H
#define AIRLOCK_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "util/err.h"

struct cli_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;  /* one line for `airlock --help` */
    const char *usage;    /* full text for `airlock help CMD` and `airlock CMD --help` */
};

/* The table lives in main.c; cli_find returns NULL for an unknown name. */
extern const struct cli_cmd cli_cmds[];
const struct cli_cmd *cli_find(const char *name);

/* Print "airlock CMD: MESSAGE" to stderr (or a JSON error object to stdout when json) and
 * return the exit status for e->code. */
int cli_fail(const char *cmd, const struct al_err *e, bool json);
/* Print a usage error ("airlock CMD: msg\nTry 'airlock help CMD'.") and return AL_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the command's usage text to f. */
void cli_print_usage(const char *cmd, FILE *f);
/* true when stderr is a terminal (progress bars are shown only then) */
bool cli_stderr_is_tty(void);
/* A boxed warning on stderr, for things the user allowed that weaken a guarantee. */
void cli_banner(const char *text);
/* Data directory for --data: arg when given, else $AIRLOCK_DATA, else ./airlock-data. */
const char *cli_data_dir(const char *arg);

#define CLI_DECLARE(name)                                                                      \
    int cmd_##name(int argc, char **argv);                                                     \
    extern const char cmd_##name##_usage[]

CLI_DECLARE(keygen);
CLI_DECLARE(sign);
CLI_DECLARE(pack);
CLI_DECLARE(verify);
CLI_DECLARE(inspect);
CLI_DECLARE(run);
CLI_DECLARE(chat);
CLI_DECLARE(bench);
CLI_DECLARE(perplexity);
CLI_DECLARE(keys);
CLI_DECLARE(audit);
CLI_DECLARE(serve);
CLI_DECLARE(import);
CLI_DECLARE(models);

#endif
