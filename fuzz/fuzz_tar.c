/* fuzz_tar.c -- libFuzzer target for the bundle tar reader: the in-memory archive goes through
 * tar_validate_memory, i.e. the same tar_reader_next/tar_reader_read and per-entry checks
 * (type, name, duplicates, sizes) that `airlock verify BUNDLE.tar` uses. */
#include <stddef.h>
#include <stdint.h>

#include "transfer/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct al_err e = {0};
    (void)tar_validate_memory(data, size, &e);
    return 0;
}
