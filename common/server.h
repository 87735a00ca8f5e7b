/*
 * server: what a WebSocket server built on this library implements and
 * calls. The library owns the loop (libwebsockets raw sockets on libuv), the
 * HTTP upgrade, the RFC 6455 codec, limits, keepalive, metrics, readiness
 * and drain; a server supplies a struct ws_app of callbacks and sends with
 * ws_conn_send() (conn.h). All callbacks run on the one loop thread.
 */
#ifndef WS_SERVER_H
#define WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "frame.h"
#include "http.h"
#include "metrics.h"

struct ws_server;
struct ws_conn;

struct ws_app {
	const char *name; /* "ws-echo": logs, /healthz, metrics label */
	/* Optional. The server exists (not yet listening): keep srv for ws_server_*(). */
	void (*start)(void *app, struct ws_server *srv);
	/*
	 * Optional. Called for an upgrade that passed the common checks; return
	 * 0 to accept, or an HTTP status (with *why, one line) to refuse.
	 */
	int (*admit)(void *app, struct ws_conn *c, const struct ws_http_request *req,
		     const char **why);
	/* Optional. The connection is open; the request is valid only during the call. */
	void (*open)(void *app, struct ws_conn *c, const struct ws_http_request *req);
	/* A whole message; data is valid (and writable) only during the call. */
	void (*message)(void *app, struct ws_conn *c, enum ws_opcode op, uint8_t *data, size_t len);
	/*
	 * Optional. This message was dropped by the rate limit; the server
	 * answers it and the connection stays. Without this callback, a
	 * sustained flood is closed 1008.
	 */
	void (*rate_limited)(void *app, struct ws_conn *c, enum ws_opcode op, const uint8_t *data,
			     size_t len);
	/* Optional. After ws_conn_notify_drained(): everything queued has left. */
	void (*drained)(void *app, struct ws_conn *c);
	/* Optional. The connection is gone; code is what closed it (1006: no close frame). */
	void (*close)(void *app, struct ws_conn *c, uint16_t code);
	/* Optional. A plain HTTP GET not handled by the library; true when answered. */
	bool (*http)(void *app, struct ws_conn *c, const struct ws_http_request *req);
	/* Optional. Draining began: no new connections; clients are being closed 1001. */
	void (*drain)(void *app);
	/*
	 * Optional. Called once listening, before readiness is signalled: the
	 * server confines itself (seccomp). Non-zero aborts the start (exit 111):
	 * a filter that cannot be installed is an error, not a warning.
	 */
	int (*confine)(void *app, const struct ws_config *cfg);
	/*
	 * Optional. The loop is about to end (drained, or start-up failed after
	 * start): the last moment to release watches and timers.
	 */
	void (*stop)(void *app);
	/* Optional. Runs after ws_server_defer(), once per loop turn that asked. */
	void (*deferred)(void *app);
	/*
	 * Optional. NULL while the server can take clients, else a short
	 * reason (ASCII, no quotes): /healthz then answers 503 "degraded" with
	 * it. Open connections are not touched: this is readiness, not liveness.
	 */
	const char *(*health)(void *app);
	/* Optional. Appends server-specific lines to /metrics. */
	void (*metrics)(void *app, struct ws_buf *out);
	/* Echo the first subprotocol a client offers (else none is selected). */
	bool accept_any_subprotocol;
	/* Subprotocols this server speaks, NULL-terminated; the client's first match wins. */
	const char *const *subprotocols;
};

/*
 * Runs a server until it has drained after SIGTERM/SIGINT. cfg must have
 * been parsed. Returns the process exit status (WS_EXIT_*). Logs why on
 * failure.
 */
int ws_server_run(const struct ws_app *app, void *app_state, const struct ws_config *cfg);

/* Counters, for servers that keep their own in step. */
struct ws_metrics *ws_server_metrics(struct ws_server *srv);
uint64_t ws_server_uptime_s(const struct ws_server *srv);

/*
 * Asks for ws_app.deferred to run once at the start of the next loop turn,
 * after every event of this turn: where a server batches work (one database
 * transaction per turn). Output it queues is flushed right after.
 */
void ws_server_defer(struct ws_server *srv);

#endif
