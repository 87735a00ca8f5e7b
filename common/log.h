/*
 * log: the project's one logger. Lines go to stderr, as text or as JSON.
 *
 * Messages follow one convention so both formats stay structured:
 *   ws_log(WS_LOG_INFO, "open id=%llu addr=%s path=\"%s\"", ...)
 * the first word names the event, the rest are key=value pairs (a value with
 * spaces is double-quoted). The JSON format turns that into one object per
 * line: {"ts":..., "level":..., "event":"open", "id":"7", ...}.
 */
#ifndef WS_LOG_H
#define WS_LOG_H

#include <stdbool.h>

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

void ws_log_write(enum ws_log_level level, const char *file, int line,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#ifdef NDEBUG
#define ws_log(level, ...) \
	do { if (ws_log_enabled(level)) ws_log_write(level, NULL, 0, __VA_ARGS__); } while (0)
#else
#define ws_log(level, ...) \
	do { if (ws_log_enabled(level)) ws_log_write(level, __FILE__, __LINE__, __VA_ARGS__); } while (0)
#endif

#endif
