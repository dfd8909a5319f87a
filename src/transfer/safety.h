/* safety.h -- classify a file as safe weights, data, pickle, or executable code, from its name
 * and its own bytes (never from what a manifest or BOM claims). Used by pack (flag in the BOM),
 * verify (refuse unless --allow-pickle / --allow-code) and inspect (verdict). */
#ifndef AIRLOCK_TRANSFER_SAFETY_H
#define AIRLOCK_TRANSFER_SAFETY_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum safety_class {
    SAFETY_DATA = 0,     /* tokenizer, config, licence, text, images: inert */
    SAFETY_WEIGHTS,      /* GGUF or safetensors: weights that cannot execute code */
    SAFETY_PICKLE,       /* pickle stream or a zip holding one (torch .bin/.pt/.pth/.ckpt/.pkl) */
    SAFETY_CODE,         /* .py, shell scripts, shebang files, ELF/shared objects, ... */
};

struct safety_verdict {
    enum safety_class cls;
    char format[32];     /* "gguf", "safetensors", "pickle", "zip-pickle", "python", "shell",
                            "elf", "json", "text", "binary" ... (full list: docs/formats/bom.md) */
    char reason[256];    /* why, e.g. "pickle protocol 4 opcode at byte 0" */
    char imports[256];   /* pickles only: "module.name, ..." the stream imports (GLOBAL,
                            INST, STACK_GLOBAL) in the bytes seen, "..." when cut; best
                            effort, for the humans deciding on --allow-pickle; else "" */
};

/* How many leading bytes safety_classify wants to see (it copes with fewer). */
#define SAFETY_HEAD_BYTES 65536

/* Classify from the relative name and the first head_len bytes of a file of `size` bytes.
 * Borrows name and head; never fails (anything unrecognised is SAFETY_DATA). The rules and
 * their order are in docs/formats/bom.md, "Safety classes". */
void safety_classify(const char *name, const uint8_t *head, size_t head_len, uint64_t size,
                     struct safety_verdict *v);
/* Classify a file on disk (opened O_NOFOLLOW; reads the first SAFETY_HEAD_BYTES and, for a
 * zip, its central directory). name (may be NULL = path) decides extension rules. Returns -1
 * only when the file cannot be opened or read. */
int safety_classify_file(const char *path, const char *name, struct safety_verdict *v,
                         struct al_err *e);

const char *safety_class_name(enum safety_class c); /* "data", "weights", "pickle", "code" */

#endif
