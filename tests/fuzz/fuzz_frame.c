/*
 * fuzz_frame: arbitrary client bytes into the RFC 6455 decoder.
 *
 * Input: byte 0 picks a small max_message (0..765), byte 1 picks how the
 * rest is cut into reads, the rest is what the client sent. The bytes are
 * decoded twice, fed whole and fed cut up, each read in its own exact-size
 * allocation; the two runs must hand over the same events and end the same
 * way. The handlers check what the decoder promises: messages within the
 * cap, text that is valid UTF-8, control payloads of at most 125 bytes,
 * close codes a peer may send and close reasons in UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_frame: invariant broken: %s\n", what);
		abort();
	}
}

/* What one decoding run saw, folded into a hash (FNV-1a). */
struct sink {
	uint64_t max;
	uint64_t hash;
	size_t events;
};

static void
mix(struct sink *s, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		s->hash = (s->hash ^ b[i]) * 0x100000001b3ull;
}

static void
event(struct sink *s, char kind, uint32_t a, uint8_t *p, size_t n)
{
	require(n == 0 || p != NULL, "payload pointer");
	uint64_t len = n;
	mix(s, &kind, 1);
	mix(s, &a, sizeof(a));
	mix(s, &len, sizeof(len));
	if (n)
		mix(s, p, n);
	s->events++;
}

static int
on_message(void *ctx, enum ws_opcode op, uint8_t *data, size_t len)
{
	struct sink *s = ctx;
	require(op == WS_OP_TEXT || op == WS_OP_BINARY, "message opcode");
	require(len <= s->max, "message within max_message");
	if (op == WS_OP_TEXT)
		require(ws_utf8_validate(WS_UTF8_ACCEPT, data, len) == WS_UTF8_ACCEPT,
			"text message is UTF-8");
	event(s, 'm', op, data, len);
	/* the callee may modify the payload: make sure nothing reads it again */
	if (len)
		memset(data, 0xa5, len);
	return 0;
}

static int
on_ping(void *ctx, uint8_t *data, size_t len)
{
	require(len <= 125, "ping payload <= 125");
	event(ctx, 'i', 0, data, len);
	if (len)
		memset(data, 0xa5, len);
	return 0;
}

static int
on_pong(void *ctx, uint8_t *data, size_t len)
{
	require(len <= 125, "pong payload <= 125");
	event(ctx, 'o', 0, data, len);
	if (len)
		memset(data, 0xa5, len);
	return 0;
}

static int
on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
	require(len <= 123, "close reason <= 123");
	require(ws_close_code_valid(code) || (code == WS_CLOSE_NO_STATUS && len == 0),
		"close code valid");
	require(ws_utf8_validate(WS_UTF8_ACCEPT, reason, len) == WS_UTF8_ACCEPT,
		"close reason is UTF-8");
	event(ctx, 'c', code, (uint8_t *)reason, len);
	return 0;
}

static const struct ws_rx_handler handler = {
	.message = on_message,
	.ping = on_ping,
	.pong = on_pong,
	.close = on_close,
};

/*
 * Decodes wire in one read (seed 0), one byte per read (seed 1), or reads
 * of 0..64 bytes drawn from the seed; returns ws_rx_feed's last result.
 */
static int
run(struct sink *s, const uint8_t *wire, size_t n, uint32_t seed)
{
	struct ws_rx rx = { 0 };
	struct ws_rx_error err = { 0 };
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;
	if (!x)
		x = 1; /* xorshift would stay at 0 */
	size_t spread = 1 + (seed & 0x3f);
	int rc = 0;
	size_t at = 0;
	bool first = true;
	while (at < n || first) {
		size_t k = n - at;
		if (seed) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			size_t want = seed == 1 ? 1 : x % (spread + 1); /* zero-length reads too */
			if (want < k)
				k = want;
		}
		first = false;
		uint8_t *piece = malloc(k ? k : 1);
		if (!piece)
			abort();
		if (k)
			memcpy(piece, wire + at, k);
		rc = ws_rx_feed(&rx, s->max, piece, k, &handler, s, &err);
		free(piece);
		at += k;
		if (rc)
			break;
	}
	if (rc > 0) {
		require(rc == WS_CLOSE_PROTOCOL || rc == WS_CLOSE_INVALID_DATA ||
				rc == WS_CLOSE_TOO_BIG || rc == WS_CLOSE_INTERNAL,
			"result is a close code the decoder may give");
		require(err.code == rc, "err.code matches the result");
		require(err.reason && *err.reason && strlen(err.reason) <= 123,
			"err.reason fits a close frame");
	} else {
		require(rc == 0, "no negative result without a handler asking");
		if (!ws_rx_busy(&rx))
			ws_rx_trim(&rx);
	}
	ws_rx_finish(&rx);
	require(!ws_rx_busy(&rx), "finish leaves the decoder idle");
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint64_t max = (uint64_t)data[0] * 3;
	uint32_t seed = data[1];
	const uint8_t *wire = data + 2;
	size_t n = size - 2;

	struct sink whole = { .max = max, .hash = 0xcbf29ce484222325ull };
	struct sink cut = whole;
	int a = run(&whole, wire, n, 0);
	int b = run(&cut, wire, n, seed ? seed : 1);
	require(a == b, "same result fed whole and cut up");
	require(whole.events == cut.events && whole.hash == cut.hash,
		"same events fed whole and cut up");
	return 0;
}
