/* fuzz_bom.c -- libFuzzer target for bom_parse, the strict reader verify runs on an untrusted
 * BOM.json. Seeds: fuzz/corpus/bom/ (BOMs as bom_build writes them). */
#include <stddef.h>
#include <stdint.h>

#include "transfer/bom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bom_parsed b;
    struct al_err e = {0};
    if (bom_parse((const char *)data, size, &b, &e) == 0)
        bom_parsed_free(&b);
    return 0;
}
