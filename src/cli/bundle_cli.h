/* bundle_cli.h -- what the bundle-checking commands (verify, import) share: the trust and
 * allow options, -j, --json and --help, parsed and reported the same way in both; the single
 * BUNDLE operand; and the report lines both print on stderr after a verification. Each command
 * keeps its option table, its own options, its usage text and the checks that differ (e.g.
 * which of --trust, --trust-gpg and --allow-unsigned it requires). */
#ifndef AIRLOCK_CLI_BUNDLE_CLI_H
#define AIRLOCK_CLI_BUNDLE_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include <jansson.h>

#include "transfer/bundle.h"

/* Long-option codes above any character; a command's own codes start at BUNDLE_OPT_OWN. */
enum { BUNDLE_OPT_UNSIGNED = 256, BUNDLE_OPT_CODE, BUNDLE_OPT_PICKLE, BUNDLE_OPT_JSON,
       BUNDLE_OPT_OWN };

/* The command's table lists these itself, where its usage text puts them (getopt_long names
 * the candidates of an ambiguous abbreviation in table order): */
#define BUNDLE_CLI_OPTION_TRUST {"trust", required_argument, NULL, 't'}
#define BUNDLE_CLI_OPTION_UNSIGNED {"allow-unsigned", no_argument, NULL, BUNDLE_OPT_UNSIGNED}
/* ...and ends with these, in this order. Short options: "t:" and "j:h" in its optstring. */
#define BUNDLE_CLI_OPTIONS_TAIL                                                                \
    {"allow-code", no_argument, NULL, BUNDLE_OPT_CODE},                                        \
        {"allow-pickle", no_argument, NULL, BUNDLE_OPT_PICKLE},                                \
        {"threads", required_argument, NULL, 'j'},                                             \
        {"json", no_argument, NULL, BUNDLE_OPT_JSON},                                          \
        {"help", no_argument, NULL, 'h'}

/* Where the shared options go: the members of the command's own options struct, so nothing
 * is copied after parsing. */
struct bundle_cli {
    const char **trust;   /* -t, --trust PATH (borrowed from argv) */
    bool *allow_unsigned; /* --allow-unsigned */
    bool *allow_code;     /* --allow-code */
    bool *allow_pickle;   /* --allow-pickle */
    int *threads;         /* -j, --threads N, 1..1024 */
    bool json;            /* --json */
};

/* Initialiser of a struct bundle_cli that fills opts, an options struct with the members
 * trust, allow_unsigned, allow_code, allow_pickle and threads (bundle_verify_opts,
 * store_import_opts). */
#define BUNDLE_CLI_INIT(opts)                                                                  \
    {                                                                                          \
        .trust = &(opts).trust, .allow_unsigned = &(opts).allow_unsigned,                      \
        .allow_code = &(opts).allow_code, .allow_pickle = &(opts).allow_pickle,                \
        .threads = &(opts).threads, .json = false                                              \
    }

/* A command's own options: store opt's argument arg in ud and return 1, or return 0 when opt
 * is not one of them. */
typedef int (*bundle_cli_own_fn)(void *ud, int opt, const char *arg);

/* Parse argv (argv[0] is cmd) with getopt_long(optstring, opts): the shared options into
 * where c points (and c->json), every other option through own(ud, opt, optarg), in argv
 * order. Returns the one BUNDLE operand, borrowed from argv. Returns NULL when the command must
 * return *exit_status now: -h printed the usage text to stdout (AL_EXIT_OK); a bad -j value,
 * an unknown or incomplete option, or no or several operands printed a usage error
 * (AL_EXIT_USAGE). */
const char *bundle_cli_parse(struct bundle_cli *c, const char *cmd, int argc, char **argv,
                             const char *optstring, const struct option *opts,
                             bundle_cli_own_fn own, void *ud, int *exit_status);
/* Print r's notes, per-file failures, a boxed warning for each guarantee the user waived
 * (unsigned_banner for --allow-unsigned, fixed texts for --allow-code and --allow-pickle) and
 * its warnings to stderr, each line as "airlock CMD: ...". */
void bundle_cli_print_report(const char *cmd, const struct bundle_report *r,
                             const char *unsigned_banner);
/* For --json: r's failures as a new array of {path, kind, message} objects. */
json_t *bundle_cli_json_failures(const struct bundle_report *r);
/* For --json: a new array of the n strings v (r->warnings, r->notes). */
json_t *bundle_cli_json_strings(char *const *v, size_t n);

#endif
