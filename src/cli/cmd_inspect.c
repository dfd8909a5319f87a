/* cmd_inspect.c -- `airlock inspect FILE`: the safety verdict of any file and, for GGUF and
 * safetensors, the model metadata the BOM records (the same bom_model_meta numbers), with -v
 * every key/value and every tensor. Option parsing and printing only: the bytes are read by
 * transfer/safety.c, format/gguf.c and format/safetensors.c, whose bounded parsers turn a
 * truncated or hostile header into an error (exit 4) naming the byte or field. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli/cli.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "transfer/bom.h"
#include "transfer/safety.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define ARRAY_SHOW 8       /* array elements shown before "..." */
#define STR_SHOW_TEXT 160  /* bytes of a string value shown in text mode */
#define STR_SHOW_JSON 65536

const char cmd_inspect_usage[] =
    "Usage: airlock inspect FILE [-v] [--json]\n"
    "\n"
    "Print the safety verdict of FILE and, for a GGUF or safetensors model, its metadata:\n"
    "GGUF version, architecture, name, parameter count, tensor type histogram, context\n"
    "length, vocabulary size, tokenizer model and whether a chat template is present;\n"
    "for safetensors the dtypes, tensor count, parameter count and __metadata__.\n"
    "These are the values `airlock pack` records in BOM.json.\n"
    "\n"
    "The safety verdict is decided from the file's own bytes and name, never trusted from a\n"
    "manifest: weights (GGUF, safetensors), pickle (a pickle stream, or a zip such as\n"
    "torch.save output holding one: loading it can run code), code (Python, shell scripts,\n"
    "shebang files, ELF/PE/Mach-O binaries, shared objects) or data (everything else).\n"
    "Headers are parsed with bounds checks: a truncated or hostile file is reported as an\n"
    "error naming the byte or field, never loaded into memory whole.\n"
    "\n"
    "For a pickle the globals it imports (module.name) are listed as far as they can be read\n"
    "without running it: torch state dicts import torch._utils and collections names;\n"
    "anything like os.system or builtins.eval means the file runs code on load.\n"
    "\n"
    "Options:\n"
    "  -v, --verbose   also list every metadata key/value (long arrays and strings are\n"
    "                  abbreviated) and every tensor with its type, shape and offset\n"
    "      --json      print one JSON object: {file, size, safety: {class, format, reason, imports},\n"
    "                  model: {...} or null, and with -v metadata: [...], tensors: [...]}\n"
    "  -h, --help      show this text\n"
    "\n"
    "Exit status:\n"
    "  0  inspected (whatever the verdict: a pickle is reported, not an error)\n"
    "  2  usage error\n"
    "  3  the file cannot be opened or read\n"
    "  4  malformed or hostile GGUF/safetensors header (also for a .gguf/.safetensors name\n"
    "     whose bytes are not one)\n"
    "\n"
    "Examples:\n"
    "  airlock inspect model.gguf\n"
    "  airlock inspect -v --json model.safetensors\n"
    "  airlock inspect pytorch_model.bin\n";

/* ===== value rendering ==================================================================== */

/* Owned copy of at most max bytes of s, cut at a UTF-8 character boundary. */
static json_t *
str_json(const char *s, uint64_t n, size_t max, bool *cut)
{
    size_t k = n > max ? max : (size_t)n;
    if (k < n)
        while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
            k--;
    *cut = k < n;
    json_t *v = json_stringn(s, k);
    if (!v) {
        char *t = xasprintf("<%" PRIu64 " bytes, not UTF-8>", n);
        v = json_string(t);
        free(t);
    }
    return v;
}

static uint64_t
rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* One scalar or string value at p (which the GGUF parser has already bounds-checked);
 * *len receives the bytes it occupies. */
static json_t *
gguf_scalar_json(enum gguf_vtype t, const uint8_t *p, size_t max_str, uint64_t *len)
{
    bool cut;
    switch (t) {
    case GGUF_VT_UINT8: *len = 1; return json_integer(p[0]);
    case GGUF_VT_INT8: *len = 1; return json_integer((int8_t)p[0]);
    case GGUF_VT_UINT16: *len = 2; return json_integer((json_int_t)rd_le(p, 2));
    case GGUF_VT_INT16: *len = 2; return json_integer((int16_t)rd_le(p, 2));
    case GGUF_VT_UINT32: *len = 4; return json_integer((json_int_t)rd_le(p, 4));
    case GGUF_VT_INT32: *len = 4; return json_integer((int32_t)rd_le(p, 4));
    case GGUF_VT_UINT64: {
        *len = 8;
        uint64_t u = rd_le(p, 8);
        return u > INT64_MAX ? json_real((double)u) : json_integer((json_int_t)u);
    }
    case GGUF_VT_INT64: *len = 8; return json_integer((json_int_t)(int64_t)rd_le(p, 8));
    case GGUF_VT_FLOAT32: {
        *len = 4;
        uint32_t b = (uint32_t)rd_le(p, 4);
        float f;
        memcpy(&f, &b, 4);
        return json_real(f);
    }
    case GGUF_VT_FLOAT64: {
        *len = 8;
        uint64_t b = rd_le(p, 8);
        double d;
        memcpy(&d, &b, 8);
        return json_real(d);
    }
    case GGUF_VT_BOOL: *len = 1; return json_boolean(p[0] != 0);
    case GGUF_VT_STRING: {
        uint64_t n = rd_le(p, 8);
        *len = 8 + n;
        return str_json((const char *)p + 8, n, max_str, &cut);
    }
    default:
        *len = 0;
        return json_null();
    }
}

/* A kv value: scalars as themselves, arrays as {count, element_type, head:[first 8]}. */
static json_t *
gguf_kv_json(const struct gguf_kv *kv, size_t max_str)
{
    uint64_t len;
    if (kv->type != GGUF_VT_ARRAY)
        return gguf_scalar_json(kv->type, kv->val, max_str, &len);
    json_t *o = json_object();
    json_object_set_new(o, "element_type", json_string(gguf_vtype_name(kv->arr_type)));
    json_object_set_new(o, "count", json_integer((json_int_t)kv->arr_n));
    json_t *head = json_array();
    const uint8_t *p = kv->val;
    for (uint64_t i = 0; i < kv->arr_n && i < ARRAY_SHOW; i++) {
        json_array_append_new(head, gguf_scalar_json(kv->arr_type, p, max_str, &len));
        p += len;
    }
    json_object_set_new(o, "head", head);
    return o;
}

static void
print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

/* Text from the file (names, keys) goes to a terminal: control bytes become '?' so a hostile
 * header cannot send escape sequences. */
static void
put_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : "?"); *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, stdout);
}

/* compact one-line rendering of a JSON value for text output */
static void
print_compact(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    fputs(s ? s : "?", stdout);
    free(s);
}

static void
human_count(uint64_t n, char *out, size_t cap)
{
    if (n >= 1000000000ULL)
        snprintf(out, cap, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000ULL)
        snprintf(out, cap, "%.2fM", (double)n / 1e6);
    else if (n >= 1000ULL)
        snprintf(out, cap, "%.1fK", (double)n / 1e3);
    else
        snprintf(out, cap, "%" PRIu64, n);
}

/* ===== verbose listings ==================================================================== */

static json_t *
gguf_listing(const struct gguf *g, bool json, json_t **tensors)
{
    json_t *kvs = json_array();
    *tensors = json_array();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct gguf_kv *kv = &g->kv[i];
        bool cut;
        json_t *o = json_object();
        json_object_set_new(o, "key", str_json(kv->key.p, kv->key.n, 1024, &cut));
        json_object_set_new(o, "type", json_string(gguf_vtype_name(kv->type)));
        json_object_set_new(o, "value", gguf_kv_json(kv, json ? STR_SHOW_JSON : STR_SHOW_TEXT));
        json_array_append_new(kvs, o);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        bool cut;
        json_t *o = json_object();
        json_object_set_new(o, "name", str_json(t->name.p, t->name.n, 1024, &cut));
        json_object_set_new(o, "type", json_string(ggml_type_name(t->type)));
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims && d < GGUF_MAX_DIMS; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->ne[d]));
        json_object_set_new(o, "shape", shape);
        json_object_set_new(o, "offset", json_integer((json_int_t)t->offset));
        json_object_set_new(o, "bytes", json_integer((json_int_t)t->nbytes));
        json_array_append_new(*tensors, o);
    }
    return kvs;
}

static json_t *
safetensors_listing(const struct safetensors *st, json_t **tensors)
{
    json_t *kvs = json_array();
    *tensors = json_array();
    for (size_t i = 0; i < st->n_meta; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "key", json_string(st->meta[i].key));
        json_object_set_new(o, "type", json_string("string"));
        json_object_set_new(o, "value", json_string(st->meta[i].value));
        json_array_append_new(kvs, o);
    }
    for (size_t i = 0; i < st->n_tensors; i++) {
        const struct st_tensor *t = &st->tensors[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(t->name));
        json_object_set_new(o, "type", json_string(safetensors_dtype_name(t->dtype)));
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        json_object_set_new(o, "shape", shape);
        json_object_set_new(o, "offset", json_integer((json_int_t)t->begin));
        json_object_set_new(o, "bytes", json_integer((json_int_t)(t->end - t->begin)));
        json_array_append_new(*tensors, o);
    }
    return kvs;
}

static void
print_listing_text(const json_t *kvs, const json_t *tensors)
{
    size_t i;
    json_t *o;
    printf("\nmetadata (%zu keys):\n", json_array_size(kvs));
    json_array_foreach(kvs, i, o) {
        fputs("  ", stdout);
        put_safe(json_string_value(json_object_get(o, "key")));
        printf(": %s = ", json_string_value(json_object_get(o, "type")));
        const json_t *v = json_object_get(o, "value");
        if (json_is_object(v)) {
            json_int_t n = json_integer_value(json_object_get(v, "count"));
            printf("[%s x %" JSON_INTEGER_FORMAT "] ",
                   json_string_value(json_object_get(v, "element_type")), n);
            print_compact(json_object_get(v, "head"));
            if (n > ARRAY_SHOW)
                fputs(" ...", stdout);
        } else {
            print_compact(v);
        }
        fputc('\n', stdout);
    }
    printf("\ntensors (%zu):\n", json_array_size(tensors));
    json_array_foreach(tensors, i, o) {
        const char *tn = json_string_value(json_object_get(o, "name"));
        fputs("  ", stdout);
        put_safe(tn);
        for (size_t pad = tn ? strlen(tn) : 1; pad < 40; pad++)
            fputc(' ', stdout);
        printf(" %-8s ", json_string_value(json_object_get(o, "type")));
        print_compact(json_object_get(o, "shape"));
        printf("  offset %" JSON_INTEGER_FORMAT "  %" JSON_INTEGER_FORMAT " bytes\n",
               json_integer_value(json_object_get(o, "offset")),
               json_integer_value(json_object_get(o, "bytes")));
    }
}

/* ===== summary ============================================================================= */

static void
print_summary_text(const char *path, uint64_t size, const struct safety_verdict *v,
                   const json_t *m)
{
    fputs("file: ", stdout);
    put_safe(path);
    fputc('\n', stdout);
    printf("size: %" PRIu64 " bytes\n", size);
    printf("safety: %s (%s: %s)\n", safety_class_name(v->cls), v->format, v->reason);
    if (v->imports[0]) {
        fputs("pickle imports: ", stdout);
        put_safe(v->imports);
        fputc('\n', stdout);
    }
    if (v->cls == SAFETY_PICKLE)
        printf("WARNING: loading this file runs a pickle, which can execute arbitrary code\n");
    else if (v->cls == SAFETY_CODE)
        printf("WARNING: this file is executable code\n");
    if (!m)
        return;
    const char *fmt = json_string_value(json_object_get(m, "format"));
    const json_t *x;
    if (fmt && strcmp(fmt, "gguf") == 0)
        printf("format: GGUF v%" JSON_INTEGER_FORMAT "\n",
               json_integer_value(json_object_get(m, "gguf_version")));
    else
        printf("format: %s\n", fmt ? fmt : "?");
    if ((x = json_object_get(m, "architecture"))) {
        fputs("architecture: ", stdout);
        put_safe(json_string_value(x));
        fputc('\n', stdout);
    }
    if ((x = json_object_get(m, "name"))) {
        fputs("name: ", stdout);
        put_safe(json_string_value(x));
        fputc('\n', stdout);
    }
    if ((x = json_object_get(m, "parameters"))) {
        char h[32];
        human_count((uint64_t)json_integer_value(x), h, sizeof h);
        printf("parameters: %" JSON_INTEGER_FORMAT " (%s)\n", json_integer_value(x), h);
    }
    if ((x = json_object_get(m, "tensor_count")))
        printf("tensors: %" JSON_INTEGER_FORMAT "\n", json_integer_value(x));
    if ((x = json_object_get(m, "quantization"))) {
        printf("tensor types:");
        size_t i;
        json_t *q;
        json_array_foreach(x, i, q)
            printf("%s %s x%" JSON_INTEGER_FORMAT, i ? "," : "",
                   json_string_value(json_object_get(q, "type")),
                   json_integer_value(json_object_get(q, "tensors")));
        fputc('\n', stdout);
    }
    if ((x = json_object_get(m, "dtypes"))) {
        printf("dtypes:");
        size_t i;
        json_t *d;
        json_array_foreach(x, i, d)
            printf("%s %s", i ? "," : "", json_string_value(d));
        fputc('\n', stdout);
    }
    if ((x = json_object_get(m, "file_type")))
        printf("file type: %" JSON_INTEGER_FORMAT "\n", json_integer_value(x));
    if ((x = json_object_get(m, "context_length")))
        printf("context length: %" JSON_INTEGER_FORMAT "\n", json_integer_value(x));
    if ((x = json_object_get(m, "block_count")))
        printf("layers: %" JSON_INTEGER_FORMAT "\n", json_integer_value(x));
    if ((x = json_object_get(m, "embedding_length")))
        printf("embedding length: %" JSON_INTEGER_FORMAT "\n", json_integer_value(x));
    if ((x = json_object_get(m, "vocab_size")))
        printf("vocab size: %" JSON_INTEGER_FORMAT "\n", json_integer_value(x));
    if ((x = json_object_get(m, "tokenizer_model"))) {
        fputs("tokenizer: ", stdout);
        put_safe(json_string_value(x));
        fputc('\n', stdout);
    }
    if ((x = json_object_get(m, "chat_template")))
        printf("chat template: %s\n", json_is_true(x) ? "present" : "absent");
}

/* ===== command ============================================================================= */

static bool
name_has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), m = strlen(ext);
    return n >= m && strcasecmp(path + n - m, ext) == 0;
}

int
cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    bool json = false, verbose = false;
    struct al_err e = {0};
    struct gguf g;
    struct safetensors st;
    json_t *meta = NULL, *kvs = NULL, *tensors = NULL;
    int rc;
    int c;
    memset(&g, 0, sizeof g);
    memset(&st, 0, sizeof st);
    optind = 1;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            verbose = true;
            break;
        case 'j':
            json = true;
            break;
        default:
            return cli_usage_error("inspect", "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("inspect", "a FILE to inspect is required");
    if (optind + 1 < argc)
        return cli_usage_error("inspect", "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    struct safety_verdict v;
    if (safety_classify_file(path, path, &v, &e) != 0) {
        rc = cli_fail("inspect", &e, json);
        goto out;
    }
    struct stat sb;
    uint64_t size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;

    /* a model name whose bytes do not say so is run through its parser for the exact error */
    bool is_gguf = v.cls == SAFETY_WEIGHTS && strcmp(v.format, "gguf") == 0;
    bool is_st = v.cls == SAFETY_WEIGHTS && strcmp(v.format, "safetensors") == 0;
    if (!is_gguf && name_has_ext(path, ".gguf")) {
        if (gguf_open(&g, path, NULL, &e) != 0) {
            rc = cli_fail("inspect", &e, json);
            goto out;
        }
        gguf_close(&g);
        is_gguf = true;
        snprintf(v.format, sizeof v.format, "gguf");
        v.cls = SAFETY_WEIGHTS;
    }
    if (!is_st && name_has_ext(path, ".safetensors")) {
        if (safetensors_open(&st, path, &e) != 0) {
            rc = cli_fail("inspect", &e, json);
            goto out;
        }
        safetensors_free(&st);
        is_st = true;
        snprintf(v.format, sizeof v.format, "safetensors");
        v.cls = SAFETY_WEIGHTS;
    }
    void *m = NULL;
    if (bom_model_meta(path, &v, &m, &e) != 0) {
        rc = cli_fail("inspect", &e, json);
        goto out;
    }
    meta = m;

    if (verbose && is_gguf) {
        if (gguf_open(&g, path, NULL, &e) != 0) {
            rc = cli_fail("inspect", &e, json);
            goto out;
        }
        kvs = gguf_listing(&g, json, &tensors);
    } else if (verbose && is_st) {
        if (safetensors_open(&st, path, &e) != 0) {
            rc = cli_fail("inspect", &e, json);
            goto out;
        }
        kvs = safetensors_listing(&st, &tensors);
    }

    if (json) {
        json_t *o = json_object();
        json_t *f = json_string(path);
        json_object_set_new(o, "file", f ? f : json_string("<not UTF-8>"));
        json_object_set_new(o, "size", json_integer((json_int_t)size));
        json_t *s = json_object();
        json_object_set_new(s, "class", json_string(safety_class_name(v.cls)));
        json_object_set_new(s, "format", json_string(v.format));
        json_object_set_new(s, "reason", json_string(v.reason));
        if (v.imports[0])
            json_object_set_new(s, "imports", json_string(v.imports));
        json_object_set_new(o, "safety", s);
        json_object_set(o, "model", meta ? meta : json_null());
        if (kvs) {
            json_object_set(o, "metadata", kvs);
            json_object_set(o, "tensors", tensors);
        }
        print_json(o);
        json_decref(o);
    } else {
        print_summary_text(path, size, &v, meta);
        if (kvs)
            print_listing_text(kvs, tensors);
    }
    rc = AL_EXIT_OK;
out:
    json_decref(meta);
    json_decref(kvs);
    json_decref(tensors);
    gguf_close(&g);
    safetensors_free(&st);
    return rc;
}
