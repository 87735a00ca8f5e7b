/*
 * fuzz_log: arbitrary bytes as a log line's format (so as its event and
 * keys) and as its values, formatted as text and as JSON into a buffer of
 * exactly the size given (so AddressSanitizer sees any write past it).
 *
 * Input: byte 0 picks the level and whether there is a source location,
 * byte 1 the buffer size (WS_LOG_LINE_MIN..WS_LOG_LINE_MAX), then NUL-
 * separated parts: a format (every `%` that is not a plain `%s`, with
 * optional `-`, `0`, width and precision digits, becomes `%%`, and at most
 * eight conversions are kept) and up to eight string arguments.
 *
 * Checks: every line fits its buffer and WS_LOG_LINE_MAX; a text line is
 * one line of printable ASCII; a JSON line is printable ASCII, parses with
 * jansson (duplicate keys rejected) and has exactly one ts, level and
 * event; the keys of a line are the same whatever the values hold (the
 * line is formatted again with each value "x" and both are compared, text
 * lines through a reader that splits words at spaces outside quotes),
 * unless either was cut; and a value comes back as it went in (text:
 * after unescaping; JSON: when it is UTF-8).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TS "2026-01-02T03:04:05.678Z"
#define NARGS 8

static void
require(bool ok, const char *what, const char *line, size_t n)
{
	if (!ok) {
		fprintf(stderr, "fuzz_log: invariant broken: %s\n  line: %.*s\n", what, (int)n,
			line ? line : "");
		abort();
	}
}

struct out {
	char *p;
	size_t n;
};

/* Formats with eight string arguments into an exact-size heap buffer. */
static struct out
format(size_t cap, enum ws_log_format f, enum ws_log_level level, const char *ts, const char *src,
       const char *fmt, ...)
{
	struct out o = { malloc(cap), 0 };
	if (!o.p)
		abort();
	va_list ap;
	va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	o.n = ws_log_vformat(o.p, cap, f, level, ts, src, fmt, ap);
#pragma GCC diagnostic pop
	va_end(ap);
	require(o.n > 0 && o.n <= cap && o.n <= WS_LOG_LINE_MAX, "length within the buffer", o.p,
		o.n);
	require(o.p[o.n - 1] == '\n', "ends in a newline", o.p, o.n);
	for (size_t i = 0; i + 1 < o.n; i++) {
		unsigned char c = (unsigned char)o.p[i];
		require(c >= 0x20 && c < 0x7f, "printable ASCII, one line", o.p, o.n);
	}
	return o;
}

static struct out
format_args(size_t cap, enum ws_log_format f, enum ws_log_level level, const char *src,
	    const char *fmt, char *const *a)
{
	return format(cap, f, level, TS, src, fmt, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
}

/* ---- reading text lines back ---- */

struct words {
	char keys[64][40];
	size_t n;
	bool truncated;
};

/* Skips a quoted word at s[*i] (a '"'), unescaping into val when given. */
static void
skip_quoted(const char *s, size_t n, size_t *i, char *val, size_t *vn)
{
	size_t o = 0;
	(*i)++;
	while (*i < n && s[*i] != '"') {
		char c = s[*i];
		if (c == '\\') {
			require(*i + 1 < n, "an escape is complete", s, n);
			char e = s[*i + 1];
			if (e == 'x') {
				require(*i + 3 < n, "\\xNN is complete", s, n);
				char hexd[3] = { s[*i + 2], s[*i + 3], 0 };
				c = (char)strtoul(hexd, NULL, 16);
				*i += 4;
			} else {
				require(e == '"' || e == '\\', "only \\\" \\\\ \\xNN", s, n);
				c = e;
				*i += 2;
			}
		} else {
			(*i)++;
		}
		if (val)
			val[o++] = c;
	}
	require(*i < n, "a quote is closed", s, n);
	(*i)++;
	if (vn)
		*vn = o;
}

/* The pairs of a text line (keys only), and the value of `want` into val. */
static void
text_words(const struct out *o, bool src, struct words *w, const char *want, char *val, size_t *vn)
{
	const char *s = o->p;
	size_t n = o->n - 1, i = strlen(TS) + 1 + 5 + 1;
	w->n = 0;
	w->truncated = false;
	require(n > i, "a head", s, o->n);
	if (s[i] == '"')
		skip_quoted(s, n, &i, NULL, NULL);
	else
		while (i < n && s[i] != ' ')
			i++;
	while (i < n) {
		require(s[i] == ' ', "words are one space apart", s, o->n);
		i++;
		if (src && s[i] == '(' && s[n - 1] == ')' && memchr(s + i, ' ', n - i) == NULL)
			break;
		if (s[i] == '"') {
			skip_quoted(s, n, &i, NULL, NULL);
			continue;
		}
		size_t k = i;
		while (k < n && s[k] != ' ' && s[k] != '=' && s[k] != '"')
			k++;
		if (k < n && s[k] == '=' && k > i && k - i < sizeof(w->keys[0])) {
			size_t kn = k - i;
			bool is_want = want && strlen(want) == kn && memcmp(s + i, want, kn) == 0;
			if (w->n < sizeof(w->keys) / sizeof(w->keys[0])) {
				memcpy(w->keys[w->n], s + i, kn);
				w->keys[w->n++][kn] = '\0';
			}
			i = k + 1;
			if (kn == 9 && memcmp(s + k - 9, "truncated", 9) == 0)
				w->truncated = true;
			if (i < n && s[i] == '"') {
				skip_quoted(s, n, &i, is_want ? val : NULL, is_want ? vn : NULL);
			} else {
				size_t b = i;
				while (i < n && s[i] != ' ')
					i++;
				if (is_want) {
					memcpy(val, s + b, i - b);
					*vn = i - b;
				}
			}
			continue;
		}
		while (i < n && s[i] != ' ') {
			if (s[i] == '"')
				skip_quoted(s, n, &i, NULL, NULL);
			else
				i++;
		}
	}
}

static void
same_text_keys(const struct words *a, const struct words *b, const struct out *o)
{
	if (a->truncated || b->truncated)
		return;
	require(a->n == b->n, "text: the values do not change the number of keys", o->p, o->n);
	for (size_t i = 0; i < a->n; i++)
		require(strcmp(a->keys[i], b->keys[i]) == 0,
			"text: the values do not change the keys", o->p, o->n);
}

/* ---- reading JSON lines back ---- */

static json_t *
json_line(const struct out *o, enum ws_log_level level)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	json_error_t e;
	json_t *j = json_loadb(o->p, o->n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
	require(j != NULL, "JSON parses, no duplicate key", o->p, o->n);
	require(json_is_object(j), "JSON is an object", o->p, o->n);
	require(json_is_string(json_object_get(j, "ts")), "one ts", o->p, o->n);
	require(json_is_string(json_object_get(j, "event")), "one event", o->p, o->n);
	const char *l = json_string_value(json_object_get(j, "level"));
	require(l && strcmp(l, names[level]) == 0, "one level, the real one", o->p, o->n);
	const char *key;
	json_t *v;
	json_object_foreach (j, key, v) {
		if (strcmp(key, "truncated") == 0)
			require(json_is_true(v), "truncated is true", o->p, o->n);
		else
			require(json_is_string(v), "values are strings", o->p, o->n);
	}
	return j;
}

static void
same_json_keys(json_t *a, json_t *b, const struct out *o)
{
	if (json_object_get(a, "truncated") || json_object_get(b, "truncated"))
		return;
	require(json_object_size(a) == json_object_size(b),
		"JSON: the values do not change the number of keys", o->p, o->n);
	const char *key;
	json_t *v;
	json_object_foreach (a, key, v)
		require(json_object_get(b, key) != NULL, "JSON: the values do not change the keys",
			o->p, o->n);
}

/* ---- the input ---- */

/* Keeps `%s` (with -, 0, width, precision), at most NARGS; any other % becomes %%. */
static char *
safe_format(const char *in, size_t n)
{
	char *f = malloc(2 * n + 1);
	if (!f)
		abort();
	size_t o = 0, convs = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] != '%') {
			f[o++] = in[i];
			continue;
		}
		size_t k = i + 1;
		while (k < n && (in[k] == '-' || in[k] == '0'))
			k++;
		while (k < n && in[k] >= '0' && in[k] <= '9')
			k++;
		if (k < n && in[k] == '.') {
			k++;
			while (k < n && in[k] >= '0' && in[k] <= '9')
				k++;
		}
		if (k < n && in[k] == 's' && convs < NARGS) {
			memcpy(f + o, in + i, k + 1 - i);
			o += k + 1 - i;
			i = k;
			convs++;
		} else {
			f[o++] = '%';
			f[o++] = '%';
		}
	}
	f[o] = '\0';
	return f;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum ws_log_level level = (enum ws_log_level)(data[0] & 3);
	const char *src = data[0] & 4 ? "fuzz_log.c:1" : NULL;
	size_t cap = WS_LOG_LINE_MIN + (size_t)data[1] * 16;
	if (cap > WS_LOG_LINE_MAX + 64)
		cap = WS_LOG_LINE_MAX + 64;
	const char *p = (const char *)data + 2;
	size_t n = size - 2;

	/* parts: format, then arguments; a missing argument is "" */
	char *copy = malloc(n + 1);
	if (!copy)
		abort();
	memcpy(copy, p, n);
	copy[n] = '\0';
	size_t fn = strlen(copy);
	char *fmt = safe_format(copy, fn);
	char *args[NARGS];
	char *benign[NARGS];
	size_t at = fn + 1;
	for (int i = 0; i < NARGS; i++) {
		args[i] = at <= n ? copy + at : copy + n;
		at += strlen(args[i]) + 1;
		benign[i] = "x";
	}

	for (int f = 0; f < 2; f++) {
		enum ws_log_format lf = (enum ws_log_format)f;
		/* the fuzzed format, with the fuzzed values and with harmless ones */
		struct out h = format_args(cap, lf, level, src, fmt, args);
		struct out b = format_args(cap, lf, level, src, fmt, benign);
		if (lf == WS_LOG_TEXT) {
			struct words wh, wb;
			text_words(&h, src != NULL, &wh, NULL, NULL, NULL);
			text_words(&b, src != NULL, &wb, NULL, NULL, NULL);
			same_text_keys(&wh, &wb, &h);
		} else {
			json_t *jh = json_line(&h, level);
			json_t *jb = json_line(&b, level);
			same_json_keys(jh, jb, &h);
			json_decref(jh);
			json_decref(jb);
		}
		free(h.p);
		free(b.p);

		/* the server's own formats, the value at every position */
		static const char *const real[] = {
			"open id=%s addr=%s path=\"%s%s%s\"",
			"lws text=\"%s\"",
			"db-error op=%s error=\"%s\"",
			"%s %s=%s",
			"free %s words %s",
		};
		for (size_t r = 0; r < sizeof(real) / sizeof(real[0]); r++) {
			struct out o = format_args(cap, lf, level, src, real[r], args);
			if (lf == WS_LOG_JSON)
				json_decref(json_line(&o, level));
			else {
				struct words w;
				text_words(&o, src != NULL, &w, NULL, NULL, NULL);
			}
			free(o.p);
		}

		/* a value comes back */
		struct out o = format(cap, lf, level, TS, src, "ev k=%s", args[0]);
		if (lf == WS_LOG_TEXT) {
			struct words w;
			char val[WS_LOG_LINE_MAX];
			size_t vn = 0;
			text_words(&o, src != NULL, &w, "k", val, &vn);
			require(w.n >= 1 && strcmp(w.keys[0], "k") == 0, "text: the key k", o.p,
				o.n);
			if (!w.truncated)
				require(vn == strlen(args[0]) && memcmp(val, args[0], vn) == 0,
					"text: the value comes back", o.p, o.n);
		} else {
			json_t *j = json_line(&o, level);
			json_t *utf8 = json_string(args[0]); /* NULL unless valid UTF-8 */
			if (utf8 && !json_object_get(j, "truncated"))
				require(json_equal(json_object_get(j, "k"), utf8),
					"JSON: a UTF-8 value comes back", o.p, o.n);
			json_decref(utf8);
			json_decref(j);
		}
		free(o.p);

		/* a NUL and the other bytes %c can give, and hostile ts and location */
		o = format(cap, lf, level, args[1], args[2], "c%c k=%c%c",
			   (int)(unsigned char)args[0][0], 0, (int)data[0]);
		if (lf == WS_LOG_JSON) {
			json_t *j = json_loadb(o.p, o.n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
					       NULL);
			require(j && json_is_string(json_object_get(j, "k")),
				"JSON with any ts and src", o.p, o.n);
			json_decref(j);
		}
		free(o.p);
	}
	free(fmt);
	free(copy);
	return 0;
}
