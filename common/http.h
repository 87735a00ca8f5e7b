/*
 * http: the HTTP/1.1 side of a WebSocket port. Parses a request head with
 * Debian's http-parser, decides whether it is a valid RFC 6455 upgrade,
 * computes Sec-WebSocket-Accept, reads query arguments and formats replies.
 * Everything here works on a complete request head held by the caller.
 */
#ifndef WS_HTTP_H
#define WS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* A view into the caller's request bytes. */
struct ws_slice {
	const char *p;
	size_t n;
};

/* Largest request head accepted; a longer one gets 431. */
#define WS_HTTP_HEAD_MAX 8192

struct ws_http_request {
	const char *method; /* "GET", "POST", ... (static) */
	bool is_get;
	unsigned short http_major, http_minor;
	struct ws_slice path;  /* before '?' */
	struct ws_slice query; /* after '?', without it; may be empty */
	struct ws_slice host, upgrade, connection, key, version, protocol;
	struct ws_slice origin, authorization, extensions;
};

enum ws_http_head {
	WS_HTTP_HEAD_MORE,    /* no end yet, keep reading */
	WS_HTTP_HEAD_DONE,    /* *head_len holds the length including CRLFCRLF */
	WS_HTTP_HEAD_GARBAGE, /* cannot be an HTTP request: drop the connection */
	WS_HTTP_HEAD_TOO_BIG, /* no end within WS_HTTP_HEAD_MAX: 431 */
};

/* The value of one hex digit (either case), or -1: for %XX escapes. */
int ws_http_hexval(char c);

/* Looks for the end of a request head in p[0..n). */
enum ws_http_head ws_http_head_end(const char *p, size_t n, size_t *head_len);

/* Parses a complete head; false when it is not valid HTTP/1.x (answer 400). */
bool ws_http_parse(const char *p, size_t n, struct ws_http_request *req);

/* Whether the request asks for a WebSocket at all (any upgrade header). */
bool ws_http_wants_upgrade(const struct ws_http_request *req);

/*
 * Checks an upgrade against RFC 6455 section 4.2.1. Returns 0 when valid,
 * else the HTTP status to answer (400, 405, 426) with *why a short phrase
 * and *extra_header a header line to add (or NULL).
 */
int ws_http_check_upgrade(const struct ws_http_request *req, const char **why,
			  const char **extra_header);

/* Sec-WebSocket-Accept for a key: 28 characters and a NUL. */
void ws_http_accept_key(struct ws_slice key, char out[29]);

enum ws_http_arg {
	WS_HTTP_ARG_ABSENT = 0,
	WS_HTTP_ARG_FOUND = 1,
	WS_HTTP_ARG_INVALID = -1, /* too long for out, a bad %-escape, or a NUL byte */
};

/*
 * Whether the query parameter name p[0..n) is `name` once URL-decoded
 * (`+` and %XX), as browsers and the Worker decode names.
 */
bool ws_http_query_name_is(const char *p, size_t n, const char *name);

/*
 * Copies the URL-decoded value of query argument `name` (the name is matched
 * decoded too) (without '=') into
 * out (NUL-terminated). The first of repeated names wins.
 */
enum ws_http_arg ws_http_query_arg(const struct ws_http_request *req, const char *name, char *out,
				   size_t cap);

/* Case-insensitive: does the comma-separated header value hold this token? */
bool ws_http_has_token(struct ws_slice value, const char *token);

/*
 * Appends a whole response: status line, Content-Type and Content-Length,
 * "Connection: close", any extra header lines (each ending in CRLF) and the
 * body. False on OOM.
 */
bool ws_http_respond(struct ws_buf *out, int status, const char *content_type,
		     const char *extra_headers, const void *body, size_t len);

const char *ws_http_status_text(int status);

#endif
