/*
 * ring: the recent output of one stream of a kept process, addressed by
 * byte offsets since the stream began. It holds at most `cap` bytes (the
 * newest); older ones are gone, and ring_start() says from where. Storage
 * grows as output comes, so a quiet process costs little, and only while
 * its owner grants it (the server-wide total).
 */
#ifndef RPC_RING_H
#define RPC_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_ring {
	uint8_t *data;
	size_t size; /* allocated, at most cap */
	size_t cap;
	size_t len;   /* held: the bytes [end - len, end) */
	uint64_t end; /* offset one past the newest byte ever written */
};

/* An empty ring that may hold up to cap bytes (nothing is allocated yet). */
void rpc_ring_init(struct rpc_ring *r, size_t cap);
void rpc_ring_finish(struct rpc_ring *r);

/*
 * How much more storage a write of n bytes would like (0 when the ring is
 * already as large as it will be, or n fits in what it has): at least
 * double what it has, up to cap.
 */
size_t rpc_ring_wants(const struct rpc_ring *r, size_t n);

/*
 * Grows the storage by up to `grant` bytes (never past cap). Returns the
 * bytes actually added (0 on OOM).
 */
size_t rpc_ring_grow(struct rpc_ring *r, size_t grant);

/*
 * Appends n bytes; when they do not fit in the storage, the oldest are
 * overwritten (with no storage at all, every byte is lost, and the offsets
 * still advance).
 */
void rpc_ring_write(struct rpc_ring *r, const uint8_t *p, size_t n);

/* The offset of the oldest byte still held (== end when empty). */
uint64_t rpc_ring_start(const struct rpc_ring *r);

/*
 * Points *p at the held bytes from offset `from` on, as one contiguous run:
 * returns its length (it may stop at the storage's wrap point; call again
 * from from + length). 0 when from is at or past end, or before start.
 */
size_t rpc_ring_peek(const struct rpc_ring *r, uint64_t from, const uint8_t **p);

#endif
