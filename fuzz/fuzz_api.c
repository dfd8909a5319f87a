/* fuzz_api.c -- request bodies of every API kind through api_parse, the same entry point the
 * server uses for untrusted POST bodies. */
#include <stddef.h>
#include <stdint.h>

#include "server/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum api_kind kinds[] = {API_CHAT, API_COMPLETION, API_MESSAGES,
                                          API_EMBEDDINGS};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        struct api_request req;
        struct api_error err;
        if (api_parse(kinds[i], (const char *)data, size, &req, &err) == 0)
            api_request_free(&req);
        else
            json_decref(api_error_json(kinds[i], &err));
    }
    return 0;
}
