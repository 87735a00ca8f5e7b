/*
 * ws-echo: replies to every message with the same bytes and opcode, in
 * order. Everything else (limits, keepalive, health, drain) is the common
 * library's.
 */
#include "config.h"
#include "log.h"
#include "sandbox.h"
#include "server.h"

static void
echo_message(void *app, struct ws_conn *c, enum ws_opcode op, uint8_t *data, size_t len)
{
	ws_conn_send(c, op, data, len);
}

/* Once listening: an allowlist; execve, fork, socket or ptrace now kill it. */
static int
echo_confine(void *app, const struct ws_config *cfg)
{
	if (cfg->no_self_sandbox) {
		ws_log(WS_LOG_WARN, "sandbox self=off hint=\"--no-self-sandbox was given\"");
		return 0;
	}
	char err[256];
	int rc = ws_sandbox_confine_self(WS_SANDBOX_SELF_ECHO, NULL, err, sizeof(err));
	if (rc != 0)
		ws_log(WS_LOG_ERROR, "sandbox self=echo failed=yes error=\"%s\"", err);
	return rc;
}

static const struct ws_app echo_app = {
	.name = "ws-echo",
	.message = echo_message,
	.confine = echo_confine,
	.accept_any_subprotocol = true,
};

int
main(int argc, char **argv)
{
	struct ws_config cfg;
	ws_config_defaults(&cfg, 8080);
	switch (ws_config_parse(&cfg, NULL, "ws-echo",
				"Echoes every WebSocket message back unchanged (RFC 6455).",
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
	ws_log_init(cfg.level, cfg.format);
	int status = ws_server_run(&echo_app, NULL, &cfg);
	ws_config_finish(&cfg);
	return status;
}
