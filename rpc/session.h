/*
 * session: one ws-rpc connection. Dispatches requests of either dialect,
 * runs `exec` through the engine with the server's limits and command
 * policy, streams or collects output, answers batches as one array, and
 * kills its commands when the connection goes (unless told to keep them).
 */
#ifndef RPC_SESSION_H
#define RPC_SESSION_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec.h"

struct ws_conn;
struct ws_server;

struct rpc_limits {
	uint64_t exec_timeout_ms;      /* default per command */
	uint64_t exec_timeout_max_ms;  /* the most a request may ask for */
	uint64_t max_output;           /* bytes per stream, and the most a request may ask */
	uint32_t max_exec;             /* running at once, server-wide */
	uint32_t max_exec_per_conn;
	bool keep_on_disconnect;
	const regex_t *allow;          /* NULL: everything */
	const regex_t *deny;           /* NULL: nothing */
	json_t *described;             /* the limits as reported by info (borrowed) */
};

/* What every session shares. */
struct rpc_hub {
	struct ws_server *srv;
	struct rpc_engine *engine;
	const struct rpc_limits *limits;
	const char *server_name;
};

struct rpc_session;

struct rpc_session *rpc_session_create(struct rpc_hub *hub, struct ws_conn *c);
/* The connection is gone: its commands are killed (or left to finish, silently). */
void rpc_session_destroy(struct rpc_session *s);

/* One text or binary message from the client. */
void rpc_session_message(struct rpc_session *s, bool text, const uint8_t *data, size_t len);
/* A message the rate limit dropped: answered with the limit's error. */
void rpc_session_rate_limited(struct rpc_session *s, const uint8_t *data, size_t len);
/* The connection's send queue drained: paused output resumes. */
void rpc_session_drained(struct rpc_session *s);

#endif
