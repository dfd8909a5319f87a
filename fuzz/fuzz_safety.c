/* fuzz_safety.c -- libFuzzer target for safety_classify: the pickle opcode walk, the zip
 * local-header scan, the numpy and executable magic checks, on hostile bytes under every
 * kind of name. The first input byte picks the name. Seeds: fuzz/corpus/safety/. */
#include <stddef.h>
#include <stdint.h>

#include "transfer/safety.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"a.bin", "a.pkl", "a.txt", "a.zip", "a.npy", "a.so",
                                        "a", "a.joblib"};
    if (size == 0)
        return 0;
    struct safety_verdict v;
    const char *name = names[data[0] % (sizeof names / sizeof names[0])];
    /* once as a whole file, once as the head of a larger one */
    safety_classify(name, data + 1, size - 1, size - 1, &v);
    safety_classify(name, data + 1, size - 1, (uint64_t)size * 1000, &v);
    return 0;
}
