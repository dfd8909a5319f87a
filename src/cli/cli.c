/* cli.c -- helpers shared by the subcommands: error reporting and usage text. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

const struct cli_cmd *
cli_find(const char *name)
{
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int
cli_fail(const char *cmd, const struct al_err *e, bool json)
{
    if (json) {
        json_t *o = json_pack("{s:{s:s,s:s,s:i}}", "error", "message", e->msg, "code",
                              al_code_name(e->code), "exit_status", al_exit_status(e->code));
        if (o) {
            json_dumpf(o, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(o);
        }
    }
    fprintf(stderr, "airlock %s: %s\n", cmd, e->msg[0] ? e->msg : al_code_name(e->code));
    return al_exit_status(e->code == AL_OK ? AL_EINTERNAL : e->code);
}

int
cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "airlock %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'airlock help %s'.\n", cmd);
    return AL_EXIT_USAGE;
}

void
cli_print_usage(const char *cmd, FILE *f)
{
    const struct cli_cmd *c = cli_find(cmd);
    if (c)
        fputs(c->usage, f);
}

bool
cli_stderr_is_tty(void)
{
    return isatty(STDERR_FILENO) == 1;
}

void
cli_banner(const char *text)
{
    size_t n = strlen(text);
    fputc('+', stderr);
    for (size_t i = 0; i < n + 2; i++)
        fputc('-', stderr);
    fputs("+\n", stderr);
    fprintf(stderr, "| %s |\n", text);
    fputc('+', stderr);
    for (size_t i = 0; i < n + 2; i++)
        fputc('-', stderr);
    fputs("+\n", stderr);
}

const char *
cli_data_dir(const char *arg)
{
    if (arg)
        return arg;
    const char *env = getenv("AIRLOCK_DATA");
    return env && *env ? env : "./airlock-data";
}
