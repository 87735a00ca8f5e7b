/*
 * jwt: HS256 tokens, with RFC 7515 / 7519 vectors and hostile tokens.
 */
#include "jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
#define NOW 1700000000
#define LATER "1800000000"

static struct ws_jwt_key *
test_key(void)
{
	char err[128];
	struct ws_jwt_key *k = ws_jwt_key_create(secret, sizeof(secret) - 1, err, sizeof(err));
	CHECK(k != NULL);
	return k;
}

static size_t
b64url(const void *p, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *s = p;
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
	out[o] = '\0';
	return o;
}

/* header.payload.signature with any header, signed with key bytes k (the test's own HMAC). */
static char *
forge(const char *header, const char *payload, const void *k, size_t kn)
{
	size_t hn = strlen(header), pn = strlen(payload);
	char *t = malloc(hn * 2 + pn * 2 + 64);
	size_t o = b64url(header, hn, t);
	t[o++] = '.';
	o += b64url(payload, pn, t + o);
	unsigned char mac[32];
	unsigned ml = 0;
	HMAC(EVP_sha256(), k, (int)kn, (unsigned char *)t, o, mac, &ml);
	t[o++] = '.';
	b64url(mac, ml, t + o);
	return t;
}

static char *
forge_hs(const char *header, const char *payload)
{
	return forge(header, payload, secret, sizeof(secret) - 1);
}

static enum ws_jwt_status
verify(struct ws_jwt_key *k, const char *tok, struct ws_jwt_claims *c)
{
	struct ws_jwt_claims scratch;
	return ws_jwt_verify(k, tok, strlen(tok), NOW, 0, c ? c : &scratch);
}

/* payload signed with the usual header; the token freed here */
static enum ws_jwt_status
verify_payload(struct ws_jwt_key *k, const char *payload, struct ws_jwt_claims *c)
{
	char *t = forge_hs("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload);
	enum ws_jwt_status s = verify(k, t, c);
	free(t);
	return s;
}

static void
rfc7515_vector(void)
{
	/* RFC 7515 appendix A.1: its key, its token, its signature */
	static const unsigned char k[] = {
		0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77,
		0x7b, 0xa6, 0x8f, 0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f,
		0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf, 0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47,
		0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22, 0x3d, 0x2e, 0x21, 0x72,
		0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3,
	};
	static const char tok[] =
		"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
		"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb2"
		"90Ijp0cnVlfQ."
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	char err[128];
	struct ws_jwt_key *key = ws_jwt_key_create(k, sizeof(k), err, sizeof(err));
	CHECK(key != NULL);
	struct ws_jwt_claims c;
	/* the signature holds; the example has no "sub", so its claims are not ours */
	CHECK_INT(ws_jwt_verify(key, tok, strlen(tok), 1300819379, 0, &c), WS_JWT_CLAIMS);
	char bad[sizeof(tok)];
	memcpy(bad, tok, sizeof(tok));
	bad[sizeof(tok) - 2] = bad[sizeof(tok) - 2] == 'k' ? 'j' : 'k';
	CHECK_INT(ws_jwt_verify(key, bad, strlen(bad), 1300819379, 0, &c), WS_JWT_SIGNATURE);
	/* one payload byte changed: signature */
	memcpy(bad, tok, sizeof(tok));
	bad[50] = bad[50] == 'A' ? 'B' : 'A';
	CHECK_INT(ws_jwt_verify(key, bad, strlen(bad), 1300819379, 0, &c), WS_JWT_SIGNATURE);
	ws_jwt_key_destroy(key);
}

static void
sign_roundtrip(void)
{
	struct ws_jwt_key *k = test_key();
	static const char p[] = "{\"sub\":\"alice\",\"exp\":" LATER "}";
	char tok[512];
	size_t n = ws_jwt_sign(k, p, sizeof(p) - 1, tok, sizeof(tok));
	CHECK(n > 0);
	CHECK_UINT(n, strlen(tok));
	struct ws_jwt_claims c;
	CHECK_INT(ws_jwt_verify(k, tok, n, NOW, 0, &c), WS_JWT_OK);
	CHECK_STR(c.sub, "alice");
	CHECK_INT(c.exp, 1800000000);
	/* the test's own HMAC (OpenSSL's one-shot) agrees with the module's */
	char *t = forge_hs("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p);
	CHECK_STR(t, tok);
	free(t);
	/* a token that does not fit is not written */
	CHECK_UINT(ws_jwt_sign(k, p, sizeof(p) - 1, tok, 20), 0);
	ws_jwt_key_destroy(k);
}

static void
valid_claims(void)
{
	struct ws_jwt_key *k = test_key();
	struct ws_jwt_claims c;
	CHECK_INT(verify_payload(k,
				 "{\"sub\":\"bob\",\"exp\":" LATER ",\"nbf\":1600000000,"
				 "\"iat\":1600000000,\"rooms\":[\"lobby\",\"team-*\"],"
				 "\"info\":{\"name\":\"Bob \\u00e9\",\"color\":\"#f00\"},"
				 "\"aud\":\"ignored\",\"other\":[1,2,3]}",
				 &c),
		  WS_JWT_OK);
	CHECK_STR(c.sub, "bob");
	CHECK(c.has_rooms);
	CHECK_UINT(c.nrooms, 2);
	CHECK_STR(c.rooms[0], "lobby");
	CHECK_STR(c.rooms[1], "team-*");
	/* info comes back as compact ASCII JSON */
	CHECK_STR(c.info, "{\"name\":\"Bob \\u00E9\",\"color\":\"#f00\"}");
	CHECK_UINT(c.info_len, strlen(c.info));
	/* without rooms and info */
	CHECK_INT(verify_payload(k, "{\"sub\":\"x\",\"exp\":" LATER "}", &c), WS_JWT_OK);
	CHECK(!c.has_rooms);
	CHECK_UINT(c.info_len, 0);
	CHECK_STR(c.info, "");
	/* no typ is fine, a lower-case typ too (RFC 7515 4.1.9), kid ignored */
	char *t = forge_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"exp\":" LATER "}");
	CHECK_INT(verify(k, t, NULL), WS_JWT_OK);
	free(t);
	t = forge_hs("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}",
		     "{\"sub\":\"x\",\"exp\":" LATER "}");
	CHECK_INT(verify(k, t, NULL), WS_JWT_OK);
	free(t);
	ws_jwt_key_destroy(k);
}

static void
alg_refused(void)
{
	struct ws_jwt_key *k = test_key();
	static const char p[] = "{\"sub\":\"mallory\",\"exp\":" LATER "}";
	static const char *const headers[] = {
		"{\"alg\":\"none\"}",
		"{\"alg\":\"None\",\"typ\":\"JWT\"}",
		"{\"alg\":\"hs256\"}",
		"{\"alg\":\"HS512\"}",
		"{\"alg\":\"HS384\"}",
		"{\"alg\":\"RS256\"}",
		"{\"alg\":\"ES256\"}",
		"{\"alg\":\"HS256 \"}",
		"{\"alg\":\"\"}",
		"{\"alg\":null}",
		"{\"alg\":256}",
		"{\"alg\":[\"HS256\"]}",
		"{\"typ\":\"JWT\"}",
		"{}",
		"{\"alg\":\"HS256\",\"typ\":\"JWE\"}",
		"{\"alg\":\"HS256\",\"typ\":1}",
		"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
		"{\"alg\":\"HS256\",\"crit\":[]}",
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		/* correctly signed with the server's secret, still refused */
		char *t = forge_hs(headers[i], p);
		if (!CHECK_INT(verify(k, t, NULL), WS_JWT_ALG))
			fprintf(stderr, "  header: %s\n", headers[i]);
		free(t);
	}
	/* the classic: alg none with an empty signature */
	char tok[256], h[64], b[128];
	b64url("{\"alg\":\"none\"}", 14, h);
	b64url(p, sizeof(p) - 1, b);
	snprintf(tok, sizeof(tok), "%s.%s.", h, b);
	CHECK_INT(verify(k, tok, NULL), WS_JWT_ALG);
	/* HS256 with an empty or short signature */
	b64url("{\"alg\":\"HS256\"}", 15, h);
	snprintf(tok, sizeof(tok), "%s.%s.", h, b);
	CHECK_INT(verify(k, tok, NULL), WS_JWT_SIGNATURE);
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", h, b);
	CHECK_INT(verify(k, tok, NULL), WS_JWT_SIGNATURE);
	ws_jwt_key_destroy(k);
}

static void
alg_confusion(void)
{
	struct ws_jwt_key *k = test_key();
	static const char p[] = "{\"sub\":\"mallory\",\"exp\":" LATER "}";
	/* signed with another secret: one byte off, shorter, empty */
	char other[sizeof(secret)];
	memcpy(other, secret, sizeof(secret));
	other[0] ^= 1;
	char *t = forge("{\"alg\":\"HS256\"}", p, other, sizeof(other) - 1);
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	free(t);
	t = forge("{\"alg\":\"HS256\"}", p, secret, 31);
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	free(t);
	t = forge("{\"alg\":\"HS256\"}", p, "", 0);
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	free(t);
	/* a header swapped after signing (alg kept, typ changed) breaks the signature */
	char *a = forge_hs("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p);
	char *b = forge_hs("{\"alg\":\"HS256\"}", p);
	char *sig_a = strrchr(a, '.'), *sig_b = strrchr(b, '.');
	CHECK(strcmp(sig_a, sig_b) != 0);
	size_t bl = (size_t)(sig_b - b);
	char mix[512];
	snprintf(mix, sizeof(mix), "%.*s%s", (int)bl, b, sig_a);
	CHECK_INT(verify(k, mix, NULL), WS_JWT_SIGNATURE);
	free(a);
	free(b);
	/* keys outside the bounds are refused */
	char err[128];
	CHECK(ws_jwt_key_create(secret, 31, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "32") != NULL);
	char *big = calloc(1, WS_JWT_SECRET_MAX + 1);
	CHECK(ws_jwt_key_create(big, WS_JWT_SECRET_MAX + 1, err, sizeof(err)) == NULL);
	struct ws_jwt_key *edge = ws_jwt_key_create(big, WS_JWT_SECRET_MAX, err, sizeof(err));
	CHECK(edge != NULL);
	ws_jwt_key_destroy(edge);
	free(big);
	ws_jwt_key_destroy(NULL);
	ws_jwt_key_destroy(k);
}

static void
bad_base64(void)
{
	struct ws_jwt_key *k = test_key();
	char *good = forge_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":" LATER "}");
	CHECK_INT(verify(k, good, NULL), WS_JWT_OK);
	char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
	char t[1024];
	/* padding, the standard alphabet, spaces, a fourth part, a missing part */
	snprintf(t, sizeof(t), "%.*s=%s", (int)(d1 - good), good, d1);
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	snprintf(t, sizeof(t), "%s=", good);
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	snprintf(t, sizeof(t), "%s.", good);
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	snprintf(t, sizeof(t), "%.*s", (int)(d2 - good), good);
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	snprintf(t, sizeof(t), ".%s", d1 + 1);
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	snprintf(t, sizeof(t), " %s", good);
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	CHECK_INT(verify(k, "..", NULL), WS_JWT_MALFORMED);
	CHECK_INT(verify(k, "a.b.c", NULL), WS_JWT_MALFORMED);
	CHECK_INT(verify(k, "", NULL), WS_JWT_MISSING);
	CHECK_INT(verify(k, "no dots at all", NULL), WS_JWT_MALFORMED);
	/* '+' and '/' are base64, not base64url */
	strcpy(t, good);
	t[2] = '+';
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	t[2] = '/';
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	/* the payload with a '+': the signature is checked first */
	strcpy(t, good);
	t[d1 - good + 2] = '+';
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	/* non-canonical: the signature's last char with its unused low bits set */
	strcpy(t, good);
	char *last = t + strlen(t) - 1;
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int v = (int)(strchr(alpha, *last) - alpha);
	CHECK((v & 3) == 0);
	*last = alpha[v | 1];
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	/* a header of length 4n+1 cannot be base64 */
	CHECK_INT(verify(k, "eyJhb.e30.AAAA", NULL), WS_JWT_MALFORMED);
	/* a header that is not JSON, or not an object */
	char h[64];
	char *nj = forge_hs("not json", "{}");
	CHECK_INT(verify(k, nj, NULL), WS_JWT_MALFORMED);
	free(nj);
	nj = forge_hs("[\"alg\",\"HS256\"]", "{}");
	CHECK_INT(verify(k, nj, NULL), WS_JWT_MALFORMED);
	free(nj);
	b64url("{\"alg\":\"HS256\"} x", 17, h);
	snprintf(t, sizeof(t), "%s%s", h, d1);
	CHECK_INT(verify(k, t, NULL), WS_JWT_MALFORMED);
	free(good);
	ws_jwt_key_destroy(k);
}

static void
huge_tokens(void)
{
	struct ws_jwt_key *k = test_key();
	size_t n = WS_JWT_MAX_TOKEN + 1;
	char *t = malloc(n + 1);
	memset(t, 'A', n);
	t[n] = '\0';
	t[10] = '.';
	t[20] = '.';
	CHECK_INT(ws_jwt_verify(k, t, n, NOW, 0, &(struct ws_jwt_claims){ 0 }), WS_JWT_TOO_LONG);
	CHECK_INT(ws_jwt_verify(k, t, SIZE_MAX, NOW, 0, &(struct ws_jwt_claims){ 0 }),
		  WS_JWT_TOO_LONG);
	free(t);
	/* a payload that fills the bound: signed, parsed, its claims read */
	size_t pad = 2800;
	char *p = malloc(pad + 128);
	int o = snprintf(p, 128, "{\"sub\":\"a\",\"exp\":%s,\"pad\":\"", LATER);
	memset(p + o, 'x', pad);
	strcpy(p + o + pad, "\"}");
	char tok[WS_JWT_MAX_TOKEN + 8];
	size_t tn = ws_jwt_sign(k, p, strlen(p), tok, sizeof(tok));
	CHECK(tn > 3700 && tn <= WS_JWT_MAX_TOKEN);
	CHECK_INT(ws_jwt_verify(k, tok, tn, NOW, 0, &(struct ws_jwt_claims){ 0 }), WS_JWT_OK);
	/* one more kilobyte does not fit */
	p = realloc(p, pad + 1200);
	memset(p + o, 'x', pad + 1000);
	strcpy(p + o + pad + 1000, "\"}");
	CHECK_UINT(ws_jwt_sign(k, p, strlen(p), tok, sizeof(tok)), 0);
	free(p);
	ws_jwt_key_destroy(k);
}

static void
json_hostile(void)
{
	struct ws_jwt_key *k = test_key();
	/* deep nesting within the size bound: parsed (jansson stops at depth 2048) */
	size_t depth = 1300;
	char *p = malloc(depth * 2 + 128);
	int o = snprintf(p, 128, "{\"sub\":\"a\",\"exp\":%s,\"x\":", LATER);
	memset(p + o, '[', depth);
	memset(p + o + depth, ']', depth);
	strcpy(p + o + 2 * depth, "}");
	CHECK_INT(verify_payload(k, p, NULL), WS_JWT_OK);
	/* jansson's own depth limit (2048) is beyond WS_JWT_MAX_TOKEN's reach */
	free(p);
	static const char *const bad[] = {
		"[]",
		"\"sub\"",
		"1",
		"null",
		"",
		"{",
		"{\"sub\":\"a\",\"exp\":" LATER "} x",
		"{\"sub\":\"a\",\"sub\":\"admin\",\"exp\":" LATER "}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"exp\":" LATER "}",
		"{\"sub\":\"a\\u0000b\",\"exp\":" LATER "}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"rooms\":[\"a\\u0000b\"]}",
		"{\"sub\":\"\xff\",\"exp\":" LATER "}",
		"{\"sub\":\"a\",\"exp\":" LATER ",}",
		"{'sub':'a'}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!CHECK_INT(verify_payload(k, bad[i], NULL), WS_JWT_MALFORMED))
			fprintf(stderr, "  payload: %s\n", bad[i]);
	}
	/* a deeply nested header: parsed within the bound, and still needs its alg */
	size_t hd = 1000;
	char *h = malloc(hd * 2 + 64);
	o = snprintf(h, 64, "{\"x\":");
	memset(h + o, '[', hd);
	memset(h + o + hd, ']', hd);
	strcpy(h + o + 2 * hd, "}");
	char *t = forge_hs(h, "{\"sub\":\"a\",\"exp\":" LATER "}");
	CHECK_INT(verify(k, t, NULL), WS_JWT_ALG);
	free(t);
	free(h);
	ws_jwt_key_destroy(k);
}

static void
wrong_types(void)
{
	struct ws_jwt_key *k = test_key();
	char long_sub[400], long_room[300], big_info[700], many_rooms[600];
	snprintf(long_sub, sizeof(long_sub), "{\"sub\":\"%0256d\",\"exp\":%s}", 0, LATER);
	snprintf(long_room, sizeof(long_room), "{\"sub\":\"a\",\"exp\":%s,\"rooms\":[\"%0129d\"]}",
		 LATER, 0);
	snprintf(big_info, sizeof(big_info),
		 "{\"sub\":\"a\",\"exp\":%s,\"info\":{\"n\":\"%0510d\"}}", LATER, 0);
	int o = snprintf(many_rooms, sizeof(many_rooms), "{\"sub\":\"a\",\"exp\":%s,\"rooms\":[",
			 LATER);
	for (int i = 0; i < WS_JWT_ROOMS_MAX + 1; i++)
		o += snprintf(many_rooms + o, sizeof(many_rooms) - (size_t)o, "%s\"r%d\"",
			      i ? "," : "", i);
	snprintf(many_rooms + o, sizeof(many_rooms) - (size_t)o, "]}");
	const char *const bad[] = {
		"{\"exp\":" LATER "}",
		"{\"sub\":\"\",\"exp\":" LATER "}",
		"{\"sub\":1,\"exp\":" LATER "}",
		"{\"sub\":null,\"exp\":" LATER "}",
		"{\"sub\":[\"a\"],\"exp\":" LATER "}",
		long_sub,
		"{\"sub\":\"a\"}",
		"{\"sub\":\"a\",\"exp\":\"" LATER "\"}",
		"{\"sub\":\"a\",\"exp\":null}",
		"{\"sub\":\"a\",\"exp\":true}",
		"{\"sub\":\"a\",\"exp\":-1}",
		"{\"sub\":\"a\",\"exp\":1e300}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"nbf\":\"0\"}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"iat\":{}}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"rooms\":\"lobby\"}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"rooms\":[1]}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"rooms\":[\"\"]}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"rooms\":{\"lobby\":1}}",
		long_room,
		many_rooms,
		"{\"sub\":\"a\",\"exp\":" LATER ",\"info\":[]}",
		"{\"sub\":\"a\",\"exp\":" LATER ",\"info\":\"Bob\"}",
		big_info,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!CHECK_INT(verify_payload(k, bad[i], NULL), WS_JWT_CLAIMS))
			fprintf(stderr, "  payload: %.80s\n", bad[i]);
	}
	/* at the bounds: accepted */
	char ok[700];
	struct ws_jwt_claims c;
	snprintf(ok, sizeof(ok), "{\"sub\":\"%0255d\",\"exp\":%s}", 0, LATER);
	CHECK_INT(verify_payload(k, ok, &c), WS_JWT_OK);
	CHECK_UINT(strlen(c.sub), 255);
	snprintf(ok, sizeof(ok), "{\"sub\":\"a\",\"exp\":%s,\"rooms\":[\"%0128d\"]}", LATER, 0);
	CHECK_INT(verify_payload(k, ok, &c), WS_JWT_OK);
	/* {"n":"..."} is 8 bytes around the value: 504 + 8 = 512 */
	snprintf(ok, sizeof(ok), "{\"sub\":\"a\",\"exp\":%s,\"info\":{\"n\":\"%0504d\"}}", LATER,
		 0);
	CHECK_INT(verify_payload(k, ok, &c), WS_JWT_OK);
	CHECK_UINT(c.info_len, WS_JWT_INFO_MAX);
	snprintf(ok, sizeof(ok), "{\"sub\":\"a\",\"exp\":%s,\"info\":{\"n\":\"%0505d\"}}", LATER,
		 0);
	CHECK_INT(verify_payload(k, ok, &c), WS_JWT_CLAIMS);
	/* an escaped non-ASCII info can grow past the bound when written as ASCII */
	snprintf(
		ok, sizeof(ok), "{\"sub\":\"a\",\"exp\":%s,\"info\":{\"n\":\"%s\"}}", LATER,
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	CHECK_INT(verify_payload(k, ok, &c), WS_JWT_OK);
	CHECK(strstr(c.info, "\\u00E9") != NULL);
	snprintf(ok, sizeof(ok), "{\"sub\":\"a\",\"exp\":%s,\"rooms\":[]}", LATER);
	CHECK_INT(verify_payload(k, ok, &c), WS_JWT_OK);
	CHECK(c.has_rooms);
	CHECK_UINT(c.nrooms, 0);
	ws_jwt_key_destroy(k);
}

static enum ws_jwt_status
at(struct ws_jwt_key *k, const char *payload, int64_t now, uint32_t leeway)
{
	char *t = forge_hs("{\"alg\":\"HS256\"}", payload);
	struct ws_jwt_claims c;
	enum ws_jwt_status s = ws_jwt_verify(k, t, strlen(t), now, leeway, &c);
	free(t);
	return s;
}

static void
exp_edges(void)
{
	struct ws_jwt_key *k = test_key();
	static const char p[] = "{\"sub\":\"a\",\"exp\":1000}";
	CHECK_INT(at(k, p, 999, 0), WS_JWT_OK);
	/* RFC 7519 4.1.4: the current time must be before exp */
	CHECK_INT(at(k, p, 1000, 0), WS_JWT_EXPIRED);
	CHECK_INT(at(k, p, 1001, 0), WS_JWT_EXPIRED);
	CHECK_INT(at(k, p, 1029, 30), WS_JWT_OK);
	CHECK_INT(at(k, p, 1030, 30), WS_JWT_EXPIRED);
	/* fractions are dropped: 1000.9 acts as 1000 */
	CHECK_INT(at(k, "{\"sub\":\"a\",\"exp\":1000.9}", 999, 0), WS_JWT_OK);
	CHECK_INT(at(k, "{\"sub\":\"a\",\"exp\":1000.9}", 1000, 0), WS_JWT_EXPIRED);
	CHECK_INT(at(k, "{\"sub\":\"a\",\"exp\":0}", 0, 0), WS_JWT_EXPIRED);
	/* the largest NumericDate accepted, and one past it */
	CHECK_INT(at(k, "{\"sub\":\"a\",\"exp\":9007199254740992}", NOW, 0), WS_JWT_OK);
	CHECK_INT(at(k, "{\"sub\":\"a\",\"exp\":9007199254740994}", NOW, 0), WS_JWT_CLAIMS);
	/* nbf: not before, with the same leeway */
	static const char q[] = "{\"sub\":\"a\",\"exp\":5000,\"nbf\":2000}";
	CHECK_INT(at(k, q, 1999, 0), WS_JWT_NOT_YET);
	CHECK_INT(at(k, q, 2000, 0), WS_JWT_OK);
	CHECK_INT(at(k, q, 1970, 30), WS_JWT_OK);
	CHECK_INT(at(k, q, 1969, 30), WS_JWT_NOT_YET);
	/* a wrong claim is reported as such, expired or not */
	CHECK_INT(at(k, "{\"sub\":1,\"exp\":1000}", 5000, 0), WS_JWT_CLAIMS);
	/* iat is read, not judged */
	CHECK_INT(at(k, "{\"sub\":\"a\",\"exp\":5000,\"iat\":4999999}", 1000, 0), WS_JWT_OK);
	ws_jwt_key_destroy(k);
}

static void
rooms_patterns(void)
{
	struct ws_jwt_claims c = { .has_rooms = true, .nrooms = 4 };
	strcpy(c.rooms[0], "lobby");
	strcpy(c.rooms[1], "team-*");
	strcpy(c.rooms[2], "a*b");
	strcpy(c.rooms[3], "x.y*");
	CHECK(ws_jwt_room_allowed(&c, "lobby"));
	CHECK(!ws_jwt_room_allowed(&c, "lobby2"));
	CHECK(!ws_jwt_room_allowed(&c, "lobb"));
	CHECK(!ws_jwt_room_allowed(&c, "Lobby"));
	CHECK(ws_jwt_room_allowed(&c, "team-"));
	CHECK(ws_jwt_room_allowed(&c, "team-red"));
	CHECK(!ws_jwt_room_allowed(&c, "team"));
	CHECK(!ws_jwt_room_allowed(&c, "xteam-red"));
	/* a '*' inside a pattern is a literal byte */
	CHECK(!ws_jwt_room_allowed(&c, "ab"));
	CHECK(!ws_jwt_room_allowed(&c, "axb"));
	CHECK(ws_jwt_room_allowed(&c, "x.y"));
	CHECK(ws_jwt_room_allowed(&c, "x.y.z"));
	CHECK(!ws_jwt_room_allowed(&c, "x-y"));
	struct ws_jwt_claims all = { .has_rooms = true, .nrooms = 1 };
	strcpy(all.rooms[0], "*");
	CHECK(ws_jwt_room_allowed(&all, "anything"));
	struct ws_jwt_claims none = { .has_rooms = true, .nrooms = 0 };
	CHECK(!ws_jwt_room_allowed(&none, "lobby"));
	struct ws_jwt_claims absent = { .has_rooms = false };
	CHECK(ws_jwt_room_allowed(&absent, "lobby"));
}

static enum ws_jwt_status
from(const char *target, const char *headers, char *out, size_t cap)
{
	char buf[8192];
	struct ws_http_request r;
	int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n", target, headers);
	if (!CHECK(n > 0 && (size_t)n < sizeof(buf)) || !CHECK(ws_http_parse(buf, (size_t)n, &r)))
		return WS_JWT_MISSING;
	return ws_jwt_from_request(&r, out, cap);
}

static void
from_request(void)
{
	char t[64];
	CHECK_INT(from("/?id=a", "", t, sizeof(t)), WS_JWT_MISSING);
	CHECK_INT(from("/?token=a.b.c", "", t, sizeof(t)), WS_JWT_OK);
	CHECK_STR(t, "a.b.c");
	CHECK_INT(from("/?token=a%2Eb.c", "", t, sizeof(t)), WS_JWT_OK);
	CHECK_STR(t, "a.b.c");
	CHECK_INT(from("/", "Authorization: Bearer x.y.z\r\n", t, sizeof(t)), WS_JWT_OK);
	CHECK_STR(t, "x.y.z");
	CHECK_INT(from("/", "Authorization: bearer   x.y.z\r\n", t, sizeof(t)), WS_JWT_OK);
	CHECK_STR(t, "x.y.z");
	/* the header wins over the query */
	CHECK_INT(from("/?token=q.q.q", "Authorization: Bearer h.h.h\r\n", t, sizeof(t)),
		  WS_JWT_OK);
	CHECK_STR(t, "h.h.h");
	/* Basic is not ours: the query is read */
	CHECK_INT(from("/?token=q.q.q", "Authorization: Basic Zm9vOmJhcg==\r\n", t, sizeof(t)),
		  WS_JWT_OK);
	CHECK_STR(t, "q.q.q");
	CHECK_INT(from("/?token=", "", t, sizeof(t)), WS_JWT_MISSING);
	CHECK_INT(from("/?token=%zz", "", t, sizeof(t)), WS_JWT_MALFORMED);
	CHECK_INT(from("/?token=a%00b", "", t, sizeof(t)), WS_JWT_MALFORMED);
	CHECK_INT(from("/", "Authorization: Bearer 0123456789\r\n", t, 10), WS_JWT_TOO_LONG);
	CHECK_INT(from("/", "Authorization: Bearer 012345678\r\n", t, 10), WS_JWT_OK);
	CHECK_INT(from("/?token=0123456789", "", t, 10), WS_JWT_MALFORMED);
}

static void
key_file(void)
{
	char dir[] = "/tmp/test_jwt_XXXXXX";
	if (!CHECK(mkdtemp(dir) != NULL))
		return;
	char path[128], err[256];
	bool wr;
	snprintf(path, sizeof(path), "%s/secret", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "%s\n", secret);
	fclose(f);
	chmod(path, 0600);
	struct ws_jwt_key *k = ws_jwt_key_read_file(path, &wr, err, sizeof(err));
	CHECK(k != NULL);
	CHECK(!wr);
	/* the newline is not part of the secret: the test's own tokens verify */
	char *t = forge_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":" LATER "}");
	CHECK_INT(verify(k, t, NULL), WS_JWT_OK);
	ws_jwt_key_destroy(k);
	/* CRLF too, and group/other read bits are reported */
	f = fopen(path, "w");
	fprintf(f, "%s\r\n", secret);
	fclose(f);
	chmod(path, 0644);
	k = ws_jwt_key_read_file(path, &wr, err, sizeof(err));
	CHECK(k != NULL);
	CHECK(wr);
	CHECK_INT(verify(k, t, NULL), WS_JWT_OK);
	ws_jwt_key_destroy(k);
	/* only one newline goes: a second one is part of the secret */
	f = fopen(path, "w");
	fprintf(f, "%s\n\n", secret);
	fclose(f);
	k = ws_jwt_key_read_file(path, &wr, err, sizeof(err));
	CHECK(k != NULL);
	CHECK_INT(verify(k, t, NULL), WS_JWT_SIGNATURE);
	ws_jwt_key_destroy(k);
	free(t);
	/* 31 bytes plus a newline: too short */
	f = fopen(path, "w");
	fprintf(f, "%.31s\n", secret);
	fclose(f);
	CHECK(ws_jwt_key_read_file(path, &wr, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "shorter than 32") != NULL);
	/* empty, too long, a directory, missing */
	f = fopen(path, "w");
	fclose(f);
	CHECK(ws_jwt_key_read_file(path, &wr, err, sizeof(err)) == NULL);
	f = fopen(path, "w");
	for (int i = 0; i < WS_JWT_SECRET_MAX + 10; i++)
		fputc('s', f);
	fclose(f);
	CHECK(ws_jwt_key_read_file(path, &wr, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "longer") != NULL);
	CHECK(ws_jwt_key_read_file(dir, &wr, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "regular") != NULL);
	unlink(path);
	CHECK(ws_jwt_key_read_file(path, &wr, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cannot open") != NULL);
	rmdir(dir);
}

static void
status_text(void)
{
	for (int s = WS_JWT_OK; s <= WS_JWT_NOT_YET; s++) {
		const char *t = ws_jwt_status_text((enum ws_jwt_status)s);
		CHECK(t && *t);
		for (int u = WS_JWT_OK; u < s; u++)
			CHECK(strcmp(t, ws_jwt_status_text((enum ws_jwt_status)u)) != 0);
	}
}

static const struct check_case cases[] = {
	{ "rfc7515-vector", rfc7515_vector },
	{ "sign-roundtrip", sign_roundtrip },
	{ "valid-claims", valid_claims },
	{ "alg-refused", alg_refused },
	{ "alg-confusion", alg_confusion },
	{ "bad-base64", bad_base64 },
	{ "huge-tokens", huge_tokens },
	{ "json-hostile", json_hostile },
	{ "wrong-types", wrong_types },
	{ "exp-edges", exp_edges },
	{ "rooms-patterns", rooms_patterns },
	{ "from-request", from_request },
	{ "key-file", key_file },
	{ "status-text", status_text },
};

CHECK_MAIN(cases)
