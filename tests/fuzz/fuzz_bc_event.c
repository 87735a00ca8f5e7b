/*
 * fuzz_bc_event: bc_event_parse() and bc_relay_parse() on what a Redis
 * channel may carry (the Redis engine's "EV SEQ JSON" and "B" relays).
 * Invariants: an accepted event's JSON lies inside the input, is an object
 * ('{' ... '}'), starts after the two numbers, and EV is not 0; printing
 * the numbers back and parsing again gives the same event. An accepted
 * relay's node is 16 hex digits and its bytes are the input's tail.
 */
#include "event.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct bc_relay r;
	if (bc_relay_parse(p, size, &r)) {
		assert(strlen(r.node) == 16 && strspn(r.node, "0123456789abcdef") == 16);
		assert(r.data > data + 18 && r.data + r.len == data + size);
	}
	struct bc_event e;
	if (!bc_event_parse(p, size, &e))
		return 0;
	assert(e.ev != 0);
	assert(e.json >= p + 4 && e.json + e.len == p + size && e.len >= 2);
	assert(e.json[0] == '{' && e.json[e.len - 1] == '}');
	char again[64];
	int n = snprintf(again, sizeof(again), "%llu %llu ", (unsigned long long)e.ev,
			 (unsigned long long)e.seq);
	/* the prefix as printed is the input's unless it had leading zeros */
	if (n > 0 && (size_t)n == (size_t)(e.json - p) && memcmp(again, p, (size_t)n) == 0) {
		char buf[256];
		size_t take = e.len < sizeof(buf) - (size_t)n ? e.len : 0;
		if (take) {
			memcpy(buf, again, (size_t)n);
			memcpy(buf + n, e.json, take);
			struct bc_event f;
			assert(bc_event_parse(buf, (size_t)n + take, &f));
			assert(f.ev == e.ev && f.seq == e.seq && f.len == e.len);
		}
	}
	return 0;
}
