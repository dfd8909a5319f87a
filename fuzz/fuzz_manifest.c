/* fuzz_manifest.c -- libFuzzer target for the sha256sum manifest parser: manifest_parse and
 * manifest_normalize (with and without a strip prefix) exactly as verify calls them, then the
 * canonical writer must produce text that parses back to the same entries. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest m, back;
    struct al_err e = {0};
    if (manifest_parse((const char *)data, size, "fuzz", &m, &e) != 0)
        return 0;
    const char *strip = (size & 1) ? "/mnt/drive" : NULL;
    if (manifest_normalize(&m, strip, "fuzz", &e) == 0) {
        char *txt = manifest_format(&m);
        if (manifest_parse(txt, strlen(txt), "again", &back, &e) != 0 ||
            manifest_normalize(&back, NULL, "again", &e) != 0 || back.n != m.n)
            abort(); /* what we write must read back */
        for (size_t i = 0; i < m.n; i++)
            if (strcmp(back.v[i].path, m.v[i].path) != 0 ||
                memcmp(back.v[i].sha256, m.v[i].sha256, SHA256_LEN) != 0)
                abort();
        manifest_free(&back);
        free(txt);
    }
    manifest_free(&m);
    return 0;
}
