/*
 * ws-rpc: ping, info and exec over a WebSocket, in the Sandbox example's
 * `type` dialect and in JSON-RPC 2.0. The protocol and the process engine
 * are rpc/'s; this file is configuration and wiring. It refuses to start
 * without a token unless told --no-auth: it runs commands.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "session.h"

struct options {
	uint32_t exec_timeout_ms;
	uint32_t exec_timeout_max_ms;
	uint32_t kill_grace_ms;
	uint64_t max_output;
	uint32_t max_exec;
	uint32_t max_exec_per_conn;
	bool keep_on_disconnect;
	bool no_auth;
	const char *allow_command;
	const char *deny_command;
};

struct rpc_server {
	struct options opt;
	struct rpc_limits limits;
	struct rpc_hub hub;
	regex_t allow, deny;
};

static void
rpc_start(void *app, struct ws_server *srv)
{
	struct rpc_server *r = app;
	r->hub.srv = srv;
}

static int
rpc_confine(void *app, const struct ws_config *cfg)
{
	struct rpc_server *r = app;
	/* the engine needs the loop, which exists once listening */
	r->hub.engine = rpc_engine_create(r->hub.srv, NULL, NULL, r->opt.kill_grace_ms);
	return r->hub.engine ? 0 : -1;
}

static void
rpc_stop(void *app)
{
	struct rpc_server *r = app;
	rpc_engine_destroy(r->hub.engine);
	r->hub.engine = NULL;
}

static void
rpc_open(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	struct rpc_server *r = app;
	struct rpc_session *s = rpc_session_create(&r->hub, c);
	if (!s) {
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	ws_conn_set_user(c, s);
}

static void
rpc_message(void *app, struct ws_conn *c, enum ws_opcode op, uint8_t *data, size_t len)
{
	struct rpc_session *s = ws_conn_user(c);
	if (s)
		rpc_session_message(s, op == WS_OP_TEXT, data, len);
}

static void
rpc_rate_limited(void *app, struct ws_conn *c, enum ws_opcode op, const uint8_t *data,
		 size_t len)
{
	struct rpc_session *s = ws_conn_user(c);
	if (s)
		rpc_session_rate_limited(s, data, len);
}

static void
rpc_drained(void *app, struct ws_conn *c)
{
	struct rpc_session *s = ws_conn_user(c);
	if (s)
		rpc_session_drained(s);
}

static void
rpc_close(void *app, struct ws_conn *c, uint16_t code)
{
	rpc_session_destroy(ws_conn_user(c));
	ws_conn_set_user(c, NULL);
}

static void
rpc_metrics(void *app, struct ws_buf *out)
{
	struct rpc_server *r = app;
	char s[256];
	int n = snprintf(s, sizeof(s),
			 "# HELP ws_rpc_commands_running Commands running now.\n"
			 "# TYPE ws_rpc_commands_running gauge\n"
			 "ws_rpc_commands_running %u\n",
			 r->hub.engine ? rpc_engine_running(r->hub.engine) : 0);
	if (n > 0 && (size_t)n < sizeof(s))
		ws_buf_append(out, s, (size_t)n);
}

static const char *const subprotocols[] = { "jsonrpc", "json", NULL };

#define OPT(field) offsetof(struct options, field)

static const struct ws_option rpc_opts[] = {
	{ "exec-timeout", "WS_EXEC_TIMEOUT", "SECONDS", WS_OPT_SECONDS, OPT(exec_timeout_ms), 1,
	  3600u * 1000u * 24u, "a command's time unless it asks for less or more", NULL },
	{ "exec-timeout-max", "WS_EXEC_TIMEOUT_MAX", "SECONDS", WS_OPT_SECONDS,
	  OPT(exec_timeout_max_ms), 1, 3600u * 1000u * 24u,
	  "the most a command may ask for (timeout_ms)", NULL },
	{ "kill-grace", "WS_KILL_GRACE", "SECONDS", WS_OPT_SECONDS, OPT(kill_grace_ms), 0,
	  60u * 1000u, "after a timeout, from SIGTERM to SIGKILL", NULL },
	{ "max-output", "WS_MAX_OUTPUT", "BYTES", WS_OPT_SIZE, OPT(max_output), 1, 1ull << 32,
	  "output kept per stream and command; the rest is dropped (truncated)", NULL },
	{ "max-exec", "WS_MAX_EXEC", "N", WS_OPT_UINT, OPT(max_exec), 1, 100000,
	  "commands running at once, server-wide", NULL },
	{ "max-exec-per-conn", "WS_MAX_EXEC_PER_CONN", "N", WS_OPT_UINT, OPT(max_exec_per_conn), 1,
	  100000, "commands running at once per connection", NULL },
	{ "keep-on-disconnect", "WS_KEEP_ON_DISCONNECT", NULL, WS_OPT_FLAG,
	  OPT(keep_on_disconnect), 0, 0, "let commands finish when their client leaves", NULL },
	{ "no-auth", "WS_NO_AUTH", NULL, WS_OPT_FLAG, OPT(no_auth), 0, 0,
	  "serve without a token (anyone who reaches the port runs commands)", NULL },
	{ "allow-command", "WS_ALLOW_COMMAND", "REGEX", WS_OPT_STRING, OPT(allow_command), 0, 0,
	  "run only commands (or argv[0]) matching this POSIX extended regex", NULL },
	{ "deny-command", "WS_DENY_COMMAND", "REGEX", WS_OPT_STRING, OPT(deny_command), 0, 0,
	  "refuse commands (or argv[0]) matching this regex", NULL },
};

static bool
compile(const char *flag, const char *src, regex_t *re)
{
	int rc = regcomp(re, src, REG_EXTENDED | REG_NOSUB);
	if (rc == 0)
		return true;
	char msg[128];
	regerror(rc, re, msg, sizeof(msg));
	fprintf(stderr, "error: --%s: invalid regex '%s': %s\n", flag, src, msg);
	return false;
}

int
main(int argc, char **argv)
{
	static struct rpc_server r = {
		.opt = {
			.exec_timeout_ms = 30 * 1000,
			.exec_timeout_max_ms = 10 * 60 * 1000,
			.kill_grace_ms = 2000,
			.max_output = 10u << 20,
			.max_exec = 32,
			.max_exec_per_conn = 4,
		},
	};
	struct ws_config cfg;
	ws_config_defaults(&cfg, 8082);
	cfg.rate_limit = 10;
	cfg.rate_burst = 20;
	struct ws_option_table extra = { rpc_opts, sizeof(rpc_opts) / sizeof(rpc_opts[0]),
					 &r.opt };
	switch (ws_config_parse(&cfg, &extra, "ws-rpc",
				"Runs ping, info and exec requests (Sandbox `type` messages and "
				"JSON-RPC 2.0).",
				argc, argv)) {
	case WS_CONFIG_RUN:
		break;
	case WS_CONFIG_EXIT:
		return WS_EXIT_OK;
	case WS_CONFIG_ERROR:
		return WS_EXIT_USAGE;
	case WS_CONFIG_SYSTEM:
		return WS_EXIT_SYSTEM;
	}
	if (!cfg.token && !r.opt.no_auth) {
		fprintf(stderr, "error: ws-rpc runs commands: give --token-file (or WS_TOKEN), "
				"or --no-auth to serve anyone\n");
		return WS_EXIT_USAGE;
	}
	if (r.opt.exec_timeout_ms > r.opt.exec_timeout_max_ms) {
		fprintf(stderr, "error: --exec-timeout is longer than --exec-timeout-max\n");
		return WS_EXIT_USAGE;
	}
	if ((r.opt.allow_command && !compile("allow-command", r.opt.allow_command, &r.allow)) ||
	    (r.opt.deny_command && !compile("deny-command", r.opt.deny_command, &r.deny)))
		return WS_EXIT_USAGE;
	ws_log_init(cfg.level, cfg.format);
	if (r.opt.no_auth)
		ws_log(WS_LOG_WARN, "auth disabled=yes text=\"--no-auth: anyone who reaches this "
				    "port can run commands\"");

	r.limits = (struct rpc_limits){
		.exec_timeout_ms = r.opt.exec_timeout_ms,
		.exec_timeout_max_ms = r.opt.exec_timeout_max_ms,
		.max_output = r.opt.max_output,
		.max_exec = r.opt.max_exec,
		.max_exec_per_conn = r.opt.max_exec_per_conn,
		.keep_on_disconnect = r.opt.keep_on_disconnect,
		.allow = r.opt.allow_command ? &r.allow : NULL,
		.deny = r.opt.deny_command ? &r.deny : NULL,
	};
	r.limits.described = json_pack(
		"{s:I, s:I, s:I, s:i, s:i, s:b, s:s?, s:s?, s:i, s:i}", "exec_timeout_ms",
		(json_int_t)r.opt.exec_timeout_ms, "exec_timeout_max_ms",
		(json_int_t)r.opt.exec_timeout_max_ms, "max_output", (json_int_t)r.opt.max_output,
		"max_exec", (int)r.opt.max_exec, "max_exec_per_conn", (int)r.opt.max_exec_per_conn,
		"keep_on_disconnect", r.opt.keep_on_disconnect, "allow_command",
		r.opt.allow_command, "deny_command", r.opt.deny_command, "rate_limit",
		(int)cfg.rate_limit, "rate_burst", (int)cfg.rate_burst);
	r.hub = (struct rpc_hub){ .limits = &r.limits, .server_name = "ws-rpc" };

	static const struct ws_app app = {
		.name = "ws-rpc",
		.start = rpc_start,
		.confine = rpc_confine,
		.stop = rpc_stop,
		.open = rpc_open,
		.message = rpc_message,
		.rate_limited = rpc_rate_limited,
		.drained = rpc_drained,
		.close = rpc_close,
		.metrics = rpc_metrics,
		.subprotocols = subprotocols,
	};
	int status = ws_server_run(&app, &r, &cfg);
	ws_config_finish(&cfg);
	json_decref(r.limits.described);
	if (r.opt.allow_command)
		regfree(&r.allow);
	if (r.opt.deny_command)
		regfree(&r.deny);
	return status;
}
