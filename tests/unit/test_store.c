/* test_store.c -- the model store: a signed bundle (directory or tar, packed here with a fresh
 * key) is imported into content-addressed blobs and an atomically placed version directory;
 * identical files are shared; a re-import is a no-op and a conflicting one is refused; hostile
 * names, untrusted keys, tampered files, a file changed after verification, a bundle swapped
 * during the import and pickle/code are refused with the store left exactly as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store/store.h"
#include "transfer/bundle.h"
#include "transfer/minisig.h"
#include "util/fsx.h"
#include "util/xalloc.h"

/* Per-test scratch: keys, source trees, bundles and the data directory live under dir. */
struct fx {
    char *dir;   /* owned temp dir */
    char *data;  /* owned: dir/data */
    char *pub;   /* owned: dir/k.pub, the trusted key */
    char *key;   /* owned: dir/k.key */
    char *opub;  /* owned: dir/o.pub, a key nobody trusts */
    char *okey;  /* owned: dir/o.key */
    char *model; /* owned: $SHARED/models/stories260K-q8_0.gguf */
};

static char *
path(const struct fx *f, const char *rel)
{
    return fsx_join(f->dir, rel);
}

static void
put(const char *p, const char *text)
{
    struct al_err e = {0};
    char *d = fsx_dirname(p);
    assert_int_equal(fsx_mkdir_p(d, 0755, &e), 0);
    free(d);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static void
copy_file(const char *from, const char *to)
{
    char *text = NULL;
    size_t len = 0;
    struct al_err e = {0};
    assert_int_equal(fsx_read_file(from, 64u << 20, &text, &len, &e), 0);
    FILE *fp = fopen(to, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    free(text);
}

/* A source tree rel/ with the stories GGUF, a LICENSE and extra files given as name, text. */
static void
make_src(const struct fx *f, const char *rel, ...)
{
    char *src = path(f, rel);
    struct al_err e = {0};
    assert_int_equal(fsx_mkdir_p(src, 0755, &e), 0);
    char *m = fsx_join(src, "model.gguf"), *l = fsx_join(src, "LICENSE");
    copy_file(f->model, m);
    put(l, "MIT\n");
    va_list ap;
    va_start(ap, rel);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
        const char *text = va_arg(ap, const char *);
        char *p = fsx_join(src, name);
        put(p, text);
        free(p);
    }
    va_end(ap);
    free(m);
    free(l);
    free(src);
}

static void
pack(const struct fx *f, const char *src, const char *out, const char *name,
     const char *version, const char *license, const char *key)
{
    char *s = path(f, src), *o = path(f, out);
    struct bundle_pack_opts po = {.src = s, .out = o, .name = name, .version = version,
                                  .key_path = key ? key : f->key, .license = license,
                                  .creator = "test", .threads = 1};
    struct bundle_report r;
    bundle_report_init(&r);
    struct al_err e = {0};
    int rc = bundle_pack(&po, &r, &e);
    if (rc != 0)
        fprintf(stderr, "pack: %s\n", e.msg);
    assert_int_equal(rc, 0);
    bundle_report_free(&r);
    free(s);
    free(o);
}

/* Import dir/bundle; returns the rc and leaves the error in *e. */
static int
import(const struct fx *f, const char *bundle, struct store_import_opts *o,
       struct store_import_result *res, struct al_err *e)
{
    char *b = path(f, bundle);
    struct store_import_opts def = {.trust = f->pub, .threads = 1};
    struct store_import_opts oo = o ? *o : def;
    oo.bundle = b;
    if (!oo.trust && !oo.allow_unsigned)
        oo.trust = f->pub;
    struct bundle_report r;
    bundle_report_init(&r);
    memset(e, 0, sizeof *e);
    int rc = store_import(f->data, &oo, res, &r, e);
    bundle_report_free(&r);
    free(b);
    return rc;
}

/* rc must be -1 with code; the message is printed so the log shows why it failed. */
static void
expect_err(int rc, const struct al_err *e, enum al_code code)
{
    fprintf(stderr, "    expected failure (%s): %s\n", al_code_name(e->code), e->msg);
    assert_int_equal(rc, -1);
    assert_int_equal(e->code, code);
}

/* Entries of data/store/<rel> (not "." and ".."). */
static size_t
count_dir(const struct fx *f, const char *rel)
{
    char *p = xasprintf("%s/store/%s", f->data, rel);
    DIR *d = opendir(p);
    free(p);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->dir = xstrdup("/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->data = path(f, "data");
    f->pub = path(f, "k.pub");
    f->key = path(f, "k.key");
    f->opub = path(f, "o.pub");
    f->okey = path(f, "o.key");
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    f->model = xasprintf("%s/models/stories260K-q8_0.gguf", shared);
    struct al_err e = {0};
    assert_int_equal(minisig_keygen(f->pub, f->key, NULL, false, false, &e), 0);
    assert_int_equal(minisig_keygen(f->opub, f->okey, NULL, false, false, &e), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    fsx_remove_tree(f->dir);
    free(f->dir);
    free(f->data);
    free(f->pub);
    free(f->key);
    free(f->opub);
    free(f->okey);
    free(f->model);
    free(f);
    return 0;
}

/* ===== Tests ============================================================================= */

static void
store_import_places_blobs_and_an_atomic_version(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", NULL);
    pack(f, "src", "B", "stories", "1", "MIT", NULL);
    assert_int_equal(import(f, "B", NULL, &res, &e), 0);
    assert_false(res.already);
    assert_int_equal(res.blobs_new, 2);
    assert_int_equal(res.blobs_shared, 0);
    assert_string_equal(res.rec.name, "stories");
    assert_string_equal(res.rec.version, "1");
    assert_int_equal(strlen(res.rec.signer_key_id), 16);
    assert_non_null(strstr(res.rec.trusted_comment, "name=stories version=1"));
    assert_int_equal(res.rec.n_files, 2);
    assert_true(res.rec.model >= 0);
    assert_string_equal(res.rec.files[res.rec.model].path, "payload/model.gguf");
    assert_string_equal(res.rec.files[res.rec.model].format, "gguf");
    /* the blob is the file, read-only, named by its hash */
    struct stat st;
    assert_int_equal(stat(res.rec.model_blob, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0444);
    char *orig = NULL, *blob = NULL;
    size_t ol = 0, bl = 0;
    assert_int_equal(fsx_read_file(f->model, 64u << 20, &orig, &ol, &e), 0);
    assert_int_equal(fsx_read_file(res.rec.model_blob, 64u << 20, &blob, &bl, &e), 0);
    assert_int_equal(ol, bl);
    assert_memory_equal(orig, blob, ol);
    free(orig);
    free(blob);
    /* the version directory holds the signed bytes and the record */
    const char *names[] = {BUNDLE_MANIFEST, BUNDLE_SIG, BUNDLE_BOM, STORE_RECORD_FILE};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/store/models/stories/1/%s", f->data, names[i]);
        assert_int_equal(stat(p, &st), 0);
        free(p);
    }
    char *bm = path(f, "B/" BUNDLE_MANIFEST), *sm = xasprintf("%s/store/models/stories/1/%s",
                                                              f->data, BUNDLE_MANIFEST);
    char *a = NULL, *b = NULL;
    size_t al = 0, blen = 0;
    assert_int_equal(fsx_read_file(bm, 1 << 20, &a, &al, &e), 0);
    assert_int_equal(fsx_read_file(sm, 1 << 20, &b, &blen, &e), 0);
    assert_int_equal(al, blen);
    assert_memory_equal(a, b, al);
    free(a);
    free(b);
    free(bm);
    free(sm);
    assert_int_equal(count_dir(f, "tmp"), 0);
    /* read back: list, resolve, check */
    struct store_list l;
    assert_int_equal(store_list(f->data, &l, &e), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].name, "stories");
    assert_int_equal(l.v[0].size, res.rec.size);
    store_list_free(&l);
    struct store_record rec;
    assert_int_equal(store_resolve(f->data, "stories", NULL, &rec, &e), 0);
    assert_string_equal(rec.model_blob, res.rec.model_blob);
    assert_int_equal(store_check_model(&rec, NULL, &e), 0);
    store_record_free(&rec);
    expect_err(store_resolve(f->data, "stories", "2", &rec, &e), &e, AL_ENOTFOUND);
    expect_err(store_resolve(f->data, "other", NULL, &rec, &e), &e, AL_ENOTFOUND);
    store_import_result_free(&res);
}

static void
store_shares_identical_blobs_and_reimport_is_a_noop(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", NULL);
    make_src(f, "src2", "tokenizer.json", "{}\n", NULL);
    pack(f, "src", "B1", "stories", "1", NULL, NULL);
    pack(f, "src2", "B2.tar", "stories", "2", NULL, NULL);
    assert_int_equal(import(f, "B1", NULL, &res, &e), 0);
    store_import_result_free(&res);
    /* same bundle again: nothing copied, nothing changed */
    assert_int_equal(import(f, "B1", NULL, &res, &e), 0);
    assert_true(res.already);
    assert_int_equal(res.blobs_new, 0);
    assert_int_equal(res.bytes_copied, 0);
    store_import_result_free(&res);
    /* a new version sharing two files copies only the third, from a tar */
    assert_int_equal(import(f, "B2.tar", NULL, &res, &e), 0);
    assert_false(res.already);
    assert_int_equal(res.blobs_new, 1);
    assert_int_equal(res.blobs_shared, 2);
    assert_int_equal(res.bytes_copied, 3);
    store_import_result_free(&res);
    assert_int_equal(count_dir(f, "blobs/sha256"), 3);
    assert_int_equal(count_dir(f, "models/stories"), 2);
    /* a blob that went missing is restored by importing the same bundle again */
    struct store_record rec;
    assert_int_equal(store_resolve(f->data, "stories", "1", &rec, &e), 0);
    assert_int_equal(unlink(rec.model_blob), 0);
    assert_int_equal(import(f, "B1", NULL, &res, &e), 0);
    assert_true(res.already);
    assert_int_equal(res.blobs_new, 1);
    assert_int_equal(store_check_model(&rec, NULL, &e), 0);
    store_record_free(&rec);
    store_import_result_free(&res);
}

static void
store_refuses_a_different_manifest_for_an_existing_version(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", NULL);
    make_src(f, "other", "extra.txt", "x\n", NULL);
    pack(f, "src", "B", "stories", "1", "MIT", NULL);
    pack(f, "src", "B-relicensed", "stories", "1", "Apache-2.0", NULL); /* BOM differs */
    pack(f, "other", "C", "stories", "1", "MIT", NULL);
    assert_int_equal(import(f, "B", NULL, &res, &e), 0);
    int64_t when = res.rec.imported;
    store_import_result_free(&res);
    size_t blobs = count_dir(f, "blobs/sha256");
    expect_err(import(f, "B-relicensed", NULL, &res, &e), &e, AL_EEXIST);
    expect_err(import(f, "C", NULL, &res, &e), &e, AL_EEXIST);
    assert_non_null(strstr(e.msg, "never replaced"));
    assert_int_equal(count_dir(f, "blobs/sha256"), blobs); /* extra.txt was not kept */
    struct store_record rec;
    assert_int_equal(store_resolve(f->data, "stories", "1", &rec, &e), 0);
    assert_int_equal(rec.imported, when);
    assert_int_equal(rec.n_files, 2);
    store_record_free(&rec);
    assert_int_equal(count_dir(f, "tmp"), 0);
}

static void
store_names_are_validated_strictly(void **state)
{
    struct al_err e = {0};
    const char *good[] = {"stories", "qwen2.5-0.5b-instruct", "Llama_3+fp16", "1", "v1.0.0"};
    const char *bad[] = {"", ".", "..", "../x", "a/b", ".hidden", "-x", "a:b", "a b", "a\\b",
                         "a\x01", "\xc3\xa9t\xc3\xa9", "a*", "~root"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(store_name_check(good[i], "name", &e), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_err(store_name_check(bad[i], "name", &e), &e, AL_EFORMAT);
    }
    char longname[STORE_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(store_name_check(longname, "name", &e), -1);
    longname[STORE_NAME_MAX] = '\0';
    assert_int_equal(store_name_check(longname, "name", &e), 0);
    char *n = NULL, *v = NULL;
    assert_int_equal(store_spec_parse("stories:1.0", &n, &v, &e), 0);
    assert_string_equal(n, "stories");
    assert_string_equal(v, "1.0");
    free(n);
    free(v);
    assert_int_equal(store_spec_parse("stories", &n, &v, &e), 0);
    assert_null(v);
    free(n);
    const char *bad_spec[] = {"stories:", ":1", "a:b:c", "../x:1", "x:../1"};
    for (size_t i = 0; i < sizeof bad_spec / sizeof bad_spec[0]; i++)
        assert_int_equal(store_spec_parse(bad_spec[i], &n, &v, &e), -1);

    /* bundles whose signed name or version would escape or hide are refused whole */
    struct fx *f = *state;
    struct store_import_result res;
    make_src(f, "src", NULL);
    const char *hostile[][2] = {{"../evil", "1"}, {"a/b", "1"}, {".hidden", "1"},
                                {"ok", "../../x"}, {"ok", ".."}, {"x:y", "1"}};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char out[32];
        snprintf(out, sizeof out, "H%zu.tar", i);
        pack(f, "src", out, hostile[i][0], hostile[i][1], NULL, NULL);
        expect_err(import(f, out, NULL, &res, &e), &e, AL_EFORMAT);
    }
    assert_int_equal(count_dir(f, "models"), 0);
    assert_int_equal(count_dir(f, "blobs/sha256"), 0);
    assert_int_equal(count_dir(f, "tmp"), 0);
    char *evil = path(f, "evil");
    struct stat st;
    assert_int_not_equal(lstat(evil, &st), 0);
    free(evil);
}

static void
store_refuses_untrusted_unsigned_and_tampered_bundles(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", NULL);
    pack(f, "src", "B", "stories", "1", NULL, f->okey); /* signed by the untrusted key */
    expect_err(import(f, "B", NULL, &res, &e), &e, AL_EVERIFY);
    /* unsigned needs the explicit flag, and is recorded as such */
    struct store_import_opts o = {.allow_unsigned = true, .threads = 1};
    assert_int_equal(import(f, "B", &o, &res, &e), 0);
    assert_string_equal(res.rec.signer_key_id, "");
    assert_string_equal(res.rec.trusted_comment, "");
    store_import_result_free(&res);
    /* a tampered payload file: verification fails, nothing is added */
    pack(f, "src", "T", "stories", "2", NULL, NULL);
    char *lic = path(f, "T/payload/LICENSE");
    assert_int_equal(chmod(lic, 0644), 0);
    put(lic, "GPL\n");
    free(lic);
    size_t blobs = count_dir(f, "blobs/sha256");
    expect_err(import(f, "T", NULL, &res, &e), &e, AL_EVERIFY);
    assert_int_equal(count_dir(f, "blobs/sha256"), blobs);
    assert_int_equal(count_dir(f, "models/stories"), 1);
    assert_int_equal(count_dir(f, "tmp"), 0);
    /* not a bundle at all */
    char *plain = path(f, "src");
    struct store_import_opts po = {.trust = f->pub, .bundle = plain};
    struct bundle_report r;
    bundle_report_init(&r);
    expect_err(store_import(f->data, &po, &res, &r, &e), &e, AL_EFORMAT);
    bundle_report_free(&r);
    free(plain);
}

/* after_verify hooks: change the bundle between verification and the copy. */
static void
hook_rewrite_model(void *ud, const char *bundle)
{
    (void)ud;
    char *p = fsx_join(bundle, "payload/model.gguf");
    FILE *fp = fopen(p, "r+b");
    if (fp) {
        fseek(fp, 4096, SEEK_SET);
        fputc('X', fp);
        fclose(fp);
    }
    free(p);
}

static void
hook_swap_tar(void *ud, const char *bundle)
{
    (void)rename(ud, bundle); /* another validly signed bundle of the same name/version */
}

static void
store_catches_files_changed_after_verification(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", NULL);
    make_src(f, "other", "notes.txt", "other content\n", NULL);
    pack(f, "src", "B", "stories", "1", NULL, NULL);
    char *gguf = path(f, "B/payload/model.gguf");
    assert_int_equal(chmod(gguf, 0644), 0);
    free(gguf);
    struct store_import_opts o = {.trust = f->pub, .threads = 1,
                                  .after_verify = hook_rewrite_model};
    expect_err(import(f, "B", &o, &res, &e), &e, AL_EVERIFY);
    assert_non_null(strstr(e.msg, "changed after verification"));
    assert_int_equal(count_dir(f, "models"), 0);
    assert_int_equal(count_dir(f, "blobs/sha256"), 0); /* LICENSE's blob was rolled back */
    assert_int_equal(count_dir(f, "tmp"), 0);

    /* a tar replaced by another signed tar after verification */
    pack(f, "src", "T.tar", "stories", "1", NULL, NULL);
    pack(f, "other", "U.tar", "stories", "1", NULL, NULL);
    char *u = path(f, "U.tar");
    struct store_import_opts o2 = {.trust = f->pub, .threads = 1, .after_verify = hook_swap_tar,
                                   .hook_ud = u};
    expect_err(import(f, "T.tar", &o2, &res, &e), &e, AL_EVERIFY);
    assert_non_null(strstr(e.msg, "replaced or modified during the import"));
    assert_int_equal(count_dir(f, "models"), 0);
    assert_int_equal(count_dir(f, "blobs/sha256"), 0);
    free(u);
}

static void
store_applies_the_safety_policy_and_needs_one_gguf(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", "run.py", "import os\n", NULL);
    pack(f, "src", "B", "coded", "1", NULL, NULL);
    expect_err(import(f, "B", NULL, &res, &e), &e, AL_EVERIFY);
    struct store_import_opts o = {.trust = f->pub, .allow_code = true, .threads = 1};
    assert_int_equal(import(f, "B", &o, &res, &e), 0);
    store_import_result_free(&res);

    /* two GGUF files: refused without --model-file (and its copies rolled back) */
    make_src(f, "two", NULL);
    char *m = path(f, "two/model.gguf"), *m2 = path(f, "two/q4.gguf");
    char *q4 = xasprintf("%s/models/stories260K-q4_0.gguf",
                         getenv("SHARED") ? getenv("SHARED") : "../shared");
    copy_file(q4, m2);
    pack(f, "two", "T", "two", "1", NULL, NULL);
    size_t blobs = count_dir(f, "blobs/sha256");
    expect_err(import(f, "T", NULL, &res, &e), &e, AL_EUSAGE);
    assert_non_null(strstr(e.msg, "--model-file"));
    assert_int_equal(count_dir(f, "blobs/sha256"), blobs);
    assert_int_equal(count_dir(f, "models/two"), 0);
    struct store_import_opts o2 = {.trust = f->pub, .model_file = "q4.gguf", .threads = 1};
    assert_int_equal(import(f, "T", &o2, &res, &e), 0);
    assert_string_equal(res.rec.files[res.rec.model].path, "payload/q4.gguf");
    store_import_result_free(&res);
    free(m);
    free(m2);
    free(q4);
}

/* Set imported_unix of name/version's record (to test the ordering deterministically). */
static void
set_imported(const struct fx *f, const char *version, json_int_t t)
{
    char *p = xasprintf("%s/store/models/stories/%s/%s", f->data, version, STORE_RECORD_FILE);
    json_t *j = json_load_file(p, 0, NULL);
    assert_non_null(j);
    json_object_set_new(j, "imported_unix", json_integer(t));
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(json_dump_file(j, p, JSON_INDENT(2)), 0);
    json_decref(j);
    free(p);
}

static void
store_resolves_the_newest_import_and_checks_blobs(void **state)
{
    struct fx *f = *state;
    struct store_import_result res;
    struct al_err e;
    make_src(f, "src", NULL);
    pack(f, "src", "A", "stories", "1.9", NULL, NULL);
    pack(f, "src", "B", "stories", "1.10", NULL, NULL);
    assert_int_equal(import(f, "A", NULL, &res, &e), 0);
    store_import_result_free(&res);
    assert_int_equal(import(f, "B", NULL, &res, &e), 0);
    store_import_result_free(&res);
    struct store_record rec;
    set_imported(f, "1.9", 2000);
    set_imported(f, "1.10", 1000);
    assert_int_equal(store_resolve(f->data, "stories", NULL, &rec, &e), 0);
    assert_string_equal(rec.version, "1.9"); /* later import wins */
    store_record_free(&rec);
    set_imported(f, "1.9", 1000);
    assert_int_equal(store_resolve(f->data, "stories", NULL, &rec, &e), 0);
    assert_string_equal(rec.version, "1.10"); /* same time: version order, 1.10 > 1.9 */
    /* a blob changed on disk after import is caught before serving */
    assert_int_equal(chmod(rec.model_blob, 0644), 0);
    FILE *fp = fopen(rec.model_blob, "r+b");
    assert_non_null(fp);
    fputc('Y', fp);
    fclose(fp);
    expect_err(store_check_model(&rec, NULL, &e), &e, AL_EVERIFY);
    store_record_free(&rec);
    /* a record naming a model that is not one of its files is refused */
    char *p = xasprintf("%s/store/models/stories/1.9/%s", f->data, STORE_RECORD_FILE);
    json_t *j = json_load_file(p, 0, NULL);
    json_object_set_new(j, "model", json_string("payload/../../etc/passwd"));
    assert_int_equal(json_dump_file(j, p, 0), 0);
    json_decref(j);
    free(p);
    expect_err(store_resolve(f->data, "stories", "1.9", &rec, &e), &e, AL_EFORMAT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(store_import_places_blobs_and_an_atomic_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(store_shares_identical_blobs_and_reimport_is_a_noop,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(store_refuses_a_different_manifest_for_an_existing_version,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(store_names_are_validated_strictly, setup, teardown),
        cmocka_unit_test_setup_teardown(store_refuses_untrusted_unsigned_and_tampered_bundles,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(store_catches_files_changed_after_verification, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(store_applies_the_safety_policy_and_needs_one_gguf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(store_resolves_the_newest_import_and_checks_blobs, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
