/* fuzz_gguf.c -- libFuzzer target for the GGUF reader (format/gguf.c): the input is a whole
 * file given to gguf_parse, the entry point gguf_open uses after mapping. Seeds:
 * fuzz/corpus/gguf/ (the first 16 KiB of real models, which end mid-table, and tiny
 * hand-made files). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "format/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf g;
    struct al_err e = {0};
    if (gguf_parse(&g, data, size, size, "fuzz", NULL, &e) == 0) {
        /* touch the typed getters the loaders call, on whatever keys are there */
        uint32_t u;
        (void)gguf_get_u32(&g, "general.alignment", &u, &e);
        char *arch = gguf_get_strdup(&g, "general.architecture", &e);
        free(arch);
    }
    gguf_close(&g);
    return 0;
}
