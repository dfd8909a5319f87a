/* audit_sig.c -- minisign adapters for audit checkpoints (see audit_sig.h).
 * Owns nothing but the glue: parsing and verifying signatures is transfer/minisig.c's job, and
 * the secret key stays inside its opaque struct. sig_text comes from an untrusted log. */
#include "audit/audit_sig.h"

#include <string.h>

#include "transfer/minisig.h"

#define CHECKPOINT_COMMENT "airlock audit checkpoint"

int
audit_sig_sign(void *ctx, const void *msg, size_t len, char **sig_out, struct al_err *e)
{
    const struct minisig_seckey *sk = ctx;
    struct minisig_sig s;
    *sig_out = NULL;
    if (minisig_sign_buf(sk, msg, len, CHECKPOINT_COMMENT, "airlock audit log checkpoint", &s,
                         e) < 0)
        return -1;
    *sig_out = minisig_sig_format(&s);
    return 0;
}

int
audit_sig_check(void *ctx, const void *msg, size_t len, const char *sig_text, struct al_err *e)
{
    const struct minisig_trust *t = ctx;
    struct minisig_sig s;
    if (minisig_sig_parse(sig_text, strlen(sig_text), &s, e) < 0)
        return -1;
    return minisig_verify_buf(t, &s, msg, len, NULL, e);
}
