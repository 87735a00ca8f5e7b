/*
 * auth: the Origin allowlist and the shared token, on parsed requests.
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

/* Parses "GET TARGET HTTP/1.1" with the given header lines. */
static bool
request(struct ws_http_request *req, char *buf, size_t cap, const char *target, const char *headers)
{
	int n = snprintf(buf, cap, "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n", target, headers);
	return CHECK(n > 0 && (size_t)n < cap) && CHECK(ws_http_parse(buf, (size_t)n, req));
}

static const char *const origins[] = { "https://app.example.com", "http://localhost:3000" };
static const struct ws_strlist allowlist = { (const char **)origins, 2 };
static const struct ws_strlist no_list = { NULL, 0 };

static bool
origin_ok(const struct ws_strlist *list, const char *header)
{
	char buf[512];
	struct ws_http_request r;
	if (!request(&r, buf, sizeof(buf), "/", header))
		return false;
	return ws_auth_origin_ok(list, &r);
}

static void
origin_allowlist(void)
{
	CHECK(origin_ok(&allowlist, "Origin: https://app.example.com\r\n"));
	CHECK(origin_ok(&allowlist, "Origin: http://localhost:3000\r\n"));
	/* scheme and host compare case-insensitively */
	CHECK(origin_ok(&allowlist, "Origin: HTTPS://App.Example.COM\r\n"));
	CHECK(origin_ok(&allowlist, "Origin: HTTP://LOCALHOST:3000\r\n"));
	/* everything else is refused */
	CHECK(!origin_ok(&allowlist, "Origin: https://evil.example\r\n"));
	CHECK(!origin_ok(&allowlist, "Origin: http://app.example.com\r\n"));      /* scheme */
	CHECK(!origin_ok(&allowlist, "Origin: https://app.example.com:443\r\n")); /* port */
	CHECK(!origin_ok(&allowlist, "Origin: http://localhost:30000\r\n"));
	CHECK(!origin_ok(&allowlist, "Origin: https://app.example.com.evil\r\n")); /* prefix */
	CHECK(!origin_ok(&allowlist, "Origin: https://app.example.co\r\n"));       /* shorter */
	CHECK(!origin_ok(&allowlist, "Origin: https://xapp.example.com\r\n"));
	CHECK(!origin_ok(&allowlist, "Origin: null\r\n"));
	CHECK(!origin_ok(&allowlist, "Origin: \r\n"));
}

static void
origin_missing_allowed(void)
{
	/* a non-browser client sends no Origin */
	CHECK(origin_ok(&allowlist, ""));
	CHECK(origin_ok(&allowlist, "User-Agent: curl/7.88\r\n"));
}

static void
origin_no_allowlist(void)
{
	CHECK(origin_ok(&no_list, "Origin: https://anything.example\r\n"));
	CHECK(origin_ok(&no_list, "Origin: null\r\n"));
	CHECK(origin_ok(&no_list, ""));
}

static bool
token_ok(const char *token, const char *target, const char *header)
{
	char buf[1024];
	struct ws_http_request r;
	if (!request(&r, buf, sizeof(buf), target, header))
		return false;
	return ws_auth_token_ok(token, &r);
}

static void
token_none_configured(void)
{
	CHECK(token_ok(NULL, "/", ""));
	CHECK(token_ok(NULL, "/?token=whatever", "Authorization: Bearer x\r\n"));
}

static void
token_bearer(void)
{
	const char *t = "s3cret-Token_42";
	CHECK(token_ok(t, "/", "Authorization: Bearer s3cret-Token_42\r\n"));
	/* the scheme is case-insensitive (RFC 7235), extra spaces are allowed */
	CHECK(token_ok(t, "/", "Authorization: bearer s3cret-Token_42\r\n"));
	CHECK(token_ok(t, "/", "Authorization: BEARER   s3cret-Token_42\r\n"));
	/* the token itself is not */
	CHECK(!token_ok(t, "/", "Authorization: Bearer S3CRET-TOKEN_42\r\n"));
	/* other schemes do not carry it */
	CHECK(!token_ok(t, "/", "Authorization: Basic s3cret-Token_42\r\n"));
	CHECK(!token_ok(t, "/", "Authorization: s3cret-Token_42\r\n"));
	CHECK(!token_ok(t, "/", "Authorization: Bearers3cret-Token_42\r\n"));
	CHECK(!token_ok(t, "/", "Authorization: Bearer\r\n"));
	CHECK(!token_ok(t, "/", "Authorization: Bearer \r\n"));
	CHECK(!token_ok(t, "/", ""));
}

static void
token_query(void)
{
	const char *t = "s3cret token/+";
	CHECK(token_ok(t, "/?token=s3cret%20token%2F%2B", ""));
	CHECK(token_ok(t, "/?x=1&token=s3cret+token%2f%2b&y=2", ""));
	CHECK(!token_ok(t, "/?token=s3cret%20token", ""));
	CHECK(!token_ok(t, "/?tokens=s3cret%20token%2F%2B", ""));
	CHECK(!token_ok(t, "/?xtoken=s3cret%20token%2F%2B", ""));
	CHECK(!token_ok(t, "/?token=", ""));
	CHECK(!token_ok(t, "/?token", ""));
	/* the first ?token= is the one that counts */
	CHECK(!token_ok(t, "/?token=wrong&token=s3cret%20token%2F%2B", ""));
	/* a right token in either place is enough */
	CHECK(token_ok("abc", "/?token=abc", "Authorization: Bearer wrong\r\n"));
	CHECK(token_ok("abc", "/?token=wrong", "Authorization: Bearer abc\r\n"));
}

static void
token_wrong_lengths(void)
{
	const char *t = "0123456789abcdef";
	CHECK(token_ok(t, "/?token=0123456789abcdef", ""));
	/* every proper prefix, and the token with anything appended */
	char q[64];
	for (size_t n = 0; n < strlen(t); n++) {
		snprintf(q, sizeof(q), "/?token=%.*s", (int)n, t);
		if (!CHECK(!token_ok(t, q, "")))
			CHECK_UINT(n, 100);
		char h[96];
		snprintf(h, sizeof(h), "Authorization: Bearer %.*s\r\n", (int)n, t);
		if (!CHECK(!token_ok(t, "/", h)))
			CHECK_UINT(n, 100);
	}
	CHECK(!token_ok(t, "/?token=0123456789abcdef0", ""));
	CHECK(!token_ok(t, "/?token=0123456789abcdefg", ""));
	CHECK(!token_ok(t, "/", "Authorization: Bearer 0123456789abcdef0\r\n"));
	/* one byte wrong anywhere */
	for (size_t i = 0; i < strlen(t); i++) {
		char w[17];
		memcpy(w, t, 17);
		w[i] = w[i] == 'z' ? 'y' : 'z';
		snprintf(q, sizeof(q), "/?token=%s", w);
		if (!CHECK(!token_ok(t, q, "")))
			CHECK_UINT(i, 100);
	}
	/* a token longer than any query buffer still compares right */
	char big[2100], target[2200];
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char hdr[2200];
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", big);
	char buf[4096];
	struct ws_http_request r;
	if (request(&r, buf, sizeof(buf), "/", hdr))
		CHECK(ws_auth_token_ok(big, &r));
	snprintf(target, sizeof(target), "/?token=%s", big);
	if (request(&r, buf, sizeof(buf), target, ""))
		CHECK(!ws_auth_token_ok("short", &r));
}

static void
equal(void)
{
	CHECK(ws_auth_equal("abc", 3, "abc", 3));
	CHECK(ws_auth_equal("", 0, "", 0));
	CHECK(ws_auth_equal("a\0b", 3, "a\0b", 3));
	CHECK(!ws_auth_equal("a\0b", 3, "a\0c", 3));
	CHECK(!ws_auth_equal("abc", 3, "abd", 3));
	CHECK(!ws_auth_equal("abc", 3, "xbc", 3));
	CHECK(!ws_auth_equal("abc", 3, "ab", 2));
	CHECK(!ws_auth_equal("ab", 2, "abc", 3));
	CHECK(!ws_auth_equal("abc", 3, "", 0));
	CHECK(!ws_auth_equal("", 0, "abc", 3));
	/* only the given lengths are read (a sanitizer build checks the bounds) */
	char a[4] = { 'x', 'y', 'z', 'w' }, b[2] = { 'x', 'y' };
	CHECK(!ws_auth_equal(a, 4, b, 2));
	CHECK(!ws_auth_equal(b, 2, a, 4));
	CHECK(ws_auth_equal(a, 2, b, 2));
	/* every single-bit difference is seen */
	for (int bit = 0; bit < 8; bit++) {
		char c = (char)('m' ^ (1 << bit));
		CHECK(!ws_auth_equal("m", 1, &c, 1));
	}
}

static const struct check_case cases[] = {
	{ "origin-allowlist", origin_allowlist },
	{ "origin-missing-allowed", origin_missing_allowed },
	{ "origin-no-allowlist", origin_no_allowlist },
	{ "token-none-configured", token_none_configured },
	{ "token-bearer", token_bearer },
	{ "token-query", token_query },
	{ "token-wrong-lengths", token_wrong_lengths },
	{ "equal", equal },
};

CHECK_MAIN(cases)
