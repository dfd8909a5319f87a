/* cmd_pack.c -- `airlock pack`: build a signed transfer bundle (directory or .tar) from a
 * source tree. Option parsing and output only; the pipeline is transfer/bundle.c. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "crypto/secmem.h"
#include "transfer/bundle.h"
#include "transfer/minisig.h"
#include "util/parse.h"

const char cmd_pack_usage[] =
    "Usage: airlock pack SRC_DIR -o BUNDLE --name N --version V --key KEYFILE\n"
    "                    [--license L] [--source URL] [--creator C] [--passphrase-file F]\n"
    "                    [--force] [--skip-special] [--json] [-j THREADS]\n"
    "\n"
    "Pack every regular file under SRC_DIR into a signed bundle:\n"
    "  BUNDLE/payload/...                the files, names kept as bytes\n"
    "  BUNDLE/BOM.json                   CycloneDX 1.6 bill of materials (hashes, sizes,\n"
    "                                    model metadata, pickle/code flags)\n"
    "  BUNDLE/MANIFEST.sha256            `sha256sum -c` format, sorted, BOM.json + payload/\n"
    "  BUNDLE/MANIFEST.sha256.minisig    minisign signature; its trusted comment binds the\n"
    "                                    name, version and the BOM's SHA-256\n"
    "With -o NAME.tar the same layout is written as one POSIX pax tar, streamed: each file is\n"
    "read once and hashed while it is written. Output is built under a temp name beside BUNDLE\n"
    "and renamed into place when complete; an existing BUNDLE is replaced only with --force.\n"
    "Symbolic links, devices, fifos and sockets in SRC_DIR are refused (--skip-special leaves\n"
    "them out). Pickle and code files are packed but flagged in the BOM and warned about.\n"
    "\n"
    "Options:\n"
    "  -o, --output BUNDLE        output directory, or a path ending in .tar (required)\n"
    "      --name N               bundle name (required; printable ASCII, no spaces)\n"
    "      --version V            bundle version (required; printable ASCII, no spaces)\n"
    "  -s, --key KEYFILE          minisign secret key (required; see `airlock keygen`)\n"
    "      --license L            SPDX licence id or name for the BOM\n"
    "      --source URL           where the payload came from, for the BOM\n"
    "      --creator C            person or organisation, for the BOM (default user@host)\n"
    "      --passphrase-file F    read the key's passphrase from the first line of F\n"
    "                             (else AIRLOCK_PASSPHRASE, else asked on the terminal)\n"
    "  -f, --force                replace an existing BUNDLE\n"
    "      --skip-special         leave out symlinks/devices/fifos/sockets instead of failing\n"
    "  -j, --threads N            worker threads (default: online CPUs)\n"
    "      --json                 print the result as JSON\n"
    "  -h, --help                 show this text\n"
    "\n"
    "Exit status: 0 packed; 2 usage; 3 I/O error or BUNDLE exists; 4 unpackable input.\n"
    "\n"
    "Example:\n"
    "  airlock pack ./llama -o llama-bundle --name llama --version 3.1 --key release.key\n"
    "  airlock pack ./llama -o llama.tar --name llama --version 3.1 --key release.key\n";

static void
pack_print_json(const struct bundle_pack_opts *o, const struct bundle_report *r)
{
    json_t *files = json_array(), *warn = json_array();
    for (size_t i = 0; i < r->n_files; i++)
        json_array_append_new(
            files, json_pack("{s:s,s:s}", "path", r->files[i].path, "class", r->files[i].status));
    for (size_t i = 0; i < r->n_warnings; i++)
        json_array_append_new(warn, json_string(r->warnings[i]));
    json_t *obj = json_pack("{s:b,s:{s:s,s:s},s:s,s:s,s:s,s:I,s:o,s:o}", "ok", 1, "bundle", "name",
                            o->name, "version", o->version, "output", o->out, "format",
                            r->mode ? r->mode : "", "signer_key_id", r->signer_key_id, "bytes",
                            (json_int_t)r->bytes, "files", files, "warnings", warn);
    if (obj) {
        json_dumpf(obj, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(obj);
    }
}

int
cmd_pack(int argc, char **argv)
{
    enum { O_NAME = 256, O_VERSION, O_LICENSE, O_SOURCE, O_CREATOR, O_PASSFILE, O_JSON, O_SKIP };
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, O_NAME},
        {"version", required_argument, NULL, O_VERSION},
        {"key", required_argument, NULL, 's'},
        {"license", required_argument, NULL, O_LICENSE},
        {"source", required_argument, NULL, O_SOURCE},
        {"creator", required_argument, NULL, O_CREATOR},
        {"passphrase-file", required_argument, NULL, O_PASSFILE},
        {"force", no_argument, NULL, 'f'},
        {"skip-special", no_argument, NULL, O_SKIP},
        {"threads", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bundle_pack_opts o;
    memset(&o, 0, sizeof o);
    const char *pass_file = NULL;
    bool json = false;
    char *pass = NULL;
    struct al_err e = {0};
    struct bundle_report r;
    bundle_report_init(&r);
    int rc, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:s:fj:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out = optarg;
            break;
        case O_NAME:
            o.name = optarg;
            break;
        case O_VERSION:
            o.version = optarg;
            break;
        case 's':
            o.key_path = optarg;
            break;
        case O_LICENSE:
            o.license = optarg;
            break;
        case O_SOURCE:
            o.source = optarg;
            break;
        case O_CREATOR:
            o.creator = optarg;
            break;
        case O_PASSFILE:
            pass_file = optarg;
            break;
        case 'f':
            o.force = true;
            break;
        case O_SKIP:
            o.skip_special = true;
            break;
        case O_JSON:
            json = true;
            break;
        case 'j':
            if (parse_int(optarg, 1, 1024, "--threads", &o.threads, &e) != 0)
                return cli_usage_error("pack", "%s", e.msg);
            break;
        case 'h':
            cli_print_usage("pack", stdout);
            return AL_EXIT_OK;
        default:
            return cli_usage_error("pack", "unknown or incomplete option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("pack", optind >= argc ? "SRC_DIR is required"
                                                      : "exactly one SRC_DIR is expected");
    o.src = argv[optind];
    if (!o.out || !o.name || !o.version || !o.key_path)
        return cli_usage_error("pack", "-o BUNDLE, --name, --version and --key are required");
    if (pass_file && minisig_passphrase_read(pass_file, false, &pass, &e) < 0) {
        rc = cli_fail("pack", &e, json);
        goto out;
    }
    o.passphrase = pass;
    o.progress = cli_stderr_is_tty() && !json;
    if (bundle_pack(&o, &r, &e) != 0) {
        rc = cli_fail("pack", &e, json);
        goto out;
    }
    for (size_t i = 0; i < r.n_warnings; i++)
        fprintf(stderr, "airlock pack: warning: %s\n", r.warnings[i]);
    if (json)
        pack_print_json(&o, &r);
    else
        printf("packed %zu file%s (%llu bytes) into %s, signed by key ID %s\n", r.n_files,
               r.n_files == 1 ? "" : "s", (unsigned long long)r.bytes, o.out, r.signer_key_id);
    rc = AL_EXIT_OK;
out:
    secmem_free(pass);
    bundle_report_free(&r);
    return rc;
}
