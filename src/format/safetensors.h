/* safetensors.h -- safetensors header reader (spec: docs/formats/safetensors.md).
 * A safetensors file is: 8-byte little-endian header length N, N bytes of JSON (UTF-8, may be
 * padded with trailing spaces), then the raw tensor data. This module parses and checks the
 * header only: every tensor's dtype is known, shape product x dtype size equals its data_offsets
 * span, and the spans tile the data section in order without gaps or overlap up to the end of
 * the file. It never reads tensor data. Input is untrusted; the only allocations are bounded by
 * the header length, which is capped at SAFETENSORS_MAX_HEADER. */
#ifndef AIRLOCK_FORMAT_SAFETENSORS_H
#define AIRLOCK_FORMAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SAFETENSORS_MAX_HEADER (100u << 20) /* bytes of JSON header accepted */
#define SAFETENSORS_MAX_DIMS 8              /* rank accepted per tensor */
#define SAFETENSORS_MAX_DEPTH 4             /* JSON nesting: root, tensor, shape, + slack */

enum st_dtype {
    ST_BOOL = 0, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_F8_E8M0, ST_I16, ST_U16, ST_F16,
    ST_BF16, ST_I32, ST_U32, ST_F32, ST_C64, ST_F64, ST_I64, ST_U64, ST_F4, ST_F6_E2M3,
    ST_F6_E3M2,
    ST_DTYPE_COUNT
};

struct st_tensor {
    char *name;                          /* owned, NUL-terminated UTF-8 */
    enum st_dtype dtype;
    uint32_t n_dims;                     /* 0 = scalar */
    uint64_t shape[SAFETENSORS_MAX_DIMS];/* elements per dimension, n_dims used */
    uint64_t n_elems;                    /* product of shape (1 for a scalar) */
    uint64_t begin, end;                 /* byte span relative to the data section */
};

struct st_meta {
    char *key;    /* owned */
    char *value;  /* owned */
};

struct safetensors {
    uint64_t header_len;        /* N: JSON bytes after the 8-byte length */
    uint64_t data_offset;       /* 8 + N: first byte of tensor data in the file */
    uint64_t file_size;         /* bytes of the whole file */
    struct st_tensor *tensors;  /* owned, n_tensors entries, in data-offset order */
    size_t n_tensors;
    struct st_meta *meta;       /* owned, "__metadata__" string map, n_meta entries */
    size_t n_meta;
    uint64_t n_params;          /* sum of n_elems over all tensors */
};

/* Parse a header from memory. buf holds the first len bytes of a file of file_size bytes; it
 * must contain at least 8 + N bytes. `what` names the input in messages. On failure st is
 * left empty (safe to free). */
int safetensors_parse(struct safetensors *st, const uint8_t *buf, size_t len,
                      uint64_t file_size, const char *what, struct al_err *e);
/* Read and parse the header of a file (opened O_NOFOLLOW; reads 8 + N bytes only). */
int safetensors_open(struct safetensors *st, const char *path, struct al_err *e);
void safetensors_free(struct safetensors *st); /* safe on a zeroed or failed struct */

const char *safetensors_dtype_name(enum st_dtype t); /* "F16", ...; "?" when out of range */
uint32_t safetensors_dtype_bits(enum st_dtype t);     /* bits per element */

#endif
