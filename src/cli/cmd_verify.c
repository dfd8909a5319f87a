/* cmd_verify.c -- `airlock verify`: check a bundle (directory or .tar) or a drive prepared
 * with sha256sum + minisign/gpg, and print the per-path report (text or JSON).
 * Option parsing and output only; the checks are transfer/bundle.c. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/bundle_cli.h"
#include "cli/cli.h"
#include "transfer/bundle.h"

const char cmd_verify_usage[] =
    "Usage: airlock verify BUNDLE --trust PUBFILE_OR_DIR [--extract DEST]\n"
    "                      [--allow-code] [--allow-pickle] [--json] [-j N]\n"
    "       airlock verify DIR [--manifest FILE] [--strip-prefix DIR]\n"
    "                      (--trust PUB | --trust-gpg KEYRING | --allow-unsigned)\n"
    "\n"
    "Verify a bundle made by `airlock pack` (a directory or a .tar), in this order: the\n"
    "minisign signature over MANIFEST.sha256 by a trusted key (key id first), the trusted\n"
    "comment's name/version/bom-sha256 against BOM.json, the manifest (strict: no absolute\n"
    "paths, '..' or duplicates), then every file's size and SHA-256. Each failure is reported\n"
    "by path: modified, truncated, size, missing, extra, renamed (a -> b), refused (symlink,\n"
    "device, hard link), code, pickle. Tar input with absolute paths, '..', links, devices,\n"
    "duplicate or over-long names is refused before anything is written.\n"
    "\n"
    "A directory without MANIFEST.sha256 + BOM.json is a drive prepared without airlock: its\n"
    "sha256sum manifest is --manifest FILE or found as TRANSFER_MANIFEST.sha256, SHA256SUMS or\n"
    "the single *.sha256; text and binary markers are accepted, absolute paths (as `find\n"
    "/mnt/drive -type f -exec sha256sum {} \\;` writes them) are mapped with --strip-prefix.\n"
    "Its signature is FILE.minisig (--trust) or FILE.sig / FILE.asc (--trust-gpg, checked by\n"
    "gpgv as apt does). An unsigned manifest is refused unless --allow-unsigned.\n"
    "\n"
    "Options:\n"
    "  -t, --trust PATH          minisign public key, or a directory of *.pub keys\n"
    "      --trust-gpg KEYRING   OpenPGP keyring (gpg --export > keyring.gpg) for gpgv\n"
    "      --allow-unsigned      accept a drive manifest nobody signed (reported loudly)\n"
    "      --manifest FILE       drive manifest to use\n"
    "      --strip-prefix DIR    map absolute manifest paths under DIR to the drive root\n"
    "  -x, --extract DEST        copy/extract into a temp dir beside DEST, verify there,\n"
    "                            fsync, rename to DEST; on failure nothing is left at DEST\n"
    "      --allow-code          let executable code through (reported loudly)\n"
    "      --allow-pickle        let pickle files through (reported loudly)\n"
    "  -j, --threads N           hashing threads (default: online CPUs)\n"
    "      --json                print {ok, bundle, signer_key_id, files, failures, warnings}\n"
    "  -h, --help                show this text\n"
    "\n"
    "Exit status: 0 everything holds; 1 verification failed; 2 usage; 3 I/O error;\n"
    "4 malformed input (e.g. a hostile tar).\n"
    "\n"
    "Example:\n"
    "  airlock verify llama-bundle --trust release.pub\n"
    "  airlock verify llama.tar --trust keys/ --extract /srv/models/llama\n"
    "  airlock verify /mnt/drive --strip-prefix /mnt/drive --trust-gpg site-keyring.gpg\n";

static void
verify_print_json(const struct bundle_report *r)
{
    json_t *files = json_array();
    for (size_t i = 0; i < r->n_files; i++)
        json_array_append_new(
            files, json_pack("{s:s,s:s}", "path", r->files[i].path, "status", r->files[i].status));
    json_t *fails = bundle_cli_json_failures(r);
    json_t *warn = bundle_cli_json_strings(r->warnings, r->n_warnings);
    json_t *notes = bundle_cli_json_strings(r->notes, r->n_notes);
    json_t *bundle =
        r->name ? json_pack("{s:s,s:s}", "name", r->name, "version", r->version ? r->version : "")
                : json_null();
    json_t *obj = json_pack("{s:b,s:s,s:o,s:s,s:I,s:o,s:o,s:o,s:o}", "ok", r->ok, "mode",
                            r->mode ? r->mode : "", "bundle", bundle, "signer_key_id",
                            r->signer_key_id, "bytes", (json_int_t)r->bytes, "files", files,
                            "failures", fails, "warnings", warn, "notes", notes);
    if (obj) {
        json_dumpf(obj, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(obj);
    }
}

enum { O_GPG = BUNDLE_OPT_OWN, O_MANIFEST, O_STRIP };

/* In usage-text order: getopt_long names an ambiguous abbreviation's candidates in this order. */
static const struct option verify_opts[] = {
    BUNDLE_CLI_OPTION_TRUST,
    {"trust-gpg", required_argument, NULL, O_GPG},
    BUNDLE_CLI_OPTION_UNSIGNED,
    {"manifest", required_argument, NULL, O_MANIFEST},
    {"strip-prefix", required_argument, NULL, O_STRIP},
    {"extract", required_argument, NULL, 'x'},
    BUNDLE_CLI_OPTIONS_TAIL,
    {NULL, 0, NULL, 0},
};

/* bundle_cli_own_fn: verify's own options, into the struct bundle_verify_opts ud. */
static int
verify_option(void *ud, int opt, const char *arg)
{
    struct bundle_verify_opts *o = ud;
    switch (opt) {
    case O_GPG:
        o->trust_gpg = arg;
        return 1;
    case O_MANIFEST:
        o->manifest = arg;
        return 1;
    case O_STRIP:
        o->strip_prefix = arg;
        return 1;
    case 'x':
        o->extract = arg;
        return 1;
    default:
        return 0;
    }
}

int
cmd_verify(int argc, char **argv)
{
    struct bundle_verify_opts o;
    memset(&o, 0, sizeof o);
    struct bundle_cli bc = BUNDLE_CLI_INIT(o);
    struct al_err e = {0};
    struct bundle_report r;
    bundle_report_init(&r);
    int rc;
    o.path = bundle_cli_parse(&bc, "verify", argc, argv, "t:x:j:h", verify_opts, verify_option,
                              &o, &rc);
    if (!o.path)
        return rc;
    bool json = bc.json;
    if (!o.trust && !o.trust_gpg && !o.allow_unsigned)
        return cli_usage_error("verify", "--trust PUB, --trust-gpg KEYRING or --allow-unsigned "
                                         "is required");
    o.progress = cli_stderr_is_tty() && !json;
    int vr = bundle_verify(&o, &r, &e);
    if (vr != 0 && e.code != AL_EVERIFY) {
        rc = cli_fail("verify", &e, json);
        goto out;
    }
    bundle_cli_print_report(
        "verify", &r, "WARNING: UNSIGNED -- nothing vouches for these files (--allow-unsigned)");
    if (json)
        verify_print_json(&r);
    if (vr != 0) {
        fprintf(stderr, "airlock verify: FAILED: %s\n", e.msg);
        rc = AL_EXIT_VERIFY;
        goto out;
    }
    if (!json) {
        size_t n = 0;
        for (size_t i = 0; i < r.n_files; i++)
            n += strcmp(r.files[i].status, "ok") == 0;
        if (r.name)
            printf("OK: %s %s: %zu files, %llu bytes verified", r.name, r.version, n,
                   (unsigned long long)r.bytes);
        else
            printf("OK: %s: %zu files, %llu bytes verified against %s", o.path, n,
                   (unsigned long long)r.bytes, r.manifest_path ? r.manifest_path : "manifest");
        if (r.signer_key_id[0])
            printf(", signed by %s %s", r.name ? "key ID" : "key", r.signer_key_id);
        if (o.extract)
            printf(", extracted to %s", o.extract);
        printf("\n");
    }
    rc = AL_EXIT_OK;
out:
    bundle_report_free(&r);
    return rc;
}
