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
#include "kept.h"
#include "ratelimit.h"

struct ws_conn;
struct ws_server;

struct rpc_limits {
	uint64_t exec_timeout_ms;     /* default per command */
	uint64_t exec_timeout_max_ms; /* the most a request may ask for */
	uint64_t max_output;          /* bytes per stream, and the most a request may ask */
	/*
	 * Output a result carries, counted as encoded in the reply (escaped or
	 * base64), stdout and stderr together; a batch's execs share one such
	 * budget, which also bounds the batch's whole reply. Past it: cut.
	 */
	uint64_t max_reply;
	/*
	 * Output held in memory for results (collected, or sent and not yet read
	 * by the client), per connection and server-wide. Past either: cut.
	 */
	uint64_t max_buffered_per_conn;
	uint64_t max_buffered;
	uint32_t max_batch;         /* requests in one JSON-RPC batch */
	uint32_t max_id;            /* bytes of a string id */
	struct ws_rate_config rate; /* requests per second; a batch element is one */
	uint32_t max_exec;          /* running at once, server-wide */
	uint32_t max_exec_per_conn;
	bool keep_on_disconnect;
	/*
	 * The command policy. With either regex, argv[0] is looked up in
	 * command_path (not the client's PATH) and canonicalized; the regexes see,
	 * and the engine runs, that absolute path. A `command` (shell line) is
	 * refused under an allowlist unless allow_shell; then its text is matched.
	 */
	const regex_t *allow; /* NULL: everything */
	const regex_t *deny;  /* NULL: nothing */
	bool allow_shell;
	const char *command_path; /* colon-separated absolute directories */
	/* "HOME=DIR": the commands' own directory (0700, their user's), not /tmp */
	const char *home_env;
	json_t *described; /* the limits as reported by info (borrowed) */
};

/* What every session shares. */
struct rpc_hub {
	struct ws_server *srv;
	struct rpc_engine *engine;
	const struct rpc_limits *limits;
	const char *server_name;
	uint64_t held;               /* output held for results, every session */
	struct rpc_kept_table *kept; /* exec with keep or pty, and terminals */
};

/* A terminal's columns and rows are each 1..RPC_PTY_MAX. */
#define RPC_PTY_MAX 1000
#define RPC_PTY_BAD "pty cols and rows must be integers from 1 to 1000"

/* Whether cols and rows are a valid terminal size; if so, writes them. */
bool rpc_session_size_valid(json_t *cols, json_t *rows, uint16_t *c, uint16_t *r);

struct rpc_session;

struct rpc_session *rpc_session_create(struct rpc_hub *hub, struct ws_conn *c);
/* The connection is gone: its commands are killed (or left to finish, silently). */
void rpc_session_destroy(struct rpc_session *s);

/* One text or binary message from the client. */
void rpc_session_message(struct rpc_session *s, bool text, const uint8_t *data, size_t len);
/* A message the rate limit dropped: answered with the limit's error. */
void rpc_session_rate_limited(struct rpc_session *s, const uint8_t *data, size_t len);
/* The connection's send queue drained: paused output resumes, sent results stop counting. */
void rpc_session_drained(struct rpc_session *s);

#endif
