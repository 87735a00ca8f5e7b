/*
 * utf8: the incremental validator against RFC 3629, by tables of known
 * sequences and exhaustively against a plain reference decoder.
 */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint32_t
validate(const char *s, size_t n)
{
	return ws_utf8_validate(WS_UTF8_ACCEPT, (const uint8_t *)s, n);
}

static bool
partial(uint32_t state)
{
	return state != WS_UTF8_ACCEPT && state != WS_UTF8_REJECT;
}

struct sample {
	const char *s;
	size_t n;
	const char *what;
};

#define S(lit, what)                       \
	{                                  \
		lit, sizeof(lit) - 1, what \
	}

static const struct sample valid[] = {
	S("", "empty"),
	S("plain ASCII, longer than one 8-byte word", "ascii"),
	S("\x00\x7f", "NUL and DEL"),
	S("\xc2\x80", "U+0080, smallest 2-byte"),
	S("\xdf\xbf", "U+07FF, largest 2-byte"),
	S("\xe0\xa0\x80", "U+0800, smallest 3-byte"),
	S("\xed\x9f\xbf", "U+D7FF, just below the surrogates"),
	S("\xee\x80\x80", "U+E000, just above the surrogates"),
	S("\xef\xbf\xbd", "U+FFFD"),
	S("\xef\xbf\xbf", "U+FFFF, a noncharacter but valid"),
	S("\xf0\x90\x80\x80", "U+10000, smallest 4-byte"),
	S("\xf4\x8f\xbf\xbf", "U+10FFFF, the last code point"),
	S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", "kosme, Autobahn 6.2"),
	S("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
	  "Autobahn 6.1.3"),
	S("\xf0\x9f\x98\x80 emoji after ascii \xf0\x9f\x98\x80", "emoji"),
};

static const struct sample invalid[] = {
	S("\x80", "lone continuation 80"),
	S("\xbf", "lone continuation BF"),
	S("a\x80", "continuation after ASCII"),
	S("\xc0\x80", "overlong NUL"),
	S("\xc0\xaf", "overlong '/' (2 bytes)"),
	S("\xc1\xbf", "overlong U+007F"),
	S("\xe0\x80\x80", "overlong 3-byte NUL"),
	S("\xe0\x80\xaf", "overlong '/' (3 bytes)"),
	S("\xe0\x9f\xbf", "overlong U+07FF"),
	S("\xf0\x80\x80\x80", "overlong 4-byte NUL"),
	S("\xf0\x80\x80\xaf", "overlong '/' (4 bytes)"),
	S("\xf0\x8f\xbf\xbf", "overlong U+FFFF"),
	S("\xed\xa0\x80", "U+D800, high surrogate"),
	S("\xed\xad\xbf", "U+DB7F"),
	S("\xed\xb0\x80", "U+DC00, low surrogate"),
	S("\xed\xbf\xbf", "U+DFFF"),
	S("\xed\xa0\x80\xed\xb0\x80", "a surrogate pair (CESU-8)"),
	S("\xf4\x90\x80\x80", "U+110000"),
	S("\xf7\xbf\xbf\xbf", "U+1FFFFF"),
	S("\xf5\x80\x80\x80", "lead F5"),
	S("\xf8\x88\x80\x80\x80", "5-byte form"),
	S("\xfc\x84\x80\x80\x80\x80", "6-byte form"),
	S("\xfe", "FE"),
	S("\xff", "FF"),
	S("\xc2\x41", "2-byte lead then ASCII"),
	S("\xe2\x82\x41", "3-byte sequence cut by ASCII"),
	S("\xf0\x9f\x98\x41", "4-byte sequence cut by ASCII"),
	S("\xc2\xc2\x80", "lead then lead"),
	S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
	  "edited",
	  "Autobahn 6.3.1"),
};

/* Valid so far but cut inside a code point. */
static const struct sample truncated[] = {
	S("\xc2", "2-byte lead"),          S("\xe0\xa0", "3-byte, 2 of 3"),
	S("\xe2", "3-byte lead"),          S("\xf0\x90\x80", "4-byte, 3 of 4"),
	S("\xf4\x8f", "U+10FFFF, 2 of 4"), S("ascii then \xce", "after ASCII"),
};

static void
valid_table(void)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (!CHECK_UINT(validate(valid[i].s, valid[i].n), WS_UTF8_ACCEPT))
			CHECK_STR(valid[i].what, "");
	}
}

static void
invalid_table(void)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (!CHECK_UINT(validate(invalid[i].s, invalid[i].n), WS_UTF8_REJECT))
			CHECK_STR(invalid[i].what, "");
	}
}

static void
truncated_table(void)
{
	for (size_t i = 0; i < sizeof(truncated) / sizeof(truncated[0]); i++) {
		if (!CHECK(partial(validate(truncated[i].s, truncated[i].n))))
			CHECK_STR(truncated[i].what, "");
	}
}

/* Every split of every sample gives the same answer as the whole. */
static void
split_sequences(void)
{
	const struct sample *tables[] = { valid, invalid, truncated };
	size_t sizes[] = { sizeof(valid) / sizeof(valid[0]), sizeof(invalid) / sizeof(invalid[0]),
			   sizeof(truncated) / sizeof(truncated[0]) };
	for (size_t t = 0; t < 3; t++) {
		for (size_t i = 0; i < sizes[t]; i++) {
			const struct sample *s = &tables[t][i];
			uint32_t whole = validate(s->s, s->n);
			for (size_t a = 0; a <= s->n; a++) {
				for (size_t b = a; b <= s->n; b++) {
					const uint8_t *p = (const uint8_t *)s->s;
					uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, p, a);
					if (st != WS_UTF8_REJECT)
						st = ws_utf8_validate(st, p + a, b - a);
					if (st != WS_UTF8_REJECT)
						st = ws_utf8_validate(st, p + b, s->n - b);
					if (!CHECK_UINT(st, whole)) {
						CHECK_STR(s->what, "");
						return;
					}
				}
			}
		}
	}
	/* one byte at a time, the way a slow client sends it */
	const uint8_t *k = (const uint8_t *)"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
	uint32_t st = WS_UTF8_ACCEPT;
	for (size_t i = 0; i < 11; i++) {
		st = ws_utf8_validate(st, k + i, 1);
		CHECK(st != WS_UTF8_REJECT);
		CHECK((st == WS_UTF8_ACCEPT) == (i == 1 || i == 4 || i == 6 || i == 8 || i == 10));
	}
}

/* The 8-bytes-at-a-time ASCII path must see a bad byte at any offset. */
static void
ascii_fast_path(void)
{
	char buf[80];
	for (size_t at = 0; at < sizeof(buf); at++) {
		memset(buf, 'a', sizeof(buf));
		buf[at] = (char)0x80;
		if (!CHECK_UINT(validate(buf, sizeof(buf)), WS_UTF8_REJECT))
			CHECK_UINT(at, 0);
		/* and a valid multi-byte sequence at any offset */
		memset(buf, 'a', sizeof(buf));
		if (at + 4 <= sizeof(buf)) {
			memcpy(buf + at, "\xf0\x9f\x98\x80", 4);
			if (!CHECK_UINT(validate(buf, sizeof(buf)), WS_UTF8_ACCEPT))
				CHECK_UINT(at, 0);
			/* cut at the end of the buffer: partial */
			CHECK(partial(validate(buf, at + 3)));
		}
	}
}

/*
 * Once REJECT, always REJECT (utf8.h: "sticky"), whatever bytes follow,
 * so a caller may keep feeding without checking after every call.
 */
static void
reject_sticky(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint8_t p[3] = { (uint8_t)b, 0x80, 0x80 };
		for (size_t n = 0; n <= 3; n++) {
			uint32_t st = ws_utf8_validate(WS_UTF8_REJECT, p, n);
			if (!CHECK_UINT(st, WS_UTF8_REJECT)) {
				CHECK_UINT(b, 0x100); /* names the first byte */
				return;
			}
		}
	}
}

/*
 * The reference: decode code points the long way, by value. Cut inside a
 * code point, the prefix is fine if completing it with all-0x80 or
 * all-0xBF continuation bytes gives a valid code point (the completions of
 * a prefix form one interval of values, so its ends decide).
 */
enum ref { REF_VALID, REF_PARTIAL, REF_INVALID };

static bool
ref_one(const uint8_t *p, size_t len)
{
	uint32_t cp, min;
	if (len == 2) {
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if (len == 3) {
		cp = p[0] & 0x0f;
		min = 0x800;
	} else {
		cp = p[0] & 0x07;
		min = 0x10000;
	}
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return false;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	return cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

static enum ref
ref_check(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t b = p[i];
		size_t len;
		if (b < 0x80) {
			i++;
			continue;
		} else if ((b & 0xe0) == 0xc0) {
			len = 2;
		} else if ((b & 0xf0) == 0xe0) {
			len = 3;
		} else if ((b & 0xf8) == 0xf0) {
			len = 4;
		} else {
			return REF_INVALID;
		}
		if (i + len <= n) {
			if (!ref_one(p + i, len))
				return REF_INVALID;
			i += len;
			continue;
		}
		uint8_t lo[4], hi[4];
		size_t have = n - i;
		for (size_t k = 0; k < len; k++) {
			lo[k] = k < have ? p[i + k] : 0x80;
			hi[k] = k < have ? p[i + k] : 0xbf;
		}
		return ref_one(lo, len) || ref_one(hi, len) ? REF_PARTIAL : REF_INVALID;
	}
	return REF_VALID;
}

static enum ref
classify(uint32_t state)
{
	return state == WS_UTF8_ACCEPT   ? REF_VALID
	       : state == WS_UTF8_REJECT ? REF_INVALID
					 : REF_PARTIAL;
}

/* Every 1-, 2- and 3-byte string, whole and split, agrees with the reference. */
static void
exhaustive_short(void)
{
	uint8_t p[3];
	unsigned bad = 0;
	for (uint32_t v = 0; v < 256 + 65536 + (1u << 24) && bad < 5; v++) {
		size_t n;
		uint32_t x;
		if (v < 256) {
			n = 1;
			x = v;
		} else if (v < 256 + 65536) {
			n = 2;
			x = v - 256;
		} else {
			n = 3;
			x = v - 256 - 65536;
		}
		for (size_t k = 0; k < n; k++)
			p[k] = (uint8_t)(x >> (8 * (n - 1 - k)));
		enum ref want = ref_check(p, n);
		uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, p, n);
		if (!CHECK_INT(classify(st), want)) {
			CHECK_UINT(x, n == 1 ? 0x100 : n == 2 ? 0x10000 : 0x1000000);
			bad++;
		}
		for (size_t cut = 1; cut < n; cut++) {
			uint32_t s2 = ws_utf8_validate(WS_UTF8_ACCEPT, p, cut);
			if (s2 != WS_UTF8_REJECT)
				s2 = ws_utf8_validate(s2, p + cut, n - cut);
			if (!CHECK_UINT(s2, st)) {
				CHECK_UINT(x, cut);
				bad++;
			}
		}
	}
}

/* 4-byte strings: every first two bytes, a spread of last two. */
static void
exhaustive_four(void)
{
	static const uint8_t tail[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
					0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xf4, 0xf5, 0xff };
	unsigned bad = 0;
	for (uint32_t ab = 0; ab < 65536 && bad < 5; ab++) {
		for (size_t i = 0; i < sizeof(tail); i++) {
			for (size_t j = 0; j < sizeof(tail); j++) {
				uint8_t p[4] = { (uint8_t)(ab >> 8), (uint8_t)ab, tail[i],
						 tail[j] };
				enum ref want = ref_check(p, 4);
				uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, p, 4);
				if (!CHECK_INT(classify(st), want)) {
					CHECK_UINT((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
							   (uint32_t)p[2] << 8 | p[3],
						   0);
					bad++;
				}
			}
		}
	}
}

/* Every code point, encoded the standard way, is accepted (surrogates rejected). */
static void
every_code_point(void)
{
	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		uint8_t p[4];
		size_t n;
		if (cp < 0x80) {
			p[0] = (uint8_t)cp;
			n = 1;
		} else if (cp < 0x800) {
			p[0] = (uint8_t)(0xc0 | cp >> 6);
			p[1] = (uint8_t)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			p[0] = (uint8_t)(0xe0 | cp >> 12);
			p[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
			p[2] = (uint8_t)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			p[0] = (uint8_t)(0xf0 | cp >> 18);
			p[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
			p[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
			p[3] = (uint8_t)(0x80 | (cp & 0x3f));
			n = 4;
		}
		uint32_t want = cp >= 0xd800 && cp <= 0xdfff ? WS_UTF8_REJECT : WS_UTF8_ACCEPT;
		if (!CHECK_UINT(ws_utf8_validate(WS_UTF8_ACCEPT, p, n), want)) {
			CHECK_UINT(cp, 0);
			return;
		}
	}
}

static const struct check_case cases[] = {
	{ "valid-table", valid_table },           { "invalid-table", invalid_table },
	{ "truncated-table", truncated_table },   { "split-sequences", split_sequences },
	{ "ascii-fast-path", ascii_fast_path },   { "reject-sticky", reject_sticky },
	{ "exhaustive-short", exhaustive_short }, { "exhaustive-four", exhaustive_four },
	{ "every-code-point", every_code_point },
};

CHECK_MAIN(cases)
