/* secmem.c -- locked, wiped allocations for secrets (see secmem.h). Each allocation is its
 * own mapping whose first 64 bytes record the mapping length, so free needs no size.
 * mlock failing (RLIMIT_MEMLOCK) is tolerated: the wipe still happens. */
#include "crypto/secmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "util/xalloc.h"

#define SECMEM_HEADER 64

void *
secmem_alloc(size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    size_t total;
    if (!size_add_ok(n, SECMEM_HEADER + page - 1, &total))
        abort();
    total -= total % page;
    void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    (void)mlock(p, total);                  /* best effort: may exceed RLIMIT_MEMLOCK */
    (void)madvise(p, total, MADV_DONTDUMP); /* best effort: keep secrets out of cores */
    memcpy(p, &total, sizeof total);
    return (uint8_t *)p + SECMEM_HEADER;
}

void
secmem_free(void *p)
{
    if (!p)
        return;
    uint8_t *base = (uint8_t *)p - SECMEM_HEADER;
    size_t total;
    memcpy(&total, base, sizeof total);
    OPENSSL_cleanse(base, total);
    (void)munlock(base, total); /* best effort: unmapping releases the lock anyway */
    munmap(base, total);
}
