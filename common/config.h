/*
 * config: command-line flags with environment-variable twins, described by
 * tables so the common flags and each server's own flags parse, validate and
 * print --help the same way. The command line wins over the environment.
 */
#ifndef WS_CONFIG_H
#define WS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* Exit statuses (s6's convention). */
#define WS_EXIT_OK 0
#define WS_EXIT_USAGE 100
#define WS_EXIT_SYSTEM 111

enum ws_opt_type {
	WS_OPT_STRING,  /* const char * */
	WS_OPT_UINT,    /* uint32_t, within [min, max] */
	WS_OPT_SIZE,    /* uint64_t bytes, k/m/g suffixes, within [min, max] */
	WS_OPT_SECONDS, /* uint32_t milliseconds; given as seconds, fractions allowed */
	WS_OPT_FLAG,    /* bool, takes no value (env: 1/true/yes or 0/false/no) */
	WS_OPT_LIST,    /* struct ws_strlist; repeatable, each value comma-separated */
};

struct ws_strlist {
	const char **v;
	size_t n;
	bool from_flags; /* the command line has given items (they replace the env's) */
	char **owned;    /* the split copies the items point into */
	size_t nowned;
};

struct ws_option {
	const char *name; /* long flag without dashes */
	const char *env;  /* twin variable, or NULL */
	const char *arg;  /* value placeholder for --help */
	enum ws_opt_type type;
	size_t offset;     /* into the table's target struct */
	uint64_t min, max; /* numeric bounds (SECONDS: in milliseconds) */
	const char *help;
	/* optional extra check of a STRING value; returns false to reject */
	bool (*check)(const char *value);
};

struct ws_option_table {
	const struct ws_option *opts;
	size_t n;
	void *target;
};

/* What every server takes. */
struct ws_config {
	const char *host;
	uint32_t port;
	uint32_t notify_fd; /* UINT32_MAX when unset */
	uint64_t max_message;
	uint32_t max_connections;
	uint32_t max_connections_per_ip;
	uint64_t send_queue;
	uint64_t max_queued; /* --max-queued: all connections' queues together */
	uint32_t rate_limit;
	uint32_t rate_burst; /* 0: derived from rate_limit */
	uint32_t ping_interval_ms;
	uint32_t idle_timeout_ms;
	uint32_t handshake_timeout_ms;
	uint32_t drain_timeout_ms;
	struct ws_strlist allowed_origins;
	const char *token_file;
	const char *token; /* WS_TOKEN, or the file's first line */
	char *token_owned; /* the latter, freed by ws_config_finish */
	const char *log_level;
	const char *log_format;
	bool no_self_sandbox;        /* skip the server's own seccomp filter */
	bool debug_exec_after_start; /* test hook (builds without NDEBUG): try execve once serving */

	/* derived by ws_config_parse */
	enum ws_log_level level;
	enum ws_log_format format;
};

/* Fills the common defaults; servers then override what differs. */
void ws_config_defaults(struct ws_config *cfg, uint32_t default_port);

enum ws_config_result {
	WS_CONFIG_RUN,    /* parsed: start the server */
	WS_CONFIG_EXIT,   /* --help or --version printed: exit 0 */
	WS_CONFIG_ERROR,  /* one line printed on stderr: exit WS_EXIT_USAGE */
	WS_CONFIG_SYSTEM, /* a file could not be read (one line printed): exit WS_EXIT_SYSTEM */
};

/*
 * Parses the environment then argv into cfg and, when given, the server's
 * own table. `name` and `summary` head --help. Strings in the result point
 * into argv, the environment or the heap and live until exit.
 */
enum ws_config_result ws_config_parse(struct ws_config *cfg, const struct ws_option_table *extra,
				      const char *name, const char *summary, int argc, char **argv);

/* The exit status for a result other than WS_CONFIG_RUN (0, 100 or 111). */
int ws_config_exit_status(enum ws_config_result r);

/* Frees what parsing allocated (the token read from a file, lists). */
void ws_config_finish(struct ws_config *cfg);

/* Parsers shared with the servers' own checks; false on a bad value. */
bool ws_config_parse_size(const char *s, uint64_t *out);
bool ws_config_parse_uint(const char *s, uint64_t *out);
bool ws_config_parse_seconds(const char *s, uint32_t *ms);

#endif
