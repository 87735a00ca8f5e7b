/*
 * base64: RFC 4648's test vectors, every tail length, and the alphabet's
 * values (the handshake's key check reads them); base64url, unpadded and
 * canonical (JWTs): round trips, and what its decoder refuses.
 */
#include "base64.h"

#include <string.h>

#include "check.h"

static void
rfc4648_vectors(void)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const want[] = { "",         "Zg==",     "Zm8=",    "Zm9v",
					    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char out[16];
		size_t n = ws_base64_encode(in[i], strlen(in[i]), out);
		CHECK_UINT(n, WS_BASE64_LEN(strlen(in[i])));
		CHECK_MEM(out, n, want[i], strlen(want[i]));
	}
}

static void
binary_bytes(void)
{
	static const unsigned char in[] = { 0x00, 0xff, 0xfe, 0x80, 0x7f };
	char out[8];
	size_t n = ws_base64_encode(in, sizeof(in), out);
	CHECK_MEM(out, n, "AP/+gH8=", 8);
}

static void
values(void)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int i = 0; i < 64; i++)
		CHECK_INT(ws_base64_value(alphabet[i]), i);
	for (int c = 0; c < 256; c++) {
		if (!strchr(alphabet, c) || c == 0)
			CHECK_INT(ws_base64_value((char)c), -1);
	}
}

static void
url_vectors(void)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const want[] = {
		"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char out[16];
		uint8_t back[16];
		size_t n = ws_base64url_encode(in[i], strlen(in[i]), out), m = 99;
		CHECK_UINT(n, WS_BASE64URL_LEN(strlen(in[i])));
		CHECK_MEM(out, n, want[i], strlen(want[i]));
		CHECK(ws_base64url_decode(out, n, back, sizeof(back), &m));
		CHECK_MEM(back, m, in[i], strlen(in[i]));
	}
	/* the url alphabet: 0xfb 0xff is "-_8" (standard: "+/8=") */
	static const unsigned char bin[] = { 0xfb, 0xff };
	char out[4];
	CHECK_MEM(out, ws_base64url_encode(bin, 2, out), "-_8", 3);
}

static void
url_refusals(void)
{
	uint8_t out[16];
	size_t n;
	CHECK(!ws_base64url_decode("Zg==", 4, out, sizeof(out), &n));  /* padding */
	CHECK(!ws_base64url_decode("+/8", 3, out, sizeof(out), &n));   /* standard alphabet */
	CHECK(!ws_base64url_decode("Zh", 2, out, sizeof(out), &n));    /* unused bits set */
	CHECK(!ws_base64url_decode("Zm9vY", 5, out, sizeof(out), &n)); /* impossible length */
	CHECK(!ws_base64url_decode("Zm9vYmFy", 8, out, 5, &n));        /* too long for out */
	CHECK(!ws_base64url_decode("Zm 9", 4, out, sizeof(out), &n));  /* a space */
	CHECK(ws_base64url_decode("Zm9vYmFy", 8, out, 6, &n) && n == 6);
}

static const struct check_case cases[] = {
	{ "rfc4648-vectors", rfc4648_vectors },
	{ "binary-bytes", binary_bytes },
	{ "values", values },
	{ "url-vectors", url_vectors },
	{ "url-refusals", url_refusals },
};

CHECK_MAIN(cases)
