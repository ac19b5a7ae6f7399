/*
 * LD_PRELOAD shim for tests/nginx/t/events.t: every malloc() of exactly
 * RP_FAIL_MALLOC_SIZE bytes fails with ENOMEM.  The size is read when the
 * master starts (nginx clears its workers' environment; they inherit it).
 */
#include <errno.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);

static size_t  fail_size;

__attribute__((constructor)) static void
failsize_init(void)
{
    const char  *s = getenv("RP_FAIL_MALLOC_SIZE");

    fail_size = s ? (size_t) strtoul(s, NULL, 10) : 0;
}

void *
malloc(size_t size)
{
    if (fail_size && size == fail_size) {
        errno = ENOMEM;
        return NULL;
    }

    return __libc_malloc(size);
}
