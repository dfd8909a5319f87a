/* cmd_keys.c -- `airlock keys add|list|revoke`: manage the API keys `airlock serve` accepts.
 * Option parsing and output only; generation, storage and checking live in server/keys.c.
 * The new key goes alone to stdout (so scripts can capture it); everything else to stderr. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli/cli.h"
#include "server/keys.h"

const char cmd_keys_usage[] =
    "Usage: airlock keys add NAME [--expires DATE|DURATION] [--data DIR] [--json]\n"
    "       airlock keys list [--data DIR] [--json]\n"
    "       airlock keys revoke NAME [--data DIR] [--json]\n"
    "\n"
    "Manage the API keys that `airlock serve` accepts as \"Authorization: Bearer KEY\" or\n"
    "\"x-api-key: KEY\". A key is 32 random bytes written as \"al-\" + 43 base64url\n"
    "characters. It is shown ONCE, by `keys add`; only a salted SHA-256 of it is stored, in\n"
    "DIR/keys.json (mode 0600, replaced atomically). A lost key cannot be recovered: revoke\n"
    "it and add another. Names are never reused, so audit records always name one key.\n"
    "Format: docs/formats/keys.md.\n"
    "\n"
    "add      Create a key and print it on stdout (details on stderr).\n"
    "list     Show every key's name, status (active, expired, revoked), creation and expiry.\n"
    "revoke   Refuse the key from now on (a running server sees it on its next reload).\n"
    "\n"
    "Options:\n"
    "  -e, --expires WHEN   add: expiry as YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or a\n"
    "                       duration from now: 12h, 90d, 2w, 1y (default: never)\n"
    "  -d, --data DIR       data directory (default: $AIRLOCK_DATA, else ./airlock-data)\n"
    "      --json           print the result as JSON\n"
    "  -h, --help           show this text\n"
    "\n"
    "Output with --json: add: {\"name\", \"key\", \"created\", \"expires\"};\n"
    "list: {\"keys\": [{\"name\", \"status\", \"created\", \"expires\", \"revoked\"}]};\n"
    "revoke: {\"name\", \"revoked\"}.\n"
    "\n"
    "Exit status:\n"
    "  0  done\n"
    "  1  keys.json is readable or writable by group or others\n"
    "  2  usage error (bad name, bad or past expiry)\n"
    "  3  I/O error, name already used (add), no such key (revoke)\n"
    "  4  keys.json is malformed\n"
    "\n"
    "Examples:\n"
    "  KEY=$(airlock keys add ci-runner --expires 90d)\n"
    "  curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8080/v1/models\n"
    "  airlock keys revoke ci-runner\n";

static const char *
key_status(const struct keys_key *k, time_t now)
{
    if (k->revoked)
        return "revoked";
    if (k->expires && now >= k->expires)
        return "expired";
    return "active";
}

static json_t *
json_time(time_t t)
{
    char s[21];
    if (!t)
        return json_null();
    keys_time_format(t, s);
    return json_string(s);
}

static void
json_print(json_t *o)
{
    if (!o)
        return;
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);
}

static int
keys_add_cmd(const char *dir, const char *name, const char *expires_s, bool json)
{
    struct keyring kr = {0};
    struct al_err e = {0};
    char token[KEYS_TOKEN_LEN + 1];
    time_t now = time(NULL), expires = 0;
    int status = AL_EXIT_OK;
    int lock = -1;
    if (expires_s && keys_expiry_parse(expires_s, now, &expires, &e) < 0)
        return cli_usage_error("keys", "%s", e.msg);
    lock = keys_lock(dir, &e);
    if (lock < 0 || keys_load(dir, &kr, &e) < 0 ||
        keys_add(&kr, name, now, expires, token, &e) < 0 || keys_save(&kr, dir, &e) < 0) {
        status = cli_fail("keys", &e, json);
        goto out;
    }
    char exp[21] = "never";
    if (expires)
        keys_time_format(expires, exp);
    if (json) {
        json_print(json_pack("{s:s,s:s,s:o,s:o}", "name", name, "key", token, "created",
                             json_time(now), "expires", json_time(expires)));
    } else {
        printf("%s\n", token);
        fflush(stdout);
        fprintf(stderr, "airlock keys: created key '%s' in %s/%s (expires: %s).\n"
                        "This is the only time the key is shown; store it now. Clients send it as\n"
                        "\"Authorization: Bearer KEY\" or \"x-api-key: KEY\".\n",
                name, dir, KEYS_FILE, exp);
    }
out:
    OPENSSL_cleanse(token, sizeof token);
    keys_free(&kr);
    keys_unlock(lock);
    return status;
}

static int
keys_list_cmd(const char *dir, bool json)
{
    struct keyring kr = {0};
    struct al_err e = {0};
    time_t now = time(NULL);
    if (keys_load(dir, &kr, &e) < 0)
        return cli_fail("keys", &e, json);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < kr.n; i++) {
            const struct keys_key *k = &kr.keys[i];
            json_array_append_new(arr, json_pack("{s:s,s:s,s:o,s:o,s:o}", "name", k->name,
                                                 "status", key_status(k, now), "created",
                                                 json_time(k->created), "expires",
                                                 json_time(k->expires), "revoked",
                                                 json_time(k->revoked)));
        }
        json_print(json_pack("{s:o}", "keys", arr));
    } else if (kr.n == 0) {
        fprintf(stderr, "airlock keys: no keys in %s (add one with 'airlock keys add NAME')\n",
                dir);
    } else {
        printf("%-24s %-8s %-20s %-20s\n", "NAME", "STATUS", "CREATED", "EXPIRES");
        for (size_t i = 0; i < kr.n; i++) {
            const struct keys_key *k = &kr.keys[i];
            char c[21], x[21] = "never";
            keys_time_format(k->created, c);
            if (k->expires)
                keys_time_format(k->expires, x);
            printf("%-24s %-8s %-20s %-20s\n", k->name, key_status(k, now), c, x);
        }
    }
    keys_free(&kr);
    return AL_EXIT_OK;
}

static int
keys_revoke_cmd(const char *dir, const char *name, bool json)
{
    struct keyring kr = {0};
    struct al_err e = {0};
    int status = AL_EXIT_OK;
    int lock = keys_lock(dir, &e);
    if (lock < 0 || keys_load(dir, &kr, &e) < 0 || keys_revoke(&kr, name, time(NULL), &e) < 0 ||
        keys_save(&kr, dir, &e) < 0) {
        status = cli_fail("keys", &e, json);
        goto out;
    }
    const struct keys_key *k = keys_find(&kr, name);
    if (json) {
        json_print(json_pack("{s:s,s:o}", "name", name, "revoked", json_time(k->revoked)));
    } else {
        char t[21];
        keys_time_format(k->revoked, t);
        printf("revoked key '%s' (at %s)\n", name, t);
    }
out:
    keys_free(&kr);
    keys_unlock(lock);
    return status;
}

int
cmd_keys(int argc, char **argv)
{
    static const struct option opts[] = {
        {"expires", required_argument, NULL, 'e'},
        {"data", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *expires = NULL, *dir = NULL;
    bool json = false;
    int c;
    if (argc < 2)
        return cli_usage_error("keys", "missing subcommand (add, list or revoke)");
    const char *sub = argv[1];
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "e:d:", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            expires = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            return cli_usage_error("keys", "unknown or incomplete option");
        }
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    if (!dir)
        dir = getenv("AIRLOCK_DATA");
    if (!dir || !*dir)
        dir = "./airlock-data";
    if (!strcmp(sub, "add")) {
        if (nargs != 1)
            return cli_usage_error("keys", "add takes exactly one NAME");
        return keys_add_cmd(dir, args[0], expires, json);
    }
    if (expires)
        return cli_usage_error("keys", "--expires is for 'keys add'");
    if (!strcmp(sub, "list")) {
        if (nargs != 0)
            return cli_usage_error("keys", "list takes no arguments");
        return keys_list_cmd(dir, json);
    }
    if (!strcmp(sub, "revoke")) {
        if (nargs != 1)
            return cli_usage_error("keys", "revoke takes exactly one NAME");
        return keys_revoke_cmd(dir, args[0], json);
    }
    return cli_usage_error("keys", "unknown subcommand '%s' (add, list or revoke)", sub);
}
