/*
 * The state shared by server.c (lifecycle: context, signals, timers,
 * readiness, drain, built-in routes) and conn.c (one connection's state
 * machine). Not for servers: they use server.h.
 */
#ifndef WS_SERVER_PRIVATE_H
#define WS_SERVER_PRIVATE_H

#include <libwebsockets.h>
#include <netinet/in.h>

#include "frame.h"
#include "list.h"
#include "listen.h"
#include "ratelimit.h"
#include "server.h"

/*
 * Sockets accepted past --max-connections (plain HTTP, handshakes under
 * way, the 503s themselves) before new ones are dropped unanswered.
 */
#define WS_SOCKET_SLACK 1024u
/* Descriptors besides sockets: listeners, pipes, signalfd, the database, logs. */
#define WS_FD_RESERVE 76u

enum conn_state {
	CONN_HTTP,    /* reading the request head */
	CONN_OPEN,    /* WebSocket open */
	CONN_CLOSING, /* our close frame or HTTP reply is queued; input is discarded */
};

enum conn_flag {
	CONN_DIRTY = 1 << 0,     /* on the server's flush list */
	CONN_RX_PAUSED = 1 << 1, /* reading stopped until the output drains */
	CONN_PING_OUT = 1 << 2,  /* a keepalive ping awaits its pong */
	CONN_SHUT_WR = 1 << 3,   /* FIN sent; waiting for the peer's */
	CONN_PER_IP = 1 << 4,    /* counted in the per-address table */
	CONN_WS = 1 << 5,        /* was upgraded (counts as a connection) */
	CONN_DEAD = 1 << 6,      /* being torn down; send nothing more */
	CONN_CLOSE_RECEIVED = 1 << 7,
};

/*
 * What a connection needs only while it is busy: buffers, the frame
 * decoder, its rate bucket, the flush list link. Made on first need (a
 * request head split across reads, a frame received, output that the
 * socket did not take at once) and freed by the sweep once the connection
 * has been quiet for a while with nothing pending, so an idle connection
 * holds only its struct ws_conn (issue 13: idle memory).
 */
struct ws_conn_io {
	struct ws_buf in;  /* the request head while in CONN_HTTP */
	struct ws_buf out; /* bytes the socket has not taken yet */
	struct ws_rx rx;
	struct ws_rate rate;        /* valid when the server limits rates */
	struct ws_conn *dirty_next; /* flush list */
	uint32_t counted;           /* out.len as srv->queued last counted it */
	uint32_t ping_sent;         /* when CONN_PING_OUT was set (srv->now) */
	bool notify_drained;
};

/*
 * Kept small on purpose (104 B, one 112 B malloc chunk as lws's per-session
 * space): every idle connection holds one. The rest is in io.
 */
struct ws_conn {
	struct lws *wsi;
	struct ws_server *srv;
	struct ws_list link; /* in srv->conns: every connection, for sweeps and drain */
	void *user;
	struct ws_conn_io *io; /* NULL while idle */
	uint64_t id;
	uint64_t bytes_in, bytes_out;
	/* times in ms since the server started (srv->now), wrapping safely */
	uint32_t opened;
	uint32_t last_rx;    /* any bytes, pongs included */
	uint32_t last_msg;   /* a whole message */
	uint16_t close_code; /* for metrics and the log line */
	uint8_t state;
	uint8_t flags;
	struct in6_addr addr; /* IPv4 as v4-mapped */
};

struct ip_slot;

struct ws_server {
	const struct ws_app *app;
	void *app_state;
	const struct ws_config *cfg;
	struct lws_context *ctx;
	struct lws_vhost *watch_vhost; /* listens nowhere; adopted descriptors live there */
	struct lws_vhost *conn_vhost;  /* listens nowhere; accepted sockets are adopted there */
	struct ws_watch *listen[WS_LISTEN_MAX]; /* our own listening sockets */
	unsigned nlisten;
	const struct lws_protocols *protocols;
	struct ws_metrics metrics;
	struct ws_rate_config rate;
	struct ws_list conns;      /* every connection (ws_conn.link) */
	struct ws_conn *dirty;     /* head of the flush list */
	struct ip_slot **ip_table; /* per-address counts, when limited */
	uint32_t ip_seed;          /* the per-address table's hash seed */
	uint64_t next_id;
	uint64_t started_ms;
	uint32_t now;         /* ms since start; refreshed per read and per sweep */
	uint32_t sweep_ms;    /* keepalive/idle/trim sweep period */
	uint32_t sockets;     /* accepted sockets, HTTP included */
	uint64_t queued;      /* bytes queued to all peers (sum of c->out.len) */
	uint32_t pause_bytes; /* queued output past which a peer is not read */
	bool draining;
	bool stopping;
	bool app_stopped; /* ws_app.stop has run */
	bool uv;
	lws_sorted_usec_list_t sweep_sul;
	lws_sorted_usec_list_t drain_sul;
	lws_sorted_usec_list_t stop_sul;
	lws_sorted_usec_list_t defer_sul;
	lws_sorted_usec_list_t log_sul;
	lws_sorted_usec_list_t accept_sul; /* resumes accepting after EMFILE */
	bool deferred;                     /* defer_sul is scheduled */
	struct ws_buf scratch;             /* for HTTP bodies built on the fly */
};

/* conn.c */
int ws_conn_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len);
void ws_conn_flush_all(struct ws_server *srv);
void ws_conn_sweep(struct ws_server *srv);
void ws_conn_drain_all(struct ws_server *srv);
void ws_conn_ip_table_free(struct ws_server *srv);
/* Tells the server of every still-open connection's end, before the loop stops. */
void ws_conn_close_all_apps(struct ws_server *srv);

/* watch.c */
int ws_watch_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		      size_t len);

/* server.c */
void ws_server_clock(struct ws_server *srv);
bool ws_server_builtin_http(struct ws_server *srv, struct ws_conn *c,
			    const struct ws_http_request *req);
void ws_server_conn_gone(struct ws_server *srv);

#endif
