/* fuzz_minisig.c -- libFuzzer target for the minisign text parsers: public keys, signatures
 * and secret key files, through the same entry points production uses. Secret keys are
 * only decrypted when unencrypted (no scrypt work per input); an accepted signature is
 * formatted and parsed again, which must give the same text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/minisig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct al_err e = {0};
    struct minisig_pubkey pk;
    struct minisig_sig *s = malloc(sizeof *s);
    struct minisig_sig *s2 = malloc(sizeof *s2);
    struct minisig_seckey_info info;
    if (!s || !s2)
        abort();
    if (minisig_pubkey_parse(text, size, &pk, &e) == 0) {
        char *again = minisig_pubkey_format(&pk, NULL);
        if (minisig_pubkey_parse(again, strlen(again), &pk, &e) != 0)
            abort();
        free(again);
    }
    if (minisig_sig_parse(text, size, s, &e) == 0) {
        char *again = minisig_sig_format(s);
        if (minisig_sig_parse(again, strlen(again), s2, &e) != 0 ||
            memcmp(s->sig, s2->sig, sizeof s->sig) != 0 ||
            strcmp(s->trusted_comment, s2->trusted_comment) != 0)
            abort();
        free(again);
        struct minisig_trust t = {&pk, 1};
        (void)minisig_verify_buf(&t, s, data, size, NULL, &e); /* result irrelevant */
    }
    if (minisig_seckey_inspect(text, size, &info, &e) == 0 && !info.encrypted) {
        struct minisig_seckey *sk = NULL;
        if (minisig_seckey_parse(text, size, "fuzz", "", &sk, &e) == 0)
            minisig_seckey_free(sk);
    }
    free(s);
    free(s2);
    return 0;
}
