#include "encode.h"

#include <string.h>

/* Length of the valid sequence at p (1-4), 0 if invalid, -1 if cut off by the end. */
static int
seq_len(const uint8_t *p, size_t n)
{
	uint8_t b = p[0];
	int len;
	uint8_t lo = 0x80, hi = 0xbf;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef) {
		len = 3;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		len = 4;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		uint8_t c = p[i];
		if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return len;
}

size_t
rpc_encode_utf8(const uint8_t *p, size_t n, bool final, char *out, size_t *consumed)
{
	size_t i = 0, o = 0;
	while (i < n) {
		int l = seq_len(p + i, n - i);
		if (l < 0 && !final)
			break;
		if (l <= 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, (size_t)l);
		o += (size_t)l;
		i += (size_t)l;
	}
	*consumed = i;
	return o;
}

size_t
rpc_encode_json(const uint8_t *p, size_t n, bool final, char *out, size_t room, size_t *consumed,
		bool *full)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i = 0, o = 0;
	*full = false;
	while (i < n) {
		/* a run of plain ASCII is copied as it is */
		size_t run = 0;
		while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x80 &&
		       p[i + run] != '"' && p[i + run] != '\\')
			run++;
		if (run) {
			size_t k = run < room - o ? run : room - o;
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
			if (k < run) {
				*full = true;
				break;
			}
			continue;
		}
		int l = seq_len(p + i, n - i);
		if (l < 0 && !final)
			break;
		char esc[6];
		const char *unit = esc;
		size_t ul = 2;
		uint8_t b = p[i];
		if (l <= 0) {
			unit = "\xef\xbf\xbd";
			ul = 3;
			l = 1;
		} else if (b == '"' || b == '\\') {
			esc[0] = '\\';
			esc[1] = (char)b;
		} else if (b < 0x20) {
			static const char shorts[] = "btn\0fr"; /* 8..13; 11 has no short form */
			esc[0] = '\\';
			if (b >= 8 && b <= 13 && b != 11) {
				esc[1] = shorts[b - 8];
			} else {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[b >> 4];
				esc[5] = hex[b & 15];
				ul = 6;
			}
		} else {
			unit = (const char *)p + i;
			ul = (size_t)l;
		}
		if (room - o < ul) {
			*full = true;
			break;
		}
		memcpy(out + o, unit, ul);
		o += ul;
		i += (size_t)l;
	}
	*consumed = i;
	return o;
}
