/*
 * buf: a byte buffer with a consumed head, used for partial input, message
 * reassembly and pending output. Sizes are bounded by the callers' caps.
 */
#ifndef WS_BUF_H
#define WS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ws_buf {
	uint8_t *data; /* owned; NULL until first reserve */
	uint32_t head; /* bytes consumed from the front */
	uint32_t len;  /* bytes held, from data + head */
	uint32_t cap;
};

/* Makes room for extra more bytes after the held ones; false on OOM or overflow. */
bool ws_buf_reserve(struct ws_buf *b, size_t extra);
/* Appends n bytes (reserving first); false on OOM. */
bool ws_buf_append(struct ws_buf *b, const void *p, size_t n);
/* Drops n bytes from the front. */
void ws_buf_consume(struct ws_buf *b, size_t n);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void ws_buf_finish(struct ws_buf *b);

/* NULL for a buffer that never held anything (no arithmetic on NULL). */
static inline uint8_t *
ws_buf_begin(const struct ws_buf *b)
{
	return b->data ? b->data + b->head : NULL;
}

static inline uint8_t *
ws_buf_end(const struct ws_buf *b)
{
	return b->data ? b->data + b->head + b->len : NULL;
}

#endif
