#define _GNU_SOURCE /* memrchr */
/*
 * fuzz_jwt: bytes as a token to ws_jwt_verify, and bytes as a header and a
 * payload signed with the right key, so the fuzzer gets past the HMAC into
 * the header and claims readers.
 *
 * Input: byte 0's low bit picks the mode. 0: the rest is a token. 1: the
 * rest is HEADER NUL PAYLOAD (any bytes), base64url-encoded and signed with
 * the fuzzer's key. Byte 1 also sets the leeway (0..255 s).
 *
 * Checks: a signed token is never refused for its signature or length
 * (unless it is over WS_JWT_MAX_TOKEN); a token the module accepts has a
 * header whose alg is exactly "HS256" and no crit (read again here with
 * jansson), a sub of 1..WS_JWT_SUB_MAX bytes without NUL, at most
 * WS_JWT_ROOMS_MAX room patterns each 1..WS_JWT_ROOM_MAX bytes, an info of
 * at most WS_JWT_INFO_MAX bytes of ASCII without control bytes (DEL may
 * stay: JSON allows it) that parses back as a JSON object, and an
 * exp in the future of `now - leeway`; a token whose signature is flipped
 * never verifies; and ws_jwt_sign's tokens of the payload verify the same.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!";
#define NOW 1700000000

static void
require(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_jwt: invariant broken: %s\n", what);
		abort();
	}
}

static size_t
b64url(const uint8_t *s, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
			     (i + 2 < n ? s[i + 2] : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = a[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	return o;
}

/* The header of an accepted token, decoded and read again independently. */
static void
check_header(const char *tok, size_t n)
{
	const char *dot = memchr(tok, '.', n);
	require(dot != NULL, "accepted token without a dot");
	size_t hn = (size_t)(dot - tok);
	uint8_t *h = malloc(hn + 4);
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < hn; i++) {
		const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		const char *p = strchr(a, tok[i]);
		require(p && tok[i], "accepted header outside base64url");
		acc = (acc << 6 | (uint32_t)(p - a)) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			h[o++] = (uint8_t)(acc >> bits);
		}
	}
	json_t *j = json_loadb((const char *)h, o, 0, NULL);
	require(json_is_object(j), "accepted header not an object");
	require(json_is_string(json_object_get(j, "alg")) &&
			strcmp(json_string_value(json_object_get(j, "alg")), "HS256") == 0,
		"accepted alg other than HS256");
	require(!json_object_get(j, "crit"), "accepted crit");
	json_decref(j);
	free(h);
}

static void
check_claims(const struct ws_jwt_claims *c, uint32_t leeway)
{
	size_t sl = strnlen(c->sub, sizeof(c->sub));
	require(sl >= 1 && sl <= WS_JWT_SUB_MAX, "sub length");
	require(c->exp + (int64_t)leeway > NOW, "accepted an expired token");
	require(c->nrooms <= WS_JWT_ROOMS_MAX, "too many rooms");
	require(c->has_rooms || c->nrooms == 0, "rooms without has_rooms");
	for (uint32_t i = 0; i < c->nrooms; i++) {
		size_t rl = strnlen(c->rooms[i], sizeof(c->rooms[i]));
		require(rl >= 1 && rl <= WS_JWT_ROOM_MAX, "room pattern length");
		/* a pattern allows itself */
		require(ws_jwt_room_allowed(c, c->rooms[i]), "pattern does not allow itself");
	}
	require(c->info_len <= WS_JWT_INFO_MAX && strlen(c->info) == c->info_len, "info length");
	if (c->info_len) {
		json_t *j = json_loadb(c->info, c->info_len, JSON_REJECT_DUPLICATES, NULL);
		require(json_is_object(j), "info does not parse back as an object");
		json_decref(j);
		for (size_t i = 0; i < c->info_len; i++)
			require((uint8_t)c->info[i] >= 0x20 && (uint8_t)c->info[i] < 0x80,
				"info not ASCII without controls");
	}
	(void)ws_jwt_room_allowed(c, "lobby");
}

static struct ws_jwt_key *
key(void)
{
	static struct ws_jwt_key *k;
	if (!k) {
		char err[128];
		k = ws_jwt_key_create(secret, sizeof(secret) - 1, err, sizeof(err));
		require(k != NULL, "key");
	}
	return k;
}

static void
verify_checked(const char *tok, size_t n, uint32_t leeway, bool signed_by_us)
{
	struct ws_jwt_claims c;
	enum ws_jwt_status s = ws_jwt_verify(key(), tok, n, NOW, leeway, &c);
	if (signed_by_us && n <= WS_JWT_MAX_TOKEN)
		require(s != WS_JWT_SIGNATURE && s != WS_JWT_TOO_LONG, "own signature refused");
	if (s != WS_JWT_OK)
		return;
	check_header(tok, n);
	check_claims(&c, leeway);
	/* the same token with its signature's first char changed never verifies */
	char *t = malloc(n);
	memcpy(t, tok, n);
	char *sig = memrchr(t, '.', n);
	require(sig && sig + 1 < t + n, "accepted token without a signature");
	sig[1] = sig[1] == 'A' ? 'B' : 'A';
	require(ws_jwt_verify(key(), t, n, NOW, leeway, &c) == WS_JWT_SIGNATURE,
		"a changed signature verified");
	free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	bool forge = data[0] & 1;
	uint32_t leeway = data[1];
	data += 2;
	size -= 2;
	if (!forge) {
		verify_checked((const char *)data, size, leeway, false);
		return 0;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t hn = nul ? (size_t)(nul - data) : size;
	const uint8_t *p = nul ? nul + 1 : data + size;
	size_t pn = nul ? size - hn - 1 : 0;
	char *tok = malloc(hn * 2 + pn * 2 + 64);
	size_t o = b64url(data, hn, tok);
	tok[o++] = '.';
	o += b64url(p, pn, tok + o);
	unsigned char mac[32];
	unsigned ml = 0;
	HMAC(EVP_sha256(), secret, (int)sizeof(secret) - 1, (unsigned char *)tok, o, mac, &ml);
	tok[o++] = '.';
	o += b64url(mac, ml, tok + o);
	verify_checked(tok, o, leeway, true);
	free(tok);

	/* the module's own signer: its tokens are never refused for their signature */
	char out[WS_JWT_MAX_TOKEN + 1];
	size_t n = ws_jwt_sign(key(), (const char *)p, pn, out, sizeof(out));
	if (n)
		verify_checked(out, n, leeway, true);
	return 0;
}
