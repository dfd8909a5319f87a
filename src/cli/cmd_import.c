/* cmd_import.c -- `airlock import`: verify a bundle and add it to the local model store under
 * the data directory. Option parsing and output only; verification is transfer/bundle.c and
 * the store is store/store.c (layout: docs/store.md). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/bundle_cli.h"
#include "cli/cli.h"
#include "store/store.h"
#include "transfer/bundle.h"

const char cmd_import_usage[] =
    "Usage: airlock import BUNDLE --trust PUBFILE_OR_DIR [--data DIR] [--model-file PATH]\n"
    "                      [--allow-code] [--allow-pickle] [--json] [-j N]\n"
    "       airlock import BUNDLE --allow-unsigned [--data DIR] [...]\n"
    "\n"
    "Verify a bundle made by `airlock pack` (a directory or a .tar) exactly as `airlock verify`\n"
    "does -- signature by a trusted key, the signed name/version/BOM hash, every file's size\n"
    "and SHA-256, no missing, extra or renamed files, no links, no pickle or code -- then add\n"
    "it to the model store under DIR/store (docs/store.md):\n"
    "  DIR/store/blobs/sha256/HEX          each payload file, named by its SHA-256, read-only\n"
    "  DIR/store/models/NAME/VERSION/      the signed MANIFEST.sha256, its .minisig, BOM.json\n"
    "                                      and record.json (signer, import time, files)\n"
    "The signature is checked again over the exact manifest bytes that are stored, and every\n"
    "file is hashed while it is copied into its blob: a file changed after verification is\n"
    "refused. Blobs and the version directory appear only complete (temp file, fsync, rename);\n"
    "on any failure the store is left as it was. Identical files are stored once, so a new\n"
    "version that shares files with an old one copies only what changed.\n"
    "\n"
    "A version is never replaced: importing NAME VERSION again with the same manifest does\n"
    "nothing and succeeds; with a different manifest it is refused (exit 3). NAME and VERSION\n"
    "must be 1-128 letters, digits, '.', '_', '-' or '+', starting with a letter or digit.\n"
    "The GGUF file `airlock serve --model NAME` serves is the bundle's only GGUF, or the one\n"
    "named with --model-file.\n"
    "\n"
    "Options:\n"
    "  -t, --trust PATH          minisign public key, or a directory of *.pub keys\n"
    "      --allow-unsigned      import without checking any signature (warned loudly;\n"
    "                            recorded as unsigned)\n"
    "  -d, --data DIR            data directory (default: $AIRLOCK_DATA, else ./airlock-data)\n"
    "      --model-file PATH     the GGUF to serve when the bundle holds several\n"
    "                            (payload/NAME.gguf or NAME.gguf)\n"
    "      --allow-code          let executable code through (reported loudly)\n"
    "      --allow-pickle        let pickle files through (reported loudly)\n"
    "  -j, --threads N           hashing threads while verifying (default: online CPUs)\n"
    "      --json                print {ok, already, name, version, signer_key_id, model,\n"
    "                            size, files, blobs_new, blobs_shared, bytes_copied}\n"
    "  -h, --help                show this text\n"
    "\n"
    "Exit status:\n"
    "  0  imported, or already in the store with the same manifest\n"
    "  1  verification failed: bad or untrusted signature, modified, missing or extra file,\n"
    "     unsafe content, or a file changed while it was being imported\n"
    "  2  usage error (also: several GGUF files and no --model-file)\n"
    "  3  I/O error, or NAME VERSION is already in the store with different content\n"
    "  4  not an airlock bundle, a hostile tar, or a name/version the store cannot hold\n"
    "\n"
    "Example:\n"
    "  airlock import qwen-0.5b.tar --trust site.pub --data /var/lib/airlock\n"
    "  airlock models --data /var/lib/airlock\n"
    "  airlock serve --data /var/lib/airlock --model qwen2.5-0.5b-instruct\n";

static void
import_print_json(const struct store_import_result *res, const struct bundle_report *r,
                  const struct al_err *e, bool ok)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(ok));
    if (ok) {
        const struct store_record *rec = &res->rec;
        json_t *files = json_array();
        for (size_t i = 0; i < rec->n_files; i++)
            json_array_append_new(files,
                                  json_pack("{s:s,s:s,s:I,s:s}", "path", rec->files[i].path,
                                            "sha256", rec->files[i].hex, "size",
                                            (json_int_t)rec->files[i].size, "format",
                                            rec->files[i].format));
        json_object_set_new(o, "already", json_boolean(res->already));
        json_object_set_new(o, "name", json_string(rec->name));
        json_object_set_new(o, "version", json_string(rec->version));
        json_object_set_new(o, "signer_key_id",
                            rec->signer_key_id[0] ? json_string(rec->signer_key_id) : json_null());
        json_object_set_new(o, "model", rec->model >= 0 ? json_string(rec->files[rec->model].path)
                                                        : json_null());
        json_object_set_new(o, "size", json_integer((json_int_t)rec->size));
        json_object_set_new(o, "imported", json_integer((json_int_t)rec->imported));
        json_object_set_new(o, "dir", json_string(rec->dir ? rec->dir : ""));
        json_object_set_new(o, "files", files);
        json_object_set_new(o, "blobs_new", json_integer((json_int_t)res->blobs_new));
        json_object_set_new(o, "blobs_shared", json_integer((json_int_t)res->blobs_shared));
        json_object_set_new(o, "bytes_copied", json_integer((json_int_t)res->bytes_copied));
    } else {
        json_object_set_new(o, "error", json_pack("{s:s,s:s,s:i}", "message", e->msg, "code",
                                                  al_code_name(e->code), "exit_status",
                                                  al_exit_status(e->code)));
    }
    json_object_set_new(o, "failures", bundle_cli_json_failures(r));
    json_object_set_new(o, "warnings", bundle_cli_json_strings(r->warnings, r->n_warnings));
    json_dumpf(o, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
}

enum { O_MODEL_FILE = BUNDLE_OPT_OWN };

/* In usage-text order: getopt_long names an ambiguous abbreviation's candidates in this order. */
static const struct option import_opts[] = {
    BUNDLE_CLI_OPTION_TRUST,
    BUNDLE_CLI_OPTION_UNSIGNED,
    {"data", required_argument, NULL, 'd'},
    {"model-file", required_argument, NULL, O_MODEL_FILE},
    BUNDLE_CLI_OPTIONS_TAIL,
    {NULL, 0, NULL, 0},
};

/* What import's own options set. */
struct import_args {
    struct store_import_opts o; /* for store_import */
    const char *data;           /* -d, --data DIR; NULL for cli_data_dir's default */
};

/* bundle_cli_own_fn: import's own options, into the struct import_args ud. */
static int
import_option(void *ud, int opt, const char *arg)
{
    struct import_args *a = ud;
    if (opt == 'd')
        a->data = arg;
    else if (opt == O_MODEL_FILE)
        a->o.model_file = arg;
    else
        return 0;
    return 1;
}

int
cmd_import(int argc, char **argv)
{
    struct import_args a;
    memset(&a, 0, sizeof a);
    struct store_import_opts *o = &a.o;
    struct bundle_cli bc = BUNDLE_CLI_INIT(*o);
    struct al_err e = {0};
    int rc;
    o->bundle = bundle_cli_parse(&bc, "import", argc, argv, "t:d:j:h", import_opts, import_option,
                                 &a, &rc);
    if (!o->bundle)
        return rc;
    bool json = bc.json;
    if (!o->trust && !o->allow_unsigned)
        return cli_usage_error("import", "--trust PUBFILE_OR_DIR is required (or, to import "
                                         "without any signature check, --allow-unsigned)");
    if (o->trust && o->allow_unsigned)
        return cli_usage_error("import", "--trust and --allow-unsigned are exclusive");
    const char *data = cli_data_dir(a.data);
    o->progress = cli_stderr_is_tty() && !json;

    struct bundle_report r;
    bundle_report_init(&r);
    struct store_import_result res;
    memset(&res, 0, sizeof res);
    int ir = store_import(data, o, &res, &r, &e);
    bundle_cli_print_report("import", &r,
                            "WARNING: UNSIGNED -- nothing vouches for this model "
                            "(--allow-unsigned); it is recorded as unsigned");
    if (ir != 0) {
        if (json)
            import_print_json(&res, &r, &e, false);
        if (e.code == AL_EVERIFY) {
            fprintf(stderr, "airlock import: FAILED: %s\n", e.msg);
            rc = AL_EXIT_VERIFY;
        } else {
            rc = cli_fail("import", &e, false);
        }
        goto out;
    }
    if (json) {
        import_print_json(&res, &r, &e, true);
    } else {
        const struct store_record *rec = &res.rec;
        if (res.already)
            printf("OK: %s %s is already in the store with the same manifest; nothing changed",
                   rec->name, rec->version);
        else
            printf("OK: imported %s %s: %zu file%s, %llu bytes (%zu new blob%s, %zu shared, %llu "
                   "bytes copied)", rec->name, rec->version, rec->n_files,
                   rec->n_files == 1 ? "" : "s", (unsigned long long)rec->size, res.blobs_new,
                   res.blobs_new == 1 ? "" : "s", res.blobs_shared,
                   (unsigned long long)res.bytes_copied);
        if (rec->signer_key_id[0])
            printf(", signed by key ID %s", rec->signer_key_id);
        else
            printf(", UNSIGNED");
        printf("\n");
        if (rec->model >= 0)
            printf("serve it with: airlock serve --data %s --model %s:%s\n", data, rec->name,
                   rec->version);
        else
            printf("no GGUF file in this bundle: nothing for `airlock serve` to load\n");
    }
    rc = AL_EXIT_OK;
out:
    store_import_result_free(&res);
    bundle_report_free(&r);
    return rc;
}
