/* pgp.c -- run gpgv as apt does and judge its status lines (see pgp.h). Never parses OpenPGP
 * packets, never uses a shell: fork + execvp with an argv array. gpgv's status output is
 * read from a private pipe on fd 3 and treated as untrusted text. */
#include "transfer/pgp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define PGP_STATUS_MAX (256u << 10) /* bytes of status output we read from gpgv */

/* ===== Status lines ====================================================================== */

/* Copy the rest of a status line (after the keyword and one space) into out. */
static void
status_arg_copy(const char *p, size_t n, char *out, size_t cap)
{
    size_t k = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < k; i++)
        out[i] = (p[i] >= 0x20 && p[i] != 0x7f) ? p[i] : '?';
    out[k] = '\0';
}

int
pgp_status_judge(const char *status, size_t len, int gpgv_rc, const char *sig_path,
                 struct pgp_result *res, struct al_err *e)
{
    /* in priority order: the most specific reason wins (gpgv prints ERRSIG before
     * NO_PUBKEY for an unknown signer) */
    static const char *const bad[] = {"BADSIG", "NO_PUBKEY", "EXPKEYSIG", "REVKEYSIG",
                                      "EXPSIG", "ERRSIG",    "NODATA",    "FAILURE"};
    static const char *const why[] = {
        "the signature does not match the file (BADSIG)",
        "signed by a key that is not in the trusted keyring (NO_PUBKEY)",
        "signed by an expired key (EXPKEYSIG)",
        "signed by a revoked key (REVKEYSIG)",
        "the signature has expired (EXPSIG)",
        "the signature could not be checked (ERRSIG)",
        "no OpenPGP signature data found (NODATA)",
        "gpgv reported a failure (FAILURE)"};
    enum { N_BAD = sizeof bad / sizeof bad[0] };
    char bad_arg[N_BAD][200];
    bool bad_seen[N_BAD] = {false};
    bool good = false, valid = false;
    memset(res, 0, sizeof *res);
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(status + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (status + pos)) : len - pos;
        const char *l = status + pos;
        pos += n + (nl ? 1 : 0);
        static const char pfx[] = "[GNUPG:] ";
        if (n < sizeof pfx - 1 || memcmp(l, pfx, sizeof pfx - 1) != 0)
            continue;
        l += sizeof pfx - 1;
        n -= sizeof pfx - 1;
        size_t kw = 0;
        while (kw < n && l[kw] != ' ')
            kw++;
        const char *arg = kw < n ? l + kw + 1 : l + n;
        size_t alen = kw < n ? n - kw - 1 : 0;
        for (size_t i = 0; i < N_BAD; i++)
            if (!bad_seen[i] && kw == strlen(bad[i]) && memcmp(l, bad[i], kw) == 0) {
                bad_seen[i] = true;
                status_arg_copy(arg, alen, bad_arg[i], sizeof bad_arg[i]);
            }
        if (kw == 7 && memcmp(l, "GOODSIG", 7) == 0) {
            good = true;
            status_arg_copy(arg, alen, res->signer, sizeof res->signer);
        } else if (kw == 8 && memcmp(l, "VALIDSIG", 8) == 0) {
            valid = true;
            /* VALIDSIG <fpr> <date> ... <primary-fpr>: keep the first field */
            size_t f = 0;
            while (f < alen && arg[f] != ' ')
                f++;
            status_arg_copy(arg, f, res->fingerprint, sizeof res->fingerprint);
        }
    }
    for (size_t i = 0; i < N_BAD; i++)
        if (bad_seen[i])
            return al_errf(e, AL_EVERIFY, "%s: %s [%s]", sig_path, why[i], bad_arg[i]);
    if (gpgv_rc != 0)
        return al_errf(e, AL_EVERIFY, "%s: gpgv rejected the signature (exit status %d)", sig_path,
                       gpgv_rc);
    if (!good || !valid)
        return al_errf(e, AL_EVERIFY,
                       "%s: gpgv did not report a good, valid signature "
                       "(GOODSIG and VALIDSIG required)",
                       sig_path);
    return 0;
}

/* ===== Running gpgv ====================================================================== */

int
pgp_verify_detached(const char *keyring, const char *sig_path, const char *data_path,
                    struct pgp_result *res, struct al_err *e)
{
    int rc = -1;
    int pfd[2] = {-1, -1};
    pid_t pid = -1;
    struct buf out;
    buf_init(&out);
    /* gpgv looks a slash-less keyring name up in its home directory; force a path */
    char *kr = strchr(keyring, '/') ? xstrdup(keyring) : xasprintf("./%s", keyring);
    if (access(keyring, R_OK) != 0) {
        int err = errno;
        if (err == ENOENT)
            al_errf(e, AL_ENOTFOUND, "%s: keyring not found", keyring);
        else
            al_errno(e, err, "%s: keyring", keyring);
        goto out;
    }
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        al_errno(e, errno, "gpgv: pipe");
        goto out;
    }
    char *argv[] = {"gpgv",           "--keyring",       kr,  "--status-fd", "3",
                    (char *)sig_path, (char *)data_path, NULL};
    pid = fork();
    if (pid < 0) {
        al_errno(e, errno, "gpgv: fork");
        goto out;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 ||
            dup2(pfd[1], 3) < 0)
            _exit(127);
        if (pfd[1] == 3)
            (void)fcntl(3, F_SETFD, 0); /* dup2 onto itself keeps O_CLOEXEC */
        execvp("gpgv", argv);
        _exit(127);
    }
    close(pfd[1]);
    pfd[1] = -1;
    char chunk[4096];
    for (;;) {
        ssize_t r = read(pfd[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (out.len + (size_t)r <= PGP_STATUS_MAX)
            buf_append(&out, chunk, (size_t)r);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            al_errno(e, errno, "gpgv: waitpid");
            goto out;
        }
    }
    pid = -1;
    int grc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (grc == 127) {
        al_errf(e, AL_ENOTFOUND, "gpgv could not be run (install Debian's gpgv package)");
        goto out;
    }
    rc = pgp_status_judge(out.data ? out.data : "", out.len, grc, sig_path, res, e);
out:
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    free(kr);
    buf_free(&out);
    return rc;
}
