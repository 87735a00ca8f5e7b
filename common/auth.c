#include "auth.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

bool
ws_auth_origin_ok(const struct ws_strlist *allowed, const struct ws_http_request *req)
{
	if (!allowed->n || !req->origin.p)
		return true;
	for (size_t i = 0; i < allowed->n; i++) {
		const char *o = allowed->v[i];
		/* origins compare case-insensitively (scheme and host) */
		if (strlen(o) == req->origin.n && strncasecmp(o, req->origin.p, req->origin.n) == 0)
			return true;
	}
	return false;
}

bool
ws_auth_equal(const void *a, size_t an, const void *b, size_t bn)
{
	const uint8_t *x = a, *y = b;
	uint8_t diff = an != bn;
	/* walk the expected length whatever the input, so timing says nothing */
	for (size_t i = 0; i < an; i++)
		diff |= x[i] ^ (i < bn ? y[i] : 0);
	return diff == 0;
}

bool
ws_auth_bearer(const struct ws_http_request *req, struct ws_slice *out)
{
	struct ws_slice a = req->authorization;
	if (a.n <= 7 || strncasecmp(a.p, "Bearer ", 7) != 0)
		return false;
	*out = (struct ws_slice){ .p = a.p + 7, .n = a.n - 7 };
	while (out->n && *out->p == ' ') {
		out->p++;
		out->n--;
	}
	return true;
}

bool
ws_auth_token_ok(const char *token, const struct ws_http_request *req)
{
	if (!token)
		return true;
	size_t tn = strlen(token);
	struct ws_slice b;
	if (ws_auth_bearer(req, &b) && ws_auth_equal(token, tn, b.p, b.n))
		return true;
	char q[1024];
	if (ws_http_query_arg(req, "token", q, sizeof(q)) == WS_HTTP_ARG_FOUND)
		return ws_auth_equal(token, tn, q, strlen(q));
	return false;
}
