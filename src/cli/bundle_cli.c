/* bundle_cli.c -- option parsing and report lines shared by verify and import (see
 * bundle_cli.h). */
#include "cli/bundle_cli.h"

#include <stdio.h>

#include "cli/cli.h"
#include "util/parse.h"

/* One shared option, or -h, or getopt_long's '?': 0 to go on, 1 to return *exit_status. */
static int
bundle_cli_option(struct bundle_cli *c, const char *cmd, int opt, const char *arg, int *exit_status)
{
    struct al_err e = {0};
    switch (opt) {
    case 't':
        *c->trust = arg;
        return 0;
    case BUNDLE_OPT_UNSIGNED:
        *c->allow_unsigned = true;
        return 0;
    case BUNDLE_OPT_CODE:
        *c->allow_code = true;
        return 0;
    case BUNDLE_OPT_PICKLE:
        *c->allow_pickle = true;
        return 0;
    case BUNDLE_OPT_JSON:
        c->json = true;
        return 0;
    case 'j':
        if (parse_int(arg, 1, 1024, "--threads", c->threads, &e) == 0)
            return 0;
        *exit_status = cli_usage_error(cmd, "%s", e.msg);
        return 1;
    case 'h':
        cli_print_usage(cmd, stdout);
        *exit_status = AL_EXIT_OK;
        return 1;
    default:
        *exit_status = cli_usage_error(cmd, "unknown or incomplete option");
        return 1;
    }
}

const char *
bundle_cli_parse(struct bundle_cli *c, const char *cmd, int argc, char **argv,
                 const char *optstring, const struct option *opts, bundle_cli_own_fn own, void *ud,
                 int *exit_status)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
        if (own(ud, opt, optarg))
            continue;
        if (bundle_cli_option(c, cmd, opt, optarg, exit_status) != 0)
            return NULL;
    }
    if (optind + 1 == argc)
        return argv[optind];
    *exit_status = cli_usage_error(cmd, optind >= argc ? "BUNDLE is required"
                                                       : "exactly one BUNDLE is expected");
    return NULL;
}

void
bundle_cli_print_report(const char *cmd, const struct bundle_report *r, const char *unsigned_banner)
{
    for (size_t i = 0; i < r->n_notes; i++)
        fprintf(stderr, "airlock %s: note: %s\n", cmd, r->notes[i]);
    for (size_t i = 0; i < r->n_failures; i++)
        fprintf(stderr, "airlock %s: %s\n", cmd, r->failures[i].message);
    if (r->unsigned_allowed)
        cli_banner(unsigned_banner);
    if (r->code_allowed)
        cli_banner("WARNING: EXECUTABLE CODE was allowed through (--allow-code)");
    if (r->pickle_allowed)
        cli_banner("WARNING: PICKLE files were allowed through: loading them runs code "
                   "(--allow-pickle)");
    for (size_t i = 0; i < r->n_warnings; i++)
        fprintf(stderr, "airlock %s: warning: %s\n", cmd, r->warnings[i]);
}

json_t *
bundle_cli_json_failures(const struct bundle_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_failures; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "path", r->failures[i].path, "kind",
                                           r->failures[i].kind, "message", r->failures[i].message));
    return a;
}

json_t *
bundle_cli_json_strings(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}
