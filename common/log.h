/*
 * log: the project's one logger. Lines go to stderr, as text or as JSON.
 *
 * The format string is the line's structure:
 *   ws_log(WS_LOG_INFO, "open id=%llu addr=%s path=\"%s\"", ...)
 * its first word names the event and each `key=` written in it (a letter or
 * `_`, then letters, digits, `_` `.` `-`; at most 32) starts a pair; a value
 * runs to the next space of the format, or between the format's own double
 * quotes (inside which `\"` and `\\` are literal). What a conversion
 * (`%s`, `%d`, ...) produces is always a value, never structure: a client's
 * `"`, space, `key=`, newline or byte >= 0x80 cannot end a value, add a key
 * or start a line. Words of the format that are not `key=` are free text.
 *
 * Text:  2026-01-02T03:04:05.678Z info  open id=7 addr=1.2.3.4 path="/a"
 *   One line of printable ASCII. A value is written bare when it is
 *   non-empty printable ASCII without space, `"` or `\` (nor, outside a
 *   pair, `=`); otherwise, and whenever the format quotes it, between
 *   double quotes with `\"`, `\\` and `\xNN` for each byte outside
 *   0x20-0x7e. Free text that holds a conversion's output is always quoted.
 * JSON:  {"ts":"...","level":"info","event":"open","id":"7",...}
 *   One object per line, always valid JSON, printable ASCII (`\uXXXX`;
 *   bytes that are not UTF-8 become U+FFFD). Every value is a string; free
 *   text goes to "text". Keys are unique: "ts", "level", "src", "event"
 *   and "truncated" are the logger's own, and a key the format repeats or
 *   that collides with them is renamed `key_2`, `key_3`, ...
 *
 * A line never exceeds WS_LOG_LINE_MAX bytes (newline included), nor one
 * value 2048 bytes of output; what does not fit is cut at a character
 * boundary and the line ends with `truncated=yes` / `"truncated":true`.
 */
#ifndef WS_LOG_H
#define WS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum ws_log_level {
	WS_LOG_ERROR = 0,
	WS_LOG_WARN = 1,
	WS_LOG_INFO = 2,
	WS_LOG_DEBUG = 3,
};

enum ws_log_format {
	WS_LOG_TEXT = 0,
	WS_LOG_JSON = 1,
};

#define WS_LOG_LINE_MAX 4096 /* bytes per line, newline included */
#define WS_LOG_LINE_MIN 320  /* the smallest buffer ws_log_vformat accepts */

/* Sets the threshold and format; routes libwebsockets' own log lines here. */
void ws_log_init(enum ws_log_level level, enum ws_log_format format);

/* Parses "error", "warn", "info", "debug"; false when the name is unknown. */
bool ws_log_level_parse(const char *name, enum ws_log_level *out);
bool ws_log_format_parse(const char *name, enum ws_log_format *out);

bool ws_log_enabled(enum ws_log_level level);

/*
 * With a hook, info and debug lines are held until ws_log_flush(); the
 * hook is called once when the first line of a batch is held (the server
 * flushes at the end of the loop turn). Warnings and errors are written at
 * once. NULL (the default) writes every line at once.
 */
void ws_log_set_flush_hook(void (*hook)(void *), void *arg);
void ws_log_flush(void);

/* Formats and emits one line (see above); keeps errno. */
void ws_log_write(enum ws_log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Builds the line ws_log_write would emit into out[0..cap), with the given
 * timestamp and source location (either may be NULL), without emitting it.
 * Returns its length (newline included, no NUL written after it), at most
 * min(cap, WS_LOG_LINE_MAX); 0 when cap < WS_LOG_LINE_MIN. For tests.
 */
size_t ws_log_vformat(char *out, size_t cap, enum ws_log_format format, enum ws_log_level level,
		      const char *ts, const char *src, const char *fmt, va_list ap)
	__attribute__((format(printf, 7, 0)));

#ifdef NDEBUG
#define ws_log(level, ...)                                         \
	do {                                                       \
		if (ws_log_enabled(level))                         \
			ws_log_write(level, NULL, 0, __VA_ARGS__); \
	} while (0)
#else
#define ws_log(level, ...)                                                    \
	do {                                                                  \
		if (ws_log_enabled(level))                                    \
			ws_log_write(level, __FILE__, __LINE__, __VA_ARGS__); \
	} while (0)
#endif

#endif
