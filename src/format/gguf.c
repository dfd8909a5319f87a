/* gguf.c -- GGUF v2/v3 reader over a read-only mapping (see gguf.h; format: docs/formats/gguf.md).
 * Reads go through a bounded cursor (struct rd): every read checks the bytes left, every count
 * is checked against the bytes that could hold it before any allocation, every tensor range
 * must lie inside the file. Input is untrusted. */
#include "format/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/xalloc.h"

/* ===== Type tables ============================================================================ */

static const struct {
    const char *name;
    uint32_t elems;  /* elements per block */
    uint32_t bytes;  /* bytes per block */
} type_info[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},         [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},     [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},     [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},     [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84},    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144},   [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210},   [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18}, [GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 82},  [GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GGML_TYPE_I8] = {"I8", 1, 1},           [GGML_TYPE_I16] = {"I16", 1, 2},
    [GGML_TYPE_I32] = {"I32", 1, 4},         [GGML_TYPE_I64] = {"I64", 1, 8},
    [GGML_TYPE_F64] = {"F64", 1, 8},         [GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},       [GGML_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [GGML_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
};

uint32_t
ggml_type_block_elems(enum ggml_type t)
{
    return (unsigned)t < GGML_TYPE_COUNT ? type_info[t].elems : 0;
}

uint32_t
ggml_type_block_bytes(enum ggml_type t)
{
    return (unsigned)t < GGML_TYPE_COUNT ? type_info[t].bytes : 0;
}

const char *
ggml_type_name(enum ggml_type t)
{
    if ((unsigned)t < GGML_TYPE_COUNT && type_info[t].name)
        return type_info[t].name;
    return "unknown";
}

static const char *const vtype_names[GGUF_VT_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *
gguf_vtype_name(enum gguf_vtype t)
{
    return (unsigned)t < GGUF_VT_COUNT ? vtype_names[t] : "unknown";
}

/* bytes of one scalar of type t; 0 for string/array (variable) */
static uint32_t
vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

/* ===== Bounded cursor ========================================================================= */

struct rd {
    const uint8_t *base; /* start of input */
    const uint8_t *p;    /* next byte */
    const uint8_t *end;  /* one past the last byte available */
    const char *what;    /* file name for messages */
};

static size_t
rd_left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

static long long
rd_off(const struct rd *r)
{
    return (long long)(r->p - r->base);
}

static int
rd_need(struct rd *r, uint64_t n, const char *field, struct al_err *e)
{
    if (n > rd_left(r))
        return al_errf(e, AL_EFORMAT, "%s: truncated at byte %lld reading %s (need %" PRIu64
                       " bytes, %zu left)", r->what, rd_off(r), field, n, rd_left(r));
    return 0;
}

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int
rd_u32(struct rd *r, uint32_t *v, const char *field, struct al_err *e)
{
    if (rd_need(r, 4, field, e) < 0)
        return -1;
    *v = le32(r->p);
    r->p += 4;
    return 0;
}

static int
rd_u64(struct rd *r, uint64_t *v, const char *field, struct al_err *e)
{
    if (rd_need(r, 8, field, e) < 0)
        return -1;
    *v = le64(r->p);
    r->p += 8;
    return 0;
}

static int
rd_str(struct rd *r, struct gguf_str *s, uint64_t max, const char *field, struct al_err *e)
{
    uint64_t n;
    long long at = rd_off(r);
    if (rd_u64(r, &n, field, e) < 0)
        return -1;
    if (n > max)
        return al_errf(e, AL_ELIMIT, "%s: byte %lld: %s length %" PRIu64 " exceeds limit %" PRIu64,
                       r->what, at, field, n, max);
    if (rd_need(r, n, field, e) < 0)
        return -1;
    s->p = (const char *)r->p;
    s->n = n;
    r->p += n;
    return 0;
}

/* ===== Key/value table ======================================================================== */

/* Skip over one value of type t (scalars, strings; arrays handled by the caller). */
static int
skip_value(struct rd *r, enum gguf_vtype t, const struct gguf_limits *lim, const char *key,
           struct al_err *e)
{
    uint32_t sz = vtype_size(t);
    if (sz)
        return rd_need(r, sz, key, e) < 0 ? -1 : (r->p += sz, 0);
    if (t == GGUF_VT_STRING) {
        struct gguf_str s;
        return rd_str(r, &s, lim->max_str, key, e);
    }
    return al_errf(e, AL_EFORMAT, "%s: byte %lld: key '%s': invalid value type %d", r->what,
                   rd_off(r), key, (int)t);
}

static int
read_kv(struct rd *r, struct gguf_kv *kv, const struct gguf_limits *lim, struct al_err *e)
{
    long long at = rd_off(r);
    if (rd_str(r, &kv->key, 65535, "key name", e) < 0)
        return -1;
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.n < 120 ? kv->key.n : 120), kv->key.p);
    uint32_t t;
    if (rd_u32(r, &t, "value type", e) < 0)
        return -1;
    if (t >= GGUF_VT_COUNT)
        return al_errf(e, AL_EFORMAT, "%s: byte %lld: key '%s': unknown value type %u", r->what,
                       at, key, t);
    kv->type = t;
    kv->arr_n = 0;
    kv->arr_type = 0;
    if (t == GGUF_VT_ARRAY) {
        uint32_t at2;
        if (rd_u32(r, &at2, "array element type", e) < 0)
            return -1;
        if (at2 >= GGUF_VT_COUNT || at2 == GGUF_VT_ARRAY)
            return al_errf(e, AL_EFORMAT, "%s: key '%s': unsupported array element type %u",
                           r->what, key, at2);
        uint64_t n;
        if (rd_u64(r, &n, "array length", e) < 0)
            return -1;
        kv->arr_type = at2;
        kv->arr_n = n;
        kv->val = r->p;
        uint32_t sz = vtype_size(at2);
        if (sz) {
            uint64_t bytes;
            if (!u64_mul_ok(n, sz, &bytes) || bytes > rd_left(r))
                return al_errf(e, AL_EFORMAT, "%s: key '%s': array of %" PRIu64 " %s "
                               "elements runs past the end of the file", r->what, key, n,
                               gguf_vtype_name(at2));
            r->p += bytes;
        } else {
            /* strings: each needs at least its 8-byte length */
            if (n > rd_left(r) / 8)
                return al_errf(e, AL_EFORMAT, "%s: key '%s': array of %" PRIu64 " strings "
                               "cannot fit in the %zu bytes left", r->what, key, n, rd_left(r));
            for (uint64_t i = 0; i < n; i++)
                if (skip_value(r, at2, lim, key, e) < 0)
                    return -1;
        }
    } else {
        kv->val = r->p;
        if (skip_value(r, t, lim, key, e) < 0)
            return -1;
    }
    kv->val_bytes = (uint64_t)(r->p - kv->val);
    return 0;
}

/* ===== Tensor table =========================================================================== */

static int
read_tensor(struct rd *r, struct gguf_tensor *t, const struct gguf_limits *lim, struct al_err *e)
{
    if (rd_str(r, &t->name, 65535, "tensor name", e) < 0)
        return -1;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(t->name.n < 120 ? t->name.n : 120), t->name.p);
    if (rd_u32(r, &t->n_dims, "tensor n_dims", e) < 0)
        return -1;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return al_errf(e, AL_EFORMAT, "%s: tensor '%s': %u dimensions (1..%d allowed)", r->what,
                       name, t->n_dims, GGUF_MAX_DIMS);
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims) {
            if (rd_u64(r, &t->ne[d], "tensor dimension", e) < 0)
                return -1;
            if (t->ne[d] == 0 || t->ne[d] > (UINT64_C(1) << 40))
                return al_errf(e, AL_EFORMAT, "%s: tensor '%s': dimension %u is %" PRIu64,
                               r->what, name, d, t->ne[d]);
            if (!u64_mul_ok(n_elems, t->ne[d], &n_elems))
                return al_errf(e, AL_EFORMAT, "%s: tensor '%s': element count overflows",
                               r->what, name);
        }
    }
    uint32_t type;
    if (rd_u32(r, &type, "tensor type", e) < 0)
        return -1;
    t->type = type;
    uint32_t be = ggml_type_block_elems(type), bb = ggml_type_block_bytes(type);
    if (!be || !bb)
        return al_errf(e, AL_EUNSUPPORTED, "%s: tensor '%s': unknown tensor type id %u", r->what,
                       name, type);
    if (t->ne[0] % be != 0)
        return al_errf(e, AL_EFORMAT, "%s: tensor '%s': row of %" PRIu64 " elements is not a "
                       "multiple of the %s block size %u", r->what, name, t->ne[0],
                       ggml_type_name(type), be);
    t->n_elems = n_elems;
    if (!u64_mul_ok(n_elems / be, bb, &t->nbytes))
        return al_errf(e, AL_EFORMAT, "%s: tensor '%s': byte size overflows", r->what, name);
    if (rd_u64(r, &t->offset, "tensor offset", e) < 0)
        return -1;
    (void)lim;
    return 0;
}

static int
name_cmp(const void *a, const void *b)
{
    const struct gguf_str *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

struct off_idx {
    uint64_t off, end;
    uint64_t i;
};

static int
off_cmp(const void *a, const void *b)
{
    const struct off_idx *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* Duplicate names and overlapping data ranges are refused: either is a sign of a hostile or
 * corrupt file, and both would let two names alias the same bytes. */
static int
check_uniqueness(struct gguf *g, struct al_err *e)
{
    int rc = -1;
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    struct gguf_str *names = xcalloc(n ? n : 1, sizeof *names);
    struct off_idx *offs = NULL;
    for (uint64_t i = 0; i < g->n_kv; i++)
        names[i] = g->kv[i].key;
    qsort(names, g->n_kv, sizeof *names, name_cmp);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (name_cmp(&names[i - 1], &names[i]) == 0) {
            al_errf(e, AL_EFORMAT, "%s: duplicate key '%.*s'", g->what,
                    (int)(names[i].n < 200 ? names[i].n : 200), names[i].p);
            goto out;
        }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        names[i] = g->tensors[i].name;
    qsort(names, g->n_tensors, sizeof *names, name_cmp);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (name_cmp(&names[i - 1], &names[i]) == 0) {
            al_errf(e, AL_EFORMAT, "%s: duplicate tensor '%.*s'", g->what,
                    (int)(names[i].n < 200 ? names[i].n : 200), names[i].p);
            goto out;
        }
    offs = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof *offs);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        offs[i] = (struct off_idx){g->tensors[i].offset,
                                   g->tensors[i].offset + g->tensors[i].nbytes, i};
    qsort(offs, g->n_tensors, sizeof *offs, off_cmp);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (offs[i].off < offs[i - 1].end) {
            const struct gguf_tensor *a = &g->tensors[offs[i - 1].i], *b = &g->tensors[offs[i].i];
            al_errf(e, AL_EFORMAT, "%s: tensors '%.*s' and '%.*s' overlap", g->what,
                    (int)(a->name.n < 100 ? a->name.n : 100), a->name.p,
                    (int)(b->name.n < 100 ? b->name.n : 100), b->name.p);
            goto out;
        }
    rc = 0;
out:
    free(names);
    free(offs);
    return rc;
}

/* ===== Lifecycle ============================================================================== */

int
gguf_parse(struct gguf *g, const uint8_t *buf, size_t len, uint64_t file_size, const char *what,
           const struct gguf_limits *lim, struct al_err *e)
{
    struct gguf_limits dflt = {1u << 20, 1u << 20, 64u << 20};
    if (!lim)
        lim = &dflt;
    memset(g, 0, sizeof *g);
    g->map.fd = -1; /* gguf_open re-attaches its mapping after a successful parse */
    snprintf(g->what, sizeof g->what, "%s", what ? what : "gguf");
    g->base = buf;
    g->size = len;
    g->file_size = file_size < len ? len : file_size;
    struct rd r = {buf, buf, buf + len, g->what};

    uint32_t magic;
    if (rd_u32(&r, &magic, "magic", e) < 0)
        return -1;
    if (magic != GGUF_MAGIC)
        return al_errf(e, AL_EFORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x at byte 0)",
                       g->what, buf[0], buf[1], buf[2], buf[3]);
    if (rd_u32(&r, &g->version, "version", e) < 0)
        return -1;
    if (g->version == 1)
        return al_errf(e, AL_EUNSUPPORTED, "%s: GGUF version 1 is not supported (2 or 3 are)",
                       g->what);
    if (g->version != 2 && g->version != 3)
        return al_errf(e, AL_EFORMAT, "%s: byte 4: unknown GGUF version %u", g->what, g->version);
    if (rd_u64(&r, &g->n_tensors, "tensor count", e) < 0 ||
        rd_u64(&r, &g->n_kv, "key/value count", e) < 0)
        return -1;
    if (g->n_tensors > lim->max_tensors)
        return al_errf(e, AL_ELIMIT, "%s: %" PRIu64 " tensors, limit %" PRIu64, g->what,
                       g->n_tensors, lim->max_tensors);
    if (g->n_kv > lim->max_kv)
        return al_errf(e, AL_ELIMIT, "%s: %" PRIu64 " keys, limit %" PRIu64, g->what, g->n_kv,
                       lim->max_kv);
    /* each kv needs >= 12 bytes and each tensor >= 24: refuse counts the input cannot hold
     * before allocating the index arrays */
    if (g->n_kv > rd_left(&r) / 12 || g->n_tensors > rd_left(&r) / 24)
        return al_errf(e, AL_EFORMAT, "%s: header claims %" PRIu64 " keys and %" PRIu64
                       " tensors, more than the %zu bytes left can hold", g->what, g->n_kv,
                       g->n_tensors, rd_left(&r));
    g->kv = xcalloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (read_kv(&r, &g->kv[i], lim, e) < 0)
            goto fail;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *al = gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_VT_UINT32) {
            al_errf(e, AL_EFORMAT, "%s: general.alignment has type %s, expected uint32", g->what,
                    gguf_vtype_name(al->type));
            goto fail;
        }
        g->alignment = le32(al->val);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) || g->alignment > 65536) {
            al_errf(e, AL_EFORMAT, "%s: general.alignment %u is not a power of two <= 65536",
                    g->what, g->alignment);
            goto fail;
        }
    }
    g->tensors = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor(&r, &g->tensors[i], lim, e) < 0)
            goto fail;
    uint64_t hdr = (uint64_t)(r.p - buf);
    g->data_offset = (hdr + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        uint64_t start, end;
        if (t->offset % g->alignment != 0) {
            al_errf(e, AL_EFORMAT, "%s: tensor '%.*s': offset %" PRIu64 " not aligned to %u",
                    g->what, (int)(t->name.n < 100 ? t->name.n : 100), t->name.p, t->offset,
                    g->alignment);
            goto fail;
        }
        if (!u64_add_ok(g->data_offset, t->offset, &start) || !u64_add_ok(start, t->nbytes, &end) ||
            end > g->file_size) {
            al_errf(e, AL_EFORMAT, "%s: tensor '%.*s': data [%" PRIu64 ", +%" PRIu64 ") runs past "
                    "the end of the file (%" PRIu64 " bytes)", g->what,
                    (int)(t->name.n < 100 ? t->name.n : 100), t->name.p, t->offset, t->nbytes,
                    g->file_size);
            goto fail;
        }
        t->data = end <= len ? buf + start : NULL;
    }
    if (check_uniqueness(g, e) < 0)
        goto fail;
    return 0;
fail:
    free(g->kv);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
    g->n_kv = g->n_tensors = 0;
    return -1;
}

int
gguf_open(struct gguf *g, const char *path, const struct gguf_limits *lim, struct al_err *e)
{
    memset(g, 0, sizeof *g);
    g->map.fd = -1;
    if (fsx_map_open(&g->map, path, e) < 0)
        return -1;
    if (g->map.size < 24) {
        size_t n = g->map.size;
        fsx_map_close(&g->map);
        return al_errf(e, AL_EFORMAT, "%s: %zu bytes is too short for a GGUF header", path, n);
    }
    struct fsx_map map = g->map;
    if (gguf_parse(g, map.base, map.size, map.size, path, lim, e) < 0) {
        fsx_map_close(&map);
        g->map.fd = -1;
        return -1;
    }
    g->map = map;
    g->mapped = true;
    return 0;
}

void
gguf_close(struct gguf *g)
{
    if (!g)
        return;
    free(g->kv);
    free(g->tensors);
    if (g->mapped)
        fsx_map_close(&g->map);
    memset(g, 0, sizeof *g);
    g->map.fd = -1;
}

/* ===== Lookup ================================================================================= */

bool
gguf_str_eq(struct gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && memcmp(s.p, c, n) == 0;
}

const struct gguf_kv *
gguf_find(const struct gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gguf_str_eq(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const struct gguf_tensor *
gguf_find_tensor(const struct gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_eq(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

/* Read a scalar of any numeric type as double / signed / unsigned for the typed getters. */
static int
scalar_num(enum gguf_vtype t, const uint8_t *p, double *d, int64_t *i, uint64_t *u, bool *is_int,
           bool *neg)
{
    *is_int = true;
    *neg = false;
    switch (t) {
    case GGUF_VT_UINT8: *u = p[0]; break;
    case GGUF_VT_INT8: *i = (int8_t)p[0]; *neg = *i < 0; *u = (uint64_t)*i; break;
    case GGUF_VT_UINT16: *u = (uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_VT_INT16: *i = (int16_t)(p[0] | p[1] << 8); *neg = *i < 0; *u = (uint64_t)*i; break;
    case GGUF_VT_UINT32: *u = le32(p); break;
    case GGUF_VT_INT32: *i = (int32_t)le32(p); *neg = *i < 0; *u = (uint64_t)*i; break;
    case GGUF_VT_UINT64: *u = le64(p); break;
    case GGUF_VT_INT64: *i = (int64_t)le64(p); *neg = *i < 0; *u = (uint64_t)*i; break;
    case GGUF_VT_FLOAT32: {
        uint32_t b = le32(p);
        float f;
        memcpy(&f, &b, 4);
        *d = f;
        *is_int = false;
        return 0;
    }
    case GGUF_VT_FLOAT64: {
        uint64_t b = le64(p);
        memcpy(d, &b, 8);
        *is_int = false;
        return 0;
    }
    default: return -1;
    }
    if (*neg)
        *d = (double)*i;
    else {
        *d = (double)*u;
        *i = (int64_t)*u;
    }
    return 0;
}

static int
get_uint(const struct gguf *g, const char *key, uint64_t max, uint64_t *out, struct al_err *e)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv)
        return 1;
    double d;
    int64_t i;
    uint64_t u;
    bool is_int, neg;
    if (scalar_num(kv->type, kv->val, &d, &i, &u, &is_int, &neg) < 0 || !is_int)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' has type %s, expected an integer", g->what,
                       key, gguf_vtype_name(kv->type));
    if (neg || u > max)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' value %lld out of range", g->what, key,
                       (long long)i);
    *out = u;
    return 0;
}

int
gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, struct al_err *e)
{
    uint64_t v;
    int rc = get_uint(g, key, UINT32_MAX, &v, e);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

int
gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, struct al_err *e)
{
    return get_uint(g, key, UINT64_MAX, out, e);
}

int
gguf_get_f32(const struct gguf *g, const char *key, float *out, struct al_err *e)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv)
        return 1;
    double d;
    int64_t i;
    uint64_t u;
    bool is_int, neg;
    if (scalar_num(kv->type, kv->val, &d, &i, &u, &is_int, &neg) < 0)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' has type %s, expected a number", g->what,
                       key, gguf_vtype_name(kv->type));
    *out = (float)d;
    return 0;
}

int
gguf_get_bool(const struct gguf *g, const char *key, bool *out, struct al_err *e)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv)
        return 1;
    if (kv->type != GGUF_VT_BOOL)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' has type %s, expected bool", g->what, key,
                       gguf_vtype_name(kv->type));
    *out = kv->val[0] != 0;
    return 0;
}

int
gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out, struct al_err *e)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv)
        return 1;
    if (kv->type != GGUF_VT_STRING)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' has type %s, expected string", g->what, key,
                       gguf_vtype_name(kv->type));
    out->n = le64(kv->val);
    out->p = (const char *)kv->val + 8;
    return 0;
}

char *
gguf_get_strdup(const struct gguf *g, const char *key, struct al_err *e)
{
    struct gguf_str s;
    if (gguf_get_str(g, key, &s, e) != 0)
        return NULL;
    return xstrndup(s.p, s.n);
}

static int
get_arr(const struct gguf *g, const char *key, const struct gguf_kv **kv, struct al_err *e)
{
    *kv = gguf_find(g, key);
    if (!*kv)
        return 1;
    if ((*kv)->type != GGUF_VT_ARRAY)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' has type %s, expected an array", g->what, key,
                       gguf_vtype_name((*kv)->type));
    return 0;
}

int
gguf_get_arr_str(const struct gguf *g, const char *key, struct gguf_str **out, uint64_t *n,
                 struct al_err *e)
{
    const struct gguf_kv *kv;
    int rc = get_arr(g, key, &kv, e);
    if (rc != 0)
        return rc;
    if (kv->arr_type != GGUF_VT_STRING)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' is an array of %s, expected strings", g->what,
                       key, gguf_vtype_name(kv->arr_type));
    /* already bounds-checked by read_kv: each element is a u64 length + bytes inside val */
    struct gguf_str *s = xcalloc(kv->arr_n ? kv->arr_n : 1, sizeof *s);
    const uint8_t *p = kv->val;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        s[i].n = le64(p);
        s[i].p = (const char *)p + 8;
        p += 8 + s[i].n;
    }
    *out = s;
    *n = kv->arr_n;
    return 0;
}

static int
arr_num(const struct gguf *g, const char *key, const struct gguf_kv **kvp, struct al_err *e)
{
    int rc = get_arr(g, key, kvp, e);
    if (rc != 0)
        return rc;
    if (!vtype_size((*kvp)->arr_type) || (*kvp)->arr_type == GGUF_VT_BOOL)
        return al_errf(e, AL_EFORMAT, "%s: key '%s' is an array of %s, expected numbers", g->what,
                       key, gguf_vtype_name((*kvp)->arr_type));
    return 0;
}

int
gguf_get_arr_f32(const struct gguf *g, const char *key, float **out, uint64_t *n,
                 struct al_err *e)
{
    const struct gguf_kv *kv;
    int rc = arr_num(g, key, &kv, e);
    if (rc != 0)
        return rc;
    uint32_t sz = vtype_size(kv->arr_type);
    float *v = xcalloc(kv->arr_n ? kv->arr_n : 1, sizeof *v);
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        double d;
        int64_t si;
        uint64_t u;
        bool is_int, neg;
        scalar_num(kv->arr_type, kv->val + i * sz, &d, &si, &u, &is_int, &neg);
        v[i] = (float)d;
    }
    *out = v;
    *n = kv->arr_n;
    return 0;
}

int
gguf_get_arr_i32(const struct gguf *g, const char *key, int32_t **out, uint64_t *n,
                 struct al_err *e)
{
    const struct gguf_kv *kv;
    int rc = arr_num(g, key, &kv, e);
    if (rc != 0)
        return rc;
    uint32_t sz = vtype_size(kv->arr_type);
    int32_t *v = xcalloc(kv->arr_n ? kv->arr_n : 1, sizeof *v);
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        double d;
        int64_t si;
        uint64_t u;
        bool is_int, neg;
        scalar_num(kv->arr_type, kv->val + i * sz, &d, &si, &u, &is_int, &neg);
        if (!is_int || si < INT32_MIN || si > INT32_MAX) {
            free(v);
            return al_errf(e, AL_EFORMAT, "%s: key '%s' element %" PRIu64 " is not an int32",
                           g->what, key, i);
        }
        v[i] = (int32_t)si;
    }
    *out = v;
    *n = kv->arr_n;
    return 0;
}
