/* gguf.h -- GGUF v2/v3 reader (spec: docs/formats/gguf.md). Parses the header, the key/value
 * table and the tensor table of a file mapped read-only, or of a caller's buffer. Every count,
 * length, offset, type id and alignment is checked against the bytes present before use; the
 * only allocations are the kv and tensor index arrays, bounded by the input size. Strings are
 * views into the mapping (not NUL-terminated). Input is untrusted.
 * Does not interpret model semantics (engine/model.c) or dequantize (engine/kernels). */
#ifndef AIRLOCK_FORMAT_GGUF_H
#define AIRLOCK_FORMAT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/fsx.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

enum gguf_vtype {
    GGUF_VT_UINT8 = 0, GGUF_VT_INT8 = 1, GGUF_VT_UINT16 = 2, GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4, GGUF_VT_INT32 = 5, GGUF_VT_FLOAT32 = 6, GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8, GGUF_VT_ARRAY = 9, GGUF_VT_UINT64 = 10, GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
};

/* ggml tensor types (ids as published in ggml.h / the GGUF spec) */
enum ggml_type {
    GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6, GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8, GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10, GGML_TYPE_Q3_K = 11, GGML_TYPE_Q4_K = 12, GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14, GGML_TYPE_Q8_K = 15, GGML_TYPE_IQ2_XXS = 16, GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18, GGML_TYPE_IQ1_S = 19, GGML_TYPE_IQ4_NL = 20, GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22, GGML_TYPE_IQ4_XS = 23, GGML_TYPE_I8 = 24, GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26, GGML_TYPE_I64 = 27, GGML_TYPE_F64 = 28, GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30, GGML_TYPE_TQ1_0 = 34, GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_COUNT = 40,
    /* Not GGUF types and never read from a file (every table here is sized GGML_TYPE_COUNT):
     * the engine's in-memory row-split layouts of Q4_0, Q5_0 and Q8_0 weight rows, which model
     * load repacks matrices into (engine/kernels/quant.h, model_repack). */
    KERN_TYPE_Q4_0_RS = 64, KERN_TYPE_Q5_0_RS = 65, KERN_TYPE_Q8_0_RS = 66
};

struct gguf_str {
    const char *p;   /* view into the input, not NUL-terminated */
    uint64_t n;      /* bytes */
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_vtype type;      /* value type */
    enum gguf_vtype arr_type;  /* element type when type == ARRAY */
    uint64_t arr_n;            /* element count when type == ARRAY */
    const uint8_t *val;        /* first byte of the value (for arrays: of the first element) */
    uint64_t val_bytes;        /* bytes the value occupies */
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];  /* elements per dimension; ne[0] is the contiguous row; unused = 1 */
    enum ggml_type type;
    uint64_t offset;             /* from the start of the data section (aligned) */
    uint64_t n_elems;
    uint64_t nbytes;
    const uint8_t *data;         /* into the input; NULL when parsed header-only */
};

struct gguf_limits {
    uint64_t max_kv;        /* default 1<<20 */
    uint64_t max_tensors;   /* default 1<<20 */
    uint64_t max_str;       /* longest single string, default 64 MiB */
};

struct gguf {
    struct fsx_map map;          /* valid only when mapped */
    bool mapped;                 /* true when gguf_open owns map */
    const uint8_t *base;         /* input start */
    size_t size;                 /* bytes of input available */
    uint64_t file_size;          /* bytes of the whole file (>= size when header-only) */
    uint32_t version;            /* 2 or 3 */
    uint64_t n_kv;
    struct gguf_kv *kv;          /* owned, n_kv entries */
    uint64_t n_tensors;
    struct gguf_tensor *tensors; /* owned, n_tensors entries */
    uint32_t alignment;          /* general.alignment or 32 */
    uint64_t data_offset;        /* start of the tensor data section */
    char what[256];              /* name used in messages (file path) */
};

/* Map and parse a whole file; tensor data pointers are valid until gguf_close. */
int gguf_open(struct gguf *g, const char *path, const struct gguf_limits *lim,
              struct al_err *e);
/* Parse from memory. buf holds the first len bytes of a file of file_size bytes; when
 * len < file_size only the header is parsed and tensor ranges are checked against
 * file_size (data pointers are NULL). buf must outlive g. */
int gguf_parse(struct gguf *g, const uint8_t *buf, size_t len, uint64_t file_size,
               const char *what, const struct gguf_limits *lim, struct al_err *e);
void gguf_close(struct gguf *g); /* safe on a zeroed or failed struct */

const struct gguf_kv *gguf_find(const struct gguf *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* Typed getters: return 1 when the key is absent, 0 when found, -1 (AL_EFORMAT, naming the key)
 * when present with an incompatible type or out of range. Integer getters accept any integer
 * type whose value fits. */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, struct al_err *e);
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, struct al_err *e);
int gguf_get_f32(const struct gguf *g, const char *key, float *out, struct al_err *e);
int gguf_get_bool(const struct gguf *g, const char *key, bool *out, struct al_err *e);
int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out, struct al_err *e);
/* Owned NUL-terminated copy of a string value (NULL when absent or on error). */
char *gguf_get_strdup(const struct gguf *g, const char *key, struct al_err *e);
/* Arrays: element count and, for strings, owned array of views; for numbers an owned copy
 * converted to the requested C type (any integer/float element type accepted). */
int gguf_get_arr_str(const struct gguf *g, const char *key, struct gguf_str **out, uint64_t *n,
                     struct al_err *e);
int gguf_get_arr_f32(const struct gguf *g, const char *key, float **out, uint64_t *n,
                     struct al_err *e);
int gguf_get_arr_i32(const struct gguf *g, const char *key, int32_t **out, uint64_t *n,
                     struct al_err *e);

bool gguf_str_eq(struct gguf_str s, const char *c);
const char *gguf_vtype_name(enum gguf_vtype t);

/* Tensor type table: elements per block and bytes per block; 0 for unknown/unsupported ids. */
uint32_t ggml_type_block_elems(enum ggml_type t);
uint32_t ggml_type_block_bytes(enum ggml_type t);
const char *ggml_type_name(enum ggml_type t);  /* "Q4_K", ...; "type_N" for unknown */

#endif
