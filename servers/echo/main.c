/*
 * ws-echo: replies to every message with the same bytes and opcode, in
 * order. Everything else (limits, keepalive, health, drain) is the common
 * library's.
 */
#include "config.h"
#include "log.h"
#include "sandbox_self.h"
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
	static const enum ws_policy_set sets[] = { WS_POLICY_SET_SERVER };
	static const struct ws_sandbox_self self = {
		.name = "echo",
		.default_action = WS_POLICY_KILL,
		.sets = sets,
		.nsets = sizeof(sets) / sizeof(sets[0]),
	};
	return ws_sandbox_confine_server(&self, NULL, cfg->no_self_sandbox);
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
	enum ws_config_result parsed = ws_config_parse(
		&cfg, NULL, "ws-echo", "Echoes every WebSocket message back unchanged (RFC 6455).",
		argc, argv);
	if (parsed != WS_CONFIG_RUN)
		return ws_config_exit_status(parsed);
	ws_log_init(cfg.level, cfg.format);
	int status = ws_server_run(&echo_app, NULL, &cfg);
	ws_config_finish(&cfg);
	return status;
}
