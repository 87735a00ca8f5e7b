/*
 * conn: one client connection as a server sees it: send messages or
 * pre-built frames, close, answer plain HTTP, and per-connection facts.
 * Connections are created and destroyed by the library (server.h); a
 * struct ws_conn is valid from ws_app.open (or .http) until ws_app.close
 * returns. Every call runs on the loop thread.
 */
#ifndef WS_CONN_H
#define WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct ws_conn;

/*
 * Queues one message to a connection; it leaves at the end of the current
 * loop event, with everything else queued meanwhile, in one write. Returns
 * false when the connection is closing, or when the message would pass
 * --send-queue (or, with a backlog already, --max-queued for all
 * connections together): then the connection is closed 1008 "slow consumer".
 */
bool ws_conn_send(struct ws_conn *c, enum ws_opcode op, const void *data, size_t len);

/*
 * Queues one frame built with ws_frame_append(): how a message fanned out to
 * many connections is framed once. Same bounds and result as ws_conn_send().
 */
bool ws_conn_send_frame(struct ws_conn *c, const void *frame, size_t len);

/* Asks for one ws_app.drained call once this connection's queue is empty. */
void ws_conn_notify_drained(struct ws_conn *c);

/* Starts the closing handshake with code and reason (<= 123 bytes). */
void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);

/* Answers a plain HTTP request (from ws_app.http) and closes the connection. */
void ws_conn_respond(struct ws_conn *c, int status, const char *content_type,
		     const char *extra_headers, const void *body, size_t len);

void ws_conn_set_user(struct ws_conn *c, void *user);
void *ws_conn_user(const struct ws_conn *c);
uint64_t ws_conn_id(const struct ws_conn *c);
/* Remote address as text ("127.0.0.1", "::1"). */
const char *ws_conn_addr(const struct ws_conn *c);
/* Bytes waiting to be sent to this connection. */
size_t ws_conn_queued(const struct ws_conn *c);

#endif
