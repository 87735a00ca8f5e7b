/*
 * term: the terminal endpoint, the Sandbox SDK's terminal protocol
 * (docs/protocol-terminal.md) on any WebSocket path whose last segment is
 * `terminal`. A connection either starts a terminal (the shell on a pty,
 * kept) or, with ?id=, reattaches to a kept process on a pty, replaying from
 * ?cursor=. Binary frames are the terminal's bytes both ways; text frames
 * are JSON control messages.
 */
#ifndef RPC_TERM_H
#define RPC_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "session.h"

struct ws_conn;
struct rpc_term;

/* Whether a request path is the terminal endpoint's (its last segment is "terminal"). */
bool rpc_term_path(struct ws_slice path);

/*
 * Opens the endpoint on c: starts or attaches as the query says, or sends
 * `error` and closes c. shell is the program a new terminal runs (login
 * style). Returns NULL when c is being closed.
 */
enum rpc_term_control {
	RPC_TERM_RESIZE, /* {"type":"resize","cols":C,"rows":R}: *cols and *rows set */
	RPC_TERM_PING,   /* {"type":"ping"}: answered with {"type":"pong"} */
	RPC_TERM_BAD,    /* anything else: *why says what is wrong (a static string) */
};

/* Reads one text frame from the client (at most 4096 bytes are parsed). */
enum rpc_term_control rpc_term_parse_control(const uint8_t *data, size_t len, uint16_t *cols,
					     uint16_t *rows, const char **why);

struct rpc_term *rpc_term_create(struct rpc_hub *hub, struct ws_conn *c,
				 const struct ws_http_request *req, const char *shell);
/* The connection is gone; the process keeps running. NULL is a no-op. */
void rpc_term_destroy(struct rpc_term *t);
void rpc_term_message(struct rpc_term *t, bool text, const uint8_t *data, size_t len);
void rpc_term_drained(struct rpc_term *t);

#endif
