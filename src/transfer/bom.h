/* bom.h -- the bundle's bill of materials as a CycloneDX 1.6 JSON document (docs/formats/bom.md).
 * metadata: timestamp, tools (airlock + version), component (the bundle: name, version,
 * licence, source as an external reference), authors/supplier (creator). One component per
 * payload file with SHA-256 hash and size; model files are machine-learning-model components
 * with a modelCard; parsed metadata and the safety verdict go in properties named "airlock:*".
 * bom_parse reads back the file list verify needs; input is untrusted and checked strictly. */
#ifndef AIRLOCK_TRANSFER_BOM_H
#define AIRLOCK_TRANSFER_BOM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "crypto/hash.h"
#include "transfer/safety.h"
#include "util/err.h"

struct bom_info {
    const char *name;      /* bundle name (required) */
    const char *version;   /* bundle version (required) */
    const char *creator;   /* person or organisation; NULL = user@host */
    const char *source;    /* URL or description of where the payload came from; may be NULL */
    const char *license;   /* SPDX id or name; may be NULL */
    time_t created;        /* creation time (UTC) */
};

struct bom_file {
    char *path;                   /* relative to the bundle root, e.g. "payload/model.gguf" */
    uint64_t size;
    uint8_t sha256[SHA256_LEN];
    struct safety_verdict safety;
    void *meta;                   /* json_t* of parsed model metadata, or NULL; owned */
};

/* Build the CycloneDX JSON text (owned, ends with "\n"). Files are written in the given order. */
char *bom_build(const struct bom_info *info, const struct bom_file *files, size_t n,
                struct al_err *e);

/* Parsed model metadata for a GGUF or safetensors file as a json_t* (returns owned in *meta;
 * free with json_decref or bom_file_free) of
 *   GGUF: {format:"gguf", gguf_version, architecture, name, parameters,
 *          quantization:[{type:"Q4_K", tensors:N}...], file_type, context_length, block_count,
 *          embedding_length, vocab_size, tokenizer_model, chat_template (bool), tensor_count}
 *   safetensors: {format:"safetensors", parameters, dtypes:["F16",...], tensor_count}
 * Keys absent or mistyped in the file are left out. *meta = NULL (and 0 returned) for files
 * whose verdict is not weights. A weights file whose header does not parse is an error
 * (-1, AL_EFORMAT/AL_ELIMIT naming the byte or field). */
int bom_model_meta(const char *path, const struct safety_verdict *v, void **meta,
                   struct al_err *e);

struct bom_parsed {
    char *name, *version;      /* owned */
    struct bom_file *files;    /* owned; meta is NULL */
    size_t n;
};
int bom_parse(const char *text, size_t len, struct bom_parsed *out, struct al_err *e);
void bom_parsed_free(struct bom_parsed *b);
void bom_file_free(struct bom_file *f);

#endif
