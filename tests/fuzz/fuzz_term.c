/*
 * The terminal endpoint's input and its output buffer: the first byte picks
 * the target.
 *   0: rpc_term_parse_control on the rest (a client's text frame): it never
 *      crashes, and a resize it accepts is within 1..RPC_PTY_MAX.
 *   1: rpc_ring driven by the rest as operations (write n bytes, grow,
 *      peek from an offset), checked against a plain copy of every byte
 *      written: what the ring says it holds is exactly the newest bytes.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "session.h"
#include "term.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MODEL_MAX (1u << 16)

static void
ring_ops(const uint8_t *p, size_t n)
{
	static uint8_t model[MODEL_MAX];
	size_t written = 0;
	struct rpc_ring r;
	rpc_ring_init(&r, n ? 1 + p[0] * 4u : 64);
	for (size_t i = 1; i + 2 < n; i += 3) {
		unsigned op = p[i] % 3, arg = p[i + 1] | (unsigned)p[i + 2] << 8;
		if (op == 0) {
			size_t len = arg % 1024;
			if (written + len > MODEL_MAX)
				break;
			for (size_t k = 0; k < len; k++)
				model[written + k] = (uint8_t)(written + k + p[i]);
			rpc_ring_write(&r, model + written, len);
			written += len;
		} else if (op == 1) {
			size_t want = rpc_ring_wants(&r, arg % 1024);
			size_t got = rpc_ring_grow(&r, want ? want : arg % 64);
			assert(r.size <= r.cap && got <= arg + 1024);
		}
		assert(r.end == written && r.len <= r.size);
		uint64_t start = rpc_ring_start(&r);
		uint64_t from = op == 2 ? arg % (written + 1) : start;
		const uint8_t *q;
		size_t at = 0;
		while (from + at < written) {
			size_t m = rpc_ring_peek(&r, from + at, &q);
			if (from < start) {
				assert(m == 0);
				break;
			}
			assert(m > 0 && from + at + m <= written);
			assert(memcmp(q, model + from + at, m) == 0);
			at += m;
		}
	}
	rpc_ring_finish(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1) {
		ring_ops(data + 1, size - 1);
		return 0;
	}
	uint16_t cols = 0, rows = 0;
	const char *why = NULL;
	enum rpc_term_control k = rpc_term_parse_control(data + 1, size - 1, &cols, &rows, &why);
	if (k == RPC_TERM_RESIZE)
		assert(cols >= 1 && cols <= RPC_PTY_MAX && rows >= 1 && rows <= RPC_PTY_MAX);
	if (k == RPC_TERM_BAD)
		assert(why && *why);
	return 0;
}
