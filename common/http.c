#include "http.h"

#include <http_parser.h>
#include <sha1.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

enum ws_http_head
ws_http_head_end(const char *p, size_t n, size_t *head_len)
{
	/* A request starts with a method token: reject binary junk (and TLS) at once. */
	size_t i = 0;
	for (; i < n && i < 16 && p[i] != ' '; i++) {
		if (p[i] < 'A' || p[i] > 'Z')
			return WS_HTTP_HEAD_GARBAGE;
	}
	if (i == 16 || (i < n && i == 0))
		return WS_HTTP_HEAD_GARBAGE;

	size_t lim = n < WS_HTTP_HEAD_MAX ? n : WS_HTTP_HEAD_MAX;
	for (size_t k = 3; k < lim; k++) {
		if (p[k] == '\n' && p[k - 1] == '\r' && p[k - 2] == '\n' && p[k - 3] == '\r') {
			*head_len = k + 1;
			return WS_HTTP_HEAD_DONE;
		}
	}
	return n >= WS_HTTP_HEAD_MAX ? WS_HTTP_HEAD_TOO_BIG : WS_HTTP_HEAD_MORE;
}

struct parse_ctx {
	struct ws_http_request *req;
	struct ws_slice field;
	struct ws_slice *value; /* where the current header's value goes */
	struct ws_slice url;
	bool done;
	bool in_value; /* a value callback came for the current field */
	bool folded;   /* obs-fold seen: rejected (RFC 7230 3.2.4) */
};

static bool
field_is(struct ws_slice f, const char *name)
{
	return f.n == strlen(name) && strncasecmp(f.p, name, f.n) == 0;
}

static int
on_url(http_parser *hp, const char *at, size_t n)
{
	struct parse_ctx *c = hp->data;
	if (!c->url.p)
		c->url.p = at;
	c->url.n += n;
	return 0;
}

static int
on_field(http_parser *hp, const char *at, size_t n)
{
	struct parse_ctx *c = hp->data;
	struct ws_http_request *r = c->req;
	c->field = (struct ws_slice){ at, n };
	static const struct {
		const char *name;
		size_t off;
	} known[] = {
		{ "Host", offsetof(struct ws_http_request, host) },
		{ "Upgrade", offsetof(struct ws_http_request, upgrade) },
		{ "Connection", offsetof(struct ws_http_request, connection) },
		{ "Sec-WebSocket-Key", offsetof(struct ws_http_request, key) },
		{ "Sec-WebSocket-Version", offsetof(struct ws_http_request, version) },
		{ "Sec-WebSocket-Protocol", offsetof(struct ws_http_request, protocol) },
		{ "Sec-WebSocket-Extensions", offsetof(struct ws_http_request, extensions) },
		{ "Origin", offsetof(struct ws_http_request, origin) },
		{ "Authorization", offsetof(struct ws_http_request, authorization) },
	};
	c->value = NULL;
	c->in_value = false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (field_is(c->field, known[i].name)) {
			struct ws_slice *s = (struct ws_slice *)((char *)r + known[i].off);
			/* the first of repeated headers wins */
			if (!s->p)
				c->value = s;
			break;
		}
	}
	return 0;
}

static int
on_value(http_parser *hp, const char *at, size_t n)
{
	struct parse_ctx *c = hp->data;
	/* a second value piece for one field is a folded line */
	if (c->in_value)
		c->folded = true;
	c->in_value = true;
	/* optional whitespace around a value is not part of it (RFC 7230 3.2) */
	while (n && (*at == ' ' || *at == '\t')) {
		at++;
		n--;
	}
	while (n && (at[n - 1] == ' ' || at[n - 1] == '\t'))
		n--;
	if (c->value)
		*c->value = (struct ws_slice){ at, n };
	return 0;
}

/* The request line must end in "HTTP/d.d" (Debian's parser is lenient there). */
static bool
version_ok(const char *p, size_t n)
{
	const char *eol = memchr(p, '\r', n);
	if (!eol || eol - p < 9)
		return false;
	const char *v = eol - 8;
	return memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	       v[7] >= '0' && v[7] <= '9' && v[-1] == ' ';
}

static int
on_headers_complete(http_parser *hp)
{
	struct parse_ctx *c = hp->data;
	c->done = true;
	return 1; /* no body is read: stop here */
}

bool
ws_http_parse(const char *p, size_t n, struct ws_http_request *req)
{
	static const http_parser_settings settings = {
		.on_url = on_url,
		.on_header_field = on_field,
		.on_header_value = on_value,
		.on_headers_complete = on_headers_complete,
	};

	*req = (struct ws_http_request){ 0 };
	struct parse_ctx c = { .req = req };
	http_parser hp;
	http_parser_init(&hp, HTTP_REQUEST);
	hp.data = &c;
	http_parser_execute(&hp, &settings, p, n);
	if (!c.done || !c.url.p || c.folded || !version_ok(p, n))
		return false;

	req->method = http_method_str((enum http_method)hp.method);
	req->is_get = hp.method == HTTP_GET;
	req->http_major = hp.http_major;
	req->http_minor = hp.http_minor;

	struct http_parser_url u;
	http_parser_url_init(&u);
	if (http_parser_parse_url(c.url.p, c.url.n, 0, &u) == 0) {
		if (u.field_set & (1 << UF_PATH))
			req->path = (struct ws_slice){ c.url.p + u.field_data[UF_PATH].off,
						       u.field_data[UF_PATH].len };
		if (u.field_set & (1 << UF_QUERY))
			req->query = (struct ws_slice){ c.url.p + u.field_data[UF_QUERY].off,
							u.field_data[UF_QUERY].len };
	} else {
		return false;
	}
	if (!req->path.p)
		req->path = (struct ws_slice){ "/", 1 };
	return true;
}

bool
ws_http_has_token(struct ws_slice v, const char *token)
{
	size_t tl = strlen(token);
	size_t i = 0;
	while (i < v.n) {
		while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
			i++;
		size_t s = i;
		while (i < v.n && v.p[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v.p + s, token, tl) == 0)
			return true;
	}
	return false;
}

bool
ws_http_wants_upgrade(const struct ws_http_request *req)
{
	return req->upgrade.p || req->key.p || req->version.p ||
	       ws_http_has_token(req->connection, "upgrade");
}

/* A key must be base64 of exactly 16 bytes: 22 characters and "==". */
static bool
key_valid(struct ws_slice k)
{
	if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++) {
		if (ws_base64_value(k.p[i]) < 0)
			return false;
	}
	/* the last character carries 2 data bits; the other 4 must be zero */
	return (ws_base64_value(k.p[21]) & 0x0f) == 0;
}

int
ws_http_check_upgrade(const struct ws_http_request *req, const char **why,
		      const char **extra_header)
{
	*extra_header = NULL;
	if (!req->is_get) {
		*why = "WebSocket upgrade needs GET";
		*extra_header = "Allow: GET\r\n";
		return 405;
	}
	if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1)) {
		*why = "WebSocket upgrade needs HTTP/1.1";
		return 400;
	}
	if (!ws_http_has_token(req->upgrade, "websocket")) {
		*why = "missing Upgrade: websocket";
		*extra_header = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
		return 426;
	}
	if (!ws_http_has_token(req->connection, "upgrade")) {
		*why = "missing Connection: Upgrade";
		return 400;
	}
	if (req->version.n != 2 || memcmp(req->version.p, "13", 2) != 0) {
		*why = "unsupported Sec-WebSocket-Version";
		*extra_header = "Sec-WebSocket-Version: 13\r\n";
		return 426;
	}
	if (!key_valid(req->key)) {
		*why = "Sec-WebSocket-Key must be 16 bytes in base64";
		return 400;
	}
	if (!req->host.p) {
		*why = "missing Host";
		return 400;
	}
	return 0;
}

void
ws_http_accept_key(struct ws_slice key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t d[SHA1_DIGEST_LENGTH];
	SHA1_CTX ctx;
	SHA1Init(&ctx);
	SHA1Update(&ctx, (const uint8_t *)key.p, key.n);
	SHA1Update(&ctx, (const uint8_t *)guid, sizeof(guid) - 1);
	SHA1Final(d, &ctx);

	size_t o = ws_base64_encode(d, sizeof(d), out);
	out[o] = '\0';
}

int
ws_http_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
ws_http_query_name_is(const char *p, size_t n, const char *name)
{
	/* decoded as browsers' URLSearchParams does, so `tok%65n` is `token` */
	size_t i = 0;
	for (; i < n && *name; name++) {
		int c = (unsigned char)p[i];
		if (c == '+') {
			c = ' ';
			i++;
		} else if (c == '%' && i + 2 < n && ws_http_hexval(p[i + 1]) >= 0 &&
			   ws_http_hexval(p[i + 2]) >= 0) {
			c = ws_http_hexval(p[i + 1]) << 4 | ws_http_hexval(p[i + 2]);
			i += 3;
		} else {
			i++;
		}
		if (c != (unsigned char)*name)
			return false;
	}
	return i == n && !*name;
}

enum ws_http_arg
ws_http_query_arg(const struct ws_http_request *req, const char *name, char *out, size_t cap)
{
	if (!req->query.p || cap == 0)
		return WS_HTTP_ARG_ABSENT;
	const char *q = req->query.p, *end = q + req->query.n;
	while (q && q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *e = amp ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(e - q));
		if (eq && ws_http_query_name_is(q, (size_t)(eq - q), name)) {
			size_t o = 0;
			for (const char *s = eq + 1; s < e; s++) {
				int c = (unsigned char)*s;
				if (c == '+') {
					c = ' ';
				} else if (c == '%') {
					int hi = s + 2 < e ? ws_http_hexval(s[1]) : -1;
					int lo = s + 2 < e ? ws_http_hexval(s[2]) : -1;
					if (hi < 0 || lo < 0)
						return WS_HTTP_ARG_INVALID;
					c = hi << 4 | lo;
					s += 2;
				}
				if (c == 0 || o + 1 >= cap)
					return WS_HTTP_ARG_INVALID;
				out[o++] = (char)c;
			}
			out[o] = '\0';
			return WS_HTTP_ARG_FOUND;
		}
		q = amp ? amp + 1 : NULL;
	}
	return WS_HTTP_ARG_ABSENT;
}

const char *
ws_http_status_text(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

bool
ws_http_respond(struct ws_buf *out, int status, const char *content_type, const char *extra_headers,
		const void *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n"
			 "Connection: close\r\n"
			 "%s\r\n",
			 status, ws_http_status_text(status), content_type, len,
			 extra_headers ? extra_headers : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return false;
	return ws_buf_append(out, head, (size_t)n) && ws_buf_append(out, body, len);
}
