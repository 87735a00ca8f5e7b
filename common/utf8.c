#include "utf8.h"

#include <string.h>

/*
 * A state inside a code point packs what the next byte may be:
 * bits 0-1 bytes still needed, bits 8-15 its lowest value, 16-23 its highest.
 */
static inline uint32_t
need(uint32_t n, uint32_t lo, uint32_t hi)
{
	return n | lo << 8 | hi << 16;
}

static uint32_t
lead(uint8_t b)
{
	if (b >= 0xc2 && b <= 0xdf)
		return need(1, 0x80, 0xbf);
	if (b == 0xe0)
		return need(2, 0xa0, 0xbf);
	if (b == 0xed)
		return need(2, 0x80, 0x9f);
	if (b >= 0xe1 && b <= 0xef)
		return need(2, 0x80, 0xbf);
	if (b == 0xf0)
		return need(3, 0x90, 0xbf);
	if (b >= 0xf1 && b <= 0xf3)
		return need(3, 0x80, 0xbf);
	if (b == 0xf4)
		return need(3, 0x80, 0x8f);
	return WS_UTF8_REJECT;
}

uint32_t
ws_utf8_validate(uint32_t state, const uint8_t *p, size_t n)
{
	if (state == WS_UTF8_REJECT)
		return state;
	size_t i = 0;
	while (i < n) {
		if (state == WS_UTF8_ACCEPT) {
			/* ASCII runs dominate real traffic: test 8 bytes at a time */
			while (i + 8 <= n) {
				uint64_t w;
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ull)
					break;
				i += 8;
			}
			while (i < n && p[i] < 0x80)
				i++;
			if (i == n)
				break;
			state = lead(p[i++]);
			if (state == WS_UTF8_REJECT)
				return state;
			continue;
		}
		uint8_t b = p[i++];
		if (b < ((state >> 8) & 0xff) || b > ((state >> 16) & 0xff))
			return WS_UTF8_REJECT;
		uint32_t left = (state & 3) - 1;
		state = left ? need(left, 0x80, 0xbf) : WS_UTF8_ACCEPT;
	}
	return state;
}
