/* test_tar.c -- the bundle tar writer and the hostile-entry checks of the reader: archives
 * are built in memory with libarchive (pax, ustar, GNU) and fed to tar_reader/tar_validate. */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/hash.h"
#include "transfer/tar.h"

struct ent {
    const char *name;
    unsigned type;    /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO */
    const char *data; /* regular files */
    const char *link; /* symlink target, or hardlink target when hard */
    int hard;
};

/* Build an archive of format fmt (ARCHIVE_FORMAT_TAR_*) in buf; returns its size. */
static size_t
build(int fmt, const struct ent *ents, size_t n, char *buf, size_t cap)
{
    locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = uselocale(l);
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format(a, fmt), ARCHIVE_OK);
    archive_write_add_filter_none(a);
    archive_write_set_bytes_in_last_block(a, 1);
    size_t used = 0;
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_copy_pathname(e, ents[i].name);
        archive_entry_set_filetype(e, ents[i].type);
        archive_entry_set_perm(e, 0644);
        size_t len = ents[i].data ? strlen(ents[i].data) : 0;
        if (ents[i].hard) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_copy_hardlink(e, ents[i].link);
        } else if (ents[i].type == AE_IFLNK) {
            archive_entry_copy_symlink(e, ents[i].link);
        } else if (ents[i].type == AE_IFREG) {
            archive_entry_set_size(e, (la_int64_t)len);
        } else if (ents[i].type == AE_IFCHR) {
            archive_entry_set_rdev(e, 0x0103);
        }
        assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
        if (ents[i].type == AE_IFREG && !ents[i].hard && len)
            archive_write_data(a, ents[i].data, len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    uselocale(old);
    freelocale(l);
    return used;
}

static char arc[1 << 20];

static void
expect_refused(int fmt, const struct ent *ents, size_t n, const char *needle)
{
    size_t len = build(fmt, ents, n, arc, sizeof arc);
    struct al_err e = {0};
    assert_int_equal(tar_validate_memory(arc, len, &e), -1);
    if (!strstr(e.msg, needle))
        fail_msg("expected '%s' in '%s'", needle, e.msg);
}

static void
test_good_pax_and_ustar(void **state)
{
    (void)state;
    const struct ent ents[] = {
        {"payload/", AE_IFDIR, NULL, NULL, 0},
        {"payload/a.txt", AE_IFREG, "hello", NULL, 0},
        {"payload/ünï/名前", AE_IFREG, "x", NULL, 0},
        {"./payload/empty", AE_IFREG, "", NULL, 0},
    };
    size_t len = build(ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ents, 4, arc, sizeof arc);
    struct al_err e = {0};
    assert_int_equal(tar_validate_memory(arc, len, &e), 0);
    struct tar_reader r;
    assert_int_equal(tar_reader_open_memory(&r, arc, len, "t", &e), 0);
    struct tar_entry te;
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_true(te.is_dir);
    assert_string_equal(te.path, "payload");
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_string_equal(te.path, "payload/a.txt");
    char b[16];
    assert_int_equal(tar_reader_read(&r, b, sizeof b, &e), 5);
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_string_equal(te.path, "payload/ünï/名前");
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_string_equal(te.path, "payload/empty"); /* "./" dropped */
    assert_int_equal(tar_reader_next(&r, &te, &e), 0);
    tar_reader_close(&r);
    len = build(ARCHIVE_FORMAT_TAR_USTAR, ents + 1, 1, arc, sizeof arc);
    assert_int_equal(tar_validate_memory(arc, len, &e), 0);
}

static void
test_hostile_entries(void **state)
{
    (void)state;
    const int pax = ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE;
    struct ent t1[] = {{"../evil", AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t1, 1, "'..'");
    struct ent t2[] = {{"a/../../evil", AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t2, 1, "'..'");
    struct ent t3[] = {{"/etc/evil", AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t3, 1, "absolute");
    struct ent t4[] = {{"link", AE_IFLNK, NULL, "/etc", 0}, {"link/x", AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t4, 2, "symbolic link");
    struct ent t5[] = {{"a", AE_IFREG, "x", NULL, 0}, {"h", AE_IFREG, NULL, "a", 1}};
    expect_refused(pax, t5, 2, "hard link");
    struct ent t6[] = {{"a", AE_IFREG, "x", NULL, 0}, {"a", AE_IFREG, "y", NULL, 0}};
    expect_refused(pax, t6, 2, "duplicate");
    struct ent t7[] = {{"dev", AE_IFCHR, NULL, NULL, 0}};
    expect_refused(pax, t7, 1, "device");
    struct ent t8[] = {{"fifo", AE_IFIFO, NULL, NULL, 0}};
    expect_refused(pax, t8, 1, "fifo");
    char longname[400];
    memset(longname, 'n', 300);
    longname[300] = '\0';
    struct ent t9[] = {{longname, AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t9, 1, "component");
    struct ent t10[] = {{"bad\x1bname", AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t10, 1, "control byte");
    struct ent t11[] = {{"x", AE_IFREG, "x", NULL, 0}};
    expect_refused(ARCHIVE_FORMAT_TAR_GNUTAR, t11, 1, "ustar/pax");
    struct ent t12[] = {{"a//b", AE_IFREG, "x", NULL, 0}};
    expect_refused(pax, t12, 1, "empty component");
}

static void
test_garbage_and_truncation(void **state)
{
    (void)state;
    struct al_err e = {0};
    assert_int_equal(tar_validate_memory("not a tar", 9, &e), -1);
    const struct ent ents[] = {{"payload/a.txt", AE_IFREG, "hello hello hello", NULL, 0}};
    size_t len = build(ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ents, 1, arc, sizeof arc);
    for (size_t cut = 1; cut < len; cut += 97) {
        memset(&e, 0, sizeof e);
        (void)tar_validate_memory(arc, cut, &e); /* must not crash; most cuts fail */
    }
    assert_int_equal(tar_validate_memory(arc, len, &e), 0);
}

static void
test_writer_roundtrip(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_tar_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[256], src[256];
    snprintf(out, sizeof out, "%s/b.tar", dir);
    snprintf(src, sizeof src, "%s/src", dir);
    FILE *f = fopen(src, "wb");
    for (int i = 0; i < 300000; i++)
        fputc(i * 7, f);
    fclose(f);
    struct tar_writer w;
    struct al_err e = {0};
    assert_int_equal(tar_writer_open(&w, out, false, 1700000000, &e), 0);
    int fd = open(src, O_RDONLY);
    uint8_t sha[SHA256_LEN], want[SHA256_LEN];
    uint64_t sz = 0;
    assert_int_equal(tar_writer_add_fd(&w, "payload/ü.bin", fd, 300000, sha, NULL, &e), 0);
    close(fd);
    assert_int_equal(hash_sha256_file(src, want, &sz, NULL, &e), 0);
    assert_memory_equal(sha, want, SHA256_LEN);
    assert_int_equal(tar_writer_add_buf(&w, "BOM.json", "{}\n", 3, &e), 0);
    assert_int_equal(tar_writer_commit(&w, &e), 0);
    /* an existing output is refused without force */
    assert_int_equal(tar_writer_open(&w, out, false, 0, &e), -1);
    assert_int_equal(e.code, AL_EEXIST);
    /* read back */
    f = fopen(out, "rb");
    size_t n = fread(arc, 1, sizeof arc, f);
    fclose(f);
    struct tar_reader r;
    assert_int_equal(tar_reader_open_memory(&r, arc, n, out, &e), 0);
    struct tar_entry te;
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_string_equal(te.path, "payload/ü.bin");
    assert_int_equal(te.size, 300000);
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_string_equal(te.path, "BOM.json");
    assert_int_equal(tar_reader_next(&r, &te, &e), 0);
    tar_reader_close(&r);
    unlink(out);
    unlink(src);
    rmdir(dir);
}

/* tar_reader_slurp: whole small entries into memory, bounded, each at most once. */
static void
test_slurp(void **state)
{
    (void)state;
    const struct ent ents[] = {
        {"MANIFEST.sha256", AE_IFREG, "abc\n", NULL, 0},
        {"BOM.json", AE_IFREG, "0123456789", NULL, 0},
        {"empty", AE_IFREG, "", NULL, 0},
    };
    size_t len = build(ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ents, 3, arc, sizeof arc);
    struct al_err e = {0};
    struct tar_reader r;
    struct tar_entry te;
    char *man = NULL, *bom = NULL, *empty = NULL;
    size_t man_len = 0, bom_len = 7, empty_len = 9;
    assert_int_equal(tar_reader_open_memory(&r, arc, len, "t.tar", &e), 0);
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_int_equal(tar_reader_slurp(&r, &te, 4, &man, &man_len, &e), 0);
    assert_int_equal(man_len, 4);
    assert_string_equal(man, "abc\n"); /* NUL-terminated */
    /* a buffer already filled: the same file twice */
    assert_int_equal(tar_reader_slurp(&r, &te, 4, &man, &man_len, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_non_null(strstr(e.msg, "t.tar: MANIFEST.sha256 appears twice"));
    assert_int_equal(man_len, 4);
    /* over the limit: refused before reading, outputs untouched */
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_int_equal(tar_reader_slurp(&r, &te, 9, &bom, &bom_len, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    assert_non_null(strstr(e.msg, "t.tar: BOM.json is 10 bytes, limit 9"));
    assert_null(bom);
    assert_int_equal(bom_len, 7);
    assert_int_equal(tar_reader_next(&r, &te, &e), 1);
    assert_int_equal(tar_reader_slurp(&r, &te, 0, &empty, &empty_len, &e), 0);
    assert_int_equal(empty_len, 0);
    assert_string_equal(empty, "");
    assert_int_equal(tar_reader_next(&r, &te, &e), 0);
    tar_reader_close(&r);
    free(man);
    free(empty);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_pax_and_ustar),
        cmocka_unit_test(test_hostile_entries),
        cmocka_unit_test(test_garbage_and_truncation),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_slurp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
