#define _GNU_SOURCE /* getrandom */
#include "ident.h"

#include "clock.h"

#include <sys/random.h>
#include <unistd.h>

uint32_t
bc_ident_hash(const char *name)
{
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

/*
 * Drawn from a pool filled by one getrandom() per 64 ids: the Redis engine
 * offers a fresh epoch with every message (its script keeps it only for a
 * room that has none), which would otherwise be a system call per message.
 * The servers are single-threaded.
 */
#define POOL_IDS 64

void
bc_ident_random(char out[BC_IDENT_HEX_LEN + 1])
{
	static uint64_t pool[POOL_IDS];
	static unsigned left;
	if (!left) {
		if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool)) {
			uint64_t seed = ws_clock_wall_ms() * 0x9e3779b97f4a7c15ull ^
					(uint64_t)getpid();
			for (unsigned i = 0; i < POOL_IDS; i++)
				pool[i] = seed += 0x9e3779b97f4a7c15ull;
		}
		left = POOL_IDS;
	}
	uint64_t v = pool[--left];
	pool[left] = 0; /* an id handed out is not kept */
	static const char hex[] = "0123456789abcdef";
	for (int i = BC_IDENT_HEX_LEN - 1; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[BC_IDENT_HEX_LEN] = '\0';
}
