#include "log.h"

#include <errno.h>
#include <libwebsockets.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static enum ws_log_level threshold = WS_LOG_INFO;
static enum ws_log_format format = WS_LOG_TEXT;

/*
 * Info and debug lines wait here for the end of the loop turn (the flush
 * hook), so a burst of connections costs one write, not two per connection.
 * Warnings and errors, and everything without a hook, go out at once.
 */
static char pending[16384];
static size_t pending_len;
static bool flush_requested;
static void (*flush_hook)(void *);
static void *flush_arg;

void
ws_log_flush(void)
{
	size_t off = 0;
	while (off < pending_len) {
		ssize_t w = write(STDERR_FILENO, pending + off, pending_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* nowhere to log to: drop rather than block */
		off += (size_t)w;
	}
	pending_len = 0;
	flush_requested = false;
}

void
ws_log_set_flush_hook(void (*hook)(void *), void *arg)
{
	ws_log_flush();
	flush_hook = hook;
	flush_arg = arg;
}

static void
emit(enum ws_log_level level, const char *line, size_t n)
{
	if (pending_len + n > sizeof(pending))
		ws_log_flush();
	if (n > sizeof(pending))
		n = sizeof(pending);
	memcpy(pending + pending_len, line, n);
	pending_len += n;
	if (level <= WS_LOG_WARN || !flush_hook) {
		ws_log_flush();
	} else if (!flush_requested) {
		flush_requested = true;
		flush_hook(flush_arg);
	}
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

bool
ws_log_level_parse(const char *name, enum ws_log_level *out)
{
	for (int i = 0; i <= WS_LOG_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum ws_log_level)i;
			return true;
		}
	}
	return false;
}

bool
ws_log_format_parse(const char *name, enum ws_log_format *out)
{
	if (strcmp(name, "text") == 0)
		*out = WS_LOG_TEXT;
	else if (strcmp(name, "json") == 0)
		*out = WS_LOG_JSON;
	else
		return false;
	return true;
}

bool
ws_log_enabled(enum ws_log_level level)
{
	return level <= threshold;
}

/* ---- one line: the format's structure, then the values escaped ---- */

#define MAX_FIELDS 32
#define KEY_MAX 32
#define VALUE_OUT_MAX 2048 /* output bytes of one value */
#define TS_OUT_MAX 64
#define SRC_OUT_MAX 96

enum field_kind { FIELD_EVENT, FIELD_PAIR, FIELD_FREE };

struct field {
	enum field_kind kind;
	bool quoted;     /* the format quotes (part of) it */
	bool dynamic;    /* a conversion wrote into it */
	bool cut;        /* it did not all fit in the arena */
	const char *key; /* pairs: the key, in the format */
	size_t key_n;
	size_t off, n; /* the raw value: arena[off..off+n) */
};

/* A line before it is written out: its fields and their raw bytes. */
struct parsed {
	struct field f[MAX_FIELDS];
	size_t nf;
	bool cut; /* words past MAX_FIELDS were dropped */
	int saved_errno;
	size_t len;
	/* no value can show more raw bytes than a line holds */
	unsigned char arena[WS_LOG_LINE_MAX];
};

static void
raw_put(struct parsed *ps, struct field *f, const void *p, size_t n)
{
	/* more raw bytes than a value may show are never needed */
	size_t room = sizeof(ps->arena) - ps->len;
	if (room > f->off + VALUE_OUT_MAX - ps->len)
		room = f->off + VALUE_OUT_MAX - ps->len;
	if (n > room) {
		n = room;
		f->cut = true;
	}
	if (n) {
		memcpy(ps->arena + ps->len, p, n);
		ps->len += n;
	}
}

/* A string conversion's bytes, padded to width like printf does. */
static void
raw_put_padded(struct parsed *ps, struct field *f, const char *s, size_t n, int width, bool left)
{
	static const char spaces[16] = "                ";
	size_t pad = width > 0 && (size_t)width > n ? (size_t)width - n : 0;
	if (left)
		raw_put(ps, f, s, n);
	while (pad) {
		size_t k = pad < sizeof(spaces) ? pad : sizeof(spaces);
		raw_put(ps, f, spaces, k);
		pad -= k;
	}
	if (!left)
		raw_put(ps, f, s, n);
}

static size_t
put_digits(char *out, int v)
{
	char tmp[12];
	size_t n = 0, o = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	while (n)
		out[o++] = tmp[--n];
	return o;
}

enum length { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_J, LEN_Z, LEN_T, LEN_BIG_L };

/* Reads digits at *s, up to cap (more digits still advance *s). */
static int
read_digits(const char **s, int cap)
{
	int v = 0;
	while (**s >= '0' && **s <= '9') {
		if (v < cap)
			v = v * 10 + (**s - '0');
		(*s)++;
	}
	return v < cap ? v : cap;
}

/*
 * The format is the one the compiler checked against the arguments
 * (format(printf)); each conversion is re-issued to snprintf one at a time.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
/*
 * Expands the conversion at p (a '%') into f, taking its arguments from ap.
 * Returns where the format goes on, or NULL for a conversion it does not
 * know (then nothing was taken and the rest of the format is literal).
 */
static const char *
convert(struct parsed *ps, struct field *f, const char *p, va_list *ap)
{
	const char *s = p + 1;
	if (*s == '%') {
		raw_put(ps, f, "%", 1);
		return s + 1;
	}
	char spec[32];
	size_t sn = 0;
	spec[sn++] = '%';
	bool left = false;
	while (*s && strchr("-+ #0'", *s)) {
		left |= *s == '-';
		if (sn < 8)
			spec[sn++] = *s;
		s++;
	}
	int width = 0, prec = -1;
	if (*s == '*') {
		width = va_arg(*ap, int);
		s++;
		if (width < 0) {
			left = true;
			spec[sn++] = '-';
			width = width < -4096 ? 4096 : -width;
		}
	} else {
		width = read_digits(&s, 4096);
	}
	if (*s == '.') {
		s++;
		if (*s == '*') {
			prec = va_arg(*ap, int);
			s++;
		} else {
			prec = read_digits(&s, INT_MAX / 10);
		}
	}
	const char *len_at = s;
	enum length len = LEN_NONE;
	switch (*s) {
	case 'h':
		len = s[1] == 'h' ? LEN_HH : LEN_H;
		break;
	case 'l':
		len = s[1] == 'l' ? LEN_LL : LEN_L;
		break;
	case 'q':
		len = LEN_LL;
		break;
	case 'j':
		len = LEN_J;
		break;
	case 'z':
		len = LEN_Z;
		break;
	case 't':
		len = LEN_T;
		break;
	case 'L':
		len = LEN_BIG_L;
		break;
	default:
		break;
	}
	s += len == LEN_HH || (len == LEN_LL && *s == 'l') ? 2 : len != LEN_NONE ? 1 : 0;
	char conv = *s;
	if (!conv)
		return NULL;
	s++;
	f->dynamic = true;

	if (conv == 's' || conv == 'm') {
		const char *str;
		if (conv == 'm') {
			str = strerror(ps->saved_errno);
		} else if (len == LEN_L) {
			(void)va_arg(*ap, const void *); /* wide strings are not written */
			str = "?";
		} else {
			str = va_arg(*ap, const char *);
		}
		if (!str)
			str = "(null)";
		size_t n = prec >= 0 ? strnlen(str, (size_t)prec) : strlen(str);
		raw_put_padded(ps, f, str, n, width, left);
		return s;
	}
	if (conv == 'c') {
		char c = (char)(unsigned char)va_arg(*ap, int);
		raw_put_padded(ps, f, &c, 1, width, left);
		return s;
	}
	if (conv == 'n') {
		(void)va_arg(*ap, void *); /* counts nothing */
		return s;
	}

	/* plain integers (nearly every call) without a trip through snprintf */
	if (sn == 1 && width == 0 && prec < 0 && strchr("diu", conv)) {
		uintmax_t v;
		bool neg = false;
		if (conv == 'u') {
			switch (len) {
			case LEN_L:
				v = va_arg(*ap, unsigned long);
				break;
			case LEN_LL:
				v = va_arg(*ap, unsigned long long);
				break;
			case LEN_J:
				v = va_arg(*ap, uintmax_t);
				break;
			case LEN_Z:
				v = va_arg(*ap, size_t);
				break;
			case LEN_T:
				v = (uintmax_t)va_arg(*ap, ptrdiff_t);
				break;
			case LEN_HH:
				v = (unsigned char)va_arg(*ap, unsigned);
				break;
			case LEN_H:
				v = (unsigned short)va_arg(*ap, unsigned);
				break;
			default:
				v = va_arg(*ap, unsigned);
				break;
			}
		} else {
			intmax_t sv;
			switch (len) {
			case LEN_L:
				sv = va_arg(*ap, long);
				break;
			case LEN_LL:
				sv = va_arg(*ap, long long);
				break;
			case LEN_J:
				sv = va_arg(*ap, intmax_t);
				break;
			case LEN_Z:
				sv = va_arg(*ap, ssize_t);
				break;
			case LEN_T:
				sv = va_arg(*ap, ptrdiff_t);
				break;
			case LEN_HH:
				sv = (signed char)va_arg(*ap, int);
				break;
			case LEN_H:
				sv = (short)va_arg(*ap, int);
				break;
			default:
				sv = va_arg(*ap, int);
				break;
			}
			neg = sv < 0;
			v = neg ? (uintmax_t)0 - (uintmax_t)sv : (uintmax_t)sv;
		}
		char digits[24];
		size_t k = sizeof(digits);
		do {
			digits[--k] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		if (neg)
			digits[--k] = '-';
		raw_put(ps, f, digits + k, sizeof(digits) - k);
		return s;
	}

	/* other numbers: rebuilt with the width and precision spelled out */
	if (width > 0)
		sn += put_digits(spec + sn, width < 512 ? width : 512);
	if (prec >= 0) {
		spec[sn++] = '.';
		sn += put_digits(spec + sn, prec < 512 ? prec : 512);
	}
	while (len_at < s - 1)
		spec[sn++] = *len_at++;
	spec[sn++] = conv;
	spec[sn] = '\0';

	char num[128];
	int r;
	switch (conv) {
	case 'd':
	case 'i':
		switch (len) {
		case LEN_L:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, long));
			break;
		case LEN_LL:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, long long));
			break;
		case LEN_J:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, intmax_t));
			break;
		case LEN_Z:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, ssize_t));
			break;
		case LEN_T:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, ptrdiff_t));
			break;
		default:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, int));
			break;
		}
		break;
	case 'u':
	case 'o':
	case 'x':
	case 'X':
		switch (len) {
		case LEN_L:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, unsigned long));
			break;
		case LEN_LL:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, unsigned long long));
			break;
		case LEN_J:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, uintmax_t));
			break;
		case LEN_Z:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, size_t));
			break;
		case LEN_T:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, ptrdiff_t));
			break;
		default:
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, unsigned));
			break;
		}
		break;
	case 'p':
		r = snprintf(num, sizeof(num), spec, va_arg(*ap, void *));
		break;
	case 'e':
	case 'E':
	case 'f':
	case 'F':
	case 'g':
	case 'G':
	case 'a':
	case 'A':
		if (len == LEN_BIG_L)
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, long double));
		else
			r = snprintf(num, sizeof(num), spec, va_arg(*ap, double));
		break;
	default:
		f->dynamic = false;
		return NULL;
	}
	if (r > 0)
		raw_put(ps, f, num, (size_t)r < sizeof(num) ? (size_t)r : sizeof(num) - 1);
	return s;
}
#pragma GCC diagnostic pop

static bool
key_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
key_char(char c)
{
	return key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Splits the format into words and expands their conversions. */
static void
parse(struct parsed *ps, const char *fmt, va_list *ap)
{
	const char *p = fmt;
	bool literal = false; /* after a conversion convert() does not know */
	ps->nf = 0;
	ps->len = 0;
	ps->cut = false;
	for (;;) {
		while (*p == ' ')
			p++;
		if (!*p && ps->nf)
			break;
		if (ps->nf == MAX_FIELDS) {
			ps->cut = true;
			break;
		}
		struct field *f = &ps->f[ps->nf];
		*f = (struct field){ .kind = ps->nf ? FIELD_FREE : FIELD_EVENT, .off = ps->len };
		ps->nf++;
		if (f->kind == FIELD_FREE && key_start(*p)) {
			size_t k = 1;
			while (k <= KEY_MAX && key_char(p[k]))
				k++;
			if (k <= KEY_MAX && p[k] == '=') {
				f->kind = FIELD_PAIR;
				f->key = p;
				f->key_n = k;
				p += k + 1;
			}
		}
		bool quote = false;
		while (*p) {
			if (*p == '%' && !literal) {
				const char *next = convert(ps, f, p, ap);
				if (next) {
					p = next;
					continue;
				}
				literal = true;
			}
			if (*p == '"') {
				quote = !quote;
				f->quoted = true;
				p++;
				continue;
			}
			if (!quote && *p == ' ')
				break;
			/* \" and \\ inside quotes are literal; a '%' is always a conversion */
			if (quote && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			size_t run = 1 + strcspn(p + 1, quote ? "%\"\\" : "% \"");
			raw_put(ps, f, p, run);
			p += run;
		}
		f->n = ps->len - f->off;
	}
}

/* ---- writing a line that can never pass its end ---- */

struct line {
	char *p;
	size_t len, cap;
};

/* Appends all of s[0..n) if it fits before end (and cap), else nothing. */
static bool
put(struct line *l, size_t end, const void *s, size_t n)
{
	if (end > l->cap)
		end = l->cap;
	if (l->len > end || n > end - l->len)
		return false;
	memcpy(l->p + l->len, s, n);
	l->len += n;
	return true;
}

static bool
puts_(struct line *l, size_t end, const char *s)
{
	return put(l, end, s, strlen(s));
}

static const char hex[] = "0123456789abcdef";

static bool
plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/*
 * Copies the run of plain bytes at v[*i..n), the common case of both
 * escapers, and moves *i past it; false when it had to be cut at end.
 */
static bool
put_plain_run(struct line *l, size_t end, const unsigned char *v, size_t n, size_t *i)
{
	size_t run = 0;
	while (*i + run < n && plain(v[*i + run]))
		run++;
	size_t room = end > l->len ? end - l->len : 0;
	if (run > room) {
		put(l, end, v + *i, room);
		return false;
	}
	put(l, end, v + *i, run);
	*i += run;
	return true;
}

/* Writes v escaped for a quoted text value, cut before end; false when cut. */
static bool
text_escaped(struct line *l, size_t end, const unsigned char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (!put_plain_run(l, end, v, n, &i))
			return false;
		if (i == n)
			break;
		unsigned char c = v[i++];
		char u[4] = { '\\', (char)c, 0, 0 };
		size_t k = 2;
		if (c != '"' && c != '\\') {
			u[1] = 'x';
			u[2] = hex[c >> 4];
			u[3] = hex[c & 15];
			k = 4;
		}
		if (!put(l, end, u, k))
			return false;
	}
	return true;
}

static bool
bare_ok(const unsigned char *v, size_t n, bool eq_ok)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == ' ' || !plain(v[i]) || (v[i] == '=' && !eq_ok))
			return false;
	}
	return true;
}

/* One text value, bare or quoted, within end (which leaves room for the quotes). */
static bool
text_value(struct line *l, size_t end, const unsigned char *v, size_t n, bool quote)
{
	if (!quote) {
		size_t room = end > l->len ? end - l->len : 0;
		put(l, end, v, n < room ? n : room);
		return n <= room;
	}
	if (!put(l, end, "\"", 1))
		return false;
	bool whole = text_escaped(l, end - 1, v, n);
	put(l, end, "\"", 1);
	return whole;
}

/* The code point of the UTF-8 sequence at s, or 0 bytes when it is not one. */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t k;
	uint32_t v;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		v = c & 0x0f;
		lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlongs */
		hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		v = c & 0x07;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing past U+10FFFF */
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		unsigned char b = s[i];
		if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
			return 0;
		v = (v << 6) | (b & 0x3f);
	}
	*cp = v;
	return k;
}

static size_t
json_u(char *u, uint32_t cp)
{
	u[0] = '\\';
	u[1] = 'u';
	u[2] = hex[(cp >> 12) & 15];
	u[3] = hex[(cp >> 8) & 15];
	u[4] = hex[(cp >> 4) & 15];
	u[5] = hex[cp & 15];
	return 6;
}

/*
 * Writes v as the inside of a JSON string, ASCII only (bytes that are not
 * UTF-8 become U+FFFD), cut at a character before end; false when cut.
 */
static bool
json_escaped(struct line *l, size_t end, const unsigned char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (!put_plain_run(l, end, v, n, &i))
			return false;
		if (i == n)
			break;
		unsigned char c = v[i];
		char u[12];
		size_t k, used = 1;
		uint32_t cp;
		if (c == '"' || c == '\\') {
			u[0] = '\\';
			u[1] = (char)c;
			k = 2;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			u[0] = '\\';
			u[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
			k = 2;
		} else if (c < 0x80) {
			k = json_u(u, c);
		} else if ((used = utf8_decode(v + i, n - i, &cp)) == 0) {
			used = 1;
			k = json_u(u, 0xfffd);
		} else if (cp < 0x10000) {
			k = json_u(u, cp);
		} else {
			cp -= 0x10000;
			json_u(u, 0xd800 + (cp >> 10));
			k = 6 + json_u(u + 6, 0xdc00 + (cp & 0x3ff));
		}
		if (!put(l, end, u, k))
			return false;
		i += used;
	}
	return true;
}

static bool
json_value(struct line *l, size_t end, const unsigned char *v, size_t n)
{
	if (!put(l, end, "\"", 1))
		return false;
	bool whole = json_escaped(l, end - 1, v, n);
	put(l, end, "\"", 1);
	return whole;
}

/* ---- unique keys ---- */

struct names {
	char s[MAX_FIELDS + 1][KEY_MAX + 4];
	size_t n;
};

static const char *const reserved[] = { "ts", "level", "src", "event", "truncated" };

static bool
taken(const struct names *nm, const char *name)
{
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		if (strcmp(name, reserved[i]) == 0)
			return true;
	}
	for (size_t i = 0; i < nm->n; i++) {
		if (strcmp(name, nm->s[i]) == 0)
			return true;
	}
	return false;
}

/* key[0..n) (n <= KEY_MAX), or key_2, key_3, ... when taken; kept in nm. */
static const char *
unique(struct names *nm, const char *key, size_t n)
{
	char *s = nm->s[nm->n < MAX_FIELDS ? nm->n : MAX_FIELDS];
	memcpy(s, key, n);
	s[n] = '\0';
	for (int i = 2; taken(nm, s) && i < 100; i++) {
		size_t k = n;
		if (i >= 10)
			s[k++] = (char)('0' + i / 10);
		s[k++] = (char)('0' + i % 10);
		s[k] = '\0';
		memmove(s + n + 1, s + n, k - n + 1);
		s[n] = '_';
	}
	if (nm->n < MAX_FIELDS)
		nm->n++;
	return s;
}

/* ---- the two formats ---- */

static const char *const level_padded[] = { "error", "warn ", "info ", "debug" };

static const unsigned char *
value(const struct parsed *ps, const struct field *f)
{
	return ps->arena + f->off;
}

static size_t
min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static size_t
render_text(const struct parsed *ps, struct line *l, unsigned lvl, const char *ts, const char *src)
{
	/* the tail (marker, location, newline) always has room */
	char tail_buf[SRC_OUT_MAX + 8];
	struct line tail = { tail_buf, 0, sizeof(tail_buf) };
	if (src) {
		put(&tail, SIZE_MAX, " (", 2);
		text_escaped(&tail, SRC_OUT_MAX, (const unsigned char *)src, strlen(src));
		put(&tail, SIZE_MAX, ")", 1);
	}
	put(&tail, SIZE_MAX, "\n", 1);
	static const char marker[] = " truncated=yes";
	size_t body_end = l->cap - tail.len - (sizeof(marker) - 1);

	if (ts) {
		text_escaped(l, TS_OUT_MAX, (const unsigned char *)ts, strlen(ts));
		put(l, body_end, " ", 1);
	}
	puts_(l, body_end, level_padded[lvl]);
	put(l, body_end, " ", 1);

	bool truncated = ps->cut;
	struct names nm = { .n = 0 };
	for (size_t i = 0; i < ps->nf; i++) {
		const struct field *f = &ps->f[i];
		const unsigned char *v = value(ps, f);
		bool quote = f->quoted || (f->kind != FIELD_PAIR && f->dynamic) ||
			     !bare_ok(v, f->n, f->kind == FIELD_PAIR);
		if (f->kind == FIELD_PAIR) {
			const char *name = unique(&nm, f->key, f->key_n);
			size_t need = 1 + strlen(name) + 1 + 2;
			if (body_end - l->len < need) {
				truncated = true;
				break;
			}
			put(l, body_end, " ", 1);
			puts_(l, body_end, name);
			put(l, body_end, "=", 1);
		} else if (f->kind == FIELD_FREE) {
			if (body_end - l->len < 3) {
				truncated = true;
				break;
			}
			put(l, body_end, " ", 1);
		}
		size_t end = min_size(body_end, l->len + VALUE_OUT_MAX);
		if (!text_value(l, end, v, f->n, quote) || f->cut)
			truncated = true;
	}
	if (truncated)
		put(l, l->cap, marker, sizeof(marker) - 1);
	put(l, l->cap, tail.p, tail.len);
	return l->len;
}

/* All free words, one space apart, as one JSON string. */
static bool
json_free_text(const struct parsed *ps, struct line *l, size_t end)
{
	if (!put(l, end, "\"", 1))
		return false;
	bool whole = true, first = true;
	for (size_t i = 0; i < ps->nf && whole; i++) {
		const struct field *f = &ps->f[i];
		if (f->kind != FIELD_FREE)
			continue;
		if (!first)
			whole = put(l, end - 1, " ", 1);
		first = false;
		whole = whole && json_escaped(l, end - 1, value(ps, f), f->n) && !f->cut;
	}
	put(l, end, "\"", 1);
	return whole;
}

static size_t
render_json(const struct parsed *ps, struct line *l, unsigned lvl, const char *ts, const char *src)
{
	static const char marker[] = ",\"truncated\":true";
	size_t body_end = l->cap - (sizeof(marker) - 1) - 2;

	puts_(l, body_end, "{\"ts\":");
	json_value(l, l->len + TS_OUT_MAX, (const unsigned char *)(ts ? ts : ""),
		   ts ? strlen(ts) : 0);
	puts_(l, body_end, ",\"level\":\"");
	puts_(l, body_end, level_names[lvl]);
	puts_(l, body_end, "\"");
	if (src) {
		puts_(l, body_end, ",\"src\":");
		json_value(l, l->len + SRC_OUT_MAX, (const unsigned char *)src, strlen(src));
	}

	bool truncated = ps->cut, free_done = false;
	struct names nm = { .n = 0 };
	for (size_t i = 0; i < ps->nf; i++) {
		const struct field *f = &ps->f[i];
		const char *name = "event";
		if (f->kind == FIELD_FREE) {
			if (free_done)
				continue;
			free_done = true;
			name = unique(&nm, "text", 4);
		} else if (f->kind == FIELD_PAIR) {
			name = unique(&nm, f->key, f->key_n);
		}
		size_t need = 2 + strlen(name) + 2 + 2;
		if (body_end - l->len < need) {
			truncated = true;
			break;
		}
		puts_(l, body_end, ",\"");
		puts_(l, body_end, name);
		puts_(l, body_end, "\":");
		size_t end = min_size(body_end, l->len + VALUE_OUT_MAX);
		bool whole;
		if (f->kind == FIELD_FREE)
			whole = json_free_text(ps, l, end);
		else
			whole = json_value(l, end, value(ps, f), f->n) && !f->cut;
		if (!whole)
			truncated = true;
	}
	if (truncated)
		put(l, l->cap, marker, sizeof(marker) - 1);
	put(l, l->cap, "}\n", 2);
	return l->len;
}

size_t
ws_log_vformat(char *out, size_t cap, enum ws_log_format fmt_kind, enum ws_log_level level,
	       const char *ts, const char *src, const char *fmt, va_list ap)
{
	if (!out || cap < WS_LOG_LINE_MIN)
		return 0;
	struct parsed ps;
	ps.saved_errno = errno;
	va_list aq;
	va_copy(aq, ap);
	parse(&ps, fmt ? fmt : "", &aq);
	va_end(aq);

	unsigned lvl = (unsigned)level <= WS_LOG_DEBUG ? (unsigned)level : WS_LOG_DEBUG;
	struct line l = { out, 0, min_size(cap, WS_LOG_LINE_MAX) };
	return fmt_kind == WS_LOG_JSON ? render_json(&ps, &l, lvl, ts, src)
				       : render_text(&ps, &l, lvl, ts, src);
}

void
ws_log_write(enum ws_log_level level, const char *file, int line, const char *fmt, ...)
{
	int saved = errno;
	struct timespec now;
	struct tm tm;
	char ts[40];
	/* the calendar part is worked out once a second */
	static time_t ts_sec = -1;
	static char ts_prefix[32];
	static size_t ts_prefix_n;
	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec != ts_sec) {
		gmtime_r(&now.tv_sec, &tm);
		ts_prefix_n = strftime(ts_prefix, sizeof(ts_prefix), "%Y-%m-%dT%H:%M:%S", &tm);
		ts_sec = now.tv_sec;
	}
	memcpy(ts, ts_prefix, ts_prefix_n);
	long ms = now.tv_nsec / 1000000;
	char *t = ts + ts_prefix_n;
	*t++ = '.';
	*t++ = (char)('0' + ms / 100);
	*t++ = (char)('0' + ms / 10 % 10);
	*t++ = (char)('0' + ms % 10);
	*t++ = 'Z';
	*t = '\0';

	char loc[64];
	if (file) {
		const char *base = strrchr(file, '/');
		snprintf(loc, sizeof(loc), "%s:%d", base ? base + 1 : file, line);
	}

	char out[WS_LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	errno = saved; /* for %m */
	size_t len = ws_log_vformat(out, sizeof(out), format, level, ts, file ? loc : NULL, fmt,
				    ap);
	va_end(ap);
	emit(level, out, len);
	errno = saved;
}

static void
lws_emit(int lws_level, const char *line)
{
	enum ws_log_level level = WS_LOG_DEBUG;
	if (lws_level & LLL_ERR)
		level = WS_LOG_ERROR;
	else if (lws_level & LLL_WARN)
		level = WS_LOG_WARN;
	if (!ws_log_enabled(level))
		return;
	/* lws lines carry their own timestamp prefix and newline: trim both */
	const char *p = strstr(line, "] ");
	p = p ? p + 2 : line;
	size_t n = strcspn(p, "\n");
	ws_log_write(level, NULL, 0, "lws text=\"%.*s\"", (int)n, p);
}

void
ws_log_init(enum ws_log_level level, enum ws_log_format fmt)
{
	threshold = level;
	format = fmt;
	int lws_levels = LLL_ERR | LLL_WARN;
	if (level >= WS_LOG_DEBUG)
		lws_levels |= LLL_NOTICE;
	lws_set_log_level(lws_levels, lws_emit);
	/* the fprintf(stderr) of start-up errors stays in step with our writes */
	setvbuf(stderr, NULL, _IONBF, 0);
}
