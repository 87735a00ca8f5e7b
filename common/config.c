#define _GNU_SOURCE /* getopt_long */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define OFF(field) offsetof(struct ws_config, field)
#define SEC(s) (1000u * (uint64_t)(s))

static bool
check_level(const char *v)
{
	enum ws_log_level l;
	return ws_log_level_parse(v, &l);
}

static bool
check_format(const char *v)
{
	enum ws_log_format f;
	return ws_log_format_parse(v, &f);
}

static const struct ws_option common_opts[] = {
	{ "host", "WS_HOST", "ADDR", WS_OPT_STRING, OFF(host), 0, 0,
	  "address to listen on; comma-separated for several", NULL },
	{ "port", "WS_PORT", "N", WS_OPT_UINT, OFF(port), 0, 65535,
	  "TCP port (0: any free port, logged)", NULL },
	{ "notify-fd", "WS_NOTIFY_FD", "FD", WS_OPT_UINT, OFF(notify_fd), 0, 65535,
	  "write \"\\n\" to FD and close it once listening (s6 readiness)", NULL },
	{ "max-message", "WS_MAX_MESSAGE", "BYTES", WS_OPT_SIZE, OFF(max_message), 1, 1ull << 30,
	  "largest message after reassembly; larger: close 1009", NULL },
	{ "max-connections", "WS_MAX_CONNECTIONS", "N", WS_OPT_UINT, OFF(max_connections), 1,
	  1000000, "open connections; one more gets 503", NULL },
	{ "max-connections-per-ip", "WS_MAX_CONNECTIONS_PER_IP", "N", WS_OPT_UINT,
	  OFF(max_connections_per_ip), 0, 1000000,
	  "open connections per remote address, 0 = no limit; over: 503", NULL },
	{ "send-queue", "WS_SEND_QUEUE", "BYTES", WS_OPT_SIZE, OFF(send_queue), 1024, 1ull << 31,
	  "bytes queued to a slow reader; over: close 1008", NULL },
	{ "max-queued", "WS_MAX_QUEUED", "BYTES", WS_OPT_SIZE, OFF(max_queued), 64 * 1024,
	  1ull << 40,
	  "bytes queued to all slow readers together; over: the one sent to closes 1008", NULL },
	{ "rate-limit", "WS_RATE_LIMIT", "N", WS_OPT_UINT, OFF(rate_limit), 0, 10000000,
	  "messages per second per connection, 0 = off", NULL },
	{ "rate-burst", "WS_RATE_BURST", "N", WS_OPT_UINT, OFF(rate_burst), 0, 10000000,
	  "token bucket size (default: 2 x rate)", NULL },
	{ "ping-interval", "WS_PING_INTERVAL", "SECONDS", WS_OPT_SECONDS, OFF(ping_interval_ms), 0,
	  SEC(86400), "ping a silent peer this often; no answer by the next: close, 0 = off",
	  NULL },
	{ "idle-timeout", "WS_IDLE_TIMEOUT", "SECONDS", WS_OPT_SECONDS, OFF(idle_timeout_ms), 0,
	  SEC(86400 * 7), "close after this long without a message, 0 = off", NULL },
	{ "handshake-timeout", "WS_HANDSHAKE_TIMEOUT", "SECONDS", WS_OPT_SECONDS,
	  OFF(handshake_timeout_ms), 1000, SEC(3600), "time allowed for the HTTP request", NULL },
	{ "drain-timeout", "WS_DRAIN_TIMEOUT", "SECONDS", WS_OPT_SECONDS, OFF(drain_timeout_ms), 0,
	  SEC(3600), "on SIGTERM/SIGINT, how long clients get to close", NULL },
	{ "allowed-origin", "WS_ALLOWED_ORIGIN", "ORIGIN", WS_OPT_LIST, OFF(allowed_origins), 0, 0,
	  "repeatable; an upgrade from any other Origin gets 403", NULL },
	{ "token-file", NULL, "PATH", WS_OPT_STRING, OFF(token_file), 0, 0,
	  "require this token (WS_TOKEN: the token itself); else 401", NULL },
	{ "log-level", "WS_LOG_LEVEL", "LEVEL", WS_OPT_STRING, OFF(log_level), 0, 0,
	  "error, warn, info or debug", check_level },
	{ "log-format", "WS_LOG_FORMAT", "FORMAT", WS_OPT_STRING, OFF(log_format), 0, 0,
	  "text or json", check_format },
	{ "no-self-sandbox", "WS_NO_SELF_SANDBOX", NULL, WS_OPT_FLAG, OFF(no_self_sandbox), 0, 0,
	  "do not install the server's own seccomp filter (warns)", NULL },
#ifndef NDEBUG
	{ "debug-exec-after-start", NULL, NULL, WS_OPT_FLAG, OFF(debug_exec_after_start), 0, 0,
	  "test hook: call execve once serving; the self-sandbox must kill the process", NULL },
#endif
};

void
ws_config_defaults(struct ws_config *cfg, uint32_t default_port)
{
	*cfg = (struct ws_config){
		.host = "0.0.0.0",
		.port = default_port,
		.notify_fd = UINT32_MAX,
		.max_message = 1u << 20,
		.max_connections = 16384,
		.send_queue = 4u << 20,
		.max_queued = 512u << 20,
		.ping_interval_ms = 30000,
		.handshake_timeout_ms = 10000,
		.drain_timeout_ms = 5000,
		.log_level = "info",
		.log_format = "text",
	};
}

int
ws_config_exit_status(enum ws_config_result r)
{
	switch (r) {
	case WS_CONFIG_RUN:
	case WS_CONFIG_EXIT:
		return WS_EXIT_OK;
	case WS_CONFIG_ERROR:
		break;
	case WS_CONFIG_SYSTEM:
		return WS_EXIT_SYSTEM;
	}
	return WS_EXIT_USAGE;
}

void
ws_config_finish(struct ws_config *cfg)
{
	free(cfg->token_owned);
	cfg->token_owned = NULL;
	cfg->token = NULL;
	for (size_t i = 0; i < cfg->allowed_origins.nowned; i++)
		free(cfg->allowed_origins.owned[i]);
	free(cfg->allowed_origins.owned);
	free(cfg->allowed_origins.v);
	cfg->allowed_origins = (struct ws_strlist){ 0 };
}

bool
ws_config_parse_uint(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

bool
ws_config_parse_size(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	unsigned shift = 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		return false;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

bool
ws_config_parse_seconds(const char *s, uint32_t *ms)
{
	/* digits, a point and an exponent: no sign in front, no hex, "inf" or "nan" */
	if (!((*s >= '0' && *s <= '9') || *s == '.') || strspn(s, "0123456789.eE+-") != strlen(s))
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v) || v < 0 || v > 4e6)
		return false;
	*ms = (uint32_t)llround(v * 1000.0);
	return true;
}

static bool
parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes"))
		*out = true;
	else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !*s)
		*out = false;
	else
		return false;
	return true;
}

static bool
list_add(struct ws_strlist *l, const char *v)
{
	const char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return false;
	nv[l->n++] = v;
	l->v = nv;
	return true;
}

/* Stores one value; `from` names its source for the error line. */
static bool
apply(const struct ws_option *o, void *target, const char *v, const char *from, bool from_env)
{
	void *dst = (char *)target + o->offset;
	uint64_t n;
	uint32_t ms;
	bool b;

	switch (o->type) {
	case WS_OPT_STRING:
		if (o->check && !o->check(v))
			goto bad;
		*(const char **)dst = v;
		return true;
	case WS_OPT_UINT:
		if (!ws_config_parse_uint(v, &n) || n < o->min || n > o->max)
			goto bad;
		*(uint32_t *)dst = (uint32_t)n;
		return true;
	case WS_OPT_SIZE:
		if (!ws_config_parse_size(v, &n) || n < o->min || n > o->max)
			goto bad;
		*(uint64_t *)dst = n;
		return true;
	case WS_OPT_SECONDS:
		if (!ws_config_parse_seconds(v, &ms) || ms < o->min || ms > o->max)
			goto bad;
		*(uint32_t *)dst = ms;
		return true;
	case WS_OPT_FLAG:
		if (!parse_bool(v, &b))
			goto bad;
		*(bool *)dst = b;
		return true;
	case WS_OPT_LIST: {
		struct ws_strlist *l = dst;
		/* the command line's items replace the environment's */
		if (!from_env && l->n && !l->from_flags)
			l->n = 0;
		l->from_flags = !from_env;
		/* a value is a comma-separated list (an origin has no comma) */
		char **no = realloc(l->owned, (l->nowned + 1) * sizeof(*no));
		if (!no)
			return false;
		l->owned = no;
		char *copy = strdup(v);
		if (!copy)
			return false;
		l->owned[l->nowned++] = copy;
		for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
		     t = strtok_r(NULL, ",", &save)) {
			t += strspn(t, " \t");
			t[strcspn(t, " \t")] = '\0';
			if (*t && !list_add(dst, t))
				return false;
		}
		return true;
	}
	}
bad:
	if (o->type == WS_OPT_UINT || o->type == WS_OPT_SIZE || o->type == WS_OPT_SECONDS) {
		bool sec = o->type == WS_OPT_SECONDS;
		const char *what = "a number";
		if (sec)
			what = "seconds";
		else if (o->type == WS_OPT_SIZE)
			what = "a size";
		fprintf(stderr, "error: %s: invalid value '%s' (expected %s from %llu to %llu)\n",
			from, v, what, (unsigned long long)(sec ? o->min / 1000 : o->min),
			(unsigned long long)(sec ? o->max / 1000 : o->max));
	} else {
		fprintf(stderr, "error: %s: invalid value '%s'\n", from, v);
	}
	return false;
}

static void
usage(const char *name, const char *summary, const struct ws_option_table *t, size_t nt)
{
	printf("Usage: %s [OPTION]...\n%s\n\nOptions (environment variable in brackets):\n", name,
	       summary);
	for (size_t i = 0; i < nt; i++) {
		for (size_t j = 0; j < t[i].n; j++) {
			const struct ws_option *o = &t[i].opts[j];
			char flag[64];
			snprintf(flag, sizeof(flag), "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
			printf("  %-34s %s%s%s%s\n", flag, o->help, o->env ? " [" : "",
			       o->env ? o->env : "", o->env ? "]" : "");
		}
	}
	printf("  %-34s %s\n  %-34s %s\n", "--help", "show this help and exit", "--version",
	       "show the version and exit");
	printf("\nExit status: 0 clean stop, 100 bad usage, 111 a system call failed.\n");
}

static bool
read_token_file(struct ws_config *cfg)
{
	FILE *f = fopen(cfg->token_file, "r");
	if (!f) {
		fprintf(stderr, "error: --token-file: cannot read '%s': %s\n", cfg->token_file,
			strerror(errno));
		return false;
	}
	char line[1024];
	bool ok = fgets(line, sizeof(line), f) != NULL;
	bool whole = ok && (strchr(line, '\n') || feof(f));
	fclose(f);
	if (ok && !whole) {
		fprintf(stderr, "error: --token-file: '%s': the token is longer than %zu bytes\n",
			cfg->token_file, sizeof(line) - 2);
		return false;
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (!ok || !*line) {
		fprintf(stderr, "error: --token-file: '%s' holds no token\n", cfg->token_file);
		return false;
	}
	free(cfg->token_owned);
	cfg->token = cfg->token_owned = strdup(line);
	explicit_bzero(line, sizeof(line));
	return cfg->token != NULL;
}

/*
 * Copies WS_TOKEN out of the environment, then wipes it there: the bytes
 * of the original block (what /proc/PID/environ shows) and the variable, so
 * neither a child nor a reader of /proc finds it.
 */
static bool
take_env_token(struct ws_config *cfg)
{
	char *tok = getenv("WS_TOKEN");
	if (!tok)
		return true;
	if (*tok) {
		free(cfg->token_owned);
		cfg->token = cfg->token_owned = strdup(tok);
		if (!cfg->token) {
			fprintf(stderr, "error: out of memory\n");
			return false;
		}
	}
	/* the entry is "WS_TOKEN=value"; glibc never frees it, so it stays writable */
	char *entry = tok - strlen("WS_TOKEN=");
	unsetenv("WS_TOKEN");
	explicit_bzero(entry, strlen(entry));
	return true;
}

enum ws_config_result
ws_config_parse(struct ws_config *cfg, const struct ws_option_table *extra, const char *name,
		const char *summary, int argc, char **argv)
{
	struct ws_option_table tables[2] = {
		{ common_opts, sizeof(common_opts) / sizeof(common_opts[0]), cfg },
	};
	size_t nt = 1;
	if (extra)
		tables[nt++] = *extra;

	/*
	 * Before any secret is read: a non-dumpable process's /proc/PID/mem,
	 * environ and fds are root's, and it cannot be ptrace-attached by its
	 * own uid, so a command running under the same uid cannot reach it.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		fprintf(stderr, "error: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
		return WS_CONFIG_SYSTEM;
	}

	size_t total = 0;
	for (size_t i = 0; i < nt; i++)
		total += tables[i].n;
	struct option *lo = calloc(total + 3, sizeof(*lo));
	if (!lo) {
		fprintf(stderr, "error: out of memory\n");
		return WS_CONFIG_ERROR;
	}

	/* the environment first, so flags override it */
	size_t k = 0;
	for (size_t i = 0; i < nt; i++) {
		for (size_t j = 0; j < tables[i].n; j++, k++) {
			const struct ws_option *o = &tables[i].opts[j];
			lo[k] = (struct option){ o->name,
						 o->type == WS_OPT_FLAG ? no_argument
									: required_argument,
						 NULL, (int)(1000 + k) };
			const char *v = o->env ? getenv(o->env) : NULL;
			if (v && !apply(o, tables[i].target, v, o->env, true))
				goto error;
		}
	}
	if (!take_env_token(cfg))
		goto error;
	lo[k++] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[k++] = (struct option){ "version", no_argument, NULL, 'V' };

	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":hV", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(name, summary, tables, nt);
			free(lo);
			return WS_CONFIG_EXIT;
		}
		if (c == 'V') {
			printf("%s %s\n", name, WS_VERSION);
			free(lo);
			return WS_CONFIG_EXIT;
		}
		if (c == '?' || c == ':') {
			const char *arg = argv[optind - 1];
			fprintf(stderr, "error: %s: %s\n", arg,
				c == ':' ? "missing value" : "unknown option");
			goto error;
		}
		size_t idx = (size_t)(c - 1000);
		for (size_t i = 0; i < nt; i++) {
			if (idx < tables[i].n) {
				const struct ws_option *o = &tables[i].opts[idx];
				char from[80];
				snprintf(from, sizeof(from), "--%s", o->name);
				if (!apply(o, tables[i].target,
					   o->type == WS_OPT_FLAG ? "1" : optarg, from, false))
					goto error;
				break;
			}
			idx -= tables[i].n;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "error: %s: unexpected argument\n", argv[optind]);
		goto error;
	}
	free(lo);

	if (cfg->token_file && !read_token_file(cfg))
		return WS_CONFIG_SYSTEM;
	if (cfg->rate_limit && !cfg->rate_burst)
		cfg->rate_burst = cfg->rate_limit * 2;
	ws_log_level_parse(cfg->log_level, &cfg->level);
	ws_log_format_parse(cfg->log_format, &cfg->format);
	return WS_CONFIG_RUN;

error:
	free(lo);
	return WS_CONFIG_ERROR;
}
