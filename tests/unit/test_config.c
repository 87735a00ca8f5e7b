/*
 * config: defaults, environment twins, flags over the environment, value
 * parsers, and the one-line errors. getopt keeps state between calls, so a
 * case parses once, or once per child (check_fork) when it tries several.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const char *const env_names[] = {
	"WS_HOST",
	"WS_PORT",
	"WS_NOTIFY_FD",
	"WS_MAX_MESSAGE",
	"WS_MAX_CONNECTIONS",
	"WS_MAX_CONNECTIONS_PER_IP",
	"WS_SEND_QUEUE",
	"WS_RATE_LIMIT",
	"WS_RATE_BURST",
	"WS_PING_INTERVAL",
	"WS_IDLE_TIMEOUT",
	"WS_HANDSHAKE_TIMEOUT",
	"WS_DRAIN_TIMEOUT",
	"WS_ALLOWED_ORIGIN",
	"WS_TOKEN",
	"WS_LOG_LEVEL",
	"WS_LOG_FORMAT",
	"WS_READ_ONLY",
	"WS_MAX_RUNS",
};

static void
clean_env(void)
{
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
}

/* What a parse printed. */
struct out {
	char o[16384];
	char e[4096];
};

static void
read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t k;
	while (n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(fd);
}

/*
 * The parsed configuration is static so that what it points to stays
 * reachable until exit, as config.h says it lives (no false leak reports).
 */
static struct ws_config cfg;

/* Parses args (NULL-terminated) with stdout and stderr captured in out. */
static enum ws_config_result
parse(const struct ws_option_table *extra, const char *const *args, struct out *out)
{
	static char *argv[64];
	int argc = 0;
	argv[argc++] = (char *)"ws-test";
	while (args && *args && argc < 63)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;

	int po[2], pe[2];
	if (pipe(po) || pipe(pe))
		abort();
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	dup2(po[1], 1);
	dup2(pe[1], 2);
	close(po[1]);
	close(pe[1]);
	enum ws_config_result r = ws_config_parse(&cfg, extra, "ws-test", "A test server.", argc,
						  argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	read_all(po[0], out->o, sizeof(out->o));
	read_all(pe[0], out->e, sizeof(out->e));
	return r;
}

/* An error is exactly one line on stderr, naming what was wrong. */
static bool
one_error_line(const struct out *out, const char *names)
{
	const char *nl = strchr(out->e, '\n');
	bool ok = CHECK(strncmp(out->e, "error: ", 7) == 0);
	ok &= CHECK(nl != NULL && nl[1] == '\0');
	ok &= CHECK(strstr(out->e, names) != NULL);
	ok &= CHECK_STR(out->o, "");
	if (!ok)
		fprintf(stderr, "  stderr was: %s\n  expected it to name: %s\n", out->e, names);
	return ok;
}

/* ------------------------------------------------------------------ */

static void
defaults(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	struct out out;
	CHECK_INT(parse(NULL, NULL, &out), WS_CONFIG_RUN);
	CHECK_STR(out.o, "");
	CHECK_STR(out.e, "");
	CHECK_STR(cfg.host, "0.0.0.0");
	CHECK_UINT(cfg.port, 8080);
	CHECK_UINT(cfg.notify_fd, UINT32_MAX);
	CHECK_UINT(cfg.max_message, 1u << 20);
	CHECK_UINT(cfg.max_connections, 16384);
	CHECK_UINT(cfg.max_connections_per_ip, 0);
	CHECK_UINT(cfg.send_queue, 4u << 20);
	CHECK_UINT(cfg.rate_limit, 0);
	CHECK_UINT(cfg.rate_burst, 0);
	CHECK_UINT(cfg.ping_interval_ms, 30000);
	CHECK_UINT(cfg.idle_timeout_ms, 0);
	CHECK_UINT(cfg.handshake_timeout_ms, 10000);
	CHECK_UINT(cfg.drain_timeout_ms, 5000);
	CHECK_UINT(cfg.allowed_origins.n, 0);
	CHECK(cfg.token_file == NULL);
	CHECK(cfg.token == NULL);
	CHECK_INT(cfg.level, WS_LOG_INFO);
	CHECK_INT(cfg.format, WS_LOG_TEXT);
}

static void
set_all_env(void)
{
	clean_env();
	setenv("WS_HOST", "127.0.0.1", 1);
	setenv("WS_PORT", "9000", 1);
	setenv("WS_NOTIFY_FD", "3", 1);
	setenv("WS_MAX_MESSAGE", "2m", 1);
	setenv("WS_MAX_CONNECTIONS", "10", 1);
	setenv("WS_MAX_CONNECTIONS_PER_IP", "2", 1);
	setenv("WS_SEND_QUEUE", "8M", 1);
	setenv("WS_RATE_LIMIT", "5", 1);
	setenv("WS_RATE_BURST", "9", 1);
	setenv("WS_PING_INTERVAL", "1.5", 1);
	setenv("WS_IDLE_TIMEOUT", "60", 1);
	setenv("WS_HANDSHAKE_TIMEOUT", "2.25", 1);
	setenv("WS_DRAIN_TIMEOUT", "0", 1);
	setenv("WS_ALLOWED_ORIGIN", "https://a.example,,https://b.example,", 1);
	setenv("WS_TOKEN", "env-token", 1);
	setenv("WS_LOG_LEVEL", "debug", 1);
	setenv("WS_LOG_FORMAT", "json", 1);
}

static void
env_twins(void)
{
	set_all_env();
	ws_config_defaults(&cfg, 8080);
	struct out out;
	CHECK_INT(parse(NULL, NULL, &out), WS_CONFIG_RUN);
	CHECK_STR(out.e, "");
	CHECK_STR(cfg.host, "127.0.0.1");
	CHECK_UINT(cfg.port, 9000);
	CHECK_UINT(cfg.notify_fd, 3);
	CHECK_UINT(cfg.max_message, 2u << 20);
	CHECK_UINT(cfg.max_connections, 10);
	CHECK_UINT(cfg.max_connections_per_ip, 2);
	CHECK_UINT(cfg.send_queue, 8u << 20);
	CHECK_UINT(cfg.rate_limit, 5);
	CHECK_UINT(cfg.rate_burst, 9);
	CHECK_UINT(cfg.ping_interval_ms, 1500);
	CHECK_UINT(cfg.idle_timeout_ms, 60000);
	CHECK_UINT(cfg.handshake_timeout_ms, 2250);
	CHECK_UINT(cfg.drain_timeout_ms, 0);
	/* comma-separated, empty items skipped */
	if (CHECK_UINT(cfg.allowed_origins.n, 2)) {
		CHECK_STR(cfg.allowed_origins.v[0], "https://a.example");
		CHECK_STR(cfg.allowed_origins.v[1], "https://b.example");
	}
	CHECK_STR(cfg.token, "env-token");
	CHECK_INT(cfg.level, WS_LOG_DEBUG);
	CHECK_INT(cfg.format, WS_LOG_JSON);
}

static void
flags_override_env(void)
{
	set_all_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = {
		"--host", "::1",         "--port=9001", "--max-message", "1k", "--ping-interval",
		"0",      "--log-level", "warn",        "--rate-burst",  "3",  "--log-format",
		"text",   NULL,
	};
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	CHECK_STR(out.e, "");
	CHECK_STR(cfg.host, "::1");
	CHECK_UINT(cfg.port, 9001);
	CHECK_UINT(cfg.max_message, 1024);
	CHECK_UINT(cfg.ping_interval_ms, 0);
	CHECK_UINT(cfg.rate_burst, 3);
	CHECK_INT(cfg.level, WS_LOG_WARN);
	CHECK_INT(cfg.format, WS_LOG_TEXT);
	/* what no flag named still comes from the environment */
	CHECK_UINT(cfg.send_queue, 8u << 20);
	CHECK_UINT(cfg.idle_timeout_ms, 60000);
	CHECK_UINT(cfg.rate_limit, 5);
}

/* A later flag wins over an earlier one of the same name. */
static void
last_flag_wins(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--port", "1", "--port", "2", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	CHECK_UINT(cfg.port, 2);
}

/* ------------------------------------------------------------------ */
/* Value parsers. */

static void
size_values(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 },
		{ "1", 1 },
		{ "1024", 1024 },
		{ "1k", 1024 },
		{ "1K", 1024 },
		{ "2m", 2u << 20 },
		{ "3M", 3u << 20 },
		{ "1g", 1u << 30 },
		{ "4G", 4ull << 30 },
		{ "18014398509481983k", UINT64_MAX & ~1023ull },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"",
		"k",
		"-1",
		"+1",
		" 1",
		"1 ",
		"1.5k",
		"1kb",
		"1kk",
		"1t",
		"0x10",
		"1e3",
		"abc",
		"18446744073709551616",
		"18014398509481984k",
		"17179869184g",
		"-0",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 7;
		if (!CHECK(ws_config_parse_size(good[i].s, &v)) || !CHECK_UINT(v, good[i].v))
			CHECK_STR(good[i].s, "");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		if (!CHECK(!ws_config_parse_size(bad[i], &v)))
			CHECK_STR(bad[i], "");
		CHECK_UINT(v, 7);
	}
}

static void
seconds_values(void)
{
	static const struct {
		const char *s;
		uint32_t ms;
	} good[] = {
		{ "0", 0 },
		{ "1", 1000 },
		{ "0.5", 500 },
		{ ".5", 500 },
		{ "1.5", 1500 },
		{ "0.001", 1 },
		{ "2.25", 2250 },
		{ "30", 30000 },
		{ "86400", 86400000 },
		{ "007.50", 7500 },
		{ "1e3", 1000000 },
		{ "2.5E1", 25000 },
		{ "4000000", 4000000000u },
	};
	static const char *const bad[] = {
		"",    "-1",  "+1",      "-0.5",  " 1",   "1 ",    "1s", "abc", "inf",
		"nan", "1,5", "4000001", "1e300", "0x10", "1.5.5", ".",  "1e-", "e3",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint32_t ms = 7;
		if (!CHECK(ws_config_parse_seconds(good[i].s, &ms)) || !CHECK_UINT(ms, good[i].ms))
			CHECK_STR(good[i].s, "");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t ms = 7;
		if (!CHECK(!ws_config_parse_seconds(bad[i], &ms)))
			CHECK_STR(bad[i], "");
		CHECK_UINT(ms, 7);
	}
}

static void
uint_values(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 },
		{ "65535", 65535 },
		{ "4294967296", 4294967296ull },
		{ "18446744073709551615", UINT64_MAX },
		{ "007", 7 },
	};
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "1k", "1.0", "0x10", "abc", "18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 7;
		if (!CHECK(ws_config_parse_uint(good[i].s, &v)) || !CHECK_UINT(v, good[i].v))
			CHECK_STR(good[i].s, "");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		if (!CHECK(!ws_config_parse_uint(bad[i], &v)))
			CHECK_STR(bad[i], "");
	}
}

/*
 * Whitespace is no number, whichever kind: the parsers reject a leading
 * ' ' but strtoull/strtod skip any other isspace() character first.
 */
static void
values_reject_whitespace(void)
{
	static const char *const bad[] = { "\t1", "\n1", "\v1", "\f1", "\r1", "\t-1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		uint32_t ms = 7;
		if (!CHECK(!ws_config_parse_uint(bad[i], &v)))
			CHECK_UINT(i, 100);
		if (!CHECK(!ws_config_parse_size(bad[i], &v)))
			CHECK_UINT(i, 100);
		if (!CHECK(!ws_config_parse_seconds(bad[i], &ms)))
			CHECK_UINT(i, 100);
	}
}

/* ------------------------------------------------------------------ */
/* Errors: WS_CONFIG_ERROR and one stderr line naming the flag. */

struct bad_arg {
	const char *args[4];
	const char *names; /* what the error line must name */
};

static const struct bad_arg bad_args[] = {
	{ { "--port", "70000" }, "--port" },
	{ { "--port", "-1" }, "--port" },
	{ { "--port", "8O" }, "--port" },
	{ { "--port", "" }, "--port" },
	{ { "--port=abc" }, "--port" },
	{ { "--notify-fd", "65536" }, "--notify-fd" },
	{ { "--max-message", "0" }, "--max-message" },
	{ { "--max-message", "2g" }, "--max-message" },
	{ { "--max-message", "1.5m" }, "--max-message" },
	{ { "--max-message", "10x" }, "--max-message" },
	{ { "--max-connections", "0" }, "--max-connections" },
	{ { "--max-connections-per-ip", "1000001" }, "--max-connections-per-ip" },
	{ { "--send-queue", "1000" }, "--send-queue" },
	{ { "--rate-limit", "10000001" }, "--rate-limit" },
	{ { "--rate-burst", "many" }, "--rate-burst" },
	{ { "--ping-interval", "soon" }, "--ping-interval" },
	{ { "--ping-interval", "-1" }, "--ping-interval" },
	{ { "--ping-interval", "86401" }, "--ping-interval" },
	{ { "--idle-timeout", "1e10" }, "--idle-timeout" },
	{ { "--handshake-timeout", "0.5" }, "--handshake-timeout" },
	{ { "--drain-timeout", "3601" }, "--drain-timeout" },
	{ { "--log-level", "loud" }, "--log-level" },
	{ { "--log-format", "xml" }, "--log-format" },
	/* not values at all */
	{ { "--bogus" }, "--bogus" },
	{ { "--bogus=1" }, "--bogus" },
	{ { "-x" }, "-x" },
	{ { "--port" }, "--port" },
	{ { "stray" }, "stray" },
	{ { "--port", "1", "stray" }, "stray" },
};

static void
bad_arg_child(const void *arg)
{
	const struct bad_arg *b = arg;
	clean_env();
	ws_config_defaults(&cfg, 8080);
	struct out out;
	static const char *args[5];
	memcpy(args, b->args, sizeof(b->args));
	args[4] = NULL;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_ERROR);
	one_error_line(&out, b->names);
}

static void
bad_values(void)
{
	for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
		char what[128];
		snprintf(what, sizeof(what), "%s %s", bad_args[i].args[0],
			 bad_args[i].args[1] ? bad_args[i].args[1] : "");
		check_fork(bad_arg_child, &bad_args[i], what);
	}
}

struct bad_env {
	const char *name, *value;
};

static const struct bad_env bad_envs[] = {
	{ "WS_PORT", "http" },        { "WS_MAX_MESSAGE", "big" },   { "WS_SEND_QUEUE", "-5" },
	{ "WS_PING_INTERVAL", "1m" }, { "WS_LOG_LEVEL", "verbose" }, { "WS_MAX_CONNECTIONS", "" },
};

static void
bad_env_child(const void *arg)
{
	const struct bad_env *b = arg;
	clean_env();
	setenv(b->name, b->value, 1);
	ws_config_defaults(&cfg, 8080);
	struct out out;
	CHECK_INT(parse(NULL, NULL, &out), WS_CONFIG_ERROR);
	one_error_line(&out, b->name);
}

static void
bad_env_values(void)
{
	for (size_t i = 0; i < sizeof(bad_envs) / sizeof(bad_envs[0]); i++)
		check_fork(bad_env_child, &bad_envs[i], bad_envs[i].name);
}

/* A bad environment value is an error even when a flag would override it. */
static void
bad_env_then_flag(void)
{
	clean_env();
	setenv("WS_PORT", "http", 1);
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--port", "1", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_ERROR);
	one_error_line(&out, "WS_PORT");
}

/* ------------------------------------------------------------------ */

static void
help(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--port", "1", "--help", "--bogus", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_EXIT);
	CHECK_STR(out.e, "");
	CHECK(strncmp(out.o, "Usage: ws-test ", 15) == 0);
	CHECK(strstr(out.o, "A test server.") != NULL);
	CHECK(strstr(out.o, "--max-message BYTES") != NULL);
	CHECK(strstr(out.o, "[WS_MAX_MESSAGE]") != NULL);
	CHECK(strstr(out.o, "--help") != NULL);
	CHECK(strstr(out.o, "--version") != NULL);
	CHECK(strstr(out.o, "100") != NULL); /* the exit statuses */
}

static void
help_short(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "-h", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_EXIT);
	CHECK(strncmp(out.o, "Usage: ", 7) == 0);
}

static void
version(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--version", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_EXIT);
	CHECK_STR(out.o, "ws-test " WS_VERSION "\n");
	CHECK_STR(out.e, "");
}

static void
list_repeatable(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = {
		"--allowed-origin", "https://a",           "--allowed-origin=https://b",
		"--allowed-origin", "https://c,https://d", NULL,
	};
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	if (CHECK_UINT(cfg.allowed_origins.n, 4)) {
		CHECK_STR(cfg.allowed_origins.v[0], "https://a");
		CHECK_STR(cfg.allowed_origins.v[1], "https://b");
		/* a flag's value is a comma-separated list, as the variable's is */
		CHECK_STR(cfg.allowed_origins.v[2], "https://c");
		CHECK_STR(cfg.allowed_origins.v[3], "https://d");
	}
}

static void
list_env_comma(void)
{
	clean_env();
	setenv("WS_ALLOWED_ORIGIN", "https://x.example,http://localhost:3000", 1);
	ws_config_defaults(&cfg, 8080);
	struct out out;
	CHECK_INT(parse(NULL, NULL, &out), WS_CONFIG_RUN);
	if (CHECK_UINT(cfg.allowed_origins.n, 2)) {
		CHECK_STR(cfg.allowed_origins.v[0], "https://x.example");
		CHECK_STR(cfg.allowed_origins.v[1], "http://localhost:3000");
	}
	/* the variable itself is left as it was */
	CHECK_STR(getenv("WS_ALLOWED_ORIGIN"), "https://x.example,http://localhost:3000");
}

/*
 * The send queue bounds what piles up for a slow reader; one message alone
 * is bounded by --max-message (conn.c admits it into an empty queue), so a
 * queue smaller than a message is a valid setting.
 */
static void
send_queue_below_max_message(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--max-message", "1m", "--send-queue", "1k", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	CHECK_STR(out.e, "");
	CHECK_UINT(cfg.send_queue, 1024);
	CHECK_UINT(cfg.max_message, 1u << 20);
}

static void
rate_burst_derived(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--rate-limit", "50", NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	CHECK_UINT(cfg.rate_limit, 50);
	CHECK_UINT(cfg.rate_burst, 100);
}

static char token_path[64];

static void
remove_token_file(void)
{
	if (*token_path)
		unlink(token_path);
}

static const char *
token_file(const char *content)
{
	strcpy(token_path, "/tmp/ws-test-token-XXXXXX");
	int fd = mkstemp(token_path);
	if (fd < 0)
		abort();
	atexit(remove_token_file);
	size_t n = strlen(content);
	if (write(fd, content, n) != (ssize_t)n)
		abort();
	close(fd);
	return token_path;
}

static void
token_file_read(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	const char *args[] = { "--token-file", token_file("s3cret-token\r\nsecond line\n"), NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	CHECK_STR(out.e, "");
	CHECK_STR(cfg.token_file, token_path);
	CHECK_STR(cfg.token, "s3cret-token");
}

static void
token_file_no_newline(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	const char *args[] = { "--token-file", token_file("abc"), NULL };
	struct out out;
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_RUN);
	CHECK_STR(cfg.token, "abc");
}

static void
token_file_empty(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	const char *args[] = { "--token-file", token_file("\n"), NULL };
	struct out out;
	enum ws_config_result r = parse(NULL, args, &out);
	CHECK(r == WS_CONFIG_ERROR || r == WS_CONFIG_SYSTEM);
	one_error_line(&out, "--token-file");
}

static void
token_file_missing(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--token-file", "/nonexistent/ws-token", NULL };
	struct out out;
	/* a file that cannot be read is a system failure (exit 111), not usage */
	CHECK_INT(parse(NULL, args, &out), WS_CONFIG_SYSTEM);
	one_error_line(&out, "--token-file");
}

/* ------------------------------------------------------------------ */
/* A server's own option table parses alongside the common one. */

struct server_opts {
	const char *shell;
	bool read_only;
	uint32_t max_runs;
	uint32_t run_timeout_ms;
};

static bool
check_shell(const char *v)
{
	return v[0] == '/';
}

static const struct ws_option server_opt_list[] = {
	{ "shell", NULL, "PATH", WS_OPT_STRING, offsetof(struct server_opts, shell), 0, 0,
	  "absolute path of the shell", check_shell },
	{ "read-only", "WS_READ_ONLY", NULL, WS_OPT_FLAG, offsetof(struct server_opts, read_only),
	  0, 0, "refuse writes", NULL },
	{ "max-runs", "WS_MAX_RUNS", "N", WS_OPT_UINT, offsetof(struct server_opts, max_runs), 1,
	  10, "commands at once", NULL },
	{ "run-timeout", NULL, "SECONDS", WS_OPT_SECONDS,
	  offsetof(struct server_opts, run_timeout_ms), 100, 60000, "per command", NULL },
};

static struct server_opts sopts;

static const struct ws_option_table server_table = {
	server_opt_list, sizeof(server_opt_list) / sizeof(server_opt_list[0]), &sopts
};

static void
extra_table(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	sopts = (struct server_opts){ .shell = "/bin/sh", .max_runs = 4 };
	static const char *const args[] = { "--shell", "/bin/bash",  "--read-only", "--port",
					    "7",       "--max-runs", "10",          "--run-timeout",
					    "0.1",     NULL };
	struct out out;
	CHECK_INT(parse(&server_table, args, &out), WS_CONFIG_RUN);
	CHECK_STR(out.e, "");
	CHECK_STR(sopts.shell, "/bin/bash");
	CHECK(sopts.read_only);
	CHECK_UINT(sopts.max_runs, 10);
	CHECK_UINT(sopts.run_timeout_ms, 100);
	CHECK_UINT(cfg.port, 7);
}

static void
extra_table_help(void)
{
	clean_env();
	ws_config_defaults(&cfg, 8080);
	static const char *const args[] = { "--help", NULL };
	struct out out;
	CHECK_INT(parse(&server_table, args, &out), WS_CONFIG_EXIT);
	CHECK(strstr(out.o, "--shell PATH") != NULL);
	CHECK(strstr(out.o, "--read-only") != NULL);
	CHECK(strstr(out.o, "[WS_READ_ONLY]") != NULL);
	CHECK(strstr(out.o, "--port N") != NULL);
}

struct extra_case {
	const char *env_name, *env_value;
	const char *args[3];
	enum ws_config_result want;
	bool read_only;    /* when RUN */
	const char *names; /* when ERROR */
};

static const struct extra_case extra_cases[] = {
	{ "WS_READ_ONLY", "1", { NULL }, WS_CONFIG_RUN, true, NULL },
	{ "WS_READ_ONLY", "true", { NULL }, WS_CONFIG_RUN, true, NULL },
	{ "WS_READ_ONLY", "yes", { NULL }, WS_CONFIG_RUN, true, NULL },
	{ "WS_READ_ONLY", "0", { NULL }, WS_CONFIG_RUN, false, NULL },
	{ "WS_READ_ONLY", "false", { NULL }, WS_CONFIG_RUN, false, NULL },
	{ "WS_READ_ONLY", "no", { NULL }, WS_CONFIG_RUN, false, NULL },
	{ "WS_READ_ONLY", "0", { "--read-only" }, WS_CONFIG_RUN, true, NULL },
	{ "WS_READ_ONLY", "maybe", { NULL }, WS_CONFIG_ERROR, false, "WS_READ_ONLY" },
	{ "WS_MAX_RUNS", "11", { NULL }, WS_CONFIG_ERROR, false, "WS_MAX_RUNS" },
	{ NULL, NULL, { "--shell", "sh" }, WS_CONFIG_ERROR, false, "--shell" },
	{ NULL, NULL, { "--max-runs", "0" }, WS_CONFIG_ERROR, false, "--max-runs" },
	{ NULL, NULL, { "--run-timeout", "0.05" }, WS_CONFIG_ERROR, false, "--run-timeout" },
};

static void
extra_case_child(const void *arg)
{
	const struct extra_case *c = arg;
	clean_env();
	if (c->env_name)
		setenv(c->env_name, c->env_value, 1);
	ws_config_defaults(&cfg, 8080);
	sopts = (struct server_opts){ .shell = "/bin/sh", .max_runs = 4 };
	struct out out;
	if (!CHECK_INT(parse(&server_table, c->args, &out), c->want))
		return;
	if (c->want == WS_CONFIG_RUN)
		CHECK(sopts.read_only == c->read_only);
	else
		one_error_line(&out, c->names);
}

static void
extra_table_values(void)
{
	for (size_t i = 0; i < sizeof(extra_cases) / sizeof(extra_cases[0]); i++) {
		char what[96];
		const struct extra_case *c = &extra_cases[i];
		snprintf(what, sizeof(what), "%s=%s %s %s", c->env_name ? c->env_name : "-",
			 c->env_value ? c->env_value : "", c->args[0] ? c->args[0] : "",
			 c->args[1] ? c->args[1] : "");
		check_fork(extra_case_child, &extra_cases[i], what);
	}
}

static const struct check_case cases[] = {
	{ "defaults", defaults },
	{ "env-twins", env_twins },
	{ "flags-override-env", flags_override_env },
	{ "last-flag-wins", last_flag_wins },
	{ "size-values", size_values },
	{ "seconds-values", seconds_values },
	{ "uint-values", uint_values },
	{ "values-reject-whitespace", values_reject_whitespace },
	{ "bad-values", bad_values },
	{ "bad-env-values", bad_env_values },
	{ "bad-env-then-flag", bad_env_then_flag },
	{ "help", help },
	{ "help-short", help_short },
	{ "version", version },
	{ "list-repeatable", list_repeatable },
	{ "list-env-comma", list_env_comma },
	{ "send-queue-below-max-message", send_queue_below_max_message },
	{ "rate-burst-derived", rate_burst_derived },
	{ "token-file-read", token_file_read },
	{ "token-file-no-newline", token_file_no_newline },
	{ "token-file-empty", token_file_empty },
	{ "token-file-missing", token_file_missing },
	{ "extra-table", extra_table },
	{ "extra-table-help", extra_table_help },
	{ "extra-table-values", extra_table_values },
};

CHECK_MAIN(cases)
