/* secmem.h -- memory for secret keys and passphrases: page-aligned, locked in RAM where the
 * system allows (best effort), excluded from core dumps, zeroed on allocation and wiped on
 * release. Aborts on exhaustion like xmalloc (R8). Not for large or untrusted-sized data. */
#ifndef AIRLOCK_CRYPTO_SECMEM_H
#define AIRLOCK_CRYPTO_SECMEM_H

#include <stddef.h>

void *secmem_alloc(size_t n); /* returns owned, zeroed memory; free with secmem_free */
void secmem_free(void *p);    /* wipes and releases p (invalidates it); safe on NULL */

#endif
