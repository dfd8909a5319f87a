/* test_hash.c -- crypto/hash.c (SHA-256, BLAKE2b-512, files, pools), crypto/blake2b.c,
 * crypto/secmem.c and util/progress.c. Known-answer vectors are the published ones for
 * "" and "abc"; everything else is checked against the one-shot functions. */
/* cmocka needs these headers first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/blake2b.h"
#include "crypto/hash.h"
#include "crypto/secmem.h"
#include "util/fsx.h"
#include "util/progress.h"
#include "util/xalloc.h"

static const char sha_empty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char sha_abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char b2_empty[] = "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
                               "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce";
static const char b2_abc[] = "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
                             "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923";
static const char b2_256_empty[] =
    "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8";
static const char b2_256_abc[] = "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319";

/* ===== Helpers =============================================================================== */

static void
assert_hex(const uint8_t *d, size_t n, const char *want)
{
    char hex[2 * 64 + 1];
    hash_hex(d, n, hex);
    assert_string_equal(hex, want);
}

/* deterministic pseudo-random bytes (xorshift), so failures reproduce */
static void
fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

struct tmpdir {
    char path[64]; /* mkdtemp result */
};

static void
tmpdir_make(struct tmpdir *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/test_hash.XXXXXX");
    assert_non_null(mkdtemp(t->path));
}

static char *
write_file(struct tmpdir *t, const char *name, const uint8_t *p, size_t n)
{
    struct al_err e = {0};
    char *path = fsx_join(t->path, name);
    assert_int_equal(fsx_write_atomic(path, p, n, 0600, 0, &e), 0);
    return path;
}

/* ===== Known answers ========================================================================= */

static void
hash_sha256_matches_known_vectors(void **st)
{
    (void)st;
    uint8_t d[SHA256_LEN];
    struct al_err e = {0};
    assert_int_equal(hash_sha256("", 0, d, &e), 0);
    assert_hex(d, sizeof d, sha_empty);
    assert_int_equal(hash_sha256(NULL, 0, d, &e), 0);
    assert_hex(d, sizeof d, sha_empty);
    assert_int_equal(hash_sha256("abc", 3, d, &e), 0);
    assert_hex(d, sizeof d, sha_abc);
}

static void
hash_blake2b512_matches_known_vectors(void **st)
{
    (void)st;
    uint8_t d[BLAKE2B512_LEN];
    struct al_err e = {0};
    assert_int_equal(hash_blake2b512("", 0, d, &e), 0);
    assert_hex(d, sizeof d, b2_empty);
    assert_int_equal(hash_blake2b512("abc", 3, d, &e), 0);
    assert_hex(d, sizeof d, b2_abc);
}

static void
blake2b_digest_matches_vectors_and_openssl(void **st)
{
    (void)st;
    uint8_t d[64], ref[64];
    struct al_err e = {0};
    assert_int_equal(blake2b_digest(d, 32, "", 0), 0);
    assert_hex(d, 32, b2_256_empty);
    assert_int_equal(blake2b_digest(d, 32, "abc", 3), 0);
    assert_hex(d, 32, b2_256_abc);
    assert_int_equal(blake2b_digest(d, 0, "abc", 3), -1);
    assert_int_equal(blake2b_digest(d, 65, "abc", 3), -1);
    /* every length around the 128-byte block boundary, full output against OpenSSL */
    uint8_t buf[600];
    fill(buf, sizeof buf, 7);
    for (size_t n = 0; n <= sizeof buf; n += (n < 300 ? 1 : 37)) {
        assert_int_equal(blake2b_digest(d, 64, buf, n), 0);
        assert_int_equal(hash_blake2b512(buf, n, ref, &e), 0);
        assert_memory_equal(d, ref, 64);
    }
}

/* ===== Streaming and hex ===================================================================== */

static void
hash_streaming_equals_oneshot(void **st)
{
    (void)st;
    size_t n = 1000003;
    uint8_t *buf = xmalloc(n);
    uint8_t a[BLAKE2B512_LEN], b[BLAKE2B512_LEN];
    struct al_err e = {0};
    fill(buf, n, 1);
    for (int blake = 0; blake < 2; blake++) {
        struct hash_ctx c = {0};
        size_t len = blake ? BLAKE2B512_LEN : SHA256_LEN;
        assert_int_equal(blake ? hash_blake2b512_init(&c, &e) : hash_sha256_init(&c, &e), 0);
        size_t off = 0, step = 1;
        while (off < n) {
            size_t k = step < n - off ? step : n - off;
            assert_int_equal(hash_update(&c, buf + off, k, &e), 0);
            off += k;
            step = step * 3 + 1;
        }
        assert_int_equal(hash_update(&c, buf, 0, &e), 0);
        assert_int_equal(hash_final(&c, a, &e), 0);
        assert_null(c.md);
        /* a finished context refuses more work instead of crashing */
        assert_int_equal(hash_update(&c, buf, 1, &e), -1);
        assert_int_equal(e.code, AL_EINTERNAL);
        hash_ctx_free(&c);
        assert_int_equal(blake ? hash_blake2b512(buf, n, b, &e) : hash_sha256(buf, n, b, &e), 0);
        assert_memory_equal(a, b, len);
    }
    struct hash_ctx z = {0};
    hash_ctx_free(&z); /* safe on zero */
    free(buf);
}

static void
hash_hex_and_unhex_round_trip(void **st)
{
    (void)st;
    uint8_t d[4] = {0x00, 0xab, 0x7f, 0xff}, back[4];
    char hex[9];
    hash_hex(d, 4, hex);
    assert_string_equal(hex, "00ab7fff");
    assert_int_equal(hash_unhex(hex, 8, back, 4), 0);
    assert_memory_equal(d, back, 4);
    assert_int_equal(hash_unhex("00AB7FFF", 8, back, 4), 0);
    assert_memory_equal(d, back, 4);
    assert_int_equal(hash_unhex("00ab7ff", 7, back, 4), -1);
    assert_int_equal(hash_unhex("00ab7fffa", 9, back, 4), -1);
    assert_int_equal(hash_unhex("00ab7fgf", 8, back, 4), -1);
    assert_int_equal(hash_unhex("00ab 7ff", 8, back, 4), -1);
    assert_int_equal(hash_unhex("", 0, back, 0), 0);
    hash_hex(d, 0, hex);
    assert_string_equal(hex, "");
}

/* ===== Files and pools ======================================================================= */

static void
hash_file_equals_memory_and_counts_progress(void **st)
{
    (void)st;
    struct tmpdir t;
    struct al_err e = {0};
    tmpdir_make(&t);
    /* 20 MiB + 5 takes the reader-thread path; 1000 bytes the inline one */
    size_t sizes[] = {20u * 1024 * 1024 + 5, 1000, 0};
    uint8_t *buf = xmalloc(sizes[0]);
    fill(buf, sizes[0], 3);
    for (size_t i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%zu", i);
        char *path = write_file(&t, name, buf, sizes[i]);
        uint8_t a[SHA256_LEN], b[SHA256_LEN], c[BLAKE2B512_LEN], d[BLAKE2B512_LEN];
        uint64_t size = 12345;
        struct progress p;
        progress_init(&p, "hashing", sizes[i], false);
        assert_int_equal(hash_sha256_file(path, a, &size, &p, &e), 0);
        assert_int_equal(size, sizes[i]);
        assert_int_equal(atomic_load(&p.done), sizes[i]);
        progress_finish(&p);
        assert_int_equal(hash_sha256(buf, sizes[i], b, &e), 0);
        assert_memory_equal(a, b, SHA256_LEN);
        assert_int_equal(hash_blake2b512_file(path, c, &e), 0);
        assert_int_equal(hash_blake2b512(buf, sizes[i], d, &e), 0);
        assert_memory_equal(c, d, BLAKE2B512_LEN);
        free(path);
    }
    uint8_t a[SHA256_LEN];
    char *missing = fsx_join(t.path, "missing");
    assert_int_equal(hash_sha256_file(missing, a, NULL, NULL, &e), -1);
    assert_int_equal(e.code, AL_ENOTFOUND);
    assert_non_null(strstr(e.msg, "missing"));
    assert_int_equal(hash_sha256_file(t.path, a, NULL, NULL, &e), -1); /* a directory */
    free(missing);
    free(buf);
    fsx_remove_tree(t.path);
}

static void
hash_files_reports_each_job(void **st)
{
    (void)st;
    struct tmpdir t;
    struct al_err e = {0};
    tmpdir_make(&t);
    size_t sizes[] = {3u << 20, 0, 17u << 20, 12345, 1, 5u << 20};
    size_t ngood = sizeof sizes / sizeof sizes[0];
    size_t n = ngood + 2;
    uint8_t *buf = xmalloc((17u << 20) + 16); /* job i hashes buf + i */
    fill(buf, (17u << 20) + 16, 9);
    char *paths[8];
    for (size_t i = 0; i < ngood; i++) {
        char name[16];
        snprintf(name, sizeof name, "g%zu", i);
        paths[i] = write_file(&t, name, buf + i, sizes[i]);
    }
    paths[ngood] = fsx_join(t.path, "does-not-exist");
    paths[ngood + 1] = fsx_join(t.path, "link");
    assert_int_equal(symlink(paths[0], paths[ngood + 1]), 0); /* refused: O_NOFOLLOW */
    int threads[] = {0, 1, 3, 64};
    for (size_t k = 0; k < 4; k++) {
        struct hash_job jobs[8];
        memset(jobs, 0, sizeof jobs);
        for (size_t i = 0; i < n; i++)
            jobs[i].path = paths[i];
        struct progress p;
        progress_init(&p, "hashing", 0, false);
        assert_int_equal(hash_files(jobs, n, threads[k], &p, &e), 0);
        uint64_t total = 0;
        for (size_t i = 0; i < ngood; i++) {
            uint8_t want[SHA256_LEN];
            assert_int_equal(jobs[i].rc, 0);
            assert_int_equal(jobs[i].size, sizes[i]);
            assert_int_equal(hash_sha256(buf + i, sizes[i], want, &e), 0);
            assert_memory_equal(jobs[i].sha256, want, SHA256_LEN);
            total += sizes[i];
        }
        assert_int_equal(atomic_load(&p.done), total);
        assert_int_equal(jobs[ngood].rc, -1);
        assert_int_equal(jobs[ngood].err.code, AL_ENOTFOUND);
        assert_non_null(strstr(jobs[ngood].err.msg, "does-not-exist"));
        assert_int_equal(jobs[ngood + 1].rc, -1);
        assert_non_null(strstr(jobs[ngood + 1].err.msg, "symbolic link"));
    }
    assert_int_equal(hash_files(NULL, 0, 0, NULL, &e), 0);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(buf);
    fsx_remove_tree(t.path);
}

/* ===== secmem and progress =================================================================== */

static void
secmem_alloc_is_zeroed_and_frees(void **st)
{
    (void)st;
    uint8_t *p = secmem_alloc(100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(p[i], 0);
    memset(p, 0xaa, 100);
    secmem_free(p);
    uint8_t *big = secmem_alloc(3 * 4096 + 1);
    big[3 * 4096] = 1;
    secmem_free(big);
    secmem_free(NULL);
}

static void
progress_disabled_and_null_are_silent(void **st)
{
    (void)st;
    struct progress p;
    progress_add(NULL, 5);
    progress_finish(NULL);
    progress_init(&p, "x", 100, false);
    progress_add(&p, 60);
    progress_add(&p, 60);
    assert_int_equal(atomic_load(&p.done), 120);
    progress_finish(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_sha256_matches_known_vectors),
        cmocka_unit_test(hash_blake2b512_matches_known_vectors),
        cmocka_unit_test(blake2b_digest_matches_vectors_and_openssl),
        cmocka_unit_test(hash_streaming_equals_oneshot),
        cmocka_unit_test(hash_hex_and_unhex_round_trip),
        cmocka_unit_test(hash_file_equals_memory_and_counts_progress),
        cmocka_unit_test(hash_files_reports_each_job),
        cmocka_unit_test(secmem_alloc_is_zeroed_and_frees),
        cmocka_unit_test(progress_disabled_and_null_are_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
