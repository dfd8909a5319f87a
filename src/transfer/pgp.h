/* pgp.h -- OpenPGP detached signatures checked the way apt checks them: by running Debian's
 * `gpgv --keyring KEYRING --status-fd 1 SIG FILE` (fork/execvp, argv array, no shell) and
 * reading its [GNUPG:] status lines. airlock never parses OpenPGP packets itself.
 * A signature is good only when gpgv exits 0, reports GOODSIG and VALIDSIG, and reports none
 * of BADSIG, ERRSIG, NO_PUBKEY, EXPSIG, EXPKEYSIG, REVKEYSIG. Status output is untrusted. */
#ifndef AIRLOCK_TRANSFER_PGP_H
#define AIRLOCK_TRANSFER_PGP_H

#include <stddef.h>

#include "util/err.h"

struct pgp_result {
    char fingerprint[128]; /* VALIDSIG primary-key fingerprint (hex), "" when none */
    char signer[256];      /* GOODSIG user id text, for the report */
};

/* Status lines of gpgv, judged (exposed for tests and the fuzzer). gpgv_rc: gpgv's exit status. */
int pgp_status_judge(const char *status, size_t len, int gpgv_rc, const char *sig_path,
                     struct pgp_result *res, struct al_err *e);

/* Check sig_path over data_path with the keys in keyring (a file made by `gpg --export`).
 * Failures are AL_EVERIFY naming what gpgv reported; a missing gpgv is AL_ENOTFOUND. */
int pgp_verify_detached(const char *keyring, const char *sig_path, const char *data_path,
                        struct pgp_result *res, struct al_err *e);

#endif
