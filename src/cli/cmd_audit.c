/* cmd_audit.c -- `airlock audit verify|tail|repair`: check, read and repair an audit log.
 * Option parsing and output only; the chain, checkpoints and repair live in audit/audit.c and
 * signature checking in audit/audit_sig.c. The log is untrusted input.
 * `selftest-write` is an undocumented test mode used by tests/e2e/audit_crash.sh: it appends
 * records from several threads and prints "ack SEQ" only once each append is durable. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit/audit.h"
#include "audit/audit_sig.h"
#include "cli/cli.h"
#include "transfer/minisig.h"
#include "util/fsx.h"
#include "util/parse.h"

const char cmd_audit_usage[] =
    "Usage: airlock audit verify LOG [--trust PUBKEY] [--json]\n"
    "       airlock audit tail LOG [-n N]\n"
    "       airlock audit repair LOG\n"
    "\n"
    "Check and read the server's audit log (written by `airlock serve --audit-log FILE`).\n"
    "The log is JSON Lines, one record per request; every record carries the SHA-256 of the\n"
    "previous line (\"prev\"), so editing, removing or reordering any record breaks the chain.\n"
    "Checkpoint records sign the chain head with the server's Ed25519 key (minisign format).\n"
    "Format: docs/formats/audit-log.md.\n"
    "\n"
    "verify   Check every line: JSON shape, seq continuity, the hash chain from the genesis\n"
    "         value (64 zeros) and, with --trust, every checkpoint signature. Reports the\n"
    "         FIRST bad record by line number and seq: edited (hash mismatch), missing or\n"
    "         reordered (seq gap), bad checkpoint signature, or a torn final record left by a\n"
    "         crash (\"line N: torn final record (no newline)\" / \"(invalid JSON)\").\n"
    "         Records after the last signed checkpoint are protected by the chain only; verify\n"
    "         says how many there are.\n"
    "tail     Print the last N lines (default 10) exactly as stored.\n"
    "repair   Cut a torn final record off a log whose earlier records all verify, saving the\n"
    "         cut bytes to LOG.torn. Only a torn tail is repaired: a log with any other fault\n"
    "         is refused. The server refuses to append to a log with a torn tail until then.\n"
    "\n"
    "Options:\n"
    "  -t, --trust PUBKEY   minisign public key file (or a directory of *.pub) that signed\n"
    "                       the checkpoints; without it signatures are not checked\n"
    "  -n, --lines N        tail: number of lines to print (default 10)\n"
    "      --json           verify: print the result as a JSON object\n"
    "  -h, --help           show this text\n"
    "\n"
    "Output (verify --json): {\"ok\", \"records\", \"checkpoints\", \"signatures_verified\",\n"
    "\"last_seq\", \"signed_seq\", \"head\"} and on failure also {\"fault\", \"line\", \"seq\",\n"
    "\"message\"}; fault is one of torn, malformed, seq_gap, hash_mismatch, bad_signature.\n"
    "\n"
    "Exit status:\n"
    "  0  the log is intact (verify), printed (tail), repaired or intact (repair)\n"
    "  1  the chain is broken: a record was edited, removed or reordered, or a checkpoint\n"
    "     signature does not verify\n"
    "  2  usage error\n"
    "  3  I/O error (missing file, unreadable, log in use by a writer)\n"
    "  4  malformed log: a line is not an audit record, or the final record is torn\n"
    "\n"
    "Examples:\n"
    "  airlock audit verify /var/lib/airlock/audit.jsonl --trust server.pub\n"
    "  airlock audit tail audit.jsonl -n 3\n";

/* ===== verify ============================================================================= */

static int
audit_verify_cmd(const char *log, const char *trust_path, bool json)
{
    struct minisig_trust trust = {0};
    struct audit_verify_result res;
    struct al_err e = {0};
    int status;
    if (trust_path && minisig_trust_load(trust_path, &trust, &e) < 0)
        return cli_fail("audit", &e, json);
    int rc = audit_verify(log, trust_path ? audit_sig_check : NULL, trust_path ? &trust : NULL,
                          &res, &e);
    minisig_trust_free(&trust);
    status = rc == 0 ? AL_EXIT_OK : al_exit_status(e.code);
    if (json) {
        json_t *o = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:s}", "ok", rc == 0, "records",
                              (json_int_t)res.records, "checkpoints",
                              (json_int_t)res.checkpoints, "signatures_verified",
                              (json_int_t)res.signatures, "last_seq", (json_int_t)res.last_seq,
                              "signed_seq", (json_int_t)res.signed_seq, "head", res.head);
        if (o && rc < 0) {
            json_object_set_new(o, "fault", json_string(res.fault == AUDIT_FAULT_NONE
                                                            ? al_code_name(e.code)
                                                            : audit_fault_name(res.fault)));
            json_object_set_new(o, "line", json_integer((json_int_t)res.bad_line));
            json_object_set_new(o, "seq", json_integer((json_int_t)res.bad_seq));
            json_object_set_new(o, "message", json_string(e.msg));
        }
        if (o) {
            json_dumpf(o, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(o);
        }
    }
    if (rc < 0) {
        fprintf(stderr, "airlock audit: %s\n", e.msg);
        return status;
    }
    if (!json) {
        printf("%s: ok: %" PRIu64 " records, %" PRIu64 " checkpoints", log, res.records,
               res.checkpoints);
        if (trust_path)
            printf(" (%" PRIu64 " signatures verified)", res.signatures);
        printf(", last seq %" PRIu64 ", head %s\n", res.last_seq, res.head);
    }
    if (!trust_path && res.checkpoints)
        fprintf(stderr, "airlock audit: note: checkpoint signatures were not checked "
                        "(use --trust PUBKEY)\n");
    if (trust_path && res.signed_seq < res.last_seq)
        fprintf(stderr, "airlock audit: warning: %" PRIu64 " record(s) after seq %" PRIu64
                        " are not covered by a signed checkpoint\n",
                res.last_seq - res.signed_seq, res.signed_seq);
    return AL_EXIT_OK;
}

/* ===== tail =============================================================================== */

static int
audit_tail_cmd(const char *log, uint64_t n)
{
    struct fsx_map m = {.fd = -1};
    struct al_err e = {0};
    if (fsx_map_open(&m, log, &e) < 0)
        return cli_fail("audit", &e, false);
    const char *d = (const char *)m.base;
    size_t end = m.size;
    size_t start = end;
    bool torn = end > 0 && d[end - 1] != '\n';
    /* walk back over n line starts; a final line without newline counts as one */
    uint64_t seen = 0;
    size_t i = end > 0 && !torn ? end - 1 : end;
    while (i > 0 && seen < n) {
        if (d[i - 1] == '\n') {
            seen++;
            if (seen == n)
                break;
        }
        i--;
    }
    start = i;
    if (n == 0)
        start = end;
    fwrite(d + start, 1, end - start, stdout);
    if (torn && n > 0) {
        fputc('\n', stdout);
        fprintf(stderr, "airlock audit: %s: the final record is torn (no newline)\n", log);
    }
    fsx_map_close(&m);
    return AL_EXIT_OK;
}

/* ===== repair ============================================================================= */

static int
audit_repair_cmd(const char *log)
{
    struct al_err e = {0};
    uint64_t cut = 0;
    if (audit_repair(log, &cut, &e) < 0)
        return cli_fail("audit", &e, false);
    if (cut)
        printf("%s: cut %" PRIu64 " bytes of a torn final record (saved to %s.torn)\n", log,
               cut, log);
    else
        printf("%s: intact, nothing to repair\n", log);
    return AL_EXIT_OK;
}

/* ===== selftest-write (test mode) ========================================================= */

struct selftest {
    struct audit_writer *w;
    uint64_t n;            /* records this thread appends */
    pthread_mutex_t *out;  /* serialises ack lines */
    int rc;
};

static void *
selftest_thread(void *p)
{
    struct selftest *t = p;
    static const char resp[] = "a response";
    for (uint64_t i = 0; i < t->n; i++) {
        char prompt[64];
        struct al_err e = {0};
        uint64_t seq = 0;
        snprintf(prompt, sizeof prompt, "prompt %" PRIu64, i);
        struct audit_record r = {
            .key_name = "selftest", .client = "127.0.0.1", .endpoint = "/v1/completions",
            .model_id = "selftest", .prompt = prompt, .prompt_len = strlen(prompt),
            .response = resp, .response_len = sizeof resp - 1, .prompt_tokens = 3,
            .completion_tokens = 2, .latency_ms = 1, .status = 200,
        };
        if (audit_append(t->w, &r, &seq, &e) < 0) {
            fprintf(stderr, "airlock audit: %s\n", e.msg);
            t->rc = -1;
            return NULL;
        }
        pthread_mutex_lock(t->out);
        printf("ack %" PRIu64 "\n", seq);
        fflush(stdout);
        pthread_mutex_unlock(t->out);
    }
    return NULL;
}

static int
audit_selftest_cmd(const char *log, const char *count, const char *key, const char *every)
{
    struct al_err e = {0};
    struct minisig_seckey *sk = NULL;
    struct audit_writer *w = NULL;
    struct audit_options opt = {0};
    uint64_t n = 0, cp = 0;
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    struct selftest t[THREADS];
    pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;
    int status = AL_EXIT_OK;
    if (parse_u64(count, 1, 100000000, "record count", &n, &e) < 0 ||
        (every && parse_u64(every, 1, UINT64_MAX, "--every", &cp, &e) < 0))
        return cli_fail("audit", &e, false);
    if (key) {
        if (minisig_seckey_load(key, NULL, &sk, &e) < 0)
            return cli_fail("audit", &e, false);
        opt.sign = audit_sig_sign;
        opt.sign_ctx = sk;
        opt.checkpoint_every = cp;
    }
    if (audit_open(log, &opt, &w, &e) < 0) {
        status = cli_fail("audit", &e, false);
        goto out;
    }
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct selftest){.w = w, .n = n / THREADS + (i < (int)(n % THREADS)), .out = &out};
        pthread_create(&th[i], NULL, selftest_thread, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (t[i].rc < 0)
            status = AL_EXIT_IO;
    }
    if (audit_close(w, &e) < 0)
        status = cli_fail("audit", &e, false);
out:
    minisig_seckey_free(sk);
    return status;
}

/* ===== dispatch =========================================================================== */

int
cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"trust", required_argument, NULL, 't'},
        {"lines", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"key", required_argument, NULL, 'k'},
        {"every", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    const char *trust = NULL, *lines = NULL, *key = NULL, *every = NULL;
    bool json = false;
    int c;
    if (argc < 2)
        return cli_usage_error("audit", "missing subcommand (verify, tail or repair)");
    const char *sub = argv[1];
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "t:n:", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            trust = optarg;
            break;
        case 'n':
            lines = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'k':
            key = optarg;
            break;
        case 'e':
            every = optarg;
            break;
        default:
            return cli_usage_error("audit", "unknown or incomplete option");
        }
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    if (!strcmp(sub, "selftest-write")) {
        if (nargs != 2)
            return cli_usage_error("audit", "selftest-write LOG N [--key SECKEY --every K]");
        return audit_selftest_cmd(args[0], args[1], key, every);
    }
    if (key || every)
        return cli_usage_error("audit", "unknown or incomplete option");
    if (nargs != 1)
        return cli_usage_error("audit", "%s takes exactly one LOG argument", sub);
    if (!strcmp(sub, "verify")) {
        if (lines)
            return cli_usage_error("audit", "-n is for 'audit tail'");
        return audit_verify_cmd(args[0], trust, json);
    }
    if (trust || json)
        return cli_usage_error("audit", "--trust and --json are for 'audit verify'");
    if (!strcmp(sub, "tail")) {
        uint64_t n = 10;
        struct al_err e = {0};
        if (lines && parse_u64(lines, 0, UINT64_MAX, "-n", &n, &e) < 0)
            return cli_usage_error("audit", "%s", e.msg);
        return audit_tail_cmd(args[0], n);
    }
    if (!strcmp(sub, "repair"))
        return audit_repair_cmd(args[0]);
    return cli_usage_error("audit", "unknown subcommand '%s' (verify, tail or repair)", sub);
}
