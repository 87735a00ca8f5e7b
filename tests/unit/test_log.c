/*
 * log: lines whose structure comes from the format only. Client bytes in a
 * value cannot add a key, change the level or event, break the line or the
 * JSON; no line passes WS_LOG_LINE_MAX (issue 9.1's TAB overflow included);
 * cut lines say so; the flush batching still holds info lines for the hook.
 */
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "check.h"

#define TS "2026-01-02T03:04:05.678Z"

static char line[WS_LOG_LINE_MAX + 1];
static size_t line_n;

/* Formats one line at info level with a fixed timestamp and location. */
static const char *fmt_line(enum ws_log_format format, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const char *
fmt_line(enum ws_log_format format, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_n = ws_log_vformat(line, sizeof(line) - 1, format, WS_LOG_INFO, TS, "t.c:1", fmt, ap);
	va_end(ap);
	line[line_n] = '\0';
	return line;
}

/* One line: ends in its only newline, everything else printable ASCII. */
static bool
one_printable_line(const char *s, size_t n)
{
	if (!CHECK(n > 0 && n <= WS_LOG_LINE_MAX) || !CHECK(s[n - 1] == '\n'))
		return false;
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!CHECK(c >= 0x20 && c < 0x7f)) {
			fprintf(stderr, "  byte 0x%02x at %zu of: %.*s\n", c, i, (int)n, s);
			return false;
		}
	}
	return true;
}

/* Parses the current JSON line; duplicate keys fail the parse. */
static json_t *
parse_json(void)
{
	if (!one_printable_line(line, line_n))
		return NULL;
	json_error_t e;
	json_t *o = json_loadb(line, line_n, JSON_REJECT_DUPLICATES, &e);
	if (!CHECK(o != NULL)) {
		fprintf(stderr, "  %s: %s", e.text, line);
		return NULL;
	}
	CHECK(json_is_object(o));
	CHECK_STR(json_string_value(json_object_get(o, "ts")), TS);
	CHECK_STR(json_string_value(json_object_get(o, "level")), "info");
	CHECK(json_is_string(json_object_get(o, "event")));
	return o;
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * A reader of text lines as a log shipper would write one: after the
 * timestamp, level and event, words split at spaces outside quotes; a word
 * `key=...` is a pair. Returns the number of pairs, keys and unescaped
 * values in keys[]/vals[].
 */
#define TEXT_MAX_PAIRS 40
static char keys[TEXT_MAX_PAIRS][64];
static char vals[TEXT_MAX_PAIRS][WS_LOG_LINE_MAX];
static size_t val_n[TEXT_MAX_PAIRS];

static size_t
read_quoted(const char *s, char *out, size_t *out_n)
{
	size_t i = 1, o = 0;
	while (s[i] && s[i] != '"') {
		if (s[i] == '\\' && s[i + 1] == 'x') {
			out[o++] = (char)strtoul((char[]){ s[i + 2], s[i + 3], 0 }, NULL, 16);
			i += 4;
		} else if (s[i] == '\\') {
			out[o++] = s[i + 1];
			i += 2;
		} else {
			out[o++] = s[i++];
		}
	}
	*out_n = o;
	return s[i] == '"' ? i + 1 : i;
}

static size_t
text_pairs(const char *s)
{
	size_t n = 0, i = 0;
	char scratch[WS_LOG_LINE_MAX];
	size_t sn;
	/* ts, level (padded to five), event */
	i = strlen(TS) + 1 + 5 + 1;
	if (s[i] == '"')
		i += read_quoted(s + i, scratch, &sn);
	else
		i += strcspn(s + i, " \n");
	while (s[i] == ' ') {
		i++;
		if (s[i] == '(')
			break; /* the location ends the line */
		if (s[i] == '"') {
			i += read_quoted(s + i, scratch, &sn);
			continue;
		}
		size_t w = strcspn(s + i, " =\"\n");
		if (s[i + w] != '=' || n == TEXT_MAX_PAIRS) {
			i += strcspn(s + i, " \n");
			continue;
		}
		snprintf(keys[n], sizeof(keys[n]), "%.*s", (int)w, s + i);
		i += w + 1;
		if (s[i] == '"') {
			i += read_quoted(s + i, vals[n], &val_n[n]);
		} else {
			val_n[n] = strcspn(s + i, " \n");
			memcpy(vals[n], s + i, val_n[n]);
			i += val_n[n];
		}
		vals[n][val_n[n]] = '\0';
		n++;
	}
	return n;
}

static int
count_key(size_t n, const char *key)
{
	int c = 0;
	for (size_t i = 0; i < n; i++)
		c += strcmp(keys[i], key) == 0;
	return c;
}

static const char *
text_val(size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i], key) == 0)
			return vals[i];
	}
	return NULL;
}

static size_t vformat_at(char *out, size_t cap, enum ws_log_format format, const char *ts,
			 const char *src, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static size_t
vformat_at(char *out, size_t cap, enum ws_log_format format, const char *ts, const char *src,
	   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = ws_log_vformat(out, cap, format, WS_LOG_INFO, ts, src, fmt, ap);
	va_end(ap);
	return n;
}

static const char open_fmt[] = "open id=%llu addr=%s path=\"%.*s%s%s\"";

static void
text_layout(void)
{
	fmt_line(WS_LOG_TEXT, open_fmt, 7ULL, "127.0.0.1", 4, "/a b", "?", "x=1");
	CHECK_STR(line, TS " info  open id=7 addr=127.0.0.1 path=\"/a b?x=1\" (t.c:1)\n");
	fmt_line(WS_LOG_TEXT, "close id=%d code=%u text=\"%s\" free words", 3, 1000u, "");
	CHECK_STR(line, TS " info  close id=3 code=1000 text=\"\" free words (t.c:1)\n");
	/* a value that needs no quotes in the format gets them when it needs them */
	fmt_line(WS_LOG_TEXT, "db-error op=%s error=%s", "step", "disk I/O \"error\"");
	CHECK_STR(line, TS " info  db-error op=step error=\"disk I/O \\\"error\\\"\" (t.c:1)\n");

	/* no timestamp and no location: level first, nothing after the pairs */
	char out[WS_LOG_LINE_MAX];
	size_t n = vformat_at(out, sizeof(out), WS_LOG_TEXT, NULL, NULL, "stop open=%d", 0);
	static const char text[] = "info  stop open=0\n";
	CHECK_MEM(out, n, text, sizeof(text) - 1);
	n = vformat_at(out, sizeof(out), WS_LOG_JSON, NULL, NULL, "stop open=%d", 0);
	static const char json[] =
		"{\"ts\":\"\",\"level\":\"info\",\"event\":\"stop\",\"open\":\"0\"}\n";
	CHECK_MEM(out, n, json, sizeof(json) - 1);
}

static void
json_layout(void)
{
	fmt_line(WS_LOG_JSON, open_fmt, 7ULL, "127.0.0.1", 4, "/a b", "?", "x=1");
	CHECK_STR(line,
		  "{\"ts\":\"" TS "\",\"level\":\"info\",\"src\":\"t.c:1\",\"event\":\"open\","
		  "\"id\":\"7\",\"addr\":\"127.0.0.1\",\"path\":\"/a b?x=1\"}\n");
	fmt_line(WS_LOG_JSON, "sandbox profile=none text=\"commands run without a seccomp "
			      "filter\" and more");
	CHECK_STR(line,
		  "{\"ts\":\"" TS "\",\"level\":\"info\",\"src\":\"t.c:1\",\"event\":\"sandbox\","
		  "\"profile\":\"none\",\"text\":\"commands run without a seccomp filter\","
		  "\"text_2\":\"and more\"}\n");
	json_t *o = parse_json();
	json_decref(o);
}

/* Issue 9.1: a quote, 700 TABs, '=' and a long value overflowed the JSON builder. */
static void
path_9_1(char *p, size_t cap)
{
	size_t n = 0;
	memcpy(p, "/chat?x=\"", 9);
	n = 9;
	memset(p + n, '\t', 700);
	n += 700;
	p[n++] = '=';
	memset(p + n, 'A', cap - n - 1);
	p[cap - 1] = '\0';
}

static void
overflow_tabs_json(void)
{
	char path[6000];
	path_9_1(path, sizeof(path));
	fmt_line(WS_LOG_JSON, open_fmt, 1ULL, "127.0.0.1", (int)strlen(path), path, "", "");
	json_t *o = parse_json();
	if (!o)
		return;
	CHECK_STR(jstr(o, "event"), "open");
	CHECK_STR(jstr(o, "addr"), "127.0.0.1");
	CHECK(json_is_true(json_object_get(o, "truncated")));
	const char *v = jstr(o, "path");
	CHECK(v && strncmp(v, path, 9 + 700 + 1) == 0); /* the TABs survive, escaped */
	CHECK(v && strlen(v) < strlen(path));
	CHECK_UINT(json_object_size(o), 8);
	json_decref(o);
}

static void
overflow_tabs_text(void)
{
	char path[6000];
	path_9_1(path, sizeof(path));
	fmt_line(WS_LOG_TEXT, open_fmt, 1ULL, "127.0.0.1", (int)strlen(path), path, "", "");
	if (!one_printable_line(line, line_n))
		return;
	size_t n = text_pairs(line);
	CHECK_UINT(n, 4);
	CHECK_STR(text_val(n, "addr"), "127.0.0.1");
	CHECK_STR(text_val(n, "truncated"), "yes");
	/* a value shows at most 2048 bytes: the TABs (\x09 each) are cut, at a whole escape */
	const char *v = text_val(n, "path");
	CHECK(v && strlen(v) >= 500 && strncmp(v, path, strlen(v)) == 0);
	CHECK(strstr(line, "path=\"/chat?x=\\\"\\x09\\x09") != NULL);
}

/* Every buffer size from the smallest to the largest, hostile values in both formats. */
static void
overflow_every_cap(void)
{
	char path[3000];
	path_9_1(path, sizeof(path));
	for (size_t i = 709; i < sizeof(path) - 1; i += 7)
		path[i] = (char)(0x80 + i % 0x80); /* and bytes that are not UTF-8 */
	char *out = NULL;
	for (size_t cap = WS_LOG_LINE_MIN; cap <= WS_LOG_LINE_MAX + 8; cap++) {
		for (int f = 0; f < 2; f++) {
			free(out);
			out = malloc(cap); /* exact size: AddressSanitizer sees a write past it */
			if (!out)
				abort();
			size_t n = vformat_at(out, cap, (enum ws_log_format)f, TS, "t.c:1",
					      "open id=%d addr=%s path=\"%s\" x=%s", 1, "1.2.3.4",
					      path, path);
			if (!CHECK(n > 0 && n <= cap && n <= WS_LOG_LINE_MAX))
				break;
			memcpy(line, out, n);
			line_n = n;
			line[n] = '\0';
			if (!one_printable_line(line, n))
				break;
			if (f == WS_LOG_JSON) {
				json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
				if (!CHECK(o != NULL) ||
				    !CHECK(json_is_true(json_object_get(o, "truncated")))) {
					fprintf(stderr, "  cap %zu: %s", cap, line);
					json_decref(o);
					break;
				}
				json_decref(o);
			} else if (!CHECK(strstr(line, " truncated=yes") != NULL)) {
				break;
			}
		}
	}
	free(out);
	char small[WS_LOG_LINE_MIN];
	CHECK_UINT(vformat_at(small, sizeof(small) - 1, WS_LOG_TEXT, TS, NULL, "x"), 0);
	CHECK(vformat_at(small, sizeof(small), WS_LOG_TEXT, TS, NULL, "x") > 0);
}

/* Issue 15.4: a raw quote in the query forged `addr` (and could forge `level`). */
static const char *const forgeries[] = {
	"/chat?x=\"addr=203.0.113.66",
	"/chat?x=\" addr=203.0.113.66",
	"/chat?x=\" level=error event=pwned ts=0 src=x truncated=no",
	"/a\" addr=\"203.0.113.66\" \"",
	"/a\\\" addr=203.0.113.66",
	"/a\n2026-01-01T00:00:00.000Z error fake addr=203.0.113.66",
	"/a\r\n{\"ts\":\"0\",\"level\":\"error\",\"event\":\"x\",\"addr\":\"203.0.113.66\"}",
};

static void
forged_addr_text(void)
{
	for (size_t i = 0; i < sizeof(forgeries) / sizeof(forgeries[0]); i++) {
		const char *p = forgeries[i];
		fmt_line(WS_LOG_TEXT, open_fmt, 9ULL, "127.0.0.1", (int)strlen(p), p, "", "");
		if (!one_printable_line(line, line_n))
			continue;
		CHECK(strncmp(line, TS " info  open ", strlen(TS) + 12) == 0);
		size_t n = text_pairs(line);
		CHECK_UINT(n, 3);
		CHECK_INT(count_key(n, "addr"), 1);
		CHECK_STR(text_val(n, "addr"), "127.0.0.1");
		CHECK_STR(text_val(n, "path"), p);
		CHECK_INT(count_key(n, "level"), 0);
		/* free text from a conversion is quoted too: it cannot look like a pair */
		fmt_line(WS_LOG_TEXT, "lws %s", p);
		CHECK_UINT(text_pairs(line), 0);
		/* and neither can the event */
		fmt_line(WS_LOG_TEXT, "%s tail=1", p);
		n = text_pairs(line);
		CHECK_UINT(n, 1);
		CHECK_STR(text_val(n, "tail"), "1");
	}
}

static void
forged_addr_json(void)
{
	for (size_t i = 0; i < sizeof(forgeries) / sizeof(forgeries[0]); i++) {
		const char *p = forgeries[i];
		fmt_line(WS_LOG_JSON, open_fmt, 9ULL, "127.0.0.1", (int)strlen(p), p, "", "");
		json_t *o = parse_json();
		if (!o)
			continue;
		CHECK_UINT(json_object_size(o), 7);
		CHECK_STR(jstr(o, "event"), "open");
		CHECK_STR(jstr(o, "addr"), "127.0.0.1");
		CHECK_STR(jstr(o, "path"), p);
		json_decref(o);
		fmt_line(WS_LOG_JSON, "%s addr=%s", p, "127.0.0.1");
		o = parse_json();
		if (o) {
			CHECK_STR(jstr(o, "event"), p);
			CHECK_STR(jstr(o, "addr"), "127.0.0.1");
		}
		json_decref(o);
	}
}

/* Keys the format repeats, or that collide with the logger's own, are renamed. */
static void
duplicate_keys(void)
{
#define DUP_FMT "e a=%d a=%d level=x ts=1 event=y src=z truncated=no text=t free %s"
	fmt_line(WS_LOG_JSON, DUP_FMT, 1, 2, "words");
	json_t *o = parse_json();
	if (o) {
		CHECK_STR(jstr(o, "event"), "e");
		CHECK_STR(jstr(o, "src"), "t.c:1");
		CHECK_STR(jstr(o, "a"), "1");
		CHECK_STR(jstr(o, "a_2"), "2");
		CHECK_STR(jstr(o, "level_2"), "x");
		CHECK_STR(jstr(o, "ts_2"), "1");
		CHECK_STR(jstr(o, "event_2"), "y");
		CHECK_STR(jstr(o, "src_2"), "z");
		CHECK_STR(jstr(o, "truncated_2"), "no");
		CHECK(json_object_get(o, "truncated") == NULL);
		CHECK_STR(jstr(o, "text"), "t");
		CHECK_STR(jstr(o, "text_2"), "free words");
	}
	json_decref(o);
	fmt_line(WS_LOG_TEXT, DUP_FMT, 1, 2, "words");
	CHECK_STR(line, TS " info  e a=1 a_2=2 level_2=x ts_2=1 event_2=y src_2=z truncated_2=no "
			   "text=t free \"words\" (t.c:1)\n");
	/* a_2 written by the format and a_2 made from a repeat do not collide either */
	fmt_line(WS_LOG_JSON, "e a=1 a=2 a_2=3");
	o = parse_json();
	if (o) {
		CHECK_STR(jstr(o, "a_2"), "2");
		CHECK_STR(jstr(o, "a_2_2"), "3");
	}
	json_decref(o);
}

static void
all_bytes(char *p)
{
	for (int i = 1; i < 256; i++)
		p[i - 1] = (char)i;
	p[255] = '\0';
}

static void
high_bytes_json(void)
{
	char p[256];
	all_bytes(p);
	fmt_line(WS_LOG_JSON, "open path=\"%s\" utf8=%s", p,
		 "caf\xc3\xa9 \xf0\x9f\x98\x80 \xed\xa0\x80");
	json_t *o = parse_json();
	if (!o)
		return;
	const char *v = jstr(o, "path");
	CHECK(v && strncmp(v, p, 0x7f) == 0);          /* ASCII comes back as it was */
	CHECK(v && strstr(v, "\xef\xbf\xbd") != NULL); /* stray bytes as U+FFFD */
	/* valid UTF-8 is kept (as \u escapes on the line), surrogates are not */
	CHECK_STR(jstr(o, "utf8"),
		  "caf\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK(strstr(line, "caf\\u00e9 \\ud83d\\ude00") != NULL);
	json_decref(o);
}

static void
high_bytes_text(void)
{
	char p[256];
	all_bytes(p);
	fmt_line(WS_LOG_TEXT, "open path=%s", p);
	if (!one_printable_line(line, line_n))
		return;
	size_t n = text_pairs(line);
	CHECK_UINT(n, 1);
	CHECK_MEM(vals[0], val_n[0], p, 255); /* every byte, escaped, comes back */
	CHECK(strstr(line, "\\x01\\x02") != NULL);
	CHECK(strstr(line, "\\xfe\\xff\"") != NULL);
}

static void
newlines_one_line(void)
{
	const char *p = "/a\r\nb\nc\x1b[31m\x7f\x85\xe2\x80\xa8";
	for (int f = 0; f < 2; f++) {
		fmt_line((enum ws_log_format)f, "open path=\"%s\" reason=%s", p, "x\ny");
		if (!one_printable_line(line, line_n))
			continue;
		CHECK(memchr(line, '\n', line_n - 1) == NULL);
		CHECK(memchr(line, '\r', line_n) == NULL);
	}
	fmt_line(WS_LOG_JSON, "open path=\"%s\"", p);
	json_t *o = parse_json();
	if (o)
		CHECK_STR(jstr(o, "path"), "/a\r\nb\nc\x1b[31m\x7f\xef\xbf\xbd\xe2\x80\xa8");
	json_decref(o);
}

static const char *volatile null_string; /* NULL, unknown to the compiler */

static void
conversions(void)
{
	errno = ENOENT;
	fmt_line(WS_LOG_TEXT,
		 "c a=%d b=%i c=%u d=%ld e=%lld f=%llu g=%zu h=%zd i=%x j=%X k=%o "
		 "l=%hhd m=%hd n=%jd o=%td p=%c q=%% r=%s s=%.3s t=%.*s u=%-4s| v=%4s "
		 "w=%*d x=%-*d| y=%05d z=%m",
		 -1, 2, 3u, -4L, -5LL, 6ULL, (size_t)7, (ssize_t)-8, 255u, 255u, 8u,
		 (signed char)-9, (short)10, (intmax_t)-11, (ptrdiff_t)12, 'Z', null_string,
		 "abcdef", 2, "xyz", "ab", "cd", 3, 4, 3, 5, 42);
	CHECK_STR(line,
		  TS " info  c a=-1 b=2 c=3 d=-4 e=-5 f=6 g=7 h=-8 i=ff j=FF k=10 l=-9 m=10 "
		     "n=-11 o=12 p=Z q=% r=(null) s=abc t=xy u=\"ab  |\" v=\"  cd\" w=\"  4\" "
		     "x=\"5  |\" y=00042 z=\"No such file or directory\" (t.c:1)\n");
	CHECK_INT(errno, ENOENT);
	/* a backslash before a conversion does not hide it (printf would not) */
	fmt_line(WS_LOG_TEXT, "b k=\"a\\%s\\\"\" n=%d", "v", 5);
	CHECK_STR(line, TS " info  b k=\"a\\\\v\\\"\" n=5 (t.c:1)\n");
	fmt_line(WS_LOG_TEXT, "f x=%.2f y=%p", 1.5, (void *)0x10);
	CHECK_STR(line, TS " info  f x=1.50 y=0x10 (t.c:1)\n");
	/* a huge width cannot overrun anything */
	fmt_line(WS_LOG_TEXT, "w x=%*d y=%*s z=1", 100000, 1, -100000, "s");
	CHECK(line_n <= WS_LOG_LINE_MAX);
	CHECK(strstr(line, "truncated=yes") != NULL);
	CHECK(strstr(line, " z=1 ") != NULL);
}

/* One value is capped, so the fields after it still fit. */
static void
value_cap(void)
{
	static char big[10000];
	memset(big, 'v', sizeof(big) - 1);
	for (int f = 0; f < 2; f++) {
		fmt_line((enum ws_log_format)f, "e big=%s after=%s", big, "kept");
		CHECK(line_n <= WS_LOG_LINE_MAX);
		CHECK(strstr(line, "kept") != NULL);
		CHECK(strstr(line, f ? "\"truncated\":true}" : " truncated=yes (t.c:1)\n") != NULL);
	}
}

static void
many_fields(void)
{
	char fmt[512] = "e";
	for (int i = 0; i < 40; i++)
		snprintf(fmt + strlen(fmt), sizeof(fmt) - strlen(fmt), " k%d=%d", i, i);
	for (int f = 0; f < 2; f++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
		fmt_line((enum ws_log_format)f, fmt);
#pragma GCC diagnostic pop
		if (f == WS_LOG_TEXT) {
			size_t n = text_pairs(line);
			CHECK_UINT(n, 32); /* 31 of the format's, and the marker */
			CHECK_STR(text_val(n, "k30"), "30");
			CHECK_STR(text_val(n, "truncated"), "yes");
		} else {
			json_t *o = parse_json();
			if (o) {
				CHECK_STR(jstr(o, "k30"), "30");
				CHECK(json_object_get(o, "k31") == NULL);
				CHECK(json_is_true(json_object_get(o, "truncated")));
			}
			json_decref(o);
		}
	}
}

/* Info lines wait for the flush (the hook hears of each batch once), warnings do not. */
static int hook_calls;

static void
hook(void *arg)
{
	(void)arg;
	hook_calls++;
}

static bool
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* Reads exactly `lines` lines from fd into buf; checks each parses. */
static void
read_lines(int fd, int lines, const char *events)
{
	char buf[16384];
	size_t n = 0;
	int got = 0;
	while (got < lines && n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (!CHECK(r > 0))
			return;
		for (ssize_t i = 0; i < r; i++)
			got += buf[n + (size_t)i] == '\n';
		n += (size_t)r;
	}
	CHECK_INT(got, lines);
	CHECK(!readable(fd));
	char seen[256] = "";
	for (size_t off = 0; off < n;) {
		size_t len = (size_t)((char *)memchr(buf + off, '\n', n - off) - (buf + off)) + 1;
		json_t *o = json_loadb(buf + off, len, JSON_REJECT_DUPLICATES, NULL);
		if (CHECK(o != NULL))
			snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s%s",
				 *seen ? " " : "", jstr(o, "event"));
		json_decref(o);
		off += len;
	}
	CHECK_STR(seen, events);
}

static void
batching_child(const void *arg)
{
	(void)arg;
	int fds[2];
	if (!CHECK(pipe(fds) == 0) || !CHECK(dup2(fds[1], STDERR_FILENO) >= 0))
		return;
	close(fds[1]);
	ws_log_init(WS_LOG_INFO, WS_LOG_JSON);
	ws_log_set_flush_hook(hook, NULL);
	errno = EBADF;
	ws_log(WS_LOG_INFO, "open id=%d path=%s", 1, "/\"a\n");
	CHECK_INT(errno, EBADF); /* logging keeps errno */
	ws_log(WS_LOG_INFO, "close id=%d", 1);
	ws_log(WS_LOG_DEBUG, "hidden id=%d", 1);
	CHECK_INT(hook_calls, 1);
	CHECK(!readable(fds[0]));
	ws_log_flush();
	read_lines(fds[0], 2, "open close");
	ws_log(WS_LOG_INFO, "again id=%d", 2);
	CHECK_INT(hook_calls, 2);
	CHECK(!readable(fds[0]));
	ws_log(WS_LOG_WARN, "warned id=%d", 2);
	read_lines(fds[0], 2, "again warned");
	ws_log_set_flush_hook(NULL, NULL);
	ws_log(WS_LOG_INFO, "direct id=%d", 3);
	read_lines(fds[0], 1, "direct");
	CHECK_INT(hook_calls, 2);
}

static void
write_batching(void)
{
	check_fork(batching_child, NULL, "write-batching");
}

static const struct check_case cases[] = {
	{ "text-layout", text_layout },
	{ "json-layout", json_layout },
	{ "overflow-tabs-json", overflow_tabs_json },
	{ "overflow-tabs-text", overflow_tabs_text },
	{ "overflow-every-cap", overflow_every_cap },
	{ "forged-addr-text", forged_addr_text },
	{ "forged-addr-json", forged_addr_json },
	{ "duplicate-keys", duplicate_keys },
	{ "high-bytes-json", high_bytes_json },
	{ "high-bytes-text", high_bytes_text },
	{ "newlines-one-line", newlines_one_line },
	{ "conversions", conversions },
	{ "value-cap", value_cap },
	{ "many-fields", many_fields },
	{ "write-batching", write_batching },
};

CHECK_MAIN(cases)
