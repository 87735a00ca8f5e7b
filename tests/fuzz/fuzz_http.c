/*
 * fuzz_http: arbitrary bytes as an HTTP request head. Runs what a server
 * does with a head (ws_http_head_end, ws_http_parse, the upgrade check,
 * the accept key, query arguments, header tokens, the admission checks and
 * a response) and checks that every slice stays inside the input and
 * every answer is one the header allows.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http: invariant broken: %s\n", what);
		abort();
	}
}

static bool
inside(struct ws_slice s, const char *p, size_t n)
{
	if (!s.p)
		return s.n == 0;
	return s.p >= p && s.n <= n && s.p + s.n <= p + n;
}

static void
query(const struct ws_http_request *r, const char *name)
{
	char v[32];
	for (size_t cap = 1; cap <= sizeof(v); cap += 15) {
		memset(v, 'x', sizeof(v));
		enum ws_http_arg a = ws_http_query_arg(r, name, v, cap);
		require(a == WS_HTTP_ARG_FOUND || a == WS_HTTP_ARG_ABSENT ||
				a == WS_HTTP_ARG_INVALID,
			"query_arg result");
		if (a == WS_HTTP_ARG_FOUND)
			require(strnlen(v, cap) < cap, "query value NUL-terminated within cap");
	}
}

/* Everything a server does with a complete head p[0..n). */
static void
examine(const uint8_t *data, size_t n)
{
	/* an exact-size copy, so a read past the head is caught */
	char *p = malloc(n ? n : 1);
	if (!p)
		abort();
	if (n)
		memcpy(p, data, n);

	struct ws_http_request r;
	if (!ws_http_parse(p, n, &r)) {
		free(p);
		return;
	}
	require(r.method != NULL, "method set");
	require(r.is_get == (strcmp(r.method, "GET") == 0), "is_get agrees with method");
	struct ws_slice all[] = { r.query,   r.host,     r.upgrade, r.connection,    r.key,
				  r.version, r.protocol, r.origin,  r.authorization, r.extensions };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		require(inside(all[i], p, n), "header slice inside the head");
	require(inside(r.path, p, n) || (r.path.n == 1 && r.path.p[0] == '/'),
		"path inside the head, or \"/\"");

	const char *why = NULL, *extra = NULL;
	int status = ws_http_check_upgrade(&r, &why, &extra);
	require(status == 0 || status == 400 || status == 405 || status == 426,
		"check_upgrade status");
	if (status) {
		require(why && *why, "a reason for the refusal");
		require(!extra ||
				(strlen(extra) >= 2 && !strcmp(extra + strlen(extra) - 2, "\r\n")),
			"extra header ends in CRLF");
	} else {
		require(ws_http_wants_upgrade(&r), "a valid upgrade wants an upgrade");
		require(r.key.n == 24, "a valid key is 24 characters");
		char accept[29];
		ws_http_accept_key(r.key, accept);
		require(strlen(accept) == 28 && accept[27] == '=', "accept key is 28 characters");
	}

	query(&r, "token");
	query(&r, "id");
	query(&r, "");
	query(&r, "a");
	/* a name taken from the query itself, so matches happen */
	if (r.query.n) {
		char name[8];
		size_t k = 0;
		while (k < r.query.n && k < sizeof(name) - 1 && r.query.p[k] != '=' &&
		       r.query.p[k] != '&' && r.query.p[k] != '\0')
			k++;
		memcpy(name, r.query.p, k);
		name[k] = '\0';
		query(&r, name);
	}

	static const char *const tokens[] = { "upgrade", "websocket", "", "chat" };
	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
		ws_http_has_token(r.connection, tokens[i]);
		ws_http_has_token(r.upgrade, tokens[i]);
		ws_http_has_token(r.protocol, tokens[i]);
	}

	static const char *const origins[] = { "https://a.example", "http://localhost:3000" };
	const struct ws_strlist allow = { (const char **)origins, 2 };
	const struct ws_strlist none = { NULL, 0 };
	require(ws_auth_origin_ok(&none, &r), "no allowlist admits any Origin");
	bool origin_ok = ws_auth_origin_ok(&allow, &r);
	require(origin_ok || r.origin.p, "a missing Origin is admitted");
	require(ws_auth_token_ok(NULL, &r), "no token admits anyone");
	ws_auth_token_ok("s3cret", &r);

	struct ws_buf out = { 0 };
	if (status) {
		require(ws_http_respond(&out, status, "text/plain", extra, why, strlen(why)),
			"respond");
		require(out.len > 12 && !memcmp(ws_buf_begin(&out), "HTTP/1.1 ", 9), "status line");
	}
	ws_buf_finish(&out);
	free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = 0;
	enum ws_http_head h = ws_http_head_end((const char *)data, size, &len);
	switch (h) {
	case WS_HTTP_HEAD_DONE:
		require(len >= 4 && len <= size && len <= WS_HTTP_HEAD_MAX, "head length");
		require(!memcmp(data + len - 4, "\r\n\r\n", 4), "head ends in CRLFCRLF");
		require(memmem(data, len, "\r\n\r\n", 4) == data + len - 4,
			"head ends at the first CRLFCRLF");
		examine(data, len);
		break;
	case WS_HTTP_HEAD_TOO_BIG:
		require(size >= WS_HTTP_HEAD_MAX, "too big only past the limit");
		break;
	case WS_HTTP_HEAD_MORE:
		require(size < WS_HTTP_HEAD_MAX, "more only below the limit");
		break;
	case WS_HTTP_HEAD_GARBAGE:
		break;
	default:
		require(false, "head_end result");
	}
	/* callers hand over complete heads, but the parser must survive anything */
	examine(data, size);
	return 0;
}
