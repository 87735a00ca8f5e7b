/*
 * frame: the RFC 6455 decoder (ws_rx_feed) and the server-side encoder.
 * Every input is built as a client would send it (masked, unless the case
 * is about masking), then fed whole and split in several ways.
 */
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "utf8.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

/* ------------------------------------------------------------------ */
/* A client-side frame writer. */

enum len_form {
	LEN_MINIMAL,
	LEN_16, /* 126 + 16 bits, whatever the length */
	LEN_64, /* 127 + 64 bits */
};

struct frame_spec {
	uint8_t b0; /* FIN | RSV | opcode */
	bool unmasked;
	enum len_form form;
	bool declare; /* write `declared` as the length, not len */
	uint64_t declared;
	const void *payload;
	size_t len;
};

static void
put_bytes(struct ws_buf *w, const void *p, size_t n)
{
	if (!ws_buf_append(w, p, n))
		abort();
}

static void
put_spec(struct ws_buf *w, const struct frame_spec *f)
{
	/* a different key per frame, so unmasking offsets matter */
	static uint8_t seq;
	uint8_t mask[4] = { 0x37, 0xfa, (uint8_t)(0x21 + seq), (uint8_t)(0x3d ^ seq) };
	seq += 29;

	uint64_t len = f->declare ? f->declared : f->len;
	uint8_t h[14];
	size_t n = 0;
	uint8_t m = f->unmasked ? 0 : 0x80;
	h[n++] = f->b0;
	if (f->form == LEN_MINIMAL && len < 126) {
		h[n++] = (uint8_t)(m | len);
	} else if (f->form == LEN_16 || (f->form == LEN_MINIMAL && len <= 0xffff)) {
		h[n++] = m | 126;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = m | 127;
		for (int i = 7; i >= 0; i--)
			h[n++] = (uint8_t)(len >> (8 * i));
	}
	if (!f->unmasked) {
		memcpy(h + n, mask, 4);
		n += 4;
	}
	put_bytes(w, h, n);
	if (!ws_buf_reserve(w, f->len))
		abort();
	uint8_t *d = ws_buf_end(w);
	for (size_t i = 0; i < f->len; i++)
		d[i] = ((const uint8_t *)f->payload)[i] ^ (f->unmasked ? 0 : mask[i & 3]);
	w->len += (uint32_t)f->len;
}

/* A masked frame with a minimal length. */
static void
put_frame(struct ws_buf *w, uint8_t b0, const void *payload, size_t len)
{
	put_spec(w, &(struct frame_spec){ .b0 = b0, .payload = payload, .len = len });
}

static void
put_str(struct ws_buf *w, uint8_t b0, const char *s)
{
	put_frame(w, b0, s, strlen(s));
}

static void
put_close(struct ws_buf *w, uint16_t code, const char *reason)
{
	uint8_t p[125] = { (uint8_t)(code >> 8), (uint8_t)code };
	size_t rl = strlen(reason);
	memcpy(p + 2, reason, rl);
	put_frame(w, FIN | WS_OP_CLOSE, p, 2 + rl);
}

/* ------------------------------------------------------------------ */
/* A decoder driver that records what the handlers saw. */

enum ev_kind { EV_MESSAGE, EV_PING, EV_PONG, EV_CLOSE };

struct event {
	enum ev_kind kind;
	int op;        /* EV_MESSAGE */
	uint16_t code; /* EV_CLOSE */
	uint8_t *data; /* a copy; NULL when len is 0 */
	size_t len;
};

#define EVENTS_MAX 600

struct trace {
	struct event ev[EVENTS_MAX];
	size_t n;
	int rc; /* the first non-zero ws_rx_feed return, or 0 */
	struct ws_rx_error err;
	size_t feeds; /* ws_rx_feed calls made */
	int stop_rc;  /* handlers return this after stop_after events */
	size_t stop_after;
};

static int
record(struct trace *t, enum ev_kind kind, int op, uint16_t code, const uint8_t *p, size_t len)
{
	CHECK(len == 0 || p != NULL);
	if (t->n == EVENTS_MAX) {
		CHECK(!"too many events for the trace");
		return -100;
	}
	struct event *e = &t->ev[t->n++];
	*e = (struct event){ .kind = kind, .op = op, .code = code, .len = len };
	if (len) {
		e->data = malloc(len);
		if (!e->data)
			abort();
		memcpy(e->data, p, len);
	}
	return t->stop_rc && t->n >= t->stop_after ? t->stop_rc : 0;
}

static int
on_message(void *ctx, enum ws_opcode op, uint8_t *data, size_t len)
{
	return record(ctx, EV_MESSAGE, op, 0, data, len);
}

static int
on_ping(void *ctx, uint8_t *data, size_t len)
{
	return record(ctx, EV_PING, 0, 0, data, len);
}

static int
on_pong(void *ctx, uint8_t *data, size_t len)
{
	return record(ctx, EV_PONG, 0, 0, data, len);
}

static int
on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
	return record(ctx, EV_CLOSE, 0, code, reason, len);
}

static const struct ws_rx_handler handler = {
	.message = on_message,
	.ping = on_ping,
	.pong = on_pong,
	.close = on_close,
};

static void
trace_finish(struct trace *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->ev[i].data);
	*t = (struct trace){ .stop_rc = t->stop_rc, .stop_after = t->stop_after };
}

/*
 * Feeds wire to a fresh decoder in pieces ending at cuts[0..ncuts) (then
 * the rest), each piece in its own exact-size allocation so a sanitizer
 * sees any read past it. Stops at the first non-zero return.
 */
static void
decode_cuts(struct trace *t, const struct ws_buf *wire, const size_t *cuts, size_t ncuts,
	    uint64_t max)
{
	struct ws_rx rx = { 0 };
	const uint8_t *src = wire->len ? ws_buf_begin(wire) : NULL;
	size_t at = 0;
	for (size_t i = 0; i <= ncuts && at < wire->len; i++) {
		size_t end = i < ncuts && cuts[i] < wire->len ? cuts[i] : wire->len;
		if (end < at)
			end = at;
		size_t k = end - at;
		uint8_t *piece = malloc(k ? k : 1);
		if (!piece)
			abort();
		if (k)
			memcpy(piece, src + at, k);
		int rc = ws_rx_feed(&rx, max, piece, k, &handler, t, &t->err);
		t->feeds++;
		free(piece);
		at = end;
		if (rc) {
			t->rc = rc;
			break;
		}
	}
	ws_rx_finish(&rx);
}

/* Feeds wire in pieces of `chunk` bytes (0: whole). */
static void
decode(struct trace *t, const struct ws_buf *wire, size_t chunk, uint64_t max)
{
	if (chunk == 0 || chunk >= wire->len) {
		decode_cuts(t, wire, NULL, 0, max);
		return;
	}
	size_t n = (wire->len + chunk - 1) / chunk;
	size_t *cuts = malloc(n * sizeof(*cuts));
	if (!cuts)
		abort();
	for (size_t i = 0; i < n; i++)
		cuts[i] = (i + 1) * chunk;
	decode_cuts(t, wire, cuts, n, max);
	free(cuts);
}

static bool
same_trace(const struct trace *a, const struct trace *b)
{
	if (a->n != b->n || a->rc != b->rc)
		return false;
	if (a->rc > 0 && a->err.code != b->err.code)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct event *x = &a->ev[i], *y = &b->ev[i];
		if (x->kind != y->kind || x->op != y->op || x->code != y->code ||
		    x->len != y->len || (x->len && memcmp(x->data, y->data, x->len)))
			return false;
	}
	return true;
}

static bool
is_message(const struct event *e, int op, const void *p, size_t len)
{
	return e->kind == EV_MESSAGE && e->op == op && e->len == len &&
	       (len == 0 || memcmp(e->data, p, len) == 0);
}

static bool
is_text(const struct event *e, const char *s)
{
	return is_message(e, WS_OP_TEXT, s, strlen(s));
}

/* Decodes wire whole and expects exactly one protocol error `code`, no events. */
static void
expect_error(const struct ws_buf *wire, uint64_t max, int code)
{
	struct trace t = { 0 };
	decode(&t, wire, 0, max);
	CHECK_INT(t.rc, code);
	CHECK_UINT(t.err.code, code);
	CHECK(t.err.reason != NULL && *t.err.reason);
	CHECK_UINT(t.n, 0);
	trace_finish(&t);
}

#define MAX_DEFAULT (1u << 20)

/* ------------------------------------------------------------------ */
/* Encoder. */

static void
header_sizes(void)
{
	uint8_t h[WS_FRAME_HEADER_MAX];

	CHECK_UINT(ws_frame_header(h, true, WS_OP_TEXT, 0), 2);
	CHECK_MEM(h, 2, "\x81\x00", 2);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_TEXT, 125), 2);
	CHECK_MEM(h, 2, "\x81\x7d", 2);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_BINARY, 126), 4);
	CHECK_MEM(h, 4, "\x82\x7e\x00\x7e", 4);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_BINARY, 65535), 4);
	CHECK_MEM(h, 4, "\x82\x7e\xff\xff", 4);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_BINARY, 65536), 10);
	CHECK_MEM(h, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_BINARY, 0x0102030405060708ull), 10);
	CHECK_MEM(h, 10, "\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
	/* FIN off, and the control opcodes */
	CHECK_UINT(ws_frame_header(h, false, WS_OP_TEXT, 3), 2);
	CHECK_MEM(h, 2, "\x01\x03", 2);
	CHECK_UINT(ws_frame_header(h, false, WS_OP_CONT, 3), 2);
	CHECK_MEM(h, 2, "\x00\x03", 2);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_CLOSE, 2), 2);
	CHECK_MEM(h, 2, "\x88\x02", 2);
	CHECK_UINT(ws_frame_header(h, true, WS_OP_PONG, 0), 2);
	CHECK_MEM(h, 2, "\x8a\x00", 2);
}

/* A server header, masked as a client would, decodes to the same message. */
static void
header_roundtrip(void)
{
	static const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		uint8_t *payload = malloc(len + 1);
		if (!payload)
			abort();
		for (size_t j = 0; j < len; j++)
			payload[j] = (uint8_t)(j * 7 + 3);

		uint8_t h[WS_FRAME_HEADER_MAX];
		size_t hn = ws_frame_header(h, true, WS_OP_BINARY, len);
		static const uint8_t mask[4] = { 1, 2, 3, 4 };
		struct ws_buf w = { 0 };
		h[1] |= 0x80;
		put_bytes(&w, h, hn);
		put_bytes(&w, mask, 4);
		for (size_t j = 0; j < len; j++) {
			uint8_t b = payload[j] ^ mask[j & 3];
			put_bytes(&w, &b, 1);
		}

		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, 0);
		if (CHECK_UINT(t.n, 1))
			CHECK(is_message(&t.ev[0], WS_OP_BINARY, payload, len));
		trace_finish(&t);
		ws_buf_finish(&w);
		free(payload);
	}
}

static void
unmask_offsets(void)
{
	static const uint8_t mask[4] = { 0xa1, 0x5b, 0x0c, 0xf7 };
	uint8_t orig[41], p[41], q[41];
	for (size_t i = 0; i < sizeof(orig); i++)
		orig[i] = (uint8_t)(i * 37 + 11);

	for (unsigned off = 0; off < 4; off++) {
		for (size_t n = 0; n <= sizeof(orig); n++) {
			memcpy(p, orig, n);
			ws_frame_unmask(p, n, mask, off);
			for (size_t i = 0; i < n; i++)
				q[i] = orig[i] ^ mask[(off + i) & 3];
			CHECK_MEM(p, n, q, n);
		}
	}
	/* unmasking in two parts with a carried offset equals one pass */
	for (size_t cut = 0; cut <= sizeof(orig); cut++) {
		memcpy(p, orig, sizeof(p));
		ws_frame_unmask(p, cut, mask, 0);
		ws_frame_unmask(p + cut, sizeof(p) - cut, mask, (unsigned)(cut & 3));
		memcpy(q, orig, sizeof(q));
		ws_frame_unmask(q, sizeof(q), mask, 0);
		CHECK_MEM(p, sizeof(p), q, sizeof(q));
	}
}

static void
close_code_valid(void)
{
	for (uint32_t c = 0; c <= 0xffff; c++) {
		bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
			    (c >= 3000 && c <= 4999);
		if (ws_close_code_valid((uint16_t)c) != want)
			CHECK_UINT(c, want ? 1 : 0); /* names the code */
	}
	CHECK(!ws_close_code_valid(1004));
	CHECK(!ws_close_code_valid(1005));
	CHECK(!ws_close_code_valid(1006));
	CHECK(!ws_close_code_valid(1015));
	CHECK(ws_close_code_valid(3000));
	CHECK(ws_close_code_valid(4999));
	CHECK(!ws_close_code_valid(5000));
}

/* ------------------------------------------------------------------ */
/* Decoder: whole messages. */

static void
text_message(void)
{
	struct ws_buf w = { 0 };
	put_str(&w, FIN | WS_OP_TEXT, "Hello");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1))
		CHECK(is_text(&t.ev[0], "Hello"));
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
binary_message(void)
{
	static const uint8_t bin[] = { 0x00, 0xff, 0x80, 0xc0, 0xed, 0xa0, 0x80 };
	struct ws_buf w = { 0 };
	put_frame(&w, FIN | WS_OP_BINARY, bin, sizeof(bin));
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1))
		CHECK(is_message(&t.ev[0], WS_OP_BINARY, bin, sizeof(bin)));
	trace_finish(&t);
	ws_buf_finish(&w);
}

/* RFC 6455 5.7's examples, byte for byte. */
static void
rfc_examples(void)
{
	static const uint8_t masked_hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
						0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const uint8_t masked_ping[] = { 0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d,
					       0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_buf w = { 0 };
	put_bytes(&w, masked_hello, sizeof(masked_hello));
	put_bytes(&w, masked_ping, sizeof(masked_ping));
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 2)) {
		CHECK(is_text(&t.ev[0], "Hello"));
		CHECK(t.ev[1].kind == EV_PING);
		CHECK_MEM(t.ev[1].data, t.ev[1].len, "Hello", 5);
	}
	trace_finish(&t);
	ws_buf_finish(&w);

	/* the unmasked example is what a client must not send */
	static const uint8_t unmasked_hello[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	put_bytes(&w, unmasked_hello, sizeof(unmasked_hello));
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
	ws_buf_finish(&w);
}

/* ------------------------------------------------------------------ */
/* Decoder: RFC 6455 section 5 rules. */

static void
unmasked_rejected(void)
{
	static const uint8_t ops[] = { WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING, WS_OP_PONG,
				       WS_OP_CLOSE };
	for (size_t i = 0; i < sizeof(ops); i++) {
		struct ws_buf w = { 0 };
		put_spec(&w,
			 &(struct frame_spec){
				 .b0 = FIN | ops[i], .unmasked = true, .payload = "", .len = 0 });
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
		ws_buf_finish(&w);
	}
	/* and a continuation of a masked start */
	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "a");
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_CONT, .unmasked = true, .payload = "b", .len = 1 });
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_PROTOCOL);
	CHECK_UINT(t.n, 0);
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
reserved_bits(void)
{
	static const uint8_t bits[] = { RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3 };
	static const uint8_t ops[] = { WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING, WS_OP_CLOSE };
	for (size_t i = 0; i < sizeof(bits); i++) {
		for (size_t j = 0; j < sizeof(ops); j++) {
			struct ws_buf w = { 0 };
			put_frame(&w, FIN | bits[i] | ops[j], "", 0);
			expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
			ws_buf_finish(&w);
		}
	}
	/* on a continuation, after a good first fragment */
	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "a");
	put_str(&w, FIN | RSV1 | WS_OP_CONT, "b");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
	ws_buf_finish(&w);
}

static void
reserved_opcodes(void)
{
	static const uint8_t ops[] = { 0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf };
	for (size_t i = 0; i < sizeof(ops); i++) {
		struct ws_buf w = { 0 };
		put_frame(&w, FIN | ops[i], "x", 1);
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
		ws_buf_finish(&w);
		/* also in the middle of a fragmented message */
		put_str(&w, WS_OP_TEXT, "a");
		put_frame(&w, FIN | ops[i], "", 0);
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
		ws_buf_finish(&w);
	}
}

static void
control_too_long(void)
{
	static const uint8_t ops[] = { WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE };
	uint8_t payload[126];
	memset(payload, 'p', sizeof(payload));
	payload[0] = 0x03; /* a close code 1000 for the close frame */
	payload[1] = 0xe8;
	for (size_t i = 0; i < sizeof(ops); i++) {
		/* 125 is the limit */
		struct ws_buf w = { 0 };
		put_frame(&w, FIN | ops[i], payload, 125);
		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, 0);
		if (CHECK_UINT(t.n, 1))
			CHECK_UINT(t.ev[0].len, ops[i] == WS_OP_CLOSE ? 123 : 125);
		trace_finish(&t);
		ws_buf_finish(&w);

		put_frame(&w, FIN | ops[i], payload, 126);
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
		ws_buf_finish(&w);

		/* the header alone is enough to fail */
		put_spec(&w, &(struct frame_spec){ .b0 = FIN | ops[i],
						   .form = LEN_64,
						   .declare = true,
						   .declared = 1ull << 40 });
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
		ws_buf_finish(&w);
	}
}

static void
control_fragmented(void)
{
	static const uint8_t ops[] = { WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE };
	for (size_t i = 0; i < sizeof(ops); i++) {
		struct ws_buf w = { 0 };
		put_frame(&w, ops[i], "", 0); /* FIN clear */
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
		ws_buf_finish(&w);
	}
}

static void
fragmented_text(void)
{
	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "frag");
	put_str(&w, WS_OP_CONT, "men");
	put_str(&w, FIN | WS_OP_CONT, "ted");
	put_str(&w, FIN | WS_OP_TEXT, "next");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 2)) {
		CHECK(is_text(&t.ev[0], "fragmented"));
		CHECK(is_text(&t.ev[1], "next"));
	}
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
fragmented_binary(void)
{
	struct ws_buf w = { 0 };
	put_frame(&w, WS_OP_BINARY, "\xff\x00", 2);
	put_frame(&w, FIN | WS_OP_CONT, "\x80", 1);
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1))
		CHECK(is_message(&t.ev[0], WS_OP_BINARY, "\xff\x00\x80", 3));
	trace_finish(&t);
	ws_buf_finish(&w);
}

/* Control frames may come between fragments (RFC 6455 5.4). */
static void
control_between_fragments(void)
{
	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "a");
	put_str(&w, FIN | WS_OP_PING, "p1");
	put_str(&w, WS_OP_CONT, "b");
	put_str(&w, FIN | WS_OP_PONG, "p2");
	put_str(&w, FIN | WS_OP_CONT, "c");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 3)) {
		CHECK(t.ev[0].kind == EV_PING);
		CHECK_MEM(t.ev[0].data, t.ev[0].len, "p1", 2);
		CHECK(t.ev[1].kind == EV_PONG);
		CHECK_MEM(t.ev[1].data, t.ev[1].len, "p2", 2);
		CHECK(is_text(&t.ev[2], "abc"));
	}
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
continuation_without_start(void)
{
	struct ws_buf w = { 0 };
	put_str(&w, FIN | WS_OP_CONT, "x");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
	ws_buf_finish(&w);

	put_str(&w, WS_OP_CONT, "x");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
	ws_buf_finish(&w);

	/* after a finished message, a continuation has nothing to continue */
	put_str(&w, FIN | WS_OP_TEXT, "done");
	put_str(&w, FIN | WS_OP_CONT, "x");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_PROTOCOL);
	if (CHECK_UINT(t.n, 1))
		CHECK(is_text(&t.ev[0], "done"));
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
new_message_mid_fragments(void)
{
	static const uint8_t starts[] = { WS_OP_TEXT, WS_OP_BINARY };
	for (size_t i = 0; i < sizeof(starts); i++) {
		for (int fin = 0; fin < 2; fin++) {
			struct ws_buf w = { 0 };
			put_str(&w, WS_OP_TEXT, "a");
			put_str(&w, (uint8_t)((fin ? FIN : 0) | starts[i]), "b");
			expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
			ws_buf_finish(&w);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Decoder: close frames. */

static void
close_empty(void)
{
	struct ws_buf w = { 0 };
	put_frame(&w, FIN | WS_OP_CLOSE, "", 0);
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1)) {
		CHECK(t.ev[0].kind == EV_CLOSE);
		CHECK_UINT(t.ev[0].code, WS_CLOSE_NO_STATUS);
		CHECK_UINT(t.ev[0].len, 0);
	}
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
close_one_byte(void)
{
	struct ws_buf w = { 0 };
	put_frame(&w, FIN | WS_OP_CLOSE, "\x03", 1);
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
	/* even when the next byte would complete a valid code (0x03e8, 1000) */
	put_bytes(&w, "\xe8", 1);
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_PROTOCOL);
	ws_buf_finish(&w);
}

static void
close_codes(void)
{
	static const uint16_t good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
					 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
	static const uint16_t bad[] = { 0,    1,    999,  1004, 1005, 1006, 1015,
					1016, 1100, 2000, 2999, 5000, 65535 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct ws_buf w = { 0 };
		put_close(&w, good[i], "");
		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, 0);
		if (CHECK_UINT(t.n, 1)) {
			CHECK(t.ev[0].kind == EV_CLOSE);
			CHECK_UINT(t.ev[0].code, good[i]);
		}
		trace_finish(&t);
		ws_buf_finish(&w);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ws_buf w = { 0 };
		put_close(&w, bad[i], "");
		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		if (!CHECK_INT(t.rc, WS_CLOSE_PROTOCOL))
			CHECK_UINT(bad[i], 0); /* names the code */
		CHECK_UINT(t.n, 0);
		trace_finish(&t);
		ws_buf_finish(&w);
	}
}

static void
close_reason(void)
{
	struct ws_buf w = { 0 };
	put_close(&w, 1000, "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1)) {
		CHECK_UINT(t.ev[0].code, 1000);
		CHECK_MEM(t.ev[0].data, t.ev[0].len,
			  "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 15);
	}
	trace_finish(&t);
	ws_buf_finish(&w);

	/* the longest reason a control frame can hold */
	char r[124];
	memset(r, 'r', 123);
	r[123] = '\0';
	put_close(&w, 4000, r);
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1))
		CHECK_MEM(t.ev[0].data, t.ev[0].len, r, 123);
	trace_finish(&t);
	ws_buf_finish(&w);

	/* invalid UTF-8, and a truncated sequence, in the reason: 1007 */
	put_close(&w, 1000, "bad \xff");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_INVALID_DATA);
	ws_buf_finish(&w);
	put_close(&w, 1000, "cut \xce");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_INVALID_DATA);
	ws_buf_finish(&w);
}

/* ------------------------------------------------------------------ */
/* Decoder: UTF-8. */

static void
text_invalid_utf8(void)
{
	static const char *const bad[] = {
		"\xff",   "a\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"ok\xce", /* truncated at the end of the message */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ws_buf w = { 0 };
		put_str(&w, FIN | WS_OP_TEXT, bad[i]);
		expect_error(&w, MAX_DEFAULT, WS_CLOSE_INVALID_DATA);
		ws_buf_finish(&w);
	}
	/* the same bytes in a binary message are fine */
	struct ws_buf w = { 0 };
	put_str(&w, FIN | WS_OP_BINARY, "\xff\xc0\xaf");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	CHECK_UINT(t.n, 1);
	trace_finish(&t);
	ws_buf_finish(&w);
}

/* A code point split across fragments is fine; the message arrives whole. */
static void
utf8_split_fragments(void)
{
	/* "κόσμε" cut inside each multi-byte sequence */
	const char *s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
	size_t n = strlen(s);
	for (size_t cut = 1; cut < n; cut++) {
		struct ws_buf w = { 0 };
		put_frame(&w, WS_OP_TEXT, s, cut);
		put_frame(&w, FIN | WS_OP_CONT, s + cut, n - cut);
		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, 0);
		if (CHECK_UINT(t.n, 1))
			CHECK(is_text(&t.ev[0], s));
		trace_finish(&t);
		ws_buf_finish(&w);
	}
	/* a 4-byte sequence over three fragments */
	struct ws_buf w = { 0 };
	put_frame(&w, WS_OP_TEXT, "\xf0\x9f", 2);
	put_frame(&w, WS_OP_CONT, "\x98", 1);
	put_frame(&w, FIN | WS_OP_CONT, "\x80", 1);
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 1))
		CHECK(is_text(&t.ev[0], "\xf0\x9f\x98\x80"));
	trace_finish(&t);
	ws_buf_finish(&w);
}

/*
 * A bad byte fails the connection as soon as it arrives, before the final
 * fragment (Autobahn 6.4.x): the input here never finishes the message.
 */
static void
utf8_fail_fast(void)
{
	/* in a later fragment */
	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "valid");
	put_str(&w, WS_OP_CONT, "\xce\xba\xf4\x90\x80\x80");
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_INVALID_DATA);
	CHECK_UINT(t.n, 0);
	trace_finish(&t);
	ws_buf_finish(&w);

	/* across a fragment boundary: F4 then 90 (past U+10FFFF) */
	put_str(&w, WS_OP_TEXT, "a\xf4");
	put_str(&w, WS_OP_CONT, "\x90");
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_INVALID_DATA);
	trace_finish(&t);
	ws_buf_finish(&w);

	/* inside one frame whose payload is still arriving: fail at the bad byte */
	char payload[64];
	memset(payload, 'a', sizeof(payload));
	payload[10] = (char)0xc0;
	put_frame(&w, FIN | WS_OP_TEXT, payload, sizeof(payload));
	size_t cut[] = { 6 + 11 }; /* header, mask, 11 payload bytes */
	decode_cuts(&t, &w, cut, 1, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_INVALID_DATA);
	CHECK_UINT(t.feeds, 1);
	trace_finish(&t);

	/* and fed one byte at a time, it fails on that byte's feed */
	decode(&t, &w, 1, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_INVALID_DATA);
	CHECK_UINT(t.feeds, 6 + 11);
	trace_finish(&t);
	ws_buf_finish(&w);
}

/* A message that ends inside a code point is invalid, even when fragmented. */
static void
utf8_truncated_end(void)
{
	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "ab");
	put_str(&w, FIN | WS_OP_CONT, "\xe2\x82");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_INVALID_DATA);
	ws_buf_finish(&w);

	/* an empty final fragment after a dangling lead byte */
	put_str(&w, WS_OP_TEXT, "\xe2");
	put_str(&w, FIN | WS_OP_CONT, "");
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_INVALID_DATA);
	ws_buf_finish(&w);
}

/* ------------------------------------------------------------------ */
/* Decoder: lengths and the message cap. */

static void
length_16bit(void)
{
	static const size_t lens[] = { 126, 127, 1000, 65535 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t *p = malloc(lens[i]);
		if (!p)
			abort();
		for (size_t j = 0; j < lens[i]; j++)
			p[j] = (uint8_t)(j % 251);
		struct ws_buf w = { 0 };
		put_frame(&w, FIN | WS_OP_BINARY, p, lens[i]);
		CHECK_UINT(w.len, 2 + 2 + 4 + lens[i]);
		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, 0);
		if (CHECK_UINT(t.n, 1))
			CHECK(is_message(&t.ev[0], WS_OP_BINARY, p, lens[i]));
		trace_finish(&t);
		ws_buf_finish(&w);
		free(p);
	}
}

static void
length_64bit(void)
{
	static const size_t lens[] = { 65536, 100000 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t *p = malloc(lens[i]);
		if (!p)
			abort();
		for (size_t j = 0; j < lens[i]; j++)
			p[j] = (uint8_t)('a' + j % 26);
		struct ws_buf w = { 0 };
		put_frame(&w, FIN | WS_OP_TEXT, p, lens[i]);
		CHECK_UINT(w.len, 2 + 8 + 4 + lens[i]);
		struct trace t = { 0 };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, 0);
		if (CHECK_UINT(t.n, 1))
			CHECK(is_message(&t.ev[0], WS_OP_TEXT, p, lens[i]));
		trace_finish(&t);
		ws_buf_finish(&w);
		free(p);
	}
}

/* A 64-bit length with the most significant bit set is invalid (5.2). */
static void
length_64bit_msb(void)
{
	struct ws_buf w = { 0 };
	put_spec(&w, &(struct frame_spec){ .b0 = FIN | WS_OP_BINARY,
					   .form = LEN_64,
					   .declare = true,
					   .declared = 1ull << 63 });
	expect_error(&w, UINT64_MAX, WS_CLOSE_PROTOCOL);
	ws_buf_finish(&w);
}

/* The decoder takes lengths in the wider forms too (it does not insist on minimal). */
static void
length_wide_forms(void)
{
	struct ws_buf w = { 0 };
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_TEXT, .form = LEN_16, .payload = "hi", .len = 2 });
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_TEXT, .form = LEN_64, .payload = "yo", .len = 2 });
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 2)) {
		CHECK(is_text(&t.ev[0], "hi"));
		CHECK(is_text(&t.ev[1], "yo"));
	}
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
max_message(void)
{
	const uint64_t max = 16;
	char p[32];
	memset(p, 'm', sizeof(p));

	/* exactly the cap passes, in one frame or in fragments */
	struct ws_buf w = { 0 };
	put_frame(&w, FIN | WS_OP_TEXT, p, 16);
	put_frame(&w, WS_OP_BINARY, p, 10);
	put_frame(&w, FIN | WS_OP_CONT, p, 6);
	struct trace t = { 0 };
	decode(&t, &w, 0, max);
	CHECK_INT(t.rc, 0);
	if (CHECK_UINT(t.n, 2)) {
		CHECK_UINT(t.ev[0].len, 16);
		CHECK_UINT(t.ev[1].len, 16);
	}
	trace_finish(&t);
	ws_buf_finish(&w);

	/* one more byte: 1009 */
	put_frame(&w, FIN | WS_OP_TEXT, p, 17);
	expect_error(&w, max, WS_CLOSE_TOO_BIG);
	ws_buf_finish(&w);

	put_frame(&w, WS_OP_TEXT, p, 10);
	put_frame(&w, WS_OP_CONT, p, 6);
	put_frame(&w, FIN | WS_OP_CONT, p, 1);
	expect_error(&w, max, WS_CLOSE_TOO_BIG);
	ws_buf_finish(&w);

	/* control frames do not count against it */
	put_frame(&w, WS_OP_TEXT, p, 16);
	put_frame(&w, FIN | WS_OP_PING, p, 32);
	put_frame(&w, FIN | WS_OP_CONT, "", 0);
	decode(&t, &w, 0, max);
	CHECK_INT(t.rc, 0);
	CHECK_UINT(t.n, 2);
	trace_finish(&t);
	ws_buf_finish(&w);
}

/*
 * A header that only declares a large payload hits the cap at once: the
 * decoder neither waits for 64 MiB nor allocates for it.
 */
static void
max_message_declared(void)
{
	struct ws_rx rx = { 0 };
	struct ws_buf w = { 0 };
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_BINARY, .declare = true, .declared = 64ull << 20 });
	CHECK_UINT(w.len, 14);
	struct trace t = { 0 };
	int rc = ws_rx_feed(&rx, MAX_DEFAULT, ws_buf_begin(&w), w.len, &handler, &t, &t.err);
	CHECK_INT(rc, WS_CLOSE_TOO_BIG);
	CHECK_UINT(t.err.code, WS_CLOSE_TOO_BIG);
	CHECK_UINT(rx.msg.cap, 0);
	CHECK_UINT(t.n, 0);
	ws_rx_finish(&rx);
	ws_buf_finish(&w);

	/* the same, fed one byte at a time: it fails on the header's last byte */
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_TEXT, .declare = true, .declared = 64ull << 20 });
	decode(&t, &w, 1, MAX_DEFAULT);
	CHECK_INT(t.rc, WS_CLOSE_TOO_BIG);
	CHECK_UINT(t.feeds, 14);
	trace_finish(&t);
	ws_buf_finish(&w);

	/* and as a continuation of a message already near the cap */
	char p[100];
	memset(p, 'x', sizeof(p));
	put_frame(&w, WS_OP_TEXT, p, sizeof(p));
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_CONT, .declare = true, .declared = 64ull << 20 });
	expect_error(&w, MAX_DEFAULT, WS_CLOSE_TOO_BIG);
	ws_buf_finish(&w);

	/* a 16-bit length over a small cap */
	put_spec(&w, &(struct frame_spec){
			     .b0 = FIN | WS_OP_BINARY, .declare = true, .declared = 60000 });
	expect_error(&w, 1000, WS_CLOSE_TOO_BIG);
	ws_buf_finish(&w);
}

/* ------------------------------------------------------------------ */
/* Decoder: how input is cut up must not matter. */

static void
mixed_stream(struct ws_buf *w)
{
	put_str(w, FIN | WS_OP_TEXT, "first");
	put_frame(w, FIN | WS_OP_BINARY, "\x00\x01\x02\xff", 4);
	put_str(w, WS_OP_TEXT, "\xce\xba\xe1");
	put_str(w, FIN | WS_OP_PING, "ping in the middle");
	put_str(w, WS_OP_CONT, "\xbd\xb9\xcf");
	put_frame(w, FIN | WS_OP_PONG, "", 0);
	put_str(w, FIN | WS_OP_CONT, "\x83\xce\xbc\xce\xb5");
	put_frame(w, FIN | WS_OP_TEXT, "", 0);
	put_spec(w, &(struct frame_spec){
			    .b0 = FIN | WS_OP_TEXT, .form = LEN_16, .payload = "wide", .len = 4 });
	char p[200];
	memset(p, 'z', sizeof(p));
	put_frame(w, FIN | WS_OP_BINARY, p, sizeof(p));
	put_close(w, 1001, "going");
}

/* The same events whether fed whole, a byte at a time, or cut anywhere. */
static void
byte_at_a_time(void)
{
	struct ws_buf w = { 0 };
	mixed_stream(&w);
	struct trace whole = { 0 }, t = { 0 };
	decode(&whole, &w, 0, MAX_DEFAULT);
	CHECK_INT(whole.rc, 0);
	if (CHECK_UINT(whole.n, 9)) {
		CHECK(is_text(&whole.ev[0], "first"));
		CHECK(is_text(&whole.ev[4], "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));
		CHECK(whole.ev[8].kind == EV_CLOSE && whole.ev[8].code == 1001);
	}

	decode(&t, &w, 1, MAX_DEFAULT);
	CHECK(same_trace(&whole, &t));
	CHECK_UINT(t.feeds, w.len);
	trace_finish(&t);

	static const size_t chunks[] = { 2, 3, 5, 7, 13, 64, 127 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		decode(&t, &w, chunks[i], MAX_DEFAULT);
		if (!CHECK(same_trace(&whole, &t)))
			CHECK_UINT(chunks[i], 0);
		trace_finish(&t);
	}
	/* every single cut point, and every pair of close cut points */
	for (size_t c = 0; c <= w.len; c++) {
		decode_cuts(&t, &w, &c, 1, MAX_DEFAULT);
		if (!CHECK(same_trace(&whole, &t)))
			CHECK_UINT(c, 0);
		trace_finish(&t);
		for (size_t d = c; d <= c + 16 && d <= w.len; d++) {
			size_t cuts[2] = { c, d };
			decode_cuts(&t, &w, cuts, 2, MAX_DEFAULT);
			if (!CHECK(same_trace(&whole, &t)))
				CHECK_UINT(c * 100000 + d, 0);
			trace_finish(&t);
		}
	}
	trace_finish(&whole);
	ws_buf_finish(&w);
}

/* The same for large frames (16- and 64-bit lengths) and for errors. */
static void
byte_at_a_time_large(void)
{
	size_t n = 65536 + 3;
	uint8_t *p = malloc(n);
	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)('A' + i % 26);
	struct ws_buf w = { 0 };
	put_frame(&w, FIN | WS_OP_BINARY, p, 65535);
	put_frame(&w, WS_OP_TEXT, p, 65536);
	put_str(&w, FIN | WS_OP_PING, "mid");
	put_frame(&w, FIN | WS_OP_CONT, p, 3);
	put_frame(&w, FIN | WS_OP_TEXT, "\xc3\x28", 2); /* invalid: ends the stream */
	put_str(&w, FIN | WS_OP_TEXT, "never seen");

	struct trace whole = { 0 }, t = { 0 };
	decode(&whole, &w, 0, 1u << 20);
	CHECK_INT(whole.rc, WS_CLOSE_INVALID_DATA);
	if (CHECK_UINT(whole.n, 3)) {
		CHECK(is_message(&whole.ev[0], WS_OP_BINARY, p, 65535));
		CHECK(whole.ev[1].kind == EV_PING);
		CHECK_UINT(whole.ev[2].len, 65539);
	}
	static const size_t chunks[] = { 1, 2, 9, 4096, 65536 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		decode(&t, &w, chunks[i], 1u << 20);
		if (!CHECK(same_trace(&whole, &t)))
			CHECK_UINT(chunks[i], 0);
		trace_finish(&t);
	}
	trace_finish(&whole);
	ws_buf_finish(&w);
	free(p);
}

static void
many_frames(void)
{
	struct ws_buf w = { 0 };
	char s[32];
	for (int i = 0; i < 500; i++) {
		snprintf(s, sizeof(s), "m%d", i);
		put_str(&w, (uint8_t)(FIN | (i % 2 ? WS_OP_BINARY : WS_OP_TEXT)), s);
	}
	struct trace t = { 0 };
	decode(&t, &w, 0, MAX_DEFAULT);
	CHECK_INT(t.rc, 0);
	CHECK_UINT(t.feeds, 1);
	if (CHECK_UINT(t.n, 500)) {
		for (int i = 0; i < 500; i++) {
			snprintf(s, sizeof(s), "m%d", i);
			if (!CHECK(is_message(&t.ev[i], i % 2 ? WS_OP_BINARY : WS_OP_TEXT, s,
					      strlen(s))))
				break;
		}
	}
	trace_finish(&t);
	ws_buf_finish(&w);
}

static void
zero_length_frames(void)
{
	struct ws_buf w = { 0 };
	put_frame(&w, FIN | WS_OP_TEXT, "", 0);
	put_frame(&w, FIN | WS_OP_BINARY, "", 0);
	put_frame(&w, FIN | WS_OP_PING, "", 0);
	put_frame(&w, FIN | WS_OP_PONG, "", 0);
	put_frame(&w, WS_OP_TEXT, "", 0);
	put_frame(&w, WS_OP_CONT, "", 0);
	put_frame(&w, FIN | WS_OP_CONT, "", 0);
	put_frame(&w, WS_OP_BINARY, "", 0);
	put_frame(&w, FIN | WS_OP_CONT, "x", 1);
	put_frame(&w, WS_OP_TEXT, "y", 1);
	put_frame(&w, FIN | WS_OP_CONT, "", 0);
	put_frame(&w, FIN | WS_OP_CLOSE, "", 0);

	struct trace whole = { 0 }, t = { 0 };
	decode(&whole, &w, 0, MAX_DEFAULT);
	CHECK_INT(whole.rc, 0);
	if (CHECK_UINT(whole.n, 8)) {
		CHECK(is_message(&whole.ev[0], WS_OP_TEXT, "", 0));
		CHECK(is_message(&whole.ev[1], WS_OP_BINARY, "", 0));
		CHECK(whole.ev[2].kind == EV_PING && whole.ev[2].len == 0);
		CHECK(whole.ev[3].kind == EV_PONG && whole.ev[3].len == 0);
		CHECK(is_message(&whole.ev[4], WS_OP_TEXT, "", 0));
		CHECK(is_message(&whole.ev[5], WS_OP_BINARY, "x", 1));
		CHECK(is_text(&whole.ev[6], "y"));
		CHECK(whole.ev[7].kind == EV_CLOSE && whole.ev[7].code == WS_CLOSE_NO_STATUS);
	}
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		decode(&t, &w, chunk, MAX_DEFAULT);
		CHECK(same_trace(&whole, &t));
		trace_finish(&t);
	}
	trace_finish(&whole);
	ws_buf_finish(&w);

	/* an empty feed changes nothing */
	struct ws_rx rx = { 0 };
	uint8_t none[1];
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, none, 0, &handler, &t, &t.err), 0);
	CHECK(!ws_rx_busy(&rx));
	CHECK_UINT(t.n, 0);
	ws_rx_finish(&rx);
}

/* A handler's negative return stops the decoder and comes back out. */
static void
handler_stops(void)
{
	struct ws_buf w = { 0 };
	put_str(&w, FIN | WS_OP_TEXT, "one");
	put_str(&w, FIN | WS_OP_PING, "two");
	put_str(&w, FIN | WS_OP_TEXT, "three");
	for (size_t after = 1; after <= 3; after++) {
		struct trace t = { .stop_rc = -7, .stop_after = after };
		decode(&t, &w, 0, MAX_DEFAULT);
		CHECK_INT(t.rc, -7);
		CHECK_UINT(t.n, after);
		trace_finish(&t);
	}
	ws_buf_finish(&w);
}

static void
busy_state(void)
{
	struct ws_rx rx = { 0 };
	struct trace t = { 0 };
	CHECK(!ws_rx_busy(&rx));

	struct ws_buf w = { 0 };
	put_str(&w, WS_OP_TEXT, "part");
	size_t first = w.len;
	put_str(&w, FIN | WS_OP_CONT, "ial");
	uint8_t *p = ws_buf_begin(&w);

	/* half a header */
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, p, 1, &handler, &t, &t.err), 0);
	CHECK(ws_rx_busy(&rx));
	/* the rest of the first fragment: a message is open */
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, p + 1, first - 1, &handler, &t, &t.err), 0);
	CHECK(ws_rx_busy(&rx));
	CHECK_UINT(t.n, 0);
	/* the final fragment */
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, p + first, w.len - first, &handler, &t, &t.err), 0);
	CHECK(!ws_rx_busy(&rx));
	if (CHECK_UINT(t.n, 1))
		CHECK(is_text(&t.ev[0], "partial"));

	/* idle: trimming frees the reassembly buffer and the decoder still works */
	ws_rx_trim(&rx);
	CHECK(rx.msg.data == NULL);
	ws_buf_finish(&w);
	put_str(&w, WS_OP_BINARY, "again");
	put_str(&w, FIN | WS_OP_CONT, "!");
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, ws_buf_begin(&w), w.len, &handler, &t, &t.err), 0);
	if (CHECK_UINT(t.n, 2))
		CHECK(is_message(&t.ev[1], WS_OP_BINARY, "again!", 6));

	/* finishing mid-message frees everything (checked under ASan) */
	ws_buf_finish(&w);
	put_str(&w, WS_OP_TEXT, "left open");
	put_str(&w, FIN | WS_OP_PING, "");
	w.len -= 3; /* a control frame cut inside its payload-less mask */
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, ws_buf_begin(&w), w.len, &handler, &t, &t.err), 0);
	CHECK(ws_rx_busy(&rx));
	ws_rx_finish(&rx);
	CHECK(!ws_rx_busy(&rx));
	trace_finish(&t);
	ws_buf_finish(&w);

	/* a control frame whose payload spans reads is freed by finish too */
	put_str(&w, FIN | WS_OP_PING, "spanning");
	CHECK_INT(ws_rx_feed(&rx, MAX_DEFAULT, ws_buf_begin(&w), w.len - 2, &handler, &t, &t.err),
		  0);
	CHECK(ws_rx_busy(&rx));
	ws_rx_finish(&rx);
	ws_buf_finish(&w);
}

static const struct check_case cases[] = {
	{ "header-sizes", header_sizes },
	{ "header-roundtrip", header_roundtrip },
	{ "unmask-offsets", unmask_offsets },
	{ "close-code-valid", close_code_valid },
	{ "text-message", text_message },
	{ "binary-message", binary_message },
	{ "rfc-examples", rfc_examples },
	{ "unmasked-rejected", unmasked_rejected },
	{ "reserved-bits", reserved_bits },
	{ "reserved-opcodes", reserved_opcodes },
	{ "control-too-long", control_too_long },
	{ "control-fragmented", control_fragmented },
	{ "fragmented-text", fragmented_text },
	{ "fragmented-binary", fragmented_binary },
	{ "control-between-fragments", control_between_fragments },
	{ "continuation-without-start", continuation_without_start },
	{ "new-message-mid-fragments", new_message_mid_fragments },
	{ "close-empty", close_empty },
	{ "close-one-byte", close_one_byte },
	{ "close-codes", close_codes },
	{ "close-reason", close_reason },
	{ "text-invalid-utf8", text_invalid_utf8 },
	{ "utf8-split-fragments", utf8_split_fragments },
	{ "utf8-fail-fast", utf8_fail_fast },
	{ "utf8-truncated-end", utf8_truncated_end },
	{ "length-16bit", length_16bit },
	{ "length-64bit", length_64bit },
	{ "length-64bit-msb", length_64bit_msb },
	{ "length-wide-forms", length_wide_forms },
	{ "max-message", max_message },
	{ "max-message-declared", max_message_declared },
	{ "byte-at-a-time", byte_at_a_time },
	{ "byte-at-a-time-large", byte_at_a_time_large },
	{ "many-frames", many_frames },
	{ "zero-length-frames", zero_length_frames },
	{ "handler-stops", handler_stops },
	{ "busy-state", busy_state },
};

CHECK_MAIN(cases)
