/*
 * auth: admission checks made before an upgrade: the Origin allowlist and
 * the shared token (Authorization: Bearer, or ?token=).
 */
#ifndef WS_AUTH_H
#define WS_AUTH_H

#include <stdbool.h>

#include "config.h"
#include "http.h"

/* True when no allowlist is set, the request has no Origin, or it is listed. */
bool ws_auth_origin_ok(const struct ws_strlist *allowed, const struct ws_http_request *req);

/* True when no token is configured, or the request carries it. Constant time. */
bool ws_auth_token_ok(const char *token, const struct ws_http_request *req);

/*
 * The credential of an "Authorization: Bearer X" header (case-insensitive
 * scheme, spaces before X skipped) into *out; false when there is none.
 */
bool ws_auth_bearer(const struct ws_http_request *req, struct ws_slice *out);

/* Compares two byte strings in time that depends only on their lengths. */
bool ws_auth_equal(const void *a, size_t an, const void *b, size_t bn);

#endif
