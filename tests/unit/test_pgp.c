/* test_pgp.c -- judging gpgv status lines: GOODSIG and VALIDSIG required, any of BADSIG,
 * ERRSIG, NO_PUBKEY, EXPSIG, EXPKEYSIG, REVKEYSIG rejects, the most specific reason wins,
 * a non-zero gpgv exit rejects, and lines not starting with "[GNUPG:] " are ignored. */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "transfer/pgp.h"

#define GOOD "[GNUPG:] GOODSIG 73B71C68C9D9F118 Drive Signer <s@example.org>\n"
#define VALID                                                                                      \
    "[GNUPG:] VALIDSIG EBC673E50030DC3B4FBDE7B773B71C68C9D9F118 2026-11-24 1795512537 0 4 0 "      \
    "22 8 00 EBC673E50030DC3B4FBDE7B773B71C68C9D9F118\n"

static int
judge(const char *s, int rc, struct pgp_result *res, struct al_err *e)
{
    memset(e, 0, sizeof *e);
    return pgp_status_judge(s, strlen(s), rc, "x.sig", res, e);
}

static void
test_good(void **state)
{
    (void)state;
    struct pgp_result res;
    struct al_err e;
    assert_int_equal(
        judge("[GNUPG:] NEWSIG\n[GNUPG:] KEY_CONSIDERED X 0\n" GOOD VALID, 0, &res, &e), 0);
    assert_string_equal(res.fingerprint, "EBC673E50030DC3B4FBDE7B773B71C68C9D9F118");
    assert_non_null(strstr(res.signer, "Drive Signer"));
}

static void
test_required_and_rejected(void **state)
{
    (void)state;
    struct pgp_result res;
    struct al_err e;
    assert_int_equal(judge(GOOD, 0, &res, &e), -1);  /* VALIDSIG missing */
    assert_int_equal(judge(VALID, 0, &res, &e), -1); /* GOODSIG missing */
    assert_int_equal(judge("", 0, &res, &e), -1);
    assert_int_equal(judge(GOOD VALID, 1, &res, &e), -1); /* gpgv said no */
    assert_int_equal(e.code, AL_EVERIFY);
    static const char *const bad[] = {"BADSIG", "ERRSIG",    "NO_PUBKEY",
                                      "EXPSIG", "EXPKEYSIG", "REVKEYSIG"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[512];
        snprintf(s, sizeof s, GOOD VALID "[GNUPG:] %s 1234\n", bad[i]);
        assert_int_equal(judge(s, 0, &res, &e), -1);
        assert_non_null(strstr(e.msg, bad[i]));
    }
    /* gpgv prints ERRSIG before NO_PUBKEY for an unknown signer: name the key problem */
    assert_int_equal(judge("[GNUPG:] ERRSIG 1 22 8 00 1 9 F\n[GNUPG:] NO_PUBKEY 1\n", 2, &res, &e),
                     -1);
    assert_non_null(strstr(e.msg, "NO_PUBKEY"));
    /* forged lines on another channel do not count */
    assert_int_equal(judge("GOODSIG x\n VALIDSIG y\n[GNUPG:]GOODSIG z\n", 0, &res, &e), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_required_and_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
