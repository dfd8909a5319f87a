/* safetensors.c -- bounds-checked safetensors header parser (see safetensors.h and
 * docs/formats/safetensors.md). Input is untrusted: the length prefix is capped and checked
 * against the file size before anything is allocated, the JSON nesting depth is checked before
 * jansson sees the text, and every tensor entry is validated field by field. Does not read or
 * convert tensor data.
 *
 *   off      size  field
 *   0        8     N, header length, unsigned little-endian; 2 <= N <= 100 MiB, 8+N <= file
 *   8        N     JSON object, UTF-8, optionally padded with ' ' (0x20):
 *                    { "__metadata__": {"k": "v", ...},           (optional, strings only)
 *                      "name": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}, ...}
 *   8+N      ...   tensor data; offsets are relative to byte 8+N
 */
#include "format/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsx.h"
#include "util/xalloc.h"

/* ===== dtype table ======================================================================== */

static const struct {
    const char *name;
    uint32_t bits;
} dtype_table[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 8},        [ST_U8] = {"U8", 8},
    [ST_I8] = {"I8", 8},            [ST_F8_E5M2] = {"F8_E5M2", 8},
    [ST_F8_E4M3] = {"F8_E4M3", 8},  [ST_F8_E8M0] = {"F8_E8M0", 8},
    [ST_I16] = {"I16", 16},         [ST_U16] = {"U16", 16},
    [ST_F16] = {"F16", 16},         [ST_BF16] = {"BF16", 16},
    [ST_I32] = {"I32", 32},         [ST_U32] = {"U32", 32},
    [ST_F32] = {"F32", 32},         [ST_C64] = {"C64", 64},
    [ST_F64] = {"F64", 64},         [ST_I64] = {"I64", 64},
    [ST_U64] = {"U64", 64},         [ST_F4] = {"F4", 4},
    [ST_F6_E2M3] = {"F6_E2M3", 6},  [ST_F6_E3M2] = {"F6_E3M2", 6},
};

const char *
safetensors_dtype_name(enum st_dtype t)
{
    if ((unsigned)t >= ST_DTYPE_COUNT)
        return "?";
    return dtype_table[t].name;
}

uint32_t
safetensors_dtype_bits(enum st_dtype t)
{
    if ((unsigned)t >= ST_DTYPE_COUNT)
        return 0;
    return dtype_table[t].bits;
}

static int
dtype_lookup(const char *s, enum st_dtype *out)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(dtype_table[i].name, s) == 0) {
            *out = (enum st_dtype)i;
            return 0;
        }
    return -1;
}

/* ===== helpers ============================================================================ */

static uint64_t
le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Nesting depth of JSON text, ignoring brackets inside strings. jansson has its own (large)
 * limit; a safetensors header never nests deeper than 3, so anything deeper is refused before
 * the recursive parser runs. Returns the byte offset of the first violation or -1 when fine. */
static long
json_depth_violation(const uint8_t *p, size_t n, int max_depth)
{
    int depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return (long)i;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return -1;
}

/* JSON integer that is a non-negative exact integer. */
static int
json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return -1;
    *out = (uint64_t)x;
    return 0;
}

static int
span_cmp(const void *a, const void *b)
{
    const struct st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* ===== one entry ========================================================================== */

static int
parse_metadata(struct safetensors *st, json_t *obj, const char *what, struct al_err *e)
{
    if (!json_is_object(obj))
        return al_errf(e, AL_EFORMAT, "%s: header: \"__metadata__\" is not an object", what);
    size_t n = json_object_size(obj);
    st->meta = xcalloc(n ? n : 1, sizeof *st->meta);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (!json_is_string(v))
            return al_errf(e, AL_EFORMAT, "%s: header: __metadata__ \"%.64s\" is not a string",
                           what, k);
        st->meta[st->n_meta].key = xstrdup(k);
        st->meta[st->n_meta].value =
            xstrndup(json_string_value(v), json_string_length(v));
        st->n_meta++;
    }
    return 0;
}

static int
parse_tensor(struct st_tensor *t, const char *name, json_t *obj, uint64_t data_len,
             const char *what, struct al_err *e)
{
    t->name = xstrdup(name);
    if (!json_is_object(obj))
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": entry is not an object", what, name);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0)
            return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": unknown field \"%.32s\"", what,
                           name, k);
    }
    json_t *dt = json_object_get(obj, "dtype");
    if (!json_is_string(dt))
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": missing or non-string dtype", what,
                       name);
    if (dtype_lookup(json_string_value(dt), &t->dtype) != 0)
        return al_errf(e, AL_EUNSUPPORTED, "%s: tensor \"%.64s\": unknown dtype \"%.16s\"", what,
                       name, json_string_value(dt));

    json_t *shape = json_object_get(obj, "shape");
    if (!json_is_array(shape))
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": missing or non-array shape", what,
                       name);
    if (json_array_size(shape) > SAFETENSORS_MAX_DIMS)
        return al_errf(e, AL_ELIMIT, "%s: tensor \"%.64s\": %zu dimensions, limit %d", what, name,
                       json_array_size(shape), SAFETENSORS_MAX_DIMS);
    t->n_dims = (uint32_t)json_array_size(shape);
    t->n_elems = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (json_u64(json_array_get(shape, i), &t->shape[i]) != 0)
            return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": shape[%u] is not a non-negative "
                           "integer", what, name, i);
        if (!u64_mul_ok(t->n_elems, t->shape[i], &t->n_elems))
            return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": shape product overflows", what,
                           name);
    }

    json_t *off = json_object_get(obj, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        json_u64(json_array_get(off, 0), &t->begin) != 0 ||
        json_u64(json_array_get(off, 1), &t->end) != 0)
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": data_offsets is not [begin, end] of "
                       "non-negative integers", what, name);
    if (t->end < t->begin)
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": data_offsets end %" PRIu64
                       " before begin %" PRIu64, what, name, t->end, t->begin);
    if (t->end > data_len)
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": data_offsets end %" PRIu64
                       " beyond the %" PRIu64 " data bytes in the file", what, name, t->end,
                       data_len);

    /* bits = n_elems * dtype bits must be whole bytes and equal the span */
    uint64_t bits;
    if (!u64_mul_ok(t->n_elems, safetensors_dtype_bits(t->dtype), &bits) || bits % 8 != 0 ||
        bits / 8 != t->end - t->begin)
        return al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": shape holds %" PRIu64 " %s elements"
                       " but data_offsets span %" PRIu64 " bytes", what, name, t->n_elems,
                       safetensors_dtype_name(t->dtype), t->end - t->begin);
    return 0;
}

/* ===== lifecycle ========================================================================== */

void
safetensors_free(struct safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    memset(st, 0, sizeof *st);
}

int
safetensors_parse(struct safetensors *st, const uint8_t *buf, size_t len, uint64_t file_size,
                  const char *what, struct al_err *e)
{
    int rc = -1;
    json_t *root = NULL;
    memset(st, 0, sizeof *st);
    if (len > file_size)
        return al_errf(e, AL_EINTERNAL, "%s: %zu bytes given for a file of %" PRIu64, what, len,
                       file_size);
    if (len < 8)
        return al_errf(e, AL_EFORMAT, "%s: truncated: %zu bytes, the 8-byte header length is "
                       "incomplete", what, len);
    uint64_t n = le64(buf);
    if (n < 2)
        return al_errf(e, AL_EFORMAT, "%s: header length %" PRIu64 " at byte 0 is too small",
                       what, n);
    if (n > SAFETENSORS_MAX_HEADER)
        return al_errf(e, AL_ELIMIT, "%s: header length %" PRIu64 " at byte 0 exceeds the limit"
                       " %u", what, n, SAFETENSORS_MAX_HEADER);
    if (n > file_size - 8)
        return al_errf(e, AL_EFORMAT, "%s: header length %" PRIu64 " at byte 0 is beyond the end"
                       " of the %" PRIu64 "-byte file", what, n, file_size);
    if (n > len - 8)
        return al_errf(e, AL_EFORMAT, "%s: truncated: header needs bytes 8..%" PRIu64 ", have %zu",
                       what, 8 + n, len);
    const uint8_t *h = buf + 8;
    if (h[0] != '{')
        return al_errf(e, AL_EFORMAT, "%s: byte 8: header does not start with '{' (0x%02x)", what,
                       h[0]);
    /* the format allows trailing spaces as padding; nothing else may follow the object */
    size_t hl = (size_t)n;
    while (hl > 0 && h[hl - 1] == ' ')
        hl--;
    if (memchr(h, 0, hl))
        return al_errf(e, AL_EFORMAT, "%s: byte %td: NUL inside the JSON header", what,
                       (const uint8_t *)memchr(h, 0, hl) - buf);
    long bad = json_depth_violation(h, hl, SAFETENSORS_MAX_DEPTH);
    if (bad >= 0)
        return al_errf(e, AL_ELIMIT, "%s: byte %ld: JSON header nests deeper than %d", what,
                       bad + 8, SAFETENSORS_MAX_DEPTH);

    json_error_t je;
    root = json_loadb((const char *)h, hl, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        al_errf(e, AL_EFORMAT, "%s: byte %d: JSON header: %s", what, je.position + 8, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        al_errf(e, AL_EFORMAT, "%s: JSON header is not an object", what);
        goto out;
    }

    st->header_len = n;
    st->data_offset = 8 + n;
    st->file_size = file_size;
    uint64_t data_len = file_size - st->data_offset;

    size_t cap = json_object_size(root);
    st->tensors = xcalloc(cap ? cap : 1, sizeof *st->tensors);
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "__metadata__") == 0) {
            if (parse_metadata(st, v, what, e) != 0)
                goto out;
            continue;
        }
        if (k[0] == '\0') {
            al_errf(e, AL_EFORMAT, "%s: header: empty tensor name", what);
            goto out;
        }
        struct st_tensor *t = &st->tensors[st->n_tensors++];
        if (parse_tensor(t, k, v, data_len, what, e) != 0)
            goto out;
        if (!u64_add_ok(st->n_params, t->n_elems, &st->n_params)) {
            al_errf(e, AL_EFORMAT, "%s: total element count overflows", what);
            goto out;
        }
    }

    /* the spans must tile [0, data_len) in order: no gap could hide bytes, no overlap could
     * alias two tensors */
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, span_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const struct st_tensor *t = &st->tensors[i];
        if (t->begin < at) {
            al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": data_offsets [%" PRIu64 ", %" PRIu64
                    ") overlap the previous tensor (ends at %" PRIu64 ")", what, t->name,
                    t->begin, t->end, at);
            goto out;
        }
        if (t->begin > at) {
            al_errf(e, AL_EFORMAT, "%s: tensor \"%.64s\": data_offsets begin %" PRIu64
                    " leaves a gap after byte %" PRIu64, what, t->name, t->begin, at);
            goto out;
        }
        at = t->end;
    }
    if (at != data_len) {
        al_errf(e, AL_EFORMAT, "%s: tensors cover %" PRIu64 " data bytes but the file has %" PRIu64
                " after the header", what, at, data_len);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0)
        safetensors_free(st);
    return rc;
}

int
safetensors_open(struct safetensors *st, const char *path, struct al_err *e)
{
    int rc = -1;
    int fd = -1;
    uint8_t *buf = NULL;
    memset(st, 0, sizeof *st);
    fd = fsx_open_read(path, e);
    if (fd < 0)
        goto out;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        al_errno(e, errno, "%s: stat", path);
        goto out;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    uint8_t lenb[8];
    ssize_t r = pread(fd, lenb, 8, 0);
    if (r < 0) {
        al_errno(e, errno, "%s: read", path);
        goto out;
    }
    if (r < 8) {
        al_errf(e, AL_EFORMAT, "%s: truncated: %zd bytes, the 8-byte header length is incomplete",
                path, r);
        goto out;
    }
    /* bound the header length before allocating for it; parse repeats the checks */
    uint64_t n = le64(lenb);
    if (n > SAFETENSORS_MAX_HEADER || n > fsize - 8)
        n = 0;
    size_t want = 8 + (size_t)n;
    buf = xmalloc(want);
    size_t got = 0;
    while (got < want) {
        r = pread(fd, buf + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            al_errno(e, errno, "%s: read", path);
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    rc = safetensors_parse(st, buf, got, fsize, path, e);
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}
