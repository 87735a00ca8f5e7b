#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strncasecmp; meson defines it project-wide */
#endif

#include "wsclient.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/*
 * SHA-1 and base64 serve only the accept check, computed once per run (one
 * key serves every connection), so plain implementations are enough.
 */
static uint32_t
rol32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void
sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20)
			f = (b & c) | (~b & d), k = 0x5a827999;
		else if (i < 40)
			f = b ^ c ^ d, k = 0x6ed9eba1;
		else if (i < 60)
			f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
		else
			f = b ^ c ^ d, k = 0xca62c1d6;
		uint32_t t = rol32(a, 5) + f + e + k + w[i];
		e = d, d = c, c = rol32(b, 30), b = a, a = t;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void
sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
	uint8_t block[64];
	size_t i = 0;
	for (; i + 64 <= len; i += 64)
		sha1_block(h, msg + i);
	size_t rest = len - i;
	memset(block, 0, sizeof block);
	memcpy(block, msg + i, rest);
	block[rest] = 0x80;
	if (rest >= 56) {
		sha1_block(h, block);
		memset(block, 0, sizeof block);
	}
	uint64_t bits = (uint64_t)len * 8;
	for (int j = 0; j < 8; j++)
		block[63 - j] = (uint8_t)(bits >> (8 * j));
	sha1_block(h, block);
	for (int j = 0; j < 20; j++)
		out[j] = (uint8_t)(h[j / 4] >> (24 - 8 * (j % 4)));
}

/* Writes base64 of in[0..n) and a NUL: 4 * ceil(n / 3) + 1 bytes. */
static void
base64(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

void
wsclient_key(const uint8_t nonce[16], char key[WSC_KEY_LEN], char accept[WSC_ACCEPT_LEN])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char cat[WSC_KEY_LEN + sizeof guid];
	uint8_t digest[20];
	base64(nonce, 16, key);
	snprintf(cat, sizeof cat, "%s%s", key, guid);
	sha1((const uint8_t *)cat, strlen(cat), digest);
	base64(digest, sizeof digest, accept);
}

bool
wsclient_response_ok(const char *resp, const char *hdr_end, const char *accept)
{
	size_t alen = strlen(accept);
	bool accepted = false;
	if (strncmp(resp, "HTTP/1.1 101", 12) != 0)
		return false;
	for (const char *line = strstr(resp, "\r\n"); line && line < hdr_end;
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (strncasecmp(h, "sec-websocket-extensions:", 25) == 0)
			return false;
		if (strncasecmp(h, "sec-websocket-accept:", 21) == 0) {
			h += 21;
			h += strspn(h, " \t");
			accepted = strncmp(h, accept, alen) == 0 &&
				   (h[alen] == '\r' || h[alen] == ' ' || h[alen] == '\t');
		}
	}
	return accepted;
}

size_t
wsclient_header(uint8_t h[14], enum wsclient_opcode op, uint64_t len, const uint8_t mask[4])
{
	size_t n;
	h[0] = (uint8_t)(0x80 | op);
	if (len < 126) {
		h[1] = (uint8_t)(0x80 | len);
		n = 2;
	} else if (len <= 0xffff) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		n = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	memcpy(h + n, mask, 4);
	return n + 4;
}

void
wsclient_mask(uint8_t *p, size_t n, const uint8_t mask[4])
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= mask[i & 3];
}
