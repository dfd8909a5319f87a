/* bom.c -- the bundle's CycloneDX 1.6 bill of materials: build it from the file list, read the
 * file list back strictly, and extract model metadata for it (see bom.h; document layout and
 * the airlock: property namespace: docs/formats/bom.md). Input to bom_parse is untrusted: the
 * text is size-capped, nesting-checked and every field verify relies on is type-checked;
 * duplicates, bad hex, unsafe paths and absurd counts are refused. Does not hash files
 * (crypto/hash.c), classify them (transfer/safety.c) or compare with the manifest (verify).
 * All JSON goes through jansson. */
#include "transfer/bom.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "format/gguf.h"
#include "format/safetensors.h"
#include "util/buf.h"
#include "util/parse.h"
#include "util/xalloc.h"

#define BOM_MAX_TEXT (64u << 20)   /* bytes of BOM.json bom_parse accepts */
#define BOM_MAX_FILES (1u << 20)   /* components bom_parse accepts */
#define BOM_MAX_DEPTH 16           /* JSON nesting bom_parse accepts; airlock writes 6 */
#define BOM_MAX_PATH 4096          /* bytes in one component path */

/* ===== helpers ============================================================================ */

static json_t *
jstr(const char *s)
{
    return s ? json_string(s) : NULL; /* NULL when s is not UTF-8 */
}

static void
prop_add(json_t *props, const char *name, const char *value)
{
    json_t *v = jstr(value);
    if (!v)
        return; /* a value that is not UTF-8 is left out rather than mangled */
    json_t *p = json_object();
    json_object_set_new(p, "name", json_string(name));
    json_object_set_new(p, "value", v);
    json_array_append_new(props, p);
}

static void
prop_addf(json_t *props, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
prop_addf(json_t *props, const char *name, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    prop_add(props, name, tmp);
}

/* SPDX ids are validated against the SPDX list by CycloneDX tools; only ids known to be on it
 * are written as "id", anything else as a free-text "name". */
static const char *
spdx_canonical(const char *lic)
{
    static const char *const ids[] = {
        "Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "CC-BY-4.0",
        "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-NC-ND-4.0", "GPL-2.0-only",
        "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "LGPL-2.1-only", "LGPL-3.0-only",
        "AGPL-3.0-only", "MPL-2.0", "Unlicense", "ISC", "Zlib", "BSL-1.0", "0BSD",
        "Artistic-2.0", "EPL-2.0", NULL,
    };
    for (size_t i = 0; ids[i]; i++)
        if (strcasecmp(ids[i], lic) == 0)
            return ids[i];
    return NULL;
}

/* scheme "://" then printable ASCII without spaces or the characters RFC 3987 excludes */
static int
is_url(const char *s)
{
    const char *p = s;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0 || p[3] == '\0')
        return 0;
    for (p += 3; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("<>\"{}|\\^`", *p))
            return 0;
    return 1;
}

static char *
default_creator(void)
{
    char host[256] = "localhost";
    char user[256] = "unknown";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res && pw.pw_name)
        snprintf(user, sizeof user, "%s", pw.pw_name);
    return xasprintf("%s@%s", user, host);
}

static int
uuid_v4(char out[37], struct al_err *e)
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0)
            return al_errno(e, errno, "BOM serial number: getrandom");
        got += (size_t)r;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
    return 0;
}

/* ===== model metadata -> properties ======================================================= */

/* meta key (bom_model_meta) -> property name; the one place the namespace is spelled out */
static const struct {
    const char *key;
    const char *prop;
} meta_props[] = {
    {"gguf_version", "airlock:gguf.version"},
    {"architecture", "airlock:gguf.architecture"},
    {"name", "airlock:model.name"},
    {"parameters", "airlock:parameters"},
    {"quantization", "airlock:quantization"},
    {"file_type", "airlock:gguf.file_type"},
    {"context_length", "airlock:context_length"},
    {"block_count", "airlock:block_count"},
    {"embedding_length", "airlock:embedding_length"},
    {"vocab_size", "airlock:vocab_size"},
    {"tokenizer_model", "airlock:tokenizer.model"},
    {"chat_template", "airlock:chat_template"},
    {"dtypes", "airlock:safetensors.dtypes"},
    {"tensor_count", "airlock:tensor_count"},
};

/* Render one metadata value as a property string: numbers in decimal, booleans as
 * "true"/"false", lists joined by ",", type histograms as "TYPE:count". */
static char *
meta_value_str(const json_t *v)
{
    struct buf b;
    buf_init(&b);
    if (json_is_integer(v)) {
        buf_printf(&b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_string(v)) {
        buf_puts(&b, json_string_value(v));
    } else if (json_is_boolean(v)) {
        buf_puts(&b, json_is_true(v) ? "true" : "false");
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (i)
                buf_putc(&b, ',');
            if (json_is_string(x))
                buf_puts(&b, json_string_value(x));
            else if (json_is_object(x) && json_is_string(json_object_get(x, "type")))
                buf_printf(&b, "%s:%" JSON_INTEGER_FORMAT,
                           json_string_value(json_object_get(x, "type")),
                           json_integer_value(json_object_get(x, "tensors")));
        }
    } else {
        buf_free(&b);
        return NULL;
    }
    if (!b.data)
        buf_puts(&b, "");
    return buf_steal(&b);
}

static void
meta_to_props(json_t *props, const json_t *meta)
{
    for (size_t i = 0; i < sizeof meta_props / sizeof meta_props[0]; i++) {
        const json_t *v = json_object_get(meta, meta_props[i].key);
        if (!v)
            continue;
        char *s = meta_value_str(v);
        if (s)
            prop_add(props, meta_props[i].prop, s);
        free(s);
    }
}

/* modelCard for weights whose metadata names an architecture */
static json_t *
model_card(const json_t *meta)
{
    const char *arch = json_string_value(json_object_get(meta, "architecture"));
    if (!arch)
        return NULL;
    json_t *mp = json_object();
    /* a GGUF with a vocabulary is a language model that generates text */
    if (json_object_get(meta, "vocab_size")) {
        json_object_set_new(mp, "task", json_string("text-generation"));
        json_t *in = json_array(), *out = json_array(), *f = json_object(), *g = json_object();
        json_object_set_new(f, "format", json_string("text"));
        json_object_set_new(g, "format", json_string("text"));
        json_array_append_new(in, f);
        json_array_append_new(out, g);
        json_object_set_new(mp, "inputs", in);
        json_object_set_new(mp, "outputs", out);
    }
    json_object_set_new(mp, "architectureFamily", json_string(arch));
    const json_t *name = json_object_get(meta, "name");
    if (json_is_string(name))
        json_object_set_new(mp, "modelArchitecture", json_copy((json_t *)name));
    json_t *card = json_object();
    json_object_set_new(card, "modelParameters", mp);
    json_t *props = json_array();
    const json_t *params = json_object_get(meta, "parameters");
    if (json_is_integer(params))
        prop_addf(props, "airlock:parameters", "%" JSON_INTEGER_FORMAT,
                  json_integer_value(params));
    char *q = meta_value_str(json_object_get(meta, "quantization"));
    if (q)
        prop_add(props, "airlock:quantization", q);
    free(q);
    if (json_array_size(props))
        json_object_set_new(card, "properties", props);
    else
        json_decref(props);
    return card;
}

/* ===== build ============================================================================== */

static json_t *
file_component(const struct bom_file *f, struct al_err *e)
{
    json_t *c = json_object();
    json_t *path = jstr(f->path);
    if (!path) {
        json_decref(c);
        al_errf(e, AL_EUNSUPPORTED, "BOM: file name is not valid UTF-8: %.200s", f->path);
        return NULL;
    }
    bool model = f->safety.cls == SAFETY_WEIGHTS;
    json_object_set_new(c, "type", json_string(model ? "machine-learning-model" : "file"));
    char *ref = xasprintf("file:%s", f->path);
    json_object_set_new(c, "bom-ref", json_string(ref));
    free(ref);
    json_object_set_new(c, "name", path);
    char hex[2 * SHA256_LEN + 1];
    hash_hex(f->sha256, SHA256_LEN, hex);
    json_t *h = json_object();
    json_object_set_new(h, "alg", json_string("SHA-256"));
    json_object_set_new(h, "content", json_string(hex));
    json_t *hashes = json_array();
    json_array_append_new(hashes, h);
    json_object_set_new(c, "hashes", hashes);

    json_t *props = json_array();
    prop_addf(props, "airlock:size", "%" PRIu64, f->size);
    prop_add(props, "airlock:safety", safety_class_name(f->safety.cls));
    prop_add(props, "airlock:format", f->safety.format[0] ? f->safety.format : "unknown");
    if (f->safety.reason[0])
        prop_add(props, "airlock:safety.reason", f->safety.reason);
    if (f->safety.imports[0])
        prop_add(props, "airlock:pickle.imports", f->safety.imports);
    if (f->meta)
        meta_to_props(props, f->meta);
    json_object_set_new(c, "properties", props);
    if (model && f->meta) {
        json_t *card = model_card(f->meta);
        if (card)
            json_object_set_new(c, "modelCard", card);
    }
    return c;
}

char *
bom_build(const struct bom_info *info, const struct bom_file *files, size_t n,
          struct al_err *e)
{
    char *out = NULL;
    char *creator = NULL;
    json_t *root = NULL;
    if (!info || !info->name || !info->version || !info->name[0] || !info->version[0]) {
        al_errf(e, AL_EUSAGE, "BOM: bundle name and version are required");
        goto out;
    }
    creator = info->creator ? xstrdup(info->creator) : default_creator();
    const struct {
        const char *field, *value;
    } text[] = {{"name", info->name}, {"version", info->version}, {"creator", creator},
                {"source", info->source}, {"license", info->license}};
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        if (!text[i].value)
            continue;
        json_t *t = json_string(text[i].value);
        if (!t) {
            al_errf(e, AL_EUSAGE, "BOM: %s is not valid UTF-8", text[i].field);
            goto out;
        }
        json_decref(t);
    }

    char uuid[37];
    if (uuid_v4(uuid, e) != 0)
        goto out;
    char ts[32];
    struct tm tm;
    time_t created = info->created;
    if (!gmtime_r(&created, &tm) || strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        al_errf(e, AL_EUSAGE, "BOM: creation time %lld out of range", (long long)created);
        goto out;
    }

    bool has_model = false;
    for (size_t i = 0; i < n; i++)
        if (files[i].safety.cls == SAFETY_WEIGHTS)
            has_model = true;

    root = json_object();
    json_object_set_new(root, "bomFormat", json_string("CycloneDX"));
    json_object_set_new(root, "specVersion", json_string("1.6"));
    char *serial = xasprintf("urn:uuid:%s", uuid);
    json_object_set_new(root, "serialNumber", json_string(serial));
    free(serial);
    json_object_set_new(root, "version", json_integer(1));

    json_t *meta = json_object();
    json_object_set_new(meta, "timestamp", json_string(ts));
    json_t *tool = json_object();
    json_object_set_new(tool, "type", json_string("application"));
    json_object_set_new(tool, "name", json_string("airlock"));
    json_object_set_new(tool, "version", json_string(AIRLOCK_VERSION));
    json_t *tools = json_object(), *tcomps = json_array();
    json_array_append_new(tcomps, tool);
    json_object_set_new(tools, "components", tcomps);
    json_object_set_new(meta, "tools", tools);
    json_t *author = json_object();
    json_object_set_new(author, "name", json_string(creator));
    json_t *authors = json_array();
    json_array_append_new(authors, author);
    json_object_set_new(meta, "authors", authors);

    /* the bundle itself: a model when it carries weights, else data */
    json_t *bc = json_object();
    json_object_set_new(bc, "type", json_string(has_model ? "machine-learning-model" : "data"));
    json_object_set_new(bc, "bom-ref", json_string("bundle"));
    json_t *supplier = json_object();
    json_object_set_new(supplier, "name", json_string(creator));
    json_object_set_new(bc, "supplier", supplier);
    json_object_set_new(bc, "name", json_string(info->name));
    json_object_set_new(bc, "version", json_string(info->version));
    json_t *bprops = json_array();
    if (info->license) {
        json_t *lic = json_object(), *choice = json_object(), *lics = json_array();
        const char *id = spdx_canonical(info->license);
        json_object_set_new(lic, id ? "id" : "name", json_string(id ? id : info->license));
        json_object_set_new(choice, "license", lic);
        json_array_append_new(lics, choice);
        json_object_set_new(bc, "licenses", lics);
    }
    if (info->source && is_url(info->source)) {
        json_t *ref = json_object(), *refs = json_array();
        json_object_set_new(ref, "url", json_string(info->source));
        json_object_set_new(ref, "type", json_string("distribution"));
        json_array_append_new(refs, ref);
        json_object_set_new(bc, "externalReferences", refs);
    } else if (info->source) {
        prop_add(bprops, "airlock:source", info->source);
    }
    prop_addf(bprops, "airlock:file_count", "%zu", n);
    json_object_set_new(bc, "properties", bprops);
    json_object_set_new(meta, "component", bc);
    json_t *mprops = json_array();
    prop_add(mprops, "airlock:bom.version", "1");
    json_object_set_new(meta, "properties", mprops);
    json_object_set_new(root, "metadata", meta);

    json_t *comps = json_array();
    json_object_set_new(root, "components", comps);
    for (size_t i = 0; i < n; i++) {
        json_t *c = file_component(&files[i], e);
        if (!c)
            goto out;
        json_array_append_new(comps, c);
    }

    char *text_out = json_dumps(root, JSON_INDENT(2));
    if (!text_out) {
        al_errf(e, AL_EINTERNAL, "BOM: JSON serialisation failed");
        goto out;
    }
    out = xasprintf("%s\n", text_out);
    free(text_out);
out:
    json_decref(root);
    free(creator);
    return out;
}

/* ===== model metadata ===================================================================== */

static void
meta_set_u64(json_t *m, const char *key, uint64_t v)
{
    if (v <= (uint64_t)LLONG_MAX)
        json_object_set_new(m, key, json_integer((json_int_t)v));
}

static void
meta_set_gstr(json_t *m, const char *key, const struct gguf *g, const char *gkey)
{
    struct gguf_str s;
    struct al_err ignore = {0};
    if (gguf_get_str(g, gkey, &s, &ignore) != 0 || s.n > 4096)
        return; /* absent or mistyped metadata is left out of the BOM, not fatal */
    json_t *v = json_stringn(s.p, (size_t)s.n);
    if (v)
        json_object_set_new(m, key, v);
}

static void
meta_set_arch_u64(json_t *m, const char *key, const struct gguf *g, const char *arch,
                  const char *suffix)
{
    char *k = xasprintf("%s.%s", arch, suffix);
    uint64_t v;
    struct al_err ignore = {0};
    if (gguf_get_u64(g, k, &v, &ignore) == 0)
        meta_set_u64(m, key, v);
    free(k);
}

static int
gguf_meta(const char *path, json_t *m, struct al_err *e)
{
    struct gguf g;
    memset(&g, 0, sizeof g);
    if (gguf_open(&g, path, NULL, e) != 0)
        return -1;
    json_object_set_new(m, "format", json_string("gguf"));
    meta_set_u64(m, "gguf_version", g.version);
    meta_set_gstr(m, "architecture", &g, "general.architecture");
    meta_set_gstr(m, "name", &g, "general.name");
    uint64_t params = 0;
    uint64_t counts[GGML_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        if (!u64_add_ok(params, g.tensors[i].n_elems, &params))
            params = UINT64_MAX;
        if ((unsigned)g.tensors[i].type < GGML_TYPE_COUNT)
            counts[g.tensors[i].type]++;
    }
    meta_set_u64(m, "parameters", params);
    json_t *q = json_array();
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        if (!counts[t])
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string(ggml_type_name((enum ggml_type)t)));
        json_object_set_new(o, "tensors", json_integer((json_int_t)counts[t]));
        json_array_append_new(q, o);
    }
    json_object_set_new(m, "quantization", q);
    uint32_t ft;
    struct al_err ignore = {0};
    if (gguf_get_u32(&g, "general.file_type", &ft, &ignore) == 0)
        meta_set_u64(m, "file_type", ft);
    const char *arch = json_string_value(json_object_get(m, "architecture"));
    if (arch) {
        meta_set_arch_u64(m, "context_length", &g, arch, "context_length");
        meta_set_arch_u64(m, "block_count", &g, arch, "block_count");
        meta_set_arch_u64(m, "embedding_length", &g, arch, "embedding_length");
    }
    const struct gguf_kv *tok = gguf_find(&g, "tokenizer.ggml.tokens");
    if (tok && tok->type == GGUF_VT_ARRAY)
        meta_set_u64(m, "vocab_size", tok->arr_n);
    meta_set_gstr(m, "tokenizer_model", &g, "tokenizer.ggml.model");
    json_object_set_new(m, "chat_template",
                        json_boolean(gguf_find(&g, "tokenizer.chat_template") != NULL));
    meta_set_u64(m, "tensor_count", g.n_tensors);
    gguf_close(&g);
    return 0;
}

static int
safetensors_meta(const char *path, json_t *m, struct al_err *e)
{
    struct safetensors st;
    if (safetensors_open(&st, path, e) != 0)
        return -1;
    json_object_set_new(m, "format", json_string("safetensors"));
    meta_set_u64(m, "parameters", st.n_params);
    bool seen[ST_DTYPE_COUNT] = {false};
    for (size_t i = 0; i < st.n_tensors; i++)
        seen[st.tensors[i].dtype] = true;
    json_t *d = json_array();
    for (int t = 0; t < ST_DTYPE_COUNT; t++)
        if (seen[t])
            json_array_append_new(d, json_string(safetensors_dtype_name((enum st_dtype)t)));
    json_object_set_new(m, "dtypes", d);
    meta_set_u64(m, "tensor_count", st.n_tensors);
    safetensors_free(&st);
    return 0;
}

int
bom_model_meta(const char *path, const struct safety_verdict *v, void **meta,
               struct al_err *e)
{
    *meta = NULL;
    if (v->cls != SAFETY_WEIGHTS)
        return 0;
    json_t *m = json_object();
    int rc;
    if (strcmp(v->format, "gguf") == 0) {
        rc = gguf_meta(path, m, e);
    } else if (strcmp(v->format, "safetensors") == 0) {
        rc = safetensors_meta(path, m, e);
    } else {
        json_decref(m);
        return 0;
    }
    if (rc != 0) {
        json_decref(m);
        return -1;
    }
    *meta = m;
    return 0;
}

/* ===== parse ============================================================================== */

static long
depth_violation(const char *p, size_t n, int max_depth)
{
    int depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if ((c == '{' || c == '[') && ++depth > max_depth)
            return (long)i;
        else if (c == '}' || c == ']')
            depth--;
    }
    return -1;
}

/* relative, '/'-separated, no empty, "." or ".." parts, no control bytes */
static int
path_ok(const char *p, size_t n)
{
    if (n == 0 || n > BOM_MAX_PATH || strlen(p) != n || p[0] == '/')
        return 0;
    const char *s = p;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t l = slash ? (size_t)(slash - s) : strlen(s);
        if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        if (!slash)
            break;
        s = slash + 1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return 0;
    return 1;
}

static const char *
get_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int
parse_component(const json_t *c, size_t idx, struct bom_file *f, struct al_err *e)
{
    if (!json_is_object(c))
        return al_errf(e, AL_EFORMAT, "BOM: components[%zu] is not an object", idx);
    const json_t *name = json_object_get(c, "name");
    if (!json_is_string(name) ||
        !path_ok(json_string_value(name), json_string_length(name)))
        return al_errf(e, AL_EFORMAT, "BOM: components[%zu].name is missing or not a safe "
                       "relative path", idx);
    f->path = xstrdup(json_string_value(name));
    const char *type = get_str(c, "type");
    if (!type || (strcmp(type, "file") != 0 && strcmp(type, "machine-learning-model") != 0))
        return al_errf(e, AL_EFORMAT, "BOM: %s: components[%zu].type must be \"file\" or "
                       "\"machine-learning-model\"", f->path, idx);

    const json_t *hashes = json_object_get(c, "hashes");
    if (!json_is_array(hashes) || json_array_size(hashes) > 16)
        return al_errf(e, AL_EFORMAT, "BOM: %s: hashes missing or not a short array", f->path);
    int sha_seen = 0;
    size_t i;
    json_t *h;
    json_array_foreach(hashes, i, h) {
        const char *alg = get_str(h, "alg"), *content = get_str(h, "content");
        if (!alg || !content)
            return al_errf(e, AL_EFORMAT, "BOM: %s: hashes[%zu] needs alg and content strings",
                           f->path, i);
        if (strcmp(alg, "SHA-256") != 0)
            continue;
        if (sha_seen++)
            return al_errf(e, AL_EFORMAT, "BOM: %s: more than one SHA-256 hash", f->path);
        size_t cl = strlen(content);
        if (cl != 2 * SHA256_LEN || hash_unhex(content, cl, f->sha256, SHA256_LEN) != 0)
            return al_errf(e, AL_EFORMAT, "BOM: %s: SHA-256 is not 64 hex digits", f->path);
    }
    if (!sha_seen)
        return al_errf(e, AL_EFORMAT, "BOM: %s: no SHA-256 hash", f->path);

    const json_t *props = json_object_get(c, "properties");
    if (!json_is_array(props))
        return al_errf(e, AL_EFORMAT, "BOM: %s: properties missing", f->path);
    int size_seen = 0, safety_seen = 0;
    json_t *p;
    json_array_foreach(props, i, p) {
        const char *pn = get_str(p, "name"), *pv = get_str(p, "value");
        if (!pn)
            return al_errf(e, AL_EFORMAT, "BOM: %s: properties[%zu] has no name", f->path, i);
        if (strcmp(pn, "airlock:size") == 0) {
            if (size_seen++)
                return al_errf(e, AL_EFORMAT, "BOM: %s: airlock:size given twice", f->path);
            /* canonical decimal only: no sign, spaces or leading zeros */
            size_t vl = pv ? strlen(pv) : 0;
            int digits = vl > 0 && vl <= 20 && strspn(pv, "0123456789") == vl &&
                         !(vl > 1 && pv[0] == '0');
            struct al_err ignore = {0};
            if (!digits || parse_u64(pv, 0, UINT64_MAX, "airlock:size", &f->size, &ignore) != 0)
                return al_errf(e, AL_EFORMAT, "BOM: %s: airlock:size \"%.32s\" is not a byte "
                               "count", f->path, pv ? pv : "");
        } else if (strcmp(pn, "airlock:safety") == 0) {
            if (safety_seen++)
                return al_errf(e, AL_EFORMAT, "BOM: %s: airlock:safety given twice", f->path);
            int found = 0;
            for (int k = SAFETY_DATA; k <= SAFETY_CODE; k++)
                if (pv && strcmp(pv, safety_class_name((enum safety_class)k)) == 0) {
                    f->safety.cls = (enum safety_class)k;
                    found = 1;
                }
            if (!found)
                return al_errf(e, AL_EFORMAT, "BOM: %s: airlock:safety \"%.32s\" unknown",
                               f->path, pv ? pv : "");
        } else if (strcmp(pn, "airlock:format") == 0 && pv) {
            snprintf(f->safety.format, sizeof f->safety.format, "%s", pv);
        }
    }
    if (!size_seen)
        return al_errf(e, AL_EFORMAT, "BOM: %s: no airlock:size property", f->path);
    return 0;
}

static int
file_path_cmp(const void *a, const void *b)
{
    const struct bom_file *const *x = a, *const *y = b;
    return strcmp((*x)->path, (*y)->path);
}

void
bom_file_free(struct bom_file *f)
{
    if (!f)
        return;
    free(f->path);
    f->path = NULL;
    json_decref(f->meta);
    f->meta = NULL;
}

void
bom_parsed_free(struct bom_parsed *b)
{
    if (!b)
        return;
    free(b->name);
    free(b->version);
    for (size_t i = 0; i < b->n; i++)
        bom_file_free(&b->files[i]);
    free(b->files);
    memset(b, 0, sizeof *b);
}

int
bom_parse(const char *text, size_t len, struct bom_parsed *out, struct al_err *e)
{
    int rc = -1;
    json_t *root = NULL;
    struct bom_file **sorted = NULL;
    memset(out, 0, sizeof *out);
    if (len > BOM_MAX_TEXT) {
        al_errf(e, AL_ELIMIT, "BOM: %zu bytes, limit %u", len, BOM_MAX_TEXT);
        goto out;
    }
    long bad = depth_violation(text, len, BOM_MAX_DEPTH);
    if (bad >= 0) {
        al_errf(e, AL_ELIMIT, "BOM: byte %ld: JSON nests deeper than %d", bad, BOM_MAX_DEPTH);
        goto out;
    }
    json_error_t je;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        al_errf(e, AL_EFORMAT, "BOM: line %d column %d: %s", je.line, je.column, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        al_errf(e, AL_EFORMAT, "BOM: not a JSON object");
        goto out;
    }
    const char *fmt = get_str(root, "bomFormat"), *spec = get_str(root, "specVersion");
    if (!fmt || strcmp(fmt, "CycloneDX") != 0 || !spec || strcmp(spec, "1.6") != 0) {
        al_errf(e, AL_EFORMAT, "BOM: bomFormat/specVersion is not CycloneDX/1.6");
        goto out;
    }
    const json_t *bc = json_object_get(json_object_get(root, "metadata"), "component");
    const char *name = get_str(bc, "name"), *version = get_str(bc, "version");
    if (!name || !version || !name[0] || !version[0]) {
        al_errf(e, AL_EFORMAT, "BOM: metadata.component needs name and version strings");
        goto out;
    }
    out->name = xstrdup(name);
    out->version = xstrdup(version);

    const json_t *comps = json_object_get(root, "components");
    if (!comps) {
        rc = 0; /* an empty bundle has no components */
        goto out;
    }
    if (!json_is_array(comps)) {
        al_errf(e, AL_EFORMAT, "BOM: components is not an array");
        goto out;
    }
    size_t n = json_array_size(comps);
    if (n > BOM_MAX_FILES) {
        al_errf(e, AL_ELIMIT, "BOM: %zu components, limit %u", n, BOM_MAX_FILES);
        goto out;
    }
    out->files = xcalloc(n ? n : 1, sizeof *out->files);
    for (size_t i = 0; i < n; i++) {
        out->n = i + 1; /* so a half-filled entry is freed */
        if (parse_component(json_array_get(comps, i), i, &out->files[i], e) != 0)
            goto out;
    }
    sorted = xcalloc(n ? n : 1, sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        sorted[i] = &out->files[i];
    qsort(sorted, n, sizeof *sorted, file_path_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(sorted[i - 1]->path, sorted[i]->path) == 0) {
            al_errf(e, AL_EFORMAT, "BOM: file %s listed twice", sorted[i]->path);
            goto out;
        }
    rc = 0;
out:
    free(sorted);
    json_decref(root);
    if (rc != 0)
        bom_parsed_free(out);
    return rc;
}
