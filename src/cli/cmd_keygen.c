/* cmd_keygen.c -- `airlock keygen`: create an Ed25519 key pair in minisign's file formats.
 * Option parsing and output only; key material is handled by transfer/sign.c. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "crypto/secmem.h"
#include "transfer/minisig.h"

const char cmd_keygen_usage[] =
    "Usage: airlock keygen [-W] [-f] -p PUBFILE -s KEYFILE [-c COMMENT]\n"
    "                      [--passphrase-file FILE] [--json]\n"
    "\n"
    "Create an Ed25519 signing key pair in minisign's formats: the public key file can be\n"
    "used with `minisign -V -p PUBFILE` and the secret key with `minisign -S -s KEYFILE`.\n"
    "The secret key is encrypted with a passphrase (scrypt, 1 GiB of memory, as minisign)\n"
    "unless -W is given. Both files are created with mode 0600; neither is written unless\n"
    "both can be, and existing files are never replaced without --force.\n"
    "\n"
    "Options:\n"
    "  -p, --public-key FILE     where to write the public key (required)\n"
    "  -s, --secret-key FILE     where to write the secret key (required)\n"
    "  -c, --comment TEXT        untrusted comment of the secret key file\n"
    "  -W, --no-passphrase       do not encrypt the secret key\n"
    "  -f, --force               overwrite existing key files\n"
    "      --passphrase-file F   read the passphrase from the first line of F\n"
    "      --json                print the result as a JSON object\n"
    "  -h, --help                show this text\n"
    "\n"
    "Passphrase: from --passphrase-file, else the environment variable AIRLOCK_PASSPHRASE,\n"
    "else asked twice on the terminal with echo off.\n"
    "\n"
    "Output: the key id (16 hex digits, as minisign prints it) and the public key path;\n"
    "with --json: {\"key_id\", \"public_key\", \"secret_key\", \"encrypted\"}.\n"
    "\n"
    "Exit status:\n"
    "  0  key pair written\n"
    "  2  usage error (missing option, passphrases differ, empty passphrase)\n"
    "  3  I/O error, or a key file already exists without --force\n"
    "\n"
    "Example:\n"
    "  airlock keygen -p release.pub -s release.key\n"
    "  airlock keygen -W -p test.pub -s test.key --json\n";

int
cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"public-key", required_argument, NULL, 'p'},
        {"secret-key", required_argument, NULL, 's'},
        {"comment", required_argument, NULL, 'c'},
        {"no-passphrase", no_argument, NULL, 'W'},
        {"force", no_argument, NULL, 'f'},
        {"passphrase-file", required_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *pub = NULL, *sec = NULL, *comment = NULL, *pass_file = NULL;
    bool unencrypted = false, force = false, json = false;
    struct al_err e = {0};
    char *pass = NULL;
    int rc;
    int c;
    optind = 1;
    opterr = 0; /* our own message below names the offending argument */
    while ((c = getopt_long(argc, argv, "p:s:c:Wf", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            pub = optarg;
            break;
        case 's':
            sec = optarg;
            break;
        case 'c':
            comment = optarg;
            break;
        case 'W':
            unencrypted = true;
            break;
        case 'f':
            force = true;
            break;
        case 'P':
            pass_file = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            return cli_usage_error("keygen", "unknown option or missing value: '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("keygen", "unexpected argument '%s'", argv[optind]);
    if (!pub || !sec)
        return cli_usage_error("keygen", "both -p PUBFILE and -s KEYFILE are required");
    if (unencrypted && pass_file)
        return cli_usage_error("keygen", "-W and --passphrase-file contradict each other");
    if (!unencrypted && minisig_passphrase_read(pass_file, true, &pass, &e) < 0) {
        rc = cli_fail("keygen", &e, json);
        goto out;
    }
    if (!unencrypted && cli_stderr_is_tty())
        fprintf(stderr, "deriving the encryption key from the passphrase (scrypt, 1 GiB)...\n");
    uint8_t key_id[MINISIG_KEYID_LEN];
    if (minisig_keygen_ex(pub, sec, pass, !unencrypted, force, comment, key_id, &e) < 0) {
        rc = cli_fail("keygen", &e, json);
        goto out;
    }
    char id[17];
    minisig_keyid_hex(key_id, id);
    if (json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "key_id", id, "public_key", pub, "secret_key",
                              sec, "encrypted", !unencrypted);
        if (o) {
            json_dumpf(o, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(o);
        }
    } else {
        printf("key id: %s\npublic key: %s\nsecret key: %s (%s)\n", id, pub, sec,
               unencrypted ? "not encrypted" : "encrypted");
    }
    rc = AL_EXIT_OK;
out:
    secmem_free(pass);
    return rc;
}
