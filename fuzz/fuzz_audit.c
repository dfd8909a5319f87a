/* fuzz_audit.c -- libFuzzer target for the audit log verifier: the bytes are a whole log,
 * passed to audit_verify_mem, the entry point `airlock audit verify` uses after mapping the
 * file. Checks that a clean result is self-consistent. Signatures are not checked (no key). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct audit_verify_result res;
    struct al_err e = {0};
    int rc = audit_verify_mem((const char *)data, size, "fuzz", NULL, NULL, &res, &e);
    if (rc == 0 && (res.fault != AUDIT_FAULT_NONE || res.good_bytes != size ||
                    res.records + res.checkpoints != res.last_seq))
        abort();
    if (rc < 0 && (res.fault == AUDIT_FAULT_NONE) != (e.code == AL_EIO || e.code == AL_EINTERNAL))
        abort();
    return 0;
}
