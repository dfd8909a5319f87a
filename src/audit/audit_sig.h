/* audit_sig.h -- checkpoint signing and checking for audit.h through transfer/minisig.h.
 * Kept apart from audit.c so the log itself does not depend on key handling: the server passes
 * audit_sig_sign with its loaded secret key, `airlock audit verify --trust` passes
 * audit_sig_check with the trusted public keys. A checkpoint's "sig" field is the complete
 * minisign signature text (prehashed "ED", trusted comment "airlock audit checkpoint"). */
#ifndef AIRLOCK_AUDIT_AUDIT_SIG_H
#define AIRLOCK_AUDIT_AUDIT_SIG_H

#include <stddef.h>

#include "util/err.h"

/* audit_sign_fn; ctx is a const struct minisig_seckey * (borrowed). */
int audit_sig_sign(void *ctx, const void *msg, size_t len, char **sig_out, struct al_err *e);
/* audit_check_fn; ctx is a const struct minisig_trust * (borrowed). */
int audit_sig_check(void *ctx, const void *msg, size_t len, const char *sig_text,
                    struct al_err *e);

#endif
