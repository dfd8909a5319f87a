/* cmd_sign.c -- `airlock sign`: write a minisign-compatible signature of a file, or with
 * --verify check any minisign signature against a public key file, key string or key
 * directory. Option parsing and output only; the work is in transfer/{minisig,sign}.c. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "crypto/secmem.h"
#include "transfer/minisig.h"
#include "util/fsx.h"
#include "util/xalloc.h"

const char cmd_sign_usage[] =
    "Usage: airlock sign -s KEYFILE -m FILE [-x SIGFILE] [-t TRUSTED_COMMENT]\n"
    "                    [-c UNTRUSTED_COMMENT] [--passphrase-file F] [--json]\n"
    "       airlock sign --verify (-p PUBFILE|DIR | -P KEY) -m FILE [-x SIGFILE] [-q]\n"
    "                    [--json]\n"
    "\n"
    "Sign FILE with a minisign secret key (made by `airlock keygen` or `minisign -G`),\n"
    "writing FILE.minisig unless -x names another file. The signature is the prehashed\n"
    "\"ED\" kind (Ed25519 over BLAKE2b-512 of the file), which `minisign -Vm FILE -p PUB`\n"
    "accepts. Every new signature is checked with the key's public half before it is\n"
    "written.\n"
    "\n"
    "With --verify (-V), check a minisign signature of FILE instead, in minisign's order:\n"
    "the key id must be trusted, then the signature must match the file, then the trusted\n"
    "comment must be intact. Legacy \"Ed\" signatures are accepted too.\n"
    "\n"
    "Options:\n"
    "  -s, --secret-key FILE     secret key to sign with\n"
    "  -m, --message FILE        the file to sign or verify (required)\n"
    "  -x, --signature FILE      signature file (default: FILE.minisig)\n"
    "  -t, --trusted-comment T   signed comment (default: \"timestamp:<unix time>\\t\n"
    "                            file:<basename>\\thashed\", as minisign)\n"
    "  -c, --comment TEXT        untrusted comment (default: \"signature from airlock\n"
    "                            secret key\")\n"
    "      --passphrase-file F   read the secret key passphrase from the first line of F\n"
    "                            (else AIRLOCK_PASSPHRASE, else asked on the terminal)\n"
    "  -V, --verify              verify instead of signing\n"
    "  -p, --public-key PATH     trusted public key file, or a directory whose *.pub\n"
    "                            files are all trusted (for --verify)\n"
    "  -P, --public-key-string K a trusted public key given as its base64 line\n"
    "  -q, --quiet               print nothing on success\n"
    "      --json                print the result as a JSON object\n"
    "  -h, --help                show this text\n"
    "\n"
    "Exit status:\n"
    "  0  signature written, or signature verified\n"
    "  1  verification failed (unknown key id, signature or trusted comment mismatch),\n"
    "     or wrong passphrase\n"
    "  2  usage error\n"
    "  3  I/O error (a file could not be read or written)\n"
    "  4  malformed or unsupported key or signature file\n"
    "\n"
    "Examples:\n"
    "  airlock sign -s release.key -m MANIFEST.sha256\n"
    "  airlock sign --verify -p release.pub -m MANIFEST.sha256\n"
    "  minisign -Vm MANIFEST.sha256 -p release.pub     # the same check with minisign\n";

/* ===== Helpers ============================================================================== */

static void
print_json(json_t *o)
{
    if (!o)
        return;
    json_dumpf(o, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
}

static int
sign_verify(const char *pub, const char *pub_string, const char *msg, const char *sig_path,
            bool quiet, bool json)
{
    struct al_err e = {0};
    struct minisig_trust t = {0};
    struct minisig_sig *s = xcalloc(1, sizeof *s);
    const struct minisig_pubkey *signer = NULL;
    int rc;
    if (pub) {
        if (minisig_trust_load(pub, &t, &e) < 0)
            goto fail;
    } else {
        t.keys = xcalloc(1, sizeof *t.keys);
        if (minisig_pubkey_parse(pub_string, strlen(pub_string), &t.keys[0], &e) < 0)
            goto fail;
        t.n = 1;
    }
    if (minisig_sig_load(sig_path, s, &e) < 0)
        goto fail;
    if (minisig_verify_file(&t, s, msg, &signer, &e) < 0)
        goto fail;
    char id[17];
    minisig_keyid_hex(signer->key_id, id);
    if (json) {
        print_json(json_pack("{s:b,s:s,s:s,s:s,s:s,s:b}", "verified", 1, "file", msg, "signature",
                             sig_path, "key_id", id, "trusted_comment", s->trusted_comment,
                             "prehashed", s->prehashed));
    } else if (!quiet) {
        printf("Signature and comment signature verified\nTrusted comment: %s\n",
               s->trusted_comment);
    }
    rc = AL_EXIT_OK;
    goto out;
fail:
    rc = cli_fail("sign", &e, json);
out:
    minisig_trust_free(&t);
    free(s);
    return rc;
}

static int
sign_write(const char *sec, const char *msg, const char *sig_path, const char *tc, const char *uc,
           const char *pass_file, bool quiet, bool json)
{
    struct al_err e = {0};
    struct minisig_seckey *sk = NULL;
    struct minisig_sig *s = xcalloc(1, sizeof *s);
    char *pass = NULL;
    char *text = NULL;
    int rc;
    /* read a passphrase only when asked to; otherwise the key file decides (env or tty) */
    if (pass_file && minisig_passphrase_read(pass_file, false, &pass, &e) < 0)
        goto fail;
    if (minisig_seckey_load(sec, pass, &sk, &e) < 0)
        goto fail;
    if (minisig_sign_file(sk, msg, tc, uc, s, &e) < 0)
        goto fail;
    text = minisig_sig_format(s);
    if (fsx_write_atomic(sig_path, text, strlen(text), 0644, 0, &e) < 0)
        goto fail;
    char id[17];
    minisig_keyid_hex(s->key_id, id);
    if (json)
        print_json(json_pack("{s:s,s:s,s:s,s:s}", "file", msg, "signature", sig_path, "key_id", id,
                             "trusted_comment", s->trusted_comment));
    else if (!quiet)
        printf("signed %s with key ID %s: %s\n", msg, id, sig_path);
    rc = AL_EXIT_OK;
    goto out;
fail:
    rc = cli_fail("sign", &e, json);
out:
    free(text);
    free(s);
    minisig_seckey_free(sk);
    secmem_free(pass);
    return rc;
}

/* ===== Command ============================================================================== */

int
cmd_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret-key", required_argument, NULL, 's'},
        {"message", required_argument, NULL, 'm'},
        {"signature", required_argument, NULL, 'x'},
        {"trusted-comment", required_argument, NULL, 't'},
        {"comment", required_argument, NULL, 'c'},
        {"passphrase-file", required_argument, NULL, 'F'},
        {"verify", no_argument, NULL, 'V'},
        {"public-key", required_argument, NULL, 'p'},
        {"public-key-string", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *sec = NULL, *msg = NULL, *sig = NULL, *tc = NULL, *uc = NULL;
    const char *pass_file = NULL, *pub = NULL, *pub_string = NULL;
    bool verify = false, quiet = false, json = false;
    int c;
    optind = 1;
    opterr = 0; /* our own message below names the offending argument */
    while ((c = getopt_long(argc, argv, "s:m:x:t:c:Vp:P:q", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sec = optarg;
            break;
        case 'm':
            msg = optarg;
            break;
        case 'x':
            sig = optarg;
            break;
        case 't':
            tc = optarg;
            break;
        case 'c':
            uc = optarg;
            break;
        case 'F':
            pass_file = optarg;
            break;
        case 'V':
            verify = true;
            break;
        case 'p':
            pub = optarg;
            break;
        case 'P':
            pub_string = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'j':
            json = true;
            break;
        default:
            return cli_usage_error("sign", "unknown option or missing value: '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("sign", "unexpected argument '%s'", argv[optind]);
    if (!msg)
        return cli_usage_error("sign", "-m FILE is required");
    char *sig_default = NULL;
    if (!sig || !*sig) {
        sig_default = xasprintf("%s.minisig", msg);
        sig = sig_default;
    }
    int rc;
    if (verify) {
        if (sec || tc || uc || pass_file)
            rc = cli_usage_error("sign", "--verify takes no -s, -t, -c or --passphrase-file");
        else if (!pub == !pub_string)
            rc = cli_usage_error("sign", "--verify needs exactly one of -p PATH or -P KEY");
        else
            rc = sign_verify(pub, pub_string, msg, sig, quiet, json);
    } else {
        if (pub || pub_string)
            rc = cli_usage_error("sign", "-p/-P are for --verify; signing needs -s KEYFILE");
        else if (!sec)
            rc = cli_usage_error("sign", "-s KEYFILE is required");
        else
            rc = sign_write(sec, msg, sig, tc, uc, pass_file, quiet, json);
    }
    free(sig_default);
    return rc;
}
