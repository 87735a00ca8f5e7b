#include "buf.h"

#include <stdlib.h>
#include <string.h>

bool
ws_buf_reserve(struct ws_buf *b, size_t extra)
{
	if (extra > UINT32_MAX - (size_t)b->len)
		return false;
	size_t want = (size_t)b->len + extra;
	if ((size_t)b->head + want <= b->cap)
		return true;
	if (want <= b->cap) {
		/* room enough once the consumed head is reclaimed */
		memmove(b->data, b->data + b->head, b->len);
		b->head = 0;
		return true;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap = cap * 2 > UINT32_MAX ? UINT32_MAX : cap * 2;
	uint8_t *d = malloc(cap);
	if (!d)
		return false;
	if (b->len)
		memcpy(d, b->data + b->head, b->len);
	free(b->data);
	b->data = d;
	b->head = 0;
	b->cap = (uint32_t)cap;
	return true;
}

bool
ws_buf_append(struct ws_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return true;
	if (!ws_buf_reserve(b, n))
		return false;
	if (n)
		memcpy(ws_buf_end(b), p, n);
	b->len += (uint32_t)n;
	return true;
}

void
ws_buf_consume(struct ws_buf *b, size_t n)
{
	if (n >= b->len) {
		b->head = 0;
		b->len = 0;
		return;
	}
	b->head += (uint32_t)n;
	b->len -= (uint32_t)n;
}

void
ws_buf_finish(struct ws_buf *b)
{
	free(b->data);
	*b = (struct ws_buf){ 0 };
}
