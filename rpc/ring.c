#include "ring.h"

#include <stdlib.h>
#include <string.h>

void
rpc_ring_init(struct rpc_ring *r, size_t cap)
{
	*r = (struct rpc_ring){ .cap = cap };
}

void
rpc_ring_finish(struct rpc_ring *r)
{
	free(r->data);
	*r = (struct rpc_ring){ .cap = r->cap, .end = r->end };
}

/* Where offset `off` (held) sits in the storage. */
static size_t
slot(const struct rpc_ring *r, uint64_t off)
{
	return (size_t)(off % r->size);
}

size_t
rpc_ring_wants(const struct rpc_ring *r, size_t n)
{
	if (r->size >= r->cap || r->len + n <= r->size)
		return 0;
	/* at least double (from 4 KiB): growing copies what is held */
	size_t want = r->len + n - r->size;
	if (want < r->size)
		want = r->size;
	if (want < 4096)
		want = 4096;
	return want < r->cap - r->size ? want : r->cap - r->size;
}

size_t
rpc_ring_grow(struct rpc_ring *r, size_t grant)
{
	if (grant > r->cap - r->size)
		grant = r->cap - r->size;
	if (!grant)
		return 0;
	size_t size = r->size + grant;
	uint8_t *d = malloc(size);
	if (!d)
		return 0;
	/* the held bytes written again into the larger storage: they land for its modulus */
	struct rpc_ring g = { .data = d, .size = size, .cap = r->cap, .end = rpc_ring_start(r) };
	while (g.end < r->end) {
		const uint8_t *p;
		size_t n = rpc_ring_peek(r, g.end, &p);
		rpc_ring_write(&g, p, n);
	}
	free(r->data);
	*r = g;
	return grant;
}

void
rpc_ring_write(struct rpc_ring *r, const uint8_t *p, size_t n)
{
	if (!r->size) {
		r->end += n;
		return;
	}
	/* only the newest `size` bytes of this write can survive it */
	if (n > r->size) {
		r->end += n - r->size;
		p += n - r->size;
		n = r->size;
		r->len = 0;
	}
	for (size_t i = 0; i < n;) {
		size_t at = slot(r, r->end + i);
		size_t run = r->size - at < n - i ? r->size - at : n - i;
		memcpy(r->data + at, p + i, run);
		i += run;
	}
	r->end += n;
	r->len = r->len + n > r->size ? r->size : r->len + n;
}

uint64_t
rpc_ring_start(const struct rpc_ring *r)
{
	return r->end - r->len;
}

size_t
rpc_ring_peek(const struct rpc_ring *r, uint64_t from, const uint8_t **p)
{
	if (from < rpc_ring_start(r) || from >= r->end)
		return 0;
	size_t at = slot(r, from);
	size_t n = (size_t)(r->end - from);
	if (n > r->size - at)
		n = r->size - at;
	*p = r->data + at;
	return n;
}
