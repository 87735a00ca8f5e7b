#include "jwt.h"

#include "auth.h"
#include "base64.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_LEN 32
/* base64url of 32 bytes, unpadded */
#define SIG_B64_LEN 43
/* the largest decoded part: a whole token's worth of base64url */
#define PART_MAX (WS_JWT_MAX_TOKEN / 4 * 3 + 3)

struct ws_jwt_key {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx; /* keyed once; each HMAC works on a copy */
};

static void
set_err(char *err, size_t errlen, const char *what)
{
	if (errlen)
		snprintf(err, errlen, "%s", what);
}

struct ws_jwt_key *
ws_jwt_key_create(const void *secret, size_t n, char *err, size_t errlen)
{
	if (n < WS_JWT_SECRET_MIN) {
		set_err(err, errlen, "JWT secret shorter than 32 bytes");
		return NULL;
	}
	if (n > WS_JWT_SECRET_MAX) {
		set_err(err, errlen, "JWT secret longer than 4096 bytes");
		return NULL;
	}
	struct ws_jwt_key *key = calloc(1, sizeof(*key));
	if (!key) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	/* fetching here loads OpenSSL's providers and config before any sandbox */
	key->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	key->ctx = key->mac ? EVP_MAC_CTX_new(key->mac) : NULL;
	if (!key->ctx || !EVP_MAC_init(key->ctx, secret, n, params)) {
		set_err(err, errlen, "OpenSSL has no HMAC-SHA256");
		ws_jwt_key_destroy(key);
		return NULL;
	}
	return key;
}

struct ws_jwt_key *
ws_jwt_key_read_file(const char *path, bool *world_readable, char *err, size_t errlen)
{
	*world_readable = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errlen)
			snprintf(err, errlen, "cannot open JWT secret file: %s", strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		set_err(err, errlen, "JWT secret file is not a regular file");
		return NULL;
	}
	*world_readable = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
	/* one byte over the cap (plus a CRLF) tells "too long" from "exactly at it" */
	char buf[WS_JWT_SECRET_MAX + 3];
	size_t n = 0;
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			if (errlen)
				snprintf(err, errlen, "cannot read JWT secret file: %s",
					 strerror(errno));
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n && buf[n - 1] == '\n') {
		n--;
		if (n && buf[n - 1] == '\r')
			n--;
	}
	struct ws_jwt_key *key = ws_jwt_key_create(buf, n, err, errlen);
	OPENSSL_cleanse(buf, sizeof(buf));
	return key;
}

void
ws_jwt_key_destroy(struct ws_jwt_key *key)
{
	if (!key)
		return;
	/* freeing the context cleanses the key OpenSSL copied */
	EVP_MAC_CTX_free(key->ctx);
	EVP_MAC_free(key->mac);
	free(key);
}

static bool
hmac(const struct ws_jwt_key *key, const void *data, size_t n, uint8_t out[SIG_LEN])
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(key->ctx);
	size_t outn = 0;
	bool ok = c && EVP_MAC_update(c, data, n) && EVP_MAC_final(c, out, &outn, SIG_LEN) &&
		  outn == SIG_LEN;
	EVP_MAC_CTX_free(c);
	return ok;
}

/* ---- claims ---- */

/* A JSON object from decoded bytes, duplicate keys refused; NULL otherwise. */
static json_t *
object_from(const uint8_t *p, size_t n)
{
	json_t *j = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A NumericDate: a JSON number, 0 to 2^53 seconds. */
static bool
numeric_date(const json_t *v, int64_t *out)
{
	if (!json_is_number(v))
		return false;
	double d = json_number_value(v);
	if (!(d >= 0 && d <= 9007199254740992.0))
		return false;
	*out = (int64_t)d;
	return true;
}

static enum ws_jwt_status
header_ok(const json_t *h)
{
	const json_t *alg = json_object_get(h, "alg");
	/* exact: "none", "hs256", "HS512" or a non-string never pick another path */
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
		return WS_JWT_ALG;
	const json_t *typ = json_object_get(h, "typ");
	if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
		return WS_JWT_ALG;
	/* RFC 7515 4.1.11: extensions we do not understand make the token invalid */
	if (json_object_get(h, "crit"))
		return WS_JWT_ALG;
	return WS_JWT_OK;
}

static enum ws_jwt_status
read_claims(const json_t *p, int64_t now, uint32_t leeway, struct ws_jwt_claims *out)
{
	const json_t *sub = json_object_get(p, "sub");
	if (!json_is_string(sub) || json_string_length(sub) < 1 ||
	    json_string_length(sub) > WS_JWT_SUB_MAX)
		return WS_JWT_CLAIMS;
	int64_t exp, nbf = 0, iat;
	if (!numeric_date(json_object_get(p, "exp"), &exp))
		return WS_JWT_CLAIMS;
	const json_t *v = json_object_get(p, "nbf");
	if (v && !numeric_date(v, &nbf))
		return WS_JWT_CLAIMS;
	const json_t *iv = json_object_get(p, "iat");
	if (iv && !numeric_date(iv, &iat))
		return WS_JWT_CLAIMS;
	const json_t *rooms = json_object_get(p, "rooms");
	if (rooms && (!json_is_array(rooms) || json_array_size(rooms) > WS_JWT_ROOMS_MAX))
		return WS_JWT_CLAIMS;
	const json_t *info = json_object_get(p, "info");
	if (info && !json_is_object(info))
		return WS_JWT_CLAIMS;

	/* the dates last: a token that is wrong in shape says so, expired or not */
	if (now >= exp + (int64_t)leeway)
		return WS_JWT_EXPIRED;
	if (v && now + (int64_t)leeway < nbf)
		return WS_JWT_NOT_YET;

	memset(out, 0, sizeof(*out));
	memcpy(out->sub, json_string_value(sub), json_string_length(sub));
	out->exp = exp;
	if (rooms) {
		out->has_rooms = true;
		size_t i;
		json_t *r;
		json_array_foreach (rooms, i, r) {
			size_t len = json_string_length(r);
			if (!json_is_string(r) || len < 1 || len > WS_JWT_ROOM_MAX ||
			    memchr(json_string_value(r), '\0', len))
				return WS_JWT_CLAIMS;
			memcpy(out->rooms[out->nrooms++], json_string_value(r), len);
		}
	}
	if (info) {
		/* JSON_COMPACT output is ASCII-safe for any decoded input, and bounded here */
		char *s = json_dumps(info, JSON_COMPACT | JSON_ENSURE_ASCII);
		size_t len = s ? strlen(s) : 0;
		bool fits = s && len <= WS_JWT_INFO_MAX;
		if (fits) {
			memcpy(out->info, s, len);
			out->info_len = len;
		}
		free(s);
		if (!fits)
			return WS_JWT_CLAIMS;
	}
	return WS_JWT_OK;
}

enum ws_jwt_status
ws_jwt_verify(const struct ws_jwt_key *key, const char *tok, size_t n, int64_t now, uint32_t leeway,
	      struct ws_jwt_claims *out)
{
	if (n == 0)
		return WS_JWT_MISSING;
	if (n > WS_JWT_MAX_TOKEN)
		return WS_JWT_TOO_LONG;
	const char *dot1 = memchr(tok, '.', n);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - tok)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - tok)))
		return WS_JWT_MALFORMED;
	size_t hn = (size_t)(dot1 - tok), pn = (size_t)(dot2 - dot1 - 1);
	size_t sn = n - (size_t)(dot2 + 1 - tok);

	uint8_t part[PART_MAX];
	size_t len;
	if (!hn || !ws_base64url_decode(tok, hn, part, sizeof(part), &len))
		return WS_JWT_MALFORMED;
	json_t *h = object_from(part, len);
	if (!h)
		return WS_JWT_MALFORMED;
	enum ws_jwt_status st = header_ok(h);
	json_decref(h);
	if (st != WS_JWT_OK)
		return st;

	uint8_t sig[SIG_LEN], want[SIG_LEN];
	if (sn != SIG_B64_LEN || !ws_base64url_decode(dot2 + 1, sn, sig, sizeof(sig), &len) ||
	    len != SIG_LEN)
		return WS_JWT_SIGNATURE;
	if (!hmac(key, tok, (size_t)(dot2 - tok), want) || CRYPTO_memcmp(sig, want, SIG_LEN) != 0)
		return WS_JWT_SIGNATURE;

	/* only authenticated bytes reach the claims parser */
	if (!pn || !ws_base64url_decode(dot1 + 1, pn, part, sizeof(part), &len))
		return WS_JWT_MALFORMED;
	json_t *p = object_from(part, len);
	if (!p)
		return WS_JWT_MALFORMED;
	st = read_claims(p, now, leeway, out);
	json_decref(p);
	return st;
}

size_t
ws_jwt_sign(const struct ws_jwt_key *key, const char *payload, size_t n, char *out, size_t cap)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	size_t hl = WS_BASE64URL_LEN(sizeof(header) - 1);
	if (n > WS_JWT_MAX_TOKEN || cap < hl + 1 + WS_BASE64URL_LEN(n) + 1 + SIG_B64_LEN + 1)
		return 0;
	size_t o = ws_base64url_encode((const uint8_t *)header, sizeof(header) - 1, out);
	out[o++] = '.';
	o += ws_base64url_encode((const uint8_t *)payload, n, out + o);
	uint8_t sig[SIG_LEN];
	if (!hmac(key, out, o, sig))
		return 0;
	out[o++] = '.';
	o += ws_base64url_encode(sig, SIG_LEN, out + o);
	out[o] = '\0';
	return o;
}

bool
ws_jwt_room_allowed(const struct ws_jwt_claims *claims, const char *room)
{
	if (!claims->has_rooms)
		return true;
	size_t rn = strlen(room);
	for (uint32_t i = 0; i < claims->nrooms; i++) {
		const char *pat = claims->rooms[i];
		size_t pn = strlen(pat);
		if (pat[pn - 1] == '*') {
			if (rn >= pn - 1 && memcmp(pat, room, pn - 1) == 0)
				return true;
		} else if (pn == rn && memcmp(pat, room, rn) == 0) {
			return true;
		}
	}
	return false;
}

enum ws_jwt_status
ws_jwt_from_request(const struct ws_http_request *req, char *out, size_t cap)
{
	struct ws_slice b;
	if (ws_auth_bearer(req, &b)) {
		if (b.n >= cap)
			return WS_JWT_TOO_LONG;
		if (b.n) {
			memcpy(out, b.p, b.n);
			out[b.n] = '\0';
			return WS_JWT_OK;
		}
	}
	switch (ws_http_query_arg(req, "token", out, cap)) {
	case WS_HTTP_ARG_FOUND:
		return out[0] ? WS_JWT_OK : WS_JWT_MISSING;
	case WS_HTTP_ARG_INVALID:
		/* too long for out, a bad %-escape or a NUL: none of them is a token */
		return WS_JWT_MALFORMED;
	case WS_HTTP_ARG_ABSENT:
		break;
	}
	return WS_JWT_MISSING;
}

const char *
ws_jwt_status_text(enum ws_jwt_status s)
{
	switch (s) {
	case WS_JWT_OK:
		return "ok";
	case WS_JWT_MISSING:
		return "missing token";
	case WS_JWT_TOO_LONG:
		return "token too long";
	case WS_JWT_MALFORMED:
		return "malformed token";
	case WS_JWT_ALG:
		return "token algorithm not HS256";
	case WS_JWT_SIGNATURE:
		return "bad token signature";
	case WS_JWT_CLAIMS:
		return "invalid token claims";
	case WS_JWT_EXPIRED:
		return "token expired";
	case WS_JWT_NOT_YET:
		return "token not yet valid";
	}
	return "invalid token";
}
