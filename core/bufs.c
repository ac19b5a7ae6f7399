/*
 * ringplug core: the provided-buffer pool.
 *
 * count buffers of size bytes in one block of memory that the backend
 * allocates and hands to the kernel (io_uring: a registered buffer ring).
 * The kernel picks a buffer for each receive completion; the engine chains
 * that buffer onto the fd's receive queue (meta[].next) and gives it back
 * to the backend, in whatever order the host finishes with buffers.
 */

#include <errno.h>
#include <stdlib.h>

#include "engine.h"

int
rp_bufs_meta_init(rp_engine_t *e, unsigned count, unsigned size)
{
    rp_bufs_t  *b = &e->bufs;

    b->meta = rp_fault_alloc() ? NULL : calloc(count, sizeof(rp_bufmeta_t));
    if (b->meta == NULL) {
        return -ENOMEM;
    }
    b->count = count;
    b->size = size;
    b->in_use = 0;
    return 0;
}

void
rp_bufs_meta_free(rp_engine_t *e)
{
    free(e->bufs.meta);
    e->bufs.meta = NULL;
}

/* A completion handed buffer bid to the engine. */
void
rp_buf_got(rp_engine_t *e, uint32_t bid)
{
    e->bufs.meta[bid].held = 1;
    e->bufs.in_use++;
}

/*
 * Give buffer bid back to the kernel.  Called for buffers the engine got
 * from a completion it drops (stale, closed fd) and for buffers the host has
 * drained, so in_use counts buffers held outside the kernel.
 */
void
rp_buf_recycle(rp_engine_t *e, uint32_t bid)
{
    rp_bufs_t  *b = &e->bufs;

    /* a buffer given back twice would be in the kernel's hands twice */
    if (!b->meta[bid].held) {
        return;
    }
    b->meta[bid].held = 0;

    rp_be_buf_put(e, bid);
    b->in_use--;
}

RP_EXPORT unsigned
rp_bufs_free(const rp_engine_t *e)
{
    return e->has_bufs ? e->bufs.count - e->bufs.in_use : 0;
}

RP_EXPORT unsigned
rp_bufs_total(const rp_engine_t *e)
{
    return e->has_bufs ? e->bufs.count : 0;
}
