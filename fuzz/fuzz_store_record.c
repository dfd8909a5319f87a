/* fuzz_store_record.c -- libFuzzer target for store_record_parse, the reader of a version's
 * record.json in the model store. The store re-validates its own files when it reads them
 * (a disk, a backup restore or another process may have changed them), so this parser sees
 * untrusted bytes. Seeds: fuzz/corpus/store_record/ (records as an import writes them). */
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_record r;
    struct al_err e = {0};
    if (store_record_parse((const char *)data, size, "record.json", "m", "1", &r, &e) == 0)
        store_record_free(&r);
    return 0;
}
