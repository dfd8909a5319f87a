/* fuzz_safetensors.c -- libFuzzer target for the safetensors header parser: the input is a
 * whole file, parsed through safetensors_parse exactly as safetensors_open does after reading
 * the header. Seeds: fuzz/corpus/safetensors/. */
#include <stddef.h>
#include <stdint.h>

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct safetensors st;
    struct al_err e = {0};
    if (safetensors_parse(&st, data, size, size, "fuzz", &e) == 0)
        safetensors_free(&st);
    return 0;
}
