#include "log.h"

#include <errno.h>
#include <libwebsockets.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* Appends s[0..n) to out as a JSON string body (no quotes). */
static size_t
json_escape(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 7 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

/* Length of the token starting at s: a quoted string or up to a space. */
static size_t
token_len(const char *s, bool *quoted)
{
	*quoted = *s == '"';
	if (*quoted) {
		const char *e = strchr(s + 1, '"');
		return e ? (size_t)(e - s) + 1 : strlen(s);
	}
	return strcspn(s, " ");
}

static void
emit_json(enum ws_log_level lvl, const char *ts, const char *level, const char *loc,
	  const char *msg)
{
	char out[4096];
	size_t o = (size_t)snprintf(out, sizeof(out),
				    "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level);
	if (loc)
		o += (size_t)snprintf(out + o, sizeof(out) - o, ",\"src\":\"%s\"", loc);

	size_t ev = strcspn(msg, " ");
	o += (size_t)snprintf(out + o, sizeof(out) - o, ",\"event\":\"");
	o += json_escape(out + o, sizeof(out) - o, msg, ev);
	o += (size_t)snprintf(out + o, sizeof(out) - o, "\"");

	const char *p = msg + ev;
	while (*p && o + 16 < sizeof(out)) {
		while (*p == ' ')
			p++;
		const char *eq = strchr(p, '=');
		size_t key = strcspn(p, " =");
		if (!*p || !eq || p + key != eq) {
			/* free text after the pairs: keep it whole */
			if (*p) {
				o += (size_t)snprintf(out + o, sizeof(out) - o, ",\"text\":\"");
				o += json_escape(out + o, sizeof(out) - o, p, strlen(p));
				o += (size_t)snprintf(out + o, sizeof(out) - o, "\"");
			}
			break;
		}
		bool quoted;
		size_t vl = token_len(eq + 1, &quoted);
		const char *v = eq + 1;
		size_t vn = vl;
		if (quoted) {
			v++;
			vn = vl >= 2 ? vl - 2 : 0;
		}
		o += (size_t)snprintf(out + o, sizeof(out) - o, ",\"");
		o += json_escape(out + o, sizeof(out) - o, p, key);
		o += (size_t)snprintf(out + o, sizeof(out) - o, "\":\"");
		o += json_escape(out + o, sizeof(out) - o, v, vn);
		o += (size_t)snprintf(out + o, sizeof(out) - o, "\"");
		p = eq + 1 + vl;
	}
	if (o > sizeof(out) - 3)
		o = sizeof(out) - 3;
	out[o++] = '}';
	out[o++] = '\n';
	emit(lvl, out, o);
}

void
ws_log_write(enum ws_log_level level, const char *file, int line,
	     const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec now;
	struct tm tm;
	char ts[40];
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	char loc[256] = "";
	if (file) {
		const char *base = strrchr(file, '/');
		snprintf(loc, sizeof(loc), "%s:%d", base ? base + 1 : file, line);
	}

	if (format == WS_LOG_JSON) {
		emit_json(level, ts, level_names[level], file ? loc : NULL, msg);
		return;
	}
	char text[2400];
	int len = file ? snprintf(text, sizeof(text), "%s %-5s %s (%s)\n", ts,
				  level_names[level], msg, loc)
		       : snprintf(text, sizeof(text), "%s %-5s %s\n", ts, level_names[level], msg);
	if (len > 0)
		emit(level, text, (size_t)len < sizeof(text) ? (size_t)len : sizeof(text) - 1);
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
