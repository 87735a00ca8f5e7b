#define _GNU_SOURCE /* getrandom */
#include "ident.h"

#include "clock.h"

#include <stdio.h>
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

void
bc_ident_random(char out[BC_IDENT_HEX_LEN + 1])
{
	uint64_t v;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = ws_clock_wall_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	snprintf(out, BC_IDENT_HEX_LEN + 1, "%016llx", (unsigned long long)v);
}
