#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define CONTROL_MAX 125

size_t
ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], bool fin, enum ws_opcode op, uint64_t len)
{
	out[0] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

bool
ws_frame_append(struct ws_buf *b, enum ws_opcode op, const void *data, size_t len)
{
	uint8_t hdr[WS_FRAME_HEADER_MAX];
	size_t hl = ws_frame_header(hdr, true, op, len);
	if (!ws_buf_reserve(b, hl + len))
		return false;
	uint8_t *p = ws_buf_end(b);
	memcpy(p, hdr, hl);
	if (len)
		memcpy(p + hl, data, len);
	b->len += (uint32_t)(hl + len);
	return true;
}

void
ws_frame_unmask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned offset)
{
	uint8_t m[8];
	for (unsigned i = 0; i < 8; i++)
		m[i] = mask[(offset + i) & 3];
	uint64_t m64;
	memcpy(&m64, m, 8);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		w ^= m64;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= m[i & 7];
}

bool
ws_close_code_valid(uint16_t code)
{
	if (code >= 1000 && code <= 1003)
		return true;
	/* 1012-1014 are registered with IANA since RFC 6455 was published */
	if (code >= 1007 && code <= 1014)
		return true;
	return code >= 3000 && code <= 4999;
}

/* Bytes of header a frame starting with b0 b1 needs. */
static size_t
header_size(uint8_t b1)
{
	size_t n = 2 + ((b1 & 0x80) ? 4 : 0);
	uint8_t len7 = b1 & 0x7f;
	if (len7 == 126)
		n += 2;
	else if (len7 == 127)
		n += 8;
	return n;
}

static int
fail(struct ws_rx_error *err, uint16_t code, const char *reason)
{
	err->code = code;
	err->reason = reason;
	return code;
}

static bool
is_data(uint8_t op)
{
	return op == WS_OP_TEXT || op == WS_OP_BINARY;
}

/* Checks a parsed header against the decoder state; 0 or a close code. */
static int
begin_frame(struct ws_rx *rx, const uint8_t *h, uint64_t max_message, struct ws_rx_error *err)
{
	bool fin = h[0] & 0x80;
	uint8_t op = h[0] & 0x0f;
	uint64_t len = h[1] & 0x7f;
	size_t at = 2;

	if (h[0] & 0x70)
		return fail(err, WS_CLOSE_PROTOCOL, "reserved bits set");
	if (!(h[1] & 0x80))
		return fail(err, WS_CLOSE_PROTOCOL, "unmasked frame");
	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		at = 4;
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		at = 10;
		if (len >> 63)
			return fail(err, WS_CLOSE_PROTOCOL, "invalid length");
	}

	switch (op) {
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!fin)
			return fail(err, WS_CLOSE_PROTOCOL, "fragmented control frame");
		if (len > CONTROL_MAX)
			return fail(err, WS_CLOSE_PROTOCOL, "control frame too long");
		break;
	case WS_OP_CONT:
		if (!rx->msg_op)
			return fail(err, WS_CLOSE_PROTOCOL, "continuation without message");
		if (len > max_message - rx->msg.len)
			return fail(err, WS_CLOSE_TOO_BIG, "message too big");
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (rx->msg_op)
			return fail(err, WS_CLOSE_PROTOCOL, "expected continuation");
		if (len > max_message)
			return fail(err, WS_CLOSE_TOO_BIG, "message too big");
		rx->msg_op = op;
		rx->utf8 = WS_UTF8_ACCEPT;
		break;
	default:
		return fail(err, WS_CLOSE_PROTOCOL, "reserved opcode");
	}

	rx->fin = fin;
	rx->opcode = op;
	rx->remaining = len;
	memcpy(rx->mask, h + at, 4);
	rx->mask_off = 0;
	rx->in_frame = true;
	return 0;
}

static int
control(struct ws_rx *rx, uint8_t *p, size_t n, const struct ws_rx_handler *h, void *ctx,
	struct ws_rx_error *err)
{
	switch (rx->opcode) {
	case WS_OP_PING:
		return h->ping(ctx, p, n);
	case WS_OP_PONG:
		return h->pong(ctx, p, n);
	default:
		break;
	}
	if (n == 0)
		return h->close(ctx, WS_CLOSE_NO_STATUS, p, 0);
	if (n == 1)
		return fail(err, WS_CLOSE_PROTOCOL, "invalid close payload");
	uint16_t code = (uint16_t)(p[0] << 8 | p[1]);
	if (!ws_close_code_valid(code))
		return fail(err, WS_CLOSE_PROTOCOL, "invalid close code");
	if (ws_utf8_validate(WS_UTF8_ACCEPT, p + 2, n - 2) != WS_UTF8_ACCEPT)
		return fail(err, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
	return h->close(ctx, code, p + 2, n - 2);
}

static int
deliver(struct ws_rx *rx, uint8_t *p, size_t n, const struct ws_rx_handler *h, void *ctx,
	struct ws_rx_error *err)
{
	uint8_t op = rx->msg_op;
	rx->msg_op = 0;
	if (op == WS_OP_TEXT && rx->utf8 != WS_UTF8_ACCEPT)
		return fail(err, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
	return h->message(ctx, (enum ws_opcode)op, p, n);
}

/* Consumes up to n payload bytes of the current (spanning) frame. */
static int
payload(struct ws_rx *rx, uint8_t *p, size_t n, struct ws_rx_error *err)
{
	if (n == 0)
		return 0;
	ws_frame_unmask(p, n, rx->mask, rx->mask_off);
	rx->mask_off = (uint8_t)((rx->mask_off + n) & 3);
	rx->remaining -= n;
	if (!rx->direct) {
		memcpy(rx->ctl + rx->ctl_len, p, n);
		rx->ctl_len = (uint8_t)(rx->ctl_len + n);
		return 0;
	}
	if (rx->msg_op == WS_OP_TEXT) {
		/* fail fast: a bad byte ends the message before its last fragment */
		rx->utf8 = ws_utf8_validate(rx->utf8, p, n);
		if (rx->utf8 == WS_UTF8_REJECT)
			return fail(err, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
	}
	/* grown as bytes arrive, not as headers promise: a header costs nothing */
	if (!ws_buf_append(&rx->msg, p, n))
		return fail(err, WS_CLOSE_INTERNAL, "out of memory");
	return 0;
}

static int
end_frame(struct ws_rx *rx, const struct ws_rx_handler *h, void *ctx, struct ws_rx_error *err)
{
	rx->in_frame = false;
	if (!rx->direct) {
		int r = control(rx, rx->ctl, rx->ctl_len, h, ctx, err);
		free(rx->ctl);
		rx->ctl = NULL;
		rx->ctl_len = 0;
		return r;
	}
	if (!rx->fin)
		return 0;
	int r = deliver(rx, ws_buf_begin(&rx->msg), rx->msg.len, h, ctx, err);
	rx->msg.len = 0;
	rx->msg.head = 0;
	return r;
}

/*
 * Takes header bytes from *p; returns a pointer to a whole header (in place
 * or in rx->hdr), or NULL when all input went into rx->hdr.
 */
static const uint8_t *
take_header(struct ws_rx *rx, uint8_t **p, size_t *n)
{
	if (rx->hdr_len == 0 && *n >= 2 && *n >= header_size((*p)[1])) {
		const uint8_t *h = *p;
		size_t hs = header_size(h[1]);
		*p += hs;
		*n -= hs;
		return h;
	}
	while (*n) {
		size_t want = rx->hdr_len < 2 ? 2 : header_size(rx->hdr[1]);
		if (rx->hdr_len == want)
			break;
		size_t k = want - rx->hdr_len < *n ? want - rx->hdr_len : *n;
		memcpy(rx->hdr + rx->hdr_len, *p, k);
		rx->hdr_len = (uint8_t)(rx->hdr_len + k);
		*p += k;
		*n -= k;
	}
	if (rx->hdr_len < 2 || rx->hdr_len < header_size(rx->hdr[1]))
		return NULL;
	rx->hdr_len = 0;
	return rx->hdr;
}

int
ws_rx_feed(struct ws_rx *rx, uint64_t max_message, uint8_t *p, size_t n,
	   const struct ws_rx_handler *h, void *ctx, struct ws_rx_error *err)
{
	int r;
	while (n || (rx->in_frame && rx->remaining == 0)) {
		if (!rx->in_frame) {
			const uint8_t *hdr = take_header(rx, &p, &n);
			if (!hdr)
				return 0;
			if ((r = begin_frame(rx, hdr, max_message, err)))
				return r;
			size_t len = (size_t)rx->remaining;
			bool whole = rx->remaining <= n;
			if (whole && rx->opcode >= WS_OP_CLOSE) {
				/* the common case: the control frame is all here */
				ws_frame_unmask(p, len, rx->mask, 0);
				rx->in_frame = false;
				p += len;
				n -= len;
				if ((r = control(rx, p - len, len, h, ctx, err)))
					return r;
				continue;
			}
			if (whole && rx->fin && is_data(rx->opcode)) {
				/* the fast path: a whole message in this read, no copy */
				ws_frame_unmask(p, len, rx->mask, 0);
				if (rx->opcode == WS_OP_TEXT)
					rx->utf8 = ws_utf8_validate(WS_UTF8_ACCEPT, p, len);
				rx->in_frame = false;
				p += len;
				n -= len;
				if ((r = deliver(rx, p - len, len, h, ctx, err)))
					return r;
				continue;
			}
			rx->direct = rx->opcode < WS_OP_CLOSE;
			if (!rx->direct && !(rx->ctl = malloc(CONTROL_MAX))) {
				return fail(err, WS_CLOSE_INTERNAL, "out of memory");
			}
		}
		size_t k = rx->remaining < n ? (size_t)rx->remaining : n;
		if ((r = payload(rx, p, k, err)))
			return r;
		p += k;
		n -= k;
		if (rx->remaining == 0 && (r = end_frame(rx, h, ctx, err)))
			return r;
	}
	return 0;
}

bool
ws_rx_busy(const struct ws_rx *rx)
{
	return rx->in_frame || rx->msg_op || rx->hdr_len;
}

void
ws_rx_trim(struct ws_rx *rx)
{
	if (rx->msg.len == 0)
		ws_buf_finish(&rx->msg);
}

void
ws_rx_finish(struct ws_rx *rx)
{
	ws_buf_finish(&rx->msg);
	free(rx->ctl);
	*rx = (struct ws_rx){ 0 };
}
