/*
 * ringplug core, io_uring engine: the provided-buffer ring.
 *
 * One buffer group per engine.  The kernel picks a buffer for each receive
 * completion; the engine chains that buffer onto the fd's receive queue
 * (meta[].next), and puts it back on the ring, in whatever order the host
 * finishes with buffers, by adding it at the ring's tail.
 *
 * liburing 2.3 has io_uring_register_buf_ring() but not
 * io_uring_setup_buf_ring(): the ring memory is mmap()ed here.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "uring-int.h"

#define RP_BGID  0

int
rp_bufring_init(rp_engine_t *e, unsigned count, unsigned size)
{
    rp_bufring_t             *b = &e->bufs;
    struct io_uring_buf_reg   reg;
    unsigned                  n, i;
    int                       rc;

    /* The kernel wants a power of two, at most 32768 entries. */
    for (n = 1; n < count && n < 32768; n <<= 1) {
        /* void */
    }
    if (size < 64) {
        size = 64;
    }

    memset(b, 0, sizeof(*b));
    b->count = n;
    b->size = size;
    b->mask = io_uring_buf_ring_mask(n);
    b->bgid = RP_BGID;

    b->br_bytes = (size_t) n * sizeof(struct io_uring_buf);
    b->br = rp_fault_alloc() ? MAP_FAILED
            : mmap(NULL, b->br_bytes, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (b->br == MAP_FAILED) {
        b->br = NULL;
        return -ENOMEM;
    }

    b->mem_bytes = (size_t) n * size;
    b->mem = rp_fault_alloc() ? MAP_FAILED
             : mmap(NULL, b->mem_bytes, PROT_READ | PROT_WRITE,
                    MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (b->mem == MAP_FAILED) {
        b->mem = NULL;
        rp_bufring_free(e, false);
        return -ENOMEM;
    }

    b->meta = rp_fault_alloc() ? NULL : calloc(n, sizeof(rp_bufmeta_t));
    if (b->meta == NULL) {
        rp_bufring_free(e, false);
        return -ENOMEM;
    }

    io_uring_buf_ring_init(b->br);

    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long) b->br;
    reg.ring_entries = n;
    reg.bgid = b->bgid;

    rc = io_uring_register_buf_ring(&e->ring, &reg, 0);
    if (rc < 0) {
        rp_bufring_free(e, false);
        return rc;
    }

    for (i = 0; i < n; i++) {
        io_uring_buf_ring_add(b->br, rp_buf_addr(e, i), size, (uint16_t) i,
                              b->mask, (int) i);
    }
    io_uring_buf_ring_advance(b->br, (int) n);

    return 0;
}

void
rp_bufring_free(rp_engine_t *e, bool unregister)
{
    rp_bufring_t  *b = &e->bufs;

    if (unregister && b->br != NULL) {
        (void) io_uring_unregister_buf_ring(&e->ring, b->bgid);
    }
    if (b->br != NULL) {
        munmap(b->br, b->br_bytes);
    }
    if (b->mem != NULL) {
        munmap(b->mem, b->mem_bytes);
    }
    free(b->meta);
    memset(b, 0, sizeof(*b));
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
    rp_bufring_t  *b = &e->bufs;

    /* a buffer given back twice would sit in the ring twice */
    if (!b->meta[bid].held) {
        return;
    }
    b->meta[bid].held = 0;

    io_uring_buf_ring_add(b->br, rp_buf_addr(e, bid), b->size,
                          (uint16_t) bid, b->mask, 0);
    io_uring_buf_ring_advance(b->br, 1);
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
