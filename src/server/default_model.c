/* default_model.c -- the embedded default model (see default_model.h). */
#include "server/default_model.h"

#include <string.h>

#include "crypto/hash.h"

__asm__(".section .rodata\n.balign 64\n.global default_model_gguf\ndefault_model_gguf:\n"
        ".incbin \"models/stories260K/stories260K-f32.gguf\"\n"
        ".global default_model_gguf_end\ndefault_model_gguf_end:\n.byte 0\n.previous\n");
extern const uint8_t default_model_gguf[], default_model_gguf_end[];

int
default_model_get(const uint8_t **p, size_t *n, struct al_err *e)
{
    size_t len = (size_t)(default_model_gguf_end - default_model_gguf);
    uint8_t d[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    if (hash_sha256(default_model_gguf, len, d, e) < 0)
        return -1;
    hash_hex(d, sizeof d, hex);
    if (strcmp(hex, DEFAULT_MODEL_SHA256) != 0)
        return al_errf(e, AL_EVERIFY, "embedded default model: SHA-256 %s, expected %s (the "
                       "airlock binary is damaged)", hex, DEFAULT_MODEL_SHA256);
    *p = default_model_gguf;
    *n = len;
    return 0;
}
