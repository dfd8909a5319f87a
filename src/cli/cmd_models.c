/* cmd_models.c -- `airlock models`: list the model versions in the store under the data
 * directory (what `airlock import` put there). Output only; reading is store/store.c. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "store/store.h"

const char cmd_models_usage[] =
    "Usage: airlock models [NAME] [--data DIR] [--json]\n"
    "\n"
    "List the model versions `airlock import` added to the store under DIR/store: name,\n"
    "version, payload size, the key ID that signed the bundle (UNSIGNED when imported with\n"
    "--allow-unsigned) and the import time (UTC). Versions of one name are listed newest\n"
    "first; '*' marks the one `airlock serve --model NAME` serves (the latest import).\n"
    "With NAME, only that model's versions.\n"
    "\n"
    "Options:\n"
    "  -d, --data DIR   data directory (default: $AIRLOCK_DATA, else ./airlock-data)\n"
    "      --json       print {\"models\": [{name, version, default, size, signer_key_id,\n"
    "                   imported, imported_at, model, model_sha256, files}]}\n"
    "  -h, --help       show this text\n"
    "\n"
    "Exit status: 0 listed (an empty or missing store lists nothing); 2 usage; 3 I/O error;\n"
    "4 a damaged record.json in the store (named in the message).\n"
    "\n"
    "Example:\n"
    "  airlock models --data /var/lib/airlock\n"
    "  airlock models qwen2.5-0.5b-instruct --json\n";

static void
human_size(char *out, size_t cap, uint64_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof unit / sizeof unit[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(out, cap, "%.1f %s", v, unit[u]);
}

static void
utc_time(char *out, size_t cap, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tmv;
    out[0] = '\0';
    if (gmtime_r(&tt, &tmv))
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tmv);
}

int
cmd_models(int argc, char **argv)
{
    enum { O_JSON = 256 };
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *only = NULL;
    bool json = false;
    struct al_err e = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case 'h':
            cli_print_usage("models", stdout);
            return AL_EXIT_OK;
        default:
            return cli_usage_error("models", "unknown or incomplete option");
        }
    }
    if (optind + 1 < argc)
        return cli_usage_error("models", "unexpected argument '%s'", argv[optind + 1]);
    if (optind < argc) {
        only = argv[optind];
        if (store_name_check(only, "NAME", &e) < 0)
            return cli_usage_error("models", "%s", e.msg);
    }
    data = cli_data_dir(data);
    struct store_list l;
    if (store_list(data, &l, &e) < 0)
        return cli_fail("models", &e, json);
    json_t *arr = json ? json_array() : NULL;
    if (!json && l.n)
        printf("  %-32s %-16s %10s  %-16s  %s\n", "NAME", "VERSION", "SIZE", "SIGNER",
               "IMPORTED");
    size_t shown = 0;
    for (size_t i = 0; i < l.n; i++) {
        const struct store_record *r = &l.v[i];
        if (only && strcmp(r->name, only) != 0)
            continue;
        bool dflt = i == 0 || strcmp(l.v[i - 1].name, r->name) != 0; /* newest of its name */
        char when[32], size[32];
        utc_time(when, sizeof when, r->imported);
        human_size(size, sizeof size, r->size);
        shown++;
        if (json) {
            json_t *o = json_pack("{s:s,s:s,s:b,s:I,s:o,s:I,s:s,s:o,s:o,s:I}", "name", r->name,
                                  "version", r->version, "default", dflt, "size",
                                  (json_int_t)r->size, "signer_key_id",
                                  r->signer_key_id[0] ? json_string(r->signer_key_id)
                                                      : json_null(),
                                  "imported", (json_int_t)r->imported, "imported_at", when,
                                  "model",
                                  r->model >= 0 ? json_string(r->files[r->model].path)
                                                : json_null(),
                                  "model_sha256",
                                  r->model >= 0 ? json_string(r->files[r->model].hex)
                                                : json_null(),
                                  "files", (json_int_t)r->n_files);
            json_array_append_new(arr, o);
        } else {
            printf("%c %-32s %-16s %10s  %-16s  %s\n", dflt ? '*' : ' ', r->name, r->version,
                   size, r->signer_key_id[0] ? r->signer_key_id : "UNSIGNED", when);
        }
    }
    if (json) {
        json_t *o = json_pack("{s:o}", "models", arr);
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    } else if (shown == 0) {
        fprintf(stderr, "airlock models: no models%s%s in %s/store (add one with `airlock "
                "import`)\n", only ? " named " : "", only ? only : "", data);
    }
    store_list_free(&l);
    return AL_EXIT_OK;
}
