/*
 * http: request head framing, parsing, the RFC 6455 4.2.1 upgrade checks,
 * Sec-WebSocket-Accept, query arguments and header tokens.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* What a browser sends (Chromium, trimmed of cookies). */
static const char upgrade_request[] =
	"GET /chat/room?id=42&token=s%20e+c&empty=&id=43 HTTP/1.1\r\n"
	"Host: example.com:8080\r\n"
	"Connection: keep-alive, Upgrade\r\n"
	"Pragma: no-cache\r\n"
	"Cache-Control: no-cache\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
	"Upgrade: websocket\r\n"
	"Origin: https://example.com\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Accept-Language: en-US,en;q=0.9\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	"Sec-WebSocket-Protocol: chat, superchat\r\n"
	"Authorization: Bearer abc\r\n"
	"\r\n";

static bool
slice_is(struct ws_slice s, const char *want)
{
	return s.p && s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

#define CHECK_SLICE(s, want)                                                                 \
	do {                                                                                 \
		if (!CHECK(slice_is((s), (want))))                                           \
			fprintf(stderr, "  got \"%.*s\"\n", (int)(s).n, (s).p ? (s).p : ""); \
	} while (0)

/* Parses a head given as a C string; the request points into it. */
static bool
parse(const char *head, struct ws_http_request *req)
{
	return ws_http_parse(head, strlen(head), req);
}

/* ------------------------------------------------------------------ */

static void
head_end_done(void)
{
	size_t len = 0, n = strlen(upgrade_request);
	CHECK_INT(ws_http_head_end(upgrade_request, n, &len), WS_HTTP_HEAD_DONE);
	CHECK_UINT(len, n);

	/* bytes after the head (a pipelined frame) are not part of it */
	char buf[2048];
	snprintf(buf, sizeof(buf), "%s\x81\x85more", upgrade_request);
	len = 0;
	CHECK_INT(ws_http_head_end(buf, strlen(buf), &len), WS_HTTP_HEAD_DONE);
	CHECK_UINT(len, n);

	/* the smallest head */
	len = 0;
	CHECK_INT(ws_http_head_end("GET / HTTP/1.1\r\n\r\n", 18, &len), WS_HTTP_HEAD_DONE);
	CHECK_UINT(len, 18);
}

/* Every prefix of a head is MORE; the whole is DONE (a slow client). */
static void
head_end_prefixes(void)
{
	size_t n = strlen(upgrade_request);
	for (size_t k = 0; k < n; k++) {
		size_t len = 12345;
		if (!CHECK_INT(ws_http_head_end(upgrade_request, k, &len), WS_HTTP_HEAD_MORE))
			CHECK_UINT(k, 0);
		CHECK_UINT(len, 12345);
	}
	/* bare LFs do not end a head */
	size_t len;
	CHECK_INT(ws_http_head_end("GET / HTTP/1.1\n\n", 16, &len), WS_HTTP_HEAD_MORE);
	CHECK_INT(ws_http_head_end("GET / HTTP/1.1\r\n\n\r\n", 19, &len), WS_HTTP_HEAD_MORE);
}

static void
head_end_garbage(void)
{
	static const struct {
		const char *p;
		size_t n;
	} junk[] = {
		{ "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11 }, /* a TLS ClientHello */
		{ "\x81\x85\x37\xfa\x21\x3d", 6 },                      /* a WebSocket frame */
		{ "get / HTTP/1.1\r\n\r\n", 18 },                       /* lower-case method */
		{ " GET / HTTP/1.1\r\n\r\n", 19 },                      /* leading space */
		{ "\r\nGET / HTTP/1.1\r\n\r\n", 20 },
		{ "GE\x00T", 4 },
		{ "ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n", 31 }, /* 16-letter method */
		{ "ABCDEFGHIJKLMNOPQRS", 19 },
		{ "SSH-2.0-OpenSSH_9.2\r\n", 21 },
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		size_t len;
		if (!CHECK_INT(ws_http_head_end(junk[i].p, junk[i].n, &len), WS_HTTP_HEAD_GARBAGE))
			CHECK_UINT(i, 100);
	}
	/* garbage is seen from its first byte, before any end */
	size_t len;
	CHECK_INT(ws_http_head_end("\x16", 1, &len), WS_HTTP_HEAD_GARBAGE);
	CHECK_INT(ws_http_head_end("G", 1, &len), WS_HTTP_HEAD_MORE);
	CHECK_INT(ws_http_head_end("", 0, &len), WS_HTTP_HEAD_MORE);
	/* a 15-letter method is still a method */
	CHECK_INT(ws_http_head_end("ABCDEFGHIJKLMNO / HTTP/1.1\r\n\r\n", 30, &len),
		  WS_HTTP_HEAD_DONE);
}

static void
head_end_too_big(void)
{
	size_t cap = WS_HTTP_HEAD_MAX + 100;
	char *p = malloc(cap);
	if (!p)
		abort();
	memcpy(p, "GET /", 5);
	memset(p + 5, 'a', cap - 5);

	size_t len;
	CHECK_INT(ws_http_head_end(p, WS_HTTP_HEAD_MAX - 1, &len), WS_HTTP_HEAD_MORE);
	CHECK_INT(ws_http_head_end(p, WS_HTTP_HEAD_MAX, &len), WS_HTTP_HEAD_TOO_BIG);
	CHECK_INT(ws_http_head_end(p, cap, &len), WS_HTTP_HEAD_TOO_BIG);

	/* a head of exactly WS_HTTP_HEAD_MAX bytes is accepted */
	memcpy(p + WS_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	CHECK_INT(ws_http_head_end(p, WS_HTTP_HEAD_MAX, &len), WS_HTTP_HEAD_DONE);
	CHECK_UINT(len, WS_HTTP_HEAD_MAX);
	CHECK_INT(ws_http_head_end(p, cap, &len), WS_HTTP_HEAD_DONE);

	/* one byte more is not */
	memset(p + WS_HTTP_HEAD_MAX - 4, 'a', 4);
	memcpy(p + WS_HTTP_HEAD_MAX - 3, "\r\n\r\n", 4);
	CHECK_INT(ws_http_head_end(p, cap, &len), WS_HTTP_HEAD_TOO_BIG);
	free(p);
}

static void
parse_upgrade(void)
{
	struct ws_http_request r;
	if (!CHECK(parse(upgrade_request, &r)))
		return;
	CHECK_STR(r.method, "GET");
	CHECK(r.is_get);
	CHECK_UINT(r.http_major, 1);
	CHECK_UINT(r.http_minor, 1);
	CHECK_SLICE(r.path, "/chat/room");
	CHECK_SLICE(r.query, "id=42&token=s%20e+c&empty=&id=43");
	CHECK_SLICE(r.host, "example.com:8080");
	CHECK_SLICE(r.upgrade, "websocket");
	CHECK_SLICE(r.connection, "keep-alive, Upgrade");
	CHECK_SLICE(r.key, "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_SLICE(r.version, "13");
	CHECK_SLICE(r.protocol, "chat, superchat");
	CHECK_SLICE(r.origin, "https://example.com");
	CHECK_SLICE(r.authorization, "Bearer abc");
	CHECK_SLICE(r.extensions, "permessage-deflate; client_max_window_bits");
	CHECK(ws_http_wants_upgrade(&r));

	/* the slices point into the caller's bytes */
	const char *end = upgrade_request + sizeof(upgrade_request);
	CHECK(r.key.p > upgrade_request && r.key.p + r.key.n < end);

	const char *why, *extra;
	CHECK_INT(ws_http_check_upgrade(&r, &why, &extra), 0);
	CHECK(extra == NULL);
}

static void
parse_variants(void)
{
	struct ws_http_request r;

	/* header names are case-insensitive; no query; path "/" */
	CHECK(parse("GET / HTTP/1.1\r\nHOST: h\r\nupgrade: WebSocket\r\n"
		    "connection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		    "SEC-WEBSOCKET-VERSION: 13\r\n\r\n",
		    &r));
	CHECK_SLICE(r.path, "/");
	CHECK(r.query.n == 0);
	CHECK_SLICE(r.host, "h");
	CHECK_SLICE(r.upgrade, "WebSocket");
	const char *why, *extra;
	CHECK_INT(ws_http_check_upgrade(&r, &why, &extra), 0);

	/* the first of repeated headers wins */
	CHECK(parse("GET / HTTP/1.1\r\nOrigin: https://first\r\nOrigin: https://second\r\n\r\n",
		    &r));
	CHECK_SLICE(r.origin, "https://first");

	/* leading whitespace is not part of a value */
	CHECK(parse("GET / HTTP/1.1\r\nHost: \t  spaced\r\n\r\n", &r));
	CHECK_SLICE(r.host, "spaced");

	/* absolute-form target */
	CHECK(parse("GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", &r));
	CHECK_SLICE(r.path, "/abs");
	CHECK_SLICE(r.query, "q=1");

	/* a plain GET does not want an upgrade */
	CHECK(parse("GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", &r));
	CHECK(!ws_http_wants_upgrade(&r));
	CHECK(!r.upgrade.p && !r.key.p);

	/* other methods and versions parse; check_upgrade judges them */
	CHECK(parse("POST /x HTTP/1.0\r\nHost: h\r\n\r\n", &r));
	CHECK_STR(r.method, "POST");
	CHECK(!r.is_get);
	CHECK_UINT(r.http_minor, 0);
}

static void
parse_invalid(void)
{
	static const char *const bad[] = {
		"GET / XTTP/1.1\r\n\r\n",
		"GET\r\n\r\n",
		"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n", /* no end */
		"GET / HTTP/1.1 extra\r\n\r\n",
		"\x16\x03\x01\r\n\r\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ws_http_request r;
		if (!CHECK(!parse(bad[i], &r)))
			CHECK_UINT(i, 100);
	}
}

/*
 * RFC 7230 3.2.4: "OWS ... after the last non-whitespace octet of the
 * field value ought to be excluded by parsers". With it kept, a valid
 * upgrade that pads its headers fails: the key is 25 bytes (400), the
 * version "13 " (426), the Origin and the Bearer token never match.
 */
static void
parse_trailing_whitespace(void)
{
	struct ws_http_request r;
	CHECK(parse("GET / HTTP/1.1\r\nHost: h \r\nUpgrade: websocket \r\n"
		    "Connection: Upgrade\t\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ== \r\n"
		    "Sec-WebSocket-Version: 13  \r\nOrigin: https://a.example \r\n\r\n",
		    &r));
	CHECK_SLICE(r.host, "h");
	CHECK_SLICE(r.key, "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_SLICE(r.version, "13");
	CHECK_SLICE(r.origin, "https://a.example");
	const char *why, *extra;
	CHECK_INT(ws_http_check_upgrade(&r, &why, &extra), 0);
}

/*
 * RFC 7230 3.2.4: a server "MUST either reject the message by sending a
 * 400 (Bad Request) ... or replace each received obs-fold with one or
 * more SP octets". Keeping only the last line of a folded value is
 * neither (here Host would be " b").
 */
static void
parse_obs_fold(void)
{
	struct ws_http_request r;
	bool ok = parse("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", &r);
	if (ok) {
		bool joined = r.host.p && r.host.n >= 3 && r.host.p[0] == 'a' &&
			      r.host.p[r.host.n - 1] == 'b';
		if (!CHECK(joined))
			fprintf(stderr, "  Host: \"%.*s\"\n", (int)r.host.n,
				r.host.p ? r.host.p : "");
	}
}

/* "HTTX/1.1" is not HTTP/1.1 (Debian's http-parser is built non-strict). */
static void
parse_not_http(void)
{
	static const char *const bad[] = {
		"GET / HTTX/1.1\r\n\r\n",
		"GET / HXTP/1.1\r\n\r\n",
		"GET / HTPP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ws_http_request r;
		if (!CHECK(!parse(bad[i], &r)))
			CHECK_STR(bad[i], "");
	}
}

/* ------------------------------------------------------------------ */
/* ws_http_check_upgrade: each failure and its status. */

struct upgrade_case {
	const char *head;
	int status;
	const char *extra; /* expected extra header, NULL for none */
};

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define HOST "Host: h\r\n"

static const struct upgrade_case upgrade_cases[] = {
	/* the reference: valid */
	{ "GET / HTTP/1.1\r\n" HOST UPG KEY VER "\r\n", 0, NULL },
	/* 405 for any other method, with Allow */
	{ "POST / HTTP/1.1\r\n" HOST UPG KEY VER "\r\n", 405, "Allow: GET\r\n" },
	{ "HEAD / HTTP/1.1\r\n" HOST UPG KEY VER "\r\n", 405, "Allow: GET\r\n" },
	{ "PUT / HTTP/1.1\r\n" HOST UPG KEY VER "\r\n", 405, "Allow: GET\r\n" },
	/* HTTP/1.0: 400 */
	{ "GET / HTTP/1.0\r\n" HOST UPG KEY VER "\r\n", 400, NULL },
	/* no or wrong Upgrade: 426 asking for websocket */
	{ "GET / HTTP/1.1\r\n" HOST "Connection: Upgrade\r\n" KEY VER "\r\n", 426,
	  "Upgrade: websocket\r\nConnection: Upgrade\r\n" },
	{ "GET / HTTP/1.1\r\n" HOST "Upgrade: h2c\r\nConnection: Upgrade\r\n" KEY VER "\r\n", 426,
	  "Upgrade: websocket\r\nConnection: Upgrade\r\n" },
	/* no Connection: Upgrade: 400 */
	{ "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\n" KEY VER "\r\n", 400, NULL },
	{ "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\nConnection: keep-alive\r\n" KEY VER
	  "\r\n",
	  400, NULL },
	/* version missing or not 13: 426 naming 13 */
	{ "GET / HTTP/1.1\r\n" HOST UPG KEY "\r\n", 426, "Sec-WebSocket-Version: 13\r\n" },
	{ "GET / HTTP/1.1\r\n" HOST UPG KEY "Sec-WebSocket-Version: 12\r\n\r\n", 426,
	  "Sec-WebSocket-Version: 13\r\n" },
	{ "GET / HTTP/1.1\r\n" HOST UPG KEY "Sec-WebSocket-Version: 130\r\n\r\n", 426,
	  "Sec-WebSocket-Version: 13\r\n" },
	/* key missing, not 16 bytes, not base64, or with stray bits: 400 */
	{ "GET / HTTP/1.1\r\n" HOST UPG VER "\r\n", 400, NULL },
	{ "GET / HTTP/1.1\r\n" HOST UPG VER "Sec-WebSocket-Key: AQIDBAUGBwg=\r\n\r\n", 400, NULL },
	{ "GET / HTTP/1.1\r\n" HOST UPG VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n\r\n",
	  400, NULL },
	{ "GET / HTTP/1.1\r\n" HOST UPG VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ*==\r\n\r\n",
	  400, NULL },
	{ "GET / HTTP/1.1\r\n" HOST UPG VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n\r\n",
	  400, NULL },
	{ "GET / HTTP/1.1\r\n" HOST UPG VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AA\r\n\r\n",
	  400, NULL },
	/* no Host: 400 */
	{ "GET / HTTP/1.1\r\n" UPG KEY VER "\r\n", 400, NULL },
};

static void
check_upgrade_statuses(void)
{
	for (size_t i = 0; i < sizeof(upgrade_cases) / sizeof(upgrade_cases[0]); i++) {
		const struct upgrade_case *c = &upgrade_cases[i];
		struct ws_http_request r;
		if (!CHECK(parse(c->head, &r))) {
			CHECK_UINT(i, 100);
			continue;
		}
		const char *why = NULL, *extra = "unset";
		int status = ws_http_check_upgrade(&r, &why, &extra);
		bool ok = CHECK_INT(status, c->status);
		ok &= CHECK_STR(extra, c->extra);
		if (status)
			ok &= CHECK(why != NULL && *why);
		if (!ok)
			fprintf(stderr, "  in case %zu:\n%s", i, c->head);
	}
}

/* Keys whose last character carries only the 2 data bits are valid. */
static void
check_upgrade_keys(void)
{
	static const char *const good[] = { "AAAAAAAAAAAAAAAAAAAAAA==", "/////////////////////w==",
					    "+++++++++++++++++++++g==",
					    "x3JJHMbDL1EzLkh9GBhXDw==" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char head[256];
		snprintf(head, sizeof(head),
			 "GET / HTTP/1.1\r\n" HOST UPG VER "Sec-WebSocket-Key: %s\r\n\r\n",
			 good[i]);
		struct ws_http_request r;
		const char *why, *extra;
		CHECK(parse(head, &r));
		if (!CHECK_INT(ws_http_check_upgrade(&r, &why, &extra), 0))
			CHECK_STR(good[i], "");
	}
}

static void
accept_key(void)
{
	/* RFC 6455 section 1.3 */
	char out[29];
	memset(out, 'x', sizeof(out));
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
	ws_http_accept_key((struct ws_slice){ key, strlen(key) }, out);
	CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

	/* MDN's worked example ("Writing WebSocket servers") */
	key = "x3JJHMbDL1EzLkh9GBhXDw==";
	ws_http_accept_key((struct ws_slice){ key, strlen(key) }, out);
	CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

/* ------------------------------------------------------------------ */
/* Query arguments. */

static void
query_arg(void)
{
	struct ws_http_request r;
	char v[64];
	if (!CHECK(parse(upgrade_request, &r)))
		return;

	/* first wins */
	CHECK_INT(ws_http_query_arg(&r, "id", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "42");
	/* %-decoding and '+' as a space */
	CHECK_INT(ws_http_query_arg(&r, "token", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "s e c");
	/* present but empty */
	strcpy(v, "junk");
	CHECK_INT(ws_http_query_arg(&r, "empty", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "");
	/* absent */
	CHECK_INT(ws_http_query_arg(&r, "missing", v, sizeof(v)), WS_HTTP_ARG_ABSENT);
	CHECK_INT(ws_http_query_arg(&r, "i", v, sizeof(v)), WS_HTTP_ARG_ABSENT);
	CHECK_INT(ws_http_query_arg(&r, "id=", v, sizeof(v)), WS_HTTP_ARG_ABSENT);
}

static void
query_arg_prefix(void)
{
	struct ws_http_request r;
	char v[64];
	/* `idx=` must not answer for `id` (unlike lws_get_urlarg_by_name("id")) */
	CHECK(parse("GET /?idx=9&xid=8&i=7 HTTP/1.1\r\n\r\n", &r));
	CHECK_INT(ws_http_query_arg(&r, "id", v, sizeof(v)), WS_HTTP_ARG_ABSENT);
	CHECK_INT(ws_http_query_arg(&r, "idx", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "9");
	CHECK_INT(ws_http_query_arg(&r, "i", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "7");

	CHECK(parse("GET /?idx=9&id=1 HTTP/1.1\r\n\r\n", &r));
	CHECK_INT(ws_http_query_arg(&r, "id", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "1");

	/* a name without '=' has no value */
	CHECK(parse("GET /?id&id=2 HTTP/1.1\r\n\r\n", &r));
	CHECK_INT(ws_http_query_arg(&r, "id", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "2");

	/* no query at all */
	CHECK(parse("GET /path HTTP/1.1\r\n\r\n", &r));
	CHECK_INT(ws_http_query_arg(&r, "id", v, sizeof(v)), WS_HTTP_ARG_ABSENT);
}

static void
query_arg_decoding(void)
{
	struct ws_http_request r;
	char v[64];
	CHECK(parse("GET /?a=%41%62%2f%2F%7e&b=%e2%82%ac&c=%2B+%20&d=100%25 HTTP/1.1\r\n\r\n", &r));
	CHECK_INT(ws_http_query_arg(&r, "a", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "Ab//~");
	CHECK_INT(ws_http_query_arg(&r, "b", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "\xe2\x82\xac");
	CHECK_INT(ws_http_query_arg(&r, "c", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "+  ");
	CHECK_INT(ws_http_query_arg(&r, "d", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "100%");

	/* bad escapes, a truncated escape at the end, and an encoded NUL are invalid */
	static const char *const bad[] = {
		"GET /?a=%zz HTTP/1.1\r\n\r\n", "GET /?a=%4 HTTP/1.1\r\n\r\n",
		"GET /?a=% HTTP/1.1\r\n\r\n",   "GET /?a=x%4&b=1 HTTP/1.1\r\n\r\n",
		"GET /?a=%00 HTTP/1.1\r\n\r\n", "GET /?a=ab%00cd HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(parse(bad[i], &r));
		if (!CHECK_INT(ws_http_query_arg(&r, "a", v, sizeof(v)), WS_HTTP_ARG_INVALID))
			CHECK_STR(bad[i], "");
	}
}

static void
query_arg_capacity(void)
{
	struct ws_http_request r;
	char v[8];
	CHECK(parse("GET /?a=1234567&b=12345678&c=%41%41%41%41%41%41%41 HTTP/1.1\r\n\r\n", &r));
	/* 7 bytes and the NUL fit in 8 */
	CHECK_INT(ws_http_query_arg(&r, "a", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "1234567");
	/* 8 do not: invalid, not absent */
	memset(v, 'x', sizeof(v));
	CHECK_INT(ws_http_query_arg(&r, "b", v, sizeof(v)), WS_HTTP_ARG_INVALID);
	/* the limit counts decoded bytes */
	CHECK_INT(ws_http_query_arg(&r, "c", v, sizeof(v)), WS_HTTP_ARG_FOUND);
	CHECK_STR(v, "AAAAAAA");
	CHECK_INT(ws_http_query_arg(&r, "a", v, 1), WS_HTTP_ARG_INVALID);
}

/* ------------------------------------------------------------------ */

static void
has_token(void)
{
	static const struct {
		const char *value, *token;
		bool want;
	} t[] = {
		{ "Upgrade", "upgrade", true },
		{ "UPGRADE", "upgrade", true },
		{ "keep-alive, Upgrade", "upgrade", true },
		{ "Upgrade, keep-alive", "upgrade", true },
		{ "keep-alive,Upgrade", "upgrade", true },
		{ "  upgrade  ", "upgrade", true },
		{ "\tupgrade\t,x", "upgrade", true },
		{ ",,upgrade,,", "upgrade", true },
		{ "keep-alive", "upgrade", false },
		{ "upgrade2", "upgrade", false },
		{ "xupgrade", "upgrade", false },
		{ "keep-alive-upgrade", "upgrade", false },
		{ "up grade", "upgrade", false },
		{ "", "upgrade", false },
		{ "websocket", "websocket", true },
		{ "WebSocket", "websocket", true },
		{ "h2c, websocket", "websocket", true },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ws_slice s = { t[i].value, strlen(t[i].value) };
		if (!CHECK(ws_http_has_token(s, t[i].token) == t[i].want))
			CHECK_STR(t[i].value, "");
	}
	/* an absent header */
	CHECK(!ws_http_has_token((struct ws_slice){ NULL, 0 }, "upgrade"));
	/* the value is a slice: bytes past n do not count */
	CHECK(!ws_http_has_token((struct ws_slice){ "upgrade", 6 }, "upgrade"));
}

static void
respond(void)
{
	struct ws_buf out = { 0 };
	CHECK(ws_http_respond(&out, 426, "text/plain", "Sec-WebSocket-Version: 13\r\n", "upgrade\n",
			      8));
	const char want[] = "HTTP/1.1 426 Upgrade Required\r\n"
			    "Content-Type: text/plain\r\n"
			    "Content-Length: 8\r\n"
			    "Cache-Control: no-store\r\n"
			    "Connection: close\r\n"
			    "Sec-WebSocket-Version: 13\r\n"
			    "\r\n"
			    "upgrade\n";
	CHECK_MEM(ws_buf_begin(&out), out.len, want, sizeof(want) - 1);
	ws_buf_finish(&out);

	CHECK(ws_http_respond(&out, 503, "text/plain", NULL, "", 0));
	CHECK(out.len > 0 &&
	      memcmp(ws_buf_begin(&out), "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
	ws_buf_finish(&out);

	CHECK_STR(ws_http_status_text(431), "Request Header Fields Too Large");
	CHECK_STR(ws_http_status_text(405), "Method Not Allowed");
	CHECK_STR(ws_http_status_text(999), "Unknown");
}

static const struct check_case cases[] = {
	{ "head-end-done", head_end_done },
	{ "head-end-prefixes", head_end_prefixes },
	{ "head-end-garbage", head_end_garbage },
	{ "head-end-too-big", head_end_too_big },
	{ "parse-upgrade", parse_upgrade },
	{ "parse-variants", parse_variants },
	{ "parse-invalid", parse_invalid },
	{ "parse-trailing-whitespace", parse_trailing_whitespace },
	{ "parse-obs-fold", parse_obs_fold },
	{ "parse-not-http", parse_not_http },
	{ "check-upgrade-statuses", check_upgrade_statuses },
	{ "check-upgrade-keys", check_upgrade_keys },
	{ "accept-key", accept_key },
	{ "query-arg", query_arg },
	{ "query-arg-prefix", query_arg_prefix },
	{ "query-arg-decoding", query_arg_decoding },
	{ "query-arg-capacity", query_arg_capacity },
	{ "has-token", has_token },
	{ "respond", respond },
};

CHECK_MAIN(cases)
