/*
 * jwt: HS256 JSON Web Tokens (RFC 7519, JWS compact form of RFC 7515)
 * verified against one shared secret, for identities a client cannot pick.
 *
 * Why not a JWT library: Debian 12's libjwt (1.10.2) compares signatures
 * with strcmp on base64 text (the timing leak of CVE-2024-25189's class),
 * accepts "alg":"none" unless each caller remembers to pin the algorithm,
 * and parses with jansson anyway. What this module needs is small: OpenSSL
 * (already linked through libwebsockets) computes the HMAC-SHA256 and
 * CRYPTO_memcmp compares it in constant time; jansson parses the two JSON
 * parts with duplicate keys refused; the rest is a strict base64url decoder
 * and a claims reader with a bound on every size. It is fuzzed
 * (tests/fuzz/fuzz_jwt.c) and unit-tested with RFC vectors and hostile
 * tokens (tests/unit/test_jwt.c).
 *
 * What is accepted: three base64url parts without padding, canonical
 * (unused bits zero); a header object whose "alg" is exactly "HS256", whose
 * "typ", if present, is "JWT", and which has no "crit"; the signature
 * checked before the payload is parsed; a payload object with "sub" (a
 * string, 1-255 bytes), "exp" (a NumericDate), optional "nbf" and "iat"
 * (NumericDates), optional "rooms" (an array of at most WS_JWT_ROOMS_MAX
 * strings of 1-WS_JWT_ROOM_MAX bytes) and optional "info" (an object, at
 * most WS_JWT_INFO_MAX bytes as compact JSON). Other claims are ignored.
 */
#ifndef WS_JWT_H
#define WS_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* A token longer than this is refused before any decoding. */
#define WS_JWT_MAX_TOKEN 4096
/* The secret: at least 32 bytes (HS256's output size, RFC 7518 3.2), at most 4096. */
#define WS_JWT_SECRET_MIN 32
#define WS_JWT_SECRET_MAX 4096
#define WS_JWT_SUB_MAX 255
#define WS_JWT_ROOMS_MAX 32
#define WS_JWT_ROOM_MAX 128
#define WS_JWT_INFO_MAX 512

enum ws_jwt_status {
	WS_JWT_OK = 0,
	WS_JWT_MISSING,   /* no token in the request */
	WS_JWT_TOO_LONG,  /* over WS_JWT_MAX_TOKEN */
	WS_JWT_MALFORMED, /* not three canonical base64url parts of JSON objects */
	WS_JWT_ALG,       /* alg other than HS256, a typ other than JWT, or crit */
	WS_JWT_SIGNATURE, /* the HMAC does not match */
	WS_JWT_CLAIMS,    /* sub/exp missing, or a claim of the wrong type or size */
	WS_JWT_EXPIRED,   /* now >= exp + leeway */
	WS_JWT_NOT_YET,   /* now + leeway < nbf */
};

/* A verified token's claims. Embedded by the caller; nothing to free. */
struct ws_jwt_claims {
	char sub[WS_JWT_SUB_MAX + 1];
	int64_t exp;     /* seconds since the epoch, fractions dropped */
	bool has_rooms;  /* without "rooms" every room is allowed */
	uint32_t nrooms; /* with "rooms":[] none is */
	char rooms[WS_JWT_ROOMS_MAX][WS_JWT_ROOM_MAX + 1];
	size_t info_len; /* 0: no "info"; else info holds compact JSON of an object */
	char info[WS_JWT_INFO_MAX + 1];
};

struct ws_jwt_key;

/*
 * A key for HS256 from secret[0..n) (copied; the caller may wipe its own).
 * NULL with a reason in err when the secret is outside
 * [WS_JWT_SECRET_MIN, WS_JWT_SECRET_MAX] or OpenSSL fails. Everything
 * OpenSSL loads lazily is loaded here, so verifying after the server has
 * confined itself opens no file.
 */
struct ws_jwt_key *ws_jwt_key_create(const void *secret, size_t n, char *err, size_t errlen);

/*
 * Reads the secret from a file: its bytes, less one trailing "\n" or
 * "\r\n". The file must be a regular file. *world_readable tells whether
 * its mode lets group or others read it (the caller warns). NULL with a
 * reason in err otherwise (see ws_jwt_key_create).
 */
struct ws_jwt_key *ws_jwt_key_read_file(const char *path, bool *world_readable, char *err,
					size_t errlen);

/* Frees the key and wipes the secret; NULL is a no-op. */
void ws_jwt_key_destroy(struct ws_jwt_key *key);

/*
 * Verifies tok[0..n) at wall-clock time now (seconds), allowing leeway
 * seconds of clock skew on exp and nbf. Fills *out only on WS_JWT_OK.
 */
enum ws_jwt_status ws_jwt_verify(const struct ws_jwt_key *key, const char *tok, size_t n,
				 int64_t now, uint32_t leeway, struct ws_jwt_claims *out);

/*
 * Mints a token for the JSON text payload[0..n) (not checked) with the
 * header {"alg":"HS256","typ":"JWT"}, into out (cap bytes, NUL-terminated).
 * Returns its length, or 0 when it does not fit or the HMAC failed. For
 * tests, fuzzing and tools: servers only verify.
 */
size_t ws_jwt_sign(const struct ws_jwt_key *key, const char *payload, size_t n, char *out,
		   size_t cap);

/*
 * Whether the claims allow this room: no "rooms" claim allows all; else a
 * pattern equal to the name, or ending in '*' with the rest a prefix of it
 * ("*" alone: any room). A '*' anywhere else is an ordinary byte.
 */
bool ws_jwt_room_allowed(const struct ws_jwt_claims *claims, const char *room);

/*
 * Finds the token where the shared token goes: "Authorization: Bearer T",
 * else "?token=T" (URL-decoded). Copies it into out (cap bytes, NUL-ended).
 * WS_JWT_OK, WS_JWT_MISSING, WS_JWT_TOO_LONG when a Bearer token does not
 * fit, or WS_JWT_MALFORMED for a ?token= that does not fit or decode.
 */
enum ws_jwt_status ws_jwt_from_request(const struct ws_http_request *req, char *out, size_t cap);

/* One line for a client or a log, e.g. "token expired". */
const char *ws_jwt_status_text(enum ws_jwt_status s);

#endif
